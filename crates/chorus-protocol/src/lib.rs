//! # chorus-protocol — the websocket wire format, and nothing else
//!
//! Owns the byte layout of every websocket message Chorus speaks: the standard
//! y-protocols framing (sync step 1 / step 2 / update, awareness, auth, query
//! awareness), the Chorus extension messages that only opted-in clients see, and
//! the Hocuspocus provider's framing around them ([`hocuspocus`]).
//! The authoritative, language-neutral description is `proto/PROTOCOL.md`.
//!
//! Decoding is strict: every varint, every length prefix and the end of the frame
//! are checked, and anything that does not parse as exactly one message is a
//! [`DecodeError`] (the server answers it with close code 4400). The CRDT payloads
//! (state vectors, updates) are returned as [`Bytes`] slices of the incoming frame,
//! without copying and without interpreting them: that is the core's job.
//!
//! This crate must not touch IO, yrs, authentication or documents.
//!
//! [`Bytes`]: bytes::Bytes

mod awareness;
mod chorus;
mod error;
pub mod hocuspocus;
mod message;
mod varint;

pub use awareness::{decode_awareness, encode_awareness, AwarenessEntry};
pub use chorus::{ChorusMessage, CHORUS_MESSAGE_TYPE};
pub use error::DecodeError;
pub use message::{
    encode_sync, frame_kind, Message, SyncMessage, MSG_AUTH, MSG_AWARENESS, MSG_QUERY_AWARENESS,
    MSG_SYNC, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
};
pub use varint::{Reader, Writer};
