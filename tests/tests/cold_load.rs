//! Loading a stored document with a long history: a joiner that has nothing is
//! answered from the stored bytes while the server integrates them, but never with
//! content the whitelist in force would refuse, and never missing an edit another
//! joiner made meanwhile.

use bytes::Bytes;
use chorus_e2e::{eventually, raw_connect, TestServer, APP, SECRETS};
use chorus_protocol::{encode_sync, Message, SyncMessage};
use futures_util::{SinkExt, StreamExt};
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Doc, GetString, ReadTxn, StateVector, Text, Transact, Update, WriteTxn, XmlElementPrelim,
    XmlFragment, XmlTextPrelim,
};

/// Typed into the title one character at a time, each at its start, so no two
/// merge into one item: the server needs a while to integrate them.
const HISTORY: usize = 100_000;
const SECRET: &str = "SECRET-WIDGET-TEXT";

/// A document whose title holds `HISTORY` single-character items; optionally a
/// body element `<x-widget>` holding [`SECRET`]. Returns the update and the title.
fn long_history(widget: bool) -> (Vec<u8>, String) {
    let doc = Doc::with_client_id(7);
    let title = doc.get_or_insert_text("title");
    for i in 0..HISTORY {
        let mut txn = doc.transact_mut();
        let c = char::from(b'a' + (i % 26) as u8);
        title.insert(&mut txn, 0, &c.to_string());
    }
    if widget {
        let mut txn = doc.transact_mut();
        let body = txn.get_or_insert_xml_fragment("body");
        let el = body.push_back(&mut txn, XmlElementPrelim::empty("x-widget"));
        el.push_back(&mut txn, XmlTextPrelim::new(SECRET));
    }
    let txn = doc.transact();
    (
        txn.encode_state_as_update_v1(&StateVector::default()),
        title.get_string(&txn),
    )
}

/// Store `update` as document `doc` of a server on `dir`, then stop that server.
async fn store(dir: &Path, doc: &str, update: &[u8], adjust: impl FnOnce(&mut chorus_e2e::Config)) {
    let server = TestServer::start_in(dir, adjust).await;
    let writer = server.ext_client(doc, "alice").await;
    writer.wait_synced().await.unwrap();
    let n = writer.send_update(update);
    eventually(60, "the history is saved", || writer.saved() >= n)
        .await
        .unwrap();
    assert!(writer.errors().is_empty(), "{:?}", writer.errors());
    drop(writer);
    server.stop().await.unwrap();
}

/// A server restarted on a store holding [`long_history`] (no widget) as `doc`,
/// its directory, and the title stored.
async fn restarted_with_long_history(doc: &str) -> (tempfile::TempDir, TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let (update, expected) = long_history(false);
    store(dir.path(), doc, &update, |_| {}).await;
    let server = TestServer::start_in(dir.path(), |_| {}).await;
    (dir, server, expected)
}

/// What a raw client that sent an empty step 1 receives, up to the first step 2
/// that follows the server's own step 1 (the second step 2 when the draft was
/// served early, the only one otherwise).
struct Received {
    /// (sub-type, payload) of each sync message: 0 step 1, 1 step 2, 2 update.
    sync: Vec<(u8, Bytes)>,
    /// Every binary frame, raw.
    frames: Vec<Bytes>,
}

impl Received {
    /// The sub-type of the first sync message.
    fn first_kind(&self) -> Option<u8> {
        self.sync.first().map(|(s, _)| *s)
    }

    /// Does any frame carry these bytes?
    fn carries(&self, needle: &str) -> bool {
        self.frames
            .iter()
            .any(|f| f.windows(needle.len()).any(|w| w == needle.as_bytes()))
    }
}

