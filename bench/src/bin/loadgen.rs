//! # chorus-loadgen — a y-websocket load generator in Rust
//!
//! Speaks the standard y-websocket protocol (y-protocols sync framing over a
//! websocket, `ws://HOST:PORT/<prefix>/{doc}[?token=…]`), so it drives Chorus and
//! any other server that speaks it (@y/websocket-server, y-sweet). It mirrors the
//! scenarios and the one-line JSON output of the shared Node generator
//! (`bench/node/loadgen.mjs`, see `../shared/bench/README.md`), which stays the
//! cross-check: the Node one saturates its core at ~500 clients.
//!
//! One tokio runtime, one task per connection, `TCP_NODELAY` on every socket.
//! Writers make real yrs updates (one single-string insert per transaction into
//! the root Y.Text `--root`, `title` by default); receivers do not integrate remote
//! updates ("light" mode of the Node tool): each insert carries an ASCII marker
//! `~c<client>s<seq>t<epoch-ms>~`, which appears verbatim in the v1 update bytes
//! (lib0 string in ContentString), so receivers scan the raw bytes for it.
//!
//! Scenarios:
//! - `fanout`: 1 doc, N clients; together they make `--rate` inserts/s round-robin
//!   for `--duration` s; latency is send → receipt at every *other* client.
//! - `throughput`: 1 doc, 1 writer + R readers; the writer keeps at most `--window`
//!   inserts in flight, an insert counts once *every* reader has received it.

use anyhow::{anyhow, bail, Context};
use chorus_auth::{mint_session, Mode, Secret, SessionClaims};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Text, TextRef, Transact};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    Fanout,
    Throughput,
}

/// Command-line flags (names follow the Node generator's).
#[derive(Parser, Debug, Clone)]
#[command(name = "chorus-loadgen", about = "y-websocket load generator (Rust)")]
struct Opts {
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "fanout")]
    scenario: Scenario,
    /// Websocket URL template; `{doc}` is replaced by the (URI-encoded) doc id.
    #[arg(long, default_value = "ws://127.0.0.1:1234/{doc}")]
    url: String,
    /// Static token, appended as `?token=` (same for every connection).
    #[arg(long, default_value = "")]
    token: String,
    /// Chorus: mint an HS256 session token per doc and client with this app secret.
    #[arg(long, requires = "chorus_app")]
    chorus_secret: Option<String>,
    /// Chorus: the app id the minted tokens are issued for.
    #[arg(long, requires = "chorus_secret")]
    chorus_app: Option<String>,
    /// Doc id (default: random per run).
    #[arg(long, default_value = "")]
    doc: String,
    /// Root Y.Text the inserts go into (Chorus allows `title` and `body`).
    #[arg(long, default_value = "title")]
    root: String,
    /// fanout: number of clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// fanout: total inserts per second over all clients.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of load (fanout, throughput).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Max seconds to wait for in-flight deliveries after the load stops.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// throughput: number of readers.
    #[arg(long, default_value_t = 20)]
    readers: usize,
    /// throughput: max inserts in flight (sent, not yet seen by every reader).
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Max concurrent connection attempts.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Seconds per connection attempt (until synced).
    #[arg(long, default_value_t = 30.0)]
    connect_timeout: f64,
    /// PID whose CPU% and RSS (from /proc) are reported.
    #[arg(long, default_value_t = 0)]
    server_pid: u32,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Free-form label echoed into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

fn main() {
    let o = Opts::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = o.threads {
        rt.worker_threads(n.max(1));
    }
    let result = rt
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(o)));
    match result {
        Ok(line) => println!("{line}"),
        Err(e) => {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::exit(1);
        }
    }
}

async fn run(o: Opts) -> anyhow::Result<serde_json::Value> {
    // Hard wall-clock cap for the whole run, like the Node tool.
    let cap = o.duration + o.drain + o.connect_timeout + 600.0;
    let o2 = o.clone();
    tokio::select! {
        r = async move {
            match o2.scenario {
                Scenario::Fanout => fanout(&o2).await,
                Scenario::Throughput => throughput(&o2).await,
            }
        } => r,
        _ = tokio::time::sleep(Duration::from_secs_f64(cap)) => bail!("hard time cap reached"),
    }
}

// ------------------------------------------------------------------ clock

/// One process clock: epoch milliseconds with sub-ms precision (monotonic after start).
#[derive(Clone, Copy)]
struct Clock {
    origin: Instant,
    origin_epoch_ms: f64,
}

