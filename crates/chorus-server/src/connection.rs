//! One task per websocket: authenticate, join the document, then loop — frames
//! from the socket are size-checked, decoded and forwarded to the document actor;
//! frames queued for this connection are written out in batches (feed several,
//! flush once). Closing is driven by [`ConnControl`] (the actor, a slow queue) or
//! by server shutdown, and always carries a documented close code.

use crate::close::{CloseReason, Closing};
use crate::hocuspocus::{Framing, Incoming};
use crate::ids::is_valid_content_id;
use crate::limits::{Admission, ConnectionLimiter, ConnectionSlot, MessageClass};
use crate::state::{unix_now, AppState};
use crate::upgrade::{linger, Socket, WsUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chorus_core::{ConnId, Session};
use chorus_docs::{
    outbox, ConnControl, Disconnect, DocCommand, DocHandle, DocKey, OutboxReceiver, QueuePeer,
};
use chorus_protocol::{frame_kind, ChorusMessage, Message};
use futures_util::future::Either;
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{debug, info};

/// The subprotocol a client offers to receive Chorus extension messages.
pub const EXTENSION_PROTOCOL: &str = "chorus.v1";
/// The subprotocol a stock client offers beside a token it sends as a subprotocol
/// (keeping it out of the URL) when it wants no extension messages: a browser
/// fails a handshake whose answer selects none of the protocols it offered.
pub const TOKEN_PROTOCOL: &str = "chorus.token";
/// Frames written per flush when the outbound queue has a backlog.
const WRITE_BATCH: usize = 64;
/// Bytes a socket read asks for. tungstenite zero-fills this much of its read
/// buffer on every poll of the socket, even one that finds nothing to read, and the
/// connection loop polls the socket after every batch it writes: at the default
/// (128 KiB) that memset was a third of the server's CPU under fan-out, and made
/// every connection's buffer resident. A larger frame still arrives whole: the
/// buffer grows to the frame's announced length, filled `READ_BUFFER` bytes per
/// read call (a 1 MB step 2: ~2,000 reads, a few milliseconds). 512 rather than
/// 1024 saves ~0.6 KB per connection (idle scenario: 5.9 → 5.3 KB).
const READ_BUFFER: usize = 512;
/// Sent after `keepalive_secs` without any outbound frame: an awareness update
/// with zero entries. Stock y-websocket clients drop a connection that received
/// nothing for 30 s (websocket pings are invisible to browser code); this frame is
/// a no-op for y-protocols yet counts as a message.
pub const KEEPALIVE_FRAME: &[u8] = &[1, 1, 0];
/// A socket that accepts no bytes for this long is dropped: its peer stopped
/// reading, and the room has already let it go (its queue filled up).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket waits for the peer's close reply.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(2);
/// The least time a closing socket drains what its peer still sends (see
/// [`linger`]), even when the close reply took all of [`CLOSE_HANDSHAKE_WAIT`].
const CLOSE_LINGER_MIN: Duration = Duration::from_millis(250);
/// `Retry-After` of an upgrade refused because a connection cap is full.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The peer's address, when the server was started with it (a router driven
/// in-process, as some tests do, has none: the address cap does not apply).
pub struct ClientAddress(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// Query parameters of the websocket URL.
#[derive(Deserialize, Default)]
pub struct WsQuery {
    token: Option<String>,
    /// `chorus=1` opts in to extension messages (like offering `chorus.v1`).
    chorus: Option<String>,
}

/// `GET /v1/ws/{app}/{content}`: verify, upgrade, run.
pub async fn ws_handler(
    State(state): State<AppState>,
    Path((app, content)): Path<(String, String)>,
    Query(query): Query<WsQuery>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    upgrade: WsUpgrade,
) -> Response {
    let offered: Vec<String> = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    // The subprotocol is echoed only when offered as one (not for `?chorus=1`).
    let offers_extension_protocol = offered.iter().any(|p| p == EXTENSION_PROTOCOL);
    let extensions = query.chorus.as_deref() == Some("1") || offers_extension_protocol;
    // A token offered as a subprotocol is the one value shaped like a JWT.
    let token = query.token.or_else(|| {
        offered
            .iter()
            .find(|p| p.matches('.').count() == 2)
            .cloned()
    });
    let verdict = authenticate(&state, &app, &content, token.as_deref(), extensions);
    if let Err(reason) = &verdict {
        state.metrics.refused(reason.client_reason());
        info!(app = %app, doc = %content, reason = %reason, "connection refused");
    }
    let slot = match &verdict {
        Ok(_) => match admit(&state, &app, &content, address).await {
            Ok(slot) => Some(slot),
            Err(refused) => return refused,
        },
        Err(_) => None,
    };
    let guard = state.tracker.token();
    let config = socket_config(&state);
    let protocol = if offers_extension_protocol {
        Some(EXTENSION_PROTOCOL)
    } else {
        offered
            .iter()
            .any(|p| p == TOKEN_PROTOCOL)
            .then_some(TOKEN_PROTOCOL)
    };
    // No async block around the two paths: it would keep a copy of the socket
    // next to the one inside the chosen path's future for as long as the
    // connection lives (see `run`).
    upgrade.on_upgrade(config, protocol, move |socket| match verdict {
        Err(reason) => Either::Left(Box::pin(async move {
            let _guard = guard;
            close_socket(socket, Closing::from(&reason), &state).await
        })),
        Ok(session) => Either::Right(run(
            socket,
            state,
            (app.into(), content.into()),
            session,
            (guard, slot),
            Framing::Plain,
        )),
    })
}

/// How every websocket of the server reads: small reads, the message size limit.
pub(crate) fn socket_config(state: &AppState) -> WebSocketConfig {
    let limit = state.config.max_message_size;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// A place under the connection caps, then this join's turn under admission
/// control; or the 503 that refuses the upgrade.
///
/// A full cap refuses the upgrade itself: nothing is spent on a socket, and a
/// client (or the load balancer in front) sees an ordinary, retryable 503. Past
/// the join rate a join waits for its turn here, before the upgrade, so a waiting
/// join holds no document work.
pub(crate) async fn admit(
    state: &AppState,
    app: &str,
    content: &str,
    address: Option<IpAddr>,
) -> Result<ConnectionSlot, Response> {
    let slot = match state.limiters.open_connection(app, address) {
        Ok(slot) => slot,
        Err(full) => {
            state.metrics.refused(full.reason());
            info!(app = %app, doc = %content, reason = %full, "connection refused: a cap is full");
            return Err(refuse_full(full.reason(), FULL_RETRY_AFTER));
        }
    };
    match state.limiters.admit_join(Instant::now()) {
        Ok(wait) if wait.is_zero() => {}
        Ok(wait) => {
            state.metrics.join_waited(wait);
            tokio::time::sleep(wait).await;
        }
        Err(busy) => {
            state.metrics.refused("server-busy");
            info!(app = %app, doc = %content, reason = %busy, "connection refused: admission queue full");
            return Err(refuse_full("server-busy", busy.retry_after));
        }
    }
    Ok(slot)
}

/// HTTP 503 with `Retry-After` and the JSON error body of the host API.
fn refuse_full(code: &'static str, retry_after: Duration) -> Response {
    let body = crate::api::ErrorBody {
        code,
        message: "too many connections; retry after Retry-After seconds".into(),
        etag: None,
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, crate::api::retry_after(retry_after))],
        axum::Json(body),
    )
        .into_response()
}

pub(crate) fn authenticate(
    state: &AppState,
    app: &str,
    content: &str,
    token: Option<&str>,
    extensions: bool,
) -> Result<Arc<Session>, CloseReason> {
    if !is_valid_content_id(content) {
        return Err(CloseReason::InvalidContentId);
    }
    let token = token.ok_or(CloseReason::MissingToken)?;
    let claims = state.apps.verify_session(app, content, token, unix_now())?;
    Ok(Arc::new(Session::from_claims(&claims, extensions)))
}

/// The connection's task: join, then relay frames both ways until either side ends.
///
/// A plain `fn` returning an `async move` block rather than an `async fn`: an async
/// fn's future stores each argument twice (rustc keeps the argument slots and moves
/// them into locals; rust-lang/rust#62958), which for the 368-byte socket and the
/// rest cost ~400 bytes of every connection's task; the block uses its captures in
/// place.
/// Send `cmd` to the document's actor. If that actor has stopped since this
/// connection joined (it unloaded while the join waited in its inbox, and handed the
/// join to its successor: `Documents::hand_over`), send it to the actor now live,
/// which holds the join ahead of it.
async fn to_document(
    state: &AppState,
    key: &DocKey,
    doc: &mut DocHandle,
    cmd: DocCommand,
) -> Result<(), ()> {
    let Err(cmd) = doc.send(cmd).await else {
        return Ok(());
    };
    match state.documents.live_handle(key) {
        Some(next) if !next.is_same_actor(doc) => {
            *doc = next;
            doc.send(cmd).await.map_err(drop)
        }
        _ => Err(()),
    }
}

#[allow(clippy::manual_async_fn)] // the point: see above
pub(crate) fn run(
    mut socket: Socket,
    state: AppState,
    key: DocKey,
    session: Arc<Session>,
    held: (TaskTrackerToken, Option<ConnectionSlot>),
    mut framing: Framing,
) -> impl Future<Output = ()> + Send {
    async move {
        let _held = held;
        let conn = ConnId::fresh();
        let control = Arc::new(ConnControl::default());
        let (out_tx, mut out_rx) = outbox(state.config.outbound_queue_frames);
        let join = DocCommand::Join {
            conn,
            session: session.clone(),
            peer: QueuePeer::new(out_tx, control.clone()),
        };
        // A document actor that just stopped (unloading, or after a reset) is replaced.
        // Cold paths (joining, closing) are boxed: a connection task's future is as
        // large as its largest await point, and it lives as long as the connection.
        let mut doc = match Box::pin(state.documents.dispatch(&key, join)).await {
            Ok(doc) => doc,
            Err(_) => {
                Box::pin(close_socket(
                    socket,
                    Closing::from(&CloseReason::Document(Disconnect::DocumentReset)),
                    &state,
                ))
                .await;
                return;
            }
        };
        state.metrics.connection_opened();
        debug!(conn = conn.0, app = %key.0, doc = %key.1, user = %session.user_id, mode = session.mode.as_str(), "joined");
        // What a Hocuspocus provider sent before its token was checked, in order.
        for bytes in framing.take_pending() {
            let Ok(msg) = Message::decode(&bytes) else {
                continue;
            };
            let cmd = DocCommand::Message {
                conn,
                msg,
                received: Instant::now(),
            };
            if to_document(&state, &key, &mut doc, cmd).await.is_err() {
                break;
            }
        }

        let keepalive_every = Duration::from_secs(state.config.keepalive_secs.max(1));
        let keepalive = tokio::time::sleep(keepalive_every);
        // Created once, not per loop turn: a fresh cancellation future registers with
        // (and a dropped one leaves) its token's waiter list under a mutex, and the
        // shutdown token is shared by every connection of the process. Polled only
        // when they were woken: each poll of one takes its token's mutex.
        let mut closed = WhenWoken::new(control.closed());
        let mut shutdown = WhenWoken::new(state.shutdown.cancelled());
        tokio::pin!(keepalive);
        let mut limiter = ConnectionLimiter::new(&state.limiters.rates(&key.0), Instant::now());
        // A message over the rate limits, held (and the socket left unread) until
        // its wait is over: back-pressure on this sender only. Boxed: most
        // connections never need the timer, and the future lives as long as they do.
        let mut throttled: Option<(Message, Pin<Box<tokio::time::Sleep>>)> = None;
        let reason: Option<CloseReason> = loop {
            tokio::select! {
                biased;
                _ = &mut closed => break None,
                _ = &mut shutdown => break Some(CloseReason::Shutdown),
                frame = out_rx.recv() => {
                    let Some(frame) = frame else { break None };
                    if write_batch(&mut socket, &mut out_rx, frame, &state, &mut framing).await.is_err() {
                        break None;
                    }
                    keepalive.as_mut().reset(tokio::time::Instant::now() + keepalive_every);
                }
                _ = &mut keepalive => {
                    let frame = Bytes::from_static(KEEPALIVE_FRAME);
                    if write_batch(&mut socket, &mut out_rx, frame, &state, &mut framing).await.is_err() {
                        break None;
                    }
                    keepalive.as_mut().reset(tokio::time::Instant::now() + keepalive_every);
                }
                () = async { throttled.as_mut().expect("guarded").1.as_mut().await },
                    if throttled.is_some() =>
                {
                    let (msg, _) = throttled.take().expect("guarded");
                    let received = Instant::now();
                    let cmd = DocCommand::Message { conn, msg, received };
                    if to_document(&state, &key, &mut doc, cmd).await.is_err() {
                        break Some(CloseReason::Document(Disconnect::DocumentReset));
                    }
                }
                incoming = socket.next(), if throttled.is_none() => match incoming {
                    Some(Ok(WsMessage::Binary(bytes))) => {
                        let bytes = match framing.incoming(bytes) {
                            Incoming::Message(bytes) => bytes,
                            Incoming::Skip => continue,
                            Incoming::Leave => break None,
                            Incoming::Answer(frame) => {
                                if feed_raw(&mut socket, frame).await.is_err() {
                                    break None;
                                }
                                continue;
                            }
                            Incoming::Malformed(e) => break Some(CloseReason::Decode(e)),
                        };
                        let msg = match Message::decode(&bytes) {
                            Ok(msg) => msg,
                            Err(e) => break Some(CloseReason::Decode(e)),
                        };
                        state.metrics.inbound(msg.kind(), bytes.len());
                        let received = Instant::now();
                        match limiter.admit(MessageClass::of(&msg), bytes.len(), received) {
                            Admission::Now => {}
                            Admission::Wait { until, first } => {
                                state.metrics.throttled();
                                if first && session.extensions {
                                    debug!(conn = conn.0, "over its rate limits; throttled");
                                    let warning = Message::Chorus(ChorusMessage::Error {
                                        code: "rate-limited".into(),
                                        message: "too many messages; slow down or the connection closes".into(),
                                    });
                                    if write_batch(&mut socket, &mut out_rx, warning.encode(), &state, &mut framing).await.is_err() {
                                        break None;
                                    }
                                }
                                let until = tokio::time::Instant::from_std(until);
                                throttled = Some((msg, Box::pin(tokio::time::sleep_until(until))));
                                continue;
                            }
                            Admission::Close => break Some(CloseReason::RateLimited),
                        }
                        let cmd = DocCommand::Message { conn, msg, received };
                        if to_document(&state, &key, &mut doc, cmd).await.is_err() {
                            break Some(CloseReason::Document(Disconnect::DocumentReset));
                        }
                    }
                    Some(Ok(WsMessage::Text(_))) => break Some(CloseReason::TextFrame),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                    Some(Ok(WsMessage::Close(_))) | None => break None,
                    Some(Err(e)) => break matches!(e, WsError::Capacity(_)).then_some(CloseReason::MessageTooLarge),
                }
            }
        };
        // A close the document decided (a refused update, say) may follow a frame that
        // explains it (a Chorus error): deliver what is already queued first. Not for a
        // slow consumer: its queue is the problem.
        if reason.is_none()
            && control
                .reason()
                .is_some_and(|d| *d != Disconnect::SlowConsumer)
        {
            if let Some(frame) = out_rx.try_recv() {
                let _ = write_batch(&mut socket, &mut out_rx, frame, &state, &mut framing).await;
            }
        }
        let _ = to_document(&state, &key, &mut doc, DocCommand::Leave { conn }).await;
        state.metrics.connection_closed();
        let closing = reason.as_ref().map(Closing::from).or_else(|| {
            control
                .reason()
                .map(|d| Closing::from(&CloseReason::Document(d.clone())))
        });
        if let Some(closing) = closing {
            debug!(
                conn = conn.0,
                code = closing.code,
                reason = closing.reason,
                "closing"
            );
            Box::pin(close_socket(socket, closing, &state)).await;
        }
    }
}

/// Write `first` and whatever else is already queued, then flush once; give up
/// after [`WRITE_TIMEOUT`] without progress.
async fn write_batch(
    socket: &mut Socket,
    queue: &mut OutboxReceiver,
    first: Bytes,
    state: &AppState,
    framing: &mut Framing,
) -> Result<(), WriteFailed> {
    let written = write_frames(socket, queue, first, state, framing);
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteFailed),
        Err(_) => {
            debug!("socket write timed out");
            Err(WriteFailed)
        }
    }
}

