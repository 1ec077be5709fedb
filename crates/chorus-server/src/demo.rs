//! `--demo` mode: the `demo` app's development helpers. Nothing here is routed
//! unless `demo = true`; it mints tokens for anyone who asks, by design.

use crate::connection::unix_now;
use crate::serve::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chorus_auth::{mint_session, Mode, SessionClaims};
use serde::Deserialize;

/// Lifetime of demo tokens.
const DEMO_TOKEN_TTL_SECS: u64 = 3600;

/// Query of `GET /demo/token`.
#[derive(Deserialize)]
pub struct TokenQuery {
    user: Option<String>,
    name: Option<String>,
    doc: Option<String>,
    mode: Option<String>,
}

/// `GET /demo/token?user=alice&doc=welcome&mode=edit`: a session token for the demo app.
pub async fn token(State(state): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
    let Some(app) = state.apps.get("demo") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(secret) = app.signing_secret() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mode =
        match q.mode.as_deref() {
            None | Some("edit") => Mode::Edit,
            Some("view") => Mode::View,
            Some(_) => return (
                StatusCode::BAD_REQUEST,
                Json(
                    serde_json::json!({"code": "bad-mode", "message": "mode must be edit or view"}),
                ),
            )
                .into_response(),
        };
    let user = q.user.unwrap_or_else(|| "demo-user".into());
    let doc = q.doc.unwrap_or_else(|| "welcome".into());
    let mut claims = SessionClaims::new(
        "demo",
        user,
        doc.clone(),
        mode,
        unix_now() + DEMO_TOKEN_TTL_SECS,
    );
    claims.name = q.name;
    claims.iat = Some(unix_now());
    match mint_session(secret, &claims) {
        Ok(token) => Json(serde_json::json!({
            "token": token,
            "app": "demo",
            "doc": doc,
            "url": format!("/v1/ws/demo/{doc}?token={token}"),
        }))
        .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /demo`: how to connect to the demo app.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("demo.html"))
}
