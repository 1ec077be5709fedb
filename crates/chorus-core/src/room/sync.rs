//! The [`Room`] and its protocol state machine: members join and leave, and each
//! message they send is handled by the y-protocols rules (sync step 1 and 2,
//! updates, awareness) and the Chorus ones (view-only sessions, the quota guard,
//! the whitelist guard's verdict). What the document emits is captured as each
//! transaction commits ([`Emitted`]) and broadcast once, encoded once.
//!
//! Loading from and handing to the store is in `persistence.rs`, host changes in
//! `external.rs`; both build on the room defined here.

use super::checks::{count_fits, guarded, leaves_gap};
use super::members::{ConnId, Member, Peer, RoomLimits};
use crate::awareness::{AwarenessState, AwarenessStates};
use crate::guard::{Guard, Neutralised, UnreadableUpdate, Whitelist};
use crate::presence;
use crate::roots::ROOT_TITLE;
use crate::{RoomError, Session};
use bytes::Bytes;
use chorus_protocol::{
    decode_awareness, encode_awareness, encode_sync, ChorusMessage, Message, SyncMessage,
    SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, TransactionMut, Update, WriteTxn,
};

/// What the document's transactions changed, captured as each one commits.
///
/// A transaction's update is encoded in its after-transaction step, before yrs
/// squashes adjacent blocks. yrs encodes the update it hands to `observe_update_v1`
/// only after squashing, so a keystroke appended to a long run of one user's text
/// got sliced out of the merged block, and slicing a string at a UTF-16 offset walks
/// it from the start: 79 % of the server's CPU in the throughput benchmark, growing
/// with the text. A transaction in which the guard neutralised something is encoded
/// later instead, as a diff from its start, once yrs has garbage-collected the
/// removed values (they must never reach peers or the store).
#[derive(Default)]
struct Emitted {
    updates: Vec<Vec<u8>>,
    /// The state before the first neutralised transaction not yet encoded; the diff
    /// from it covers that transaction and every later one.
    since: Option<StateVector>,
}

impl Emitted {
    fn capture(&mut self, txn: &TransactionMut, neutralised: bool) {
        if txn.delete_set().is_empty() && txn.after_state() == txn.before_state() {
            return;
        }
        if self.since.is_some() {
            return;
        }
        if !neutralised {
            let update = txn.encode_update_v1();
            // yrs can write a transaction's update in a form it cannot read back (a
            // JSON item deleted in the transaction that made it: found by the
            // `room_receive_raw` fuzz target, docs/FUZZING.md). Relayed, it would
            // fail in every client's Yjs; stored, the document would never load
            // again. Such a transaction is encoded the other way, as a diff.
            if Update::decode_v1(&update).is_ok() {
                self.updates.push(update);
                return;
            }
        }
        self.since = Some(txn.before_state().clone());
    }
}

/// Below this a document's whole state is encoded for each joiner that has
/// nothing: it takes microseconds, and keeping a copy would cost more memory than
/// it saves time.
const SHARED_FULL_STATE_MIN: usize = 64 << 10;

/// The whole document as a step 2 frame, shared by every joiner that has nothing
/// (a join storm costs one encoding, not one each), with what it covers.
struct FullState {
    covers: StateVector,
    frame: Bytes,
}

/// One live shared document: the CRDT, its members and their presence.
pub struct Room<P: Peer> {
    pub(super) doc: Doc,
    /// Updates the document emitted during the current operation, so that what is
    /// broadcast is what the document actually integrated, not what a client sent.
    emitted: Arc<Mutex<Emitted>>,
    pub(super) members: HashMap<ConnId, Member<P>>,
    pub(super) awareness: AwarenessStates,
    pub(super) limits: RoomLimits,
    /// Members whose peer refused a frame; removed at the end of the operation.
    dead: Vec<ConnId>,
    pub(super) poisoned: bool,
    /// Integrated updates not yet handed to the store, in order.
    pub(super) unsaved: Vec<Vec<u8>>,
    /// Connections whose update-message count changed since the last [`Room::take_acks`].
    pub(super) ack_due: Vec<ConnId>,
    /// Users whose updates changed the document since the last [`Room::take_contributors`].
    pub(super) contributors: Vec<String>,
    /// Set when the document reached its size quota: no client update is applied.
    read_only: bool,
    /// Enforces the whitelist inside every transaction.
    pub(super) guard: Guard,
    /// What the guard neutralised since the last [`Room::take_neutralised`].
    pub(super) neutralised: Neutralised,
    /// Updates refused as a whole (reject mode) since the last [`Room::take_neutralised`].
    pub(super) rejected_updates: u64,
    /// The whole state, encoded once for joiners that have nothing (large
    /// documents only; dropped when the last member leaves).
    full_state: Option<Box<FullState>>,
    /// Presence changes are relayed at [`Room::flush_presence`], merged, instead
    /// of one message each (see [`Room::coalesce_presence`]).
    coalesce_presence: bool,
    /// Presence changes not relayed yet: client id, clock, state (`null` once
    /// removed), and the connection it came from.
    presence_due: Vec<(u64, u64, Arc<str>, Option<ConnId>)>,
}

