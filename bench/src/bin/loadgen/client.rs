//! One task per connection: setup, connect, sync, then insert (or send presence)
//! on command and scan what arrives for markers (and presence timestamps).
//! `connect_all` opens many with bounded concurrency.

use super::proto::{
    awareness_msg, scan_awareness, state_t, sync_msg, uri_encode, Framing, Protocol,
};
use super::setup::{self, Setup, SetupInfo};
use super::stats::{Clock, Hist};
use super::Opts;
use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use chorus_auth::{mint_session, Mode, Secret, SessionClaims};
use chorus_protocol::{SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// What a client does with what it receives.
#[derive(Clone, Copy)]
pub enum Role {
    /// fanout: latency for markers from other clients.
    Fanout,
    /// throughput reader `i`: latency and highest seq seen.
    Reader(usize),
    /// throughput writer, coldload uploader: ignores what it receives.
    Writer,
    /// rooms, idle: ignores what it receives (may insert once).
    Quiet,
    /// coldload reader: applies the history (SyncStep2) to its yrs doc.
    Full,
    /// presence: fanout's latency for markers from other clients, and the latency
    /// of every newer awareness state of another client of the run.
    Presence,
}

/// presence: every client's awareness clientID (by client index) and the way
/// back, so a receiver keeps the last clock of each sender in a `Vec`.
pub struct PresenceIds {
    ids: Vec<u64>,
    index: HashMap<u64, u32>,
    /// `{"anchor":…,"head":…}`: a collapsed cursor at the start of the root, as
    /// `Y.relativePositionToJSON` writes one (Chorus checks its shape).
    cursor: String,
}

impl PresenceIds {
    /// `n` random 32-bit clientIDs (as Yjs makes them), distinct.
    pub fn random(n: usize, root: &str) -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut ids = Vec::with_capacity(n);
        let mut index = HashMap::with_capacity(n);
        while ids.len() < n {
            let id = u64::from(rng.random::<u32>());
            if index.insert(id, ids.len() as u32).is_none() {
                ids.push(id);
            }
        }
        let root = serde_json::Value::from(root);
        let pos = format!(r#"{{"type":null,"tname":{root},"item":null,"assoc":0}}"#);
        PresenceIds {
            ids,
            index,
            cursor: format!(r#"{{"anchor":{pos},"head":{pos}}}"#),
        }
    }
}

/// State shared by every connection task of a run.
pub struct Shared {
    pub clock: Clock,
    pub root: String,
    pub counting: AtomicBool,
    pub delivered: AtomicU64,
    pub late: AtomicU64,
    pub opened: AtomicU64,
    pub closed_unexpected: AtomicU64,
    pub errors: AtomicU64,
    /// throughput: highest seq seen by each reader (-1: none).
    pub seen: Vec<AtomicI64>,
    /// throughput: woken when a reader advances.
    pub progress: Notify,
    /// presence: the clientIDs (`None` in other scenarios).
    pub presence: Option<PresenceIds>,
    /// presence: awareness updates written to the socket.
    pub presence_sent: AtomicU64,
    /// presence: entries of another client's newer state received while counting.
    pub presence_fresh: AtomicU64,
    /// presence: entries of a state already seen (a server's reply to a query,
    /// a merge that repeats one) or our own echoed back, while counting.
    pub presence_stale: AtomicU64,
    /// presence: newer states received after counting stopped.
    pub presence_late: AtomicU64,
    /// presence: awareness messages and entries received while counting.
    pub awareness_messages: AtomicU64,
    pub awareness_entries: AtomicU64,
}

impl Shared {
    pub fn new(clock: Clock, root: &str, readers: usize) -> Arc<Self> {
        Arc::new(Self::build(clock, root, readers, None))
    }

    /// For the presence scenario: `n` clients with random awareness clientIDs.
    pub fn with_presence(clock: Clock, root: &str, n: usize) -> Arc<Self> {
        let ids = PresenceIds::random(n, root);
        Arc::new(Self::build(clock, root, 0, Some(ids)))
    }

    fn build(clock: Clock, root: &str, readers: usize, presence: Option<PresenceIds>) -> Self {
        Shared {
            clock,
            root: root.to_owned(),
            counting: AtomicBool::new(true),
            delivered: AtomicU64::new(0),
            late: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            closed_unexpected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            seen: (0..readers).map(|_| AtomicI64::new(-1)).collect(),
            progress: Notify::new(),
            presence,
            presence_sent: AtomicU64::new(0),
            presence_fresh: AtomicU64::new(0),
            presence_stale: AtomicU64::new(0),
            presence_late: AtomicU64::new(0),
            awareness_messages: AtomicU64::new(0),
            awareness_entries: AtomicU64::new(0),
        }
    }

    pub fn min_seen(&self) -> i64 {
        self.seen
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(-1)
    }

    pub fn conn_json(&self) -> serde_json::Value {
        serde_json::json!({
            "opened": self.opened.load(Ordering::Relaxed),
            "closed_unexpected": self.closed_unexpected.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "ws_extensions": [],
        })
    }
}

pub enum Cmd {
    /// Insert marker `seq`; it was scheduled at `scheduled`.
    Insert { seq: u64, scheduled: Instant },
    /// presence: send this client's awareness state at `clock`, stamped now; it
    /// was scheduled at `scheduled`.
    Awareness { clock: u64, scheduled: Instant },
    /// Send this y-protocols message (framed for the protocol).
    Send(Vec<u8>),
    /// Reply once everything before it was written to the socket.
    Flush(oneshot::Sender<()>),
    /// Close the connection and report.
    Close,
}

/// What a connection task hands back when it ends.
#[derive(Default)]
pub struct ClientReport {
    pub lat: Hist,
    pub lag: Hist,
    /// presence: awareness state latency (send → receipt).
    pub presence: Hist,
    /// presence: how late awareness updates were sent compared to their schedule.
    pub presence_lag: Hist,
}

impl ClientReport {
    fn merge(&mut self, o: &ClientReport) {
        self.lat.merge(&o.lat);
        self.lag.merge(&o.lag);
        self.presence.merge(&o.presence);
        self.presence_lag.merge(&o.presence_lag);
    }
}

/// Times of one connection in ms from the start of the websocket connect (the HTTP
/// setup, if any, comes before and is timed on its own).
#[derive(Clone, Copy, Default, Debug)]
pub struct ConnectInfo {
    /// Websocket open (TCP + handshake).
    pub open_ms: f64,
    /// First SyncStep2 received.
    pub step2_ms: f64,
    /// ... when (joinstorm times it from the storm's start, not the client's).
    pub step2_at: Option<Instant>,
    /// ... and applied (`Role::Full`; otherwise = `step2_ms`).
    pub applied_ms: f64,
    /// Connected and synced (`connect_sync_ms`).
    pub sync_ms: f64,
    pub step2_bytes: usize,
    /// `Role::Full`: length of the root text after the SyncStep2.
    pub text_len: u32,
    /// HTTP setup time, when there is one.
    pub setup_ms: Option<f64>,
}

pub struct Client {
    index: usize,
    role: Role,
    shared: Arc<Shared>,
    framing: Framing,
    doc: yrs::Doc,
    text: TextRef,
    lat: Hist,
    lag: Hist,
    marker: String,
    /// presence: last clock seen of each sender (by client index; 0 = none).
    clocks: Vec<u32>,
    presence: Hist,
    presence_lag: Hist,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Client {
    pub fn new(
        index: usize,
        role: Role,
        shared: Arc<Shared>,
        proto: Protocol,
        doc_name: &str,
    ) -> Self {
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text(shared.root.as_str());
        Client {
            index,
            role,
            shared,
            framing: Framing::new(proto, doc_name),
            doc,
            text,
            lat: Hist::new(),
            lag: Hist::new(),
            marker: String::new(),
            clocks: Vec::new(),
            presence: Hist::new(),
            presence_lag: Hist::new(),
        }
    }

    fn text_len(&self) -> u32 {
        self.text.len(&self.doc.transact())
    }

    /// Handles one incoming frame; y-protocols replies go to `out`. Returns
    /// (payload bytes, receipt time) on the first SyncStep2 (`synced` false).
    fn on_frame(
        &mut self,
        frame: &Bytes,
        out: &mut Vec<Vec<u8>>,
        synced: bool,
    ) -> Option<(usize, Instant)> {
        let recv = Instant::now();
        let Some((sub, payload)) = self.framing.parse_sync(frame) else {
            // other messages are ignored, but presence reads awareness
            if synced && matches!(self.role, Role::Presence) {
                if let Some(body) = self.framing.parse_awareness(frame) {
                    self.on_awareness(&body);
                }
            }
            return None;
        };
        match sub {
            SYNC_STEP1 => {
                // Answer the server's step 1 with what it lacks of our own inserts.
                let sv = StateVector::decode_v1(&payload).unwrap_or_default();
                let update = self.doc.transact().encode_state_as_update_v1(&sv);
                out.push(sync_msg(SYNC_STEP2, &update));
                None
            }
            SYNC_STEP2 if !synced => {
                // history is not counted as delivery
                if matches!(self.role, Role::Full) {
                    self.apply(&payload);
                }
                Some((payload.len(), recv))
            }
            SYNC_STEP2 | SYNC_UPDATE if synced => {
                self.on_update(&payload);
                None
            }
            _ => None,
        }
    }

    fn apply(&mut self, update: &[u8]) {
        match Update::decode_v1(update) {
            Ok(u) => {
                if self.doc.transact_mut().apply_update(u).is_err() {
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_update(&mut self, update: &[u8]) {
        match self.role {
            Role::Writer | Role::Quiet => return,
            Role::Full => return self.apply(update),
            Role::Fanout | Role::Reader(_) | Role::Presence => {}
        }
        let t_recv = self.shared.clock.now_ms();
        let counting = self.shared.counting.load(Ordering::Relaxed);
        let mut delivered = 0u64;
        let mut late = 0u64;
        let mut max_seq = None;
        let me = self.index as u64;
        let reader = matches!(self.role, Role::Reader(_));
        super::proto::scan_markers(update, |m| {
            if !reader && m.client == me {
                return;
            }
            if !counting {
                late += 1;
                return;
            }
            delivered += 1;
            self.lat.add(t_recv - m.ts_ms);
            max_seq = Some(max_seq.unwrap_or(0).max(m.seq));
        });
        if delivered > 0 {
            self.shared
                .delivered
                .fetch_add(delivered, Ordering::Relaxed);
        }
        if late > 0 {
            self.shared.late.fetch_add(late, Ordering::Relaxed);
        }
        if let (Role::Reader(i), Some(seq)) = (&self.role, max_seq) {
            self.shared.seen[*i].fetch_max(seq as i64, Ordering::AcqRel);
            self.shared.progress.notify_one();
        }
    }

    /// Every entry of an awareness update: a newer state of another client of
    /// the run is counted and, if it carries `t`, timed. Counts go to `Shared`
    /// once per message, not per entry (thousands of entries a second).
    fn on_awareness(&mut self, body: &Bytes) {
        let Some(ids) = self.shared.presence.as_ref() else {
            return;
        };
        let now = self.shared.clock.now_ms();
        let counting = self.shared.counting.load(Ordering::Relaxed);
        if self.clocks.is_empty() {
            self.clocks = vec![0; ids.ids.len()];
        }
        let me = self.index;
        let (mut entries, mut fresh, mut stale, mut late) = (0u64, 0u64, 0u64, 0u64);
        let clocks = &mut self.clocks;
        let hist = &mut self.presence;
        let ok = scan_awareness(body, |id, clock, state| {
            entries += 1;
            let Some(&j) = ids.index.get(&id) else {
                return; // not one of ours
            };
            let j = j as usize;
            if j == me || clock <= u64::from(clocks[j]) {
                if counting {
                    stale += 1;
                }
                return;
            }
            clocks[j] = u32::try_from(clock).unwrap_or(u32::MAX);
            let Some(t) = state_t(state) else {
                return; // a removal (`null`)
            };
            if counting {
                fresh += 1;
                hist.add(now - t);
            } else {
                late += 1;
            }
        });
        if !ok {
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        let sh = &self.shared;
        if counting {
            sh.awareness_messages.fetch_add(1, Ordering::Relaxed);
            sh.awareness_entries.fetch_add(entries, Ordering::Relaxed);
        }
        for (n, counter) in [
            (fresh, &sh.presence_fresh),
            (stale, &sh.presence_stale),
            (late, &sh.presence_late),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// presence: this client's awareness message at `clock`, a state shaped like
    /// an editor's (`user`, a `cursor` of relative positions) plus `t`, the send
    /// time in epoch ms. `None` outside the presence scenario.
    fn awareness_update(&mut self, clock: u64) -> Option<Vec<u8>> {
        let ids = self.shared.presence.as_ref()?;
        self.marker.clear();
        let _ = write!(
            self.marker,
            r#"{{"user":{{"name":"c{}"}},"cursor":{},"t":{:.3}}}"#,
            self.index,
            ids.cursor,
            self.shared.clock.now_ms()
        );
        Some(awareness_msg(ids.ids[self.index], clock, &self.marker))
    }

    /// A real yrs insert at the end of the text; returns the sync message.
    pub fn insert_marker(&mut self, seq: u64) -> Vec<u8> {
        self.marker.clear();
        let _ = write!(
            self.marker,
            "~c{}s{}t{:.3}~",
            self.index,
            seq,
            self.shared.clock.now_ms()
        );
        let mut txn = self.doc.transact_mut();
        let len = self.text.len(&txn);
        self.text.insert(&mut txn, len, &self.marker);
        let update = txn.encode_update_v1();
        drop(txn);
        sync_msg(SYNC_UPDATE, &update)
    }
}

/// How clients reach the server: URL template or per-doc setup, tokens, framing.
pub struct Dial {
    pub proto: Protocol,
    /// URL templates; client `index` uses `urls[index % len]` (several nodes of a
    /// cluster: clients spread over them).
    urls: Vec<String>,
    setup: Setup,
    setup_url: String,
    token: String,
    chorus: Option<(String, Secret)>,
    timeout: Duration,
    keepalive_ms: u64,
}

impl Dial {
    pub fn new(o: &Opts) -> Arc<Self> {
        Arc::new(Dial {
            proto: o.protocol,
            urls: o.url.split(',').map(str::to_owned).collect(),
            setup: o.setup,
            setup_url: o.setup_url.clone(),
            token: o.token.clone(),
            chorus: o
                .chorus_app
                .clone()
                .zip(o.chorus_secret.as_deref().map(Secret::new)),
            timeout: Duration::from_secs_f64(o.connect_timeout),
            keepalive_ms: if o.keepalive >= 0 {
                o.keepalive as u64
            } else if o.scenario == super::Scenario::Presence {
                // Every presence client sends awareness at least once a second: it
                // is not silent, and a query-awareness would have the server send
                // it every state at once in the middle of the measurement.
                0
            } else {
                o.protocol.default_keepalive_ms()
            },
        })
    }

    /// The websocket URL and the token for the Auth frame (Hocuspocus) of client
    /// `index` of `doc`.
    fn target(
        &self,
        doc: &str,
        index: usize,
        setup: Option<SetupInfo>,
    ) -> anyhow::Result<(String, String)> {
        let (url, token) = match setup {
            Some(s) => (s.url, s.token),
            None => {
                let url = self.urls[index % self.urls.len()].replace("{doc}", &uri_encode(doc));
                let token = match &self.chorus {
                    Some((app, secret)) => {
                        let claims = SessionClaims::new(
                            app.as_str(),
                            format!("load-{index}"),
                            doc,
                            Mode::Edit,
                            now_unix() + 24 * 3600,
                        );
                        mint_session(secret, &claims)
                            .map_err(|e| anyhow!("minting a session token: {e}"))?
                    }
                    None => self.token.clone(),
                };
                (url, token)
            }
        };
        if token.is_empty() || self.proto == Protocol::Hocuspocus {
            return Ok((url, token));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok((format!("{url}{sep}token={}", uri_encode(&token)), token))
    }

    async fn setup(&self, doc: &str) -> anyhow::Result<Option<SetupInfo>> {
        match self.setup {
            Setup::None => Ok(None),
            Setup::Ysweet => tokio::time::timeout(
                self.timeout,
                setup::ysweet(&self.setup_url, &self.token, doc),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow!("setup timeout")))
            .map(Some),
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// tungstenite's default 128 KiB read buffer per socket would make 10,000 clients
/// cost the generator over a GiB on the machine it shares with the server; larger
/// messages still arrive whole (the buffer is only the read chunk). Its default
/// caps (16 MiB a frame, 64 MiB a message) are raised: a joinstorm client's
/// SyncStep2 is the whole document, 20 MB in one frame.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_frame_size(Some(1 << 30))
        .max_message_size(Some(1 << 30))
}

async fn send_all(ws: &mut Ws, framing: &Framing, out: &mut Vec<Vec<u8>>) -> anyhow::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    for m in out.drain(..) {
        ws.feed(WsMessage::Binary(framing.wrap(m).into())).await?;
    }
    ws.flush().await?;
    Ok(())
}

/// Sets up, connects, syncs, reports on `ready`, then serves commands until
/// `Close` (or the socket ends), sending keepalives if the protocol needs them.
async fn client_task(
    mut c: Client,
    dial: Arc<Dial>,
    doc: String,
    ready: oneshot::Sender<anyhow::Result<ConnectInfo>>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) -> ClientReport {
    let shared = c.shared.clone();
    let mut info = ConnectInfo::default();
    let connected = async {
        let t_setup = Instant::now();
        let setup = dial.setup(&doc).await?;
        if setup.is_some() {
            info.setup_ms = Some(t_setup.elapsed().as_secs_f64() * 1e3);
        }
        let (url, token) = dial.target(&doc, c.index, setup)?;
        let t0 = Instant::now();
        let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1e3;
        tokio::time::timeout(dial.timeout, async {
            let (mut ws, _) =
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true)
                    .await
                    .context("websocket connect")?;
            info.open_ms = ms(Instant::now());
            shared.opened.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::new();
            for f in c.framing.hello(&token) {
                ws.feed(WsMessage::Binary(f.into())).await?;
            }
            let sv = c.doc.transact().state_vector().encode_v1();
            out.push(sync_msg(SYNC_STEP1, &sv));
            send_all(&mut ws, &c.framing, &mut out).await?;
            loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Binary(b))) => {
                        let step2 = c.on_frame(&b, &mut out, false);
                        send_all(&mut ws, &c.framing, &mut out).await?;
                        if let Some((bytes, recv)) = step2 {
                            info.step2_ms = ms(recv);
                            info.step2_at = Some(recv);
                            info.applied_ms = ms(Instant::now());
                            info.step2_bytes = bytes;
                            return Ok::<_, anyhow::Error>(ws);
                        }
                    }
                    Some(Ok(WsMessage::Close(f))) => bail!("closed before sync: {f:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("closed before sync"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(anyhow!("connect+sync timeout")))
        .map(|ws| (ws, ms(Instant::now())))
    }
    .await;
    let mut ws = match connected {
        Ok((ws, sync_ms)) => {
            info.sync_ms = sync_ms;
            if matches!(c.role, Role::Full) {
                info.text_len = c.text_len();
            }
            let _ = ready.send(Ok(info));
            ws
        }
        Err(e) => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            let _ = ready.send(Err(e));
            return ClientReport::default();
        }
    };
    let ka = Duration::from_millis(dial.keepalive_ms.max(1));
    let mut keepalive = (dial.keepalive_ms > 0)
        .then(|| tokio::time::interval_at(tokio::time::Instant::now() + ka, ka));
    let mut out = Vec::new();
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Insert { seq, scheduled }) => {
                    let m = c.insert_marker(seq);
                    out.push(m);
                    if send_all(&mut ws, &c.framing, &mut out).await.is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    c.lag.add(scheduled.elapsed().as_secs_f64() * 1e3);
                }
                Some(Cmd::Awareness { clock, scheduled }) => {
                    let Some(m) = c.awareness_update(clock) else { continue };
                    out.push(m);
                    if send_all(&mut ws, &c.framing, &mut out).await.is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    shared.presence_sent.fetch_add(1, Ordering::Relaxed);
                    c.presence_lag.add(scheduled.elapsed().as_secs_f64() * 1e3);
                }
                Some(Cmd::Send(m)) => {
                    out.push(m);
                    if send_all(&mut ws, &c.framing, &mut out).await.is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                Some(Cmd::Flush(done)) => {
                    let _ = done.send(());
                }
                Some(Cmd::Close) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    break;
                }
            },
            _ = async {
                match keepalive.as_mut() {
                    Some(k) => { k.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {
                if ws.send(WsMessage::Binary(c.framing.keepalive().into())).await.is_err() {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(WsMessage::Binary(b))) => {
                    c.on_frame(&b, &mut out, true);
                    if send_all(&mut ws, &c.framing, &mut out).await.is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None => {
                    shared.closed_unexpected.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    shared.closed_unexpected.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
        }
    }
    ClientReport {
        lat: c.lat,
        lag: c.lag,
        presence: c.presence,
        presence_lag: c.presence_lag,
    }
}

/// A connected (or failed) client: its command channel and its task.
pub struct Handle {
    pub cmds: mpsc::UnboundedSender<Cmd>,
    pub task: tokio::task::JoinHandle<ClientReport>,
}

impl Handle {
    /// Sends `Flush` and waits for the reply (false: the connection ended).
    pub async fn flushed(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Flush(tx)).is_ok() && rx.await.is_ok()
    }
}

pub struct Connected {
    pub handles: Vec<Option<Handle>>,
    pub infos: Vec<Option<ConnectInfo>>,
    pub connect_hist: Hist,
    pub setup_hist: Hist,
    pub failures: u64,
    pub fail_reasons: serde_json::Map<String, serde_json::Value>,
}

impl Connected {
    /// Indices of the clients that connected.
    pub fn live(&self) -> Vec<usize> {
        (0..self.handles.len())
            .filter(|&i| self.handles[i].is_some())
            .collect()
    }
    pub fn fail_reasons_json(&self) -> Option<serde_json::Value> {
        (self.failures > 0).then(|| serde_json::Value::Object(self.fail_reasons.clone()))
    }
}

/// Connects one client per `(doc, role)` (client index = position), at most
/// `concurrency` setups + connection attempts at once.
pub async fn connect_all(
    dial: &Arc<Dial>,
    shared: &Arc<Shared>,
    specs: Vec<(String, Role)>,
    concurrency: usize,
) -> Connected {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut pending = Vec::with_capacity(specs.len());
    for (i, (doc, role)) in specs.into_iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let c = Client::new(i, role, shared.clone(), dial.proto, &doc);
        let sem = sem.clone();
        let dial = dial.clone();
        let task = tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let (fwd_tx, fwd_rx) = oneshot::channel();
            let inner = tokio::spawn(client_task(c, dial, doc, fwd_tx, rx));
            let r = fwd_rx
                .await
                .unwrap_or_else(|_| Err(anyhow!("client task ended")));
            drop(permit);
            let _ = ready_tx.send(r);
            inner.await.unwrap_or_default()
        });
        pending.push((Handle { cmds: tx, task }, ready_rx));
    }
    let mut out = Connected {
        handles: Vec::new(),
        infos: Vec::new(),
        connect_hist: Hist::new(),
        setup_hist: Hist::new(),
        failures: 0,
        fail_reasons: Default::default(),
    };
    for (h, ready) in pending {
        match ready
            .await
            .unwrap_or_else(|_| Err(anyhow!("client task ended")))
        {
            Ok(info) => {
                out.connect_hist.add(info.sync_ms);
                if let Some(s) = info.setup_ms {
                    out.setup_hist.add(s);
                }
                out.handles.push(Some(h));
                out.infos.push(Some(info));
            }
            Err(e) => {
                out.failures += 1;
                let n = out
                    .fail_reasons
                    .entry(format!("{e:#}"))
                    .or_insert(0u64.into());
                *n = (n.as_u64().unwrap_or(0) + 1).into();
                let _ = h.task.await;
                out.handles.push(None);
                out.infos.push(None);
            }
        }
    }
    out
}

/// Connects one client and returns its handle and times.
pub async fn connect_one(
    dial: &Arc<Dial>,
    shared: &Arc<Shared>,
    doc: &str,
    index: usize,
    role: Role,
) -> anyhow::Result<(Handle, ConnectInfo)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let c = Client::new(index, role, shared.clone(), dial.proto, doc);
    let task = tokio::spawn(client_task(c, dial.clone(), doc.to_owned(), ready_tx, rx));
    let info = ready_rx
        .await
        .unwrap_or_else(|_| Err(anyhow!("client task ended")))?;
    Ok((Handle { cmds: tx, task }, info))
}

/// Closes every client and merges their histograms (latency, send lag).
pub async fn close_all(handles: Vec<Option<Handle>>) -> (Hist, Hist) {
    let r = close_all_reports(handles).await;
    (r.lat, r.lag)
}

/// Closes every client and merges their reports.
pub async fn close_all_reports(handles: Vec<Option<Handle>>) -> ClientReport {
    let mut all = ClientReport::default();
    for h in handles.iter().flatten() {
        let _ = h.cmds.send(Cmd::Close);
    }
    for h in handles.into_iter().flatten() {
        if let Ok(r) = h.task.await {
            all.merge(&r);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yrs_update_carries_the_marker_verbatim() {
        let shared = Shared::new(Clock::new(), "title", 0);
        let mut c = Client::new(4, Role::Fanout, shared, Protocol::YWebsocket, "d");
        let msg = c.insert_marker(9);
        let (sub, payload) = c.framing.parse_sync(&Bytes::from(msg)).unwrap();
        assert_eq!(sub, SYNC_UPDATE);
        let mut got = Vec::new();
        super::super::proto::scan_markers(&payload, |m| got.push((m.client, m.seq)));
        assert_eq!(got, vec![(4, 9)]);
    }

    #[test]
    fn presence_counts_each_newer_state_of_another_client_once() {
        for proto in [Protocol::YWebsocket, Protocol::Hocuspocus] {
            let shared = Shared::with_presence(Clock::new(), "title", 3);
            let mut rx = Client::new(0, Role::Presence, shared.clone(), proto, "d");
            let mut tx = Client::new(1, Role::Presence, shared.clone(), proto, "d");
            let mut me = Client::new(0, Role::Presence, shared.clone(), proto, "d");
            let mut out = Vec::new();
            let m1 = tx.awareness_update(1).unwrap();
            let m1 = Bytes::from(tx.framing.wrap(m1));
            let state = String::from_utf8_lossy(&m1).to_string();
            assert!(state.contains(r#""tname":"title""#), "{state}");
            assert!(rx.on_frame(&m1, &mut out, true).is_none());
            // the same state again (a reply to a query), then our own echoed back
            rx.on_frame(&m1, &mut out, true);
            let own = me.awareness_update(1).unwrap();
            let own = Bytes::from(me.framing.wrap(own));
            rx.on_frame(&own, &mut out, true);
            let m2 = tx.awareness_update(2).unwrap();
            let m2 = Bytes::from(tx.framing.wrap(m2));
            rx.on_frame(&m2, &mut out, true);
            assert!(out.is_empty());
            assert_eq!(shared.presence_fresh.load(Ordering::Relaxed), 2);
            assert_eq!(shared.presence_stale.load(Ordering::Relaxed), 2);
            assert_eq!(shared.awareness_messages.load(Ordering::Relaxed), 4);
            assert_eq!(rx.presence.summary()["n"], 2);
            assert!(rx.presence.q(1.0).unwrap() < 60_000.0);
        }
    }

    #[test]
    fn a_full_client_applies_the_history() {
        use yrs::GetString;
        let shared = Shared::new(Clock::new(), "title", 0);
        let mut w = Client::new(0, Role::Writer, shared.clone(), Protocol::Hocuspocus, "d");
        w.insert_marker(1);
        let update = w
            .doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let mut r = Client::new(1, Role::Full, shared, Protocol::Hocuspocus, "d");
        let frame = Bytes::from(r.framing.wrap(sync_msg(SYNC_STEP2, &update)));
        let mut out = Vec::new();
        assert_eq!(
            r.on_frame(&frame, &mut out, false).map(|x| x.0),
            Some(update.len())
        );
        assert_eq!(r.text_len(), w.text_len());
        assert!(r.text.get_string(&r.doc.transact()).starts_with("~c0s1t"));
    }
}
