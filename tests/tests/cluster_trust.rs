//! Cluster mode against an attacker (issue 28): a host that is not who it says, a
//! node that is not a document's owner, a forwarded join whose token is not what
//! it claims. Real nodes on the real Redis and PostgreSQL of this machine; what
//! the attacker does is done by hand, with the cluster key where the attack is
//! about a member node overstepping (a stale or compromised member), without it
//! where it is about a party that only reaches Redis.
//!
//! The oracles are outside the code under test where they can be: the lease table
//! in PostgreSQL (did an actor start?), the bytes on Redis (did a credential
//! travel?), and real clients' documents (did anything change?).

use chorus_auth::Mode;
use chorus_cluster::{Bus, BusConfig};
use chorus_e2e::cluster::{redis_url, Cluster};
use chorus_e2e::{eventually, host_token, http, http_with_body, token_for, APP, SECRETS};
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use yrs::{Doc, ReadTxn, Text, Transact};

/// Rows of the lease table for one document: whether any node started serving it.
async fn leases_of(cluster: &Cluster, app: &str, doc: &str) -> i64 {
    let (url, app, doc) = (cluster.db.url().to_owned(), app.to_owned(), doc.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.query_one(
            "SELECT count(*) FROM chorus_leases WHERE app = $1 AND doc = $2",
            &[&app, &doc],
        )
        .unwrap()
        .get(0)
    })
    .await
    .unwrap()
}

/// (channel, payload) of every message, in order.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// Every message published on the cluster's channels while it runs.
struct Spy {
    seen: Seen,
    stop: CancellationToken,
}

impl Spy {
    async fn start(prefix: &str) -> Spy {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.psubscribe(format!("{prefix}:*")).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (into, until) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            loop {
                tokio::select! {
                    () = until.cancelled() => return,
                    msg = stream.next() => match msg {
                        Some(msg) => into
                            .lock()
                            .unwrap()
                            .push((msg.get_channel_name().to_owned(), msg.get_payload_bytes().to_vec())),
                        None => return,
                    },
                }
            }
        });
        Spy { seen, stop }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Whether any message held `needle`.
    fn saw(&self, needle: &[u8]) -> bool {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|(_, m)| m.windows(needle.len()).any(|w| w == needle))
    }

    fn messages(&self) -> Vec<(String, Vec<u8>)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Spy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The document messages nodes exchange, written out from the wire's definition
/// (chorus-docs `wire.rs`, postcard): the variants in their order, so an attacker's
/// hand-made message is what a node would send.
#[derive(Serialize)]
#[allow(dead_code)] // the variants before the ones sent hold the indices
enum Wire {
    Join {
        app: String,
        doc: String,
        conn: u64,
        token: String,
        extensions: bool,
    },
    Frame {
        app: String,
        doc: String,
        conn: u64,
        frame: Vec<u8>,
    },
    Leave {
        app: String,
        doc: String,
        conn: u64,
    },
    Deliver {
        app: String,
        doc: String,
        frame: Vec<u8>,
        to: Vec<u64>,
    },
    Close {
        app: String,
        doc: String,
        conn: u64,
        reason: Reason,
    },
    AppState {
        app: String,
        enabled: bool,
    },
}

/// `Disconnect`'s first variants.
#[derive(Serialize)]
#[allow(dead_code)]
enum Reason {
    Room(u8),
    SlowConsumer,
    DocumentReset,
    DocumentUnavailable,
    SessionEnded,
}

impl Wire {
    fn encode(&self) -> bytes::Bytes {
        postcard::to_allocvec(self).unwrap().into()
    }
}

/// A member of the cluster that is not a server: holds the cluster key, so its
/// messages are authenticated; what it may make the nodes do is the question.
async fn rogue_node(cluster: &Cluster, name: &str) -> (Bus, CancellationToken) {
    let stop = CancellationToken::new();
    let config = BusConfig::new(redis_url(), cluster.prefix.clone(), name)
        .with_keys(vec![chorus_e2e::processes::CLUSTER_KEY.as_bytes().to_vec()]);
    let (bus, _events) = Bus::start(config, stop.clone()).await.unwrap();
    (bus, stop)
}

