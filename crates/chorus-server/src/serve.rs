//! Building the router, binding, and shutting down in layers.

use crate::config::{Config, ConfigError, StoreLocation};
use crate::state::AppState;
use crate::{api, connection, demo, hocuspocus, http_transport, ops};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use chorus_store::{PostgresStore, SledStore, Store, StoreError};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Connections the kernel queues before they are accepted (it caps this at
/// `net.core.somaxconn`, 4096 by default). tokio's `TcpListener::bind` asks for
/// 1,024: when every client reconnects at once after a restart the queue
/// overflowed, the kernel dropped SYNs, and each dropped one (a `/healthz` probe
/// among them) waited a full second for its retransmit (the reconnect storm,
/// docs/PERFORMANCE.md).
const LISTEN_BACKLOG: u32 = 4096;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration refers to something unusable (e.g. a whitelist file).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// Cluster mode: the bus could not be reached at start.
    #[error("cannot start the cluster bus: {0}")]
    Bus(#[from] chorus_cluster::BusError),
    /// Accepting or serving connections failed after start-up.
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
}

/// Largest request body the host API accepts (an external change carries a whole
/// body of HTML).
const HOST_BODY_LIMIT: usize = 16 << 20;

/// The REST routes: the host API and the public heartbeat, as (method, path,
/// handler). `proto/openapi.yaml` must describe exactly these (a test compares the
/// two). A method a route does not take is 405 with the JSON error and an `Allow`
/// header; a path outside this table stays axum's plain 404 (the spec says so).
pub fn rest_routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    let routes: [(&'static str, &'static str, MethodRouter<AppState>); 21] = [
        ("get", "/v1/heartbeat", get(ops::heartbeat)),
        (
            "post",
            "/v1/http/{app}/{content}",
            http_transport::cors(post(http_transport::open)),
        ),
        ("get", HTTP_SESSION, http_session()),
        ("post", HTTP_SESSION, http_session()),
        ("delete", HTTP_SESSION, http_session()),
        ("get", "/v1/apps/{app}/docs", get(api::list_docs)),
        (
            "delete",
            "/v1/apps/{app}/docs/{doc}",
            delete(api::delete_doc),
        ),
        (
            "get",
            "/v1/apps/{app}/docs/{doc}/draft",
            get(api::get_draft),
        ),
        (
            "put",
            "/v1/apps/{app}/docs/{doc}/content",
            put(api::put_content),
        ),
        (
            "post",
            "/v1/apps/{app}/docs/{doc}/publish",
            post(api::publish),
        ),
        (
            "get",
            "/v1/apps/{app}/docs/{doc}/history",
            get(api::history),
        ),
        (
            "get",
            "/v1/apps/{app}/docs/{doc}/history/{point}",
            get(api::history_point),
        ),
        (
            "post",
            "/v1/apps/{app}/docs/{doc}/restore",
            post(api::restore),
        ),
        (
            "post",
            "/v1/apps/{app}/docs/{doc}/discard",
            post(api::discard),
        ),
        (
            "get",
            "/v1/apps/{app}/docs/{doc}/sessions",
            get(api::sessions),
        ),
        (
            "post",
            "/v1/apps/{app}/docs/{doc}/sessions/{session}/downgrade",
            post(api::downgrade_session),
        ),
        (
            "delete",
            "/v1/apps/{app}/docs/{doc}/sessions/{session}",
            delete(api::end_session),
        ),
        (
            "get",
            "/v1/apps/{app}/webhooks/dead-letters",
            get(api::dead_letters),
        ),
        (
            "delete",
            "/v1/apps/{app}/webhooks/dead-letters/{event}",
            delete(api::ack_dead_letter),
        ),
        ("post", "/v1/admin/apps/{app}/enable", post(api::enable_app)),
        (
            "post",
            "/v1/admin/apps/{app}/disable",
            post(api::disable_app),
        ),
    ];
    routes
        .into_iter()
        .map(|(method, path, route)| (method, path, route.fallback(api::method_not_allowed)))
        .collect()
}

/// The route of one HTTP transport session (its stream, its POSTs, its leave).
const HTTP_SESSION: &str = "/v1/http/{app}/{content}/{session}";

