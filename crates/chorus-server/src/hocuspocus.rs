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
//! is kept, up to [`PENDING_FRAMES`] frames and [`PENDING_BYTES`] bytes (past them:
//! close 4413, `message-too-large`), and delivered in order after the join. Those
//! frames draw on the connection's rate limits like any other (`limits.rs`): a flood
//! before the token waits, then closes with 4429.
//!
//! One document per socket: a provider given a socket of its own (the default) has
//! exactly one. An `Auth` for a second document on the same socket is answered with
//! `PermissionDenied` `one-document-per-connection`.
//!
//! A refused token does not close the socket: a v3 provider reconnects after any
//! close, whatever the code, and would loop. It may send a fresh `Auth`; after
//! [`AUTH_ATTEMPTS`] refusals, or [`AUTH_WAIT`] without a token, the socket closes
//! with the reason's code. Each refusal is charged to the client's address like a
//! refused websocket upgrade (`join.rs`): once the address's budget is spent, its
//! upgrades get 429 and a further `Auth` on an open socket closes it with 4429.

use crate::close::{CloseReason, Closing};
use crate::framing::{Framing, HocuspocusFraming};
use crate::join::{admit, authenticate, check_refusals, refused, ClientAddress};
use crate::limits::{Admission, ConnectionLimiter, MessageClass};
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
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::info;

/// How long a provider may take to send its token after the upgrade.
const AUTH_WAIT: Duration = Duration::from_secs(10);
/// Refused tokens before the socket closes.
const AUTH_ATTEMPTS: u32 = 3;
/// Frames kept from before the token was checked.
const PENDING_FRAMES: usize = 64;
/// Bytes a provider may send before its token was checked (a step 1 and an
/// awareness state are a few hundred; queued offline edits may be more, but not
/// this much before anyone knows who sent them).
pub(crate) const PENDING_BYTES: usize = 256 * 1024;

/// `GET /v1/hocuspocus/{app}`: admit, upgrade, wait for the provider's token.
pub async fn hocuspocus_handler(
    State(state): State<AppState>,
    Path(app): Path<String>,
    ClientAddress(address): ClientAddress,
    upgrade: WsUpgrade,
) -> Response {
    if let Some(throttled) = check_refusals(&state, address) {
        info!(app = %app, "hocuspocus provider refused: too many refused upgrades from its address");
        return throttled;
    }
    let slot = match admit(&state, &app, "-", address).await {
        Ok(slot) => slot,
        Err(refused) => return refused,
    };
    let guard = state.tracker.token();
    let config = socket_config(&state);
    let direct = upgrade.direct();
    upgrade.on_upgrade(config, None, move |socket| async move {
        // Boxed: the wait for the token is over once the session runs, and inline
        // its state would stay part of the connection's task.
        let Some((socket, name, session, pending)) =
            Box::pin(authenticated(socket, &state, &app, address)).await
        else {
            return;
        };
        let framing = Framing::Hocuspocus(Box::new(HocuspocusFraming::new(name.clone(), pending)));
        run(
            WsTransport::new(socket, framing, direct),
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
    address: Option<IpAddr>,
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
    // Every frame before the token counts, against the app's rate limits as the
    // session would count it and against PENDING_BYTES.
    let limiter_now = || tokio::time::Instant::now().into_std();
    let mut limiter = ConnectionLimiter::new(&state.limiters.rates(app), limiter_now());
    let mut received = 0usize;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        let bytes = match next {
            Err(_) => break,
            Ok(Some(Ok(WsMessage::Binary(bytes)))) => bytes,
            Ok(Some(Ok(WsMessage::Text(_)))) => {
                close_socket(socket, Closing::from(&CloseReason::TextFrame), state).await;
                return None;
            }
            Ok(Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_)))) => {
                last_refusal = CloseReason::MessageTooLarge;
                break;
            }
            Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
        };
        received = received.saturating_add(bytes.len());
        if received > PENDING_BYTES {
            last_refusal = CloseReason::MessageTooLarge;
            break;
        }
        match limiter.admit(MessageClass::Document, bytes.len(), limiter_now()) {
            Admission::Now => {}
            Admission::Wait { until, .. } => {
                // Nothing more is read meanwhile: back-pressure on this sender.
                state.metrics.throttled();
                let until = tokio::time::Instant::from_std(until).min(deadline);
                tokio::time::sleep_until(until).await;
            }
            Admission::Close => {
                last_refusal = CloseReason::RateLimited;
                break;
            }
        }
        match Frame::decode(&bytes) {
            Err(e) => {
                close_socket(socket, Closing::from(&CloseReason::Decode(e)), state).await;
                return None;
            }
            Ok(Frame::Auth { name, token }) => {
                if state
                    .limiters
                    .refusals_exceeded(address, Instant::now())
                    .is_err()
                {
                    state.metrics.refused(crate::join::TOO_MANY_REFUSALS);
                    last_refusal = CloseReason::RateLimited;
                    break;
                }
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
                        refused(state, app, &name, address, &reason);
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
                    last_refusal = CloseReason::MessageTooLarge;
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
