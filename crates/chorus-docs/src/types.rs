//! The words every other module of this crate uses: which document
//! ([`DocKey`]), why a connection is closed ([`Disconnect`]) and where a document
//! is served ([`Route`]). The lowest layer: it imports nothing of this crate.

use chorus_core::RoomError;
use std::sync::Arc;

/// Identifies a document: the app it belongs to and its content id (the store's
/// `DocId` is the same pair, as the store names it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocKey {
    /// The app id (`iss` of its tokens).
    pub app: Arc<str>,
    /// The content id, unique within the app.
    pub doc: Arc<str>,
}

impl DocKey {
    /// The key of document `doc` of `app`.
    pub fn new(app: impl Into<Arc<str>>, doc: impl Into<Arc<str>>) -> DocKey {
        DocKey {
            app: app.into(),
            doc: doc.into(),
        }
    }
}

/// Why the document layer closes a connection. Serializable: in cluster mode the
/// owner tells the connection's node why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Disconnect {
    /// The room refused what the connection sent.
    #[error("room: {0}")]
    Room(#[from] RoomError),
    /// Its outbound queue filled up: it could not keep up with the document.
    #[error("slow consumer")]
    SlowConsumer,
    /// The document could not be kept in memory safely (yrs panicked).
    #[error("document reset")]
    DocumentReset,
    /// The document could not be loaded from the store.
    #[error("document unavailable")]
    DocumentUnavailable,
    /// The host ended this session.
    #[error("session ended by the host")]
    SessionEnded,
    /// Cluster mode: the document's owner refused the session's token when it
    /// verified it again (it expired meanwhile, or the nodes' apps differ).
    #[error("the document's owner refused the token")]
    TokenRefused,
    /// The app was disabled.
    #[error("app disabled")]
    AppDisabled,
    /// The document has its app's `max_editors` and the app refuses more.
    #[error("the document has as many editors as it takes")]
    TooManyEditors,
    /// No input from the session for the app's `idle_close_secs`.
    #[error("idle for too long")]
    Idle,
    /// The session reached the app's `max_session_secs`.
    #[error("the session reached its lifetime")]
    Expired,
    /// The draft was evicted: the host must write it again before it is opened.
    #[error("document evicted")]
    Evicted,
    /// The host deleted the draft: reconnecting would only start an empty one.
    #[error("document deleted by the host")]
    Deleted,
    /// The document stopped (server shutdown, or it unloaded under the connection).
    #[error("document stopped")]
    Stopped,
    /// Cluster mode: the document's owner changed, or messages between this node
    /// and the owner were lost; reconnecting resyncs with the current owner.
    #[error("document moved to another node")]
    Moved,
}

/// Where a document is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// By this node (it owns the document, or this is a single node).
    Local,
    /// By the named node.
    Remote(Arc<str>),
}
