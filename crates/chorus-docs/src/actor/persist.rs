//! The actor's side of persistence: gather what the room integrated, submit the
//! job [`crate::plan`] advises to the group-commit writer, act on its answer (acks,
//! host replies, the `saved` event), and the final write of an unload.
//!
//! At most one job is in flight per document, so whatever arrives meanwhile forms
//! the next one; an ack or a host's answer is only sent once the job that carries
//! what it covers is durable.

use super::state::Inflight;
use super::DocActor;
use crate::command::DocCommand;
use crate::env::now_ms;
use crate::error::DocError;
use crate::inbox::{InboxReceiver, InboxSender};
use crate::plan::{Job, Next, Thresholds, Waiting};
use crate::types::Disconnect;
use crate::writer::{PersistOp, PersistResult};
use chorus_store::{DocMeta, WriteBatch};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, error, warn};

/// After a failed store write, how long before the actor tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl DocActor {
    /// Take what the room integrated since the last call.
    pub(super) fn collect(&mut self) {
        let w = &mut self.writes;
        for u in self.room.take_unsaved() {
            w.plan.integrated(u.len() as u64);
            w.unsaved.push(u);
            w.exists = true;
            w.changed_since_point = true;
        }
        w.acks.extend(self.room.take_acks());
        let contributors = self.room.take_contributors();
        self.session
            .contributors
            .extend(contributors.iter().cloned());
        w.contributors.extend(contributors);
        let (neutralised, rejected) = self.room.take_neutralised();
        if neutralised.total() > 0 || rejected > 0 {
            self.env.metrics.whitelist(&neutralised, rejected);
        }
        self.enforce_quota();
    }

    pub(super) fn enforce_quota(&mut self) {
        let size = self.writes.plan.size_bytes();
        let over = size > self.env.policy.max_document_bytes;
        if over != self.room.is_read_only() {
            if over {
                warn!(app = %self.key.app, doc = %self.key.doc, size, "document reached its size limit; read-only");
            }
            self.room.set_read_only(over);
        }
    }

    /// Submit the next persistence job, if none is in flight.
    pub(super) async fn persist(&mut self) {
        if self.writes.plan.is_busy() {
            return;
        }
        self.maybe_auto_history();
        let policy = &self.env.policy;
        let thresholds = Thresholds {
            compact_after_updates: policy.compact_after_updates,
            compact_after_bytes: policy.compact_after_bytes,
        };
        let w = &self.writes;
        let waiting = Waiting {
            history: !w.history_pending.is_empty(),
            events: !w.events.is_empty(),
            answers: !w.acks.is_empty() || !w.host_replies.is_empty(),
            // A document never stored stays so: its revocations live while it is
            // loaded (storing it for them would create it).
            meta: w.meta_changed && w.exists,
        };
        match w.plan.next(thresholds, waiting) {
            Next::Wait | Next::Idle => {}
            Next::Snapshot => self.submit_snapshot().await,
            Next::Append => self.submit_append().await,
            Next::Flush => self.submit(PersistOp::Flush, Job::Flush, Vec::new()).await,
            Next::AnswerNow => {
                // Nothing new to write and nothing in flight: all of it is durable.
                for (conn, n) in std::mem::take(&mut self.writes.acks) {
                    self.room.send_saved(conn, n);
                }
                for reply in std::mem::take(&mut self.writes.host_replies) {
                    if let Some(tell) = reply.complete() {
                        self.room.notify_all(tell);
                    }
                }
            }
        }
    }

    /// Hand `op` to the writer with the events and answers waiting; `history` are
    /// the points it writes (queued again should it fail).
    async fn submit(&mut self, op: PersistOp, job: Job, history: Vec<chorus_store::HistoryPoint>) {
        let events = std::mem::take(&mut self.writes.events);
        // Few and small: kept to raise again if the job fails without storing them.
        let kept = events.clone();
        self.writes.plan.started(job);
        let done = self.env.writer.submit(op, events).await;
        self.writes.inflight = Some(Inflight {
            done,
            acks: std::mem::take(&mut self.writes.acks),
            host_replies: std::mem::take(&mut self.writes.host_replies),
            history,
            events: kept,
        });
    }

    fn next_meta(&mut self, new_records: u64) -> DocMeta {
        self.writes.meta_changed = false;
        let now = now_ms();
        let mut meta = self.writes.meta.clone();
        if meta.created_at_ms == 0 {
            meta.created_at_ms = now;
        }
        meta.updated_at_ms = now;
        meta.update_count += new_records;
        meta.contributors.extend(self.writes.contributors.drain(..));
        meta.state_vector = self.room.state_vector();
        // Whatever the room holds passed this whitelist (a load checks stored content
        // again unless it was stored under the same one).
        meta.content_policy =
            chorus_core::content_fingerprint(self.env.whitelist_for(&self.key.app));
        // The encoder starts with a 1 KiB buffer; the actor keeps this meta for as
        // long as the document stays loaded.
        meta.state_vector.shrink_to_fit();
        meta
    }

    async fn submit_append(&mut self) {
        let records = std::mem::take(&mut self.writes.unsaved);
        let bytes: u64 = records.iter().map(|r| r.len() as u64).sum();
        let mut batch = WriteBatch::default();
        for r in &records {
            batch.append(&self.id, self.writes.next_seq, r);
            self.writes.next_seq += 1;
        }
        let history = std::mem::take(&mut self.writes.history_pending);
        for point in &history {
            batch.put_history(&self.id, point);
        }
        let mut meta = self.next_meta(records.len() as u64);
        meta.size_bytes = self.writes.plan.size_bytes();
        batch.put_meta(&self.id, &meta);
        self.writes.meta = meta;
        let job = Job::Append {
            records: records.len() as u64,
            bytes,
        };
        self.submit(PersistOp::Append(batch), job, history).await;
    }

    async fn submit_snapshot(&mut self) {
        let new_records = self.writes.unsaved.len() as u64;
        self.writes.unsaved.clear();
        let snapshot = self.room.encode_state();
        // Every seq handed out so far is covered; the next one starts after it.
        let upto_seq = self.writes.next_seq - 1;
        let mut meta = self.next_meta(new_records);
        meta.size_bytes = snapshot.len() as u64;
        meta.snapshot_seq = upto_seq;
        self.writes.meta = meta.clone();
        let job = Job::Snapshot {
            bytes: snapshot.len() as u64,
        };
        let op = PersistOp::Compact {
            id: self.id.clone(),
            snapshot,
            upto_seq,
            meta: Box::new(meta),
        };
        self.submit(op, job, Vec::new()).await;
    }

    pub(super) fn completed(&mut self, result: PersistResult) {
        let Some(job) = self.writes.inflight.take() else {
            return;
        };
        let kind = self.writes.plan.finished(result.is_ok());
        match result {
            Ok(()) => {
                for (conn, n) in job.acks {
                    self.room.send_saved(conn, n);
                }
                for reply in job.host_replies {
                    if let Some(tell) = reply.complete() {
                        self.room.notify_all(tell);
                    }
                }
                if matches!(
                    kind,
                    Some(Job::Snapshot { .. }) | Some(Job::Append { bytes: 1.., .. })
                ) {
                    self.saved();
                }
                self.enforce_quota();
            }
            Err(e) if e.fences(&self.id) => {
                for reply in job.host_replies {
                    reply.fail(e.clone());
                }
                self.lease_lost();
            }
            Err(e) => {
                warn!(app = %self.key.app, doc = %self.key.doc, error = %e, "document write failed; will write a full snapshot");
                // Not durable: keep the acks for the snapshot that replaces this job
                // (an editor simply gets no ack yet); a host is told now, with the
                // store's condition (its change stays applied and is written by the
                // retry, so repeating it is safe).
                for reply in job.host_replies {
                    reply.fail(e.clone());
                }
                let w = &mut self.writes;
                let mut acks = job.acks;
                acks.append(&mut w.acks);
                w.acks = acks;
                let mut history = job.history;
                history.append(&mut w.history_pending);
                w.history_pending = history;
                // Not stored (refused by the outbox, or rolled back with the failed
                // group): raised again, in their order. Where a failed flush may have
                // kept them (sled), they are not, to send none twice.
                if matches!(e, DocError::EventsNotQueued(_))
                    || self.env.store().discards_failed_flush()
                {
                    let mut events = job.events;
                    events.append(&mut w.events);
                    w.events = events;
                }
                w.retry_at = Some(Instant::now() + RETRY_AFTER);
            }
        }
    }

    /// Persist what is left, leave the map, and pass on anything that raced in.
    /// Cluster mode: give the lease up (after the last write), so another node can
    /// take the document at once instead of after the lease lapses.
    async fn release_lease(&mut self) {
        let Some(token) = self.lease.take() else {
            return;
        };
        let Some(cluster) = self.env.cluster() else {
            return;
        };
        cluster.owned.remove_if(&self.key, |_, t| *t == token);
        let (store, id, lost) = (self.env.store().clone(), self.id.clone(), self.lease_lost);
        let released = tokio::task::spawn_blocking(move || match store.leases() {
            Some(leases) => {
                leases.unfence(&id, token);
                if lost {
                    Ok(())
                } else {
                    leases.release(&id, token)
                }
            }
            None => Ok(()),
        })
        .await;
        if let Ok(Err(e)) = released {
            // It lapses on its own within the lease's lifetime.
            warn!(app = %self.key.app, doc = %self.key.doc, error = %e, "cannot release the lease");
        }
    }

    pub(super) async fn unload(
        mut self,
        mut rx: InboxReceiver<DocCommand>,
        own_tx: InboxSender<DocCommand>,
    ) {
        if let Some(ending) = self.ending.take() {
            match ending {
                super::state::Ending::Delete(reply) => Box::pin(self.delete(reply)).await,
                super::state::Ending::Evict(reply) => Box::pin(self.evict(reply)).await,
            }
        } else {
            Box::pin(self.final_write()).await;
        }
        Box::pin(self.release_lease()).await;
        for reply in std::mem::take(&mut self.writes.host_replies) {
            reply.fail(DocError::Unloaded);
        }
        self.exit.hand_over(&own_tx, &mut rx);
        for (_, c) in self.members.controls.drain() {
            c.close(Disconnect::Stopped);
        }
        debug!(app = %self.key.app, doc = %self.key.doc, "unloaded");
    }

    /// An unload's last write: the editing session's `closed`, the job in flight,
    /// then a final snapshot if the log grew.
    async fn final_write(&mut self) {
        // An editing session still open ends here (its `closed` event goes out with
        // the final write).
        if !self.lease_lost {
            Box::pin(self.close_session()).await;
        }
        // Wait for the job in flight, then write a final snapshot if the log grew
        // (not after the lease was lost: the store refuses this node's writes).
        for _ in 0..4 {
            if self.lease_lost {
                break;
            }
            if let Some(job) = self.writes.inflight.as_mut() {
                let r = (&mut job.done).await;
                self.completed(r.unwrap_or(Err(DocError::WriterStopped)));
            }
            self.collect();
            let log_work = self.writes.plan.unloading();
            let w = &self.writes;
            if !log_work
                && w.history_pending.is_empty()
                && w.host_replies.is_empty()
                && w.events.is_empty()
            {
                break;
            }
            // The log folds into a final snapshot; history points follow in an append.
            self.writes.retry_at = None;
            self.persist().await;
        }
        if self.lease_lost {
            warn!(app = %self.key.app, doc = %self.key.doc, "stopped after losing the lease; unacknowledged changes are resynced by the clients with the new owner");
        } else if self.writes.plan.has_unwritten() || !self.writes.history_pending.is_empty() {
            error!(app = %self.key.app, doc = %self.key.doc, "unloading with changes the store did not accept");
        }
    }
}
