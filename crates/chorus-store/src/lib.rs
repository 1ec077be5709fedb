//! Persistence of Chorus documents.
//!
//! # What this crate owns
//!
//! Everything a document leaves on disk: per document a compacted **snapshot**, an
//! append-only **update log** written since that snapshot, and **metadata**
//! (timestamps, contributors, sizes, last state vector, publication); its **history
//! points** (the whole document as it was at each publish and every few minutes of
//! editing); plus a durable **outbox** of webhook events. The [`Store`] trait is the
//! whole contract; [`SledStore`] is the embedded implementation, [`PostgresStore`] the
//! durable store of cluster mode (same records and checksums, one table per tree, a
//! group commit is one transaction), and [`MemoryStore`] an in-memory fake with the
//! same semantics for other crates' unit tests. One behaviour suite
//! (`tests/behaviour.rs`) runs against all three.
//!
//! The store is synchronous (PostgreSQL through the blocking `postgres` client): the
//! server calls it from its dedicated writer thread
//! (writes, group-commit [`Store::flush`], compaction) and from `spawn_blocking`
//! (loads, listings). Updates and snapshots are opaque bytes here.
//!
//! # On-disk layout (sled, one database in the data directory)
//!
//! | tree        | key                                   | value payload                      |
//! |-------------|---------------------------------------|------------------------------------|
//! | `snapshots` | `app \0 doc`                          | `upto_seq` (u64 BE) ++ snapshot    |
//! | `log`       | `app \0 doc \0` ++ `seq` (u64 BE)     | one update                         |
//! | `meta`      | `app \0 doc`                          | [`DocMeta`] as JSON                |
//! | `outbox`    | event id (u64 BE)                     | `app` length (u32 BE) ++ `app` ++ payload |
//! | `history`   | `app \0 doc \0` ++ `point` (u64 BE)   | header length (u32 BE) ++ [`HistoryEntry`] JSON ++ state |
//!
//! Every value is framed as `[crc32 of payload, 4 bytes LE][payload]` and verified on
//! every read: sled 0.34 has open reports of corruption after abrupt stops, so a
//! mismatch is reported as [`StoreError::Corrupt`] naming the document, never
//! returned as a partial document and never a panic. Big-endian sequence numbers make
//! a prefix scan of the `log` tree return a document's records in order; the `\0`
//! separators (ids never contain `\0`) keep app `a` from seeing app `ab`.
//!
//! The snapshot record carries the sequence number it covers, so a snapshot is
//! self-describing: [`Store::load`] skips log records `<= upto_seq` even if a crash
//! left them behind or the metadata is older than the snapshot.
//!
//! # Errors
//!
//! Every failure is a [`StoreError`] whose message, for operators, names the
//! operation and the path or document. An I/O failure
//! ([`StoreError::Io`](variant@StoreError::Io)) keeps the [`std::io::Error`] it came
//! from, sled's included, so its kind survives.
//! [`StoreError::condition`] sorts any error into one of four [`StoreCondition`]s —
//! disk full, read-only, corrupt, unavailable — each with a stable code
//! (`disk-full`, `store-read-only`, `store-corrupt`, `store-unavailable`) for the
//! server to map once to an HTTP status, a readiness text and a log field.
//! [`MemoryStore`] can inject failures of a chosen kind, so callers can test a full
//! disk without one.
//!
//! # What it must not touch
//!
//! No yrs / CRDT semantics (updates are bytes; the caller assigns sequence numbers and
//! computes state vectors), no websockets, tokens or HTTP, and no async runtime. It
//! never decides *when* to write, flush or compact — the server's persistence policy
//! does.

mod codec;
mod error;
mod leases;
mod memory;
mod postgres_store;
mod sled_store;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use error::{StoreCondition, StoreError};
pub use leases::{Acquired, LeaseHolder, Leases};
pub use memory::MemoryStore;
pub use postgres_store::PostgresStore;
#[cfg(feature = "test-database")]
pub use postgres_store::TestDatabase;
pub use sled_store::{SledStore, DEFAULT_CACHE_BYTES};

/// (app id, content id). Ids never contain `'\0'` (the server validates them; the
/// store refuses them with [`StoreError::InvalidId`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId {
    /// The application (tenant) the document belongs to.
    pub app: String,
    /// The document (content) id within the app.
    pub doc: String,
}

impl DocId {
    /// Build an id from an app id and a document id.
    pub fn new(app: impl Into<String>, doc: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            doc: doc.into(),
        }
    }

    /// `Err(InvalidId)` if either part contains `'\0'`, which would make keys ambiguous.
    fn check(&self) -> Result<(), StoreError> {
        if self.app.contains('\0') || self.doc.contains('\0') {
            return Err(StoreError::InvalidId(self.clone()));
        }
        Ok(())
    }
}

