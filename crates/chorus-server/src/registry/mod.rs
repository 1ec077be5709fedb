//! Live documents: one actor task per (app, content), the single owner of its
//! [`Room`] and of that document's persistence. Connections never touch a room
//! directly; they send [`DocCommand`]s into its bounded [`crate::inbox`] (backpressure
//! on writers) and receive frames on their own bounded queue (a full queue
//! disconnects that consumer, it never grows).
//!
//! Why an actor and not a lock: yrs transactions are synchronous and must never
//! be held across an `.await`; an actor makes that structural, serialises every
//! change to a document without contention, and batches what reaches the store.
//!
//! Life of a document actor:
//! 1. **load**: snapshot + log from the store (on a blocking thread). No command
//!    is handled before the load finished; a failed load never becomes an empty
//!    document (joiners are closed with 1011 and the next connect retries).
//! 2. **serve**: apply messages; after each batch of commands, hand what the room
//!    integrated to the group-commit writer ([`Persistence`]) — at most one job in
//!    flight per document, so whatever arrives meanwhile forms the next batch —
//!    and tell each opted-in sender "saved up to n" only when its job is durable.
//!    After `compact_after_updates` records or `compact_after_bytes`, the job is a
//!    new snapshot instead. After a failed write the next job is a snapshot too, so
//!    a lost record can never leave a gap in the log.
//! 3. **unload**: once nobody is connected for `idle_unload_secs` (or the sweeper
//!    asks, to keep at most `max_loaded_docs` in memory), write a final snapshot,
//!    leave the map, and hand any command that raced in to a fresh actor.

mod events;
mod host;
mod sessions;

pub use host::{Bases, ChangeOutcome, HostChange, HostError, Published};
pub use sessions::SessionInfo;

use crate::close::{CloseReason, Closing};
use crate::inbox::{inbox, InboxReceiver, InboxSender, TrySendError};
use crate::metrics::Metrics;
use crate::outbox::{OutboxSender, PushError};
use crate::persistence::{PersistOp, PersistResult, Persistence};
use crate::release::{release_free_memory, TrimPolicy};
use bytes::Bytes;
use chorus_core::{ConnId, Peer, Room, RoomLimits, Session, Whitelist};
use chorus_hooks::Hooks;
use chorus_protocol::{Message, SyncMessage};
use chorus_store::{DocId, DocMeta, HistoryPoint, WriteBatch};
use dashmap::DashMap;
use host::HostReply;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};
use yrs::{ReadTxn, Transact};

/// Commands queued per document actor before senders wait.
const DOC_INBOX: usize = 1024;
/// Commands an actor takes off its inbox per wake-up.
const DOC_BATCH: usize = 64;
/// After a failed store write, how long before the actor tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the sweeper checks the number of loaded documents.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// The shortest time between two sweeps woken by loads past the bound.
const SWEEP_GAP: Duration = Duration::from_millis(20);

/// Identifies a document: (app id, content id).
pub type DocKey = (Arc<str>, Arc<str>);

/// How documents are kept (from configuration).
#[derive(Debug, Clone)]
pub struct DocPolicy {
    /// Unload a document nobody has been connected to for this long.
    pub idle_unload: Duration,
    /// Keep at most this many documents in memory (idle ones are unloaded first, least recently used first).
    pub max_loaded: usize,
    /// Write a new snapshot after this many log records.
    pub compact_after_updates: u64,
    /// Or after this many log bytes.
    pub compact_after_bytes: u64,
    /// A document larger than this (snapshot + log) turns read-only.
    pub max_document_bytes: u64,
    /// At most one automatic history point per this much editing time.
    pub history_interval: Duration,
    /// How long a draft a host read can serve as the base of an external change.
    pub base_ttl: Duration,
    /// The `closed` webhook fires once every editor left and this much time passed.
    pub close_delay: Duration,
    /// At most one `saved` webhook per document per this much time.
    pub saved_webhook_every: Duration,
}

impl Default for DocPolicy {
    fn default() -> Self {
        DocPolicy {
            idle_unload: Duration::from_secs(30),
            max_loaded: 10_000,
            compact_after_updates: 1_000,
            compact_after_bytes: 1 << 20,
            max_document_bytes: 32 << 20,
            history_interval: Duration::from_secs(600),
            base_ttl: Duration::from_secs(3600),
            close_delay: Duration::from_secs(10),
            saved_webhook_every: Duration::from_secs(30),
        }
    }
}

/// What a host read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftFormat {
    /// `{title, body}` with `body` as a JSON tree.
    Json,
    /// The body rendered as HTML (and the title).
    Html,
    /// The whole document as one lib0-v1 update.
    Yjs,
}

/// A host's read of a draft.
#[derive(Debug)]
pub struct Draft {
    /// Whether the document exists (was ever stored or edited).
    pub exists: bool,
    /// Strong validator: a hash of the state vector.
    pub etag: String,
    /// Last change, ms since the epoch (0 if never stored).
    pub updated_at_ms: u64,
    /// The content in the requested format.
    pub content: DraftContent,
}

/// The body of a [`Draft`].
#[derive(Debug)]
pub enum DraftContent {
    /// `{title, body}`.
    Json(serde_json::Value),
    /// Title and body HTML.
    Html {
        /// Plain-text title.
        title: String,
        /// Rendered body.
        html: String,
    },
    /// Encoded document.
    Yjs(Vec<u8>),
}

