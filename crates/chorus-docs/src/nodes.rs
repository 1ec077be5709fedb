//! What this node knows of the cluster (cluster mode): its bus, the documents it
//! owns (with their lease tokens) and forwards (with their owners), which nodes are
//! up, host calls waiting for another node's answer, and the counters metrics
//! read. State only: the tasks that keep it current are in `cluster.rs`, above the
//! registry; actors read and update it through their environment.

use crate::types::{Disconnect, DocKey};
use crate::wire::Wire;
use chorus_cluster::{Bus, BusEvent};
use dashmap::DashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// What cluster mode needs: the bus, and how long a lease lasts.
pub struct ClusterSetup {
    /// This node's connection to the bus.
    pub bus: Bus,
    /// What the bus reports (`Documents::run_cluster` consumes it).
    pub events: mpsc::Receiver<BusEvent>,
    /// How long a lease lasts without renewal: the bound on failover after a node
    /// dies (renewed every third of it).
    pub lease_ttl: Duration,
}

/// Answers a host API call carried from another node: request bytes in, response
/// bytes out (both the server's own encoding).
pub type HostHandler =
    Arc<dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> + Send + Sync>;

/// Verifies, on the owner, the token of a connection another node forwards: the
/// session it grants for the document, or why it is refused. The owner believes
/// the token, not the forwarding node's word (`Wire::Join`).
pub type SessionVerifier =
    Arc<dyn Fn(&DocKey, &str, bool) -> Result<chorus_core::Session, Disconnect> + Send + Sync>;

/// Told when another node enabled or disabled an app (`app`, `enabled`).
pub type AppStateHandler = Arc<dyn Fn(&str, bool) + Send + Sync>;

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
    /// Authenticated bus messages a node had no standing to send: a frame or close
    /// for a document from a node that does not own it, a join whose token the
    /// owner refused, an answer to a host call the node was not asked.
    pub refused: u64,
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
    pub(crate) alive: DashMap<Arc<str>, bool>,
    pub(crate) started: Instant,
    pub(crate) events: std::sync::Mutex<Option<mpsc::Receiver<BusEvent>>>,
    pub(crate) host: OnceLock<HostHandler>,
    pub(crate) app_state: OnceLock<AppStateHandler>,
    pub(crate) sessions: OnceLock<SessionVerifier>,
    /// Host calls carried to another node, by their random id: the node asked and
    /// where its answer goes.
    pub(crate) pending: DashMap<u128, (Arc<str>, oneshot::Sender<Vec<u8>>)>,
    /// Places for host calls carried to other nodes at once (each holds its body).
    pub(crate) forward_slots: Semaphore,
    /// Places for host calls other nodes carry here, served at once.
    pub(crate) serve_slots: Arc<Semaphore>,
    pub(crate) takeovers: AtomicU64,
    pub(crate) leases_lost: AtomicU64,
    pub(crate) host_forwards: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) refused: AtomicU64,
}

/// Host calls this node carries to others at once; past it a call answers 503.
/// With a 16 MiB body each, 64 bound what carried bodies hold to 1 GiB at worst.
pub(crate) const MAX_HOST_FORWARDS: usize = 64;

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
            sessions: OnceLock::new(),
            pending: DashMap::new(),
            forward_slots: Semaphore::new(MAX_HOST_FORWARDS),
            serve_slots: Arc::new(Semaphore::new(MAX_HOST_FORWARDS)),
            takeovers: AtomicU64::new(0),
            leases_lost: AtomicU64::new(0),
            host_forwards: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            refused: AtomicU64::new(0),
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
