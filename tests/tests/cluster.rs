//! Cluster mode in one process: three nodes (real servers on real sockets) on one
//! fresh PostgreSQL database and one Redis channel prefix, clients spread over them.
//! The process-level failure tests (kill -9, SIGSTOP, restarts, a load balancer)
//! are in `crates/chorus/tests/cluster.rs`.

use chorus_e2e::cluster::Cluster;
use chorus_e2e::{eventually, host_token, http, http_with_body, TestServer, YClient, APP, SECRETS};
use std::sync::{Arc, Mutex};

async fn cluster(n: usize) -> Cluster {
    Cluster::start(n).await
}

async fn cluster_with(n: usize, adjust: impl Fn(&mut chorus_e2e::Config)) -> Cluster {
    Cluster::start_with(n, adjust).await
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

/// A webhook receiver: answers 200 and records `(type, doc, id)` of every request.
async fn receiver() -> (String, Arc<Mutex<Vec<(String, String, String)>>>) {
    use axum::routing::post;
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let field = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
                store
                    .lock()
                    .unwrap()
                    .push((field("type"), field("doc"), field("id")));
                "{\"error\":0}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_of_every_node_are_delivered_once_each_in_order_per_document() {
    let (url, got) = receiver().await;
    let mut cluster = cluster_with(3, |c| {
        c.close_delay_secs = 1;
        c.saved_webhook_secs = 1;
        for app in &mut c.apps {
            app.callback_url = Some(url.clone());
        }
    })
    .await;
    // Two documents owned by different nodes, edited from all three.
    let mut clients = Vec::new();
    for (doc, first) in [("hooks-a", 0), ("hooks-b", 1)] {
        for i in 0..3 {
            let node = &cluster.nodes[(first + i) % 3];
            clients.push(node.ext_client(doc, &format!("user{i}")).await);
        }
    }
    for round in 0..5 {
        for c in &clients {
            c.insert_title(0, &format!("{round}."));
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    for c in clients.drain(..) {
        c.close().await;
    }
    let closed = |got: &[(String, String, String)], doc: &str| {
        got.iter().any(|(t, d, _)| t == "closed" && d == doc)
    };
    eventually(20, "both documents' sessions closed", || {
        let got = got.lock().unwrap();
        closed(&got, "hooks-a") && closed(&got, "hooks-b")
    })
    .await
    .unwrap();

    // The node delivering stops; another takes delivery over.
    let deliverer = cluster
        .nodes
        .iter()
        .position(|n| n.state.documents.hooks().stats().delivered > 0)
        .expect("one node delivered");
    assert_eq!(
        cluster
            .nodes
            .iter()
            .filter(|n| n.state.documents.hooks().stats().delivered > 0)
            .count(),
        1,
        "one node delivers for the cluster"
    );
    cluster.nodes.remove(deliverer).stop().await.unwrap();
    let c = cluster.nodes[0].ext_client("hooks-c", "late").await;
    c.insert_title(0, "after the deliverer stopped");
    c.close().await;
    eventually(30, "an event of the remaining nodes delivered", || {
        closed(&got.lock().unwrap(), "hooks-c")
    })
    .await
    .unwrap();

    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let got = got.lock().unwrap().clone();
    let mut ids: Vec<&String> = got.iter().map(|(_, _, id)| id).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "every event exactly once: {got:?}");
    for doc in ["hooks-a", "hooks-b", "hooks-c"] {
        let kinds: Vec<&str> = got
            .iter()
            .filter(|(_, d, _)| d == doc)
            .map(|(t, _, _)| t.as_str())
            .collect();
        assert_eq!(kinds.first(), Some(&"editing"), "{doc}: {kinds:?}");
        assert_eq!(
            kinds.iter().filter(|k| **k == "closed").count(),
            1,
            "{doc}: {kinds:?}"
        );
        // In the order the owner raised them (outbox ids grow with it).
        let numbers: Vec<u64> = got
            .iter()
            .filter(|(_, d, _)| d == doc)
            .map(|(_, _, id)| id.trim_start_matches("evt-").parse().unwrap())
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{doc}: {numbers:?}"
        );
    }
    eprintln!("webhooks: {total} events, each once; delivery moved after its node stopped");
    for node in cluster.nodes {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_exclusive_mode_and_app_switches_act_wherever_the_sessions_are() {
    let cluster = cluster_with(3, |c| {
        c.admin_token = Some("cluster-admin-token".into());
        let mut exclusive = c.apps[0].clone();
        exclusive.id = "excl".into();
        exclusive.collaboration = false;
        c.apps.push(exclusive);
    })
    .await;
    let n = &cluster.nodes;
    let alice = n[0].ext_client("ctl", "alice").await;
    let bob = n[1].ext_client("ctl", "bob").await;
    let carol = n[2].ext_client("ctl", "carol").await;

    // Listed from any node, downgraded through a forwarding node.
    let (status, sessions) = get_json(&n[2], "/v1/apps/wiki/docs/ctl/sessions").await;
    assert_eq!(status, 200, "{sessions}");
    let id_of = |user: &str| {
        sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["user"] == user)
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (bob_id, carol_id) = (id_of("bob"), id_of("carol"));
    let auth = auth();
    let (status, _, _) = http(
        n[1].addr,
        "POST",
        &format!("/v1/apps/wiki/docs/ctl/sessions/{bob_id}/downgrade"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 204);
    bob.insert_title(0, "FROM-DOWNGRADED ");
    alice.insert_title(0, "from-alice ");
    eventually(10, "alice's edit reaches bob", || {
        bob.title().contains("from-alice")
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !alice.title().contains("FROM-DOWNGRADED"),
        "a view-only session cannot write"
    );

    // Ended through the owner: carol, on another node, is closed.
    let (status, _, _) = http(
        n[0].addr,
        "DELETE",
        &format!("/v1/apps/wiki/docs/ctl/sessions/{carol_id}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 204);
    eventually(10, "carol's session ended", || carol.closed().is_some())
        .await
        .unwrap();
    assert_eq!(carol.closed().unwrap(), (4403, "session-ended".into()));

    // Exclusive mode: the second editor, on another node, waits view-only.
    let url = |node: &TestServer, user: &str| {
        let token = chorus_e2e::token_for("excl", SECRETS[0], "x", user, chorus_auth::Mode::Edit);
        format!("{}&chorus=1", node.ws_url("excl", "x", &token))
    };
    let dave = YClient::connect(&url(&n[1], "dave")).await.unwrap();
    dave.wait_synced().await.unwrap();
    let erin = YClient::connect(&url(&n[2], "erin")).await.unwrap();
    erin.wait_synced().await.unwrap();
    erin.insert_title(0, "ERIN-WAITING ");
    dave.insert_title(0, "dave-holds ");
    eventually(10, "the holder's edit reaches the waiting session", || {
        erin.title().contains("dave-holds")
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !dave.title().contains("ERIN-WAITING"),
        "the waiting session is view-only"
    );

    // Disabled on one node: sessions close on every node, new ones are refused
    // everywhere; enabled again on another node, they are admitted everywhere.
    let admin = "Bearer cluster-admin-token";
    let (status, _, _) = http(
        n[2].addr,
        "POST",
        "/v1/admin/apps/wiki/disable",
        &[("Authorization", admin)],
    )
    .await;
    assert_eq!(status, 200);
    eventually(10, "every wiki session closed", || {
        alice.closed().is_some() && bob.closed().is_some()
    })
    .await
    .unwrap();
    assert_eq!(alice.closed().unwrap().0, 4403);
    assert_eq!(bob.closed().unwrap().0, 4403);
    let refused = YClient::connect(&n[0].ws_url(APP, "ctl", &n[0].token("ctl", "frank")))
        .await
        .unwrap();
    eventually(10, "a new session is refused on another node", || {
        refused.closed().is_some()
    })
    .await
    .unwrap();
    assert_eq!(refused.closed().unwrap().0, 4403);
    let (status, _, _) = http(
        n[0].addr,
        "POST",
        "/v1/admin/apps/wiki/enable",
        &[("Authorization", admin)],
    )
    .await;
    assert_eq!(status, 200);
    eventually(10, "enabled everywhere", || {
        cluster.nodes[1]
            .state
            .apps
            .get(APP)
            .is_some_and(|a| a.is_enabled())
    })
    .await
    .unwrap();
    let back = n[1].client("ctl", "frank").await;
    assert!(back.closed().is_none());
    for node in cluster.nodes {
        node.stop().await.unwrap();
    }
}

/// One struct of a hand-encoded update: a format item (`key`, JSON `value`) or a
/// string, after `origin` (no Yjs API emits a format item alone).
fn crafted(
    client: u64,
    clock: u64,
    origin: (u64, u64),
    content: Result<&str, (&str, &str)>,
) -> Vec<u8> {
    let mut w = chorus_protocol::Writer::with_capacity(96);
    for v in [1, 1, client, clock] {
        w.write_var_u64(v);
    }
    w.write_u8(0x80 | if content.is_ok() { 4 } else { 6 });
    w.write_var_u64(origin.0);
    w.write_var_u64(origin.1);
    match content {
        Ok(text) => w.write_var_string(text),
        Err((key, value)) => {
            w.write_var_string(key);
            w.write_var_string(value);
        }
    }
    w.write_var_u64(0);
    w.finish().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_format_item_sent_through_a_forwarding_node_is_refused_by_the_owner() {
    let cluster = cluster(2).await;
    // The first joiner's node owns the document; the attacker is on the other.
    let owner_side = cluster.nodes[0].ext_client("forwarded", "alice").await;
    owner_side.push_paragraph("hi");
    let attacker = cluster.nodes[1].ext_client("forwarded", "mallory").await;
    eventually(10, "the attacker has the paragraph", || {
        attacker.body() == "<p>hi</p>"
    })
    .await
    .unwrap();
    // `<p>hi</p>` from alice's client: the element, its text, then h and i.
    let last_char = (owner_side.client_id(), 3);
    let mallory = 0x5eed_u64;
    attacker.send_update(&crafted(
        mallory,
        0,
        last_char,
        Err(("a", r#"{"href":"javascript:alert(1)"}"#)),
    ));
    let n = attacker.send_update(&crafted(mallory, 1, (mallory, 0), Ok("click me")));
    eventually(10, "the text arrives and is saved", || {
        owner_side.body() == "<p>hiclick me</p>" && attacker.saved() >= n
    })
    .await
    .unwrap();
    for node in &cluster.nodes {
        let (status, json) = get_json(node, "/v1/apps/wiki/docs/forwarded/draft?format=json").await;
        assert_eq!(status, 200);
        let json = json.to_string();
        assert!(!json.contains("javascript"), "{json}");
        assert!(json.contains("click me"), "{json}");
    }
    let stats: u64 = cluster
        .nodes
        .iter()
        .map(|n| n.state.documents.cluster_stats().unwrap().owned)
        .sum();
    assert_eq!(stats, 1, "one owner judged it");
    attacker.close().await;
    owner_side.close().await;
    for node in cluster.nodes {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_through_any_node_closes_the_sessions_of_every_node_and_fires_once() {
    let (url, got) = receiver().await;
    let cluster = cluster_with(3, |c| {
        for app in &mut c.apps {
            app.callback_url = Some(url.clone());
        }
    })
    .await;
    let n = &cluster.nodes;
    let clients = [
        n[0].ext_client("doomed", "alice").await,
        n[1].ext_client("doomed", "bob").await,
        n[2].ext_client("doomed", "carol").await,
    ];
    let sent = clients[0].insert_title(0, "to be deleted");
    eventually(
        10,
        "the edit is saved and reaches every node's client",
        || clients[0].saved() >= sent && clients.iter().all(|c| c.title() == "to be deleted"),
    )
    .await
    .unwrap();
    // Deleted through the node that serves none of the three first.
    let auth = auth();
    let (status, _, body) = http(
        n[2].addr,
        "DELETE",
        "/v1/apps/wiki/docs/doomed",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["closedSessions"], 3, "every node's session counted");
    eventually(10, "every node's session is closed", || {
        clients.iter().all(|c| c.closed().is_some())
    })
    .await
    .unwrap();
    for c in &clients {
        assert_eq!(c.closed().unwrap(), (4404, "document-deleted".into()));
    }

    // Gone for every node; the id opens empty on each.
    for node in n {
        let (status, _) = get_json(node, "/v1/apps/wiki/docs/doomed/draft").await;
        assert_eq!(status, 404, "draft read through {}", node.addr);
    }
    let again = n[1].ext_client("doomed", "dan").await;
    assert_eq!(again.title(), "", "a new session finds an empty draft");
    eventually(10, "the deleted event is delivered", || {
        got.lock()
            .unwrap()
            .iter()
            .any(|(t, d, _)| t == "deleted" && d == "doomed")
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let deleted = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, d, _)| t == "deleted" && d == "doomed")
        .count();
    assert_eq!(
        deleted, 1,
        "one deletion, one event, whichever node delivers"
    );
    again.close().await;
    for node in cluster.nodes {
        node.stop().await.unwrap();
    }
}
