//! What a document actor is asked ([`DocCommand`]) and what it answers with.
//!
//! Commands that need an answer carry a oneshot sender; the actor answers a host's
//! change only once it is durable, like the "saved" ack an editor gets.

use crate::error::{DocError, HostError};
use crate::peer::QueuePeer;
use crate::types::{Disconnect, Route};
use bytes::Bytes;
use chorus_auth::Mode;
use chorus_core::{ConnId, Session};
use chorus_protocol::Message;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a host read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DraftFormat {
    /// `{title, body}` with `body` as a JSON tree.
    #[default]
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
    /// When it was evicted (0: it was not; then `exists` is false).
    pub evicted_at_ms: u64,
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

/// A change the host asks for.
#[derive(Debug)]
pub struct HostChange {
    /// New title (plain text), if it changes.
    pub title: Option<String>,
    /// New body HTML, if it changes (cleaned by the app's whitelist first).
    pub html: Option<String>,
    /// The document as the host read it (three-way change), if given.
    pub base: Option<Arc<Vec<u8>>>,
    /// For a restore or a discard: the history point it brings back, and who.
    pub restoring: Option<Restoring>,
}

/// Who a host says did something (editors are told); both may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActingUser {
    /// The user's id in the host.
    pub id: String,
    /// Their display name.
    pub name: String,
}

/// What a host did to the draft that its editors are told of, crediting who.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAction {
    /// The draft was published.
    Published,
    /// The unpublished changes were discarded (back to the last published version
    /// or a chosen history point).
    Discarded,
    /// A history point was brought back.
    Restored,
}

impl HostAction {
    /// The wire name (the `host-action` extension message, the history point kind).
    pub fn as_str(self) -> &'static str {
        match self {
            HostAction::Published => "published",
            HostAction::Discarded => "discarded",
            HostAction::Restored => "restored",
        }
    }

    /// The extension message that tells editors of it.
    pub(crate) fn message(self, by: &ActingUser) -> chorus_protocol::ChorusMessage {
        chorus_protocol::ChorusMessage::HostAction {
            action: self.as_str().to_owned(),
            user_id: by.id.clone(),
            name: by.name.clone(),
        }
    }
}

/// A change that brings a history point back.
#[derive(Debug, Clone)]
pub struct Restoring {
    /// The point brought back.
    pub point: u64,
    /// [`HostAction::Restored`] or [`HostAction::Discarded`] (recorded as a
    /// `restore` or a `discard` history point).
    pub action: HostAction,
    /// Who, as the host named them.
    pub by: ActingUser,
}

/// A [`HostChange`] made ready off the actor: the body HTML parsed, cleaned and
/// fitted, and the minimal edit computed against its base on a blocking thread.
/// Only [`crate::Documents::external_change`] makes one.
#[derive(Debug)]
pub struct PreparedChange {
    pub(crate) edit: chorus_core::ExternalEdit,
    pub(crate) restoring: Option<Restoring>,
}

/// The live document's state vector (and its state, when the change has no base
/// of its own), taken by the actor for a change computed elsewhere.
#[derive(Debug)]
pub struct BaseState {
    pub(crate) state_vector: yrs::StateVector,
    pub(crate) state: Option<Vec<u8>>,
}

/// The draft as a publish found it (its ETag matched), rendered by the actor and
/// cleaned off it. Only [`crate::Documents::publish`] makes one.
#[derive(Debug)]
pub struct PublishDraft {
    pub(crate) etag: String,
    pub(crate) title: String,
    pub(crate) html: String,
}

/// What an applied change answers.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    /// The draft's ETag after the change.
    pub etag: String,
    /// Fields that changed (`title`, `body`); empty if the content already matched.
    pub fields: Vec<String>,
}

/// What a publish answers.
#[derive(Debug, Clone)]
pub struct Published {
    /// The published title.
    pub title: String,
    /// The published body HTML (cleaned by the app's whitelist).
    pub html: String,
    /// The ETag that was published.
    pub etag: String,
    /// When (ms since the epoch).
    pub published_at_ms: u64,
}

/// What a deletion answers.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// Sessions that were connected and were closed by it.
    pub closed_sessions: usize,
}

