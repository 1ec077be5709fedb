//! The load phase of a document's task: read snapshot + log from the store and
//! build the room off the runtime's threads, answering the usual cold-load joiner
//! from the stored bytes meanwhile; on failure, refuse whoever waited.

use super::state::{EditingSession, ExclusiveHold, Members, Writes};
use super::DocActor;
use crate::command::DocCommand;
use crate::env::{Activity, DocEnv, Exit, DOC_INBOX};
use crate::error::{DocError, HostError};
use crate::inbox::{InboxReceiver, InboxSender};
use crate::peer::QueuePeer;
use crate::plan::WritePlan;
use crate::types::Disconnect;
use crate::types::DocKey;
use bytes::Bytes;
use chorus_core::{ConnId, Peer, Room};
use chorus_protocol::{Message, SyncMessage};
use chorus_store::{Acquired, DocId, DocMeta};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{error, info};

/// A document's task: load it, then serve it until it unloads.
///
/// Every loaded document keeps this task alive, so its size is memory per
/// document. Each phase is a boxed future and only the serving one is alive while
/// the document is served: awaited inline, the loading phase's locals (the actor
/// being built among them, 1.1 KB) stayed part of the task for its whole life.
pub(crate) async fn run_actor(
    env: Arc<DocEnv>,
    key: DocKey,
    rx: InboxReceiver<DocCommand>,
    own_tx: InboxSender<DocCommand>,
    activity: Arc<Activity>,
    exit: Arc<dyn Exit>,
) {
    let serve = Box::pin(load_actor(env, key, rx, own_tx, activity, exit)).await;
    if let Some(serve) = serve {
        serve.await;
    }
}

/// The serving phase of a document's task.
type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Load the document (see [`build_serving_early`]) and return the future that
/// serves it, or `None` once whoever waited was told it could not be loaded.
async fn load_actor(
    env: Arc<DocEnv>,
    key: DocKey,
    mut rx: InboxReceiver<DocCommand>,
    own_tx: InboxSender<DocCommand>,
    activity: Arc<Activity>,
    exit: Arc<dyn Exit>,
) -> Option<Serving> {
    let started = std::time::Instant::now();
    let id = DocId::new(&*key.app, &*key.doc);
    // Cluster mode: own the document (take its lease) or forward to its owner.
    let mut lease = None;
    if env.cluster().is_some() {
        match Box::pin(resolve_owner(&env, &key, &id)).await {
            Ok(Owner::Here { token }) => lease = Some(token),
            Ok(Owner::Node(owner)) => {
                return Some(Box::pin(super::proxy::serve(
                    env, key, owner, rx, own_tx, activity, exit,
                )));
            }
            Err(why) => {
                Box::pin(refuse_all(&*exit, &key, &own_tx, &mut rx, Vec::new(), why)).await;
                return None;
            }
        }
    }
    let store = env.store().clone();
    let load_id = id.clone();
    let loaded = tokio::task::spawn_blocking(move || store.load(&load_id)).await;
    let loaded = match loaded {
        Ok(read) => read.map_err(DocError::from),
        Err(_) => Err(DocError::LoadPanicked),
    };
    let stored = match loaded {
        Ok(stored) => stored,
        Err(why) => {
            Box::pin(refuse_all(&*exit, &key, &own_tx, &mut rx, Vec::new(), why)).await;
            return None;
        }
    };
    let exists = stored.is_some();
    // Commands that came while the room was built, to handle in order first.
    let mut queued = Vec::new();
    let (mut room, meta, snapshot_bytes, log_records, log_bytes, next_seq) = match stored {
        None => (
            Room::new(env.limits_for(&key.app)),
            DocMeta::default(),
            0,
            0,
            0,
            1,
        ),
        Some(s) => {
            let s = Arc::new(s);
            let limits = env.limits_for(&key.app);
            let serve_early =
                s.meta.content_policy == chorus_core::content_fingerprint(&limits.whitelist);
            let for_build = s.clone();
            // Integrating a long history takes a while: off the runtime's threads.
            let build = tokio::task::spawn_blocking(move || {
                Room::from_stored(
                    limits,
                    for_build.snapshot.as_deref(),
                    for_build.updates.iter().map(|(_, u)| u.as_slice()),
                )
            });
            let built = Box::pin(build_serving_early(
                build,
                &s,
                serve_early,
                &mut rx,
                &mut queued,
            ))
            .await;
            let room = match built {
                Ok(room) => room,
                Err(e) => {
                    Box::pin(refuse_all(&*exit, &key, &own_tx, &mut rx, queued, e)).await;
                    return None;
                }
            };
            let last_seq = s
                .updates
                .last()
                .map(|(seq, _)| *seq)
                .unwrap_or(s.snapshot_seq);
            let log_bytes: u64 = s.updates.iter().map(|(_, u)| u.len() as u64).sum();
            (
                room,
                s.meta.clone(),
                s.snapshot.as_ref().map_or(0, |b| b.len() as u64),
                s.updates.len() as u64,
                log_bytes,
                last_seq + 1,
            )
        }
    };
    env.metrics.document_load_time(started.elapsed());
    // Presence is relayed once per turn, merged (`Room::flush_presence` in the
    // serve loop).
    room.coalesce_presence(true);
    let mut actor = DocActor {
        env,
        exit,
        key,
        id,
        room,
        activity,
        idle_since: Some(Instant::now()),
        writes: Writes {
            plan: WritePlan::loaded(snapshot_bytes, log_records, log_bytes),
            exists,
            meta,
            next_seq,
            unsaved: Vec::new(),
            acks: Vec::new(),
            contributors: Vec::new(),
            inflight: None,
            retry_at: None,
            history_pending: Vec::new(),
            host_replies: Vec::new(),
            events: Vec::new(),
            changed_since_point: false,
            meta_changed: false,
        },
        session: EditingSession::default(),
        hold: ExclusiveHold::default(),
        sweep: Default::default(),
        members: Members::default(),
        lease,
        lease_lost: false,
        ending: None,
        session_check_at: None,
        remote: Default::default(),
    };
    actor.enforce_quota();
    Some(Box::pin(actor.run(queued, rx, own_tx)))
}

