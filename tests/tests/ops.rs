//! Health, readiness, metrics and graceful shutdown, over real HTTP.

use chorus_e2e::{eventually, TestServer};

async fn get(server: &TestServer, path: &str) -> (u16, String) {
    let (status, _, body) = chorus_e2e::http(server.addr, "GET", path, &[]).await;
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let server = TestServer::start().await;
    assert_eq!(get(&server, "/healthz").await.0, 200);
    assert_eq!(get(&server, "/readyz").await.0, 200);
    let a = server.client("m", "alice").await;
    let b = server.client("m", "bob").await;
    a.insert_title(0, "x");
    eventually(10, "relay", || b.title() == "x").await.unwrap();
    let (status, text) = get(&server, "/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("chorus_connections_open 2\n"), "{text}");
    assert!(text.contains("chorus_documents_loaded 1\n"));
    assert!(text.contains("chorus_messages_in_total{type=\"sync_update\"} 1\n"));
    assert!(text.contains("chorus_messages_out_total{type=\"sync_update\"} 1\n"));
    // The histograms saw what happened: one document load, the relayed edit (and the
    // handshakes' step 2s), the group commits that stored it.
    assert!(
        text.contains("chorus_document_load_seconds_count 1\n"),
        "{text}"
    );
    let count = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_count ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(count(&text, "chorus_fanout_delay_seconds") >= 1, "{text}");
    // The edit's group commit may still be on its way.
    let mut text = text;
    for _ in 0..100 {
        if count(&text, "chorus_store_commit_seconds") >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        text = get(&server, "/metrics").await.1;
    }
    assert!(count(&text, "chorus_store_commit_seconds") >= 1, "{text}");
    // Webhook delivery counters are exported (this server has no callback URL).
    assert!(
        text.contains("chorus_webhooks_delivered_total 0\n"),
        "{text}"
    );
    assert!(text.contains("chorus_webhooks_pending 0\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_socket_with_1012() {
    let server = TestServer::start().await;
    let a = server.client("bye", "alice").await;
    let b = server.client("bye", "bob").await;
    server.stop().await.unwrap();
    eventually(10, "both closed with 1012", || {
        a.closed().is_some_and(|(c, _)| c == 1012) && b.closed().is_some_and(|(c, _)| c == 1012)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_mints_tokens_that_the_demo_app_accepts() {
    let server = TestServer::start_with(|c| {
        c.demo = true;
        c.demo_secret = Some("demo-secret-for-tests-0123456789abcdef".into());
    })
    .await;
    let (status, page) = get(&server, "/demo").await;
    assert_eq!(status, 200);
    assert!(page.contains("WebsocketProvider"));
    let (status, body) = get(&server, "/demo/token?user=zoe&doc=welcome").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    let token = body["token"].as_str().unwrap();
    let c = chorus_e2e::YClient::connect(&server.ws_url("demo", "welcome", token))
        .await
        .unwrap();
    c.wait_synced().await.unwrap();
    assert_eq!(get(&server, "/demo/token?mode=admin").await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_routes_do_not_exist_without_demo_mode() {
    let server = TestServer::start().await;
    assert_eq!(get(&server, "/demo/token?user=zoe").await.0, 404);
    assert_eq!(get(&server, "/demo").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_get_a_keepalive_that_stock_clients_accept() {
    use futures_util::StreamExt;
    let server = TestServer::start_with(|c| c.keepalive_secs = 1).await;
    let url = server.ws_url(chorus_e2e::APP, "quiet", &server.token("quiet", "u"));
    let mut ws = chorus_e2e::raw_connect(&url).await.unwrap();
    // First the server's step 1; then, with nothing to say, the keepalive.
    let mut frames = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline && frames.len() < 3 {
        if let Ok(Some(Ok(m))) =
            tokio::time::timeout(std::time::Duration::from_secs(3), ws.next()).await
        {
            frames.push(m.into_data().to_vec());
        }
    }
    assert_eq!(frames[0][..2], [0, 0], "step 1 first");
    assert_eq!(frames[1], [1, 1, 0], "then an empty awareness update");
    let chorus_protocol::Message::Awareness(body) =
        chorus_protocol::Message::decode(&bytes::Bytes::from(frames[1].clone())).unwrap()
    else {
        panic!("keepalive must decode as awareness")
    };
    assert!(chorus_protocol::decode_awareness(&body, 1)
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_is_nosniff_with_a_content_security_policy() {
    let server = TestServer::start_with(|c| {
        c.demo = true;
        c.demo_secret = Some("demo-secret-for-tests-0123456789abcdef".into());
    })
    .await;
    for path in [
        "/healthz",
        "/metrics",
        "/v1/apps/demo/docs/welcome/draft",
        "/no/such/route",
        "/demo/token?user=zoe&doc=welcome",
        "/demo",
    ] {
        let (status, headers, _) = chorus_e2e::http(server.addr, "GET", path, &[]).await;
        assert_eq!(
            headers.get("x-content-type-options").map(String::as_str),
            Some("nosniff"),
            "{path} ({status})"
        );
        let csp = headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path} ({status}) has no CSP"));
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        if path == "/demo" {
            assert!(csp.contains("script-src 'self'"), "{csp}");
            assert!(!csp.contains("unsafe-eval"), "{csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        }
        assert_eq!(
            headers.get("referrer-policy").map(String::as_str),
            Some("no-referrer"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_external_takes_json_only_and_demo_tokens_a_valid_document() {
    let server = TestServer::start_with(|c| {
        c.demo = true;
        c.demo_secret = Some("demo-secret-for-tests-0123456789abcdef".into());
    })
    .await;
    let body = br#"{"doc":"welcome","html":"<p>from a form</p>"}"#;
    // What a cross-site form can send without asking first.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, _, _) = chorus_e2e::http_with_body(
            server.addr,
            "POST",
            "/demo/external",
            &[("content-type", ct)],
            body,
        )
        .await;
        assert_eq!(status, 415, "{ct}");
    }
    let (status, _, reply) = chorus_e2e::http_with_body(
        server.addr,
        "POST",
        "/demo/external",
        &[("content-type", "application/json; charset=utf-8")],
        body,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    for bad in [
        "/demo/token?user=zoe&doc=..%2Fx",
        "/demo/token?user=zoe&doc=a%20b",
        "/demo/token?user=&doc=welcome",
        "/demo/token?user=zoe%0A&doc=welcome",
    ] {
        assert_eq!(get(&server, bad).await.0, 400, "{bad}");
    }
}

/// The keepalive is for a connection that hears nothing: a reader of a busy
/// document, written to by the document all the time, gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_a_busy_document_gets_no_keepalive() {
    use futures_util::StreamExt;
    let server = TestServer::start_with(|c| c.keepalive_secs = 1).await;
    let url = server.ws_url(chorus_e2e::APP, "busy", &server.token("busy", "reader"));
    let mut reader = chorus_e2e::raw_connect(&url).await.unwrap();
    let writer = server.client("busy", "writer").await;
    writer.wait_synced().await.unwrap();
    // An edit every 300 ms for 3.5 s: three keepalive periods and a half.
    let typing = tokio::spawn(async move {
        for i in 0..12 {
            writer.insert_title(i, "x");
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        writer
    });
    let mut updates = 0;
    let mut keepalives = 0;
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(3500);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, reader.next()).await {
        match &m.into_data()[..] {
            [1, 1, 0] => keepalives += 1,
            [0, 2, ..] => updates += 1,
            _ => {}
        }
    }
    typing.await.unwrap();
    assert!(updates >= 8, "the reader got the edits ({updates})");
    assert_eq!(keepalives, 0, "keepalives sent beside the edits");
}

/// The heartbeat answers `OK` on the public path, with no token, never cached
/// (a proxy that cached it would hide a broken route).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_answers_ok_on_the_public_path_uncached() {
    let server = TestServer::start().await;
    let (status, headers, body) = chorus_e2e::http(server.addr, "GET", "/v1/heartbeat", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"OK");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(header("cache-control"), Some("no-store"));
}
