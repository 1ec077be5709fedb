//! The session over in-memory channels, with tokio's clock paused where time
//! matters: keepalive, rate limits, a client that stops reading, shutdown, a
//! refused frame, and a close the document explains before it closes. The
//! document layer is the real one, on the memory store; only the socket is not.

use super::*;
use crate::config::{AppConfig, Config};
use chorus_auth::Mode;
use chorus_core::WhitelistMode;
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

/// The client's end of a [`ChannelTransport`].
struct Client {
    /// What the client sends.
    send: mpsc::UnboundedSender<Inbound>,
    /// Frames the session wrote (flushed or not).
    frames: mpsc::UnboundedReceiver<Bytes>,
    /// The close the session ended with, if it sent one.
    closed: Arc<Mutex<Option<(u16, &'static str)>>>,
    /// While set, writes never complete (a client that stopped reading).
    stalled: Arc<AtomicBool>,
}

struct ChannelTransport {
    inbound: mpsc::UnboundedReceiver<Inbound>,
    outbound: mpsc::UnboundedSender<Bytes>,
    closed: Arc<Mutex<Option<(u16, &'static str)>>>,
    stalled: Arc<AtomicBool>,
}

impl Transport for ChannelTransport {
    async fn next(&mut self) -> Inbound {
        self.inbound.recv().await.unwrap_or(Inbound::Ended)
    }

    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportFailed> {
        if self.stalled.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        self.outbound.send(frame).map_err(|_| TransportFailed)
    }

    async fn flush(&mut self) -> Result<(), TransportFailed> {
        Ok(())
    }

    fn answer(&mut self, frame: Bytes) -> impl Future<Output = Result<(), TransportFailed>> + Send {
        self.feed(frame)
    }

