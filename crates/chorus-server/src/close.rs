//! The one place where a refusal becomes a websocket close code (see
//! `proto/PROTOCOL.md`, "Close codes"). Reasons sent to clients are short and
//! stable; internal details go to the log only.

use chorus_auth::AuthError;
use chorus_core::RoomError;
use chorus_docs::Disconnect;
use chorus_protocol::DecodeError;

/// 4400: the frame is not a valid message.
pub const MALFORMED: u16 = 4400;
/// 4401: the token is missing, malformed, badly signed (or names an app that does
/// not exist: the same answer, `bad-signature`), expired or not yet valid.
pub const BAD_TOKEN: u16 = 4401;
/// 4403: the token is valid but does not grant this (app, document) or mode.
pub const FORBIDDEN: u16 = 4403;
/// 4404: the host deleted the document; reconnecting would only start an empty
/// draft, so clients stop.
pub const DELETED: u16 = 4404;
/// 4408: the session ended by the app's session policy: no input for
/// `idle_close_secs` (`idle-timeout`: come back when the user does) or its
/// `max_session_secs` passed (`session-expired`: reconnect with a fresh token).
pub const SESSION_ENDED_BY_POLICY: u16 = 4408;
/// 4410: the draft was evicted (its content went to the host): the host must write
/// it again before it opens; do not reconnect until it has.
pub const EVICTED: u16 = 4410;
/// 4413: a message or document exceeds its size limit.
pub const TOO_LARGE: u16 = 4413;
/// 4429: the connection stayed over its rate limits.
pub const RATE_LIMITED: u16 = 4429;
/// 1008: policy violation.
pub const POLICY: u16 = 1008;
/// 1011: the server hit an internal error.
pub const INTERNAL: u16 = 1011;
/// 1012: the server is restarting; reconnect.
pub const RESTARTING: u16 = 1012;
/// 1013: try again later (this connection could not keep up with the document).
pub const TRY_AGAIN_LATER: u16 = 1013;

/// Why Chorus closes a connection.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    /// Authentication failed before the connection joined its document.
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    /// No token in the query string or the subprotocol header.
    #[error("missing token")]
    MissingToken,
    /// The content id in the URL is not acceptable.
    #[error("invalid content id")]
    InvalidContentId,
    /// A frame failed to decode.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// A text frame (the protocol is binary only).
    #[error("text frame")]
    TextFrame,
    /// A message over `max_message_size`.
    #[error("message too large")]
    MessageTooLarge,
    /// Over its rate limits for `limits.throttle_close_secs` without a break.
    #[error("rate limited")]
    RateLimited,
    /// The server is shutting down.
    #[error("server restarting")]
    Shutdown,
    /// The document layer let the connection go.
    #[error("{0}")]
    Document(#[from] Disconnect),
}

