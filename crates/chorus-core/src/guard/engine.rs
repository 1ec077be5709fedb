//! The [`Guard`] installed on one document: its observers (the title's, and in
//! reject mode a deep one on the body), the after-transaction hook that carries out
//! what they found, and the whole-document scan after a load. The order in which
//! yrs commits, and why each step sits where it does, is in the module doc of
//! [`guard`](super).
//!
//! What counts as a violation is judged by [`Scan`] (`scan.rs`) and, for format
//! items and what yrs would misplace, by the update's own bytes (`blocks.rs`,
//! `profile.rs`); this file keeps the guard's state between those steps and decides
//! between stripping and rejecting.

use super::actions::{execute, Action};
use super::blocks::{self, Blocks, Places};
use super::lib0::Unreadable;
use super::nodes::{branch_of, parent_of, ptr};
use super::scan::Scan;
use super::update_profile::UpdateProfile;
use super::verdict::{Neutralised, UnreadableUpdate, Verdict, Violation};
use chorus_whitelist::{Whitelist, WhitelistMode};
use std::sync::{Arc, Mutex, MutexGuard};
use yrs::branch::{BranchID, BranchPtr};
use yrs::types::{Change, Event, Events};
use yrs::{
    Array, ArrayRef, DeepObservable, Doc, Map, MapRef, Observable, Origin, Out, ReadTxn, TextRef,
    Transact, TransactionMut, Xml, XmlFragmentRef, XmlOut,
};

struct State {
    whitelist: Whitelist,
    active: bool,
    body: BranchPtr,
    title: BranchPtr,
    /// What strip mode removes.
    strip: Vec<Action>,
    /// Reject mode: the attribute values the transaction replaced, to put back.
    undo: Vec<Action>,
    found: Neutralised,
    verdict: Verdict,
    /// What the update being applied carries ([`UpdateProfile::UNKNOWN`] for any other
    /// transaction).
    profile: UpdateProfile,
    /// The format items of the update being applied, to judge each by itself.
    blocks: Option<Blocks>,
    /// Every format item this transaction adds is judged by its id ([`blocks`]),
    /// so the text checks leave marks alone (they would judge the same items again,
    /// as ranges, and miss those with nothing after them).
    marks_by_id: bool,
}

/// The guard installed on one document. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Guard {
    state: Arc<Mutex<State>>,
}

const HOOK_KEY: &str = "chorus-guard";
const SCAN_ORIGIN: &str = "chorus-guard-scan";

impl Guard {
    /// Install the guard's observers and hook on `doc`, whose roots are `title` and `body`.
    /// It starts inactive (so a stored document loads unchecked); see [`Guard::activate`].
    ///
    /// `on_commit` runs at the end of every transaction's after-transaction step, once
    /// the guard has carried out its actions; its flag says whether the guard
    /// neutralised anything in that transaction (the removed values are then still
    /// in the transaction until yrs garbage-collects them).
    pub fn install(
        doc: &Doc,
        title: &TextRef,
        body: &XmlFragmentRef,
        whitelist: Whitelist,
        on_commit: impl Fn(&TransactionMut, bool) + Send + Sync + 'static,
    ) -> Guard {
        let state = Arc::new(Mutex::new(State {
            whitelist,
            active: false,
            body: ptr(body),
            title: ptr(title),
            strip: Vec::new(),
            undo: Vec::new(),
            found: Neutralised::default(),
            verdict: Verdict::default(),
            profile: UpdateProfile::UNKNOWN,
            blocks: None,
            marks_by_id: false,
        }));
        let guard = Guard { state };

        // Only reject mode takes yrs' deep events: it needs their deltas and old values
        // to undo a refused update. Registering a deep observer makes yrs sort every
        // transaction's events by path, walking siblings from the start for each
        // comparison, so k edited nodes cost ~k × the body's length; strip mode reads
        // what changed from the transaction instead ([`Guard::check_body_changes`]).
        if guard.lock().whitelist.takes_deep_events() {
            let g = guard.clone();
            body.observe_deep(HOOK_KEY, move |txn, events| g.observe_body(txn, events));
        }
        let g = guard.clone();
        title.observe(HOOK_KEY, move |txn, event| {
            let mut st = g.lock();
            if !st.checking() {
                return;
            }
            let record_undo = st.whitelist.mode == WhitelistMode::Reject;
            let whitelist = st.whitelist.clone();
            let mut scan = Scan::new(&whitelist, record_undo);
            scan.marks_by_id = st.marks_by_id;
            let title = ptr(event.target());
            if st.profile.plain_text {
                scan.keys_of(txn, title);
            } else if !scan.text_changes(txn, title, event.delta(txn), true) {
                scan.refuse(Violation::Embed, Action::Purge { branch: title });
            }
            st.absorb(scan);
        });
        let g = guard.clone();
        doc.observe_after_transaction(HOOK_KEY, move |txn| {
            let neutralised = g.after_transaction(txn);
            on_commit(txn, neutralised);
        })
        .expect("installed before any transaction is open");
        guard
    }

