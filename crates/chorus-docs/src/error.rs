//! Why the document layer could not do what was asked, as types: the server maps
//! [`DocError`] and [`HostError`] once to an HTTP status and error `code`, and logs
//! the detail; no message string crosses a layer.

use chorus_store::{StoreCondition, StoreError};
use std::sync::Arc;

/// Why a document could not be read, loaded or written.
///
/// `Clone` because one failed group commit answers every job in it: the store's
/// error is shared, not copied into strings.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DocError {
    /// The store refused a read or a write (its I/O kind is kept inside).
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The stored records do not make a document.
    #[error("the stored document cannot be rebuilt: {0}")]
    Load(#[from] chorus_core::LoadError),
    /// The blocking task that read or built the document panicked.
    #[error("loading the document panicked")]
    LoadPanicked,
    /// The group-commit writer thread is gone (the process is stopping).
    #[error("the store writer has stopped")]
    WriterStopped,
    /// yrs panicked while applying a change; the in-memory document was dropped.
    #[error("applying the change panicked; the document was reset")]
    Panicked,
    /// The document unloaded (or the server stopped) before the change was stored.
    #[error("the document was unloaded before the change was stored")]
    Unloaded,
    /// The draft was deleted before the change was stored.
    #[error("the draft was deleted before the change was stored")]
    Deleted,
    /// The document's actor stopped before it answered.
    #[error("the document stopped before it answered")]
    ActorGone,
    /// A change computed off the actor found the draft moved when it was to be
    /// applied (see `chorus_core::external_edit`); the caller computes it again.
    #[error("the draft moved while the change was prepared")]
    Moved,
    /// The outbox refused the job's webhook events (so they are not stored).
    #[error("webhook events could not be queued: {0}")]
    EventsNotQueued(Arc<StoreError>),
    /// Cluster mode: another node owns the document (this node only forwards it).
    #[error("the document is served by node {0}")]
    Elsewhere(std::sync::Arc<str>),
    /// Cluster mode: the node holding the document's lease is down and its lease has
    /// not lapsed yet; try again shortly.
    #[error("the document's owner is down and its lease has not lapsed yet")]
    OwnerDown,
    /// Cluster mode: this node carries as many host calls to other nodes as it
    /// may at once; try again shortly.
    #[error("too many host calls are being carried to other nodes")]
    Busy,
}

impl DocError {
    /// The store refused a write because a document's lease moved to another node.
    pub fn is_fenced(&self) -> bool {
        matches!(self, DocError::Store(e) if matches!(**e, StoreError::Fenced { .. }))
    }

    /// Whether the store fenced this document's write (its lease moved on).
    pub(crate) fn fences(&self, id: &chorus_store::DocId) -> bool {
        matches!(self, DocError::Store(e) if matches!(&**e, StoreError::Fenced { lost } if lost.contains(id)))
    }

    /// What kind of store trouble this is (a full disk, a read-only store, …), for
    /// readiness, the host API's error code and the log; `Unavailable` for failures
    /// that are not the store's.
    pub fn store_condition(&self) -> StoreCondition {
        match self {
            DocError::Store(e) | DocError::EventsNotQueued(e) => e.condition(),
            DocError::Load(_) => StoreCondition::Corrupt,
            _ => StoreCondition::Unavailable,
        }
    }
}

impl From<StoreError> for DocError {
    fn from(e: StoreError) -> Self {
        DocError::Store(Arc::new(e))
    }
}

/// Why a host operation on a document (external change, restore, publish) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// The document was never stored or edited.
    #[error("no such document")]
    NotFound,
    /// The draft moved on since the host read it (publish with a stale `If-Match`).
    #[error("the draft changed since it was read (current ETag {current})")]
    Conflict {
        /// The draft's ETag now.
        current: String,
    },
    /// The change holds content the app's whitelist refuses (reject mode).
    #[error("the change holds content outside the whitelist")]
    ContentRejected,
    /// The base does not decode as a document.
    #[error("the base of the change is not a valid document")]
    BadBase,
    /// The draft was evicted (its content went to the host): write it again first.
    #[error("the draft was evicted")]
    Evicted {
        /// When (ms since the epoch).
        at_ms: u64,
    },
    /// The document could not be loaded or the change could not be stored.
    #[error(transparent)]
    Unavailable(#[from] DocError),
}

impl From<chorus_core::ExternalError> for HostError {
    fn from(e: chorus_core::ExternalError) -> Self {
        match e {
            chorus_core::ExternalError::BadBase => HostError::BadBase,
            chorus_core::ExternalError::ContentRejected => HostError::ContentRejected,
            chorus_core::ExternalError::Panicked => HostError::Unavailable(DocError::Panicked),
            chorus_core::ExternalError::Moved => HostError::Unavailable(DocError::Moved),
        }
    }
}
