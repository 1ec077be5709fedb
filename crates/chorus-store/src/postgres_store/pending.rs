//! What a flush holds: the writes queued since the last one ([`Pending`]), and how
//! applying them fails before the failure is given its context ([`FlushError`]).
//!
//! Plain data shared by the store (which queues), the fence check and the group
//! commit (which apply).

use crate::{DocId, DocMeta, StoreError, WriteBatch};

/// What a flush will apply, in the order the calls were made.
pub(super) enum Pending {
    Batch(WriteBatch),
    Compact {
        id: DocId,
        snapshot: Vec<u8>,
        upto_seq: u64,
        meta: Box<DocMeta>,
    },
    Outbox {
        id: i64,
        value: Vec<u8>,
    },
}

/// A flush's failure before it is given its context.
pub(super) enum FlushError {
    Sql(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for FlushError {
    fn from(e: postgres::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<StoreError> for FlushError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}
