//! `GET /v1/hocuspocus/{app}`: the endpoint for `@hocuspocus/provider`.
//!
//! The provider puts the document's name in front of every message and sends its
//! token in a message of its own, not in the URL. So the socket is upgraded first
//! (after the connection caps and admission control, like any join), then this
//! module waits for the provider's `Auth` message, checks the token against the
//! document it names exactly as the websocket route does, answers `Authenticated`
//! (scope `read-write` or `readonly`) or `PermissionDenied` (with the reason a
//! websocket client would get as its close reason), and runs the ordinary session
//! over the socket with a [`Framing::Hocuspocus`] (`framing.rs`): incoming frames
//! lose their name, outgoing ones gain it, and each "saved up to n" acknowledgement
//! becomes the `SyncStatus` messages the provider counts its unsynced changes with;
//! an edit refused because the session is view-only becomes `SyncStatus(false)`.
//!
//! What the provider sends before its token was checked (its step 1, its awareness)
//! is kept, up to [`PENDING_FRAMES`], and delivered in order after the join.
//!
//! One document per socket: a provider given a socket of its own (the default) has
//! exactly one. An `Auth` for a second document on the same socket is answered with
//! `PermissionDenied` `one-document-per-connection`.
//!
//! A refused token does not close the socket: a v3 provider reconnects after any
//! close, whatever the code, and would loop. It may send a fresh `Auth`; after
//! [`AUTH_ATTEMPTS`] refusals, or [`AUTH_WAIT`] without a token, the socket closes
//! with the reason's code.

use crate::close::{CloseReason, Closing};
use crate::framing::{Framing, HocuspocusFraming};
use crate::join::{admit, authenticate, ClientAddress};
use crate::session::run;
use crate::state::AppState;
use crate::upgrade::{Socket, WsUpgrade};
use crate::websocket::{close_socket, socket_config, WsTransport};
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use chorus_docs::DocKey;
use chorus_protocol::hocuspocus::{self, Frame};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::info;

/// How long a provider may take to send its token after the upgrade.
const AUTH_WAIT: Duration = Duration::from_secs(10);
/// Refused tokens before the socket closes.
const AUTH_ATTEMPTS: u32 = 3;
/// Frames kept from before the token was checked.
const PENDING_FRAMES: usize = 64;

/// `GET /v1/hocuspocus/{app}`: admit, upgrade, wait for the provider's token.
pub async fn hocuspocus_handler(
    State(state): State<AppState>,
    Path(app): Path<String>,
    ClientAddress(address): ClientAddress,
    upgrade: WsUpgrade,
) -> Response {
    let slot = match admit(&state, &app, "-", address).await {
        Ok(slot) => slot,
        Err(refused) => return refused,
    };
    let guard = state.tracker.token();
    let config = socket_config(&state);
    upgrade.on_upgrade(config, None, move |socket| async move {
        let Some((socket, name, session, pending)) = authenticated(socket, &state, &app).await
        else {
            return;
        };
        let framing = Framing::Hocuspocus(Box::new(HocuspocusFraming::new(name.clone(), pending)));
        run(
            WsTransport::new(socket, framing),
            state,
            DocKey::new(app, name),
            session,
            (guard, Some(slot)),
        )
        .await
    })
}

/// Read frames until an `Auth` whose token opens its document; answer it. `None`:
/// the socket is closed (the provider left, sent garbage, or never had a valid
/// token).
async fn authenticated(
    mut socket: Socket,
    state: &AppState,
    app: &str,
) -> Option<(
    Socket,
    String,
    std::sync::Arc<chorus_core::Session>,
    Vec<Bytes>,
)> {
    let deadline = tokio::time::Instant::now() + AUTH_WAIT;
    let mut pending: Vec<(String, Bytes)> = Vec::new();
    let mut refusals = 0;
    let mut last_refusal = CloseReason::MissingToken;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        let bytes = match next {
            Err(_) => break,
            Ok(Some(Ok(WsMessage::Binary(bytes)))) => bytes,
            Ok(Some(Ok(WsMessage::Text(_)))) => {
                close_socket(socket, Closing::from(&CloseReason::TextFrame), state).await;
                return None;
            }
            Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
        };
        match Frame::decode(&bytes) {
            Err(e) => {
                close_socket(socket, Closing::from(&CloseReason::Decode(e)), state).await;
                return None;
            }
            Ok(Frame::Auth { name, token }) => {
                // The provider's session: extension messages on, so that the
                // server's acknowledgements reach the framing (which turns them into
                // `SyncStatus` and drops every other Chorus message).
                match authenticate(state, app, &name, Some(&token), true) {
                    Ok(session) => {
                        let reply = hocuspocus::authenticated(&name, !session.can_edit());
                        if socket.send(WsMessage::Binary(reply)).await.is_err() {
                            return None;
                        }
                        let pending = pending
                            .into_iter()
                            .filter(|(n, _)| *n == name)
                            .map(|(_, m)| m)
                            .collect();
                        return Some((socket, name, session, pending));
                    }
                    Err(reason) => {
                        state.metrics.refused(reason.client_reason());
                        info!(app = %app, doc = %name, reason = %reason, "hocuspocus provider refused");
                        let reply = hocuspocus::permission_denied(&name, reason.client_reason());
                        if socket.send(WsMessage::Binary(reply)).await.is_err() {
                            return None;
                        }
                        refusals += 1;
                        last_refusal = reason;
                        if refusals >= AUTH_ATTEMPTS {
                            break;
                        }
                    }
                }
            }
            Ok(Frame::Protocol { name, message }) => {
                if pending.len() == PENDING_FRAMES {
                    break;
                }
                pending.push((name, message));
            }
            Ok(Frame::Close { .. } | Frame::Ignored { .. } | Frame::Ping) => {}
        }
    }
    close_socket(socket, Closing::from(&last_refusal), state).await;
    None
}
