//! Process-wide metrics, kept and rendered by `prometheus-client` (OpenMetrics text).
//!
//! The label sets are fixed and small (message kinds, whitelist violations), so each
//! labelled series is created once at start and the hot path is one relaxed atomic
//! add on a handle held here: no registry lookup, no lock. Rare events (refusals,
//! closes) go through a `Family` (a read lock and a hash per event). Histograms time
//! what an operator asks "how long" of: a group commit, a document load, a host's
//! external change, and the fan-out of one incoming message to every other member.
//! Webhook delivery counters are read from `chorus-hooks` at each scrape.
//!
//! Every metric name of the hand-written exporter this replaced is kept.

use chorus_core::{Neutralised, Violation};
use chorus_docs::{DocMetrics, Documents};
use chorus_hooks::Hooks;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Message kinds, in the order of the counter slots.
const KINDS: [&str; 8] = [
    "sync_step1",
    "sync_step2",
    "sync_update",
    "awareness",
    "auth",
    "query_awareness",
    "chorus",
    "other",
];

fn kind_slot(kind: &str) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabel {
    code: u16,
    reason: &'static str,
}

/// Per message kind: a message counter and a byte counter.
struct PerKind {
    messages: [Counter; KINDS.len()],
    bytes: [Counter; KINDS.len()],
}

