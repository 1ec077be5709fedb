//! Delivery end to end: a real HTTP receiver (axum on 127.0.0.1), the real
//! `SledStore` in a temporary directory, the real reqwest client.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chorus_hooks::{
    DeliveryClaims, EventKind, HookEvent, HookTarget, Hooks, HooksConfig, HooksStats, Targets,
};
use chorus_store::{SledStore, Store};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const APP: &str = "app1";
const SECRET: &[u8] = b"app1-signing-secret";

/// What the receiver answers to one request.
#[derive(Clone, Debug, PartialEq)]
enum Reply {
    /// Status and body, after `delay`.
    Status(u16, &'static str, Duration),
    /// Answer nothing for this long (longer than the client's timeout).
    Hang(Duration),
}

impl Reply {
    fn ok(status: u16, body: &'static str) -> Self {
        Reply::Status(status, body, Duration::ZERO)
    }

    /// Whether chorus-hooks must count this answer as delivered.
    fn accepted(&self) -> bool {
        match self {
            Reply::Status(status, body, _) => {
                (200..300).contains(status) && !body.contains("\"error\":1")
            }
            Reply::Hang(_) => false,
        }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    raw: Bytes,
    body: Value,
    reply: Reply,
    at: Instant,
}

impl Received {
    fn id(&self) -> &str {
        self.body["id"].as_str().unwrap()
    }

    fn etag(&self) -> &str {
        self.body["etag"].as_str().unwrap_or("")
    }
}

type Script = dyn Fn(&Value, usize) -> Reply + Send + Sync;

struct ReceiverState {
    script: Box<Script>,
    attempts: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<Received>>,
}

/// A webhook receiver answering by `script(body, attempt number of that event id)`.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    server: JoinHandle<()>,
}

impl Receiver {
    async fn start(script: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> Self {
        let state = Arc::new(ReceiverState {
            script: Box::new(script),
            attempts: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).into_future().await.unwrap();
        });
        Self { url, state, server }
    }

    fn received(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }

    /// Accepted requests, in arrival order.
    fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.reply.accepted())
            .collect()
    }

    fn targets(&self) -> Arc<dyn Targets> {
        targets_for(self.url.clone())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    let attempt = {
        let mut attempts = state.attempts.lock().unwrap();
        let n = attempts.entry(id).or_default();
        *n += 1;
        *n
    };
    let reply = (state.script)(&body, attempt);
    state.log.lock().unwrap().push(Received {
        headers,
        raw,
        body,
        reply: reply.clone(),
        at: Instant::now(),
    });
    match reply {
        Reply::Status(status, text, delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::from_u16(status).unwrap(), text).into_response()
        }
        Reply::Hang(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
    }
}

fn targets_for(url: String) -> Arc<dyn Targets> {
    Arc::new(move |app: &str| {
        (app == APP).then(|| HookTarget {
            callback_url: url.clone(),
            secret: SECRET.to_vec(),
        })
    })
}

fn fast_config() -> HooksConfig {
    HooksConfig {
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
        request_timeout: Duration::from_millis(500),
        ..HooksConfig::default()
    }
}

fn open_store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SledStore::open(dir).unwrap())
}

/// A running delivery loop.
struct Running {
    hooks: Hooks,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn start(hooks: &Hooks) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(hooks.clone().run(stop.clone()));
        Self {
            hooks: hooks.clone(),
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the loop stops when cancelled")
            .unwrap();
    }

    fn stats(&self) -> HooksStats {
        self.hooks.stats()
    }
}

/// Poll `cond` until it holds (panics after 15 s).
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn enqueue_all(hooks: &Hooks, store: &Arc<dyn Store>, events: &[HookEvent]) -> Vec<String> {
    let ids = events.iter().map(|e| hooks.enqueue(e).unwrap()).collect();
    store.flush().unwrap();
    hooks.notify();
    ids
}

fn saved(doc: &str, etag: &str) -> HookEvent {
    HookEvent::saved(APP, doc, 1_700_000_000_000, etag)
}

