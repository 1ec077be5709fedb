//! What can be configured: [`Config`] and the types of its keys ([`AppConfig`],
//! [`Limits`], [`AppLimits`], [`LogFormat`]), with their documentation and
//! defaults. The serde attributes here are the file format, and the list of
//! environment keys is read from them (see `env`).

use std::net::SocketAddr;
use std::path::PathBuf;

use chorus_core::WhitelistMode;
use serde::{Deserialize, Serialize};

/// Default listen address (contract).
pub const DEFAULT_BIND: &str = "127.0.0.1:10123";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// One registered host application.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppConfig {
    /// The app id (`iss` of its tokens, first path segment of its URLs).
    pub id: String,
    /// HMAC secrets; any verifies, the first signs. Each at least 32 bytes
    /// (unless `allow_weak_secrets`). Never logged. Give these or `secrets_file`.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// A file holding the secrets instead, one a line (blank lines and `#` comments
    /// ignored), read at start: keeps them out of the config file and the
    /// environment (e.g. `/run/secrets/wiki`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_file: Option<PathBuf>,
    /// Disabled apps are refused (4403).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where webhooks go (events are POSTed here, JWT-signed with the first secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// A content policy file (JSON, the format of `proto/whitelist-default.json`);
    /// unset: the default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitelist: Option<PathBuf>,
    /// What happens to content outside the policy: `strip` (default), `reject` or `off`.
    #[serde(default)]
    pub whitelist_mode: WhitelistMode,
    /// The names the app's editor writes: `html` (default: HTML's own, fragment
    /// `body`), `tiptap` (StarterKit, Table, Image, TextAlign; fragment `default`),
    /// or the path of a profile file (JSON; the form is in
    /// `chorus-whitelist/src/profile.rs` and docs/EDITORS.md).
    #[serde(default = "default_editor")]
    pub editor: String,
    /// `false`: exclusive mode — one edit session per document at a time; later ones
    /// join view-only and wait for the hold (as when Synchrony is switched off).
    #[serde(default = "default_true")]
    pub collaboration: bool,
    /// This app's own limits (`[apps.limits]`); each key left out takes the global one.
    #[serde(default, skip_serializing_if = "AppLimits::is_empty")]
    pub limits: AppLimits,
    /// How many may edit one document at once, and how long sessions last
    /// (`[apps.sessions]`).
    #[serde(default)]
    pub sessions: AppSessions,
    /// Which history points are kept (`[apps.retention]`).
    #[serde(default)]
    pub retention: AppRetention,
}

/// An app's history retention (`[apps.retention]`), applied by a sweep every
/// `retention_sweep_secs`. Named points (`publish`, `restore`, `discard`) are kept
/// longer than `auto` ones; the latest `publish` point is always kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppRetention {
    /// The newest `auto` points kept per document. Default 50.
    pub auto_points: usize,
    /// `auto` points older than this go (0: no age limit). Default 30 days.
    pub auto_point_max_age_secs: u64,
    /// The newest named points kept per document. Default 200.
    pub named_points: usize,
    /// Named points older than this go (0: no age limit). Default 365 days.
    pub named_point_max_age_secs: u64,
    /// A draft neither changed nor opened for this long is evicted from the store:
    /// its final content goes to the host (the `evicted` webhook), joins are refused
    /// (4410) and reads are 410 until the host writes it again. Default 0: never.
    pub evict_after_secs: u64,
}

impl Default for AppRetention {
    fn default() -> Self {
        AppRetention {
            auto_points: 50,
            auto_point_max_age_secs: 30 * 86_400,
            named_points: 200,
            named_point_max_age_secs: 365 * 86_400,
            evict_after_secs: 0,
        }
    }
}

/// An app's session policy (`[apps.sessions]`): every key has a generous default; 0
/// switches a cap or a timer off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppSessions {
    /// Edit sessions one document takes at once (0: no cap). Default 500.
    pub max_editors: usize,
    /// Past `max_editors`: `view` (default: the session joins view-only and is told
    /// `too-many-editors`) or `refuse` (closed with 4429 `too-many-editors`).
    pub over_max_editors: OverMaxEditors,
    /// A session with no input (no change to the document, no change of its
    /// presence) this long is warned (extension message `idle-warning`). Default
    /// 3300 (55 min); 0: never.
    pub idle_warning_secs: u64,
    /// ...and closed (4408 `idle-timeout`) after this long. Default 3600; 0: never.
    pub idle_close_secs: u64,
    /// Any session is closed this long after it joined (4408 `session-expired`; it
    /// reconnects with a fresh token). Default 86400 (a day); 0: never.
    pub max_session_secs: u64,
}

