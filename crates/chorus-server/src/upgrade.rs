//! The websocket upgrade, done here rather than by axum's `WebSocketUpgrade`, so
//! that the connection owns the raw stream and can close it with a lingering
//! close.
//!
//! Why: when the server ends a connection while the client is still sending (the
//! rest of an oversize frame, say), closing the TCP socket with those bytes unread
//! makes the kernel answer with a reset, and a reset that reaches the client before
//! it has read the close frame loses the frame: the client reports 1006 instead of
//! the documented code (4413). So [`linger`] shuts down the sending half (FIN) and
//! reads and drops whatever the client still sends, for a bounded time, before the
//! socket is closed. axum's wrapper hides the stream that needs.
//!
//! Owns: the HTTP/1.1 upgrade handshake (RFC 6455 §4.2) and the drain. Does not
//! touch: authentication, limits or the session (the handler in `connection`).

use crate::api::ApiError;
use crate::direct::{ConnInfo, DirectSocket};
use axum::extract::ConnectInfo;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use futures_util::FutureExt;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// An upgraded connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A valid websocket upgrade request, not answered yet.
pub struct WsUpgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// The connection's socket, which its document may write into (none for a
    /// router driven in-process).
    direct: Option<Arc<DirectSocket>>,
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let bad = |why: &'static str| Err(ApiError::BadRequest(why.into()));
        if parts.version != Version::HTTP_11 {
            return bad("a websocket upgrade needs HTTP/1.1");
        }
        if parts.method != Method::GET {
            return Err(ApiError::MethodNotAllowed);
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !header_has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return bad(
                "this route is a websocket: send Connection: Upgrade and Upgrade: websocket",
            );
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            return bad("Sec-WebSocket-Version must be 13");
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return bad("Sec-WebSocket-Key is missing");
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return bad("this connection cannot be upgraded");
        };
        let direct = parts
            .extensions
            .get::<ConnectInfo<ConnInfo>>()
            .map(|c| c.0.socket.clone());
        Ok(WsUpgrade {
            key,
            on_upgrade,
            direct,
        })
    }
}

impl WsUpgrade {
    /// The socket the document may write into, once upgraded.
    pub(crate) fn direct(&self) -> Option<Arc<DirectSocket>> {
        self.direct.clone()
    }

    /// Answer 101 (with `protocol` as the chosen subprotocol) and run `callback`
    /// on the upgraded socket in a task of its own.
    pub fn on_upgrade<C, F>(
        self,
        config: WebSocketConfig,
        protocol: Option<&'static str>,
        callback: C,
    ) -> Response
    where
        C: FnOnce(Socket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        let upgraded = async move {
            // A failed upgrade (the client went away after the 101) has nobody to
            // tell.
            let upgraded = on_upgrade.await.ok()?;
            Some(
                WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await,
            )
        };
        // Chained rather than one async block: a block keeps its captures (the
        // callback and the configuration, ~240 bytes) beside the session's future
        // for as long as the connection lives; `then` replaces the first future
        // with the second.
        tokio::spawn(upgraded.then(move |socket| match socket {
            Some(socket) => Either::Left(callback(socket)),
            None => Either::Right(std::future::ready(())),
        }));
        let accept = derive_accept_key(self.key.as_bytes());
        let mut response = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
            ],
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        if let Some(protocol) = protocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The lingering close: after the close frame went out, send FIN and drop
/// whatever the client still sends until it closes its side or `within` is over,
/// so the socket never closes with unread bytes (which would reset it).
pub async fn linger(socket: &mut Socket, within: Duration) {
    let io = socket.get_mut();
    let _ = tokio::time::timeout(within, async {
        if io.shutdown().await.is_err() {
            return;
        }
        // On the heap: as an array it made every future that may linger (a
        // Hocuspocus connection's, for its whole life) 8 KB larger.
        let mut scratch = vec![0u8; 8192];
        while let Ok(n) = io.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
