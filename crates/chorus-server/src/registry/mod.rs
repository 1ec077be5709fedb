//! Live documents: one actor task per (app, content), the single owner of its
//! [`Room`] and of that document's persistence. Connections never touch a room
//! directly; they send [`DocCommand`]s over a bounded channel (backpressure on
//! writers) and receive frames on their own bounded queue (a full queue
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

use crate::close::{CloseReason, Closing};
use crate::metrics::Metrics;
use crate::persistence::{PersistOp, PersistResult, Persistence};
use bytes::Bytes;
use chorus_core::{ConnId, Peer, Room, RoomLimits, Session, Whitelist};
use chorus_protocol::Message;
use chorus_store::{DocId, DocMeta, WriteBatch};
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Transact};

/// Commands queued per document actor before senders wait.
const DOC_INBOX: usize = 1024;
/// Commands an actor takes off its inbox per wake-up.
const DOC_BATCH: usize = 64;
/// After a failed store write, how long before the actor tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the sweeper checks the number of loaded documents.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

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
}

impl Default for DocPolicy {
    fn default() -> Self {
        DocPolicy {
            idle_unload: Duration::from_secs(30),
            max_loaded: 10_000,
            compact_after_updates: 1_000,
            compact_after_bytes: 1 << 20,
            max_document_bytes: 32 << 20,
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
    frames: mpsc::Sender<Bytes>,
    control: Arc<ConnControl>,
}

impl QueuePeer {
    /// A peer writing into `frames`, closed through `control` when it falls behind.
    pub fn new(frames: mpsc::Sender<Bytes>, control: Arc<ConnControl>) -> Self {
        QueuePeer { frames, control }
    }
}

impl Peer for QueuePeer {
    fn send(&self, frame: Bytes) -> bool {
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.control.close(CloseReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
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
    tx: mpsc::Sender<DocCommand>,
    activity: Arc<Activity>,
}

impl DocHandle {
    /// Queue a command, waiting while the actor's inbox is full. `Err` if the actor is gone.
    pub async fn send(&self, cmd: DocCommand) -> Result<(), DocCommand> {
        self.tx.send(cmd).await.map_err(|e| e.0)
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
}

impl Documents {
    /// An empty set of documents persisted through `persistence`.
    pub fn new(
        limits: RoomLimits,
        whitelists: HashMap<String, Whitelist>,
        policy: DocPolicy,
        metrics: Arc<Metrics>,
        persistence: Arc<Persistence>,
    ) -> Arc<Self> {
        Arc::new(Documents {
            live: DashMap::new(),
            limits,
            whitelists,
            policy,
            metrics,
            persistence,
            actors: TaskTracker::new(),
        })
    }

    /// Room limits for a document of `app` (its whitelist, or the default one).
    fn limits_for(&self, app: &str) -> RoomLimits {
        let mut limits = self.limits.clone();
        if let Some(w) = self.whitelists.get(app) {
            limits.whitelist = w.clone();
        }
        limits
    }

    /// Number of documents in memory.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no document is in memory.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
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
        self.live
            .entry(key.clone())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(DOC_INBOX);
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
            .clone()
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

    fn forget(&self, key: &DocKey, tx: &mpsc::Sender<DocCommand>) {
        if self
            .live
            .remove_if(key, |_, h| h.tx.same_channel(tx))
            .is_some()
        {
            self.metrics.document_unloaded();
        }
    }

    /// Keep at most `max_loaded` documents: ask the least recently active idle ones
    /// to unload. Runs until `stop` is cancelled.
    pub async fn sweep(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
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
}

async fn run_actor(
    docs: Arc<Documents>,
    key: DocKey,
    mut rx: mpsc::Receiver<DocCommand>,
    own_tx: mpsc::Sender<DocCommand>,
    activity: Arc<Activity>,
) {
    let id = DocId::new(&*key.0, &*key.1);
    let store = docs.persistence.store().clone();
    let load_id = id.clone();
    let loaded = tokio::task::spawn_blocking(move || store.load(&load_id)).await;
    let stored = match loaded {
        Ok(Ok(stored)) => stored,
        Ok(Err(e)) => return refuse_all(&docs, &key, &own_tx, &mut rx, &e.to_string()).await,
        Err(e) => return refuse_all(&docs, &key, &own_tx, &mut rx, &e.to_string()).await,
    };
    let exists = stored.is_some();
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
            let room = Room::from_stored(
                docs.limits_for(&key.0),
                s.snapshot.as_deref(),
                s.updates.iter().map(|(_, u)| u.as_slice()),
            );
            let room = match room {
                Ok(room) => room,
                Err(e) => return refuse_all(&docs, &key, &own_tx, &mut rx, &e.to_string()).await,
            };
            let last_seq = s
                .updates
                .last()
                .map(|(seq, _)| *seq)
                .unwrap_or(s.snapshot_seq);
            let log_bytes: u64 = s.updates.iter().map(|(_, u)| u.len() as u64).sum();
            (
                room,
                s.meta,
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
    };
    actor.enforce_quota();
    actor.run(rx, own_tx).await;
}

/// The document could not be loaded: close whoever is waiting, stop. The next
/// connection starts a new actor, which tries the load again.
async fn refuse_all(
    docs: &Arc<Documents>,
    key: &DocKey,
    own_tx: &mpsc::Sender<DocCommand>,
    rx: &mut mpsc::Receiver<DocCommand>,
    why: &str,
) {
    error!(app = %key.0, doc = %key.1, error = %why, "document could not be loaded; refusing its connections");
    docs.forget(key, own_tx);
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        match cmd {
            DocCommand::Join { peer, .. } => peer.control.close(CloseReason::DocumentUnavailable),
            DocCommand::Read { reply, .. } => {
                let _ = reply.send(Err(format!("document could not be loaded: {why}")));
            }
            _ => {}
        }
    }
}

impl DocActor {
    async fn run(mut self, mut rx: mpsc::Receiver<DocCommand>, own_tx: mpsc::Sender<DocCommand>) {
        let mut batch = Vec::with_capacity(DOC_BATCH);
        loop {
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
            let inflight = self.inflight.as_mut().map(|job| &mut job.done);
            tokio::select! {
                n = rx.recv_many(&mut batch, DOC_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    let mut stop = Stop::No;
                    for cmd in batch.drain(..) {
                        stop = stop.max(self.handle(cmd));
                    }
                    match stop {
                        Stop::No => {}
                        Stop::IfIdle if !self.room.is_empty() => {}
                        Stop::IfIdle | Stop::Now => break,
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
            self.persist().await;
        }
        self.unload(rx, own_tx).await;
    }

    fn handle(&mut self, cmd: DocCommand) -> Stop {
        match cmd {
            DocCommand::Join {
                conn,
                session,
                peer,
            } => {
                self.controls.insert(conn, peer.control.clone());
                self.room.join(conn, session, peer);
                self.touched();
            }
            DocCommand::Message { conn, msg } => {
                if let Err(err) = self.room.receive(conn, msg) {
                    debug!(app = %self.key.0, doc = %self.key.1, conn = conn.0, %err, "closing connection");
                    if let Some(c) = self.controls.remove(&conn) {
                        c.close(CloseReason::Room(err));
                    }
                    self.room.leave(conn);
                    self.touched();
                }
            }
            DocCommand::Leave { conn } => {
                self.controls.remove(&conn);
                self.room.leave(conn);
                self.touched();
            }
            DocCommand::Read { format, reply } => {
                let _ = reply.send(Ok(self.read(format)));
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
        }
        self.acks.extend(self.room.take_acks());
        self.contributors.extend(self.room.take_contributors());
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
        let policy = &self.docs.policy;
        let compact = self.needs_snapshot
            || self.log_records + self.unsaved.len() as u64 > policy.compact_after_updates
            || self.log_bytes + self.unsaved_bytes > policy.compact_after_bytes;
        if compact && (self.needs_snapshot || !self.unsaved.is_empty()) {
            self.submit_snapshot().await;
        } else if !self.unsaved.is_empty() {
            self.submit_append().await;
        } else if !self.acks.is_empty() {
            // Nothing new to write and nothing in flight: all of it is durable.
            for (conn, n) in std::mem::take(&mut self.acks) {
                self.room.send_saved(conn, n);
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
        meta.state_vector = self.room.doc().transact().state_vector().encode_v1();
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
        let mut meta = self.next_meta(records.len() as u64);
        meta.size_bytes = self.snapshot_bytes + self.log_bytes + bytes;
        batch.put_meta(&self.id, &meta);
        self.meta = meta;
        let done = self.docs.persistence.submit(PersistOp::Append(batch)).await;
        self.inflight = Some(Inflight {
            done,
            acks: std::mem::take(&mut self.acks),
            snapshot: None,
            appended_bytes: bytes,
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
        let done = self
            .docs
            .persistence
            .submit(PersistOp::Compact {
                id: self.id.clone(),
                snapshot,
                upto_seq,
                meta,
            })
            .await;
        self.inflight = Some(Inflight {
            done,
            acks: std::mem::take(&mut self.acks),
            snapshot: Some((upto_seq, snapshot_len)),
            appended_bytes: 0,
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
                self.enforce_quota();
            }
            Err(e) => {
                warn!(app = %self.key.0, doc = %self.key.1, error = %e, "document write failed; will write a full snapshot");
                // Not durable: keep the acks for the snapshot that replaces this job.
                let mut acks = job.acks;
                acks.append(&mut self.acks);
                self.acks = acks;
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
        Draft {
            exists: self.exists,
            etag: etag_of(&doc.transact().state_vector()),
            updated_at_ms: self.meta.updated_at_ms,
            content,
        }
    }

    /// Persist what is left, leave the map, and pass on anything that raced in.
    async fn unload(
        mut self,
        mut rx: mpsc::Receiver<DocCommand>,
        own_tx: mpsc::Sender<DocCommand>,
    ) {
        // Wait for the job in flight, then write a final snapshot if the log grew.
        for _ in 0..3 {
            if let Some(job) = self.inflight.as_mut() {
                let r = (&mut job.done).await;
                self.completed(r.unwrap_or_else(|_| Err("the store writer has stopped".into())));
            }
            self.collect();
            if self.unsaved.is_empty() && !self.needs_snapshot && self.log_records == 0 {
                break;
            }
            self.needs_snapshot = true;
            self.retry_at = None;
            self.persist().await;
        }
        if self.needs_snapshot || !self.unsaved.is_empty() {
            error!(app = %self.key.0, doc = %self.key.1, "unloading with changes the store did not accept");
        }
        self.docs.forget(&self.key, &own_tx);
        rx.close();
        for (_, c) in self.controls.drain() {
            c.close(CloseReason::Shutdown);
        }
        let mut forwarded = Vec::new();
        while let Ok(cmd) = rx.try_recv() {
            if matches!(cmd, DocCommand::Join { .. } | DocCommand::Read { .. }) {
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
