//! A member the document actor writes to itself: what the actor needs of a
//! connection whose socket it may write into directly ([`DirectSink`]).
//!
//! Why: a fan-out used to be one push into every member's queue, one wake of
//! every member's task, a `select!` pass, a timer reset and a `send()` from each
//! task. Most of that is scheduling, not writing: on loopback a small `send()` costs
//! ~5 µs of kernel time and the rest of a delivery ~5 µs of user time. A sink the
//! actor can write into without waiting removes the task in between: at the end
//! of each actor turn the frames staged for a member (everything the turn sent it,
//! updates, presence and its own answers alike, in order) go out in one vectored
//! write, and the connection's task wakes only when the socket did not take them
//! all. Updates that arrive while a turn runs wait for the next turn's write, so
//! the frames per write grow with load with no timer at low load.
//!
//! The server implements it (it owns sockets and framing); this crate only stages
//! and hands over (`crate::peer`).

use crate::frames::PushError;
use bytes::Bytes;

/// A connection whose socket takes the document's frames from the actor.
pub trait DirectSink: Send + Sync + 'static {
    /// Write `frames` (each one message of the document's protocol, unframed), in
    /// order and after whatever the sink still holds, without waiting: what the
    /// socket does not take at once is kept for the connection's task to finish.
    /// `Err(Full)` once what is kept passes the connection's bound (the member is a
    /// slow consumer), `Err(Closed)` once the connection is gone.
    fn write(&self, frames: &[Bytes]) -> Result<(), PushError>;

    /// Bytes kept and not yet written to the socket.
    fn backlog_bytes(&self) -> usize;
}
