//! Key encoding and checksummed value framing for the sled layout (see the crate docs).
//!
//! Decoders return a plain `String` detail; callers wrap it in
//! [`StoreError::Corrupt`](crate::StoreError::Corrupt) with the document they were reading.

use crate::{DocId, DocMeta, HistoryEntry, HistoryPoint};

/// Bytes of the crc32 prefix of every stored value.
const CRC_LEN: usize = 4;

/// `app \0 doc`: key of the `snapshots` and `meta` trees.
pub(crate) fn doc_key(id: &DocId) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.app.len() + 1 + id.doc.len());
    key.extend_from_slice(id.app.as_bytes());
    key.push(0);
    key.extend_from_slice(id.doc.as_bytes());
    key
}

/// `app \0`: prefix of every `meta` key of one app.
pub(crate) fn app_prefix(app: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(app.len() + 1);
    key.extend_from_slice(app.as_bytes());
    key.push(0);
    key
}

/// `app \0 doc \0`: prefix of every `log` key of one document.
pub(crate) fn log_prefix(id: &DocId) -> Vec<u8> {
    let mut key = doc_key(id);
    key.push(0);
    key
}

/// `app \0 doc \0 seq(BE)`: key of one log record.
pub(crate) fn log_key(id: &DocId, seq: u64) -> Vec<u8> {
    let mut key = log_prefix(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The seq of a log key that starts with `prefix`.
pub(crate) fn log_key_seq(prefix: &[u8], key: &[u8]) -> Result<u64, String> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| format!("malformed log key of {} bytes", key.len()))
}

/// `[crc32(payload) LE][payload]` where payload is the concatenation of `parts`.
pub(crate) fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut hasher = crc32fast::Hasher::new();
    let mut out = Vec::with_capacity(CRC_LEN + len);
    out.extend_from_slice(&[0; CRC_LEN]);
    for part in parts {
        hasher.update(part);
        out.extend_from_slice(part);
    }
    out[..CRC_LEN].copy_from_slice(&hasher.finalize().to_le_bytes());
    out
}

/// The payload of a framed value, after checking its crc.
pub(crate) fn unframe(value: &[u8]) -> Result<&[u8], String> {
    let Some((crc, payload)) = value.split_first_chunk::<CRC_LEN>() else {
        return Err(format!("truncated value of {} bytes", value.len()));
    };
    let expected = u32::from_le_bytes(*crc);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(format!(
            "checksum mismatch (stored {expected:08x}, computed {actual:08x}, {} bytes)",
            payload.len()
        ));
    }
    Ok(payload)
}

/// Framed snapshot value: `upto_seq` (BE) then the snapshot bytes.
pub(crate) fn encode_snapshot(upto_seq: u64, snapshot: &[u8]) -> Vec<u8> {
    frame(&[&upto_seq.to_be_bytes(), snapshot])
}

/// `(upto_seq, snapshot bytes)` of a framed snapshot value.
pub(crate) fn decode_snapshot(value: &[u8]) -> Result<(u64, &[u8]), String> {
    let payload = unframe(value)?;
    let (seq, snapshot) = payload
        .split_first_chunk::<8>()
        .ok_or_else(|| format!("snapshot record of {} bytes has no seq", payload.len()))?;
    Ok((u64::from_be_bytes(*seq), snapshot))
}

/// Framed metadata value (JSON).
pub(crate) fn encode_meta(meta: &DocMeta) -> Vec<u8> {
    // Serialising a struct of integers, strings and byte vectors into memory cannot
    // fail; an empty object would still decode to the defaults.
    let json = serde_json::to_vec(meta).unwrap_or_else(|_| b"{}".to_vec());
    frame(&[&json])
}

/// Metadata of a framed JSON value.
pub(crate) fn decode_meta(value: &[u8]) -> Result<DocMeta, String> {
    let payload = unframe(value)?;
    serde_json::from_slice(payload).map_err(|e| format!("bad metadata JSON: {e}"))
}

/// Framed outbox value: `app` length (u32 BE), `app`, payload.
pub(crate) fn encode_outbox(app: &str, payload: &[u8]) -> Vec<u8> {
    // Apps are short ids; a length beyond u32 cannot come from a validated id.
    let len = u32::try_from(app.len()).unwrap_or(u32::MAX);
    frame(&[&len.to_be_bytes(), app.as_bytes(), payload])
}

/// `(app, payload)` of a framed outbox value.
pub(crate) fn decode_outbox(value: &[u8]) -> Result<(String, Vec<u8>), String> {
    let body = unframe(value)?;
    let (len, rest) = body
        .split_first_chunk::<4>()
        .ok_or("outbox record has no app length")?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(format!("outbox app length {len} exceeds the record"));
    }
    let (app, payload) = rest.split_at(len);
    let app = String::from_utf8(app.to_vec()).map_err(|_| "outbox app is not UTF-8")?;
    Ok((app, payload.to_vec()))
}

