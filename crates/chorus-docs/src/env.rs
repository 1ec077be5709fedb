//! What an actor is given to serve its document: an environment ([`DocEnv`]) of
//! configuration (policy, limits, whitelists per app), the group-commit writer, the
//! metrics, the bases hosts read, and in cluster mode this node's view of the
//! cluster; and an [`Exit`] through which it leaves the map of live documents. No
//! map of actors: the registry, which spawns actors, is the layer above, and an
//! actor never sees it (so one can be run on its own, on the memory store).

use crate::bases::Bases;
use crate::command::DocCommand;
use crate::inbox::{InboxReceiver, InboxSender};
use crate::metrics::DocMetrics;
use crate::nodes::Cluster;
use crate::writer::StoreWriter;
use chorus_core::{RoomLimits, Whitelist};
use chorus_hooks::Hooks;
use chorus_store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Commands queued per document actor before senders wait.
pub(crate) const DOC_INBOX: usize = 1024;

/// How documents are kept (from configuration).
#[derive(Debug, Clone)]
pub struct DocPolicy {
    /// Unload a document nobody has been connected to for this long.
    pub idle_unload: Duration,
    /// Keep at most this many documents in memory (idle ones are unloaded first, least recently used first).
    pub max_loaded: usize,
    /// Write a new snapshot after this many log records.
    pub compact_after_updates: u64,
    /// Or after this many log bytes.
    pub compact_after_bytes: u64,
    /// A document larger than this (snapshot + log) turns read-only.
    pub max_document_bytes: u64,
    /// At most one automatic history point per this much editing time.
    pub history_interval: Duration,
    /// How long a draft a host read can serve as the base of an external change.
    pub base_ttl: Duration,
    /// The `closed` webhook fires once every editor left and this much time passed.
    pub close_delay: Duration,
    /// At most one `saved` webhook per document per this much time.
    pub saved_webhook_every: Duration,
}

impl Default for DocPolicy {
    fn default() -> Self {
        DocPolicy {
            idle_unload: Duration::from_secs(30),
            max_loaded: 10_000,
            compact_after_updates: 1_000,
            compact_after_bytes: 1 << 20,
            max_document_bytes: 32 << 20,
            history_interval: Duration::from_secs(600),
            base_ttl: Duration::from_secs(3600),
            close_delay: Duration::from_secs(10),
            saved_webhook_every: Duration::from_secs(30),
        }
    }
}

/// What the sweeper knows about an actor without asking it.
#[derive(Default)]
pub(crate) struct Activity {
    pub(crate) members: AtomicUsize,
    pub(crate) last_active_ms: AtomicU64,
}

impl Activity {
    /// Record that the document has `members` now and was just active; when it has
    /// none it is idle from now on (the returned instant).
    pub(crate) fn record(&self, members: usize) -> Option<tokio::time::Instant> {
        self.members.store(members, Ordering::Relaxed);
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
        (members == 0).then(tokio::time::Instant::now)
    }
}

/// What differs between apps, from configuration.
#[derive(Default)]
pub struct AppRules {
    /// Whitelists of apps that configure their own (others use the default one).
    pub whitelists: HashMap<String, Whitelist>,
    /// Apps that have a callback URL (webhooks).
    pub hooked: HashSet<String>,
    /// Apps in exclusive mode (`collaboration = false`).
    pub exclusive: HashSet<String>,
    /// Session policies of apps that configure their own (others:
    /// [`SessionPolicy::default`]).
    pub sessions: HashMap<String, SessionPolicy>,
    /// History retention of each app (an app absent here keeps every point).
    pub retention: HashMap<String, RetentionPolicy>,
}

