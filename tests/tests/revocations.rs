//! A host's downgrade or end of a session holds for that user on that document
//! until the token the session had expires, whatever token the user comes back
//! with: across reconnects, a restart, and every node of a cluster (issue 28).
//! Before, it lasted until the client reconnected.

use chorus_auth::{mint_session, Mode, Secret, SessionClaims};
use chorus_e2e::cluster::Cluster;
use chorus_e2e::{eventually, host_token, http, now, TestServer, YClient, APP, SECRETS};
use std::time::Duration;

/// An edit token for `user` on `doc` that expires in `secs` seconds.
fn token(doc: &str, user: &str, secs: u64) -> String {
    let claims = SessionClaims::new(APP, user, doc, Mode::Edit, now() + secs);
    mint_session(&Secret::new(SECRETS[0]), &claims).unwrap()
}

async fn connect(server: &TestServer, doc: &str, user: &str, secs: u64) -> YClient {
    let url = format!(
        "{}&chorus=1",
        server.ws_url(APP, doc, &token(doc, user, secs))
    );
    let client = YClient::connect(&url).await.unwrap();
    let _ = client.wait_synced_or_closed(10).await;
    client
}

/// The sessions of `doc`, as (user, mode, id), asked of `server`.
/// [`connect`], again while the cluster answers 1012 (a new owner is being found),
/// as a client reconnects.
async fn connect_settled(server: &TestServer, doc: &str, user: &str) -> YClient {
    for _ in 0..50 {
        let client = connect(server, doc, user, 3600).await;
        match client.closed() {
            Some((1012, _)) => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => return client,
        }
    }
    panic!("{user} found no owner for {doc}")
}

async fn sessions(server: &TestServer, doc: &str) -> Vec<(String, String, String)> {
    let auth = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let path = format!("/v1/apps/{APP}/docs/{doc}/sessions");
    let (status, _, body) = http(server.addr, "GET", &path, &[("Authorization", &auth)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut out: Vec<_> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap().to_owned();
            (field("user"), field("mode"), field("id"))
        })
        .collect();
    out.sort();
    out
}

/// `POST …/downgrade` or `DELETE` the session of `user`, through `server`.
async fn revoke(server: &TestServer, doc: &str, user: &str, end: bool) {
    let id = sessions(server, doc)
        .await
        .into_iter()
        .find(|s| s.0 == user)
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("{user} has a session"));
    let auth = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let (method, path) = if end {
        ("DELETE", format!("/v1/apps/{APP}/docs/{doc}/sessions/{id}"))
    } else {
        (
            "POST",
            format!("/v1/apps/{APP}/docs/{doc}/sessions/{id}/downgrade"),
        )
    };
    let (status, _, _) = http(server.addr, method, &path, &[("Authorization", &auth)]).await;
    assert_eq!(status, 204);
}

/// The draft's title, read by the host.
async fn title(server: &TestServer, doc: &str) -> String {
    let auth = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let path = format!("/v1/apps/{APP}/docs/{doc}/draft?format=json");
    let (status, _, body) = http(server.addr, "GET", &path, &[("Authorization", &auth)]).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["title"].as_str().unwrap().to_owned()
}

async fn closed_with(client: &YClient) -> (u16, String) {
    eventually(10, "the connection is closed", || client.closed().is_some())
        .await
        .unwrap();
    client.closed().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_and_an_ended_session_outlive_reconnects_and_a_restart_until_the_token_expires()
{
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let doc = "revoked";
    let carol = connect(&server, doc, "carol", 3600).await;
    let n = carol.insert_title(0, "carol ");
    eventually(10, "carol's edit is saved", || carol.saved() == n)
        .await
        .unwrap();
    let alice = connect(&server, doc, "alice", 3600).await;
    // Bob's token lives 6 s: his end lasts that long.
    let bob = connect(&server, doc, "bob", 6).await;
    let bob_ended_at = std::time::Instant::now();

    revoke(&server, doc, "alice", false).await;
    revoke(&server, doc, "bob", true).await;
    assert_eq!(closed_with(&bob).await, (4403, "session-ended".into()));
    alice.close().await;

    // Back with fresh tokens: alice is view-only, bob is refused.
    let alice = connect(&server, doc, "alice", 3600).await;
    let bob = connect(&server, doc, "bob", 3600).await;
    assert_eq!(closed_with(&bob).await, (4403, "session-ended".into()));
    assert_eq!(alice.closed(), None);
    let listed = sessions(&server, doc).await;
    let modes: Vec<_> = listed
        .iter()
        .map(|s| (s.0.as_str(), s.1.as_str()))
        .collect();
    assert_eq!(modes, [("alice", "view"), ("carol", "edit")]);
    alice.insert_title(0, "ALICE ");
    let n = carol.insert_title(0, "again ");
    eventually(10, "carol's second edit is saved", || carol.saved() == n)
        .await
        .unwrap();
    assert!(!title(&server, doc).await.contains("ALICE"));

    // A restart forgets nothing.
    alice.close().await;
    carol.close().await;
    server.stop().await.unwrap();
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let bob = connect(&server, doc, "bob", 3600).await;
    assert_eq!(closed_with(&bob).await, (4403, "session-ended".into()));
    let alice = connect(&server, doc, "alice", 3600).await;
    assert_eq!(alice.closed(), None);
    assert_eq!(sessions(&server, doc).await[0].1, "view");
    alice.close().await;

    // Once the token bob had when his session was ended expires, he may come back.
    let wait = Duration::from_secs(7).saturating_sub(bob_ended_at.elapsed());
    tokio::time::sleep(wait).await;
    let bob = connect(&server, doc, "bob", 3600).await;
    assert_eq!(bob.closed(), None, "bob is back after his token's expiry");
    let n = bob.insert_title(0, "bob ");
    eventually(10, "bob edits again", || bob.saved() == n)
        .await
        .unwrap();
    bob.close().await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_holds_on_every_node_and_after_the_owner_goes() {
    let mut cluster = Cluster::start(3).await;
    let doc = "shared";
    let n = &cluster.nodes;
    // node-0 owns the document; bob edits through node-1.
    let alice = connect(&n[0], doc, "alice", 3600).await;
    let x = alice.insert_title(0, "alice ");
    eventually(10, "alice's edit is saved", || alice.saved() == x)
        .await
        .unwrap();
    let bob = connect(&n[1], doc, "bob", 3600).await;
    revoke(&n[2], doc, "bob", true).await;
    assert_eq!(closed_with(&bob).await, (4403, "session-ended".into()));
    for node in n {
        let bob = connect(node, doc, "bob", 3600).await;
        assert_eq!(closed_with(&bob).await, (4403, "session-ended".into()));
    }
    // The owner stops; the next owner judges bob the same way.
    alice.close().await;
    let owner = cluster.nodes.remove(0);
    owner.stop().await.unwrap();
    let n = &cluster.nodes;
    let carol = connect_settled(&n[0], doc, "carol").await;
    assert_eq!(carol.closed(), None);
    let bob = connect_settled(&n[1], doc, "bob").await;
    assert_eq!(closed_with(&bob).await, (4403, "session-ended".into()));
    carol.close().await;
}
