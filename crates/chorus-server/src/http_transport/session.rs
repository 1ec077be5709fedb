//! One HTTP session as the requests of its client and its session task share it
//! ([`HttpSession`]), the table of live ones ([`HttpSessions`]), and the session
//! task's side of it ([`HttpTransport`], the [`Transport`] the generic session
//! loop runs over, as a websocket's is).
//!
//! The loop feeds frames into the session's [`Outbox`] and wakes whichever
//! stream is attached; POSTs hand the client's frames to the loop through a
//! bounded channel (a full one holds the POST: the same back-pressure a
//! websocket gets by not being read). Nothing here holds a lock across an
//! `.await`: the outbox sits under a plain mutex, taken for a push or a copy;
//! the one async lock orders POSTs, so two that race are applied in sequence
//! order.

use super::outbox::{Outbox, ResumeError};
use crate::close::{CloseReason, Closing, TRY_AGAIN_LATER};
use crate::framing::{lock_out, Framing, Incoming};
use crate::metrics::Metrics;
use crate::session::{Inbound, Transport, TransportFailed};
use crate::state::AppState;
use bytes::Bytes;
use chorus_docs::DocKey;
use dashmap::DashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

/// Messages a session's POSTs may have waiting for its loop.
const INBOUND_QUEUE: usize = 64;
/// The most bytes of frames one event batch carries to a stream.
pub(crate) const BATCH_BYTES: usize = 256 << 10;
/// The close a session that could not keep its client's frames gets.
const SLOW_CONSUMER: Closing = Closing {
    code: TRY_AGAIN_LATER,
    reason: "slow-consumer",
};

/// The live HTTP sessions of this node, by id.
#[derive(Default)]
pub(crate) struct HttpSessions {
    map: DashMap<String, Arc<HttpSession>>,
}

impl HttpSessions {
    /// The session `id` of document `key`: another document's session is as
    /// unknown as one that never existed.
    pub(crate) fn get(&self, id: &str, key: &DocKey) -> Option<Arc<HttpSession>> {
        let session = self.map.get(id)?.clone();
        (session.key == *key).then_some(session)
    }

    /// A new session of `key` whose frames go as `framing` says (its first
    /// events `first`: a Hocuspocus provider's `Authenticated`), registered, and
    /// the transport its loop runs over.
    pub(crate) fn open(
        self: &Arc<Self>,
        key: DocKey,
        framing: Framing,
        first: Option<Bytes>,
        state: &AppState,
    ) -> (Arc<HttpSession>, HttpTransport) {
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let (wake, _) = watch::channel(0);
        let config = &state.config.http_transport;
        let mut outbox = Outbox::new(state.config.outbound_queue_bytes);
        if let Some(frame) = first {
            // Into an empty outbox of a fresh cap: cannot overflow.
            let _ = outbox.push(frame);
        }
        let session = Arc::new(HttpSession {
            id: new_session_id(state.documents.node_id()),
            key,
            inbound: inbound_tx,
            next_seq: tokio::sync::Mutex::new(0),
            inner: Mutex::new(Inner {
                outbox,
                closing: None,
                ended: false,
                stream: 0,
                streams: 0,
                last_seen: Instant::now(),
            }),
            wake,
        });
        self.map.insert(session.id.clone(), session.clone());
        let timeout = Duration::from_secs(config.session_timeout_secs);
        let transport = HttpTransport {
            session: session.clone(),
            sessions: self.clone(),
            inbound: inbound_rx,
            framing,
            check: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            failed: None,
            metrics: state.metrics.clone(),
        };
        (session, transport)
    }

    fn remove(&self, id: &str) {
        self.map.remove(id);
    }
}

/// 128 random bits, hex: the session id is what lets a request into the session,
/// so it must not be guessable. In cluster mode it starts with the node's id (hex,
/// then `-`), so a request that lands on another node is carried to this one.
fn new_session_id(node: Option<&str>) -> String {
    let bits: u128 = rand::random();
    match node {
        None => format!("{bits:032x}"),
        Some(node) => {
            let tag: String = node.bytes().map(|b| format!("{b:02x}")).collect();
            format!("{tag}-{bits:032x}")
        }
    }
}

