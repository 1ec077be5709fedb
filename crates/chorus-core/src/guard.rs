//! The content guard: the whitelist [`Policy`] enforced inside the transaction that
//! applies an update.
//!
//! yrs commits a transaction in this order: type observers, then after-transaction
//! hooks, then garbage collection of what the transaction deleted, then the update
//! events. The guard uses all three:
//!
//! 1. Find what the transaction changed — children added, attributes set, text, embeds
//!    and formatting inserted — and decide what must go (a list of [`Action`]s). Content
//!    new in this transaction is walked in full (with an explicit stack: a hostile update
//!    may nest deeply); content that was already there was checked when it arrived, so a
//!    keystroke costs a look at one text. The `title` has a shallow observer. The body is
//!    read by the after-transaction hook in strip mode: the changed nodes from
//!    [`TransactionMut::changed_parent_types`], new children by their ids in the
//!    transaction's insertions. Reject mode has a deep observer on the body instead,
//!    because undoing a refused update takes the attribute values it replaced, which
//!    yrs shows only in its events' old values; yrs then
//!    sorts each transaction's events by path, so a transaction editing k existing nodes
//!    costs ~k × the body's length there (docs/PERFORMANCE.md, "External changes").
//! 2. The after-transaction hook carries the actions out in the same transaction and
//!    empties any root other than `title` and `body`.
//! 3. yrs then garbage-collects the removed items, so the update that peers and the
//!    store receive never holds the removed values (a removed attribute's *key* may
//!    survive as a collected map entry; its value does not).
//!
//! In `reject` mode the observers also record the attribute values the transaction
//! replaced; if anything violated the policy, the hook undoes the whole transaction
//! instead: it deletes every item the transaction inserted by id (the insert set) and
//! puts those values back. Deletions
//! the refused update carried cannot be recalled inside yrs and still apply (they carry
//! no content); the sender is then closed so that it reloads.

use chorus_whitelist::{EditorProfile, HtmlCleaner, Policy};
use profile::UpdateProfile;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use yrs::branch::{Branch, BranchID, BranchPtr};
use yrs::types::text::YChange;
use yrs::types::{Attrs, Change, Delta, EntryChange, Event, Events};
use yrs::{
    Any, Array, ArrayRef, DeepObservable, Doc, GetString, Map, MapRef, Observable, Origin, Out,
    ReadTxn, Text, TextRef, Transact, TransactionMut, Xml, XmlFragmentRef, XmlOut,
};

/// What the guard does with content outside the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhitelistMode {
    /// Remove the disallowed parts; the allowed rest of the update survives.
    #[default]
    Strip,
    /// Refuse everything the update inserted; the sender must reload.
    Reject,
    /// No checks (benchmarks, trusted deployments).
    Off,
}

impl WhitelistMode {
    /// The configuration spelling (`strip`, `reject`, `off`).
    pub fn as_str(self) -> &'static str {
        match self {
            WhitelistMode::Strip => "strip",
            WhitelistMode::Reject => "reject",
            WhitelistMode::Off => "off",
        }
    }
}

impl std::str::FromStr for WhitelistMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strip" => Ok(WhitelistMode::Strip),
            "reject" => Ok(WhitelistMode::Reject),
            "off" => Ok(WhitelistMode::Off),
            other => Err(format!(
                "unknown whitelist mode {other:?} (expected strip, reject or off)"
            )),
        }
    }
}

/// Version of the checks the guard makes beyond the policy file (roots, embeds,
/// node kinds). Bump it when they change: content a build checked under older
/// rules is then checked again when it is next loaded.
const GUARD_RULES: u32 = 2;

/// A policy, what to do with content outside it, and the HTML sanitiser built from it.
#[derive(Debug, Clone)]
pub struct Whitelist {
    /// The content policy.
    pub policy: Arc<Policy>,
    /// Strip, reject or off.
    pub mode: WhitelistMode,
    /// Cleans rendered HTML with the same policy (belt and braces behind the guard).
    pub html: Arc<HtmlCleaner>,
    /// The names the editor writes, and the HTML each means (`html`: HTML's own).
    pub profile: Arc<EditorProfile>,
}