impl Default for AppSessions {
    fn default() -> Self {
        AppSessions {
            max_editors: 500,
            over_max_editors: OverMaxEditors::View,
            idle_warning_secs: 3300,
            idle_close_secs: 3600,
            max_session_secs: 86_400,
        }
    }
}

/// What a session asking to edit gets past `max_editors`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OverMaxEditors {
    /// It joins view-only and is told why.
    #[default]
    View,
    /// It is refused (4429).
    Refuse,
}

impl AppConfig {
    /// An app as a configuration file names one with only its id and secrets: every
    /// other key at its default (for embedding and tests).
    pub fn new<S: Into<String>>(id: &str, secrets: impl IntoIterator<Item = S>) -> AppConfig {
        AppConfig {
            id: id.into(),
            secrets: secrets.into_iter().map(Into::into).collect(),
            secrets_file: None,
            enabled: true,
            callback_url: None,
            whitelist: None,
            whitelist_mode: Default::default(),
            editor: default_editor(),
            collaboration: true,
            limits: Default::default(),
            sessions: Default::default(),
            retention: Default::default(),
        }
    }
}

/// What one client may ask of the server (`[limits]`). Defaults a fast typist, a
/// large paste or a cursor drag never meet; 0 switches a limit off. See
/// `docs/LIMITS.md` for why each default is what it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Sync and extension messages one connection may send a second, sustained.
    pub messages_per_sec: u64,
    /// ...and at once.
    pub messages_burst: u64,
    /// Awareness messages (cursor moves) one connection may send a second.
    pub awareness_per_sec: u64,
    /// ...and at once.
    pub awareness_burst: u64,
    /// Bytes one connection may send a second, sustained.
    pub bytes_per_sec: u64,
    /// ...and at once (at least `max_message_size`, so the largest message passes).
    pub bytes_burst: u64,
    /// A connection over its limits this long without a break is closed with 4429.
    pub throttle_close_secs: u64,
    /// Open websocket connections, the whole server.
    pub max_connections: usize,
    /// Open websocket connections of one app (an app's `limits.max_connections` overrides).
    pub max_connections_per_app: usize,
    /// Open websocket connections from one client address.
    pub max_connections_per_address: usize,
    /// Host API requests one app may make a second, sustained.
    pub host_requests_per_sec: u64,
    /// ...and at once.
    pub host_requests_burst: u64,
    /// Admission control: joins (websocket upgrades with a valid token) the node
    /// takes a second, sustained; more wait their turn.
    pub joins_per_sec: u64,
    /// ...and at once.
    pub joins_burst: u64,
    /// The longest a join waits for its turn; past it the upgrade is refused (503).
    pub join_wait_secs: u64,
    /// Upgrades refused before a join (bad or expired token, unknown app, bad
    /// content id) one client address may make a second, sustained; past it its
    /// upgrades get 429 before any token work, so guessing costs the guesser.
    pub refused_upgrades_per_sec: u64,
    /// ...and at once.
    pub refused_upgrades_burst: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            messages_per_sec: 100,
            messages_burst: 1_000,
            awareness_per_sec: 60,
            awareness_burst: 600,
            bytes_per_sec: 1 << 20,
            bytes_burst: 16 << 20,
            throttle_close_secs: 10,
            max_connections: 50_000,
            max_connections_per_app: 0,
            max_connections_per_address: 1_000,
            host_requests_per_sec: 200,
            host_requests_burst: 1_000,
            joins_per_sec: 1_000,
            joins_burst: 500,
            join_wait_secs: 5,
            refused_upgrades_per_sec: 2,
            refused_upgrades_burst: 60,
        }
    }
}

/// An app's own limits: each one set replaces the global one for this app.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppLimits {
    /// See [`Limits::messages_per_sec`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_sec: Option<u64>,
    /// See [`Limits::messages_burst`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_burst: Option<u64>,
    /// See [`Limits::awareness_per_sec`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awareness_per_sec: Option<u64>,
    /// See [`Limits::awareness_burst`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awareness_burst: Option<u64>,
    /// See [`Limits::bytes_per_sec`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<u64>,
    /// See [`Limits::bytes_burst`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_burst: Option<u64>,
    /// Open websocket connections of this app (replaces `max_connections_per_app`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// See [`Limits::host_requests_per_sec`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_requests_per_sec: Option<u64>,
    /// See [`Limits::host_requests_burst`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_requests_burst: Option<u64>,
}

