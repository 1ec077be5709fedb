//! Smoke test of `chorus-loadgen`: the real server in-process, the real binary as a
//! subprocess, a tiny fanout run. Checks delivery and the shape of the JSON line;
//! speed is never asserted.

use chorus_e2e::{TestServer, APP, SECRETS};

fn run_loadgen(args: Vec<String>) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chorus-loadgen"))
        .args(&args)
        .output()
        .expect("run chorus-loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("one JSON line");
    println!("{line}");
    serde_json::from_str(line).expect("JSON line")
}

fn chorus_args(server: &TestServer, scenario: &str) -> Vec<String> {
    [
        "--url",
        &format!("ws://{}/v1/ws/{APP}/{{doc}}", server.addr),
        "--chorus-app",
        APP,
        "--chorus-secret",
        SECRETS[0],
        "--scenario",
        scenario,
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_update_to_every_other_client() {
    let server = TestServer::start().await;
    let mut args = chorus_args(&server, "fanout");
    args.extend(
        [
            "--clients",
            "5",
            "--rate",
            "20",
            "--duration",
            "2",
            "--drain",
            "10",
        ]
        .map(String::from),
    );
    let r = tokio::task::spawn_blocking(move || run_loadgen(args))
        .await
        .unwrap();
    assert_eq!(r["scenario"], "fanout");
    assert_eq!(r["connected"], 5);
    assert_eq!(r["updates_sent"], 40);
    assert_eq!(r["deliveries_expected"], 40 * 4);
    assert_eq!(r["delivered_ratio"], 1.0, "{r}");
    assert_eq!(r["latency_ms"]["n"], 160);
    for k in ["p50", "p95", "p99", "max"] {
        assert!(r["latency_ms"][k].is_f64(), "latency_ms.{k} missing: {r}");
    }
    assert!(r["send_lag_ms"]["p50"].is_f64(), "{r}");
    assert!(r["connect_sync_ms"]["p50"].is_f64(), "{r}");
    assert!(r["connect_sync_ms"]["p99"].is_f64(), "{r}");
    assert_eq!(r["conn"]["closed_unexpected"], 0, "{r}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_counts_updates_every_reader_received() {
    let server = TestServer::start().await;
    let mut args = chorus_args(&server, "throughput");
    args.extend(
        [
            "--readers",
            "3",
            "--window",
            "8",
            "--duration",
            "2",
            "--drain",
            "10",
        ]
        .map(String::from),
    );
    let r = tokio::task::spawn_blocking(move || run_loadgen(args))
        .await
        .unwrap();
    assert_eq!(r["scenario"], "throughput");
    assert_eq!(r["tail_delivered_after_drain"], true, "{r}");
    assert!(r["updates_sent"].as_u64().unwrap() > 0, "{r}");
    assert!(r["latency_ms"]["p50"].is_f64(), "{r}");
    assert_eq!(r["conn"]["closed_unexpected"], 0, "{r}");
    server.stop().await.unwrap();
}
