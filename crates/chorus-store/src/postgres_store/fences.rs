//! Fencing of writes by lease token: which fenced documents a flush touches, and the
//! check, inside the flush's transaction, that each still has its token.
//!
//! The tokens are set and cleared by [`Leases::fence`](crate::Leases::fence) and
//! [`Leases::unfence`](crate::Leases::unfence) (in `leases`); a document whose lease
//! moved on fails the whole flush with [`StoreError::Fenced`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{MutexGuard, PoisonError};

use postgres::Transaction;

use super::pending::{FlushError, Pending};
use super::pool::PostgresStore;
use crate::{DocId, StoreError};

impl PostgresStore {
    pub(super) fn fences(&self) -> MutexGuard<'_, HashMap<DocId, i64>> {
        self.fences.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fenced documents `pending` writes, with the tokens they must still hold.
    pub(super) fn fences_of(&self, pending: &[Pending]) -> Vec<(DocId, i64)> {
        let fences = self.fences();
        if fences.is_empty() {
            return Vec::new();
        }
        let mut touched = BTreeSet::new();
        for op in pending {
            match op {
                Pending::Batch(batch) => {
                    for op in &batch.ops {
                        touched.insert(op.id());
                    }
                }
                Pending::Compact { id, .. } => {
                    touched.insert(id);
                }
                Pending::Outbox { .. } => {}
            }
        }
        touched
            .into_iter()
            .filter_map(|id| fences.get(id).map(|token| (id.clone(), *token)))
            .collect()
    }
}

/// Check, inside the flush's transaction, that every fenced document still has its
/// token, share-locking the lease rows so a takeover waits for this commit.
pub(super) fn check_fences(
    tx: &mut Transaction<'_>,
    fenced: &[(DocId, i64)],
) -> Result<(), FlushError> {
    if fenced.is_empty() {
        return Ok(());
    }
    let apps: Vec<&str> = fenced.iter().map(|(id, _)| id.app.as_str()).collect();
    let docs: Vec<&str> = fenced.iter().map(|(id, _)| id.doc.as_str()).collect();
    let rows = tx.query(
        "SELECT app, doc, token FROM chorus_leases \
         WHERE (app, doc) IN (SELECT * FROM unnest($1::text[], $2::text[])) FOR SHARE",
        &[&apps, &docs],
    )?;
    let held: HashMap<(String, String), i64> = rows
        .into_iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect();
    let lost: Vec<DocId> = fenced
        .iter()
        .filter(|(id, token)| held.get(&(id.app.clone(), id.doc.clone())) != Some(token))
        .map(|(id, _)| id.clone())
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(FlushError::Store(StoreError::Fenced { lost }))
    }
}
