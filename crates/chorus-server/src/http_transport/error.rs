//! Every refusal of the HTTP transport's routes ([`HttpError`]), and the one place
//! where it becomes a status and a JSON body (with the websocket close code it
//! stands for, where there is one).

use crate::close::{CloseReason, BAD_TOKEN, FORBIDDEN, MALFORMED, TOO_LARGE};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Every refusal of the HTTP transport's routes: a status and a JSON body with a
/// stable `code`; where the websocket would have closed, the close code too.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// `http_transport.enabled = false`.
    #[error("the HTTP transport is switched off on this server; use the websocket")]
    Disabled,
    /// No such session for this document (never was, timed out, or over).
    #[error("no such session; open a new one")]
    UnknownSession,
    /// The join was refused (token, content id, app).
    #[error("the session was refused: {0}")]
    Refused(CloseReason),
    /// The stream asked to resume after events that are no longer kept.
    #[error("events after that id are no longer kept; open a new session")]
    ResumeGap,
    /// The stream asked to resume after an event never sent.
    #[error("no event with that id was sent")]
    BadEventId,
    /// A POST's first frame is past the next one expected.
    #[error("frames are missing before this one; send from sequence number {expected}")]
    OutOfOrder {
        /// The sequence number the session expects.
        expected: u64,
    },
    /// A query value is missing or not a number.
    #[error("{0}")]
    BadRequest(&'static str),
    /// A POST body that is not a list of frames; the session closes (4400).
    #[error("the body is not a list of length-prefixed frames")]
    Malformed,
    /// A frame (or body) over the limit; the session closes (4413).
    #[error("a message is over max_message_size")]
    TooLarge,
    /// The session waited too long to take the frames (it is throttled).
    #[error("the session is not taking messages now; retry")]
    Busy,
}

/// The JSON body of an [`HttpError`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpErrorBody {
    code: &'static str,
    message: String,
    /// The websocket close code this answer stands for (the session is over).
    #[serde(skip_serializing_if = "Option::is_none")]
    close_code: Option<u16>,
    /// Out of order: the sequence number the session expects.
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<u64>,
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::Disabled | HttpError::UnknownSession => StatusCode::NOT_FOUND,
            HttpError::Refused(reason) => match reason.code() {
                BAD_TOKEN => StatusCode::UNAUTHORIZED,
                FORBIDDEN => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            },
            HttpError::ResumeGap => StatusCode::GONE,
            HttpError::BadEventId | HttpError::BadRequest(_) | HttpError::Malformed => {
                StatusCode::BAD_REQUEST
            }
            HttpError::OutOfOrder { .. } => StatusCode::CONFLICT,
            HttpError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            HttpError::Disabled => "http-transport-disabled",
            HttpError::UnknownSession => "unknown-session",
            HttpError::Refused(reason) => reason.client_reason(),
            HttpError::ResumeGap => "resume-gap",
            HttpError::BadEventId => "bad-event-id",
            HttpError::OutOfOrder { .. } => "out-of-order",
            HttpError::BadRequest(_) => "bad-request",
            HttpError::Malformed => "malformed-message",
            HttpError::TooLarge => "message-too-large",
            HttpError::Busy => "session-busy",
        }
    }

    fn close_code(&self) -> Option<u16> {
        match self {
            HttpError::Refused(reason) => Some(reason.code()),
            HttpError::Malformed => Some(MALFORMED),
            HttpError::TooLarge => Some(TOO_LARGE),
            _ => None,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = HttpErrorBody {
            code: self.code(),
            message: self.to_string(),
            close_code: self.close_code(),
            expected: match self {
                HttpError::OutOfOrder { expected } => Some(expected),
                _ => None,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        no_store(&mut response);
        response
    }
}

pub(crate) fn no_store(response: &mut Response) {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, no-transform"),
    );
}
