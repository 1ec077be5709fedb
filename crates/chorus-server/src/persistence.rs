//! Group commit: one writer thread owns every store write and flush.
//!
//! Document actors submit [`PersistOp`]s and keep working; the writer takes the
//! first waiting job, drains every other job already queued (across all
//! documents), writes them all, then calls `flush` once — one fsync makes the
//! whole group durable — and only then answers each job. An actor tells a client
//! "saved" only after that answer, so an acknowledged edit is on disk.
//!
//! Why a thread and not `spawn_blocking` per write: the store is synchronous and
//! a flush is the expensive part; one long-lived thread batches naturally and
//! keeps fsyncs from competing with each other.

use crate::metrics::Metrics;
use chorus_store::{DocId, DocMeta, Store, WriteBatch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

/// Jobs waiting for the writer before submitters wait.
const WRITER_QUEUE: usize = 4096;
/// Most jobs one flush serves.
const MAX_GROUP: usize = 1024;

/// A write a document actor asks for.
pub enum PersistOp {
    /// Appended log records and metadata.
    Append(WriteBatch),
    /// Nothing to write, only something outside a batch to make durable (webhook
    /// events the actor put in the outbox): the group's flush does it.
    Flush,
    /// A new snapshot covering the log up to `upto_seq` (which is then deleted).
    Compact {
        /// The document.
        id: DocId,
        /// The whole document, lib0 v1.
        snapshot: Vec<u8>,
        /// Last log sequence number the snapshot covers.
        upto_seq: u64,
        /// Metadata to store with it (boxed: the other jobs are a fraction of its size).
        meta: Box<DocMeta>,
    },
}

/// The answer to a job: `Err` carries the store's message (the job is not durable).
pub type PersistResult = Result<(), String>;

struct Job {
    op: PersistOp,
    done: oneshot::Sender<PersistResult>,
}

/// Handle to the writer thread.
pub struct Persistence {
    jobs: mpsc::Sender<Job>,
    healthy: Arc<AtomicBool>,
    store: Arc<dyn Store>,
}

impl Persistence {
    /// Start the writer thread over `store`. With `group_commit` off every job is
    /// flushed on its own (for benchmarks that show what group commit buys).
    /// `on_flushed` runs on the writer thread after every successful flush.
    pub fn start(
        store: Arc<dyn Store>,
        group_commit: bool,
        metrics: Arc<Metrics>,
        on_flushed: Box<dyn Fn() + Send>,
    ) -> (Persistence, std::thread::JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(WRITER_QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let thread = {
            let (store, healthy) = (store.clone(), healthy.clone());
            std::thread::Builder::new()
                .name("chorus-store-writer".into())
                .spawn(move || writer_loop(rx, store, group_commit, healthy, metrics, on_flushed))
                .expect("spawning the store writer thread")
        };
        (
            Persistence {
                jobs,
                healthy,
                store,
            },
            thread,
        )
    }

    /// Queue a job; the receiver resolves once it is durable (or failed).
    pub async fn submit(&self, op: PersistOp) -> oneshot::Receiver<PersistResult> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.jobs.send(Job { op, done }).await {
            let _ = e.0.done.send(Err("the store writer has stopped".into()));
        }
        rx
    }

    /// False after the last flush failed (readiness reports it).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The store, for reads (loads and listings go through `spawn_blocking`).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

fn writer_loop(
    mut rx: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    group_commit: bool,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    on_flushed: Box<dyn Fn() + Send>,
) {
    let mut group: Vec<Job> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        if group_commit {
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
        }
        let started = Instant::now();
        let mut answers: Vec<(oneshot::Sender<PersistResult>, PersistResult)> =
            Vec::with_capacity(group.len());
        let mut records = 0usize;
        for Job { op, done } in group.drain(..) {
            let r = match op {
                PersistOp::Append(batch) => {
                    records += batch.record_count();
                    store.write(batch)
                }
                PersistOp::Compact {
                    id,
                    snapshot,
                    upto_seq,
                    meta,
                } => store.compact(&id, &snapshot, upto_seq, &meta),
                PersistOp::Flush => Ok(()),
            };
            answers.push((done, r.map_err(|e| e.to_string())));
        }
        let flushed = store.flush().map_err(|e| e.to_string());
        metrics.store_flush(answers.len(), records, started.elapsed());
        let ok = flushed.is_ok() && answers.iter().all(|(_, r)| r.is_ok());
        let was_healthy = healthy.swap(ok, Ordering::Relaxed);
        if !ok {
            metrics.store_error();
            let msg = flushed
                .as_ref()
                .err()
                .or_else(|| answers.iter().find_map(|(_, r)| r.as_ref().err()))
                .cloned()
                .unwrap_or_default();
            error!(error = %msg, jobs = answers.len(), "store write failed; nothing in this group is acknowledged");
        } else if !was_healthy {
            info!("store writes succeed again");
        }
        if flushed.is_ok() {
            // Webhook events written before this flush are durable now: they may go out.
            on_flushed();
        }
        for (done, result) in answers {
            let result = match (&flushed, result) {
                (Err(e), _) => Err(e.clone()),
                (Ok(()), r) => r,
            };
            let _ = done.send(result);
        }
    }
}
