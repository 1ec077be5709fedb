//! Cluster mode: one owner per document across nodes, the others forward.
//!
//! - **Ownership** is a lease in the store (PostgreSQL, [`chorus_store::Leases`])
//!   with a fencing token. A document's actor takes it in its load phase; the owner
//!   renews all its leases every `lease_ttl / 3`, and an actor whose lease was
//!   taken over (or whose write was fenced) closes its connections with
//!   [`Disconnect::Moved`] and stops without writing: it never could again.
//! - **Forwarding**: where another node holds a live lease, the actor is a *proxy*
//!   (`actor/proxy.rs`): it relays its connections' frames to the owner and fans the
//!   owner's frames out to them. On the owner, each such connection is a member like
//!   any other, whose frames go through the document's [`link`] to that node, which
//!   sends each frame once per node.
//! - **Losses**: a hole in a node's messages, a restarted node, this node's bus
//!   reconnecting, or a node going silent ([`chorus_cluster::BusEvent`]) makes both
//!   sides drop what they shared and close those connections with
//!   [`Disconnect::Moved`]: the clients reconnect and resync with the owner by state
//!   vectors, and nothing was acknowledged that is not committed.
//! - **Host API calls** for a document another node owns are carried to it as
//!   opaque requests ([`Documents::forward_host`]); the server decides what they are.
//!
//! What it must not touch: HTTP, close codes, Redis (that is `chorus-cluster`).

pub(crate) mod link;
pub(crate) mod wire;

use crate::command::DocCommand;
use crate::error::DocError;
use crate::peer::Disconnect;
use crate::registry::{DocKey, Documents};
use bytes::Bytes;
use chorus_cluster::{Bus, BusEvent};
use chorus_core::Session;
use chorus_protocol::Message;
use dashmap::DashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wire::Wire;

pub(crate) use link::LinkSender;

/// How long a forwarded host API call may take before it fails.
const HOST_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What cluster mode needs: the bus, and how long a lease lasts.
pub struct ClusterSetup {
    /// This node's connection to the bus.
    pub bus: Bus,
    /// What the bus reports ([`Documents::run_cluster`] consumes it).
    pub events: mpsc::Receiver<BusEvent>,
    /// How long a lease lasts without renewal: the bound on failover after a node
    /// dies (renewed every third of it).
    pub lease_ttl: Duration,
}

/// Answers a host API call carried from another node: request bytes in, response
/// bytes out (both the server's own encoding).
pub type HostHandler =
    Arc<dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> + Send + Sync>;

/// Told when another node enabled or disabled an app (`app`, `enabled`).
pub type AppStateHandler = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// Where a document is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// By this node (it owns the document, or this is a single node).
    Local,
    /// By the named node.
    Remote(Arc<str>),
}

/// Cluster counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Documents this node owns now.
    pub owned: u64,
    /// Documents this node forwards to their owners now.
    pub forwarded: u64,
    /// Leases this node took over from another node.
    pub takeovers: u64,
    /// Leases this node lost to another node.
    pub leases_lost: u64,
    /// Host API calls forwarded to the owner.
    pub host_forwards: u64,
    /// Connections closed to resync after a loss on the bus.
    pub resyncs: u64,
}

/// The cluster state of one node.
pub(crate) struct Cluster {
    pub(crate) bus: Bus,
    pub(crate) lease_ttl: Duration,
    /// Documents this node owns, with their lease tokens.
    pub(crate) owned: DashMap<DocKey, u64>,
    /// Documents this node forwards, with their owners.
    pub(crate) forwarded: DashMap<DocKey, Arc<str>>,
    /// Nodes heard from, and whether they are up.
    alive: DashMap<Arc<str>, bool>,
    started: Instant,
    events: std::sync::Mutex<Option<mpsc::Receiver<BusEvent>>>,
    host: OnceLock<HostHandler>,
    app_state: OnceLock<AppStateHandler>,
    pending: DashMap<u64, oneshot::Sender<Vec<u8>>>,
    next_request: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    host_forwards: AtomicU64,
    pub(crate) resyncs: AtomicU64,
}

