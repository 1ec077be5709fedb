//! The y-protocols awareness update body: `varuint n`, then n × (`varuint clientID`,
//! `varuint clock`, `varstring stateJSON`). A state of `null` means "this client left".

use crate::{DecodeError, Reader, Writer};
use bytes::Bytes;

/// One client's awareness entry as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessEntry {
    /// The Yjs client id the state belongs to.
    pub client_id: u64,
    /// Lamport-style clock; a higher clock replaces a lower one.
    pub clock: u64,
    /// The JSON text of the state; `"null"` removes the client.
    pub state: String,
}

/// Decode an awareness update body. `max_entries` bounds the work a hostile frame can cause.
pub fn decode_awareness(
    body: &Bytes,
    max_entries: usize,
) -> Result<Vec<AwarenessEntry>, DecodeError> {
    let mut r = Reader::new(body);
    let n = r.read_var_u64()?;
    if n as usize > max_entries {
        return Err(DecodeError::TruncatedPayload);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let client_id = r.read_var_u64()?;
        let clock = r.read_var_u64()?;
        let state = r.read_var_string()?;
        out.push(AwarenessEntry {
            client_id,
            clock,
            state,
        });
    }
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(out)
}

/// Encode an awareness update body (wrap it with [`crate::Message::Awareness`] to send).
pub fn encode_awareness<'a>(entries: impl IntoIterator<Item = (u64, u64, &'a str)>) -> Bytes {
    let entries: Vec<_> = entries.into_iter().collect();
    let size: usize = entries.iter().map(|e| e.2.len() + 16).sum();
    let mut w = Writer::with_capacity(size + 4);
    w.write_var_u64(entries.len() as u64);
    for (client_id, clock, state) in entries {
        w.write_var_u64(client_id);
        w.write_var_u64(clock);
        w.write_var_string(state);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let body = encode_awareness([(7, 3, r#"{"a":1}"#), (9, 1, "null")]);
        let got = decode_awareness(&body, 16).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].client_id, 7);
        assert_eq!(got[0].clock, 3);
        assert_eq!(got[1].state, "null");
    }

    #[test]
    fn truncated_entry_is_an_error() {
        let body = encode_awareness([(7, 3, r#"{"a":1}"#)]);
        let cut = body.slice(..body.len() - 2);
        assert!(decode_awareness(&cut, 16).is_err());
    }

    #[test]
    fn too_many_entries_is_an_error() {
        let body = encode_awareness([(1, 1, "null"), (2, 1, "null")]);
        assert!(decode_awareness(&body, 1).is_err());
    }
}
