//! What the core benchmarks share: an edit-mode session, a client document
//! configured as the web client's (UTF-16 offsets, a fixed client id), a room
//! holding a base document, the measured loop of a room receiving updates, and the
//! cold load benchmark's typed history.

// Each bench uses part of this module.
#![allow(dead_code)]

use bytes::Bytes;
use chorus_auth::Mode;
use chorus_core::{ConnId, Peer, Room, RoomLimits, Session, Whitelist, WhitelistMode};
use chorus_protocol::{Message, SyncMessage};
use criterion::{BatchSize, Bencher};
use std::sync::Arc;
use yrs::Doc;

/// An edit-mode session for a benchmark member.
pub fn session() -> Arc<Session> {
    Arc::new(Session {
        user_id: "bench".into(),
        name: "bench".into(),
        color: "#000000".into(),
        avatar: None,
        mode: Mode::Edit,
        extensions: false,
        expires_at: u64::MAX,
        credential: Default::default(),
    })
}

/// The document a client edits, producing the updates the room receives.
pub fn client_doc() -> Doc {
    Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(42),
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    })
}

/// A room holding `base`, its whitelist in `mode`, with one member per peer
/// (connection ids from 1; member 1 sends in [`receive_each`]).
pub fn room<P: Peer>(
    base: &[u8],
    mode: WhitelistMode,
    peers: impl IntoIterator<Item = P>,
) -> Room<P> {
    let limits = RoomLimits {
        whitelist: Whitelist::new(Whitelist::default().policy, mode),
        ..RoomLimits::default()
    };
    let mut room = Room::from_stored(limits, Some(base), []).expect("valid base");
    for (id, peer) in (1..).zip(peers) {
        room.join(ConnId(id), session(), peer);
    }
    room
}

/// A client's update as the sync message the room receives.
pub fn update_message(update: &[u8]) -> Message {
    Message::Sync(SyncMessage::Update(Bytes::copy_from_slice(update)))
}

/// Measure member 1 sending every message, in order, to a fresh room from `setup`.
pub fn receive_each<P: Peer>(b: &mut Bencher, setup: impl Fn() -> Room<P>, messages: &[Message]) {
    b.iter_batched(
        || (setup(), messages.to_vec()),
        |(mut room, messages)| {
            for m in messages {
                room.receive(ConnId(1), m).expect("allowed edit");
            }
            room
        },
        BatchSize::LargeInput,
    )
}

/// Single-character inserts in the cold load benchmark's history.
pub const HISTORY: u32 = 100_000;

/// The cold load benchmark's document: [`HISTORY`] one-character inserts into the
/// title, jumping every 64 characters; with its title, to type more.
pub fn typed_history() -> (Doc, yrs::TextRef) {
    use yrs::{Text, Transact};
    let doc = Doc::with_client_id(1);
    let title = doc.get_or_insert_text("title");
    for i in 0..HISTORY {
        let mut txn = doc.transact_mut();
        let at = if i % 64 == 0 { (i * 7919) % (i + 1) } else { i };
        title.insert(&mut txn, at.min(i), "x");
    }
    (doc, title)
}
