//! Changing the document into the target: each children list is walked once and
//! edited with one delta (retains over what stays, new subtrees built where they
//! go), removed children are deleted by id together at the end, and paired nodes
//! are updated in place (attributes, children, text) until the change's budgets
//! ([`PRECISE_TEXT_EDITS`], [`IN_PLACE_EDITS`]) are spent, then replaced whole.

use super::existing::{read_children, ExChild, ExKind, ExNode, ExistingBody};
use super::matching::{match_children, Pair};
use super::target::{normalise_children, TgKind, TgNode};
use super::text::{diff_text, diff_text_runs, inserted, Unit};
use crate::import::BodyNode;
use chorus_whitelist::profile::ValueType;
use chorus_whitelist::EditorProfile;
use std::collections::HashMap;
use std::sync::Arc;
use yrs::block::{ItemContent, Prelim, Unused};
use yrs::branch::{Branch, BranchPtr};
use yrs::encoding::write::Write;
use yrs::types::{Delta, TypeRef};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{
    Any, IdSet, In, Text, TextRef, TransactionMut, Update, Xml, XmlElementRef, XmlFragmentRef,
    XmlTextRef, ID,
};

/// How many texts one change edits character by character ([`diff_text`]); the
/// texts it edits in place after those are edited run by run ([`diff_text_runs`]).
///
/// A character edit inside a stored item makes yrs split the item, and a split costs
/// the number of items the item's client made (yrs keeps them in one array): when a
/// host rewrites every paragraph of a draft it imported itself, that is the size of
/// the document for every paragraph, twice in the fork and twice again in the live
/// document. Run edits split nothing. The first edits (in document order) keep full
/// precision, so a change to a few paragraphs keeps every cursor outside the changed
/// characters; the cost of those few is bounded by this constant times the document.
pub(in crate::import) const PRECISE_TEXT_EDITS: usize = 64;

/// How many existing nodes one change edits in place (a text's characters, an
/// element's attributes or its children list). A changed node reached once these are
/// spent is **replaced**: removed and inserted anew, whole.
///
/// Every existing node a transaction edits is one event for the whitelist guard's deep
/// observer on the body, and yrs sorts those events by path, computing both paths on
/// every comparison by walking each ancestor's children from the start
/// (`yrs::types::Events::new`): k events cost about k × the length of the body. Nodes
/// created in the transaction make no events of their own (the guard walks them as
/// part of their parent's), so replacing bounds that cost by this constant. In
/// document order, the first changed nodes keep their identity (and cursors inside
/// them their place, see [`PRECISE_TEXT_EDITS`]); in a replaced one a cursor moves to
/// the node's edge. Nodes that did not change are never replaced.
pub(in crate::import) const IN_PLACE_EDITS: usize = 2 * PRECISE_TEXT_EDITS;

/// What one change carries through the recursion.
struct Ctx {
    /// The document's offset unit.
    unit: Unit,
    /// Texts that may still be edited character by character ([`PRECISE_TEXT_EDITS`]).
    precise_texts: usize,
    /// Existing nodes that may still be edited in place ([`IN_PLACE_EDITS`]).
    in_place: usize,
    /// Existing children to remove, by id: removed together at the end, each found by
    /// its id ([`remove_all`]).
    removed: Vec<ID>,
    /// Changed nodes replaced whole (past [`IN_PLACE_EDITS`]).
    replaced: usize,
}

impl Ctx {
    /// One existing node was edited in place.
    fn spend(&mut self) {
        self.in_place = self.in_place.saturating_sub(1);
    }
}

/// `may_replace`: past [`IN_PLACE_EDITS`] changed nodes are replaced whole (fast, but
/// whatever someone typed into one concurrently would be lost with it, which is why
/// `crate::external_edit` allows it only when nothing happened since the base); without it every
/// changed node is edited in place. `existing`: the body as [`read_body`] read it, if
/// it was read before; read here otherwise. Returns (anything changed, nodes replaced).
///
/// [`read_body`]: super::read_body
pub(in crate::import) fn apply_body(
    txn: &mut TransactionMut,
    body: &XmlFragmentRef,
    existing: Option<ExistingBody>,
    target: &[BodyNode],
    may_replace: bool,
    profile: &EditorProfile,
) -> (bool, usize) {
    let mut ctx = Ctx {
        unit: Unit::of(txn),
        precise_texts: PRECISE_TEXT_EDITS,
        in_place: if may_replace {
            IN_PLACE_EDITS
        } else {
            usize::MAX
        },
        removed: Vec::new(),
        replaced: 0,
    };
    let existing = match existing {
        Some(ExistingBody(children)) => children,
        None => read_children(txn, body, 0),
    };
    let target = normalise_children(target, 0, profile);
    let mut changed = false;
    diff_children(txn, ptr(body), &existing, &target, &mut ctx, &mut changed);
    remove_all(txn, ctx.removed);
    (changed, ctx.replaced)
}