fn http_session() -> MethodRouter<AppState> {
    http_transport::cors(
        get(http_transport::stream)
            .post(http_transport::post)
            .delete(http_transport::leave),
    )
}

/// All routes of the service.
pub fn build_router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/v1/ws/{app}/{content}", get(connection::ws_handler))
        .route("/v1/hocuspocus/{app}", get(hocuspocus::hocuspocus_handler))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    // A path listed once per method carries all of them in each entry: routed once.
    let mut routed = std::collections::HashSet::new();
    for (_, path, handler) in rest_routes() {
        if !routed.insert(path) {
            continue;
        }
        // Cluster mode: a session another node holds is served there.
        let handler = if path == HTTP_SESSION {
            handler.layer(axum::middleware::from_fn_with_state(
                state.clone(),
                http_transport::to_session_node,
            ))
        } else {
            handler
        };
        router = router.route(path, handler);
    }
    // External changes carry whole bodies of HTML.
    router = router.layer(axum::extract::DefaultBodyLimit::max(HOST_BODY_LIMIT));
    // The HTTP transport's sessions: one table per server, beside (not inside) the
    // shared state, which the transport's own modules build on.
    router = router.layer(axum::Extension(std::sync::Arc::new(
        http_transport::HttpSessions::default(),
    )));
    // Cluster mode: a document's host calls are answered by its owner.
    router = router.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::forward::to_owner,
    ));
    if state.config.demo {
        router = router
            .route("/demo", get(demo::page))
            .route("/demo/token", get(demo::token))
            .route("/demo/assets/{file}", get(demo::asset))
            .route("/demo/external", post(demo::external));
    }
    router
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The content security policy of every response that sets none of its own (the
/// API's JSON, health, metrics, errors): nothing it returns may run or load
/// anything, or be framed.
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every response carries: `nosniff` (a JSON or text body is never read as
/// a script or a page), a content security policy (the demo page sets its own),
/// and no referrer.
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CSP));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    /// Cluster mode: stops the bus, after the documents (their last messages go
    /// out on it).
    bus_stop: Option<CancellationToken>,
}

