//! [`Hooks`], the handle the server holds: enqueue an event next to the writes it
//! describes, release it after the group commit, run the delivery loop, read the
//! counters ([`HooksStats`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chorus_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

use crate::config::HooksConfig;
use crate::delivery;
use crate::error::HooksError;
use crate::event::{event_id, parse_event_id, DeadEvent, HookEvent, StoredEvent};
use crate::http;
use crate::shared::{now_ms, Counters, Inbox, LiveEvent, Shared};
use crate::target::Targets;

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HooksStats {
    /// Events the host accepted.
    pub delivered: u64,
    /// Attempts that failed (each is retried or, past `max_age`, dropped).
    pub failed_attempts: u64,
    /// Events given up: too old, no target any more, or an unreadable outbox record.
    pub dropped: u64,
    /// Events not sent because the draft they were about was deleted first (the
    /// `deleted` event replaces them).
    pub superseded: u64,
    /// Events given up and kept as dead letters until the host takes them (over all
    /// apps, as last counted: at start, at each outbox read, after each change).
    pub dead_letters: u64,
    /// Events waiting to be delivered that this process knows of (held by the loop or
    /// enqueued and not yet taken by it; a backlog beyond `max_loaded` is not counted).
    pub pending: u64,
}

/// Webhook delivery: [`enqueue`](Self::enqueue) events, run the delivery loop
/// ([`run`](Self::run)). Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Hooks {
    shared: Arc<Shared>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Hooks {
    /// Deliver the events of `store`'s outbox to the targets `targets` names.
    ///
    /// Fails if `config` is out of range or the HTTP client cannot be built.
    pub fn new(
        store: Arc<dyn Store>,
        targets: Arc<dyn Targets>,
        config: HooksConfig,
    ) -> Result<Self, HooksError> {
        config.validate()?;
        let client = http::client(config.request_timeout)?;
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                targets,
                config,
                client,
                inbox: Mutex::new(Inbox {
                    first_local: None,
                    last_enqueued: 0,
                    released_upto: 0,
                    live: VecDeque::new(),
                    overflowed: false,
                }),
                wake: Notify::new(),
                counters: Counters::default(),
                running: AtomicBool::new(false),
            }),
        })
    }

    /// Append `event` to the outbox (a synchronous store write, durable after the
    /// caller's next [`Store::flush`]) and return its event id (`"evt-<n>"`).
    ///
    /// The event is sent after the next [`notify`](Self::notify), after every event
    /// of the same (app, doc) enqueued before it. Call it where the writes the event
    /// describes are made (e.g. on the group-commit writer thread).
    pub fn enqueue(&self, event: &HookEvent) -> Result<String, HooksError> {
        let record = StoredEvent::from_event(event, now_ms())?;
        let payload = record.encode()?;
        if self.shared.config.shared_outbox_poll.is_some() {
            // Whichever node delivers reads it from the outbox once committed.
            let id = self.shared.store.outbox_push(&event.app, &payload)?;
            let event_id = event_id(id);
            debug!(app = %event.app, doc = %event.doc, event = %event_id, kind = %event.kind, "webhook event enqueued in the shared outbox");
            return Ok(event_id);
        }
        let mut inbox = self.shared.inbox();
        let id = self.shared.store.outbox_push(&event.app, &payload)?;
        inbox.first_local.get_or_insert(id);
        inbox.last_enqueued = inbox.last_enqueued.max(id);
        if inbox.live.len() < self.shared.config.max_loaded {
            inbox.live.push_back(LiveEvent {
                id,
                app: event.app.clone(),
                record,
            });
        } else {
            inbox.overflowed = true;
        }
        drop(inbox);
        let event_id = event_id(id);
        debug!(app = %event.app, doc = %event.doc, event = %event_id, kind = %event.kind, "webhook event enqueued");
        Ok(event_id)
    }

    /// Up to `limit` dead letters of `app` (events given up on), oldest first, as the
    /// host API shows them. Blocking: call it off the runtime's workers.
    pub fn dead_letters(&self, app: &str, limit: usize) -> Result<Vec<DeadEvent>, StoreError> {
        let dead = self.shared.store.dead_letters(app, limit)?;
        Ok(dead.into_iter().map(DeadEvent::from_dead_letter).collect())
    }

    /// The host took dead letter `event_id` (`"evt-<n>"`) of `app`: removed. False if
    /// `app` has no such dead letter. Blocking.
    pub fn ack_dead_letter(&self, app: &str, event_id: &str) -> Result<bool, StoreError> {
        let Some(id) = parse_event_id(event_id) else {
            return Ok(false);
        };
        let taken = self.shared.store.dead_letter_ack(app, id)?;
        if taken {
            self.shared.recount_dead_letters();
        }
        Ok(taken)
    }

    /// Let the delivery loop send every event enqueued so far, and wake it. Call it
    /// after the [`Store::flush`] that made those events durable.
    pub fn notify(&self) {
        {
            let mut inbox = self.shared.inbox();
            inbox.released_upto = inbox.last_enqueued;
        }
        self.shared.wake.notify_one();
    }

    /// The delivery loop, until `stop` is cancelled. It starts by reading the outbox,
    /// so events left pending by an earlier process are sent. At the stop, requests
    /// in flight get up to 5 s to finish and be acknowledged; the rest are abandoned
    /// (and sent again by the next run, with the same ids).
    ///
    /// Run one loop per store: a second `run` while one is running returns at once
    /// with an `error!`.
    pub async fn run(self, stop: CancellationToken) {
        if self.shared.running.swap(true, Ordering::AcqRel) {
            error!("webhook delivery loop already running; not starting another");
            return;
        }
        let _running = RunningGuard(&self.shared.running);
        delivery::Delivery::new(Arc::clone(&self.shared))
            .run(stop)
            .await;
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> HooksStats {
        let c = &self.shared.counters;
        let live = self.shared.inbox().live.len() as u64;
        HooksStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            superseded: c.superseded.load(Ordering::Relaxed),
            dead_letters: c.dead_letters.load(Ordering::Relaxed),
            pending: c.loaded.load(Ordering::Relaxed) + live,
        }
    }
}

/// Clears the "loop running" flag however `run` ends (also if its future is dropped).
struct RunningGuard<'a>(&'a AtomicBool);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
