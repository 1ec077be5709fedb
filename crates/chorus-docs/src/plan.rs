//! "What to write next" for one document, as a pure state machine: no store, no
//! clock, no room. The actor tells it what happened (a record integrated, a job
//! started or finished, the retry timer fired) and asks it what to do; the unit
//! tests below pin the policy down.
//!
//! The rules:
//! - at most one job in flight per document; what arrives meanwhile is the next job;
//! - integrated records are appended to the log, with the history points and
//!   metadata that go with them, in one job;
//! - past `compact_after_updates` records or `compact_after_bytes` bytes of log, the
//!   job is a snapshot instead, which replaces the log (history points ride in an
//!   append, so a snapshot waits while they are pending unless one is required);
//! - after a failed job nothing is written until the retry timer fired, and the next
//!   job is a snapshot: a record lost in the failure could otherwise leave a gap in
//!   the log that no later append fills;
//! - webhook events with nothing else to write go in a flush-only job;
//! - with nothing to write, answers that wait (acks, host replies) are sent at once.

/// When the log is folded into a snapshot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thresholds {
    /// Log records past which the next job is a snapshot.
    pub(crate) compact_after_updates: u64,
    /// Log bytes past which the next job is a snapshot.
    pub(crate) compact_after_bytes: u64,
}

/// A job as the plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// `records` log records of `bytes` bytes appended.
    Append {
        /// Records in the job.
        records: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// A snapshot of `bytes` bytes replacing the log.
    Snapshot {
        /// Snapshot size.
        bytes: u64,
    },
    /// Only webhook events to make durable.
    Flush,
}

/// What the actor has waiting besides integrated records.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Waiting {
    /// History points to write.
    pub(crate) history: bool,
    /// Webhook events to make durable.
    pub(crate) events: bool,
    /// Acks or host replies to send once everything before them is durable.
    pub(crate) answers: bool,
    /// Metadata changed with no update behind it (a host's revocation): written by
    /// an append of no records.
    pub(crate) meta: bool,
}

/// The plan's advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// A job is in flight or a retry is pending.
    Wait,
    /// Nothing to write and nobody waiting.
    Idle,
    /// Nothing to write: everything answers wait for is durable already.
    AnswerNow,
    /// Write a snapshot of the whole document.
    Snapshot,
    /// Append the integrated records (and history points).
    Append,
    /// Write nothing but the events.
    Flush,
}

/// The write state of one document.
#[derive(Debug, Clone, Default)]
pub(crate) struct WritePlan {
    snapshot_bytes: u64,
    log_records: u64,
    log_bytes: u64,
    unsaved_records: u64,
    unsaved_bytes: u64,
    needs_snapshot: bool,
    retry_pending: bool,
    inflight: Option<Job>,
}

impl WritePlan {
    /// The state of a document as loaded: its snapshot and the log after it.
    pub(crate) fn loaded(snapshot_bytes: u64, log_records: u64, log_bytes: u64) -> Self {
        WritePlan {
            snapshot_bytes,
            log_records,
            log_bytes,
            ..WritePlan::default()
        }
    }

    /// The room integrated one record of `bytes` bytes.
    pub(crate) fn integrated(&mut self, bytes: u64) {
        self.unsaved_records += 1;
        self.unsaved_bytes += bytes;
    }

