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
//! | `closed` | every editor left and the save delay passed | `title`, `html` (sanitized), `contributors` (user ids), `etag`, `changed` (the draft differs from what it was after the last publish or external change; true for a draft never published nor changed by the host) |
//! | `external-change` | the host changed the draft through the API | `fields` (names changed, e.g. `"title"`, `"body"`), `etag` |
//! | `published` | the draft was published | `title`, `html`, `etag`, `publishedAt` (ms since the epoch) |
//! | `evicted` | the draft was not used for its app's `evict_after_secs` and left the store (joins are refused with 4410 until the host writes it again) | `title`, `html` (sanitized), `etag`, `lastUsedAt` (its last change or session, ms since the epoch) |
//! | `deleted` | the host deleted the draft (with its history and log) | `closedSessions`: sessions it closed. The document's events not yet delivered are dropped (counted in [`HooksStats::superseded`]): the deletion replaces them |
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
//! [`HooksConfig::max_age`] (default 24 h) after it was enqueued is given up with an
//! `error!` log and counted in [`HooksStats::dropped`]; so is an event whose app has no
//! target any more ([`Targets::target`] answers `None`, logged with `warn!`), or whose
//! stored record cannot be read. An event given up on is never lost: it moves from
//! the outbox to the store's dead letters (with why), where the host lists and
//! acknowledges it ([`Hooks::dead_letters`], [`Hooks::ack_dead_letter`]; counted in
//! [`HooksStats::dead_letters`]). If the store cannot take it, it stays pending.
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
//!
//! [`Store::flush`]: chorus_store::Store::flush

mod backoff;
mod config;
mod delivery;
mod error;
mod event;
mod hooks;
mod http;
mod shared;
mod sign;
mod target;

pub use config::HooksConfig;
pub use error::HooksError;
pub use event::{DeadEvent, EventKind, HookEvent};
pub use hooks::{Hooks, HooksStats};
pub use http::{EVENT_ID_HEADER, EVENT_TYPE_HEADER};
pub use sign::{body_sha256, DeliveryClaims, ISSUER, TOKEN_TTL_SECS};
pub use target::{HookTarget, Targets};