/// Who serves a document in cluster mode.
enum Owner {
    /// This node: it holds the lease with this token.
    Here { token: u64 },
    /// Another node, which is up.
    Node(Arc<str>),
}

/// How often a document whose owner is down asks for its lease again.
const TAKEOVER_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Take the lease of `id`, or find the live node holding it. A lease held by a node
/// that is down is waited out (polling), then taken: that bounds failover.
async fn resolve_owner(env: &Arc<DocEnv>, key: &DocKey, id: &DocId) -> Result<Owner, DocError> {
    let Some(cluster) = env.cluster() else {
        return Err(DocError::ActorGone);
    };
    let node = cluster.node().clone();
    let ttl = cluster.lease_ttl;
    let deadline = Instant::now() + ttl * 2 + std::time::Duration::from_secs(1);
    loop {
        let store = env.store().clone();
        let (for_acquire, me) = (id.clone(), node.clone());
        let acquired = tokio::task::spawn_blocking(move || match store.leases() {
            Some(leases) => {
                let got = leases.acquire(&for_acquire, &me, ttl)?;
                if let Acquired::Owned { token, .. } = &got {
                    leases.fence(&for_acquire, *token);
                }
                Ok(got)
            }
            None => Err(chorus_store::StoreError::Internal(
                "cluster mode needs a store with leases (PostgreSQL)".into(),
            )),
        })
        .await
        .map_err(|_| DocError::LoadPanicked)?;
        match acquired.map_err(DocError::from)? {
            Acquired::Owned { token, previous } => {
                if previous.as_deref().is_some_and(|p| p != &*node) {
                    cluster.takeovers.fetch_add(1, Ordering::Relaxed);
                    info!(app = %key.app, doc = %key.doc, from = previous.as_deref().unwrap_or_default(), "took the lease over");
                }
                cluster.owned.insert(key.clone(), token);
                return Ok(Owner::Here { token });
            }
            Acquired::HeldBy { node: holder, .. } if cluster.is_alive(&holder) => {
                return Ok(Owner::Node(holder.into()));
            }
            Acquired::HeldBy { .. } if Instant::now() >= deadline => {
                return Err(DocError::OwnerDown);
            }
            Acquired::HeldBy { .. } => tokio::time::sleep(TAKEOVER_POLL).await,
        }
    }
}