impl Cluster {
    pub(crate) fn new(setup: ClusterSetup) -> Cluster {
        Cluster {
            bus: setup.bus,
            lease_ttl: setup.lease_ttl,
            owned: DashMap::new(),
            forwarded: DashMap::new(),
            alive: DashMap::new(),
            started: Instant::now(),
            events: std::sync::Mutex::new(Some(setup.events)),
            host: OnceLock::new(),
            app_state: OnceLock::new(),
            pending: DashMap::new(),
            next_request: AtomicU64::new(1),
            takeovers: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
            host_forwards: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
        }
    }

    /// This node's id.
    pub(crate) fn node(&self) -> &Arc<str> {
        self.bus.node()
    }

    /// Whether `node` is up as far as the bus can tell. A node never heard from
    /// counts as up for the first seconds after this one started (it may simply not
    /// have been heard yet), then as down.
    pub(crate) fn is_alive(&self, node: &str) -> bool {
        match self.alive.get(node) {
            Some(up) => *up,
            None => self.started.elapsed() < self.lease_ttl,
        }
    }

    pub(crate) fn send(&self, node: &str, wire: &Wire) {
        self.bus.send(node, wire.encode());
    }
}

/// What the cluster asks of an actor (opaque outside this crate).
pub struct ClusterCommand(pub(crate) ClusterOp);

impl std::fmt::Debug for ClusterCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterCommand")
    }
}

pub(crate) enum ClusterOp {
    /// Owner: a connection of `node` joins.
    RemoteJoin {
        node: Arc<str>,
        conn: u64,
        session: Session,
    },
    /// Owner: a message from connection `conn` of `node`.
    RemoteMessage {
        node: Arc<str>,
        conn: u64,
        msg: Message,
    },
    /// Owner: connection `conn` of `node` ended.
    RemoteLeave { node: Arc<str>, conn: u64 },
    /// Proxy: a frame from the owner for some local connections.
    Deliver { frame: Bytes, to: Vec<u64> },
    /// Proxy: the owner closes a local connection.
    Close { conn: u64, reason: Disconnect },
    /// What this node shared with `node` may be lost (or it is down).
    NodeLost { node: Arc<str> },
    /// This node's bus subscription broke: everything shared may be lost.
    BusLost,
    /// Owner: the lease was taken over; stop without writing.
    LeaseLost,
    /// Where is the document served?
    Route { reply: oneshot::Sender<Route> },
}

fn cluster_cmd(op: ClusterOp) -> DocCommand {
    DocCommand::Cluster(ClusterCommand(op))
}

impl Documents {
    /// Where `key` is served: asks its actor (starting one, which takes the lease if
    /// nobody holds it). Always [`Route::Local`] on a single node.
    pub async fn route(self: &Arc<Self>, key: &DocKey) -> Result<Route, DocError> {
        if self.cluster().is_none() {
            return Ok(Route::Local);
        }
        self.ask(key, |reply| cluster_cmd(ClusterOp::Route { reply }))
            .await
    }

    /// Carry a host API call to `node` and wait for its answer (the server encodes
    /// both; see [`Documents::set_host_handler`] on the other side).
    pub async fn forward_host(&self, node: &str, request: Vec<u8>) -> Result<Vec<u8>, DocError> {
        let Some(cluster) = self.cluster() else {
            return Err(DocError::ActorGone);
        };
        let id = cluster.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        cluster.pending.insert(id, tx);
        cluster.host_forwards.fetch_add(1, Ordering::Relaxed);
        cluster.send(node, &Wire::HostRequest { id, request });
        let answer = tokio::time::timeout(HOST_CALL_TIMEOUT, rx).await;
        cluster.pending.remove(&id);
        match answer {
            Ok(Ok(response)) => Ok(response),
            _ => Err(DocError::ActorGone),
        }
    }