impl Whitelist {
    /// A whitelist for `policy` (builds its HTML sanitiser once).
    pub fn new(policy: Arc<Policy>, mode: WhitelistMode) -> Self {
        Whitelist {
            html: Arc::new(HtmlCleaner::new(policy.clone())),
            policy,
            mode,
            profile: Arc::new(EditorProfile::html()),
        }
    }

    /// The same whitelist for an editor writing `profile`'s names.
    pub fn with_profile(mut self, profile: Arc<EditorProfile>) -> Self {
        self.profile = profile;
        self
    }

    /// Identifies what content passing this whitelist conforms to: the policy's
    /// rules and the guard's own, or `off` when nothing is checked. A document
    /// stored under the same fingerprint needs no second look before it is served.
    pub fn fingerprint(&self) -> String {
        match self.mode {
            WhitelistMode::Off => "off".to_owned(),
            // Strip and reject both leave only conforming content.
            WhitelistMode::Strip | WhitelistMode::Reject => match self.profile.is_identity() {
                true => format!("guard{GUARD_RULES}:{}", self.policy.fingerprint()),
                false => format!(
                    "guard{GUARD_RULES}:{}:{}",
                    self.profile.fingerprint(),
                    self.policy.fingerprint()
                ),
            },
        }
    }

    /// Whether the guard takes yrs' deep events (reject mode, to undo a refused update
    /// precisely). Their cost grows with the number of existing nodes a transaction
    /// edits times the body's length, so an external change then replaces changed
    /// paragraphs past a bound instead of editing every one in place
    /// ([`crate::external_edit`]); in strip and off mode it edits them all in place.
    pub fn takes_deep_events(&self) -> bool {
        self.mode == WhitelistMode::Reject
    }

    /// Clean rendered HTML, unless the whitelist is off.
    pub fn clean_html(&self, html: &str) -> String {
        match self.mode {
            WhitelistMode::Off => html.to_owned(),
            _ => self.html.clean(html),
        }
    }

    /// Clean a host's HTML on its way into a document, unless the whitelist is off:
    /// one pass of the cleaner ([`chorus_whitelist::HtmlCleaner::clean_once`]), since
    /// the import parses the result and this guard judges every node it makes. Half
    /// the cost of [`Whitelist::clean_html`], whose fixed point is for HTML that
    /// leaves the service.
    pub fn clean_html_for_import(&self, html: &str) -> String {
        match self.mode {
            WhitelistMode::Off => html.to_owned(),
            _ => self.html.clean_once(html),
        }
    }
}

impl Default for Whitelist {
    /// The default policy in strip mode.
    fn default() -> Self {
        static DEFAULT: OnceLock<Whitelist> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                Whitelist::new(Arc::new(Policy::default_policy()), WhitelistMode::Strip)
            })
            .clone()
    }
}

/// The kinds of content the guard neutralises (labels of the metrics counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// An element not in the policy (removed with its subtree).
    Element,
    /// An attribute not allowed on its element, or with a refused value.
    Attribute,
    /// A `style` declaration not in the policy.
    Style,
    /// An inline mark (text formatting) not in the policy, or with a refused attribute.
    Mark,
    /// Non-text content inside text, or a non-XML node in the tree.
    Embed,
    /// Content in a root other than `title` and `body`.
    Root,
}

impl Violation {
    /// Every kind, in a fixed order.
    pub const ALL: [Violation; 6] = [
        Violation::Element,
        Violation::Attribute,
        Violation::Style,
        Violation::Mark,
        Violation::Embed,
        Violation::Root,
    ];

    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Violation::Element => "element",
            Violation::Attribute => "attribute",
            Violation::Style => "style",
            Violation::Mark => "mark",
            Violation::Embed => "embed",
            Violation::Root => "root",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many things of each kind were neutralised.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Neutralised {
    counts: [u64; 6],
}

impl Neutralised {
    /// Count for one kind.
    pub fn count(&self, kind: Violation) -> u64 {
        self.counts[kind.index()]
    }

