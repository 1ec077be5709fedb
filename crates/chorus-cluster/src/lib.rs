//! # chorus-cluster — how the nodes of a cluster talk
//!
//! In cluster mode every document has one owner node; the others forward their
//! clients' messages to it and fan its frames out to their clients. They talk over
//! Redis pub/sub through a [`Bus`], so no node needs another's address.
//!
//! ## Why pub/sub and not streams
//!
//! The bus is not the system of record: an edit is acknowledged only once it is
//! committed in PostgreSQL, so the bus may lose messages as long as losing one is
//! *noticed*. Pub/sub is the cheapest delivery Redis has (no storage, no trimming,
//! no consumer groups), and every loss is detectable:
//!
//! - every message carries its sender's incarnation and a sequence number per
//!   (sender, channel); a hole or a new incarnation is a [`BusEvent::Lost`];
//! - a subscription that broke (Redis restarted, the connection dropped, Redis cut
//!   a slow subscriber at its output-buffer limit) is a [`BusEvent::Reconnected`]
//!   once it is back;
//! - every node broadcasts a heartbeat; a node silent for `node_timeout` is
//!   [`BusEvent::NodeDown`].
//!
//! Anyone who can reach the Redis may publish on its channels, so every message
//! carries a MAC under a cluster key ([`BusConfig::keys`]: a list, the first signs,
//! any verifies, so keys rotate like app secrets) over its bytes and the channel
//! it was published on. A message no key verifies is dropped and counted
//! ([`BusStats::rejected`]); so is a replay of one that did verify: a sequence
//! number the sender already used, or an incarnation older than the one known
//! (incarnations are the sender's start time, so a restart only moves forward)
//! ([`BusStats::replayed`]). Neither is a loss: a forged message cannot make a node
//! resync anything.
//!
//! The document layer answers each of these by resyncing what it shares with that
//! node (state vectors, through a reconnect). Streams would let a node replay what
//! it missed, but it would still have to resync after a longer outage, and every
//! frame of every document would be written to Redis memory first.
//!
//! ## Channels
//!
//! `{prefix}:node:{id}` for messages to one node, `{prefix}:all` for broadcasts
//! and heartbeats. Payloads are opaque bytes.
//!
//! ## TLS
//!
//! `rediss://HOST:PORT` speaks TLS (rustls): the Redis's certificate must chain to
//! [`BusConfig::ca_file`] when one is given, else to the system's roots, and must
//! name HOST. A failed handshake fails [`Bus::start`] (and later reconnections, so
//! readiness), never falls back to plaintext; `#insecure` URLs are refused.
//!
//! ## What it must not touch
//!
//! Documents, CRDTs, the store, HTTP: it moves bytes between nodes and reports what
//! it could not move.

mod envelope;

/// The envelope codec, for `benches/envelope.rs` only: not part of the API.
#[doc(hidden)]
pub mod bench_support {
    use super::envelope::{Envelope, Kind};
    use bytes::Bytes;

    /// A direct message from `from`, sealed for `channel` with `key`.
    pub fn seal(channel: &str, key: &[u8], from: &str, payload: &[u8]) -> Bytes {
        Envelope {
            kind: Kind::Direct,
            incarnation: 1,
            seq: 1,
            sent_at_micros: 0,
            from,
            payload,
        }
        .encode(channel, key)
    }

    /// Whether one of `keys` opens `bytes` received on `channel`.
    pub fn open(bytes: &[u8], channel: &str, keys: &[Vec<u8>]) -> bool {
        Envelope::open(bytes, channel, keys).is_some()
    }
}

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use envelope::{Envelope, Kind};

/// Messages queued for publishing before new ones are dropped (and the loss shows
/// up as a gap at the receiver).
const PUBLISH_QUEUE: usize = 65_536;
/// Publishes sent to Redis in one pipeline.
const PIPELINE: usize = 512;
/// Events queued for the document layer; the subscriber waits beyond this.
const EVENT_QUEUE: usize = 8192;

