//! The [`Leases`] impl of [`PostgresStore`]: leases are rows of `chorus_leases`,
//! tokens come from the `chorus_lease_token` sequence, times are the database's.
//! What the tokens guard is in `fences`.

use std::time::Duration;

use super::columns::token_column;
use super::pool::PostgresStore;
use crate::leases::{ttl_ms, Acquired, LeaseHolder, Leases};
use crate::{DocId, StoreError};

impl Leases for PostgresStore {
    fn acquire(&self, id: &DocId, node: &str, ttl: Duration) -> Result<Acquired, StoreError> {
        id.check()?;
        let sql = self.err("taking a lease in");
        let mut conn = self.conn("taking a lease in")?;
        for _ in 0..3 {
            // Free, lapsed or already ours: take it with a fresh token. The row lock
            // of the upsert waits for any flush that share-locked the old lease.
            let taken = conn
                .query_opt(
                    "WITH before AS (SELECT node FROM chorus_leases WHERE app = $1 AND doc = $2) \
                     INSERT INTO chorus_leases (app, doc, node, token, expires_at) \
                     VALUES ($1, $2, $3, nextval('chorus_lease_token'), \
                             now() + $4::int8 * interval '1 millisecond') \
                     ON CONFLICT (app, doc) DO UPDATE \
                     SET node = EXCLUDED.node, token = EXCLUDED.token, \
                         expires_at = EXCLUDED.expires_at \
                     WHERE chorus_leases.expires_at < now() OR chorus_leases.node = EXCLUDED.node \
                     RETURNING token, (SELECT node FROM before)",
                    &[&id.app, &id.doc, &node, &ttl_ms(ttl)],
                )
                .map_err(&sql)?;
            if let Some(row) = taken {
                return Ok(Acquired::Owned {
                    token: token_column(row.get(0)),
                    previous: row.get(1),
                });
            }
            let holder = conn
                .query_opt(
                    "SELECT node, token FROM chorus_leases WHERE app = $1 AND doc = $2",
                    &[&id.app, &id.doc],
                )
                .map_err(&sql)?;
            if let Some(row) = holder {
                return Ok(Acquired::HeldBy {
                    node: row.get(0),
                    token: token_column(row.get(1)),
                });
            }
            // Released between the two statements: try again.
        }
        Err(StoreError::Internal(format!(
            "taking the lease of {id} in {}: it kept changing hands",
            self.target
        )))
    }

    fn renew(&self, node: &str, ttl: Duration) -> Result<Vec<(DocId, u64)>, StoreError> {
        let mut conn = self.conn("renewing leases in")?;
        let rows = conn
            .query(
                "UPDATE chorus_leases SET expires_at = now() + $2::int8 * interval '1 millisecond' \
                 WHERE node = $1 RETURNING app, doc, token",
                &[&node, &ttl_ms(ttl)],
            )
            .map_err(self.err("renewing leases in"))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let (app, doc): (String, String) = (row.get(0), row.get(1));
                (DocId::new(app, doc), token_column(row.get(2)))
            })
            .collect())
    }

    fn release(&self, id: &DocId, token: u64) -> Result<(), StoreError> {
        let token = i64::try_from(token).unwrap_or(-1);
        let mut conn = self.conn("releasing a lease in")?;
        conn.execute(
            "DELETE FROM chorus_leases WHERE app = $1 AND doc = $2 AND token = $3",
            &[&id.app, &id.doc, &token],
        )
        .map_err(self.err("releasing a lease in"))?;
        Ok(())
    }

    fn holders(&self, ids: &[DocId]) -> Result<Vec<LeaseHolder>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let apps: Vec<&str> = ids.iter().map(|id| id.app.as_str()).collect();
        let docs: Vec<&str> = ids.iter().map(|id| id.doc.as_str()).collect();
        let mut conn = self.conn("reading leases in")?;
        let rows = conn
            .query(
                "SELECT app, doc, node, token, expires_at > now() FROM chorus_leases \
                 WHERE (app, doc) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&apps, &docs],
            )
            .map_err(self.err("reading leases in"))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let (app, doc): (String, String) = (row.get(0), row.get(1));
                LeaseHolder {
                    id: DocId::new(app, doc),
                    node: row.get(2),
                    token: token_column(row.get(3)),
                    live: row.get(4),
                }
            })
            .collect())
    }

    fn fence(&self, id: &DocId, token: u64) {
        // Tokens come from a bigint sequence.
        let token = i64::try_from(token).unwrap_or(i64::MAX);
        self.fences().insert(id.clone(), token);
    }

    fn unfence(&self, id: &DocId, token: u64) {
        let token = i64::try_from(token).unwrap_or(i64::MAX);
        let mut fences = self.fences();
        if fences.get(id) == Some(&token) {
            fences.remove(id);
        }
    }
}
