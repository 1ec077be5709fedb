//! Host REST API: read drafts (`GET …/docs/{doc}/draft`, `GET …/docs`), push external
//! changes (`PUT …/content`), publish with conflict abort, history and restore.
//! Authenticated with host tokens (`Authorization: Bearer …`, `scope: "host"`).
//!
//! Handlers are thin: they start from typed values ([`extract`]: the authenticated
//! document or app, the parsed query, path and body), ask the document's actor or the
//! store, and answer a typed body ([`types`]). Every error, axum's own rejections
//! included, is JSON `{code, message}` via [`ApiError`].

mod error;
mod extract;
mod types;

pub use error::{method_not_allowed, retry_after, ApiError};
pub(crate) use extract::{authorize_host, ApiPath, ApiQuery, Expected, VerifiedHost};
pub use types::ErrorBody;

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_docs::{
    ChangeOutcome, DocCommand, DocKey, DraftContent, HostAction, HostChange, Restoring,
};
use chorus_store::DocId;
use extract::{Admin, ApiJson, HostApp, HostDoc, IfMatch, IfNoneMatch, OptionalJson};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::oneshot;
use types::{
    AppSwitch, ChangeResult, ConflictPolicy, ContentBody, DeadLetterList, DeleteResult,
    DiscardBody, DocList, DocSummary, DraftJson, DraftQuery, EventPath, HistoryList, PointFormat,
    PointJson, PointPath, PointQuery, PublishBody, PublishQuery, PublishResult, RestoreBody,
    SessionList, SessionPath,
};
use yrs::Doc;

/// `GET /v1/apps/{app}/docs/{doc}/draft?format=json|html|yjs`
pub async fn get_draft(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    ApiQuery(q): ApiQuery<DraftQuery>,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let format = q.format;
    let draft = state
        .documents
        .ask(&key, |reply| DocCommand::Read { format, reply })
        .await
        .and_then(|read| read)
        .map_err(|e| {
            tracing::warn!(doc = %key.doc, error = %e, "draft read failed");
            ApiError::from(e)
        })?;
    if draft.evicted_at_ms > 0 {
        return Err(ApiError::Evicted(draft.evicted_at_ms));
    }
    if !draft.exists {
        return Err(ApiError::NotFound("document"));
    }
    let etag = HeaderValue::from_str(&draft.etag).map_err(|_| ApiError::Unavailable)?;
    if if_none_match.matches(&etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let mut response = match draft.content {
        DraftContent::Json(document) => Json(DraftJson {
            document,
            etag: draft.etag,
            updated_at: draft.updated_at_ms,
        })
        .into_response(),
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
    HostApp { app }: HostApp,
) -> Result<Json<DocList>, ApiError> {
    let listed = read_store(&state, "listing documents", move |store| store.list(&app)).await?;
    let docs = listed
        .into_iter()
        .map(|(id, m)| DocSummary {
            id,
            created_at: m.created_at_ms,
            updated_at: m.updated_at_ms,
            contributors: m.contributors,
            size_bytes: m.size_bytes,
            update_count: m.update_count,
            evicted_at: (m.evicted_at_ms > 0).then_some(m.evicted_at_ms),
        })
        .collect();
    Ok(Json(DocList { docs }))
}

/// Dead letters listed at most per call (the oldest; acknowledge them to see more).
const DEAD_LETTERS_LISTED: usize = 1000;

/// `GET /v1/apps/{app}/webhooks/dead-letters`: the app's webhook events given up on
/// (too old, no callback URL any more, unreadable), oldest first, until acknowledged.
pub async fn dead_letters(
    State(state): State<AppState>,
    HostApp { app }: HostApp,
) -> Result<Json<DeadLetterList>, ApiError> {
    let hooks = state.documents.hooks().clone();
    let events = on_blocking_pool("reading the dead letters", move || {
        hooks.dead_letters(&app, DEAD_LETTERS_LISTED)
    })
    .await?;
    Ok(Json(DeadLetterList {
        events: events.into_iter().map(Into::into).collect(),
    }))
}

/// `DELETE /v1/apps/{app}/webhooks/dead-letters/{event}`: the host took it; 404 if the
/// app has no such dead letter.
pub async fn ack_dead_letter(
    State(state): State<AppState>,
    HostApp { app }: HostApp,
    ApiPath(EventPath { event }): ApiPath<EventPath>,
) -> Result<Response, ApiError> {
    let hooks = state.documents.hooks().clone();
    let taken = on_blocking_pool("acknowledging a dead letter", move || {
        hooks.ack_dead_letter(&app, &event)
    })
    .await?;
    if taken {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("dead letter"))
    }
}

/// What `X-Chorus-Title` percent-encodes: everything but ASCII letters, digits,
/// `-_.~` (RFC 3986 unreserved) and the space (header values must be visible ASCII;
/// spaces are kept so a plain title stays readable).
const TITLE_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b' ');