async fn join_with_nothing(server: &TestServer, doc: &str) -> Received {
    let url = server.ws_url(APP, doc, &server.token(doc, "bob"));
    let mut ws = raw_connect(&url).await.unwrap();
    let empty = StateVector::default().encode_v1();
    ws.send(WsMessage::Binary(encode_sync(0, &empty)))
        .await
        .unwrap();
    let mut got = Received {
        sync: Vec::new(),
        frames: Vec::new(),
    };
    let read = async {
        while let Some(Ok(msg)) = ws.next().await {
            let WsMessage::Binary(frame) = msg else {
                continue;
            };
            got.frames.push(frame.clone());
            let Ok(Message::Sync(sync)) = Message::decode(&frame) else {
                continue;
            };
            let (sub, payload) = match sync {
                SyncMessage::Step1(p) => (0, p),
                SyncMessage::Step2(p) => (1, p),
                SyncMessage::Update(p) => (2, p),
            };
            got.sync.push((sub, payload));
            // Done once a step 2 came after the server's step 1.
            let step1 = got.sync.iter().position(|(s, _)| *s == 0);
            if step1.is_some_and(|i| got.sync[i..].iter().any(|(s, _)| *s == 1)) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the handshake completes");
    got
}

/// The title a client has after applying `sync` messages (step 2s and updates).
fn title_after(sync: &[(u8, Bytes)]) -> String {
    let doc = Doc::new();
    let title = doc.get_or_insert_text("title");
    let mut txn = doc.transact_mut();
    for (sub, payload) in sync {
        if *sub != 0 {
            txn.apply_update(Update::decode_v1(payload).unwrap())
                .unwrap();
        }
    }
    title.get_string(&txn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_with_nothing_gets_the_stored_draft_before_the_history_is_integrated() {
    let (_dir, server, expected) = restarted_with_long_history("long").await;
    let got = join_with_nothing(&server, "long").await;
    let kinds: Vec<u8> = got.sync.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        kinds.first(),
        Some(&1),
        "the stored draft (step 2) comes first, before the server's step 1: {kinds:?}"
    );
    let step1 = kinds.iter().position(|s| *s == 0).unwrap();
    assert_eq!(
        title_after(&got.sync[..step1]),
        expected,
        "what came before the server's step 1 is the whole stored draft"
    );
    assert_eq!(title_after(&got.sync), expected);
    // The answer to the queued step 1 holds nothing new.
    let late = &got.sync[step1 + 1..];
    assert!(
        late.iter().all(|(_, p)| p.len() < 16),
        "nothing is sent twice: {:?}",
        late.iter().map(|(s, p)| (s, p.len())).collect::<Vec<_>>()
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_stored_under_another_whitelist_is_checked_before_anyone_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    // Policy A allows <x-widget>; the default policy (B) does not.
    let policy_a = policy_allowing_widgets(dir.path());
    let data = dir.path().join("data");
    let (update, expected) = long_history(true);
    store(&data, "widget", &update, |c| {
        c.apps[0].whitelist = Some(policy_a.clone())
    })
    .await;

    // Restarted under B: the widget must not leave the server, early or late.
    let server = TestServer::start_in(&data, |_| {}).await;
    let got = join_with_nothing(&server, "widget").await;
    assert!(
        !got.carries(SECRET),
        "content outside the whitelist in force was sent"
    );
    assert_eq!(
        got.first_kind(),
        Some(0),
        "stored under another whitelist: answered only once checked"
    );
    assert_eq!(
        title_after(&got.sync),
        expected,
        "the allowed rest is served"
    );
    server.stop().await.unwrap();

    // The load under B stored what the check removed: from now on the draft is
    // served early again, still without the widget.
    let server = TestServer::start_in(&data, |_| {}).await;
    let got = join_with_nothing(&server, "widget").await;
    assert_eq!(got.first_kind(), Some(1));
    assert!(!got.carries(SECRET));
    assert_eq!(title_after(&got.sync), expected);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_while_the_document_loads_reaches_joiners_served_early() {
    let (dir, server, expected) = restarted_with_long_history("busy").await;
    // Both join while the history integrates; the first edits at once, so its
    // edit is queued before the second's step 1.
    let first = server.ext_client("busy", "carol").await;
    let n = first.insert_title(0, "EARLY-EDIT ");
    let second = server.client("busy", "dave").await;
    let want = format!("EARLY-EDIT {expected}");
    eventually(60, "both have the edit", || {
        first.title() == want && second.title() == want
    })
    .await
    .unwrap();
    eventually(30, "the edit is saved", || first.saved() >= n)
        .await
        .unwrap();
    drop((first, second));
    server.stop().await.unwrap();

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let got = join_with_nothing(&server, "busy").await;
    assert_eq!(title_after(&got.sync), want, "and it was stored");
    server.stop().await.unwrap();
}

/// A y-websocket provider reports `synced` on the first step 2 it gets, and apps
/// read the draft then: served early, that step 2 must hold the log after the
/// snapshot too, not leave it to a frame that follows (a kill -9 leaves such a log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_step_2_of_an_early_answer_holds_the_log_after_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (update, expected) = long_history(false);
    store(dir.path(), "logged", &update, |_| {}).await;

    // Edits acknowledged after the last snapshot, as a crash leaves them: in the log.
    let snapshot = {
        // The stopped server's writer thread may hold the lock a moment longer.
        let mut attempts = 0;
        let store = loop {
            match chorus_store::SledStore::open(dir.path()) {
                Ok(store) => break store,
                Err(e) if attempts < 100 && e.to_string().contains("lock") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the store did not open: {e}"),
            }
        };
        let id = chorus_store::DocId::new(APP, "logged");
        let stored = chorus_store::Store::load(&store, &id).unwrap().unwrap();
        let doc = Doc::with_client_id(8);
        let title = doc.get_or_insert_text("title");
        let mut txn = doc.transact_mut();
        for part in stored
            .snapshot
            .iter()
            .chain(stored.updates.iter().map(|(_, u)| u))
        {
            txn.apply_update(Update::decode_v1(part).unwrap()).unwrap();
        }
        let mut seq = stored
            .updates
            .last()
            .map_or(stored.snapshot_seq, |(s, _)| *s);
        let mut batch = chorus_store::WriteBatch::default();
        for edit in ["LOGGED-1 ", "LOGGED-2 "] {
            let before = txn.state_vector();
            title.insert(&mut txn, 0, edit);
            seq += 1;
            batch.append(&id, seq, &txn.encode_state_as_update_v1(&before));
        }
        drop(txn);
        chorus_store::Store::write(&store, batch).unwrap();
        chorus_store::Store::flush(&store).unwrap();
        stored.snapshot.is_some()
    };
    assert!(snapshot, "the stopped server left a snapshot");

    let server = TestServer::start_in(dir.path(), |_| {}).await;
    let got = join_with_nothing(&server, "logged").await;
    let want = format!("LOGGED-2 LOGGED-1 {expected}");
    assert_eq!(got.first_kind(), Some(1), "served early");
    assert_eq!(
        title_after(&got.sync[..1]),
        want,
        "the first step 2 alone is the whole stored draft"
    );
    assert_eq!(title_after(&got.sync), want);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_point_renders_and_restores_only_what_todays_policy_allows() {
    use chorus_e2e::{host_token, http, http_with_body, YClient};
    use yrs::{Transact, XmlElementPrelim, XmlFragment, XmlTextPrelim};
    let dir = tempfile::tempdir().unwrap();
    // Policy A allows <x-widget>; the default policy (today's) does not.
    let policy_a = policy_allowing_widgets(dir.path());
    let data = dir.path().join("data");
    let doc = "historic";
    let host = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let auth = [("Authorization", host.as_str())];

    // Under A: a widget and a paragraph, published (a history point).
    let server =
        TestServer::start_in(&data, |c| c.apps[0].whitelist = Some(policy_a.clone())).await;
    let writer = server.ext_client(doc, "alice").await;
    let author = yrs::Doc::with_client_id(4242);
    let body = author.get_or_insert_xml_fragment("body");
    let update = {
        let mut txn = author.transact_mut();
        let widget = body.push_back(&mut txn, XmlElementPrelim::empty("x-widget"));
        widget.push_back(&mut txn, XmlTextPrelim::new(SECRET));
        let p = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
        p.push_back(&mut txn, XmlTextPrelim::new("kept"));
        txn.encode_update_v1()
    };
    let n = writer.send_update(&update);
    eventually(10, "saved", || writer.saved() >= n)
        .await
        .unwrap();
    let draft = format!("/v1/apps/{APP}/docs/{doc}/draft?format=json");
    let (status, headers, body_json) = http(server.addr, "GET", &draft, &auth).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body_json).contains(SECRET),
        "policy A keeps the widget"
    );
    let etag = headers["etag"].clone();
    let publish = format!("/v1/apps/{APP}/docs/{doc}/publish?conflictPolicy=abort");
    let (status, _, _) = http(
        server.addr,
        "POST",
        &publish,
        &[
            ("Authorization", host.as_str()),
            ("If-Match", etag.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    drop(writer);
    server.stop().await.unwrap();

    // Under today's policy: the point renders and restores without the widget.
    let server = TestServer::start_in(&data, |_| {}).await;
    let (status, _, list) = http(
        server.addr,
        "GET",
        &format!("/v1/apps/{APP}/docs/{doc}/history"),
        &auth,
    )
    .await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    let point = list["points"][0]["point"]
        .as_u64()
        .expect("a history point");
    for format in ["json", "html"] {
        let path = format!("/v1/apps/{APP}/docs/{doc}/history/{point}?format={format}");
        let (status, _, rendered) = http(server.addr, "GET", &path, &auth).await;
        assert_eq!(status, 200);
        let rendered = String::from_utf8_lossy(&rendered);
        assert!(
            !rendered.contains(SECRET),
            "{format} render of the point: {rendered}"
        );
        assert!(!rendered.contains("x-widget"), "{format}: {rendered}");
        assert!(
            rendered.contains("kept"),
            "{format}: the allowed rest renders"
        );
    }
    let watcher = server.client(doc, "bob").await;
    let (status, _, _) = http_with_body(
        server.addr,
        "POST",
        &format!("/v1/apps/{APP}/docs/{doc}/restore"),
        &[
            ("Authorization", host.as_str()),
            ("Content-Type", "application/json"),
        ],
        format!("{{\"point\":{point}}}").as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let fresh = YClient::connect(&server.ws_url(APP, doc, &server.token(doc, "carol")))
        .await
        .unwrap();
    fresh.wait_synced().await.unwrap();
    for c in [&watcher, &fresh] {
        let body = c.body();
        assert!(
            !body.contains(SECRET) && !body.contains("x-widget"),
            "{body}"
        );
        assert!(body.contains("kept"), "{body}");
    }
    server.stop().await.unwrap();
}

/// The default policy plus `<x-widget>`, written into `dir`: its path.
fn policy_allowing_widgets(dir: &Path) -> std::path::PathBuf {
    let mut policy: serde_json::Value =
        serde_json::from_str(include_str!("../../proto/whitelist-default.json")).unwrap();
    policy["elements"]["x-widget"] = serde_json::json!([]);
    let path = dir.join("policy-a.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    path
}
