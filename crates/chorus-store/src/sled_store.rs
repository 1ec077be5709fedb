//! [`SledStore`]: the embedded store, one sled database in the data directory.
//!
//! A batch is written record by record (each sled insert is atomic; see `write` for
//! why not a transaction). A compaction — snapshot, metadata, deletion of the covered
//! records — is one sled transaction, which sled recovers all-or-nothing. `load` is
//! written to tolerate every intermediate state anyway (log records left behind by a
//! snapshot, metadata older than the log or the snapshot), so the crash story does
//! not rest on sled's transactions.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use sled::transaction::{ConflictableTransactionResult, TransactionError, Transactional};
use tracing::warn;

use crate::batch::BatchOp;
use crate::codec;
use crate::{
    DeadLetter, DocId, DocMeta, HistoryEntry, HistoryPoint, OutboxEvent, Store, StoreError,
    StoredDoc, WriteBatch,
};

/// Name of the file created, fsynced and removed at open to prove the directory is
/// writable (the server may run as root, where permission bits prove nothing).
const WRITE_PROBE: &str = ".chorus-write-probe";

/// Page cache used by [`SledStore::open`]: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// The sled-backed [`Store`]. Cheap to share behind an `Arc`; every method is safe to
/// call from several threads.
pub struct SledStore {
    path: PathBuf,
    cache_bytes: u64,
    /// The open database; replaced by a fresh open after a write failed with an I/O
    /// error (see [`SledStore::recover`]). `None` only if that reopen failed.
    trees: RwLock<Option<Arc<Trees>>>,
    /// Set once a write or flush failed with an I/O error: sled then refuses every
    /// later flush with the same error, whatever the disk does.
    broken: AtomicBool,
    /// Readers of a whole document (`load`) share it; `compact` takes it exclusively.
    /// A load reads three trees with separate calls; without this, a compaction
    /// committing between the log scan and the snapshot read could hand out an old
    /// snapshot with the records it replaced already deleted. Appends need no lock:
    /// they only add records after the ones a scan has seen. An `RwLock<()>` rather
    /// than per-document locks because compactions are rare and short.
    compaction: RwLock<()>,
}

/// One open sled database and its trees.
struct Trees {
    db: sled::Db,
    snapshots: sled::Tree,
    log: sled::Tree,
    meta: sled::Tree,
    outbox: sled::Tree,
    /// Outbox id → a webhook event given up on, until the host takes it.
    dead_letters: sled::Tree,
    history: sled::Tree,
    /// App id → one byte, 1 enabled or 0 disabled (the admin API's switches).
    apps: sled::Tree,
}

