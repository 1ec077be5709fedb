//! [`MemoryStore`]: the in-memory fake of [`Store`] for other crates' unit tests.
//!
//! Same observable semantics as [`SledStore`](crate::SledStore) (ordering, snapshot
//! skipping, stale-compaction guard, prefix isolation, outbox ids) without checksums or
//! files, plus failure injection so callers can test their error paths.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::batch::BatchOp;
use crate::sled_store::assemble;
use crate::{
    DeadLetter, DocId, DocMeta, HistoryEntry, HistoryPoint, OutboxEvent, Store, StoreError,
    StoredDoc, WriteBatch,
};

#[derive(Default)]
struct Doc {
    snapshot: Option<(u64, Vec<u8>)>,
    log: BTreeMap<u64, Vec<u8>>,
    meta: Option<DocMeta>,
    history: BTreeMap<u64, HistoryPoint>,
}

#[derive(Default)]
struct State {
    docs: BTreeMap<DocId, Doc>,
    outbox: BTreeMap<u64, (String, Vec<u8>)>,
    dead_letters: BTreeMap<u64, DeadLetter>,
    last_outbox_id: u64,
    app_switches: BTreeMap<String, bool>,
}

/// An in-memory [`Store`]. Everything is lost when it is dropped.
#[derive(Default)]
pub struct MemoryStore {
    /// One mutex over all state: every operation is short and synchronous, and holding
    /// it for a whole batch is what makes `write` and `compact` atomic.
    state: Mutex<State>,
    /// The kind of the injected failure, while failures are injected.
    failing: Mutex<Option<io::ErrorKind>>,
    flushes: AtomicU64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("failing", &self.injected())
            .field("flushes", &self.flushes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// While `true`, every mutating call (`write`, `flush`, `compact`, `outbox_push`,
    /// `outbox_ack`) fails with a [`StoreError::Io`](variant@StoreError::Io) of kind
    /// [`io::ErrorKind::Other`]
    /// ([`StoreCondition::Unavailable`](crate::StoreCondition::Unavailable)) and
    /// changes nothing. `false` stops any injected failure, including one from
    /// [`fail_with`](Self::fail_with).
    pub fn set_failing(&self, failing: bool) {
        *self.lock_failing() = failing.then_some(io::ErrorKind::Other);
    }

    /// Like [`set_failing(true)`](Self::set_failing), with failures of `kind`: for
    /// example [`io::ErrorKind::StorageFull`] to simulate a full disk
    /// ([`StoreCondition::DiskFull`](crate::StoreCondition::DiskFull)). Until
    /// `set_failing(false)`.
    pub fn fail_with(&self, kind: io::ErrorKind) {
        *self.lock_failing() = Some(kind);
    }

    /// How many successful [`Store::flush`] calls there have been.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied batch: batches are
        // validated before any mutation.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_failing(&self) -> MutexGuard<'_, Option<io::ErrorKind>> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn injected(&self) -> Option<io::ErrorKind> {
        *self.lock_failing()
    }

    fn check_failing(&self, what: &str) -> Result<(), StoreError> {
        match self.injected() {
            Some(kind) => Err(StoreError::io(
                what,
                io::Error::new(kind, format!("injected failure ({kind})")),
            )),
            None => Ok(()),
        }
    }
}

