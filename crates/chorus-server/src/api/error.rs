//! [`ApiError`]: every answer of the host API that is not a success, and the one
//! place where it becomes a status and a JSON `{code, message}` body.

use super::types::ErrorBody;
use crate::close::auth_code;
use crate::limits::HostRateExceeded;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_auth::AuthError;
use chorus_docs::{DocError, HostError};
use chorus_store::StoreCondition;
use std::borrow::Cow;
use std::time::Duration;

/// Every error the host API answers with. The status and `code` mapping lives in
/// [`ApiError::status`] and [`ApiError::code`]; details stay in the server log.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    MissingToken,
    /// The host token was refused.
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// A path, query, header or body value is not acceptable (including every
    /// rejection of axum's own extractors).
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    /// The document (or history point, session, app) does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The route exists but not with this method (the `Allow` header lists those it has).
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// The request body is over the host API's limit.
    #[error("the request body is too large")]
    TooLarge,
    /// Publish without `If-Match`.
    #[error("publishing needs an If-Match header with the ETag of the draft that was read")]
    PreconditionRequired,
    /// The draft moved on since the host read it.
    #[error("the draft changed since it was read; read it again (current ETag {0})")]
    Conflict(String),
    /// The draft was evicted (its content went to the host in the `evicted` webhook).
    #[error("the draft was evicted (at {0} ms since the epoch); write its content again (PUT …/content) to bring it back")]
    Evicted(u64),
    /// The `baseEtag` of an external change is unknown or expired.
    #[error("the base {0} is unknown or expired; read the draft again and retry with its ETag")]
    BaseExpired(String),
    /// The change holds content the app's whitelist refuses (reject mode).
    #[error("the change holds content outside the whitelist")]
    ContentRejected,
    /// The store or a document actor failed.
    #[error("the document could not be read")]
    Unavailable,
    /// The store refused a read or a write (a full disk, a read-only store, …).
    #[error("the store cannot serve this now ({0}); retry later")]
    Store(StoreCondition),
    /// The app made more requests than `host_requests_per_sec` allows.
    #[error("too many host API requests from this app; retry after the Retry-After seconds")]
    RateLimited(Duration),
}

impl ApiError {
    /// A 400 `bad-request` with a fixed message.
    pub const fn bad_request(message: &'static str) -> Self {
        ApiError::BadRequest(Cow::Borrowed(message))
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingToken => StatusCode::UNAUTHORIZED,
            ApiError::Auth(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BaseExpired(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Evicted(_) => StatusCode::GONE,
            ApiError::ContentRejected => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable | ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "missing-token",
            ApiError::Auth(e) => auth_code(e),
            ApiError::BadRequest(_) => "bad-request",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::TooLarge => "too-large",
            ApiError::PreconditionRequired => "precondition-required",
            ApiError::Conflict(_) => "conflict",
            ApiError::BaseExpired(_) => "base-expired",
            ApiError::Evicted(_) => "evicted",
            ApiError::ContentRejected => "content-rejected",
            ApiError::Unavailable => "unavailable",
            ApiError::Store(c) => c.code(),
            ApiError::RateLimited(_) => "rate-limited",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
            etag: match &self {
                ApiError::Conflict(etag) => Some(etag.clone()),
                _ => None,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RateLimited(wait) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after(wait));
        }
        response
    }
}

/// A `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after(wait: Duration) -> HeaderValue {
    HeaderValue::from(wait.as_secs_f64().ceil().max(1.0) as u64)
}

impl From<HostRateExceeded> for ApiError {
    fn from(e: HostRateExceeded) -> Self {
        ApiError::RateLimited(e.retry_after)
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::NotFound => ApiError::NotFound("document"),
            HostError::Evicted { at_ms } => ApiError::Evicted(at_ms),
            HostError::Conflict { current } => ApiError::Conflict(current),
            HostError::ContentRejected => ApiError::ContentRejected,
            HostError::BadBase => ApiError::BaseExpired("given".into()),
            HostError::Unavailable(e) => {
                tracing::warn!(error = %e, "host operation failed");
                ApiError::from(e)
            }
        }
    }
}

impl From<DocError> for ApiError {
    fn from(e: DocError) -> Self {
        match e {
            DocError::Store(_) | DocError::Load(_) | DocError::EventsNotQueued(_) => {
                ApiError::Store(e.store_condition())
            }
            // The draft a change waited on was deleted meanwhile.
            DocError::Deleted => ApiError::NotFound("document"),
            // Busy: this node carries as many host calls as it may; 503 too.
            _ => ApiError::Unavailable,
        }
    }
}

/// The fallback of every host route for a method it does not take: 405 with the JSON
/// error (axum adds the `Allow` header).
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
