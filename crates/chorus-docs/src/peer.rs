//! The connection's side of a document, as the actor sees it: where a member's
//! frames go ([`QueuePeer`]) and how the actor closes it ([`ConnControl`]).
//!
//! The actor says *why* a connection must go ([`Disconnect`]); the server turns that
//! into a close code, in its one place for close codes.

use crate::outbox::{OutboxSender, PushError};
use bytes::Bytes;
use chorus_core::{Peer, RoomError};
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

/// Why the document layer closes a connection. Serializable: in cluster mode the
/// owner tells the connection's node why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Disconnect {
    /// The room refused what the connection sent.
    #[error("room: {0}")]
    Room(#[from] RoomError),
    /// Its outbound queue filled up: it could not keep up with the document.
    #[error("slow consumer")]
    SlowConsumer,
    /// The document could not be kept in memory safely (yrs panicked).
    #[error("document reset")]
    DocumentReset,
    /// The document could not be loaded from the store.
    #[error("document unavailable")]
    DocumentUnavailable,
    /// The host ended this session.
    #[error("session ended by the host")]
    SessionEnded,
    /// The app was disabled.
    #[error("app disabled")]
    AppDisabled,
    /// The document stopped (server shutdown, or it unloaded under the connection).
    #[error("document stopped")]
    Stopped,
    /// Cluster mode: the document's owner changed, or messages between this node
    /// and the owner were lost; reconnecting resyncs with the current owner.
    #[error("document moved to another node")]
    Moved,
}

/// How a document actor (or the server) tells one connection task to close.
#[derive(Default)]
pub struct ConnControl {
    reason: OnceLock<Disconnect>,
    cancelled: CancellationToken,
}

impl ConnControl {
    /// Ask the connection to close with `reason` (the first reason wins).
    pub fn close(&self, reason: Disconnect) {
        let _ = self.reason.set(reason);
        self.cancelled.cancel();
    }

    /// Resolves once [`ConnControl::close`] was called.
    pub async fn closed(&self) {
        self.cancelled.cancelled().await
    }

    /// The reason given to [`ConnControl::close`].
    pub fn reason(&self) -> Option<&Disconnect> {
        self.reason.get()
    }
}

/// A room member's outbound side: a bounded queue of encoded frames.
pub struct QueuePeer {
    frames: OutboxSender,
    pub(crate) control: std::sync::Arc<ConnControl>,
}

impl QueuePeer {
    /// A peer writing into `frames`, closed through `control` when it falls behind.
    pub fn new(frames: OutboxSender, control: std::sync::Arc<ConnControl>) -> Self {
        QueuePeer { frames, control }
    }
}

impl Peer for QueuePeer {
    fn send(&self, frame: Bytes) -> bool {
        match self.frames.push(frame) {
            Ok(()) => true,
            Err(PushError::Full) => {
                self.control.close(Disconnect::SlowConsumer);
                false
            }
            Err(PushError::Closed) => false,
        }
    }
}
