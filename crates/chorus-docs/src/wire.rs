//! What nodes say to each other about documents, as bus payloads (postcard).
//!
//! Frames travel as the bytes a client sent or is sent: the owner decodes what a
//! forwarding node relays exactly as it decodes its own connections' frames.

use crate::types::Disconnect;
use chorus_core::Session;
use serde::{Deserialize, Serialize};

/// One bus payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// Forwarding node → owner: a connection of the sender joins the document.
    Join {
        app: String,
        doc: String,
        /// The connection, numbered by the sender.
        conn: u64,
        session: Session,
    },
    /// Forwarding node → owner: a frame from one of its connections.
    Frame {
        app: String,
        doc: String,
        conn: u64,
        frame: Vec<u8>,
    },
    /// Forwarding node → owner: the connection ended.
    Leave {
        app: String,
        doc: String,
        conn: u64,
    },
    /// Owner → forwarding node: one frame for some of its connections (once per
    /// node, however many of its connections get it: the fan-out tree).
    Deliver {
        app: String,
        doc: String,
        frame: Vec<u8>,
        to: Vec<u64>,
    },
    /// Owner → forwarding node: close one of its connections, for this reason.
    Close {
        app: String,
        doc: String,
        conn: u64,
        reason: Disconnect,
    },
    /// Any node → all: an app was enabled or disabled (a disabled app's sessions
    /// close everywhere).
    AppState {
        app: String,
        enabled: bool,
    },
    /// A host API call for a document another node owns, and its answer; the
    /// bytes are the server's own (this layer only carries them).
    HostRequest {
        id: u64,
        request: Vec<u8>,
    },
    HostResponse {
        id: u64,
        response: Vec<u8>,
    },
}

impl Wire {
    pub(crate) fn encode(&self) -> bytes::Bytes {
        // Serializing strings, integers and byte vectors into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default().into()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Wire> {
        postcard::from_bytes(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_auth::Mode;
    use chorus_core::RoomError;

    #[test]
    fn every_message_reads_back() {
        let session = Session {
            user_id: "alice".into(),
            name: "Alice".into(),
            color: "#3366ff".into(),
            avatar: None,
            mode: Mode::Edit,
            extensions: true,
        };
        for wire in [
            Wire::Join {
                app: "wiki".into(),
                doc: "d".into(),
                conn: 7,
                session,
            },
            Wire::Frame {
                app: "wiki".into(),
                doc: "d".into(),
                conn: 7,
                frame: vec![0, 2, 1, 0],
            },
            Wire::Deliver {
                app: "wiki".into(),
                doc: "d".into(),
                frame: vec![1; 300],
                to: vec![1, 2, u64::MAX],
            },
            Wire::Close {
                app: "wiki".into(),
                doc: "d".into(),
                conn: 7,
                reason: Disconnect::Room(RoomError::Malformed { what: "update" }),
            },
            Wire::AppState {
                app: "wiki".into(),
                enabled: false,
            },
            Wire::HostResponse {
                id: 3,
                response: b"HTTP".to_vec(),
            },
        ] {
            assert_eq!(Wire::decode(&wire.encode()), Some(wire));
        }
        assert_eq!(Wire::decode(b"\xff\xff"), None);
    }
}