/// Verify the request's signature and headers; return the claims.
fn verify(request: &Received) -> DeliveryClaims {
    let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-chorus-event-id"), request.id());
    assert_eq!(
        header("x-chorus-event-type"),
        request.body["type"].as_str().unwrap()
    );
    let token = header("authorization").strip_prefix("Bearer ").unwrap();

    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[APP]);
    validation.set_issuer(&["chorus"]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "jti"]);
    let claims = jsonwebtoken::decode::<DeliveryClaims>(
        token,
        &DecodingKey::from_secret(SECRET),
        &validation,
    )
    .expect("the token verifies with the app's secret")
    .claims;
    assert!(
        jsonwebtoken::decode::<DeliveryClaims>(
            token,
            &DecodingKey::from_secret(b"another secret"),
            &validation
        )
        .is_err(),
        "another secret does not verify it"
    );
    assert_eq!(claims.iss, "chorus");
    assert_eq!(claims.aud, APP);
    assert_eq!(claims.jti, request.id(), "jti is the body's id");
    assert_eq!(claims.exp, claims.iat + 300);
    let hash = URL_SAFE_NO_PAD.encode(Sha256::digest(&request.raw));
    assert_eq!(
        claims.body_sha256, hash,
        "body_sha256 is the hash of the bytes received"
    );
    claims
}

