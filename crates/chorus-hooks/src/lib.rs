//! Webhook delivery from Chorus to host applications.
//!
//! # What this crate owns
//!
//! Getting events about documents to an app's `callback_url`: **durably** (every
//! event is a record of the store's webhook outbox, acknowledged only after the host
//! accepted it, so a restart loses none), **signed** (an HS256 bearer token binding the
//! exact body), **retried** (exponential backoff with full jitter, then at the cap
//! until [`HooksConfig::max_age`]), **ordered per document** (events of one
//! (app, doc) are delivered strictly in outbox order; an undeliverable event holds back
//! only its own document's later events) and **idempotent** (an event keeps its id
//! across redeliveries and restarts, so the host can dedupe).
//!
//! It must not touch: yrs or any CRDT semantics, websockets, tokens of browsers or
//! hosts calling Chorus, and decisions about *when* events happen or what they say —
//! the server decides that and calls [`Hooks::enqueue`]. It never logs secrets, tokens
//! or callback URLs (which may carry credentials).
//!
//! # Using it
//!
//! ```text
//! let hooks = Hooks::new(store, targets, HooksConfig::default())?;
//! tokio::spawn(hooks.clone().run(stop.clone()));         // picks up pending events
//! // on the writer thread, next to the writes the event describes:
//! hooks.enqueue(&HookEvent::saved(app, doc, now_ms, etag))?;
//! store.flush()?;                                       // the group commit
//! hooks.notify();                                       // now it may be sent
//! ```
//!
//! An event enqueued by this process is not sent before the next [`Hooks::notify`]
//! (call it after the [`Store::flush`] that made the event durable), so a host never
//! hears of a save a crash could still undo. Events already pending when
//! [`Hooks::run`] starts (left by an earlier process) are sent at once.
//!
//! # Requests
//!
//! `POST <callback_url>` with headers:
//!
//! | header | value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | `Authorization` | `Bearer <JWT>`, see below |
//! | `X-Chorus-Event-Id` | the event id, as in the body |
//! | `X-Chorus-Event-Type` | the event type, as in the body |
//!
//! The body is one JSON object: the envelope
//! `{"id": "evt-<n>", "type": <type>, "app": <app id>, "doc": <content id>, "at": <ms since the epoch>}`
//! followed by the fields of its type:
//!
//! | `type` | when | fields |
//! |---|---|---|
//! | `editing` | the first editor joined the document | `users`: user ids connected |
//! | `saved` | a draft snapshot was written (throttled by the server) | `etag` |
//! | `closed` | every editor left and the save delay passed | `title`, `html` (sanitized), `contributors` (user ids), `etag` |
//! | `external-change` | the host changed the draft through the API | `fields` (names changed, e.g. `"title"`, `"body"`), `etag` |
//! | `published` | the draft was published | `title`, `html`, `etag`, `publishedAt` (ms since the epoch) |
//!
//! Example: `{"id":"evt-42","type":"saved","app":"blog","doc":"post-7","at":1718000000000,"etag":"W/\"3f2a\""}`.
//! The same event always has the same `id` (`"evt-"` followed by its outbox id), in
//! every attempt and after a restart: a host that sees an id again should answer
//! success and do nothing. Hosts should ignore fields they do not know.
//!
//! # Signature
//!
//! `Authorization: Bearer <JWT>`, HS256 with the app's signing secret (the first of
//! its secrets; [`HookTarget::secret`]), signed anew for each attempt, with claims
//! ([`DeliveryClaims`]):
//!
//! | claim | value |
//! |---|---|
//! | `iss` | `"chorus"` |
//! | `aud` | the app id |
//! | `iat` | unix seconds of the attempt |
//! | `exp` | `iat + 300` |
//! | `jti` | the event id (= body `id`) |
//! | `body_sha256` | base64url (no padding) of SHA-256 of the exact body bytes |
//!
//! A host verifies the signature with its secret and HS256 only, checks `iss`, `aud`
//! and `exp`, hashes the raw body it received and compares it with `body_sha256`.
//!
//! # Success and retries
//!
//! An attempt succeeds on any 2xx status, unless the body is a JSON object with a
//! numeric non-zero `"error"` (ONLYOFFICE-style hosts answer `{"error":0}` for success).
//! Anything else — another status (redirects are not followed), a JSON `"error"` other
//! than 0, a timeout ([`HooksConfig::request_timeout`] per attempt), a connection error
//! — is retried after a random delay in `[0, min(cap, base · 2^(failures-1))]`
//! (full jitter; defaults 1 s and 5 min). An event still failing
//! [`HooksConfig::max_age`] (default 24 h) after it was enqueued is dropped with an
//! `error!` log and counted in [`HooksStats::dropped`]; so is an event whose app has no
//! target any more ([`Targets::target`] answers `None`, logged with `warn!`).
//!
//! # Scheduling
//!
//! At most [`HooksConfig::concurrency`] requests are in flight, across documents, and
//! at most one per document: only the oldest pending event of a document is ever sent,
//! so a document whose host keeps failing waits alone while other documents and apps
//! go on. The loop keeps pending events in memory (at most
//! [`HooksConfig::max_loaded`]); events enqueued by this process are handed to it
//! directly, and the outbox is read at start and whenever more events are pending
//! than fit in memory. In that last case (a backlog of more than `max_loaded` events,
//! e.g. a host down for hours with busy documents) the events beyond the oldest
//! `max_loaded` wait until older ones are delivered or dropped, because the outbox is
//! read oldest-first. An outbox read holds up [`Hooks::enqueue`] while it runs (so
//! that no event is both read and handed over); it happens at start and, while the
//! backlog exceeds `max_loaded`, at most once a second (or per `backoff_base`
//! if that is shorter). If the outbox cannot be read
//! (a store error, e.g. a corrupt record), the read is retried with backoff and logged
//! with `error!`; the events it would bring in (at start: all of them) wait meanwhile.
//!
//! A crash or a stop between the host's answer and the outbox acknowledgement
//! redelivers the event with the same id; a stop aborts requests in flight, which are
//! sent again by the next run.

