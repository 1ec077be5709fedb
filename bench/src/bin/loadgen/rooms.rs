//! Scenarios `rooms` (many docs, one client each) and `idle` (many silent
//! connections): what each doc / connection costs the server in RSS, and whether
//! the memory comes back once every client has left.

use super::client::{close_all, connect_all, Cmd, Dial, Role, Shared};
use super::stats::{mb, server_sample, Clock, ProcMonitor};
use super::{base_result, finish, http_setup, random_id, round_to, DocMode, Opts};
use anyhow::bail;
use std::time::{Duration, Instant};

async fn sleep_s(s: f64) {
    if s > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(s)).await;
    }
}

pub async fn rooms(o: &Opts) -> anyhow::Result<serde_json::Value> {
    if o.docs == 0 {
        bail!("--docs must be positive");
    }
    let prefix = if o.doc_prefix.is_empty() {
        format!("room-{}-", random_id())
    } else {
        o.doc_prefix.clone()
    };
    let shared = Shared::new(Clock::new(), &o.root, 0);
    let dial = Dial::new(o);
    let before = server_sample(o.server_pid);
    let mon = ProcMonitor::begin(o.server_pid);
    let t0 = Instant::now();
    let specs = (0..o.docs)
        .map(|i| (format!("{prefix}{i}"), Role::Quiet))
        .collect();
    let mut conn = connect_all(&dial, &shared, specs, o.concurrency).await;
    let connect_all_s = t0.elapsed().as_secs_f64();
    let live = conn.live();
    // one edit each
    for &i in &live {
        if let Some(h) = &conn.handles[i] {
            let _ = h.cmds.send(Cmd::Insert {
                seq: 0,
                scheduled: Instant::now(),
            });
        }
    }
    for &i in &live {
        if let Some(h) = &conn.handles[i] {
            h.flushed().await;
        }
    }
    sleep_s(o.settle).await;
    let after = server_sample(o.server_pid);
    let mut r = base_result(o);
    mon.end(&mut r);
    let per_doc = before.zip(after).map(|(b, a)| {
        round_to(
            (a.rss_kb as f64 - b.rss_kb as f64) / live.len().max(1) as f64,
            1,
        )
    });
    close_all(std::mem::take(&mut conn.handles)).await;
    sleep_s(o.settle).await;
    let after_close = server_sample(o.server_pid);
    sleep_s(o.after_wait).await;
    let after_wait = server_sample(o.server_pid);
    let ratio = before
        .zip(after_wait)
        .map(|(b, a)| round_to(a.rss_kb as f64 / b.rss_kb.max(1) as f64, 3));
    let fields = serde_json::json!({
        "docs": o.docs,
        "connected": live.len(),
        "connect_failures": conn.failures,
        "fail_reasons": conn.fail_reasons_json(),
        "concurrency": o.concurrency,
        "connect_all_s": round_to(connect_all_s, 1),
        "connect_sync_ms": conn.connect_hist.summary(),
        "http_setup_ms": http_setup(o, &conn),
        "server_rss_kb_per_doc": per_doc,
        "server_rss_mb_start": before.map(|s| mb(s.rss_kb)),
        "server_rss_mb_after_disconnect": after_close.map(|s| mb(s.rss_kb)),
        "settle_s": o.settle,
        "after_wait_s": o.after_wait,
        "server_rss_mb_after_wait": after_wait.map(|s| mb(s.rss_kb)),
        "server_rss_after_wait_vs_start": ratio,
        "server_rss_back_within_10pct": ratio.map(|x| x <= 1.1),
        "conn": shared.conn_json(),
    });
    Ok(finish(r, fields))
}

pub async fn idle(o: &Opts) -> anyhow::Result<serde_json::Value> {
    if o.clients() == 0 {
        bail!("--clients must be positive");
    }
    let single = o.doc_mode == DocMode::Single;
    let base = [&o.doc, &o.doc_prefix]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("idle-{}", random_id()));
    let shared = Shared::new(Clock::new(), &o.root, 0);
    let dial = Dial::new(o);
    let before = server_sample(o.server_pid);
    let mon = ProcMonitor::begin(o.server_pid);
    let t0 = Instant::now();
    let specs = (0..o.clients())
        .map(|i| {
            let doc = if single {
                base.clone()
            } else {
                format!("{base}-{i}")
            };
            (doc, Role::Quiet)
        })
        .collect();
    let mut conn = connect_all(&dial, &shared, specs, o.concurrency).await;
    let connect_all_s = t0.elapsed().as_secs_f64();
    let live = conn.live();
    // hold idle (keepalives only)
    let hold_start = server_sample(o.server_pid);
    sleep_s(o.hold).await;
    let after = server_sample(o.server_pid);
    let mut r = base_result(o);
    mon.end(&mut r);
    let still_open = live
        .iter()
        .filter(|&&i| {
            conn.handles[i]
                .as_ref()
                .is_some_and(|h| !h.task.is_finished())
        })
        .count();
    let per_conn = before.zip(after).map(|(b, a)| {
        round_to(
            (a.rss_kb as f64 - b.rss_kb as f64) / live.len().max(1) as f64,
            1,
        )
    });
    let idle_cpu = hold_start
        .zip(after)
        .map(|(h, a)| round_to((a.cpu_s - h.cpu_s) / o.hold.max(1e-9) * 100.0, 1));
    close_all(std::mem::take(&mut conn.handles)).await;
    sleep_s(o.settle).await;
    let after_close = server_sample(o.server_pid);
    let fields = serde_json::json!({
        "clients": o.clients(),
        "doc_mode": if single { "single" } else { "distinct" },
        "connected": live.len(),
        "still_open_after_hold": still_open,
        "connect_failures": conn.failures,
        "fail_reasons": conn.fail_reasons_json(),
        "hold_s": o.hold,
        "settle_s": o.settle,
        "connect_all_s": round_to(connect_all_s, 1),
        "connect_sync_ms": conn.connect_hist.summary(),
        "http_setup_ms": http_setup(o, &conn),
        "server_rss_kb_per_conn": per_conn,
        "server_idle_cpu_pct": idle_cpu,
        "server_rss_mb_start": before.map(|s| mb(s.rss_kb)),
        "server_rss_mb_after_disconnect": after_close.map(|s| mb(s.rss_kb)),
        "conn": shared.conn_json(),
    });
    Ok(finish(r, fields))
}
