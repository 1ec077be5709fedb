//! Real `chorus` processes for cluster tests and benchmarks: a [`Process`] keeps a
//! child's output (printed if the test fails) and sends it signals; a [`Cluster`]
//! is n nodes of one cluster on a fresh PostgreSQL database and a Redis channel
//! prefix of their own.

use crate::{http, APP, SECRETS};
use chorus_store::TestDatabase;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1, below the kernel's ephemeral range (the TLS fixtures'
/// servers take theirs the same way).
pub use chorus_tls_fixture::free_port;

/// The key a test cluster's nodes sign their bus messages with.
pub const CLUSTER_KEY: &str = "chorus-e2e: the test cluster's bus key";

/// The Redis the tests use: `CHORUS_TEST_REDIS` or 127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("CHORUS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A child process whose output is kept (printed if the test fails).
pub struct Process {
    /// The child.
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Process {
    /// Spawn `cmd`; if `ready` is given, wait (30 s at most) until a line of its output contains it.
    pub fn spawn(cmd: &mut Command, ready: Option<&str>) -> Process {
        Process::try_spawn(cmd, ready)
            .unwrap_or_else(|output| panic!("{cmd:?} did not start:\n{output}"))
    }

    /// [`Process::spawn`], but a process that exits or stays silent before `ready`
    /// is reported as its output instead of a panic.
    pub fn try_spawn(cmd: &mut Command, ready: Option<&str>) -> Result<Process, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, tx, ready) = (log.clone(), tx.clone(), ready.map(str::to_owned));
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if ready.as_deref().is_some_and(|r| line.contains(r)) {
                        let _ = tx.send(());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut process = Process { child, log };
        if ready.is_some() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                    break;
                }
                let exited = matches!(process.child.try_wait(), Ok(Some(_)));
                if exited || Instant::now() > deadline {
                    let _ = process.child.kill();
                    let _ = process.child.wait();
                    // Let the reader threads drain what the child wrote last.
                    std::thread::sleep(Duration::from_millis(100));
                    let output = std::mem::take(&mut *process.log.lock().unwrap());
                    return Err(output);
                }
            }
        }
        Ok(process)
    }

    /// Everything it printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Send `signal` (`KILL`, `TERM`, `STOP`, `CONT`, …).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Wait for the process to exit (at most `secs`); its exit code.
    pub fn wait(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("did not exit within {secs}s:\n{}", self.log.lock().unwrap());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- output of pid {}:\n{}",
                self.child.id(),
                self.log.lock().unwrap()
            );
        }
    }
}

/// Three (or n) nodes of one cluster.
pub struct Cluster {
    _db: TestDatabase,
    bin: PathBuf,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// What the nodes use as their store and bus (maybe through a relay).
    store: String,
    bus: String,
    prefix: String,
    /// Each node's port (kept across restarts).
    pub ports: Vec<u16>,
    /// The nodes; `None` while one is down.
    pub nodes: Vec<Option<Process>>,
}

impl Cluster {
    /// Start `n` nodes of binary `bin` on a fresh database (`store` makes the URL the
    /// nodes use from it) and the bus `bus`; returns once every node hears every other.
    pub fn new(
        bin: impl Into<PathBuf>,
        n: usize,
        store: impl FnOnce(&TestDatabase) -> String,
        bus: String,
    ) -> Cluster {
        let db = TestDatabase::create();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("chorus.toml");
        std::fs::write(
            &config,
            format!(
                "cluster_keys = [\"{CLUSTER_KEY}\"]\n\n[[apps]]\nid = \"{APP}\"\nsecrets = [\"{}\", \"{}\"]\n",
                SECRETS[0], SECRETS[1]
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            store: store(&db),
            prefix: format!("chorus-test:{}", db.name()),
            _db: db,
            bin: bin.into(),
            dir,
            config,
            bus,
            ports: (0..n).map(|_| free_port()).collect(),
            nodes: Vec::new(),
        };
        for i in 0..n {
            let node = cluster.spawn_on_a_free_port(i);
            cluster.nodes.push(Some(node));
        }
        cluster.wait_until_all_hear_each_other();
        cluster
    }

    /// First start of node `i`: if its port was taken after [`free_port`] chose
    /// it (another test's process), choose another; restarts keep the port.
    fn spawn_on_a_free_port(&mut self, i: usize) -> Process {
        for _ in 0..5 {
            match self.try_spawn(i) {
                Ok(node) => return node,
                Err(output) if output.contains("Address already in use") => {
                    self.ports[i] = free_port();
                }
                Err(output) => panic!("node-{i} did not start:\n{output}"),
            }
        }
        panic!("node-{i}: five ports in a row were taken");
    }

    fn spawn(&self, i: usize) -> Process {
        self.try_spawn(i)
            .unwrap_or_else(|output| panic!("node-{i} did not start:\n{output}"))
    }

    fn try_spawn(&self, i: usize) -> Result<Process, String> {
        let data = self.dir.path().join(format!("data-{i}"));
        Process::try_spawn(
            Command::new(&self.bin)
                .args(["serve", "--config"])
                .arg(&self.config)
                .arg("--bind")
                .arg(format!("127.0.0.1:{}", self.ports[i]))
                .arg("--data-dir")
                .arg(&data)
                .env("CHORUS_STORE", &self.store)
                .env("CHORUS_BUS", &self.bus)
                .env("CHORUS_BUS_PREFIX", &self.prefix)
                .env("CHORUS_NODE_ID", format!("node-{i}"))
                .env("CHORUS_LOG", "info"),
            Some("listening on http://"),
        )
    }

    /// Where node `i` listens.
    pub fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }

    /// The nodes that are up.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// Start node `i` again (same port and id).
    pub fn restart(&mut self, i: usize) {
        let node = self.spawn(i);
        self.nodes[i] = Some(node);
    }

    /// Wait until every live node hears every live node (15 s at most).
    pub fn wait_until_all_hear_each_other(&self) {
        let n = self.live().len();
        let deadline = Instant::now() + Duration::from_secs(15);
        for i in self.live() {
            loop {
                let metrics = block_on(metrics_of(self.addr(i)));
                if metric(&metrics, "chorus_bus_nodes_up") == Some(n as f64) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node-{i} does not hear {n} nodes:\n{metrics}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Run `f` to completion from synchronous code inside a multi-threaded runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// `GET /metrics` of a node.
pub async fn metrics_of(addr: SocketAddr) -> String {
    let (_, _, body) = http(addr, "GET", "/metrics", &[]).await;
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of an unlabelled metric in `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
