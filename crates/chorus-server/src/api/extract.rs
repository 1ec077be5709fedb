//! The host API's extractors: each handler starts from typed, authenticated values.
//!
//! - [`HostDoc`]: `{app}`/`{doc}` of the path, the host token verified for that
//!   document, the content id checked; yields the document's key.
//! - [`HostApp`]: `{app}` and a host token for the whole app (the list route).
//! - [`Admin`]: `{app}` and the configured admin token.
//! - [`ApiPath`], [`ApiQuery`], [`ApiJson`]: axum's `Path`, `Query` and a JSON body,
//!   with every rejection answered as the JSON error (400 `bad-request`, 413
//!   `too-large`) instead of axum's text/plain.
//! - [`IfMatch`], [`IfNoneMatch`]: the precondition headers.
//!
//! Order matters and is the handlers' argument order: authentication first (401/403
//! before anything about the request is judged), then ids, query, headers, body.

use super::error::ApiError;
use super::types::{
    ContentBody, DiscardBody, DraftQuery, EventPath, PointPath, PointQuery, PublishBody,
    PublishQuery, RestoreBody, SessionPath,
};
use crate::ids::is_valid_content_id;
use crate::state::{unix_now, AppState};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use chorus_auth::AuthError;
use chorus_docs::DocKey;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Instant;
use subtle::ConstantTimeEq;

/// What a path, query or body value must be: the start of the `bad-request` message
/// when it is not (axum's own explanation follows it).
pub trait Expected {
    /// E.g. "format must be json, html or yjs".
    const EXPECTED: &'static str;
}

fn bad(expected: &'static str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("{expected} ({detail})").into())
}

/// `Path<T>` whose rejection is the JSON error.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Expected + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) if e.status().is_server_error() => {
                // A route whose parameters do not fit its extractor: a bug here.
                tracing::error!(error = %e.body_text(), "host route misconfigured");
                Err(ApiError::Unavailable)
            }
            Err(e) => Err(bad(T::EXPECTED, e.body_text())),
        }
    }
}

/// `Query<T>` whose rejection (a bad value, a field given twice, …) is the JSON error.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Expected,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| bad(T::EXPECTED, e.body_text()))
    }
}

/// A JSON body. The body is read as JSON whatever its `Content-Type` says (hosts
/// that send `curl -d` or no type at all keep working); anything that is not the
/// expected JSON is the JSON error, an over-limit body 413 `too-large`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + Expected,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes::<T, S>(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The body's bytes (413 `too-large` over the limit; any other failure to read it
/// is the body's `bad-request`).
async fn body_bytes<T: Expected, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            bad(T::EXPECTED, e.body_text())
        }
    })
}

/// `bytes` as the expected JSON, or the body's `bad-request`.
fn parse_json<T: DeserializeOwned + Expected>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| bad(T::EXPECTED, e))
}

/// An optional JSON body: none at all (or only white space) is `T::default()`;
/// anything else must be the expected JSON, as for [`ApiJson`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Expected + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes::<T, S>(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// The bearer token of `Authorization`.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::MissingToken)
}

/// The host token of `headers` verified for `app` (and `doc`, for a document
/// route), and the app's request rate charged: what every host call passes before
/// anything else, here or (cluster mode) on the node that routes it.
pub(crate) fn authorize_host(
    state: &AppState,
    app: &str,
    doc: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    state
        .apps
        .verify_host(app, doc, bearer(headers)?, unix_now())?;
    state.limiters.host_request(app, Instant::now())?;
    Ok(())
}

/// `{app}` and `{doc}` of a document route (its other parameters are ignored here).
#[derive(Debug, Deserialize)]
struct DocPath {
    app: String,
    doc: String,
}

/// `{app}` of an app route.
#[derive(Debug, Deserialize)]
struct AppPath {
    app: String,
}

/// A host call whose token was verified for one document: by this node's
/// `forward::to_owner` before routing, or by the node that carried it here. A
/// request extension, which only this crate sets (never a header a client could
/// send).
#[derive(Debug, Clone)]
pub(crate) struct VerifiedHost(pub DocKey);