/// One connected session, as the host sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Identifies the session within its document (for downgrade and end).
    pub id: u64,
    /// User id (the token's `sub`).
    pub user: String,
    /// Display name.
    pub name: String,
    /// What it may do now (`edit` or `view`).
    pub mode: Mode,
    /// Exclusive mode: waiting for the hold (it asked for edit).
    pub waiting: bool,
    /// When it joined (ms since the epoch).
    pub since_ms: u64,
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
        /// When the connection decoded it (for the fan-out delay).
        received: std::time::Instant,
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
        reply: oneshot::Sender<Result<Draft, DocError>>,
    },
    /// The live state an external change is computed against (see
    /// [`crate::Documents::external_change`]).
    Base {
        /// Include the whole state (the change names no base of its own).
        with_state: bool,
        /// The state vector, and the state if asked for.
        reply: oneshot::Sender<Result<BaseState, DocError>>,
    },
    /// Merge a host's prepared change (an external change or a restore).
    External {
        /// The change, computed off the actor.
        change: PreparedChange,
        /// Answered once the change is durable.
        reply: oneshot::Sender<Result<ChangeOutcome, HostError>>,
    },
    /// The draft's title and body HTML as rendered (not yet cleaned), if it exists
    /// and its ETag is still `if_match` (see [`crate::Documents::publish`]).
    Render {
        /// The ETag the host read.
        if_match: String,
        /// The rendered draft (`html` uncleaned), or why not.
        reply: oneshot::Sender<Result<PublishDraft, HostError>>,
    },
    /// Publish a rendered and cleaned draft if the ETag has not moved since.
    Publish {
        /// What [`DocCommand::Render`] gave, with its HTML cleaned.
        draft: PublishDraft,
        /// Who published, as the host named them (editors are told).
        by: ActingUser,
        /// Answered once the history point and the publication are durable.
        reply: oneshot::Sender<Result<Published, HostError>>,
    },
    /// A host deletes the draft: its editors are closed, its records removed, the
    /// actor stops (the next use starts an empty document).
    Delete {
        /// Answered once the deletion is durable; `NotFound` if it was never stored.
        reply: oneshot::Sender<Result<Deleted, HostError>>,
    },
    /// The retention sweep: evict the draft if nobody is connected and it was neither
    /// changed nor opened since `cutoff_ms`; the actor then stops.
    Evict {
        /// Last use (change or session) before which it goes.
        cutoff_ms: u64,
        /// Whether it was evicted (answered once that is durable).
        reply: oneshot::Sender<Result<bool, HostError>>,
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
    /// The app was disabled: close every session ([`crate::Disconnect::AppDisabled`]).
    CloseAll,
    /// Cluster mode: what the bus brought for this document, or asks of it.
    Cluster(ClusterCommand),
    /// Unload if nobody is connected (the sweeper keeping memory bounded).
    Unload,
    /// Persist everything and stop (server shutdown).
    Shutdown,
}

impl DocCommand {
    /// The connection a join, message or leave is about.
    pub(crate) fn connection(&self) -> Option<ConnId> {
        match self {
            DocCommand::Join { conn, .. }
            | DocCommand::Message { conn, .. }
            | DocCommand::Leave { conn, .. } => Some(*conn),
            _ => None,
        }
    }

    /// What an actor that stops hands to the next actor of its document instead of
    /// dropping: joins and everything that waits for an answer.
    pub(crate) fn outlives_its_actor(&self) -> bool {
        matches!(
            self,
            DocCommand::Join { .. }
                | DocCommand::Read { .. }
                | DocCommand::Base { .. }
                | DocCommand::Render { .. }
                | DocCommand::External { .. }
                | DocCommand::Publish { .. }
                | DocCommand::Delete { .. }
                | DocCommand::Cluster(ClusterCommand(
                    ClusterOp::Route { .. } | ClusterOp::RemoteJoin { .. }
                ))
        )
    }
}

/// What the cluster asks of an actor (opaque outside this crate).
pub struct ClusterCommand(pub(crate) ClusterOp);

impl std::fmt::Debug for ClusterCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterCommand")
    }
}

pub(crate) enum ClusterOp {
    /// Owner: a connection of `node` joins.
    RemoteJoin {
        node: Arc<str>,
        conn: u64,
        session: Session,
    },
    /// Owner: a message from connection `conn` of `node`.
    RemoteMessage {
        node: Arc<str>,
        conn: u64,
        msg: Message,
    },
    /// Owner: connection `conn` of `node` ended.
    RemoteLeave { node: Arc<str>, conn: u64 },
    /// Proxy: a frame from `node` (taken only if it is the owner) for some local
    /// connections.
    Deliver {
        node: Arc<str>,
        frame: Bytes,
        to: Vec<u64>,
    },
    /// Proxy: `node` (taken only if it is the owner) closes a local connection.
    Close {
        node: Arc<str>,
        conn: u64,
        reason: Disconnect,
    },
    /// What this node shared with `node` may be lost (or it is down).
    NodeLost { node: Arc<str> },
    /// This node's bus subscription broke: everything shared may be lost.
    BusLost,
    /// Owner: the lease was taken over; stop without writing.
    LeaseLost,
    /// Where is the document served?
    Route { reply: oneshot::Sender<Route> },
}

pub(crate) fn cluster_cmd(op: ClusterOp) -> DocCommand {
    DocCommand::Cluster(ClusterCommand(op))
}
