//! Host REST API: read drafts (`GET …/docs/{doc}/draft`, `GET …/docs`), push external
//! changes (`PUT …/content`), publish with conflict abort, history and restore.
//! Authenticated with host tokens (`Authorization: Bearer …`, `scope: "host"`).
//! Handlers are thin: authenticate, ask the document's actor or the store,
//! shape the response. Every error is JSON `{code, message}` via [`ApiError`].

use crate::close::auth_code;
use crate::ids::is_valid_content_id;
use crate::state::{unix_now, AppState};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_auth::AuthError;
use chorus_docs::{
    ChangeOutcome, DocCommand, DocError, DocKey, DraftContent, DraftFormat, HostChange, HostError,
    Published,
};
use chorus_store::DocId;
use chorus_store::StoreCondition;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::oneshot;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

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
    /// The document (or history point) does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Publish without `If-Match`.
    #[error("publishing needs an If-Match header with the ETag of the draft that was read")]
    PreconditionRequired,
    /// The draft moved on since the host read it.
    #[error("the draft changed since it was read; read it again (current ETag {0})")]
    Conflict(String),
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
}

impl ApiError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingToken => StatusCode::UNAUTHORIZED,
            ApiError::Auth(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BaseExpired(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::ContentRejected => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable | ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "missing-token",
            ApiError::Auth(e) => auth_code(e),
            ApiError::BadRequest(_) => "bad-request",
            ApiError::NotFound(_) => "not-found",
            ApiError::PreconditionRequired => "precondition-required",
            ApiError::Conflict(_) => "conflict",
            ApiError::BaseExpired(_) => "base-expired",
            ApiError::ContentRejected => "content-rejected",
            ApiError::Unavailable => "unavailable",
            ApiError::Store(c) => c.code(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let ApiError::Conflict(etag) = &self {
            body["etag"] = etag.clone().into();
        }
        (self.status(), Json(body)).into_response()
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::NotFound => ApiError::NotFound("document"),
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
            DocError::Store(_) | DocError::Load(_) => ApiError::Store(e.store_condition()),
            _ => ApiError::Unavailable,
        }
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
            ApiError::from(e)
        })?;
    if !draft.exists {
        return Err(ApiError::NotFound("document"));
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
        DraftContent::Html { title, html } => html_response(&title, html),
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
    let listed = read_store(&state, "listing documents", move |store| store.list(&app)).await?;
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

/// Body of `PUT …/content`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ContentBody {
    title: Option<String>,
    html: Option<String>,
    base_etag: Option<String>,
}

/// Authenticate a host call on one document; its key.
fn host_doc(
    state: &AppState,
    app: &str,
    doc: &str,
    headers: &HeaderMap,
) -> Result<DocKey, ApiError> {
    state
        .apps
        .verify_host(app, Some(doc), bearer(headers)?, unix_now())?;
    check_doc_id(doc)?;
    Ok((app.into(), doc.into()))
}

/// `PUT /v1/apps/{app}/docs/{doc}/content` with `{title?, html?, baseEtag?}`: an
/// external change, applied to the live draft as a minimal diff.
pub async fn put_content(
    State(state): State<AppState>,
    Path((app, doc)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    let body: ContentBody = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest("the body must be JSON {title?, html?, baseEtag?} with string values")
    })?;
    if body.title.is_none() && body.html.is_none() {
        return Err(ApiError::BadRequest("give a title, an html body, or both"));
    }
    let base = match &body.base_etag {
        None => None,
        Some(etag) => Some(find_base(&state, &key, etag).await?),
    };
    let change = HostChange {
        title: body.title,
        html: body.html,
        base,
        restoring: None,
    };
    let outcome = state.documents.external_change(&key, change).await?;
    Ok(change_response(outcome))
}

fn change_response(outcome: ChangeOutcome) -> Response {
    let r = Json(serde_json::json!({ "etag": outcome.etag, "changed": outcome.fields }));
    with_etag(r.into_response(), &outcome.etag)
}

/// `response` with an `ETag` header.
fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(etag) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Body HTML, with the title percent-encoded in `X-Chorus-Title`.
fn html_response(title: &str, html: String) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    if let Ok(t) = HeaderValue::from_str(&percent_encode(title)) {
        r.headers_mut().insert("x-chorus-title", t);
    }
    r
}