fn ptr<T: AsRef<Branch>>(shared: &T) -> BranchPtr {
    BranchPtr::from(shared.as_ref())
}

/// The edit of one children list, built while walking it and applied in one pass.
///
/// yrs finds an index by walking the list from its start, so inserting at k scattered
/// places one by one costs k × the list's length. Instead the list gets one delta
/// (yrs' text API works on any list of items; a shared type counts one, like an
/// element's children): retains over the existing children and the new nodes where
/// they go, applied in a single walk. Removals are left out of it (yrs' text removal
/// looks for formatting past the removed range, to the end of a list of elements) and
/// made by id instead ([`remove_all`]).
#[derive(Default)]
struct Splice<'t, 'a> {
    ops: Vec<Delta<NewNode<'t, 'a>>>,
    /// Existing children passed and not yet written (written only if an insertion
    /// follows).
    retained: u32,
    /// Whether the list changes at all (insertions or removals).
    changed: bool,
}

impl<'t, 'a> Splice<'t, 'a> {
    fn retain(&mut self) {
        self.retained += 1;
    }

    fn insert(&mut self, tg: &'t TgNode<'a>) {
        if self.retained > 0 {
            self.ops.push(Delta::Retain(self.retained, None));
            self.retained = 0;
        }
        self.ops.push(Delta::Inserted(NewNode(tg), None));
        self.changed = true;
    }

    fn insert_all(&mut self, targets: Option<&'t [TgNode<'a>]>) {
        for tg in targets.unwrap_or_default() {
            self.insert(tg);
        }
    }
}

fn diff_children<'t, 'a>(
    txn: &mut TransactionMut,
    parent: BranchPtr,
    existing: &[ExChild],
    target: &'t [TgNode<'a>],
    ctx: &mut Ctx,
    changed: &mut bool,
) {
    let pairs = match_children(existing, target);
    let mut splice = Splice::default();
    let mut next_target = 0;
    for (child, pair) in existing.iter().zip(pairs) {
        match pair {
            Some(Pair::Keep(t)) | Some(Pair::Update(t)) => {
                // Targets between the previous pair and this one go just before it.
                splice.insert_all(target.get(next_target..t));
                next_target = t + 1;
                splice.retain();
                if let (Some(Pair::Update(_)), Some(ex), Some(tg)) =
                    (pair, &child.node, target.get(t))
                {
                    match child.removable {
                        // Past the budget a changed child is replaced: the new one goes
                        // right after the old one, which is removed.
                        Some(id) if ctx.in_place == 0 => {
                            ctx.removed.push(id);
                            ctx.replaced += 1;
                            splice.insert(tg);
                        }
                        _ => update_node(txn, ex, tg, ctx, changed),
                    }
                }
            }
            None => {
                if let Some(id) = child.removable {
                    ctx.removed.push(id);
                    splice.changed = true;
                }
                splice.retain();
            }
        }
    }
    splice.insert_all(target.get(next_target..));
    if splice.changed {
        *changed = true;
        // The parent is an existing node edited in place (or the body).
        ctx.spend();
    }
    if !splice.ops.is_empty() {
        TextRef::from(parent).apply_delta(txn, splice.ops);
    }
}

/// Removes the children listed in `removed`, each found by its id (yrs applies a
/// deletion set that way): one update of the current transaction, holding only the
/// deletions. Their contents go with them.
fn remove_all(txn: &mut TransactionMut, mut removed: Vec<ID>) {
    if removed.is_empty() {
        return;
    }
    // In clock order, each id extends the set at its end (anything else is a search
    // and a shift per id).
    removed.sort_unstable_by_key(|id| (id.client, id.clock));
    let mut set = IdSet::new();
    for id in removed {
        set.insert(id, 1);
    }
    let mut encoder = EncoderV1::new();
    // No new items, then the deletion set.
    encoder.write_var(0u32);
    set.encode(&mut encoder);
    let update = Update::decode_v1(&encoder.to_vec()).expect("a deletion set decodes");
    if txn.apply_update(update).is_err() {
        // Every id is an item of this document, read in this transaction.
        tracing::warn!("import: removing children failed");
    }
}

