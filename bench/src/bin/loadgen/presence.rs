//! Scenario `presence`: a presence storm on one doc. Every client sends its
//! awareness state (an editor's: `user`, a `cursor` of relative positions, and
//! `t`, the send time) at `--presence-hz`, each at a random phase so the states
//! do not arrive in one burst a second; client 0 is also a typist, inserting
//! markers at `--rate` with fanout's writer loop. It measures what presence costs
//! a server next to editing: the typist's latency to every other client, the
//! latency of every awareness state to every other client, the server's CPU (user
//! and system) and RSS, and how many awareness messages a client receives.

use super::client::{close_all_reports, connect_all, Cmd, Dial, Role, Shared};
use super::load::write_markers;
use super::stats::{Clock, ProcMonitor};
use super::{base_result, finish, http_setup, random_id, round_to, Opts};
use anyhow::bail;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub async fn presence(o: &Opts) -> anyhow::Result<serde_json::Value> {
    let (clients, rate, hz) = (o.clients(), o.rate(), o.presence_hz);
    if clients < 2 || rate <= 0.0 || hz <= 0.0 {
        bail!("--clients must be at least 2, --rate and --presence-hz positive");
    }
    let doc = if o.doc.is_empty() {
        format!("presence-{}", random_id())
    } else {
        o.doc.clone()
    };
    let shared = Shared::with_presence(Clock::new(), &o.root, clients);
    let dial = Dial::new(o);
    let specs = (0..clients)
        .map(|_| (doc.clone(), Role::Presence))
        .collect();
    let mut conn = connect_all(&dial, &shared, specs, o.concurrency).await;
    let live = conn.live();
    if live.first() != Some(&0) {
        bail!(
            "the typist (client 0) did not connect: {}",
            serde_json::Value::Object(conn.fail_reasons.clone())
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mon = ProcMonitor::begin(o.server_pid);
    // One timer per client: its states go out at t0 + phase + k/hz until the load
    // ends. Phases drawn before any await (the thread's RNG stays on its thread).
    let phases: Vec<f64> = {
        use rand::Rng;
        let mut rng = rand::rng();
        live.iter().map(|_| rng.random()).collect()
    };
    let period = Duration::from_secs_f64(1.0 / hz);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(o.duration);
    let timers: Vec<_> = live
        .iter()
        .zip(phases)
        .map(|(&i, phase)| {
            let cmds = conn.handles[i].as_ref().expect("live handle").cmds.clone();
            tokio::spawn(async move {
                let mut at = t0 + period.mul_f64(phase);
                let mut clock = 0u64;
                while at < end {
                    tokio::time::sleep_until(at.into()).await;
                    clock += 1;
                    if cmds
                        .send(Cmd::Awareness {
                            clock,
                            scheduled: at,
                        })
                        .is_err()
                    {
                        break;
                    }
                    at += period;
                }
            })
        })
        .collect();
    let (sent, expected) = write_markers(&conn, &live, &[0], rate, o.duration).await;
    for t in timers {
        let _ = t.await;
    }
    // Every state scheduled is written before `presence_sent` says what to expect.
    for h in conn.handles.iter().flatten() {
        h.flushed().await;
    }
    let t_load_end = Instant::now();
    // every state goes to every other client that connected
    let receivers = live.len() as u64 - 1;
    let presence_expected = || shared.presence_sent.load(Ordering::Relaxed) * receivers;
    let drain = Duration::from_secs_f64(o.drain);
    while (shared.delivered.load(Ordering::Relaxed) < expected
        || shared.presence_fresh.load(Ordering::Relaxed) < presence_expected())
        && t_load_end.elapsed() < drain
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.counting.store(false, Ordering::Relaxed);
    let window_s = t0.elapsed().as_secs_f64();
    let drain_s = t_load_end.elapsed().as_secs_f64();
    let mut r = base_result(o);
    mon.end(&mut r);
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let p_sent = shared.presence_sent.load(Ordering::Relaxed);
    let p_expected = presence_expected();
    let p_fresh = shared.presence_fresh.load(Ordering::Relaxed);
    let report = close_all_reports(std::mem::take(&mut conn.handles)).await;
    let ratio = |got: u64, want: u64| (want > 0).then(|| round_to(got as f64 / want as f64, 4));
    let per_client_s = |n: &std::sync::atomic::AtomicU64| {
        round_to(
            n.load(Ordering::Relaxed) as f64 / window_s / live.len() as f64,
            1,
        )
    };
    let fields = serde_json::json!({
        "doc": doc,
        "clients": clients,
        "connected": live.len(),
        "connect_failures": conn.failures,
        "fail_reasons": conn.fail_reasons_json(),
        "presence_hz": hz,
        "rate": rate,
        "duration_s": o.duration,
        "drain_s": round_to(drain_s, 1),
        // the typist, as fanout reports its writers
        "updates_sent": sent,
        "deliveries_expected": expected,
        "deliveries": delivered,
        "delivered_ratio": ratio(delivered, expected),
        "late_after_drain": shared.late.load(Ordering::Relaxed),
        "latency_ms": report.lat.summary(),
        "send_lag_ms": report.lag.summary(),
        // presence
        "presence_updates_sent": p_sent,
        "presence_entries_expected": p_expected,
        "presence_entries_received": p_fresh,
        "presence_delivered_ratio": ratio(p_fresh, p_expected),
        "presence_latency_ms": report.presence.summary(),
        "presence_send_lag_ms": report.presence_lag.summary(),
        "presence_stale_entries": shared.presence_stale.load(Ordering::Relaxed),
        "presence_late_after_drain": shared.presence_late.load(Ordering::Relaxed),
        "awareness_messages_per_s_per_client": per_client_s(&shared.awareness_messages),
        "awareness_entries_per_s_per_client": per_client_s(&shared.awareness_entries),
        "connect_sync_ms": conn.connect_hist.summary(),
        "http_setup_ms": http_setup(o, &conn),
        "conn": shared.conn_json(),
    });
    Ok(finish(r, fields))
}