/// How to reach the bus and who this node is.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `redis://HOST:PORT`, or `rediss://HOST:PORT` for TLS.
    pub url: String,
    /// With `rediss://`: the CA certificates (PEM) the Redis's certificate must
    /// chain to, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Prefix of every channel: clusters sharing one Redis use different prefixes.
    pub prefix: String,
    /// This node's id, unique in the cluster.
    pub node: String,
    /// How often this node broadcasts a heartbeat.
    pub heartbeat: Duration,
    /// A node not heard from for this long is down.
    pub node_timeout: Duration,
    /// The cluster's keys: the first signs what this node publishes, any of them
    /// verifies what it receives. [`Bus::start`] refuses an empty list.
    pub keys: Vec<Vec<u8>>,
}

impl BusConfig {
    /// Defaults: heartbeat every 500 ms, a node is down after 2 s of silence.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>, node: impl Into<String>) -> Self {
        BusConfig {
            url: url.into(),
            ca_file: None,
            prefix: prefix.into(),
            node: node.into(),
            heartbeat: Duration::from_millis(500),
            node_timeout: Duration::from_secs(2),
            keys: Vec::new(),
        }
    }

    /// The same configuration with the cluster's keys (the first signs).
    pub fn with_keys(mut self, keys: Vec<Vec<u8>>) -> Self {
        self.keys = keys;
        self
    }
    /// The same configuration trusting only the CA certificates in `path` (PEM)
    /// for a `rediss://` bus.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No cluster key: nothing could be signed or verified.
    #[error("the bus needs at least one cluster key")]
    NoKey,
    /// The URL is not a Redis URL.
    #[error("bus URL {url:?}: {source}")]
    Url {
        /// The URL as given.
        url: String,
        /// Redis's parse error.
        source: redis::RedisError,
    },
    /// Redis could not be reached at start.
    #[error("cannot reach the bus at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// Redis's error.
        source: redis::RedisError,
    },
    /// The TLS handshake with Redis failed at start: its certificate does not chain
    /// to the trusted roots, does not name the host, or the server does not speak TLS.
    #[error(
        "TLS with the bus at {url} failed (the Redis's certificate must be signed by {trusted} \
         and name the URL's host): {source}"
    )]
    Tls {
        /// The URL.
        url: String,
        /// What was trusted: the CA file, or the system's roots.
        trusted: String,
        /// Redis's error (rustls's reason inside).
        source: redis::RedisError,
    },
    /// `ca_file` could not be read, or holds no certificate.
    #[error("bus CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A TLS setting for a bus that does not use TLS, or one that would switch the
    /// certificate check off.
    #[error("bus URL {url:?}: {reason}")]
    TlsSetting {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// What the bus tells the document layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A message for this node (or for all).
    Message {
        /// The sending node.
        from: Arc<str>,
        /// What it sent.
        payload: Bytes,
    },
    /// Messages from `from` were lost (a hole in its sequence), or it restarted:
    /// what this node shares with it must be resynced.
    Lost {
        /// The node.
        from: Arc<str>,
    },
    /// This node's subscription broke and is back: anything may have been lost.
    Reconnected,
    /// A node was heard from (first time, or after it was down).
    NodeUp {
        /// The node.
        node: Arc<str>,
    },
    /// A node has been silent for `node_timeout`.
    NodeDown {
        /// The node.
        node: Arc<str>,
    },
}