    /// How this node answers host API calls other nodes carry to it.
    pub fn set_host_handler(&self, handler: HostHandler) {
        if let Some(cluster) = self.cluster() {
            let _ = cluster.host.set(handler);
        }
    }

    /// Who to tell when another node enables or disables an app.
    pub fn set_app_state_handler(&self, handler: AppStateHandler) {
        if let Some(cluster) = self.cluster() {
            let _ = cluster.app_state.set(handler);
        }
    }

    /// Tell every other node that `app` was enabled or disabled here (a disabled
    /// app's sessions are closed wherever they are).
    pub fn announce_app_state(&self, app: &str, enabled: bool) {
        if let Some(cluster) = self.cluster() {
            let wire = Wire::AppState {
                app: app.to_owned(),
                enabled,
            };
            cluster.bus.broadcast(wire.encode());
        }
    }

    /// This node's id in the cluster, if it is in one.
    pub fn node_id(&self) -> Option<&str> {
        self.cluster().map(|c| &**c.node())
    }

    /// Whether the bus can be reached now (`None` on a single node).
    pub fn bus_connected(&self) -> Option<bool> {
        self.cluster().map(|c| c.bus.is_connected())
    }

    /// The bus's counters (`None` on a single node).
    pub fn bus_stats(&self) -> Option<chorus_cluster::BusStats> {
        self.cluster().map(|c| c.bus.stats())
    }

