//! The session of one connection, whatever carries it: join the document, then
//! loop — messages from the client are decoded, held to the connection's rate
//! limits and forwarded to the document's actor; frames the actor queued for this
//! connection are written out in batches (feed several, flush once), with a
//! keepalive after a silence. Closing is driven by [`ConnControl`] (the actor, a
//! slow queue), by server shutdown, or by the client, and always carries a
//! documented close code.
//!
//! A transport ([`Transport`]) is what the session needs of a socket: the next
//! thing the client sent, a way to write frames, and a close. The websocket (with
//! its plain or Hocuspocus framing) is one, in `websocket.rs`; the tests drive the
//! session over in-memory channels with paused time.

use crate::close::{CloseReason, Closing};
use crate::direct::DirectSocket;
use crate::limits::{Admission, ConnectionLimiter, ConnectionSlot, MessageClass};
use crate::state::AppState;
use bytes::Bytes;
use chorus_core::{ConnId, Session};
use chorus_docs::{
    frame_queue, ConnControl, DirectSink, Disconnect, DocCommand, DocHandle, DocKey, FrameReceiver,
    QueuePeer,
};
use chorus_protocol::{frame_kind, ChorusMessage, Message};
use futures_util::future::{ready, BoxFuture, Either, Ready};
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::debug;

/// Frames written per flush when the outbound queue has a backlog.
const WRITE_BATCH: usize = 64;
/// Sent after `keepalive_secs` without any outbound frame: an awareness update
/// with zero entries. Stock y-websocket clients drop a connection that received
/// nothing for 30 s (websocket pings are invisible to browser code); this frame is
/// a no-op for y-protocols yet counts as a message.
pub const KEEPALIVE_FRAME: &[u8] = &[1, 1, 0];
/// A transport that accepts no bytes for this long is dropped: its peer stopped
/// reading, and the room has already let it go (its queue filled up).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client sent, as the session needs it.
pub(crate) enum Inbound {
    /// A message for the document (y-protocols or Chorus), unframed.
    Message(Bytes),
    /// Nothing for the document (a ping, a message of the framing's own).
    Skip,
    /// Answer this (a frame of the transport's own), then go on.
    Answer(Bytes),
    /// The client left the document.
    Leave,
    /// The client sent what closes the connection with this reason.
    Refused(CloseReason),
    /// The transport ended (closed by the client, or broken).
    Ended,
}

/// The transport failed or stalled; the connection is over.
#[derive(Debug)]
pub(crate) struct TransportFailed;

/// What the session needs of whatever carries a connection.
pub(crate) trait Transport: Send + 'static {
    /// The next thing the client sent. Must be cancel-safe: the session polls it
    /// beside its other events and drops it when another one comes first.
    fn next(&mut self) -> impl Future<Output = Inbound> + Send;

    /// Queue one frame of the document's protocol for the client, unflushed.
    fn feed(&mut self, frame: Bytes) -> impl Future<Output = Result<(), TransportFailed>> + Send;

    /// Send what was fed.
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportFailed>> + Send;

    /// Send a frame of the transport's own (an [`Inbound::Answer`]) at once.
    fn answer(&mut self, frame: Bytes) -> impl Future<Output = Result<(), TransportFailed>> + Send;

    /// What the client sent before the session joined, to deliver first.
    fn take_pending(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    /// The socket the document's actor writes this connection's frames into
    /// itself (`direct.rs`), and the sink it writes through, if the transport has
    /// one; otherwise frames come through the connection's queue.
    fn direct(&self, _state: &AppState) -> Option<(Arc<DirectSocket>, Arc<dyn DirectSink>)> {
        None
    }

    /// End the connection with a documented close code.
    fn close(self, closing: Closing, state: &AppState) -> impl Future<Output = ()> + Send;
}

/// A command on its way to the document's actor: already there, or waiting on
/// the heap for room in its inbox.
type Delivery<'a> = Either<Ready<Result<(), ()>>, BoxFuture<'a, Result<(), ()>>>;

/// Send `cmd` to the document's actor: at once while its inbox has room (almost
/// always), so the connection's future carries no waiting state for it; the rare
/// wait lives on the heap (`to_document_waiting`).
fn to_document<'a>(
    state: &'a AppState,
    key: &'a DocKey,
    doc: &'a mut DocHandle,
    cmd: DocCommand,
) -> Delivery<'a> {
    match doc.try_send(cmd) {
        Ok(()) => Either::Left(ready(Ok(()))),
        Err(cmd) => Either::Right(Box::pin(to_document_waiting(state, key, doc, cmd))),
    }
}

