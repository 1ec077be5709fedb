//! Every live document of the process: [`Documents`] maps (app, content) to the
//! address of its actor, starts an actor exactly once however many callers arrive
//! together (`DashMap::entry`), keeps at most `max_loaded` documents in memory (the
//! sweeper unloads the least recently active idle ones) and stops them all at
//! shutdown, each after writing what it holds.
//!
//! Lock choice: the map is a `DashMap` (sharded locks) because every connection
//! looks its document up once and the sweeper iterates it; no guard is ever held
//! across an `.await` (handles are cloned out first).

use crate::actor::run_actor;
use crate::command::DocCommand;
use crate::env::{now_ms, Activity, DocEnv, DocSetup, Exit, DOC_INBOX};
use crate::error::DocError;
use crate::inbox::{inbox, InboxReceiver, InboxSender, TrySendError};
use crate::nodes::{Cluster, ClusterSetup};
use crate::release::{release_free_memory, TrimPolicy};
use crate::types::DocKey;
use chorus_core::Whitelist;
use chorus_hooks::Hooks;
use chorus_store::Store;
use dashmap::DashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// How often the sweeper checks the number of loaded documents.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// The shortest time between two sweeps woken by loads past the bound.
const SWEEP_GAP: Duration = Duration::from_millis(20);

/// A cloneable address of a document actor.
#[derive(Clone)]
pub struct DocHandle {
    tx: InboxSender<DocCommand>,
    activity: Arc<Activity>,
}

impl DocHandle {
    /// Whether both handles lead to the same actor.
    pub fn is_same_actor(&self, other: &DocHandle) -> bool {
        self.tx.same_inbox(&other.tx)
    }

    /// Queue a command if the actor's inbox has room, without waiting; the command
    /// comes back when the inbox is full or the actor is gone (`send` then waits,
    /// or says which).
    #[allow(clippy::result_large_err)] // the command itself comes back, as from `send`
    pub fn try_send(&self, cmd: DocCommand) -> Result<(), DocCommand> {
        self.tx.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(cmd) | TrySendError::Closed(cmd) => cmd,
        })
    }

    /// Queue a command, waiting while the actor's inbox is full. `Err` if the actor is gone.
    pub async fn send(&self, cmd: DocCommand) -> Result<(), DocCommand> {
        // The inbox almost always has room: no waiting future is built then, and
        // the rare one that waits lives on the heap instead of inflating every
        // connection task (this future is part of each one's state).
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd)) => Box::pin(self.tx.send(cmd)).await,
            Err(TrySendError::Closed(cmd)) => Err(cmd),
        }
    }
}

