//! The one configuration struct: defaults, then the TOML file, then `CHORUS_*`
//! environment variables, then command-line flags (each layer overrides the last).

use crate::ids::is_id_char;
use chorus_auth::{App, AppRegistry, Secret};
use chorus_core::{Whitelist, WhitelistMode};
use chorus_whitelist::{EditorProfile, Policy};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// HMAC secrets; any verifies, the first signs. Never logged.
    pub secrets: Vec<String>,
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

/// Everything the service can be told at start-up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Where documents are stored: `sled` (embedded, under `data_dir`) or
    /// `postgres://USER@HOST:PORT/DB` (PostgreSQL; its schema is created and migrated
    /// at start). A password in the URL is redacted from the start-up log.
    pub store: String,
    /// Cluster mode: `redis://HOST:PORT`, the Redis the nodes share as their bus.
    /// With a postgres store, nodes with the same `apps` and bus form one cluster.
    pub bus: Option<String>,
    /// Cluster mode: this node's id, unique in the cluster (default: host name and
    /// port).
    pub node_id: Option<String>,
    /// Cluster mode: prefix of the bus's channels (default: `chorus:` and the
    /// PostgreSQL database's name, so clusters sharing one Redis stay apart).
    pub bus_prefix: Option<String>,
    /// Cluster mode: how long a document's lease lasts without renewal, in ms. It
    /// bounds failover after a node dies; renewed every third of it.
    pub lease_ttl_ms: u64,
    /// Where the embedded store keeps its files.
    pub data_dir: PathBuf,
    /// Register the `demo` app and serve the demo editor at `/demo`.
    pub demo: bool,
    /// Secret of the `demo` app; random (and printed) when unset.
    pub demo_secret: Option<String>,
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
    /// Registered host applications.
    pub apps: Vec<AppConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: DEFAULT_BIND.parse().expect("valid default address"),
            store: "sled".to_owned(),
            bus: None,
            node_id: None,
            bus_prefix: None,
            lease_ttl_ms: 3000,
            data_dir: PathBuf::from("./data"),
            demo: false,
            demo_secret: None,
            demo_public: false,
            admin_token: None,
            log_format: LogFormat::Human,
            max_message_size: 8 * 1024 * 1024,
            max_awareness_state_bytes: 32 * 1024,
            outbound_queue_frames: 1024,
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
            external_base_ttl_secs: 3600,
            webhook_retry_base_ms: 1000,
            webhook_max_age_secs: 24 * 3600,
            close_delay_secs: 10,
            saved_webhook_secs: 30,
            limits: Limits::default(),
            apps: Vec::new(),
        }
    }
}

/// Every key of [`Config`], as read from `CHORUS_<KEY>` environment variables.
const ENV_KEYS: [&str; 33] = [
    "bind",
    "store",
    "bus",
    "node_id",
    "bus_prefix",
    "lease_ttl_ms",
    "data_dir",
    "demo",
    "demo_secret",
    "demo_public",
    "admin_token",
    "log_format",
    "max_message_size",
    "max_awareness_state_bytes",
    "outbound_queue_frames",
    "shutdown_grace_secs",
    "keepalive_secs",
    "token_leeway_secs",
    "store_group_commit",
    "idle_unload_secs",
    "max_loaded_docs",
    "compact_after_updates",
    "compact_after_bytes",
    "max_document_bytes",
    "store_cache_mb",
    "history_interval_secs",
    "external_base_ttl_secs",
    "webhook_retry_base_ms",
    "webhook_max_age_secs",
    "close_delay_secs",
    "saved_webhook_secs",
    "limits",
    "apps",
];

/// Where documents are stored, as the `store` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded sled store in this directory.
    Sled(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(String),
}