impl<P: Peer> Room<P> {
    /// An empty document with the fixed roots; every update is checked against the whitelist.
    pub fn new(limits: RoomLimits) -> Self {
        let room = Room::unchecked(limits);
        room.guard.activate();
        room
    }

    /// A room whose guard is not active yet (loading stored content).
    pub(super) fn unchecked(limits: RoomLimits) -> Self {
        let doc = Doc::with_options(Options {
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        });
        let (title, body) = {
            let mut txn = doc.transact_mut();
            (
                txn.get_or_insert_text(ROOT_TITLE),
                // `body`, or the fragment the app's editor binds to (TipTap: `default`).
                txn.get_or_insert_xml_fragment(limits.whitelist.profile.fragment()),
            )
        };
        let emitted: Arc<Mutex<Emitted>> = Arc::default();
        let sink = emitted.clone();
        let guard = Guard::install(
            &doc,
            &title,
            &body,
            limits.whitelist.clone(),
            move |txn, neutralised| {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .capture(txn, neutralised)
            },
        );
        Room {
            doc,
            emitted,
            members: HashMap::new(),
            awareness: AwarenessStates::default(),
            limits,
            dead: Vec::new(),
            poisoned: false,
            unsaved: Vec::new(),
            ack_due: Vec::new(),
            contributors: Vec::new(),
            read_only: false,
            guard,
            neutralised: Neutralised::default(),
            rejected_updates: 0,
            full_state: None,
            coalesce_presence: false,
            presence_due: Vec::new(),
        }
    }

    /// Relay presence changes merged at [`Room::flush_presence`] (the document
    /// actor calls it at the end of each turn) rather than one message per change:
    /// N cursors that move within one turn cost each member one message holding
    /// the latest state of each, not N messages. Off, every change is relayed as it
    /// is applied.
    pub fn coalesce_presence(&mut self, on: bool) {
        self.coalesce_presence = on;
        if !on {
            self.flush_presence();
        }
    }

    /// Relay the presence changes held since the last flush as one message: the
    /// latest state of each client. Its sender does not get it back when every
    /// change came from one connection; a merged message goes to every member
    /// (y-protocols ignores an entry of its own client that is not newer than what
    /// it holds).
    pub fn flush_presence(&mut self) {
        if self.presence_due.is_empty() {
            return;
        }
        let due = std::mem::take(&mut self.presence_due);
        let mut seen = std::collections::HashSet::with_capacity(due.len());
        let mut latest: Vec<&(u64, u64, Arc<str>, Option<ConnId>)> =
            due.iter().rev().filter(|e| seen.insert(e.0)).collect();
        latest.reverse();
        let origin = latest[0].3;
        let except = origin.filter(|_| latest.iter().all(|e| e.3 == origin));
        let body = encode_awareness(latest.iter().map(|e| (e.0, e.1, &*e.2)));
        self.broadcast(Message::Awareness(body).encode(), except);
        self.reap();
    }

    /// Relay presence changes now, or hold them for [`Room::flush_presence`].
    fn relay_presence(&mut self, changed: Vec<(u64, u64, Arc<str>)>, from: Option<ConnId>) {
        if changed.is_empty() {
            return;
        }
        if self.coalesce_presence {
            self.presence_due
                .extend(changed.into_iter().map(|(id, c, j)| (id, c, j, from)));
            return;
        }
        let body = encode_awareness(changed.iter().map(|(id, c, j)| (*id, *c, &**j)));
        self.broadcast(Message::Awareness(body).encode(), from);
    }

