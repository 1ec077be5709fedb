//! The [`Store`] impl of [`PostgresStore`]: reads run at once on a pooled
//! connection (a load in one read-only repeatable-read transaction); writes,
//! compactions and outbox events only queue, for the next flush to apply in one
//! transaction (see `commit`).

use postgres::IsolationLevel;

use super::columns::{corrupt, decode_entry, seq_column, seq_param};
use super::commit::apply_group;
use super::pending::{FlushError, Pending};
use super::pool::PostgresStore;
use crate::codec;
use crate::sled_store::assemble;
use crate::{
    DeadLetter, DocId, DocMeta, HistoryEntry, HistoryPoint, Leases, OutboxEvent, Store, StoreError,
    StoredDoc, WriteBatch,
};

impl Store for PostgresStore {
    fn load(&self, id: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        id.check()?;
        let sql = self.err("loading a document from");
        let mut conn = self.conn("loading a document from")?;
        // One snapshot of the database for the three reads: a compaction committing
        // between them cannot pair an old snapshot with a log it already trimmed.
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(&sql)?;
        let snapshot = match tx
            .query_opt(
                "SELECT value FROM chorus_snapshots WHERE app = $1 AND doc = $2",
                &[&id.app, &id.doc],
            )
            .map_err(&sql)?
        {
            Some(row) => {
                let value: &[u8] = row.get(0);
                let (seq, bytes) = codec::decode_snapshot(value)
                    .map_err(|d| corrupt(id, format!("snapshot: {d}")))?;
                Some((seq, bytes.to_vec()))
            }
            None => None,
        };
        let after = seq_param(snapshot.as_ref().map_or(0, |(seq, _)| *seq))?;
        let mut updates = Vec::new();
        for row in tx
            .query(
                "SELECT seq, value FROM chorus_log WHERE app = $1 AND doc = $2 AND seq > $3 ORDER BY seq",
                &[&id.app, &id.doc, &after],
            )
            .map_err(&sql)?
        {
            let seq = seq_column(id, "log seq", row.get(0))?;
            let payload = codec::unframe(row.get(1))
                .map_err(|d| corrupt(id, format!("log record {seq}: {d}")))?;
            updates.push((seq, payload.to_vec()));
        }
        let meta = match tx
            .query_opt(
                "SELECT value FROM chorus_meta WHERE app = $1 AND doc = $2",
                &[&id.app, &id.doc],
            )
            .map_err(&sql)?
        {
            Some(row) => Some(
                codec::decode_meta(row.get(0))
                    .map_err(|d| corrupt(id, format!("metadata: {d}")))?,
            ),
            None => None,
        };
        tx.commit().map_err(&sql)?;
        if snapshot.is_none() && meta.is_none() && updates.is_empty() {
            return Ok(None);
        }
        Ok(Some(assemble(id, snapshot, updates, meta)))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.check_ids()?;
        self.pending().push(Pending::Batch(batch));
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut *self.pending());
        if pending.is_empty() {
            return Ok(());
        }
        let fenced = self.fences_of(&pending);
        let mut conn = self.conn("committing a group to")?;
        apply_group(&mut conn, pending, &fenced).map_err(|e| match e {
            FlushError::Sql(e) => {
                StoreError::database(format!("committing a group to {}", self.target), e)
            }
            FlushError::Store(e) => e,
        })
    }

    fn compact(
        &self,
        id: &DocId,
        snapshot: &[u8],
        upto_seq: u64,
        meta: &DocMeta,
    ) -> Result<(), StoreError> {
        id.check()?;
        seq_param(upto_seq)?;
        self.pending().push(Pending::Compact {
            id: id.clone(),
            snapshot: snapshot.to_vec(),
            upto_seq,
            meta: Box::new(meta.clone()),
        });
        Ok(())
    }

    fn list(&self, app: &str) -> Result<Vec<(String, DocMeta)>, StoreError> {
        crate::error::check_app(app)?;
        let mut conn = self.conn("listing documents in")?;
        let rows = conn
            .query(
                "SELECT doc, value FROM chorus_meta WHERE app = $1 ORDER BY doc",
                &[&app],
            )
            .map_err(self.err("listing documents in"))?;
        rows.into_iter()
            .map(|row| {
                let doc: String = row.get(0);
                let meta = codec::decode_meta(row.get(1)).map_err(|d| {
                    corrupt(&DocId::new(app, doc.as_str()), format!("metadata: {d}"))
                })?;
                Ok((doc, meta))
            })
            .collect()
    }

    fn history(&self, id: &DocId) -> Result<Vec<HistoryEntry>, StoreError> {
        id.check()?;
        let mut conn = self.conn("reading history in")?;
        let rows = conn
            .query(
                "SELECT point, entry FROM chorus_history WHERE app = $1 AND doc = $2 ORDER BY point",
                &[&id.app, &id.doc],
            )
            .map_err(self.err("reading history in"))?;
        rows.into_iter()
            .map(|row| {
                let point = seq_column(id, "history point", row.get(0))?;
                decode_entry(id, point, row.get(1))
            })
            .collect()
    }

    fn history_point(&self, id: &DocId, point: u64) -> Result<Option<HistoryPoint>, StoreError> {
        id.check()?;
        let number = seq_param(point)?;
        let mut conn = self.conn("reading a history point in")?;
        let Some(row) = conn
            .query_opt(
                "SELECT entry, state FROM chorus_history WHERE app = $1 AND doc = $2 AND point = $3",
                &[&id.app, &id.doc, &number],
            )
            .map_err(self.err("reading a history point in"))?
        else {
            return Ok(None);
        };
        let entry = decode_entry(id, point, row.get(0))?;
        let state = codec::unframe(row.get(1))
            .map_err(|d| corrupt(id, format!("history point {point}: {d}")))?
            .to_vec();
        Ok(Some(HistoryPoint { entry, state }))
    }

    fn outbox_push(&self, app: &str, payload: &[u8]) -> Result<u64, StoreError> {
        let mut conn = self.conn("numbering a webhook event in")?;
        let id: i64 = conn
            .query_one("SELECT nextval('chorus_outbox_id')", &[])
            .map_err(self.err("numbering a webhook event in"))?
            .get(0);
        self.pending().push(Pending::Outbox {
            id,
            value: codec::encode_outbox(app, payload),
        });
        u64::try_from(id).map_err(|_| StoreError::Internal(format!("negative outbox id {id}")))
    }

    fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut conn = self.conn("reading the outbox in")?;
        let rows = conn
            .query(
                "SELECT id, value FROM chorus_outbox ORDER BY id LIMIT $1",
                &[&limit],
            )
            .map_err(self.err("reading the outbox in"))?;
        rows.into_iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let (app, payload) =
                    codec::decode_outbox(row.get(1)).map_err(|d| StoreError::Corrupt {
                        id: None,
                        detail: format!("outbox event {id}: {d}"),
                    })?;
                Ok(OutboxEvent {
                    id: u64::try_from(id)
                        .map_err(|_| StoreError::Internal(format!("negative outbox id {id}")))?,
                    app,
                    payload,
                })
            })
            .collect()
    }

    fn outbox_ack(&self, id: u64) -> Result<(), StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(()); // never issued, so never pending
        };
        let mut conn = self.conn("acknowledging a webhook event in")?;
        conn.execute("DELETE FROM chorus_outbox WHERE id = $1", &[&id])
            .map_err(self.err("acknowledging a webhook event in"))?;
        Ok(())
    }

    fn outbox_dead_letter(
        &self,
        id: u64,
        app: &str,
        reason: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(()); // never issued, so never pending
        };
        let at = i64::try_from(at_ms).unwrap_or(i64::MAX);
        let mut conn = self.conn("moving a webhook event to the dead letters in")?;
        // One statement: the event is pending or dead, never both nor neither.
        conn.execute(
            "WITH moved AS (DELETE FROM chorus_outbox WHERE id = $1 RETURNING id, value) \
             INSERT INTO chorus_dead_letters (id, app, value, reason, at_ms) \
             SELECT id, $2, value, $3, $4 FROM moved ON CONFLICT (id) DO NOTHING",
            &[&id, &app, &reason, &at],
        )
        .map_err(self.err("moving a webhook event to the dead letters in"))?;
        Ok(())
    }

    fn dead_letters(&self, app: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut conn = self.conn("reading the dead letters in")?;
        let rows = conn
            .query(
                "SELECT id, value, reason, at_ms FROM chorus_dead_letters WHERE app = $1 ORDER BY id LIMIT $2",
                &[&app, &limit],
            )
            .map_err(self.err("reading the dead letters in"))?;
        rows.into_iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let (stored_app, payload) =
                    codec::decode_outbox(row.get(1)).map_err(|d| StoreError::Corrupt {
                        id: None,
                        detail: format!("dead letter {id}: {d}"),
                    })?;
                let at: i64 = row.get(3);
                Ok(DeadLetter {
                    id: u64::try_from(id)
                        .map_err(|_| StoreError::Internal(format!("negative outbox id {id}")))?,
                    app: stored_app,
                    payload,
                    reason: row.get(2),
                    at_ms: u64::try_from(at).unwrap_or(0),
                })
            })
            .collect()
    }

    fn delete_history(&self, id: &DocId, points: &[u64]) -> Result<(), StoreError> {
        id.check()?;
        let points: Vec<i64> = points
            .iter()
            .filter_map(|p| i64::try_from(*p).ok())
            .collect();
        if points.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn("deleting history points in")?;
        conn.execute(
            "DELETE FROM chorus_history WHERE app = $1 AND doc = $2 AND point = ANY($3)",
            &[&id.app, &id.doc, &points],
        )
        .map_err(self.err("deleting history points in"))?;
        Ok(())
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn("counting the dead letters in")?;
        let n: i64 = conn
            .query_one("SELECT count(*) FROM chorus_dead_letters", &[])
            .map_err(self.err("counting the dead letters in"))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn dead_letter_ack(&self, app: &str, id: u64) -> Result<bool, StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        let mut conn = self.conn("removing a dead letter in")?;
        let removed = conn
            .execute(
                "DELETE FROM chorus_dead_letters WHERE id = $1 AND app = $2",
                &[&id, &app],
            )
            .map_err(self.err("removing a dead letter in"))?;
        Ok(removed > 0)
    }

    fn app_switches(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let mut conn = self.conn("reading the app switches in")?;
        let rows = conn
            .query(
                "SELECT app, enabled FROM chorus_app_switches ORDER BY app",
                &[],
            )
            .map_err(self.err("reading the app switches in"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn set_app_switch(&self, app: &str, enabled: bool) -> Result<(), StoreError> {
        crate::error::check_app(app)?;
        let mut conn = self.conn("keeping an app switch in")?;
        conn.execute(
            "INSERT INTO chorus_app_switches (app, enabled, at) VALUES ($1, $2, now()) \
             ON CONFLICT (app) DO UPDATE SET enabled = EXCLUDED.enabled, at = EXCLUDED.at",
            &[&app, &enabled],
        )
        .map_err(self.err("keeping an app switch in"))?;
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        let mut conn = self.conn("reaching")?;
        conn.simple_query("SELECT 1")
            .map_err(self.err("reaching"))?;
        Ok(())
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }

    fn discards_failed_flush(&self) -> bool {
        true
    }
}