impl AppLimits {
    fn is_empty(&self) -> bool {
        *self == AppLimits::default()
    }
}

fn default_editor() -> String {
    "html".into()
}

fn default_true() -> bool {
    true
}

/// The HTTP transport (`[http_transport]`): the websocket protocol over a stream
/// of server-sent events and POSTs, for networks whose proxies refuse websocket
/// upgrades (`proto/PROTOCOL.md`, "HTTP transport").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTransportConfig {
    /// Serve `/v1/http/…`; `false` answers 404 `http-transport-disabled` there
    /// (clients then stay on websockets, or fail to connect where those are blocked).
    pub enabled: bool,
    /// A session nobody streams, polls or posts to for this many seconds ends
    /// (its client went away without leaving).
    pub session_timeout_secs: u64,
    /// A comment line on an idle stream every this many seconds, so proxies keep
    /// it open (many cut a response silent for 60 s).
    pub heartbeat_secs: u64,
    /// A long-poll with nothing to deliver is answered empty after this many seconds.
    pub poll_wait_secs: u64,
}

impl Default for HttpTransportConfig {
    fn default() -> Self {
        HttpTransportConfig {
            enabled: true,
            session_timeout_secs: 30,
            heartbeat_secs: 15,
            poll_wait_secs: 20,
        }
    }
}

