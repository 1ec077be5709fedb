//! # chorus-e2e — end-to-end tests across real sockets
//!
//! The harness starts the real server (the same `chorus_server::Server` the binary
//! runs) on a free port with a fresh data directory, mints tokens for its apps,
//! and drives it with [`YClient`], a small y-websocket client built on yrs and
//! tokio-tungstenite. Tests live in `tests/tests/`; the Node suite with the npm
//! Yjs stack lives in `tests/node/`.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use chorus_auth::{mint_session, Mode, Secret, SessionClaims};
use chorus_protocol::{
    decode_awareness, encode_awareness, encode_sync, ChorusMessage, Message, SyncMessage,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Transact, Update};

pub use chorus_server::{AppConfig, Config};

pub mod cluster;
pub mod http_transport;
pub mod processes;
pub mod relay;

/// The app every test uses unless it says otherwise.
pub const APP: &str = "wiki";
/// Its secrets (the first signs).
pub const SECRETS: [&str; 2] = [
    "wiki-secret-current-0123456789abcdef",
    "wiki-secret-previous-0123456789abcdef",
];
/// The secret of the app `other`.
pub const OTHER_SECRET: &str = "other-secret-0123456789abcdef0123456789";
/// The secret of the disabled app `off`.
pub const OFF_SECRET: &str = "off-secret-0123456789abcdef0123456789";

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A running server on 127.0.0.1:<free port>.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shared state (metrics, documents).
    pub state: chorus_server::AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Apps `wiki` (two secrets), `other`, and disabled `off`.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestServer::start`], with the config adjusted first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_in(&dir.path().join("data"), adjust).await;
        server._dir = Some(dir);
        server
    }

    /// Start on an existing data directory (to test restarts); the caller owns it.
    pub async fn start_in(
        data_dir: &std::path::Path,
        adjust: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.to_owned(),
            shutdown_grace_secs: 5,
            apps: vec![
                app(APP, &SECRETS, true),
                app("other", &[OTHER_SECRET], true),
                app("off", &[OFF_SECRET], false),
            ],
            ..Config::default()
        };
        adjust(&mut config);
        config.validate().unwrap();
        // A server stopped just before may still hold the store's lock for a few
        // milliseconds (its writer thread exits after the last handle drops).
        let mut attempts = 0;
        let server = loop {
            match chorus_server::Server::bind(config.clone()).await {
                Ok(server) => break server,
                Err(e) if attempts < 100 && e.to_string().contains("lock") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("server did not start: {e}"),
            }
        };
        let addr = server.local_addr().unwrap();
        let state = server.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            state,
            stop: Some(tx),
            task: Some(task),
            _dir: None,
        }
    }

    /// `ws://…/v1/ws/{app}/{doc}?token=…`
    pub fn ws_url(&self, app: &str, doc: &str, token: &str) -> String {
        format!("ws://{}/v1/ws/{app}/{doc}?token={token}", self.addr)
    }

    /// `http://…{path}`
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An edit-mode session token for `wiki`.
    pub fn token(&self, doc: &str, user: &str) -> String {
        token_for(APP, SECRETS[0], doc, user, Mode::Edit)
    }

    /// Connect a [`YClient`] to `wiki/{doc}` as `user` and wait for the initial sync.
    pub async fn client(&self, doc: &str, user: &str) -> YClient {
        let url = self.ws_url(APP, doc, &self.token(doc, user));
        let c = YClient::connect(&url).await.unwrap();
        c.wait_synced().await.unwrap();
        c
    }

    /// Like [`TestServer::client`], opted in to Chorus extension messages (saved acks).
    pub async fn ext_client(&self, doc: &str, user: &str) -> YClient {
        let url = format!("{}&chorus=1", self.ws_url(APP, doc, &self.token(doc, user)));
        let c = YClient::connect(&url).await.unwrap();
        c.wait_synced().await.unwrap();
        c
    }

    /// Signal shutdown and wait for the server to finish draining.
    pub async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

fn app(id: &str, secrets: &[&str], enabled: bool) -> AppConfig {
    AppConfig {
        enabled,
        ..AppConfig::new(id, secrets.iter().copied())
    }
}

/// A session token, valid for an hour.
pub fn token_for(app: &str, secret: &str, doc: &str, user: &str, mode: Mode) -> String {
    let mut claims = SessionClaims::new(app, user, doc, mode, now() + 3600);
    claims.name = Some(format!("{user} (from token)"));
    mint_session(&Secret::new(secret), &claims).unwrap()
}

/// A minimal HTTP/1.1 request (keeps the test crate free of an HTTP client):
/// returns status, lower-cased headers and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    http_with_body(addr, method, path, headers, &[]).await
}

