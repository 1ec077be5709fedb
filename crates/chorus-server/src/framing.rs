//! How a websocket's frames carry the document's messages: as they are
//! (y-websocket), or behind the document's name (`@hocuspocus/provider`), where
//! each "saved up to n" acknowledgement becomes the `SyncStatus` messages the
//! provider counts its unsynced changes with, and an edit refused because the
//! session is view-only becomes `SyncStatus(false)`. Pure: no socket here.

use bytes::Bytes;
use chorus_protocol::hocuspocus::{self, Frame};
use chorus_protocol::{ChorusMessage, DecodeError, Message, CHORUS_MESSAGE_TYPE};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How the frames of one connection are framed.
pub(crate) enum Framing {
    /// y-websocket: y-protocols messages as they are.
    Plain,
    /// A Hocuspocus provider: every message behind its document's name.
    Hocuspocus(Box<HocuspocusFraming>),
}

/// The state of a Hocuspocus connection's framing.
pub(crate) struct HocuspocusFraming {
    name: String,
    /// y-protocols messages received before the join.
    pending: Vec<Bytes>,
    /// The outgoing side, shared with the document's sink when the document
    /// writes into the socket itself.
    out: Arc<Mutex<HocuspocusOut>>,
}

/// What a Hocuspocus connection's outgoing frames need: the name they go behind,
/// and the acknowledgements turned into `SyncStatus` so far.
pub(crate) struct HocuspocusOut {
    name: String,
    /// Update messages acknowledged with a `SyncStatus` so far.
    acknowledged: u64,
}

impl HocuspocusFraming {
    /// The framing of a provider that opened document `name`, with what it sent
    /// before its token was checked.
    pub(crate) fn new(name: String, pending: Vec<Bytes>) -> HocuspocusFraming {
        HocuspocusFraming {
            out: Arc::new(Mutex::new(HocuspocusOut {
                name: name.clone(),
                acknowledged: 0,
            })),
            name,
            pending,
        }
    }
}

/// The outgoing side of a Hocuspocus framing, locked (a poisoned lock is used as
/// is: its state is a counter).
pub(crate) fn lock_out(out: &Mutex<HocuspocusOut>) -> MutexGuard<'_, HocuspocusOut> {
    out.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What to do with one incoming frame.
pub(crate) enum Incoming {
    /// A y-protocols message for the document.
    Message(Bytes),
    /// Nothing for the document (a ping, a stateless message).
    Skip,
    /// The provider left the document.
    Leave,
    /// Answer this on the socket, then go on.
    Answer(Bytes),
    /// Not a frame of this framing.
    Malformed(DecodeError),
}

impl Framing {
    /// Read one incoming frame.
    pub(crate) fn incoming(&mut self, bytes: Bytes) -> Incoming {
        let Framing::Hocuspocus(hp) = self else {
            return Incoming::Message(bytes);
        };
        match Frame::decode(&bytes) {
            Err(e) => Incoming::Malformed(e),
            Ok(Frame::Protocol { name, message }) if name == hp.name => Incoming::Message(message),
            Ok(Frame::Close { name }) if name == hp.name => Incoming::Leave,
            Ok(Frame::Auth { name, .. }) if name != hp.name => Incoming::Answer(
                hocuspocus::permission_denied(&name, "one-document-per-connection"),
            ),
            // A token refreshed for this document (the session it opened stays), a
            // stateless message, anything for another name.
            Ok(_) => Incoming::Skip,
        }
    }

    /// The outgoing side of a Hocuspocus framing (none for plain frames).
    pub(crate) fn hocuspocus_out(&self) -> Option<&Arc<Mutex<HocuspocusOut>>> {
        match self {
            Framing::Plain => None,
            Framing::Hocuspocus(hp) => Some(&hp.out),
        }
    }

    /// What arrived before the join, to deliver first.
    pub(crate) fn take_pending(&mut self) -> Vec<Bytes> {
        match self {
            Framing::Plain => Vec::new(),
            Framing::Hocuspocus(hp) => std::mem::take(&mut hp.pending),
        }
    }
}

impl HocuspocusOut {
    /// The frames to write for the y-protocols (or Chorus) frame `frame`.
    pub(crate) fn outgoing(&mut self, frame: &Bytes) -> Vec<Bytes> {
        if frame.first() != Some(&CHORUS_MESSAGE_TYPE) {
            return vec![hocuspocus::wrap(&self.name, frame)];
        }
        // Of the Chorus messages, the provider understands acknowledgements, and
        // takes host actions as stateless messages; the rest is dropped.
        match Message::decode(frame) {
            Ok(Message::Chorus(ChorusMessage::Saved { n })) if n > self.acknowledged => {
                let more = n - self.acknowledged;
                self.acknowledged = n;
                (0..more)
                    .map(|_| hocuspocus::sync_status(&self.name, true))
                    .collect()
            }
            // An edit of a view-only (or downgraded) session, not applied: the
            // provider keeps it counted as unsynced, and no later "saved" covers it.
            Ok(Message::Chorus(ChorusMessage::Error { code, .. })) if code == "read-only" => {
                vec![hocuspocus::sync_status(&self.name, false)]
            }
            // Who published or discarded: the provider's `stateless` event carries it
            // to the application as JSON (PROTOCOL.md, "Hocuspocus endpoint").
            Ok(Message::Chorus(ChorusMessage::HostAction {
                action,
                user_id,
                name,
            })) => {
                let payload = serde_json::json!({
                    "chorus": "host-action",
                    "action": action,
                    "userId": user_id,
                    "name": name,
                });
                vec![hocuspocus::stateless(&self.name, &payload.to_string())]
            }
            _ => Vec::new(),
        }
    }
}
