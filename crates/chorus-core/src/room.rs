//! [`Room`]: one live document and its members.

use crate::awareness::{AwarenessState, AwarenessStates};
use crate::guard::{Guard, Neutralised, UnreadableUpdate, Whitelist};
use crate::import::{self, BodyNode};
use crate::presence;
use crate::{ExternalError, LoadError, RoomError, Session};
use bytes::Bytes;
use chorus_protocol::{
    decode_awareness, encode_awareness, encode_sync, ChorusMessage, Message, SyncMessage,
    SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
};
use chorus_whitelist::EditorProfile;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, TransactionMut, Update, WriteTxn,
};

/// Identifies one connection within the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// An id no other connection of this process has (nor will have).
    pub fn fresh() -> ConnId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Where a room sends a member's frames. Implemented by the server over a bounded
/// queue; `send` must never block. Returning `false` means the frame could not be
/// queued (a slow or gone consumer): the room then drops the member, and the
/// implementation is responsible for closing its socket.
pub trait Peer {
    /// Queue one encoded frame for this member.
    fn send(&self, frame: Bytes) -> bool;
}

/// Per-room limits (from configuration).
#[derive(Debug, Clone)]
pub struct RoomLimits {
    /// Largest accepted awareness state (JSON text), in bytes.
    pub max_awareness_state_bytes: usize,
    /// How many awareness client ids one connection may control.
    pub max_awareness_clients_per_conn: usize,
    /// How many refused writes a view-mode session gets a warning for before it is closed.
    pub view_write_warnings: u32,
    /// The content policy and what to do with content outside it.
    pub whitelist: Whitelist,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits {
            max_awareness_state_bytes: 32 * 1024,
            max_awareness_clients_per_conn: 4,
            view_write_warnings: 1,
            whitelist: Whitelist::default(),
        }
    }
}

struct Member<P> {
    session: Arc<Session>,
    peer: P,
    awareness_ids: Vec<u64>,
    refused_writes: u32,
    /// Sync step 2 + update messages received from this connection ("saved up to N").
    update_messages: u64,
    /// How many of those may ever be acknowledged: the messages before the first
    /// one that was refused (a view-only or downgraded session's edit, a rejected or
    /// malformed update). "Saved up to n" covers the first n messages, so none from
    /// that one on is ever said to be saved: an editor never shows "Saved" over
    /// dropped edits.
    ack_ceiling: Option<u64>,
}

/// The names of the two roots every Chorus document has.
pub const ROOT_TITLE: &str = "title";
/// See [`ROOT_TITLE`]. The body's fragment under the default (`html`) editor
/// profile; another profile names its own (`EditorProfile::fragment`).
pub const ROOT_BODY: &str = "body";

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

/// One live shared document: the CRDT, its members and their presence.
pub struct Room<P: Peer> {
    doc: Doc,
    /// Updates the document emitted during the current operation, so that what is
    /// broadcast is what the document actually integrated, not what a client sent.
    emitted: Arc<Mutex<Emitted>>,
    members: HashMap<ConnId, Member<P>>,
    awareness: AwarenessStates,
    limits: RoomLimits,
    /// Members whose peer refused a frame; removed at the end of the operation.
    dead: Vec<ConnId>,
    poisoned: bool,
    /// Integrated updates not yet handed to the store, in order.
    unsaved: Vec<Vec<u8>>,
    /// Connections whose update-message count changed since the last [`Room::take_acks`].
    ack_due: Vec<ConnId>,
    /// Users whose updates changed the document since the last [`Room::take_contributors`].
    contributors: Vec<String>,
    /// Set when the document reached its size quota: no client update is applied.
    read_only: bool,
    /// Enforces the whitelist inside every transaction.
    guard: Guard,
    /// What the guard neutralised since the last [`Room::take_neutralised`].
    neutralised: Neutralised,
    /// Updates refused as a whole (reject mode) since the last [`Room::take_neutralised`].
    rejected_updates: u64,
}

impl<P: Peer> Room<P> {
    /// An empty document with the fixed roots; every update is checked against the whitelist.
    pub fn new(limits: RoomLimits) -> Self {
        let room = Room::unchecked(limits);
        room.guard.activate();
        room
    }