impl Trees {
    fn open(dir: &Path, cache_bytes: u64) -> Result<Trees, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| sled_err(e, format!("opening the database in {}", dir.display())))?;
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| sled_err(e, format!("opening tree {name:?} in {}", dir.display())))
        };
        Ok(Trees {
            snapshots: tree("snapshots")?,
            log: tree("log")?,
            meta: tree("meta")?,
            outbox: tree("outbox")?,
            dead_letters: tree("dead_letters")?,
            history: tree("history")?,
            apps: tree("app_switches")?,
            db,
        })
    }
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Open (creating if needed) the store in `dir`.
    ///
    /// Fails with [`StoreError::ReadOnly`] if the directory cannot be written (checked by
    /// creating, fsyncing and removing a small file, because permission bits do not stop
    /// root), or [`StoreError::Io`](variant@StoreError::Io) naming the path and keeping
    /// the operating system's error if it cannot be created, is not a directory, or the
    /// database cannot be opened (for example because another process holds it, or the
    /// disk is full).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Like [`SledStore::open`], with sled's page cache capped at `cache_bytes`
    /// (sled's own default is 1 GiB, which would make the store's memory unbounded
    /// in practice on a small machine).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        prepare_dir(dir)?;
        Ok(Self {
            trees: RwLock::new(Some(Arc::new(Trees::open(dir, cache_bytes)?))),
            path: dir.to_path_buf(),
            cache_bytes,
            broken: AtomicBool::new(false),
            compaction: RwLock::new(()),
        })
    }

    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        if let Some(trees) = &*self.trees.read().unwrap_or_else(PoisonError::into_inner) {
            return Ok(trees.clone());
        }
        let mut slot = self.trees.write().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Arc::new(self.reopen()?));
        }
        Ok(slot.clone().expect("just filled"))
    }

    /// Open the database again once the old handle is gone: sled holds a lock on its
    /// directory until the handle and its flusher thread are dropped, which readers
    /// that cloned it do within moments.
    fn reopen(&self) -> Result<Trees, StoreError> {
        let mut attempts = 0;
        loop {
            match Trees::open(&self.path, self.cache_bytes) {
                Ok(fresh) => return Ok(fresh),
                Err(e) if attempts >= 50 => return Err(e),
                Err(_) => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }

    /// Note a failed write: after an I/O error sled keeps refusing to flush (its
    /// log buffer holds the error), so the next write reopens the database first.
    fn failed<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if matches!(result, Err(StoreError::Io { .. })) {
            self.broken.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Before a write: if an earlier one failed with an I/O error, reopen the
    /// database once the directory takes writes again (a probe file is written and
    /// fsynced; a disk still full fails here, with its own error). What the failed
    /// writes left in memory was never acknowledged and is dropped with the old
    /// handle; sled recovers the rest from its log, and the document actors write
    /// their unsaved changes again. Readers wait on the lock for the swap.
    fn recover(&self) -> Result<(), StoreError> {
        if !self.broken.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut trees = self.trees.write().unwrap_or_else(PoisonError::into_inner);
        if !self.broken.load(Ordering::Relaxed) {
            return Ok(());
        }
        prepare_dir(&self.path)?;
        drop(trees.take());
        let fresh = self.reopen()?;
        *trees = Some(Arc::new(fresh));
        self.broken.store(false, Ordering::Relaxed);
        warn!(path = %self.path.display(), "reopened the store after a failed write");
        Ok(())
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the database occupies on disk (for metrics).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.trees()?
            .db
            .size_on_disk()
            .map_err(|e| self.err(e, "measuring the size of"))
    }

    fn write_ops(&self, t: &Trees, batch: WriteBatch) -> Result<(), StoreError> {
        // Plain inserts in batch order, not one sled transaction: every sealed sled
        // batch costs its own log write at flush time, which made a group commit of
        // 100 one-record jobs ~8x slower (see benches/store.rs). Each record is still
        // whole or absent after a crash, and `load` tolerates metadata older than the
        // log; a failed write leaves a prefix of the batch, which the caller must not
        // acknowledge (nothing is acknowledged before a successful `flush` anyway).
        for op in batch.ops {
            match op {
                BatchOp::Append { id, seq, update } => t
                    .log
                    .insert(codec::log_key(&id, seq), codec::frame(&[&update]))
                    .map(drop)
                    .map_err(|e| self.err(e, "appending to the log in"))?,
                BatchOp::Meta { id, meta } => t
                    .meta
                    .insert(codec::doc_key(&id), codec::encode_meta(&meta))
                    .map(drop)
                    .map_err(|e| self.err(e, "writing metadata in"))?,
                BatchOp::History { id, point } => t
                    .history
                    .insert(
                        codec::log_key(&id, point.entry.point),
                        codec::encode_history(&point),
                    )
                    .map(drop)
                    .map_err(|e| self.err(e, "writing a history point in"))?,
                BatchOp::Delete { id } => self.delete_doc(t, &id)?,
            }
        }
        Ok(())
    }

    /// Remove every record of `id`: its log and history first, then snapshot and
    /// metadata, so a crash in between leaves at worst a document without log (whose
    /// snapshot and metadata a retry removes). Under the compaction lock, so a load
    /// never sees half of it.
    fn delete_doc(&self, t: &Trees, id: &DocId) -> Result<(), StoreError> {
        let _exclusive = self
            .compaction
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let prefix = codec::log_prefix(id);
        for tree in [&t.log, &t.history] {
            let mut gone = sled::Batch::default();
            for k in tree.scan_prefix(&prefix).keys() {
                gone.remove(k.map_err(|e| self.err(e, "scanning a deleted document in"))?);
            }
            tree.apply_batch(gone)
                .map_err(|e| self.err(e, "deleting a document in"))?;
        }
        let key = codec::doc_key(id);
        t.snapshots
            .remove(&key)
            .map_err(|e| self.err(e, "deleting a snapshot in"))?;
        t.meta
            .remove(&key)
            .map_err(|e| self.err(e, "deleting metadata in"))?;
        Ok(())
    }

    fn push_outbox(&self, t: &Trees, app: &str, payload: &[u8]) -> Result<u64, StoreError> {
        // sled's id generator is monotonic across restarts (it skips ahead after a
        // crash), unlike "last key + 1", which would reuse ids once the outbox drains.
        // +1 so ids start at 1.
        let id =
            t.db.generate_id()
                .map_err(|e| self.err(e, "generating an outbox id in"))?
                + 1;
        t.outbox
            .insert(id.to_be_bytes(), codec::encode_outbox(app, payload))
            .map_err(|e| self.err(e, "writing the outbox in"))?;
        Ok(id)
    }

    fn err(&self, e: sled::Error, what: &str) -> StoreError {
        sled_err(e, format!("{what} {}", self.path.display()))
    }

    fn tx_err(&self, e: TransactionError<()>, what: &str) -> StoreError {
        match e {
            TransactionError::Storage(e) => self.err(e, what),
            TransactionError::Abort(()) => StoreError::Internal(format!(
                "{what} {}: transaction aborted",
                self.path.display()
            )),
        }
    }
}

/// Create `dir` and prove it can be written.
fn prepare_dir(dir: &Path) -> Result<(), StoreError> {
    if let Ok(m) = fs::metadata(dir) {
        if !m.is_dir() {
            return Err(StoreError::io(
                format!("opening data directory {}", dir.display()),
                io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "it exists and is not a directory",
                ),
            ));
        }
    }
    fs::create_dir_all(dir).map_err(|e| dir_err(e, dir, "creating data directory"))?;
    let probe = dir.join(WRITE_PROBE);
    let written = fs::File::create(&probe)
        .and_then(|mut f| {
            f.write_all(b"chorus")?;
            f.sync_all()
        })
        .and_then(|()| fs::remove_file(&probe));
    written.map_err(|e| dir_err(e, dir, "writing a probe file in data directory"))
}

fn dir_err(e: io::Error, dir: &Path, what: &str) -> StoreError {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            warn!(path = %dir.display(), error = %e, "data directory is not writable");
            StoreError::ReadOnly(dir.to_path_buf())
        }
        _ => StoreError::io(format!("{what} {}", dir.display()), e),
    }
}

