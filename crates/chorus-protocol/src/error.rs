//! [`DecodeError`]: why a frame is not exactly one message. Shared by every decoder
//! of the crate (varints, y-protocols, Chorus extension and Hocuspocus messages).

/// Why a frame could not be decoded. Every variant maps to close code 4400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame held no bytes at all.
    #[error("empty frame")]
    Empty,
    /// A variable-length integer ran past the end of the frame.
    #[error("truncated varint")]
    TruncatedVarint,
    /// A variable-length integer is longer than 53 bits (JavaScript's safe range).
    #[error("varint out of range")]
    VarintOverflow,
    /// A length prefix points past the end of the frame.
    #[error("length prefix exceeds frame")]
    TruncatedPayload,
    /// The outer message type is not one Chorus knows.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// The sync sub-type is not step 1, step 2 or update.
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    /// The Chorus extension message kind is unknown.
    #[error("unknown chorus message kind {0}")]
    UnknownChorusKind(u64),
    /// Bytes left over after one complete message.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// A string field is not valid UTF-8.
    #[error("invalid utf-8 in string field")]
    InvalidUtf8,
}