impl CloseReason {
    /// The close code sent to the client.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::Auth(e) if e.is_forbidden() => FORBIDDEN,
            CloseReason::Auth(_) | CloseReason::MissingToken => BAD_TOKEN,
            CloseReason::InvalidContentId => FORBIDDEN,
            CloseReason::Decode(_) | CloseReason::TextFrame => MALFORMED,
            CloseReason::MessageTooLarge => TOO_LARGE,
            CloseReason::RateLimited => RATE_LIMITED,
            CloseReason::Shutdown => RESTARTING,
            CloseReason::Document(d) => match d {
                Disconnect::Room(e) => match e {
                    RoomError::Malformed { .. }
                    | RoomError::MissingDependencies
                    | RoomError::AwarenessNotObject => MALFORMED,
                    RoomError::ViewOnlyWrite => FORBIDDEN,
                    RoomError::ContentRejected => POLICY,
                    RoomError::AwarenessTooLarge { .. } | RoomError::DocumentTooLarge => TOO_LARGE,
                    RoomError::UnknownConnection => INTERNAL,
                },
                Disconnect::SlowConsumer => TRY_AGAIN_LATER,
                Disconnect::DocumentReset | Disconnect::DocumentUnavailable => INTERNAL,
                Disconnect::SessionEnded | Disconnect::AppDisabled => FORBIDDEN,
                Disconnect::TokenRefused => BAD_TOKEN,
                Disconnect::Stopped | Disconnect::Moved => RESTARTING,
                Disconnect::Deleted => DELETED,
                Disconnect::Evicted => EVICTED,
                Disconnect::TooManyEditors => RATE_LIMITED,
                Disconnect::Idle | Disconnect::Expired => SESSION_ENDED_BY_POLICY,
            },
        }
    }

    /// The close reason text sent to the client: a stable kebab-case code
    /// (at most 123 bytes, the websocket limit).
    pub fn client_reason(&self) -> &'static str {
        match self {
            CloseReason::Auth(e) => auth_code(e),
            CloseReason::MissingToken => "missing-token",
            CloseReason::InvalidContentId => "invalid-content-id",
            CloseReason::Decode(_) => "malformed-message",
            CloseReason::TextFrame => "text-frame",
            CloseReason::MessageTooLarge => "message-too-large",
            CloseReason::RateLimited => "rate-limited",
            CloseReason::Shutdown => "server-restarting",
            CloseReason::Document(d) => match d {
                Disconnect::Room(e) => match e {
                    RoomError::Malformed { .. } => "malformed-payload",
                    RoomError::MissingDependencies => "missing-dependencies",
                    RoomError::ViewOnlyWrite => "view-only",
                    RoomError::ContentRejected => "content-rejected",
                    RoomError::AwarenessTooLarge { .. } => "awareness-too-large",
                    RoomError::AwarenessNotObject => "malformed-awareness",
                    RoomError::DocumentTooLarge => "document-too-large",
                    RoomError::UnknownConnection => "internal-error",
                },
                Disconnect::SlowConsumer => "slow-consumer",
                Disconnect::DocumentReset => "document-reset",
                Disconnect::DocumentUnavailable => "document-unavailable",
                Disconnect::SessionEnded => "session-ended",
                Disconnect::TokenRefused => "token-refused",
                Disconnect::AppDisabled => auth_code(&AuthError::AppDisabled),
                Disconnect::Stopped => "server-restarting",
                Disconnect::Moved => "document-moved",
                Disconnect::Deleted => "document-deleted",
                Disconnect::Evicted => "document-evicted",
                Disconnect::TooManyEditors => "too-many-editors",
                Disconnect::Idle => "idle-timeout",
                Disconnect::Expired => "session-expired",
            },
        }
    }
}

/// The stable kebab-case code of an authentication failure, shared by close
/// reasons and host API errors.
pub fn auth_code(e: &AuthError) -> &'static str {
    match e {
        AuthError::Expired => "token-expired",
        AuthError::NotYetValid => "token-not-yet-valid",
        AuthError::BadSignature => "bad-signature",
        AuthError::AlgorithmNotAllowed => "algorithm-not-allowed",
        AuthError::AppDisabled => "app-disabled",
        AuthError::WrongApp => "wrong-app",
        AuthError::WrongDoc => "wrong-doc",
        AuthError::WrongScope => "wrong-scope",
        AuthError::MissingClaim(_) => "missing-claim",
        AuthError::Malformed | AuthError::Signing => "malformed-token",
    }
}

/// A close decision reduced to what goes on the wire (and into metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// The close code.
    pub code: u16,
    /// The stable reason text.
    pub reason: &'static str,
}

impl From<&CloseReason> for Closing {
    fn from(r: &CloseReason) -> Self {
        Closing {
            code: r.code(),
            reason: r.client_reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_codes() {
        assert_eq!(CloseReason::Auth(AuthError::Expired).code(), 4401);
        assert_eq!(CloseReason::Auth(AuthError::BadSignature).code(), 4401);
        assert_eq!(CloseReason::MissingToken.code(), 4401);
        assert_eq!(CloseReason::Auth(AuthError::WrongDoc).code(), 4403);
        assert_eq!(CloseReason::Auth(AuthError::WrongApp).code(), 4403);
        assert_eq!(CloseReason::Decode(DecodeError::Empty).code(), 4400);
        assert_eq!(CloseReason::TextFrame.code(), 4400);
        assert_eq!(CloseReason::MessageTooLarge.code(), 4413);
        let room = |e| CloseReason::Document(Disconnect::Room(e));
        assert_eq!(room(RoomError::ViewOnlyWrite).code(), 4403);
        assert_eq!(CloseReason::Shutdown.code(), 1012);
        assert_eq!(room(RoomError::ContentRejected).code(), 1008);
        let disabled = CloseReason::Document(Disconnect::AppDisabled);
        assert_eq!(
            (disabled.code(), disabled.client_reason()),
            (4403, "app-disabled")
        );
        let stopped = CloseReason::Document(Disconnect::Stopped);
        assert_eq!(
            (stopped.code(), stopped.client_reason()),
            (1012, "server-restarting")
        );
        assert_eq!(CloseReason::Document(Disconnect::SlowConsumer).code(), 1013);
        let deleted = CloseReason::Document(Disconnect::Deleted);
        assert_eq!(
            (deleted.code(), deleted.client_reason()),
            (4404, "document-deleted")
        );
    }
}