/// Updates `ex` in place into `tg` (they are of the same kind; see [`match_children`]).
fn update_node(
    txn: &mut TransactionMut,
    ex: &ExNode,
    tg: &TgNode<'_>,
    ctx: &mut Ctx,
    changed: &mut bool,
) {
    match (&ex.kind, &tg.kind) {
        (
            ExKind::Element {
                el,
                attrs,
                stored,
                void,
                children,
                ..
            },
            TgKind::Element {
                attrs: tg_attrs,
                given,
                children: tg_children,
                ..
            },
        ) => {
            if update_attrs(txn, el, attrs, stored, tg_attrs, given) {
                *changed = true;
                ctx.spend();
            }
            if !void {
                diff_children(txn, ptr(el), children, tg_children, ctx, changed);
            }
        }
        (ExKind::Text { text, runs, .. }, TgKind::Text { runs: tg_runs }) => {
            let edited = if ctx.precise_texts > 0 {
                ctx.precise_texts -= 1;
                diff_text(txn, text, runs, tg_runs, ctx.unit)
            } else {
                diff_text_runs(txn, text, runs, tg_runs, ctx.unit)
            };
            if edited {
                *changed = true;
                ctx.spend();
            }
        }
        // Pairs are made by kind, so this does not happen; doing nothing keeps the
        // document valid if it ever did.
        _ => tracing::warn!("import: update between different kinds skipped"),
    }
}

/// An attribute's value as the editor stores it: a string, or for an editor profile
/// that says so, a number or a boolean (TipTap's heading `level: 2`). A value that
/// does not read as its type stays a string (the guard then judges it).
fn stored_value(value: &str, ty: ValueType) -> Any {
    match ty {
        ValueType::String => Any::from(value),
        ValueType::Number => value
            .parse::<i64>()
            .map(|n| Any::from(n as f64))
            .or_else(|_| value.parse::<f64>().map(Any::from))
            .unwrap_or_else(|_| Any::from(value)),
        ValueType::Boolean => match value {
            "true" => Any::Bool(true),
            "false" => Any::Bool(false),
            _ => Any::from(value),
        },
    }
}

/// Sets the attributes that differ and removes those gone; true if any changed.
fn update_attrs(
    txn: &mut TransactionMut,
    el: &XmlElementRef,
    attrs: &[(String, String)],
    stored: &HashMap<String, String>,
    tg_attrs: &[(String, String)],
    given: &[(&str, &str, ValueType)],
) -> bool {
    let mut changed = false;
    for &(name, value, ty) in given {
        let lower = name.to_ascii_lowercase();
        let current = attrs.iter().find(|(n, _)| *n == lower).map(|(_, v)| v);
        if current.map(String::as_str) == Some(value) {
            continue;
        }
        // Written under the name already stored, if any, so that one attribute changes.
        let key = stored.get(&lower).map_or(name, String::as_str);
        el.insert_attribute(txn, key, stored_value(value, ty));
        changed = true;
    }
    for (lower, _) in attrs {
        if tg_attrs.iter().any(|(n, _)| n == lower) {
            continue;
        }
        if let Some(name) = stored.get(lower) {
            el.remove_attribute(txn, name);
            changed = true;
        }
    }
    changed
}

/// A target node to insert, with its whole subtree: the element (or text) is created
/// where the delta puts it, then its attributes are set and its children inserted in
/// one delta of their own (one walk, however many).
struct NewNode<'t, 'a>(&'t TgNode<'a>);

impl Prelim for NewNode<'_, '_> {
    type Return = Unused;

    fn into_content(self, _txn: &mut TransactionMut) -> (ItemContent, Option<Self>) {
        let type_ref = match &self.0.kind {
            TgKind::Element { tag, .. } => TypeRef::XmlElement(Arc::from(*tag)),
            TgKind::Text { .. } => TypeRef::XmlText,
        };
        (ItemContent::Type(Branch::new(type_ref)), Some(self))
    }

    fn integrate(self, txn: &mut TransactionMut, inner_ref: BranchPtr) {
        match &self.0.kind {
            TgKind::Element {
                given, children, ..
            } => {
                let el = XmlElementRef::from(inner_ref);
                for &(name, value, ty) in given {
                    el.insert_attribute(txn, name, stored_value(value, ty));
                }
                if !children.is_empty() {
                    let delta: Vec<Delta<NewNode<'_, '_>>> = children
                        .iter()
                        .map(|child| Delta::Inserted(NewNode(child), None))
                        .collect();
                    TextRef::from(inner_ref).apply_delta(txn, delta);
                }
            }
            TgKind::Text { runs } => {
                // One delta: a single pass over the text, however many runs.
                let delta: Vec<Delta<In>> =
                    runs.iter().map(|(s, marks)| inserted(s, marks)).collect();
                XmlTextRef::from(inner_ref).apply_delta(txn, delta);
            }
        }
    }
}