    /// A room whose guard is not active yet (loading stored content).
    fn unchecked(limits: RoomLimits) -> Self {
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
        }
    }

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
    fn notify_all(&mut self, msg: ChorusMessage) {
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

    /// Apply a change the host made outside the editor (an external change, a restore):
    /// the title and/or body become `title` / `body`, as a minimal diff.
    ///
    /// `base` is the whole document as the host read it (`None`: as it is now). The
    /// host's edit is computed against the base on a fork with a client id of its own,
    /// and the resulting update merges into the live document like any concurrent
    /// edit: what editors typed since the host's read is kept, not overwritten. The
    /// update goes through the whitelist guard like a client's, is relayed to every
    /// member and kept for the store; members that opted in also receive an
    /// `external-change` message naming the changed fields. Returns those fields
    /// (empty if the content was already as given).
    pub fn external_change(
        &mut self,
        base: Option<&[u8]>,
        title: Option<&str>,
        body: Option<&[BodyNode]>,
    ) -> Result<Vec<&'static str>, ExternalError> {
        let live_sv = self.doc.transact().state_vector();
        let current;
        let base = match base {
            Some(b) => b,
            None => {
                current = self.encode_state();
                &current
            }
        };
        let edit = external_edit(
            base,
            &live_sv,
            title,
            body,
            self.limits.whitelist.takes_deep_events(),
            &self.limits.whitelist.profile,
        )?;
        self.apply_external(edit)
    }

    /// Merge an [`ExternalEdit`] computed by [`external_edit`] (on any thread) into
    /// the live document, as [`Room::external_change`] does. Returns the changed
    /// fields (empty if the content was already as given).
    pub fn apply_external(
        &mut self,
        edit: ExternalEdit,
    ) -> Result<Vec<&'static str>, ExternalError> {
        let ExternalEdit {
            update,
            fields,
            assumed,
        } = edit;
        if fields.is_empty() {
            return Ok(fields);
        }
        if assumed.is_some_and(|sv| sv != self.doc.transact().state_vector()) {
            // It replaced paragraphs assuming nobody had typed in them since its base.
            return Err(ExternalError::Moved);
        }
        if self.guard.before_update(&self.doc, &update, None).is_err() {
            // Our own encoding of a host's change: it always reads.
            return Err(ExternalError::BadBase);
        }
        let doc = &self.doc;
        let applied = guarded(|| {
            let decoded = Update::decode_v1(&update).ok()?;
            let mut txn = doc.transact_mut_with(EXTERNAL_ORIGIN);
            let ok = txn.apply_update(decoded).is_ok();
            // The base was a state of this very document, so nothing can be missing;
            // should it be, pending content must not linger.
            if txn.has_missing_updates() {
                txn.prune_pending();
            }
            Some(ok)
        });
        let verdict = self.guard.take_verdict();
        self.neutralised.merge(&verdict.neutralised);
        match applied {
            None => {
                self.poisoned = true;
                self.emitted_take();
                return Err(ExternalError::Panicked);
            }
            Some(None) | Some(Some(false)) => return Err(ExternalError::BadBase),
            Some(Some(true)) => {}
        }
        if verdict.rejected {
            self.rejected_updates += 1;
            self.broadcast_emitted(None);
            self.reap();
            return Err(ExternalError::ContentRejected);
        }
        self.broadcast_emitted(None);
        self.notify_all(ChorusMessage::ExternalChange {
            fields: fields.iter().map(|f| f.to_string()).collect(),
        });
        Ok(fields)
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
        let diff = self.doc.transact().encode_state_as_update_v1(&sv);
        self.send_to(conn, encode_sync(SYNC_STEP2, &diff));
        Ok(())
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
        if !changed.is_empty() {
            let body = encode_awareness(changed.iter().map(|(id, c, j)| (*id, *c, &**j)));
            self.broadcast(Message::Awareness(body).encode(), Some(conn));
        }
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

    fn emitted_take(&mut self) -> Vec<Vec<u8>> {
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
    fn broadcast_emitted(&mut self, origin: Option<ConnId>) -> bool {
        let emitted = self.emitted_take();
        let any = !emitted.is_empty();
        for update in emitted {
            self.broadcast(encode_sync(SYNC_UPDATE, &update), origin);
            self.unsaved.push(update);
        }
        any
    }

    fn send_to(&mut self, conn: ConnId, frame: Bytes) {
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
    fn reap(&mut self) {
        while let Some(conn) = self.dead.pop() {
            let Some(member) = self.members.remove(&conn) else {
                continue;
            };
            let mut removed = Vec::new();
            for id in member.awareness_ids {
                if let Some(state) = self.awareness.remove(id) {
                    removed.push((id, state.clock + 1));
                }
            }
            if !removed.is_empty() {
                let body = encode_awareness(removed.iter().map(|(id, c)| (*id, *c, "null")));
                self.broadcast(Message::Awareness(body).encode(), None);
            }
        }
    }
}

/// Transaction origin of changes the host made (external changes, restores).
const EXTERNAL_ORIGIN: &str = "chorus-external";

/// A host's change computed against a base, ready to merge into the live document
/// ([`Room::apply_external`]).
#[derive(Debug, Clone)]
pub struct ExternalEdit {
    /// The fork's edit, as a lib0-v1 update relative to the base.
    update: Vec<u8>,
    /// The fields it changes (`title`, `body`).
    fields: Vec<&'static str>,
    /// Set when it replaced changed nodes whole: the live state it assumed (nothing
    /// typed since its base), checked when it is applied.
    assumed: Option<StateVector>,
}

impl ExternalEdit {
    /// The fields this edit changes; empty if the content already matched.
    pub fn fields(&self) -> &[&'static str] {
        &self.fields
    }
}

/// Compute a host's change of `title` and/or `body` against `base` (the whole
/// document as the host read it) on a fork, without touching the live document:
/// the expensive half of [`Room::external_change`], safe to run on a blocking
/// thread. `live_sv` is the live document's state vector (the fork takes a client
/// id it does not know). yrs panics on hostile bases are caught.
///
/// With `may_replace` (for a guard that takes deep events,
/// [`Whitelist::takes_deep_events`]), a rewrite of many paragraphs replaces changed
/// ones whole (see [`import::apply_body`]), which would drop what someone typed into
/// one of them since `base`; so it does that only when nothing happened since the base
/// (`live_sv` equals the base's state vector), and the edit then
/// remembers the state it assumed: [`Room::apply_external`] refuses it with
/// [`ExternalError::Moved`] if the document moved meanwhile. Otherwise every changed
/// node is edited in place.
pub fn external_edit(
    base: &[u8],
    live_sv: &StateVector,
    title: Option<&str>,
    body: Option<&[BodyNode]>,
    may_replace: bool,
    profile: &EditorProfile,
) -> Result<ExternalEdit, ExternalError> {
    ExternalFork::new(base, live_sv, profile, body.is_some())?.edit(
        title,
        body,
        may_replace,
        profile,
    )
}

/// A fork of a host change's base, read and ready for the change: the half of
/// [`external_edit`] that needs only the base (decoding it into a document of its own
/// and reading its body), so a caller can do it while the host's HTML is still being
/// cleaned, then give the cleaned body to [`ExternalFork::edit`]. The fork has a
/// client id the live document (state `live_sv`) does not know. Not `Send`: both
/// halves run on one thread.
pub struct ExternalFork {
    /// The body as read, normalised; refers into `doc`, which has not changed since.
    existing: Option<import::ExistingBody>,
    doc: Doc,
    base_sv: StateVector,
    live_sv: StateVector,
}

impl ExternalFork {
    /// Decode `base` into a fork; with `read_body`, also read the fork's body for the
    /// change to come. yrs panics on hostile bases are caught ([`ExternalError::BadBase`]).
    pub fn new(
        base: &[u8],
        live_sv: &StateVector,
        profile: &EditorProfile,
        read_body: bool,
    ) -> Result<Self, ExternalError> {
        guarded(|| Self::build(base, live_sv, profile, read_body)).ok_or(ExternalError::BadBase)?
    }

    fn build(
        base: &[u8],
        live_sv: &StateVector,
        profile: &EditorProfile,
        read_body: bool,
    ) -> Result<Self, ExternalError> {
        let base = Update::decode_v1(base).map_err(|_| ExternalError::BadBase)?;
        let doc = loop {
            let doc = Doc::with_options(Options {
                offset_kind: OffsetKind::Utf16,
                // The fork lives for one change: collecting what it deletes would only
                // cost time (yrs then merges the collected blocks one run at a time, each
                // merge shifting the rest of the client's block list). Deleted content
                // is not part of the update it sends.
                skip_gc: true,
                ..Options::default()
            });
            // A client id the live document already knows would make the fork's clocks
            // collide with existing content.
            if live_sv.get(&doc.client_id()) == 0 {
                break doc;
            }
        };
        {
            let mut txn = doc.transact_mut();
            txn.apply_update(base).map_err(|_| ExternalError::BadBase)?;
            if txn.has_missing_updates() {
                return Err(ExternalError::BadBase);
            }
        }
        let base_sv = doc.transact().state_vector();
        let existing = read_body.then(|| {
            let body_ref = doc.get_or_insert_xml_fragment(profile.fragment());
            import::read_body(&doc.transact_mut(), &body_ref)
        });
        Ok(ExternalFork {
            existing,
            doc,
            base_sv,
            live_sv: live_sv.clone(),
        })
    }

    /// The host's change as an update relative to the base: the fork takes the new
    /// title and body as a minimal diff, and the update is what it added; also the
    /// changed fields. See [`external_edit`] for `may_replace`; `profile` is the one
    /// the fork was made with.
    pub fn edit(
        self,
        title: Option<&str>,
        body: Option<&[BodyNode]>,
        may_replace: bool,
        profile: &EditorProfile,
    ) -> Result<ExternalEdit, ExternalError> {
        self.edit_keeping(title, body, may_replace, profile)
            .map(|(edit, _spent)| edit)
    }

    /// [`ExternalFork::edit`], handing the fork back instead of freeing it: freeing a
    /// large fork costs tens of milliseconds (a 2 MiB draft: ~50 ms), which the caller
    /// can spend after the edit is merged rather than before.
    pub fn edit_keeping(
        self,
        title: Option<&str>,
        body: Option<&[BodyNode]>,
        may_replace: bool,
        profile: &EditorProfile,
    ) -> Result<(ExternalEdit, SpentFork), ExternalError> {
        guarded(move || self.change(title, body, may_replace, profile))
            .ok_or(ExternalError::BadBase)
    }

    fn change(
        self,
        title: Option<&str>,
        body: Option<&[BodyNode]>,
        may_replace: bool,
        profile: &EditorProfile,
    ) -> (ExternalEdit, SpentFork) {
        let ExternalFork {
            existing,
            doc,
            base_sv,
            live_sv,
        } = self;
        // Replacing whole paragraphs is safe only if nobody typed since the base.
        let may_replace = may_replace && base_sv == live_sv;
        let mut replaced = 0;
        let title_ref = doc.get_or_insert_text(ROOT_TITLE);
        let body_ref = doc.get_or_insert_xml_fragment(profile.fragment());
        let mut fields = Vec::new();
        let mut txn = doc.transact_mut();
        if let Some(t) = title {
            if import::apply_title(&mut txn, &title_ref, t) {
                fields.push(ROOT_TITLE);
            }
        }
        if let Some(b) = body {
            let (changed, n) =
                import::apply_body_counting(&mut txn, &body_ref, existing, b, may_replace, profile);
            replaced = n;
            if changed {
                fields.push(ROOT_BODY);
            }
        }
        drop(txn);
        let update = doc.transact().encode_state_as_update_v1(&base_sv);
        let edit = ExternalEdit {
            update,
            fields,
            assumed: (replaced > 0).then_some(base_sv),
        };
        (edit, SpentFork(doc))
    }
}

/// A fork whose edit has been taken ([`ExternalFork::edit_keeping`]): only its memory
/// is left, freed when this is dropped.
pub struct SpentFork(#[allow(dead_code)] Doc);

/// Run yrs code that may panic on hostile input; `None` if it did.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
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

/// Whether the count that opens a lib0 v1 update or state vector (of clients; each
/// takes at least one byte after it) fits in the bytes. yrs reserves a hash map of
/// that many entries before reading any (`try_reserve`: it only fails past what the
/// allocator refuses), and a hash map's control bytes are written at once: five bytes
/// declaring 2^28 clients made it touch 256 MiB of a 10 GiB reservation, per message.
/// Found by the `room_receive_raw` fuzz target (docs/FUZZING.md).
pub(crate) fn count_fits(bytes: &[u8]) -> bool {
    let mut count: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        count |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return count <= (bytes.len() - i - 1) as u64;
        }
    }
    // Unterminated: yrs refuses it as it reads.
    true
}

