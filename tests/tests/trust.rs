//! Issue 28, the server's side: what a caller without a valid token can learn and
//! what guessing costs it. An unknown app answers exactly as a bad signature on
//! every endpoint (no app ids to enumerate), and refused upgrades are charged to
//! their address: one address hammering with bad tokens is turned away with 429
//! while another still connects.

use bytes::Bytes;
use chorus_auth::Mode;
use chorus_e2e::{close_code, host_token, http, raw_connect, token_for, TestServer, YClient, APP};
use chorus_protocol::hocuspocus;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// A secret no app has.
const GUESS: &str = "a-guessed-secret-0123456789abcdef0123";

/// The close code and reason a websocket upgrade on `app` with `token` ends with.
async fn ws_answer(server: &TestServer, app: &str, token: &str) -> (u16, String) {
    let mut ws = raw_connect(&server.ws_url(app, "d", token)).await.unwrap();
    close_code(&mut ws).await.unwrap()
}

/// The provider's `Auth` message (Token = 0).
fn auth(name: &str, token: &str) -> Bytes {
    let mut w = chorus_protocol::Writer::with_capacity(token.len() + 16);
    w.write_var_string(name);
    w.write_var_u64(2);
    w.write_var_u64(0);
    w.write_var_string(token);
    w.finish()
}

/// The frame the Hocuspocus endpoint of `app` answers an `Auth` with `token` with.
async fn hocuspocus_answer(server: &TestServer, app: &str, token: &str) -> Bytes {
    let mut ws = raw_connect(&format!("ws://{}/v1/hocuspocus/{app}", server.addr))
        .await
        .unwrap();
    ws.send(WsMessage::Binary(auth("d", token))).await.unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer within 5 s")
            .expect("the socket stays open")
            .unwrap();
        if let WsMessage::Binary(frame) = msg {
            return frame;
        }
    }
}

