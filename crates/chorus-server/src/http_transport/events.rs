//! The stream's wire format: Server-Sent Events (the WHATWG `text/event-stream`
//! format, so a browser's `EventSource` can read it too). Each frame of the
//! document's protocol is one `message` event whose `id` is its event id and
//! whose data is the frame in base64 (standard alphabet, padded); the close is a
//! `close` event with `{"code","reason"}`; a stream opens with a `ready` event
//! (its first bytes, which tell a client that the response is not being held
//! back by a proxy) and keeps idle with comment lines.

use crate::close::Closing;
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

/// The `text/event-stream` of `frames`, one event each.
pub(crate) fn frames(frames: &[(u64, Bytes)]) -> Bytes {
    let engine = &base64::engine::general_purpose::STANDARD;
    let size: usize = frames.iter().map(|(_, f)| f.len() * 4 / 3 + 32).sum();
    let mut out = BytesMut::with_capacity(size);
    let mut text = String::new();
    for (id, frame) in frames {
        text.clear();
        engine.encode_string(frame, &mut text);
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(text.as_bytes());
        out.put_slice(b"\n\n");
    }
    out.freeze()
}

/// The `close` event: the session is over, with this code.
pub(crate) fn close(closing: Closing) -> Bytes {
    let data = serde_json::json!({ "code": closing.code, "reason": closing.reason });
    Bytes::from(format!("event: close\ndata: {data}\n\n"))
}

/// What the first event of a stream says.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResumeInfo {
    /// The stream carries the events after this id.
    pub(crate) after: u64,
}

/// The first event of a stream: where it resumes from.
pub(crate) fn ready(info: &ResumeInfo) -> Bytes {
    let data = serde_json::to_string(info).expect("plain data serializes");
    Bytes::from(format!("event: ready\ndata: {data}\n\n"))
}

/// A comment line: ignored by every reader, but bytes on an idle stream.
pub(crate) const HEARTBEAT: &[u8] = b": keepalive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_events_with_their_ids_and_base64_data() {
        let text = frames(&[(7, Bytes::from_static(&[0, 1, 2])), (8, Bytes::new())]);
        assert_eq!(&text[..], b"id: 7\ndata: AAEC\n\nid: 8\ndata: \n\n");
    }

    #[test]
    fn the_close_event_names_code_and_reason() {
        let text = close(Closing {
            code: 4403,
            reason: "app-disabled",
        });
        assert_eq!(
            &text[..],
            b"event: close\ndata: {\"code\":4403,\"reason\":\"app-disabled\"}\n\n"
        );
    }
}
