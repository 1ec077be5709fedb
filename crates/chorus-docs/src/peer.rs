//! The connection's side of a document, as the actor sees it: where a member's
//! frames go ([`QueuePeer`]) and how the actor closes it ([`ConnControl`]).
//!
//! The actor says *why* a connection must go ([`Disconnect`]); the server turns that
//! into a close code, in its one place for close codes.

use crate::frames::{FrameSender, PushError};
use crate::link::LinkSender;
use crate::types::Disconnect;
use bytes::Bytes;
use chorus_core::Peer;
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

/// Called once with the reason when a connection is closed (see
/// [`ConnControl::on_close`]).
type OnClose = Box<dyn Fn(&Disconnect) + Send + Sync>;

/// How a document actor (or the server) tells one connection task to close.
#[derive(Default)]
pub struct ConnControl {
    reason: OnceLock<Disconnect>,
    cancelled: CancellationToken,
    /// For a connection of another node (cluster mode): tells that node.
    on_close: OnceLock<OnClose>,
}

impl ConnControl {
    /// Ask the connection to close with `reason` (the first reason wins).
    pub fn close(&self, reason: Disconnect) {
        if self.reason.set(reason).is_ok() {
            if let (Some(notify), Some(reason)) = (self.on_close.get(), self.reason.get()) {
                notify(reason);
            }
        }
        self.cancelled.cancel();
    }

    /// Run `notify` with the reason when the connection is closed (once).
    pub(crate) fn on_close(&self, notify: OnClose) {
        let _ = self.on_close.set(notify);
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
    sink: FrameSink,
    pub(crate) control: std::sync::Arc<ConnControl>,
}

/// Where a member's frames go.
enum FrameSink {
    /// A connection task of this process.
    Local(FrameSender),
    /// A connection of another node (cluster mode), through the document's link to
    /// that node, which sends each frame once per node.
    Remote { link: LinkSender, conn: u64 },
}

impl QueuePeer {
    /// A peer writing into `frames`, closed through `control` when it falls behind.
    pub fn new(frames: FrameSender, control: std::sync::Arc<ConnControl>) -> Self {
        QueuePeer {
            sink: FrameSink::Local(frames),
            control,
        }
    }

    /// Connection `conn` of another node, reached through `link`.
    pub(crate) fn remote(
        link: LinkSender,
        conn: u64,
        control: std::sync::Arc<ConnControl>,
    ) -> Self {
        QueuePeer {
            sink: FrameSink::Remote { link, conn },
            control,
        }
    }
}

impl Peer for QueuePeer {
    fn send(&self, frame: Bytes) -> bool {
        let pushed = match &self.sink {
            FrameSink::Local(frames) => frames.push(frame),
            FrameSink::Remote { link, conn } => link.push(*conn, frame),
        };
        match pushed {
            Ok(()) => true,
            Err(PushError::Full) => {
                self.control.close(Disconnect::SlowConsumer);
                false
            }
            Err(PushError::Closed) => false,
        }
    }

    fn backlog_bytes(&self) -> usize {
        match &self.sink {
            FrameSink::Local(frames) => frames.queued_bytes(),
            // Known to the forwarding node, which holds the connection's queue
            // (bounded in bytes there).
            FrameSink::Remote { .. } => 0,
        }
    }
}