impl PerKind {
    /// Registers `chorus_messages_{dir}_total` and `chorus_bytes_{dir}_total`.
    fn register(registry: &mut Registry, dir: &str) -> PerKind {
        let messages = Family::<TypeLabel, Counter>::default();
        let bytes = Family::<TypeLabel, Counter>::default();
        registry.register(
            format!("chorus_messages_{dir}"),
            format!("Websocket messages {dir}, by type"),
            messages.clone(),
        );
        registry.register(
            format!("chorus_bytes_{dir}"),
            format!("Websocket payload bytes {dir}, by type"),
            bytes.clone(),
        );
        let slot = |family: &Family<TypeLabel, Counter>, i: usize| {
            family
                .get_or_create(&TypeLabel { r#type: KINDS[i] })
                .clone()
        };
        PerKind {
            messages: std::array::from_fn(|i| slot(&messages, i)),
            bytes: std::array::from_fn(|i| slot(&bytes, i)),
        }
    }

    fn add(&self, kind: &str, bytes: usize) {
        let i = kind_slot(kind);
        self.messages[i].inc();
        self.bytes[i].inc_by(bytes as u64);
    }
}

/// All metrics of one server.
pub struct Metrics {
    /// The documents, for cluster counters (set once they exist).
    cluster: Arc<OnceLock<Weak<Documents>>>,
    registry: Registry,
    connections_open: Gauge,
    connections_total: Counter,
    documents_loaded: Gauge,
    inbound: PerKind,
    outbound: PerKind,
    store_flushes: Counter,
    store_jobs: Counter,
    store_records: Counter,
    store_write_seconds: Counter<f64, AtomicU64>,
    store_errors: Counter,
    commit_seconds: Histogram,
    load_seconds: Histogram,
    external_change_seconds: Histogram,
    fanout_seconds: Histogram,
    neutralised: [Counter; Violation::ALL.len()],
    rejected_updates: Counter,
    refused: Family<ReasonLabel, Counter>,
    closed: Family<CloseLabel, Counter>,
    throttled: Counter,
    join_wait_seconds: Histogram,
    direct: DirectWrites,
    /// The HTTP transport's sessions, streams and posts.
    pub http: HttpTransportMetrics,
}

/// The HTTP transport (`http_transport`): its sessions are connections too (they
/// count in `chorus_connections_open` and every per-message metric); these say
/// how many came that way and how their streams fared.
pub struct HttpTransportMetrics {
    sessions_open: Gauge,
    sessions: Counter,
    fallbacks: Family<ReasonLabel, Counter>,
    streams: Family<ModeLabel, Counter>,
    resumes: Counter,
    resume_gaps: Counter,
    posts: Counter,
    posted_frames: Counter,
    carried: Counter,
    sent_frames: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

/// The reasons a client may give for falling back (anything else is `other`).
const FALLBACK_REASONS: [&str; 4] = ["refused", "never-opened", "died-early", "configured"];

impl HttpTransportMetrics {
    fn register(r: &mut Registry) -> HttpTransportMetrics {
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let sessions_open = Gauge::default();
        r.register(
            "chorus_http_sessions_open",
            "Open sessions of the HTTP transport (each also an open connection)",
            sessions_open.clone(),
        );
        let fallbacks = Family::<ReasonLabel, Counter>::default();
        r.register(
            "chorus_http_fallbacks",
            "HTTP sessions whose client said it fell back from a websocket, by why",
            fallbacks.clone(),
        );
        let streams = Family::<ModeLabel, Counter>::default();
        r.register(
            "chorus_http_streams",
            "Streams (mode=stream) and long-polls (mode=poll) of HTTP sessions",
            streams.clone(),
        );
        HttpTransportMetrics {
            sessions_open,
            sessions: counter(
                r,
                "chorus_http_sessions",
                "HTTP transport sessions opened since start",
            ),
            fallbacks,
            streams,
            resumes: counter(
                r,
                "chorus_http_resumes",
                "Streams and polls that went on from an event the client had (after > 0)",
            ),
            resume_gaps: counter(
                r,
                "chorus_http_resume_gaps",
                "Resumes refused (410) because the events after the client's were no longer kept",
            ),
            posts: counter(
                r,
                "chorus_http_posts",
                "Client POSTs carrying frames to HTTP sessions",
            ),
            posted_frames: counter(
                r,
                "chorus_http_posted_frames",
                "Frames those POSTs carried (retried ones included)",
            ),
            sent_frames: counter(
                r,
                "chorus_http_sent_frames",
                "Frames written to streams and polls of HTTP sessions (resent ones included)",
            ),
            carried: counter(
                r,
                "chorus_http_carried",
                "Cluster mode: requests for a session another node holds, carried there over the bus",
            ),
        }
    }

    /// A session opened; `fallback` is the reason its client gave, if any.
    pub fn opened(&self, fallback: Option<&str>) {
        self.sessions_open.inc();
        self.sessions.inc();
        if let Some(why) = fallback {
            let reason = FALLBACK_REASONS
                .iter()
                .find(|r| **r == why)
                .copied()
                .unwrap_or("other");
            self.fallbacks.get_or_create(&ReasonLabel { reason }).inc();
        }
    }

    /// A session's loop ended.
    pub fn ended(&self) {
        self.sessions_open.dec();
    }

    /// A stream (or poll, `poll`) attached; `resumed` if it went on from an event.
    pub fn stream(&self, poll: bool, resumed: bool) {
        let mode = if poll { "poll" } else { "stream" };
        self.streams.get_or_create(&ModeLabel { mode }).inc();
        if resumed {
            self.resumes.inc();
        }
    }

    /// A resume was refused: its events were gone.
    pub fn resume_gap(&self) {
        self.resume_gaps.inc();
    }

    /// A stream or poll wrote `frames` frames.
    pub fn sent(&self, frames: usize) {
        self.sent_frames.inc_by(frames as u64);
    }

    /// A request went to the node holding its session.
    pub fn carried(&self) {
        self.carried.inc();
    }

    /// A POST carried `frames` frames.
    pub fn posted(&self, frames: usize) {
        self.posts.inc();
        self.posted_frames.inc_by(frames as u64);
    }
}

/// The document actors' own socket writes (`direct.rs`) and the sweeps that make them.
struct DirectWrites {
    writes: Counter,
    frames: Counter,
    blocked: Counter,
    backlog_bytes: Histogram,
    sweep_seconds: Histogram,
    sweep_members: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None)
    }
}

impl Metrics {
    /// Export the cluster counters of `docs` (cluster mode).
    pub fn attach_documents(&self, docs: &Arc<Documents>) {
        let _ = self.cluster.set(Arc::downgrade(docs));
    }