/// Framed dead-letter value: when (u64 BE), reason length (u32 BE), reason, then the
/// outbox value it was.
pub(crate) fn encode_dead_letter(outbox_value: &[u8], reason: &str, at_ms: u64) -> Vec<u8> {
    let len = u32::try_from(reason.len()).unwrap_or(u32::MAX);
    frame(&[
        &at_ms.to_be_bytes(),
        &len.to_be_bytes(),
        reason.as_bytes(),
        outbox_value,
    ])
}

/// `(app, payload, reason, at_ms)` of a framed dead-letter value.
pub(crate) fn decode_dead_letter(value: &[u8]) -> Result<(String, Vec<u8>, String, u64), String> {
    let body = unframe(value)?;
    let (at, rest) = body
        .split_first_chunk::<8>()
        .ok_or("dead letter has no time")?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("dead letter has no reason length")?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(format!(
            "dead letter reason length {len} exceeds the record"
        ));
    }
    let (reason, outbox_value) = rest.split_at(len);
    let reason =
        String::from_utf8(reason.to_vec()).map_err(|_| "dead letter reason is not UTF-8")?;
    let (app, payload) = decode_outbox(outbox_value)?;
    Ok((app, payload, reason, u64::from_be_bytes(*at)))
}

/// Framed history value: header length (u32 BE), header JSON, state bytes.
pub(crate) fn encode_history(point: &HistoryPoint) -> Vec<u8> {
    // A struct of integers and strings always serialises.
    let header = serde_json::to_vec(&point.entry).unwrap_or_else(|_| b"{}".to_vec());
    let len = u32::try_from(header.len()).unwrap_or(u32::MAX);
    frame(&[&len.to_be_bytes(), &header, &point.state])
}

/// The entry of a framed history value, and its state bytes.
pub(crate) fn decode_history(value: &[u8]) -> Result<(HistoryEntry, &[u8]), String> {
    let body = unframe(value)?;
    let (len, rest) = body
        .split_first_chunk::<4>()
        .ok_or("history record has no header length")?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(format!(
            "history header of {len} bytes in a record of {}",
            body.len()
        ));
    }
    let (header, state) = rest.split_at(len);
    let entry = serde_json::from_slice(header).map_err(|e| format!("bad history JSON: {e}"))?;
    Ok((entry, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_detects_every_single_byte_flip() {
        let value = frame(&[b"hello ", b"world"]);
        assert_eq!(unframe(&value).unwrap(), b"hello world");
        for i in 0..value.len() {
            let mut bad = value.clone();
            bad[i] ^= 0x01;
            assert!(unframe(&bad).is_err(), "flip at {i} undetected");
        }
    }

    #[test]
    fn short_values_are_truncated_not_panics() {
        for len in 0..CRC_LEN {
            assert!(unframe(&vec![0; len]).unwrap_err().contains("truncated"));
        }
        // A valid frame of a too-short snapshot payload.
        assert!(decode_snapshot(&frame(&[b"1234567"])).is_err());
        assert!(decode_outbox(&frame(&[b"\0\0"])).is_err());
        assert!(decode_outbox(&frame(&[&[0, 0, 0, 9], b"ab"])).is_err());
    }

    #[test]
    fn log_keys_sort_by_seq_and_parse_back() {
        let id = DocId::new("a", "d");
        let keys: Vec<_> = [1u64, 2, 255, 256, 1 << 40].map(|s| log_key(&id, s)).into();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "big-endian keys sort numerically");
        let prefix = log_prefix(&id);
        assert_eq!(log_key_seq(&prefix, &keys[3]).unwrap(), 256);
        assert!(log_key_seq(&prefix, &keys[3][..keys[3].len() - 1]).is_err());
    }

    #[test]
    fn snapshot_and_outbox_values_round_trip() {
        let v = encode_snapshot(42, b"snap");
        assert_eq!(decode_snapshot(&v).unwrap(), (42, &b"snap"[..]));
        let v = encode_outbox("app", b"{}");
        assert_eq!(decode_outbox(&v).unwrap(), ("app".into(), b"{}".to_vec()));
        let meta = DocMeta {
            state_vector: vec![1, 2, 3],
            update_count: 7,
            ..DocMeta::default()
        };
        assert_eq!(decode_meta(&encode_meta(&meta)).unwrap(), meta);
        assert!(decode_meta(&frame(&[b"not json"])).is_err());
    }

    #[test]
    fn meta_json_tolerates_missing_and_unknown_fields() {
        let meta = decode_meta(&frame(&[br#"{"update_count":3,"published":true}"#])).unwrap();
        assert_eq!(meta.update_count, 3);
        assert_eq!(meta.snapshot_seq, 0);
    }
}