/// The node a session id names (cluster mode), if it names one that decodes.
pub(crate) fn node_of(id: &str) -> Option<String> {
    let (tag, _) = id.split_once('-')?;
    if tag.is_empty() || tag.len() % 2 != 0 || tag.len() > 512 {
        return None;
    }
    let bytes = (0..tag.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(tag.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_session_id_names_its_node_and_a_single_nodes_names_none() {
        let id = new_session_id(Some("node-a:10123"));
        assert_eq!(node_of(&id).as_deref(), Some("node-a:10123"));
        assert!(id.ends_with(&id[id.len() - 32..]) && id.len() > 32);
        assert_eq!(node_of(&new_session_id(None)), None);
        // Hand-made ids name nothing rather than fail.
        for bad in ["zz-00", "6-00", "-00", "ff", "c3-00"] {
            assert_eq!(node_of(bad), None, "{bad}");
        }
        // Two ids never repeat.
        assert_ne!(new_session_id(None), new_session_id(None));
    }
}

/// What the requests of one HTTP session and its loop share.
pub(crate) struct HttpSession {
    id: String,
    key: DocKey,
    /// The client's frames, to the session loop.
    inbound: mpsc::Sender<Inbound>,
    /// The sequence number the next frame POSTed must have; held while a POST
    /// hands its frames over, so POSTs are applied one after another.
    next_seq: tokio::sync::Mutex<u64>,
    inner: Mutex<Inner>,
    /// Bumped whenever a stream has something new to look at (frames, the close,
    /// another stream taking over).
    wake: watch::Sender<u64>,
}

struct Inner {
    outbox: Outbox,
    /// The session ended with this close; its event follows the last frame.
    closing: Option<Closing>,
    /// The session loop is over (with or without a close to tell).
    ended: bool,
    /// The generation of the stream attached last: an older one stops.
    stream: u64,
    /// Streams (or polls) attached now.
    streams: usize,
    /// When the last stream detached or request arrived.
    last_seen: Instant,
}

/// What a stream finds when it looks.
pub(crate) enum Take {
    /// Frames after its cursor, and the close when they are the session's last.
    Frames(Vec<(u64, Bytes)>, Option<Closing>),
    /// Nothing new yet.
    Nothing,
    /// Every frame delivered; the session closed with this.
    Closed(Closing),
    /// The session is over with nothing to tell, or a newer stream took over.
    Over,
}

/// Why a POST's frames were not all handed over.
#[derive(Debug)]
pub(crate) enum PostError {
    /// Its first frame is past the next one expected: one before it is missing.
    OutOfOrder {
        /// The sequence number expected.
        expected: u64,
    },
    /// The session is over.
    Ended,
}

impl HttpSession {
    /// The session's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding it left the outbox consistent (every
        // operation on it completes before returning).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream (or poll) that has seen every event up to `after` attaches: the
    /// frames up to there are acknowledged, and an older stream stops. Returns
    /// its generation.
    pub(crate) fn attach(&self, after: u64) -> Result<u64, ResumeError> {
        let mut inner = self.lock();
        inner.outbox.after(after, 0)?;
        inner.outbox.ack(after);
        inner.stream += 1;
        inner.streams += 1;
        inner.last_seen = Instant::now();
        let generation = inner.stream;
        drop(inner);
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
        Ok(generation)
    }

    /// A stream ended (the client went, or the response was complete).
    pub(crate) fn detach(&self) {
        let mut inner = self.lock();
        inner.streams = inner.streams.saturating_sub(1);
        inner.last_seen = Instant::now();
    }

    /// What the stream of `generation`, having written everything up to
    /// `cursor`, sends next.
    pub(crate) fn take(&self, generation: u64, cursor: u64) -> Take {
        let mut inner = self.lock();
        if inner.stream != generation {
            return Take::Over;
        }
        match inner.outbox.after(cursor, BATCH_BYTES) {
            Ok(frames) if !frames.is_empty() => {
                let last = frames.last().map_or(cursor, |(id, _)| *id);
                inner.outbox.wrote(last);
                let closing = inner.closing.filter(|_| last == inner.outbox.last_id());
                Take::Frames(frames, closing)
            }
            Ok(_) => match (inner.closing, inner.ended) {
                (Some(closing), _) => Take::Closed(closing),
                (None, true) => Take::Over,
                (None, false) => Take::Nothing,
            },
            Err(_) => Take::Over,
        }
    }

    /// A receiver that changes whenever [`HttpSession::take`] may find more.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// The client has every event up to `id`.
    pub(crate) fn ack(&self, id: u64) {
        let mut inner = self.lock();
        inner.outbox.ack(id);
        inner.last_seen = Instant::now();
    }

    /// Hand the frames of a POST whose first frame has sequence number `seq` to
    /// the session loop, skipping those it already had (a POST retried after a
    /// lost answer); returns the sequence number expected next.
    pub(crate) async fn deliver(&self, seq: u64, frames: Vec<Bytes>) -> Result<u64, PostError> {
        let mut next = self.next_seq.lock().await;
        if seq > *next {
            return Err(PostError::OutOfOrder { expected: *next });
        }
        let already = (*next - seq) as usize;
        for frame in frames.into_iter().skip(already) {
            self.inbound
                .send(Inbound::Message(frame))
                .await
                .map_err(|_| PostError::Ended)?;
            *next += 1;
        }
        self.lock().last_seen = Instant::now();
        Ok(*next)
    }

    /// The sequence number the next frame must have.
    pub(crate) async fn expected(&self) -> u64 {
        *self.next_seq.lock().await
    }

    /// End the session from the client's side: it left, or sent what closes it.
    pub(crate) async fn end(&self, why: Inbound) {
        let _ = self.inbound.send(why).await;
    }

    /// For a stream that cannot resume: the session loop ends (the client has
    /// lost frames and starts over with a new session).
    pub(crate) fn abandon(&self) {
        let _ = self.inbound.try_send(Inbound::Ended);
    }

    /// How long the session has had nobody: zero while a stream is attached.
    fn idle_for(&self, now: Instant) -> Duration {
        let inner = self.lock();
        if inner.streams > 0 {
            Duration::ZERO
        } else {
            now.saturating_duration_since(inner.last_seen)
        }
    }

    fn finish(&self, closing: Option<Closing>) {
        let mut inner = self.lock();
        if inner.ended {
            return;
        }
        inner.ended = true;
        inner.closing = closing;
        drop(inner);
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The session loop's side of an HTTP session.
pub(crate) struct HttpTransport {
    session: Arc<HttpSession>,
    sessions: Arc<HttpSessions>,
    inbound: mpsc::Receiver<Inbound>,
    /// Plain, or a Hocuspocus provider's (frames behind the document's name).
    framing: Framing,
    /// When to look whether the session has been left alone too long.
    check: Pin<Box<Sleep>>,
    timeout: Duration,
    /// The close to tell when the loop gave up on the transport.
    failed: Option<Closing>,
    metrics: Arc<Metrics>,
}

impl Transport for HttpTransport {
    async fn next(&mut self) -> Inbound {
        loop {
            tokio::select! {
                received = self.inbound.recv() => return match received {
                    Some(Inbound::Message(bytes)) => match self.framing.incoming(bytes) {
                        Incoming::Message(bytes) => Inbound::Message(bytes),
                        Incoming::Skip => Inbound::Skip,
                        Incoming::Leave => Inbound::Leave,
                        Incoming::Answer(frame) => Inbound::Answer(frame),
                        Incoming::Malformed(e) => Inbound::Refused(CloseReason::Decode(e)),
                    },
                    Some(other) => other,
                    None => Inbound::Ended,
                },
                () = &mut self.check => {
                    let now = Instant::now();
                    let idle = self.session.idle_for(now);
                    if idle >= self.timeout {
                        tracing::debug!(session = %self.session.id, "HTTP session timed out");
                        return Inbound::Ended;
                    }
                    self.check.as_mut().reset(now + (self.timeout - idle));
                }
            }
        }
    }

    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportFailed> {
        match self.framing.hocuspocus_out() {
            None => self.push(frame),
            Some(out) => {
                let wrapped = lock_out(out).outgoing(&frame);
                wrapped.into_iter().try_for_each(|frame| self.push(frame))
            }
        }
    }

    async fn flush(&mut self) -> Result<(), TransportFailed> {
        self.session.wake.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    async fn answer(&mut self, frame: Bytes) -> Result<(), TransportFailed> {
        // A frame of the framing's own: as it is.
        self.push(frame)?;
        self.flush().await
    }

    fn close(mut self, closing: Closing, state: &AppState) -> impl Future<Output = ()> + Send {
        state.metrics.closed(closing.code, closing.reason);
        self.failed = Some(closing);
        std::future::ready(())
    }
}

impl HttpTransport {
    /// Keep one finished frame for the client.
    fn push(&mut self, frame: Bytes) -> Result<(), TransportFailed> {
        let pushed = self.session.lock().outbox.push(frame);
        pushed.map(drop).map_err(|_| {
            self.metrics
                .closed(SLOW_CONSUMER.code, SLOW_CONSUMER.reason);
            self.failed = Some(SLOW_CONSUMER);
            TransportFailed
        })
    }
}

impl Drop for HttpTransport {
    /// The loop is over: the close (if any) is the session's last event, and the
    /// session stays in the table for one more timeout, so a client reconnecting
    /// its stream still reads it, then goes.
    fn drop(&mut self) {
        self.metrics.http.ended();
        self.session.finish(self.failed);
        let sessions = self.sessions.clone();
        let id = self.session.id.clone();
        let linger = self.timeout;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(linger).await;
                sessions.remove(&id);
            });
        } else {
            sessions.remove(&id);
        }
    }
}
