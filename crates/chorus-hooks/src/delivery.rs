//! The delivery loop: which event is sent when.
//!
//! State (all owned by the loop task):
//! - `entries`: every pending event the loop holds, with its attempt state;
//! - `docs`: per (app, doc), the ids of its held events in outbox order; only the
//!   front one (the *head*) is ever sent, which is what orders a document's events;
//! - `waiting`: `(next attempt time, id)` of every head not in flight; dispatching
//!   takes the due ones, oldest time first, up to the concurrency limit.
//!
//! Invariant: for every document, the held events are the oldest of its released
//! pending events (a prefix in id order). Events enqueued by this process reach the
//! loop through the inbox; the outbox is read when the loop may be missing events
//! (`overflow`: at start, and after more events were pending than `max_loaded`). An
//! outbox read returns the oldest events of all documents, so it keeps the invariant;
//! while `overflow` is set, events from the inbox are left to the next read.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chorus_store::{OutboxEvent, StoreError};
use tokio::task::{self, JoinError, JoinSet};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::backoff;
use crate::event::{event_id, EventKind, StoredEvent};
use crate::http::{self, Failure, Request};
use crate::shared::{now_ms, LiveEvent, Shared};
use crate::sign::sign;

/// Least time between two outbox reads while more events are pending than fit in
/// memory (each read goes through the oldest `max_loaded` records); shorter if
/// `backoff_base` is.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

type DocKey = (String, String);

/// How long a stopping loop waits for the attempts in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One pending event held by the loop.
struct Entry {
    app: String,
    doc: String,
    kind: EventKind,
    event_id: String,
    body: Bytes,
    queued_at_ms: u64,
    /// Failed attempts so far.
    failures: u32,
    /// Not sent before this.
    next_at: Instant,
    in_flight: bool,
}

/// What one attempt task returns: the outbox id and the outcome.
type Attempt = (u64, Result<(), Failure>);

pub(crate) struct Delivery {
    shared: Arc<Shared>,
    entries: HashMap<u64, Entry>,
    docs: HashMap<DocKey, VecDeque<u64>>,
    waiting: BTreeSet<(Instant, u64)>,
    in_flight: JoinSet<Attempt>,
    /// Outbox id of each attempt task, to recover it if the task panics.
    tasks: HashMap<task::Id, u64>,
    /// Delivered or dropped events whose outbox acknowledgement failed; retried before
    /// each outbox read, skipped by it.
    unacked: BTreeSet<u64>,
    /// Events a later `deleted` event of their document made moot: dropped (and
    /// acknowledged) on the loop's next pass.
    superseded: Vec<u64>,
    /// The outbox may hold released events the loop does not hold.
    overflow: bool,
    scan_failures: u32,
    /// No outbox read before this (after a failed or a truncated read).
    scan_not_before: Option<Instant>,
}

