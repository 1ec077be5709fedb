//! `storm`: a reconnect storm after a restart. A release `chorus` process serves
//! D documents with C clients spread over them; it is stopped (SIGTERM: every
//! client gets 1012) and started again on the same data directory and port, and
//! every client reconnects at once with its replica, retrying as y-websocket does
//! (100 ms × 2ⁿ, at most 2.5 s, no jitter) whenever a connect fails or is refused.
//!
//! Reported: time from the new process listening to every client resynced (its
//! step 2 received and its title what was stored), connect attempts and refusals
//! (503), `/healthz` latency sampled every 20 ms by a process of its own
//! (`probe.rs`) throughout, and the new process's peak RSS (`VmHWM`) next to the old one's
//! RSS with every client connected.

use crate::probe::HealthProbe;
use chorus_e2e::processes::{free_port, Process};
use chorus_e2e::{token_for, YClient, APP, SECRETS};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run measures.
pub struct Storm {
    /// Documents.
    pub docs: usize,
    /// Clients, spread evenly over the documents.
    pub clients: usize,
    /// Paragraphs in each document's body (its size).
    pub paragraphs: usize,
    /// Extra `[limits]` lines for the server's configuration.
    pub limits: String,
}

pub(crate) fn config(dir: &Path, limits: &str) -> std::path::PathBuf {
    config_with(dir, "", limits)
}

/// [`config`] with `top` (top-level `key = value` lines) before the tables.
pub(crate) fn config_with(dir: &Path, top: &str, limits: &str) -> std::path::PathBuf {
    let path = dir.join("chorus.toml");
    std::fs::write(
        &path,
        format!(
            "{top}\n[limits]\nmax_connections_per_address = 0\n{limits}\n\n[[apps]]\nid = \"{APP}\"\nsecrets = [\"{}\", \"{}\"]\n",
            SECRETS[0], SECRETS[1]
        ),
    )
    .expect("config written");
    path
}

pub(crate) fn start(bin: &Path, config: &Path, data: &Path, port: u16) -> Process {
    Process::spawn(
        Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data)
            .env("CHORUS_LOG", "warn,chorus=info"),
        Some("listening on http://"),
    )
}

/// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

