//! One document's task, the single owner of its [`Room`] and of that document's
//! persistence. Connections never touch a room directly; they send
//! [`DocCommand`]s into its bounded inbox (backpressure on writers) and receive
//! frames on their own bounded queue (a full queue disconnects that consumer, it
//! never grows).
//!
//! Why an actor and not a lock: yrs transactions are synchronous and must never
//! be held across an `.await`; an actor makes that structural, serialises every
//! change to a document without contention, and batches what reaches the store.
//!
//! Life of a document actor:
//! 1. **load** (`load.rs`): snapshot + log from the store (on a blocking thread). No
//!    command is handled before the load finished; a failed load never becomes an
//!    empty document (joiners are closed with [`Disconnect::DocumentUnavailable`] and
//!    the next connect retries).
//! 2. **serve** (this file): apply messages; after each batch of commands, hand what
//!    the room integrated to the group-commit writer (`persist.rs`, following
//!    [`crate::plan`]) and tell each opted-in sender "saved up to n" only when its job
//!    is durable.
//! 3. **unload** (`persist.rs`): once nobody is connected for `idle_unload_secs` (or
//!    the sweeper asks, to keep at most `max_loaded_docs` in memory), write a final
//!    snapshot, leave the map, and hand any command that raced in to a fresh actor.
//!
//! The actor's state is grouped by purpose in `state.rs` (data only); this file
//! holds the actor and its serve loop, and each other file one concern of its
//! behaviour. They use this file and `state.rs`; this file uses none of them.
//!
//! What an actor takes from outside is its [`DocEnv`] and an [`Exit`]: it never
//! sees the registry that started it, so it can be run on its own.

mod events;
mod host;
mod lifecycle;
mod load;
mod persist;
mod policy;
mod proxy;
mod remote;
mod sessions;
mod state;

pub(crate) use load::run_actor;
use state::{Admission, Capped, EditingSession, ExclusiveHold, Members, RemoteMembers, Writes};

use crate::command::DocCommand;
use crate::env::{Activity, DocEnv, Exit};
use crate::inbox::{InboxReceiver, InboxSender};
use crate::peer::{QueuePeer, Sweep};
use crate::types::Disconnect;
use crate::types::DocKey;
use chorus_core::{ConnId, Room};
use chorus_protocol::{ChorusMessage, Message, SyncMessage};
use chorus_store::DocId;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Commands an actor takes off its inbox per wake-up.
const DOC_BATCH: usize = 64;
/// Members an end-of-turn sweep writes to before it lets the worker run other
/// tasks (~1–2 ms of socket writes).
const SWEEP_SLICE: usize = 256;