/// `scheme://user:secret@host/…` → `scheme://user:[redacted]@host/…`; anything without a
/// password is returned as it is.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:[redacted]@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// The `store` key names no store this build knows.
    #[error("store {0:?} is neither \"sled\" nor a postgres://USER@HOST:PORT/DB URL")]
    UnknownStore(String),
    /// A value could not be parsed.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Load defaults → `file` → `CHORUS_*` env → `overrides` (flags given on the command line).
    pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            fig = fig.merge(Toml::file(path));
        }
        // CHORUS_DATA_DIR → data_dir; `CHORUS_APPS='[{id="wiki",secrets=["…"]}]'` works too.
        // Only configuration keys are read: other CHORUS_* variables (CHORUS_LOG,
        // CHORUS_CONFIG, a test suite's CHORUS_BIN) are not configuration.
        fig = fig.merge(Env::prefixed("CHORUS_").only(&ENV_KEYS));
        let config: Config = fig
            .merge(overrides)
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Check the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.demo && !self.demo_public && !self.bind.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "demo mode mints a token for anyone who asks: bind it to a loopback address \
                 (127.0.0.1:{port}), or set demo_public = true to serve it on {bind}",
                port = self.bind.port(),
                bind = self.bind
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for app in &self.apps {
            if app.id.is_empty() || !app.id.chars().all(is_id_char) {
                return Err(ConfigError::Invalid(format!(
                    "app id {:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                    app.id
                )));
            }
            if !seen.insert(app.id.as_str()) || (self.demo && app.id == "demo") {
                return Err(ConfigError::Invalid(format!(
                    "app id {:?} is registered twice",
                    app.id
                )));
            }
            if app.secrets.is_empty() || app.secrets.iter().any(String::is_empty) {
                return Err(ConfigError::Invalid(format!(
                    "app {:?} needs at least one non-empty secret",
                    app.id
                )));
            }
        }
        self.whitelists()?;
        let location = self.store_location()?;
        if let Some(bus) = &self.bus {
            if !bus.starts_with("redis://") {
                return Err(ConfigError::Invalid(format!(
                    "bus {:?} must be a redis://HOST:PORT URL",
                    redact_url_password(bus)
                )));
            }
            if !matches!(location, StoreLocation::Postgres(_)) {
                return Err(ConfigError::Invalid(
                    "a bus (cluster mode) needs store = \"postgres://…\": nodes share their documents through it".into(),
                ));
            }
            if self.lease_ttl_ms < 300 {
                return Err(ConfigError::Invalid(
                    "lease_ttl_ms must be at least 300".into(),
                ));
            }
        }
        if let Some(node) = &self.node_id {
            if node.is_empty() || node.len() > 128 || !node.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::Invalid(format!(
                    "node_id {node:?} must be 1 to 128 visible ASCII characters"
                )));
            }
        }
        if self.max_message_size < 1024 {
            return Err(ConfigError::Invalid(
                "max_message_size must be at least 1024 bytes".into(),
            ));
        }
        if self.keepalive_secs == 0 || self.keepalive_secs >= 30 {
            return Err(ConfigError::Invalid(
                "keepalive_secs must be between 1 and 29 (stock clients give up after 30 s)".into(),
            ));
        }
        if self.max_loaded_docs == 0 || self.compact_after_updates == 0 {
            return Err(ConfigError::Invalid(
                "max_loaded_docs and compact_after_updates must be at least 1".into(),
            ));
        }
        let bursts = std::iter::once(("", self.limits.bytes_burst)).chain(
            self.apps
                .iter()
                .filter_map(|a| a.limits.bytes_burst.map(|b| (a.id.as_str(), b))),
        );
        for (app, burst) in bursts {
            if burst > 0 && burst < self.max_message_size as u64 {
                let whose = if app.is_empty() {
                    String::new()
                } else {
                    format!("app {app:?}: ")
                };
                return Err(ConfigError::Invalid(format!(
                    "{whose}limits.bytes_burst ({burst}) must be 0 or at least max_message_size ({}): the largest message must pass",
                    self.max_message_size
                )));
            }
        }
        if self.outbound_queue_frames == 0 {
            return Err(ConfigError::Invalid(
                "outbound_queue_frames must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The configuration as JSON with every secret replaced by `"[redacted]"`, for the start-up log.
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        for key in ["demo_secret", "admin_token"] {
            if let Some(s) = v.get_mut(key).filter(|s| !s.is_null()) {
                *s = "[redacted]".into();
            }
        }
        if let Some(store) = v.get_mut("store") {
            *store = redact_url_password(&self.store).into();
        }
        if let Some(bus) = self.bus.as_deref() {
            v["bus"] = redact_url_password(bus).into();
        }
        if let Some(apps) = v.get_mut("apps").and_then(|a| a.as_array_mut()) {
            for app in apps {
                if let Some(secrets) = app.get_mut("secrets").and_then(|s| s.as_array_mut()) {
                    for s in secrets {
                        *s = "[redacted]".into();
                    }
                }
            }
        }
        v
    }

    /// This node's id in a cluster: `node_id`, or the host name and port.
    pub fn node_name(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "chorus".to_owned());
        format!("{host}:{}", self.bind.port())
    }

    /// Which store `store` names.
    pub fn store_location(&self) -> Result<StoreLocation, ConfigError> {
        let store = self.store.trim();
        if store == "sled" {
            Ok(StoreLocation::Sled(self.data_dir.clone()))
        } else if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(store.to_owned()))
        } else {
            Err(ConfigError::UnknownStore(redact_url_password(store)))
        }
    }

    /// The whitelist of every app that does not use the default one (policy files are
    /// read and validated here, so a bad file stops the start with its path and reason).
    pub fn whitelists(&self) -> Result<HashMap<String, Whitelist>, ConfigError> {
        let mut out = HashMap::new();
        for app in &self.apps {
            let profile = match EditorProfile::builtin(&app.editor) {
                Some(p) => p,
                None => {
                    let path = std::path::Path::new(&app.editor);
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: editor {:?} is neither html, tiptap nor a readable profile file: {e}",
                            app.id, app.editor
                        ))
                    })?;
                    let name = path
                        .file_stem()
                        .map_or("custom".into(), |s| s.to_string_lossy());
                    EditorProfile::from_json(&name, &text).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: editor {}: {e}",
                            app.id, app.editor
                        ))
                    })?
                }
            };
            let policy = match &app.whitelist {
                None if app.whitelist_mode == WhitelistMode::Strip && profile.is_identity() => {
                    continue
                }
                None => Whitelist::default().policy,
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: cannot read whitelist {}: {e}",
                            app.id,
                            path.display()
                        ))
                    })?;
                    Arc::new(Policy::from_json(&text).map_err(|e| {
                        ConfigError::Invalid(format!(
                            "app {:?}: whitelist {}: {e}",
                            app.id,
                            path.display()
                        ))
                    })?)
                }
            };
            out.insert(
                app.id.clone(),
                Whitelist::new(policy, app.whitelist_mode).with_profile(Arc::new(profile)),
            );
        }
        Ok(out)
    }

    /// How documents are kept in memory and in the store.
    pub fn doc_policy(&self) -> chorus_docs::DocPolicy {
        chorus_docs::DocPolicy {
            idle_unload: std::time::Duration::from_secs(self.idle_unload_secs),
            max_loaded: self.max_loaded_docs,
            compact_after_updates: self.compact_after_updates,
            compact_after_bytes: self.compact_after_bytes,
            max_document_bytes: self.max_document_bytes,
            history_interval: std::time::Duration::from_secs(self.history_interval_secs),
            base_ttl: std::time::Duration::from_secs(self.external_base_ttl_secs),
            close_delay: std::time::Duration::from_secs(self.close_delay_secs),
            saved_webhook_every: std::time::Duration::from_secs(self.saved_webhook_secs),
        }
    }

    /// Webhook delivery settings.
    pub fn hooks_config(&self) -> chorus_hooks::HooksConfig {
        let base = std::time::Duration::from_millis(self.webhook_retry_base_ms.max(1));
        let defaults = chorus_hooks::HooksConfig::default();
        chorus_hooks::HooksConfig {
            backoff_base: base,
            backoff_cap: defaults.backoff_cap.max(base),
            max_age: std::time::Duration::from_secs(self.webhook_max_age_secs.max(1)),
            // Cluster mode: one node delivers every node's events, read from the
            // shared outbox.
            shared_outbox_poll: self
                .bus
                .is_some()
                .then_some(std::time::Duration::from_millis(250)),
            ..defaults
        }
    }

    /// Apps in exclusive mode (`collaboration = false`).
    pub fn exclusive_apps(&self) -> std::collections::HashSet<String> {
        self.apps
            .iter()
            .filter(|a| !a.collaboration)
            .map(|a| a.id.clone())
            .collect()
    }

    /// Where each app's webhooks go and the secret that signs them (apps without a
    /// `callback_url` are absent).
    pub fn hook_targets(&self) -> HashMap<String, chorus_hooks::HookTarget> {
        self.apps
            .iter()
            .filter_map(|a| {
                let url = a.callback_url.clone()?;
                let secret = a.secrets.first()?.as_bytes().to_vec();
                Some((
                    a.id.clone(),
                    chorus_hooks::HookTarget {
                        callback_url: url,
                        secret,
                    },
                ))
            })
            .collect()
    }

    /// The app registry these settings describe (`demo_secret` must be resolved first).
    pub fn app_registry(&self) -> AppRegistry {
        let mut apps: Vec<App> = self
            .apps
            .iter()
            .map(|a| {
                App::new(
                    a.id.clone(),
                    a.secrets.iter().cloned().map(Secret::new).collect(),
                    a.enabled,
                )
            })
            .collect();
        if self.demo {
            if let Some(secret) = &self.demo_secret {
                apps.push(App::new("demo", vec![Secret::new(secret.clone())], true));
            }
        }
        AppRegistry::new(apps).with_leeway(self.token_leeway_secs)
    }
}

