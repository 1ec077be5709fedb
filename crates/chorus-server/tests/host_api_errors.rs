//! Every refusal of the host API is the JSON error `{code, message}`, axum's own
//! rejections included (a query field given twice, a path number out of range, a body
//! that is not JSON, a method the route does not take), and authentication comes
//! before anything else about the request is judged.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chorus_auth::{mint_host, HostClaims, Secret};
use chorus_server::{build_router, AppConfig, AppState, Config};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

const SECRET: &str = "wiki-secret-0123456789abcdef0123456789";

fn state(admin_token: Option<&str>) -> AppState {
    let config = Config {
        apps: vec![AppConfig::new("wiki", [SECRET])],
        admin_token: admin_token.map(str::to_owned),
        ..Config::default()
    };
    AppState::new(config, Arc::new(chorus_store::MemoryStore::new())).unwrap()
}

fn host_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    mint_host(&Secret::new(SECRET), &HostClaims::new("wiki", now + 600)).unwrap()
}

/// (status, `Allow` header, JSON body) of one request.
async fn call(
    state: &AppState,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Option<String>, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = build_router(state.clone())
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let allow = res
        .headers()
        .get(header::ALLOW)
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(json["message"].is_string(), "{uri}: {json}");
    (status, allow, json)
}

#[tokio::test]
async fn axum_rejections_answer_the_json_error() {
    let state = state(None);
    let token = host_token();
    let t = Some(token.as_str());
    let base = "/v1/apps/wiki/docs/page";
    for (method, uri, body) in [
        (
            Method::GET,
            format!("{base}/draft?format=json&format=html"),
            "",
        ),
        (Method::GET, format!("{base}/draft?format=pdf"), ""),
        (
            Method::GET,
            format!("{base}/history/99999999999999999999"),
            "",
        ),
        (Method::GET, format!("{base}/history/abc"), ""),
        (Method::GET, format!("{base}/history/1?format=yjs"), ""),
        (
            Method::POST,
            format!("{base}/publish?conflictPolicy=merge"),
            "",
        ),
        (Method::PUT, format!("{base}/content"), "not json"),
        (Method::PUT, format!("{base}/content"), r#"{"title":null}"#),
        (
            Method::PUT,
            format!("{base}/content"),
            r#"{"baseEtag":"\"x\""}"#,
        ),
        (
            Method::PUT,
            format!("{base}/content"),
            r#"{"title":"t","extra":1}"#,
        ),
        (Method::POST, format!("{base}/restore"), r#"{"point":-1}"#),
        (Method::POST, format!("{base}/restore"), ""),
        (Method::DELETE, format!("{base}/sessions/+5"), ""),
        (Method::POST, format!("{base}/sessions/x/downgrade"), ""),
        (
            Method::GET,
            "/v1/apps/wiki/docs/bad%20id/draft".to_owned(),
            "",
        ),
    ] {
        let (status, _, json) = call(&state, method, &uri, t, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {json}");
        assert_eq!(json["code"], "bad-request", "{uri}");
    }
}

#[tokio::test]
async fn authentication_comes_first() {
    let state = state(None);
    for uri in [
        "/v1/apps/wiki/docs/page/history/abc",
        "/v1/apps/wiki/docs/page/draft?format=pdf",
        "/v1/apps/wiki/docs/bad%20id/draft",
    ] {
        let (status, _, json) = call(&state, Method::GET, uri, None, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(json["code"], "missing-token");
    }
    let (status, _, json) = call(
        &state,
        Method::GET,
        "/v1/apps/wiki/docs/page/draft",
        Some("not.a.jwt"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["code"], "malformed-token");
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_405_with_allow() {
    let state = state(None);
    let token = host_token();
    let (status, allow, json) = call(
        &state,
        Method::POST,
        "/v1/apps/wiki/docs/page/draft",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json["code"], "method-not-allowed");
    assert_eq!(allow.as_deref(), Some("GET,HEAD"));
    let (status, allow, _) = call(
        &state,
        Method::GET,
        "/v1/apps/wiki/docs/page/content",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(allow.as_deref(), Some("PUT"));
}

#[tokio::test]
async fn an_oversized_body_is_413_too_large() {
    let state = state(None);
    let token = host_token();
    let html = "x".repeat(17 << 20);
    let body = serde_json::json!({ "html": html }).to_string();
    let (status, _, json) = call(
        &state,
        Method::PUT,
        "/v1/apps/wiki/docs/page/content",
        Some(&token),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["code"], "too-large");
}

#[tokio::test]
async fn the_admin_api_checks_its_token_in_json() {
    let off = state(None);
    let (status, _, json) = call(
        &off,
        Method::POST,
        "/v1/admin/apps/wiki/disable",
        Some("x"),
        "",
    )
    .await;
    assert_eq!(
        (status, json["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not-found"))
    );
    let on = state(Some("sesame"));
    let (status, _, json) = call(&on, Method::POST, "/v1/admin/apps/wiki/disable", None, "").await;
    assert_eq!(
        (status, json["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing-token"))
    );
    let (status, _, _) = call(
        &on,
        Method::POST,
        "/v1/admin/apps/wiki/disable",
        Some("sesamf"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(
        &on,
        Method::POST,
        "/v1/admin/apps/nope/enable",
        Some("sesame"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_websocket_route_answers_a_request_that_is_no_upgrade_with_the_json_error() {
    let state = state(None);
    let uri = "/v1/ws/wiki/page";
    let (status, _, json) = call(&state, Method::GET, uri, None, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["code"], "bad-request");
    assert!(
        json["message"].as_str().unwrap().contains("Upgrade"),
        "{json}"
    );
    // The right headers, but on a connection that cannot be upgraded (no hyper
    // connection behind an in-process call).
    let req = Request::builder()
        .uri(uri)
        .header(header::CONNECTION, "keep-alive, Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Body::empty())
        .unwrap();
    let res = build_router(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], "bad-request", "{json}");
    assert!(json["message"].as_str().unwrap().contains("upgraded"));
}
