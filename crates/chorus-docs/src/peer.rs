//! The connection's side of a document, as the actor sees it: where a member's
//! frames go ([`QueuePeer`]), how the frames staged in a turn leave ([`Sweep`])
//! and how the actor closes a member ([`ConnControl`]).
//!
//! A member with a [`DirectSink`] is written to by the actor itself: what the room
//! sends it during a turn is staged (a shared `Bytes` each, encoded once for every
//! member) and the [`Sweep`] at the end of the turn hands each member its frames
//! in one write. Everything a member is sent goes the same way, so its frames keep
//! their order; frames still staged when it is closed or dropped are handed over
//! first, so an error frame still precedes its close.
//!
//! The actor says *why* a connection must go ([`Disconnect`]); the server turns that
//! into a close code, in its one place for close codes.

use crate::direct::DirectSink;
use crate::frames::{FrameSender, PushError};
use crate::link::LinkSender;
use crate::types::Disconnect;
use bytes::Bytes;
use chorus_core::Peer;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
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
    /// For a member written to directly: its staged frames, handed over before the
    /// close takes effect.
    direct: OnceLock<Weak<DirectMember>>,
}

impl ConnControl {
    /// Ask the connection to close with `reason` (the first reason wins).
    pub fn close(&self, reason: Disconnect) {
        if self.reason.set(reason).is_ok() {
            if let Some(member) = self.direct.get().and_then(Weak::upgrade) {
                member.flush();
            }
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

/// A room member's outbound side: a bounded queue of encoded frames, or frames
/// staged for the socket of a [`DirectSink`].
pub struct QueuePeer {
    sink: FrameSink,
    pub(crate) control: std::sync::Arc<ConnControl>,
}

/// Where a member's frames go.
enum FrameSink {
    /// A connection task of this process.
    Local(FrameSender),
    /// A connection of this process whose socket the actor writes into: staged,
    /// then written by the document's [`Sweep`] (or at once, with none).
    Direct {
        member: Arc<DirectMember>,
        sweep: Option<Arc<Sweep>>,
    },
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

    /// A peer whose frames go straight into `sink`: staged during a turn and
    /// written by the sweep the actor attaches (`swept_by`); a peer
    /// with no sweep writes each frame at once.
    pub fn direct(sink: Arc<dyn DirectSink>, control: std::sync::Arc<ConnControl>) -> Self {
        let member = Arc::new(DirectMember {
            sink,
            staged: Mutex::new(Vec::new()),
            control: control.clone(),
        });
        let _ = control.direct.set(Arc::downgrade(&member));
        QueuePeer {
            sink: FrameSink::Direct {
                member,
                sweep: None,
            },
            control,
        }
    }

    /// From now on, frames for this peer wait for `sweep` (a no-op for a peer that
    /// is not written to directly).
    pub(crate) fn swept_by(&mut self, sweep: &Arc<Sweep>) {
        if let FrameSink::Direct { sweep: s, .. } = &mut self.sink {
            *s = Some(sweep.clone());
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
            FrameSink::Direct { member, sweep } => {
                let first = {
                    let mut staged = lock(&member.staged);
                    staged.push(frame);
                    staged.len() == 1
                };
                if first {
                    match sweep {
                        Some(sweep) => lock(&sweep.due).push(member.clone()),
                        None => {
                            member.flush();
                        }
                    }
                }
                // A member that falls behind is closed by the write (the sweep's or
                // this one); until its connection leaves it stays in the room.
                return true;
            }
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
            FrameSink::Direct { member, .. } => {
                let staged: usize = lock(&member.staged).iter().map(Bytes::len).sum();
                staged + member.sink.backlog_bytes()
            }
            // Known to the forwarding node, which holds the connection's queue
            // (bounded in bytes there).
            FrameSink::Remote { .. } => 0,
        }
    }
}

impl Drop for QueuePeer {
    fn drop(&mut self) {
        // A member leaving mid-turn still gets what the turn sent it (the frame
        // explaining why it is closed, say).
        if let FrameSink::Direct { member, .. } = &self.sink {
            member.flush();
        }
    }
}

/// A member written to directly: its sink and the frames staged for it this turn.
pub(crate) struct DirectMember {
    sink: Arc<dyn DirectSink>,
    staged: Mutex<Vec<Bytes>>,
    control: Arc<ConnControl>,
}

impl DirectMember {
    /// Hand what is staged to the socket. True if there was anything.
    pub(crate) fn flush(&self) -> bool {
        let frames = std::mem::take(&mut *lock(&self.staged));
        if frames.is_empty() {
            return false;
        }
        if let Err(PushError::Full) = self.sink.write(&frames) {
            self.control.close(Disconnect::SlowConsumer);
        }
        true
    }
}

/// The members of one document with frames staged since the last sweep. The
/// actor runs it at the end of every turn: one write per member, however many
/// frames the turn sent it.
#[derive(Default)]
pub(crate) struct Sweep {
    due: Mutex<Vec<Arc<DirectMember>>>,
}

impl Sweep {
    /// The members due, for a caller that hands them over in parts.
    pub(crate) fn take(&self) -> Vec<Arc<DirectMember>> {
        std::mem::take(&mut *lock(&self.due))
    }

    /// Whether anything is staged.
    pub(crate) fn is_due(&self) -> bool {
        !lock(&self.due).is_empty()
    }
}

/// A lock nobody holds across a panic that matters: a poisoned one is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