    /// Sum over all kinds.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(kind, count)` for every kind with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (Violation, u64)> + '_ {
        Violation::ALL
            .into_iter()
            .map(|k| (k, self.count(k)))
            .filter(|(_, n)| *n > 0)
    }

    /// Add another tally to this one.
    pub fn merge(&mut self, other: &Neutralised) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    fn add(&mut self, kind: Violation) {
        self.counts[kind.index()] += 1;
    }
}

/// What the guard did during the transactions since the last [`Guard::take_verdict`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What was found outside the policy (and removed).
    pub neutralised: Neutralised,
    /// True if, in reject mode, a transaction was refused as a whole.
    pub rejected: bool,
}

/// One change the hook makes. Branch pointers stay valid until the end of the commit
/// that produced them, which is when the hook runs.
enum Action {
    RemoveChildren {
        parent: BranchPtr,
        index: u32,
        len: u32,
    },
    RemoveKey {
        target: BranchPtr,
        key: Arc<str>,
    },
    SetKey {
        target: BranchPtr,
        key: Arc<str>,
        value: Any,
    },
    Unformat {
        text: BranchPtr,
        index: u32,
        len: u32,
        keys: Vec<Arc<str>>,
    },
    RemoveText {
        text: BranchPtr,
        index: u32,
        len: u32,
    },
    /// Empty a root entirely (a foreign root, or a title whose content the text API
    /// cannot account for).
    Purge {
        branch: BranchPtr,
    },
    /// Delete items by id: format items, which have no position to name
    /// ([`blocks`]), and in reject mode everything the update inserted.
    DeleteItems(yrs::IdSet),
}

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
            Err(blocks::Unreadable::NotYjs) => return Err(UnreadableUpdate::NotYjs),
            Err(blocks::Unreadable::Misread) => return Err(UnreadableUpdate::Misread),
            Err(blocks::Unreadable::Malformed) => return Err(UnreadableUpdate::Malformed),
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
fn changed_nodes(
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

/// The parent of a node, if it is an XML node (yrs exposes a node's parent only
/// through [`Xml::parent`], whose default works for any branch).
fn parent_of(branch: BranchPtr) -> Option<BranchPtr> {
    struct Node(BranchPtr);
    impl AsRef<Branch> for Node {
        fn as_ref(&self) -> &Branch {
            &self.0
        }
    }
    impl Xml for Node {}
    Some(match Node(branch).parent()? {
        XmlOut::Element(e) => ptr(&e),
        XmlOut::Fragment(f) => ptr(&f),
        XmlOut::Text(t) => ptr(&t),
    })
}

/// Roots other than `title` and `body` (a client can create any root by naming it).
fn foreign_roots(txn: &TransactionMut, body: BranchPtr, title: BranchPtr) -> Vec<BranchPtr> {
    txn.root_refs()
        .filter_map(|(_, out)| branch_of(&out))
        .filter(|b| *b != body && *b != title)
        .collect()
}

fn ptr<T: AsRef<Branch>>(shared: &T) -> BranchPtr {
    BranchPtr::from(AsRef::<Branch>::as_ref(shared))
}

fn branch_of(out: &Out) -> Option<BranchPtr> {
    Some(match out {
        Out::YText(t) => ptr(t),
        Out::YArray(a) => ptr(a),
        Out::YMap(m) => ptr(m),
        Out::YXmlElement(e) => ptr(e),
        Out::YXmlFragment(f) => ptr(f),
        Out::YXmlText(t) => ptr(t),
        Out::UndefinedRef(b) => *b,
        _ => return None,
    })
}

/// Carry out actions: key changes and unformatting first (they shift no index), then
/// removals, last index first within each parent so earlier indices stay valid.
fn execute(txn: &mut TransactionMut, actions: Vec<Action>) {
    let purged: Vec<BranchPtr> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Purge { branch } => Some(*branch),
            _ => None,
        })
        .collect();
    for branch in &purged {
        purge(txn, *branch);
    }
    let mut removals: HashMap<BranchPtr, Vec<(u32, u32, bool)>> = HashMap::new();
    let mut by_id = Vec::new();
    for action in actions {
        match action {
            Action::Purge { .. } => {}
            // After every removal by position: those positions count these items.
            Action::DeleteItems(set) => by_id.push(set),
            Action::Unformat { text, .. } | Action::RemoveText { text, .. }
                if purged.contains(&text) => {}
            Action::RemoveKey { target, key } => {
                MapRef::from(target).remove(txn, &key);
            }
            Action::SetKey { target, key, value } => {
                MapRef::from(target).insert(txn, key, value);
            }
            Action::Unformat {
                text,
                index,
                len,
                keys,
            } => {
                let attrs: Attrs = keys.into_iter().map(|k| (k, Any::Null)).collect();
                TextRef::from(text).format(txn, index, len, attrs);
            }
            Action::RemoveChildren { parent, index, len } => removals
                .entry(parent)
                .or_default()
                .push((index, len, false)),
            Action::RemoveText { text, index, len } => {
                removals.entry(text).or_default().push((index, len, true))
            }
        }
    }
    for (branch, mut ranges) in removals {
        ranges.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut covered_from = u32::MAX;
        for (index, len, is_text) in ranges {
            // Overlapping ranges (an embed with a bad mark, say) are removed once.
            let len = len.min(covered_from.saturating_sub(index));
            if len == 0 {
                continue;
            }
            if is_text {
                TextRef::from(branch).remove_range(txn, index, len);
            } else {
                ArrayRef::from(branch).remove_range(txn, index, len);
            }
            covered_from = index;
        }
    }
    for set in by_id {
        blocks::delete_set(txn, &set);
    }
}

