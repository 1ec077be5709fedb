//! The shared state of one server ([`AppState`]): configuration, apps, the
//! document layer, counters and the shutdown signals. Handlers take it from axum's
//! `State`; nothing here knows about routes.

use crate::config::{Config, ConfigError};
use crate::limits::Limiters;
use crate::metrics::Metrics;
use chorus_auth::AppRegistry;
use chorus_core::RoomLimits;
use chorus_docs::{AppRules, DocSetup, Documents};
use chorus_hooks::Hooks;
use chorus_store::{Store, StoreError};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shared state of one server; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points to.
pub struct Shared {
    /// The effective configuration.
    pub config: Config,
    /// Registered apps and their secrets.
    pub apps: AppRegistry,
    /// Live documents.
    pub documents: Arc<Documents>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Rate limits and connection caps, with what they count.
    pub limiters: Limiters,
    /// Cancelled when shutdown begins: every connection closes with 1012.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// True from the start of shutdown (readiness turns false).
    pub draining: AtomicBool,
    /// True while the store's last probe failed (a PostgreSQL that cannot be reached;
    /// readiness turns false). Set by the probe task `Server::run` starts.
    pub store_unreachable: AtomicBool,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State for `config` over `store` (the demo secret, if any, must already be resolved).
    pub fn new(config: Config, store: Arc<dyn Store>) -> Result<Self, ConfigError> {
        Self::with_cluster(config, store, None)
    }

    /// Like [`AppState::new`], in cluster mode when `cluster` is given.
    pub fn with_cluster(
        config: Config,
        store: Arc<dyn Store>,
        cluster: Option<chorus_docs::ClusterSetup>,
    ) -> Result<Self, ConfigError> {
        let limits = RoomLimits {
            max_awareness_state_bytes: config.max_awareness_state_bytes,
            ..RoomLimits::default()
        };
        let whitelists = config.whitelists()?;
        let targets = config.hook_targets();
        let hooked_apps = targets.keys().cloned().collect();
        let hooks = Hooks::new(
            store.clone(),
            Arc::new(move |app: &str| targets.get(app).cloned()),
            config.hooks_config(),
        )
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let metrics = Arc::new(Metrics::new(Some(hooks.clone())));
        let state = AppState(Arc::new(Shared {
            apps: config.app_registry(),
            documents: Documents::new(DocSetup {
                limits,
                rules: AppRules {
                    whitelists,
                    hooked: hooked_apps,
                    exclusive: config.exclusive_apps(),
                    sessions: config.session_policies(),
                    retention: config.retention_policies(),
                },
                policy: config.doc_policy(),
                store,
                hooks,
                metrics: metrics.clone(),
                group_commit: config.store_group_commit,
            }),
            metrics,
            limiters: Limiters::new(
                &config.limits,
                config.apps.iter().map(|a| (a.id.as_str(), &a.limits)),
            ),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            draining: AtomicBool::new(false),
            store_unreachable: AtomicBool::new(false),
            config,
        }));
        if let Some(setup) = cluster {
            state.documents.join_cluster(setup);
            state.metrics.attach_documents(&state.documents);
        }
        // Another node's admin call switched an app: follow it here.
        let apps = state.apps.clone();
        state
            .documents
            .set_app_state_handler(Arc::new(move |app: &str, enabled: bool| {
                if let Some(entry) = apps.get(app) {
                    entry.set_enabled(enabled);
                }
            }));
        Ok(state)
    }

    /// Follow the switches the admin API kept in the store (before this start, or
    /// on another node of the cluster).
    pub async fn follow_app_switches(&self) -> Result<(), StoreError> {
        let store = self.documents.store().clone();
        let switches = tokio::task::spawn_blocking(move || store.app_switches())
            .await
            .map_err(|e| StoreError::Internal(format!("reading the app switches: {e}")))??;
        for (app, enabled) in switches {
            if let Some(entry) = self.apps.get(&app) {
                if entry.is_enabled() != enabled {
                    tracing::info!(%app, enabled, "app switched by the admin API (kept in the store)");
                }
                entry.set_enabled(enabled);
            }
        }
        Ok(())
    }

    /// True when the service should receive new work: not draining, store writable.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.documents.store_failing().is_none()
    }
}

/// Seconds since the Unix epoch (the clock injected into token checks).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
