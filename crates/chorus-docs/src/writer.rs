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
//!
//! Webhook events ride in the jobs too: the writer puts them in the store's outbox
//! (a store write, under the delivery's lock) before the group's flush, and
//! releases them to delivery after it. So the actor never touches the store, and a
//! host never hears of an event a crash could still undo.

use crate::error::DocError;
use crate::metrics::DocMetrics;
use chorus_hooks::{HookEvent, Hooks};
use chorus_store::{DocId, DocMeta, Store, StoreCondition, WriteBatch};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

/// Jobs waiting for the writer before submitters wait.
const WRITER_QUEUE: usize = 4096;
/// Most jobs one flush serves.
const MAX_GROUP: usize = 1024;

/// A write a document actor asks for.
pub(crate) enum PersistOp {
    /// Appended log records and metadata.
    Append(WriteBatch),
    /// Nothing to write but the job's webhook events.
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

/// The answer to a job: `Ok` once it is durable.
pub(crate) type PersistResult = Result<(), DocError>;

pub(crate) struct Job {
    pub(crate) op: PersistOp,
    /// Webhook events to put in the outbox with this job (in order).
    pub(crate) events: Vec<HookEvent>,
    pub(crate) done: oneshot::Sender<PersistResult>,
}

/// Handle to the writer thread. The thread stops once every handle is dropped.
pub(crate) struct StoreWriter {
    jobs: mpsc::Sender<Job>,
    /// What made the last group commit fail; `None` while writes succeed.
    failing: Arc<Mutex<Option<StoreCondition>>>,
    store: Arc<dyn Store>,
}

impl StoreWriter {
    /// Start the writer thread over `store`. With `group_commit` off every job is
    /// flushed on its own. After every successful flush the events written so far
    /// are released to `hooks`' delivery.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        group_commit: bool,
        metrics: Arc<dyn DocMetrics>,
        hooks: Hooks,
    ) -> StoreWriter {
        let (jobs, rx) = mpsc::channel(WRITER_QUEUE);
        let failing = Arc::new(Mutex::new(None));
        {
            let (store, failing) = (store.clone(), failing.clone());
            std::thread::Builder::new()
                .name("chorus-store-writer".into())
                .spawn(move || writer_loop(rx, store, group_commit, failing, metrics, hooks))
                .expect("spawning the store writer thread");
        }
        StoreWriter {
            jobs,
            failing,
            store,
        }
    }

    /// A writer with no thread: its jobs come out of the returned receiver, and
    /// whoever holds it (a test) writes and answers them, in the order it likes.
    #[cfg(test)]
    pub(crate) fn detached(store: Arc<dyn Store>) -> (StoreWriter, mpsc::Receiver<Job>) {
        let (jobs, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = StoreWriter {
            jobs,
            failing: Arc::new(Mutex::new(None)),
            store,
        };
        (writer, rx)
    }

    /// Queue a job with the webhook events it carries; the receiver resolves once
    /// it is durable (or failed).
    pub(crate) async fn submit(
        &self,
        op: PersistOp,
        events: Vec<HookEvent>,
    ) -> oneshot::Receiver<PersistResult> {
        let (done, rx) = oneshot::channel();
        if let Err(e) = self.jobs.send(Job { op, events, done }).await {
            let _ = e.0.done.send(Err(DocError::WriterStopped));
        }
        rx
    }

    /// Why the last group commit failed (`None` while writes succeed): readiness
    /// reports it.
    pub(crate) fn failing(&self) -> Option<StoreCondition> {
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store, for reads (loads and listings go through `spawn_blocking`).
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

fn writer_loop(
    mut rx: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    group_commit: bool,
    failing: Arc<Mutex<Option<StoreCondition>>>,
    metrics: Arc<dyn DocMetrics>,
    hooks: Hooks,
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
        for Job { op, events, done } in group.drain(..) {
            let mut not_queued = None;
            for event in &events {
                if let Err(e) = hooks.enqueue(event) {
                    error!(app = %event.app, doc = %event.doc, error = %e, kind = event.kind.as_str(), "webhook event could not be queued");
                    if let chorus_hooks::HooksError::Store(e) = e {
                        not_queued.get_or_insert(e);
                    }
                }
            }
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
            // An event the outbox refused is not stored: the job failed, and the
            // document raises its events again with the retry.
            let r = match not_queued {
                Some(e) => Err(DocError::EventsNotQueued(std::sync::Arc::new(e))),
                None => r.map_err(DocError::from),
            };
            answers.push((done, r));
        }
        let flushed = store.flush().map_err(DocError::from);
        metrics.store_flush(answers.len(), records, started.elapsed());
        let failure = flushed
            .as_ref()
            .err()
            .or_else(|| answers.iter().find_map(|(_, r)| r.as_ref().err()));
        // A fenced group says a document moved to another node, not that the store
        // is unwell: readiness stays as it was.
        let fenced = failure.is_some_and(DocError::is_fenced);
        let condition = failure.map(DocError::store_condition);
        let was = if fenced {
            None
        } else {
            std::mem::replace(
                &mut *failing.lock().unwrap_or_else(PoisonError::into_inner),
                condition,
            )
        };
        if fenced {
            if let Some(e) = failure {
                warn!(error = %e, jobs = answers.len(), "a group held writes of documents whose lease moved; nothing in it is acknowledged");
            }
        } else if let (Some(e), Some(condition)) = (failure, condition) {
            metrics.store_error();
            error!(%condition, error = %e, jobs = answers.len(), "store write failed; nothing in this group is acknowledged");
        } else if let Some(was) = was {
            info!(after = %was, "store writes succeed again");
        }
        if flushed.is_ok() {
            // Webhook events written before this flush are durable now: they may go out.
            hooks.notify();
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