/// Every live document of the process.
pub struct Documents {
    live: DashMap<DocKey, DocHandle>,
    /// What every actor is given.
    pub(crate) env: Arc<DocEnv>,
    actors: TaskTracker,
    /// Woken when a load takes the process past `max_loaded`, so the sweeper does
    /// not wait out its period while documents keep arriving.
    over_bound: Notify,
    /// Shutdown began: other nodes' connections are turned away.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

impl Documents {
    /// An empty set of documents over `setup.store`. Starts the group-commit
    /// writer thread (with `group_commit` off every job is flushed on its own, for
    /// benchmarks that show what group commit buys); webhook events become
    /// deliverable through `setup.hooks` after the flush that made them durable.
    pub fn new(setup: DocSetup) -> Arc<Self> {
        Arc::new(Documents {
            live: DashMap::new(),
            env: Arc::new(DocEnv::new(setup)),
            actors: TaskTracker::new(),
            over_bound: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The whitelist documents of `app` enforce.
    pub fn whitelist_for(&self, app: &str) -> &Whitelist {
        self.env.whitelist_for(app)
    }

    /// The actor of `key` if the document is loaded (without loading it).
    pub fn live_handle(&self, key: &DocKey) -> Option<DocHandle> {
        self.live.get(key).map(|h| h.clone())
    }

    /// The actors of every live document.
    pub(crate) fn live_handles(&self) -> Vec<DocHandle> {
        self.live.iter().map(|e| e.value().clone()).collect()
    }

    /// The cluster state, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.env.cluster()
    }

    /// Cluster mode: serve documents as one node of a cluster (call once, before
    /// serving; see the `cluster` module).
    pub fn join_cluster(&self, setup: ClusterSetup) {
        let _ = self.env.cluster.set(Cluster::new(setup));
    }

    /// Close every session of `app`'s live documents (the app was disabled).
    pub async fn close_app(&self, app: &str) {
        let handles: Vec<DocHandle> = self
            .live
            .iter()
            .filter(|e| &*e.key().app == app)
            .map(|e| e.value().clone())
            .collect();
        for h in handles {
            let _ = h.send(DocCommand::CloseAll).await;
        }
    }

    /// Number of documents in memory.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no document is in memory.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The draft of `key` a host read with `etag`, if it is still kept (see
    /// `external_base_ttl_secs`).
    pub fn base(&self, key: &DocKey, etag: &str) -> Option<Arc<Vec<u8>>> {
        self.env.bases.get(key, etag, self.env.policy.base_ttl)
    }

    /// The store, for reads that need no live document (listings, history); call
    /// it from a blocking thread.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.env.store()
    }

    /// Why the last group commit failed, `None` while writes succeed (readiness
    /// reports it).
    pub fn store_failing(&self) -> Option<chorus_store::StoreCondition> {
        self.env.writer.failing()
    }

    /// The webhook delivery this layer feeds.
    pub fn hooks(&self) -> &Hooks {
        &self.env.hooks
    }

    /// The actor of `key`, started if it is not running. `entry()` makes creation
    /// happen once even when many connections arrive together.
    pub fn get_or_start(self: &Arc<Self>, key: &DocKey) -> DocHandle {
        if let Some(h) = self.live.get(key) {
            return h.clone();
        }
        let handle = self
            .live
            .entry(key.clone())
            .or_insert_with(|| {
                let (tx, rx) = inbox(DOC_INBOX);
                let activity = Arc::new(Activity::default());
                activity.last_active_ms.store(now_ms(), Ordering::Relaxed);
                self.env.metrics.document_loaded();
                let exit = Arc::new(Leave {
                    docs: self.clone(),
                    key: key.clone(),
                });
                self.actors.spawn(run_actor(
                    self.env.clone(),
                    key.clone(),
                    rx,
                    tx.clone(),
                    activity.clone(),
                    exit,
                ));
                DocHandle { tx, activity }
            })
            .clone();
        if self.live.len() > self.env.policy.max_loaded {
            self.over_bound.notify_one();
        }
        handle
    }

    /// Send `cmd` to the actor of `key`, starting one if needed; retried once if
    /// the actor stopped in between (it was unloading). Returns the actor that took it.
    pub async fn dispatch(
        self: &Arc<Self>,
        key: &DocKey,
        cmd: DocCommand,
    ) -> Result<DocHandle, DocCommand> {
        let handle = self.get_or_start(key);
        match handle.send(cmd).await {
            Ok(()) => Ok(handle),
            Err(cmd) => {
                let handle = self.get_or_start(key);
                handle.send(cmd).await.map(|()| handle)
            }
        }
    }

    /// Send the command `make` builds around a reply channel to the actor of `key`
    /// (started if needed) and wait for the answer; [`DocError::ActorGone`] if the
    /// actor stopped before answering.
    pub async fn ask<T>(
        self: &Arc<Self>,
        key: &DocKey,
        make: impl FnOnce(oneshot::Sender<T>) -> DocCommand,
    ) -> Result<T, DocError> {
        let (reply, answer) = oneshot::channel();
        self.dispatch(key, make(reply))
            .await
            .map_err(|_| DocError::ActorGone)?;
        answer.await.map_err(|_| DocError::ActorGone)
    }

    /// An actor that stops leaves the registry and hands what its inbox still holds
    /// for a successor (joins, what waits for an answer, and everything after them
    /// from a connection whose join it hands over) to the document's next actor,
    /// started for it, in the same step as its inbox closes: a connection that
    /// finds the old inbox closed finds its join already in the new one.
    pub(crate) fn hand_over(
        self: &Arc<Self>,
        key: &DocKey,
        own_tx: &InboxSender<DocCommand>,
        rx: &mut InboxReceiver<DocCommand>,
    ) {
        self.forget(key, own_tx);
        if self.stopping.load(Ordering::Relaxed) {
            // Shutting down: no successor; every connection is closing anyway.
            rx.close();
            return;
        }
        let mut handed = std::collections::HashSet::new();
        rx.close_into(
            || self.get_or_start(key).tx,
            |cmd| {
                if cmd.outlives_its_actor() {
                    handed.extend(cmd.connection());
                    true
                } else {
                    cmd.connection().is_some_and(|c| handed.contains(&c))
                }
            },
        );
    }

    pub(crate) fn forget(&self, key: &DocKey, tx: &InboxSender<DocCommand>) {
        if self
            .live
            .remove_if(key, |_, h| h.tx.same_inbox(tx))
            .is_some()
        {
            self.env.metrics.document_unloaded();
        }
    }

    /// Keep at most `max_loaded` documents: ask the least recently active idle ones
    /// to unload; hand freed memory back once many have unloaded (see
    /// `release.rs`). Runs until `stop` is cancelled.
    pub async fn sweep(self: Arc<Self>, stop: CancellationToken) {
        let mut trim = TrimPolicy::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = self.over_bound.notified() => {
                    // At most one sweep per SWEEP_GAP however fast documents load: a
                    // sweep reads the activity of every loaded document.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(SWEEP_GAP) => {}
                    }
                }
            }
            if trim.observe(self.live.len()) {
                // The map keeps the table it grew to at the peak (~80 bytes a slot).
                self.live.shrink_to_fit();
                tokio::task::spawn_blocking(release_free_memory);
            }
            let excess = self.live.len().saturating_sub(self.env.policy.max_loaded);
            if excess == 0 {
                continue;
            }
            let mut idle: Vec<(u64, DocHandle)> = self
                .live
                .iter()
                .filter(|e| e.activity.members.load(Ordering::Relaxed) == 0)
                .map(|e| {
                    (
                        e.activity.last_active_ms.load(Ordering::Relaxed),
                        e.value().clone(),
                    )
                })
                .collect();
            idle.sort_by_key(|(t, _)| *t);
            for (_, handle) in idle.into_iter().take(excess) {
                let _ = handle.tx.try_send(DocCommand::Unload);
            }
        }
    }

    /// Stop every actor after persisting its document; waits at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        let handles: Vec<DocHandle> = self.live.iter().map(|e| e.value().clone()).collect();
        for h in handles {
            let _ = h.tx.send(DocCommand::Shutdown).await;
        }
        self.actors.close();
        if tokio::time::timeout(grace, self.actors.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.actors.len(),
                "document actors still running after the grace period"
            );
        }
    }
}

/// How an actor of this registry leaves it (the actor sees only [`Exit`]).
struct Leave {
    docs: Arc<Documents>,
    key: DocKey,
}

impl Exit for Leave {
    fn forget(&self, own: &InboxSender<DocCommand>) {
        self.docs.forget(&self.key, own);
    }

    fn hand_over(&self, own: &InboxSender<DocCommand>, rx: &mut InboxReceiver<DocCommand>) {
        self.docs.hand_over(&self.key, own, rx);
    }
}