async fn wait_outbox_empty(store: &Arc<dyn Store>) {
    wait_for("the outbox to be acknowledged", || {
        store.outbox_pending(100).unwrap().is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_arrives_signed_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let receiver = Receiver::start(|_, _| Reply::ok(200, "")).await;
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), fast_config()).unwrap();
    let running = Running::start(&hooks);

    let at = 1_700_000_000_123;
    let events = [
        HookEvent::editing(APP, "post-1", at, ["alice"]),
        HookEvent::saved(APP, "post-1", at + 1, "e1"),
        HookEvent::external_change(APP, "post-1", at + 2, ["title"], "e2"),
        HookEvent::closed(
            APP,
            "post-1",
            at + 3,
            "Title",
            "<p>Hi</p>",
            ["alice", "bob"],
            "e3",
        ),
        HookEvent::published(APP, "post-1", at + 4, "Title", "<p>Hi</p>", "e3", at + 5),
    ];
    let mut ids = enqueue_all(&hooks, &store, &events);
    wait_for("5 deliveries", || running.stats().delivered == 5).await;
    // The deletion last: it would supersede whatever of the document was undelivered.
    ids.extend(enqueue_all(
        &hooks,
        &store,
        &[
            HookEvent::deleted(APP, "post-1", at + 5, 2),
            HookEvent::evicted(APP, "post-1", at + 6, "T", "<p>x</p>", "e9", at),
        ],
    ));
    wait_for("7 deliveries", || running.stats().delivered == 7).await;

    let received = receiver.received();
    assert_eq!(received.len(), 7, "one request per event");
    let got_ids: Vec<&str> = received.iter().map(Received::id).collect();
    assert_eq!(
        got_ids, ids,
        "in enqueue order, with the ids enqueue returned"
    );
    for request in &received {
        verify(request);
    }
    let envelope = |i: usize, kind: &str| json!({"id": ids[i], "type": kind, "app": APP, "doc": "post-1", "at": at + i as u64});
    let with = |mut base: Value, fields: Value| {
        base.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        base
    };
    let expected = [
        with(envelope(0, "editing"), json!({"users": ["alice"]})),
        with(envelope(1, "saved"), json!({"etag": "e1"})),
        with(
            envelope(2, "external-change"),
            json!({"fields": ["title"], "etag": "e2"}),
        ),
        with(
            envelope(3, "closed"),
            json!({"title": "Title", "html": "<p>Hi</p>", "contributors": ["alice", "bob"], "etag": "e3"}),
        ),
        with(
            envelope(4, "published"),
            json!({"title": "Title", "html": "<p>Hi</p>", "etag": "e3", "publishedAt": at + 5}),
        ),
        with(envelope(5, "deleted"), json!({"closedSessions": 2})),
        with(
            envelope(6, "evicted"),
            json!({"title": "T", "html": "<p>x</p>", "etag": "e9", "lastUsedAt": at}),
        ),
    ];
    for (request, expected) in received.iter().zip(expected) {
        assert_eq!(request.body, expected);
    }
    let kinds: Vec<&str> = received
        .iter()
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut sorted_kinds = kinds.clone();
    sorted_kinds.sort_unstable();
    let mut sorted_all = all.clone();
    sorted_all.sort_unstable();
    assert_eq!(sorted_kinds, sorted_all, "every kind was sent");

    wait_outbox_empty(&store).await;
    let stats = running.stats();
    assert_eq!((stats.failed_attempts, stats.dropped), (0, 0));
    wait_for("pending to reach 0", || running.stats().pending == 0).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_and_the_event_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let receiver = Receiver::start(|_, attempt| match attempt {
        1 => Reply::ok(500, "oops"),
        2 => Reply::Hang(Duration::from_secs(3)),
        3 => Reply::ok(200, r#"{"error":1}"#),
        _ => Reply::ok(200, r#"{"error":0}"#),
    })
    .await;
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), fast_config()).unwrap();
    let running = Running::start(&hooks);

    let ids = enqueue_all(&hooks, &store, &[saved("doc", "e1")]);
    wait_for("the delivery", || running.stats().delivered == 1).await;
    wait_outbox_empty(&store).await;
    // Nothing more arrives once it was accepted.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let received = receiver.received();
    let replies: Vec<Reply> = received.iter().map(|r| r.reply.clone()).collect();
    assert_eq!(
        replies,
        [
            Reply::ok(500, "oops"),
            Reply::Hang(Duration::from_secs(3)),
            Reply::ok(200, r#"{"error":1}"#),
            Reply::ok(200, r#"{"error":0}"#),
        ],
        "500, timeout and {{\"error\":1}} are retried; accepted once"
    );
    for request in &received {
        assert_eq!(request.id(), ids[0], "every attempt carries the same id");
        assert_eq!(request.raw, received[0].raw, "and the same body");
        verify(request);
    }
    assert_eq!(receiver.accepted().len(), 1);
    let stats = running.stats();
    assert_eq!(
        (stats.delivered, stats.failed_attempts, stats.dropped),
        (1, 3, 0)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_document_holds_back_only_its_own_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    // A1 fails twice, slowly: each failure takes 300 ms.
    let receiver = Receiver::start(|body, attempt| {
        if body["etag"] == "A1" && attempt <= 2 {
            Reply::Status(500, "", Duration::from_millis(300))
        } else {
            Reply::ok(200, "")
        }
    })
    .await;
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), fast_config()).unwrap();
    let running = Running::start(&hooks);

    let events: Vec<HookEvent> = (1..=5)
        .flat_map(|i| [saved("A", &format!("A{i}")), saved("B", &format!("B{i}"))])
        .collect();
    enqueue_all(&hooks, &store, &events);
    wait_for("10 deliveries", || running.stats().delivered == 10).await;

    let accepted = receiver.accepted();
    let order = |doc: &str| -> Vec<String> {
        accepted
            .iter()
            .filter(|r| r.body["doc"] == doc)
            .map(|r| r.etag().to_owned())
            .collect()
    };
    assert_eq!(
        order("A"),
        ["A1", "A2", "A3", "A4", "A5"],
        "A in order, once each"
    );
    assert_eq!(
        order("B"),
        ["B1", "B2", "B3", "B4", "B5"],
        "B in order, once each"
    );

    let received = receiver.received();
    let a1_ok = accepted.iter().find(|r| r.etag() == "A1").unwrap().at;
    for request in received
        .iter()
        .filter(|r| r.body["doc"] == "A" && r.etag() != "A1")
    {
        assert!(
            request.at > a1_ok,
            "no later A event is sent before A1 succeeded"
        );
    }
    for request in accepted.iter().filter(|r| r.body["doc"] == "B") {
        assert!(
            request.at < a1_ok,
            "{} was not held back by A1's retries",
            request.etag()
        );
    }
    assert_eq!(received.len(), 12, "two failed attempts, ten accepted");
    assert_eq!(running.stats().failed_attempts, 2);
    wait_outbox_empty(&store).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_survive_a_restart_and_keep_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens on this port: connection refused.
    let dead_url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };

    let ids = {
        let store = open_store(dir.path());
        let hooks = Hooks::new(Arc::clone(&store), targets_for(dead_url), fast_config()).unwrap();
        let running = Running::start(&hooks);
        let ids = enqueue_all(
            &hooks,
            &store,
            &[
                saved("doc", "e1"),
                HookEvent::closed(APP, "doc", 2, "T", "<p>x</p>", ["alice"], "e2"),
            ],
        );
        wait_for("connection failures", || {
            running.stats().failed_attempts >= 2
        })
        .await;
        running.stop().await;
        let stats = hooks.stats();
        assert_eq!((stats.delivered, stats.dropped), (0, 0));
        ids
        // The hooks and the store are dropped here, nothing delivered.
    };

    let receiver = Receiver::start(|_, _| Reply::ok(200, "")).await;
    let store = open_store(dir.path());
    assert_eq!(store.outbox_pending(10).unwrap().len(), 2, "still pending");
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), fast_config()).unwrap();
    let running = Running::start(&hooks);
    wait_for("the redelivery", || running.stats().delivered == 2).await;
    wait_outbox_empty(&store).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let received = receiver.received();
    let got: Vec<&str> = received.iter().map(Received::id).collect();
    assert_eq!(
        got, ids,
        "delivered once each, in order, with the original ids"
    );
    for request in &received {
        verify(request);
    }
    assert_eq!(received[1].body["type"], "closed");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_zero_and_empty_2xx_answers_are_success() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let receiver = Receiver::start(|body, _| match body["etag"].as_str().unwrap() {
        "json-error-0" => Reply::ok(200, r#"{"error":0}"#),
        "empty-204" => Reply::ok(204, ""),
        "empty-200" => Reply::ok(200, ""),
        _ => Reply::ok(202, "accepted"),
    })
    .await;
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), fast_config()).unwrap();
    let running = Running::start(&hooks);
    let etags = ["json-error-0", "empty-204", "empty-200", "text-202"];
    let events: Vec<HookEvent> = etags.iter().map(|e| saved(e, e)).collect();
    enqueue_all(&hooks, &store, &events);
    wait_for("4 deliveries", || running.stats().delivered == 4).await;
    wait_outbox_empty(&store).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let received = receiver.received();
    assert_eq!(
        received.len(),
        4,
        "each answer accepted at the first attempt"
    );
    assert_eq!(running.stats().failed_attempts, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_an_app_without_target_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let receiver = Receiver::start(|_, _| Reply::ok(200, "")).await;
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), fast_config()).unwrap();
    let running = Running::start(&hooks);
    enqueue_all(
        &hooks,
        &store,
        &[
            HookEvent::saved("disabled-app", "doc", 1, "x"),
            saved("doc", "y"),
        ],
    );
    wait_for("one drop, one delivery", || {
        let s = running.stats();
        (s.dropped, s.delivered) == (1, 1)
    })
    .await;
    wait_outbox_empty(&store).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["app"], APP);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_failing_past_max_age_becomes_a_dead_letter_the_host_can_take() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let receiver = Receiver::start(|_, _| Reply::ok(503, "")).await;
    let config = HooksConfig {
        max_age: Duration::from_millis(300),
        ..fast_config()
    };
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), config).unwrap();
    let running = Running::start(&hooks);
    enqueue_all(&hooks, &store, &[saved("doc", "e1"), saved("doc", "e2")]);
    wait_for("both given up", || running.stats().dropped == 2).await;
    wait_outbox_empty(&store).await;
    let stats = running.stats();
    assert_eq!(stats.delivered, 0);
    assert!(stats.failed_attempts >= 2, "{stats:?}");
    assert_eq!(stats.dead_letters, 2, "kept, not dropped: {stats:?}");
    // The raw store says the same (the oracle is not the code under test).
    let raw = store.dead_letters(APP, 10).unwrap();
    assert_eq!(raw.len(), 2);
    assert!(
        raw.iter().all(|d| d.reason.starts_with("max-age: ")),
        "{raw:?}"
    );
    let dead = hooks.dead_letters(APP, 10).unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| d.body.as_ref().unwrap()["etag"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["e1", "e2"],
        "oldest first, with the body every attempt sent"
    );
    assert_eq!(dead[0].kind, Some(EventKind::Saved));
    assert_eq!(dead[0].doc.as_deref(), Some("doc"));
    assert_eq!(dead[0].body.as_ref().unwrap()["id"], dead[0].id.as_str());
    assert!(!hooks.ack_dead_letter("other-app", &dead[0].id).unwrap());
    assert!(!hooks.ack_dead_letter(APP, "evt-x").unwrap());
    assert!(hooks.ack_dead_letter(APP, &dead[0].id).unwrap());
    assert!(
        !hooks.ack_dead_letter(APP, &dead[0].id).unwrap(),
        "taken once"
    );
    assert_eq!(hooks.stats().dead_letters, 1);
    assert_eq!(store.dead_letters(APP, 10).unwrap().len(), 1);
    let first_e2 = receiver
        .received()
        .iter()
        .position(|r| r.etag() == "e2")
        .unwrap();
    assert!(
        receiver.received()[..first_e2]
            .iter()
            .all(|r| r.etag() == "e1"),
        "e2 is tried only once e1 is given up"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_before_notify() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let receiver = Receiver::start(|_, _| Reply::ok(200, "")).await;
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), fast_config()).unwrap();
    let early = hooks.enqueue(&saved("doc", "before-run")).unwrap();
    let running = Running::start(&hooks);
    let late = hooks.enqueue(&saved("doc", "while-running")).unwrap();
    store.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received().is_empty(), "not released yet");
    assert_eq!(running.stats().pending, 2);

    hooks.notify();
    wait_for("2 deliveries", || running.stats().delivered == 2).await;
    let got: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.id().to_owned())
        .collect();
    assert_eq!(got, [early, late]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_events_than_max_loaded_are_all_delivered_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    // Slow answers, so that events pile up beyond `max_loaded` while the loop runs.
    let receiver = Receiver::start(|_, _| Reply::Status(200, "", Duration::from_millis(15))).await;
    let config = HooksConfig {
        max_loaded: 4,
        concurrency: 2,
        ..fast_config()
    };
    let hooks = Hooks::new(Arc::clone(&store), receiver.targets(), config).unwrap();
    // Some before the loop runs (it reads them from the outbox), some while it runs
    // (handed over in memory until more than `max_loaded` are pending).
    let mut events = Vec::new();
    for i in 1..=6 {
        for doc in ["x", "y", "z"] {
            events.push(saved(doc, &format!("{doc}{i}")));
        }
    }
    enqueue_all(&hooks, &store, &events[..7]);
    let running = Running::start(&hooks);
    for event in &events[7..] {
        enqueue_all(&hooks, &store, std::slice::from_ref(event));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_for("18 deliveries", || running.stats().delivered == 18).await;
    wait_outbox_empty(&store).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let received = receiver.received();
    assert_eq!(received.len(), 18, "each event exactly once");
    for doc in ["x", "y", "z"] {
        let order: Vec<&str> = received
            .iter()
            .filter(|r| r.body["doc"] == doc)
            .map(Received::etag)
            .collect();
        let expected: Vec<String> = (1..=6).map(|i| format!("{doc}{i}")).collect();
        assert_eq!(order, expected);
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_refused_at_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let hooks = Hooks::new(
        Arc::clone(&store),
        targets_for(String::new()),
        fast_config(),
    )
    .unwrap();
    let reserved = HookEvent::new(EventKind::Saved, APP, "doc", 1, json!({"id": "forged"}));
    assert!(hooks.enqueue(&reserved).is_err());
    let not_object = HookEvent::new(EventKind::Saved, APP, "doc", 1, json!("x"));
    assert!(hooks.enqueue(&not_object).is_err());
    assert!(store.outbox_pending(10).unwrap().is_empty());
}