/// A host call on one document: the token granted it, the content id is valid.
#[derive(Debug, Clone)]
pub struct HostDoc {
    /// (app, content id).
    pub key: DocKey,
}

impl FromRequestParts<AppState> for HostDoc {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiPath(DocPath { app, doc }) = ApiPath::from_request_parts(parts, state).await?;
        // Verified (and charged) already, for this very document, by the cluster
        // layer before it routed the call: see `VerifiedHost`.
        let verified = parts
            .extensions
            .get::<VerifiedHost>()
            .is_some_and(|v| *v.0.app == *app && *v.0.doc == *doc);
        if !verified {
            authorize_host(state, &app, Some(&doc), &parts.headers)?;
        }
        if !is_valid_content_id(&doc) {
            return Err(ApiError::bad_request("invalid content id"));
        }
        Ok(HostDoc {
            key: DocKey::new(app, doc),
        })
    }
}

/// A host call on a whole app (a token restricted to one document is refused).
#[derive(Debug, Clone)]
pub struct HostApp {
    /// The app id.
    pub app: String,
}

impl FromRequestParts<AppState> for HostApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiPath(AppPath { app }) = ApiPath::from_request_parts(parts, state).await?;
        authorize_host(state, &app, None, &parts.headers)?;
        Ok(HostApp { app })
    }
}

/// An admin call: the admin API is on (`admin_token` configured; 404 otherwise) and
/// the bearer is that token (compared in constant time).
#[derive(Debug, Clone)]
pub struct Admin {
    /// The `{app}` of the path (not checked: the handler answers 404 for an unknown one).
    pub app: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = state.config.admin_token.as_deref() else {
            return Err(ApiError::NotFound(
                "admin API (set admin_token to turn it on)",
            ));
        };
        let given = bearer(&parts.headers)?;
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::Auth(AuthError::BadSignature));
        }
        let ApiPath(AppPath { app }) = ApiPath::from_request_parts(parts, state).await?;
        Ok(Admin { app })
    }
}

/// The `If-Match` of publish; 428 without one.
#[derive(Debug, Clone)]
pub struct IfMatch(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| IfMatch(v.to_owned()))
            .ok_or(ApiError::PreconditionRequired)
    }
}

/// The `If-None-Match` of a draft read, if any.
#[derive(Debug, Clone)]
pub struct IfNoneMatch(pub Option<HeaderValue>);

impl IfNoneMatch {
    /// Whether it names `etag` (byte for byte, as the ETag header carries it).
    pub fn matches(&self, etag: &HeaderValue) -> bool {
        self.0
            .as_ref()
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts.headers.get(header::IF_NONE_MATCH).cloned(),
        ))
    }
}

impl Expected for DocPath {
    const EXPECTED: &'static str = "the app and content ids must be UTF-8";
}

impl Expected for AppPath {
    const EXPECTED: &'static str = "the app id must be UTF-8";
}

impl Expected for DraftQuery {
    const EXPECTED: &'static str = "format must be json, html or yjs";
}

impl Expected for PointQuery {
    const EXPECTED: &'static str = "format must be json or html";
}

impl Expected for PublishQuery {
    const EXPECTED: &'static str = "conflictPolicy must be abort (the only policy supported)";
}

impl Expected for PointPath {
    const EXPECTED: &'static str = "a history point is a number from the history list";
}

impl Expected for EventPath {
    const EXPECTED: &'static str = "an event id is evt-<n>, as the dead-letter list gives it";
}

impl Expected for SessionPath {
    const EXPECTED: &'static str = "a session id is a number from the sessions list";
}

impl Expected for PublishBody {
    const EXPECTED: &'static str =
        "the body is optional; if given, a JSON object {\"by\": {\"id\", \"name\"}} (strings of at most 256 characters)";
}

impl Expected for DiscardBody {
    const EXPECTED: &'static str =
        "the body is optional; if given, a JSON object {\"point\"?: a history point, \"by\"?: {\"id\", \"name\"}}";
}

impl Expected for ContentBody {
    const EXPECTED: &'static str =
        "the body must be JSON {title?, html?, baseEtag?} with string values";
}

impl Expected for RestoreBody {
    const EXPECTED: &'static str = "the body must be JSON {point} with a point number";
}
