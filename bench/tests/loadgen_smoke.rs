//! Smoke test of `chorus-loadgen`: the real server in-process, the real binary as a
//! subprocess, tiny runs of every scenario (and of the y-sweet setup against a
//! stand-in API). Checks delivery and the shape of the JSON line; speed is never
//! asserted.

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

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn run_async(args: Vec<String>) -> serde_json::Value {
    tokio::task::spawn_blocking(move || run_loadgen(args))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_reports_rss_per_doc_and_after_everyone_left() {
    let server = TestServer::start().await;
    // The server runs in this process: its RSS is ours.
    let pid = std::process::id().to_string();
    let args = with(
        chorus_args(&server, "rooms"),
        &[
            "--docs",
            "20",
            "--concurrency",
            "5",
            "--settle",
            "0.2",
            "--after-wait",
            "0.3",
            "--server-pid",
            &pid,
        ],
    );
    let r = run_async(args).await;
    assert_eq!(r["scenario"], "rooms");
    assert_eq!(r["docs"], 20);
    assert_eq!(r["connected"], 20, "{r}");
    assert_eq!(r["connect_failures"], 0, "{r}");
    assert_eq!(r["connect_sync_ms"]["n"], 20, "{r}");
    for k in [
        "server_rss_kb_per_doc",
        "server_rss_mb_start",
        "server_rss_mb_after_disconnect",
        "server_rss_mb_after_wait",
        "server_rss_after_wait_vs_start",
        "server_cpu_pct",
    ] {
        assert!(r[k].is_number(), "{k} missing: {r}");
    }
    assert!(r["server_rss_back_within_10pct"].is_boolean(), "{r}");
    assert_eq!(r["after_wait_s"], 0.3);
    assert_eq!(r["conn"]["opened"], 20, "{r}");
    assert_eq!(r["conn"]["closed_unexpected"], 0, "{r}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_holds_every_connection_on_one_doc_or_many() {
    let server = TestServer::start().await;
    let pid = std::process::id().to_string();
    for (mode, clients) in [("single", "30"), ("distinct", "10")] {
        let args = with(
            chorus_args(&server, "idle"),
            &[
                "--clients",
                clients,
                "--doc-mode",
                mode,
                "--hold",
                "0.5",
                "--settle",
                "0.2",
                "--server-pid",
                &pid,
            ],
        );
        let r = run_async(args).await;
        let n: u64 = clients.parse().unwrap();
        assert_eq!(r["scenario"], "idle");
        assert_eq!(r["doc_mode"], mode);
        assert_eq!(r["connected"], n, "{r}");
        assert_eq!(r["still_open_after_hold"], n, "{r}");
        assert!(r["server_rss_kb_per_conn"].is_number(), "{r}");
        assert!(r["server_idle_cpu_pct"].is_number(), "{r}");
        assert!(r["server_rss_mb_after_disconnect"].is_number(), "{r}");
        assert!(r["loadgen_nofile"].as_u64().unwrap() >= 1024, "{r}");
        assert_eq!(r["conn"]["closed_unexpected"], 0, "{r}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coldload_times_fresh_clients_on_an_uploaded_history() {
    let server = TestServer::start().await;
    let args = with(
        chorus_args(&server, "coldload"),
        &["--history", "2000", "--chunk", "250", "--runs", "3"],
    );
    let r = run_async(args).await;
    assert_eq!(r["scenario"], "coldload");
    assert_eq!(r["phase"], "all");
    assert_eq!(r["history_inserts"], 2000);
    assert_eq!(r["chunks"], 8);
    assert_eq!(r["runs"], 3);
    assert_eq!(r["all_complete"], true, "{r}");
    assert_eq!(r["all_runs"].as_array().unwrap().len(), 3);
    assert_eq!(r["all_runs"][0]["len"], 2000);
    assert!(r["step2_bytes"].as_u64().unwrap() > 2000, "{r}");
    for k in [
        "median_step2_recv_ms",
        "median_synced_applied_ms",
        "median_open_ms",
        "first_step2_recv_ms",
        "local_build_ms",
        "upload_and_verify_ms",
    ] {
        assert!(r[k].is_number(), "{k} missing: {r}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coldload_phases_load_the_doc_from_the_store_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, |_| {}).await;
    let args = with(
        chorus_args(&server, "coldload"),
        &["--history", "1500", "--chunk", "500", "--phase", "upload"],
    );
    let up = run_async(args).await;
    assert_eq!(up["phase"], "upload");
    assert_eq!(up["chunks"], 3);
    assert!(up.get("median_step2_recv_ms").is_none(), "{up}");
    let doc = up["doc"].as_str().unwrap().to_owned();
    server.stop().await.unwrap();

    let server = TestServer::start_in(&data, |_| {}).await;
    let args = with(
        chorus_args(&server, "coldload"),
        &[
            "--history",
            "1500",
            "--runs",
            "2",
            "--phase",
            "load",
            "--doc",
            &doc,
        ],
    );
    let r = run_async(args).await;
    assert_eq!(r["phase"], "load");
    assert_eq!(r["doc"], doc.as_str());
    assert_eq!(r["all_complete"], true, "{r}");
    assert!(r.get("upload_and_verify_ms").is_none(), "{r}");
    assert!(r["first_step2_recv_ms"].is_number(), "{r}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_delivers_states_and_the_typists_markers_to_every_other_client() {
    let server = TestServer::start().await;
    let pid = std::process::id().to_string();
    // The y-websocket endpoint, and the Hocuspocus one (its framing around the
    // same awareness messages).
    let hocuspocus = format!("ws://{}/v1/hocuspocus/{APP}", server.addr);
    for protocol in ["y-websocket", "hocuspocus"] {
        let mut args = with(
            chorus_args(&server, "presence"),
            &[
                "--clients",
                "6",
                "--presence-hz",
                "5",
                "--rate",
                "10",
                "--duration",
                "2",
                "--drain",
                "10",
                "--server-pid",
                &pid,
                "--protocol",
                protocol,
            ],
        );
        if protocol == "hocuspocus" {
            args[1] = hocuspocus.clone();
        }
        let r = run_async(args).await;
        assert_eq!(r["scenario"], "presence");
        assert_eq!(r["protocol"], protocol);
        assert_eq!(r["connected"], 6, "{r}");
        // the typist's markers reached the 5 others
        assert_eq!(r["updates_sent"], 20, "{r}");
        assert_eq!(r["deliveries_expected"], 20 * 5, "{r}");
        assert_eq!(r["delivered_ratio"], 1.0, "{r}");
        // every client's states reached the others, Chorus stamping `user` but
        // keeping `t` (and the cursor: a replaced one would still carry `t`)
        let sent = r["presence_updates_sent"].as_u64().unwrap();
        assert!(sent >= 6 * 9, "{r}");
        assert_eq!(r["presence_entries_expected"], sent * 5, "{r}");
        assert!(r["presence_delivered_ratio"].as_f64().unwrap() > 0.9, "{r}");
        let lat = &r["presence_latency_ms"];
        assert!(lat["n"].as_u64().unwrap() >= sent * 5 * 9 / 10, "{r}");
        for k in ["p50", "p95", "p99", "max"] {
            assert!(lat[k].is_f64(), "presence_latency_ms.{k} missing: {r}");
        }
        assert!(
            r["awareness_entries_per_s_per_client"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        for k in [
            "server_cpu_pct",
            "server_user_cpu_pct",
            "server_sys_cpu_pct",
        ] {
            assert!(r[k].is_number(), "{k} missing: {r}");
        }
        assert_eq!(r["conn"]["closed_unexpected"], 0, "{r}");
        assert_eq!(r["conn"]["errors"], 0, "{r}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joinstorm_gives_every_fresh_client_the_whole_document() {
    let server = TestServer::start().await;
    let pid = std::process::id().to_string();
    let args = with(
        chorus_args(&server, "joinstorm"),
        &[
            "--clients",
            "10",
            "--doc-bytes",
            "1000000",
            "--chunk-bytes",
            "20000",
            "--server-pid",
            &pid,
        ],
    );
    let r = run_async(args).await;
    assert_eq!(r["scenario"], "joinstorm");
    assert_eq!(r["phase"], "all");
    assert_eq!(r["chunks"], 50, "{r}");
    assert_eq!(r["connected"], 10, "{r}");
    assert_eq!(r["all_synced"], true, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["synced_ms"]["n"], 10, "{r}");
    for k in ["p50", "p95", "p99", "max"] {
        assert!(r["synced_ms"][k].is_f64(), "synced_ms.{k} missing: {r}");
    }
    // every client's SyncStep2 holds the uploaded text
    assert!(r["step2_bytes_min"].as_u64().unwrap() >= 1_000_000, "{r}");
    for k in [
        "server_rss_mb_before",
        "server_peak_rss_mb",
        "upload_and_verify_ms",
    ] {
        assert!(r[k].is_number(), "{k} missing: {r}");
    }
    assert_eq!(r["conn"]["closed_unexpected"], 0, "{r}");
    server.stop().await.unwrap();
}

/// A stand-in for y-sweet's document API that hands out Chorus URLs and tokens:
/// `POST /doc/new` → `{docId}`, `POST /doc/:id/auth` → `{url, token}`.
async fn fake_ysweet(server_addr: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                // head + a small body: read until the body's length is in
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                    if n == 0 {
                        return;
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                let body = if path == "/doc/new" {
                    r#"{"docId":"x"}"#.to_owned()
                } else {
                    let doc = path
                        .strip_prefix("/doc/")
                        .and_then(|p| p.strip_suffix("/auth"))
                        .unwrap_or("");
                    serde_json::json!({
                        "url": format!("ws://{server_addr}/v1/ws/{APP}/"),
                        "token": chorus_e2e::token_for(APP, SECRETS[0], doc, "ysweet", chorus_auth::Mode::Edit),
                    })
                    .to_string()
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ysweet_setup_gets_the_url_and_token_over_http() {
    let server = TestServer::start().await;
    let api = fake_ysweet(server.addr).await;
    let args: Vec<String> = [
        "--setup",
        "ysweet",
        "--setup-url",
        &format!("http://{api}"),
        "--scenario",
        "fanout",
        "--clients",
        "3",
        "--rate",
        "20",
        "--duration",
        "1",
        "--drain",
        "10",
        "--threads",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = run_async(args).await;
    assert_eq!(r["setup"], "ysweet", "{r}");
    assert_eq!(r["connected"], 3, "{r}");
    assert_eq!(r["delivered_ratio"], 1.0, "{r}");
    assert_eq!(r["http_setup_ms"]["n"], 3, "{r}");
    server.stop().await.unwrap();
}
