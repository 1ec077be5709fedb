//! Building the router, binding, and shutting down in layers.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Documents;
use crate::{connection, demo, ops};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use chorus_auth::AppRegistry;
use chorus_core::RoomLimits;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

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
    /// Cancelled when shutdown begins: every connection closes with 1012.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// True from the start of shutdown (readiness turns false).
    pub draining: AtomicBool,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State for `config` (the demo secret, if any, must already be resolved).
    pub fn new(config: Config) -> Self {
        let metrics = Arc::new(Metrics::default());
        let limits = RoomLimits {
            max_awareness_state_bytes: config.max_awareness_state_bytes,
            ..RoomLimits::default()
        };
        AppState(Arc::new(Shared {
            apps: config.app_registry(),
            documents: Documents::new(limits, metrics.clone()),
            metrics,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            draining: AtomicBool::new(false),
            config,
        }))
    }
}

/// All routes of the service.
pub fn build_router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/v1/ws/{app}/{content}", get(connection::ws_handler))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    if state.config.demo {
        router = router
            .route("/demo", get(demo::page))
            .route("/demo/token", get(demo::token));
    }
    router.with_state(state)
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Bind `config.bind` (port 0 picks a free port).
    pub async fn bind(config: Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.bind).await?;
        Ok(Server {
            listener,
            state: AppState::new(config),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `signal` resolves, then drain: readiness false, stop accepting,
    /// close every websocket with 1012, wait for connection tasks (bounded by
    /// `shutdown_grace_secs`).
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let addr = self.listener.local_addr()?;
        info!("listening on http://{addr}");
        let trigger = state.clone();
        let graceful = async move {
            signal.await;
            info!("shutdown requested; draining");
            trigger.draining.store(true, Ordering::Relaxed);
            trigger.shutdown.cancel();
        };
        // Nagle's algorithm would hold small frames back up to 40 ms: every edit is small.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, build_router(self.state))
            .with_graceful_shutdown(graceful)
            .await?;
        state.tracker.close();
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        if tokio::time::timeout(grace, state.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = state.tracker.len(),
                "connections still open after the shutdown grace period"
            );
        }
        info!("stopped");
        Ok(())
    }
}

/// Bind and run `config` until `signal`.
pub async fn serve(
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Server::bind(config).await?.run(signal).await
}
