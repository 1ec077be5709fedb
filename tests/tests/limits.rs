//! Limits on valid but abusive clients: a flooding connection is throttled (its
//! own socket is left unread) and then closed with 4429 while the other editors
//! of its document keep their latency; connection caps refuse the upgrade with
//! 503 and `Retry-After`; the host API answers 429 with `Retry-After` per app.

use chorus_e2e::{
    eventually, host_token, http, raw_connect, TestServer, APP, OTHER_SECRET, SECRETS,
};
use chorus_protocol::{encode_sync, ChorusMessage, Message, SYNC_UPDATE};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::{Doc, ReadTxn, Text, Transact};

/// `n` one-character title updates of a client of its own, each on its own
/// (nothing to sync first: every insert is at the start of what it typed).
fn flood_updates(n: usize) -> Vec<bytes::Bytes> {
    let doc = Doc::with_client_id(0xF100D);
    let title = doc.get_or_insert_text("title");
    (0..n)
        .map(|_| {
            let mut txn = doc.transact_mut();
            let before = txn.state_vector();
            title.insert(&mut txn, 0, "f");
            encode_sync(SYNC_UPDATE, &txn.encode_state_as_update_v1(&before))
        })
        .collect()
}

/// What the flooder saw.
#[derive(Default)]
struct Flood {
    /// Chorus error codes received.
    errors: Vec<String>,
    /// The close frame's code and reason.
    closed: Option<(u16, String)>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_throttled_then_closed_while_its_neighbours_keep_their_latency() {
    const CLOSE_AFTER_SECS: u64 = 4;
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 100;
        c.limits.messages_burst = 200;
        c.limits.throttle_close_secs = CLOSE_AFTER_SECS;
    })
    .await;
    let alice = server.client("busy", "alice").await;
    let bob = server.client("busy", "bob").await;

    // The flooder: valid updates, as fast as its socket takes them.
    let updates = flood_updates(20_000);
    let url = format!(
        "{}&chorus=1",
        server.ws_url(APP, "busy", &server.token("busy", "mallory"))
    );
    let ws = raw_connect(&url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = Arc::new(Mutex::new(Flood::default()));
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for frame in updates {
                if tx.send(WsMessage::Binary(frame)).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let reader = {
        let flood = flood.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                match msg {
                    WsMessage::Binary(frame) => {
                        if let Ok(Message::Chorus(ChorusMessage::Error { code, .. })) =
                            Message::decode(&frame)
                        {
                            flood.lock().unwrap().errors.push(code);
                        }
                    }
                    WsMessage::Close(frame) => {
                        flood.lock().unwrap().closed =
                            frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        break;
                    }
                    _ => {}
                }
            }
        })
    };
    let flood_started = Instant::now();

    // The pair edits while the flooder is throttled: one keystroke every 20 ms,
    // each timed from alice's insert to bob having it.
    let mut latencies = Vec::new();
    let mut i = 0;
    while flood_started.elapsed() < Duration::from_secs(CLOSE_AFTER_SECS - 1) {
        let marker = format!("[{i}]");
        alice.insert_title(0, &marker);
        let typed = Instant::now();
        while !bob.title().contains(&marker) {
            assert!(
                typed.elapsed() < Duration::from_secs(10),
                "bob never got {marker}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(typed.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let throttled_sent = sent.load(Ordering::Relaxed);

    eventually(CLOSE_AFTER_SECS + 10, "the flooder is closed", || {
        flood.lock().unwrap().closed.is_some()
    })
    .await
    .unwrap();
    let closed_after = flood_started.elapsed();
    writer.abort();
    let _ = reader.await;
    let flood = std::mem::take(&mut *flood.lock().unwrap());
    assert_eq!(
        flood.closed,
        Some((4429, "rate-limited".to_owned())),
        "the flooder is closed with the contract's code"
    );
    assert_eq!(
        flood.errors.first().map(String::as_str),
        Some("rate-limited"),
        "an opted-in client is told first"
    );
    // What got through is the burst plus the rate, not the flood.
    let admitted = flood_chars(&server, "busy").await;
    let ceiling = 200 + 100 * (closed_after.as_secs() as usize + 1);
    assert!(
        admitted <= ceiling,
        "{admitted} flood updates admitted in {closed_after:?}, over the {ceiling} the limits allow"
    );

    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "flood: {throttled_sent} frames written by the flooder in {}s, {admitted} admitted, \
         closed after {closed_after:?}; pair: {} edits, p50 {p50:?}, p99 {p99:?}",
        CLOSE_AFTER_SECS - 1,
        latencies.len()
    );
    assert!(
        p99 < Duration::from_millis(50),
        "the pair's p99 was {p99:?} beside a throttled flooder"
    );
    assert!(alice.closed().is_none() && bob.closed().is_none());
    server.stop().await.unwrap();
}

/// The flooder's characters in the draft's title, as a fresh joiner gets it
/// (the pair's markers hold none).
async fn flood_chars(server: &TestServer, doc: &str) -> usize {
    let check = server.client(doc, "checker").await;
    let n = check.title().matches('f').count();
    check.close().await;
    n
}

/// Open a websocket to `url` from the loopback address `source` (all of
/// 127.0.0.0/8 reaches the server on 127.0.0.1), without a handshake beyond the
/// upgrade: the answer to the upgrade is what these tests look at.
async fn connect_from(
    source: &str,
    url: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    tokio_tungstenite::tungstenite::Error,
> {
    let request = url.into_client_request().unwrap();
    let host = request.uri().authority().unwrap().as_str().to_owned();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(host.parse().unwrap()).await.unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(ws, _)| ws)
}

/// The status, `Retry-After` and error `code` of a refused upgrade.
fn refusal<T>(
    result: Result<T, tokio_tungstenite::tungstenite::Error>,
) -> (u16, Option<u64>, String) {
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let retry = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            (
                response.status().as_u16(),
                retry,
                body["code"].as_str().unwrap_or_default().to_owned(),
            )
        }
        Err(e) => panic!("refused another way: {e}"),
        Ok(_) => panic!("accepted over the cap"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_cap_refuses_the_upgrade_with_503_and_retry_after() {
    let server = TestServer::start_with(|c| {
        c.limits.max_connections = 3;
        c.limits.max_connections_per_address = 2;
    })
    .await;
    let a = server.client("capped", "alice").await;
    let b = server.client("capped", "bob").await;
    let url = server.ws_url(APP, "capped", &server.token("capped", "carol"));
    let (status, retry, code) = refusal(connect_from("127.0.0.1", &url).await);
    assert_eq!((status, code.as_str()), (503, "address-full"));
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After in seconds");

    // The address cap is per address: another one gets in, up to the global cap.
    let _c = connect_from("127.0.0.2", &url)
        .await
        .expect("another address gets in");
    let (status, _, code) = refusal(connect_from("127.0.0.3", &url).await);
    assert_eq!((status, code.as_str()), (503, "server-full"));
    // Counted once each, read before the reconnect below (whose tries while the
    // freed place is not yet given back are refusals too).
    let (_, _, metrics) = http(server.addr, "GET", "/metrics", &[]).await;
    let metrics = String::from_utf8(metrics).unwrap();
    for reason in ["address-full", "server-full"] {
        assert!(
            metrics.contains(&format!(
                "chorus_connections_refused_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason} counted:\n{metrics}"
        );
    }

    // The refused ones cost the others nothing, and a place frees when one leaves.
    a.insert_title(0, "still here");
    eventually(10, "bob gets the edit", || b.title() == "still here")
        .await
        .unwrap();
    drop(b);
    let d = eventually_connect(&url).await;
    assert_eq!(d.title(), "still here");
    server.stop().await.unwrap();
}

/// Connect once a place is free (a closed socket's slot is given back when its
/// task ends, a moment after the client dropped it).
async fn eventually_connect(url: &str) -> chorus_e2e::YClient {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = chorus_e2e::YClient::connect(url).await {
            if c.wait_synced_or_closed(5).await.is_ok() {
                return c;
            }
        }
        assert!(Instant::now() < deadline, "no place freed within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_api_requests_over_the_app_rate_get_429_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.limits.host_requests_per_sec = 2;
        c.limits.host_requests_burst = 5;
    })
    .await;
    let bearer = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let list = format!("/v1/apps/{APP}/docs");
    let get = |path: String, auth: String| {
        let addr = server.addr;
        async move { http(addr, "GET", &path, &[("Authorization", &auth)]).await }
    };
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..8 {
        let (status, headers, body) = get(list.clone(), bearer.clone()).await;
        if status == 429 {
            limited.get_or_insert((body, headers));
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], &[200; 5], "the burst passes: {statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let (body, headers) = limited.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "rate-limited");
    let retry: u64 = headers["retry-after"].parse().unwrap();
    assert!(
        (1..=1).contains(&retry),
        "a token every half second: {retry}"
    );
    // Another app has its own budget; after the wait this one passes again.
    let other = format!("Bearer {}", host_token("other", OTHER_SECRET, None));
    let (status, _, _) = get("/v1/apps/other/docs".into(), other).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _, _) = get(list, bearer).await;
    assert_eq!(status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_past_the_join_rate_wait_their_turn_and_past_the_queue_get_503() {
    let server = TestServer::start_with(|c| {
        c.limits.joins_per_sec = 10;
        c.limits.joins_burst = 2;
        c.limits.join_wait_secs = 1;
    })
    .await;
    let url = server.ws_url(APP, "storm", &server.token("storm", "alice"));
    let started = Instant::now();
    // Fifteen at once: two pass, ten wait their turn (100 ms apart, the last a
    // second), three would wait longer and are refused.
    let attempts: Vec<_> = (0..15)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let result = connect_from("127.0.0.1", &url).await;
                (started.elapsed(), result)
            })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for attempt in attempts {
        let (at, result) = attempt.await.unwrap();
        match result {
            Ok(ws) => admitted.push((at, ws)),
            Err(e) => refused.push(refusal::<()>(Err(e))),
        }
    }
    assert_eq!(admitted.len(), 12, "burst + one second of the rate");
    assert!(refused
        .iter()
        .all(|(status, retry, code)| *status == 503 && code == "server-busy" && retry.is_some()));
    let mut times: Vec<Duration> = admitted.iter().map(|(at, _)| *at).collect();
    times.sort();
    assert!(
        times[11] >= Duration::from_millis(900),
        "admitted at the rate, not at once: {times:?}"
    );
    server.stop().await.unwrap();
}

/// A client that asks for the whole document a thousand times at once (a 4-byte
/// empty step 1 each, and a view token suffices) and reads nothing: the answers
/// share one encoding, and once what is queued for it reaches
/// `outbound_queue_bytes` it is closed as a slow consumer (1013). Before, every
/// ask was encoded and queued (a gigabyte for a 1 MB document).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_step1_at_once_share_one_encoding_and_a_client_that_does_not_read_is_closed() {
    let server = TestServer::start_with(|c| {
        // Not a test of the rate limits: let the burst through.
        c.limits.messages_per_sec = 100_000;
        c.limits.messages_burst = 100_000;
    })
    .await;
    let doc = "asked-often";
    let auth = format!("Bearer {}", host_token(APP, SECRETS[0], None));
    let body = serde_json::json!({ "html": format!("<p>{}</p>", "lorem ipsum ".repeat(90_000)) });
    let (status, _, _) = chorus_e2e::http_with_body(
        server.addr,
        "PUT",
        &format!("/v1/apps/{APP}/docs/{doc}/content"),
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let token = chorus_e2e::token_for(APP, SECRETS[0], doc, "asker", chorus_auth::Mode::View);
    let mut ws = raw_connect(&server.ws_url(APP, doc, &token)).await.unwrap();
    let empty_step1 = chorus_protocol::encode_sync(chorus_protocol::SYNC_STEP1, &[0]);
    for _ in 0..1000 {
        ws.feed(WsMessage::Binary(empty_step1.clone()))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    // Read nothing for a while: the answers pile up where the server put them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut answers, mut bytes) = (0usize, 0usize);
    let mut closed = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(1500), ws.next()).await {
        match frame.unwrap() {
            WsMessage::Binary(b) => {
                if let Ok(Message::Sync(chorus_protocol::SyncMessage::Step2(_))) =
                    Message::decode(&b)
                {
                    answers += 1;
                    bytes += b.len();
                }
            }
            WsMessage::Close(c) => closed = c.map(|c| u16::from(c.code)),
            _ => {}
        }
    }
    eprintln!("1000 step 1 at once: {answers} answers, {bytes} bytes, then {closed:?}");
    assert_eq!(closed, Some(1013), "closed as a slow consumer");
    assert!(answers <= 20, "{answers} answers to 1000 asks");
    server.stop().await.unwrap();
}