/// Delete everything a branch holds: every countable item whatever its content, then
/// its map entries. Its format items are judged by id like any other
/// ([`blocks`]: outside a body text, every one that is not an end marker goes).
/// Formatting the range away instead made yrs write a marker restoring the mark in
/// force at its end: a refused one came back (found by `room_receive_raw`).
fn purge(txn: &mut TransactionMut, branch: BranchPtr) {
    let len = branch.content_len;
    if len > 0 {
        ArrayRef::from(branch).remove_range(txn, 0, len);
    }
    let map = MapRef::from(branch);
    if map.len(txn) > 0 {
        map.clear(txn);
    }
}

/// The parent of an existing node and its index there (a scan of the parent's
/// children; only used for malformed nodes).
fn locate<T: ReadTxn>(txn: &T, node: &yrs::XmlTextRef) -> Option<(BranchPtr, u32)> {
    let parent = match node.parent()? {
        XmlOut::Element(e) => ptr(&e),
        XmlOut::Fragment(f) => ptr(&f),
        XmlOut::Text(_) => return None,
    };
    let me = ptr(node);
    ArrayRef::from(parent)
        .iter(txn)
        .position(|child| branch_of(&child) == Some(me))
        .map(|i| (parent, i as u32))
}

/// One pass of checks; collects actions and counts.
struct Scan<'p> {
    policy: &'p Policy,
    profile: &'p EditorProfile,
    record_undo: bool,
    strip: Vec<Action>,
    undo: Vec<Action>,
    found: Neutralised,
    /// New elements and texts whose contents still need walking, with their place.
    pending: Vec<(BranchPtr, BranchPtr, u32)>,
    /// How many new nodes were walked.
    walked: u32,
    /// Leave the contents of new texts unchecked, listed in `deferred`, for the
    /// caller to confirm that nothing can hide in them (see [`profile`]).
    defer_texts: bool,
    /// New texts whose contents were not checked yet, with their place.
    deferred: Vec<(BranchPtr, BranchPtr, u32)>,
    /// `style` values judged so far in this pass.
    styles: rustc_hash::FxHashMap<Arc<str>, bool>,
    /// Leave marks to the judgement of each format item by its id ([`blocks`]).
    marks_by_id: bool,
}

