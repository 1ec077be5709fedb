//! What the [`Hooks`](crate::Hooks) handles and the delivery loop share: the store,
//! targets, config and HTTP client, the inbox through which enqueued events reach the
//! loop, and the counters; plus the wall clock both sides stamp events with.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use chorus_store::Store;
use tokio::sync::Notify;

use crate::config::HooksConfig;
use crate::event::StoredEvent;
use crate::target::Targets;

/// Event handed from [`Hooks::enqueue`](crate::Hooks::enqueue) to the delivery loop.
pub(crate) struct LiveEvent {
    pub(crate) id: u64,
    pub(crate) app: String,
    pub(crate) record: StoredEvent,
}

/// What enqueuers and the loop share. Its lock is also held across `outbox_push` (by
/// enqueue) and `outbox_pending` (by the loop's outbox reads), which makes "pushed" and
/// "handed over" one step as far as the loop can see.
pub(crate) struct Inbox {
    /// Smallest outbox id enqueued by this process; smaller ids were left by earlier
    /// runs and may be sent at once.
    pub(crate) first_local: Option<u64>,
    /// Largest outbox id enqueued by this process.
    pub(crate) last_enqueued: u64,
    /// Events of this process with ids up to this one may be sent (set by `notify`).
    pub(crate) released_upto: u64,
    /// Events enqueued and not yet taken by the loop, in id order.
    pub(crate) live: VecDeque<LiveEvent>,
    /// An event was enqueued while `live` was full: the loop must read the outbox.
    pub(crate) overflowed: bool,
}

impl Shared {
    /// Count the store's dead letters again (blocking: a store read).
    pub(crate) fn recount_dead_letters(&self) {
        match self.store.dead_letter_count() {
            Ok(n) => self
                .counters
                .dead_letters
                .store(n, std::sync::atomic::Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "cannot count the webhook dead letters"),
        }
    }
}

impl Inbox {
    pub(crate) fn is_released(&self, id: u64) -> bool {
        self.first_local.is_none_or(|first| id < first) || id <= self.released_upto
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) superseded: AtomicU64,
    /// Dead letters kept in the store (over all apps), as last counted.
    pub(crate) dead_letters: AtomicU64,
    pub(crate) loaded: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) targets: Arc<dyn Targets>,
    pub(crate) config: HooksConfig,
    pub(crate) client: reqwest::Client,
    pub(crate) inbox: Mutex<Inbox>,
    pub(crate) wake: Notify,
    pub(crate) counters: Counters,
    pub(crate) running: AtomicBool,
}

impl Shared {
    pub(crate) fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // The inbox stays consistent at every step, so a panic elsewhere while holding
        // the lock leaves nothing half-done.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wall-clock ms since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