    /// The cluster's counters (`None` on a single node).
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        self.cluster().map(|c| ClusterStats {
            owned: c.owned.len() as u64,
            forwarded: c.forwarded.len() as u64,
            takeovers: c.takeovers.load(Ordering::Relaxed),
            leases_lost: c.leases_lost.load(Ordering::Relaxed),
            host_forwards: c.host_forwards.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
        })
    }

    /// Cluster mode's node tasks until `stop`: route what the bus brings to the
    /// documents, and renew this node's leases. Does nothing on a single node.
    pub async fn run_cluster(self: Arc<Self>, stop: CancellationToken) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let Some(mut events) = cluster
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let renewer = tokio::spawn(self.clone().renew_leases(stop.clone()));
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => break,
                event = events.recv() => match event { Some(e) => e, None => break },
            };
            self.on_bus_event(event).await;
        }
        let _ = renewer.await;
    }

    async fn on_bus_event(self: &Arc<Self>, event: BusEvent) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        match event {
            BusEvent::Message { from, payload } => match Wire::decode(&payload) {
                Some(wire) => self.on_wire(from, wire).await,
                None => warn!(%from, "bus: a payload that is not a document message; ignored"),
            },
            BusEvent::NodeUp { node } => {
                debug!(%node, "node up");
                cluster.alive.insert(node, true);
            }
            BusEvent::NodeDown { node } => {
                warn!(%node, "node down: resyncing what it shared");
                cluster.alive.insert(node.clone(), false);
                self.tell_all(|| ClusterOp::NodeLost { node: node.clone() })
                    .await;
            }
            BusEvent::Lost { from } => {
                warn!(node = %from, "messages from a node were lost: resyncing what it shared");
                self.tell_all(|| ClusterOp::NodeLost { node: from.clone() })
                    .await;
            }
            BusEvent::Reconnected => {
                warn!("the bus reconnected: resyncing every shared document");
                self.tell_all(|| ClusterOp::BusLost).await;
            }
        }
    }

    async fn on_wire(self: &Arc<Self>, from: Arc<str>, wire: Wire) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let key = |app: String, doc: String| -> DocKey { (app.into(), doc.into()) };
        match wire {
            Wire::Join {
                app,
                doc,
                conn,
                session,
            } => {
                if self.stopping.load(Ordering::Relaxed) {
                    // This node is going away: the connection must find the next owner.
                    let close = Wire::Close {
                        app,
                        doc,
                        conn,
                        reason: Disconnect::Moved,
                    };
                    cluster.send(&from, &close);
                    return;
                }
                let op = ClusterOp::RemoteJoin {
                    node: from,
                    conn,
                    session,
                };
                let _ = self.dispatch(&key(app, doc), cluster_cmd(op)).await;
            }
            Wire::Frame {
                app,
                doc,
                conn,
                frame,
            } => {
                let key = key(app, doc);
                let Ok(msg) = Message::decode(&Bytes::from(frame)) else {
                    return;
                };
                match self.live_handle(&key) {
                    Some(h) => {
                        let op = ClusterOp::RemoteMessage {
                            node: from,
                            conn,
                            msg,
                        };
                        let _ = h.send(cluster_cmd(op)).await;
                    }
                    None => cluster.send(
                        &from,
                        &Wire::Close {
                            app: key.0.to_string(),
                            doc: key.1.to_string(),
                            conn,
                            reason: Disconnect::Moved,
                        },
                    ),
                }
            }
            Wire::Leave { app, doc, conn } => {
                if let Some(h) = self.live_handle(&key(app, doc)) {
                    let _ = h
                        .send(cluster_cmd(ClusterOp::RemoteLeave { node: from, conn }))
                        .await;
                }
            }
            Wire::Deliver {
                app,
                doc,
                frame,
                to,
            } => {
                if let Some(h) = self.live_handle(&key(app, doc)) {
                    let op = ClusterOp::Deliver {
                        frame: frame.into(),
                        to,
                    };
                    let _ = h.send(cluster_cmd(op)).await;
                }
            }
            Wire::Close {
                app,
                doc,
                conn,
                reason,
            } => {
                if let Some(h) = self.live_handle(&key(app, doc)) {
                    let _ = h.send(cluster_cmd(ClusterOp::Close { conn, reason })).await;
                }
            }
            Wire::AppState { app, enabled } => {
                info!(%app, enabled, from = %from, "another node changed an app");
                if let Some(handler) = cluster.app_state.get() {
                    handler(&app, enabled);
                }
                if !enabled {
                    self.close_app(&app).await;
                }
            }
            Wire::HostRequest { id, request } => {
                let Some(handler) = cluster.host.get().cloned() else {
                    return;
                };
                let bus = cluster.bus.clone();
                tokio::spawn(async move {
                    let response = handler(request).await;
                    bus.send(&from, Wire::HostResponse { id, response }.encode());
                });
            }
            Wire::HostResponse { id, response } => {
                if let Some((_, reply)) = cluster.pending.remove(&id) {
                    let _ = reply.send(response);
                }
            }
        }
    }

    /// Send the command `make` builds to every live document.
    async fn tell_all(&self, make: impl Fn() -> ClusterOp) {
        let handles: Vec<_> = self.live_handles();
        for h in handles {
            let _ = h.send(cluster_cmd(make())).await;
        }
    }

    /// Renew this node's leases every third of their lifetime; tell the owners
    /// whose lease was taken over.
    async fn renew_leases(self: Arc<Self>, stop: CancellationToken) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let mut tick = tokio::time::interval(cluster.lease_ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if cluster.owned.is_empty() {
                continue;
            }
            let store = self.store().clone();
            let node = cluster.node().to_string();
            let ttl = cluster.lease_ttl;
            let renewed = tokio::task::spawn_blocking(move || match store.leases() {
                Some(leases) => leases.renew(&node, ttl).map(Some),
                None => Ok(None),
            })
            .await;
            let held = match renewed {
                Ok(Ok(Some(held))) => held,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    if !failing {
                        warn!(error = %e, "cannot renew leases; owners keep serving, acks wait for the store");
                        failing = true;
                    }
                    continue;
                }
                Err(_) => continue,
            };
            if failing {
                info!("leases renewed again");
                failing = false;
            }
            let held: std::collections::HashMap<(String, String), u64> = held
                .into_iter()
                .map(|(id, token)| ((id.app, id.doc), token))
                .collect();
            let lost: Vec<DocKey> = cluster
                .owned
                .iter()
                .filter(|e| {
                    let k = (e.key().0.to_string(), e.key().1.to_string());
                    held.get(&k) != Some(e.value())
                })
                .map(|e| e.key().clone())
                .collect();
            for key in lost {
                // Owned since the renewal's query started? Then it is simply new.
                let Some(token) = cluster.owned.get(&key).map(|t| *t) else {
                    continue;
                };
                let k = (key.0.to_string(), key.1.to_string());
                if held.get(&k).is_some_and(|t| *t == token) {
                    continue;
                }
                if self.lease_still_mine(&key, token).await {
                    continue;
                }
                warn!(app = %key.0, doc = %key.1, "lease taken over by another node; this owner stops");
                if let Some(h) = self.live_handle(&key) {
                    let _ = h.send(cluster_cmd(ClusterOp::LeaseLost)).await;
                }
            }
        }
    }

    /// Webhook delivery until `stop`: on a single node, the delivery loop; in cluster
    /// mode, the loop runs on whichever node holds the `webhooks` lease (one for the
    /// whole cluster, reading every node's events from the shared outbox), and moves
    /// to another node within a lease's lifetime when that one dies.
    pub async fn run_webhooks(self: Arc<Self>, stop: CancellationToken) {
        let Some(cluster) = self.cluster() else {
            self.hooks().clone().run(stop).await;
            return;
        };
        // App ids are never empty: this cannot be a document's lease.
        let id = chorus_store::DocId::new("", "webhooks");
        let node = cluster.node().to_string();
        let ttl = cluster.lease_ttl;
        let mut tick = tokio::time::interval(ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut running: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;
        let mut held: Option<u64> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let (store, for_acquire, me) = (self.store().clone(), id.clone(), node.clone());
            let acquired = tokio::task::spawn_blocking(move || {
                store.leases().map(|l| l.acquire(&for_acquire, &me, ttl))
            })
            .await;
            match acquired {
                Ok(Some(Ok(chorus_store::Acquired::Owned { token, .. }))) => {
                    held = Some(token);
                    if running.is_none() {
                        info!("this node delivers the cluster's webhooks");
                        let loop_stop = stop.child_token();
                        let hooks = self.hooks().clone();
                        let task = tokio::spawn(hooks.run(loop_stop.clone()));
                        running = Some((loop_stop, task));
                    }
                }
                Ok(Some(Ok(chorus_store::Acquired::HeldBy { node: holder, .. }))) => {
                    held = None;
                    if let Some((loop_stop, task)) = running.take() {
                        warn!(%holder, "another node delivers the webhooks now; stopping here");
                        loop_stop.cancel();
                        let _ = task.await;
                    }
                }
                // Cannot tell (the store is unreachable): keep what runs; a holder
                // that lost the lease stops at its next successful look.
                _ => {}
            }
        }
        if let Some((loop_stop, task)) = running.take() {
            loop_stop.cancel();
            let _ = task.await;
        }
        if let Some(token) = held {
            let store = self.store().clone();
            let _ =
                tokio::task::spawn_blocking(move || store.leases().map(|l| l.release(&id, token)))
                    .await;
        }
    }

    /// Whether the lease of `key` still has `token` (a lease taken after the
    /// renewal's query ran is missing from its answer but is ours).
    async fn lease_still_mine(&self, key: &DocKey, token: u64) -> bool {
        let store = self.store().clone();
        let id = chorus_store::DocId::new(&*key.0, &*key.1);
        let holders = tokio::task::spawn_blocking(move || {
            store.leases().map(|l| l.holders(std::slice::from_ref(&id)))
        })
        .await;
        match holders {
            Ok(Some(Ok(holders))) => holders.iter().any(|h| h.token == token),
            // Cannot tell: keep serving; a fenced write will tell.
            _ => true,
        }
    }
}
