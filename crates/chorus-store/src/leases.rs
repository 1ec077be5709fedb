//! [`Leases`]: which node owns a document in cluster mode, with a fencing token.
//!
//! A lease is a row in the store's own database (PostgreSQL), so ownership and the
//! writes it guards share one source of truth and one transaction: after
//! [`Leases::fence`] a document's writes commit only while its lease still has that
//! token, checked (and the lease row share-locked, so a takeover waits for the
//! commit) inside the flush's transaction. A node that lost its lease — paused,
//! partitioned, slow — can therefore never write that document again: its flush
//! fails with [`StoreError::Fenced`](crate::StoreError::Fenced).
//!
//! Times are the database server's, so node clocks never matter. What this module
//! does not decide: when to acquire, how often to renew, what a node does when a
//! lease is lost (the document layer does).

use std::time::Duration;

use crate::{DocId, StoreError};

/// The outcome of [`Leases::acquire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// This node holds the lease now, with this fencing token (a fresh one: larger
    /// than any token the document had before).
    Owned {
        /// The fencing token.
        token: u64,
        /// The node that held the lease before (a takeover when it is another node
        /// than this one), `None` if it was free.
        previous: Option<String>,
    },
    /// Another node holds a lease that has not lapsed.
    HeldBy {
        /// The holder's node id.
        node: String,
        /// Its token.
        token: u64,
    },
}

/// Who holds the lease of a document (see [`Leases::holders`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The document.
    pub id: DocId,
    /// The holder's node id.
    pub node: String,
    /// The holder's token.
    pub token: u64,
    /// False once the lease has lapsed (anyone may take it).
    pub live: bool,
}

/// Document ownership with fencing (cluster mode). Blocking, like [`Store`](crate::Store).
pub trait Leases: Send + Sync {
    /// Take the lease of `id` for `node` for `ttl`, if it is free, lapsed, or already
    /// this node's (then with a new token, which fences any older holder on this
    /// node too).
    fn acquire(&self, id: &DocId, node: &str, ttl: Duration) -> Result<Acquired, StoreError>;

    /// Extend every lease `node` still holds to `ttl` from now; returns them. A
    /// document missing from the answer was taken over: its owner must stop.
    fn renew(&self, node: &str, ttl: Duration) -> Result<Vec<(DocId, u64)>, StoreError>;

    /// Give up the lease of `id` if it still has `token` (after the last write).
    fn release(&self, id: &DocId, token: u64) -> Result<(), StoreError>;

    /// The current holders of `ids` (documents nobody holds are left out).
    fn holders(&self, ids: &[DocId]) -> Result<Vec<LeaseHolder>, StoreError>;

    /// From now on, writes of `id` commit only while its lease has `token`.
    /// Documents never fenced are written unchecked (a single node).
    fn fence(&self, id: &DocId, token: u64);

    /// Stop fencing `id` with `token` (it unloaded); a newer token set meanwhile
    /// stays.
    fn unfence(&self, id: &DocId, token: u64);
}

/// Milliseconds of a duration, as PostgreSQL's interval arithmetic wants them.
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}