/// Write one frame as it is (an answer of the framing's own), and flush.
async fn feed_raw(socket: &mut Socket, frame: Bytes) -> Result<(), WsError> {
    match tokio::time::timeout(WRITE_TIMEOUT, socket.send(WsMessage::Binary(frame))).await {
        Ok(result) => result,
        Err(_) => Err(WsError::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// The socket failed or stalled; the connection is over.
struct WriteFailed;

async fn write_frames(
    socket: &mut Socket,
    queue: &mut OutboxReceiver,
    first: Bytes,
    state: &AppState,
    framing: &mut Framing,
) -> Result<(), WsError> {
    let mut next = Some(first);
    let mut n = 0;
    while let Some(frame) = next.take() {
        state.metrics.outbound(frame_kind(&frame), frame.len());
        match framing {
            Framing::Plain => socket.feed(WsMessage::Binary(frame)).await?,
            Framing::Hocuspocus(hp) => {
                for wrapped in hp.outgoing(&frame) {
                    socket.feed(WsMessage::Binary(wrapped)).await?;
                }
            }
        }
        n += 1;
        if n < WRITE_BATCH {
            next = queue.try_recv();
        }
    }
    socket.flush().await
}

/// A future polled only after its own waker fired (and once at the start).
///
/// `tokio::select!` polls every branch each time the task wakes; for the
/// connection's close signals that meant two mutex round trips per frame written,
/// one of them on the shutdown token every connection shares.
struct WhenWoken<F> {
    future: Pin<Box<F>>,
    gate: Arc<Gate>,
    waker: Waker,
}

/// Records that the inner future's waker fired, and wakes the task.
struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> WhenWoken<F> {
    fn new(future: F) -> Self {
        let gate = Arc::new(Gate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        WhenWoken {
            future: Box::pin(future),
            waker: Waker::from(gate.clone()),
            gate,
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.gate.task.register(cx.waker());
        if !self.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let this = &mut *self;
        this.future
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

/// Send a close frame with the reason's code, wait briefly for the peer's reply,
/// then close with [`linger`] so the close frame is not lost to a TCP reset.
pub(crate) async fn close_socket(mut socket: Socket, closing: Closing, state: &AppState) {
    state.metrics.closed(closing.code, closing.reason);
    let frame = CloseFrame {
        code: CloseCode::from(closing.code),
        reason: closing.reason.into(),
    };
    let started = tokio::time::Instant::now();
    if socket.send(WsMessage::Close(Some(frame))).await.is_ok() {
        // After a read error (an oversize frame) the stream yields nothing more
        // and this ends at once; `linger` then drains the raw socket.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
        let left = CLOSE_HANDSHAKE_WAIT.saturating_sub(started.elapsed());
        linger(&mut socket, left.max(CLOSE_LINGER_MIN)).await;
    }
}