/// `Err(InvalidId)` if an app id contains `'\0'` (for listings, which take an app
/// alone).
fn check_app(app: &str) -> Result<(), StoreError> {
    if app.contains('\0') {
        return Err(StoreError::InvalidId(DocId::new(app, "")));
    }
    Ok(())
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.doc)
    }
}

/// Metadata kept next to each document (stored as JSON; unknown fields are ignored
/// and missing ones default, so the format can grow).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DocMeta {
    /// When the document was first stored (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When the document was last written (ms since the Unix epoch).
    pub updated_at_ms: u64,
    /// User ids of everyone who contributed an update.
    pub contributors: BTreeSet<String>,
    /// Snapshot bytes plus log bytes written since the snapshot.
    pub size_bytes: u64,
    /// Updates ever appended.
    pub update_count: u64,
    /// Last saved lib0-v1 state vector (a JSON byte array on disk).
    pub state_vector: Vec<u8>,
    /// Log sequence number covered by the current snapshot (0 = no snapshot).
    pub snapshot_seq: u64,
    /// When the draft was last published (ms since the epoch; 0 = never).
    pub published_at_ms: u64,
    /// The ETag the draft had when it was last published.
    pub published_etag: String,
    /// Number of the last history point written (points count from 1).
    pub last_history_point: u64,
    /// When the last history point was taken (ms since the epoch).
    pub last_history_at_ms: u64,
    /// Fingerprint of the content policy every stored byte was checked against
    /// (empty = unknown). Opaque here; the server compares it with its own.
    pub content_policy: String,
}

/// What a history point is, without its content (the history listing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryEntry {
    /// Number of the point within its document (1, 2, …; never reused).
    pub point: u64,
    /// When it was taken (ms since the epoch).
    pub at_ms: u64,
    /// Why it was taken: `publish`, `auto` (every few minutes of editing) or `restore`.
    pub kind: String,
    /// For a `restore` point: the point whose content was brought back (0 otherwise).
    pub restored_from: u64,
    /// The draft's ETag at that moment.
    pub etag: String,
    /// The title at that moment.
    pub title: String,
    /// Size of the stored state in bytes.
    pub size_bytes: u64,
}

/// A history point with its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPoint {
    /// What the point is.
    pub entry: HistoryEntry,
    /// The whole document at that moment, as one lib0-v1 update.
    pub state: Vec<u8>,
}

/// A document as loaded: snapshot plus the log records written after it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDoc {
    /// lib0-v1 update of the whole document at snapshot time.
    pub snapshot: Option<Vec<u8>>,
    /// Last log seq included in the snapshot (0 if there is none).
    pub snapshot_seq: u64,
    /// Log records with `seq > snapshot_seq`, ascending seq.
    pub updates: Vec<(u64, Vec<u8>)>,
    /// The document's metadata; `snapshot_seq` always agrees with the field above.
    pub meta: DocMeta,
}

/// One event of the webhook outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Monotonically increasing id (not contiguous); pass it to [`Store::outbox_ack`].
    pub id: u64,
    /// The app the event is for.
    pub app: String,
    /// The event body, opaque to the store.
    pub payload: Vec<u8>,
}

/// One write inside a [`WriteBatch`], in the order it was added.
#[derive(Clone, Debug)]
enum BatchOp {
    Append {
        id: DocId,
        seq: u64,
        update: Vec<u8>,
    },
    Meta {
        id: DocId,
        meta: DocMeta,
    },
    History {
        id: DocId,
        point: HistoryPoint,
    },
}

