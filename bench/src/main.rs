//! # chorus-bench — durability and load-path benchmarks against a real server
//!
//! Runs the real `chorus_server::Server` in-process (release build, sled store in a
//! temp dir) and drives it over real sockets with the end-to-end test client.
//! Every scenario is bounded in time and count and prints one JSON line.
//!
//! - `durable`: D documents, one writer each, each keeping W updates in flight;
//!   counts updates acknowledged as *saved* (durable) per second, with group
//!   commit on or off.
//! - `coldload`: a document with H single-character edits typed at random
//!   positions is written to the store (as H log records, or compacted into one
//!   snapshot); then R times a fresh server starts on that directory and a client
//!   connects: time until its step 2 arrived and was applied. The history is typed
//!   at a cursor that jumps to a random position every 64 characters.
//! - `failover`: cluster mode, R times: three `chorus` processes on a fresh
//!   PostgreSQL database and a Redis prefix; editors on the two other nodes type
//!   into a document; the owner is killed (SIGKILL); time until an edit sent after
//!   the kill is acknowledged (saved = committed) by the new owner.
//! - `storm`: a reconnect storm after a restart (`storm.rs`): C clients on D
//!   documents of a release `chorus` process reconnect at once when it comes back;
//!   time to all resynced, refusals, `/healthz` latency throughout, peak RSS.
//! - `soak`: a long run of mixed load on a release `chorus` process (`soak.rs`):
//!   typing, cursors, leaving and rejoining, host reads and external changes;
//!   RSS and edit latency per minute.
//! - `storage`: one document edited for a long run (typed at a cursor that jumps
//!   every 64 edits, three backspaces in ten, so the content grows slower than the
//!   edits),
//!   with a history point every second, three times: log only (compaction off),
//!   compacted (the defaults), compacted with history retention; the document's
//!   stored bytes (snapshot + log, history points) sampled as it goes (`storage.rs`).
//! - `probe` (internal): `/healthz` latency from a process of its own (`probe.rs`).

mod probe;
mod soak;
mod storage;
mod storm;

