//! One actor on its own: no registry, no writer thread, inert hooks. Its jobs come
//! out of a detached writer and the test writes and answers them, so the order of
//! "durable" and "saved" is the test's to choose, and the store's bytes are the
//! oracle.

use super::*;
use crate::env::{AppRules, DocPolicy, DOC_INBOX};
use crate::frames::{frame_queue, FrameReceiver};
use crate::inbox::inbox;
use crate::metrics::NoMetrics;
use crate::writer::{Job, PersistOp, StoreWriter};
use bytes::Bytes;
use chorus_auth::Mode;
use chorus_core::{RoomLimits, Session};
use chorus_hooks::{Hooks, HooksConfig};
use chorus_protocol::ChorusMessage;
use chorus_store::{MemoryStore, Store};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use yrs::{GetString, Text, Transact};

/// Records how the actor left the map.
#[derive(Default)]
struct RecordedExit(Mutex<Vec<&'static str>>);

impl Exit for RecordedExit {
    fn forget(&self, _: &InboxSender<DocCommand>) {
        self.0.lock().unwrap().push("forget");
    }

    fn hand_over(&self, _: &InboxSender<DocCommand>, rx: &mut InboxReceiver<DocCommand>) {
        rx.close();
        self.0.lock().unwrap().push("hand_over");
    }
}

struct Harness {
    store: Arc<MemoryStore>,
    jobs: mpsc::Receiver<Job>,
    inbox: InboxSender<DocCommand>,
    exit: Arc<RecordedExit>,
    actor: tokio::task::JoinHandle<()>,
}

/// What an actor is given, over a store whose jobs come out of `jobs`.
fn env(store: &Arc<MemoryStore>) -> (Arc<DocEnv>, mpsc::Receiver<Job>) {
    let (writer, jobs) = StoreWriter::detached(store.clone());
    let hooks = Hooks::new(
        store.clone(),
        Arc::new(|_: &str| None),
        HooksConfig::default(),
    )
    .unwrap();
    let env = Arc::new(DocEnv::with_writer(
        RoomLimits::default(),
        AppRules::default(),
        DocPolicy::default(),
        writer,
        hooks,
        Arc::new(NoMetrics),
    ));
    (env, jobs)
}

fn start() -> Harness {
    let store = Arc::new(MemoryStore::new());
    let (env, jobs) = env(&store);
    let (tx, rx) = inbox(DOC_INBOX);
    let exit = Arc::new(RecordedExit::default());
    let actor = tokio::spawn(run_actor(
        env,
        DocKey::new("wiki", "page"),
        rx,
        tx.clone(),
        Arc::new(Activity::default()),
        exit.clone(),
    ));
    Harness {
        store,
        jobs,
        inbox: tx,
        exit,
        actor,
    }
}

/// Join as an editor that asked for extension messages (so it is told "saved").
async fn join(h: &Harness) -> (ConnId, FrameReceiver) {
    let conn = ConnId::fresh();
    let (frames_tx, frames) = frame_queue(64, usize::MAX);
    let session = Arc::new(Session {
        user_id: "ada".into(),
        name: "Ada".into(),
        color: "#112233".into(),
        avatar: None,
        mode: Mode::Edit,
        extensions: true,
        expires_at: u64::MAX,
        credential: Default::default(),
    });
    let peer = QueuePeer::new(frames_tx, Arc::new(crate::peer::ConnControl::default()));
    send_join(&h.inbox, conn, session, peer).await;
    (conn, frames)
}

async fn send_join(
    inbox: &InboxSender<DocCommand>,
    conn: ConnId,
    session: Arc<Session>,
    peer: QueuePeer,
) {
    inbox
        .send(DocCommand::Join {
            conn,
            session,
            peer,
        })
        .await
        .ok()
        .unwrap();
}

/// An update typing `text` into the title, from a client of its own.
fn typed(client: u64, text: &str) -> Bytes {
    let doc = yrs::Doc::with_client_id(client);
    let title = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    title.insert(&mut txn, 0, text);
    Bytes::from(txn.encode_update_v1())
}

/// Write a job to the store as the writer thread would, and answer it.
fn complete(store: &MemoryStore, job: Job) {
    match job.op {
        PersistOp::Append(batch) => store.write(batch).unwrap(),
        PersistOp::Compact {
            id,
            snapshot,
            upto_seq,
            meta,
        } => store.compact(&id, &snapshot, upto_seq, &meta).unwrap(),
        PersistOp::Flush => {}
    }
    store.flush().unwrap();
    let _ = job.done.send(Ok(()));
}

/// The "saved up to n" frames among what the member got so far.
fn saved(frames: &mut FrameReceiver) -> Vec<u64> {
    std::iter::from_fn(|| frames.try_recv())
        .filter_map(|f| match Message::decode(&f) {
            Ok(Message::Chorus(ChorusMessage::Saved { n })) => Some(n),
            _ => None,
        })
        .collect()
}

/// The title the store's records make, read with yrs alone.
fn stored_title(store: &MemoryStore) -> String {
    let stored = store
        .load(&DocId::new("wiki", "page"))
        .unwrap()
        .expect("the document is stored");
    let doc = yrs::Doc::new();
    let title = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    for bytes in stored
        .snapshot
        .iter()
        .chain(stored.updates.iter().map(|(_, u)| u))
    {
        let update = <yrs::Update as yrs::updates::decoder::Decode>::decode_v1(bytes).unwrap();
        txn.apply_update(update).unwrap();
    }
    title.get_string(&txn)
}

/// The first "saved" frames the member gets (within ten seconds).
async fn first_saved(frames: &mut FrameReceiver) -> Vec<u64> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let found = saved(frames);
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the member is told its edit is saved")
}