    /// Every metric registered; with `hooks`, its delivery counters are exported too.
    pub fn new(hooks: Option<Hooks>) -> Metrics {
        let mut r = Registry::default();
        let connections_open = Gauge::default();
        r.register(
            "chorus_connections_open",
            "Open, authenticated websocket connections",
            connections_open.clone(),
        );
        let connections_total = Counter::default();
        r.register(
            "chorus_connections",
            "Websocket connections accepted and authenticated since start",
            connections_total.clone(),
        );
        let neutralised_family = Family::<KindLabel, Counter>::default();
        r.register(
            "chorus_whitelist_neutralised",
            "Things outside the whitelist removed from incoming updates, by kind",
            neutralised_family.clone(),
        );
        let neutralised = std::array::from_fn(|i| {
            neutralised_family
                .get_or_create(&KindLabel {
                    kind: Violation::ALL[i].as_str(),
                })
                .clone()
        });
        let rejected_updates = Counter::default();
        r.register(
            "chorus_whitelist_rejected_updates",
            "Updates refused as a whole (whitelist_mode = reject)",
            rejected_updates.clone(),
        );
        let documents_loaded = Gauge::default();
        r.register(
            "chorus_documents_loaded",
            "Documents currently held in memory",
            documents_loaded.clone(),
        );
        let inbound = PerKind::register(&mut r, "in");
        let outbound = PerKind::register(&mut r, "out");
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let store_flushes = counter(
            &mut r,
            "chorus_store_flushes",
            "Group commits (one fsync each)",
        );
        let store_jobs = counter(
            &mut r,
            "chorus_store_jobs",
            "Write jobs made durable, across all group commits",
        );
        let store_records = counter(&mut r, "chorus_store_records", "Update log records written");
        let store_write_seconds = Counter::<f64, AtomicU64>::default();
        r.register(
            "chorus_store_write_seconds",
            "Time spent writing and flushing",
            store_write_seconds.clone(),
        );
        let store_errors = counter(
            &mut r,
            "chorus_store_errors",
            "Group commits that failed (nothing in them acknowledged)",
        );
        let histogram = |r: &mut Registry, name: &str, help: &str, start: f64| {
            // 14 buckets, each twice the one before: start .. start × 8192.
            let h = Histogram::new(exponential_buckets(start, 2.0, 14));
            r.register(name, help, h.clone());
            h
        };
        let commit_seconds = histogram(
            &mut r,
            "chorus_store_commit_seconds",
            "Latency of one group commit: writing every job of the group and the one flush",
            0.000_1,
        );
        let load_seconds = histogram(
            &mut r,
            "chorus_document_load_seconds",
            "Time to load a document from the store and build its room",
            0.000_1,
        );
        let external_change_seconds = histogram(
            &mut r,
            "chorus_external_change_seconds",
            "Time to prepare and apply a host's external change (until it is queued for the store)",
            0.001,
        );
        let fanout_seconds = histogram(
            &mut r,
            "chorus_fanout_delay_seconds",
            "From an incoming message's decoding to its frame queued for every other member",
            0.000_01,
        );
        let refused = Family::<ReasonLabel, Counter>::default();
        r.register(
            "chorus_connections_refused",
            "Websocket connections refused before joining a document, by reason",
            refused.clone(),
        );
        let closed = Family::<CloseLabel, Counter>::default();
        r.register(
            "chorus_connections_closed",
            "Websocket connections closed by the server, by close code and reason",
            closed.clone(),
        );
        let throttled = Counter::default();
        r.register(
            "chorus_throttled_messages",
            "Messages held back because their connection was over its rate limits",
            throttled.clone(),
        );
        let join_wait_seconds = histogram(
            &mut r,
            "chorus_join_wait_seconds",
            "How long joins past the join rate waited for their turn (admission control)",
            0.001,
        );
        let direct = DirectWrites {
            writes: counter(
                &mut r,
                "chorus_socket_writes",
                "Socket writes (system calls) a document actor made to hand members their frames",
            ),
            frames: counter(
                &mut r,
                "chorus_socket_frames",
                "Frames those writes carried (frames per write = this / chorus_socket_writes)",
            ),
            blocked: counter(
                &mut r,
                "chorus_socket_blocked",
                "Writes that left bytes the socket did not take, for the connection's task to finish",
            ),
            backlog_bytes: {
                let h = Histogram::new(exponential_buckets(64.0, 4.0, 10));
                r.register(
                    "chorus_socket_backlog_bytes",
                    "Bytes a member was behind after a write that did not go out whole",
                    h.clone(),
                );
                h
            },
            sweep_seconds: histogram(
                &mut r,
                "chorus_broadcast_sweep_seconds",
                "Time of one end-of-turn sweep: every member's staged frames written",
                0.000_001,
            ),
            sweep_members: {
                let h = Histogram::new(exponential_buckets(1.0, 2.0, 14));
                r.register(
                    "chorus_broadcast_sweep_members",
                    "Members written to by one end-of-turn sweep",
                    h.clone(),
                );
                h
            },
        };
        let http = HttpTransportMetrics::register(&mut r);
        if let Some(hooks) = hooks {
            r.register_collector(Box::new(WebhookCollector(hooks)));
        }
        let cluster = Arc::new(OnceLock::new());
        r.register_collector(Box::new(ClusterCollector(cluster.clone())));
        Metrics {
            cluster,
            registry: r,
            connections_open,
            connections_total,
            documents_loaded,
            inbound,
            outbound,
            store_flushes,
            store_jobs,
            store_records,
            store_write_seconds,
            store_errors,
            commit_seconds,
            load_seconds,
            external_change_seconds,
            fanout_seconds,
            neutralised,
            rejected_updates,
            refused,
            closed,
            throttled,
            join_wait_seconds,
            direct,
            http,
        }
    }