impl Clock {
    fn new() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            origin: Instant::now(),
            origin_epoch_ms: epoch.as_secs_f64() * 1e3,
        }
    }
    fn now_ms(&self) -> f64 {
        self.origin_epoch_ms + self.origin.elapsed().as_secs_f64() * 1e3
    }
}

// ------------------------------------------------------------------ histogram

/// Log-linear histogram, ~1 % relative precision, 1 µs .. ~1 h (same as the Node tool's).
#[derive(Clone)]
struct Hist {
    b: Vec<u64>,
    n: u64,
    max: f64,
    sum: f64,
}

impl Hist {
    const BUCKETS: usize = 2400;
    fn new() -> Self {
        Hist {
            b: vec![0; Self::BUCKETS],
            n: 0,
            max: 0.0,
            sum: 0.0,
        }
    }
    fn add(&mut self, ms: f64) {
        let ms = if ms >= 0.0 { ms } else { 0.0 };
        let i = if ms < 0.001 {
            0
        } else {
            (1 + ((ms / 0.001).ln() / 1.01f64.ln()).floor() as usize).min(Self::BUCKETS - 1)
        };
        self.b[i] += 1;
        self.n += 1;
        self.sum += ms;
        if ms > self.max {
            self.max = ms;
        }
    }
    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.b.iter_mut().zip(&other.b) {
            *a += b;
        }
        self.n += other.n;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
    fn q(&self, p: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let target = p * self.n as f64;
        let mut acc = 0u64;
        for (i, c) in self.b.iter().enumerate() {
            acc += c;
            if acc as f64 >= target {
                return Some(if i == 0 {
                    0.001
                } else {
                    self.max.min(0.001 * 1.01f64.powi(i as i32))
                });
            }
        }
        Some(self.max)
    }
    fn summary(&self) -> serde_json::Value {
        let r = |x: Option<f64>| x.map(|v| (v * 1000.0).round() / 1000.0);
        let has = self.n > 0;
        serde_json::json!({
            "n": self.n,
            "p50": r(self.q(0.5)),
            "p95": r(self.q(0.95)),
            "p99": r(self.q(0.99)),
            "max": r(has.then_some(self.max)),
            "mean": r(has.then(|| self.sum / self.n as f64)),
        })
    }
}

// ------------------------------------------------------------------ /proc sampling

#[derive(Clone, Copy)]
struct ProcSample {
    cpu_s: f64,
    rss_kb: u64,
    threads: u64,
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_sample(pid: &str, tck: f64) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_s: ticks / tck,
        rss_kb: field("VmRSS:"),
        threads: field("Threads:"),
    })
}

/// CPU% and RSS of this process and (optionally) the server over a measured span.
struct ProcMonitor {
    pid: u32,
    tck: f64,
    t0: Instant,
    self0: Option<ProcSample>,
    server0: Option<ProcSample>,
    peak_kb: Arc<AtomicU64>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

impl ProcMonitor {
    fn begin(pid: u32) -> Self {
        let tck = clk_tck();
        let server0 = (pid != 0)
            .then(|| proc_sample(&pid.to_string(), tck))
            .flatten();
        let peak_kb = Arc::new(AtomicU64::new(server0.map_or(0, |s| s.rss_kb)));
        let sampler = (pid != 0).then(|| {
            let peak = peak_kb.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tick.tick().await;
                    if let Some(s) = proc_sample(&pid.to_string(), tck) {
                        peak.fetch_max(s.rss_kb, Ordering::Relaxed);
                    }
                }
            })
        });
        ProcMonitor {
            pid,
            tck,
            t0: Instant::now(),
            self0: proc_sample("self", tck),
            server0,
            peak_kb,
            sampler,
        }
    }

    fn end(self, out: &mut serde_json::Map<String, serde_json::Value>) {
        if let Some(s) = self.sampler {
            s.abort();
        }
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let pct = |a: f64, b: f64| ((b - a) / wall * 1000.0).round() / 10.0;
        let mb = |kb: u64| (kb as f64 / 102.4).round() / 10.0;
        if let (Some(a), Some(b)) = (self.self0, proc_sample("self", self.tck)) {
            out.insert("loadgen_cpu_pct".into(), pct(a.cpu_s, b.cpu_s).into());
            out.insert("loadgen_rss_mb".into(), (b.rss_kb / 1024).into());
        }
        if self.pid == 0 {
            return;
        }
        match (self.server0, proc_sample(&self.pid.to_string(), self.tck)) {
            (Some(a), Some(b)) => {
                let peak = self.peak_kb.load(Ordering::Relaxed).max(b.rss_kb);
                out.insert("server_cpu_pct".into(), pct(a.cpu_s, b.cpu_s).into());
                out.insert("server_rss_mb_before".into(), mb(a.rss_kb).into());
                out.insert("server_rss_mb_after".into(), mb(b.rss_kb).into());
                out.insert("server_rss_mb_peak_sampled".into(), mb(peak).into());
                out.insert("server_threads".into(), b.threads.into());
            }
            _ => {
                out.insert(
                    "server_stats_error".into(),
                    format!("cannot read /proc/{}", self.pid).into(),
                );
            }
        }
    }
}