/// Send `cmd` to the document's actor, waiting while its inbox is full. If that
/// actor has stopped since this connection joined (it unloaded while the join
/// waited in its inbox, and handed the join to its successor:
/// `Documents::hand_over`), send it to the actor now live, which holds the join
/// ahead of it.
async fn to_document_waiting(
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

/// The session of one connection: join, then relay frames both ways until either
/// side ends, over any [`Transport`].
///
/// A plain `fn` returning an `async move` block rather than an `async fn`: an async
/// fn's future stores each argument twice (rustc keeps the argument slots and moves
/// them into locals; rust-lang/rust#62958), which for the 368-byte socket and the
/// rest cost ~400 bytes of every connection's task; the block uses its captures in
/// place.
#[allow(clippy::manual_async_fn)] // the point: see above
pub(crate) fn run<T: Transport>(
    mut transport: T,
    state: AppState,
    key: DocKey,
    session: Arc<Session>,
    held: (TaskTrackerToken, Option<ConnectionSlot>),
) -> impl Future<Output = ()> + Send {
    async move {
        let conn = ConnId::fresh();
        let control = Arc::new(ConnControl::default());
        // A connection the document writes to itself needs no queue.
        let (direct, peer, mut out_rx) = match transport.direct(&state) {
            Some((socket, sink)) => (Some(socket), QueuePeer::direct(sink, control.clone()), None),
            None => {
                let (out_tx, out_rx) = frame_queue(
                    state.config.outbound_queue_frames,
                    state.config.outbound_queue_bytes,
                );
                (None, QueuePeer::new(out_tx, control.clone()), Some(out_rx))
            }
        };
        let join = DocCommand::Join {
            conn,
            session: session.clone(),
            peer,
        };
        // A document actor that just stopped (unloading, or after a reset) is replaced.
        // Cold paths (joining, closing) are boxed: a connection task's future is as
        // large as its largest await point, and it lives as long as the connection.
        // `.ok()` first: a matched `Result` (the refused command inside) would be
        // kept across the close below, in every connection's future.
        let dispatched = Box::pin(state.documents.dispatch(&key, join)).await.ok();
        let Some(mut doc) = dispatched else {
            Box::pin(transport.close(
                Closing::from(&CloseReason::Document(Disconnect::DocumentReset)),
                &state,
            ))
            .await;
            return;
        };
        state.metrics.connection_opened();
        debug!(conn = conn.0, app = %key.app, doc = %key.doc, user = %session.user_id, mode = session.mode.as_str(), "joined");
        // What a Hocuspocus provider sent before its token was checked, in order.
        for bytes in transport.take_pending() {
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
        // The limiter reads tokio's clock (the same as the wall clock unless a test
        // paused it) so that throttling can be tested with paused time.
        let limiter_now = || tokio::time::Instant::now().into_std();
        let mut limiter = ConnectionLimiter::new(&state.limiters.rates(&key.app), limiter_now());
        // A message over the rate limits, held (and the socket left unread) until
        // its wait is over: back-pressure on this sender only. Boxed: most
        // connections never need the timer, and the future lives as long as they do.
        let mut throttled: Option<(Message, Pin<Box<tokio::time::Sleep>>)> = None;
        let reason: Option<CloseReason> = loop {
            tokio::select! {
                biased;
                _ = &mut closed => break None,
                _ = &mut shutdown => break Some(CloseReason::Shutdown),
                frame = async {
                    match out_rx.as_mut() {
                        Some(queue) => queue.recv().await,
                        None => std::future::pending().await,
                    }
                }, if out_rx.is_some() => {
                    let Some(frame) = frame else { break None };
                    if write_batch(&mut transport, out_rx.as_mut(), frame, &state).await.is_err() {
                        break None;
                    }
                    keepalive.as_mut().reset(tokio::time::Instant::now() + keepalive_every);
                }
                drained = std::future::poll_fn(|cx| match &direct {
                    Some(socket) => socket.poll_drain(cx),
                    None => Poll::Pending,
                }), if direct.is_some() => {
                    if drained.is_err() {
                        break None;
                    }
                    keepalive.as_mut().reset(tokio::time::Instant::now() + keepalive_every);
                }
                _ = &mut keepalive => {
                    // The document writes a direct connection's frames itself; a
                    // reader that stopped taking them is dropped here.
                    if direct.as_ref().is_some_and(|s| s.stalled_for() > WRITE_TIMEOUT) {
                        debug!(conn = conn.0, "transport write stalled");
                        break None;
                    }
                    // A reader of a busy document hears from it all the time.
                    if direct.as_ref().is_some_and(|s| s.document_wrote()) {
                        keepalive.as_mut().reset(tokio::time::Instant::now() + keepalive_every);
                        continue;
                    }
                    let frame = Bytes::from_static(KEEPALIVE_FRAME);
                    if write_batch(&mut transport, out_rx.as_mut(), frame, &state).await.is_err() {
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
                incoming = transport.next(), if throttled.is_none() => match incoming {
                    Inbound::Message(bytes) => {
                        let msg = match Message::decode(&bytes) {
                            Ok(msg) => msg,
                            Err(e) => break Some(CloseReason::Decode(e)),
                        };
                        state.metrics.inbound(msg.kind(), bytes.len());
                        let received = Instant::now();
                        match limiter.admit(MessageClass::of(&msg), bytes.len(), limiter_now()) {
                            Admission::Now => {}
                            Admission::Wait { until, first } => {
                                state.metrics.throttled();
                                if first && session.extensions {
                                    debug!(conn = conn.0, "over its rate limits; throttled");
                                    let warning = Message::Chorus(ChorusMessage::Error {
                                        code: "rate-limited".into(),
                                        message: "too many messages; slow down or the connection closes".into(),
                                    });
                                    if write_batch(&mut transport, out_rx.as_mut(), warning.encode(), &state).await.is_err() {
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
                    Inbound::Skip => {}
                    Inbound::Answer(frame) => {
                        if answer(&mut transport, frame).await.is_err() {
                            break None;
                        }
                    }
                    Inbound::Leave | Inbound::Ended => break None,
                    Inbound::Refused(reason) => break Some(reason),
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
            if let Some(frame) = out_rx.as_mut().and_then(FrameReceiver::try_recv) {
                let _ = write_batch(&mut transport, out_rx.as_mut(), frame, &state).await;
            }
        }
        // Nothing the document still writes may follow the close frame; a slow
        // consumer's leftovers are the problem, and go.
        if let Some(socket) = &direct {
            socket.detach(control.reason() == Some(&Disconnect::SlowConsumer));
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
            Box::pin(transport.close(closing, &state)).await;
        }
        // Used in place, not moved into a local: that would store it twice.
        drop(held);
    }
}

/// Write `first` and whatever else is already queued, then flush once; give up
/// after [`WRITE_TIMEOUT`] without progress. Boxed (one allocation per batch,
/// beside a timer and a syscall): inline, its ~600 bytes of state were part of
/// every connection's task for the connection's whole life.
fn write_batch<'a, T: Transport>(
    transport: &'a mut T,
    queue: Option<&'a mut FrameReceiver>,
    first: Bytes,
    state: &'a AppState,
) -> Pin<Box<impl Future<Output = Result<(), TransportFailed>> + Send + 'a>> {
    Box::pin(async move {
        let written = write_frames(transport, queue, first, state);
        match tokio::time::timeout(WRITE_TIMEOUT, written).await {
            Ok(result) => result,
            Err(_) => {
                debug!("transport write timed out");
                Err(TransportFailed)
            }
        }
    })
}

/// Write one frame of the transport's own (an answer of its framing), and flush.
/// Boxed, as [`write_batch`].
fn answer<T: Transport>(
    transport: &mut T,
    frame: Bytes,
) -> Pin<Box<impl Future<Output = Result<(), TransportFailed>> + Send + '_>> {
    Box::pin(async move {
        match tokio::time::timeout(WRITE_TIMEOUT, transport.answer(frame)).await {
            Ok(result) => result,
            Err(_) => Err(TransportFailed),
        }
    })
}

async fn write_frames<T: Transport>(
    transport: &mut T,
    mut queue: Option<&mut FrameReceiver>,
    first: Bytes,
    state: &AppState,
) -> Result<(), TransportFailed> {
    let mut next = Some(first);
    let mut n = 0;
    while let Some(frame) = next.take() {
        state.metrics.outbound(frame_kind(&frame), frame.len());
        transport.feed(frame).await?;
        n += 1;
        if n < WRITE_BATCH {
            next = queue.as_mut().and_then(|q| q.try_recv());
        }
    }
    transport.flush().await
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

#[cfg(test)]
mod tests;