use anyhow::Context;
use chorus_e2e::{TestServer, YClient, APP};
use chorus_store::{DocId, DocMeta, SledStore, Store, WriteBatch};
use clap::{Parser, Subcommand};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Durable (acknowledged as saved) updates per second.
    Durable {
        /// Documents, one writer each.
        #[arg(long, default_value_t = 1)]
        docs: usize,
        /// Updates in flight per writer.
        #[arg(long, default_value_t = 64)]
        window: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Group commit on (true) or off (one fsync per write job).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        group_commit: bool,
    },
    /// Cluster mode: time from `kill -9` of a document's owner to its next acknowledged edit.
    Failover {
        /// The chorus binary to run (a release build).
        #[arg(long, default_value = "target/release/chorus")]
        bin: std::path::PathBuf,
        /// Kills to measure.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// A reconnect storm: every client of a restarted server reconnects at once.
    Storm {
        /// The chorus binary to run (a release build).
        #[arg(long, default_value = "target/release/chorus")]
        bin: std::path::PathBuf,
        /// Documents.
        #[arg(long, default_value_t = 500)]
        docs: usize,
        /// Clients, spread evenly over the documents.
        #[arg(long, default_value_t = 5000)]
        clients: usize,
        /// Paragraphs in each document's body.
        #[arg(long, default_value_t = 50)]
        paragraphs: usize,
        /// Extra lines for the server's `[limits]` table (e.g. "joins_per_sec = 0").
        #[arg(long, default_value = "")]
        limits: String,
    },
    /// Mixed load for a long time: RSS and edit latency per minute.
    Soak {
        /// The chorus binary to run (a release build).
        #[arg(long, default_value = "target/release/chorus")]
        bin: std::path::PathBuf,
        /// Minutes to run (fractions for a smoke run).
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Clients under load.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Documents they are spread over.
        #[arg(long, default_value_t = 100)]
        docs: usize,
        /// Extra lines for the server's `[limits]` table.
        #[arg(long, default_value = "")]
        limits: String,
        /// The server's `store_cache_mb` (sled's page cache; its default is 64).
        #[arg(long)]
        store_cache_mb: Option<u64>,
    },
    /// Stored bytes of one document over a long editing run: log only, compacted,
    /// compacted with history retention.
    Storage {
        /// Seconds of editing per configuration (a history point each second).
        #[arg(long, default_value_t = 120)]
        secs: u64,
        /// Edits per second.
        #[arg(long, default_value_t = 20)]
        rate: u64,
        /// `auto` history points kept with retention on.
        #[arg(long, default_value_t = 10)]
        keep: usize,
    },
    /// `/healthz` latency from a process of its own (started by `storm`).
    #[command(hide = true)]
    Probe {
        /// The server's address.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// Milliseconds between requests.
        #[arg(long, default_value_t = 20)]
        every_ms: u64,
    },
    /// Time to SyncStep2 for a document with a long typed history, loaded from the store.
    Coldload {
        /// Single-character edits in the history.
        #[arg(long, default_value_t = 100_000)]
        history: usize,
        /// Fresh server starts to measure.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Store the history compacted into one snapshot instead of as log records.
        #[arg(long)]
        compacted: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Scenario::Probe { addr, every_ms } = cli.scenario {
        return probe::run(addr, "/healthz", Duration::from_millis(every_ms));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let line = match cli.scenario {
        Scenario::Durable {
            docs,
            window,
            duration,
            group_commit,
        } => rt.block_on(durable(docs, window, duration, group_commit))?,
        Scenario::Coldload {
            history,
            runs,
            compacted,
        } => rt.block_on(coldload(history, runs, compacted))?,
        Scenario::Failover { bin, runs } => rt.block_on(failover(bin, runs))?,
        Scenario::Storm {
            bin,
            docs,
            clients,
            paragraphs,
            limits,
        } => rt.block_on(
            storm::Storm {
                docs,
                clients,
                paragraphs,
                limits: limits.replace("\\n", "\n"),
            }
            .run(&bin),
        )?,
        Scenario::Soak {
            bin,
            minutes,
            clients,
            docs,
            limits,
            store_cache_mb,
        } => rt.block_on(
            soak::Soak {
                minutes,
                clients,
                docs,
                limits: limits.replace("\\n", "\n"),
                store_cache_mb,
            }
            .run(&bin),
        )?,
        Scenario::Storage { secs, rate, keep } => {
            rt.block_on(storage::Storage { secs, rate, keep }.run())?
        }
        Scenario::Probe { .. } => unreachable!("run above"),
    };
    println!("{line}");
    Ok(())
}

async fn durable(
    docs: usize,
    window: u64,
    secs: u64,
    group_commit: bool,
) -> anyhow::Result<serde_json::Value> {
    let server = TestServer::start_with(|c| {
        c.store_group_commit = group_commit;
        c.outbound_queue_frames = 4096;
    })
    .await;
    let mut writers = Vec::new();
    for d in 0..docs {
        writers.push(
            server
                .ext_client(&format!("durable-{d}"), &format!("w{d}"))
                .await,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (d, w) in writers.into_iter().enumerate() {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let base = w.saved();
            let mut sent = base;
            while !stop.load(Ordering::Relaxed) {
                if sent - w.saved() < window {
                    sent = w.insert_title(0, "x");
                } else {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            let _ = d;
            (w, base)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut acked = 0u64;
    for t in tasks {
        let (w, base) = t.await?;
        acked += w.saved() - base;
    }
    let metrics = server.state.metrics.render();
    let flushes = metric(&metrics, "chorus_store_flushes_total");
    Ok(serde_json::json!({
        "scenario": "durable",
        "docs": docs,
        "window": window,
        "group_commit": group_commit,
        "seconds": elapsed,
        "durable_updates": acked,
        "durable_updates_per_s": (acked as f64 / elapsed).round(),
        "fsyncs": flushes,
        "updates_per_fsync": if flushes > 0.0 { (acked as f64 / flushes * 10.0).round() / 10.0 } else { 0.0 },
    }))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn coldload(
    history: usize,
    runs: usize,
    compacted: bool,
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    // Type the history: single characters at random positions, one update each.
    let (updates, snapshot, state_len) = {
        use yrs::updates::encoder::Encode;
        use yrs::{GetString, ReadTxn, StateVector, Text, Transact};
        let doc = yrs::Doc::with_client_id(7);
        let text = doc.get_or_insert_text("title");
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut updates = Vec::with_capacity(history);
        // Typing: the cursor advances one character per edit and jumps to a random
        // position every 64 edits (random positions for every edit make yrs's
        // index walk quadratic in the generator, not in the server).
        let mut cursor = 0u32;
        for i in 0..history {
            let mut txn = doc.transact_mut();
            if i % 64 == 0 {
                cursor = rng.random_range(0..=text.len(&txn));
            }
            let at = cursor;
            cursor += 1;
            let c = (b'a' + (i % 26) as u8) as char;
            text.insert(&mut txn, at, &c.to_string());
            updates.push(txn.encode_update_v1());
        }
        let txn = doc.transact();
        let snapshot = txn.encode_state_as_update_v1(&StateVector::default());
        let _ = (text.get_string(&txn), txn.state_vector().encode_v1());
        (updates, snapshot, text.len(&txn))
    };
    let mut step2_ms = Vec::with_capacity(runs);
    for run in 0..runs {
        // Every run starts from the stored form under test: a server compacts on
        // unload, so the next run would otherwise load a snapshot.
        let data = dir.path().join(format!("data-{run}"));
        write_history(&data, &updates, &snapshot, compacted)?;
        let server = TestServer::start_in(&data, |c| {
            c.compact_after_updates = u64::MAX; // measure the stored form as written
            c.compact_after_bytes = u64::MAX;
        })
        .await;
        let url = server.ws_url(APP, "cold", &server.token("cold", "reader"));
        let t0 = Instant::now();
        let c = YClient::connect(&url).await?;
        c.wait_synced_for(120).await?;
        step2_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            c.title().encode_utf16().count() as u32 == state_len,
            "incomplete load"
        );
        drop(c);
        server.stop().await?;
    }
    step2_ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| step2_ms[((step2_ms.len() as f64 - 1.0) * p).round() as usize];
    Ok(serde_json::json!({
        "scenario": "coldload",
        "history": history,
        "compacted": compacted,
        "runs": runs,
        "snapshot_bytes": snapshot.len(),
        "log_records": if compacted { 0 } else { history },
        "synced_ms_p50": (pct(0.5) * 100.0).round() / 100.0,
        "synced_ms_p99": (pct(0.99) * 100.0).round() / 100.0,
        "synced_ms_max": (pct(1.0) * 100.0).round() / 100.0,
    }))
}

/// Store `updates` as log records 1..=n of `wiki/cold`, or compacted into `snapshot`.
fn write_history(
    data: &std::path::Path,
    updates: &[Vec<u8>],
    snapshot: &[u8],
    compacted: bool,
) -> anyhow::Result<()> {
    let store = SledStore::open(data).context("opening the store")?;
    let id = DocId::new(APP, "cold");
    let meta = DocMeta {
        update_count: updates.len() as u64,
        ..DocMeta::default()
    };
    let mut batch = WriteBatch::default();
    for (i, u) in updates.iter().enumerate() {
        batch.append(&id, i as u64 + 1, u);
    }
    batch.put_meta(&id, &meta);
    store.write(batch)?;
    if compacted {
        store.compact(&id, snapshot, updates.len() as u64, &meta)?;
    }
    store.flush()?;
    Ok(())
}

async fn failover(bin: std::path::PathBuf, runs: usize) -> anyhow::Result<serde_json::Value> {
    use chorus_e2e::processes::{redis_url, Cluster};
    use chorus_e2e::{token_for, SECRETS};
    let mut times = Vec::new();
    for run in 0..runs {
        let bin = bin.clone();
        let mut cluster = tokio::task::spawn_blocking(move || {
            Cluster::new(bin, 3, |db| db.url().to_owned(), redis_url())
        })
        .await?;
        let doc = format!("failover-{run}");
        let addrs: Vec<_> = (0..3).map(|i| cluster.addr(i)).collect();
        let url = |node: usize, user: &str| {
            let token = token_for(APP, SECRETS[0], &doc, user, chorus_auth::Mode::Edit);
            format!(
                "ws://{}/v1/ws/{APP}/{doc}?token={token}&chorus=1",
                addrs[node]
            )
        };
        // The first editor on node 0 makes it the owner; the others edit through 1 and 2.
        let owner = YClient::connect(&url(0, "owner-side")).await?;
        owner.wait_synced().await?;
        let mut editors = Vec::new();
        for node in [1, 2] {
            let c = YClient::connect(&url(node, &format!("e{node}"))).await?;
            c.wait_synced().await?;
            editors.push((node, c));
        }
        for (_, c) in &editors {
            let n = c.insert_title(0, "before ");
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.saved() < n {
                anyhow::ensure!(Instant::now() < deadline, "no ack before the kill");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        drop(owner);
        let killed = cluster.nodes[0].take().context("node 0")?;
        let killed_at = Instant::now();
        drop(killed); // SIGKILL
                      // Each editor types every 20 ms; a closed one reconnects to its node with
                      // its replica, as a provider does. Done when an edit sent after the kill is
                      // acknowledged.
        let mut pending: Vec<(usize, u64)> = Vec::new();
        let elapsed = 'measure: loop {
            anyhow::ensure!(
                killed_at.elapsed() < Duration::from_secs(30),
                "not editable 30 s after the kill"
            );
            for (i, (node, c)) in editors.iter_mut().enumerate() {
                if c.closed().is_some() {
                    let state = c.state();
                    if let Ok(next) =
                        YClient::resume(&url(*node, &format!("e{node}")), &state).await
                    {
                        if next.wait_synced_or_closed(8).await.is_ok() {
                            *c = next;
                            pending.retain(|(j, _)| *j != i);
                        }
                    }
                    continue;
                }
                let n = c.insert_title(0, "after ");
                pending.push((i, n));
                if pending.iter().any(|(j, n)| *j == i && c.saved() >= *n) {
                    break 'measure killed_at.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        times.push(elapsed.as_secs_f64() * 1000.0);
        eprintln!(
            "failover run {run}: editable again after {:.0} ms",
            elapsed.as_secs_f64() * 1000.0
        );
        drop(editors);
        tokio::task::spawn_blocking(move || drop(cluster)).await?;
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.is_empty() {
        0.0
    } else if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    Ok(serde_json::json!({
        "scenario": "failover",
        "runs": runs,
        "editable_again_ms": times.iter().map(|t| t.round()).collect::<Vec<_>>(),
        "median_ms": median.round(),
        "max_ms": sorted.last().copied().unwrap_or_default().round(),
        "lease_ttl_ms": 3000,
    }))
}