/// Map a sled error met while doing `context` (which names the path): its I/O errors
/// keep their [`io::Error`] (and so their kind), corruption is [`StoreError::Corrupt`],
/// the rest (a reported bug, an unsupported use, a missing tree) is
/// [`StoreError::Internal`].
fn sled_err(e: sled::Error, context: String) -> StoreError {
    match e {
        sled::Error::Io(source) => StoreError::Io { context, source },
        e @ sled::Error::Corruption { .. } => StoreError::Corrupt {
            id: None,
            detail: format!("{context}: {e}"),
        },
        e => StoreError::Internal(format!("{context}: {e}")),
    }
}

fn corrupt(id: &DocId, detail: String) -> StoreError {
    StoreError::Corrupt {
        id: Some(id.clone()),
        detail,
    }
}

impl Store for SledStore {
    fn load(&self, id: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        let t = self.trees()?;
        id.check()?;
        let _shared = self
            .compaction
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let key = codec::doc_key(id);
        let prefix = codec::log_prefix(id);

        let mut updates = Vec::new();
        for item in t.log.scan_prefix(&prefix) {
            let (k, v) = item.map_err(|e| self.err(e, "reading the log in"))?;
            let seq = codec::log_key_seq(&prefix, &k).map_err(|d| corrupt(id, d))?;
            let payload =
                codec::unframe(&v).map_err(|d| corrupt(id, format!("log record {seq}: {d}")))?;
            updates.push((seq, payload.to_vec()));
        }

        let snapshot = match t
            .snapshots
            .get(&key)
            .map_err(|e| self.err(e, "reading a snapshot in"))?
        {
            Some(v) => {
                let (seq, bytes) = codec::decode_snapshot(&v)
                    .map_err(|d| corrupt(id, format!("snapshot: {d}")))?;
                Some((seq, bytes.to_vec()))
            }
            None => None,
        };

        let meta = match t
            .meta
            .get(&key)
            .map_err(|e| self.err(e, "reading metadata in"))?
        {
            Some(v) => {
                Some(codec::decode_meta(&v).map_err(|d| corrupt(id, format!("metadata: {d}")))?)
            }
            None => None,
        };

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
        self.recover()?;
        let t = self.trees()?;
        self.failed(self.write_ops(&t, batch))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.recover()?;
        let t = self.trees()?;
        self.failed(t.db.flush().map(drop).map_err(|e| self.err(e, "flushing")))
    }

