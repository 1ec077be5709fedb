//! A websocket's TCP socket shared by its connection task and its document's
//! actor, so that the actor can write a member's frames itself (the document
//! layer's `DirectSink`) instead of waking the connection's task for each one.
//!
//! Server frames are not masked, so a frame is a 2–10 byte header and the
//! message's bytes, which every member shares: a write is one `writev` of
//! header/payload pairs. What the socket does not take at once stays in this
//! socket's backlog, in order, and the connection task (woken only then) finishes
//! it when the socket is writable; whoever writes next appends behind it. Every
//! write happens under one lock and never waits, so frames never interleave.
//!
//! Every accepted connection is a [`SharedTcp`] ([`DirectListener`]): hyper, and
//! tungstenite after an upgrade, read the socket through it (and answer pings,
//! send the close frame); their writes go through the same backlog, always
//! accepted whole, so they too start and end on frame boundaries. A request finds
//! its socket in [`ConnInfo`].
//!
//! Owns: the shared socket, its backlog and the frame header. Does not touch:
//! what is written (the document layer) or when a connection closes (`session.rs`).

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Slices per `writev` (two per frame); the kernel takes up to 1,024.
const IOV: usize = 64;
/// First byte of a server's binary frame: FIN, opcode 2.
const BINARY_FIN: u8 = 0x82;

/// The websocket frame header of an unmasked binary message of `len` bytes.
fn header(len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = BINARY_FIN;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(short) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&short.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// A piece of the backlog, and whether a frame starts at its first byte.
struct Chunk {
    bytes: Bytes,
    starts_frame: bool,
}

/// What the socket has not taken yet.
#[derive(Default)]
struct Backlog {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    /// When the backlog last made progress (or started), while it is not empty.
    since: Option<Instant>,
    /// The document may write (the connection's session shared the socket with
    /// it): from then on the connection's own writes are taken whole.
    shared: bool,
    /// The document may write no more (the connection is closing or closed).
    detached: bool,
    /// The socket failed.
    broken: bool,
    /// The document wrote frames since the connection last asked
    /// ([`DirectSocket::document_wrote`]): the client heard from the server.
    document_wrote: bool,
}

impl Backlog {
    fn push(&mut self, bytes: Bytes, starts_frame: bool) {
        if bytes.is_empty() {
            return;
        }
        self.bytes += bytes.len();
        self.since.get_or_insert_with(Instant::now);
        self.chunks.push_back(Chunk {
            bytes,
            starts_frame,
        });
    }

    /// `n` bytes of the backlog were written.
    fn consume(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let head = self.chunks.front_mut().expect("written bytes were queued");
            if n < head.bytes.len() {
                let _ = head.bytes.split_to(n);
                head.starts_frame = false;
                break;
            }
            n -= head.bytes.len();
            self.chunks.pop_front();
        }
        self.since = (!self.chunks.is_empty()).then(Instant::now);
        if self.chunks.is_empty() && self.chunks.capacity() > 64 {
            self.chunks = VecDeque::new();
        }
    }

    /// Drop every frame not started yet; the one in flight must end, or the
    /// client would read what follows as its payload.
    fn discard_unstarted(&mut self) {
        let keep = self
            .chunks
            .iter()
            .position(|c| c.starts_frame)
            .unwrap_or(self.chunks.len());
        for dropped in self.chunks.drain(keep..) {
            self.bytes -= dropped.bytes.len();
        }
        if self.chunks.is_empty() {
            self.since = None;
        }
    }
}

/// A websocket's socket, written by whoever holds its lock.
pub(crate) struct DirectSocket {
    tcp: TcpStream,
    backlog: Mutex<Backlog>,
    /// The connection task, woken when the backlog needs it.
    drainer: AtomicWaker,
}

/// What a write did: system calls made and frames written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Wrote {
    pub(crate) calls: u32,
    /// Bytes left in the backlog after it.
    pub(crate) backlog: usize,
    /// Pieces the backlog holds (two per frame at most).
    pub(crate) chunks: usize,
}