/// Counters of the bus, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages handed to Redis.
    pub published: u64,
    /// Messages dropped before Redis took them (queue full, Redis unreachable).
    pub dropped: u64,
    /// Messages received (heartbeats excluded).
    pub received: u64,
    /// Losses detected ([`BusEvent::Lost`] and [`BusEvent::Reconnected`]).
    pub losses: u64,
    /// Time from publishing this node's last heartbeat to receiving it back, in µs.
    pub lag_micros: u64,
    /// Nodes currently up, this one included.
    pub nodes_up: u64,
    /// Messages dropped because no cluster key verified them (forged, tampered
    /// with, or moved to another channel).
    pub rejected: u64,
    /// Messages dropped because they verified but were seen before (a sequence
    /// number or incarnation of the sender's already passed).
    pub replayed: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    losses: AtomicU64,
    lag_micros: AtomicU64,
    nodes_up: AtomicU64,
    rejected: AtomicU64,
    replayed: AtomicU64,
}

struct Shared {
    config: BusConfig,
    node: Arc<str>,
    incarnation: u64,
    all_channel: Arc<str>,
    /// Next sequence number per destination channel.
    seqs: Mutex<HashMap<Arc<str>, u64>>,
    outgoing: mpsc::Sender<(Arc<str>, Bytes)>,
    subscribed: AtomicBool,
    counters: Counters,
    /// When the process started, the zero of `sent_at` stamps (monotonic).
    epoch: Instant,
}