impl<'p> Scan<'p> {
    fn new(whitelist: &'p Whitelist, record_undo: bool) -> Self {
        Scan {
            policy: &whitelist.policy,
            profile: &whitelist.profile,
            record_undo,
            strip: Vec::new(),
            undo: Vec::new(),
            found: Neutralised::default(),
            pending: Vec::new(),
            walked: 0,
            defer_texts: false,
            deferred: Vec::new(),
            styles: rustc_hash::FxHashMap::default(),
            marks_by_id: false,
        }
    }

    fn refuse(&mut self, kind: Violation, action: Action) {
        self.found.add(kind);
        self.strip.push(action);
    }

    /// Items to delete by id (format items, embeds), each one violation of `kind`.
    fn refuse_items(&mut self, kind: Violation, ids: &[yrs::ID]) {
        if ids.is_empty() {
            return;
        }
        let mut set = yrs::IdSet::new();
        for id in ids {
            self.found.add(kind);
            set.insert(*id, 1);
        }
        // In reject mode the whole update is undone instead (`after_transaction`).
        self.strip.push(Action::DeleteItems(set));
    }

    /// A child at `index` of `parent` that is new (or being checked in full).
    fn child(&mut self, parent: BranchPtr, index: u32, value: &Out) {
        let remove = Action::RemoveChildren {
            parent,
            index,
            len: 1,
        };
        match value {
            Out::YXmlElement(el) => {
                if self.profile.allows_element(self.policy, el.tag()) {
                    self.pending.push((ptr(el), parent, index));
                } else {
                    self.refuse(Violation::Element, remove);
                }
            }
            Out::YXmlText(t) => self.pending.push((ptr(t), parent, index)),
            _ => self.refuse(Violation::Embed, remove),
        }
    }

    /// Walk the contents of every new element and text found so far.
    fn drain<T: ReadTxn>(&mut self, txn: &T) {
        while let Some((branch, parent, index)) = self.pending.pop() {
            self.walked += 1;
            let node: Out = branch.into();
            match node {
                Out::YXmlElement(el) => {
                    let tag = el.tag();
                    for (key, value) in el.attributes(txn) {
                        self.attribute(branch, Some(tag), key, &value);
                    }
                    for (i, child) in ArrayRef::from(branch).iter(txn).enumerate() {
                        self.child(branch, i as u32, &child);
                    }
                }
                Out::YXmlText(_) => {
                    self.keys_of(txn, branch);
                    if self.defer_texts {
                        self.deferred.push((branch, parent, index));
                    } else {
                        self.new_text(txn, branch, parent, index);
                    }
                }
                _ => {}
            }
        }
    }

    /// The children of an existing `parent` that the transaction inserted (by their
    /// ids; a child that is not a shared type never stays in the body, so it is new).
    fn new_children(&mut self, txn: &TransactionMut, parent: BranchPtr) {
        let inserted = txn.insert_set();
        for (i, child) in ArrayRef::from(parent).iter(txn).enumerate() {
            let new = match branch_of(&child) {
                Some(b) => match b.id() {
                    BranchID::Nested(id) => inserted.contains(&id),
                    BranchID::Root(_) => true,
                },
                None => true,
            };
            if new {
                self.child(parent, i as u32, &child);
            }
        }
    }

    /// Check an existing body text in full (its attributes: [`Scan::keys_of`]); drop
    /// the node if its content cannot be accounted for.
    fn changed_text(&mut self, txn: &TransactionMut, text: &yrs::XmlTextRef) {
        if !self.existing_text(txn, ptr(text), false) {
            self.drop_existing(txn, text);
        }
    }

    /// Drop an existing text node whose content cannot be accounted for.
    fn drop_existing(&mut self, txn: &TransactionMut, text: &yrs::XmlTextRef) {
        if let Some((parent, index)) = locate(txn, text) {
            self.drop_child(parent, index);
        }
    }

    /// Drop the child at `index` of `parent` whole (content the text API cannot
    /// account for: positions inside it cannot be trusted).
    fn drop_child(&mut self, parent: BranchPtr, index: u32) {
        self.refuse(
            Violation::Embed,
            Action::RemoveChildren {
                parent,
                index,
                len: 1,
            },
        );
    }