/// [`http`] with a request body.
pub async fn http_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let body = buf[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

/// A host token for `app` (optionally restricted to one document).
pub fn host_token(app: &str, secret: &str, doc: Option<&str>) -> String {
    let mut claims = chorus_auth::HostClaims::new(app, now() + 3600);
    claims.doc = doc.map(str::to_owned);
    chorus_auth::mint_host(&Secret::new(secret), &claims).unwrap()
}

/// Poll `cond` every 10 ms until it holds or `secs` pass.
pub async fn eventually(
    secs: u64,
    what: &str,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("timed out after {secs}s waiting for: {what}")
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open a raw websocket (for malformed-input tests).
pub async fn raw_connect(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(ws)
}

/// Read from a raw socket until the server closes it; returns the close code and reason.
pub async fn close_code(ws: &mut Ws) -> anyhow::Result<(u16, String)> {
    let fut = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(WsMessage::Close(Some(frame))) => {
                    return Ok((u16::from(frame.code), frame.reason.to_string()))
                }
                Ok(WsMessage::Close(None)) => bail!("closed without a code"),
                Ok(_) => continue,
                Err(e) => bail!("socket error before a close frame: {e}"),
            }
        }
        bail!("stream ended without a close frame")
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| anyhow!("no close frame within 10s"))?
}

#[derive(Default)]
struct Shared {
    synced: bool,
    awareness: HashMap<u64, serde_json::Value>,
    closed: Option<(u16, String)>,
    received_updates: usize,
    /// Sync step 2 + update messages sent (what "saved up to n" counts).
    sent_update_messages: u64,
    /// Highest "saved up to n" received.
    saved: u64,
    /// Chorus error codes received.
    errors: Vec<String>,
}

/// A y-websocket client: a yrs document kept in sync over one socket.
pub struct YClient {
    /// The client's replica.
    pub doc: Doc,
    out: mpsc::UnboundedSender<WsMessage>,
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<JoinHandle<()>>,
}

impl YClient {
    /// Connect and start the handshake (send our step 1).
    pub async fn connect(url: &str) -> anyhow::Result<YClient> {
        Self::connect_request(url.into_client_request()?).await
    }