async fn next_job(jobs: &mut mpsc::Receiver<Job>) -> Job {
    tokio::time::timeout(Duration::from_secs(10), jobs.recv())
        .await
        .expect("the actor submitted a job")
        .expect("the writer is alive")
}

#[tokio::test]
async fn an_edit_is_acknowledged_only_once_its_job_is_durable_and_the_actor_leaves_by_its_exit() {
    let mut h = start();
    let (conn, mut frames) = join(&h).await;
    let update = typed(40, "Hello");
    h.inbox
        .send(DocCommand::Message {
            conn,
            msg: Message::Sync(SyncMessage::Update(update)),
            received: std::time::Instant::now(),
        })
        .await
        .ok()
        .unwrap();
    let job = next_job(&mut h.jobs).await;
    assert!(matches!(job.op, PersistOp::Append(_)), "an append first");
    // The job waits in the test's hands: nothing is acknowledged meanwhile.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        saved(&mut frames),
        Vec::<u64>::new(),
        "saved before durable"
    );
    complete(&h.store, job);
    let acked = first_saved(&mut frames).await;
    assert_eq!(acked, vec![1]);
    assert_eq!(
        stored_title(&h.store),
        "Hello",
        "what was acknowledged is in the store"
    );

    // Shutdown: the actor writes what it holds (a final snapshot), then leaves by
    // the exit it was given (it never saw a registry).
    h.inbox.send(DocCommand::Shutdown).await.ok().unwrap();
    let job = next_job(&mut h.jobs).await;
    assert!(
        matches!(job.op, PersistOp::Compact { .. }),
        "a final snapshot"
    );
    complete(&h.store, job);
    tokio::time::timeout(Duration::from_secs(10), h.actor)
        .await
        .expect("the actor stopped")
        .unwrap();
    assert_eq!(*h.exit.0.lock().unwrap(), vec!["hand_over"]);
    assert_eq!(stored_title(&h.store), "Hello");
}

#[tokio::test]
async fn a_failed_job_is_not_acknowledged_and_is_written_again() {
    let mut h = start();
    let (conn, mut frames) = join(&h).await;
    h.inbox
        .send(DocCommand::Message {
            conn,
            msg: Message::Sync(SyncMessage::Update(typed(41, "Hi"))),
            received: std::time::Instant::now(),
        })
        .await
        .ok()
        .unwrap();
    let failed = next_job(&mut h.jobs).await;
    let _ = failed.done.send(Err(crate::DocError::WriterStopped));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        saved(&mut frames),
        Vec::<u64>::new(),
        "a failed job acknowledged"
    );
    // The retry carries the same edit (as a snapshot after a failure).
    let retry = next_job(&mut h.jobs).await;
    complete(&h.store, retry);
    let acked = first_saved(&mut frames).await;
    assert_eq!(acked, vec![1]);
    assert_eq!(stored_title(&h.store), "Hi");
}

/// Who was written to, in order, and how many frames each write held.
type Writes = Arc<Mutex<Vec<(usize, usize)>>>;

/// A member written to directly that records, in one log shared by every member
/// of the test, when the actor handed it frames.
struct RecordedSink {
    who: usize,
    writes: Writes,
}

impl crate::direct::DirectSink for RecordedSink {
    fn write(&self, frames: &[Bytes]) -> Result<(), crate::frames::PushError> {
        self.writes.lock().unwrap().push((self.who, frames.len()));
        Ok(())
    }

    fn backlog_bytes(&self) -> usize {
        0
    }
}

/// Join a member written to directly, logging its writes as `who`.
async fn join_direct(h: &Harness, who: usize, writes: &Writes) -> ConnId {
    join_direct_to(&h.inbox, who, writes).await
}

