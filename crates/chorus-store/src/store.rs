//! The [`Store`] trait: the whole persistence contract, which
//! [`SledStore`](crate::SledStore), [`PostgresStore`](crate::PostgresStore) and
//! [`MemoryStore`](crate::MemoryStore) implement and the server calls.

use crate::{
    DeadLetter, DocId, DocMeta, HistoryEntry, HistoryPoint, Leases, OutboxEvent, StoreError,
    StoredDoc, WriteBatch,
};

/// Persistence of documents and the webhook outbox. Synchronous; implementations are
/// shared between threads.
pub trait Store: Send + Sync + 'static {
    /// `None` if the document was never stored. Verifies every checksum; any mismatch
    /// is `Err(Corrupt)`, never a partial document.
    fn load(&self, id: &DocId) -> Result<Option<StoredDoc>, StoreError>;

    /// Apply a batch (appends + metadata) atomically enough that a crash leaves each
    /// record either whole or absent. Writes apply in batch order;
    /// [`SledStore`](crate::SledStore) does not make the batch as a whole atomic (an
    /// error may leave a prefix of it written; don't acknowledge it),
    /// [`MemoryStore`](crate::MemoryStore) does. Not necessarily durable, nor visible
    /// to reads, until the next [`flush`](Self::flush):
    /// [`PostgresStore`](crate::PostgresStore) applies it in the flush's transaction,
    /// and forgets it if that fails.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Durability barrier: everything written before this returns is on disk (fsync,
    /// or PostgreSQL's `COMMIT`). One flush serves every batch written before it
    /// (group commit). After a failed flush, writes made before it may or may not be
    /// stored: the caller must rewrite what it needs (the document layer writes a
    /// snapshot).
    fn flush(&self) -> Result<(), StoreError>;

    /// True if a failed [`flush`](Self::flush) is known to have stored nothing of
    /// what it held (the caller must write it all again, webhook events included);
    /// false where some of it may be stored anyway (sled).
    /// [`PostgresStore`](crate::PostgresStore) rolls the transaction back.
    fn discards_failed_flush(&self) -> bool {
        false
    }

    /// Whether the store can be reached now (readiness). The embedded stores always
    /// can; [`PostgresStore`](crate::PostgresStore) runs a trivial query.
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

    /// Remove history points `points` of a document (retention), durably when this
    /// returns. Points that do not exist are skipped. Never touches the draft.
    fn delete_history(&self, id: &DocId, points: &[u64]) -> Result<(), StoreError>;

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

    /// Give up delivering pending event `id` of `app`: it leaves the outbox (no
    /// [`outbox_pending`](Self::outbox_pending) returns it again) for the dead letters,
    /// with `reason` and `at_ms`, in one step, durably when this returns. An id that is
    /// not pending is no error (nothing moves).
    fn outbox_dead_letter(
        &self,
        id: u64,
        app: &str,
        reason: &str,
        at_ms: u64,
    ) -> Result<(), StoreError>;

    /// Up to `limit` dead letters of `app`, oldest id first.
    fn dead_letters(&self, app: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;

    /// Dead letters kept, over all apps.
    fn dead_letter_count(&self) -> Result<u64, StoreError>;

    /// The host took dead letter `id` of `app`: it is removed, durably when this
    /// returns. False if `app` had no such dead letter.
    fn dead_letter_ack(&self, app: &str, id: u64) -> Result<bool, StoreError>;

    /// The apps an operator switched on or off through the admin API (app id and
    /// whether it is enabled), sorted by id: kept across restarts and, on a shared
    /// store, seen by every node.
    fn app_switches(&self) -> Result<Vec<(String, bool)>, StoreError>;

    /// Keep `app`'s switch, durably when this returns (not with the next flush:
    /// an operator's kill switch must not wait for a document's write).
    fn set_app_switch(&self, app: &str, enabled: bool) -> Result<(), StoreError>;
}
