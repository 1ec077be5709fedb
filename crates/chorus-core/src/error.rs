//! Errors a room reports about one connection. The server maps each to a close code
//! in one place (`CloseReason::code`, in chorus-server's `close` module).

/// Something a connection sent that the room refuses. The connection is closed;
/// the room and every other connection carry on.
///
/// Serializable: in cluster mode the owner tells the connection's node why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(into = "RoomErrorRepr")]
pub enum RoomError {
    /// The payload is not a valid lib0-v1 state vector, update or awareness body.
    #[error("malformed {what}")]
    Malformed {
        /// Which payload failed to decode.
        what: &'static str,
    },
    /// The update references content the server never received (a dependency gap).
    #[error("update depends on content the server does not have")]
    MissingDependencies,
    /// A view-mode session kept writing after it was warned.
    #[error("view-only session tried to write")]
    ViewOnlyWrite,
    /// An awareness state exceeds the configured size.
    #[error("awareness state of {size} bytes exceeds the limit of {limit}")]
    AwarenessTooLarge {
        /// Size of the offending state.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// An awareness state is not a JSON object (or `null`).
    #[error("awareness state is not a JSON object")]
    AwarenessNotObject,
    /// The document reached its size quota and is read-only for everyone.
    #[error("document reached its size limit")]
    DocumentTooLarge,
    /// In reject mode: the update carried content outside the whitelist and was refused.
    #[error("update refused: content outside the whitelist")]
    ContentRejected,
    /// The connection is not a member of the room (already left).
    #[error("connection is not in this room")]
    UnknownConnection,
}

/// [`RoomError`] on the wire: the same variants, the payload name owned.
#[derive(serde::Serialize, serde::Deserialize)]
#[allow(missing_docs)]
enum RoomErrorRepr {
    Malformed { what: String },
    MissingDependencies,
    ViewOnlyWrite,
    AwarenessTooLarge { size: usize, limit: usize },
    AwarenessNotObject,
    DocumentTooLarge,
    ContentRejected,
    UnknownConnection,
}

impl From<RoomError> for RoomErrorRepr {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::Malformed { what } => Self::Malformed { what: what.into() },
            RoomError::MissingDependencies => Self::MissingDependencies,
            RoomError::ViewOnlyWrite => Self::ViewOnlyWrite,
            RoomError::AwarenessTooLarge { size, limit } => Self::AwarenessTooLarge { size, limit },
            RoomError::AwarenessNotObject => Self::AwarenessNotObject,
            RoomError::DocumentTooLarge => Self::DocumentTooLarge,
            RoomError::ContentRejected => Self::ContentRejected,
            RoomError::UnknownConnection => Self::UnknownConnection,
        }
    }
}

// By hand: serde's derive would tie the deserializer's lifetime to the `&'static
// str` of `Malformed` even through `from`.
impl<'de> serde::Deserialize<'de> for RoomError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RoomErrorRepr::deserialize(d).map(Self::from)
    }
}

impl From<RoomErrorRepr> for RoomError {
    fn from(e: RoomErrorRepr) -> Self {
        match e {
            // The names the room uses, read back as the same statics.
            RoomErrorRepr::Malformed { what } => Self::Malformed {
                what: match what.as_str() {
                    "state vector" => "state vector",
                    "update" => "update",
                    "update (a kind Yjs clients cannot read)" => {
                        "update (a kind Yjs clients cannot read)"
                    }
                    "update (content Yjs and yrs read differently)" => {
                        "update (content Yjs and yrs read differently)"
                    }
                    "awareness" => "awareness",
                    _ => "payload",
                },
            },
            RoomErrorRepr::MissingDependencies => Self::MissingDependencies,
            RoomErrorRepr::ViewOnlyWrite => Self::ViewOnlyWrite,
            RoomErrorRepr::AwarenessTooLarge { size, limit } => {
                Self::AwarenessTooLarge { size, limit }
            }
            RoomErrorRepr::AwarenessNotObject => Self::AwarenessNotObject,
            RoomErrorRepr::DocumentTooLarge => Self::DocumentTooLarge,
            RoomErrorRepr::ContentRejected => Self::ContentRejected,
            RoomErrorRepr::UnknownConnection => Self::UnknownConnection,
        }
    }
}

/// Why a stored document could not be turned into a room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Record `n` (0 = the snapshot, if any) is not a valid update.
    #[error("stored record {0} does not decode")]
    Undecodable(usize),
    /// The stored records leave a dependency gap.
    #[error("stored records depend on content that is not stored")]
    MissingDependencies,
    /// yrs panicked while applying the stored records.
    #[error("applying the stored records panicked")]
    Panicked,
}

/// Why a change the host made (an external change or a restore) was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalError {
    /// The base the change was computed against does not decode as a document.
    #[error("the base document does not decode")]
    BadBase,
    /// In reject mode: the change still held content outside the whitelist.
    #[error("the change holds content outside the whitelist")]
    ContentRejected,
    /// yrs panicked while applying the change; the room must be dropped.
    #[error("applying the change panicked")]
    Panicked,
    /// The change replaced paragraphs assuming nobody had typed since its base, and
    /// someone had: compute it again from the document as it is now.
    #[error("the document moved while the change was computed")]
    Moved,
}
