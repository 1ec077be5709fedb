//! Per-doc HTTP setup before connecting (`--setup ysweet`), as the Node generator:
//! `POST /doc/new {"docId"}`, then `POST /doc/:id/auth` → `{url, token?}`; the
//! websocket URL is `url` + `/<docId>` (what y-websocket's `WebsocketProvider`
//! builds), with `?token=` when the server returned one. A minimal HTTP/1.1 client
//! (one request per connection, `Connection: close`) is enough for a local server.

use super::proto::uri_encode;
use anyhow::{anyhow, bail, Context};
use clap::ValueEnum;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Setup {
    /// Connect to `--url` directly.
    None,
    /// y-sweet's document API at `--setup-url`.
    Ysweet,
}

/// Where one client connects, from the setup.
pub struct SetupInfo {
    pub url: String,
    pub token: String,
}

/// y-sweet: create the doc (if new) and get a client URL and token for it.
/// `server_token` (from `--token`) is sent as `Authorization: Bearer` when y-sweet
/// runs with auth.
pub async fn ysweet(base: &str, server_token: &str, doc: &str) -> anyhow::Result<SetupInfo> {
    let body = serde_json::json!({ "docId": doc }).to_string();
    let (status, _) = post(base, "/doc/new", server_token, &body).await?;
    if !(200..300).contains(&status) {
        bail!("POST /doc/new {status}");
    }
    let path = format!("/doc/{}/auth", uri_encode(doc));
    let (status, resp) = post(base, &path, server_token, "{}").await?;
    if !(200..300).contains(&status) {
        bail!("POST /doc/:id/auth {status}");
    }
    let j: serde_json::Value =
        serde_json::from_slice(&resp).context("POST /doc/:id/auth: JSON body")?;
    let url = j["url"]
        .as_str()
        .ok_or_else(|| anyhow!("POST /doc/:id/auth: no url in {j}"))?;
    Ok(SetupInfo {
        url: format!("{}/{}", url.trim_end_matches('/'), uri_encode(doc)),
        token: j["token"].as_str().unwrap_or_default().to_owned(),
    })
}

/// `POST base+path` with a JSON body; returns (status, body).
async fn post(base: &str, path: &str, bearer: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--setup-url must start with http://"))?;
    let (host, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let mut req = format!(
        "POST {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !bearer.is_empty() {
        req.push_str(&format!("Authorization: Bearer {bearer}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut s = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    s.set_nodelay(true)?;
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("truncated HTTP response"))?;
    let head = std::str::from_utf8(&raw[..end]).context("HTTP head")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunk"))?;
        let size_str = std::str::from_utf8(&b[..eol])?
            .split(';')
            .next()
            .unwrap_or("");
        let size = usize::from_str_radix(size_str.trim(), 16).context("chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or_else(|| anyhow!("short chunk"))?);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let (s, b) = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (201, &b"{\"a\":1}"[..]));
    }
}