#[cfg(test)]
// figment's Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        // Every test that reads the environment runs in a Jail: jails are serialised,
        // so one test's variables never leak into another's load.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "bind = \"127.0.0.1:9999\"\n[[apps]]\nid = \"wiki\"\nsecrets = [\"a\", \"b\"]\n",
            )?;
            let path = Path::new("c.toml");
            let c = Config::load(Some(path), Figment::new()).unwrap();
            assert_eq!(c.bind.port(), 9999);
            assert_eq!(c.apps[0].secrets, ["a", "b"]);
            assert!(c.apps[0].enabled);
            let flags = Figment::new().merge(Serialized::default("bind", "127.0.0.1:1"));
            assert_eq!(Config::load(Some(path), flags).unwrap().bind.port(), 1);
            Ok(())
        });
    }

    #[test]
    fn demo_mode_starts_on_loopback_only_unless_told_otherwise() {
        let demo = |bind: &str, public: bool| Config {
            demo: true,
            demo_public: public,
            bind: bind.parse().unwrap(),
            ..Config::default()
        };
        assert!(demo("127.0.0.1:10123", false).validate().is_ok());
        assert!(demo("[::1]:10123", false).validate().is_ok());
        let refused = demo("0.0.0.0:10123", false)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(refused.contains("demo_public"), "{refused}");
        assert!(demo("192.0.2.7:10123", false).validate().is_err());
        assert!(demo("0.0.0.0:10123", true).validate().is_ok());
        let plain = Config {
            bind: "0.0.0.0:10123".parse().unwrap(),
            ..Config::default()
        };
        assert!(
            plain.validate().is_ok(),
            "only demo mode is held to loopback"
        );
    }

    #[test]
    fn env_keys_cover_every_field_and_nothing_else() {
        let fields = serde_json::to_value(Config::default()).unwrap();
        let mut fields: Vec<_> = fields.as_object().unwrap().keys().cloned().collect();
        let mut keys: Vec<_> = ENV_KEYS.iter().map(|k| k.to_string()).collect();
        fields.sort();
        keys.sort();
        assert_eq!(fields, keys);
    }

    #[test]
    fn environment_overrides_the_file_and_strays_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "bind = \"127.0.0.1:9999\"\n")?;
            jail.set_env("CHORUS_BIND", "127.0.0.1:7777");
            jail.set_env("CHORUS_LOG", "debug");
            jail.set_env("CHORUS_BIN", "/somewhere/chorus");
            jail.set_env("CHORUS_APPS", r#"[{id="wiki",secrets=["s"]}]"#);
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            assert_eq!(c.bind.port(), 7777);
            assert_eq!(c.apps[0].id, "wiki");
            Ok(())
        });
    }

    #[test]
    fn store_urls_lose_their_password_in_the_log_and_in_errors() {
        assert_eq!(
            redact_url_password("postgres://chorus:hunter2@db:5432/chorus?sslmode=disable"),
            "postgres://chorus:[redacted]@db:5432/chorus?sslmode=disable"
        );
        assert_eq!(
            redact_url_password("postgres://chorus@db/chorus"),
            "postgres://chorus@db/chorus"
        );
        let c = Config {
            store: "postgres://chorus:hunter2@db:5432/chorus".into(),
            ..Config::default()
        };
        assert!(!c.redacted().to_string().contains("hunter2"));
        assert_eq!(
            c.store_location().unwrap(),
            StoreLocation::Postgres("postgres://chorus:hunter2@db:5432/chorus".into())
        );
        let bad = Config {
            store: "mysql://root:hunter2@db/x".into(),
            ..Config::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("neither") && !e.contains("hunter2"), "{e}");
        assert_eq!(
            Config::default().store_location().unwrap(),
            StoreLocation::Sled("./data".into())
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config {
            demo_secret: Some("topsecret".into()),
            admin_token: Some("admin-sesame".into()),
            apps: vec![AppConfig {
                id: "wiki".into(),
                secrets: vec!["hunter2".into()],
                enabled: true,
                callback_url: None,
                whitelist: None,
                whitelist_mode: WhitelistMode::Strip,
                editor: "html".into(),
                collaboration: true,
                limits: Default::default(),
            }],
            ..Config::default()
        };
        let text = c.redacted().to_string();
        assert!(!text.contains("hunter2") && !text.contains("topsecret"));
        assert!(!text.contains("admin-sesame"));
        assert!(text.contains("wiki"));
    }

    #[test]
    fn whitelist_per_app_is_loaded_and_a_bad_file_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("strict.json", chorus_whitelist::DEFAULT_POLICY_JSON)?;
            jail.create_file(
                "c.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"s\"]\nwhitelist = \"strict.json\"\nwhitelist_mode = \"reject\"\n\
                 [[apps]]\nid = \"cms\"\nsecrets = [\"s\"]\n",
            )?;
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            let w = c.whitelists().unwrap();
            assert_eq!(w["wiki"].mode, WhitelistMode::Reject);
            assert!(
                !w.contains_key("cms"),
                "default whitelist for apps that set none"
            );

            jail.create_file("bad.json", r#"{"elements": {"script": []}, "global_attributes": [], "url_attributes": [], "url_schemes": [], "styles": {}, "marks": {}}"#)?;
            jail.create_file(
                "bad.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"s\"]\nwhitelist = \"bad.json\"\n",
            )?;
            let err = Config::load(Some(Path::new("bad.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("bad.json"), "{err}");
            assert!(err.to_string().contains("script"), "{err}");
            jail.create_file(
                "mode.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"s\"]\nwhitelist_mode = \"maybe\"\n",
            )?;
            assert!(Config::load(Some(Path::new("mode.toml")), Figment::new()).is_err());
            Ok(())
        });
    }

    #[test]
    fn an_apps_editor_is_html_tiptap_or_a_profile_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "mine.json",
                r#"{"fragment": "doc", "nodes": {"para": {"html": "p"}}, "marks": {"b": {"html": "strong"}}}"#,
            )?;
            jail.create_file(
                "c.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"s\"]\neditor = \"tiptap\"\n\
                 [[apps]]\nid = \"cms\"\nsecrets = [\"s\"]\neditor = \"mine.json\"\n\
                 [[apps]]\nid = \"blog\"\nsecrets = [\"s\"]\n",
            )?;
            let c = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap();
            let w = c.whitelists().unwrap();
            assert_eq!(w["wiki"].profile.fragment(), "default");
            assert_eq!(w["wiki"].profile.name(), "tiptap");
            assert_eq!(w["cms"].profile.fragment(), "doc");
            assert!(w["cms"].profile.node("para").is_some());
            assert!(!w.contains_key("blog"), "html, the default, needs no entry");
            assert_eq!(c.apps[2].editor, "html");
            jail.create_file(
                "bad.toml",
                "[[apps]]\nid = \"wiki\"\nsecrets = [\"s\"]\neditor = \"quill\"\n",
            )?;
            let err = Config::load(Some(Path::new("bad.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("neither html, tiptap"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[[apps]]\nid = \"wiki\"\nsecrets = []\n")?;
            let err = Config::load(Some(Path::new("c.toml")), Figment::new()).unwrap_err();
            assert!(err.to_string().contains("at least one non-empty secret"));
            jail.create_file("typo.toml", "bnid = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("typo.toml")), Figment::new()).is_err());
            assert!(matches!(
                Config::load(Some(Path::new("nope.toml")), Figment::new()),
                Err(ConfigError::MissingFile(_))
            ));
            Ok(())
        });
    }
}
