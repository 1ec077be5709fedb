//! Tokens decide who may connect, to what, and whether they may write.

use chorus_auth::{mint_session, Mode, Secret, SessionClaims};
use chorus_e2e::{
    close_code, eventually, now, raw_connect, token_for, TestServer, YClient, APP, OFF_SECRET,
    SECRETS,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn refused_with(server: &TestServer, app: &str, doc: &str, token: &str) -> u16 {
    let mut ws = raw_connect(&server.ws_url(app, doc, token)).await.unwrap();
    close_code(&mut ws).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_the_documented_codes() {
    let server = TestServer::start().await;
    let mut expired = SessionClaims::new(APP, "u", "d", Mode::Edit, now() - 10);
    expired.iat = Some(now() - 100);
    let expired = mint_session(&Secret::new(SECRETS[0]), &expired).unwrap();
    assert_eq!(refused_with(&server, APP, "d", &expired).await, 4401);

    let wrong_secret = token_for(APP, "not-the-secret", "d", "u", Mode::Edit);
    assert_eq!(refused_with(&server, APP, "d", &wrong_secret).await, 4401);
    assert_eq!(refused_with(&server, APP, "d", "garbage").await, 4401);
    let mut ws = raw_connect(&format!("ws://{}/v1/ws/{APP}/d", server.addr))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await.unwrap().0, 4401, "missing token");

    let good = server.token("d", "u");
    assert_eq!(refused_with(&server, APP, "other-doc", &good).await, 4403);
    assert_eq!(refused_with(&server, "other", "d", &good).await, 4403);
    let off = token_for("off", OFF_SECRET, "d", "u", Mode::Edit);
    assert_eq!(refused_with(&server, "off", "d", &off).await, 4403);
    // An unknown app is a bad signature (issue 28: app ids are not enumerable).
    let unknown = token_for("nope", "x", "d", "u", Mode::Edit);
    assert_eq!(refused_with(&server, "nope", "d", &unknown).await, 4401);

    let text = server.state.metrics.render();
    assert!(text.contains("chorus_connections_refused_total{reason=\"token-expired\"} 1"));
    assert!(text.contains("chorus_connections_refused_total{reason=\"wrong-doc\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_secret_still_verifies() {
    let server = TestServer::start().await;
    let t = token_for(APP, SECRETS[1], "rot", "u", Mode::Edit);
    let c = YClient::connect(&server.ws_url(APP, "rot", &t))
        .await
        .unwrap();
    c.wait_synced().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_may_come_in_the_subprotocol_header() {
    let server = TestServer::start().await;
    let token = server.token("sub", "u");
    let mut req = format!("ws://{}/v1/ws/{APP}/sub", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("chorus.v1, {token}").parse().unwrap(),
    );
    let c = YClient::connect_request(req).await.unwrap();
    c.wait_synced().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_sessions_receive_but_never_write() {
    let server = TestServer::start().await;
    let editor = server.client("ro", "editor").await;
    let view_token = token_for(APP, SECRETS[0], "ro", "viewer", Mode::View);
    let viewer = YClient::connect(&server.ws_url(APP, "ro", &view_token))
        .await
        .unwrap();
    viewer.wait_synced().await.unwrap();

    editor.insert_title(0, "official");
    eventually(10, "viewer receives edits", || viewer.title() == "official")
        .await
        .unwrap();

    viewer.insert_title(0, "vandal ");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(editor.title(), "official");
    assert!(viewer.closed().is_none(), "first write is only warned");
    viewer.insert_title(0, "again ");
    eventually(10, "viewer closed with 4403", || {
        viewer.closed().is_some_and(|(c, _)| c == 4403)
    })
    .await
    .unwrap();
    let fresh = server.client("ro", "fresh").await;
    assert_eq!(fresh.title(), "official");
}
