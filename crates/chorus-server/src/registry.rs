//! Live documents: one actor task per (app, content), the single owner of its
//! [`Room`]. Connections never touch a room directly; they send [`DocCommand`]s
//! over a bounded channel (backpressure on writers) and receive frames on their
//! own bounded queue (a full queue disconnects that consumer, it never grows).
//!
//! Why an actor and not a lock: yrs transactions are synchronous and must never
//! be held across an `.await`; an actor makes that structural, serialises every
//! change to a document without contention, and lets one task batch work.

use crate::close::{CloseReason, Closing};
use crate::metrics::Metrics;
use bytes::Bytes;
use chorus_core::{ConnId, Peer, Room, RoomLimits, Session};
use chorus_protocol::Message;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Commands queued per document actor before senders wait.
const DOC_INBOX: usize = 1024;
/// Commands an actor takes off its inbox per wake-up.
const DOC_BATCH: usize = 64;

/// Identifies a document: (app id, content id).
pub type DocKey = (Arc<str>, Arc<str>);

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

/// A cloneable address of a document actor.
#[derive(Clone)]
pub struct DocHandle {
    tx: mpsc::Sender<DocCommand>,
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
    metrics: Arc<Metrics>,
}

impl Documents {
    /// An empty set of documents.
    pub fn new(limits: RoomLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Documents {
            live: DashMap::new(),
            limits,
            metrics,
        })
    }

    /// Number of documents in memory.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no document is in memory.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
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
                let room = Room::new(self.limits.clone());
                self.metrics.document_loaded();
                tokio::spawn(run_actor(self.clone(), key.clone(), room, rx, tx.clone()));
                DocHandle { tx }
            })
            .clone()
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
}

async fn run_actor(
    docs: Arc<Documents>,
    key: DocKey,
    mut room: Room<QueuePeer>,
    mut rx: mpsc::Receiver<DocCommand>,
    own_tx: mpsc::Sender<DocCommand>,
) {
    // Close handles of the members, so a refused message closes the right socket.
    let mut controls: HashMap<ConnId, Arc<ConnControl>> = HashMap::new();
    let mut batch = Vec::with_capacity(DOC_BATCH);
    // The actor holds a sender of its own inbox only to compare identities; the
    // map entry is what keeps it reachable. It stops when it is forgotten (poisoned).
    drop(own_tx.downgrade());
    while rx.recv_many(&mut batch, DOC_BATCH).await > 0 {
        for cmd in batch.drain(..) {
            match cmd {
                DocCommand::Join {
                    conn,
                    session,
                    peer,
                } => {
                    controls.insert(conn, peer.control.clone());
                    room.join(conn, session, peer);
                }
                DocCommand::Message { conn, msg } => {
                    if let Err(err) = room.receive(conn, msg) {
                        debug!(app = %key.0, doc = %key.1, conn = conn.0, %err, "closing connection");
                        if let Some(c) = controls.remove(&conn) {
                            c.close(CloseReason::Room(err));
                        }
                        room.leave(conn);
                    }
                }
                DocCommand::Leave { conn } => {
                    controls.remove(&conn);
                    room.leave(conn);
                }
            }
        }
        if room.is_poisoned() {
            warn!(app = %key.0, doc = %key.1, "yrs panicked on an update; dropping the in-memory document");
            for (_, c) in controls.drain() {
                c.close(CloseReason::DocumentReset);
            }
            docs.forget(&key, &own_tx);
            return;
        }
    }
}
