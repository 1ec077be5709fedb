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

use crate::command::{cluster_cmd, ClusterOp};
use crate::error::DocError;
use crate::nodes::{AppStateHandler, ClusterStats, HostHandler, SessionVerifier};
use crate::registry::Documents;
use crate::types::{Disconnect, DocKey, Route};
use crate::wire::Wire;
use bytes::Bytes;
use chorus_cluster::BusEvent;
use chorus_protocol::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a forwarded host API call may take before it fails.
const HOST_CALL_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// both; see [`Documents::set_host_handler`] on the other side). At most
    /// 64 at once ([`DocError::Busy`] past it).
    pub async fn forward_host(&self, node: &str, request: Vec<u8>) -> Result<Vec<u8>, DocError> {
        let Some(cluster) = self.cluster() else {
            return Err(DocError::ActorGone);
        };
        let Ok(_slot) = cluster.forward_slots.try_acquire() else {
            return Err(DocError::Busy);
        };
        // Random, so no node can answer a call before it was made or for another.
        let id: u128 = rand::random();
        let (tx, rx) = oneshot::channel();
        cluster.pending.insert(id, (Arc::from(node), tx));
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

    /// How this node, as a document's owner, verifies the token of a connection
    /// another node forwards.
    pub fn set_session_verifier(&self, verifier: SessionVerifier) {
        if let Some(cluster) = self.cluster() {
            let _ = cluster.sessions.set(verifier);
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

    /// Whether `node` is up as far as the bus can tell (`false` on a single node).
    pub fn node_alive(&self, node: &str) -> bool {
        self.cluster().is_some_and(|c| c.is_alive(node))
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
            refused: c.refused.load(Ordering::Relaxed),
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
                self.reread_app_switches().await;
            }
            BusEvent::Reconnected => {
                warn!("the bus reconnected: resyncing every shared document");
                self.tell_all(|| ClusterOp::BusLost).await;
                self.reread_app_switches().await;
            }
        }
    }

    async fn on_wire(self: &Arc<Self>, from: Arc<str>, wire: Wire) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let key = |app: String, doc: String| DocKey::new(app, doc);
        match wire {
            Wire::Join {
                app,
                doc,
                conn,
                token,
                extensions,
            } => {
                let key = key(app, doc);
                let refuse = |reason| {
                    let close = Wire::Close {
                        app: key.app.to_string(),
                        doc: key.doc.to_string(),
                        conn,
                        reason,
                    };
                    cluster.send(&from, &close);
                };
                if self.stopping.load(Ordering::Relaxed) {
                    // This node is going away: the connection must find the next owner.
                    refuse(Disconnect::Moved);
                    return;
                }
                // The token decides, here, before any actor starts: the app and
                // content ids are the token's to match, the rights its claims.
                let verified = match cluster.sessions.get() {
                    Some(verify) => verify(&key, &token, extensions),
                    None => Err(Disconnect::TokenRefused),
                };
                let session = match verified {
                    Ok(session) => session,
                    Err(reason) => {
                        cluster.refused.fetch_add(1, Ordering::Relaxed);
                        warn!(node = %from, app = %key.app, doc = %key.doc, %reason, "a forwarded connection's token was refused here");
                        refuse(reason);
                        return;
                    }
                };
                let op = ClusterOp::RemoteJoin {
                    node: from,
                    conn,
                    session,
                };
                let _ = self.dispatch(&key, cluster_cmd(op)).await;
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
                            app: key.app.to_string(),
                            doc: key.doc.to_string(),
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
                        node: from,
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
                    let op = ClusterOp::Close {
                        node: from,
                        conn,
                        reason,
                    };
                    let _ = h.send(cluster_cmd(op)).await;
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
                // The carrying node bounds its own calls; this bounds what all of
                // them together may make this node hold (an answer is 503 past it).
                let Ok(slot) = cluster.serve_slots.clone().try_acquire_owned() else {
                    warn!(node = %from, "too many carried host calls at once; one is refused");
                    // No answer the server can read: the carrying node answers 503.
                    let response = Vec::new();
                    cluster.send(&from, &Wire::HostResponse { id, response });
                    return;
                };
                let bus = cluster.bus.clone();
                tokio::spawn(async move {
                    let response = handler(request).await;
                    drop(slot);
                    bus.send(&from, Wire::HostResponse { id, response }.encode());
                });
            }
            Wire::HostResponse { id, response } => {
                match cluster
                    .pending
                    .remove_if(&id, |_, (asked, _)| *asked == from)
                {
                    Some((_, (_, reply))) => {
                        let _ = reply.send(response);
                    }
                    None => {
                        cluster.refused.fetch_add(1, Ordering::Relaxed);
                        debug!(node = %from, "an answer to a host call this node did not ask it; dropped");
                    }
                }
            }
        }
    }

    /// An app switch announced while messages were lost is in the store: read the
    /// switches again and follow them.
    async fn reread_app_switches(&self) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let store = self.store().clone();
        let switches = match tokio::task::spawn_blocking(move || store.app_switches()).await {
            Ok(Ok(switches)) => switches,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot read the app switches again");
                return;
            }
            Err(_) => return,
        };
        for (app, enabled) in switches {
            if let Some(handler) = cluster.app_state.get() {
                handler(&app, enabled);
            }
            if !enabled {
                self.close_app(&app).await;
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
                    let k = (e.key().app.to_string(), e.key().doc.to_string());
                    held.get(&k) != Some(e.value())
                })
                .map(|e| e.key().clone())
                .collect();
            for key in lost {
                // Owned since the renewal's query started? Then it is simply new.
                let Some(token) = cluster.owned.get(&key).map(|t| *t) else {
                    continue;
                };
                let k = (key.app.to_string(), key.doc.to_string());
                if held.get(&k).is_some_and(|t| *t == token) {
                    continue;
                }
                if self.lease_still_mine(&key, token).await {
                    continue;
                }
                warn!(app = %key.app, doc = %key.doc, "lease taken over by another node; this owner stops");
                if let Some(h) = self.live_handle(&key) {
                    let _ = h.send(cluster_cmd(ClusterOp::LeaseLost)).await;
                }
            }
        }
    }

    /// Whether the lease of `key` still has `token` (a lease taken after the
    /// renewal's query ran is missing from its answer but is ours).
    async fn lease_still_mine(&self, key: &DocKey, token: u64) -> bool {
        let store = self.store().clone();
        let id = chorus_store::DocId::new(&*key.app, &*key.doc);
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
