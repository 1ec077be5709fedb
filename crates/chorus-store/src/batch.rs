//! [`WriteBatch`]: one group commit worth of writes, as the caller builds it and each
//! store applies it.
//!
//! The writes stay a plain list of [`BatchOp`]s in the order they were added; the
//! stores read that list directly, so it is crate-visible.

use crate::{DocId, DocMeta, HistoryPoint, StoreError};

/// One write inside a [`WriteBatch`], in the order it was added.
#[derive(Clone, Debug)]
pub(crate) enum BatchOp {
    Append {
        id: DocId,
        seq: u64,
        update: Vec<u8>,
    },
    Meta {
        id: DocId,
        meta: DocMeta,
    },
    History {
        id: DocId,
        point: HistoryPoint,
    },
    /// Every record of the document: snapshot, log, metadata, history.
    Delete {
        id: DocId,
    },
}

impl BatchOp {
    /// The document the write is for.
    pub(crate) fn id(&self) -> &DocId {
        match self {
            BatchOp::Append { id, .. }
            | BatchOp::Meta { id, .. }
            | BatchOp::History { id, .. }
            | BatchOp::Delete { id } => id,
        }
    }
}

/// One group-commit worth of writes across many documents.
///
/// Writes apply in the order they were added; a later [`put_meta`](Self::put_meta) for
/// the same document replaces an earlier one.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// Append one update to a document's log. Seqs per document are assigned by the
    /// caller: strictly increasing, starting at 1 (0 means "no snapshot" and would be
    /// skipped on load).
    pub fn append(&mut self, id: &DocId, seq: u64, update: &[u8]) {
        debug_assert!(seq > 0, "log seqs start at 1");
        self.ops.push(BatchOp::Append {
            id: id.clone(),
            seq,
            update: update.to_vec(),
        });
    }

    /// Replace a document's metadata.
    pub fn put_meta(&mut self, id: &DocId, meta: &DocMeta) {
        self.ops.push(BatchOp::Meta {
            id: id.clone(),
            meta: meta.clone(),
        });
    }

    /// Record a history point (its `size_bytes` is set from the state).
    pub fn put_history(&mut self, id: &DocId, point: &HistoryPoint) {
        let mut point = point.clone();
        point.entry.size_bytes = point.state.len() as u64;
        self.ops.push(BatchOp::History {
            id: id.clone(),
            point,
        });
    }

    /// Remove every record of a document (snapshot, log, metadata, history), as if it
    /// had never been stored; writes added after this one start it again. Its webhook
    /// events are not the store's to judge: the outbox keeps them.
    pub fn delete_doc(&mut self, id: &DocId) {
        self.ops.push(BatchOp::Delete { id: id.clone() });
    }

    /// True if the batch holds no writes at all.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of writes (log appends plus metadata puts).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Number of log records (appends only), e.g. for a "records written" metric.
    pub fn record_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, BatchOp::Append { .. }))
            .count()
    }

    /// Total bytes of the appended updates.
    pub fn record_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                BatchOp::Append { update, .. } => update.len(),
                BatchOp::Meta { .. } | BatchOp::History { .. } | BatchOp::Delete { .. } => 0,
            })
            .sum()
    }

    pub(crate) fn check_ids(&self) -> Result<(), StoreError> {
        self.ops.iter().try_for_each(|op| op.id().check())
    }
}