/// Everything the service can be told at start-up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Where documents are stored: `sled` (embedded, under `data_dir`) or
    /// `postgres://USER@HOST:PORT/DB` (PostgreSQL; its schema is created and migrated
    /// at start). A password in the URL is redacted from the start-up log. TLS as
    /// libpq: `?sslmode=verify-full&sslrootcert=FILE` checks the server's
    /// certificate and host name; `sslmode=require` encrypts without checking
    /// (no protection from a man in the middle); no `sslmode`: plaintext.
    pub store: String,
    /// Cluster mode: `redis://HOST:PORT`, the Redis the nodes share as their bus;
    /// `rediss://HOST:PORT` for TLS (the certificate must name HOST and chain to
    /// `bus_ca_file`, or to the system's roots). With a postgres store, nodes with
    /// the same `apps` and bus form one cluster.
    pub bus: Option<String>,
    /// Cluster mode, with a `rediss://` bus: the CA certificates (PEM) the Redis's
    /// certificate must chain to, instead of the system's roots.
    pub bus_ca_file: Option<PathBuf>,
    /// Cluster mode: this node's id, unique in the cluster (default: host name and
    /// port).
    pub node_id: Option<String>,
    /// Cluster mode: prefix of the bus's channels (default: `chorus:` and the
    /// PostgreSQL database's name, so clusters sharing one Redis stay apart).
    pub bus_prefix: Option<String>,
    /// Cluster mode: the keys every bus message is signed and checked with
    /// (HMAC-SHA256; the first signs, any verifies, so a key rotates like an app
    /// secret: add the new one second, then first on every node, then drop the
    /// old one). At least one, each at least 32 bytes; cluster mode does not start
    /// without. Never logged.
    pub cluster_keys: Vec<String>,
    /// Cluster mode: how long a document's lease lasts without renewal, in ms. It
    /// bounds failover after a node dies; renewed every third of it.
    pub lease_ttl_ms: u64,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// Register the `demo` app and serve the demo editor at `/demo`.
    pub demo: bool,
    /// Secret of the `demo` app; random (and printed) when unset.
    pub demo_secret: Option<String>,
    /// Start even though an app secret (or `demo_secret`) is shorter than 32
    /// bytes, with a warning per weak app; by default such a secret stops the start
    /// (a short HMAC key can be guessed offline from any token).
    pub allow_weak_secrets: bool,
    /// Serve demo mode on an address other than loopback. Demo mode mints a token
    /// for anyone who asks, for any document of the `demo` app: by default it
    /// refuses to start unless `bind` is a loopback address.
    pub demo_public: bool,
    /// Bearer token of the admin API (`/v1/admin/…`); unset: the admin API is off.
    pub admin_token: Option<String>,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// Largest websocket message accepted, in bytes (larger: close 4413).
    pub max_message_size: usize,
    /// Largest awareness state (JSON) accepted, in bytes.
    pub max_awareness_state_bytes: usize,
    /// Frames queued for one connection before it counts as a slow consumer (close 1013).
    pub outbound_queue_frames: usize,
    /// Bytes queued for one connection before it counts as a slow consumer (close
    /// 1013); one frame may go over it (a whole document still reaches a reader
    /// that keeps up), so a connection holds at most this plus one frame.
    pub outbound_queue_bytes: usize,
    /// How long shutdown waits for connections to close, in seconds.
    pub shutdown_grace_secs: u64,
    /// Seconds of outbound silence after which a keepalive frame is sent (stock
    /// y-websocket clients reconnect after 30 s without a message).
    pub keepalive_secs: u64,
    /// Clock skew tolerated on token `exp`/`nbf`, in seconds.
    pub token_leeway_secs: u64,
    /// Share one fsync among every write waiting for it (off: one fsync per write; for benchmarks).
    pub store_group_commit: bool,
    /// Unload a document nobody is connected to after this many seconds.
    pub idle_unload_secs: u64,
    /// Keep at most this many documents in memory (idle ones are unloaded, least recently used first).
    pub max_loaded_docs: usize,
    /// Write a new snapshot after this many update log records...
    pub compact_after_updates: u64,
    /// ...or this many update log bytes.
    pub compact_after_bytes: u64,
    /// A document larger than this many bytes turns read-only for everyone.
    pub max_document_bytes: u64,
    /// Memory for the embedded store's page cache, in MiB.
    pub store_cache_mb: u64,
    /// While a draft is being edited, take a history point at most every this many seconds.
    pub history_interval_secs: u64,
    /// How often each app's history is trimmed to its `[apps.retention]` (0: never).
    pub retention_sweep_secs: u64,
    /// How long a draft a host read stays available as the base of a three-way
    /// external change (`baseEtag`), in seconds. Bases live in memory: a restart
    /// forgets them (the host then gets 412 `base-expired` and reads again).
    pub external_base_ttl_secs: u64,
    /// Webhooks: ceiling of the first retry delay in ms (doubles per failure, up to 5 min).
    pub webhook_retry_base_ms: u64,
    /// Webhooks: an event still undelivered after this many seconds is dropped (logged).
    pub webhook_max_age_secs: u64,
    /// The `closed` webhook fires once every editor left and this many seconds passed.
    pub close_delay_secs: u64,
    /// At most one `saved` webhook per document per this many seconds.
    pub saved_webhook_secs: u64,
    /// Rate limits and connection caps (`[limits]`).
    pub limits: Limits,
    /// The HTTP transport for networks that block websockets (`[http_transport]`).
    pub http_transport: HttpTransportConfig,
    /// Registered host applications.
    pub apps: Vec<AppConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: DEFAULT_BIND.parse().expect("valid default address"),
            store: "sled".to_owned(),
            bus: None,
            bus_ca_file: None,
            node_id: None,
            bus_prefix: None,
            cluster_keys: Vec::new(),
            lease_ttl_ms: 3000,
            data_dir: PathBuf::from("./data"),
            demo: false,
            demo_secret: None,
            allow_weak_secrets: false,
            demo_public: false,
            admin_token: None,
            log_format: LogFormat::Human,
            max_message_size: 8 * 1024 * 1024,
            max_awareness_state_bytes: 32 * 1024,
            outbound_queue_frames: 1024,
            outbound_queue_bytes: 8 << 20,
            shutdown_grace_secs: 10,
            keepalive_secs: 15,
            token_leeway_secs: chorus_auth::DEFAULT_LEEWAY_SECS,
            store_group_commit: true,
            idle_unload_secs: 30,
            max_loaded_docs: 10_000,
            compact_after_updates: 1_000,
            compact_after_bytes: 1 << 20,
            max_document_bytes: 32 << 20,
            store_cache_mb: 64,
            history_interval_secs: 600,
            retention_sweep_secs: 3600,
            external_base_ttl_secs: 3600,
            webhook_retry_base_ms: 1000,
            webhook_max_age_secs: 24 * 3600,
            close_delay_secs: 10,
            saved_webhook_secs: 30,
            limits: Limits::default(),
            http_transport: HttpTransportConfig::default(),
            apps: Vec::new(),
        }
    }
}
