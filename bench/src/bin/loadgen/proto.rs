//! Wire format: the Hocuspocus framing around y-protocols sync and awareness
//! messages, the insert markers receivers scan for, and the presence timestamp
//! (`"t"`) in awareness states. Message type numbers, sync and awareness encoding
//! and varints are chorus-protocol's; only what peer servers add is written here.

use bytes::Bytes;
use chorus_protocol::{
    encode_awareness, encode_sync, Message, Reader, Writer, MSG_AUTH, MSG_AWARENESS,
    MSG_QUERY_AWARENESS, MSG_SYNC,
};
use clap::ValueEnum;
use std::fmt::Write as _;

/// Hocuspocus: outer type SyncReply, handled like sync.
const HP_SYNC_REPLY: u64 = 4;

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

/// `[0 sync][sub][varUint8Array payload]` (chorus-protocol's encoding, which is
/// y-protocols'), as the `Vec` the connection tasks queue.
pub fn sync_msg(sub: u8, payload: &[u8]) -> Vec<u8> {
    encode_sync(sub, payload).into()
}

/// `[1 awareness][varUint8Array update]`, the update one entry: this client's
/// state at `clock` (y-protocols' `encodeAwarenessUpdate` of one client).
pub fn awareness_msg(client_id: u64, clock: u64, state: &str) -> Vec<u8> {
    Message::Awareness(encode_awareness([(client_id, clock, state)]))
        .encode()
        .into()
}

/// Calls `f(clientID, clock, state JSON bytes)` for every entry of an awareness
/// update body (a server may merge several clients' states into one message);
/// false if the body is malformed. The states are not copied.
pub fn scan_awareness(body: &Bytes, mut f: impl FnMut(u64, u64, &[u8])) -> bool {
    let mut r = Reader::new(body);
    let Ok(n) = r.read_var_u64() else {
        return false;
    };
    for _ in 0..n {
        let (Ok(id), Ok(clock), Ok(state)) =
            (r.read_var_u64(), r.read_var_u64(), r.read_var_bytes())
        else {
            return false;
        };
        f(id, clock, &state);
    }
    true
}

