//! `--demo` mode: the `demo` app's development helpers. Nothing here is routed
//! unless `demo = true`; it mints tokens for anyone who asks, by design.

use crate::ids::is_valid_content_id;
use crate::state::{unix_now, AppState};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chorus_auth::{mint_session, Mode, SessionClaims};
use chorus_docs::{DocKey, HostChange, HostError};
use serde::Deserialize;
use std::path::{Path as FsPath, PathBuf};

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
    if !is_valid_content_id(&doc) {
        return demo_error(StatusCode::BAD_REQUEST, "bad-request", "invalid content id");
    }
    if user.is_empty() || user.len() > 64 || user.chars().any(char::is_control) {
        return demo_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "user must be 1-64 characters without control characters",
        );
    }
    if q.name
        .as_ref()
        .is_some_and(|n| n.len() > 64 || n.chars().any(char::is_control))
    {
        return demo_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "name must be at most 64 characters without control characters",
        );
    }
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

/// The page shown when the web client is not built: how to build it, and how to
/// connect a stock client meanwhile.
const FALLBACK_PAGE: &str = include_str!("demo.html");

/// Where the built web client lives (`npm run build` in `web-client/`): `./web-client/dist`
/// (run from the repository), else `<exe dir>/../../web-client/dist` (a binary in
/// `target/debug` or `target/release` of the repository). `None` if neither exists.
pub fn assets_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("web-client").join("dist")];
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(FsPath::to_path_buf))
    {
        candidates.push(
            exe_dir
                .join("..")
                .join("..")
                .join("web-client")
                .join("dist"),
        );
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("index.html").is_file())
}

/// Is `name` a plain file name of the assets directory (no separator, no `..`, no
/// hidden file)? Only such names are ever joined to the directory.
pub fn is_safe_asset_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The content type of an asset, by extension; `None` for types not served.
fn content_type(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "map" | "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

async fn read_asset(name: &str) -> Option<Vec<u8>> {
    if !is_safe_asset_name(name) {
        return None;
    }
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let path = assets_dir()?.join(name);
        // The name has no separator; still, never serve what a symlink points outside to.
        let dir = path.parent()?.canonicalize().ok()?;
        let real = path.canonicalize().ok()?;
        if !real.starts_with(&dir) || !real.is_file() {
            return None;
        }
        std::fs::read(real).ok()
    })
    .await
    .ok()
    .flatten()
}

fn no_cache(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The demo page's content security policy: its own scripts only (no inline
/// script, no `eval`), its own styles and inline style attributes (the editor
/// colours carets with them), images from itself or https, connections (the
/// websocket, `/demo/token`) to itself only, no plugins, frames or foreign forms.
pub const DEMO_CSP: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `GET /demo`: the demo editor (two users side by side) when the web client is
/// built, else a page that says how to build it.
pub async fn page() -> Response {
    let mut response = match read_asset("index.html").await {
        Some(html) => {
            no_cache(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
        }
        None => no_cache(Html(FALLBACK_PAGE).into_response()),
    };
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DEMO_CSP),
    );
    response
}

/// `GET /demo/assets/{file}`: a file of the built web client (`web-client/dist`).
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(kind) = content_type(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match read_asset(&file).await {
        Some(bytes) => no_cache(([(header::CONTENT_TYPE, kind)], bytes).into_response()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Body of `POST /demo/external`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalBody {
    doc: String,
    title: Option<String>,
    html: Option<String>,
}

fn demo_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}

/// `POST /demo/external` with `{doc, title?, html?}`: an external change to a demo
/// document, through the same actor command as the host API's `PUT …/content`
/// (no host token: demo mode only).
pub async fn external(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    // JSON only: a cross-site form can post `text/plain` (or a form encoding)
    // without the browser asking first, never `application/json`.
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return demo_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the body as application/json",
        );
    }
    let Ok(body) = serde_json::from_slice::<ExternalBody>(&body) else {
        return demo_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the body must be JSON {doc, title?, html?} with string values",
        );
    };
    if !is_valid_content_id(&body.doc) {
        return demo_error(StatusCode::BAD_REQUEST, "bad-request", "invalid content id");
    }
    if body.title.is_none() && body.html.is_none() {
        return demo_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "give a title, an html body, or both",
        );
    }
    let key = DocKey::new("demo", body.doc.as_str());
    let change = HostChange {
        title: body.title,
        html: body.html,
        base: None,
        restoring: None,
    };
    match state.documents.external_change(&key, change).await {
        Ok(outcome) => Json(serde_json::json!({ "etag": outcome.etag, "changed": outcome.fields }))
            .into_response(),
        Err(HostError::ContentRejected) => demo_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "content-rejected",
            "the change holds content outside the whitelist",
        ),
        Err(HostError::NotFound) => {
            demo_error(StatusCode::NOT_FOUND, "not-found", "no such document")
        }
        Err(_) => demo_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the document could not be changed",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_never_leave_the_directory() {
        for bad in [
            "",
            "..",
            "../secret",
            "..%2Fsecret",
            "a/b.js",
            "a\\b.js",
            ".env",
            "x\0.js",
            "/etc/passwd",
        ] {
            assert!(!is_safe_asset_name(bad), "{bad:?} must be refused");
        }
        for good in [
            "chorus-demo.js",
            "chorus-demo.css",
            "chorus-demo.js.map",
            "index.html",
        ] {
            assert!(is_safe_asset_name(good), "{good:?} must be served");
        }
    }

    #[test]
    fn only_known_types_are_served() {
        assert_eq!(
            content_type("chorus-demo.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            content_type("chorus-demo.css"),
            Some("text/css; charset=utf-8")
        );
        assert_eq!(content_type("Cargo.toml"), None);
        assert_eq!(content_type("noext"), None);
    }
}
