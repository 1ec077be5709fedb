//! The group commit: everything a flush holds, applied in order in one transaction
//! after the fence check, consecutive batches merged so each table gets one
//! statement; compactions in between.

use postgres::Transaction;

use super::columns::seq_param;
use super::fences::check_fences;
use super::pending::{FlushError, Pending};
use super::pool::Connection;
use crate::batch::BatchOp;
use crate::codec;
use crate::{DocId, DocMeta, StoreError, WriteBatch};

/// Consecutive batches, merged so each table gets one statement per flush.
#[derive(Default)]
struct Merged {
    log: Vec<(DocId, i64, Vec<u8>)>,
    meta: Vec<(DocId, Vec<u8>)>,
    history: Vec<(DocId, i64, Vec<u8>, Vec<u8>)>,
}

impl Merged {
    /// Merge `batch`; a deletion applies what was merged before it, then deletes, so
    /// the writes keep their order.
    fn add(&mut self, tx: &mut Transaction<'_>, batch: WriteBatch) -> Result<(), StoreError> {
        for op in batch.ops {
            match op {
                BatchOp::Delete { id } => {
                    self.apply(tx).map_err(|e| {
                        StoreError::database(format!("writing before deleting {id}"), e)
                    })?;
                    delete_in(tx, &id)?;
                }
                BatchOp::Append { id, seq, update } => {
                    self.log
                        .push((id, seq_param(seq)?, codec::frame(&[&update])));
                }
                BatchOp::Meta { id, meta } => self.meta.push((id, codec::encode_meta(&meta))),
                BatchOp::History { id, point } => {
                    // A struct of integers and strings always serialises.
                    let entry = serde_json::to_vec(&point.entry).unwrap_or_else(|_| b"{}".to_vec());
                    self.history.push((
                        id,
                        seq_param(point.entry.point)?,
                        codec::frame(&[&entry]),
                        codec::frame(&[&point.state]),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Write everything merged so far (then start empty).
    fn apply(&mut self, tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
        let Merged { log, meta, history } = std::mem::take(self);
        if !log.is_empty() {
            // One statement may not update a row twice: the last write of a key wins,
            // as in the embedded store.
            let log = last_wins(log, |(id, seq, _)| (id.clone(), *seq));
            let (apps, docs, seqs, values) =
                unzip4(log.into_iter().map(|(id, s, v)| (id.app, id.doc, s, v)));
            tx.execute(
                "INSERT INTO chorus_log (app, doc, seq, value) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[]) \
                 ON CONFLICT (app, doc, seq) DO UPDATE SET value = EXCLUDED.value",
                &[&apps, &docs, &seqs, &values],
            )?;
        }
        if !meta.is_empty() {
            let meta = last_wins(meta, |(id, _)| id.clone());
            let mut apps = Vec::with_capacity(meta.len());
            let mut docs = Vec::with_capacity(meta.len());
            let mut values = Vec::with_capacity(meta.len());
            for (id, value) in meta {
                apps.push(id.app);
                docs.push(id.doc);
                values.push(value);
            }
            tx.execute(
                "INSERT INTO chorus_meta (app, doc, value) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
                 ON CONFLICT (app, doc) DO UPDATE SET value = EXCLUDED.value",
                &[&apps, &docs, &values],
            )?;
        }
        if !history.is_empty() {
            let history = last_wins(history, |(id, point, _, _)| (id.clone(), *point));
            let mut apps = Vec::with_capacity(history.len());
            let mut docs = Vec::with_capacity(history.len());
            let mut points = Vec::with_capacity(history.len());
            let mut entries = Vec::with_capacity(history.len());
            let mut states = Vec::with_capacity(history.len());
            for (id, point, entry, state) in history {
                apps.push(id.app);
                docs.push(id.doc);
                points.push(point);
                entries.push(entry);
                states.push(state);
            }
            tx.execute(
                "INSERT INTO chorus_history (app, doc, point, entry, state) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::bytea[]) \
                 ON CONFLICT (app, doc, point) DO UPDATE SET entry = EXCLUDED.entry, state = EXCLUDED.state",
                &[&apps, &docs, &points, &entries, &states],
            )?;
        }
        Ok(())
    }
}

/// Keep only the last item of each key, in the order the survivors were added.
fn last_wins<T, K: Ord>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut last = std::collections::BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        last.insert(key(item), i);
    }
    let keep: std::collections::BTreeSet<usize> = last.into_values().collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, item)| item)
        .collect()
}

#[allow(clippy::type_complexity)]
fn unzip4<A, B, C, D>(
    items: impl Iterator<Item = (A, B, C, D)>,
) -> (Vec<A>, Vec<B>, Vec<C>, Vec<D>) {
    let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (w, x, y, z) in items {
        a.push(w);
        b.push(x);
        c.push(y);
        d.push(z);
    }
    (a, b, c, d)
}

/// One group commit: the fence check, then every write in order, then COMMIT.
pub(super) fn apply_group(
    conn: &mut Connection,
    pending: Vec<Pending>,
    fenced: &[(DocId, i64)],
) -> Result<(), FlushError> {
    let mut tx = conn.transaction()?;
    check_fences(&mut tx, fenced)?;
    let mut merged = Merged::default();
    let mut outbox_ids = Vec::new();
    let mut outbox_values = Vec::new();
    for op in pending {
        match op {
            Pending::Batch(batch) => merged.add(&mut tx, batch)?,
            Pending::Compact {
                id,
                snapshot,
                upto_seq,
                meta,
            } => {
                merged.apply(&mut tx)?;
                compact_in(&mut tx, &id, &snapshot, upto_seq, &meta)?;
            }
            Pending::Outbox { id, value } => {
                outbox_ids.push(id);
                outbox_values.push(value);
            }
        }
    }
    merged.apply(&mut tx)?;
    if !outbox_ids.is_empty() {
        tx.execute(
            "INSERT INTO chorus_outbox (id, value) SELECT * FROM unnest($1::int8[], $2::bytea[])",
            &[&outbox_ids, &outbox_values],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Remove every record of `id` (its lease stays: the lease is about who serves it).
fn delete_in(tx: &mut Transaction<'_>, id: &DocId) -> Result<(), StoreError> {
    for table in [
        "chorus_log",
        "chorus_history",
        "chorus_snapshots",
        "chorus_meta",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE app = $1 AND doc = $2"),
            &[&id.app, &id.doc],
        )
        .map_err(|e| StoreError::database(format!("deleting {id}"), e))?;
    }
    Ok(())
}

fn compact_in(
    tx: &mut Transaction<'_>,
    id: &DocId,
    snapshot: &[u8],
    upto_seq: u64,
    meta: &DocMeta,
) -> Result<(), StoreError> {
    let seq = seq_param(upto_seq)?;
    let sql = |e: postgres::Error| StoreError::database(format!("compacting {id}"), e);
    // The guard: an older compaction never replaces a newer snapshot.
    let replaced = tx
        .execute(
            "INSERT INTO chorus_snapshots (app, doc, upto_seq, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app, doc) DO UPDATE SET upto_seq = EXCLUDED.upto_seq, value = EXCLUDED.value \
             WHERE chorus_snapshots.upto_seq <= EXCLUDED.upto_seq",
            &[&id.app, &id.doc, &seq, &codec::encode_snapshot(upto_seq, snapshot)],
        )
        .map_err(sql)?;
    if replaced == 0 {
        return Ok(());
    }
    let mut meta = meta.clone();
    meta.snapshot_seq = upto_seq;
    tx.execute(
        "INSERT INTO chorus_meta (app, doc, value) VALUES ($1, $2, $3) \
         ON CONFLICT (app, doc) DO UPDATE SET value = EXCLUDED.value",
        &[&id.app, &id.doc, &codec::encode_meta(&meta)],
    )
    .map_err(sql)?;
    tx.execute(
        "DELETE FROM chorus_log WHERE app = $1 AND doc = $2 AND seq <= $3",
        &[&id.app, &id.doc, &seq],
    )
    .map_err(sql)?;
    Ok(())
}
