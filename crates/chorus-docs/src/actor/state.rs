//! The plain state a document actor keeps, grouped by purpose: [`Writes`] (what
//! is stored and what is on its way to the store), [`EditingSession`] (the webhook
//! session between `editing` and `closed`), [`ExclusiveHold`] (apps with
//! `collaboration = false`), [`Members`] and [`RemoteMembers`] (how to reach and
//! close each connection), and the host answers waiting for a write
//! ([`HostReply`]). Data only: the behaviour is in the actor's other files.

use crate::command::{ChangeOutcome, Published};
use crate::error::{DocError, HostError};
use crate::link::LinkSender;
use crate::peer::ConnControl;
use crate::plan::WritePlan;
use crate::writer::PersistResult;
use chorus_core::{ConnId, Session};
use chorus_hooks::HookEvent;
use chorus_protocol::ChorusMessage;
use chorus_store::{DocMeta, HistoryPoint};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What is stored of the document and what is on its way to the store.
pub(super) struct Writes {
    /// What to write next (counters and the failure state).
    pub(super) plan: WritePlan,
    /// The document existed in the store, or was changed since loading.
    pub(super) exists: bool,
    /// The metadata as last submitted.
    pub(super) meta: DocMeta,
    /// The next log sequence number.
    pub(super) next_seq: u64,
    /// Integrated updates not yet submitted.
    pub(super) unsaved: Vec<Vec<u8>>,
    /// "Saved up to n" acks owed once what is unsaved is durable.
    pub(super) acks: Vec<(ConnId, u64)>,
    /// Users who contributed since the last write (for the metadata).
    pub(super) contributors: Vec<String>,
    /// The job in flight and what waits for it.
    pub(super) inflight: Option<Inflight>,
    /// When writing may resume after a failure.
    pub(super) retry_at: Option<Instant>,
    /// History points not yet submitted.
    pub(super) history_pending: Vec<HistoryPoint>,
    /// Host answers waiting for the next write.
    pub(super) host_replies: Vec<HostReply>,
    /// Webhook events for the next write (or a flush-only job).
    pub(super) events: Vec<HookEvent>,
    /// The document changed since the last history point.
    pub(super) changed_since_point: bool,
    /// `meta` changed with no update behind it (a revocation) and is to be written.
    pub(super) meta_changed: bool,
}

/// The persistence job in flight for one document.
pub(super) struct Inflight {
    pub(super) done: oneshot::Receiver<PersistResult>,
    /// Acks to send once durable.
    pub(super) acks: Vec<(ConnId, u64)>,
    /// Host answers to send once durable.
    pub(super) host_replies: Vec<HostReply>,
    /// History points this job writes (queued again if it fails).
    pub(super) history: Vec<HistoryPoint>,
    /// Webhook events this job writes, kept to raise again should it fail without
    /// storing them (the outbox refused them, or PostgreSQL rolled them back).
    pub(super) events: Vec<HookEvent>,
}

/// The editing session webhooks describe: opened by the first editor (`editing`),
/// closed a delay after the last one left (`closed`).
#[derive(Default)]
pub(super) struct EditingSession {
    /// Connected edit-mode members and their users.
    pub(super) editors: HashMap<ConnId, String>,
    /// `editing` was raised and `closed` not yet.
    pub(super) open: bool,
    /// When `closed` is due (every editor left).
    pub(super) closing_at: Option<Instant>,
    /// Who changed the draft during the session.
    pub(super) contributors: BTreeSet<String>,
    /// When the last `saved` event was raised.
    pub(super) last_saved_hook: Option<Instant>,
}

/// Exclusive mode: the session holding the draft, and those waiting for it in the
/// order they came.
#[derive(Default)]
pub(super) struct ExclusiveHold {
    pub(super) holder: Option<ConnId>,
    pub(super) waiting: Vec<ConnId>,
}

/// How to reach each connection besides its frames.
#[derive(Default)]
pub(super) struct Members {
    /// Closes the connection.
    pub(super) controls: HashMap<ConnId, Arc<ConnControl>>,
    /// When each member joined (ms since the epoch).
    pub(super) joined_at: HashMap<ConnId, u64>,
    /// Each member's session timers (only while the app's policy has any).
    pub(super) clocks: HashMap<ConnId, SessionClock>,
}

/// One member's time under the session policy.
pub(super) struct SessionClock {
    pub(super) joined: Instant,
    /// Its last input: a change to the document, or to its presence.
    pub(super) last_input: Instant,
    /// It was warned since its last input.
    pub(super) warned: bool,
    /// A hash of its presence states as last sent (a renewal that repeats them is
    /// no input).
    pub(super) presence: u64,
}

/// Members that are connections of other nodes.
#[derive(Default)]
pub(super) struct RemoteMembers {
    /// (node, its connection number) → the member's id here.
    pub(super) by_remote: HashMap<(Arc<str>, u64), ConnId>,
    /// The member's id here → (node, its connection number).
    pub(super) of_local: HashMap<ConnId, (Arc<str>, u64)>,
    /// One link per node with members.
    pub(super) links: HashMap<Arc<str>, LinkSender>,
}

impl RemoteMembers {
    /// Forget a member that left or was closed (by its id here).
    pub(super) fn forget(&mut self, local: ConnId) {
        if let Some(remote) = self.of_local.remove(&local) {
            self.by_remote.remove(&remote);
            let node = remote.0;
            if !self.of_local.values().any(|(n, _)| *n == node) {
                // The last member of that node: its link task ends with this sender.
                self.links.remove(&node);
            }
        }
    }
}

/// A host answer waiting for the store, with what the editors are then told.
pub(super) enum HostReply {
    Change(
        oneshot::Sender<Result<ChangeOutcome, HostError>>,
        ChangeOutcome,
        Option<ChorusMessage>,
    ),
    Publish(
        oneshot::Sender<Result<Published, HostError>>,
        Published,
        Option<ChorusMessage>,
    ),
}

impl HostReply {
    /// The write carrying the operation is durable: answer; gives what the editors
    /// are to be told now.
    pub(super) fn complete(self) -> Option<ChorusMessage> {
        match self {
            HostReply::Change(tx, outcome, tell) => {
                drop(tx.send(Ok(outcome)));
                tell
            }
            HostReply::Publish(tx, published, tell) => {
                drop(tx.send(Ok(published)));
                tell
            }
        }
    }

    /// The operation can no longer be made durable: answer with an error.
    pub(super) fn fail(self, why: DocError) {
        let err = HostError::Unavailable(why);
        match self {
            HostReply::Change(tx, ..) => drop(tx.send(Err(err))),
            HostReply::Publish(tx, ..) => drop(tx.send(Err(err))),
        }
    }
}

/// Where a deletion's answer goes.
pub(super) type DeleteReply = oneshot::Sender<Result<crate::command::Deleted, HostError>>;

/// How a draft's life ends when its actor stops (instead of a final write).
pub(super) enum Ending {
    /// The host deleted it.
    Delete(DeleteReply),
    /// The retention sweep evicts it.
    Evict(oneshot::Sender<Result<bool, HostError>>),
}

/// What a join gets under the app's editor cap.
pub(super) enum Capped {
    /// As it asked (or view-only, which the cap does not count).
    AsIs(Arc<Session>),
    /// View-only: the document has its editors.
    View(Arc<Session>),
    /// Refused: the document has its editors.
    Refused,
}

/// How a join fares against the document's revocations.
pub(super) enum Admission {
    /// As its token says.
    AsIs(Arc<Session>),
    /// View-only: the host downgraded this user.
    Downgraded(Arc<Session>),
    /// Not at all: the host ended this user's session.
    Ended,
}
