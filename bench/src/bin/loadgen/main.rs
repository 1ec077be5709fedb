//! # chorus-loadgen — a Yjs websocket load generator in Rust
//!
//! Speaks the standard y-websocket protocol (y-protocols sync framing over a
//! websocket, `ws://HOST:PORT/<prefix>/{doc}[?token=…]`) and the Hocuspocus framing
//! (`--protocol hocuspocus`), and can prepare docs over y-sweet's HTTP API
//! (`--setup ysweet`), so it drives Chorus and the peers it is compared with
//! (@y/websocket-server, @hocuspocus/server, y-sweet). It mirrors the scenarios,
//! flags and one-line JSON output of the shared Node generator
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
//! Scenarios (`load.rs`, `rooms.rs`, `coldload.rs`, `presence.rs`, `joinstorm.rs`):
//! - `fanout`: 1 doc, N clients; together they make `--rate` inserts/s round-robin
//!   for `--duration` s; latency is send → receipt at every *other* client.
//! - `throughput`: 1 doc, 1 writer + R readers; the writer keeps at most `--window`
//!   inserts in flight, an insert counts once *every* reader has received it.
//! - `rooms`: M docs with one client each, one edit each; server RSS per doc, and
//!   after every client left (+ `--after-wait`).
//! - `idle`: C silent clients on one doc or C docs; server RSS per connection.
//! - `coldload`: a long history uploaded, then fresh clients time their SyncStep2;
//!   `--phase upload|load` lets a script restart the server in between.
//! - `presence`: N clients on one doc each send an awareness state at
//!   `--presence-hz` while client 0 types at `--rate`; typist and presence latency
//!   to every other client, and the server's CPU (user and system).
//! - `joinstorm`: a `--doc-bytes` document uploaded, then N fresh clients join at
//!   once; time until each one's SyncStep2 arrived, and the server's RSS peak.

mod client;
mod coldload;
mod joinstorm;
mod load;
mod presence;
mod proto;
mod rooms;
mod setup;
mod stats;

use anyhow::bail;
use clap::{Parser, ValueEnum};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Fanout,
    Throughput,
    Rooms,
    Idle,
    Coldload,
    Presence,
    Joinstorm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DocMode {
    /// idle: every client on one doc.
    Single,
    /// idle: one doc per client.
    Distinct,
}

/// coldload, joinstorm: which part of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Build, upload, verify, then time fresh clients while the uploader stays connected.
    All,
    /// Build, upload and verify only (prints the doc id); then restart the server.
    Upload,
    /// Time fresh clients on `--doc` (uploaded before, e.g. by `--phase upload`).
    Load,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::All => "all",
            Phase::Upload => "upload",
            Phase::Load => "load",
        }
    }
}