/// Run a store call on a blocking thread; a failure is logged (with `what`) and
/// answered as 503.
async fn read_store<T: Send + 'static>(
    state: &AppState,
    what: &'static str,
    call: impl FnOnce(&dyn chorus_store::Store) -> Result<T, chorus_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.documents.store().clone();
    tokio::task::spawn_blocking(move || call(&*store))
        .await
        .map_err(|_| ApiError::Unavailable)?
        .map_err(|e| {
            tracing::warn!(condition = %e.condition(), error = %e, "{what} failed");
            ApiError::Store(e.condition())
        })
}

/// The document as the host read it with `etag`: a recent read kept in memory, or a
/// history point with that ETag.
async fn find_base(state: &AppState, key: &DocKey, etag: &str) -> Result<Arc<Vec<u8>>, ApiError> {
    if let Some(base) = state.documents.base(key, etag) {
        return Ok(base);
    }
    let id = DocId::new(&*key.0, &*key.1);
    let wanted = etag.to_owned();
    let found = read_store(state, "reading history for a base", move |store| {
        let entries = store.history(&id)?;
        let Some(entry) = entries.iter().rev().find(|e| e.etag == wanted) else {
            return Ok(None);
        };
        Ok(store.history_point(&id, entry.point)?.map(|p| p.state))
    })
    .await?;
    found
        .map(Arc::new)
        .ok_or_else(|| ApiError::BaseExpired(etag.to_owned()))
}

/// Query of the publish route.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishQuery {
    conflict_policy: Option<String>,
}

/// `POST /v1/apps/{app}/docs/{doc}/publish?conflictPolicy=abort` with `If-Match`.
pub async fn publish(
    State(state): State<AppState>,
    Path((app, doc)): Path<(String, String)>,
    Query(q): Query<PublishQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    match q.conflict_policy.as_deref() {
        None | Some("abort") => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "conflictPolicy must be abort (the only policy supported)",
            ))
        }
    }
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(ApiError::PreconditionRequired)?
        .to_owned();
    let published: Published = state.documents.publish(&key, if_match).await?;
    let r = Json(serde_json::json!({
        "title": published.title,
        "html": published.html,
        "etag": published.etag,
        "publishedAt": published.published_at_ms,
    }));
    Ok(with_etag(r.into_response(), &published.etag))
}

/// `GET /v1/apps/{app}/docs/{doc}/history`: every history point, oldest first.
pub async fn history(
    State(state): State<AppState>,
    Path((app, doc)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    let id = DocId::new(&*key.0, &*key.1);
    let entries = read_store(&state, "reading history", move |store| store.history(&id)).await?;
    let points: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|e| {
            let mut v = serde_json::json!({
                "point": e.point,
                "at": e.at_ms,
                "kind": e.kind,
                "etag": e.etag,
                "title": e.title,
                "sizeBytes": e.size_bytes,
            });
            if e.restored_from > 0 {
                v["restoredFrom"] = e.restored_from.into();
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "points": points })).into_response())
}

/// The title and body HTML of a history point (HTML cleaned by the app's whitelist).
async fn point_content(
    state: &AppState,
    key: &DocKey,
    point: u64,
) -> Result<
    (
        String,
        String,
        serde_json::Value,
        chorus_store::HistoryEntry,
    ),
    ApiError,
> {
    let id = DocId::new(&*key.0, &*key.1);
    let found = read_store(state, "reading a history point", move |store| {
        store.history_point(&id, point)
    })
    .await?
    .ok_or(ApiError::NotFound("history point"))?;
    let doc = Doc::new();
    {
        let update = Update::decode_v1(&found.state).map_err(|_| ApiError::Unavailable)?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(|_| ApiError::Unavailable)?;
    }
    let (title, html) = chorus_core::render::doc_html(&doc);
    let json = chorus_core::render::doc_json(&doc);
    let html = state.documents.whitelist_for(&key.0).clean_html(&html);
    Ok((title, html, json, found.entry))
}

/// `GET /v1/apps/{app}/docs/{doc}/history/{point}?format=html|json`
pub async fn history_point(
    State(state): State<AppState>,
    Path((app, doc, point)): Path<(String, String, u64)>,
    Query(q): Query<DraftQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    let (title, html, mut json, entry) = point_content(&state, &key, point).await?;
    Ok(match q.format.as_deref().unwrap_or("json") {
        "json" => {
            json["point"] = entry.point.into();
            json["at"] = entry.at_ms.into();
            json["kind"] = entry.kind.into();
            json["etag"] = entry.etag.into();
            Json(json).into_response()
        }
        "html" => html_response(&title, html),
        _ => return Err(ApiError::BadRequest("format must be json or html")),
    })
}