// ------------------------------------------------------------------ protocol

const MSG_SYNC: u64 = 0;
const SYNC_STEP1: u64 = 0;
const SYNC_STEP2: u64 = 1;
const SYNC_UPDATE: u64 = 2;

fn write_var_uint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn read_var_uint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// `[0 sync][sub][varUint8Array payload]`
fn sync_frame(sub: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(payload.len() + 12);
    write_var_uint(&mut buf, MSG_SYNC);
    write_var_uint(&mut buf, sub);
    write_var_uint(&mut buf, payload.len() as u64);
    buf.extend_from_slice(payload);
    buf
}

/// A sync message: (sub-type, payload). `None` for anything else (awareness, auth,
/// Chorus extensions, …), which the generator ignores.
fn parse_sync(frame: &[u8]) -> Option<(u64, &[u8])> {
    let mut pos = 0;
    if read_var_uint(frame, &mut pos)? != MSG_SYNC {
        return None;
    }
    let sub = read_var_uint(frame, &mut pos)?;
    let len = read_var_uint(frame, &mut pos)? as usize;
    let payload = frame.get(pos..pos.checked_add(len)?)?;
    Some((sub, payload))
}

/// A parsed marker `~c<client>s<seq>t<epoch-ms>~`.
#[derive(Debug, PartialEq)]
struct Marker {
    client: u64,
    seq: u64,
    ts_ms: f64,
}

fn parse_digits(b: &[u8], pos: &mut usize) -> Option<u64> {
    let start = *pos;
    let mut v = 0u64;
    while let Some(&c) = b.get(*pos) {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        *pos += 1;
    }
    (*pos > start).then_some(v)
}

fn parse_marker_at(b: &[u8], mut pos: usize) -> Option<(Marker, usize)> {
    // b[pos..] starts after "~c"
    let client = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b's')).then_some(())?;
    pos += 1;
    let seq = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b't')).then_some(())?;
    pos += 1;
    let int = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b'.')).then_some(())?;
    pos += 1;
    let start = pos;
    let frac = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b'~')).then_some(())?;
    let ts_ms = int as f64 + frac as f64 / 10f64.powi((pos - start) as i32);
    Some((Marker { client, seq, ts_ms }, pos + 1))
}

/// Calls `f` for every marker in raw update bytes.
fn scan_markers(b: &[u8], mut f: impl FnMut(Marker)) {
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'~' && b[i + 1] == b'c' {
            if let Some((m, next)) = parse_marker_at(b, i + 2) {
                f(m);
                i = next;
                continue;
            }
        }
        i += 1;
    }
}

fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The websocket URL for client `index` of `doc`.
fn client_url(o: &Opts, doc: &str, index: usize) -> anyhow::Result<String> {
    let url = o.url.replace("{doc}", &uri_encode(doc));
    let token = match (&o.chorus_app, &o.chorus_secret) {
        (Some(app), Some(secret)) => {
            let claims = SessionClaims::new(
                app.as_str(),
                format!("load-{index}"),
                doc,
                Mode::Edit,
                now_unix() + 24 * 3600,
            );
            mint_session(&Secret::new(secret.as_str()), &claims)
                .map_err(|e| anyhow!("minting a session token: {e}"))?
        }
        _ => o.token.clone(),
    };
    if token.is_empty() {
        return Ok(url);
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}token={}", uri_encode(&token)))
}

fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| {
            let n = rng.random_range(0..36u32);
            char::from_digit(n, 36).unwrap_or('x')
        })
        .collect()
}

// ------------------------------------------------------------------ client

