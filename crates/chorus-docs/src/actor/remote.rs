//! The owner's side of cluster mode: connections of other nodes as members.
//!
//! A forwarding node's connection joins as a member like any other, with its own
//! [`ConnId`] here, a [`QueuePeer`] whose frames go through the document's link to
//! that node, and a [`ConnControl`] that, when this actor closes the member, tells
//! the node to close its connection with the same reason. When what this node
//! shares with another may have been lost (a hole in its messages, its restart,
//! silence, this node's bus reconnecting), its members are dropped and their
//! connections closed with [`Disconnect::Moved`]: they reconnect and resync.

use super::DocActor;
use crate::command::ClusterOp;
use crate::command::DocCommand;
use crate::link;
use crate::peer::{ConnControl, QueuePeer};
use crate::types::Disconnect;
use crate::types::Route;
use crate::wire::Wire;
use chorus_core::ConnId;
use std::sync::Arc;
use tracing::debug;

impl DocActor {
    /// A cluster command for the owner of the document.
    pub(super) fn cluster_command(&mut self, op: ClusterOp) {
        match op {
            ClusterOp::RemoteJoin {
                node,
                conn,
                session,
            } => self.remote_join(node, conn, session),
            ClusterOp::RemoteMessage { node, conn, msg } => {
                match self.remote.by_remote.get(&(node.clone(), conn)) {
                    Some(&local) => {
                        let received = std::time::Instant::now();
                        self.handle(DocCommand::Message {
                            conn: local,
                            msg,
                            received,
                        });
                    }
                    // Not (or no longer) a member here: the node must resync it.
                    None => self.tell_close(&node, conn, Disconnect::Moved),
                }
            }
            ClusterOp::RemoteLeave { node, conn } => {
                if let Some(local) = self.remote.by_remote.get(&(node, conn)).copied() {
                    self.handle(DocCommand::Leave { conn: local });
                }
            }
            ClusterOp::NodeLost { node } => self.drop_remote(|n| **n == *node),
            ClusterOp::BusLost => self.drop_remote(|_| true),
            ClusterOp::LeaseLost => self.lease_lost(),
            ClusterOp::Route { reply } => {
                let _ = reply.send(Route::Local);
            }
            // Meant for a proxy; an owner has nothing to deliver or close for others.
            ClusterOp::Deliver { .. } | ClusterOp::Close { .. } => {}
        }
    }

    fn remote_join(&mut self, node: Arc<str>, conn: u64, session: chorus_core::Session) {
        if let Some(old) = self.remote.by_remote.get(&(node.clone(), conn)).copied() {
            // A repeated join: the node restarted its numbering; drop the old one.
            self.handle(DocCommand::Leave { conn: old });
        }
        let env = self.env.clone();
        let Some(cluster) = env.cluster() else {
            return;
        };
        let local = ConnId::fresh();
        let link = self
            .remote
            .links
            .entry(node.clone())
            .or_insert_with(|| {
                link::start(
                    cluster.bus.clone(),
                    node.clone(),
                    self.key.app.clone(),
                    self.key.doc.clone(),
                )
            })
            .clone();
        let control = Arc::new(ConnControl::default());
        let (bus, to, app, doc) = (
            cluster.bus.clone(),
            node.clone(),
            self.key.app.to_string(),
            self.key.doc.to_string(),
        );
        control.on_close(Box::new(move |reason| {
            let close = Wire::Close {
                app: app.clone(),
                doc: doc.clone(),
                conn,
                reason: reason.clone(),
            };
            bus.send(&to, close.encode());
        }));
        self.remote.by_remote.insert((node.clone(), conn), local);
        self.remote.of_local.insert(local, (node, conn));
        self.handle(DocCommand::Join {
            conn: local,
            session: Arc::new(session),
            peer: QueuePeer::remote(link, conn, control),
        });
    }

    /// The lease moved to another node (renewal showed it, or a write was fenced):
    /// close every connection so it reconnects to the new owner, and stop without
    /// writing.
    pub(super) fn lease_lost(&mut self) {
        if self.lease_lost {
            return;
        }
        tracing::warn!(app = %self.key.app, doc = %self.key.doc, "lease lost: closing connections, stopping without writing");
        self.lease_lost = true;
        if let Some(cluster) = self.env.cluster() {
            cluster
                .leases_lost
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.close_all(Disconnect::Moved);
    }

    /// Drop the members of the nodes `which` picks, closing their connections there
    /// with [`Disconnect::Moved`] so they reconnect and resync.
    fn drop_remote(&mut self, which: impl Fn(&Arc<str>) -> bool) {
        let gone: Vec<ConnId> = self
            .remote
            .of_local
            .iter()
            .filter(|(_, (node, _))| which(node))
            .map(|(local, _)| *local)
            .collect();
        if gone.is_empty() {
            return;
        }
        debug!(app = %self.key.app, doc = %self.key.doc, members = gone.len(), "dropping members of other nodes to resync them");
        if let Some(cluster) = self.env.cluster() {
            cluster
                .resyncs
                .fetch_add(gone.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        for local in gone {
            if let Some(control) = self.members.controls.remove(&local) {
                control.close(Disconnect::Moved);
            }
            self.member_left(local);
        }
    }

    /// Tell `node` to close its connection `conn`.
    fn tell_close(&self, node: &str, conn: u64, reason: Disconnect) {
        if let Some(cluster) = self.env.cluster() {
            cluster.send(
                node,
                &Wire::Close {
                    app: self.key.app.to_string(),
                    doc: self.key.doc.to_string(),
                    conn,
                    reason,
                },
            );
        }
    }
}