/// Command-line flags (names follow the Node generator's).
#[derive(Parser, Debug, Clone)]
#[command(name = "chorus-loadgen", about = "Yjs websocket load generator (Rust)")]
struct Opts {
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "fanout")]
    scenario: Scenario,
    /// Websocket URL template; `{doc}` is replaced by the (URI-encoded) doc id.
    /// Several, comma-separated (the nodes of a cluster): client i uses the
    /// (i mod n)-th.
    #[arg(long, default_value = "ws://127.0.0.1:1234/{doc}")]
    url: String,
    /// Wire protocol.
    #[arg(long, value_enum, default_value = "y-websocket")]
    protocol: proto::Protocol,
    /// Static token: `?token=` (y-websocket), the Auth frame (hocuspocus), or the
    /// server token for the setup API (`--setup ysweet`).
    #[arg(long, default_value = "")]
    token: String,
    /// Per-doc HTTP setup before connecting.
    #[arg(long, value_enum, default_value = "none")]
    setup: setup::Setup,
    /// Base URL of the setup API (y-sweet).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    setup_url: String,
    /// Chorus: mint an HS256 session token per doc and client with this app secret.
    #[arg(long, requires = "chorus_app")]
    chorus_secret: Option<String>,
    /// Chorus: the app id the minted tokens are issued for.
    #[arg(long, requires = "chorus_secret")]
    chorus_app: Option<String>,
    /// Doc id for single-doc scenarios (default: random per run).
    #[arg(long, default_value = "")]
    doc: String,
    /// Prefix of generated doc ids (rooms, idle distinct; default: random).
    #[arg(long, default_value = "")]
    doc_prefix: String,
    /// Root Y.Text the inserts go into (Chorus allows `title` and `body`).
    #[arg(long, default_value = "title")]
    root: String,
    /// fanout, idle, presence, joinstorm: number of clients (default 10;
    /// joinstorm 150).
    #[arg(long)]
    clients: Option<usize>,
    /// fanout: total inserts per second over all clients (default 200); presence:
    /// the typist's (client 0) inserts per second (default 10).
    #[arg(long)]
    rate: Option<f64>,
    /// presence: awareness updates per second of every client (each at a random
    /// phase).
    #[arg(long, default_value_t = 1.0)]
    presence_hz: f64,
    /// joinstorm: bytes of text in the uploaded document.
    #[arg(long, default_value_t = 20_000_000)]
    doc_bytes: usize,
    /// joinstorm: bytes of text per uploaded update (an update stays under 256 KiB).
    #[arg(long, default_value_t = 20_000)]
    chunk_bytes: usize,
    /// fanout: only the first W clients write (0 = every client); the others read.
    #[arg(long, default_value_t = 0)]
    writers: usize,
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
    /// rooms: number of documents.
    #[arg(long, default_value_t = 1000)]
    docs: usize,
    /// idle: one doc for all clients or one each.
    #[arg(long, value_enum, default_value = "single")]
    doc_mode: DocMode,
    /// idle: seconds to hold the connections before measuring.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// rooms, idle: seconds to wait before sampling RSS (after connecting, after disconnecting).
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// rooms: seconds to wait after the after-disconnect sample before one more
    /// (documents unloading), `server_rss_mb_after_wait`.
    #[arg(long, default_value_t = 0.0)]
    after_wait: f64,
    /// coldload: number of single-char inserts in the history.
    #[arg(long, default_value_t = 100_000)]
    history: u32,
    /// coldload: inserts per uploaded update message.
    #[arg(long, default_value_t = 1000)]
    chunk: usize,
    /// coldload: number of fresh-client measurements.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// coldload, joinstorm: all in one run, or upload / load in two (restart the
    /// server in between).
    #[arg(long, value_enum, default_value = "all")]
    phase: Phase,
    /// coldload: seed of the insert positions.
    #[arg(long, default_value_t = 1)]
    seed: u32,
    /// Ms between keepalive frames (query-awareness); -1: the protocol's default
    /// (hocuspocus 20000, y-websocket none; none in presence, whose clients are
    /// never silent).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    keepalive: i64,
    /// Max concurrent connection attempts (setup included).
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

impl Opts {
    /// `--clients`, or the scenario's default.
    fn clients(&self) -> usize {
        self.clients.unwrap_or(match self.scenario {
            Scenario::Joinstorm => 150,
            _ => 10,
        })
    }

