//! A `chorus serve` cluster node whose backends speak only TLS (issue 28): a Redis
//! at `rediss://` trusted through `bus_ca_file`, a PostgreSQL at
//! `sslmode=verify-full`, both started by the test with certificates of a CA it
//! makes (chorus-tls-fixture). The node becomes ready and saves an edit; with
//! another CA it does not start, and says why.

use chorus_auth::Mode;
use chorus_e2e::processes::{free_port, Process, CLUSTER_KEY};
use chorus_e2e::{http, token_for, YClient, APP, SECRETS};
use chorus_tls_fixture::{TestCa, TlsPostgres, TlsRedis};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chorus");

fn store_url(pg: &TlsPostgres, ca: &Path) -> String {
    pg.url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()))
}

/// `chorus serve` as one cluster node on `port`, with `bus_ca` as its bus CA file.
fn serve(
    dir: &Path,
    port: u16,
    store: &str,
    bus: &str,
    bus_ca: &Path,
    ready: Option<&str>,
) -> Result<Process, String> {
    let config = dir.join("chorus.toml");
    std::fs::write(
        &config,
        format!(
            "cluster_keys = [\"{CLUSTER_KEY}\"]\n\n[[apps]]\nid = \"{APP}\"\nsecrets = [\"{}\"]\n",
            SECRETS[0]
        ),
    )
    .unwrap();
    Process::try_spawn(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--bus-ca-file")
            .arg(bus_ca)
            .env("CHORUS_STORE", store)
            .env("CHORUS_BUS", bus)
            .env("CHORUS_NODE_ID", "node-tls")
            .env("CHORUS_LOG", "info"),
        ready,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_tls_backends_is_ready_and_saves_an_edit() {
    let ca = TestCa::new("chorus test CA");
    let redis = TlsRedis::start(&ca);
    let pg = TlsPostgres::start(&ca);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = serve(
        dir.path(),
        port,
        &store_url(&pg, &ca.ca_file()),
        &redis.url(),
        &ca.ca_file(),
        Some("listening on http://"),
    )
    .unwrap_or_else(|output| panic!("the node did not start:\n{output}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = http(addr, "GET", "/readyz", &[]).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz {status}: {}\n{}",
            String::from_utf8_lossy(&body),
            node.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        node.output().contains("verify-full"),
        "the log says how the store is reached:\n{}",
        node.output()
    );

    let token = token_for(APP, SECRETS[0], "tls-doc", "alice", Mode::Edit);
    let client = YClient::connect(&format!(
        "ws://{addr}/v1/ws/{APP}/tls-doc?token={token}&chorus=1"
    ))
    .await
    .unwrap();
    client.wait_synced().await.unwrap();
    let n = client.insert_title(0, "over TLS");
    chorus_e2e::eventually(10, "the edit is saved (committed in PostgreSQL)", || {
        client.saved() >= n
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.output()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_trust_its_backends_does_not_start_and_says_why() {
    let ca = TestCa::new("chorus test CA");
    let other = TestCa::new("someone else's CA");
    let redis = TlsRedis::start(&ca);
    let pg = TlsPostgres::start(&ca);
    let dir = tempfile::tempdir().unwrap();

    // The store's certificate is not from the CA the URL trusts.
    let output = serve(
        dir.path(),
        free_port(),
        &store_url(&pg, &other.ca_file()),
        &redis.url(),
        &ca.ca_file(),
        Some("listening on http://"),
    )
    .err()
    .expect("no start with an untrusted store");
    assert!(
        output.contains("TLS") && output.contains("UnknownIssuer"),
        "{output}"
    );

    // The bus's certificate is not from the bus CA file.
    let output = serve(
        dir.path(),
        free_port(),
        &store_url(&pg, &ca.ca_file()),
        &redis.url(),
        &other.ca_file(),
        Some("listening on http://"),
    )
    .err()
    .expect("no start with an untrusted bus");
    assert!(
        output.contains("cannot start the cluster bus") && output.contains("UnknownIssuer"),
        "{output}"
    );
}
