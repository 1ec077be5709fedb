//! Who is in a room and how to reach them: a connection's id ([`ConnId`]), the
//! queue a room sends a member's frames to ([`Peer`]), the per-room limits from
//! configuration ([`RoomLimits`]), and what the room keeps about each member. Plain
//! types; what a room does with them is in `sync.rs`.

use crate::guard::Whitelist;
use crate::Session;
use bytes::Bytes;
use std::sync::Arc;

/// Identifies one connection within the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// An id no other connection of this process has (nor will have).
    pub fn fresh() -> ConnId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Where a room sends a member's frames. Implemented by the server over a bounded
/// queue; `send` must never block. Returning `false` means the frame could not be
/// queued (a slow or gone consumer): the room then drops the member, and the
/// implementation is responsible for closing its socket.
pub trait Peer {
    /// Queue one encoded frame for this member.
    fn send(&self, frame: Bytes) -> bool;

    /// Bytes queued for this member and not yet written to it. A member that asks
    /// for the document again (a sync step 1) while this is not 0 is answered with
    /// the shared whole state: a client that asks a thousand times at once costs
    /// no encoding each (what a peer cannot tell, it reports as 0).
    fn backlog_bytes(&self) -> usize {
        0
    }
}

/// Per-room limits (from configuration).
#[derive(Debug, Clone)]
pub struct RoomLimits {
    /// Largest accepted awareness state (JSON text), in bytes.
    pub max_awareness_state_bytes: usize,
    /// How many awareness client ids one connection may control.
    pub max_awareness_clients_per_conn: usize,
    /// How many refused writes a view-mode session gets a warning for before it is closed.
    pub view_write_warnings: u32,
    /// The content policy and what to do with content outside it.
    pub whitelist: Whitelist,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits {
            max_awareness_state_bytes: 32 * 1024,
            max_awareness_clients_per_conn: 4,
            view_write_warnings: 1,
            whitelist: Whitelist::default(),
        }
    }
}

pub(super) struct Member<P> {
    pub(super) session: Arc<Session>,
    pub(super) peer: P,
    pub(super) awareness_ids: Vec<u64>,
    pub(super) refused_writes: u32,
    /// Sync step 2 + update messages received from this connection ("saved up to N").
    pub(super) update_messages: u64,
    /// How many of those may ever be acknowledged: the messages before the first
    /// one that was refused (a view-only or downgraded session's edit, a rejected or
    /// malformed update). "Saved up to n" covers the first n messages, so none from
    /// that one on is ever said to be saved: an editor never shows "Saved" over
    /// dropped edits.
    pub(super) ack_ceiling: Option<u64>,
    /// It was sent an answer to a sync step 1 (a state it was missing).
    pub(super) answered_step1: bool,
}