mod backoff;
mod delivery;
mod event;
mod http;
mod sign;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

pub use event::{EventKind, HookEvent};
pub use http::{EVENT_ID_HEADER, EVENT_TYPE_HEADER};
pub use sign::{body_sha256, DeliveryClaims, ISSUER, TOKEN_TTL_SECS};

use event::{event_id, StoredEvent};

/// Where and how to deliver an app's events.
#[derive(Clone, PartialEq, Eq)]
pub struct HookTarget {
    /// The app's `callback_url` (`http` or `https`).
    pub callback_url: String,
    /// The signing secret (the first of the app's secrets). An empty secret makes
    /// every attempt fail (and be retried) until the app gets one.
    pub secret: Vec<u8>,
}

impl fmt::Debug for HookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the secret nor the URL (it may carry credentials).
        f.debug_struct("HookTarget").finish_non_exhaustive()
    }
}

/// Lookup of an app's target, asked before every attempt (apps can be disabled or
/// change their URL or secret at runtime). Called on the delivery loop: keep it quick
/// and non-blocking. Closures `Fn(&str) -> Option<HookTarget>` implement it.
pub trait Targets: Send + Sync + 'static {
    /// `None` if the app has no callback URL (any more) or is disabled: its pending
    /// event is dropped with a `warn!`.
    fn target(&self, app: &str) -> Option<HookTarget>;
}

impl<F> Targets for F
where
    F: Fn(&str) -> Option<HookTarget> + Send + Sync + 'static,
{
    fn target(&self, app: &str) -> Option<HookTarget> {
        self(app)
    }
}

/// Tuning of [`Hooks`]. [`Default`] gives the production values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HooksConfig {
    /// Ceiling of the first retry delay; each failure doubles it (default 1 s).
    pub backoff_base: Duration,
    /// Largest retry delay (default 5 min).
    pub backoff_cap: Duration,
    /// An event still undelivered this long after it was enqueued is dropped after
    /// its next failed attempt (default 24 h).
    pub max_age: Duration,
    /// Time limit of one attempt, from connecting to the last byte of the answer
    /// (default 10 s).
    pub request_timeout: Duration,
    /// Requests in flight at once, across documents (default 8).
    pub concurrency: usize,
    /// Pending events held in memory by the delivery loop, and the most read from the
    /// outbox at once (default 50 000).
    pub max_loaded: usize,
    /// The outbox is shared with other processes that enqueue into it (cluster mode:
    /// one node delivers for all): every event is read from the outbox, which shows
    /// only committed events, at least this often. `None` (default): this process is
    /// the outbox's only writer, and its events reach the loop in memory.
    pub shared_outbox_poll: Option<Duration>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(10),
            concurrency: 8,
            max_loaded: 50_000,
            shared_outbox_poll: None,
        }
    }
}