/// The title as `X-Chorus-Title` carries it.
fn encode_title(title: &str) -> String {
    percent_encoding::utf8_percent_encode(title, TITLE_ENCODE).to_string()
}

/// `PUT /v1/apps/{app}/docs/{doc}/content` with `{title?, html?, baseEtag?}`: an
/// external change, applied to the live draft as a minimal diff.
pub async fn put_content(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    ApiJson(body): ApiJson<ContentBody>,
) -> Result<Response, ApiError> {
    if body.title.is_none() && body.html.is_none() {
        return Err(ApiError::bad_request("give a title, an html body, or both"));
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
    let etag = outcome.etag.clone();
    json_with_etag(
        ChangeResult {
            etag: outcome.etag,
            changed: outcome.fields,
        },
        &etag,
    )
}

/// `body` as JSON with an `ETag` header.
fn json_with_etag(body: impl Serialize, etag: &str) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Body HTML, with the title percent-encoded in `X-Chorus-Title`.
fn html_response(title: &str, html: String) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    if let Ok(t) = HeaderValue::from_str(&encode_title(title)) {
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
    on_blocking_pool(what, move || call(&*store)).await
}

/// Run a call that reaches the store on a blocking thread; a failure is logged
/// (with `what`) and answered as 503 with the store's condition.
async fn on_blocking_pool<T: Send + 'static>(
    what: &'static str,
    call: impl FnOnce() -> Result<T, chorus_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(call)
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
    let id = DocId::new(&*key.app, &*key.doc);
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

/// `POST /v1/apps/{app}/docs/{doc}/publish?conflictPolicy=abort` with `If-Match`.
pub async fn publish(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    // `abort` is the only policy (the pattern is irrefutable): publish answers 409
    // and publishes nothing when the draft moved on.
    ApiQuery(PublishQuery {
        conflict_policy: ConflictPolicy::Abort,
    }): ApiQuery<PublishQuery>,
    IfMatch(if_match): IfMatch,
    OptionalJson(PublishBody { by }): OptionalJson<PublishBody>,
) -> Result<Response, ApiError> {
    let by = by.map(Into::into).unwrap_or_default();
    let published = state.documents.publish(&key, if_match, by).await?;
    let etag = published.etag.clone();
    Ok(json_with_etag(
        PublishResult {
            title: published.title,
            html: published.html,
            etag: published.etag,
            published_at: published.published_at_ms,
        },
        &etag,
    ))
}

/// `DELETE /v1/apps/{app}/docs/{doc}`: the draft, its history and log go; its
/// sessions are closed with 4404 `document-deleted`; the same id starts empty
/// afterwards. 404 if it was never stored.
pub async fn delete_doc(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
) -> Result<Json<DeleteResult>, ApiError> {
    let deleted = state.documents.delete(&key).await?;
    Ok(Json(DeleteResult {
        closed_sessions: deleted.closed_sessions,
    }))
}

/// `GET /v1/apps/{app}/docs/{doc}/history`: every history point, oldest first.
pub async fn history(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
) -> Result<Json<HistoryList>, ApiError> {
    let id = DocId::new(&*key.app, &*key.doc);
    let entries = read_store(&state, "reading history", move |store| store.history(&id)).await?;
    Ok(Json(HistoryList {
        points: entries.into_iter().map(Into::into).collect(),
    }))
}

/// A history point: its stored state and what it is.
async fn read_point(
    state: &AppState,
    key: &DocKey,
    point: u64,
) -> Result<(Vec<u8>, chorus_store::HistoryEntry), ApiError> {
    let id = DocId::new(&*key.app, &*key.doc);
    let found = read_store(state, "reading a history point", move |store| {
        store.history_point(&id, point)
    })
    .await?
    .ok_or(ApiError::NotFound("history point"))?;
    Ok((found.state, found.entry))
}

/// Rebuild a stored state as a document checked against the app's whitelist as it is
/// today (a point may predate the policy or the guard's rules: it renders and
/// restores only what today's policy allows), and render it with `render`, on the
/// blocking pool: a point is a whole document, and checking and rendering it must not
/// hold a runtime worker.
async fn render_point<T: Send + 'static>(
    stored: Vec<u8>,
    whitelist: chorus_core::Whitelist,
    render: impl FnOnce(&Doc) -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let doc =
            chorus_core::checked_state(&whitelist, &stored).map_err(|_| ApiError::Unavailable)?;
        Ok(render(&doc))
    })
    .await
    .map_err(|_| ApiError::Unavailable)?
}