    fn compact(
        &self,
        id: &DocId,
        snapshot: &[u8],
        upto_seq: u64,
        meta: &DocMeta,
    ) -> Result<(), StoreError> {
        id.check()?;
        self.recover()?;
        let t = self.trees()?;
        let _exclusive = self
            .compaction
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let key = codec::doc_key(id);
        if let Some(v) = t
            .snapshots
            .get(&key)
            .map_err(|e| self.err(e, "reading a snapshot in"))?
        {
            match codec::decode_snapshot(&v) {
                Ok((current, _)) if current > upto_seq => {
                    warn!(doc = %id, current, upto_seq, "ignoring a compaction older than the stored snapshot");
                    return Ok(());
                }
                Ok(_) => {}
                Err(detail) => warn!(doc = %id, %detail, "replacing a corrupt snapshot"),
            }
        }

        // Only this document's records: its seqs all share the `app\0doc\0` prefix.
        let mut covered = sled::Batch::default();
        for k in t
            .log
            .range(codec::log_key(id, 0)..=codec::log_key(id, upto_seq))
            .keys()
        {
            covered.remove(k.map_err(|e| self.err(e, "scanning the log in"))?);
        }
        let mut meta = meta.clone();
        meta.snapshot_seq = upto_seq;
        let snapshot_value = codec::encode_snapshot(upto_seq, snapshot);
        let meta_value = codec::encode_meta(&meta);

        // Snapshot, then metadata, then the covered records: one transaction, so sled
        // recovers all or none of it; `load` copes with the partial orders anyway.
        let result = (&t.snapshots, &t.meta, &t.log)
            .transaction(
                |(snap_t, meta_t, log_t)| -> ConflictableTransactionResult<(), ()> {
                    snap_t.insert(key.as_slice(), snapshot_value.as_slice())?;
                    meta_t.insert(key.as_slice(), meta_value.as_slice())?;
                    log_t.apply_batch(&covered)?;
                    Ok(())
                },
            )
            .map_err(|e| self.tx_err(e, "compacting a document in"));
        self.failed(result)
    }

    fn list(&self, app: &str) -> Result<Vec<(String, DocMeta)>, StoreError> {
        let t = self.trees()?;
        crate::error::check_app(app)?;
        let prefix = codec::app_prefix(app);
        let mut out = Vec::new();
        for item in t.meta.scan_prefix(&prefix) {
            let (k, v) = item.map_err(|e| self.err(e, "listing metadata in"))?;
            let rest = k.strip_prefix(prefix.as_slice()).unwrap_or_default();
            let doc = std::str::from_utf8(rest).map_err(|_| StoreError::Corrupt {
                id: None,
                detail: format!("a metadata key of app {app:?} is not UTF-8"),
            })?;
            let id = DocId::new(app, doc);
            let meta =
                codec::decode_meta(&v).map_err(|d| corrupt(&id, format!("metadata: {d}")))?;
            out.push((id.doc, meta));
        }
        Ok(out)
    }

    fn history(&self, id: &DocId) -> Result<Vec<HistoryEntry>, StoreError> {
        let t = self.trees()?;
        id.check()?;
        let prefix = codec::log_prefix(id);
        let mut out = Vec::new();
        for item in t.history.scan_prefix(&prefix) {
            let (k, v) = item.map_err(|e| self.err(e, "reading history in"))?;
            let point = codec::log_key_seq(&prefix, &k).map_err(|d| corrupt(id, d))?;
            let (entry, _) = codec::decode_history(&v)
                .map_err(|d| corrupt(id, format!("history point {point}: {d}")))?;
            out.push(entry);
        }
        Ok(out)
    }

    fn history_point(&self, id: &DocId, point: u64) -> Result<Option<HistoryPoint>, StoreError> {
        let t = self.trees()?;
        id.check()?;
        let Some(v) = t
            .history
            .get(codec::log_key(id, point))
            .map_err(|e| self.err(e, "reading a history point in"))?
        else {
            return Ok(None);
        };
        let (entry, state) = codec::decode_history(&v)
            .map_err(|d| corrupt(id, format!("history point {point}: {d}")))?;
        Ok(Some(HistoryPoint {
            entry,
            state: state.to_vec(),
        }))
    }

