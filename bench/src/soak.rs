//! `soak`: a long run of mixed load against a release `chorus` process, to see
//! whether memory or latency drift.
//!
//! C clients spread over D documents stay connected while, all the time:
//! someone types (a character into a random client's title, 100 per second in
//! all), cursors move (an awareness update from a random client, 100 per second),
//! people leave and come back (a random client disconnects and resumes with its
//! replica, 2 per second), the host reads drafts (`GET …/docs/{doc}`, 2 per second)
//! and pushes external changes (`PUT …/content`, one every 5 s). Beside that load,
//! five probe pairs (an editor and an observer of a document of their own) measure
//! edit latency: every 200 ms the editor types a character and the time until the
//! observer has it is recorded.
//!
//! Reported per minute: the server's RSS at the end of the minute, the probes'
//! p50 / p99 / max edit latency, the slowest `/healthz` (sampled every second), and
//! how many operations of each kind ran (and failed). Flat RSS and p99 over the run
//! is the target; the first and last minutes are printed side by side. At the end
//! a fresh process loads every document (one client each) on the same data: its
//! RSS is what the grown documents take, to tell document growth from drift of
//! the long-running process.

use crate::storm::{config_with, percentile, start, status_kib};
use chorus_e2e::processes::free_port;
use chorus_e2e::{host_token, http, http_with_body, token_for, YClient, APP, SECRETS};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one run does.
pub struct Soak {
    /// Length of the run, in minutes (fractions for a smoke run).
    pub minutes: f64,
    /// Clients under load, spread evenly over the documents.
    pub clients: usize,
    /// Documents.
    pub docs: usize,
    /// Extra `[limits]` lines for the server's configuration.
    pub limits: String,
    /// The server's `store_cache_mb` (sled's page cache), if not its default.
    pub store_cache_mb: Option<u64>,
}

/// Probe pairs (each on a document of its own, besides `docs`).
const PROBES: usize = 5;

/// Counts of what the load did.
#[derive(Default)]
struct Counts {
    typed: AtomicU64,
    cursor_moves: AtomicU64,
    rejoins: AtomicU64,
    rejoin_failures: AtomicU64,
    host_reads: AtomicU64,
    host_read_failures: AtomicU64,
    external_changes: AtomicU64,
    external_change_failures: AtomicU64,
    probe_timeouts: AtomicU64,
    /// Statuses of the host calls that failed (the first few).
    failure_statuses: Mutex<Vec<u16>>,
}

impl Counts {
    fn host_call(&self, status: u16, ok: &AtomicU64, failed: &AtomicU64) {
        if status == 200 {
            ok.fetch_add(1, Ordering::Relaxed);
            return;
        }
        failed.fetch_add(1, Ordering::Relaxed);
        let mut statuses = self.failure_statuses.lock().unwrap();
        if statuses.len() < 20 {
            statuses.push(status);
        }
    }
}

/// Samples taken while the run lasts: (seconds since start, value).
#[derive(Default)]
struct Samples {
    edit_ms: Mutex<Vec<(f64, f64)>>,
    healthz_ms: Mutex<Vec<(f64, f64)>>,
    rss_kib: Mutex<Vec<(f64, f64)>>,
}

/// Run `f` every `period` until `stop`.
fn every(
    period: Duration,
    stop: Arc<AtomicBool>,
    mut f: impl FnMut() -> Option<tokio::task::JoinHandle<()>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if let Some(task) = f() {
                drop(task);
            }
        }
    })
}