    /// Whether the texts trusted on the update's word (`defer_texts`) must be checked
    /// in full after all: a node of the update was not reached as the child of an
    /// element, so it may sit inside a text.
    fn texts_unconfirmed(&self, profile: &UpdateProfile) -> bool {
        profile.texts_clean && self.walked != profile.new_nodes
    }

    /// Check the new texts `defer_texts` left unchecked.
    fn check_deferred<T: ReadTxn>(&mut self, txn: &T) {
        for (text, parent, index) in std::mem::take(&mut self.deferred) {
            self.new_text(txn, text, parent, index);
        }
    }

    /// Check the contents of a new text at `index` of `parent`; drop it if they cannot
    /// be accounted for.
    fn new_text<T: ReadTxn>(&mut self, txn: &T, text: BranchPtr, parent: BranchPtr, index: u32) {
        if !self.existing_text(txn, text, false) {
            self.drop_child(parent, index);
        }
    }

    /// Check what a transaction changed in the contents of an existing body text (its
    /// attributes are judged from the event's keys).
    fn text_event(&mut self, txn: &TransactionMut, e: &yrs::types::xml::XmlTextEvent) {
        let text = ptr(e.target());
        if !self.text_changes(txn, text, e.delta(txn), false) {
            self.drop_existing(txn, e.target());
        }
    }

    /// Check a whole text (its embeds and formatting; attributes: [`Scan::keys_of`]). False if the text
    /// holds content its chunks do not account for (a string embed, or non-text items
    /// only a crafted update makes): positions cannot be trusted, the caller drops it all.
    fn existing_text<T: ReadTxn>(&mut self, txn: &T, text: BranchPtr, title: bool) -> bool {
        let chunks = TextRef::from(text).diff(txn, YChange::identity);
        let accounted: u32 = chunks.iter().map(|c| chunk_len(&c.insert)).sum();
        if accounted != text.content_len {
            return false;
        }
        let mut index = 0u32;
        for chunk in chunks {
            let len = chunk_len(&chunk.insert);
            self.inserted_chunk(
                text,
                index,
                len,
                &chunk.insert,
                chunk.attributes.as_deref(),
                title,
            );
            index += len;
        }
        true
    }

    /// Every map entry of `target` is refused (text nodes and roots carry no attributes).
    fn keys_of<T: ReadTxn>(&mut self, txn: &T, target: BranchPtr) {
        let keys: Vec<Arc<str>> = MapRef::from(target).keys(txn).map(Arc::from).collect();
        for key in keys {
            self.refuse(Violation::Attribute, Action::RemoveKey { target, key });
        }
    }

    fn inserted_chunk(
        &mut self,
        text: BranchPtr,
        index: u32,
        len: u32,
        value: &Out,
        attrs: Option<&Attrs>,
        title: bool,
    ) {
        if !matches!(value, Out::Any(Any::String(_))) {
            self.refuse(Violation::Embed, Action::RemoveText { text, index, len });
        }
        if let Some(attrs) = attrs {
            self.formatting(text, index, len, attrs, title);
        }
    }

