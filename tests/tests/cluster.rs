//! Cluster mode in one process: three nodes (real servers on real sockets) on one
//! fresh PostgreSQL database and one Redis channel prefix, clients spread over them.
//! The process-level failure tests (kill -9, SIGSTOP, restarts, a load balancer)
//! are in `crates/chorus/tests/cluster.rs`.

use chorus_e2e::{eventually, host_token, http, http_with_body, TestServer, YClient, APP, SECRETS};
use chorus_store::TestDatabase;

struct Cluster {
    nodes: Vec<TestServer>,
    _db: TestDatabase,
}

async fn cluster(n: usize) -> Cluster {
    let db = TestDatabase::create();
    let prefix = format!("chorus-test:{}", db.name());
    let mut nodes = Vec::new();
    for i in 0..n {
        let (url, prefix) = (db.url().to_owned(), prefix.clone());
        nodes.push(
            TestServer::start_with(move |c| {
                c.store = url;
                c.bus = Some(
                    std::env::var("CHORUS_TEST_REDIS")
                        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
                );
                c.bus_prefix = Some(prefix);
                c.node_id = Some(format!("node-{i}"));
            })
            .await,
        );
    }
    // Every node has heard every other before the test starts.
    eventually(10, "nodes see each other", || {
        nodes.iter().all(|s| {
            s.state
                .documents
                .bus_stats()
                .is_some_and(|b| b.nodes_up == n as u64)
        })
    })
    .await
    .unwrap();
    Cluster { nodes, _db: db }
}

fn auth() -> String {
    format!("Bearer {}", host_token(APP, SECRETS[0], None))
}

async fn get_json(server: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let auth = auth();
    let (status, _, body) = http(server.addr, "GET", path, &[("Authorization", &auth)]).await;
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_three_nodes_converge_and_every_node_answers_the_host_alike() {
    let cluster = cluster(3).await;
    let clients: Vec<YClient> = futures_join(
        cluster
            .nodes
            .iter()
            .zip(["alice", "bob", "carol"])
            .map(|(node, user)| node.ext_client("shared", user)),
    )
    .await;
    let mut last = vec![0; 3];
    for round in 0..10 {
        for (i, c) in clients.iter().enumerate() {
            last[i] = c.insert_title(0, &format!("{i}.{round} "));
        }
    }
    eventually(15, "every client on every node has every edit", || {
        let t = clients[0].title();
        t.matches(' ').count() == 30 && clients.iter().all(|c| c.title() == t)
    })
    .await
    .unwrap();
    eventually(15, "every edit acknowledged after COMMIT", || {
        clients.iter().zip(&last).all(|(c, n)| c.saved() == *n)
    })
    .await
    .unwrap();

    // One owner, two forwarders.
    let stats: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| n.state.documents.cluster_stats().unwrap())
        .collect();
    assert_eq!(stats.iter().map(|s| s.owned).sum::<u64>(), 1, "{stats:?}");
    assert_eq!(
        stats.iter().map(|s| s.forwarded).sum::<u64>(),
        2,
        "{stats:?}"
    );

    // The host API gives the same answer on every node.
    let path = "/v1/apps/wiki/docs/shared/draft?format=json";
    let mut answers = Vec::new();
    for node in &cluster.nodes {
        let (status, body) = get_json(node, path).await;
        assert_eq!(status, 200, "{body}");
        answers.push(body);
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0]["title"], clients[0].title().as_str());
    let (status, sessions) =
        get_json(&cluster.nodes[1], "/v1/apps/wiki/docs/shared/sessions").await;
    assert_eq!(status, 200);
    let mut users: Vec<String> = sessions["sessions"]
        .as_array()
        .expect("a sessions array")
        .iter()
        .map(|s| s["user"].as_str().unwrap_or_default().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob", "carol"], "{sessions}");

    // An external change through whichever node reaches every editor.
    for node in &cluster.nodes {
        let auth = auth();
        let body = serde_json::json!({ "html": format!("<p>from {}</p>", node.addr) });
        let (status, _, answer) = http_with_body(
            node.addr,
            "PUT",
            "/v1/apps/wiki/docs/shared/content",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let want = format!("from {}", node.addr);
        eventually(10, "the change reaches every editor", || {
            clients.iter().all(|c| c.body().contains(&want))
        })
        .await
        .unwrap();
    }
    for c in clients {
        c.close().await;
    }
    for node in cluster.nodes {
        node.stop().await.unwrap();
    }
}

async fn futures_join<F: std::future::Future<Output = YClient>>(
    futures: impl Iterator<Item = F>,
) -> Vec<YClient> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}
