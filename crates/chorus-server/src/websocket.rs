//! The websocket transport: an upgraded socket and its [`Framing`] (plain
//! y-websocket, or Hocuspocus's named frames), as the session sees a transport
//! ([`Transport`]); how every websocket of the server reads ([`socket_config`]);
//! and how one is closed ([`close_socket`]: a close frame with a documented code,
//! then a lingering close so the frame is not lost to a TCP reset).

use crate::close::{CloseReason, Closing};
use crate::direct::{DirectSocket, Wrote};
use crate::framing::{lock_out, Framing, HocuspocusOut, Incoming};
use crate::metrics::Metrics;
use crate::session::{Inbound, Transport, TransportFailed};
use crate::state::AppState;
use crate::upgrade::{linger, Socket};
use bytes::Bytes;
use chorus_docs::{DirectSink, PushError};
use chorus_protocol::frame_kind;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// Bytes a socket read asks for. tungstenite zero-fills this much of its read
/// buffer on every poll of the socket, even one that finds nothing to read, and the
/// connection loop polls the socket after every batch it writes: at the default
/// (128 KiB) that memset was a third of the server's CPU under fan-out, and made
/// every connection's buffer resident. A larger frame still arrives whole: the
/// buffer grows to the frame's announced length, filled `READ_BUFFER` bytes per
/// read call (a 1 MB step 2: ~2,000 reads, a few milliseconds). 512 rather than
/// 1024 saves ~0.6 KB per connection (idle scenario: 5.9 → 5.3 KB).
const READ_BUFFER: usize = 512;
/// How long a closing socket waits for its close frame to go out.
const CLOSE_SEND_WAIT: Duration = Duration::from_secs(10);
/// How long a closing socket waits for the peer's close reply.
const CLOSE_HANDSHAKE_WAIT: Duration = Duration::from_secs(2);
/// The least time a closing socket drains what its peer still sends (see
/// [`linger`]), even when the close reply took all of [`CLOSE_HANDSHAKE_WAIT`].
const CLOSE_LINGER_MIN: Duration = Duration::from_millis(250);