/// A sync update frame (y-protocols) that writes `text` into the title.
fn title_update(text: &str) -> Vec<u8> {
    let doc = Doc::with_client_id(987_654);
    let title = doc.get_or_insert_text("title");
    title.insert(&mut doc.transact_mut(), 0, text);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&Default::default());
    chorus_protocol::encode_sync(2, &update).to_vec()
}

fn sessions_url(doc: &str) -> String {
    format!("/v1/apps/{APP}/docs/{doc}/sessions")
}

async fn session_users(cluster: &Cluster, doc: &str) -> Vec<(String, String)> {
    let auth = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let (status, _, body) = http(
        cluster.nodes[0].addr,
        "GET",
        &sessions_url(doc),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut users: Vec<(String, String)> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["user"].as_str().unwrap().to_owned(),
                s["mode"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    users.sort();
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_is_checked_before_any_work_and_carried_without_its_credential() {
    let cluster = Cluster::start(2).await;
    let spy = Spy::start(&cluster.prefix).await;
    let (owner, other) = (&cluster.nodes[0], &cluster.nodes[1]);
    // node-0 owns "owned": its client joined first.
    let writer = owner.ext_client("owned", "alice").await;
    writer.wait_synced().await.unwrap();
    writer.insert_title(0, "hello");

    // No token, a forged token, and the old forwarding header: nothing starts on
    // the node called, no lease is taken, nothing goes on the bus.
    let forged = format!(
        "Bearer {}",
        host_token(APP, "not the app's secret, but 32 bytes long", None)
    );
    let before = spy.count();
    for (doc, headers) in [
        ("fresh-1", vec![]),
        ("fresh-2", vec![("Authorization", forged.as_str())]),
        (
            "fresh-3",
            vec![
                ("Authorization", forged.as_str()),
                ("x-chorus-forwarded-from", "node-0"),
            ],
        ),
    ] {
        let path = format!("/v1/apps/{APP}/docs/{doc}/draft?format=json");
        let (status, _, body) = http(other.addr, "GET", &path, &headers).await;
        assert_eq!(status, 401, "{doc}: {}", String::from_utf8_lossy(&body));
        let body = format!("{{\"html\":\"<p>{}</p>\"}}", "x".repeat(100_000));
        let path = format!("/v1/apps/{APP}/docs/{doc}/content");
        let (status, _, _) =
            http_with_body(other.addr, "PUT", &path, &headers, body.as_bytes()).await;
        assert_eq!(status, 401, "{doc}: a PUT");
        assert_eq!(
            leases_of(&cluster, APP, doc).await,
            0,
            "{doc}: no lease taken"
        );
    }
    let stats = other.state.documents.cluster_stats().unwrap();
    assert_eq!(
        (stats.owned, stats.forwarded, stats.host_forwards),
        (0, 0, 0)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !spy.saw(&b"x".repeat(1000)),
        "no refused body was published on the bus"
    );
    assert!(spy.count() >= before, "the spy hears the cluster");

    // An authenticated call to the node that does not own the document is carried
    // to the owner, without the token: what the bus carries cannot be replayed
    // against the host API.
    let token = host_token(APP, SECRETS[0], Some("owned"));
    let auth = format!("Bearer {token}");
    let path = format!("/v1/apps/{APP}/docs/owned/draft?format=json");
    let (status, headers, body) = http(other.addr, "GET", &path, &[("Authorization", &auth)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-chorus-node"], "node-0", "answered by the owner");
    let body = serde_json::json!({ "html": "<p>through node-1</p>" }).to_string();
    let (status, _, _) = http_with_body(
        other.addr,
        "PUT",
        &format!("/v1/apps/{APP}/docs/owned/content"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    eventually(10, "the change reaches the editor", || {
        writer.body().contains("through node-1")
    })
    .await
    .unwrap();
    assert!(spy.saw(b"through node-1"), "the spy saw the carried call");
    assert!(
        !spy.saw(token.as_bytes()),
        "the host token never went on the bus"
    );
    assert!(
        !spy.saw(token.split('.').nth(2).unwrap().as_bytes()),
        "nor its signature"
    );
    assert_eq!(
        other.state.documents.cluster_stats().unwrap().host_forwards,
        2
    );
    writer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_closes_or_feeds_a_forwarded_connection() {
    let cluster = Cluster::start(2).await;
    let (owner, proxy) = (&cluster.nodes[0], &cluster.nodes[1]);
    let alice = owner.ext_client("doc", "alice").await;
    alice.wait_synced().await.unwrap();
    let bob = proxy.ext_client("doc", "bob").await;
    bob.wait_synced().await.unwrap();
    assert_eq!(proxy.state.documents.cluster_stats().unwrap().forwarded, 1);

    // A member node that is not the owner tells node-1 to close every connection
    // it may have (connection ids are small counters), and hands them an edit.
    let (rogue, stop) = rogue_node(&cluster, "node-9").await;
    let to_proxy = |wire: Wire| rogue.send("node-1", wire.encode());
    for conn in 0..2_000 {
        to_proxy(Wire::Close {
            app: APP.into(),
            doc: "doc".into(),
            conn,
            reason: Reason::SessionEnded,
        });
    }
    to_proxy(Wire::Deliver {
        app: APP.into(),
        doc: "doc".into(),
        frame: title_update("pwned "),
        to: (0..2_000).collect(),
    });
    let refused = || proxy.state.documents.cluster_stats().unwrap().refused;
    let _ = eventually(10, "node-1 has judged them all", || {
        refused() == 2_001 || bob.closed().is_some()
    })
    .await;
    assert_eq!(
        bob.closed(),
        None,
        "a node that is not the owner closed bob"
    );
    assert_eq!(refused(), 2_001);

    // Bob is still connected and still edits with Alice; nobody saw the edit.
    let n = bob.insert_title(0, "bob ");
    eventually(10, "bob's edit is saved and reaches alice", || {
        bob.saved() == n && alice.title().contains("bob")
    })
    .await
    .unwrap();
    assert_eq!(bob.closed(), None);
    assert!(!bob.title().contains("pwned") && !alice.title().contains("pwned"));
    stop.cancel();
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_join_has_the_rights_of_its_token_verified_by_the_owner() {
    let cluster = Cluster::start(2).await;
    let owner = &cluster.nodes[0];
    let alice = owner.ext_client("doc", "alice").await;
    alice.wait_synced().await.unwrap();
    let (rogue, stop) = rogue_node(&cluster, "node-9").await;
    let join = |doc: &str, conn: u64, token: String| Wire::Join {
        app: APP.into(),
        doc: doc.into(),
        conn,
        token,
        extensions: false,
    };

    // Tokens the owner refuses: a wrong secret, another document's, an unknown
    // app. None joins, and for a document nobody opened no actor starts.
    let wrong = "not the app's secret, but 32 bytes long";
    for (doc, token) in [
        ("doc", token_for(APP, wrong, "doc", "mallory", Mode::Edit)),
        (
            "doc",
            token_for(APP, SECRETS[0], "other", "mallory", Mode::Edit),
        ),
        (
            "unopened",
            token_for(APP, wrong, "unopened", "mallory", Mode::Edit),
        ),
    ] {
        rogue.send("node-0", join(doc, 1, token).encode());
    }
    rogue.send(
        "node-0",
        Wire::Join {
            app: "no-such-app".into(),
            doc: "doc".into(),
            conn: 2,
            token: token_for("no-such-app", wrong, "doc", "mallory", Mode::Edit),
            extensions: false,
        }
        .encode(),
    );
    eventually(10, "the owner refused four joins", || {
        owner.state.documents.cluster_stats().unwrap().refused == 4
    })
    .await
    .unwrap();
    assert_eq!(leases_of(&cluster, APP, "unopened").await, 0);
    assert_eq!(leases_of(&cluster, "no-such-app", "doc").await, 0);
    assert_eq!(
        session_users(&cluster, "doc").await,
        [("alice".into(), "edit".into())]
    );

    // A valid view token joins, as view: its edit is not applied, whatever the
    // node that forwards it might say of its rights.
    let view = token_for(APP, SECRETS[0], "doc", "viewer", Mode::View);
    rogue.send("node-0", join("doc", 3, view).encode());
    for _ in 0..100 {
        if session_users(&cluster, "doc").await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(owner.state.documents.cluster_stats().unwrap().refused, 4);
    assert_eq!(
        session_users(&cluster, "doc").await,
        [
            ("alice".into(), "edit".into()),
            ("viewer".into(), "view".into())
        ]
    );
    rogue.send(
        "node-0",
        Wire::Frame {
            app: APP.into(),
            doc: "doc".into(),
            conn: 3,
            frame: title_update("pwned "),
        }
        .encode(),
    );
    let n = alice.insert_title(0, "alice ");
    eventually(10, "alice's edit is saved", || alice.saved() == n)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!alice.title().contains("pwned"), "{}", alice.title());
    stop.cancel();
    alice.close().await;
}

/// A bus envelope as the attacker writes it, without the cluster key: the layout
/// is public (chorus-cluster's `envelope.rs`), the MAC is a guess.
fn forged_envelope(kind: u8, from: &str, incarnation: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![2, kind];
    out.extend_from_slice(&incarnation.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.push(from.len() as u8);
    out.extend_from_slice(from.as_bytes());
    out.extend_from_slice(payload);
    out.extend((0..32).map(|_| rand::random::<u8>()));
    out
}

/// What this test's attacker has: the Redis of the cluster, and nothing else.
async fn publish(channel: &str, bytes: Vec<u8>) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(bytes)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_with_only_redis_access_changes_nothing_and_disconnects_nobody() {
    const ADMIN: &str = "the admin token of these tests, 32+ bytes";
    let cluster = Cluster::start_with(3, |c| c.admin_token = Some(ADMIN.into())).await;
    let spy = Spy::start(&cluster.prefix).await;
    let n = &cluster.nodes;
    // Alice on the owner, Bob and Carol through the two others: every kind of
    // document message crosses the bus while the spy listens.
    let alice = n[0].ext_client("doc", "alice").await;
    alice.wait_synced().await.unwrap();
    let bob = n[1].ext_client("doc", "bob").await;
    let carol = n[2].ext_client("doc", "carol").await;
    for (i, c) in [&alice, &bob, &carol].into_iter().enumerate() {
        c.insert_title(0, &format!("{i} "));
    }
    eventually(10, "the three converge", || {
        alice.title().len() == 6 && bob.title() == alice.title() && carol.title() == alice.title()
    })
    .await
    .unwrap();
    let host = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let (status, _, _) = http(
        n[1].addr,
        "GET",
        &format!("/v1/apps/{APP}/docs/doc/sessions"),
        &[("Authorization", &host)],
    )
    .await;
    assert_eq!(status, 200, "a carried host call, for the spy");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let captured = spy.messages();
    assert!(captured.len() > 20, "{} messages captured", captured.len());
    let title = alice.title();
    let stats = |i: usize| n[i].state.documents.cluster_stats().unwrap();
    let resyncs: Vec<u64> = (0..3).map(|i| stats(i).resyncs).collect();

    // 1. Replayed: every message seen, again, on its own channel.
    for (channel, bytes) in &captured {
        publish(channel, bytes.clone()).await;
    }
    // 2. Tampered: every message with one byte of its body flipped, and moved to
    //    another node's channel.
    for (channel, bytes) in &captured {
        let mut flipped = bytes.clone();
        let at = 27 + (rand::random::<u32>() as usize % (flipped.len() - 27 - 32).max(1));
        flipped[at] ^= 0x40;
        publish(channel, flipped).await;
        for node in ["node-0", "node-1", "node-2"] {
            let other = format!("{}:node:{node}", cluster.prefix);
            if other != *channel {
                publish(&other, bytes.clone()).await;
            }
        }
    }
    // 3. Forged: the messages a member would send to take over, written without
    //    the key, under every node's name, a newer incarnation and a far sequence.
    let wrong = "not the app's secret, but 32 bytes long";
    let mallory = token_for(APP, SECRETS[0], "doc", "mallory", Mode::Edit);
    let payloads: Vec<Vec<u8>> = vec![
        Wire::Join {
            app: APP.into(),
            doc: "doc".into(),
            conn: 1,
            token: mallory,
            extensions: false,
        }
        .encode()
        .to_vec(),
        Wire::Frame {
            app: APP.into(),
            doc: "doc".into(),
            conn: 1,
            frame: title_update("pwned "),
        }
        .encode()
        .to_vec(),
        Wire::Deliver {
            app: APP.into(),
            doc: "doc".into(),
            frame: title_update("pwned "),
            to: (0..2_000).collect(),
        }
        .encode()
        .to_vec(),
        Wire::AppState {
            app: APP.into(),
            enabled: false,
        }
        .encode()
        .to_vec(),
        Wire::Join {
            app: APP.into(),
            doc: "fresh".into(),
            conn: 2,
            token: token_for(APP, wrong, "fresh", "mallory", Mode::Edit),
            extensions: false,
        }
        .encode()
        .to_vec(),
    ];
    for from in ["node-0", "node-1", "node-2", "node-9"] {
        for (kind, channel) in [
            (0u8, format!("{}:node:node-0", cluster.prefix)),
            (0, format!("{}:node:node-1", cluster.prefix)),
            (0, format!("{}:node:node-2", cluster.prefix)),
            (1, format!("{}:all", cluster.prefix)),
        ] {
            for payload in &payloads {
                let forged = forged_envelope(kind, from, u64::MAX - 1, 1 << 40, payload);
                publish(&channel, forged).await;
            }
            for conn in 0..200u64 {
                let close = Wire::Close {
                    app: APP.into(),
                    doc: "doc".into(),
                    conn,
                    reason: Reason::SessionEnded,
                };
                publish(
                    &channel,
                    forged_envelope(kind, from, u64::MAX - 1, 2 + conn, &close.encode()),
                )
                .await;
            }
            // A heartbeat of a newer incarnation: "I restarted, drop what we shared".
            publish(&channel, forged_envelope(2, from, u64::MAX, 1, &[])).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Nothing changed.
    for (who, c) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        assert_eq!(c.closed(), None, "{who} is still connected");
        assert_eq!(c.title(), title, "{who}'s document is unchanged");
    }
    assert_eq!(
        session_users(&cluster, "doc").await,
        [
            ("alice".into(), "edit".into()),
            ("bob".into(), "edit".into()),
            ("carol".into(), "edit".into())
        ]
    );
    assert_eq!(leases_of(&cluster, APP, "fresh").await, 0);
    // The app is still on, everywhere: a new session joins on each node, and the
    // three editors still reach each other.
    for node in n {
        let dave = node.client("doc", "dave").await;
        assert_eq!(dave.closed(), None);
        dave.close().await;
    }
    let x = bob.insert_title(0, "after ");
    eventually(
        10,
        "bob's edit after the attack is saved and everywhere",
        || {
            bob.saved() == x
                && alice.title().starts_with("after ")
                && carol.title() == alice.title()
        },
    )
    .await
    .unwrap();
    // Every node dropped and counted all of it, and resynced nobody.
    for (i, node) in n.iter().enumerate() {
        assert_eq!(stats(i).resyncs, resyncs[i], "node-{i} resynced nobody");
        let bus = node.state.documents.bus_stats().unwrap();
        assert!(bus.rejected > 0 && bus.replayed > 0, "node-{i}: {bus:?}");
    }
    for c in [alice, bob, carol] {
        c.close().await;
    }
}