/// What receivers do with markers.
enum Role {
    /// fanout: latency for markers from other clients.
    Fanout,
    /// throughput reader `i`: latency and highest seq seen.
    Reader(usize),
    /// throughput writer: ignores what it receives.
    Writer,
}

/// State shared by every connection task of a run.
struct Shared {
    clock: Clock,
    root: String,
    counting: AtomicBool,
    delivered: AtomicU64,
    late: AtomicU64,
    opened: AtomicU64,
    closed_unexpected: AtomicU64,
    errors: AtomicU64,
    /// throughput: highest seq seen by each reader (-1: none).
    seen: Vec<AtomicI64>,
    /// throughput: woken when a reader advances.
    progress: Notify,
}

impl Shared {
    fn new(clock: Clock, root: &str, readers: usize) -> Arc<Self> {
        Arc::new(Shared {
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
        })
    }

    fn min_seen(&self) -> i64 {
        self.seen
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .min()
            .unwrap_or(-1)
    }

    fn conn_json(&self) -> serde_json::Value {
        serde_json::json!({
            "opened": self.opened.load(Ordering::Relaxed),
            "closed_unexpected": self.closed_unexpected.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "ws_extensions": [],
        })
    }
}

enum Cmd {
    /// Insert marker `seq`; it was scheduled at `scheduled`.
    Insert { seq: u64, scheduled: Instant },
    /// Close the connection and report.
    Close,
}

/// What a connection task hands back when it ends.
struct ClientReport {
    lat: Hist,
    lag: Hist,
}