    fn formatting(&mut self, text: BranchPtr, index: u32, len: u32, attrs: &Attrs, title: bool) {
        if self.marks_by_id {
            return;
        }
        let bad: Vec<Arc<str>> = attrs
            .iter()
            .filter(|(k, v)| {
                !matches!(v, Any::Null) && (title || !mark_allowed(self.policy, self.profile, k, v))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !bad.is_empty() {
            self.refuse(
                Violation::Mark,
                Action::Unformat {
                    text,
                    index,
                    len,
                    keys: bad,
                },
            );
        }
    }

    /// Check what a transaction changed in an existing text. The delta is enough to
    /// find a violation, but its positions cannot be trusted blindly: a string embed
    /// looks like text of its string's length while it occupies one position. So
    /// when something must go, the whole text is checked again from its content
    /// (which also detects such embeds). False if the text cannot be accounted for.
    fn text_changes<T: ReadTxn>(
        &mut self,
        txn: &T,
        text: BranchPtr,
        delta: &[Delta],
        title: bool,
    ) -> bool {
        let (strip_before, found_before) = (self.strip.len(), self.found.clone());
        let mut index = 0u32;
        for d in delta {
            match d {
                Delta::Inserted(value, attrs) => {
                    let len = chunk_len(value);
                    self.inserted_chunk(text, index, len, value, attrs.as_deref(), title);
                    index += len;
                }
                Delta::Retain(len, attrs) => {
                    if let Some(attrs) = attrs {
                        self.formatting(text, index, *len, attrs, title);
                    }
                    index += len;
                }
                Delta::Deleted(_) => {}
            }
        }
        // Attributes on a body text node arrive as event keys; the title has none.
        let has_keys = title && MapRef::from(text).len(txn) > 0;
        if self.strip.len() == strip_before && !has_keys && index <= text.content_len {
            // A clean text holds nothing but strings, so its length is its string's
            // length; anything else (a JSON value or embed the delta does not show)
            // makes them differ and earns the full check.
            let plain = TextRef::from(text).get_string(txn);
            if utf16_len(&plain) == text.content_len {
                return true;
            }
        }
        self.strip.truncate(strip_before);
        self.found = found_before;
        // A body text node's attributes were judged from the event's keys already.
        if title {
            self.keys_of(txn, text);
        }
        self.existing_text(txn, text, title)
    }

    /// Judge the changed map entries of an event (`judge`, which reads yrs' event
    /// keys). yrs unwraps the value of each changed entry, and a crafted entry can
    /// have none (a format item given a key): its panic would poison the room for
    /// every editor. Caught, it refuses the update instead (reject mode undoes all
    /// it inserted, by id).
    fn changed_keys(&mut self, judge: impl FnOnce(&mut Self)) {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| judge(&mut *self)));
        if caught.is_err() {
            self.found.add(Violation::Attribute);
        }
    }

    /// An attribute (map entry) that this transaction inserted or replaced.
    fn changed_key(
        &mut self,
        target: BranchPtr,
        tag: Option<&str>,
        key: &Arc<str>,
        change: &EntryChange,
    ) {
        let (new, old) = match change {
            EntryChange::Inserted(new) => (new, None),
            EntryChange::Updated(old, new) => (new, Some(old)),
            EntryChange::Removed(_) => return,
        };
        self.attribute(target, tag, key, new);
        // A new key's entry is deleted with the rest of the update, by id; a value
        // it replaced is put back. Only an element's attributes are put back, and
        // only values the policy can hold: yrs reports `undefined` as the old value
        // of an entry that had none (an item whose right origin named another
        // node's entry made yrs file it as a key of a text: writing that back put
        // an `undefined` into the text, found by `room_receive_blocks`).
        let restorable = matches!(
            old,
            Some(Out::Any(Any::String(_) | Any::Number(_) | Any::Bool(_)))
        );
        if let (true, true, Some(Out::Any(old))) =
            (self.record_undo, restorable && tag.is_some(), old)
        {
            self.undo.push(Action::SetKey {
                target,
                key: key.clone(),
                value: old.clone(),
            });
        }
    }