/// Which history points of an app's documents are kept (the retention sweep).
///
/// Named points (`publish`, `restore`, `discard`: what someone did) are kept longer
/// than `auto` ones (every few minutes of editing). The latest `publish` point is
/// always kept: a discard goes back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The newest `auto` points kept (0: none kept by count… see `max_auto_age`).
    pub auto_points: usize,
    /// `auto` points older than this go (None: no age limit).
    pub max_auto_age: Option<Duration>,
    /// The newest named points kept.
    pub named_points: usize,
    /// Named points older than this go (None: no age limit).
    pub max_named_age: Option<Duration>,
    /// A draft neither changed nor opened for this long is evicted (None: never).
    pub evict_after: Option<Duration>,
}

impl RetentionPolicy {
    /// The points of `entries` (oldest first, as the store lists them) this policy
    /// drops at `now_ms`.
    pub fn points_to_drop(&self, entries: &[chorus_store::HistoryEntry], now_ms: u64) -> Vec<u64> {
        let last_publish = entries
            .iter()
            .rev()
            .find(|e| e.kind == "publish")
            .map(|e| e.point);
        let too_old = |at: u64, max: Option<Duration>| {
            max.is_some_and(|max| now_ms.saturating_sub(at) > max.as_millis() as u64)
        };
        let mut drop = Vec::new();
        let (mut autos, mut named) = (0usize, 0usize);
        for e in entries.iter().rev() {
            if Some(e.point) == last_publish {
                named += 1;
                continue;
            }
            let keep = if e.kind == "auto" {
                autos += 1;
                autos <= self.auto_points && !too_old(e.at_ms, self.max_auto_age)
            } else {
                named += 1;
                named <= self.named_points && !too_old(e.at_ms, self.max_named_age)
            };
            if !keep {
                drop.push(e.point);
            }
        }
        drop.reverse();
        drop
    }
}

/// How many people may edit a document of an app at once, and how long a session
/// lasts (per app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Edit sessions one document takes at once (0: no cap).
    pub max_editors: usize,
    /// What a session asking to edit gets past `max_editors`.
    pub over_max_editors: OverMaxEditors,
    /// A session with no input (no change to the document, no change of its
    /// presence) for this long is warned (an `idle-warning` extension message)...
    pub idle_warning: Option<Duration>,
    /// ...and closed after this long (4408 `idle-timeout`).
    pub idle_close: Option<Duration>,
    /// Any session is closed this long after it joined (4408 `session-expired`):
    /// it reconnects with a fresh token.
    pub max_lifetime: Option<Duration>,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            max_editors: 0,
            over_max_editors: OverMaxEditors::View,
            idle_warning: None,
            idle_close: None,
            max_lifetime: None,
        }
    }
}

impl SessionPolicy {
    /// How often the timers are looked at: a quarter of the shortest, between 100 ms
    /// and 5 s (a close comes at most that late).
    pub(crate) fn check_every(&self) -> Option<Duration> {
        [self.idle_warning, self.idle_close, self.max_lifetime]
            .into_iter()
            .flatten()
            .min()
            .map(|d| (d / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)))
    }
}

/// What a session asking to edit gets when a document has `max_editors` already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverMaxEditors {
    /// It joins view-only, told why (`read-only` `too-many-editors`).
    View,
    /// It is refused (4429 `too-many-editors`: try again later).
    Refuse,
}

/// Everything an actor takes from outside (one per process, shared by every actor).
pub(crate) struct DocEnv {
    limits: RoomLimits,
    /// Whitelists of apps that configure their own (others use `limits.whitelist`).
    whitelists: HashMap<String, Whitelist>,
    pub(crate) policy: DocPolicy,
    pub(crate) metrics: Arc<dyn DocMetrics>,
    pub(crate) writer: StoreWriter,
    /// Drafts hosts read, kept as bases for three-way external changes.
    pub(crate) bases: Bases,
    /// Webhook delivery (the writer enqueues; the actor only decides).
    pub(crate) hooks: Hooks,
    /// Apps that have a callback URL.
    pub(crate) hooked_apps: HashSet<String>,
    /// Apps with `collaboration = false` (one edit session per document at a time).
    pub(crate) exclusive_apps: HashSet<String>,
    /// Session policies per app (others: the default).
    sessions: HashMap<String, SessionPolicy>,
    /// History retention per app (others keep every point).
    pub(crate) retention: HashMap<String, RetentionPolicy>,
    default_sessions: SessionPolicy,
    /// Cluster mode: the bus, leases, what this node owns and forwards.
    pub(crate) cluster: OnceLock<Cluster>,
}

