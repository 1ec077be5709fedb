//! The forwarding side of cluster mode: a document another node owns.
//!
//! The proxy holds no document. It relays what its connections send to the owner,
//! hands each frame the owner delivers to the connections it names, and closes a
//! connection when the owner says so. When what it shares with the owner may have
//! been lost — the owner is down or restarted, its messages have a hole, this
//! node's bus reconnected — it closes every connection with [`Disconnect::Moved`]
//! and stops: the clients reconnect (to any node), the next actor finds the current
//! owner, and the sync handshake (state vectors) brings everyone level. Nothing it
//! relayed was acknowledged unless the owner committed it.

use crate::command::DocCommand;
use crate::command::{ClusterCommand, ClusterOp};
use crate::env::{Activity, DocEnv, Exit};
use crate::error::{DocError, HostError};
use crate::inbox::{InboxReceiver, InboxSender};
use crate::peer::{QueuePeer, Sweep};
use crate::types::Disconnect;
use crate::types::DocKey;
use crate::types::Route;
use crate::wire::Wire;
use chorus_core::{ConnId, Peer};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Commands handled per wake-up.
const BATCH: usize = 256;

struct Proxy {
    env: Arc<DocEnv>,
    exit: Arc<dyn Exit>,
    key: DocKey,
    owner: Arc<str>,
    members: HashMap<ConnId, QueuePeer>,
    /// The members with frames staged in this turn: what the owner delivered
    /// while the proxy handled a batch leaves in one write per member, as from
    /// the owner's own actor.
    sweep: Arc<Sweep>,
    activity: Arc<Activity>,
    idle_since: Option<Instant>,
}

/// Why the proxy stops.
enum End {
    /// Idle, unloaded, or the process stops: close connections with this reason.
    Close(Disconnect),
}

/// Serve document `key` as a proxy of `owner` until it ends.
pub(crate) async fn serve(
    env: Arc<DocEnv>,
    key: DocKey,
    owner: Arc<str>,
    mut rx: InboxReceiver<DocCommand>,
    own_tx: InboxSender<DocCommand>,
    activity: Arc<Activity>,
    exit: Arc<dyn Exit>,
) {
    if let Some(cluster) = env.cluster() {
        cluster.forwarded.insert(key.clone(), owner.clone());
    }
    debug!(app = %key.app, doc = %key.doc, %owner, "forwarding to the owner");
    let mut proxy = Proxy {
        env,
        exit,
        key,
        owner,
        members: HashMap::new(),
        sweep: Arc::default(),
        activity,
        idle_since: Some(Instant::now()),
    };
    let end = loop {
        let idle = proxy.idle_since.map(|t| t + proxy.env.policy.idle_unload);
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { break End::Close(Disconnect::Stopped) };
                let mut end = proxy.handle(first);
                for _ in 1..BATCH {
                    if end.is_some() {
                        break;
                    }
                    let Some(cmd) = rx.try_recv() else { break };
                    end = proxy.handle(cmd);
                }
                if let Some(end) = end {
                    break end;
                }
                if proxy.sweep.is_due() {
                    Box::pin(super::sweep(&proxy.sweep, &proxy.env)).await;
                }
            }
            _ = super::sleep_until_opt(idle) => break End::Close(Disconnect::Stopped),
        }
    };
    proxy.finish(end, rx, own_tx);
}

impl Proxy {
    fn send(&self, wire: &Wire) {
        if let Some(cluster) = self.env.cluster() {
            cluster.send(&self.owner, wire);
        }
    }

