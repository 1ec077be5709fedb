//! Why a token was refused.

/// Why a token was refused (or could not be minted).
///
/// Messages are meant for humans and logs; they never contain a secret or the
/// token itself. Use [`AuthError::is_forbidden`] to choose between
/// "unauthenticated" (websocket 4401 / HTTP 401) and "forbidden" (4403 / 403).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Not a compact JWS, bad base64url, header or claims not a JSON object, a
    /// claim of the wrong type, or an oversized token.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match any of the app's secrets, or the token's
    /// `iss` names no registered app: the two are one answer, so that a caller
    /// without a valid token cannot tell which app ids exist.
    #[error("token signature is invalid")]
    BadSignature,
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("token algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// `now >= exp + leeway`.
    #[error("token has expired")]
    Expired,
    /// `nbf > now + leeway`.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The token's app exists but is disabled.
    #[error("app is disabled")]
    AppDisabled,
    /// The token was issued for another app than the one in the request.
    #[error("token was issued for another app")]
    WrongApp,
    /// The token's `doc` does not match the document of the request.
    #[error("token does not grant access to this document")]
    WrongDoc,
    /// The token's `scope` does not fit the endpoint (e.g. a session token used
    /// on the host API, or a host token used on the websocket).
    #[error("token scope does not allow this operation")]
    WrongScope,
    /// A required claim is absent (or `null`); the payload is the claim's name.
    #[error("token is missing the required `{0}` claim")]
    MissingClaim(&'static str),
    /// Minting failed (e.g. an empty secret or unserializable claims).
    #[error("could not sign token")]
    Signing,
}

impl AuthError {
    /// `true` when the caller is authenticated enough to be told "no" (the
    /// server maps these to websocket close 4403 / HTTP 403): [`AppDisabled`],
    /// [`WrongApp`], [`WrongDoc`], [`WrongScope`] — each returned only once the
    /// signature verified. `false` for everything else (4401 / 401).
    ///
    /// [`AppDisabled`]: AuthError::AppDisabled
    /// [`WrongApp`]: AuthError::WrongApp
    /// [`WrongDoc`]: AuthError::WrongDoc
    /// [`WrongScope`]: AuthError::WrongScope
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            AuthError::AppDisabled
                | AuthError::WrongApp
                | AuthError::WrongDoc
                | AuthError::WrongScope
        )
    }

    /// A stable, machine-readable code (snake_case), suitable for the `code`
    /// field of JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed_token",
            AuthError::BadSignature => "bad_signature",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::AppDisabled => "app_disabled",
            AuthError::WrongApp => "wrong_app",
            AuthError::WrongDoc => "wrong_doc",
            AuthError::WrongScope => "wrong_scope",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::Signing => "signing_failed",
        }
    }
}