/// `GET /v1/apps/{app}/docs/{doc}/history/{point}?format=html|json`
pub async fn history_point(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    ApiPath(PointPath { point }): ApiPath<PointPath>,
    ApiQuery(q): ApiQuery<PointQuery>,
) -> Result<Response, ApiError> {
    let (stored, entry) = read_point(&state, &key, point).await?;
    Ok(match q.format {
        PointFormat::Json => {
            let whitelist = state.documents.whitelist_for(&key.app).clone();
            let profile = whitelist.profile.clone();
            let document = render_point(stored, whitelist, move |doc| {
                chorus_core::render::doc_json_as(doc, &profile)
            })
            .await?;
            Json(PointJson {
                document,
                point: entry.point,
                at: entry.at_ms,
                kind: entry.kind,
                etag: entry.etag,
            })
            .into_response()
        }
        PointFormat::Html => {
            let whitelist = state.documents.whitelist_for(&key.app).clone();
            let check = whitelist.clone();
            let (title, html) = render_point(stored, check, move |doc| {
                let (title, html) = chorus_core::render::doc_html_as(doc, &whitelist.profile);
                (title, whitelist.clean_html(&html))
            })
            .await?;
            html_response(&title, html)
        }
    })
}

/// `POST /v1/apps/{app}/docs/{doc}/restore` with `{point, by?}`: bring a history
/// point's content back as an external change (history itself is never rewritten; the
/// restore adds a point of its own).
pub async fn restore(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    ApiJson(RestoreBody { point, by }): ApiJson<RestoreBody>,
) -> Result<Response, ApiError> {
    let restoring = Restoring {
        point,
        action: HostAction::Restored,
        by: by.map(Into::into).unwrap_or_default(),
    };
    bring_back(&state, &key, restoring).await
}

/// `POST /v1/apps/{app}/docs/{doc}/discard` with `{point?, by?}`: the draft returns
/// to its last published version (or the point given), as a restore recorded as a
/// `discard` point; editors are told who discarded the changes.
pub async fn discard(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    OptionalJson(DiscardBody { point, by }): OptionalJson<DiscardBody>,
) -> Result<Response, ApiError> {
    let point = match point {
        Some(point) => point,
        None => last_published_point(&state, &key).await?,
    };
    let restoring = Restoring {
        point,
        action: HostAction::Discarded,
        by: by.map(Into::into).unwrap_or_default(),
    };
    bring_back(&state, &key, restoring).await
}

/// The history point of the draft's last publish; 404 if it was never published.
async fn last_published_point(state: &AppState, key: &DocKey) -> Result<u64, ApiError> {
    let id = DocId::new(&*key.app, &*key.doc);
    let entries = read_store(state, "reading history", move |store| store.history(&id)).await?;
    entries
        .iter()
        .rev()
        .find(|e| e.kind == "publish")
        .map(|e| e.point)
        .ok_or(ApiError::NotFound("published version"))
}