async fn join_direct_to(inbox: &InboxSender<DocCommand>, who: usize, writes: &Writes) -> ConnId {
    let conn = ConnId::fresh();
    let session = Arc::new(Session {
        user_id: format!("user-{who}"),
        name: format!("User {who}"),
        color: "#112233".into(),
        avatar: None,
        mode: Mode::Edit,
        extensions: false,
        expires_at: u64::MAX,
        // A proxy forwards only a session that kept its token.
        credential: chorus_core::Credential::new("token"),
    });
    let sink = Arc::new(RecordedSink {
        who,
        writes: writes.clone(),
    });
    let peer = QueuePeer::direct(sink, Arc::new(crate::peer::ConnControl::default()));
    send_join(inbox, conn, session, peer).await;
    conn
}

/// Returns once the actor (or proxy) behind `inbox` has finished every turn
/// begun before the call (a turn ends with its sweep, and the second command is
/// handled in a later turn), with its answers to the two.
async fn turns_done(
    inbox: &InboxSender<DocCommand>,
) -> Vec<Result<crate::command::BaseState, crate::DocError>> {
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (reply, answer) = tokio::sync::oneshot::channel();
        inbox
            .send(DocCommand::Base {
                with_state: false,
                reply,
            })
            .await
            .ok()
            .unwrap();
        answers.push(answer.await.unwrap());
    }
    answers
}

/// [`turns_done`] for a document's actor, which answers both.
async fn settled(h: &Harness) {
    for answer in turns_done(&h.inbox).await {
        answer.ok().unwrap();
    }
}

/// On one worker thread, a document with thousands of readers does not hold the
/// thread for its whole sweep: another document's turn runs between its slices.
/// (Without the yield between slices the small document's reader is written
/// after every reader of the large one.)
#[tokio::test(flavor = "current_thread")]
async fn a_large_sweep_lets_another_document_write_between_its_slices() {
    const READERS: usize = 4 * SWEEP_SLICE;
    const SMALL: usize = usize::MAX;
    let writes = Arc::new(Mutex::new(Vec::new()));
    let large = start();
    let small = start();
    let large_writer = join_direct(&large, 0, &writes).await;
    for who in 1..=READERS {
        join_direct(&large, who, &writes).await;
    }
    let small_writer = join_direct(&small, SMALL - 1, &writes).await;
    join_direct(&small, SMALL, &writes).await;
    settled(&large).await;
    settled(&small).await;
    writes.lock().unwrap().clear();

    // Both documents get an update before either actor runs again.
    for (h, conn, client) in [(&large, large_writer, 50), (&small, small_writer, 51)] {
        h.inbox
            .send(DocCommand::Message {
                conn,
                msg: Message::Sync(SyncMessage::Update(typed(client, "x"))),
                received: std::time::Instant::now(),
            })
            .await
            .ok()
            .unwrap();
    }
    settled(&large).await;
    settled(&small).await;

    let writes: Vec<usize> = writes.lock().unwrap().iter().map(|&(who, _)| who).collect();
    assert_eq!(writes.len(), READERS + 1, "every reader written once");
    let small_at = writes
        .iter()
        .position(|&w| w == SMALL)
        .expect("the small document's reader was written");
    assert!(
        small_at > 0 && small_at < READERS,
        "the small document's reader was written after {small_at} of the large one's {READERS} readers: \
         the large sweep held the thread"
    );
}

/// A proxy (a document another node owns) hands its members what the owner
/// delivered during one of its turns in one write each, as the owner's actor
/// does; frame by frame, a busy document cost every member one write per update.
#[tokio::test(flavor = "current_thread")]
async fn a_proxy_writes_what_one_turn_delivered_in_one_write_per_member() {
    const MEMBERS: usize = 3;
    const FRAMES: usize = 10;
    let store = Arc::new(MemoryStore::new());
    let (env, _jobs) = env(&store);
    let (tx, rx) = inbox(DOC_INBOX);
    let owner: Arc<str> = "owner-node".into();
    let _proxy = tokio::spawn(super::proxy::serve(
        env,
        DocKey::new("wiki", "page"),
        owner.clone(),
        rx,
        tx.clone(),
        Arc::new(Activity::default()),
        Arc::new(RecordedExit::default()),
    ));
    let writes: Writes = Arc::default();
    let mut conns = Vec::new();
    for who in 0..MEMBERS {
        conns.push(join_direct_to(&tx, who, &writes).await.0);
    }
    // Every delivery is queued before the proxy runs again: one turn.
    for i in 0..FRAMES {
        let op = crate::command::ClusterOp::Deliver {
            node: owner.clone(),
            frame: Bytes::from(vec![0, 2, i as u8]),
            to: conns.clone(),
        };
        tx.send(DocCommand::Cluster(crate::command::ClusterCommand(op)))
            .await
            .ok()
            .unwrap();
    }
    // Refused (a proxy has no document), in a later turn than the deliveries.
    turns_done(&tx).await;
    let mut writes = writes.lock().unwrap().clone();
    writes.sort_unstable();
    assert_eq!(
        writes,
        (0..MEMBERS).map(|who| (who, FRAMES)).collect::<Vec<_>>(),
        "one write per member holding every frame of the turn"
    );
}
