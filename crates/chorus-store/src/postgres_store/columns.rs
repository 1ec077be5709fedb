//! Conversions between the store's values and PostgreSQL columns: sequence numbers
//! and tokens (`u64` here, `bigint` there), stored history entries, and the
//! [`StoreError::Corrupt`] a bad column turns into.

use crate::codec;
use crate::{DocId, HistoryEntry, StoreError};

pub(super) fn seq_param(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| {
        StoreError::Internal(format!("sequence number {seq} exceeds PostgreSQL's bigint"))
    })
}

pub(super) fn seq_column(id: &DocId, what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(id, format!("negative {what} {value}")))
}

pub(super) fn corrupt(id: &DocId, detail: String) -> StoreError {
    StoreError::Corrupt {
        id: Some(id.clone()),
        detail,
    }
}

pub(super) fn token_column(value: i64) -> u64 {
    // Tokens come from a sequence starting at 1.
    u64::try_from(value).unwrap_or_default()
}

pub(super) fn decode_entry(
    id: &DocId,
    point: u64,
    value: &[u8],
) -> Result<HistoryEntry, StoreError> {
    let json =
        codec::unframe(value).map_err(|d| corrupt(id, format!("history point {point}: {d}")))?;
    serde_json::from_slice(json)
        .map_err(|e| corrupt(id, format!("history point {point}: bad entry JSON: {e}")))
}