    /// Check `key = value` on `target`; `tag` is `None` for anything that is not an element.
    fn attribute(&mut self, target: BranchPtr, tag: Option<&str>, key: &str, value: &Out) {
        let Some(tag) = tag else {
            let key = Arc::from(key);
            self.refuse(Violation::Attribute, Action::RemoveKey { target, key });
            return;
        };
        let is_style = key.eq_ignore_ascii_case("style");
        let kind = if is_style {
            Violation::Style
        } else {
            Violation::Attribute
        };
        let text = match value {
            Out::Any(Any::String(s)) => Some(std::borrow::Cow::Borrowed(&**s)),
            Out::Any(Any::Number(n)) => Some(std::borrow::Cow::Owned(match n {
                yrs::any::Number::Int(i) => i.to_string(),
                yrs::any::Number::Float(f) => f.to_string(),
            })),
            Out::Any(Any::Bool(b)) => Some(std::borrow::Cow::Owned(b.to_string())),
            _ => None,
        };
        let Some(text) = text else {
            let key: Arc<str> = Arc::from(key);
            self.refuse(kind, Action::RemoveKey { target, key });
            return;
        };
        if !self.profile.is_identity() {
            // The editor's names: the profile says what the attribute means, the
            // policy whether that is allowed (no partial clean-up of a style value).
            if !self.profile.allows_attribute(self.policy, tag, key, &text) {
                let key: Arc<str> = Arc::from(key);
                self.refuse(kind, Action::RemoveKey { target, key });
            }
            return;
        }
        if !self.policy.allows_attribute_name(tag, key) {
            let key: Arc<str> = Arc::from(key);
            self.refuse(kind, Action::RemoveKey { target, key });
            return;
        }
        if !is_style {
            if self.policy.is_url_attribute(key) && !self.policy.allows_url(&text) {
                let key: Arc<str> = Arc::from(key);
                self.refuse(kind, Action::RemoveKey { target, key });
            }
            return;
        }
        // A paste repeats the same few styles on every cell: judge each value once.
        let allowed = match value {
            Out::Any(Any::String(s)) => match self.styles.get(s) {
                Some(&verdict) => verdict,
                None => {
                    let verdict = self.policy.allows_style(s);
                    self.styles.insert(s.clone(), verdict);
                    verdict
                }
            },
            _ => self.policy.allows_style(&text),
        };
        if allowed {
            return;
        }
        let key: Arc<str> = Arc::from(key);
        match self.policy.clean_style(&text) {
            Some(clean) => self.refuse(
                kind,
                Action::SetKey {
                    target,
                    key,
                    value: Any::String(clean.into()),
                },
            ),
            None => self.refuse(kind, Action::RemoveKey { target, key }),
        }
    }
}

/// Is this formatting attribute an allowed mark? Keys are mark names (inline tag names
/// in the `html` profile); y-prosemirror suffixes overlapping marks of one type as
/// `name--xxxxxxxx`.
fn mark_allowed(policy: &Policy, profile: &EditorProfile, key: &str, value: &Any) -> bool {
    let name = key.split_once("--").map_or(key, |(n, _)| n);
    match value {
        Any::Bool(true) => profile.allows_mark(policy, name, &[]),
        Any::Map(attrs) => {
            let mut pairs: Vec<(&str, String)> = Vec::with_capacity(attrs.len());
            for (k, v) in attrs.iter() {
                match v {
                    Any::Null | Any::Undefined => {}
                    Any::String(s) => pairs.push((k, s.to_string())),
                    Any::Bool(b) => pairs.push((k, b.to_string())),
                    Any::Number(yrs::any::Number::Int(i)) => pairs.push((k, i.to_string())),
                    Any::Number(yrs::any::Number::Float(f)) => pairs.push((k, f.to_string())),
                    _ => return false,
                }
            }
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            profile.allows_mark(policy, name, &borrowed)
        }
        _ => false,
    }
}

/// Length of a string in UTF-16 code units (ASCII, the common case, without a scan
/// in this crate's code: text can be megabytes).
fn utf16_len(s: &str) -> u32 {
    if s.is_ascii() {
        s.len() as u32
    } else {
        s.encode_utf16().count() as u32
    }
}

/// Length of a text chunk in the document's offset unit (UTF-16, as JavaScript counts).
fn chunk_len(value: &Out) -> u32 {
    match value {
        Out::Any(Any::String(s)) => utf16_len(s),
        _ => 1,
    }
}

mod blocks;
mod profile;

use blocks::{Blocks, Places};

/// An update the guard refuses before it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreadableUpdate {
    /// It holds a content or node kind a Yjs 13 client cannot decode (yrs' move,
    /// weak link or undefined node): relayed, every stock client would drop it
    /// and diverge.
    NotYjs,
    /// It holds legacy JSON content, which Yjs 13 and yrs read differently.
    Misread,
    /// Its bytes do not read as a v1 update, or it puts what no Yjs client would
    /// where yrs cannot walk it (a map entry longer than one clock, a string with
    /// characters past U+FFFF among nodes).
    Malformed,
}

#[cfg(test)]
mod tests;
