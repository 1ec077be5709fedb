//! Host REST API (read side): `GET …/docs/{doc}/draft` and `GET …/docs`.
//! Authenticated with host tokens (`Authorization: Bearer …`, `scope: "host"`).
//! Handlers are thin: authenticate, ask the document's actor or the store,
//! shape the response. Every error is JSON `{code, message}` via [`ApiError`].

use crate::close::auth_code;
use crate::config::is_valid_content_id;
use crate::connection::unix_now;
use crate::registry::{DocCommand, DraftContent, DraftFormat};
use crate::serve::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_auth::AuthError;
use serde::Deserialize;
use tokio::sync::oneshot;

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
    /// A path or query value is not acceptable.
    #[error("{0}")]
    BadRequest(&'static str),
    /// The document does not exist.
    #[error("no such document")]
    NotFound,
    /// The store or a document actor failed.
    #[error("the document could not be read")]
    Unavailable,
}

impl ApiError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingToken => StatusCode::UNAUTHORIZED,
            ApiError::Auth(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "missing-token",
            ApiError::Auth(e) => auth_code(e),
            ApiError::BadRequest(_) => "bad-request",
            ApiError::NotFound => "not-found",
            ApiError::Unavailable => "unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

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

fn check_doc_id(doc: &str) -> Result<(), ApiError> {
    if !is_valid_content_id(doc) {
        return Err(ApiError::BadRequest("invalid content id"));
    }
    Ok(())
}

/// Query of the draft route.
#[derive(Deserialize)]
pub struct DraftQuery {
    format: Option<String>,
}

/// `GET /v1/apps/{app}/docs/{doc}/draft?format=json|html|yjs`
pub async fn get_draft(
    State(state): State<AppState>,
    Path((app, doc)): Path<(String, String)>,
    Query(q): Query<DraftQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .apps
        .verify_host(&app, Some(&doc), bearer(&headers)?, unix_now())?;
    check_doc_id(&doc)?;
    let format = match q.format.as_deref().unwrap_or("json") {
        "json" => DraftFormat::Json,
        "html" => DraftFormat::Html,
        "yjs" => DraftFormat::Yjs,
        _ => return Err(ApiError::BadRequest("format must be json, html or yjs")),
    };
    let (reply, answer) = oneshot::channel();
    let key = (app.into(), doc.as_str().into());
    state
        .documents
        .dispatch(&key, DocCommand::Read { format, reply })
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let draft = answer
        .await
        .map_err(|_| ApiError::Unavailable)?
        .map_err(|e| {
            tracing::warn!(doc = %doc, error = %e, "draft read failed");
            ApiError::Unavailable
        })?;
    if !draft.exists {
        return Err(ApiError::NotFound);
    }
    let etag = HeaderValue::from_str(&draft.etag).map_err(|_| ApiError::Unavailable)?;
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let mut response = match draft.content {
        DraftContent::Json(mut v) => {
            v["etag"] = draft.etag.clone().into();
            v["updatedAt"] = draft.updated_at_ms.into();
            Json(v).into_response()
        }
        DraftContent::Html { title, html } => {
            let mut r =
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
            if let Ok(t) = HeaderValue::from_str(&percent_encode(&title)) {
                r.headers_mut().insert("x-chorus-title", t);
            }
            r
        }
        DraftContent::Yjs(bytes) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
    };
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

/// `GET /v1/apps/{app}/docs`: every stored document of the app with its metadata.
pub async fn list_docs(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .apps
        .verify_host(&app, None, bearer(&headers)?, unix_now())?;
    let store = state.documents.persistence().store().clone();
    let listed = tokio::task::spawn_blocking(move || store.list(&app))
        .await
        .map_err(|_| ApiError::Unavailable)?
        .map_err(|e| {
            tracing::warn!(error = %e, "listing documents failed");
            ApiError::Unavailable
        })?;
    let docs: Vec<serde_json::Value> = listed
        .into_iter()
        .map(|(id, m)| {
            serde_json::json!({
                "id": id,
                "createdAt": m.created_at_ms,
                "updatedAt": m.updated_at_ms,
                "contributors": m.contributors,
                "sizeBytes": m.size_bytes,
                "updateCount": m.update_count,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "docs": docs })).into_response())
}

/// Header values must be visible ASCII: percent-encode everything else (RFC 3986 unreserved kept).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b' ') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
