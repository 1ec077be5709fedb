//! `/v1/http/{app}/{content}`: the websocket protocol for networks whose proxies
//! refuse websocket upgrades (`proto/PROTOCOL.md`, "HTTP transport").
//!
//! A client opens a session with a `POST` carrying the token the websocket would
//! (the same checks, caps and admission: `join.rs`), then reads the server's
//! frames from a stream of server-sent events (`GET …/{session}`; with `poll=1`,
//! one batch per request, for proxies that hold streamed responses back) and
//! sends its own in `POST …/{session}?seq=n`. Behind the routes the session is
//! the ordinary one (`session.rs`) over an [`HttpTransport`]: it joins the
//! document's actor like any websocket member, under the same rate limits,
//! whitelist and close codes (a close is the stream's last event).
//!
//! Delivery is exactly once in both directions across dropped requests: every
//! frame down has an event id and stays in the session's outbox until the client
//! acknowledges it (`after` on its next stream or poll, `ack` on a POST), so a
//! stream that drops resumes where the client stopped; every frame up has a
//! sequence number, so a POST retried after a lost answer is not applied twice,
//! and one that skips ahead is refused (409) rather than applied out of order.
//!
//! Owns: the routes, their errors, the session table ([`HttpSessions`]) and the
//! stream's wire format (`events`). Does not touch: tokens, limits or documents
//! (`join`, `limits`, `chorus-docs`), nor the session loop itself.

mod error;
mod events;
mod outbox;
mod session;
mod stream;

use error::{no_store, HttpError};
pub(crate) use session::HttpSessions;
use stream::StreamReader;

use crate::api::{ApiPath, ApiQuery, Expected};
use crate::close::CloseReason;
use crate::framing::{Framing, HocuspocusFraming};
use crate::join::{admit, authenticate, check_refusals, refused, ClientAddress};
use crate::session::{run, Inbound};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Extension;
use axum::Json;
use bytes::Bytes;
use chorus_docs::DocKey;
use chorus_protocol::{DecodeError, Reader};
use http_body_util::BodyExt;
use outbox::ResumeError;
use serde::{Deserialize, Serialize};
use session::{HttpSession, PostError};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::info;

/// How long a POST may wait for the session to take its frames (it waits while
/// the session is over its rate limits) before it is answered 503.
const POST_WAIT: Duration = Duration::from_secs(30);
/// Bytes a POST body may hold beyond `max_message_size` (the frames' lengths).
const POST_OVERHEAD: usize = 1024;

/// Path of the opening `POST`.
#[derive(Deserialize)]
pub(crate) struct OpenPath {
    app: String,
    content: String,
}

impl Expected for OpenPath {
    const EXPECTED: &'static str = "the app and content ids must be UTF-8";
}

/// Path of a session's routes.
#[derive(Deserialize)]
pub(crate) struct SessionPath {
    app: String,
    content: String,
    #[serde(rename = "session")]
    id: String,
}

impl Expected for SessionPath {
    const EXPECTED: &'static str = "the app, content and session ids must be UTF-8";
}

impl Expected for OpenQuery {
    const EXPECTED: &'static str =
        "token, chorus, fallback and framing are each given at most once";
}

impl Expected for StreamQuery {
    const EXPECTED: &'static str = "after and poll are each given at most once";
}

impl Expected for PostQuery {
    const EXPECTED: &'static str = "seq and ack are each given at most once";
}

/// Query of the opening `POST`.
#[derive(Deserialize, Default)]
pub(crate) struct OpenQuery {
    /// The session token, when not in `Authorization: Bearer`.
    token: Option<String>,
    /// `1`: extension messages, as the websocket's `chorus=1`.
    chorus: Option<String>,
    /// Why the client is here rather than on a websocket (metrics only).
    fallback: Option<String>,
    /// `hocuspocus`: frames in `@hocuspocus/provider`'s framing (behind the
    /// content id, `SyncStatus` for "saved"), as on `/v1/hocuspocus/{app}`.
    framing: Option<String>,
}