    /// Tell the guard the bytes of the client update about to be applied. What they
    /// show spares text checks in strip mode (see [`profile`]); a keystroke then costs
    /// no walk of its text. Their format items are judged one by one after the update
    /// is applied ([`blocks`]). Holds until the next transaction commits.
    ///
    /// An update holding what a Yjs 13 client cannot decode (yrs' move and weak
    /// link items) is refused here, in every mode: relayed, every stock client in
    /// the document would drop it and diverge.
    /// `known`: the document's state vector, when the caller has it at hand (it is
    /// computed here otherwise).
    ///
    /// [`profile`]: super::profile
    pub fn before_update(
        &self,
        doc: &Doc,
        update: &[u8],
        known: Option<&yrs::StateVector>,
    ) -> Result<(), UnreadableUpdate> {
        let computed;
        let known = match known {
            Some(sv) => sv,
            None => {
                computed = doc.transact().state_vector();
                &computed
            }
        };
        let read = Blocks::read(update, Some(known));
        let mut st = self.lock();
        st.blocks = None;
        let blocks = match read {
            Ok(blocks) => blocks,
            Err(Unreadable::NotYjs) => return Err(UnreadableUpdate::NotYjs),
            Err(Unreadable::Misread) => return Err(UnreadableUpdate::Misread),
            Err(Unreadable::Malformed) => return Err(UnreadableUpdate::Malformed),
        };
        {
            let txn = doc.transact();
            if !blocks.astral.is_empty() {
                let places = Places {
                    title: st.title,
                    body: st.body,
                };
                if blocks.misplaces_strings(&txn, known, &places) {
                    return Err(UnreadableUpdate::Malformed);
                }
            }
            if blocks.straddles_parents(&txn, known)
                || blocks.long_map_entries(&txn, known)
                || blocks.sides_disagree(&txn, known)
            {
                return Err(UnreadableUpdate::Malformed);
            }
        }
        st.marks_by_id = st.checking();
        if st.checking() && !(blocks.formats.is_empty() && blocks.embeds.is_empty()) {
            st.blocks = Some(blocks);
        }
        // Reject mode reads every text's delta anyway (its deep events).
        st.profile = if st.checking() && st.whitelist.mode == WhitelistMode::Strip {
            UpdateProfile::of(update, &st.whitelist.policy, &st.whitelist.profile)
        } else {
            UpdateProfile::UNKNOWN
        };
        Ok(())
    }

    /// Start checking transactions.
    pub fn activate(&self) {
        self.lock().active = true;
    }

    /// What was neutralised or refused since the last call.
    /// Also ends what [`Guard::before_update`] said, should no transaction have
    /// committed since.
    pub fn take_verdict(&self) -> Verdict {
        let mut st = self.lock();
        st.profile = UpdateProfile::UNKNOWN;
        st.blocks = None;
        st.marks_by_id = false;
        std::mem::take(&mut st.verdict)
    }