/// A node's connection to the bus. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("node", &self.shared.node)
            .field("prefix", &self.shared.config.prefix)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connect, subscribe, and start the publisher, subscriber and heartbeat tasks
    /// (they stop when `stop` is cancelled). Fails if Redis cannot be reached now;
    /// later outages are survived (and reported as events).
    pub async fn start(
        config: BusConfig,
        stop: CancellationToken,
    ) -> Result<(Bus, mpsc::Receiver<BusEvent>), BusError> {
        if config.keys.is_empty() {
            return Err(BusError::NoKey);
        }
        let client = client(&config)?;
        let connect_err = |source: redis::RedisError| {
            if is_tls(&config.url) && is_tls_failure(&source) {
                BusError::Tls {
                    url: config.url.clone(),
                    trusted: match &config.ca_file {
                        Some(path) => format!("the CA in {}", path.display()),
                        None => "a CA among the system's roots".to_owned(),
                    },
                    source,
                }
            } else {
                BusError::Connect {
                    url: config.url.clone(),
                    source,
                }
            }
        };
        // The subscriber first: it connects once, so a refused handshake fails
        // start-up at once (the manager retries with backoff before it gives up).
        let pubsub = client.get_async_pubsub().await.map_err(connect_err)?;
        let manager = redis::aio::ConnectionManager::new(client.clone())
            .await
            .map_err(connect_err)?;
        let (outgoing, to_publish) = mpsc::channel(PUBLISH_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let node: Arc<str> = config.node.as_str().into();
        let shared = Arc::new(Shared {
            all_channel: format!("{}:all", config.prefix).into(),
            node,
            // The start time: a restarted node's incarnation is always greater, so
            // an older one (a replay) is refused (see `receive`).
            incarnation: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            seqs: Mutex::new(HashMap::new()),
            outgoing,
            subscribed: AtomicBool::new(false),
            // This node counts itself from the start (a node alone on the bus is one up).
            counters: Counters {
                nodes_up: AtomicU64::new(1),
                ..Counters::default()
            },
            epoch: Instant::now(),
            config,
        });
        let bus = Bus { shared };
        tokio::spawn(publish_loop(
            bus.shared.clone(),
            manager,
            to_publish,
            stop.clone(),
        ));
        tokio::spawn(subscribe_loop(
            bus.shared.clone(),
            client,
            Some(pubsub),
            events_tx,
            stop.clone(),
        ));
        tokio::spawn(heartbeat_loop(bus.clone(), stop));
        Ok((bus, events))
    }

    /// This node's id.
    pub fn node(&self) -> &Arc<str> {
        &self.shared.node
    }

    /// Send `payload` to node `to`. Never waits: if the publish queue is full the
    /// message is dropped, and `to` sees the hole.
    pub fn send(&self, to: &str, payload: Bytes) {
        let channel: Arc<str> = self.node_channel(to).into();
        self.enqueue(channel, Kind::Direct, payload);
    }

    /// Send `payload` to every node, this one included.
    pub fn broadcast(&self, payload: Bytes) {
        let channel = self.shared.all_channel.clone();
        self.enqueue(channel, Kind::Broadcast, payload);
    }

    /// Whether this node's subscription is up now (readiness).
    pub fn is_connected(&self) -> bool {
        self.shared.subscribed.load(Ordering::Relaxed)
    }

    /// The counters so far.
    pub fn stats(&self) -> BusStats {
        let c = &self.shared.counters;
        BusStats {
            published: c.published.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            losses: c.losses.load(Ordering::Relaxed),
            lag_micros: c.lag_micros.load(Ordering::Relaxed),
            nodes_up: c.nodes_up.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
        }
    }

    fn node_channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.shared.config.prefix)
    }

    fn enqueue(&self, channel: Arc<str>, kind: Kind, payload: Bytes) {
        let shared = &self.shared;
        // The sequence is taken and the message queued under one lock, so messages
        // to one channel are queued in sequence order.
        let mut seqs = shared.seqs.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = seqs.entry(channel.clone()).or_insert(0);
        *seq += 1;
        let envelope = Envelope {
            kind,
            incarnation: shared.incarnation,
            seq: *seq,
            sent_at_micros: micros_since(shared.epoch),
            from: &shared.node,
            payload: &payload,
        };
        let bytes = envelope.encode(&channel, &shared.config.keys[0]);
        if shared.outgoing.try_send((channel, bytes)).is_err() {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn is_tls(url: &str) -> bool {
    url.starts_with("rediss://")
}

/// Whether a connection error is a failed TLS handshake (rustls's reasons, or a
/// server that closed the connection during it), rather than an unreachable host.
fn is_tls_failure(e: &redis::RedisError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    ["certificate", "tls", "handshake", "peer", "eof"]
        .iter()
        .any(|w| text.contains(w))
}

/// The Redis client `config` asks for: plaintext for `redis://`; for `rediss://`,
/// TLS trusting `ca_file` (else the system's roots).
fn client(config: &BusConfig) -> Result<redis::Client, BusError> {
    let url = config.url.as_str();
    let setting = |reason| BusError::TlsSetting {
        url: url.to_owned(),
        reason,
    };
    let url_err = |source| BusError::Url {
        url: url.to_owned(),
        source,
    };
    if !is_tls(url) {
        if config.ca_file.is_some() {
            return Err(setting(
                "a bus CA file is set but the URL is redis:// (plaintext); use rediss://",
            ));
        }
        return redis::Client::open(url).map_err(url_err);
    }
    if url.contains('#') {
        return Err(setting(
            "a fragment such as #insecure would switch the certificate check off; \
             trust a private CA with the bus CA file instead",
        ));
    }
    // One crypto provider for the whole process (the redis crate builds its
    // rustls configurations from the default): ring, the one the tree already
    // has. Installing fails only if one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(path) = &config.ca_file else {
        return redis::Client::open(url).map_err(url_err);
    };
    let ca_err = |reason: String| BusError::CaFile {
        path: path.clone(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_err(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ca_err("no certificate in it (PEM expected)".to_owned()));
    }
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
    .map_err(url_err)
}

fn micros_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

async fn publish_loop(
    shared: Arc<Shared>,
    mut redis: redis::aio::ConnectionManager,
    mut queue: mpsc::Receiver<(Arc<str>, Bytes)>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(PIPELINE);
    let mut failing = false;
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            first = queue.recv() => match first { Some(m) => m, None => return },
        };
        batch.push(first);
        while batch.len() < PIPELINE {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        for (channel, bytes) in &batch {
            pipe.publish(&**channel, bytes.as_ref());
        }
        let sent = batch.len() as u64;
        match pipe.query_async::<Vec<i64>>(&mut redis).await {
            Ok(_) => {
                shared.counters.published.fetch_add(sent, Ordering::Relaxed);
                if failing {
                    info!("bus: publishing again");
                    failing = false;
                }
            }
            Err(e) => {
                shared.counters.dropped.fetch_add(sent, Ordering::Relaxed);
                if !failing {
                    warn!(error = %e, "bus: cannot publish; messages are dropped until Redis is back");
                    failing = true;
                }
            }
        }
        batch.clear();
    }
}

/// What the receiver knows of another node.
struct Peer {
    incarnation: u64,
    direct_seq: u64,
    all_seq: u64,
    /// This node's subscription came back since the last message of the link:
    /// the next one may skip numbers (`Reconnected` already said so).
    direct_gap_expected: bool,
    all_gap_expected: bool,
    last_heard: Instant,
    up: bool,
}

async fn subscribe_loop(
    shared: Arc<Shared>,
    client: redis::Client,
    mut first: Option<redis::aio::PubSub>,
    events: mpsc::Sender<BusEvent>,
    stop: CancellationToken,
) {
    let node_channel = format!("{}:node:{}", shared.config.prefix, shared.node);
    let mut peers: HashMap<Arc<str>, Peer> = HashMap::new();
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    // Silence longer than this on a connection that should carry our own heartbeats
    // means it is dead even if the socket has not noticed.
    let silence = shared.config.heartbeat * 4;
    let mut watchdog = tokio::time::interval(shared.config.heartbeat / 2);
    loop {
        let pubsub = match first.take() {
            Some(p) => Ok(p),
            None => client.get_async_pubsub().await,
        };
        let mut pubsub = match pubsub {
            Ok(p) => p,
            Err(e) => {
                debug!(error = %e, "bus: cannot connect the subscriber yet");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let subscribed = async {
            pubsub.subscribe(&node_channel).await?;
            pubsub.subscribe(&*shared.all_channel).await
        };
        if let Err(e) = subscribed.await {
            debug!(error = %e, "bus: cannot subscribe yet");
            continue;
        }
        backoff = Duration::from_millis(100);
        shared.subscribed.store(true, Ordering::Relaxed);
        if connected_before {
            info!("bus: subscription is back; resyncing what was shared");
            shared.counters.losses.fetch_add(1, Ordering::Relaxed);
            // Whatever was in flight is gone, and that is what `Reconnected` says:
            // each sender's next message may skip numbers (but never go back).
            // Silence during the outage says nothing about the other nodes.
            for peer in peers.values_mut() {
                peer.direct_gap_expected = true;
                peer.all_gap_expected = true;
                peer.last_heard = Instant::now();
            }
            if events.send(BusEvent::Reconnected).await.is_err() {
                return;
            }
        }
        connected_before = true;
        let mut stream = pubsub.into_on_message();
        let mut last_message = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = watchdog.tick() => {
                    if last_message.elapsed() > silence {
                        warn!("bus: no message (not even our own heartbeat) for {silence:?}; reconnecting");
                        break;
                    }
                    for event in down_nodes(&shared, &mut peers) {
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        warn!("bus: subscription lost; reconnecting");
                        break;
                    };
                    last_message = Instant::now();
                    let channel = msg.get_channel_name();
                    let Some(envelope) = Envelope::open(msg.get_payload_bytes(), channel, &shared.config.keys) else {
                        let n = shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                        if n.is_power_of_two() || n == 0 {
                            warn!(%channel, rejected = n + 1, "bus: a message no cluster key verifies (forged, tampered with, or another cluster's); dropped");
                        }
                        continue;
                    };
                    for event in receive(&shared, &mut peers, envelope) {
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        shared.subscribed.store(false, Ordering::Relaxed);
    }
}

/// What one received envelope means.
fn receive(
    shared: &Shared,
    peers: &mut HashMap<Arc<str>, Peer>,
    envelope: Envelope<'_>,
) -> Vec<BusEvent> {
    let mut out = Vec::new();
    if envelope.from == &*shared.node {
        if envelope.kind == Kind::Heartbeat {
            let lag = micros_since(shared.epoch).saturating_sub(envelope.sent_at_micros);
            shared.counters.lag_micros.store(lag, Ordering::Relaxed);
        }
        // Our own broadcasts: the document layer already acted on them locally.
        return out;
    }
    let from: Arc<str> = match peers.get_key_value(envelope.from) {
        Some((name, _)) => name.clone(),
        None => envelope.from.into(),
    };
    let peer = peers.entry(from.clone()).or_insert_with(|| Peer {
        incarnation: envelope.incarnation,
        direct_seq: 0,
        all_seq: 0,
        direct_gap_expected: false,
        all_gap_expected: false,
        last_heard: Instant::now(),
        up: false,
    });
    if envelope.incarnation < peer.incarnation {
        // An earlier life of the sender: a replay.
        shared.counters.replayed.fetch_add(1, Ordering::Relaxed);
        return out;
    }
    let restarted = peer.incarnation != envelope.incarnation;
    if restarted {
        peer.incarnation = envelope.incarnation;
        peer.direct_seq = 0;
        peer.all_seq = 0;
    }
    let (last, gap_expected) = match envelope.kind {
        Kind::Direct => (&mut peer.direct_seq, &mut peer.direct_gap_expected),
        Kind::Broadcast | Kind::Heartbeat => (&mut peer.all_seq, &mut peer.all_gap_expected),
    };
    if *last != 0 && envelope.seq <= *last {
        // A number this link already used: a replay (a sender never goes back).
        shared.counters.replayed.fetch_add(1, Ordering::Relaxed);
        return out;
    }
    // A link seen for the first time may start anywhere, and after this node's
    // subscription came back it may skip numbers; otherwise every message must
    // follow the last.
    let hole = *last != 0 && envelope.seq != *last + 1 && !*gap_expected;
    *gap_expected = false;
    // A sender that restarted forgot everything it shared with us.
    let lost = hole || (restarted && peer.up);
    *last = envelope.seq;
    peer.last_heard = Instant::now();
    if !peer.up {
        peer.up = true;
        out.push(BusEvent::NodeUp { node: from.clone() });
    }
    if lost {
        shared.counters.losses.fetch_add(1, Ordering::Relaxed);
        out.push(BusEvent::Lost { from: from.clone() });
    }
    let up = peers.values().filter(|p| p.up).count() as u64 + 1;
    shared.counters.nodes_up.store(up, Ordering::Relaxed);
    if envelope.kind != Kind::Heartbeat {
        shared.counters.received.fetch_add(1, Ordering::Relaxed);
        out.push(BusEvent::Message {
            from,
            payload: Bytes::copy_from_slice(envelope.payload),
        });
    }
    out
}

/// Nodes silent for longer than `node_timeout`, marked down.
fn down_nodes(shared: &Shared, peers: &mut HashMap<Arc<str>, Peer>) -> Vec<BusEvent> {
    let mut out = Vec::new();
    for (node, peer) in peers.iter_mut() {
        if peer.up && peer.last_heard.elapsed() > shared.config.node_timeout {
            peer.up = false;
            out.push(BusEvent::NodeDown { node: node.clone() });
        }
    }
    if !out.is_empty() {
        let up = peers.values().filter(|p| p.up).count() as u64 + 1;
        shared.counters.nodes_up.store(up, Ordering::Relaxed);
    }
    out
}

async fn heartbeat_loop(bus: Bus, stop: CancellationToken) {
    let mut tick = tokio::time::interval(bus.shared.config.heartbeat);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                let channel = bus.shared.all_channel.clone();
                bus.enqueue(channel, Kind::Heartbeat, Bytes::new());
            }
        }
    }
}
