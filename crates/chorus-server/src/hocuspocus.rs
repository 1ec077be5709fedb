//! `GET /v1/hocuspocus/{app}`: the endpoint for `@hocuspocus/provider`.
//!
//! The provider puts the document's name in front of every message and sends its
//! token in a message of its own, not in the URL. So the socket is upgraded first
//! (after the connection caps and admission control, like any join), then this
//! module waits for the provider's `Auth` message, checks the token against the
//! document it names exactly as the websocket route does, answers `Authenticated`
//! (scope `read-write` or `readonly`) or `PermissionDenied` (with the reason a
//! websocket client would get as its close reason), and hands the socket to the
//! ordinary connection task with a [`Framing::Hocuspocus`]: incoming frames lose
//! their name, outgoing ones gain it, and each "saved up to n" acknowledgement
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
use crate::connection::{admit, authenticate, close_socket, run, socket_config, ClientAddress};
use crate::state::AppState;
use crate::upgrade::{Socket, WsUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use chorus_protocol::hocuspocus::{self, Frame};
use chorus_protocol::{ChorusMessage, DecodeError, Message, CHORUS_MESSAGE_TYPE};
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

/// How the frames of one connection are framed.
pub(crate) enum Framing {
    /// y-websocket: y-protocols messages as they are.
    Plain,
    /// A Hocuspocus provider: every message behind its document's name.
    Hocuspocus(Box<HocuspocusFraming>),
}

/// The state of a Hocuspocus connection's framing.
pub(crate) struct HocuspocusFraming {
    name: String,
    /// Update messages acknowledged with a `SyncStatus` so far.
    acknowledged: u64,
    /// y-protocols messages received before the join.
    pending: Vec<Bytes>,
}

/// What to do with one incoming frame.
pub(crate) enum Incoming {
    /// A y-protocols message for the document.
    Message(Bytes),
    /// Nothing for the document (a ping, a stateless message).
    Skip,
    /// The provider left the document.
    Leave,
    /// Answer this on the socket, then go on.
    Answer(Bytes),
    /// Not a frame of this framing.
    Malformed(DecodeError),
}

impl Framing {
    /// Read one incoming frame.
    pub(crate) fn incoming(&mut self, bytes: Bytes) -> Incoming {
        let Framing::Hocuspocus(hp) = self else {
            return Incoming::Message(bytes);
        };
        match Frame::decode(&bytes) {
            Err(e) => Incoming::Malformed(e),
            Ok(Frame::Protocol { name, message }) if name == hp.name => Incoming::Message(message),
            Ok(Frame::Close { name }) if name == hp.name => Incoming::Leave,
            Ok(Frame::Auth { name, .. }) if name != hp.name => Incoming::Answer(
                hocuspocus::permission_denied(&name, "one-document-per-connection"),
            ),
            // A token refreshed for this document (the session it opened stays), a
            // stateless message, anything for another name.
            Ok(_) => Incoming::Skip,
        }
    }

    /// What arrived before the join, to deliver first.
    pub(crate) fn take_pending(&mut self) -> Vec<Bytes> {
        match self {
            Framing::Plain => Vec::new(),
            Framing::Hocuspocus(hp) => std::mem::take(&mut hp.pending),
        }
    }
}

impl HocuspocusFraming {
    /// The frames to write for the y-protocols (or Chorus) frame `frame`.
    pub(crate) fn outgoing(&mut self, frame: &Bytes) -> Vec<Bytes> {
        if frame.first() != Some(&CHORUS_MESSAGE_TYPE) {
            return vec![hocuspocus::wrap(&self.name, frame)];
        }
        // Of the Chorus messages, the provider understands acknowledgements only.
        match Message::decode(frame) {
            Ok(Message::Chorus(ChorusMessage::Saved { n })) if n > self.acknowledged => {
                let more = n - self.acknowledged;
                self.acknowledged = n;
                (0..more)
                    .map(|_| hocuspocus::sync_status(&self.name, true))
                    .collect()
            }
            // An edit of a view-only (or downgraded) session, not applied: the
            // provider keeps it counted as unsynced, and no later "saved" covers it.
            Ok(Message::Chorus(ChorusMessage::Error { code, .. })) if code == "read-only" => {
                vec![hocuspocus::sync_status(&self.name, false)]
            }
            _ => Vec::new(),
        }
    }
}

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
        let framing = Framing::Hocuspocus(Box::new(HocuspocusFraming {
            name: name.clone(),
            acknowledged: 0,
            pending,
        }));
        run(
            socket,
            state,
            (app.into(), name.into()),
            session,
            (guard, Some(slot)),
            framing,
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