impl DirectSocket {
    fn lock(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One `sendmsg` of `iov`, without waiting. `sendmsg` rather than `writev`: a
    /// socket needs none of the file layer `writev` goes through (its position
    /// lock alone was 2 % of the server's CPU under fan-out). Through tokio's
    /// `try_io`, so a refusal clears the socket's readiness as a write would.
    fn send_vectored(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        self.tcp.try_io(Interest::WRITABLE, || {
            socket2::SockRef::from(&self.tcp).send_vectored(iov)
        })
    }

    /// Write `frames` as binary websocket frames. `from_document`: refused once the
    /// connection detached the document (closing), so nothing follows a close frame.
    pub(crate) fn write_frames(&self, frames: &[Bytes], from_document: bool) -> io::Result<Wrote> {
        let mut backlog = self.lock();
        if backlog.broken || (from_document && backlog.detached) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        backlog.document_wrote |= from_document && !frames.is_empty();
        let mut wrote = Wrote::default();
        let mut done = 0; // frames fully written
        let mut partial = 0; // bytes of frame `done` written
        if backlog.chunks.is_empty() {
            'batches: while done < frames.len() {
                let batch = &frames[done..frames.len().min(done + IOV / 2)];
                let headers: Vec<([u8; 10], usize)> =
                    batch.iter().map(|f| header(f.len())).collect();
                let mut iov = [IoSlice::new(&[]); IOV];
                for (i, (frame, (h, hl))) in batch.iter().zip(&headers).enumerate() {
                    iov[2 * i] = IoSlice::new(&h[..*hl]);
                    iov[2 * i + 1] = IoSlice::new(frame);
                }
                let mut n = match self.send_vectored(&iov[..2 * batch.len()]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 'batches,
                    Err(e) => {
                        backlog.broken = true;
                        return Err(e);
                    }
                };
                wrote.calls += 1;
                for (frame, (_, hl)) in batch.iter().zip(&headers) {
                    let len = hl + frame.len();
                    if n < len {
                        partial = n;
                        break 'batches;
                    }
                    n -= len;
                    done += 1;
                }
            }
        }
        for (i, frame) in frames.iter().enumerate().skip(done) {
            let (h, hl) = header(frame.len());
            let skip = if i == done { partial } else { 0 };
            if skip < hl {
                backlog.push(Bytes::copy_from_slice(&h[skip..hl]), skip == 0);
                backlog.push(frame.clone(), false);
            } else {
                backlog.push(frame.slice(skip - hl..), false);
            }
        }
        wrote.backlog = backlog.bytes;
        wrote.chunks = backlog.chunks.len();
        let wake = !backlog.chunks.is_empty();
        drop(backlog);
        if wake {
            self.drainer.wake();
        }
        Ok(wrote)
    }

