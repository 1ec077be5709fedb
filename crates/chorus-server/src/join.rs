//! What every join goes through before its socket is served, whichever endpoint
//! it came by: the address's budget of refused upgrades ([`check_refusals`]: 429
//! once it is spent, before any token work), the token checked against the document
//! ([`authenticate`]; a refusal is charged to the address by [`refused`]), then a
//! place under the connection caps and its turn under admission control
//! ([`admit`]), or the 503 that refuses the upgrade.

use crate::close::CloseReason;
use crate::direct::ConnInfo;
use crate::ids::is_valid_content_id;
use crate::limits::ConnectionSlot;
use crate::state::{unix_now, AppState};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_auth::{AppRegistry, AuthError};
use chorus_core::Session;
use chorus_docs::{Disconnect, Documents};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

/// The metrics reason (and error code) of an upgrade turned away because its
/// address spent its budget of refused upgrades.
pub(crate) const TOO_MANY_REFUSALS: &str = "too-many-refusals";

/// `Retry-After` of an upgrade refused because a connection cap is full.
pub(crate) const FULL_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The peer's address, when the server was started with it (a router driven
/// in-process, as some tests do, has none: the address cap does not apply).
pub struct ClientAddress(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<ConnInfo>>()
                .map(|c| c.0.addr.ip()),
        ))
    }
}

/// A place under the connection caps, then this join's turn under admission
/// control; or the 503 that refuses the upgrade.
///
/// A full cap refuses the upgrade itself: nothing is spent on a socket, and a
/// client (or the load balancer in front) sees an ordinary, retryable 503. Past
/// the join rate a join waits for its turn here, before the upgrade, so a waiting
/// join holds no document work.
pub(crate) async fn admit(
    state: &AppState,
    app: &str,
    content: &str,
    address: Option<IpAddr>,
) -> Result<ConnectionSlot, Response> {
    let slot = match state.limiters.open_connection(app, address) {
        Ok(slot) => slot,
        Err(full) => {
            state.metrics.refused(full.reason());
            info!(app = %app, doc = %content, reason = %full, "connection refused: a cap is full");
            return Err(refuse_full(full.reason(), FULL_RETRY_AFTER));
        }
    };
    match state.limiters.admit_join(Instant::now()) {
        Ok(wait) if wait.is_zero() => {}
        Ok(wait) => {
            state.metrics.join_waited(wait);
            tokio::time::sleep(wait).await;
        }
        Err(busy) => {
            state.metrics.refused("server-busy");
            info!(app = %app, doc = %content, reason = %busy, "connection refused: admission queue full");
            return Err(refuse_full("server-busy", busy.retry_after));
        }
    }
    Ok(slot)
}

/// HTTP 503 with `Retry-After` and the JSON error body of the host API.
pub(crate) fn refuse_full(code: &'static str, retry_after: Duration) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        code,
        "too many connections",
        retry_after,
    )
}

fn refuse(status: StatusCode, code: &'static str, why: &str, retry_after: Duration) -> Response {
    let body = crate::api::ErrorBody {
        code,
        message: format!("{why}; retry after Retry-After seconds"),
        etag: None,
    };
    (
        status,
        [(header::RETRY_AFTER, crate::api::retry_after(retry_after))],
        axum::Json(body),
    )
        .into_response()
}

/// Whether `address` may still be refused: `Some` is the 429 (`too-many-refusals`,
/// with `Retry-After`) for an address that spent its budget of refused upgrades,
/// answered before its token is looked at.
pub(crate) fn check_refusals(state: &AppState, address: Option<IpAddr>) -> Option<Response> {
    match state.limiters.refusals_exceeded(address, Instant::now()) {
        Ok(()) => None,
        Err(over) => {
            state.metrics.refused(TOO_MANY_REFUSALS);
            Some(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                TOO_MANY_REFUSALS,
                "too many refused upgrades from this address",
                over.retry_after,
            ))
        }
    }
}

/// A join refused before it joined (bad token, unknown app, bad content id):
/// counted, logged, and charged to the address's budget of refused upgrades.
pub(crate) fn refused(
    state: &AppState,
    app: &str,
    content: &str,
    address: Option<IpAddr>,
    reason: &CloseReason,
) {
    state.metrics.refused(reason.client_reason());
    state.limiters.charge_refusal(address, Instant::now());
    info!(app = %app, doc = %content, reason = %reason, "connection refused");
}

pub(crate) fn authenticate(
    state: &AppState,
    app: &str,
    content: &str,
    token: Option<&str>,
    extensions: bool,
) -> Result<Arc<Session>, CloseReason> {
    verify_session(&state.apps, app, content, token, extensions).map(Arc::new)
}

/// The session `token` grants on `content` of `app`, keeping the token (a cluster's
/// owner verifies it again, see `install_session_verifier`).
pub(crate) fn verify_session(
    apps: &AppRegistry,
    app: &str,
    content: &str,
    token: Option<&str>,
    extensions: bool,
) -> Result<Session, CloseReason> {
    if !is_valid_content_id(content) {
        return Err(CloseReason::InvalidContentId);
    }
    let token = token.ok_or(CloseReason::MissingToken)?;
    let claims = apps.verify_session(app, content, token, unix_now())?;
    Ok(Session::from_claims(&claims, extensions).with_credential(token))
}

/// Cluster mode: the owner of a document verifies the token of every connection
/// another node forwards, as its own joins are (`chorus_docs::Wire::Join`): the
/// forwarding node's word on who the client is counts for nothing.
pub(crate) fn install_session_verifier(documents: &Documents, apps: AppRegistry) {
    documents.set_session_verifier(Arc::new(move |key, token, extensions| {
        verify_session(&apps, &key.app, &key.doc, Some(token), extensions).map_err(|refused| {
            match refused {
                CloseReason::Auth(AuthError::AppDisabled) => Disconnect::AppDisabled,
                _ => Disconnect::TokenRefused,
            }
        })
    }));
}