/// The number after the first `"t":` of a presence state's JSON (the sender's
/// epoch ms). A scan, not a parse: receivers see thousands of states a second,
/// and no other key of the states the generator sends is `t` (`tname` is not).
pub fn state_t(state: &[u8]) -> Option<f64> {
    const KEY: &[u8] = b"\"t\":";
    let at = state.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &state[at..];
    let end = rest
        .iter()
        .position(|c| !(c.is_ascii_digit() || b".-+eE".contains(c)))
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
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
        let prefix = if proto == Protocol::Hocuspocus {
            let mut w = Writer::with_capacity(doc.len() + 2);
            w.write_var_string(doc);
            w.finish().into()
        } else {
            Vec::new()
        };
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
                let mut m = Writer::with_capacity(token.len() + 4);
                m.write_u8(MSG_AUTH);
                m.write_u8(0); // AuthMessageType.Token
                m.write_var_string(token);
                vec![self.wrap(m.finish().into())]
            }
        }
    }

    /// The keepalive frame (query-awareness).
    pub fn keepalive(&self) -> Vec<u8> {
        self.wrap(vec![MSG_QUERY_AWARENESS])
    }

    /// An awareness message in `frame`: its update body. `None` for anything else.
    pub fn parse_awareness(&self, frame: &Bytes) -> Option<Bytes> {
        let mut r = Reader::new(frame);
        if self.proto == Protocol::Hocuspocus && r.read_var_bytes().ok()? != self.doc {
            return None;
        }
        // Hocuspocus's awareness type is y-protocols' (1)
        (r.read_var_u64().ok()? == u64::from(MSG_AWARENESS)).then_some(())?;
        r.read_var_bytes().ok()
    }

    /// A sync message in `frame`: (sub-type, payload). `None` for anything else
    /// (awareness, auth, sync status, Chorus extensions, another doc's frames, …),
    /// which the generator ignores.
    pub fn parse_sync(&self, frame: &Bytes) -> Option<(u8, Bytes)> {
        let mut r = Reader::new(frame);
        if self.proto == Protocol::Hocuspocus && r.read_var_bytes().ok()? != self.doc {
            return None;
        }
        let outer = r.read_var_u64().ok()?;
        let is_sync = outer == u64::from(MSG_SYNC)
            || (self.proto == Protocol::Hocuspocus && outer == HP_SYNC_REPLY);
        if !is_sync {
            return None;
        }
        let sub = u8::try_from(r.read_var_u64().ok()?).ok()?;
        let payload = r.read_var_bytes().ok()?;
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
    use chorus_protocol::{SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE};

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
    fn awareness_round_trip_through_the_framing() {
        let state = r#"{"user":{"name":"c1"},"cursor":{"anchor":{"type":null,"tname":"title","item":null,"assoc":0},"head":null},"t":1700000000123.456}"#;
        for proto in [Protocol::YWebsocket, Protocol::Hocuspocus] {
            let f = Framing::new(proto, "d");
            let frame = Bytes::from(f.wrap(awareness_msg(4_000_000_000, 7, state)));
            assert!(sync_of(&f, &frame).is_none());
            let body = f.parse_awareness(&frame).unwrap();
            let mut got = Vec::new();
            assert!(scan_awareness(&body, |id, clock, s| got.push((
                id,
                clock,
                s.to_vec()
            ))));
            assert_eq!(got, vec![(4_000_000_000, 7, state.as_bytes().to_vec())]);
            assert!(f
                .parse_awareness(&Bytes::from(f.wrap(sync_msg(SYNC_STEP2, &[]))))
                .is_none());
        }
        // several entries, as a server that merges states sends them
        let body = encode_awareness([(1, 2, r#"{"t":5}"#), (3, 4, "null")]);
        let mut n = 0;
        assert!(scan_awareness(&body, |_, _, _| n += 1));
        assert_eq!(n, 2);
        assert!(!scan_awareness(&body.slice(..body.len() - 1), |_, _, _| {}));
    }

    #[test]
    fn the_presence_timestamp_is_found_by_its_key() {
        assert_eq!(
            state_t(br#"{"cursor":{"anchor":{"tname":"title"}},"t":1700000000123.456}"#),
            Some(1_700_000_000_123.456)
        );
        assert_eq!(state_t(br#"{"t":12,"user":{}}"#), Some(12.0));
        assert_eq!(state_t(br#"{"tname":"t"}"#), None);
        assert_eq!(state_t(b"null"), None);
    }

    /// `parse_sync` of a frame given as plain bytes, its payload copied out.
    fn sync_of(f: &Framing, frame: &[u8]) -> Option<(u8, Vec<u8>)> {
        f.parse_sync(&Bytes::copy_from_slice(frame))
            .map(|(sub, payload)| (sub, payload.to_vec()))
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
        assert_eq!(sync_of(&f, &step2), Some((SYNC_STEP2, vec![9, 9])));
        // SyncReply (4) counts as sync; SyncStatus (8) and other docs do not.
        let mut reply = vec![3, b'd', 0xC3, 0xA9, 4];
        reply.extend_from_slice(&sync_msg(SYNC_UPDATE, &[1])[1..]);
        assert_eq!(sync_of(&f, &reply), Some((SYNC_UPDATE, vec![1])));
        assert_eq!(sync_of(&f, &[3, b'd', 0xC3, 0xA9, 8, 1]), None);
        let other = Framing::new(Protocol::Hocuspocus, "xy").wrap(sync_msg(SYNC_STEP2, &[]));
        assert_eq!(sync_of(&f, &other), None);
        assert_eq!(f.keepalive(), vec![3, b'd', 0xC3, 0xA9, 3]);
        // y-websocket: no framing; type 4 is not sync
        let y = Framing::new(Protocol::YWebsocket, "dé");
        assert!(y.hello("tk").is_empty());
        assert_eq!(
            sync_of(&y, &sync_msg(SYNC_STEP1, &[0])),
            Some((SYNC_STEP1, vec![0]))
        );
        assert_eq!(sync_of(&y, &[4, 2, 1, 1]), None);
    }
}