/// A request to a document actor.
pub enum DocCommand {
    /// A new, authenticated connection joins.
    Join {
        /// The connection.
        conn: ConnId,
        /// Who it is.
        session: Arc<Session>,
        /// Where its frames go.
        peer: QueuePeer,
    },
    /// A decoded message from a member.
    Message {
        /// The sender.
        conn: ConnId,
        /// The message.
        msg: Message,
    },
    /// The connection ended.
    Leave {
        /// The connection.
        conn: ConnId,
    },
    /// A host reads the draft.
    Read {
        /// Requested format.
        format: DraftFormat,
        /// Where the answer goes (`Err` if the document cannot be loaded).
        reply: oneshot::Sender<Result<Draft, String>>,
    },
    /// A host changes the title and/or body (an external change or a restore).
    External {
        /// What to change.
        change: HostChange,
        /// Answered once the change is durable.
        reply: oneshot::Sender<Result<ChangeOutcome, HostError>>,
    },
    /// A host publishes the draft if its ETag is still `if_match`.
    Publish {
        /// The ETag the host read.
        if_match: String,
        /// Answered once the history point and the publication are durable.
        reply: oneshot::Sender<Result<Published, HostError>>,
    },
    /// A host lists who is connected.
    Sessions {
        /// The sessions.
        reply: oneshot::Sender<Vec<SessionInfo>>,
    },
    /// A host makes one session view-only.
    Downgrade {
        /// The session id (from [`SessionInfo::id`]).
        session: u64,
        /// False if no such session is connected.
        reply: oneshot::Sender<bool>,
    },
    /// A host ends one session.
    EndSession {
        /// The session id.
        session: u64,
        /// False if no such session is connected.
        reply: oneshot::Sender<bool>,
    },
    /// The app was disabled: close every session (4403 `app-disabled`).
    CloseAll,
    /// Unload if nobody is connected (the sweeper keeping memory bounded).
    Unload,
    /// Persist everything and stop (server shutdown).
    Shutdown,
}

/// How a document actor (or the server) tells one connection task to close.
#[derive(Default)]
pub struct ConnControl {
    reason: OnceLock<Closing>,
    cancelled: CancellationToken,
}

impl ConnControl {
    /// Ask the connection to close with `reason` (the first reason wins).
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(Closing::from(&reason));
        self.cancelled.cancel();
    }

    /// Resolves once [`ConnControl::close`] was called.
    pub async fn closed(&self) {
        self.cancelled.cancelled().await
    }

    /// The reason given to [`ConnControl::close`].
    pub fn reason(&self) -> Option<Closing> {
        self.reason.get().copied()
    }
}

/// A room member's outbound side: a bounded queue of encoded frames.
pub struct QueuePeer {
    frames: OutboxSender,
    control: Arc<ConnControl>,
}

impl QueuePeer {
    /// A peer writing into `frames`, closed through `control` when it falls behind.
    pub fn new(frames: OutboxSender, control: Arc<ConnControl>) -> Self {
        QueuePeer { frames, control }
    }
}

impl Peer for QueuePeer {
    fn send(&self, frame: Bytes) -> bool {
        match self.frames.push(frame) {
            Ok(()) => true,
            Err(PushError::Full) => {
                self.control.close(CloseReason::SlowConsumer);
                false
            }
            Err(PushError::Closed) => false,
        }
    }
}

/// What the sweeper knows about an actor without asking it.
#[derive(Default)]
struct Activity {
    members: AtomicUsize,
    last_active_ms: AtomicU64,
}

/// A cloneable address of a document actor.
#[derive(Clone)]
pub struct DocHandle {
    tx: InboxSender<DocCommand>,
    activity: Arc<Activity>,
}

impl DocHandle {
    /// Queue a command, waiting while the actor's inbox is full. `Err` if the actor is gone.
    pub async fn send(&self, cmd: DocCommand) -> Result<(), DocCommand> {
        // The inbox almost always has room: no waiting future is built then, and
        // the rare one that waits lives on the heap instead of inflating every
        // connection task (this future is part of each one's state).
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd)) => Box::pin(self.tx.send(cmd)).await,
            Err(TrySendError::Closed(cmd)) => Err(cmd),
        }
    }
}

/// Every live document of the process.
pub struct Documents {
    live: DashMap<DocKey, DocHandle>,
    limits: RoomLimits,
    /// Whitelists of apps that configure their own (others use `limits.whitelist`).
    whitelists: HashMap<String, Whitelist>,
    policy: DocPolicy,
    metrics: Arc<Metrics>,
    persistence: Arc<Persistence>,
    actors: TaskTracker,
    /// Drafts hosts read, kept as bases for three-way external changes.
    bases: Bases,
    /// Webhook delivery.
    hooks: Hooks,
    /// Apps that have a callback URL.
    hooked_apps: HashSet<String>,
    /// Apps with `collaboration = false` (one edit session per document at a time).
    exclusive_apps: HashSet<String>,
    /// Woken when a load takes the process past `max_loaded`, so the sweeper does
    /// not wait out its period while documents keep arriving.
    over_bound: Notify,
}

/// What differs between apps, from configuration.
#[derive(Default)]
pub struct AppRules {
    /// Whitelists of apps that configure their own (others use the default one).
    pub whitelists: HashMap<String, Whitelist>,
    /// Apps that have a callback URL (webhooks).
    pub hooked: HashSet<String>,
    /// Apps in exclusive mode (`collaboration = false`).
    pub exclusive: HashSet<String>,
}

