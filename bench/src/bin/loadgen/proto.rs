//! Wire format: y-protocols sync messages, the Hocuspocus framing around them, and
//! the insert markers receivers scan for.

use clap::ValueEnum;
use std::fmt::Write as _;

pub const MSG_SYNC: u64 = 0;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;
/// Hocuspocus: SyncReply, handled like sync.
pub const HP_SYNC_REPLY: u64 = 4;
pub const SYNC_STEP1: u64 = 0;
pub const SYNC_STEP2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

/// The wire protocol (`--protocol`), as the Node generator's adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Plain y-protocols messages, one per binary frame; `--token` goes in `?token=`.
    YWebsocket,
    /// Every frame is `varString(documentName)` + a y-protocols message; an Auth
    /// frame `[doc][2][0][token]` first; outer type 4 (SyncReply) is sync, 8
    /// (SyncStatus) and everything else are ignored.
    Hocuspocus,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::YWebsocket => "y-websocket",
            Protocol::Hocuspocus => "hocuspocus",
        }
    }
    /// Milliseconds between keepalive frames (query-awareness) when `--keepalive` is -1.
    /// Hocuspocus closes sockets that sent nothing for its `timeout` (60 s default).
    pub fn default_keepalive_ms(self) -> u64 {
        match self {
            Protocol::YWebsocket => 0,
            Protocol::Hocuspocus => 20_000,
        }
    }
}

pub fn write_var_uint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn read_var_uint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

pub fn write_var_string(buf: &mut Vec<u8>, s: &str) {
    write_var_uint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// `[0 sync][sub][varUint8Array payload]`
pub fn sync_msg(sub: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(payload.len() + 12);
    write_var_uint(&mut buf, MSG_SYNC);
    write_var_uint(&mut buf, sub);
    write_var_uint(&mut buf, payload.len() as u64);
    buf.extend_from_slice(payload);
    buf
}

/// Per-connection framing: wraps outgoing y-protocols messages and unwraps incoming
/// frames (the Node generator's adapter `wrap`/`unwrap`/`hello`/`isSync`).
pub struct Framing {
    proto: Protocol,
    /// Hocuspocus: `varString(doc)`, prepended to every frame.
    prefix: Vec<u8>,
    doc: Vec<u8>,
}

impl Framing {
    pub fn new(proto: Protocol, doc: &str) -> Self {
        let mut prefix = Vec::new();
        if proto == Protocol::Hocuspocus {
            write_var_string(&mut prefix, doc);
        }
        Framing {
            proto,
            prefix,
            doc: doc.as_bytes().to_vec(),
        }
    }

    pub fn wrap(&self, msg: Vec<u8>) -> Vec<u8> {
        if self.prefix.is_empty() {
            return msg;
        }
        let mut buf = Vec::with_capacity(self.prefix.len() + msg.len());
        buf.extend_from_slice(&self.prefix);
        buf.extend_from_slice(&msg);
        buf
    }

    /// Frames to send when the socket opens, before SyncStep1.
    pub fn hello(&self, token: &str) -> Vec<Vec<u8>> {
        match self.proto {
            Protocol::YWebsocket => Vec::new(),
            Protocol::Hocuspocus => {
                let mut m = Vec::new();
                write_var_uint(&mut m, MSG_AUTH);
                write_var_uint(&mut m, 0); // AuthMessageType.Token
                write_var_string(&mut m, token);
                vec![self.wrap(m)]
            }
        }
    }

    /// The keepalive frame (query-awareness).
    pub fn keepalive(&self) -> Vec<u8> {
        self.wrap(vec![MSG_QUERY_AWARENESS as u8])
    }

    /// A sync message in `frame`: (sub-type, payload). `None` for anything else
    /// (awareness, auth, sync status, Chorus extensions, another doc's frames, …),
    /// which the generator ignores.
    pub fn parse_sync<'a>(&self, frame: &'a [u8]) -> Option<(u64, &'a [u8])> {
        let mut pos = 0;
        if self.proto == Protocol::Hocuspocus {
            let len = read_var_uint(frame, &mut pos)? as usize;
            let name = frame.get(pos..pos.checked_add(len)?)?;
            if name != self.doc.as_slice() {
                return None;
            }
            pos += len;
        }
        let outer = read_var_uint(frame, &mut pos)?;
        let is_sync =
            outer == MSG_SYNC || (self.proto == Protocol::Hocuspocus && outer == HP_SYNC_REPLY);
        if !is_sync {
            return None;
        }
        let sub = read_var_uint(frame, &mut pos)?;
        let len = read_var_uint(frame, &mut pos)? as usize;
        let payload = frame.get(pos..pos.checked_add(len)?)?;
        Some((sub, payload))
    }
}