    /// Turn the quota guard on or off. When on, client updates that would change the
    /// document are refused with [`RoomError::DocumentTooLarge`]; opted-in members are
    /// told once when it turns on.
    pub fn set_read_only(&mut self, read_only: bool) {
        if read_only && !self.read_only {
            self.notify_all(ChorusMessage::Error {
                code: "document-too-large".into(),
                message: "the document reached its size limit and is read-only".into(),
            });
        }
        self.read_only = read_only;
    }

    /// The whitelist this room enforces.
    pub fn whitelist(&self) -> &Whitelist {
        &self.limits.whitelist
    }

    /// True while the quota guard is on.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The session of every connected member.
    pub fn sessions(&self) -> impl Iterator<Item = (ConnId, &Arc<Session>)> + '_ {
        self.members.iter().map(|(c, m)| (*c, &m.session))
    }

    /// Change what a member may do (the host downgraded it, or the exclusive hold
    /// passed to it). A member that opted in is told: `read-only` with `reason` when it
    /// becomes view-only, `editable` when it may edit. False if `conn` is not here.
    pub fn set_mode(&mut self, conn: ConnId, mode: chorus_auth::Mode, reason: &str) -> bool {
        let Some(member) = self.members.get_mut(&conn) else {
            return false;
        };
        if member.session.mode == mode {
            return true;
        }
        let mut session = (*member.session).clone();
        session.mode = mode;
        member.session = Arc::new(session);
        member.refused_writes = 0;
        let msg = if mode.can_write() {
            ChorusMessage::Editable
        } else {
            ChorusMessage::ReadOnly {
                reason: reason.to_owned(),
            }
        };
        self.notify(conn, msg);
        true
    }

    /// Send an extension message to every member that opted in (encoded once).
    pub fn notify_all(&mut self, msg: ChorusMessage) {
        let frame = msg.encode();
        let opted_in: Vec<ConnId> = self
            .members
            .iter()
            .filter(|(_, m)| m.session.extensions)
            .map(|(c, _)| *c)
            .collect();
        for c in opted_in {
            self.send_to(c, frame.clone());
        }
        self.reap();
    }

    /// Send an extension message to a member, if it opted in (stock clients never
    /// receive one).
    pub fn notify(&mut self, conn: ConnId, msg: ChorusMessage) {
        if self
            .members
            .get(&conn)
            .is_some_and(|m| m.session.extensions)
        {
            self.send_to(conn, msg.encode());
            self.reap();
        }
    }

    /// Close handles would live with the transport; the room only lists who is here.
    pub fn members(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.members.keys().copied()
    }

    /// The underlying document (read access for renderers, stores and tests).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Number of connected members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True after yrs panicked while applying an update: the in-memory document can no
    /// longer be trusted and must be dropped (and reloaded from the store).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The document's state vector (lib0 v1).
    pub fn state_vector(&self) -> Vec<u8> {
        self.doc.transact().state_vector().encode_v1()
    }

    /// The document's state as one update (lib0 v1).
    pub fn encode_state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// Add a member and start the handshake: our step 1, then current presence.
    pub fn join(&mut self, conn: ConnId, session: Arc<Session>, peer: P) {
        let sv = self.state_vector();
        let mut ok = peer.send(encode_sync(SYNC_STEP1, &sv));
        if ok && !self.awareness.is_empty() {
            ok = peer.send(self.encode_all_awareness());
        }
        if ok && !session.can_edit() && session.extensions {
            ok = peer.send(
                ChorusMessage::ReadOnly {
                    reason: "view-mode".into(),
                }
                .encode(),
            );
        }
        if !ok {
            return;
        }
        self.members.insert(
            conn,
            Member {
                session,
                peer,
                awareness_ids: Vec::new(),
                refused_writes: 0,
                update_messages: 0,
                ack_ceiling: None,
                answered_step1: false,
            },
        );
    }

    /// Remove a member; its awareness states are removed and the removal broadcast.
    pub fn leave(&mut self, conn: ConnId) {
        self.dead.push(conn);
        self.reap();
    }

    /// Handle one message from a member.
    pub fn receive(&mut self, conn: ConnId, msg: Message) -> Result<(), RoomError> {
        if !self.members.contains_key(&conn) {
            return Err(RoomError::UnknownConnection);
        }
        let result = match msg {
            Message::Sync(SyncMessage::Step1(sv)) => self.answer_step1(conn, &sv),
            Message::Sync(SyncMessage::Step2(u)) | Message::Sync(SyncMessage::Update(u)) => {
                self.apply_client_update(conn, &u)
            }
            Message::Awareness(body) => self.apply_awareness(conn, &body),
            Message::QueryAwareness => {
                let frame = self.encode_all_awareness();
                self.send_to(conn, frame);
                Ok(())
            }
            // A client telling us we denied it something, or an extension message we
            // do not act on yet: nothing to do.
            Message::PermissionDenied(_) | Message::Chorus(_) => Ok(()),
        };
        self.reap();
        result
    }

    fn answer_step1(&mut self, conn: ConnId, sv: &[u8]) -> Result<(), RoomError> {
        if !count_fits(sv) {
            return Err(RoomError::Malformed {
                what: "state vector",
            });
        }
        let sv = guarded(|| StateVector::decode_v1(sv).ok())
            .flatten()
            .ok_or(RoomError::Malformed {
                what: "state vector",
            })?;
        let mut shared = sv.is_empty();
        if let Some(member) = self.members.get_mut(&conn) {
            // Asked again while earlier answers are still queued for it (a client
            // reads what it asked for before it asks again): answered with the
            // shared whole state, which covers any state vector, so a flood of
            // step 1 costs no encoding each; its bytes are charged to the member's
            // queue, whose bound closes a member that asks and does not read.
            shared |= member.answered_step1 && member.peer.backlog_bytes() > 0;
            member.answered_step1 = true;
        }
        if shared {
            self.answer_from_nothing(conn);
            return Ok(());
        }
        let diff = self.doc.transact().encode_state_as_update_v1(&sv);
        self.send_to(conn, encode_sync(SYNC_STEP2, &diff));
        Ok(())
    }

    /// Answer a joiner that has nothing with the shared full state: as it is when
    /// the document has not changed since it was encoded, followed by an update
    /// with what changed when that is small next to it, encoded again otherwise.
    fn answer_from_nothing(&mut self, conn: ConnId) {
        let txn = self.doc.transact();
        let current = txn.state_vector();
        if let Some(shared) = &self.full_state {
            if shared.covers == current {
                let frame = shared.frame.clone();
                drop(txn);
                self.send_to(conn, frame);
                return;
            }
            // Deletions are in every diff whole, so step 2 plus this is the document.
            let since = txn.encode_state_as_update_v1(&shared.covers);
            if since.len() * 4 <= shared.frame.len() {
                let frame = shared.frame.clone();
                drop(txn);
                self.send_to(conn, frame);
                self.send_to(conn, encode_sync(SYNC_UPDATE, &since));
                return;
            }
        }
        let frame = encode_sync(
            SYNC_STEP2,
            &txn.encode_state_as_update_v1(&StateVector::default()),
        );
        drop(txn);
        self.full_state = (frame.len() >= SHARED_FULL_STATE_MIN).then(|| {
            Box::new(FullState {
                covers: current,
                frame: frame.clone(),
            })
        });
        self.send_to(conn, frame);
    }

    /// Apply a member's update; an update that is not applied as sent caps what the
    /// member may ever be told is saved ([`Member::ack_ceiling`]).
    fn apply_client_update(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), RoomError> {
        let before = self.members.get(&conn).map_or(0, |m| m.update_messages);
        let result = self.apply_client_update_inner(conn, bytes);
        let refused = match &result {
            Err(_) => true,
            Ok(refused) => *refused,
        };
        if refused {
            if let Some(member) = self.members.get_mut(&conn) {
                member.ack_ceiling.get_or_insert(before);
            }
        }
        result.map(|_| ())
    }

    /// `Ok(true)`: refused without closing the connection (a view-only session).
    fn apply_client_update_inner(&mut self, conn: ConnId, bytes: &[u8]) -> Result<bool, RoomError> {
        if !count_fits(bytes) {
            return Err(RoomError::Malformed { what: "update" });
        }
        let update = guarded(|| Update::decode_v1(bytes).ok())
            .flatten()
            .ok_or(RoomError::Malformed { what: "update" })?;
        let member = self.members.get_mut(&conn).expect("checked by receive");
        member.update_messages += 1;
        if !self.ack_due.contains(&conn) {
            self.ack_due.push(conn);
        }
        if self.read_only && member.session.can_edit() && !update.is_empty() {
            let sv = self.doc.transact().state_vector();
            if update.extends(&sv) || !update.delete_set().is_empty() {
                return Err(RoomError::DocumentTooLarge);
            }
            return Ok(false);
        }
        if !member.session.can_edit() {
            if update.is_empty() {
                return Ok(false);
            }
            member.refused_writes += 1;
            if member.refused_writes > self.limits.view_write_warnings {
                return Err(RoomError::ViewOnlyWrite);
            }
            let extensions = member.session.extensions;
            self.send_to(
                conn,
                Message::PermissionDenied("view-only session: edits are not applied".into())
                    .encode(),
            );
            if extensions {
                self.send_to(
                    conn,
                    ChorusMessage::Error {
                        code: "read-only".into(),
                        message: "this session is view-only; edits are not applied".into(),
                    }
                    .encode(),
                );
            }
            return Ok(true);
        }

        let sv = self.doc.transact().state_vector();
        // yrs adds a hostile block's clock and length on the way (a panic past u32).
        match guarded(|| leaves_gap(&update, &sv)) {
            None => return Err(RoomError::Malformed { what: "update" }),
            Some(true) => return Err(RoomError::MissingDependencies),
            Some(false) => {}
        }
        match self.guard.before_update(&self.doc, bytes, Some(&sv)) {
            Ok(()) => {}
            Err(UnreadableUpdate::NotYjs) => {
                return Err(RoomError::Malformed {
                    what: "update (a kind Yjs clients cannot read)",
                })
            }
            Err(UnreadableUpdate::Misread) => {
                return Err(RoomError::Malformed {
                    what: "update (content Yjs and yrs read differently)",
                })
            }
            Err(UnreadableUpdate::Malformed) => {
                return Err(RoomError::Malformed { what: "update" })
            }
        }
        let doc = &self.doc;
        let applied = guarded(|| {
            let mut txn = doc.transact_mut_with(conn.0);
            let applied = txn.apply_update(update).is_ok();
            // A dependency gap leaves the update pending inside yrs, where it would be
            // re-encoded to other clients without ever having been integrated. Drop it.
            let gap = txn.has_missing_updates();
            if gap {
                txn.prune_pending();
            }
            (applied, gap)
        });
        let verdict = self.guard.take_verdict();
        let Some((applied, gap)) = applied else {
            self.poisoned = true;
            self.emitted_take();
            return Err(RoomError::Malformed { what: "update" });
        };
        self.neutralised.merge(&verdict.neutralised);
        if verdict.rejected {
            // What the document emitted is the update with all it inserted undone.
            self.rejected_updates += 1;
            self.broadcast_emitted(Some(conn));
            if self.members[&conn].session.extensions {
                self.send_to(
                    conn,
                    ChorusMessage::Error {
                        code: "content-rejected".into(),
                        message: "the edit held content outside the whitelist and was refused; reload the document".into(),
                    }
                    .encode(),
                );
            }
            return Err(RoomError::ContentRejected);
        }
        // When the guard changed the update, the sender needs the change too: it still
        // holds what it sent, and must converge to what everyone else has.
        let stripped = verdict.neutralised.total() > 0;
        let skip = if stripped { None } else { Some(conn) };
        if self.broadcast_emitted(skip) {
            let user = self.members[&conn].session.user_id.clone();
            self.contributors.push(user);
        }
        if stripped && self.members[&conn].session.extensions {
            self.send_to(
                conn,
                ChorusMessage::Error {
                    code: "content-stripped".into(),
                    message: "content outside the whitelist was removed from your edit".into(),
                }
                .encode(),
            );
        }
        if !applied {
            return Err(RoomError::Malformed { what: "update" });
        }
        if gap {
            return Err(RoomError::MissingDependencies);
        }
        Ok(false)
    }

    fn apply_awareness(&mut self, conn: ConnId, body: &Bytes) -> Result<(), RoomError> {
        let max_entries = self.limits.max_awareness_clients_per_conn.max(1) * 4;
        let entries = decode_awareness(body, max_entries)
            .map_err(|_| RoomError::Malformed { what: "awareness" })?;
        let member = self.members.get(&conn).expect("checked by receive");
        let session = member.session.clone();
        let mut changed: Vec<(u64, u64, Arc<str>)> = Vec::new();
        for entry in entries {
            if entry.state.len() > self.limits.max_awareness_state_bytes {
                return Err(RoomError::AwarenessTooLarge {
                    size: entry.state.len(),
                    limit: self.limits.max_awareness_state_bytes,
                });
            }
            let current = self.awareness.get(entry.client_id);
            if let Some(cur) = current {
                if cur.owner != conn {
                    let same_user = self
                        .members
                        .get(&cur.owner)
                        .is_none_or(|m| m.session.user_id == session.user_id);
                    if !same_user {
                        continue; // someone else's presence: not this connection's to change
                    }
                }
            }
            let current_clock = current.map(|c| c.clock);
            if entry.state == "null" {
                if current_clock.is_some_and(|c| entry.clock >= c) {
                    self.awareness.remove(entry.client_id);
                    self.forget_awareness_id(entry.client_id);
                    changed.push((entry.client_id, entry.clock, Arc::from("null")));
                }
                continue;
            }
            if current_clock.is_some_and(|c| entry.clock <= c) {
                continue;
            }
            let owned = &self.members[&conn].awareness_ids;
            if !owned.contains(&entry.client_id)
                && owned.len() >= self.limits.max_awareness_clients_per_conn
            {
                continue;
            }
            let checked = presence::check(&entry.state, &session).map_err(|e| match e {
                presence::Refused::Malformed => RoomError::Malformed { what: "awareness" },
                presence::Refused::NotObject => RoomError::AwarenessNotObject,
            })?;
            if checked.replaced {
                tracing::debug!(user = %session.user_id, "malformed presence cursor relayed as null");
            }
            let json: Arc<str> = checked.json.into();
            self.forget_awareness_id(entry.client_id);
            self.members
                .get_mut(&conn)
                .expect("checked by receive")
                .awareness_ids
                .push(entry.client_id);
            self.awareness.set(
                entry.client_id,
                AwarenessState {
                    clock: entry.clock,
                    json: json.clone(),
                    owner: conn,
                },
            );
            changed.push((entry.client_id, entry.clock, json));
        }
        self.relay_presence(changed, Some(conn));
        Ok(())
    }

    fn forget_awareness_id(&mut self, client_id: u64) {
        for m in self.members.values_mut() {
            m.awareness_ids.retain(|id| *id != client_id);
        }
    }

    fn encode_all_awareness(&self) -> Bytes {
        let body = encode_awareness(self.awareness.iter().map(|(id, s)| (id, s.clock, &*s.json)));
        Message::Awareness(body).encode()
    }

    pub(super) fn emitted_take(&mut self) -> Vec<Vec<u8>> {
        let (mut updates, since) = {
            let mut emitted = self.emitted.lock().unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut emitted.updates), emitted.since.take())
        };
        if let Some(sv) = since {
            // Encoded now, after yrs collected what the guard removed.
            let diff = self.doc.transact().encode_state_as_update_v1(&sv);
            if Update::decode_v1(&diff).is_ok() {
                updates.push(diff);
            } else {
                // Nothing that reads back can describe the document any more: it is
                // dropped like one yrs panicked on, and reloaded from the store.
                self.poisoned = true;
            }
        }
        updates
    }

    /// Broadcast every update the document emitted, encoded once per update, and keep
    /// it for the store. True if anything was emitted.
    pub(super) fn broadcast_emitted(&mut self, origin: Option<ConnId>) -> bool {
        let emitted = self.emitted_take();
        let any = !emitted.is_empty();
        for update in emitted {
            self.broadcast(encode_sync(SYNC_UPDATE, &update), origin);
            self.unsaved.push(update);
        }
        any
    }

    pub(super) fn send_to(&mut self, conn: ConnId, frame: Bytes) {
        if let Some(m) = self.members.get(&conn) {
            if !m.peer.send(frame) {
                self.dead.push(conn);
            }
        }
    }

    fn broadcast(&mut self, frame: Bytes, except: Option<ConnId>) {
        for (id, m) in &self.members {
            if Some(*id) != except && !m.peer.send(frame.clone()) {
                self.dead.push(*id);
            }
        }
    }

    /// Remove members that left or could not keep up, announcing their presence removal.
    pub(super) fn reap(&mut self) {
        while let Some(conn) = self.dead.pop() {
            let Some(member) = self.members.remove(&conn) else {
                continue;
            };
            let mut removed = Vec::new();
            for id in member.awareness_ids {
                if let Some(state) = self.awareness.remove(id) {
                    removed.push((id, state.clock + 1, Arc::from("null")));
                }
            }
            self.relay_presence(removed, None);
        }
        if self.members.is_empty() {
            self.full_state = None;
        }
    }
}