impl Documents {
    /// An empty set of documents persisted through `persistence`.
    pub fn new(
        limits: RoomLimits,
        rules: AppRules,
        policy: DocPolicy,
        metrics: Arc<Metrics>,
        persistence: Arc<Persistence>,
        hooks: Hooks,
    ) -> Arc<Self> {
        Arc::new(Documents {
            live: DashMap::new(),
            limits,
            whitelists: rules.whitelists,
            policy,
            metrics,
            persistence,
            actors: TaskTracker::new(),
            bases: Bases::default(),
            hooks,
            hooked_apps: rules.hooked,
            exclusive_apps: rules.exclusive,
            over_bound: Notify::new(),
        })
    }

    /// Room limits for a document of `app` (its whitelist, or the default one).
    fn limits_for(&self, app: &str) -> RoomLimits {
        RoomLimits {
            whitelist: self.whitelist_for(app).clone(),
            ..self.limits.clone()
        }
    }

    /// The whitelist documents of `app` enforce.
    pub fn whitelist_for(&self, app: &str) -> &Whitelist {
        self.whitelists.get(app).unwrap_or(&self.limits.whitelist)
    }

    /// The actor of `key` if the document is loaded (without loading it).
    pub fn live_handle(&self, key: &DocKey) -> Option<DocHandle> {
        self.live.get(key).map(|h| h.clone())
    }

    /// Close every session of `app`'s live documents (the app was disabled).
    pub async fn close_app(&self, app: &str) {
        let handles: Vec<DocHandle> = self
            .live
            .iter()
            .filter(|e| &*e.key().0 == app)
            .map(|e| e.value().clone())
            .collect();
        for h in handles {
            let _ = h.send(DocCommand::CloseAll).await;
        }
    }

    /// Number of documents in memory.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no document is in memory.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The draft of `key` a host read with `etag`, if it is still kept (see
    /// `external_base_ttl_secs`).
    pub fn base(&self, key: &DocKey, etag: &str) -> Option<Arc<Vec<u8>>> {
        self.bases.get(key, etag, self.policy.base_ttl)
    }

    /// The persistence layer (for reads that do not need a live document).
    pub fn persistence(&self) -> &Arc<Persistence> {
        &self.persistence
    }

    /// The actor of `key`, started if it is not running. `entry()` makes creation
    /// happen once even when many connections arrive together.
    pub fn get_or_start(self: &Arc<Self>, key: &DocKey) -> DocHandle {
        if let Some(h) = self.live.get(key) {
            return h.clone();
        }
        let handle = self
            .live
            .entry(key.clone())
            .or_insert_with(|| {
                let (tx, rx) = inbox(DOC_INBOX);
                let activity = Arc::new(Activity::default());
                activity.last_active_ms.store(now_ms(), Ordering::Relaxed);
                self.metrics.document_loaded();
                self.actors.spawn(run_actor(
                    self.clone(),
                    key.clone(),
                    rx,
                    tx.clone(),
                    activity.clone(),
                ));
                DocHandle { tx, activity }
            })
            .clone();
        if self.live.len() > self.policy.max_loaded {
            self.over_bound.notify_one();
        }
        handle
    }

    /// Send `cmd` to the actor of `key`, starting one if needed; retried once if
    /// the actor stopped in between (it was unloading). Returns the actor that took it.
    pub async fn dispatch(
        self: &Arc<Self>,
        key: &DocKey,
        cmd: DocCommand,
    ) -> Result<DocHandle, DocCommand> {
        let handle = self.get_or_start(key);
        match handle.send(cmd).await {
            Ok(()) => Ok(handle),
            Err(cmd) => {
                let handle = self.get_or_start(key);
                handle.send(cmd).await.map(|()| handle)
            }
        }
    }

    fn forget(&self, key: &DocKey, tx: &InboxSender<DocCommand>) {
        if self
            .live
            .remove_if(key, |_, h| h.tx.same_inbox(tx))
            .is_some()
        {
            self.metrics.document_unloaded();
        }
    }

    /// Keep at most `max_loaded` documents: ask the least recently active idle ones
    /// to unload; hand freed memory back once many have unloaded (see
    /// [`crate::release`]). Runs until `stop` is cancelled.
    pub async fn sweep(self: Arc<Self>, stop: CancellationToken) {
        let mut trim = TrimPolicy::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = self.over_bound.notified() => {
                    // At most one sweep per SWEEP_GAP however fast documents load: a
                    // sweep reads the activity of every loaded document.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(SWEEP_GAP) => {}
                    }
                }
            }
            if trim.observe(self.live.len()) {
                // The map keeps the table it grew to at the peak (~80 bytes a slot).
                self.live.shrink_to_fit();
                tokio::task::spawn_blocking(release_free_memory);
            }
            let excess = self.live.len().saturating_sub(self.policy.max_loaded);
            if excess == 0 {
                continue;
            }
            let mut idle: Vec<(u64, DocHandle)> = self
                .live
                .iter()
                .filter(|e| e.activity.members.load(Ordering::Relaxed) == 0)
                .map(|e| {
                    (
                        e.activity.last_active_ms.load(Ordering::Relaxed),
                        e.value().clone(),
                    )
                })
                .collect();
            idle.sort_by_key(|(t, _)| *t);
            for (_, handle) in idle.into_iter().take(excess) {
                let _ = handle.tx.try_send(DocCommand::Unload);
            }
        }
    }

    /// Stop every actor after persisting its document; waits at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let handles: Vec<DocHandle> = self.live.iter().map(|e| e.value().clone()).collect();
        for h in handles {
            let _ = h.tx.send(DocCommand::Shutdown).await;
        }
        self.actors.close();
        if tokio::time::timeout(grace, self.actors.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.actors.len(),
                "document actors still running after the grace period"
            );
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The persistence job in flight for one document.
struct Inflight {
    done: oneshot::Receiver<PersistResult>,
    /// Acks to send once durable.
    acks: Vec<(ConnId, u64)>,
    /// For a snapshot: (covered seq, snapshot bytes).
    snapshot: Option<(u64, u64)>,
    /// Log bytes this job appends.
    appended_bytes: u64,
    /// Host answers to send once durable.
    host_replies: Vec<HostReply>,
    /// History points this job writes (queued again if it fails).
    history: Vec<HistoryPoint>,
}