/// What the document layer is built from ([`crate::Documents::new`]): the rules
/// every document follows and the services it writes through.
pub struct DocSetup {
    /// Each room's limits (the app's whitelist replaces the default one).
    pub limits: RoomLimits,
    /// Per-app rules: whitelists, which apps have webhooks, which are exclusive.
    pub rules: AppRules,
    /// Loading, unloading, writing and history.
    pub policy: DocPolicy,
    /// Where documents are kept.
    pub store: Arc<dyn Store>,
    /// Webhook delivery.
    pub hooks: Hooks,
    /// Where the document layer's events are counted.
    pub metrics: Arc<dyn DocMetrics>,
    /// Share one flush among the jobs waiting for it (off: one flush per job).
    pub group_commit: bool,
}

impl DocEnv {
    /// The environment of every actor over `setup.store`. Starts the group-commit
    /// writer thread (with `group_commit` off every job is flushed on its own).
    pub(crate) fn new(setup: DocSetup) -> DocEnv {
        let DocSetup {
            limits,
            rules,
            policy,
            store,
            hooks,
            metrics,
            group_commit,
        } = setup;
        let writer = StoreWriter::start(store, group_commit, metrics.clone(), hooks.clone());
        DocEnv::with_writer(limits, rules, policy, writer, hooks, metrics)
    }

    /// The environment over a writer made elsewhere (a test's detached one).
    pub(crate) fn with_writer(
        limits: RoomLimits,
        rules: AppRules,
        policy: DocPolicy,
        writer: StoreWriter,
        hooks: Hooks,
        metrics: Arc<dyn DocMetrics>,
    ) -> DocEnv {
        DocEnv {
            limits,
            whitelists: rules.whitelists,
            policy,
            metrics,
            writer,
            bases: Bases::default(),
            hooks,
            hooked_apps: rules.hooked,
            exclusive_apps: rules.exclusive,
            sessions: rules.sessions,
            retention: rules.retention,
            default_sessions: SessionPolicy::default(),
            cluster: OnceLock::new(),
        }
    }

    /// Room limits for a document of `app` (its whitelist, or the default one).
    pub(crate) fn limits_for(&self, app: &str) -> RoomLimits {
        RoomLimits {
            whitelist: self.whitelist_for(app).clone(),
            ..self.limits.clone()
        }
    }

    /// The whitelist documents of `app` enforce.
    /// The session policy of `app`.
    pub(crate) fn sessions_for(&self, app: &str) -> &SessionPolicy {
        self.sessions.get(app).unwrap_or(&self.default_sessions)
    }

    pub(crate) fn whitelist_for(&self, app: &str) -> &Whitelist {
        self.whitelists.get(app).unwrap_or(&self.limits.whitelist)
    }

    /// The store (call it from a blocking thread).
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        self.writer.store()
    }

    /// The cluster state, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.cluster.get()
    }
}

/// How an actor leaves the map of live documents, given by whoever started it (the
/// registry; a test gives one that does nothing).
pub(crate) trait Exit: Send + Sync {
    /// Leave the map (the document could not be loaded: no successor).
    fn forget(&self, own: &InboxSender<DocCommand>);

    /// Leave the map and hand what `rx` still holds for a successor to the
    /// document's next actor, in the same step as the inbox closes.
    fn hand_over(&self, own: &InboxSender<DocCommand>, rx: &mut InboxReceiver<DocCommand>);
}

/// When a draft was last used, for eviction: its last change or the last time a
/// session opened it (ms since the epoch).
pub(crate) fn last_used_ms(meta: &chorus_store::DocMeta) -> u64 {
    meta.updated_at_ms.max(meta.opened_at_ms)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