impl Store for MemoryStore {
    fn load(&self, id: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        id.check()?;
        let state = self.state();
        let Some(doc) = state.docs.get(id) else {
            return Ok(None);
        };
        let updates = doc.log.iter().map(|(s, u)| (*s, u.clone())).collect();
        Ok(Some(assemble(
            id,
            doc.snapshot.clone(),
            updates,
            doc.meta.clone(),
        )))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.check_failing("write")?;
        batch.check_ids()?;
        let mut state = self.state();
        for op in batch.ops {
            match op {
                BatchOp::Append { id, seq, update } => {
                    state.docs.entry(id).or_default().log.insert(seq, update);
                }
                BatchOp::Meta { id, meta } => {
                    state.docs.entry(id).or_default().meta = Some(meta);
                }
                BatchOp::History { id, point } => {
                    let doc = state.docs.entry(id).or_default();
                    doc.history.insert(point.entry.point, point);
                }
                BatchOp::Delete { id } => {
                    state.docs.remove(&id);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.check_failing("flush")?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn compact(
        &self,
        id: &DocId,
        snapshot: &[u8],
        upto_seq: u64,
        meta: &DocMeta,
    ) -> Result<(), StoreError> {
        self.check_failing("compact")?;
        id.check()?;
        let mut state = self.state();
        let doc = state.docs.entry(id.clone()).or_default();
        if matches!(doc.snapshot, Some((current, _)) if current > upto_seq) {
            return Ok(());
        }
        let mut meta = meta.clone();
        meta.snapshot_seq = upto_seq;
        doc.snapshot = Some((upto_seq, snapshot.to_vec()));
        doc.meta = Some(meta);
        doc.log = doc.log.split_off(&upto_seq.saturating_add(1));
        Ok(())
    }

    fn list(&self, app: &str) -> Result<Vec<(String, DocMeta)>, StoreError> {
        crate::error::check_app(app)?;
        let state = self.state();
        Ok(state
            .docs
            .iter()
            .filter(|(id, _)| id.app == app)
            .filter_map(|(id, doc)| Some((id.doc.clone(), doc.meta.clone()?)))
            .collect())
    }

    fn history(&self, id: &DocId) -> Result<Vec<HistoryEntry>, StoreError> {
        id.check()?;
        let state = self.state();
        Ok(state
            .docs
            .get(id)
            .map(|d| d.history.values().map(|p| p.entry.clone()).collect())
            .unwrap_or_default())
    }

    fn history_point(&self, id: &DocId, point: u64) -> Result<Option<HistoryPoint>, StoreError> {
        id.check()?;
        let state = self.state();
        Ok(state
            .docs
            .get(id)
            .and_then(|d| d.history.get(&point).cloned()))
    }

    fn outbox_push(&self, app: &str, payload: &[u8]) -> Result<u64, StoreError> {
        self.check_failing("outbox push")?;
        let mut state = self.state();
        state.last_outbox_id += 1;
        let id = state.last_outbox_id;
        state.outbox.insert(id, (app.to_owned(), payload.to_vec()));
        Ok(id)
    }

    fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let state = self.state();
        Ok(state
            .outbox
            .iter()
            .take(limit)
            .map(|(id, (app, payload))| OutboxEvent {
                id: *id,
                app: app.clone(),
                payload: payload.clone(),
            })
            .collect())
    }

    fn outbox_ack(&self, id: u64) -> Result<(), StoreError> {
        self.check_failing("outbox ack")?;
        self.state().outbox.remove(&id);
        Ok(())
    }

    fn outbox_dead_letter(
        &self,
        id: u64,
        app: &str,
        reason: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.check_failing("dead letter")?;
        let mut state = self.state();
        if let Some((stored_app, payload)) = state.outbox.remove(&id) {
            debug_assert_eq!(stored_app, app);
            state.dead_letters.insert(
                id,
                DeadLetter {
                    id,
                    app: stored_app,
                    payload,
                    reason: reason.to_owned(),
                    at_ms,
                },
            );
        }
        Ok(())
    }

    fn dead_letters(&self, app: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.check_failing("dead letters")?;
        Ok(self
            .state()
            .dead_letters
            .values()
            .filter(|d| d.app == app)
            .take(limit)
            .cloned()
            .collect())
    }

    fn delete_history(&self, id: &DocId, points: &[u64]) -> Result<(), StoreError> {
        self.check_failing("history deletion")?;
        id.check()?;
        if let Some(doc) = self.state().docs.get_mut(id) {
            for p in points {
                doc.history.remove(p);
            }
        }
        Ok(())
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Ok(self.state().dead_letters.len() as u64)
    }

    fn dead_letter_ack(&self, app: &str, id: u64) -> Result<bool, StoreError> {
        self.check_failing("dead letter ack")?;
        let mut state = self.state();
        if state.dead_letters.get(&id).is_some_and(|d| d.app == app) {
            state.dead_letters.remove(&id);
            return Ok(true);
        }
        Ok(false)
    }

    fn app_switches(&self) -> Result<Vec<(String, bool)>, StoreError> {
        self.check_failing("app switches")?;
        let state = self.state();
        Ok(state
            .app_switches
            .iter()
            .map(|(a, e)| (a.clone(), *e))
            .collect())
    }

    fn set_app_switch(&self, app: &str, enabled: bool) -> Result<(), StoreError> {
        self.check_failing("app switch")?;
        crate::error::check_app(app)?;
        self.state().app_switches.insert(app.to_owned(), enabled);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_deletes_the_covered_records() {
        let store = MemoryStore::new();
        let id = DocId::new("app", "doc");
        let mut batch = WriteBatch::default();
        for seq in 1..=5 {
            batch.append(&id, seq, b"u");
        }
        store.write(batch).unwrap();
        store.compact(&id, b"S", 3, &DocMeta::default()).unwrap();
        let kept: Vec<u64> = store.state().docs[&id].log.keys().copied().collect();
        assert_eq!(kept, [4, 5]);
    }

    #[test]
    fn injected_failures_change_nothing_until_cleared() {
        let store = MemoryStore::new();
        let id = DocId::new("app", "doc");
        store.set_failing(true);
        let mut batch = WriteBatch::default();
        batch.append(&id, 1, b"u");
        assert!(matches!(
            store.write(batch.clone()),
            Err(StoreError::Io { .. })
        ));
        assert!(store.flush().is_err());
        assert!(store.compact(&id, b"S", 1, &DocMeta::default()).is_err());
        assert!(store.outbox_push("app", b"e").is_err());
        assert!(store.load(&id).unwrap().is_none());
        assert_eq!(store.flush_count(), 0);
        store.set_failing(false);
        store.write(batch).unwrap();
        store.flush().unwrap();
        assert_eq!(store.flush_count(), 1);
        assert_eq!(
            store.load(&id).unwrap().unwrap().updates,
            [(1, b"u".to_vec())]
        );
    }

    #[test]
    fn an_injected_failure_has_the_chosen_kind() {
        let store = MemoryStore::new();
        let id = DocId::new("app", "doc");
        let mut batch = WriteBatch::default();
        batch.append(&id, 1, b"u");

        store.set_failing(true);
        let err = store.flush().unwrap_err();
        assert_eq!(err.io_kind(), Some(io::ErrorKind::Other));
        assert_eq!(err.condition(), crate::StoreCondition::Unavailable);

        store.fail_with(io::ErrorKind::StorageFull);
        for err in [
            store.write(batch.clone()).unwrap_err(),
            store.flush().unwrap_err(),
            store
                .compact(&id, b"S", 1, &DocMeta::default())
                .unwrap_err(),
            store.outbox_push("app", b"e").unwrap_err(),
            store.outbox_ack(1).unwrap_err(),
        ] {
            assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull), "{err}");
            assert_eq!(err.condition().code(), "disk-full", "{err}");
            assert!(err.to_string().contains("injected failure"), "{err}");
        }
        assert!(store.load(&id).unwrap().is_none(), "nothing was written");

        store.set_failing(false);
        store.write(batch).unwrap();
        store.flush().unwrap();
        assert_eq!(store.flush_count(), 1);
    }
}