struct DocActor {
    docs: Arc<Documents>,
    key: DocKey,
    id: DocId,
    room: Room<QueuePeer>,
    controls: HashMap<ConnId, Arc<ConnControl>>,
    activity: Arc<Activity>,
    /// The document existed in the store, or was changed since loading.
    exists: bool,
    meta: DocMeta,
    next_seq: u64,
    log_records: u64,
    log_bytes: u64,
    snapshot_bytes: u64,
    /// Integrated updates not yet submitted, and the acks they carry.
    unsaved: Vec<Vec<u8>>,
    unsaved_bytes: u64,
    acks: Vec<(ConnId, u64)>,
    contributors: Vec<String>,
    inflight: Option<Inflight>,
    /// A write failed: the next job must be a full snapshot.
    needs_snapshot: bool,
    retry_at: Option<Instant>,
    idle_since: Option<Instant>,
    /// History points not yet submitted.
    history_pending: Vec<HistoryPoint>,
    /// Host answers waiting for the next write.
    host_replies: Vec<HostReply>,
    /// The document changed since the last history point.
    changed_since_point: bool,
    /// Connected edit-mode members and their users.
    editors: HashMap<ConnId, String>,
    /// An editing session is open (`editing` was raised, `closed` not yet).
    editing: bool,
    /// When `closed` is due (every editor left).
    closing_at: Option<Instant>,
    /// Who changed the draft during the current editing session.
    session_contributors: BTreeSet<String>,
    /// When the last `saved` event was raised.
    last_saved_hook: Option<Instant>,
    /// Webhook events were queued since the last write: the next write (or a flush)
    /// makes them durable.
    flush_due: bool,
    /// When each member joined (ms since the epoch).
    joined_at: HashMap<ConnId, u64>,
    /// Exclusive mode: the session holding the draft, and those waiting for it (in
    /// the order they came).
    holder: Option<ConnId>,
    waiting: Vec<ConnId>,
}

/// A document's task: load it, then serve it until it unloads.
///
/// Every loaded document keeps this task alive, so its size is memory per
/// document. Each phase is a boxed future and only the serving one is alive while
/// the document is served: awaited inline, the loading phase's locals (the actor
/// being built among them, 1.1 KB) stayed part of the task for its whole life.
async fn run_actor(
    docs: Arc<Documents>,
    key: DocKey,
    rx: InboxReceiver<DocCommand>,
    own_tx: InboxSender<DocCommand>,
    activity: Arc<Activity>,
) {
    let serve = Box::pin(load_actor(docs, key, rx, own_tx, activity)).await;
    if let Some(serve) = serve {
        serve.await;
    }
}