    /// Connect with a prepared request (e.g. a token in `Sec-WebSocket-Protocol`).
    pub async fn connect_request(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> anyhow::Result<YClient> {
        Self::connect_resuming(req, None).await
    }

    /// Reconnect as a y-websocket provider does after a drop: the replica keeps what
    /// it had (`state`, e.g. [`YClient::state`] of the old connection), edits the
    /// server never acknowledged included, and the handshake brings both sides level.
    pub async fn resume(url: &str, state: &[u8]) -> anyhow::Result<YClient> {
        Self::connect_resuming(url.into_client_request()?, Some(state)).await
    }

    async fn connect_resuming(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
        state: Option<&[u8]>,
    ) -> anyhow::Result<YClient> {
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .context("websocket connect")?;
        let (mut sink, mut stream) = ws.split();
        let doc = Doc::new();
        doc.get_or_insert_text("title");
        doc.get_or_insert_xml_fragment("body");
        if let Some(state) = state {
            doc.transact_mut()
                .apply_update(Update::decode_v1(state).context("resumed state")?)
                .context("resumed state")?;
        }
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (out, mut out_rx) = mpsc::unbounded_channel::<WsMessage>();
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let (rdoc, rshared, rout) = (doc.clone(), shared.clone(), out.clone());
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    WsMessage::Binary(b) => handle_frame(&rdoc, &rshared, &rout, b),
                    WsMessage::Close(frame) => {
                        let code = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        rshared.lock().unwrap().closed = Some(code);
                        break;
                    }
                    _ => {}
                }
            }
            let mut s = rshared.lock().unwrap();
            if s.closed.is_none() {
                s.closed = Some((1006, "stream ended".into()));
            }
        });
        let c = YClient {
            doc,
            out,
            shared,
            tasks: vec![writer, reader],
        };
        let sv = c.doc.transact().state_vector().encode_v1();
        c.send_raw(encode_sync(0, &sv));
        Ok(c)
    }

    /// Send one raw frame.
    pub fn send_raw(&self, frame: Bytes) {
        let _ = self.out.send(WsMessage::Binary(frame));
    }

    /// Send an update message; returns its number among this connection's update
    /// messages (the `n` that "saved up to n" refers to).
    pub fn send_update(&self, update: &[u8]) -> u64 {
        let n = {
            let mut s = self.shared.lock().unwrap();
            s.sent_update_messages += 1;
            s.sent_update_messages
        };
        self.send_raw(encode_sync(2, update));
        n
    }

    /// Highest "saved up to n" received (needs `chorus=1`).
    pub fn saved(&self) -> u64 {
        self.shared.lock().unwrap().saved
    }

    /// Chorus error codes received so far.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().unwrap().errors.clone()
    }

    /// Wait until the server's step 2 has been applied.
    pub async fn wait_synced(&self) -> anyhow::Result<()> {
        self.wait_synced_for(10).await
    }

    /// Has the initial sync completed (a step 2 arrived)?
    pub fn is_synced(&self) -> bool {
        self.shared.lock().unwrap().synced
    }

    /// Like [`YClient::wait_synced`] with a custom timeout (large documents).
    pub async fn wait_synced_for(&self, secs: u64) -> anyhow::Result<()> {
        eventually(secs, "initial sync", || self.shared.lock().unwrap().synced).await
    }

    /// Wait for the initial sync; `Err` as soon as the server closes the connection
    /// instead (or after `secs`).
    pub async fn wait_synced_or_closed(&self, secs: u64) -> anyhow::Result<()> {
        eventually(secs, "initial sync or close", || {
            let s = self.shared.lock().unwrap();
            s.synced || s.closed.is_some()
        })
        .await?;
        match self.closed() {
            Some((code, reason)) => bail!("closed with {code} {reason} before the sync"),
            None => Ok(()),
        }
    }

    /// Insert into `title` at `index` and send the update; returns its message number.
    pub fn insert_title(&self, index: u32, text: &str) -> u64 {
        use yrs::Text;
        let t = self.doc.get_or_insert_text("title");
        let mut txn = self.doc.transact_mut();
        t.insert(&mut txn, index, text);
        let u = txn.encode_update_v1();
        drop(txn);
        self.send_update(&u)
    }

    /// Delete `len` characters of `title` at `index` and send the update; returns its
    /// message number.
    pub fn delete_title(&self, index: u32, len: u32) -> u64 {
        use yrs::Text;
        let t = self.doc.get_or_insert_text("title");
        let mut txn = self.doc.transact_mut();
        t.remove_range(&mut txn, index, len);
        let u = txn.encode_update_v1();
        drop(txn);
        self.send_update(&u)
    }

    /// Append a paragraph `<p>text</p>` to `body` and send the update.
    pub fn push_paragraph(&self, text: &str) {
        use yrs::{XmlElementPrelim, XmlFragment, XmlTextPrelim};
        let body = self.doc.get_or_insert_xml_fragment("body");
        let mut txn = self.doc.transact_mut();
        let p = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
        p.push_back(&mut txn, XmlTextPrelim::new(text));
        let u = txn.encode_update_v1();
        drop(txn);
        self.send_update(&u);
    }

    /// The current `title`.
    pub fn title(&self) -> String {
        let t = self.doc.get_or_insert_text("title");
        t.get_string(&self.doc.transact())
    }

    /// The current `body` as XML text.
    pub fn body(&self) -> String {
        let b = self.doc.get_or_insert_xml_fragment("body");
        b.get_string(&self.doc.transact())
    }

    /// The full state, encoded (for convergence checks).
    pub fn state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// The state vector (compare these, not their encodings: entry order is unspecified).
    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// Publish our awareness state (as JSON) with `clock`.
    pub fn set_awareness(&self, clock: u64, state: &str) {
        let id = self.doc.client_id();
        let body = encode_awareness([(id.get(), clock, state)]);
        self.send_raw(Message::Awareness(body).encode());
    }

    /// Our Yjs client id.
    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    /// Other clients' awareness states as seen by this client.
    pub fn awareness(&self) -> HashMap<u64, serde_json::Value> {
        self.shared.lock().unwrap().awareness.clone()
    }

    /// The close code, once the server closed us.
    pub fn closed(&self) -> Option<(u16, String)> {
        self.shared.lock().unwrap().closed.clone()
    }

    /// Update messages received so far.
    pub fn received_updates(&self) -> usize {
        self.shared.lock().unwrap().received_updates
    }

    /// Close the socket politely.
    pub async fn close(self) {
        let _ = self.out.send(WsMessage::Close(None));
        tokio::time::sleep(Duration::from_millis(50)).await;
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for YClient {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn handle_frame(
    doc: &Doc,
    shared: &Mutex<Shared>,
    out: &mpsc::UnboundedSender<WsMessage>,
    frame: Bytes,
) {
    let Ok(msg) = Message::decode(&frame) else {
        return;
    };
    match msg {
        Message::Sync(SyncMessage::Step1(sv)) => {
            let sv = StateVector::decode_v1(&sv).unwrap();
            let diff = doc.transact().encode_state_as_update_v1(&sv);
            shared.lock().unwrap().sent_update_messages += 1;
            let _ = out.send(WsMessage::Binary(encode_sync(1, &diff)));
        }
        Message::Sync(SyncMessage::Step2(u)) | Message::Sync(SyncMessage::Update(u)) => {
            let is_step2 = frame[1] == 1;
            doc.transact_mut()
                .apply_update(Update::decode_v1(&u).unwrap())
                .unwrap();
            let mut s = shared.lock().unwrap();
            if is_step2 {
                s.synced = true;
            } else {
                s.received_updates += 1;
            }
        }
        Message::Awareness(body) => {
            let entries = decode_awareness(&body, 1024).unwrap();
            let mut s = shared.lock().unwrap();
            for e in entries {
                if e.state == "null" {
                    s.awareness.remove(&e.client_id);
                } else {
                    s.awareness
                        .insert(e.client_id, serde_json::from_str(&e.state).unwrap());
                }
            }
        }
        Message::Chorus(ChorusMessage::Saved { n }) => {
            let mut s = shared.lock().unwrap();
            s.saved = s.saved.max(n);
        }
        Message::Chorus(ChorusMessage::Error { code, .. }) => {
            shared.lock().unwrap().errors.push(code);
        }
        _ => {}
    }
}