    /// Check the whole document as it is now (after loading it from the store, whose
    /// content may predate the current policy) and neutralise what the policy refuses,
    /// in one transaction of its own.
    pub fn scan_document(&self, doc: &Doc) {
        let (whitelist, body, title) = {
            let st = self.lock();
            if st.whitelist.mode == WhitelistMode::Off {
                return;
            }
            (st.whitelist.clone(), st.body, st.title)
        };
        let mut txn = doc.transact_mut_with(SCAN_ORIGIN);
        let mut scan = Scan::new(&whitelist, false);
        // Every format item of the document is judged by its id below.
        scan.marks_by_id = true;
        let children: Vec<Out> = ArrayRef::from(body).iter(&txn).collect();
        for (i, child) in children.iter().enumerate() {
            scan.child(body, i as u32, child);
        }
        scan.drain(&txn);
        scan.keys_of(&txn, title);
        if !scan.existing_text(&txn, title, true) {
            scan.refuse(Violation::Embed, Action::Purge { branch: title });
        }
        scan.keys_of(&txn, body);
        let places = Places { title, body };
        let formats =
            blocks::whole_document_formats(&txn, &places, &whitelist.policy, &whitelist.profile);
        scan.refuse_items(Violation::Mark, &formats);
        scan.refuse_items(Violation::Embed, &blocks::whole_document_embeds(&txn));
        // The hook runs at commit (below) and carries the actions out.
        self.lock().absorb(scan);
        txn.commit();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe_body(&self, txn: &TransactionMut, events: &Events) {
        let mut st = self.lock();
        if !st.checking() {
            return;
        }
        let record_undo = st.whitelist.mode == WhitelistMode::Reject;
        let profile = st.profile;
        let whitelist = st.whitelist.clone();
        let mut scan = Scan::new(&whitelist, record_undo);
        scan.marks_by_id = st.marks_by_id;
        // Trust texts provisionally when the update's bytes say they can only have
        // received strings, allowed marks and nodes; confirmed below by counting nodes.
        scan.defer_texts = profile.texts_clean;
        for event in events.iter() {
            match event {
                Event::XmlFragment(e) => {
                    let (parent, tag) = match e.target() {
                        XmlOut::Element(el) => (ptr(el), Some(el.tag().clone())),
                        XmlOut::Fragment(f) => (ptr(f), None),
                        XmlOut::Text(t) => (ptr(t), None),
                    };
                    let mut index = 0u32;
                    for change in e.delta(txn) {
                        match change {
                            Change::Added(values) => {
                                for (i, v) in values.iter().enumerate() {
                                    scan.child(parent, index + i as u32, v);
                                }
                                index += values.len() as u32;
                            }
                            Change::Retain(n) => index += n,
                            Change::Removed(_) => {}
                        }
                    }
                    scan.changed_keys(|scan| {
                        for (key, change) in e.keys(txn) {
                            scan.changed_key(parent, tag.as_deref(), key, change);
                        }
                    });
                    scan.drain(txn);
                }
                Event::XmlText(e) => {
                    if !profile.texts_clean {
                        scan.text_event(txn, e);
                    }
                    let target = ptr(e.target());
                    scan.changed_keys(|scan| {
                        for (key, change) in e.keys(txn) {
                            scan.changed_key(target, None, key, change);
                        }
                    });
                }
                // Other shared types never survive inside the body (the guard removes
                // them when they arrive), so no event can come from one.
                _ => {}
            }
        }
        if scan.texts_unconfirmed(&profile) {
            for event in events.iter() {
                if let Event::XmlText(e) = event {
                    scan.text_event(txn, e);
                }
            }
            scan.check_deferred(txn);
        }
        st.absorb(scan);
    }

    /// Strip mode: judge what a committing transaction changed in the body, as reject
    /// mode's deep observer does from yrs' events, but from the transaction itself.
    ///
    /// The changed nodes are the ones yrs lists first in each chain of
    /// [`TransactionMut::changed_parent_types`] ([`changed_nodes`]). New children of a
    /// changed element (or of the body) are found by their ids in the transaction's
    /// insertions and walked in full; a changed element's attributes are judged again
    /// (all of them: yrs does not say which key changed, and the rest were allowed
    /// when they arrived); a changed text is checked in full unless the update's bytes
    /// vouch for it ([`profile`]). Each costs what yrs' event for it would have cost
    /// (a walk of that node's children or characters), with no sort.
    ///
    /// [`profile`]: super::profile
    fn check_body_changes(&self, txn: &TransactionMut) {
        let mut st = self.lock();
        // With deep events (reject mode), the body's observer has judged it already.
        if !st.checking() || st.whitelist.takes_deep_events() {
            return;
        }
        let (changed, exact) = changed_nodes(txn, st.body, st.title);
        if !exact {
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    "yrs lists a transaction's changed types in an unexpected order: the \
                     whitelist guard checks every listed node and its children (as safe, \
                     slower on large documents)"
                );
            }
        }
        if changed.is_empty() {
            return;
        }
        let profile = st.profile;
        let whitelist = st.whitelist.clone();
        let mut scan = Scan::new(&whitelist, false);
        scan.marks_by_id = st.marks_by_id;
        // Trust texts provisionally when the update's bytes say they can only have
        // received strings, allowed marks and nodes; confirmed below by counting nodes.
        scan.defer_texts = profile.texts_clean;
        let mut texts = Vec::new();
        for branch in changed {
            let node: Out = branch.into();
            match node {
                Out::YXmlElement(el) => {
                    scan.new_children(txn, branch);
                    let tag = el.tag().clone();
                    for (key, value) in el.attributes(txn) {
                        scan.attribute(branch, Some(&*tag), key, &value);
                    }
                }
                Out::YXmlFragment(_) => {
                    scan.new_children(txn, branch);
                    scan.keys_of(txn, branch);
                }
                Out::YXmlText(text) => {
                    scan.keys_of(txn, branch);
                    if !profile.texts_clean {
                        scan.changed_text(txn, &text);
                    }
                    texts.push(text);
                }
                // Other shared types never survive inside the body (the guard removes
                // them when they arrive), so none can have changed.
                _ => {}
            }
            scan.drain(txn);
        }
        if scan.texts_unconfirmed(&profile) {
            for text in &texts {
                scan.changed_text(txn, text);
            }
            scan.check_deferred(txn);
        }
        st.absorb(scan);
    }

    /// Judge each format item of the update by itself ([`blocks`]): those the text
    /// API cannot show (one with nothing after it, one under an element) included.
    fn check_formats(&self, txn: &TransactionMut) {
        let mut st = self.lock();
        let Some(blocks) = st.blocks.take() else {
            return;
        };
        if !st.checking() {
            return;
        }
        let places = Places {
            title: st.title,
            body: st.body,
        };
        let whitelist = st.whitelist.clone();
        let refused = blocks.refused_formats(
            txn,
            Some(txn.before_state()),
            &places,
            &whitelist.policy,
            &whitelist.profile,
        );
        let mut scan = Scan::new(&whitelist, false);
        scan.refuse_items(Violation::Mark, &refused);
        scan.refuse_items(
            Violation::Embed,
            &blocks.held_embeds(txn, Some(txn.before_state())),
        );
        st.absorb(scan);
    }

    /// Carry out what the observers decided; true if anything was neutralised.
    fn after_transaction(&self, txn: &mut TransactionMut) -> bool {
        self.check_body_changes(txn);
        self.check_formats(txn);
        let (actions, found, reject) = {
            let mut st = self.lock();
            st.profile = UpdateProfile::UNKNOWN;
            st.marks_by_id = false;
            if !st.checking() {
                return false;
            }
            let mut found = std::mem::take(&mut st.found);
            let strip = std::mem::take(&mut st.strip);
            let undo = std::mem::take(&mut st.undo);
            // Roots other than title and body: empty them.
            for root in foreign_roots(txn, st.body, st.title) {
                if ArrayRef::from(root).len(txn) > 0 || MapRef::from(root).len(txn) > 0 {
                    found.add(Violation::Root);
                }
            }
            // A whole-document scan after loading always strips: there is no sender to refuse.
            let reject = st.whitelist.mode == WhitelistMode::Reject
                && found.total() > 0
                && txn.origin() != Some(&Origin::from(SCAN_ORIGIN));
            st.verdict.neutralised.merge(&found);
            st.verdict.rejected |= reject;
            let actions = if reject {
                // Undo by id: delete everything the update inserted (format items,
                // which have no position, included), and put back the attribute
                // values it replaced. Undoing by position instead re-formatted the
                // range a refused mark covered (yrs then writes a marker restoring
                // the mark in force: the refused one), and emptied a whole text
                // that held an item the text API cannot place.
                let mut undo = undo;
                undo.push(Action::DeleteItems(txn.insert_set().clone()));
                undo
            } else {
                strip
            };
            (actions, found, reject)
        };
        if found.total() == 0 {
            return false;
        }
        tracing::debug!(?found, reject, "whitelist neutralised content");
        let state = self.lock();
        let (body, title) = (state.body, state.title);
        drop(state);
        let mut actions = actions;
        actions.extend(
            foreign_roots(txn, body, title)
                .into_iter()
                .map(|branch| Action::Purge { branch }),
        );
        execute(txn, actions);
        true
    }
}