    /// Write bytes hyper or tungstenite encoded. Until the socket is shared with a
    /// document it behaves as the socket does (part of `buf`, or pending until it
    /// is writable: a large HTTP response is not copied); once shared, `buf` (whole
    /// frames) is taken whole, behind the backlog, so no frame of the document's
    /// can land inside it.
    fn poll_write_raw(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut backlog = self.lock();
            if backlog.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let mut written = 0;
            if backlog.chunks.is_empty() {
                match self.tcp.try_write(buf) {
                    Ok(n) if !backlog.shared => return Poll::Ready(Ok(n)),
                    Ok(n) => written = n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if !backlog.shared {
                            drop(backlog);
                            ready!(self.tcp.poll_write_ready(cx))?;
                            continue;
                        }
                    }
                    Err(e) => {
                        backlog.broken = true;
                        return Poll::Ready(Err(e));
                    }
                }
            }
            backlog.push(Bytes::copy_from_slice(&buf[written..]), written == 0);
            return Poll::Ready(Ok(buf.len()));
        }
    }

    /// From now on the document writes into this socket too.
    pub(crate) fn share(&self) {
        self.lock().shared = true;
    }

    /// Write the backlog out. With `idle_pending`, an empty backlog waits (for the
    /// next one); without, it is done.
    fn poll_backlog(&self, cx: &mut Context<'_>, idle_pending: bool) -> Poll<io::Result<()>> {
        loop {
            let mut backlog = self.lock();
            if backlog.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if backlog.chunks.is_empty() {
                if idle_pending {
                    // Registered under the lock a writer takes before it wakes.
                    self.drainer.register(cx.waker());
                    return Poll::Pending;
                }
                return Poll::Ready(Ok(()));
            }
            let mut iov = [IoSlice::new(&[]); IOV];
            let mut k = 0;
            for chunk in backlog.chunks.iter().take(IOV) {
                iov[k] = IoSlice::new(&chunk.bytes);
                k += 1;
            }
            match self.send_vectored(&iov[..k]) {
                Ok(n) => {
                    backlog.consume(n);
                    if backlog.chunks.is_empty() && idle_pending {
                        return Poll::Ready(Ok(()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(backlog);
                    if let Err(e) = ready!(self.tcp.poll_write_ready(cx)) {
                        self.lock().broken = true;
                        return Poll::Ready(Err(e));
                    }
                }
                Err(e) => {
                    backlog.broken = true;
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Resolves each time the backlog the document left was written out (the
    /// connection task polls it beside its other events; pending while empty).
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_backlog(cx, true)
    }

    /// Bytes not written yet.
    pub(crate) fn backlog_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Whether the document wrote any frame since the last call: a connection
    /// whose client keeps hearing from its document needs no keepalive.
    pub(crate) fn document_wrote(&self) -> bool {
        std::mem::take(&mut self.lock().document_wrote)
    }

    /// How long the backlog has made no progress (zero when empty).
    pub(crate) fn stalled_for(&self) -> Duration {
        self.lock().since.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// The document may write no more: the connection is closing. With
    /// `drop_unstarted`, frames it left that have not started are dropped too (a
    /// slow consumer's backlog is the problem, its close frame must not wait).
    pub(crate) fn detach(&self, drop_unstarted: bool) {
        let mut backlog = self.lock();
        backlog.detached = true;
        if drop_unstarted {
            backlog.discard_unstarted();
        }
    }
}

/// An accepted TCP connection as hyper (and, after an upgrade, tungstenite) reads
/// and writes it: through its [`DirectSocket`], which the document can then share.
pub struct SharedTcp(Arc<DirectSocket>);

impl SharedTcp {
    fn new(tcp: TcpStream) -> SharedTcp {
        SharedTcp(Arc::new(DirectSocket {
            tcp,
            backlog: Mutex::default(),
            drainer: AtomicWaker::new(),
        }))
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let tcp = &self.0.tcp;
        loop {
            ready!(tcp.poll_read_ready(cx))?;
            match tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    /// Once the socket is shared with a document, taken whole: tungstenite's
    /// writes begin on frame boundaries, and so stay whole among the document's.
    /// Flushing waits for the socket.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write_raw(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_backlog(cx, false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.0.poll_backlog(cx, false))?;
        self.0.lock().detached = true;
        Poll::Ready(socket2::SockRef::from(&self.0.tcp).shutdown(std::net::Shutdown::Write))
    }
}

/// The server's listener: every accepted socket becomes a [`SharedTcp`], with
/// `TCP_NODELAY` set (Nagle's algorithm would hold small frames back up to 40 ms:
/// every edit is small).
pub struct DirectListener(pub TcpListener);

impl Listener for DirectListener {
    type Io = SharedTcp;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SharedTcp, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    return (SharedTcp::new(tcp), addr);
                }
                // As axum's own listener does: a connection that failed before it
                // was accepted is skipped; a full file table is waited out.
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// What a request knows of its connection: the client's address, and the socket
/// a websocket's document may write into.
#[derive(Clone)]
pub struct ConnInfo {
    pub addr: SocketAddr,
    pub(crate) socket: Arc<DirectSocket>,
}

impl Connected<IncomingStream<'_, DirectListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, DirectListener>) -> Self {
        ConnInfo {
            addr: *stream.remote_addr(),
            socket: stream.io().0.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    use tokio_tungstenite::WebSocketStream;

    /// A connected pair on loopback: the server's end shared, with small socket
    /// buffers so that writes stop being taken early.
    async fn pair() -> (SharedTcp, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client.connect(&addr.into()).unwrap();
        client.set_nonblocking(true).unwrap();
        let client = TcpStream::from_std(client.into()).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        (SharedTcp::new(server), client)
    }

    /// What the document writes, what the socket leaves behind, and tungstenite's
    /// own frames all reach a real websocket client whole and in order, however the
    /// socket splits them.
    #[tokio::test]
    async fn frames_arrive_whole_and_in_order_through_a_socket_that_takes_little() {
        let (shared, client) = pair().await;
        let socket = shared.0.clone();
        socket.share();
        let frames: Vec<Bytes> = (0..3000u32)
            .map(|i| {
                // Sizes across the header's three forms.
                let len = [3usize, 125, 126, 700, 65_536][i as usize % 5];
                let mut f = vec![(i % 251) as u8; len];
                f[..3].copy_from_slice(&i.to_be_bytes()[1..]);
                Bytes::from(f)
            })
            .collect();
        // Nobody reads yet: the socket soon takes nothing and the rest waits.
        let mut blocked = false;
        for batch in frames.chunks(7) {
            let wrote = socket.write_frames(batch, true).unwrap();
            blocked |= wrote.backlog > 0;
        }
        assert!(
            blocked,
            "the small socket buffer must fill up for this test to mean anything"
        );
        // tungstenite on the same socket (the close frame, say) goes behind, and
        // its flush waits until all of it is out.
        let mut server_ws = WebSocketStream::from_raw_socket(shared, Role::Server, None).await;
        let drainer = tokio::spawn(async move {
            server_ws
                .send(WsMessage::Binary(Bytes::from_static(b"last")))
                .await
                .unwrap();
            server_ws
        });
        let mut client_ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        for (i, want) in frames.iter().enumerate() {
            match client_ws.next().await.unwrap().unwrap() {
                WsMessage::Binary(got) => assert_eq!(&got, want, "frame {i}"),
                other => panic!("frame {i}: {other:?}"),
            }
        }
        match client_ws.next().await.unwrap().unwrap() {
            WsMessage::Binary(got) => assert_eq!(&got[..], b"last"),
            other => panic!("{other:?}"),
        }
        let _server = drainer.await.unwrap();
        assert_eq!(socket.backlog_bytes(), 0);
        // Once detached, the document writes no more; the connection still may.
        socket.detach(false);
        assert!(socket.write_frames(&frames[..1], true).is_err());
        assert!(socket.write_frames(&frames[..1], false).is_ok());
    }

    #[test]
    fn headers_follow_rfc_6455_lengths() {
        assert_eq!(&header(0).0[..header(0).1], &[0x82, 0]);
        assert_eq!(&header(125).0[..2], &[0x82, 125]);
        assert_eq!(&header(126).0[..header(126).1], &[0x82, 126, 0, 126]);
        assert_eq!(&header(65_535).0[..4], &[0x82, 126, 0xff, 0xff]);
        let (h, n) = header(65_536);
        assert_eq!(&h[..n], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn a_discarded_backlog_keeps_the_frame_in_flight() {
        let mut b = Backlog::default();
        b.push(Bytes::from_static(&[0x82, 3]), true);
        b.push(Bytes::from_static(b"abc"), false);
        b.push(Bytes::from_static(&[0x82, 1]), true);
        b.push(Bytes::from_static(b"d"), false);
        b.consume(1); // half the first header went out
        b.discard_unstarted();
        let left: Vec<u8> = b.chunks.iter().flat_map(|c| c.bytes.to_vec()).collect();
        assert_eq!(left, [3, b'a', b'b', b'c']);
        assert_eq!(b.bytes, 4);
        // Nothing started: everything goes.
        let mut b = Backlog::default();
        b.push(Bytes::from_static(&[0x82, 1]), true);
        b.push(Bytes::from_static(b"d"), false);
        b.discard_unstarted();
        assert_eq!(b.bytes, 0);
        assert!(b.since.is_none());
    }
}
