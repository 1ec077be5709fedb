//! The plain values of the [`Store`](crate::Store) contract: [`DocId`], a document's
//! [`DocMeta`], its history ([`HistoryEntry`], [`HistoryPoint`]), a loaded
//! [`StoredDoc`] and an [`OutboxEvent`].
//!
//! Data only, with no behaviour beyond construction and display, so every other
//! module (the error type, the batch, the three stores) can name them without
//! needing one another. The check that refuses an id containing `'\0'` lives next to
//! [`StoreError::InvalidId`](crate::StoreError::InvalidId), in `error`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// (app id, content id). Ids never contain `'\0'` (the server validates them; the
/// store refuses them with [`StoreError::InvalidId`](crate::StoreError::InvalidId)).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId {
    /// The application (tenant) the document belongs to.
    pub app: String,
    /// The document (content) id within the app.
    pub doc: String,
}

impl DocId {
    /// Build an id from an app id and a document id.
    pub fn new(app: impl Into<String>, doc: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            doc: doc.into(),
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.doc)
    }
}

/// Metadata kept next to each document (stored as JSON; unknown fields are ignored
/// and missing ones default, so the format can grow).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DocMeta {
    /// When the document was first stored (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When the document was last written (ms since the Unix epoch).
    pub updated_at_ms: u64,
    /// User ids of everyone who contributed an update.
    pub contributors: BTreeSet<String>,
    /// Snapshot bytes plus log bytes written since the snapshot.
    pub size_bytes: u64,
    /// Updates ever appended.
    pub update_count: u64,
    /// Last saved lib0-v1 state vector (a JSON byte array on disk).
    pub state_vector: Vec<u8>,
    /// Log sequence number covered by the current snapshot (0 = no snapshot).
    pub snapshot_seq: u64,
    /// When the draft was last published (ms since the epoch; 0 = never).
    pub published_at_ms: u64,
    /// The ETag the draft had when it was last published.
    pub published_etag: String,
    /// The ETag the draft had when the host last saw it as it was: after its last
    /// publish or external change (empty: never). `closed` compares the draft with it.
    pub host_etag: String,
    /// When a session last opened the draft (ms since the epoch; kept to the hour).
    pub opened_at_ms: u64,
    /// The draft was evicted (ms since the epoch; 0 = it was not): its content is
    /// gone, the host was sent it, and joins are refused until the host writes it
    /// again. The record stays as this marker.
    pub evicted_at_ms: u64,
    /// Number of the last history point written (points count from 1).
    pub last_history_point: u64,
    /// When the last history point was taken (ms since the epoch).
    pub last_history_at_ms: u64,
    /// Fingerprint of the content policy every stored byte was checked against
    /// (empty = unknown). Opaque here; the server compares it with its own.
    pub content_policy: String,
    /// What the host decided about users of this document that outlives their
    /// connections (a downgrade, an ended session), until their tokens expire.
    pub revoked: Vec<Revocation>,
}

/// A host's downgrade or end of a user's session on one document: until `until`,
/// that user joins it view-only (`ended` false) or not at all (`ended` true),
/// whichever token they come back with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Revocation {
    /// The user id (the token's `sub`).
    pub user: String,
    /// The session was ended (not only downgraded).
    pub ended: bool,
    /// Until when (seconds since the epoch): the expiry of the token the session
    /// had.
    pub until: u64,
}

/// What a history point is, without its content (the history listing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryEntry {
    /// Number of the point within its document (1, 2, …; never reused).
    pub point: u64,
    /// When it was taken (ms since the epoch).
    pub at_ms: u64,
    /// Why it was taken: `publish`, `auto` (every few minutes of editing), `restore` or
    /// `discard` (unpublished changes discarded).
    pub kind: String,
    /// For a `restore` point: the point whose content was brought back (0 otherwise).
    pub restored_from: u64,
    /// The draft's ETag at that moment.
    pub etag: String,
    /// The title at that moment.
    pub title: String,
    /// Size of the stored state in bytes.
    pub size_bytes: u64,
}

/// A history point with its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPoint {
    /// What the point is.
    pub entry: HistoryEntry,
    /// The whole document at that moment, as one lib0-v1 update.
    pub state: Vec<u8>,
}

/// A document as loaded: snapshot plus the log records written after it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDoc {
    /// lib0-v1 update of the whole document at snapshot time.
    pub snapshot: Option<Vec<u8>>,
    /// Last log seq included in the snapshot (0 if there is none).
    pub snapshot_seq: u64,
    /// Log records with `seq > snapshot_seq`, ascending seq.
    pub updates: Vec<(u64, Vec<u8>)>,
    /// The document's metadata; `snapshot_seq` always agrees with the field above.
    pub meta: DocMeta,
}

/// One event of the webhook outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Monotonically increasing id (not contiguous); pass it to
    /// [`Store::outbox_ack`](crate::Store::outbox_ack).
    pub id: u64,
    /// The app the event is for.
    pub app: String,
    /// The event body, opaque to the store.
    pub payload: Vec<u8>,
}

/// A webhook event whose delivery was given up, kept until the host acknowledges it
/// (see [`Store::outbox_dead_letter`](crate::Store::outbox_dead_letter)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its outbox id (the event keeps its id).
    pub id: u64,
    /// The app the event is for.
    pub app: String,
    /// The event body, opaque to the store.
    pub payload: Vec<u8>,
    /// Why delivery was given up.
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}