    /// `--rate`, or the scenario's default (presence: one typist's keystrokes).
    fn rate(&self) -> f64 {
        self.rate.unwrap_or(match self.scenario {
            Scenario::Presence => 10.0,
            _ => 200.0,
        })
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (idle holds thousands of
/// sockets); returns the soft limit now in force.
fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current
}

fn main() {
    let o = Opts::parse();
    let nofile = raise_nofile();
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
        Ok(mut line) => {
            if let (Some(m), Some(n)) = (line.as_object_mut(), nofile) {
                m.insert("loadgen_nofile".into(), n.into());
            }
            println!("{line}")
        }
        Err(e) => {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::exit(1);
        }
    }
}

async fn run(o: Opts) -> anyhow::Result<serde_json::Value> {
    // Hard wall-clock cap for the whole run, like the Node tool.
    let cap =
        o.duration + o.drain + o.connect_timeout + o.hold + 2.0 * o.settle + o.after_wait + 600.0;
    let o2 = o.clone();
    tokio::select! {
        r = async move {
            match o2.scenario {
                Scenario::Fanout => load::fanout(&o2).await,
                Scenario::Throughput => load::throughput(&o2).await,
                Scenario::Rooms => rooms::rooms(&o2).await,
                Scenario::Idle => rooms::idle(&o2).await,
                Scenario::Coldload => coldload::coldload(&o2).await,
                Scenario::Presence => presence::presence(&o2).await,
                Scenario::Joinstorm => joinstorm::joinstorm(&o2).await,
            }
        } => r,
        _ = tokio::time::sleep(Duration::from_secs_f64(cap)) => bail!("hard time cap reached"),
    }
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

/// The fields every JSON line starts with.
fn base_result(o: &Opts) -> serde_json::Map<String, serde_json::Value> {
    let mut r = serde_json::Map::new();
    let scenario = o
        .scenario
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    r.insert("scenario".into(), scenario.into());
    if !o.label.is_empty() {
        r.insert("label".into(), o.label.clone().into());
    }
    r.insert("generator".into(), "chorus-loadgen (rust)".into());
    r.insert("protocol".into(), o.protocol.name().into());
    match o.setup {
        setup::Setup::None => {
            r.insert("url".into(), o.url.clone().into());
        }
        setup::Setup::Ysweet => {
            r.insert(
                "url".into(),
                format!("from ysweet setup via {}", o.setup_url).into(),
            );
            r.insert("setup".into(), "ysweet".into());
        }
    }
    r.insert("mode".into(), "light".into());
    r.insert("ts".into(), iso_now().into());
    r
}

/// The run's JSON line: `r` (the common fields) with the scenario's `fields`,
/// leaving out the optional ones that do not apply (the Node tool's `undefined`):
/// `fail_reasons` without failures, `http_setup_ms` without setup.
fn finish(
    mut r: serde_json::Map<String, serde_json::Value>,
    fields: serde_json::Value,
) -> serde_json::Value {
    const OPTIONAL: [&str; 2] = ["fail_reasons", "http_setup_ms"];
    if let serde_json::Value::Object(m) = fields {
        r.extend(
            m.into_iter()
                .filter(|(k, v)| !(v.is_null() && OPTIONAL.contains(&k.as_str()))),
        );
    }
    serde_json::Value::Object(r)
}

/// `http_setup_ms` when there is an HTTP setup.
fn http_setup(o: &Opts, conn: &client::Connected) -> Option<serde_json::Value> {
    (o.setup != setup::Setup::None).then(|| conn.setup_hist.summary())
}

fn round_to(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamp_shape() {
        let s = iso_now();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with('Z'));
    }

    #[test]
    fn flags_parse() {
        let o = Opts::try_parse_from([
            "chorus-loadgen",
            "--scenario",
            "idle",
            "--protocol",
            "hocuspocus",
            "--doc-mode",
            "distinct",
            "--keepalive",
            "-1",
            "--setup",
            "ysweet",
            "--phase",
            "load",
        ])
        .unwrap();
        assert_eq!(o.scenario, Scenario::Idle);
        assert_eq!(o.protocol, proto::Protocol::Hocuspocus);
        assert_eq!(o.doc_mode, DocMode::Distinct);
        assert_eq!(o.phase, Phase::Load);
        assert_eq!(o.keepalive, -1);
        assert_eq!(base_result(&o)["scenario"], "idle");
        assert_eq!((o.clients(), o.rate()), (10, 200.0));
    }

    #[test]
    fn scenario_defaults_of_clients_and_rate() {
        let parse = |args: &[&str]| {
            Opts::try_parse_from(std::iter::once("chorus-loadgen").chain(args.iter().copied()))
                .unwrap()
        };
        let o = parse(&["--scenario", "presence"]);
        assert_eq!((o.clients(), o.rate(), o.presence_hz), (10, 10.0, 1.0));
        let o = parse(&["--scenario", "joinstorm", "--phase", "upload"]);
        assert_eq!(
            (o.clients(), o.doc_bytes, o.chunk_bytes),
            (150, 20_000_000, 20_000)
        );
        let o = parse(&["--scenario", "presence", "--clients", "3", "--rate", "2"]);
        assert_eq!((o.clients(), o.rate()), (3, 2.0));
    }
}