/// One group-commit worth of writes across many documents.
///
/// Writes apply in the order they were added; a later [`put_meta`](Self::put_meta) for
/// the same document replaces an earlier one.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// Append one update to a document's log. Seqs per document are assigned by the
    /// caller: strictly increasing, starting at 1 (0 means "no snapshot" and would be
    /// skipped on load).
    pub fn append(&mut self, id: &DocId, seq: u64, update: &[u8]) {
        debug_assert!(seq > 0, "log seqs start at 1");
        self.ops.push(BatchOp::Append {
            id: id.clone(),
            seq,
            update: update.to_vec(),
        });
    }

    /// Replace a document's metadata.
    pub fn put_meta(&mut self, id: &DocId, meta: &DocMeta) {
        self.ops.push(BatchOp::Meta {
            id: id.clone(),
            meta: meta.clone(),
        });
    }

    /// Record a history point (its `size_bytes` is set from the state).
    pub fn put_history(&mut self, id: &DocId, point: &HistoryPoint) {
        let mut point = point.clone();
        point.entry.size_bytes = point.state.len() as u64;
        self.ops.push(BatchOp::History {
            id: id.clone(),
            point,
        });
    }

    /// True if the batch holds no writes at all.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of writes (log appends plus metadata puts).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Number of log records (appends only), e.g. for a "records written" metric.
    pub fn record_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, BatchOp::Append { .. }))
            .count()
    }

    /// Total bytes of the appended updates.
    pub fn record_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                BatchOp::Append { update, .. } => update.len(),
                BatchOp::Meta { .. } | BatchOp::History { .. } => 0,
            })
            .sum()
    }

    fn check_ids(&self) -> Result<(), StoreError> {
        self.ops.iter().try_for_each(|op| match op {
            BatchOp::Append { id, .. } | BatchOp::Meta { id, .. } | BatchOp::History { id, .. } => {
                id.check()
            }
        })
    }
}

/// Persistence of documents and the webhook outbox. Synchronous; implementations are
/// shared between threads.
pub trait Store: Send + Sync + 'static {
    /// `None` if the document was never stored. Verifies every checksum; any mismatch
    /// is `Err(Corrupt)`, never a partial document.
    fn load(&self, id: &DocId) -> Result<Option<StoredDoc>, StoreError>;

    /// Apply a batch (appends + metadata) atomically enough that a crash leaves each
    /// record either whole or absent. Writes apply in batch order; [`SledStore`] does
    /// not make the batch as a whole atomic (an error may leave a prefix of it written;
    /// don't acknowledge it), [`MemoryStore`] does. Not necessarily durable, nor
    /// visible to reads, until the next [`flush`](Self::flush): [`PostgresStore`]
    /// applies it in the flush's transaction, and forgets it if that fails.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Durability barrier: everything written before this returns is on disk (fsync,
    /// or PostgreSQL's `COMMIT`). One flush serves every batch written before it
    /// (group commit). After a failed flush, writes made before it may or may not be
    /// stored: the caller must rewrite what it needs (the document layer writes a
    /// snapshot).
    fn flush(&self) -> Result<(), StoreError>;

    /// True if a failed [`flush`](Self::flush) is known to have stored nothing of
    /// what it held (the caller must write it all again, webhook events included);
    /// false where some of it may be stored anyway (sled). [`PostgresStore`] rolls
    /// the transaction back.
    fn discards_failed_flush(&self) -> bool {
        false
    }

    /// Whether the store can be reached now (readiness). The embedded stores always
    /// can; [`PostgresStore`] runs a trivial query.
    fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Document ownership with fencing, for cluster mode; `None` for stores that
    /// only one process can open (sled, memory).
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }

    /// Replace the snapshot with `snapshot` covering log seqs `<= upto_seq`, store
    /// `meta` (its `snapshot_seq` is set to `upto_seq`), then delete those log records.
    /// Crash-safe in that order: load uses the snapshot and skips records
    /// `<= snapshot_seq`. A compaction older than the current snapshot
    /// (`upto_seq` below its seq) is ignored, because the newer snapshot already
    /// covers more. Not necessarily durable until the next [`flush`](Self::flush).
    fn compact(
        &self,
        id: &DocId,
        snapshot: &[u8],
        upto_seq: u64,
        meta: &DocMeta,
    ) -> Result<(), StoreError>;

    /// Metadata of every stored document of `app`, sorted by doc id.
    fn list(&self, app: &str) -> Result<Vec<(String, DocMeta)>, StoreError>;

    /// The history points of a document, oldest first (without their content).
    fn history(&self, id: &DocId) -> Result<Vec<HistoryEntry>, StoreError>;

    /// One history point with its content; `None` if the document has no such point.
    fn history_point(&self, id: &DocId, point: u64) -> Result<Option<HistoryPoint>, StoreError>;

    /// Durable outbox for webhooks: append an event payload for an app; returns a
    /// monotonically increasing id (also across restarts; not contiguous). Durable
    /// (and visible to [`outbox_pending`](Self::outbox_pending)) after the next
    /// [`flush`](Self::flush), like every other write.
    fn outbox_push(&self, app: &str, payload: &[u8]) -> Result<u64, StoreError>;

    /// Up to `limit` pending events in id order.
    fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Remove a delivered event. Acknowledging an unknown id is not an error.
    fn outbox_ack(&self, id: u64) -> Result<(), StoreError>;
}