impl HooksConfig {
    fn validate(&self) -> Result<(), HooksError> {
        let problem = if self.backoff_base.is_zero() {
            "backoff_base must be positive"
        } else if self.backoff_cap < self.backoff_base {
            "backoff_cap must be at least backoff_base"
        } else if self.request_timeout.is_zero() {
            "request_timeout must be positive"
        } else if self.concurrency == 0 {
            "concurrency must be at least 1"
        } else if self.max_loaded < 2 {
            "max_loaded must be at least 2"
        } else {
            return Ok(());
        };
        Err(HooksError::InvalidConfig(problem.to_owned()))
    }
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HooksStats {
    /// Events the host accepted.
    pub delivered: u64,
    /// Attempts that failed (each is retried or, past `max_age`, dropped).
    pub failed_attempts: u64,
    /// Events given up: too old, no target any more, or an unreadable outbox record.
    pub dropped: u64,
    /// Events waiting to be delivered that this process knows of (held by the loop or
    /// enqueued and not yet taken by it; a backlog beyond `max_loaded` is not counted).
    pub pending: u64,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    /// The outbox could not be written.
    #[error("webhook outbox: {0}")]
    Store(#[from] StoreError),
    /// The event cannot be sent as given (its `data` is not an object, uses a reserved
    /// key, or the app or doc id is empty).
    #[error("invalid webhook event: {0}")]
    InvalidEvent(String),
    /// A [`HooksConfig`] value is out of range.
    #[error("invalid webhook configuration: {0}")]
    InvalidConfig(String),
    /// The HTTP client could not be built (TLS initialisation).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}

/// Event handed from [`Hooks::enqueue`] to the delivery loop.
struct LiveEvent {
    id: u64,
    app: String,
    record: StoredEvent,
}

/// What enqueuers and the loop share. Its lock is also held across `outbox_push` (by
/// enqueue) and `outbox_pending` (by the loop's outbox reads), which makes "pushed" and
/// "handed over" one step as far as the loop can see.
struct Inbox {
    /// Smallest outbox id enqueued by this process; smaller ids were left by earlier
    /// runs and may be sent at once.
    first_local: Option<u64>,
    /// Largest outbox id enqueued by this process.
    last_enqueued: u64,
    /// Events of this process with ids up to this one may be sent (set by `notify`).
    released_upto: u64,
    /// Events enqueued and not yet taken by the loop, in id order.
    live: VecDeque<LiveEvent>,
    /// An event was enqueued while `live` was full: the loop must read the outbox.
    overflowed: bool,
}

impl Inbox {
    fn is_released(&self, id: u64) -> bool {
        self.first_local.is_none_or(|first| id < first) || id <= self.released_upto
    }
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
    loaded: AtomicU64,
}

struct Shared {
    store: Arc<dyn Store>,
    targets: Arc<dyn Targets>,
    config: HooksConfig,
    client: reqwest::Client,
    inbox: Mutex<Inbox>,
    wake: Notify,
    counters: Counters,
    running: AtomicBool,
}

impl Shared {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // The inbox stays consistent at every step, so a panic elsewhere while holding
        // the lock leaves nothing half-done.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
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

/// Wall-clock ms since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_bad_values_are_refused() {
        assert!(HooksConfig::default().validate().is_ok());
        for bad in [
            HooksConfig {
                concurrency: 0,
                ..HooksConfig::default()
            },
            HooksConfig {
                backoff_base: Duration::ZERO,
                ..HooksConfig::default()
            },
            HooksConfig {
                backoff_cap: Duration::from_millis(1),
                ..HooksConfig::default()
            },
            HooksConfig {
                max_loaded: 1,
                ..HooksConfig::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(HooksError::InvalidConfig(_))));
        }
    }

    #[test]
    fn target_debug_hides_secret_and_url() {
        let target = HookTarget {
            callback_url: "https://user:pw@host/hook".into(),
            secret: b"topsecret".to_vec(),
        };
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("pw@"),
            "{shown}"
        );
    }
}