impl Storm {
    /// Run it against the binary `bin`; one JSON object.
    pub async fn run(&self, bin: &Path) -> anyhow::Result<serde_json::Value> {
        let dir = tempfile::tempdir()?;
        let config = config(dir.path(), &self.limits);
        let data = dir.path().join("data");
        let port = free_port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let url = |doc: usize, user: usize| {
            let doc = format!("storm-{doc}");
            let token = token_for(
                APP,
                SECRETS[0],
                &doc,
                &format!("u{user}"),
                chorus_auth::Mode::Edit,
            );
            format!("ws://{addr}/v1/ws/{APP}/{doc}?token={token}")
        };
        let mut server = start(bin, &config, &data, port);

        // Each document gets a title naming it and a body of `paragraphs`.
        let mut writers = Vec::new();
        for d in 0..self.docs {
            let w = YClient::connect(&url(d, 0)).await?;
            w.wait_synced_for(30).await?;
            w.insert_title(0, &format!("storm document {d}"));
            for p in 0..self.paragraphs {
                w.push_paragraph(&format!(
                    "paragraph {p} of document {d}: some text to resync"
                ));
            }
            writers.push(w);
        }
        let expected: Vec<String> = (0..self.docs)
            .map(|d| format!("storm document {d}"))
            .collect();

        // Every client connects and syncs, a few hundred at a time.
        let mut clients: Vec<YClient> = Vec::with_capacity(self.clients);
        for i in 0..self.clients {
            clients.push(YClient::connect(&url(i % self.docs, i + 1)).await?);
            if clients.len().is_multiple_of(250) {
                wait_all_synced(&clients, &expected, self.docs, Duration::from_secs(60)).await?;
            }
        }
        wait_all_synced(&clients, &expected, self.docs, Duration::from_secs(60)).await?;
        drop(writers);
        let rss_before_kib = status_kib(server.child.id(), "VmRSS");

        // Restart: SIGTERM closes every socket with 1012, the store is flushed.
        let states: Vec<Vec<u8>> = clients.iter().map(YClient::state).collect();
        server.signal("TERM");
        server.wait(30);
        drop(clients);
        let server = start(bin, &config, &data, port);
        let started = Instant::now();
        let pid = server.child.id();

        // /healthz every 20 ms from a process of its own, until every client is back.
        let probe = HealthProbe::start(addr, Duration::from_millis(20))?;
        let done = Arc::new(AtomicBool::new(false));
        let rss_peak_sampler = {
            let done = done.clone();
            tokio::spawn(async move {
                let mut peak = 0;
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(status_kib(pid, "VmRSS"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                peak
            })
        };

        // Every client reconnects at once, with its replica, backing off as
        // y-websocket does when a connect fails.
        let attempts = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let mut reconnecting = Vec::with_capacity(states.len());
        for (i, state) in states.into_iter().enumerate() {
            let url = url(i % self.docs, i + 1);
            let (attempts, refused) = (attempts.clone(), refused.clone());
            reconnecting.push(tokio::spawn(async move {
                let mut failures = 0u32;
                loop {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    match YClient::resume(&url, &state).await {
                        Ok(c) => return c,
                        Err(e) => {
                            if format!("{e:#}").contains("503") {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            let backoff = (100u64 << failures.min(5)).min(2500);
                            failures += 1;
                            tokio::time::sleep(Duration::from_millis(backoff)).await;
                        }
                    }
                }
            }));
        }
        let mut clients = Vec::with_capacity(reconnecting.len());
        for task in reconnecting {
            clients.push(task.await?);
        }
        let connected_ms = started.elapsed().as_secs_f64() * 1000.0;
        wait_all_synced(&clients, &expected, self.docs, Duration::from_secs(120)).await?;
        let resynced_ms = started.elapsed().as_secs_f64() * 1000.0;
        done.store(true, Ordering::Relaxed);
        let samples = probe.finish()?;
        let rss_peak_kib = rss_peak_sampler.await?.max(status_kib(pid, "VmHWM"));
        let mut latencies: Vec<f64> = samples.iter().map(|(ms, _)| *ms).collect();
        latencies.sort_by(f64::total_cmp);
        let not_ok = samples.iter().filter(|(_, s)| *s != 200).count();
        let output = server.output();
        drop(clients);
        drop(server);
        Ok(serde_json::json!({
            "scenario": "storm",
            "docs": self.docs,
            "clients": self.clients,
            "paragraphs": self.paragraphs,
            "limits": self.limits,
            "all_connected_ms": connected_ms.round(),
            "all_resynced_ms": resynced_ms.round(),
            "connect_attempts": attempts.load(Ordering::Relaxed),
            "refused_503": refused.load(Ordering::Relaxed),
            "healthz_samples": samples.len(),
            "healthz_not_200": not_ok,
            "healthz_p50_ms": (percentile(&latencies, 0.5) * 10.0).round() / 10.0,
            "healthz_p99_ms": (percentile(&latencies, 0.99) * 10.0).round() / 10.0,
            "healthz_max_ms": (latencies.last().copied().unwrap_or(0.0) * 10.0).round() / 10.0,
            "rss_all_connected_before_mib": rss_before_kib / 1024,
            "rss_peak_after_restart_mib": rss_peak_kib / 1024,
            "server_warnings": output.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count(),
        }))
    }
}

/// Wait until every client has had its step 2 and shows its document's title.
async fn wait_all_synced(
    clients: &[YClient],
    expected: &[String],
    docs: usize,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut first_unsynced = 0;
    loop {
        while first_unsynced < clients.len() {
            let c = &clients[first_unsynced];
            if let Some(closed) = c.closed() {
                anyhow::bail!("client {first_unsynced} was closed: {closed:?}");
            }
            if !c.is_synced() || c.title() != expected[first_unsynced % docs] {
                break;
            }
            first_unsynced += 1;
        }
        if first_unsynced == clients.len() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {} clients not resynced within {within:?}",
            clients.len() - first_unsynced,
            clients.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