    /// A document actor wrote `frames` frames to a member's socket in `calls` system
    /// calls; `backlog` bytes stayed behind for the connection's task.
    pub fn socket_write(&self, calls: u32, frames: usize, backlog: usize) {
        let d = &self.direct;
        d.writes.inc_by(u64::from(calls));
        d.frames.inc_by(frames as u64);
        if backlog > 0 {
            d.blocked.inc();
            d.backlog_bytes.observe(backlog as f64);
        }
    }

    /// A websocket was accepted and authenticated.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
        self.connections_total.inc();
    }

    /// An authenticated websocket ended.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// Currently open authenticated connections.
    pub fn open_connections(&self) -> i64 {
        self.connections_open.get()
    }

    /// One message received.
    pub fn inbound(&self, kind: &str, bytes: usize) {
        self.inbound.add(kind, bytes);
    }

    /// One frame written to a socket.
    pub fn outbound(&self, kind: &str, bytes: usize) {
        self.outbound.add(kind, bytes);
    }

    /// A connection attempt refused before it joined a document.
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A message held back by its connection's rate limits.
    pub fn throttled(&self) {
        self.throttled.inc();
    }

    /// A join waited this long for its turn.
    pub fn join_waited(&self, wait: std::time::Duration) {
        self.join_wait_seconds.observe(wait.as_secs_f64());
    }

    /// A connection closed by the server with a code.
    pub fn closed(&self, code: u16, reason: &'static str) {
        self.closed
            .get_or_create(&CloseLabel { code, reason })
            .inc();
    }

    /// Render in the OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The document layer's events, counted here and rendered with the rest.
impl DocMetrics for Metrics {
    fn document_loaded(&self) {
        self.documents_loaded.inc();
    }

    fn document_unloaded(&self) {
        self.documents_loaded.dec();
    }

    fn document_load_time(&self, took: Duration) {
        self.load_seconds.observe(took.as_secs_f64());
    }

    fn store_flush(&self, jobs: usize, records: usize, took: Duration) {
        self.store_flushes.inc();
        self.store_jobs.inc_by(jobs as u64);
        self.store_records.inc_by(records as u64);
        self.store_write_seconds.inc_by(took.as_secs_f64());
        self.commit_seconds.observe(took.as_secs_f64());
    }

    fn store_error(&self) {
        self.store_errors.inc();
    }

    fn whitelist(&self, neutralised: &Neutralised, rejected_updates: u64) {
        for (kind, n) in neutralised.iter() {
            let slot = Violation::ALL.iter().position(|k| *k == kind).unwrap_or(0);
            self.neutralised[slot].inc_by(n);
        }
        if rejected_updates > 0 {
            self.rejected_updates.inc_by(rejected_updates);
        }
    }

    fn external_change(&self, took: Duration) {
        self.external_change_seconds.observe(took.as_secs_f64());
    }

    fn fanout(&self, took: Duration) {
        self.fanout_seconds.observe(took.as_secs_f64());
    }

