//! A client of the HTTP transport (`/v1/http/…`, PROTOCOL.md "HTTP transport")
//! written for the tests: its own event-stream parsing, its own POST framing and
//! sequence numbers, over the crate's plain HTTP/1.1 helper. It long-polls only
//! (that helper reads a response to its end, and a stream never ends).

use crate::{http_with_body, APP};
use anyhow::{anyhow, bail, Context};
use base64::Engine;
use bytes::Bytes;
use chorus_protocol::{encode_sync, Message, SyncMessage};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, Text, Transact, Update};

/// One session of the HTTP transport, with its replica.
pub struct HttpTransportClient {
    addr: SocketAddr,
    base: String,
    /// The session id the opening POST answered.
    pub session: String,
    /// What the client knows of the document.
    pub doc: Doc,
    seq: u64,
    /// The event ids received, in order.
    pub ids: Vec<u64>,
    /// `x-chorus-node` of every answer (cluster mode).
    pub answered_by: BTreeSet<String>,
    /// The session's close event, once received.
    pub closed: Option<(u16, String)>,
}

impl HttpTransportClient {
    /// Open a session of `wiki/{doc}` through `addr` and send a sync step 1.
    pub async fn open(addr: SocketAddr, doc: &str, token: &str) -> anyhow::Result<Self> {
        let base = format!("/v1/http/{APP}/{doc}");
        let auth = format!("Bearer {token}");
        let (status, _, body) =
            http_with_body(addr, "POST", &base, &[("Authorization", &auth)], &[]).await;
        if status != 201 {
            bail!("open: {status} {}", String::from_utf8_lossy(&body));
        }
        let opened: serde_json::Value = serde_json::from_slice(&dechunk(&body))?;
        let session = opened["session"]
            .as_str()
            .context("the answer names the session")?
            .to_owned();
        let doc = Doc::new();
        doc.get_or_insert_text("title");
        let mut client = HttpTransportClient {
            addr,
            base,
            session,
            doc,
            seq: 0,
            ids: Vec::new(),
            answered_by: BTreeSet::new(),
            closed: None,
        };
        let sv = client.doc.transact().state_vector().encode_v1();
        client.post(&[encode_sync(0, &sv)]).await?;
        Ok(client)
    }

    /// POST `frames` with the next sequence numbers; a 503 is retried (the same
    /// numbers: nothing is applied twice).
    pub async fn post(&mut self, frames: &[Bytes]) -> anyhow::Result<()> {
        let mut body = Vec::new();
        for frame in frames {
            let mut n = frame.len() as u64;
            while n > 0x7f {
                body.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            body.push(n as u8);
            body.extend_from_slice(frame);
        }
        for _ in 0..20 {
            let path = format!("{}/{}?seq={}", self.base, self.session, self.seq);
            let (status, headers, answer) =
                http_with_body(self.addr, "POST", &path, &[], &body).await;
            self.answered_by
                .extend(headers.get("x-chorus-node").cloned());
            match status {
                200 => {
                    let posted: serde_json::Value = serde_json::from_slice(&dechunk(&answer))?;
                    let next = posted["next"].as_u64().context("next")?;
                    if next != self.seq + frames.len() as u64 {
                        bail!(
                            "the session expects {next} after {} frames from {}",
                            frames.len(),
                            self.seq
                        );
                    }
                    self.seq = next;
                    return Ok(());
                }
                503 => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => bail!("post: {status} {}", String::from_utf8_lossy(&answer)),
            }
        }
        Err(anyhow!("post: 503 twenty times"))
    }

    /// One long-poll: the events after the last one received (waiting up to the
    /// server's `poll_wait_secs` for one). Returns how many frames came.
    pub async fn poll(&mut self) -> anyhow::Result<usize> {
        let after = self.ids.last().copied().unwrap_or(0);
        let path = format!("{}/{}?after={after}&poll=1", self.base, self.session);
        let (status, headers, body) = http_with_body(self.addr, "GET", &path, &[], &[]).await;
        self.answered_by
            .extend(headers.get("x-chorus-node").cloned());
        if status != 200 {
            bail!("poll: {status} {}", String::from_utf8_lossy(&body));
        }
        let text = String::from_utf8(dechunk(&body))?;
        let mut got = 0;
        for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
            let (mut kind, mut id, mut data) = ("message", None, String::new());
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    kind = if v == "close" { "close" } else { "other" };
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse::<u64>()?);
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            match kind {
                "close" => {
                    let close: serde_json::Value = serde_json::from_str(&data)?;
                    self.closed = Some((
                        close["code"].as_u64().unwrap_or(0) as u16,
                        close["reason"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
                "message" => {
                    self.ids.push(id.context("a message event has an id")?);
                    let frame =
                        Bytes::from(base64::engine::general_purpose::STANDARD.decode(data)?);
                    self.receive(&frame)?;
                    got += 1;
                }
                _ => {}
            }
        }
        Ok(got)
    }

    fn receive(&mut self, frame: &Bytes) -> anyhow::Result<()> {
        if let Ok(Message::Sync(SyncMessage::Step2(update) | SyncMessage::Update(update))) =
            Message::decode(frame)
        {
            let update = Update::decode_v1(&update)?;
            self.doc.transact_mut().apply_update(update)?;
        }
        Ok(())
    }

    /// Insert `text` at the end of the title and POST the update.
    pub async fn append_title(&mut self, text: &str) -> anyhow::Result<()> {
        let update = {
            let title = self.doc.get_or_insert_text("title");
            let before = self.doc.transact().state_vector();
            let mut txn = self.doc.transact_mut();
            let len = title.len(&txn);
            title.insert(&mut txn, len, text);
            drop(txn);
            self.doc.transact().encode_state_as_update_v1(&before)
        };
        self.post(&[encode_sync(2, &update)]).await
    }

    /// The title as this client knows it.
    pub fn title(&self) -> String {
        let title = self.doc.get_or_insert_text("title");
        title.get_string(&self.doc.transact())
    }

    /// Leave the session.
    pub async fn leave(&mut self) -> u16 {
        let path = format!("{}/{}", self.base, self.session);
        http_with_body(self.addr, "DELETE", &path, &[], &[]).await.0
    }
}

/// The body of a response, with a chunked transfer encoding undone (a proxy
/// may answer chunked what the server answered with a length).
pub fn dechunk(body: &[u8]) -> Vec<u8> {
    fn chunks(mut rest: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Some(out);
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    }
    chunks(body).unwrap_or_else(|| body.to_vec())
}