/// Waits for the room being built from `stored`, queueing what arrives meanwhile.
///
/// A joiner whose step 1 says it has nothing (a new editor opening the draft, the
/// usual cold load) is answered from the stored bytes at once when `serve_early`
/// (they were stored under the whitelist in force, so no check stands between
/// them and the client), instead of after the integration, which takes hundreds
/// of milliseconds for a long history. That step 1 stays queued, rewritten to the
/// built room's state vector, so once the room is built the joiner is sent only
/// what changed since those bytes: nothing, or what queued commands before it
/// changed.
async fn build_serving_early(
    mut build: tokio::task::JoinHandle<Result<Room<QueuePeer>, chorus_core::LoadError>>,
    stored: &chorus_store::StoredDoc,
    serve_early: bool,
    rx: &mut InboxReceiver<DocCommand>,
    queued: &mut Vec<DocCommand>,
) -> Result<Room<QueuePeer>, DocError> {
    let mut answer: Option<Bytes> = None;
    // Connections served early, with the index of the step 1 that was answered.
    let mut served: Vec<(ConnId, usize)> = Vec::new();
    let built = loop {
        tokio::select! {
            biased;
            built = &mut build => break built,
            // Past this many, senders wait for the load, as they would on a full
            // inbox: the queue is not a way around its bound.
            Some(cmd) = rx.recv(), if queued.len() < DOC_INBOX => {
                if serve_early {
                    if let Some(conn) = early_step1(&cmd, &served) {
                        let answer = answer.get_or_insert_with(|| {
                            let updates: Vec<&[u8]> =
                                stored.updates.iter().map(|(_, u)| u.as_slice()).collect();
                            chorus_core::sync_from_stored(stored.snapshot.as_deref(), &updates)
                                .unwrap_or_default()
                        });
                        let peer = queued.iter().find_map(|c| match c {
                            DocCommand::Join { conn: joined, peer, .. } if *joined == conn => Some(peer),
                            _ => None,
                        });
                        if let Some(peer) = peer.filter(|_| !answer.is_empty()) {
                            peer.send(answer.clone());
                            served.push((conn, queued.len()));
                        }
                    }
                }
                queued.push(cmd);
            }
        }
    };
    let room = match built {
        Ok(Ok(room)) => room,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(DocError::LoadPanicked),
    };
    if !served.is_empty() {
        let sv = Bytes::from(room.state_vector());
        for (_, i) in served {
            if let DocCommand::Message {
                msg: Message::Sync(SyncMessage::Step1(client_sv)),
                ..
            } = &mut queued[i]
            {
                *client_sv = sv.clone();
            }
        }
    }
    Ok(room)
}

/// The connection whose empty step 1 this is, unless it was served early already.
fn early_step1(cmd: &DocCommand, served: &[(ConnId, usize)]) -> Option<ConnId> {
    match cmd {
        DocCommand::Message {
            conn,
            msg: Message::Sync(SyncMessage::Step1(sv)),
            ..
        } if chorus_core::is_empty_state_vector(sv) && !served.iter().any(|(c, _)| c == conn) => {
            Some(*conn)
        }
        _ => None,
    }
}

/// The document could not be loaded: close whoever is waiting (`queued` came
/// while it was loading), stop. The next connection starts a new actor, which
/// tries the load again.
async fn refuse_all(
    exit: &dyn Exit,
    key: &DocKey,
    own_tx: &InboxSender<DocCommand>,
    rx: &mut InboxReceiver<DocCommand>,
    queued: Vec<DocCommand>,
    why: DocError,
) {
    error!(app = %key.app, doc = %key.doc, error = %why, "document could not be loaded; refusing its connections");
    exit.forget(own_tx);
    rx.close();
    let rest = std::iter::from_fn(|| rx.try_recv());
    for cmd in queued.into_iter().chain(rest) {
        match cmd {
            DocCommand::Join { peer, .. } => peer.control.close(Disconnect::DocumentUnavailable),
            DocCommand::Read { reply, .. } => {
                let _ = reply.send(Err(why.clone()));
            }
            DocCommand::Base { reply, .. } => {
                let _ = reply.send(Err(why.clone()));
            }
            DocCommand::External { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(why.clone())));
            }
            DocCommand::Render { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(why.clone())));
            }
            DocCommand::Publish { reply, .. } => {
                let _ = reply.send(Err(HostError::Unavailable(why.clone())));
            }
            _ => {}
        }
    }
}