/// Bring a history point's content back as an external change.
async fn bring_back(
    state: &AppState,
    key: &DocKey,
    restoring: Restoring,
) -> Result<Response, ApiError> {
    let (stored, _) = read_point(state, key, restoring.point).await?;
    // The external change cleans the HTML with the app's whitelist as it imports it.
    let whitelist = state.documents.whitelist_for(&key.app).clone();
    let profile = whitelist.profile.clone();
    let (title, html) = render_point(stored, whitelist, move |doc| {
        chorus_core::render::doc_html_as(doc, &profile)
    })
    .await?;
    let change = HostChange {
        title: Some(title),
        html: Some(html),
        base: None,
        restoring: Some(restoring),
    };
    let outcome = state.documents.external_change(key, change).await?;
    Ok(change_response(outcome))
}

/// `GET /v1/apps/{app}/docs/{doc}/sessions`: who is connected (none if the document is
/// not loaded).
pub async fn sessions(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
) -> Json<SessionList> {
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
    Json(SessionList {
        sessions: list.into_iter().map(Into::into).collect(),
    })
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

/// `POST /v1/apps/{app}/docs/{doc}/sessions/{session}/downgrade`: make one session
/// view-only (the others are not touched).
pub async fn downgrade_session(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    ApiPath(SessionPath { session }): ApiPath<SessionPath>,
) -> Result<Response, ApiError> {
    session_command(&state, &key, |reply| DocCommand::Downgrade {
        session: session.0,
        reply,
    })
    .await
}

/// `DELETE /v1/apps/{app}/docs/{doc}/sessions/{session}`: end one session (its socket
/// closes with 4403 `session-ended`).
pub async fn end_session(
    State(state): State<AppState>,
    HostDoc { key }: HostDoc,
    ApiPath(SessionPath { session }): ApiPath<SessionPath>,
) -> Result<Response, ApiError> {
    session_command(&state, &key, |reply| DocCommand::EndSession {
        session: session.0,
        reply,
    })
    .await
}

/// `POST /v1/admin/apps/{app}/enable` (admin token from the config).
pub async fn enable_app(
    State(state): State<AppState>,
    Admin { app }: Admin,
) -> Result<Json<AppSwitch>, ApiError> {
    set_app_enabled(&state, app, true).await
}

/// `POST /v1/admin/apps/{app}/disable`: refuse the app's new sessions and host calls
/// (4403 / 403 `app-disabled`) and close its open sessions with 4403.
pub async fn disable_app(
    State(state): State<AppState>,
    Admin { app }: Admin,
) -> Result<Json<AppSwitch>, ApiError> {
    set_app_enabled(&state, app, false).await
}

async fn set_app_enabled(
    state: &AppState,
    app: String,
    enabled: bool,
) -> Result<Json<AppSwitch>, ApiError> {
    let entry = state.apps.get(&app).ok_or(ApiError::NotFound("app"))?;
    // Kept first: a switch the store lost would be undone by the next restart, or
    // never seen by a node that joins later.
    let store = state.documents.store().clone();
    let kept = app.clone();
    tokio::task::spawn_blocking(move || store.set_app_switch(&kept, enabled))
        .await
        .map_err(|_| ApiError::Unavailable)?
        .map_err(|e| ApiError::from(chorus_docs::DocError::Store(std::sync::Arc::new(e))))?;
    entry.set_enabled(enabled);
    tracing::info!(app = %app, enabled, "app switched by the admin API");
    state.documents.announce_app_state(&app, enabled);
    if !enabled {
        state.documents.close_app(&app).await;
    }
    Ok(Json(AppSwitch { id: app, enabled }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written encoder `encode_title` replaced, kept as the reference.
    fn reference(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b' ') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    #[test]
    fn titles_are_encoded_as_before() {
        let all_ascii: String = (0u8..128).map(char::from).collect();
        for title in [
            "",
            "Plain title 42",
            "a-b_c.d~e f",
            "Crème brûlée: 100% \"good\" / bad?",
            "日本語 ✓ 🎉",
            "tab\tnew\nline\r%",
            &all_ascii,
        ] {
            assert_eq!(encode_title(title), reference(title), "{title:?}");
        }
    }
}