/// The serving phase of a document's task.
type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Load the document (see [`build_serving_early`]) and return the future that
/// serves it, or `None` once whoever waited was told it could not be loaded.
async fn load_actor(
    docs: Arc<Documents>,
    key: DocKey,
    mut rx: InboxReceiver<DocCommand>,
    own_tx: InboxSender<DocCommand>,
    activity: Arc<Activity>,
) -> Option<Serving> {
    let id = DocId::new(&*key.0, &*key.1);
    let store = docs.persistence.store().clone();
    let load_id = id.clone();
    let loaded = tokio::task::spawn_blocking(move || store.load(&load_id)).await;
    let loaded = match loaded {
        Ok(read) => read.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let stored = match loaded {
        Ok(stored) => stored,
        Err(why) => {
            Box::pin(refuse_all(&docs, &key, &own_tx, &mut rx, Vec::new(), &why)).await;
            return None;
        }
    };
    let exists = stored.is_some();
    // Commands that came while the room was built, to handle in order first.
    let mut queued = Vec::new();
    let (room, meta, snapshot_bytes, log_records, log_bytes, next_seq) = match stored {
        None => (
            Room::new(docs.limits_for(&key.0)),
            DocMeta::default(),
            0,
            0,
            0,
            1,
        ),
        Some(s) => {
            let s = Arc::new(s);
            let limits = docs.limits_for(&key.0);
            let serve_early = s.meta.content_policy == limits.whitelist.fingerprint();
            let for_build = s.clone();
            // Integrating a long history takes a while: off the runtime's threads.
            let build = tokio::task::spawn_blocking(move || {
                Room::from_stored(
                    limits,
                    for_build.snapshot.as_deref(),
                    for_build.updates.iter().map(|(_, u)| u.as_slice()),
                )
            });
            let built = Box::pin(build_serving_early(
                build,
                &s,
                serve_early,
                &mut rx,
                &mut queued,
            ))
            .await;
            let room = match built {
                Ok(room) => room,
                Err(e) => {
                    Box::pin(refuse_all(&docs, &key, &own_tx, &mut rx, queued, &e)).await;
                    return None;
                }
            };
            let last_seq = s
                .updates
                .last()
                .map(|(seq, _)| *seq)
                .unwrap_or(s.snapshot_seq);
            let log_bytes: u64 = s.updates.iter().map(|(_, u)| u.len() as u64).sum();
            (
                room,
                s.meta.clone(),
                s.snapshot.as_ref().map_or(0, |b| b.len() as u64),
                s.updates.len() as u64,
                log_bytes,
                last_seq + 1,
            )
        }
    };
    let mut actor = DocActor {
        docs,
        key,
        id,
        room,
        controls: HashMap::new(),
        activity,
        exists,
        meta,
        next_seq,
        log_records,
        log_bytes,
        snapshot_bytes,
        unsaved: Vec::new(),
        unsaved_bytes: 0,
        acks: Vec::new(),
        contributors: Vec::new(),
        inflight: None,
        needs_snapshot: false,
        retry_at: None,
        idle_since: Some(Instant::now()),
        history_pending: Vec::new(),
        host_replies: Vec::new(),
        changed_since_point: false,
        editors: HashMap::new(),
        editing: false,
        closing_at: None,
        session_contributors: BTreeSet::new(),
        last_saved_hook: None,
        flush_due: false,
        joined_at: HashMap::new(),
        holder: None,
        waiting: Vec::new(),
    };
    actor.enforce_quota();
    Some(Box::pin(actor.run(queued, rx, own_tx)))
}

/// Waits for the room being built from `stored`, queueing what arrives meanwhile.
///
/// A joiner whose step 1 says it has nothing (a new editor opening the draft, the
/// usual cold load) is answered from the stored bytes at once when `serve_early`
/// (they were stored under the whitelist in force, so no check stands between
/// them and the client), instead of after the integration, which takes hundreds
/// of milliseconds for a long history. That step 1 stays queued, rewritten to the
/// built room's state vector, so once the room is built the joiner is sent only
/// what changed since those bytes: nothing, or what queued commands before it
/// changed.
async fn build_serving_early(
    mut build: tokio::task::JoinHandle<Result<Room<QueuePeer>, chorus_core::LoadError>>,
    stored: &chorus_store::StoredDoc,
    serve_early: bool,
    rx: &mut InboxReceiver<DocCommand>,
    queued: &mut Vec<DocCommand>,
) -> Result<Room<QueuePeer>, String> {
    let mut frames: Option<Vec<Bytes>> = None;
    // Connections served early, with the index of the step 1 that was answered.
    let mut served: Vec<(ConnId, usize)> = Vec::new();
    let built = loop {
        tokio::select! {
            biased;
            built = &mut build => break built,
            // Past this many, senders wait for the load, as they would on a full
            // inbox: the queue is not a way around its bound.
            Some(cmd) = rx.recv(), if queued.len() < DOC_INBOX => {
                if serve_early {
                    if let Some(conn) = early_step1(&cmd, &served) {
                        let frames = frames.get_or_insert_with(|| {
                            let updates: Vec<&[u8]> =
                                stored.updates.iter().map(|(_, u)| u.as_slice()).collect();
                            chorus_core::sync_from_stored(stored.snapshot.as_deref(), &updates)
                                .unwrap_or_default()
                        });
                        let peer = queued.iter().find_map(|c| match c {
                            DocCommand::Join { conn: joined, peer, .. } if *joined == conn => Some(peer),
                            _ => None,
                        });
                        if let Some(peer) = peer.filter(|_| !frames.is_empty()) {
                            for frame in frames.iter() {
                                peer.send(frame.clone());
                            }
                            served.push((conn, queued.len()));
                        }
                    }
                }
                queued.push(cmd);
            }
        }
    };
    let room = match built {
        Ok(Ok(room)) => room,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("loading panicked: {e}")),
    };
    if !served.is_empty() {
        let sv = Bytes::from(room.state_vector());
        for (_, i) in served {
            if let DocCommand::Message {
                msg: Message::Sync(SyncMessage::Step1(client_sv)),
                ..
            } = &mut queued[i]
            {
                *client_sv = sv.clone();
            }
        }
    }
    Ok(room)
}

/// The connection whose empty step 1 this is, unless it was served early already.
fn early_step1(cmd: &DocCommand, served: &[(ConnId, usize)]) -> Option<ConnId> {
    match cmd {
        DocCommand::Message {
            conn,
            msg: Message::Sync(SyncMessage::Step1(sv)),
        } if chorus_core::is_empty_state_vector(sv) && !served.iter().any(|(c, _)| c == conn) => {
            Some(*conn)
        }
        _ => None,
    }
}

/// The document could not be loaded: close whoever is waiting (`queued` came
/// while it was loading), stop. The next connection starts a new actor, which
/// tries the load again.
async fn refuse_all(
    docs: &Arc<Documents>,
    key: &DocKey,
    own_tx: &InboxSender<DocCommand>,
    rx: &mut InboxReceiver<DocCommand>,
    queued: Vec<DocCommand>,
    why: &str,
) {
    error!(app = %key.0, doc = %key.1, error = %why, "document could not be loaded; refusing its connections");
    docs.forget(key, own_tx);
    rx.close();
    let rest = std::iter::from_fn(|| rx.try_recv());
    for cmd in queued.into_iter().chain(rest) {
        match cmd {
            DocCommand::Join { peer, .. } => peer.control.close(CloseReason::DocumentUnavailable),
            DocCommand::Read { reply, .. } => {
                let _ = reply.send(Err(format!("document could not be loaded: {why}")));
            }
            DocCommand::External { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(format!(
                    "document could not be loaded: {why}"
                ))));
            }
            DocCommand::Publish { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(format!(
                    "document could not be loaded: {why}"
                ))));
            }
            _ => {}
        }
    }
}