/// How every websocket of the server reads: small reads, the message size limit.
pub(crate) fn socket_config(state: &AppState) -> WebSocketConfig {
    let limit = state.config.max_message_size;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// A websocket serving one session.
pub(crate) struct WsTransport {
    socket: Socket,
    framing: Framing,
    /// The socket itself, which the document writes into (behind the framing:
    /// a Hocuspocus member's frames are wrapped as they are written).
    direct: Option<Arc<DirectSocket>>,
}

impl WsTransport {
    pub(crate) fn new(
        socket: Socket,
        framing: Framing,
        direct: Option<Arc<DirectSocket>>,
    ) -> WsTransport {
        WsTransport {
            socket,
            framing,
            direct,
        }
    }
}

/// The document's side of a [`DirectSocket`]: frames counted (and framed for a
/// Hocuspocus member), and the connection's byte and frame bounds held (past them
/// it is a slow consumer).
struct DocSink {
    socket: Arc<DirectSocket>,
    /// A Hocuspocus member's outgoing framing, shared with its connection.
    hocuspocus: Option<Arc<Mutex<HocuspocusOut>>>,
    metrics: Arc<Metrics>,
    max_bytes: usize,
    max_frames: usize,
}

impl DirectSink for DocSink {
    fn write(&self, frames: &[Bytes]) -> Result<(), PushError> {
        for frame in frames {
            self.metrics.outbound(frame_kind(frame), frame.len());
        }
        let (wrote, written) = write_framed(&self.socket, self.hocuspocus.as_deref(), frames, true);
        let wrote = wrote.map_err(|_| PushError::Closed)?;
        self.metrics
            .socket_write(wrote.calls, written, wrote.backlog);
        if wrote.backlog > self.max_bytes || wrote.chunks > 2 * self.max_frames {
            return Err(PushError::Full);
        }
        Ok(())
    }

    fn backlog_bytes(&self) -> usize {
        self.socket.backlog_bytes()
    }
}

/// Write `frames` into a shared socket behind the connection's framing: as they
/// are, or wrapped for a Hocuspocus member, framed and written under its framing's
/// lock so acknowledgements leave in the order they were counted. Also says how
/// many frames went to the socket.
fn write_framed(
    socket: &DirectSocket,
    hocuspocus: Option<&Mutex<HocuspocusOut>>,
    frames: &[Bytes],
    from_document: bool,
) -> (std::io::Result<Wrote>, usize) {
    match hocuspocus {
        None => (socket.write_frames(frames, from_document), frames.len()),
        Some(out) => {
            let mut out = lock_out(out);
            let wrapped: Vec<Bytes> = frames.iter().flat_map(|f| out.outgoing(f)).collect();
            (socket.write_frames(&wrapped, from_document), wrapped.len())
        }
    }
}

impl Transport for WsTransport {
    fn direct(&self, state: &AppState) -> Option<(Arc<DirectSocket>, Arc<dyn DirectSink>)> {
        let socket = self.direct.clone()?;
        socket.share();
        let sink = Arc::new(DocSink {
            socket: socket.clone(),
            hocuspocus: self.framing.hocuspocus_out().cloned(),
            metrics: state.metrics.clone(),
            max_bytes: state.config.outbound_queue_bytes,
            max_frames: state.config.outbound_queue_frames,
        });
        Some((socket, sink))
    }

    async fn next(&mut self) -> Inbound {
        // The only await is the stream's (cancel-safe); the rest reads what came.
        match self.socket.next().await {
            Some(Ok(WsMessage::Binary(bytes))) => match self.framing.incoming(bytes) {
                Incoming::Message(bytes) => Inbound::Message(bytes),
                Incoming::Skip => Inbound::Skip,
                Incoming::Leave => Inbound::Leave,
                Incoming::Answer(frame) => Inbound::Answer(frame),
                Incoming::Malformed(e) => Inbound::Refused(CloseReason::Decode(e)),
            },
            Some(Ok(WsMessage::Text(_))) => Inbound::Refused(CloseReason::TextFrame),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {
                Inbound::Skip
            }
            Some(Ok(WsMessage::Close(_))) | None => Inbound::Ended,
            Some(Err(WsError::Capacity(_))) => Inbound::Refused(CloseReason::MessageTooLarge),
            Some(Err(_)) => Inbound::Ended,
        }
    }

    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportFailed> {
        if let Some(socket) = &self.direct {
            // Behind what the document wrote, never inside it.
            let hocuspocus = self.framing.hocuspocus_out().map(|out| &**out);
            let (written, _) =
                write_framed(socket, hocuspocus, std::slice::from_ref(&frame), false);
            written.map_err(|_| TransportFailed)?;
            return Ok(());
        }
        match self.framing.hocuspocus_out() {
            None => self.socket.feed(WsMessage::Binary(frame)).await?,
            Some(out) => {
                let wrapped = lock_out(out).outgoing(&frame);
                for wrapped in wrapped {
                    self.socket.feed(WsMessage::Binary(wrapped)).await?;
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportFailed> {
        Ok(self.socket.flush().await?)
    }

    async fn answer(&mut self, frame: Bytes) -> Result<(), TransportFailed> {
        Ok(self.socket.send(WsMessage::Binary(frame)).await?)
    }

    fn take_pending(&mut self) -> Vec<Bytes> {
        self.framing.take_pending()
    }

    fn close(self, closing: Closing, state: &AppState) -> impl Future<Output = ()> + Send {
        close_socket(self.socket, closing, state)
    }
}

impl From<WsError> for TransportFailed {
    fn from(_: WsError) -> Self {
        TransportFailed
    }
}

/// Send a close frame with the reason's code, wait briefly for the peer's reply,
/// then close with [`linger`] so the close frame is not lost to a TCP reset.
pub(crate) async fn close_socket(mut socket: Socket, closing: Closing, state: &AppState) {
    state.metrics.closed(closing.code, closing.reason);
    let frame = CloseFrame {
        code: CloseCode::from(closing.code),
        reason: closing.reason.into(),
    };
    let started = tokio::time::Instant::now();
    // The close frame goes behind what the socket has not taken yet (the
    // document's frames before it): a client that reads none of it in this time
    // loses the close frame with the connection.
    let sent = tokio::time::timeout(CLOSE_SEND_WAIT, socket.send(WsMessage::Close(Some(frame))));
    if matches!(sent.await, Ok(Ok(()))) {
        // After a read error (an oversize frame) the stream yields nothing more
        // and this ends at once; `linger` then drains the raw socket.
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE_WAIT, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
        let left = CLOSE_HANDSHAKE_WAIT.saturating_sub(started.elapsed());
        linger(&mut socket, left.max(CLOSE_LINGER_MIN)).await;
    }
}