impl Soak {
    /// Run it against the binary `bin`; one JSON object.
    pub async fn run(&self, bin: &Path) -> anyhow::Result<serde_json::Value> {
        let dir = tempfile::tempdir()?;
        let top = self
            .store_cache_mb
            .map(|mb| format!("store_cache_mb = {mb}"))
            .unwrap_or_default();
        let config = config_with(dir.path(), &top, &self.limits);
        let data = dir.path().join("data");
        let port = free_port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let url = move |doc: &str, user: &str| {
            let token = token_for(APP, SECRETS[0], doc, user, chorus_auth::Mode::Edit);
            format!("ws://{addr}/v1/ws/{APP}/{doc}?token={token}")
        };
        let server = start(bin, &config, &data, port);
        let pid = server.child.id();
        let host = Arc::new(host_token(APP, SECRETS[0], None));

        // Everyone connects, a few hundred at a time.
        let mut slots = Vec::with_capacity(self.clients);
        for i in 0..self.clients {
            let doc = format!("soak-{}", i % self.docs);
            let client = YClient::connect(&url(&doc, &format!("u{i}"))).await?;
            if i < self.docs {
                // Each document's first client gives it a title, so it is stored
                // before the host reads it.
                client.wait_synced_for(60).await?;
                client.insert_title(0, &format!("soak document {i} "));
            } else if i % 200 == 199 {
                client.wait_synced_for(60).await?;
            }
            slots.push(Mutex::new(Arc::new(client)));
        }
        let slots = Arc::new(slots);
        let mut probes = Vec::new();
        for p in 0..PROBES {
            let doc = format!("probe-{p}");
            let editor = YClient::connect(&url(&doc, &format!("probe-editor-{p}"))).await?;
            let observer = YClient::connect(&url(&doc, &format!("probe-observer-{p}"))).await?;
            editor.wait_synced_for(60).await?;
            observer.wait_synced_for(60).await?;
            probes.push((editor, observer));
        }
        let rss_connected_kib = status_kib(pid, "VmRSS");

        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let samples = Arc::new(Samples::default());
        let started = Instant::now();
        let since = move || started.elapsed().as_secs_f64();
        let mut load = Vec::new();
        let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(17)));
        let pick = {
            let (rng, n) = (rng.clone(), self.clients);
            move || rng.lock().unwrap().random_range(0..n)
        };

        // Typing: 100 characters a second, each from a random client.
        load.push(every(Duration::from_millis(10), stop.clone(), {
            let (slots, counts, pick) = (slots.clone(), counts.clone(), pick.clone());
            move || {
                let client = slots[pick()].lock().unwrap().clone();
                client.insert_title(0, "a");
                counts.typed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }));
        // Cursors: 100 awareness updates a second.
        load.push(every(Duration::from_millis(10), stop.clone(), {
            let (slots, counts, pick) = (slots.clone(), counts.clone(), pick.clone());
            let clock = AtomicU64::new(1);
            move || {
                let i = pick();
                let client = slots[i].lock().unwrap().clone();
                let c = clock.fetch_add(1, Ordering::Relaxed);
                client.set_awareness(
                    c,
                    &format!(
                        r#"{{"user":{{"name":"u{i}"}},"cursor":{{"anchor":{{"item":{{"client":1,"clock":{}}}}},"head":{{"item":{{"client":1,"clock":{}}}}}}}}}"#,
                        c % 97,
                        c % 89
                    ),
                );
                counts.cursor_moves.fetch_add(1, Ordering::Relaxed);
                None
            }
        }));
        // Leaving and coming back: 2 a second, each resuming with its replica.
        load.push(every(Duration::from_millis(500), stop.clone(), {
            let (slots, counts, pick) = (slots.clone(), counts.clone(), pick.clone());
            let docs = self.docs;
            move || {
                let (slots, counts, i) = (slots.clone(), counts.clone(), pick());
                let url = url(&format!("soak-{}", i % docs), &format!("u{i}"));
                Some(tokio::spawn(async move {
                    let state = slots[i].lock().unwrap().state();
                    match YClient::resume(&url, &state).await {
                        Ok(client) => {
                            *slots[i].lock().unwrap() = Arc::new(client);
                            counts.rejoins.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            counts.rejoin_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }))
            }
        }));
        // Host reads: 2 a second.
        load.push(every(Duration::from_millis(500), stop.clone(), {
            let (counts, host, rng, docs) = (counts.clone(), host.clone(), rng.clone(), self.docs);
            move || {
                let doc = rng.lock().unwrap().random_range(0..docs);
                let (counts, host) = (counts.clone(), host.clone());
                Some(tokio::spawn(async move {
                    let auth = format!("Bearer {host}");
                    let path = format!("/v1/apps/{APP}/docs/soak-{doc}/draft");
                    let (status, _, _) =
                        http(addr, "GET", &path, &[("Authorization", &auth)]).await;
                    counts.host_call(status, &counts.host_reads, &counts.host_read_failures);
                }))
            }
        }));
        // External changes: one every 5 s, a new body for a random document.
        load.push(every(Duration::from_secs(5), stop.clone(), {
            let (counts, host, rng, docs) = (counts.clone(), host.clone(), rng.clone(), self.docs);
            let n = AtomicU64::new(0);
            move || {
                let doc = rng.lock().unwrap().random_range(0..docs);
                let n = n.fetch_add(1, Ordering::Relaxed);
                let (counts, host) = (counts.clone(), host.clone());
                Some(tokio::spawn(async move {
                    let auth = format!("Bearer {host}");
                    let path = format!("/v1/apps/{APP}/docs/soak-{doc}/content");
                    let body = serde_json::json!({
                        "html": format!("<h2>Change {n}</h2><p>The host rewrote this at change {n}.</p><ul><li><p>one</p></li><li><p>two</p></li></ul>")
                    })
                    .to_string();
                    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
                    let (status, _, _) = http_with_body(addr, "PUT", &path, &headers, body.as_bytes()).await;
                    counts.host_call(status, &counts.external_changes, &counts.external_change_failures);
                }))
            }
        }));
        // The server: RSS and /healthz every second.
        let sampler = {
            let (stop, samples) = (stop.clone(), samples.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let _ = http(addr, "GET", "/healthz", &[]).await;
                    let now = since();
                    samples
                        .healthz_ms
                        .lock()
                        .unwrap()
                        .push((now, t.elapsed().as_secs_f64() * 1e3));
                    samples
                        .rss_kib
                        .lock()
                        .unwrap()
                        .push((now, status_kib(pid, "VmRSS") as f64));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        // Probes: type, then wait for the observer to have it.
        let mut probe_tasks = Vec::new();
        for (editor, observer) in probes {
            let (stop, samples, counts) = (stop.clone(), samples.clone(), counts.clone());
            probe_tasks.push(tokio::spawn(async move {
                let mut typed = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    editor.insert_title(typed, "x");
                    typed += 1;
                    let deadline = t + Duration::from_secs(5);
                    while observer.title().len() < typed as usize && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if observer.title().len() < typed as usize {
                        counts.probe_timeouts.fetch_add(1, Ordering::Relaxed);
                        return (editor, observer);
                    }
                    samples
                        .edit_ms
                        .lock()
                        .unwrap()
                        .push((since(), t.elapsed().as_secs_f64() * 1e3));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                (editor, observer)
            }));
        }

        tokio::time::sleep(Duration::from_secs_f64(self.minutes * 60.0)).await;
        stop.store(true, Ordering::Relaxed);
        for task in load {
            task.await?;
        }
        sampler.await?;
        for task in probe_tasks {
            drop(task.await?);
        }
        // Host calls and rejoins still on their way finish before the server stops.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_peak_kib = status_kib(pid, "VmHWM");
        let rss_end_kib = status_kib(pid, "VmRSS");
        let output = server.output();
        drop(slots);
        drop(server);

        // What the grown documents alone take: a fresh process on the same data,
        // every document loaded by one client. Next to the end RSS, it separates
        // document growth from what the long-running process accumulated.
        let server = start(bin, &config, &data, port);
        let mut readers = Vec::new();
        let names = (0..self.docs)
            .map(|d| format!("soak-{d}"))
            .chain((0..PROBES).map(|p| format!("probe-{p}")));
        for doc in names {
            let reader = YClient::connect(&url(&doc, "reloader")).await?;
            reader.wait_synced_for(60).await?;
            readers.push(reader);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_reloaded_kib = status_kib(server.child.id(), "VmRSS");
        let title_chars: usize = readers.iter().map(|r| r.title().chars().count()).sum();
        drop(readers);
        drop(server);

        // Per minute (or per tenth of the run, for runs shorter than ten minutes).
        let window = if self.minutes >= 10.0 {
            60.0
        } else {
            self.minutes * 6.0
        };
        let windows = (self.minutes * 60.0 / window).round() as usize;
        let in_window = |v: &[(f64, f64)], w: usize| -> Vec<f64> {
            let mut out: Vec<f64> = v
                .iter()
                .filter(|(t, _)| *t >= w as f64 * window && *t < (w + 1) as f64 * window)
                .map(|(_, x)| *x)
                .collect();
            out.sort_by(f64::total_cmp);
            out
        };
        let round = |x: f64| (x * 10.0).round() / 10.0;
        let edit = samples.edit_ms.lock().unwrap().clone();
        let healthz = samples.healthz_ms.lock().unwrap().clone();
        let rss = samples.rss_kib.lock().unwrap().clone();
        let rows: Vec<serde_json::Value> = (0..windows)
            .map(|w| {
                let e = in_window(&edit, w);
                let h = in_window(&healthz, w);
                let r = in_window(&rss, w);
                serde_json::json!({
                    "until_s": ((w + 1) as f64 * window).round(),
                    "rss_mib": round(rss.iter().rev().find(|(t, _)| *t < (w + 1) as f64 * window).map_or(0.0, |(_, k)| *k) / 1024.0),
                    "rss_max_mib": round(r.last().copied().unwrap_or(0.0) / 1024.0),
                    "edit_samples": e.len(),
                    "edit_p50_ms": round(percentile(&e, 0.5)),
                    "edit_p99_ms": round(percentile(&e, 0.99)),
                    "edit_max_ms": round(e.last().copied().unwrap_or(0.0)),
                    "healthz_max_ms": round(h.last().copied().unwrap_or(0.0)),
                })
            })
            .collect();
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Ok(serde_json::json!({
            "scenario": "soak",
            "minutes": self.minutes,
            "clients": self.clients,
            "docs": self.docs,
            "probes": PROBES,
            "limits": self.limits,
            "rss_all_connected_mib": rss_connected_kib / 1024,
            "rss_peak_mib": rss_peak_kib / 1024,
            "rss_end_mib": rss_end_kib / 1024,
            "rss_reloaded_mib": rss_reloaded_kib / 1024,
            "title_chars_at_end": title_chars,
            "store_cache_mb": self.store_cache_mb,
            "typed": c(&counts.typed),
            "cursor_moves": c(&counts.cursor_moves),
            "rejoins": c(&counts.rejoins),
            "rejoin_failures": c(&counts.rejoin_failures),
            "host_reads": c(&counts.host_reads),
            "host_read_failures": c(&counts.host_read_failures),
            "external_changes": c(&counts.external_changes),
            "external_change_failures": c(&counts.external_change_failures),
            "probe_timeouts": c(&counts.probe_timeouts),
            "host_failure_statuses": *counts.failure_statuses.lock().unwrap(),
            "server_warnings": output.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count(),
            "windows": rows,
        }))
    }
}