    fn handle(&mut self, cmd: DocCommand) -> Option<End> {
        let (app, doc) = (self.key.app.to_string(), self.key.doc.to_string());
        match cmd {
            DocCommand::Join {
                conn,
                session,
                mut peer,
            } => {
                peer.swept_by(&self.sweep);
                // The owner verifies the token again: a session without one cannot
                // be forwarded (every connection the server opens keeps it).
                let Some(token) = session.credential.token() else {
                    peer.control.close(Disconnect::TokenRefused);
                    return None;
                };
                self.send(&Wire::Join {
                    app,
                    doc,
                    conn: conn.0,
                    token: token.to_owned(),
                    extensions: session.extensions,
                });
                self.members.insert(conn, peer);
                self.touched();
            }
            DocCommand::Message { conn, msg, .. } => {
                if self.members.contains_key(&conn) {
                    self.send(&Wire::Frame {
                        app,
                        doc,
                        conn: conn.0,
                        frame: msg.encode().to_vec(),
                    });
                }
            }
            DocCommand::Leave { conn } => {
                if self.members.remove(&conn).is_some() {
                    self.send(&Wire::Leave {
                        app,
                        doc,
                        conn: conn.0,
                    });
                }
                self.touched();
            }
            // Host calls are carried to the owner before they reach a document; one
            // that gets here raced a change of owner, and is told to try again.
            DocCommand::Read { reply, .. } => {
                let _ = reply.send(Err(self.elsewhere()));
            }
            DocCommand::Base { reply, .. } => {
                let _ = reply.send(Err(self.elsewhere()));
            }
            DocCommand::External { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(self.elsewhere())));
            }
            DocCommand::Render { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(self.elsewhere())));
            }
            DocCommand::Publish { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(self.elsewhere())));
            }
            DocCommand::Delete { reply } => {
                let _ = reply.send(Err(HostError::Unavailable(self.elsewhere())));
            }
            // The owner's own sweep evicts it.
            DocCommand::Evict { reply, .. } => {
                let _ = reply.send(Ok(false));
            }
            DocCommand::Sessions { reply } => {
                let _ = reply.send(Vec::new());
            }
            DocCommand::Downgrade { reply, .. } | DocCommand::EndSession { reply, .. } => {
                let _ = reply.send(false);
            }
            DocCommand::CloseAll => {
                for (conn, peer) in std::mem::take(&mut self.members) {
                    peer.control.close(Disconnect::AppDisabled);
                    self.send(&Wire::Leave {
                        app: app.clone(),
                        doc: doc.clone(),
                        conn: conn.0,
                    });
                }
                self.touched();
            }
            DocCommand::Unload => {
                if self.members.is_empty() {
                    return Some(End::Close(Disconnect::Stopped));
                }
            }
            DocCommand::Shutdown => return Some(End::Close(Disconnect::Stopped)),
            DocCommand::Cluster(ClusterCommand(op)) => return self.cluster(op),
        }
        None
    }

    fn cluster(&mut self, op: ClusterOp) -> Option<End> {
        match op {
            // Only the owner speaks for the document; another node's word is refused.
            ClusterOp::Deliver { node, .. } | ClusterOp::Close { node, .. }
                if node != self.owner =>
            {
                self.refused_from(&node);
            }
            ClusterOp::Deliver { frame, to, .. } => {
                for conn in to {
                    if let Some(peer) = self.members.get(&ConnId(conn)) {
                        peer.send(frame.clone());
                    }
                }
            }
            ClusterOp::Close { conn, reason, .. } => {
                if let Some(peer) = self.members.remove(&ConnId(conn)) {
                    peer.control.close(reason);
                }
                self.touched();
            }
            ClusterOp::NodeLost { node } if node == self.owner => {
                return Some(End::Close(Disconnect::Moved));
            }
            ClusterOp::BusLost => return Some(End::Close(Disconnect::Moved)),
            ClusterOp::Route { reply } => {
                let _ = reply.send(Route::Remote(self.owner.clone()));
            }
            // Another node took this one for the owner: it must find the real one.
            ClusterOp::RemoteJoin { node, conn, .. }
            | ClusterOp::RemoteMessage { node, conn, .. } => {
                if let Some(cluster) = self.env.cluster() {
                    cluster.send(
                        &node,
                        &Wire::Close {
                            app: self.key.app.to_string(),
                            doc: self.key.doc.to_string(),
                            conn,
                            reason: Disconnect::Moved,
                        },
                    );
                }
            }
            ClusterOp::NodeLost { .. } | ClusterOp::RemoteLeave { .. } | ClusterOp::LeaseLost => {}
        }
        None
    }

    /// `node` sent what only the owner may: counted, logged, dropped.
    fn refused_from(&self, node: &str) {
        if let Some(cluster) = self.env.cluster() {
            cluster.refused.fetch_add(1, Ordering::Relaxed);
        }
        warn!(app = %self.key.app, doc = %self.key.doc, %node, owner = %self.owner, "a message only the document's owner may send came from another node; dropped");
    }

    fn elsewhere(&self) -> DocError {
        DocError::Elsewhere(self.owner.clone())
    }

    fn touched(&mut self) {
        self.idle_since = self.activity.record(self.members.len());
    }

    /// Leave the map, close every connection, and hand any command that raced in to
    /// a fresh actor (which finds the owner anew).
    fn finish(
        mut self,
        end: End,
        mut rx: InboxReceiver<DocCommand>,
        own_tx: InboxSender<DocCommand>,
    ) {
        let End::Close(reason) = end;
        if let Some(cluster) = self.env.cluster() {
            cluster.forwarded.remove(&self.key);
            if reason == Disconnect::Moved {
                cluster
                    .resyncs
                    .fetch_add(self.members.len() as u64, Ordering::Relaxed);
            }
        }
        self.exit.hand_over(&own_tx, &mut rx);
        // The owner (if it is still there) forgets them too.
        for (conn, peer) in std::mem::take(&mut self.members) {
            peer.control.close(reason.clone());
            self.send(&Wire::Leave {
                app: self.key.app.to_string(),
                doc: self.key.doc.to_string(),
                conn: conn.0,
            });
        }
    }
}
