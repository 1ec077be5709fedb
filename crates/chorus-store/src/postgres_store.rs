//! [`PostgresStore`]: the durable store of cluster mode, in PostgreSQL.
//!
//! # Group commit is one transaction
//!
//! [`Store::write`], [`Store::compact`] and [`Store::outbox_push`] only queue their
//! writes in memory; [`Store::flush`] applies everything queued, in order, in one
//! transaction, and returns after its `COMMIT`. So a group commit is one round of
//! statements and one `COMMIT` however many documents it spans, and the writer's
//! acknowledgements (`saved`) come after the commit, as the contract wants. A failed
//! flush rolls back and forgets what it held: the caller acknowledged none of it, and
//! retries those documents from a snapshot, as after any failed write. Reads see
//! committed data only (the [`Store`] contract allows that: a write is visible after
//! the flush that makes it durable).
//!
//! # Schema
//!
//! One table per sled tree (`chorus_meta`, `chorus_snapshots`, `chorus_log`,
//! `chorus_history`, `chorus_outbox`; see `migrations/`), applied at open by refinery
//! under an advisory lock, so nodes starting together migrate once. Values are framed
//! exactly as in sled, `[crc32][payload]`, and verified on every read: a mismatch is
//! [`StoreError::Corrupt`] naming the document. Ids are `COLLATE "C"` so listings sort
//! bytewise, as the embedded store's do.
//!
//! # Errors
//!
//! Every failure is a [`StoreError::Database`] carrying the SQLSTATE when the server
//! sent one; [`StoreError::condition`] maps `53100` (disk full) to `disk-full`,
//! `25006` (read-only transaction) to `store-read-only` and everything else,
//! an unreachable server included, to `store-unavailable`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::config::Host;
use postgres::{IsolationLevel, NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;

use crate::batch::BatchOp;
use crate::codec;
use crate::leases::{ttl_ms, Acquired, LeaseHolder, Leases};
use crate::sled_store::assemble;
use crate::{
    DocId, DocMeta, HistoryEntry, HistoryPoint, OutboxEvent, Store, StoreError, StoredDoc,
    WriteBatch,
};

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Connection = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Connections kept open: the writer thread, webhook delivery and a few concurrent
/// loads and listings.
const POOL_SIZE: u32 = 8;

/// How long a caller waits for a connection (or a new one to be opened) before the
/// operation fails. Short, so an unreachable server turns into an error and a 503
/// quickly instead of piling up waiting work.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// Serialises migrations of nodes that start at once (any fixed key; this one spells
/// "chorus" in ASCII).
const MIGRATION_LOCK: i64 = 0x6368_6f72_7573;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// What a flush will apply, in the order the calls were made.
enum Pending {
    Batch(WriteBatch),
    Compact {
        id: DocId,
        snapshot: Vec<u8>,
        upto_seq: u64,
        meta: Box<DocMeta>,
    },
    Outbox {
        id: i64,
        value: Vec<u8>,
    },
}

/// The PostgreSQL-backed [`Store`]. Cheap to share behind an `Arc`; every method is
/// safe to call from several threads. Its methods block: call them from a plain
/// thread or `spawn_blocking`, never from an async task.
pub struct PostgresStore {
    /// `None` only while dropping (see `Drop`).
    pool: Option<Pool>,
    /// `postgres://user@host:port/db`, without any password, for messages.
    target: String,
    pending: Mutex<Vec<Pending>>,
    /// Lease tokens documents are written under ([`Leases::fence`]).
    fences: Mutex<HashMap<DocId, i64>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://USER@HOST:PORT/DB`, or any
    /// libpq-style connection string the `postgres` crate accepts) and bring its schema
    /// up to date.
    ///
    /// Fails with [`StoreError::Database`] naming the target (never the password) if
    /// the URL does not parse, the server cannot be reached within a few seconds, or a
    /// migration fails.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(|e| {
            StoreError::database("parsing the store URL (postgres://USER@HOST:PORT/DB)", e)
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_TIMEOUT);
        }
        // A server that vanished without closing the connection (a partition, a
        // stopped machine) is noticed by keepalives instead of never.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        config.tcp_user_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("chorus");
        }
        let target = describe(&config);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECTION_TIMEOUT)
            .build(manager)
            .map_err(|e| StoreError::database(format!("connecting to {target}"), e))?;
        let store = Self {
            pool: Some(pool),
            target,
            pending: Mutex::new(Vec::new()),
            fences: Mutex::new(HashMap::new()),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where the store is, as `postgres://user@host:port/db` (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        self.target.rsplit('/').next().unwrap_or_default()
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let context = || format!("migrating the schema of {}", self.target);
        let mut conn = self.conn("migrating the schema of")?;
        conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| StoreError::database(context(), e))?;
        let migrated = embedded::migrations::runner()
            .run(&mut *conn)
            .map_err(|e| StoreError::database(context(), e));
        let unlocked = conn
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| StoreError::database(context(), e));
        migrated?;
        unlocked.map(drop)
    }

    fn conn(&self, what: &str) -> Result<Connection, StoreError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::Internal(format!(
                "{what} {}: the store is closed",
                self.target
            )));
        };
        pool.get()
            .map_err(|e| StoreError::database(format!("{what} {}", self.target), e))
    }

    fn err(&self, what: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
        let context = format!("{what} {}", self.target);
        move |e| StoreError::database(context.clone(), e)
    }

    fn pending(&self) -> MutexGuard<'_, Vec<Pending>> {
        // Pushing to or taking a Vec cannot leave it half-changed.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fences(&self) -> MutexGuard<'_, HashMap<DocId, i64>> {
        self.fences.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fenced documents `pending` writes, with the tokens they must still hold.
    fn fences_of(&self, pending: &[Pending]) -> Vec<(DocId, i64)> {
        let fences = self.fences();
        if fences.is_empty() {
            return Vec::new();
        }
        let mut touched = BTreeSet::new();
        for op in pending {
            match op {
                Pending::Batch(batch) => {
                    for op in &batch.ops {
                        let (BatchOp::Append { id, .. }
                        | BatchOp::Meta { id, .. }
                        | BatchOp::History { id, .. }) = op;
                        touched.insert(id);
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
fn check_fences(tx: &mut Transaction<'_>, fenced: &[(DocId, i64)]) -> Result<(), FlushError> {
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

/// A flush's failure before it is given its context.
enum FlushError {
    Sql(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for FlushError {
    fn from(e: postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for FlushError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The blocking client closes each connection by blocking on its own small
        // runtime, which panics on an async runtime's thread, and the last handle
        // of the store may well be dropped on one: close them on a thread of their
        // own.
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new()
                .name("chorus-pg-close".into())
                .spawn(move || drop(pool));
        }
    }
}

/// `postgres://user@host:port/db` for messages: everything but the password.
fn describe(config: &postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{db}")
}

fn seq_param(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| {
        StoreError::Internal(format!("sequence number {seq} exceeds PostgreSQL's bigint"))
    })
}

fn seq_column(id: &DocId, what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(id, format!("negative {what} {value}")))
}

fn corrupt(id: &DocId, detail: String) -> StoreError {
    StoreError::Corrupt {
        id: Some(id.clone()),
        detail,
    }
}

/// Consecutive batches, merged so each table gets one statement per flush.
#[derive(Default)]
struct Merged {
    log: Vec<(DocId, i64, Vec<u8>)>,
    meta: Vec<(DocId, Vec<u8>)>,
    history: Vec<(DocId, i64, Vec<u8>, Vec<u8>)>,
}

impl Merged {
    fn add(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        for op in batch.ops {
            match op {
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
fn apply_group(
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
            Pending::Batch(batch) => merged.add(batch)?,
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

fn token_column(value: i64) -> u64 {
    // Tokens come from a sequence starting at 1.
    u64::try_from(value).unwrap_or_default()
}

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

fn decode_entry(id: &DocId, point: u64, value: &[u8]) -> Result<HistoryEntry, StoreError> {
    let json =
        codec::unframe(value).map_err(|d| corrupt(id, format!("history point {point}: {d}")))?;
    serde_json::from_slice(json)
        .map_err(|e| corrupt(id, format!("history point {point}: bad entry JSON: {e}")))
}

/// A fresh, empty database for one test run, dropped (with its connections) when the
/// value is dropped, so runs never see each other's data.
///
/// It connects as `CHORUS_TEST_POSTGRES` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`, a local server with trust auth) and
/// creates `chorus_test_<pid>_<n>_<time>`. Creation panics with a message naming the
/// server if it cannot be reached: a test that needs PostgreSQL fails without it.
#[cfg(feature = "test-database")]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

#[cfg(feature = "test-database")]
impl TestDatabase {
    /// Create the database.
    pub fn create() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin_url = std::env::var("CHORUS_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "chorus_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Self::admin(&admin_url, &format!("CREATE DATABASE {name}"));
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// The database's URL, for [`PostgresStore::open`] or a server's `store` key.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run one statement as the admin user, on a thread of its own: the blocking
    /// client must not run inside an async runtime, and tests often are one.
    fn admin(admin_url: &str, statement: &str) {
        let (url, statement) = (admin_url.to_owned(), statement.to_owned());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, NoTls).unwrap_or_else(|e| {
                panic!("tests need PostgreSQL at {url} (set CHORUS_TEST_POSTGRES): {e}")
            });
            client
                .batch_execute(&statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }
}

#[cfg(feature = "test-database")]
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, statement) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        // Never panic in drop (a failing test is already unwinding through here).
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, NoTls) {
                let _ = client.batch_execute(&statement);
            }
        })
        .join();
    }
}