impl Server {
    /// Open the store `config.store` names (sled in `config.data_dir`, or PostgreSQL)
    /// and bind `config.bind` (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let location = config.store_location()?;
        let cache = config.store_cache_mb.saturating_mul(1 << 20);
        let opened = tokio::task::spawn_blocking(
            move || -> Result<(Arc<dyn Store>, Option<String>), StoreError> {
                Ok(match location {
                    StoreLocation::Sled(dir) => {
                        (Arc::new(SledStore::open_with_cache(&dir, cache)?), None)
                    }
                    StoreLocation::Postgres(url) => {
                        let store = PostgresStore::open(&url)?;
                        info!(
                            store = store.target(),
                            connection = store.security(),
                            "store: PostgreSQL, schema up to date"
                        );
                        let database = store.database().to_owned();
                        (Arc::new(store), Some(database))
                    }
                })
            },
        )
        .await
        .map_err(|e| {
            StoreError::Internal(format!("opening the store: the blocking task failed: {e}"))
        })?;
        let (store, database) = opened?;
        let Some(bus_url) = config.bus.clone() else {
            return Self::bind_with_store(config, store).await;
        };
        let listener = Self::listen(&config).await?;
        // The default node id names the port actually bound.
        let mut config = config;
        if config.node_id.is_none() {
            config.bind = listener.local_addr().map_err(StartError::Serve)?;
        }
        let node = config.node_name();
        let prefix = config
            .bus_prefix
            .clone()
            .unwrap_or_else(|| format!("chorus:{}", database.unwrap_or_default()));
        let bus_stop = CancellationToken::new();
        let mut bus_config = chorus_cluster::BusConfig::new(bus_url, prefix.clone(), node.clone())
            .with_keys(
                config
                    .cluster_keys
                    .iter()
                    .map(|k| k.as_bytes().to_vec())
                    .collect(),
            );
        bus_config.ca_file = config.bus_ca_file.clone();
        let (bus, events) = chorus_cluster::Bus::start(bus_config, bus_stop.clone()).await?;
        info!(%node, %prefix, "cluster mode: node on the bus");
        let setup = chorus_docs::ClusterSetup {
            bus,
            events,
            lease_ttl: Duration::from_millis(config.lease_ttl_ms),
        };
        let state = AppState::with_cluster(config, store, Some(setup))?;
        state.follow_app_switches().await?;
        Ok(Server {
            listener,
            state,
            bus_stop: Some(bus_stop),
        })
    }

    async fn listen(config: &Config) -> Result<TcpListener, StartError> {
        let addr = config.bind;
        let bind = || {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(LISTEN_BACKLOG)
        };
        bind().map_err(|source| StartError::Bind { addr, source })
    }

    /// Bind with a store of the caller's choosing.
    pub async fn bind_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Server, StartError> {
        let listener = Self::listen(&config).await?;
        let state = AppState::new(config, store)?;
        state.follow_app_switches().await?;
        Ok(Server {
            listener,
            state,
            bus_stop: None,
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
        let sweeper = tokio::spawn(state.documents.clone().sweep(state.shutdown.clone()));
        let retention = tokio::spawn(state.documents.clone().run_retention(
            Duration::from_secs(state.config.retention_sweep_secs),
            state.shutdown.clone(),
        ));
        let probe = tokio::spawn(probe_store(state.clone()));
        // Before the bus is read: a forwarded join is judged by its token here.
        crate::join::install_session_verifier(&state.documents, state.apps.clone());
        let cluster_stop = CancellationToken::new();
        let cluster = tokio::spawn(state.documents.clone().run_cluster(cluster_stop.clone()));
        // Webhooks stop after the documents (their last events are in the outbox by
        // then; whatever is undelivered goes out after the next start).
        let hooks_stop = CancellationToken::new();
        // In cluster mode only the node holding the webhooks lease delivers.
        let hooks = tokio::spawn(state.documents.clone().run_webhooks(hooks_stop.clone()));
        // Every socket shared with the document its websocket joins (`direct.rs`).
        let listener = crate::direct::DirectListener(self.listener);
        let router = build_router(self.state);
        if state.documents.node_id().is_some() {
            crate::forward::install_handler(&state, router.clone());
        }
        // The peer address feeds the per-address connection cap; the socket, the
        // document's direct writes.
        let service = router.into_make_service_with_connect_info::<crate::direct::ConnInfo>();
        axum::serve(listener, service)
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
        // Every document writes what it has and waits until it is durable.
        let _ = sweeper.await;
        let _ = retention.await;
        state.documents.shutdown(grace).await;
        hooks_stop.cancel();
        let _ = hooks.await;
        let _ = probe.await;
        cluster_stop.cancel();
        let _ = cluster.await;
        if let Some(bus) = self.bus_stop {
            bus.cancel();
        }
        info!("stopped");
        Ok(())
    }
}

/// How often readiness asks the store whether it can be reached.
const STORE_PROBE_EVERY: Duration = Duration::from_secs(1);

/// Keep `store_unreachable` current until shutdown begins: a probe on the blocking
/// pool every second, counted as failed if it errs or takes longer than the interval
/// (readiness must answer at once, so it reads the flag rather than probing).
async fn probe_store(state: AppState) {
    let mut tick = tokio::time::interval(STORE_PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let store = state.documents.store().clone();
        let probe = tokio::task::spawn_blocking(move || store.probe());
        let failure = match tokio::time::timeout(STORE_PROBE_EVERY * 2, probe).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(Err(e)) => Some(format!("the probe task failed: {e}")),
            Err(_) => Some(format!("no answer within {:?}", STORE_PROBE_EVERY * 2)),
        };
        let was = state
            .store_unreachable
            .swap(failure.is_some(), Ordering::Relaxed);
        match (&failure, was) {
            (Some(error), false) => warn!(%error, "the store cannot be reached; not ready"),
            (None, true) => info!("the store can be reached again; ready"),
            _ => {}
        }
    }
}

/// Open, bind and run `config` until `signal`.
pub async fn serve(
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let server = Server::bind(config).await?;
    server.run(signal).await.map_err(StartError::Serve)
}