/// Body of `POST …/restore`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    point: u64,
}

/// `POST /v1/apps/{app}/docs/{doc}/restore` with `{point}`: bring a history point's
/// content back as an external change (history itself is never rewritten; the restore
/// adds a point of its own).
pub async fn restore(
    State(state): State<AppState>,
    Path((app, doc)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    let body: RestoreBody = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("the body must be JSON {point} with a point number"))?;
    let (title, html, _, _) = point_content(&state, &key, body.point).await?;
    let change = HostChange {
        title: Some(title),
        html: Some(html),
        base: None,
        restoring: Some(body.point),
    };
    let outcome = state.documents.external_change(&key, change).await?;
    Ok(change_response(outcome))
}

/// `GET /v1/apps/{app}/docs/{doc}/sessions`: who is connected (none if the document is
/// not loaded).
pub async fn sessions(
    State(state): State<AppState>,
    Path((app, doc)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    let list = match state.documents.live_handle(&key) {
        None => Vec::new(),
        Some(handle) => {
            let (reply, answer) = oneshot::channel();
            match handle.send(DocCommand::Sessions { reply }).await {
                Ok(()) => answer.await.unwrap_or_default(),
                // The actor stopped in between: nobody is connected.
                Err(_) => Vec::new(),
            }
        }
    };
    let sessions: Vec<serde_json::Value> = list
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id.to_string(),
                "user": s.user,
                "name": s.name,
                "mode": s.mode.as_str(),
                "waiting": s.waiting,
                "since": s.since_ms,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "sessions": sessions })).into_response())
}

/// Ask the live document of `key` something about one session; 404 if the document
/// is not loaded or the session is not connected.
async fn session_command(
    state: &AppState,
    key: &DocKey,
    make: impl FnOnce(oneshot::Sender<bool>) -> DocCommand,
) -> Result<Response, ApiError> {
    let handle = state
        .documents
        .live_handle(key)
        .ok_or(ApiError::NotFound("session"))?;
    let (reply, answer) = oneshot::channel();
    handle
        .send(make(reply))
        .await
        .map_err(|_| ApiError::NotFound("session"))?;
    if answer.await.unwrap_or(false) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("session"))
    }
}

fn session_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::BadRequest("a session id is a number from the sessions list"))
}

/// Path of the session routes: (app, doc, session).
type SessionPath = Path<(String, String, String)>;

/// `POST /v1/apps/{app}/docs/{doc}/sessions/{session}/downgrade`: make one session
/// view-only (the others are not touched).
pub async fn downgrade_session(
    State(state): State<AppState>,
    Path((app, doc, session)): SessionPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    let session = session_id(&session)?;
    session_command(&state, &key, |reply| DocCommand::Downgrade {
        session,
        reply,
    })
    .await
}

/// `DELETE /v1/apps/{app}/docs/{doc}/sessions/{session}`: end one session (its socket
/// closes with 4403 `session-ended`).
pub async fn end_session(
    State(state): State<AppState>,
    Path((app, doc, session)): SessionPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = host_doc(&state, &app, &doc, &headers)?;
    let session = session_id(&session)?;
    session_command(&state, &key, |reply| DocCommand::EndSession {
        session,
        reply,
    })
    .await
}

/// `POST /v1/admin/apps/{app}/enable` (admin token from the config).
pub async fn enable_app(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_app_enabled(&state, &app, true, &headers).await
}

/// `POST /v1/admin/apps/{app}/disable`: refuse the app's new sessions and host calls
/// (4403 / 403 `app-disabled`) and close its open sessions with 4403.
pub async fn disable_app(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_app_enabled(&state, &app, false, &headers).await
}

async fn set_app_enabled(
    state: &AppState,
    app: &str,
    enabled: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let Some(expected) = state.config.admin_token.as_deref() else {
        return Err(ApiError::NotFound(
            "admin API (set admin_token to turn it on)",
        ));
    };
    let given = bearer(headers)?;
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::Auth(AuthError::BadSignature));
    }
    let entry = state.apps.get(app).ok_or(ApiError::NotFound("app"))?;
    entry.set_enabled(enabled);
    tracing::info!(app = %app, enabled, "app switched by the admin API");
    if !enabled {
        state.documents.close_app(app).await;
    }
    Ok(Json(serde_json::json!({ "id": app, "enabled": enabled })).into_response())
}

/// Compare secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
