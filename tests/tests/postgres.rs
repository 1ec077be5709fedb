//! A single node on the real PostgreSQL of this machine (a fresh database per test,
//! dropped after): `saved` after COMMIT, drafts across restarts, and a PostgreSQL that
//! cannot be reached for ten seconds (through a relay the test cuts) costs no edit.

use chorus_e2e::relay::Relay;
use chorus_e2e::{eventually, host_token, http, TestServer, APP, SECRETS};
use chorus_store::TestDatabase;
use std::time::Duration;

fn host_auth() -> String {
    format!("Bearer {}", host_token(APP, SECRETS[0], None))
}

async fn readiness(server: &TestServer) -> (u16, serde_json::Value) {
    let (status, _, body) = http(server.addr, "GET", "/readyz", &[]).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_are_saved_in_postgresql_and_survive_a_restart() {
    let db = TestDatabase::create();
    let url = db.url().to_owned();
    let server = TestServer::start_with(|c| c.store = url.clone()).await;
    assert_eq!(readiness(&server).await.0, 200);
    let a = server.ext_client("pg-doc", "alice").await;
    let mut last = 0;
    for i in 0..30 {
        last = a.insert_title(0, &format!("{i}."));
    }
    a.push_paragraph("kept in PostgreSQL");
    last += 1;
    eventually(15, "every edit acknowledged after COMMIT", || {
        a.saved() == last
    })
    .await
    .unwrap();
    let (title, body) = (a.title(), a.body());
    drop(a);
    server.stop().await.unwrap();

    // A new process (same database, another data directory) has it all.
    let url = db.url().to_owned();
    let server = TestServer::start_with(|c| c.store = url.clone()).await;
    let b = server.client("pg-doc", "bob").await;
    assert_eq!((b.title(), b.body()), (title.clone(), body));
    let auth = host_auth();
    let (status, _, listed) = http(
        server.addr,
        "GET",
        "/v1/apps/wiki/docs",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    let docs = listed["docs"].as_array().expect("a docs array");
    assert_eq!(docs.len(), 1, "{listed}");
    assert_eq!(docs[0]["id"], "pg-doc", "{listed}");
    let (status, _, draft) = http(
        server.addr,
        "GET",
        "/v1/apps/wiki/docs/pg-doc/draft?format=json",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200);
    let draft: serde_json::Value = serde_json::from_slice(&draft).unwrap();
    assert_eq!(draft["title"], title.as_str());
    drop(b);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_unreachable_for_ten_seconds_loses_nothing_and_acks_resume() {
    let db = TestDatabase::create();
    let relay = Relay::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = format!("postgres://postgres@{}/{}", relay.addr, db.name());
    let server = TestServer::start_with(|c| c.store = url.clone()).await;
    let a = server.ext_client("partition", "alice").await;
    let b = server.ext_client("partition", "bob").await;
    let mut last = 0;
    for i in 0..10 {
        last = a.insert_title(0, &format!("before{i}."));
    }
    eventually(15, "edits before the cut are acknowledged", || {
        a.saved() == last
    })
    .await
    .unwrap();
    let acked_before_cut = a.saved();

    relay.cut();
    wait_readiness(&server, 503, "store-unreachable").await;
    let mut sent_during_cut = 0;
    for i in 0..20 {
        last = a.insert_title(0, &format!("during{i}."));
        sent_during_cut += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            a.saved(),
            acked_before_cut,
            "nothing is acknowledged while PostgreSQL cannot be reached"
        );
    }
    eventually(5, "editing stays live between clients", || {
        b.title() == a.title()
    })
    .await
    .unwrap();
    assert!(a.title().starts_with("during19."), "{}", a.title());

    relay.restore();
    eventually(
        30,
        "acks resume for every edit once PostgreSQL is back",
        || a.saved() == last,
    )
    .await
    .unwrap();
    wait_readiness(&server, 200, "ready").await;
    let title = a.title();
    eprintln!(
        "partition: {} acked before the cut, {sent_during_cut} sent during it (0 acked), all {last} acked after",
        acked_before_cut
    );
    drop((a, b));
    server.stop().await.unwrap();

    // Straight from PostgreSQL (no relay, a new process): every edit is there.
    let direct = db.url().to_owned();
    let server = TestServer::start_with(|c| c.store = direct.clone()).await;
    let c = server.client("partition", "carol").await;
    assert_eq!(c.title(), title);
    for i in 0..20 {
        assert!(title.contains(&format!("during{i}.")), "{title}");
    }
    for i in 0..10 {
        assert!(title.contains(&format!("before{i}.")), "{title}");
    }
    drop(c);
    server.stop().await.unwrap();
}

/// Poll `/readyz` until it answers `status` with `{"status": text}` (10 s at most).
async fn wait_readiness(server: &TestServer, status: u16, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (got, body) = readiness(server).await;
        if got == status && body["status"] == text {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness is still {got} {body}, not {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_raised_while_postgresql_is_unreachable_is_delivered_after() {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = got.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let kind = event["type"].as_str().unwrap_or_default().to_owned();
                store.lock().unwrap().push(kind);
                "{\"error\":0}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let db = TestDatabase::create();
    let relay = Relay::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = format!("postgres://postgres@{}/{}", relay.addr, db.name());
    let server = TestServer::start_with(|c| {
        c.store = url.clone();
        c.close_delay_secs = 1;
        c.webhook_retry_base_ms = 100;
        for app in &mut c.apps {
            app.callback_url = Some(hook_url.clone());
        }
    })
    .await;
    let a = server.ext_client("hooked", "alice").await;
    let n = a.insert_title(0, "edited");
    eventually(15, "saved", || a.saved() == n).await.unwrap();
    eventually(15, "editing delivered", || {
        got.lock().unwrap().iter().any(|k| k == "editing")
    })
    .await
    .unwrap();

    // The session closes while PostgreSQL cannot be reached: the `closed` event's
    // write fails (and is rolled back with its group) until it is back.
    relay.cut();
    a.close().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !got.lock().unwrap().iter().any(|k| k == "closed"),
        "nothing is delivered before it is committed"
    );
    relay.restore();
    eventually(
        30,
        "the closed event delivered once PostgreSQL is back",
        || got.lock().unwrap().iter().any(|k| k == "closed"),
    )
    .await
    .unwrap();
    server.stop().await.unwrap();
}