    fn outbox_push(&self, app: &str, payload: &[u8]) -> Result<u64, StoreError> {
        self.recover()?;
        let t = self.trees()?;
        self.failed(self.push_outbox(&t, app, payload))
    }

    fn outbox_ack(&self, id: u64) -> Result<(), StoreError> {
        self.recover()?;
        let t = self.trees()?;
        self.failed(
            t.outbox
                .remove(id.to_be_bytes())
                .map(drop)
                .map_err(|e| self.err(e, "acknowledging an outbox event in")),
        )
    }

    fn outbox_dead_letter(
        &self,
        id: u64,
        _app: &str,
        reason: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.recover()?;
        let t = self.trees()?;
        let key = id.to_be_bytes();
        // One transaction over both trees: the event is pending or dead, never both
        // nor neither.
        let result = (&t.outbox, &t.dead_letters)
            .transaction(
                |(outbox_t, dead_t)| -> ConflictableTransactionResult<(), ()> {
                    if let Some(value) = outbox_t.remove(&key)? {
                        dead_t.insert(&key, codec::encode_dead_letter(&value, reason, at_ms))?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| self.tx_err(e, "moving a webhook event to the dead letters in"));
        self.failed(result)?;
        self.failed(
            t.db.flush()
                .map(drop)
                .map_err(|e| self.err(e, "flushing a dead letter in")),
        )
    }

    fn dead_letters(&self, app: &str, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for item in t.dead_letters.iter() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e, "reading the dead letters in"))?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    id: None,
                    detail: format!("dead letter key of {} bytes", k.len()),
                })?;
            let (stored_app, payload, reason, at_ms) =
                codec::decode_dead_letter(&v).map_err(|d| StoreError::Corrupt {
                    id: None,
                    detail: format!("dead letter {id}: {d}"),
                })?;
            if stored_app == app {
                out.push(DeadLetter {
                    id,
                    app: stored_app,
                    payload,
                    reason,
                    at_ms,
                });
            }
        }
        Ok(out)
    }

    fn delete_history(&self, id: &DocId, points: &[u64]) -> Result<(), StoreError> {
        id.check()?;
        self.recover()?;
        let t = self.trees()?;
        let mut gone = sled::Batch::default();
        for p in points {
            gone.remove(codec::log_key(id, *p));
        }
        self.failed(
            t.history
                .apply_batch(gone)
                .map_err(|e| self.err(e, "deleting history points in")),
        )?;
        self.failed(
            t.db.flush()
                .map(drop)
                .map_err(|e| self.err(e, "flushing history deletions in")),
        )
    }

    fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Ok(self.trees()?.dead_letters.len() as u64)
    }

    fn dead_letter_ack(&self, app: &str, id: u64) -> Result<bool, StoreError> {
        self.recover()?;
        let t = self.trees()?;
        let key = id.to_be_bytes();
        let Some(value) = t
            .dead_letters
            .get(key)
            .map_err(|e| self.err(e, "reading a dead letter in"))?
        else {
            return Ok(false);
        };
        match codec::decode_dead_letter(&value) {
            Ok((stored_app, ..)) if stored_app == app => {}
            // Another app's: not this host's to take. (A corrupt record is removable.)
            Ok(_) => return Ok(false),
            Err(_) => {}
        }
        self.failed(
            t.dead_letters
                .remove(key)
                .map(drop)
                .map_err(|e| self.err(e, "removing a dead letter in")),
        )?;
        self.failed(
            t.db.flush()
                .map(drop)
                .map_err(|e| self.err(e, "flushing a dead letter in")),
        )?;
        Ok(true)
    }

    fn app_switches(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for item in t.apps.iter() {
            let (k, v) = item.map_err(|e| self.err(e, "reading the app switches in"))?;
            let app = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                id: None,
                detail: "an app switch's key is not UTF-8".into(),
            })?;
            out.push((app, v.first() == Some(&1)));
        }
        Ok(out)
    }

    fn set_app_switch(&self, app: &str, enabled: bool) -> Result<(), StoreError> {
        crate::error::check_app(app)?;
        self.recover()?;
        let t = self.trees()?;
        self.failed(
            t.apps
                .insert(app.as_bytes(), &[u8::from(enabled)])
                .map(drop)
                .and_then(|()| t.apps.flush().map(drop))
                .map_err(|e| self.err(e, "keeping an app switch in")),
        )
    }

    fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let t = self.trees()?;
        let mut out = Vec::new();
        for item in t.outbox.iter().take(limit) {
            let (k, v) = item.map_err(|e| self.err(e, "reading the outbox in"))?;
            let id = <[u8; 8]>::try_from(k.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    id: None,
                    detail: format!("outbox key of {} bytes", k.len()),
                })?;
            let (app, payload) = codec::decode_outbox(&v).map_err(|d| StoreError::Corrupt {
                id: None,
                detail: format!("outbox event {id}: {d}"),
            })?;
            out.push(OutboxEvent { id, app, payload });
        }
        Ok(out)
    }
}

