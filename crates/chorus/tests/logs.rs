//! Secrets never reach the log, at any level: the real binary at `trace` (every
//! crate's every event), on a PostgreSQL store whose URL carries a password, with
//! webhooks and the admin API on, driven with good and bad session tokens, host
//! tokens and admin calls. Its whole output is searched for every secret and token.

use chorus_auth::Mode;
use chorus_e2e::processes::Process;
use chorus_e2e::{host_token, http, token_for, YClient};
use chorus_store::TestDatabase;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chorus");
const APP_SECRET: &str = "app-secret-never-logged-0123456789";
const OLD_SECRET: &str = "old-secret-never-logged-9876543210";
const ADMIN: &str = "admin-token-never-logged-abcdef";
const DB_PASSWORD: &str = "db-password-never-logged";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_appears_in_a_trace_log() {
    let db = TestDatabase::create();
    // Trust auth: the password is accepted and ignored, so it only travels.
    let store = db.url().replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{DB_PASSWORD}@"),
        1,
    );
    assert!(store.contains(DB_PASSWORD));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chorus.toml");
    let port = chorus_e2e::processes::free_port();
    std::fs::write(
        &config,
        format!(
            "admin_token = \"{ADMIN}\"\n[[apps]]\nid = \"wiki\"\nsecrets = [\"{APP_SECRET}\", \"{OLD_SECRET}\"]\n\
             callback_url = \"http://127.0.0.1:9/hook\"\n"
        ),
    )
    .unwrap();
    let node = Process::spawn(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("CHORUS_STORE", &store)
            .env("CHORUS_LOG", "trace"),
        Some("listening on http://"),
    );
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    let good = token_for("wiki", APP_SECRET, "doc", "alice", Mode::Edit);
    let old = token_for("wiki", OLD_SECRET, "doc", "bob", Mode::Edit);
    let forged = token_for(
        "wiki",
        "not-the-secret-at-all-0000000000",
        "doc",
        "eve",
        Mode::Edit,
    );
    let expired = {
        let mut claims = chorus_auth::SessionClaims::new("wiki", "carol", "doc", Mode::Edit, 1);
        claims.name = None;
        chorus_auth::mint_session(&chorus_auth::Secret::new(APP_SECRET), &claims).unwrap()
    };
    let host = host_token("wiki", APP_SECRET, None);
    let url = |token: &str| format!("ws://{addr}/v1/ws/wiki/doc?token={token}&chorus=1");
    let alice = YClient::connect(&url(&good)).await.unwrap();
    alice.wait_synced().await.unwrap();
    let n = alice.insert_title(0, "hello");
    let bob = YClient::connect(&url(&old)).await.unwrap();
    bob.wait_synced().await.unwrap();
    for bad in [&forged, &expired, &format!("{good}x")] {
        let c = YClient::connect(&url(bad)).await.unwrap();
        let _ = c.wait_synced_or_closed(5).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alice.saved() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let auth = format!("Bearer {host}");
    http(
        addr,
        "GET",
        "/v1/apps/wiki/docs/doc/draft?format=html",
        &[("Authorization", &auth)],
    )
    .await;
    http(
        addr,
        "GET",
        "/v1/apps/wiki/docs",
        &[("Authorization", &format!("Bearer {forged}"))],
    )
    .await;
    http(
        addr,
        "POST",
        "/v1/admin/apps/wiki/disable",
        &[("Authorization", &format!("Bearer {ADMIN}"))],
    )
    .await;
    http(
        addr,
        "POST",
        "/v1/admin/apps/wiki/enable",
        &[("Authorization", "Bearer wrong-admin-token")],
    )
    .await;
    drop((alice, bob));
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.signal("TERM");
    let mut node = node;
    node.wait(30);
    let log = node.output();
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "the log is at trace level"
    );
    eprintln!("searched {} lines of trace log", log.lines().count());
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for (what, secret) in [
        ("the app secret", APP_SECRET.to_owned()),
        ("the previous app secret", OLD_SECRET.to_owned()),
        ("the admin token", ADMIN.to_owned()),
        ("the database password", DB_PASSWORD.to_owned()),
        ("a session token", good.clone()),
        ("a session token's signature", signature(&good)),
        ("an old-secret token's signature", signature(&old)),
        ("a forged token's signature", signature(&forged)),
        ("an expired token's signature", signature(&expired)),
        ("a host token's signature", signature(&host)),
    ] {
        assert!(!log.contains(&secret), "{what} appears in the log");
    }
    drop(db);
}