/// Whether `update` holds content of some client past a clock the document does not
/// have yet (`sv`), with the clocks in between in neither.
///
/// yrs (0.28) no longer always holds such an update back as pending: where the
/// blocks' origins are present it integrates them around a Skip placeholder, and
/// neither the state vector nor `has_missing_updates` shows it. The content is then
/// in the document, and in what it encodes for a joiner, but in no update it emits:
/// the other members and the store never get it. Found by the `room_receive_raw`
/// fuzz target (docs/FUZZING.md). Every update a Yjs client sends over one socket
/// follows on from what it was sent, so refusing these refuses no real edit.
pub(crate) fn leaves_gap(update: &Update, sv: &StateVector) -> bool {
    // The first block of each client (a deleted run too) must follow on from what
    // the document has.
    if update
        .state_vector_lower()
        .iter()
        .any(|(client, clock)| *clock > sv.get(client))
    {
        return true;
    }
    let inserted = update.insertions(true);
    for (client, ranges) in inserted.iter() {
        let mut known = sv.get(client);
        let mut ranges: Vec<std::ops::Range<u32>> = ranges.iter().cloned().collect();
        ranges.sort_by_key(|r| r.start);
        for range in ranges {
            if range.start > known {
                return true;
            }
            known = known.max(range.end);
        }
    }
    false
}

/// Does this lib0-v1 state vector name no client (a client that has nothing yet)?
pub fn is_empty_state_vector(sv: &[u8]) -> bool {
    guarded(|| StateVector::decode_v1(sv).ok())
        .flatten()
        .is_some_and(|sv| sv.is_empty())
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

#[cfg(test)]
mod tests;