impl Delivery {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            entries: HashMap::new(),
            docs: HashMap::new(),
            waiting: BTreeSet::new(),
            in_flight: JoinSet::new(),
            tasks: HashMap::new(),
            unacked: BTreeSet::new(),
            superseded: Vec::new(),
            // Nothing is known yet: start with an outbox read.
            overflow: true,
            scan_failures: 0,
            scan_not_before: None,
        }
    }

    pub(crate) async fn run(mut self, stop: CancellationToken) {
        info!("webhook delivery loop started");
        let poll = self.shared.config.shared_outbox_poll;
        let mut next_poll = Instant::now();
        let mut woken = false;
        loop {
            // A shared outbox is the only way other processes' events arrive: read it
            // on every poll, and when this process's own flush woke the loop.
            if let Some(every) = poll {
                let now = Instant::now();
                if woken || now >= next_poll {
                    self.overflow = true;
                    next_poll = now + every;
                }
            }
            woken = false;
            self.take_inbox();
            if self.scan_due(Instant::now()) {
                self.scan().await;
            }
            self.drop_superseded().await;
            self.dispatch().await;
            self.shared
                .counters
                .loaded
                .store(self.entries.len() as u64, Ordering::Relaxed);
            let wake_at = match (self.next_wake(), poll) {
                (Some(at), Some(_)) => Some(at.min(next_poll)),
                (None, Some(_)) => Some(next_poll),
                (at, None) => at,
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                Some(joined) = self.in_flight.join_next_with_id() => self.finish(joined).await,
                () = self.shared.wake.notified() => woken = true,
                () = sleep_until(wake_at.unwrap_or_else(Instant::now)), if wake_at.is_some() => {}
            }
        }
        // Attempts in flight finish (and are acknowledged) first, for a moment: an
        // event the host received but this process did not acknowledge would be
        // sent again by the next run (or, in a cluster, by the next deliverer).
        let grace = tokio::time::sleep(STOP_GRACE);
        tokio::pin!(grace);
        while !self.in_flight.is_empty() {
            tokio::select! {
                Some(joined) = self.in_flight.join_next_with_id() => self.finish(joined).await,
                () = &mut grace => break,
            }
        }
        let abandoned = self.in_flight.len();
        self.in_flight.abort_all();
        info!(
            abandoned,
            pending = self.entries.len(),
            "webhook delivery loop stopped"
        );
    }

    /// Take the events `notify` released from the inbox.
    fn take_inbox(&mut self) {
        let (live, overflowed) = {
            let mut inbox = self.shared.inbox();
            let upto = inbox.released_upto;
            let released = inbox.live.iter().take_while(|e| e.id <= upto).count();
            let live: Vec<LiveEvent> = inbox.live.drain(..released).collect();
            (live, std::mem::take(&mut inbox.overflowed))
        };
        if overflowed {
            self.overflow = true;
        }
        if self.overflow {
            // They are in the outbox; the next read gets them in order.
            return;
        }
        let now = Instant::now();
        for event in live {
            if self.entries.len() >= self.shared.config.max_loaded {
                warn!(
                    pending = self.entries.len(),
                    "more webhook events pending than max_loaded; the rest wait in the outbox"
                );
                self.overflow = true;
                break;
            }
            self.insert(event.id, event.app, event.record, now);
        }
    }

    fn scan_due(&self, now: Instant) -> bool {
        self.overflow
            && self.entries.len() <= self.shared.config.max_loaded / 2
            && self.scan_not_before.is_none_or(|at| now >= at)
    }

    /// Read the oldest pending events of the outbox and hold the released ones.
    async fn scan(&mut self) {
        self.retry_acks().await;
        let shared = Arc::clone(&self.shared);
        let limit = shared.config.max_loaded;
        let read = task::spawn_blocking(move || {
            // Under the inbox lock: no enqueue is between its push and its hand-over.
            let mut inbox = shared.inbox();
            let events = shared.store.outbox_pending(limit)?;
            // Every released event in the inbox was pushed before this read: it is in
            // `events`, or (if truncated) left for a later read.
            let upto = inbox.released_upto;
            inbox.live.retain(|e| e.id > upto);
            inbox.overflowed = false;
            let released: Vec<bool> = events.iter().map(|e| inbox.is_released(e.id)).collect();
            Ok::<_, StoreError>((events, released))
        })
        .await;
        let now = Instant::now();
        let (events, released) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return self.scan_failed(&e.to_string(), now),
            Err(e) => return self.scan_failed(&e.to_string(), now),
        };
        self.scan_failures = 0;
        let truncated = events.len() >= limit;
        let interval = RESCAN_INTERVAL.min(self.shared.config.backoff_base);
        self.scan_not_before = truncated.then(|| now + interval);
        let mut unreadable = Vec::new();
        let mut added = 0usize;
        for (event, released) in events.into_iter().zip(released) {
            let OutboxEvent { id, app, payload } = event;
            if !released || self.entries.contains_key(&id) || self.unacked.contains(&id) {
                continue;
            }
            match StoredEvent::decode(&payload) {
                Ok(record) => {
                    self.insert(id, app, record, now);
                    added += 1;
                }
                Err(why) => {
                    error!(%app, event = %event_id(id), %why, "unreadable webhook outbox record; kept as a dead letter");
                    unreadable.push((id, app, format!("unreadable: {why}")));
                }
            }
        }
        for (id, app, reason) in unreadable {
            self.give_up(id, &app, &reason).await;
        }
        let shared = Arc::clone(&self.shared);
        let _ = task::spawn_blocking(move || shared.recount_dead_letters()).await;
        self.overflow = truncated;
        if added > 0 || truncated {
            info!(
                added,
                pending = self.entries.len(),
                truncated,
                "webhook outbox read"
            );
        }
    }

    fn scan_failed(&mut self, why: &str, now: Instant) {
        self.scan_failures += 1;
        let config = &self.shared.config;
        let delay = backoff::delay(config.backoff_base, config.backoff_cap, self.scan_failures)
            .max(config.backoff_base);
        self.scan_not_before = Some(now + delay);
        error!(
            error = %why,
            failures = self.scan_failures,
            retry_in_ms = delay.as_millis() as u64,
            "cannot read the webhook outbox; events not yet loaded wait until it can be read"
        );
    }

    /// Hold event `id`, behind the held events of its document.
    fn insert(&mut self, id: u64, app: String, record: StoredEvent, now: Instant) {
        if self.entries.contains_key(&id) || self.unacked.contains(&id) {
            return;
        }
        let event_id = event_id(id);
        let key = (app.clone(), record.doc.clone());
        let entry = Entry {
            body: record.body(&event_id, &app),
            app,
            doc: record.doc,
            kind: record.kind,
            event_id,
            queued_at_ms: record.queued_at_ms,
            failures: 0,
            next_at: now,
            in_flight: false,
        };
        let deleted = entry.kind == EventKind::Deleted;
        let queue = self.docs.entry(key.clone()).or_default();
        match queue.back() {
            None => {
                queue.push_back(id);
                self.waiting.insert((now, id));
            }
            Some(&last) if last < id => queue.push_back(id),
            Some(_) => {
                // Older than events of its document already held: two events of one
                // document were enqueued concurrently.
                let mut pos = queue.partition_point(|&q| q < id);
                if pos == 0 {
                    let head = queue[0];
                    match self.entries.get(&head) {
                        Some(h) if h.in_flight => {
                            warn!(app = %entry.app, doc = %entry.doc, event = %entry.event_id,
                                "webhook event is older than one being sent for its document; sent after it");
                            pos = 1;
                        }
                        Some(h) => {
                            self.waiting.remove(&(h.next_at, head));
                            self.waiting.insert((now, id));
                        }
                        None => {}
                    }
                }
                queue.insert(pos, id);
            }
        }
        self.entries.insert(id, entry);
        if deleted {
            // What the host was still to hear of the draft before its deletion: the
            // deletion says it all (an event being sent is let finish).
            if let Some(queue) = self.docs.get(&key) {
                self.superseded.extend(
                    queue
                        .iter()
                        .copied()
                        .filter(|&q| q < id && self.entries.get(&q).is_some_and(|e| !e.in_flight)),
                );
            }
        }
    }

    /// Whether a `deleted` event of document `key` is held behind event `id`.
    fn deleted_after(&self, key: &DocKey, id: u64) -> bool {
        self.docs.get(key).is_some_and(|queue| {
            queue.iter().any(|&q| {
                q > id
                    && self
                        .entries
                        .get(&q)
                        .is_some_and(|e| e.kind == EventKind::Deleted)
            })
        })
    }

    /// Drop and acknowledge the events a deletion made moot.
    async fn drop_superseded(&mut self) {
        for id in std::mem::take(&mut self.superseded) {
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            if entry.in_flight {
                continue;
            }
            debug!(app = %entry.app, doc = %entry.doc, event = %entry.event_id, kind = %entry.kind,
                "webhook event superseded by the draft's deletion; dropped");
            self.shared
                .counters
                .superseded
                .fetch_add(1, Ordering::Relaxed);
            self.forget(id);
            self.ack(id).await;
        }
    }

    /// Stop holding event `id`; the next event of its document becomes sendable.
    fn forget(&mut self, id: u64) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.waiting.remove(&(entry.next_at, id));
        let key = (entry.app, entry.doc);
        let Some(queue) = self.docs.get_mut(&key) else {
            return;
        };
        let was_head = queue.front() == Some(&id);
        queue.retain(|&q| q != id);
        match queue.front() {
            None => {
                self.docs.remove(&key);
            }
            Some(&next) if was_head => {
                if let Some(e) = self.entries.get(&next) {
                    if !e.in_flight {
                        self.waiting.insert((e.next_at, next));
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// Give up on event `id` (already forgotten): it moves from the outbox to the
    /// dead letters, where the host reads and acknowledges it. If the store cannot
    /// take it now, it stays pending and the next outbox read brings it back (and it
    /// is given up again), so it is never lost silently.
    async fn give_up(&mut self, id: u64, app: &str, reason: &str) {
        let shared = Arc::clone(&self.shared);
        let (app, reason) = (app.to_owned(), reason.to_owned());
        let moved = task::spawn_blocking(move || {
            shared
                .store
                .outbox_dead_letter(id, &app, &reason, now_ms())?;
            shared.recount_dead_letters();
            Ok::<_, StoreError>(())
        })
        .await;
        match moved {
            Ok(Ok(())) => {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => self.give_up_failed(id, &e.to_string()),
            Err(e) => self.give_up_failed(id, &e.to_string()),
        }
    }

    fn give_up_failed(&mut self, id: u64, why: &str) {
        error!(event = %event_id(id), error = %why, "cannot keep a webhook event as a dead letter; it stays pending");
        // Read again, not at once: the store is in trouble.
        self.overflow = true;
        let later = Instant::now() + RESCAN_INTERVAL.max(self.shared.config.backoff_base);
        self.scan_not_before = Some(self.scan_not_before.map_or(later, |t| t.max(later)));
    }

    /// Remove a delivered or dropped event from the outbox.
    async fn ack(&mut self, id: u64) {
        let store = Arc::clone(&self.shared.store);
        let acked = task::spawn_blocking(move || store.outbox_ack(id)).await;
        let failed = match acked {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        error!(event = %event_id(id), error = %failed, "cannot acknowledge a webhook event; it may be sent again after a restart");
        self.unacked.insert(id);
    }

    async fn retry_acks(&mut self) {
        if self.unacked.is_empty() {
            return;
        }
        let store = Arc::clone(&self.shared.store);
        let ids: Vec<u64> = self.unacked.iter().copied().collect();
        let done = task::spawn_blocking(move || {
            ids.into_iter()
                .filter(|&id| store.outbox_ack(id).is_ok())
                .collect::<Vec<u64>>()
        })
        .await
        .unwrap_or_default();
        for id in done {
            self.unacked.remove(&id);
        }
    }

    /// Start attempts for the due heads, up to the concurrency limit.
    async fn dispatch(&mut self) {
        loop {
            if self.in_flight.len() >= self.shared.config.concurrency {
                return;
            }
            let now = Instant::now();
            match self.waiting.first() {
                Some(&(at, _)) if at <= now => {}
                _ => return,
            }
            let Some((_, id)) = self.waiting.pop_first() else {
                return;
            };
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            let Some(target) = self.shared.targets.target(&entry.app) else {
                warn!(app = %entry.app, doc = %entry.doc, event = %entry.event_id, kind = %entry.kind,
                    "app has no webhook target (disabled or no callback URL); event kept as a dead letter");
                let app = entry.app.clone();
                self.forget(id);
                self.give_up(id, &app, "no-target").await;
                continue;
            };
            entry.in_flight = true;
            let prepared = sign(
                &target.secret,
                &entry.app,
                &entry.event_id,
                &entry.body,
                now_ms() / 1000,
            )
            .map(|token| Request {
                url: target.callback_url,
                token,
                event_id: entry.event_id.clone(),
                event_type: entry.kind.as_str(),
                body: entry.body.clone(),
            })
            .map_err(|e| Failure::Signing(e.to_string()));
            debug!(app = %entry.app, doc = %entry.doc, event = %entry.event_id, attempt = entry.failures + 1, "sending webhook");
            let client = self.shared.client.clone();
            let handle = self.in_flight.spawn(async move {
                let outcome = match prepared {
                    Ok(request) => http::deliver(&client, request).await,
                    Err(failure) => Err(failure),
                };
                (id, outcome)
            });
            self.tasks.insert(handle.id(), id);
        }
    }

    /// Account for a finished attempt.
    async fn finish(&mut self, joined: Result<(task::Id, Attempt), JoinError>) {
        let (id, outcome) = match joined {
            Ok((task, (id, outcome))) => {
                self.tasks.remove(&task);
                (id, outcome)
            }
            Err(e) => {
                let Some(id) = self.tasks.remove(&e.id()) else {
                    return;
                };
                (
                    id,
                    Err(Failure::Request("the attempt task failed".to_owned())),
                )
            }
        };
        let config = &self.shared.config;
        let counters = &self.shared.counters;
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.in_flight = false;
        let failure = match outcome {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                debug!(app = %entry.app, doc = %entry.doc, event = %entry.event_id,
                    attempts = entry.failures + 1, "webhook delivered");
                self.forget(id);
                self.ack(id).await;
                return;
            }
            Err(failure) => failure,
        };
        counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let key = (entry.app.clone(), entry.doc.clone());
        if entry.kind != EventKind::Deleted && self.deleted_after(&key, id) {
            // The draft was deleted while this was being sent: not sent again.
            self.superseded.push(id);
            return;
        }
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.failures = entry.failures.saturating_add(1);
        let age_ms = now_ms().saturating_sub(entry.queued_at_ms);
        if u128::from(age_ms) >= config.max_age.as_millis() {
            error!(app = %entry.app, doc = %entry.doc, event = %entry.event_id, kind = %entry.kind,
                attempts = entry.failures, reason = %failure, age_s = age_ms / 1000,
                "webhook event undeliverable for max_age; kept as a dead letter");
            let app = entry.app.clone();
            let reason = format!("max-age: {failure} (after {} attempts)", entry.failures);
            self.forget(id);
            self.give_up(id, &app, &reason).await;
            return;
        }
        let delay = backoff::delay(config.backoff_base, config.backoff_cap, entry.failures);
        entry.next_at = Instant::now() + delay;
        self.waiting.insert((entry.next_at, id));
        // Every attempt of a long outage would be a lot of warnings.
        if entry.failures <= 3 || entry.failures % 10 == 0 {
            warn!(app = %entry.app, doc = %entry.doc, event = %entry.event_id, kind = %entry.kind,
                attempts = entry.failures, reason = %failure, retry_in_ms = delay.as_millis() as u64,
                "webhook attempt failed; will retry");
        } else {
            debug!(app = %entry.app, doc = %entry.doc, event = %entry.event_id,
                attempts = entry.failures, reason = %failure, retry_in_ms = delay.as_millis() as u64,
                "webhook attempt failed; will retry");
        }
    }

    /// When the loop must look again without being woken: the next head coming due
    /// (if a request slot is free), or the next allowed outbox read.
    fn next_wake(&self) -> Option<Instant> {
        let mut wake = None;
        if self.in_flight.len() < self.shared.config.concurrency {
            wake = self.waiting.first().map(|&(at, _)| at);
        }
        if self.overflow && self.entries.len() <= self.shared.config.max_loaded / 2 {
            if let Some(at) = self.scan_not_before {
                wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
            }
        }
        wake
    }
}
