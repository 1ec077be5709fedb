//! The admin API's kill switch is durable and cluster-wide (issue 28): an app
//! switched off stays off across a restart and on a node that joins the cluster
//! later; switched on again, it is on everywhere. Before, a restart or a new node
//! forgot it. The store holds it (sled for one node, PostgreSQL for a cluster).

use chorus_e2e::cluster::Cluster;
use chorus_e2e::{http, TestServer, YClient, APP};

const ADMIN: &str = "the admin token of these tests, 32+ bytes";

async fn switch(server: &TestServer, enabled: bool) {
    let path = format!(
        "/v1/admin/apps/{APP}/{}",
        if enabled { "enable" } else { "disable" }
    );
    let auth = format!("Bearer {ADMIN}");
    let (status, _, body) = http(server.addr, "POST", &path, &[("Authorization", &auth)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// How a new session on `server` ends: `None` if it syncs, else its close.
async fn join(server: &TestServer, user: &str) -> Option<(u16, String)> {
    let url = server.ws_url(APP, "doc", &server.token("doc", user));
    let client = YClient::connect(&url).await.unwrap();
    let _ = client.wait_synced_or_closed(10).await;
    let closed = client.closed();
    client.close().await;
    closed
}

/// [`join`] again until it ends as `want` (another node hears of a switch over
/// the bus, a moment after the call answered), at most 5 s; the last outcome.
async fn join_until(
    server: &TestServer,
    user: &str,
    want: Option<(u16, String)>,
) -> Option<(u16, String)> {
    let mut last = join(server, user).await;
    for _ in 0..50 {
        if last == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        last = join(server, user).await;
    }
    last
}

fn disabled() -> Option<(u16, String)> {
    Some((4403, "app-disabled".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switched_off_app_stays_off_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let admin = |c: &mut chorus_e2e::Config| c.admin_token = Some(ADMIN.into());
    let server = TestServer::start_in(dir.path(), admin).await;
    assert_eq!(join(&server, "alice").await, None);
    switch(&server, false).await;
    assert_eq!(join(&server, "alice").await, disabled());
    server.stop().await.unwrap();

    let server = TestServer::start_in(dir.path(), admin).await;
    assert_eq!(join(&server, "alice").await, disabled(), "still off");
    switch(&server, true).await;
    server.stop().await.unwrap();
    let server = TestServer::start_in(dir.path(), admin).await;
    assert_eq!(join(&server, "alice").await, None, "on again, and kept on");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_later_knows_the_switch() {
    let admin = |c: &mut chorus_e2e::Config| c.admin_token = Some(ADMIN.into());
    let mut cluster = Cluster::start_with(2, admin).await;
    switch(&cluster.nodes[0], false).await;
    for node in &cluster.nodes {
        assert_eq!(join_until(node, "alice", disabled()).await, disabled());
    }
    // A third node starts after the switch: it never heard the announcement.
    let late = cluster.add_node(admin).await;
    assert_eq!(join(&late, "bob").await, disabled(), "the late node");
    switch(&late, true).await;
    for node in cluster.nodes.iter().chain([&late]) {
        assert_eq!(join_until(node, "carol", None).await, None);
    }
    late.stop().await.unwrap();
    while let Some(node) = cluster.nodes.pop() {
        node.stop().await.unwrap();
    }
}