/// The answer to an opening `POST`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Opened {
    /// The session's id: the last segment of its stream and POST URLs. Whoever
    /// holds it is in the session, so it travels like the token.
    session: String,
    /// Seconds between heartbeats on an idle stream.
    heartbeat_secs: u64,
    /// A session nobody streams, polls or posts to for this long ends.
    session_timeout_secs: u64,
    /// The longest a long-poll waits before answering empty.
    poll_wait_secs: u64,
    /// The largest frame a POST may carry.
    max_message_size: usize,
}

/// `POST /v1/http/{app}/{content}`: check the token and admit the join as the
/// websocket route does, then start the session.
pub(crate) async fn open(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<HttpSessions>>,
    ApiPath(OpenPath { app, content }): ApiPath<OpenPath>,
    ApiQuery(query): ApiQuery<OpenQuery>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
) -> Response {
    if !state.config.http_transport.enabled {
        return HttpError::Disabled.into_response();
    }
    if let Some(throttled) = check_refusals(&state, address) {
        info!(app = %app, doc = %content, "HTTP session refused: too many refused joins from its address");
        return throttled;
    }
    let token = bearer(&headers).or(query.token.as_deref());
    let hocuspocus = match query.framing.as_deref() {
        None | Some("plain") => false,
        Some("hocuspocus") => true,
        Some(_) => {
            return HttpError::BadRequest("framing must be plain or hocuspocus").into_response()
        }
    };
    // A Hocuspocus provider's acknowledgements are extension messages turned
    // into `SyncStatus` by its framing.
    let extensions = hocuspocus || query.chorus.as_deref() == Some("1");
    let session = match authenticate(&state, &app, &content, token, extensions) {
        Ok(session) => session,
        Err(reason) => {
            refused(&state, &app, &content, address, &reason);
            state.metrics.closed(reason.code(), reason.client_reason());
            return HttpError::Refused(reason).into_response();
        }
    };
    let slot = match admit(&state, &app, &content, address).await {
        Ok(slot) => slot,
        Err(full) => return full,
    };
    let (framing, first) = if hocuspocus {
        let framing = Framing::Hocuspocus(Box::new(HocuspocusFraming::new(
            content.clone(),
            Vec::new(),
        )));
        let authenticated =
            chorus_protocol::hocuspocus::authenticated(&content, !session.can_edit());
        (framing, Some(authenticated))
    } else {
        (Framing::Plain, None)
    };
    let key = DocKey::new(app, content);
    let (shared, transport) = sessions.open(key.clone(), framing, first, &state);
    state.metrics.http.opened(query.fallback.as_deref());
    let guard = state.tracker.token();
    tokio::spawn(run(
        transport,
        state.clone(),
        key,
        session,
        (guard, Some(slot)),
    ));
    let config = &state.config.http_transport;
    let mut response = (
        StatusCode::CREATED,
        Json(Opened {
            session: shared.id().to_owned(),
            heartbeat_secs: config.heartbeat_secs,
            session_timeout_secs: config.session_timeout_secs,
            poll_wait_secs: config.poll_wait_secs,
            max_message_size: state.config.max_message_size,
        }),
    )
        .into_response();
    no_store(&mut response);
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The routes of the transport as a page of another origin (the host's) calls
/// them: any origin may, as any may open a websocket; what lets a request in is
/// the token or the session id it carries, never a cookie (so none is allowed).
pub(crate) fn cors(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route
        .options(preflight)
        .layer(axum::middleware::map_response(allow_any_origin))
}

async fn allow_any_origin(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
    response
}

/// The answer to a browser's preflight: the methods and headers the transport uses.
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, DELETE, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, last-event-id",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// Cluster mode: a request for a session another node holds is carried there over
/// the bus (`forward::carry`), so any node behind a round-robin load balancer
/// serves every session. A stream cannot travel as one answer: carried, it is a
/// long-poll (the client reads the complete answer and asks again, landing
/// wherever the balancer sends it). A session whose node is down is 404
/// `unknown-session` at once: the client opens a new one.
pub(crate) async fn to_session_node(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(here) = state.documents.node_id() else {
        return next.run(req).await;
    };
    if crate::forward::is_carried(&req) {
        return next.run(req).await;
    }
    let node = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .and_then(session::node_of);
    let Some(node) = node.filter(|node| node != here) else {
        return next.run(req).await;
    };
    if !state.documents.node_alive(&node) {
        // Outside the routes' own CORS layer: add it, or a browser sees no answer.
        return allow_any_origin(HttpError::UnknownSession.into_response()).await;
    }
    state.metrics.http.carried();
    let mut req = req;
    if req.method() == axum::http::Method::GET {
        let uri = req.uri();
        let query = uri.query().unwrap_or("");
        if !query.split('&').any(|p| p == "poll=1") {
            let path_and_query = if query.is_empty() {
                format!("{}?poll=1", uri.path())
            } else {
                format!("{}?{query}&poll=1", uri.path())
            };
            if let Ok(rewritten) = path_and_query.parse() {
                *req.uri_mut() = rewritten;
            }
        }
    }
    crate::forward::carry(&state, &node, req, None).await
}

/// The session `id` of `(app, content)`, if the transport is on and it exists.
fn find(
    state: &AppState,
    sessions: &HttpSessions,
    app: String,
    content: String,
    id: &str,
) -> Result<Arc<HttpSession>, HttpError> {
    if !state.config.http_transport.enabled {
        return Err(HttpError::Disabled);
    }
    sessions
        .get(id, &DocKey::new(app, content))
        .ok_or(HttpError::UnknownSession)
}

/// Query of a stream or poll.
#[derive(Deserialize, Default)]
pub(crate) struct StreamQuery {
    /// The last event id the client has (default: `Last-Event-ID`, else 0).
    after: Option<String>,
    /// `1`: answer with what there is (waiting up to `poll_wait_secs` for
    /// something), then end: long-polling.
    poll: Option<String>,
}

/// `GET /v1/http/{app}/{content}/{session}`: the server's frames after `after`,
/// as server-sent events; streaming, or one batch with `poll=1`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<HttpSessions>>,
    ApiPath(SessionPath { app, content, id }): ApiPath<SessionPath>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let session = find(&state, &sessions, app, content, &id)?;
    let after = query
        .after
        .as_deref()
        .or_else(|| headers.get("last-event-id")?.to_str().ok())
        .map(|v| v.trim().parse::<u64>())
        .transpose()
        .map_err(|_| HttpError::BadEventId)?
        .unwrap_or(0);
    let poll = query.poll.as_deref() == Some("1");
    let generation = match session.attach(after) {
        Ok(generation) => generation,
        Err(ResumeError::Gap) => {
            state.metrics.http.resume_gap();
            session.abandon();
            return Err(HttpError::ResumeGap);
        }
        Err(ResumeError::Future) => return Err(HttpError::BadEventId),
    };
    state.metrics.http.stream(poll, after > 0);
    let config = &state.config.http_transport;
    let heartbeat = Duration::from_secs(config.heartbeat_secs);
    let reader = StreamReader {
        wake: session.subscribe(),
        session,
        generation,
        cursor: after,
        heartbeat: tokio::time::interval_at(Instant::now() + heartbeat, heartbeat),
        metrics: state.metrics.clone(),
        poll_until: poll.then(|| Instant::now() + Duration::from_secs(config.poll_wait_secs)),
        shutdown: Box::pin(state.shutdown.clone().cancelled_owned()),
        stop_at: None,
        greeting: (!poll).then(|| events::ready(&events::ResumeInfo { after })),
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(
        reader,
        |mut reader| async move {
            let chunk = reader.next_chunk().await?;
            Some((Ok::<Bytes, Infallible>(chunk), reader))
        },
    ));
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response();
    no_store(&mut response);
    Ok(response)
}

/// Query of a client's `POST`.
#[derive(Deserialize, Default)]
pub(crate) struct PostQuery {
    /// The sequence number of the body's first frame (the first frame of the
    /// session is 0).
    seq: Option<String>,
    /// The last event id the client has read (frames up to it are dropped).
    ack: Option<String>,
}

/// The answer to a client's `POST`.
#[derive(Serialize)]
pub(crate) struct Posted {
    /// The sequence number the session expects next.
    next: u64,
}

/// `POST /v1/http/{app}/{content}/{session}?seq=n`: the client's frames, each a
/// lib0 length-prefixed byte array (`writeVarUint8Array`), in order.
pub(crate) async fn post(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<HttpSessions>>,
    ApiPath(SessionPath { app, content, id }): ApiPath<SessionPath>,
    ApiQuery(query): ApiQuery<PostQuery>,
    body: Body,
) -> Result<Json<Posted>, HttpError> {
    let session = find(&state, &sessions, app, content, &id)?;
    let number = |v: &Option<String>, what| {
        v.as_deref()
            .map(|v| v.parse::<u64>().map_err(|_| HttpError::BadRequest(what)))
            .transpose()
    };
    let ack = number(&query.ack, "ack must be an event id")?;
    let seq = number(&query.seq, "seq must be a sequence number")?;
    let limit = state.config.max_message_size + POST_OVERHEAD;
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            session
                .end(Inbound::Refused(CloseReason::MessageTooLarge))
                .await;
            return Err(HttpError::TooLarge);
        }
        // The client went away mid-body: nothing was delivered.
        Err(_) => return Err(HttpError::BadRequest("the body could not be read")),
    };
    if let Some(ack) = ack {
        session.ack(ack);
    }
    let frames = match split_frames(&body, state.config.max_message_size) {
        Ok(frames) => frames,
        Err(refusal) => {
            let reason = match &refusal {
                HttpError::TooLarge => CloseReason::MessageTooLarge,
                _ => CloseReason::Decode(DecodeError::TruncatedPayload),
            };
            session.end(Inbound::Refused(reason)).await;
            return Err(refusal);
        }
    };
    if frames.is_empty() {
        return Ok(Json(Posted {
            next: session.expected().await,
        }));
    }
    let seq = seq.ok_or(HttpError::BadRequest("seq is required with frames"))?;
    state.metrics.http.posted(frames.len());
    match tokio::time::timeout(POST_WAIT, session.deliver(seq, frames)).await {
        Ok(Ok(next)) => Ok(Json(Posted { next })),
        Ok(Err(PostError::OutOfOrder { expected })) => Err(HttpError::OutOfOrder { expected }),
        Ok(Err(PostError::Ended)) => Err(HttpError::UnknownSession),
        Err(_) => Err(HttpError::Busy),
    }
}