    fn close(self, closing: Closing, _: &AppState) -> impl Future<Output = ()> + Send {
        *self.closed.lock().unwrap() = Some((closing.code, closing.reason));
        async {}
    }
}

fn transport() -> (ChannelTransport, Client) {
    let (send, inbound) = mpsc::unbounded_channel();
    let (outbound, frames) = mpsc::unbounded_channel();
    let closed = Arc::new(Mutex::new(None));
    let stalled = Arc::new(AtomicBool::new(false));
    (
        ChannelTransport {
            inbound,
            outbound,
            closed: closed.clone(),
            stalled: stalled.clone(),
        },
        Client {
            send,
            frames,
            closed,
            stalled,
        },
    )
}

fn state(tune: impl FnOnce(&mut Config)) -> AppState {
    let mut config = Config {
        apps: vec![AppConfig::new("wiki", [&"s".repeat(32)])],
        ..Config::default()
    };
    tune(&mut config);
    AppState::new(config, Arc::new(chorus_store::MemoryStore::new())).unwrap()
}

fn session(mode: Mode) -> Arc<Session> {
    Arc::new(Session {
        user_id: "ada".into(),
        name: "Ada".into(),
        color: "#112233".into(),
        avatar: None,
        mode,
        extensions: true,
        expires_at: u64::MAX,
        credential: Default::default(),
    })
}

/// Start a session of `mode` on document `doc`; returns the client's end and the
/// session's task.
fn start(state: &AppState, doc: &str, mode: Mode) -> (Client, tokio::task::JoinHandle<()>) {
    let (transport, client) = transport();
    let held = (TaskTracker::new().token(), None);
    let task = tokio::spawn(run(
        transport,
        state.clone(),
        DocKey::new("wiki", doc),
        session(mode),
        held,
    ));
    (client, task)
}

/// The next frame the session wrote, decoded by chorus-protocol's reader.
async fn next_message(client: &mut Client) -> Message {
    let frame = client.frames.recv().await.expect("a frame");
    Message::decode(&frame).expect("a valid frame")
}

/// A sync step 1 with an empty state vector, as a fresh client sends it.
fn step1() -> Bytes {
    Bytes::from_static(&[0, 0, 1, 0])
}

/// Join, and read what the server says first (its sync step 1), in real time: the
/// document loads on a blocking thread, which paused time would run ahead of.
async fn joined(state: &AppState, doc: &str, mode: Mode) -> (Client, tokio::task::JoinHandle<()>) {
    let (mut client, task) = start(state, doc, mode);
    let first = next_message(&mut client).await;
    assert!(
        matches!(first, Message::Sync(chorus_protocol::SyncMessage::Step1(_))),
        "{first:?}"
    );
    (client, task)
}

/// The sessions the document holds now.
async fn sessions_of(state: &AppState, doc: &str) -> Vec<chorus_docs::SessionInfo> {
    let key = DocKey::new("wiki", doc);
    state
        .documents
        .ask(&key, |reply| DocCommand::Sessions { reply })
        .await
        .unwrap()
}

#[tokio::test]
async fn after_a_silence_the_session_sends_the_keepalive_frame_and_traffic_postpones_it() {
    let state = state(|c| c.keepalive_secs = 15);
    let (mut client, _task) = joined(&state, "keepalive", Mode::Edit).await;
    while client.frames.try_recv().is_ok() {}
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(14)).await;
    assert!(client.frames.try_recv().is_err(), "nothing before 15 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    let frame = client.frames.recv().await.expect("the keepalive");
    // An awareness update with no entries: a no-op every y-protocols client reads.
    match Message::decode(&frame).unwrap() {
        Message::Awareness(update) => assert_eq!(update.as_ref(), &[0u8][..]),
        other => panic!("not an awareness message: {other:?}"),
    }
    // Traffic resets the silence: a step 1 answered at 10 s, no keepalive at 24 s.
    tokio::time::advance(Duration::from_secs(10)).await;
    client.send.send(Inbound::Message(step1())).unwrap();
    tokio::time::resume();
    next_message(&mut client).await; // the step 2 answer
    tokio::time::pause();
    while client.frames.try_recv().is_ok() {}
    tokio::time::advance(Duration::from_secs(14)).await;
    assert!(client.frames.try_recv().is_err(), "the answer postponed it");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(client.frames.recv().await.is_some());
}

#[tokio::test]
async fn a_client_over_its_rate_limits_is_throttled_then_closed_with_4429() {
    let state = state(|c| {
        c.limits.messages_per_sec = 1;
        c.limits.messages_burst = 1;
        c.limits.throttle_close_secs = 3;
    });
    let (mut client, task) = joined(&state, "rates", Mode::Edit).await;
    tokio::time::pause();
    for _ in 0..50 {
        client.send.send(Inbound::Message(step1())).unwrap();
    }
    // The first is answered; then a warning (extensions on) and the rest wait.
    let mut warned = false;
    let started = tokio::time::Instant::now();
    task.await.unwrap();
    while let Ok(frame) = client.frames.try_recv() {
        if let Ok(Message::Chorus(ChorusMessage::Error { code, .. })) = Message::decode(&frame) {
            warned |= code == "rate-limited";
        }
    }
    assert!(warned, "the client was told it is throttled");
    assert_eq!(*client.closed.lock().unwrap(), Some((4429, "rate-limited")));
    // Held at one message a second, for the 3 s the limits allow, then closed.
    let held = started.elapsed();
    assert!(
        held >= Duration::from_secs(3) && held < Duration::from_secs(10),
        "{held:?}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout_without_a_close() {
    let state = state(|c| c.keepalive_secs = 5);
    let (client, task) = joined(&state, "stalled", Mode::Edit).await;
    client.stalled.store(true, Ordering::Relaxed);
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    task.await.unwrap();
    // The keepalive at 5 s could not be written; 10 s later the session gave up.
    let ended = started.elapsed();
    assert!(
        ended >= Duration::from_secs(15) && ended < Duration::from_secs(20),
        "{ended:?}"
    );
    assert_eq!(
        *client.closed.lock().unwrap(),
        None,
        "no close frame to a dead socket"
    );
    tokio::time::resume();
    // The document let the member go.
    let sessions = sessions_of(&state, "stalled").await;
    assert!(sessions.is_empty(), "{} sessions left", sessions.len());
}

#[tokio::test]
async fn shutdown_closes_the_session_with_1012() {
    let state = state(|_| {});
    let (client, task) = joined(&state, "shutdown", Mode::Edit).await;
    state.shutdown.cancel();
    task.await.unwrap();
    assert_eq!(client.closed.lock().unwrap().map(|c| c.0), Some(1012));
}

#[tokio::test]
async fn a_frame_that_does_not_decode_closes_with_4400_and_leaves_the_document() {
    let state = state(|_| {});
    let (client, task) = joined(&state, "garbage", Mode::Edit).await;
    client
        .send
        .send(Inbound::Message(Bytes::from_static(&[0, 9, 9])))
        .unwrap();
    task.await.unwrap();
    assert_eq!(client.closed.lock().unwrap().map(|c| c.0), Some(4400));
    let sessions = sessions_of(&state, "garbage").await;
    assert!(sessions.is_empty());
}

#[tokio::test]
async fn a_refused_edit_is_explained_before_the_close() {
    let state = state(|c| c.apps[0].whitelist_mode = WhitelistMode::Reject);
    let (mut client, task) = joined(&state, "rejected", Mode::Edit).await;
    // A paragraph holding a `<script>` element: outside every policy.
    let doc = yrs::Doc::with_client_id(77);
    let update = {
        use yrs::{Transact, XmlElementPrelim, XmlFragment};
        let body = doc.get_or_insert_xml_fragment("body");
        let mut txn = doc.transact_mut();
        body.push_back(&mut txn, XmlElementPrelim::empty("script"));
        txn.encode_update_v1()
    };
    let frame = chorus_protocol::encode_sync(chorus_protocol::SYNC_UPDATE, &update);
    client.send.send(Inbound::Message(frame)).unwrap();
    task.await.unwrap();
    let mut explained = false;
    while let Ok(frame) = client.frames.try_recv() {
        if let Ok(Message::Chorus(ChorusMessage::Error { code, .. })) = Message::decode(&frame) {
            explained |= code == "content-rejected";
        }
    }
    assert!(explained, "the error frame was written before the close");
    assert_eq!(client.closed.lock().unwrap().map(|c| c.0), Some(1008));
}

#[tokio::test]
async fn a_reader_whose_queue_fills_is_closed_with_1013_and_the_writer_goes_on() {
    slow_reader_closed_writer_served(|c| c.outbound_queue_frames = 4).await;
}

#[tokio::test]
async fn a_reader_whose_queue_holds_its_bytes_is_closed_with_1013_and_the_writer_goes_on() {
    // Four edit frames of ~30 bytes reach 100 bytes; the frame bound is far.
    slow_reader_closed_writer_served(|c| {
        c.outbound_queue_frames = 10_000;
        c.outbound_queue_bytes = 100;
    })
    .await;
}

async fn slow_reader_closed_writer_served(adjust: impl FnOnce(&mut Config)) {
    let state = state(adjust);
    let (slow, slow_task) = joined(&state, "fanout", Mode::View).await;
    // The slow reader stops taking frames off its transport.
    slow.stalled.store(true, Ordering::Relaxed);
    let (mut writer, _writer_task) = joined(&state, "fanout", Mode::Edit).await;
    // Twenty edits, each relayed to the reader: its queue of four fills.
    for n in 0..20u64 {
        let frame = chorus_protocol::encode_sync(chorus_protocol::SYNC_UPDATE, &typed(n));
        writer.send.send(Inbound::Message(frame)).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), slow_task)
        .await
        .expect("the slow reader's session ended")
        .unwrap();
    assert_eq!(*slow.closed.lock().unwrap(), Some((1013, "slow-consumer")));
    // The writer is still served: its edits are acknowledged.
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Message::Chorus(ChorusMessage::Saved { n }) = next_message(&mut writer).await {
                if n == 20 {
                    return n;
                }
            }
        }
    })
    .await
    .expect("the writer's edits were saved");
    assert_eq!(acked, 20);
}

/// One character typed into the title by client `n` (a fresh client each time).
fn typed(n: u64) -> Vec<u8> {
    use yrs::{Text, Transact};
    let doc = yrs::Doc::with_client_id(100 + n);
    let title = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    title.insert(&mut txn, 0, "x");
    txn.encode_update_v1()
}