impl DocActor {
    /// Serve the document until it unloads; `queued` (what came while it loaded) first.
    ///
    /// A plain `fn` returning an `async move` block: as an `async fn` its future
    /// stored `self` (1.1 KB) twice, the argument and the local it is moved into
    /// (rust-lang/rust#62958); the block uses its captures in place.
    #[allow(clippy::manual_async_fn)] // the point: see above
    fn run(
        mut self,
        queued: Vec<DocCommand>,
        mut rx: InboxReceiver<DocCommand>,
        own_tx: InboxSender<DocCommand>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let mut queued = Some(queued).filter(|q| !q.is_empty());
            loop {
                if let Some(queued) = queued.take() {
                    let mut stop = Stop::No;
                    for cmd in queued {
                        stop = stop.max(self.handle(cmd));
                    }
                    if self.stops(stop) {
                        break;
                    }
                } else {
                    // Everything the arms need is read here, so the arms borrow no part of `self`.
                    let idle_deadline = match (self.room.is_empty(), self.idle_since) {
                        (true, Some(t)) => Some(t + self.docs.policy.idle_unload),
                        _ => None,
                    };
                    let retry_at = if self.inflight.is_none() {
                        self.retry_at
                    } else {
                        None
                    };
                    let closing_at = self.closing_at;
                    let inflight = self.inflight.as_mut().map(|job| &mut job.done);
                    tokio::select! {
                        first = rx.recv() => {
                            let Some(first) = first else { break };
                            // What else is queued is handled before persisting, taken one
                            // at a time: a batch buffer would cost every loaded document
                            // DOC_BATCH commands of memory.
                            let mut stop = self.handle(first);
                            for _ in 1..DOC_BATCH {
                                let Some(cmd) = rx.try_recv() else { break };
                                stop = stop.max(self.handle(cmd));
                            }
                            if self.stops(stop) {
                                break;
                            }
                        }
                        result = async move {
                            match inflight {
                                Some(done) => done.await,
                                None => std::future::pending().await,
                            }
                        } => {
                            self.completed(result.unwrap_or_else(|_| Err("the store writer has stopped".into())));
                        }
                        _ = sleep_until_opt(idle_deadline) => break,
                        _ = sleep_until_opt(retry_at) => self.retry_at = None,
                        _ = sleep_until_opt(closing_at) => self.close_session(),
                    }
                }
                // What was integrated before a fault may still be saved; the panicking
                // update itself never completed.
                self.collect();
                if self.room.is_poisoned() {
                    warn!(app = %self.key.0, doc = %self.key.1, "yrs panicked on an update; dropping the in-memory document");
                    for (_, c) in self.controls.drain() {
                        c.close(CloseReason::DocumentReset);
                    }
                    break;
                }
                if self.inflight.is_none() && self.retry_at.is_none() {
                    Box::pin(self.persist()).await;
                }
            }
            Box::pin(self.unload(rx, own_tx)).await;
        }
    }

    /// Does `stop` end the actor now?
    fn stops(&self, stop: Stop) -> bool {
        match stop {
            Stop::No => false,
            Stop::IfIdle => self.room.is_empty(),
            Stop::Now => true,
        }
    }

    fn handle(&mut self, cmd: DocCommand) -> Stop {
        match cmd {
            DocCommand::Join {
                conn,
                session,
                peer,
            } => {
                self.controls.insert(conn, peer.control.clone());
                let session = self.admit(conn, session);
                self.editor_joined(conn, &session);
                self.room.join(conn, session, peer);
                self.announce_hold(conn);
                self.touched();
            }
            DocCommand::Message { conn, msg } => {
                if let Err(err) = self.room.receive(conn, msg) {
                    debug!(app = %self.key.0, doc = %self.key.1, conn = conn.0, %err, "closing connection");
                    if let Some(c) = self.controls.remove(&conn) {
                        c.close(CloseReason::Room(err));
                    }
                    self.room.leave(conn);
                    self.editor_left(conn);
                    self.member_gone(conn);
                    self.touched();
                }
            }
            DocCommand::Leave { conn } => {
                self.controls.remove(&conn);
                self.room.leave(conn);
                self.editor_left(conn);
                self.member_gone(conn);
                self.touched();
            }
            DocCommand::Read { format, reply } => {
                let _ = reply.send(Ok(self.read(format)));
            }
            DocCommand::External { change, reply } => self.external_change(change, reply),
            DocCommand::Publish { if_match, reply } => self.publish(&if_match, reply),
            DocCommand::Sessions { reply } => {
                let _ = reply.send(self.sessions());
            }
            DocCommand::Downgrade { session, reply } => {
                let _ = reply.send(self.downgrade(session));
            }
            DocCommand::EndSession { session, reply } => {
                let _ = reply.send(self.end_session(session));
            }
            DocCommand::CloseAll => {
                self.close_all(|| CloseReason::Auth(chorus_auth::AuthError::AppDisabled))
            }
            DocCommand::Unload => return Stop::IfIdle,
            DocCommand::Shutdown => return Stop::Now,
        }
        Stop::No
    }

    fn touched(&mut self) {
        let members = self.room.member_count();
        self.activity.members.store(members, Ordering::Relaxed);
        self.activity
            .last_active_ms
            .store(now_ms(), Ordering::Relaxed);
        self.idle_since = (members == 0).then(Instant::now);
    }

    /// Take what the room integrated since the last call.
    fn collect(&mut self) {
        for u in self.room.take_unsaved() {
            self.unsaved_bytes += u.len() as u64;
            self.unsaved.push(u);
            self.exists = true;
            self.changed_since_point = true;
        }
        self.acks.extend(self.room.take_acks());
        let contributors = self.room.take_contributors();
        self.session_contributors
            .extend(contributors.iter().cloned());
        self.contributors.extend(contributors);
        let (neutralised, rejected) = self.room.take_neutralised();
        if neutralised.total() > 0 || rejected > 0 {
            self.docs.metrics.whitelist(&neutralised, rejected);
        }
        self.enforce_quota();
    }

    fn size_bytes(&self) -> u64 {
        self.snapshot_bytes + self.log_bytes + self.unsaved_bytes
    }

    fn enforce_quota(&mut self) {
        let over = self.size_bytes() > self.docs.policy.max_document_bytes;
        if over != self.room.is_read_only() {
            if over {
                warn!(app = %self.key.0, doc = %self.key.1, size = self.size_bytes(), "document reached its size limit; read-only");
            }
            self.room.set_read_only(over);
        }
    }

    /// Submit the next persistence job, if none is in flight.
    async fn persist(&mut self) {
        if self.inflight.is_some() || self.retry_at.is_some() {
            return;
        }
        self.maybe_auto_history();
        let policy = &self.docs.policy;
        let compact = self.needs_snapshot
            || self.log_records + self.unsaved.len() as u64 > policy.compact_after_updates
            || self.log_bytes + self.unsaved_bytes > policy.compact_after_bytes;
        let history = !self.history_pending.is_empty();
        // History points ride in an append batch; after a failed write the snapshot
        // that closes the possible gap in the log goes first.
        if compact && (self.needs_snapshot || (!history && !self.unsaved.is_empty())) {
            self.submit_snapshot().await;
        } else if !self.unsaved.is_empty() || history {
            self.submit_append().await;
        } else if self.flush_due {
            self.flush_due = false;
            let done = self.docs.persistence.submit(PersistOp::Flush).await;
            self.inflight = Some(Inflight {
                done,
                acks: std::mem::take(&mut self.acks),
                snapshot: None,
                appended_bytes: 0,
                host_replies: std::mem::take(&mut self.host_replies),
                history: Vec::new(),
            });
        } else if !self.acks.is_empty() || !self.host_replies.is_empty() {
            // Nothing new to write and nothing in flight: all of it is durable.
            for (conn, n) in std::mem::take(&mut self.acks) {
                self.room.send_saved(conn, n);
            }
            for reply in std::mem::take(&mut self.host_replies) {
                reply.complete();
            }
        }
    }

    fn next_meta(&mut self, new_records: u64) -> DocMeta {
        let now = now_ms();
        let mut meta = self.meta.clone();
        if meta.created_at_ms == 0 {
            meta.created_at_ms = now;
        }
        meta.updated_at_ms = now;
        meta.update_count += new_records;
        meta.contributors.extend(self.contributors.drain(..));
        meta.state_vector = self.room.state_vector();
        // Whatever the room holds passed this whitelist (a load checks stored content
        // again unless it was stored under the same one).
        meta.content_policy = self.docs.whitelist_for(&self.key.0).fingerprint();
        // The encoder starts with a 1 KiB buffer; the actor keeps this meta for as
        // long as the document stays loaded.
        meta.state_vector.shrink_to_fit();
        meta
    }

    async fn submit_append(&mut self) {
        let records = std::mem::take(&mut self.unsaved);
        let bytes = std::mem::take(&mut self.unsaved_bytes);
        let mut batch = WriteBatch::default();
        for r in &records {
            batch.append(&self.id, self.next_seq, r);
            self.next_seq += 1;
        }
        self.log_records += records.len() as u64;
        let history = std::mem::take(&mut self.history_pending);
        for point in &history {
            batch.put_history(&self.id, point);
        }
        let mut meta = self.next_meta(records.len() as u64);
        meta.size_bytes = self.snapshot_bytes + self.log_bytes + bytes;
        batch.put_meta(&self.id, &meta);
        self.meta = meta;
        self.flush_due = false;
        let done = self.docs.persistence.submit(PersistOp::Append(batch)).await;
        self.inflight = Some(Inflight {
            done,
            acks: std::mem::take(&mut self.acks),
            snapshot: None,
            appended_bytes: bytes,
            host_replies: std::mem::take(&mut self.host_replies),
            history,
        });
    }

    async fn submit_snapshot(&mut self) {
        let new_records = self.unsaved.len() as u64;
        self.unsaved.clear();
        self.unsaved_bytes = 0;
        let snapshot = self.room.encode_state();
        // Every seq handed out so far is covered; the next one starts after it.
        let upto_seq = self.next_seq - 1;
        let mut meta = self.next_meta(new_records);
        meta.size_bytes = snapshot.len() as u64;
        meta.snapshot_seq = upto_seq;
        self.meta = meta.clone();
        let snapshot_len = snapshot.len() as u64;
        self.flush_due = false;
        let done = self
            .docs
            .persistence
            .submit(PersistOp::Compact {
                id: self.id.clone(),
                snapshot,
                upto_seq,
                meta: Box::new(meta),
            })
            .await;
        self.inflight = Some(Inflight {
            done,
            acks: std::mem::take(&mut self.acks),
            snapshot: Some((upto_seq, snapshot_len)),
            appended_bytes: 0,
            host_replies: std::mem::take(&mut self.host_replies),
            history: Vec::new(),
        });
    }

    fn completed(&mut self, result: PersistResult) {
        let Some(job) = self.inflight.take() else {
            return;
        };
        match result {
            Ok(()) => {
                if let Some((_, snapshot_len)) = job.snapshot {
                    self.snapshot_bytes = snapshot_len;
                    self.log_records = 0;
                    self.log_bytes = 0;
                    self.needs_snapshot = false;
                } else {
                    self.log_bytes += job.appended_bytes;
                }
                for (conn, n) in job.acks {
                    self.room.send_saved(conn, n);
                }
                for reply in job.host_replies {
                    reply.complete();
                }
                if job.snapshot.is_some() || job.appended_bytes > 0 {
                    self.saved();
                }
                self.enforce_quota();
            }
            Err(e) => {
                warn!(app = %self.key.0, doc = %self.key.1, error = %e, "document write failed; will write a full snapshot");
                // Not durable: keep the acks for the snapshot that replaces this job.
                let mut acks = job.acks;
                acks.append(&mut self.acks);
                self.acks = acks;
                let mut replies = job.host_replies;
                replies.append(&mut self.host_replies);
                self.host_replies = replies;
                let mut history = job.history;
                history.append(&mut self.history_pending);
                self.history_pending = history;
                self.needs_snapshot = true;
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }

    fn read(&self, format: DraftFormat) -> Draft {
        let doc = self.room.doc();
        let content = match format {
            DraftFormat::Json => DraftContent::Json(chorus_core::render::doc_json(doc)),
            DraftFormat::Html => {
                let (title, html) = chorus_core::render::doc_html(doc);
                // The guard already keeps the document inside the policy; the HTML is
                // cleaned with the same policy anyway, since hosts publish it as is.
                let html = self.room.whitelist().clean_html(&html);
                DraftContent::Html { title, html }
            }
            DraftFormat::Yjs => DraftContent::Yjs(self.room.encode_state()),
        };
        let etag = etag_of(&doc.transact().state_vector());
        if self.exists {
            // What the host read may become the base of its next external change.
            self.docs
                .bases
                .remember(&self.key, &etag, || self.room.encode_state());
        }
        Draft {
            exists: self.exists,
            etag,
            updated_at_ms: self.meta.updated_at_ms,
            content,
        }
    }

    /// Persist what is left, leave the map, and pass on anything that raced in.
    async fn unload(mut self, mut rx: InboxReceiver<DocCommand>, own_tx: InboxSender<DocCommand>) {
        // An editing session still open ends here (its `closed` event goes out with
        // the final write).
        self.close_session();
        // Wait for the job in flight, then write a final snapshot if the log grew.
        for _ in 0..4 {
            if let Some(job) = self.inflight.as_mut() {
                let r = (&mut job.done).await;
                self.completed(r.unwrap_or_else(|_| Err("the store writer has stopped".into())));
            }
            self.collect();
            let log_work = !self.unsaved.is_empty() || self.needs_snapshot || self.log_records > 0;
            if !log_work
                && self.history_pending.is_empty()
                && self.host_replies.is_empty()
                && !self.flush_due
            {
                break;
            }
            // The log folds into a final snapshot; history points follow in an append.
            self.needs_snapshot = log_work;
            self.retry_at = None;
            self.persist().await;
        }
        if self.needs_snapshot || !self.unsaved.is_empty() || !self.history_pending.is_empty() {
            error!(app = %self.key.0, doc = %self.key.1, "unloading with changes the store did not accept");
        }
        for reply in std::mem::take(&mut self.host_replies) {
            reply.fail("the document was unloaded before the change was stored");
        }
        self.docs.forget(&self.key, &own_tx);
        rx.close();
        for (_, c) in self.controls.drain() {
            c.close(CloseReason::Shutdown);
        }
        let mut forwarded = Vec::new();
        while let Some(cmd) = rx.try_recv() {
            if matches!(
                cmd,
                DocCommand::Join { .. }
                    | DocCommand::Read { .. }
                    | DocCommand::External { .. }
                    | DocCommand::Publish { .. }
            ) {
                forwarded.push(cmd);
            }
        }
        if !forwarded.is_empty() {
            let (docs, key) = (self.docs.clone(), self.key.clone());
            tokio::spawn(async move {
                for cmd in forwarded {
                    let _ = docs.dispatch(&key, cmd).await;
                }
            });
        }
        debug!(app = %self.key.0, doc = %self.key.1, "unloaded");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    No,
    IfIdle,
    Now,
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A strong ETag from a state vector: FNV-1a over its (client, clock) pairs in
/// client order (the encoded form's order is unspecified).
pub fn etag_of(sv: &yrs::StateVector) -> String {
    let mut pairs: Vec<(u64, u32)> = sv.iter().map(|(c, k)| (c.get(), *k)).collect();
    pairs.sort_unstable();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (c, k) in pairs {
        for b in c.to_le_bytes().into_iter().chain(k.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("\"{h:016x}\"")
}