struct DocActor {
    env: Arc<DocEnv>,
    /// How it leaves the map of live documents.
    exit: Arc<dyn Exit>,
    key: DocKey,
    id: DocId,
    room: Room<QueuePeer>,
    activity: Arc<Activity>,
    idle_since: Option<Instant>,
    writes: Writes,
    session: EditingSession,
    hold: ExclusiveHold,
    members: Members,
    /// Cluster mode: this node's lease on the document (its fencing token), and
    /// whether it was lost (then nothing may be written: the store would refuse it).
    lease: Option<u64>,
    lease_lost: bool,
    /// Cluster mode: members that are connections of other nodes.
    remote: RemoteMembers,
    /// Members written to directly with frames staged this turn.
    sweep: Arc<Sweep>,
    /// The draft's life ends (the host deleted it, or it is evicted): the actor
    /// stops, removing it instead of the final write, and answers here.
    ending: Option<state::Ending>,
    /// When the session timers are looked at next (see `policy.rs`).
    session_check_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    No,
    IfIdle,
    Now,
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
                        (true, Some(t)) => Some(t + self.env.policy.idle_unload),
                        _ => None,
                    };
                    let retry_at = if self.writes.inflight.is_none() {
                        self.writes.retry_at
                    } else {
                        None
                    };
                    let closing_at = self.session.closing_at;
                    let session_check_at = self.session_check_at;
                    let inflight = self.writes.inflight.as_mut().map(|job| &mut job.done);
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
                            self.completed(result.unwrap_or(Err(crate::DocError::WriterStopped)));
                            if self.lease_lost {
                                break;
                            }
                        }
                        _ = sleep_until_opt(idle_deadline) => break,
                        _ = sleep_until_opt(retry_at) => {
                            self.writes.retry_at = None;
                            self.writes.plan.retry_due();
                        }
                        _ = sleep_until_opt(closing_at) => Box::pin(self.close_session()).await,
                        _ = sleep_until_opt(session_check_at) => self.check_sessions(),
                    }
                }
                // What was integrated before a fault may still be saved; the panicking
                // update itself never completed.
                self.collect();
                if self.room.is_poisoned() {
                    warn!(app = %self.key.app, doc = %self.key.doc, "yrs panicked on an update; dropping the in-memory document");
                    for (_, c) in self.members.controls.drain() {
                        c.close(Disconnect::DocumentReset);
                    }
                    break;
                }
                if !self.writes.plan.is_busy() {
                    Box::pin(self.persist()).await;
                }
                self.room.flush_presence();
                if self.sweep.is_due() {
                    // Boxed: the sweep's state would otherwise be part of every
                    // loaded document's future.
                    Box::pin(self.sweep()).await;
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
                mut peer,
            } => {
                peer.swept_by(&self.sweep);
                if self.writes.meta.evicted_at_ms > 0 {
                    // Its content went to the host: an empty draft a client would
                    // fill with its own copy is not offered.
                    peer.control.close(Disconnect::Evicted);
                    self.remote.forget(conn);
                    return Stop::No;
                }
                let (session, downgraded) = match self.judge_join(session) {
                    Admission::AsIs(session) => (session, false),
                    Admission::Downgraded(session) => (session, true),
                    Admission::Ended => {
                        peer.control.close(Disconnect::SessionEnded);
                        self.remote.forget(conn);
                        return Stop::No;
                    }
                };
                let (session, capped) = match self.cap_editors(session) {
                    Capped::AsIs(session) => (session, false),
                    Capped::View(session) => (session, true),
                    Capped::Refused => {
                        peer.control.close(Disconnect::TooManyEditors);
                        self.remote.forget(conn);
                        return Stop::No;
                    }
                };
                self.members.controls.insert(conn, peer.control.clone());
                let session = self.admit(conn, session);
                self.editor_joined(conn, &session);
                self.room.join(conn, session, peer);
                self.clock_started(conn);
                self.note_opened();
                if downgraded || capped {
                    let reason = if downgraded {
                        "downgraded"
                    } else {
                        "too-many-editors"
                    };
                    self.room.notify(
                        conn,
                        ChorusMessage::ReadOnly {
                            reason: reason.into(),
                        },
                    );
                }
                self.announce_hold(conn);
                self.touched();
            }
            DocCommand::Message {
                conn,
                msg,
                received,
            } => {
                self.note_input(conn, &msg);
                let fans_out = matches!(
                    msg,
                    Message::Sync(SyncMessage::Update(_) | SyncMessage::Step2(_))
                        | Message::Awareness(_)
                );
                let result = self.room.receive(conn, msg);
                if fans_out && result.is_ok() {
                    self.env.metrics.fanout(received.elapsed());
                }
                if let Err(err) = result {
                    debug!(app = %self.key.app, doc = %self.key.doc, conn = conn.0, %err, "closing connection");
                    if let Some(c) = self.members.controls.remove(&conn) {
                        c.close(Disconnect::Room(err));
                    }
                    self.member_left(conn);
                }
            }
            DocCommand::Leave { conn } => {
                self.members.controls.remove(&conn);
                self.member_left(conn);
            }
            DocCommand::Read { format, reply } => self.read(format, reply),
            DocCommand::Base { with_state, reply } => {
                let _ = reply.send(Ok(self.base_state(with_state)));
            }
            DocCommand::External { change, reply } => self.external_change(change, reply),
            DocCommand::Render { if_match, reply } => {
                let _ = reply.send(self.render(&if_match));
            }
            DocCommand::Publish { draft, by, reply } => self.publish(draft, by, reply),
            DocCommand::Delete { reply } => {
                if !self.writes.exists {
                    let _ = reply.send(Err(crate::HostError::NotFound));
                    return Stop::No;
                }
                if self.ending.is_none() {
                    self.ending = Some(state::Ending::Delete(reply));
                } else {
                    // Its life already ends this turn (a deletion or an eviction
                    // came first): by the time this would act, it is gone.
                    let _ = reply.send(Err(crate::HostError::NotFound));
                }
                return Stop::Now;
            }
            DocCommand::Evict { cutoff_ms, reply } => {
                if self.ending.is_some() || !self.evictable(cutoff_ms) {
                    let _ = reply.send(Ok(false));
                    return Stop::No;
                }
                self.ending = Some(state::Ending::Evict(reply));
                return Stop::Now;
            }
            DocCommand::Sessions { reply } => {
                let _ = reply.send(self.sessions());
            }
            DocCommand::Downgrade { session, reply } => {
                let _ = reply.send(self.downgrade(session));
            }
            DocCommand::EndSession { session, reply } => {
                let _ = reply.send(self.end_session(session));
            }
            DocCommand::CloseAll => self.close_all(Disconnect::AppDisabled),
            DocCommand::Cluster(crate::command::ClusterCommand(op)) => {
                self.cluster_command(op);
                if self.lease_lost {
                    return Stop::Now;
                }
            }
            DocCommand::Unload => return Stop::IfIdle,
            DocCommand::Shutdown => return Stop::Now,
        }
        Stop::No
    }

    /// A member is gone (left, refused, ended): out of the room, the editing
    /// session and the hold.
    fn member_left(&mut self, conn: ConnId) {
        self.members.clocks.remove(&conn);
        self.remote.forget(conn);
        self.room.leave(conn);
        self.editor_left(conn);
        self.member_gone(conn);
        self.touched();
    }

    async fn sweep(&self) {
        sweep(&self.sweep, &self.env).await;
    }

    fn touched(&mut self) {
        self.idle_since = self.activity.record(self.room.member_count());
    }
}

/// The end of a turn (of a document's actor, or of a proxy's): every member's
/// staged frames to its socket, one write each. A large document's sweep lets the
/// worker run other tasks every [`SWEEP_SLICE`] members: thousands of writes must
/// not starve the other documents of the same worker.
async fn sweep(sweep: &Sweep, env: &DocEnv) {
    let started = std::time::Instant::now();
    let due = sweep.take();
    let mut members = 0;
    for (i, slice) in due.chunks(SWEEP_SLICE).enumerate() {
        if i > 0 {
            tokio::task::yield_now().await;
        }
        members += slice.iter().filter(|m| m.flush()).count();
    }
    env.metrics.broadcast_sweep(members, started.elapsed());
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

#[cfg(test)]
mod tests;
