//! One pass of the guard's checks ([`Scan`]): what a transaction added or changed
//! (children, attributes, text, embeds, formatting) judged against the policy,
//! collected as [`Action`]s and counted as [`Violation`]s. It reads the document
//! and changes nothing; the engine (`engine.rs`) decides when a pass runs and
//! carries out what it collected.

use super::actions::Action;
use super::marks::mark_allowed;
use super::nodes::{branch_of, ptr, utf16_len};
use super::update_profile::UpdateProfile;
use super::verdict::{Neutralised, Violation};
use chorus_whitelist::Whitelist;
use chorus_whitelist::{EditorProfile, Policy};
use std::sync::Arc;
use yrs::branch::{BranchID, BranchPtr};
use yrs::types::text::YChange;
use yrs::types::{Attrs, Delta, EntryChange};
use yrs::{
    Any, Array, ArrayRef, GetString, Map, MapRef, Out, ReadTxn, Text, TextRef, TransactionMut, Xml,
    XmlOut,
};

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
pub(super) struct Scan<'p> {
    policy: &'p Policy,
    profile: &'p EditorProfile,
    record_undo: bool,
    pub(super) strip: Vec<Action>,
    pub(super) undo: Vec<Action>,
    pub(super) found: Neutralised,
    /// New elements and texts whose contents still need walking, with their place.
    pending: Vec<(BranchPtr, BranchPtr, u32)>,
    /// How many new nodes were walked.
    walked: u32,
    /// Leave the contents of new texts unchecked, listed in `deferred`, for the
    /// caller to confirm that nothing can hide in them (see [`profile`](super::profile)).
    pub(super) defer_texts: bool,
    /// New texts whose contents were not checked yet, with their place.
    deferred: Vec<(BranchPtr, BranchPtr, u32)>,
    /// `style` values judged so far in this pass.
    styles: rustc_hash::FxHashMap<Arc<str>, bool>,
    /// Leave marks to the judgement of each format item by its id ([`blocks`](super::blocks)).
    pub(super) marks_by_id: bool,
}

impl<'p> Scan<'p> {
    pub(super) fn new(whitelist: &'p Whitelist, record_undo: bool) -> Self {
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

    pub(super) fn refuse(&mut self, kind: Violation, action: Action) {
        self.found.add(kind);
        self.strip.push(action);
    }

    /// Items to delete by id (format items, embeds), each one violation of `kind`.
    pub(super) fn refuse_items(&mut self, kind: Violation, ids: &[yrs::ID]) {
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
    pub(super) fn child(&mut self, parent: BranchPtr, index: u32, value: &Out) {
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
    pub(super) fn drain<T: ReadTxn>(&mut self, txn: &T) {
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
    pub(super) fn new_children(&mut self, txn: &TransactionMut, parent: BranchPtr) {
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
    pub(super) fn changed_text(&mut self, txn: &TransactionMut, text: &yrs::XmlTextRef) {
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
    pub(super) fn texts_unconfirmed(&self, profile: &UpdateProfile) -> bool {
        profile.texts_clean && self.walked != profile.new_nodes
    }

    /// Check the new texts `defer_texts` left unchecked.
    pub(super) fn check_deferred<T: ReadTxn>(&mut self, txn: &T) {
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
    pub(super) fn text_event(&mut self, txn: &TransactionMut, e: &yrs::types::xml::XmlTextEvent) {
        let text = ptr(e.target());
        if !self.text_changes(txn, text, e.delta(txn), false) {
            self.drop_existing(txn, e.target());
        }
    }

    /// Check a whole text (its embeds and formatting; attributes: [`Scan::keys_of`]). False if the text
    /// holds content its chunks do not account for (a string embed, or non-text items
    /// only a crafted update makes): positions cannot be trusted, the caller drops it all.
    pub(super) fn existing_text<T: ReadTxn>(
        &mut self,
        txn: &T,
        text: BranchPtr,
        title: bool,
    ) -> bool {
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
    pub(super) fn keys_of<T: ReadTxn>(&mut self, txn: &T, target: BranchPtr) {
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
    pub(super) fn text_changes<T: ReadTxn>(
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
    pub(super) fn changed_keys(&mut self, judge: impl FnOnce(&mut Self)) {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| judge(&mut *self)));
        if caught.is_err() {
            self.found.add(Violation::Attribute);
        }
    }

    /// An attribute (map entry) that this transaction inserted or replaced.
    pub(super) fn changed_key(
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
    pub(super) fn attribute(
        &mut self,
        target: BranchPtr,
        tag: Option<&str>,
        key: &str,
        value: &Out,
    ) {
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

/// Length of a text chunk in the document's offset unit (UTF-16, as JavaScript counts).
fn chunk_len(value: &Out) -> u32 {
    match value {
        Out::Any(Any::String(s)) => utf16_len(s),
        _ => 1,
    }
}
