//! Changes the host makes outside the editor (external changes, restores): an edit
//! computed on a fork of the document as the host read it ([`ExternalFork`],
//! [`external_edit`]), possibly on another thread, then merged into the live room
//! like any concurrent edit ([`Room::apply_external`]). The diff itself is the
//! importer's (`crate::import`); this file owns the fork and the merge.

use super::checks::guarded;
use super::members::Peer;
use super::sync::Room;
use crate::import::{self, BodyNode};
use crate::roots::{ROOT_BODY, ROOT_TITLE};
use crate::ExternalError;
use chorus_protocol::ChorusMessage;
use chorus_whitelist::EditorProfile;
use yrs::updates::decoder::Decode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update, WriteTxn};

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
///
/// [`Whitelist::takes_deep_events`]: crate::Whitelist::takes_deep_events
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

impl<P: Peer> Room<P> {
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
}
