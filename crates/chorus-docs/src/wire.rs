//! What nodes say to each other about documents, as bus payloads (postcard).
//!
//! Frames travel as the bytes a client sent or is sent: the owner decodes what a
//! forwarding node relays exactly as it decodes its own connections' frames.

use crate::types::Disconnect;
use serde::{Deserialize, Serialize};

/// One bus payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Wire {
    /// Forwarding node → owner: a connection of the sender joins the document.
    /// The owner verifies `token` itself (its rights are the token's, not what the
    /// sender says of them).
    Join {
        app: String,
        doc: String,
        /// The connection, numbered by the sender.
        conn: u64,
        /// The session token the client presented.
        token: String,
        /// Whether the client asked for Chorus extension messages.
        extensions: bool,
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
    /// bytes are the server's own (this layer only carries them). The id is random
    /// (128 bits): an answer is taken only from the node asked, for the id it was
    /// given.
    HostRequest {
        id: u128,
        request: Vec<u8>,
    },
    HostResponse {
        id: u128,
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
    use chorus_core::RoomError;

    #[test]
    fn every_message_reads_back() {
        for wire in [
            Wire::Join {
                app: "wiki".into(),
                doc: "d".into(),
                conn: 7,
                token: "eyJ.x.y".into(),
                extensions: true,
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
                id: u128::MAX - 3,
                response: b"HTTP".to_vec(),
            },
        ] {
            assert_eq!(Wire::decode(&wire.encode()), Some(wire));
        }
        assert_eq!(Wire::decode(b"\xff\xff"), None);
    }
}