/// The frames of a POST body: lib0 length-prefixed byte arrays, back to back.
fn split_frames(body: &Bytes, max_message_size: usize) -> Result<Vec<Bytes>, HttpError> {
    let mut reader = Reader::new(body);
    let mut frames = Vec::new();
    while reader.remaining() > 0 {
        let frame = reader.read_var_bytes().map_err(|_| HttpError::Malformed)?;
        if frame.len() > max_message_size {
            return Err(HttpError::TooLarge);
        }
        frames.push(frame);
    }
    Ok(frames)
}

/// `DELETE /v1/http/{app}/{content}/{session}`: the client leaves.
pub(crate) async fn leave(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<HttpSessions>>,
    ApiPath(SessionPath { app, content, id }): ApiPath<SessionPath>,
) -> Result<StatusCode, HttpError> {
    let session = find(&state, &sessions, app, content, &id)?;
    session.end(Inbound::Leave).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_split_into_its_frames_and_refused_whole_when_bad() {
        let body = Bytes::from_static(&[2, 0, 1, 0, 3, 9, 9, 9]);
        let frames = split_frames(&body, 8).unwrap();
        assert_eq!(frames, [&[0u8, 1][..], &[][..], &[9, 9, 9][..]]);
        // A length past the end of the body.
        let cut = Bytes::from_static(&[5, 1, 2]);
        assert!(matches!(split_frames(&cut, 8), Err(HttpError::Malformed)));
        // A frame over the limit.
        assert!(matches!(split_frames(&body, 2), Err(HttpError::TooLarge)));
    }
}