impl State {
    fn checking(&self) -> bool {
        self.active && self.whitelist.mode != WhitelistMode::Off
    }

    fn absorb(&mut self, scan: Scan<'_>) {
        self.strip.extend(scan.strip);
        self.undo.extend(scan.undo);
        self.found.merge(&scan.found);
    }
}

/// The nodes a transaction changed that existed before it, outside the title and
/// other roots than the body (they have checks of their own), each once; and whether
/// they were told apart exactly.
///
/// yrs fills [`TransactionMut::changed_parent_types`] while committing: for each node
/// it made an event for (an existing node whose children, characters or attributes
/// changed), that node followed by each of its ancestors up to the root. The first
/// of each chain is a changed node; the rest may only hold one. Should a list not
/// read as such chains (a yrs that builds it otherwise), every node in it counts as
/// changed: slower (each ancestor's children are walked), never less checked.
pub(super) fn changed_nodes(
    txn: &TransactionMut,
    body: BranchPtr,
    title: BranchPtr,
) -> (Vec<BranchPtr>, bool) {
    let list = txn.changed_parent_types();
    let mut changed = Vec::new();
    let mut i = 0;
    let mut exact = true;
    'chains: while i < list.len() {
        let first = list[i];
        i += 1;
        let mut top = first;
        while let Some(parent) = parent_of(top) {
            if list.get(i) != Some(&parent) {
                exact = false;
                break 'chains;
            }
            top = parent;
            i += 1;
        }
        // A chain that ends on another root is the title's or a foreign root's. One
        // that ends below any root went up through a node that is not XML, which
        // only a hostile update puts in the body: checked, to be safe.
        if first != title && !elsewhere(top, body) {
            changed.push(first);
        }
    }
    if !exact {
        changed = list
            .iter()
            .copied()
            .filter(|b| *b != title && !elsewhere(top_of(*b), body))
            .collect();
    }
    let mut seen = rustc_hash::FxHashSet::default();
    changed.retain(|b| seen.insert(*b));
    (changed, exact)
}

/// Is `top` (the highest XML ancestor of a node) a root other than the body?
fn elsewhere(top: BranchPtr, body: BranchPtr) -> bool {
    matches!(top.id(), BranchID::Root(_)) && top != body
}

fn top_of(mut branch: BranchPtr) -> BranchPtr {
    while let Some(parent) = parent_of(branch) {
        branch = parent;
    }
    branch
}

/// Roots other than `title` and `body` (a client can create any root by naming it).
fn foreign_roots(txn: &TransactionMut, body: BranchPtr, title: BranchPtr) -> Vec<BranchPtr> {
    txn.root_refs()
        .filter_map(|(_, out)| branch_of(&out))
        .filter(|b| *b != body && *b != title)
        .collect()
}
