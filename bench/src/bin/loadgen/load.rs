//! Scenarios `fanout` and `throughput`: latency and rate of delivery on one doc.

use super::client::{close_all, connect_all, Cmd, Connected, Dial, Role, Shared};
use super::stats::{Clock, ProcMonitor};
use super::{base_result, finish, http_setup, random_id, round_to, Opts};
use anyhow::bail;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ fanout

pub async fn fanout(o: &Opts) -> anyhow::Result<serde_json::Value> {
    let (clients, rate) = (o.clients(), o.rate());
    if clients == 0 || rate <= 0.0 {
        bail!("--clients and --rate must be positive");
    }
    let doc = if o.doc.is_empty() {
        format!("fanout-{}", random_id())
    } else {
        o.doc.clone()
    };
    let shared = Shared::new(Clock::new(), &o.root, 0);
    let dial = Dial::new(o);
    let specs = (0..clients).map(|_| (doc.clone(), Role::Fanout)).collect();
    let mut conn = connect_all(&dial, &shared, specs, o.concurrency).await;
    let live = conn.live();
    if live.is_empty() {
        bail!(
            "no client connected: {}",
            serde_json::Value::Object(conn.fail_reasons.clone())
        );
    }
    let writing: Vec<usize> = if o.writers == 0 {
        live.clone()
    } else {
        live.iter().copied().filter(|&i| i < o.writers).collect()
    };
    if writing.is_empty() {
        bail!(
            "none of the first {} clients (the writers) connected",
            o.writers
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mon = ProcMonitor::begin(o.server_pid);
    let (sent, expected) = write_markers(&conn, &live, &writing, rate, o.duration).await;
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
    let (lat, lag) = close_all(std::mem::take(&mut conn.handles)).await;
    let ratio = (expected > 0).then(|| round_to(delivered as f64 / expected as f64, 4));
    let fields = serde_json::json!({
        "doc": doc,
        "clients": clients,
        "writers": writing.len(),
        "connected": live.len(),
        "connect_failures": conn.failures,
        "fail_reasons": conn.fail_reasons_json(),
        "rate": rate,
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
        "http_setup_ms": http_setup(o, &conn),
        "conn": shared.conn_json(),
    });
    Ok(finish(r, fields))
}

/// The fanout writers' loop (presence's typist too): markers at `rate` inserts/s
/// for `duration` s, round-robin over `writing`; insert k is scheduled at
/// t0 + k/rate and everything due is sent at once. Returns (inserts sent,
/// deliveries expected: one per other live client whose socket is still open).
pub async fn write_markers(
    conn: &Connected,
    live: &[usize],
    writing: &[usize],
    rate: f64,
    duration: f64,
) -> (u64, u64) {
    let total = (rate * duration).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let t0 = Instant::now();
    let mut seqs = vec![0u64; conn.handles.len()];
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
        let i = writing[rr % writing.len()];
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
    (sent, expected)
}

// ------------------------------------------------------------------ throughput

pub async fn throughput(o: &Opts) -> anyhow::Result<serde_json::Value> {
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
    let dial = Dial::new(o);
    let mut specs: Vec<(String, Role)> = (0..r_count)
        .map(|i| (doc.clone(), Role::Reader(i)))
        .collect();
    specs.push((doc.clone(), Role::Writer));
    let mut conn = connect_all(&dial, &shared, specs, o.concurrency).await;
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
    let (lat, _) = close_all(std::mem::take(&mut conn.handles)).await;
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
    Ok(finish(r, fields))
}