    fn broadcast_sweep(&self, members: usize, took: Duration) {
        self.direct.sweep_seconds.observe(took.as_secs_f64());
        self.direct.sweep_members.observe(members as f64);
    }
}

/// Cluster mode's counters (per node), read at each scrape from the documents;
/// nothing is exported on a single node.
#[derive(Debug)]
struct ClusterCollector(Arc<OnceLock<Weak<Documents>>>);

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(docs) = self.0.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let (Some(cluster), Some(bus)) = (docs.cluster_stats(), docs.bus_stats()) else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "chorus_cluster_owned_documents",
                "Documents this node owns (holds the lease of).",
                cluster.owned,
            ),
            (
                "chorus_cluster_forwarded_documents",
                "Documents this node forwards to their owners.",
                cluster.forwarded,
            ),
            (
                "chorus_bus_nodes_up",
                "Nodes of the cluster this node hears, itself included.",
                bus.nodes_up,
            ),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let lag = ConstGauge::new(bus.lag_micros as f64 / 1e6);
        lag.encode(encoder.encode_descriptor(
            "chorus_bus_lag_seconds",
            "Time from publishing this node's last heartbeat on the bus to receiving it back.",
            None,
            lag.metric_type(),
        )?)?;
        for (name, help, value) in [
            ("chorus_cluster_lease_takeovers", "Leases this node took over from a node that was down.", cluster.takeovers),
            ("chorus_cluster_leases_lost", "Leases this node lost to another node (its owner stopped without writing).", cluster.leases_lost),
            ("chorus_cluster_host_forwards", "Host API calls carried to the owner node (one hop each).", cluster.host_forwards),
            ("chorus_cluster_resyncs", "Connections closed (1012 document-moved) to resync after a loss on the bus or a change of owner.", cluster.resyncs),
            ("chorus_cluster_messages_refused", "Authenticated bus messages a node had no standing to send (a frame or close for a document from a node not its owner, a forwarded join whose token was refused here, an answer to a host call not asked of that node).", cluster.refused),
            ("chorus_bus_messages_published", "Messages this node handed to the bus (frames forwarded, deliveries, heartbeats).", bus.published),
            ("chorus_bus_messages_received", "Messages this node received from the bus (heartbeats excluded).", bus.received),
            ("chorus_bus_messages_dropped", "Messages dropped before the bus took them (queue full, Redis unreachable).", bus.dropped),
            ("chorus_bus_losses", "Losses detected on the bus (holes, restarted nodes, a broken subscription), each followed by a resync.", bus.losses),
            ("chorus_bus_messages_rejected", "Bus messages dropped because no cluster key verified them (forged, tampered with, or moved to another channel).", bus.rejected),
            ("chorus_bus_messages_replayed", "Bus messages dropped because they were seen before (a sequence number or incarnation of the sender's already passed).", bus.replayed),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}

/// `chorus-hooks`' delivery counters, read at each scrape.
#[derive(Debug)]
struct WebhookCollector(Hooks);

impl Collector for WebhookCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        for (name, help, value) in [
            (
                "chorus_webhooks_delivered",
                "Webhook events the host accepted.",
                stats.delivered,
            ),
            (
                "chorus_webhooks_failed_attempts",
                "Webhook attempts that failed (each is retried or, past its max age, dropped).",
                stats.failed_attempts,
            ),
            (
                "chorus_webhooks_dropped",
                "Webhook events given up (too old, no target any more, unreadable record) and kept as dead letters.",
                stats.dropped,
            ),
            (
                "chorus_webhooks_superseded",
                "Webhook events not sent because their draft was deleted first (the deleted event replaces them).",
                stats.superseded,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        for (name, help, value) in [
            (
                "chorus_webhooks_dead_letters",
                "Webhook events given up on and kept until the host acknowledges them (GET /v1/apps/{app}/webhooks/dead-letters).",
                stats.dead_letters,
            ),
            (
                "chorus_webhooks_pending",
                "Webhook events waiting to be delivered that this process knows of.",
                stats.pending,
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_kind_of_metric_under_its_old_name() {
        let m = Metrics::default();
        m.connection_opened();
        m.inbound("sync_update", 10);
        m.inbound("sync_update", 5);
        m.refused("token-expired");
        m.closed(4401, "token-expired");
        m.store_flush(3, 7, Duration::from_millis(2));
        m.external_change(Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains("chorus_connections_open 1\n"), "{text}");
        assert!(text.contains("chorus_connections_total 1\n"), "{text}");
        assert!(text.contains("chorus_messages_in_total{type=\"sync_update\"} 2\n"));
        assert!(text.contains("chorus_bytes_in_total{type=\"sync_update\"} 15\n"));
        assert!(text.contains("chorus_connections_refused_total{reason=\"token-expired\"} 1\n"));
        assert!(text.contains(
            "chorus_connections_closed_total{code=\"4401\",reason=\"token-expired\"} 1\n"
        ));
        assert!(text.contains("chorus_store_jobs_total 3\n"));
        assert!(text.contains("chorus_store_records_total 7\n"));
        assert!(
            text.contains("chorus_store_commit_seconds_count 1\n"),
            "{text}"
        );
        assert!(text.contains("chorus_external_change_seconds_count 1\n"));
        assert!(text.contains("chorus_whitelist_neutralised_total{kind="));
        assert!(text.ends_with("# EOF\n"));
    }
}