/// Status and body of a host API call with `token`.
async fn host_answer(server: &TestServer, path: &str, token: &str) -> (u16, String) {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(server.addr, "GET", path, &[("Authorization", &bearer)]).await;
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_answers_exactly_as_a_bad_signature_on_every_endpoint() {
    let server = TestServer::start_with(|c| c.admin_token = Some(GUESS.repeat(2))).await;

    // The websocket: the same close code and reason.
    let forged = token_for(APP, GUESS, "d", "u", Mode::Edit);
    let unknown = token_for("nope", GUESS, "d", "u", Mode::Edit);
    let bad_signature = ws_answer(&server, APP, &forged).await;
    assert_eq!(bad_signature, (4401, "bad-signature".to_owned()));
    assert_eq!(ws_answer(&server, "nope", &unknown).await, bad_signature);

    // The Hocuspocus endpoint: the same PermissionDenied.
    let denied = hocuspocus_answer(&server, APP, &forged).await;
    assert_eq!(denied, hocuspocus::permission_denied("d", "bad-signature"));
    assert_eq!(hocuspocus_answer(&server, "nope", &unknown).await, denied);

    // The host API, app-wide and per document: the same status and body.
    for (known, nope) in [
        ("/v1/apps/wiki/docs", "/v1/apps/nope/docs"),
        ("/v1/apps/wiki/docs/d/draft", "/v1/apps/nope/docs/d/draft"),
        (
            "/v1/apps/wiki/docs/d/history",
            "/v1/apps/nope/docs/d/history",
        ),
    ] {
        let bad = host_answer(&server, known, &host_token(APP, GUESS, None)).await;
        assert_eq!(bad.0, 401, "{known}: {bad:?}");
        assert!(bad.1.contains("bad-signature"), "{known}: {bad:?}");
        let unknown = host_answer(&server, nope, &host_token("nope", GUESS, None)).await;
        assert_eq!(unknown, bad, "{nope}");
    }

    // The admin API judges its own token before the app.
    let admin = |app: &str| format!("/v1/admin/apps/{app}/disable");
    let bearer = format!("Bearer {GUESS}");
    let wrong = http(
        server.addr,
        "POST",
        &admin(APP),
        &[("Authorization", &bearer)],
    )
    .await;
    let nope = http(
        server.addr,
        "POST",
        &admin("nope"),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(wrong.0, 401);
    assert_eq!((nope.0, nope.2), (wrong.0, wrong.2));

    // A disabled app still says so, to a token that verified.
    let off = token_for("off", chorus_e2e::OFF_SECRET, "d", "u", Mode::Edit);
    assert_eq!(
        ws_answer(&server, "off", &off).await,
        (4403, "app-disabled".to_owned())
    );
}

/// Open a websocket to `url` from `from` (a loopback address of the client's
/// choosing, so one test can be two addresses): the socket, or the HTTP status
/// and `Retry-After` the upgrade was refused with.
async fn connect_from(
    from: &str,
    server: SocketAddr,
    url: &str,
) -> Result<chorus_e2e_ws::Ws, (u16, Option<String>)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(server).await.unwrap();
    match tokio_tungstenite::client_async(url, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => Err((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
        )),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

mod chorus_e2e_ws {
    pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_hammering_with_bad_tokens_is_throttled_while_another_still_connects() {
    let server = TestServer::start_with(|c| {
        c.limits.refused_upgrades_per_sec = 1;
        c.limits.refused_upgrades_burst = 5;
    })
    .await;
    let forged = token_for(APP, GUESS, "d", "u", Mode::Edit);
    let attacker = "127.0.0.2";

    // Bad tokens are refused with their close code until the budget is spent;
    // then the upgrade itself is refused, 429 with Retry-After.
    let mut refusals = 0;
    let throttled = loop {
        match connect_from(attacker, server.addr, &server.ws_url(APP, "d", &forged)).await {
            Ok(mut ws) => {
                let (code, _) = close_code_of(&mut ws).await;
                assert_eq!(code, 4401);
                refusals += 1;
                assert!(
                    refusals <= 8,
                    "still not throttled after {refusals} refusals"
                );
            }
            Err(refused) => break refused,
        }
    };
    assert!(refusals >= 5, "throttled after only {refusals} refusals");
    assert_eq!(throttled.0, 429);
    assert!(throttled.1.is_some(), "a Retry-After");

    // Before any token work: a valid token from that address is turned away too,
    // and so is the Hocuspocus endpoint.
    let good = server.token("d", "u");
    let url = server.ws_url(APP, "d", &good);
    assert_eq!(
        connect_from(attacker, server.addr, &url)
            .await
            .err()
            .map(|e| e.0),
        Some(429)
    );
    let hp = format!("ws://{}/v1/hocuspocus/{APP}", server.addr);
    assert_eq!(
        connect_from(attacker, server.addr, &hp)
            .await
            .err()
            .map(|e| e.0),
        Some(429)
    );

    // Another address is not affected.
    let client = YClient::connect(&url).await.unwrap();
    client.wait_synced().await.unwrap();
    let mut other = connect_from("127.0.0.3", server.addr, &server.ws_url(APP, "d", &forged))
        .await
        .expect("another address's bad token still gets its close code");
    assert_eq!(close_code_of(&mut other).await.0, 4401);

    // Counted: each refusal by its reason, each throttled upgrade as such.
    let metrics = server.state.metrics.render();
    let count = |reason: &str| {
        let prefix = format!("chorus_connections_refused_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    assert!(count("bad-signature") > refusals as u64, "{metrics}");
    assert!(count("too-many-refusals") >= 3, "{metrics}");

    // The budget refills: after its Retry-After the address is heard again.
    let wait = throttled.1.unwrap().parse::<u64>().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait + 5);
    while connect_from(attacker, server.addr, &url).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the attacker's budget never refilled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.close().await;
}

async fn close_code_of(ws: &mut chorus_e2e_ws::Ws) -> (u16, String) {
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(WsMessage::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Ok(_) => continue,
                Err(e) => panic!("socket error before a close frame: {e}"),
            }
        }
        panic!("no close frame")
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a close frame within 10 s")
}
