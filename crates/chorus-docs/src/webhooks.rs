//! Webhook delivery for the whole process: on a single node the delivery loop of
//! `chorus-hooks`; in cluster mode that loop runs on whichever node holds the
//! `webhooks` lease (one for the whole cluster, reading every node's events from
//! the shared outbox table), and moves to another node within a lease's lifetime
//! when that one dies.

use crate::registry::Documents;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

impl Documents {
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
}
