//! What a room hands to the store and takes back from it: a room built from a
//! stored snapshot and log (checked against today's whitelist), the updates not yet
//! saved, the acknowledgements due once they are, the contributors and the guard's
//! tally since the last call; and, from stored bytes alone, a checked document
//! ([`checked_state`]) or the step 2 for a joiner that has nothing
//! ([`sync_from_stored`]). The room never touches the store itself.

use super::checks::{guarded, leaves_gap};
use super::members::{ConnId, Peer, RoomLimits};
use super::sync::Room;
use crate::guard::{Neutralised, Whitelist};
use crate::LoadError;
use bytes::Bytes;
use chorus_protocol::{encode_sync, ChorusMessage, SYNC_STEP2};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, Transact, Update};

impl<P: Peer> Room<P> {
    /// A room holding a stored document: `snapshot` (if any) then `updates`, in order.
    /// Fails if a record does not decode or leaves a dependency gap (never a partial
    /// document: serving it would let an empty or truncated draft overwrite the stored one).
    pub fn from_stored<'a>(
        limits: RoomLimits,
        snapshot: Option<&'a [u8]>,
        updates: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, LoadError> {
        let mut room = Room::unchecked(limits);
        let doc = &room.doc;
        let loaded = guarded(|| {
            let mut txn = doc.transact_mut();
            for (i, bytes) in snapshot.into_iter().chain(updates).enumerate() {
                let update = Update::decode_v1(bytes).map_err(|_| LoadError::Undecodable(i))?;
                if leaves_gap(&update, &txn.state_vector()) {
                    return Err(LoadError::MissingDependencies);
                }
                txn.apply_update(update)
                    .map_err(|_| LoadError::Undecodable(i))?;
            }
            if txn.has_missing_updates() {
                return Err(LoadError::MissingDependencies);
            }
            Ok(())
        });
        match loaded {
            None => return Err(LoadError::Panicked),
            Some(Err(e)) => return Err(e),
            Some(Ok(())) => {}
        }
        // What loading emitted is already stored.
        room.emitted_take();
        // Stored content may predate the current policy: check it all once. What the
        // check removes must be stored too, or the next load would disagree with what
        // clients were sent.
        room.guard.activate();
        if guarded(|| room.guard.scan_document(&room.doc)).is_none() {
            return Err(LoadError::Panicked);
        }
        let verdict = room.guard.take_verdict();
        room.neutralised.merge(&verdict.neutralised);
        let emitted = room.emitted_take();
        if room.poisoned {
            return Err(LoadError::Panicked);
        }
        room.unsaved.extend(emitted);
        Ok(room)
    }

    /// Integrated updates since the last call, for the store (lib0 v1, in order).
    pub fn take_unsaved(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.unsaved)
    }

    /// `(connection, update messages received)` for every connection whose count
    /// changed since the last call. Once everything taken before is durable, each may
    /// be told "saved up to n" with [`Room::send_saved`].
    pub fn take_acks(&mut self) -> Vec<(ConnId, u64)> {
        let due = std::mem::take(&mut self.ack_due);
        due.into_iter()
            .filter_map(|c| {
                let m = self.members.get(&c)?;
                let n = m
                    .ack_ceiling
                    .map_or(m.update_messages, |ceiling| ceiling.min(m.update_messages));
                Some((c, n))
            })
            .collect()
    }

    /// What the whitelist guard neutralised, and how many updates it refused whole,
    /// since the last call (for metrics).
    pub fn take_neutralised(&mut self) -> (Neutralised, u64) {
        (
            std::mem::take(&mut self.neutralised),
            std::mem::take(&mut self.rejected_updates),
        )
    }

    /// User ids whose updates changed the document since the last call (deduplicated).
    pub fn take_contributors(&mut self) -> Vec<String> {
        let mut users = std::mem::take(&mut self.contributors);
        users.sort();
        users.dedup();
        users
    }

    /// Tell `conn` (if it is still here and opted in) that its first `n` update messages are durable.
    pub fn send_saved(&mut self, conn: ConnId, n: u64) {
        if self
            .members
            .get(&conn)
            .is_some_and(|m| m.session.extensions)
        {
            self.send_to(conn, ChorusMessage::Saved { n }.encode());
            self.reap();
        }
    }
}

/// A stored state (a history point, say) as a document checked against
/// `whitelist` as it is today, the way [`Room::from_stored`] checks a draft it
/// loads: what a render or a restore reads from it holds nothing today's policy
/// refuses, whatever the policy or the guard's rules were when it was stored.
pub fn checked_state(whitelist: &Whitelist, state: &[u8]) -> Result<Doc, LoadError> {
    struct Nobody;
    impl Peer for Nobody {
        fn send(&self, _: Bytes) -> bool {
            true
        }
    }
    let limits = RoomLimits {
        whitelist: whitelist.clone(),
        ..RoomLimits::default()
    };
    let room = Room::<Nobody>::from_stored(limits, Some(state), [])?;
    Ok(room.doc.clone())
}

/// The step 2 that answers an empty step 1 with a stored document, built from the
/// stored bytes alone: the snapshot and the log after it merged into one update.
/// Integrating a long history into a [`Room`] takes far longer than merging it, so a
/// joiner that has nothing can be served while the room is built. One frame, not
/// the snapshot followed by the log: a y-websocket provider reports `synced` on
/// the first step 2, and an app that reads the draft then must find all of it.
/// Only for stored content that needs no whitelist pass (see
/// [`Whitelist::fingerprint`]): these bytes leave unchecked.
pub fn sync_from_stored(snapshot: Option<&[u8]>, updates: &[&[u8]]) -> Result<Bytes, LoadError> {
    let merge = |parts: &[&[u8]], index: usize| {
        guarded(|| yrs::merge_updates_v1(parts.iter().copied()).ok())
            .flatten()
            .ok_or(LoadError::Undecodable(index))
    };
    // The log is merged on its own first: merging many small updates costs more per
    // byte than merging two large ones, and the snapshot is the large one.
    let log = match updates {
        [] => None,
        [one] => Some(std::borrow::Cow::Borrowed(*one)),
        many => Some(std::borrow::Cow::Owned(merge(many, 1)?)),
    };
    let whole = match (snapshot, log) {
        (None, None) => return Ok(Bytes::new()),
        (Some(only), None) => std::borrow::Cow::Borrowed(only),
        (None, Some(log)) => log,
        (Some(snapshot), Some(log)) => std::borrow::Cow::Owned(merge(&[snapshot, &log], 0)?),
    };
    Ok(encode_sync(SYNC_STEP2, &whole))
}