struct Client {
    index: usize,
    role: Role,
    shared: Arc<Shared>,
    doc: yrs::Doc,
    text: TextRef,
    lat: Hist,
    lag: Hist,
    marker: String,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Client {
    fn new(index: usize, role: Role, shared: Arc<Shared>) -> Self {
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text(shared.root.as_str());
        Client {
            index,
            role,
            shared,
            doc,
            text,
            lat: Hist::new(),
            lag: Hist::new(),
            marker: String::with_capacity(64),
        }
    }

    /// Handles one incoming frame. Returns true on the first SyncStep2.
    fn on_frame(&mut self, frame: &[u8], out: &mut Vec<Vec<u8>>, synced: bool) -> bool {
        let Some((sub, payload)) = parse_sync(frame) else {
            return false; // awareness, keepalives, extensions: ignored
        };
        match sub {
            SYNC_STEP1 => {
                // Answer the server's step 1 with what it lacks of our own inserts.
                use yrs::updates::decoder::Decode;
                let sv = StateVector::decode_v1(payload).unwrap_or_default();
                let update = self.doc.transact().encode_state_as_update_v1(&sv);
                out.push(sync_frame(SYNC_STEP2, &update));
                false
            }
            SYNC_STEP2 if !synced => true, // history is not counted as delivery
            SYNC_STEP2 | SYNC_UPDATE if synced => {
                self.on_update(payload);
                false
            }
            _ => false,
        }
    }

    fn on_update(&mut self, update: &[u8]) {
        if matches!(self.role, Role::Writer) {
            return;
        }
        let t_recv = self.shared.clock.now_ms();
        let counting = self.shared.counting.load(Ordering::Relaxed);
        let mut delivered = 0u64;
        let mut late = 0u64;
        let mut max_seq = None;
        let me = self.index as u64;
        let reader = matches!(self.role, Role::Reader(_));
        scan_markers(update, |m| {
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

    /// A real yrs insert at the end of the text; returns the framed update.
    fn insert_marker(&mut self, seq: u64) -> Vec<u8> {
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
        sync_frame(SYNC_UPDATE, &update)
    }
}

async fn send_all(ws: &mut Ws, out: &mut Vec<Vec<u8>>) -> anyhow::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    for f in out.drain(..) {
        ws.feed(WsMessage::Binary(f.into())).await?;
    }
    ws.flush().await?;
    Ok(())
}

/// Connects, syncs, reports the connect→synced time on `ready`, then serves
/// commands until `Close` (or the socket ends).
async fn client_task(
    mut c: Client,
    url: String,
    timeout: Duration,
    ready: oneshot::Sender<anyhow::Result<f64>>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) -> ClientReport {
    let t0 = Instant::now();
    let shared = c.shared.clone();
    let connected = tokio::time::timeout(timeout, async {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
            .await
            .context("websocket connect")?;
        shared.opened.fetch_add(1, Ordering::Relaxed);
        let sv = c.doc.transact().state_vector().encode_v1();
        ws.send(WsMessage::Binary(sync_frame(SYNC_STEP1, &sv).into()))
            .await?;
        let mut out = Vec::new();
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Binary(b))) => {
                    let done = c.on_frame(&b, &mut out, false);
                    send_all(&mut ws, &mut out).await?;
                    if done {
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
    .unwrap_or_else(|_| Err(anyhow!("connect+sync timeout")));
    let mut ws = match connected {
        Ok(ws) => {
            let _ = ready.send(Ok(t0.elapsed().as_secs_f64() * 1e3));
            ws
        }
        Err(e) => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            let _ = ready.send(Err(e));
            return ClientReport {
                lat: c.lat,
                lag: c.lag,
            };
        }
    };
    let mut out = Vec::new();
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Insert { seq, scheduled }) => {
                    let frame = c.insert_marker(seq);
                    if ws.send(WsMessage::Binary(frame.into())).await.is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    c.lag.add(scheduled.elapsed().as_secs_f64() * 1e3);
                }
                Some(Cmd::Close) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    break;
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(WsMessage::Binary(b))) => {
                    c.on_frame(&b, &mut out, true);
                    if send_all(&mut ws, &mut out).await.is_err() {
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
    }
}

/// A connected (or failed) client: its command channel and its task.
struct Handle {
    cmds: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<ClientReport>,
}

struct Connected {
    handles: Vec<Option<Handle>>,
    connect_hist: Hist,
    failures: u64,
    fail_reasons: serde_json::Map<String, serde_json::Value>,
}

/// Connects `roles.len()` clients to `doc`, at most `concurrency` attempts at once.
async fn connect_all(
    o: &Opts,
    shared: &Arc<Shared>,
    doc: &str,
    roles: Vec<Role>,
) -> anyhow::Result<Connected> {
    let sem = Arc::new(Semaphore::new(o.concurrency.max(1)));
    let timeout = Duration::from_secs_f64(o.connect_timeout);
    let mut pending = Vec::with_capacity(roles.len());
    for (i, role) in roles.into_iter().enumerate() {
        let url = client_url(o, doc, i)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let c = Client::new(i, role, shared.clone());
        let sem = sem.clone();
        let task = tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let (fwd_tx, fwd_rx) = oneshot::channel();
            let inner = tokio::spawn(client_task(c, url, timeout, fwd_tx, rx));
            let r = fwd_rx
                .await
                .unwrap_or_else(|_| Err(anyhow!("client task ended")));
            drop(permit);
            let _ = ready_tx.send(r);
            inner.await.unwrap_or_else(|_| ClientReport {
                lat: Hist::new(),
                lag: Hist::new(),
            })
        });
        pending.push((Handle { cmds: tx, task }, ready_rx));
    }
    let mut out = Connected {
        handles: Vec::new(),
        connect_hist: Hist::new(),
        failures: 0,
        fail_reasons: Default::default(),
    };
    for (h, ready) in pending {
        match ready
            .await
            .unwrap_or_else(|_| Err(anyhow!("client task ended")))
        {
            Ok(ms) => {
                out.connect_hist.add(ms);
                out.handles.push(Some(h));
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
            }
        }
    }
    Ok(out)
}

/// Closes every client and merges their histograms.
async fn close_all(handles: Vec<Option<Handle>>) -> (Hist, Hist) {
    let mut lat = Hist::new();
    let mut lag = Hist::new();
    for h in handles.iter().flatten() {
        let _ = h.cmds.send(Cmd::Close);
    }
    for h in handles.into_iter().flatten() {
        if let Ok(r) = h.task.await {
            lat.merge(&r.lat);
            lag.merge(&r.lag);
        }
    }
    (lat, lag)
}

fn iso_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn base_result(o: &Opts) -> serde_json::Map<String, serde_json::Value> {
    let mut r = serde_json::Map::new();
    let scenario = match o.scenario {
        Scenario::Fanout => "fanout",
        Scenario::Throughput => "throughput",
    };
    r.insert("scenario".into(), scenario.into());
    if !o.label.is_empty() {
        r.insert("label".into(), o.label.clone().into());
    }
    r.insert("generator".into(), "chorus-loadgen (rust)".into());
    r.insert("protocol".into(), "y-websocket".into());
    r.insert("url".into(), o.url.clone().into());
    r.insert("mode".into(), "light".into());
    r.insert("ts".into(), iso_now().into());
    r
}

fn round_to(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

// ------------------------------------------------------------------ fanout

async fn fanout(o: &Opts) -> anyhow::Result<serde_json::Value> {
    if o.clients == 0 || o.rate <= 0.0 {
        bail!("--clients and --rate must be positive");
    }
    let doc = if o.doc.is_empty() {
        format!("fanout-{}", random_id())
    } else {
        o.doc.clone()
    };
    let shared = Shared::new(Clock::new(), &o.root, 0);
    let roles = (0..o.clients).map(|_| Role::Fanout).collect();
    let conn = connect_all(o, &shared, &doc, roles).await?;
    let live: Vec<usize> = (0..conn.handles.len())
        .filter(|&i| conn.handles[i].is_some())
        .collect();
    if live.is_empty() {
        bail!(
            "no client connected: {}",
            serde_json::Value::Object(conn.fail_reasons.clone())
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mon = ProcMonitor::begin(o.server_pid);
    let total = (o.rate * o.duration).round() as u64;
    let period = Duration::from_secs_f64(1.0 / o.rate);
    let t0 = Instant::now();
    let mut seqs = vec![0u64; o.clients];
    let mut sent = 0u64;
    let mut expected = 0u64;
    let mut rr = 0usize;
    let mut alive = live.len() as u64;
    while sent < total {
        // update k is scheduled at t0 + k/rate; send everything that is due
        let scheduled = t0 + period.mul_f64(sent as f64);
        let now = Instant::now();
        if scheduled > now {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        let i = live[rr % live.len()];
        rr += 1;
        sent += 1;
        let h = conn.handles[i].as_ref().expect("live handle");
        if h.task.is_finished() {
            continue;
        }
        let seq = seqs[i];
        seqs[i] += 1;
        if h.cmds.send(Cmd::Insert { seq, scheduled }).is_ok() {
            if sent & 255 == 0 {
                // a client whose socket ended no longer receives
                alive = live
                    .iter()
                    .filter(|&&j| {
                        conn.handles[j]
                            .as_ref()
                            .is_some_and(|h| !h.task.is_finished())
                    })
                    .count() as u64;
            }
            expected += alive.saturating_sub(1);
        }
    }
    let t_load_end = Instant::now();
    let drain = Duration::from_secs_f64(o.drain);
    while shared.delivered.load(Ordering::Relaxed) < expected && t_load_end.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.counting.store(false, Ordering::Relaxed);
    let drain_s = t_load_end.elapsed().as_secs_f64();
    let mut r = base_result(o);
    mon.end(&mut r);
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let (lat, lag) = close_all(conn.handles).await;
    let ratio = (expected > 0).then(|| round_to(delivered as f64 / expected as f64, 4));
    let fields = serde_json::json!({
        "doc": doc,
        "clients": o.clients,
        "connected": live.len(),
        "connect_failures": conn.failures,
        "fail_reasons": if conn.failures > 0 { Some(conn.fail_reasons) } else { None },
        "rate": o.rate,
        "duration_s": o.duration,
        "updates_sent": sent,
        "deliveries_expected": expected,
        "deliveries": delivered,
        "delivered_ratio": ratio,
        "late_after_drain": shared.late.load(Ordering::Relaxed),
        "drain_s": round_to(drain_s, 1),
        "latency_ms": lat.summary(),
        "send_lag_ms": lag.summary(),
        "connect_sync_ms": conn.connect_hist.summary(),
        "conn": shared.conn_json(),
    });
    if let serde_json::Value::Object(m) = fields {
        r.extend(
            m.into_iter()
                .filter(|(k, v)| !(k == "fail_reasons" && v.is_null())),
        );
    }
    Ok(serde_json::Value::Object(r))
}

// ------------------------------------------------------------------ throughput

async fn throughput(o: &Opts) -> anyhow::Result<serde_json::Value> {
    if o.readers == 0 || o.window == 0 {
        bail!("--readers and --window must be positive");
    }
    let doc = if o.doc.is_empty() {
        format!("tput-{}", random_id())
    } else {
        o.doc.clone()
    };
    let r_count = o.readers;
    let shared = Shared::new(Clock::new(), &o.root, r_count);
    // Readers are clients 0..R, the writer is client R.
    let mut roles: Vec<Role> = (0..r_count).map(Role::Reader).collect();
    roles.push(Role::Writer);
    let conn = connect_all(o, &shared, &doc, roles).await?;
    if conn.failures > 0 {
        bail!(
            "clients failed to connect: {}",
            serde_json::Value::Object(conn.fail_reasons.clone())
        );
    }
    let writer = conn.handles[r_count].as_ref().expect("writer").cmds.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mon = ProcMonitor::begin(o.server_pid);
    let t0 = Instant::now();
    let end_at = t0 + Duration::from_secs_f64(o.duration);
    let mut sent = 0u64;
    let mut per_second = Vec::new();
    let mut last_acked = 0i64;
    let mut next_sec = t0 + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if now >= next_sec && next_sec <= end_at {
            let a = shared.min_seen() + 1;
            per_second.push(a - last_acked);
            last_acked = a;
            next_sec += Duration::from_secs(1);
        }
        if now >= end_at {
            break;
        }
        let acked = (shared.min_seen() + 1) as u64;
        while sent - acked < o.window {
            if writer
                .send(Cmd::Insert {
                    seq: sent,
                    scheduled: Instant::now(),
                })
                .is_err()
            {
                bail!("writer disconnected");
            }
            sent += 1;
        }
        let wake = next_sec.min(end_at).min(now + Duration::from_millis(5));
        tokio::select! {
            _ = shared.progress.notified() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let acked_at_end = (shared.min_seen() + 1) as u64;
    let t_end = Instant::now();
    let drain = Duration::from_secs_f64(o.drain);
    while ((shared.min_seen() + 1) as u64) < sent && t_end.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.counting.store(false, Ordering::Relaxed);
    let tail = (shared.min_seen() + 1) as u64 >= sent;
    let mut r = base_result(o);
    mon.end(&mut r);
    let deliveries = shared.delivered.load(Ordering::Relaxed);
    let (lat, _) = close_all(conn.handles).await;
    let avg = |s: &[i64]| {
        (!s.is_empty()).then(|| (s.iter().sum::<i64>() as f64 / s.len() as f64).round())
    };
    let k = per_second.len().min(5);
    let fields = serde_json::json!({
        "doc": doc,
        "readers": r_count,
        "window": o.window,
        "duration_s": round_to(wall, 1),
        "updates_sent": sent,
        "delivered_to_all_readers_at_end": acked_at_end,
        "updates_per_s_delivered_to_all": (acked_at_end as f64 / wall).round(),
        "first_5s_per_s_delivered_to_all": avg(&per_second[..k]),
        "last_5s_per_s_delivered_to_all": avg(&per_second[per_second.len() - k..]),
        "reader_deliveries_per_s": (deliveries as f64 / wall).round(),
        "tail_delivered_after_drain": tail,
        "per_second_delivered_to_all": per_second,
        "latency_ms": lat.summary(),
        "connect_sync_ms": conn.connect_hist.summary(),
        "conn": shared.conn_json(),
    });
    if let serde_json::Value::Object(m) = fields {
        r.extend(m);
    }
    Ok(serde_json::Value::Object(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_raw_bytes() {
        let mut b = vec![1, 2, 3];
        b.extend_from_slice(b"~c12s7t1700000000123.456~~c3s0t5.5~x~c1s~");
        let mut got = Vec::new();
        scan_markers(&b, |m| got.push(m));
        assert_eq!(
            got,
            vec![
                Marker {
                    client: 12,
                    seq: 7,
                    ts_ms: 1_700_000_000_123.456
                },
                Marker {
                    client: 3,
                    seq: 0,
                    ts_ms: 5.5
                },
            ]
        );
    }

    #[test]
    fn a_yrs_update_carries_the_marker_verbatim() {
        let shared = Shared::new(Clock::new(), "title", 0);
        let mut c = Client::new(4, Role::Fanout, shared);
        let frame = c.insert_marker(9);
        let (sub, payload) = parse_sync(&frame).unwrap();
        assert_eq!(sub, SYNC_UPDATE);
        let mut got = Vec::new();
        scan_markers(payload, |m| got.push((m.client, m.seq)));
        assert_eq!(got, vec![(4, 9)]);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Hist::new();
        for i in 1..=100 {
            h.add(i as f64);
        }
        let p50 = h.q(0.5).unwrap();
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        assert_eq!(h.q(1.0).unwrap(), 100.0);
    }

    #[test]
    fn iso_timestamp_shape() {
        let s = iso_now();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with('Z'));
    }
}
