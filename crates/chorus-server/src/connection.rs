//! `GET /v1/ws/{app}/{content}`, the endpoint of y-websocket and `ChorusProvider`:
//! read the token (query or subprotocol) and the extension opt-in, authenticate
//! and admit the join (`join.rs`), upgrade, and run the session (`session.rs`)
//! over the websocket (`websocket.rs`). A refused token still gets its socket, to
//! carry the documented close code, but is charged to its address: an address that
//! spent its budget of refused upgrades gets 429 before its token is read.

use crate::close::Closing;
use crate::framing::Framing;
use crate::join::{
    admit, authenticate, check_refusals, refuse_full, refused, ClientAddress, FULL_RETRY_AFTER,
};
use crate::session::run;
use crate::state::AppState;
use crate::upgrade::WsUpgrade;
use crate::websocket::{close_socket, socket_config, WsTransport};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chorus_docs::DocKey;
use futures_util::future::Either;
use serde::Deserialize;
use tracing::info;

/// The subprotocol a client offers to receive Chorus extension messages.
pub const EXTENSION_PROTOCOL: &str = "chorus.v1";
/// The subprotocol a stock client offers beside a token it sends as a subprotocol
/// (keeping it out of the URL) when it wants no extension messages: a browser
/// fails a handshake whose answer selects none of the protocols it offered.
pub const TOKEN_PROTOCOL: &str = "chorus.token";
/// Query parameters of the websocket URL.
#[derive(Deserialize, Default)]
pub struct WsQuery {
    token: Option<String>,
    /// `chorus=1` opts in to extension messages (like offering `chorus.v1`).
    chorus: Option<String>,
}

/// `GET /v1/ws/{app}/{content}`: verify, upgrade, run.
pub async fn ws_handler(
    State(state): State<AppState>,
    Path((app, content)): Path<(String, String)>,
    Query(query): Query<WsQuery>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    upgrade: WsUpgrade,
) -> Response {
    let offered: Vec<String> = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    // The subprotocol is echoed only when offered as one (not for `?chorus=1`).
    let offers_extension_protocol = offered.iter().any(|p| p == EXTENSION_PROTOCOL);
    let extensions = query.chorus.as_deref() == Some("1") || offers_extension_protocol;
    // A token offered as a subprotocol is the one value shaped like a JWT.
    let token = query.token.or_else(|| {
        offered
            .iter()
            .find(|p| p.matches('.').count() == 2)
            .cloned()
    });
    if let Some(throttled) = check_refusals(&state, address) {
        info!(app = %app, doc = %content, "connection refused: too many refused upgrades from its address");
        return throttled;
    }
    let verdict = authenticate(&state, &app, &content, token.as_deref(), extensions);
    let slot = match &verdict {
        Ok(_) => match admit(&state, &app, &content, address).await {
            Ok(slot) => slot,
            Err(refused) => return refused,
        },
        Err(reason) => {
            refused(&state, &app, &content, address, reason);
            // The socket that carries the close code counts against the global
            // and address caps while it closes (not the app's: see `open_refused`).
            match state.limiters.open_refused(address) {
                Ok(slot) => slot,
                Err(full) => {
                    state.metrics.refused(full.reason());
                    return refuse_full(full.reason(), FULL_RETRY_AFTER);
                }
            }
        }
    };
    let guard = state.tracker.token();
    let config = socket_config(&state);
    let protocol = if offers_extension_protocol {
        Some(EXTENSION_PROTOCOL)
    } else {
        offered
            .iter()
            .any(|p| p == TOKEN_PROTOCOL)
            .then_some(TOKEN_PROTOCOL)
    };
    // No async block around the two paths: it would keep a copy of the socket
    // next to the one inside the chosen path's future for as long as the
    // connection lives (see `run`).
    let direct = upgrade.direct();
    upgrade.on_upgrade(config, protocol, move |socket| match verdict {
        Err(reason) => Either::Left(Box::pin(async move {
            let _held = (guard, slot);
            close_socket(socket, Closing::from(&reason), &state).await
        })),
        Ok(session) => Either::Right(run(
            WsTransport::new(socket, Framing::Plain, direct),
            state,
            DocKey::new(app, content),
            session,
            (guard, Some(slot)),
        )),
    })
}