    /// Bytes the document holds: snapshot, log and what is not written yet.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.snapshot_bytes + self.log_bytes + self.unsaved_bytes
    }

    /// A job is in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> bool {
        self.inflight.is_some()
    }

    /// Nothing may be submitted now (a job in flight, or a retry pending).
    pub(crate) fn is_busy(&self) -> bool {
        self.inflight.is_some() || self.retry_pending
    }

    /// A failed job waits for the retry timer.
    #[cfg(test)]
    pub(crate) fn retry_pending(&self) -> bool {
        self.retry_pending
    }

    /// What to do now.
    pub(crate) fn next(&self, t: Thresholds, waiting: Waiting) -> Next {
        if self.is_busy() {
            return Next::Wait;
        }
        let unsaved = self.unsaved_records > 0;
        let compact = self.needs_snapshot
            || self.log_records + self.unsaved_records > t.compact_after_updates
            || self.log_bytes + self.unsaved_bytes > t.compact_after_bytes;
        if compact && (self.needs_snapshot || (!waiting.history && unsaved)) {
            Next::Snapshot
        } else if unsaved || waiting.history || waiting.meta {
            Next::Append
        } else if waiting.events {
            Next::Flush
        } else if waiting.answers {
            Next::AnswerNow
        } else {
            Next::Idle
        }
    }

    /// `job` was submitted: what was unsaved is in it.
    pub(crate) fn started(&mut self, job: Job) {
        debug_assert!(self.inflight.is_none(), "one job in flight per document");
        match job {
            Job::Append { records, .. } => {
                self.log_records += records;
                self.unsaved_records = 0;
                self.unsaved_bytes = 0;
            }
            Job::Snapshot { .. } => {
                self.unsaved_records = 0;
                self.unsaved_bytes = 0;
            }
            Job::Flush => {}
        }
        self.inflight = Some(job);
    }

    /// The job in flight finished; returns it. After a failure the next job is a
    /// snapshot, once [`WritePlan::retry_due`] was called.
    pub(crate) fn finished(&mut self, durable: bool) -> Option<Job> {
        let job = self.inflight.take()?;
        if !durable {
            self.needs_snapshot = true;
            self.retry_pending = true;
            return Some(job);
        }
        match job {
            Job::Snapshot { bytes } => {
                self.snapshot_bytes = bytes;
                self.log_records = 0;
                self.log_bytes = 0;
                self.needs_snapshot = false;
            }
            Job::Append { bytes, .. } => self.log_bytes += bytes,
            Job::Flush => {}
        }
        Some(job)
    }

    /// The retry timer fired: writing may resume.
    pub(crate) fn retry_due(&mut self) {
        self.retry_pending = false;
    }

    /// The document unloads: fold any log into a final snapshot, at once. False when
    /// there is no log work left.
    pub(crate) fn unloading(&mut self) -> bool {
        let log_work = self.unsaved_records > 0 || self.needs_snapshot || self.log_records > 0;
        self.needs_snapshot = log_work;
        self.retry_pending = false;
        log_work
    }

    /// Something is still not durable (for the unload's last word).
    pub(crate) fn has_unwritten(&self) -> bool {
        self.needs_snapshot || self.unsaved_records > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        compact_after_updates: 3,
        compact_after_bytes: 1000,
    };

    fn nothing() -> Waiting {
        Waiting::default()
    }

    #[test]
    fn records_are_appended_one_job_at_a_time() {
        let mut p = WritePlan::loaded(0, 0, 0);
        assert_eq!(p.next(T, nothing()), Next::Idle);
        p.integrated(10);
        assert_eq!(p.next(T, nothing()), Next::Append);
        p.started(Job::Append {
            records: 1,
            bytes: 10,
        });
        p.integrated(5);
        assert_eq!(p.next(T, nothing()), Next::Wait, "one job in flight");
        // Bytes in flight count once they are stored.
        assert_eq!(p.size_bytes(), 5);
        p.finished(true);
        assert_eq!(p.size_bytes(), 15);
        assert_eq!(p.next(T, nothing()), Next::Append, "what came meanwhile");
    }

    #[test]
    fn past_the_record_threshold_the_job_is_a_snapshot_that_resets_the_log() {
        let mut p = WritePlan::loaded(100, 3, 30);
        p.integrated(10);
        assert_eq!(p.next(T, nothing()), Next::Snapshot);
        p.started(Job::Snapshot { bytes: 120 });
        assert!(p.in_flight());
        p.finished(true);
        assert_eq!(p.size_bytes(), 120);
        p.integrated(1);
        assert_eq!(p.next(T, nothing()), Next::Append, "the log starts again");
    }

    #[test]
    fn past_the_byte_threshold_the_job_is_a_snapshot() {
        let mut p = WritePlan::loaded(0, 0, 990);
        p.integrated(20);
        assert_eq!(p.next(T, nothing()), Next::Snapshot);
    }

    #[test]
    fn pending_history_points_ride_in_an_append_before_compaction() {
        let mut p = WritePlan::loaded(0, 3, 30);
        p.integrated(10);
        let history = Waiting {
            history: true,
            ..nothing()
        };
        assert_eq!(p.next(T, history), Next::Append);
        // With no records at all, history alone is an append too.
        let q = WritePlan::loaded(0, 0, 0);
        assert_eq!(q.next(T, history), Next::Append);
    }

    #[test]
    fn a_failed_job_waits_for_the_retry_then_writes_a_snapshot() {
        let mut p = WritePlan::loaded(0, 0, 0);
        p.integrated(10);
        p.started(Job::Append {
            records: 1,
            bytes: 10,
        });
        assert_eq!(
            p.finished(false),
            Some(Job::Append {
                records: 1,
                bytes: 10
            })
        );
        p.integrated(5);
        assert_eq!(p.next(T, nothing()), Next::Wait, "until the retry timer");
        assert!(p.retry_pending());
        p.retry_due();
        // Even with history waiting: the gap must be closed first.
        let history = Waiting {
            history: true,
            ..nothing()
        };
        assert_eq!(p.next(T, history), Next::Snapshot);
        p.started(Job::Snapshot { bytes: 15 });
        p.finished(true);
        assert!(!p.has_unwritten());
        assert_eq!(p.next(T, nothing()), Next::Idle);
    }

    #[test]
    fn events_alone_make_a_flush_and_answers_alone_are_sent_at_once() {
        let p = WritePlan::loaded(0, 0, 0);
        let events = Waiting {
            events: true,
            answers: true,
            ..nothing()
        };
        assert_eq!(p.next(T, events), Next::Flush);
        let answers = Waiting {
            answers: true,
            ..nothing()
        };
        assert_eq!(p.next(T, answers), Next::AnswerNow);
        let meta = Waiting {
            meta: true,
            ..nothing()
        };
        assert_eq!(p.next(T, meta), Next::Append, "metadata alone is written");
    }

    #[test]
    fn unloading_folds_any_log_into_a_snapshot_even_during_a_retry() {
        let mut p = WritePlan::loaded(0, 2, 20);
        assert!(p.unloading());
        assert_eq!(p.next(T, nothing()), Next::Snapshot);
        let mut failed = WritePlan::loaded(0, 0, 0);
        failed.integrated(1);
        failed.started(Job::Append {
            records: 1,
            bytes: 1,
        });
        failed.finished(false);
        assert!(failed.unloading());
        assert_eq!(failed.next(T, nothing()), Next::Snapshot, "no retry wait");
        let mut clean = WritePlan::loaded(10, 0, 0);
        assert!(!clean.unloading());
    }
}