/// A parsed marker `~c<client>s<seq>t<epoch-ms>~`.
#[derive(Debug, PartialEq)]
pub struct Marker {
    pub client: u64,
    pub seq: u64,
    pub ts_ms: f64,
}

fn parse_digits(b: &[u8], pos: &mut usize) -> Option<u64> {
    let start = *pos;
    let mut v = 0u64;
    while let Some(&c) = b.get(*pos) {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        *pos += 1;
    }
    (*pos > start).then_some(v)
}

fn parse_marker_at(b: &[u8], mut pos: usize) -> Option<(Marker, usize)> {
    // b[pos..] starts after "~c"
    let client = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b's')).then_some(())?;
    pos += 1;
    let seq = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b't')).then_some(())?;
    pos += 1;
    let int = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b'.')).then_some(())?;
    pos += 1;
    let start = pos;
    let frac = parse_digits(b, &mut pos)?;
    (b.get(pos) == Some(&b'~')).then_some(())?;
    let ts_ms = int as f64 + frac as f64 / 10f64.powi((pos - start) as i32);
    Some((Marker { client, seq, ts_ms }, pos + 1))
}

/// Calls `f` for every marker in raw update bytes.
pub fn scan_markers(b: &[u8], mut f: impl FnMut(Marker)) {
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'~' && b[i + 1] == b'c' {
            if let Some((m, next)) = parse_marker_at(b, i + 2) {
                f(m);
                i = next;
                continue;
            }
        }
        i += 1;
    }
}

/// `encodeURIComponent`.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_raw_bytes() {
        let mut b = vec![1, 2, 3];
        b.extend_from_slice(b"~c12s7t1700000000123.456~~c3s0t5.5~x~c1s~");
        let mut got = Vec::new();
        scan_markers(&b, |m| got.push(m));
        assert_eq!(
            got,
            vec![
                Marker {
                    client: 12,
                    seq: 7,
                    ts_ms: 1_700_000_000_123.456
                },
                Marker {
                    client: 3,
                    seq: 0,
                    ts_ms: 5.5
                },
            ]
        );
    }

    #[test]
    fn hocuspocus_framing() {
        let f = Framing::new(Protocol::Hocuspocus, "dé");
        // Auth: [varString doc][2][0][varString token]
        assert_eq!(
            f.hello("tk"),
            vec![vec![3, b'd', 0xC3, 0xA9, 2, 0, 2, b't', b'k']]
        );
        let step2 = f.wrap(sync_msg(SYNC_STEP2, &[9, 9]));
        assert_eq!(&step2[..4], &[3, b'd', 0xC3, 0xA9]);
        assert_eq!(f.parse_sync(&step2), Some((SYNC_STEP2, &[9u8, 9][..])));
        // SyncReply (4) counts as sync; SyncStatus (8) and other docs do not.
        let mut reply = vec![3, b'd', 0xC3, 0xA9, 4];
        reply.extend_from_slice(&sync_msg(SYNC_UPDATE, &[1])[1..]);
        assert_eq!(f.parse_sync(&reply), Some((SYNC_UPDATE, &[1u8][..])));
        assert_eq!(f.parse_sync(&[3, b'd', 0xC3, 0xA9, 8, 1]), None);
        let other = Framing::new(Protocol::Hocuspocus, "xy").wrap(sync_msg(SYNC_STEP2, &[]));
        assert_eq!(f.parse_sync(&other), None);
        assert_eq!(f.keepalive(), vec![3, b'd', 0xC3, 0xA9, 3]);
        // y-websocket: no framing; type 4 is not sync
        let y = Framing::new(Protocol::YWebsocket, "dé");
        assert!(y.hello("tk").is_empty());
        assert_eq!(
            y.parse_sync(&sync_msg(SYNC_STEP1, &[0])),
            Some((SYNC_STEP1, &[0u8][..]))
        );
        assert_eq!(y.parse_sync(&[4, 2, 1, 1]), None);
    }
}