/// Build the loaded document: the snapshot wins over stale log records and metadata.
pub(crate) fn assemble(
    id: &DocId,
    snapshot: Option<(u64, Vec<u8>)>,
    mut updates: Vec<(u64, Vec<u8>)>,
    meta: Option<DocMeta>,
) -> StoredDoc {
    let snapshot_seq = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
    // Records a compaction did not get to delete (or re-appended ones) are already in
    // the snapshot.
    updates.retain(|(seq, _)| *seq > snapshot_seq);
    let mut meta = meta.unwrap_or_else(|| {
        warn!(doc = %id, "document has records but no metadata; using defaults");
        DocMeta::default()
    });
    if meta.snapshot_seq != snapshot_seq {
        warn!(doc = %id, meta = meta.snapshot_seq, snapshot = snapshot_seq, "metadata disagrees with the snapshot; trusting the snapshot");
        meta.snapshot_seq = snapshot_seq;
    }
    StoredDoc {
        snapshot: snapshot.map(|(_, bytes)| bytes),
        snapshot_seq,
        updates,
        meta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreCondition;

    fn mapped(e: sled::Error) -> StoreError {
        sled_err(e, "flushing /data".to_owned())
    }

    #[test]
    fn sled_io_errors_keep_their_kind() {
        let e = mapped(sled::Error::Io(io::Error::from(io::ErrorKind::StorageFull)));
        assert!(
            matches!(&e, StoreError::Io { context, source }
                if context == "flushing /data" && source.kind() == io::ErrorKind::StorageFull),
            "{e:?}"
        );
        assert_eq!(e.condition(), StoreCondition::DiskFull);
        assert!(e.to_string().contains("flushing /data"), "{e}");

        let e = mapped(sled::Error::Io(io::Error::from(
            io::ErrorKind::PermissionDenied,
        )));
        assert_eq!(e.condition(), StoreCondition::ReadOnly);
        let e = mapped(sled::Error::Io(io::Error::other("could not acquire lock")));
        assert_eq!(e.io_kind(), Some(io::ErrorKind::Other));
        assert_eq!(e.condition(), StoreCondition::Unavailable);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sled_io_errors_keep_their_os_error() {
        // EDQUOT, a quota rather than the disk, is a full disk too.
        let e = mapped(sled::Error::Io(io::Error::from_raw_os_error(122)));
        assert_eq!(e.condition(), StoreCondition::DiskFull);
        let source = std::error::Error::source(&e).expect("has a source");
        let source = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(source.raw_os_error(), Some(122));
    }

    #[test]
    fn sled_corruption_is_corrupt() {
        let e = mapped(sled::Error::Corruption { at: None, bt: () });
        assert!(
            matches!(&e, StoreError::Corrupt { id: None, detail } if detail.starts_with("flushing /data: ")),
            "{e:?}"
        );
        assert_eq!(e.condition(), StoreCondition::Corrupt);
    }

    #[test]
    fn other_sled_errors_are_internal() {
        for e in [
            sled::Error::Unsupported("a tree named __sled__default".to_owned()),
            sled::Error::ReportableBug("oops".to_owned()),
            sled::Error::CollectionNotFound(sled::IVec::from("log")),
        ] {
            let e = mapped(e);
            assert!(
                matches!(&e, StoreError::Internal(message) if message.starts_with("flushing /data: ")),
                "{e:?}"
            );
            assert_eq!(e.condition(), StoreCondition::Unavailable);
            assert_eq!(e.io_kind(), None);
        }
    }
}
