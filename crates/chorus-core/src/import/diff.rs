//! Applying [`BodyNode`]s to a live document as a minimal set of changes.
//!
//! Both sides are first brought to one normal form that mirrors what the renderer
//! writes (so "renders the same" and "compares equal" agree): tags, attribute names and
//! mark tags lower-cased, attributes and marks that `body_html` skips left out, mark
//! values reduced to their attribute strings, adjacent runs with equal marks merged.
//! Every normalised node carries a hash of its whole subtree, computed bottom-up once,
//! so matching a children list costs a hash comparison per pair; a match is confirmed
//! with a structural comparison before the existing child is left alone.

// Attribute values compare as the renderer writes them (its own function, so
// comparing and rendering can never disagree).
use crate::render::{attr_text, is_valid_attr_name, is_valid_tag, is_void, mark_tag};
use chorus_whitelist::profile::ValueType;
use chorus_whitelist::EditorProfile;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxHasher;
use yrs::block::{ItemContent, Prelim, Unused};
use yrs::branch::{Branch, BranchPtr};
use yrs::encoding::write::Write;
use yrs::types::text::YChange;
use yrs::types::{Attrs, Delta, ToJson, TypeRef};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{
    Any, Array, ArrayRef, BranchID, GetString, IdSet, In, OffsetKind, Out, Text, TextRef,
    TransactionMut, Update, Xml, XmlElementRef, XmlFragmentRef, XmlTextRef, ID,
};

use super::BodyNode;
use crate::render::MAX_DEPTH;

/// Up to this many cells (existing × target children left after trimming the common
/// prefix and suffix) the LCS is computed with a full table (2^20 cells of `u16` is
/// 2 MiB). External changes touch a few children, so real middles are tiny.
const LCS_MAX_CELLS: usize = 1 << 20;

/// Above [`LCS_MAX_CELLS`], Myers' algorithm finds the LCS in O((n + m) · D) when the
/// lists differ by at most this many insertions and deletions (its history takes
/// about D² words); beyond that, a greedy in-order match is used.
const MYERS_MAX_EDITS: usize = 512;

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
pub(super) const PRECISE_TEXT_EDITS: usize = 64;

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
pub(super) const IN_PLACE_EDITS: usize = 2 * PRECISE_TEXT_EDITS;

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

/// Normalised marks: tag → attribute name → value, all as the renderer writes them.
type Marks = BTreeMap<String, BTreeMap<String, String>>;

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// A body as it was read from the document, normalised for matching
/// ([`read_body`]): valid while the document is not changed, and only for it.
pub(crate) struct ExistingBody(Vec<ExChild>);

/// Read and normalise the existing `body`, the half of a change that needs no target:
/// a caller may do it while the target is still being prepared, then give it to
/// [`apply_body`] (the document must not change in between).
pub(super) fn read_body(txn: &TransactionMut, body: &XmlFragmentRef) -> ExistingBody {
    ExistingBody(read_children(txn, body, 0))
}

/// `may_replace`: past [`IN_PLACE_EDITS`] changed nodes are replaced whole (fast, but
/// whatever someone typed into one concurrently would be lost with it, which is why
/// `crate::external_edit` allows it only when nothing happened since the base); without it every
/// changed node is edited in place. `existing`: the body as [`read_body`] read it, if
/// it was read before; read here otherwise. Returns (anything changed, nodes replaced).
pub(super) fn apply_body(
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

pub(super) fn apply_title(txn: &mut TransactionMut, title: &TextRef, target: &str) -> bool {
    let unit = Unit::of(txn);
    let current = title.get_string(txn);
    if current == target {
        return false;
    }
    let old: Vec<char> = current.chars().collect();
    let new: Vec<char> = target.chars().collect();
    let (prefix, suffix) = common_ends(&old, &new, |a, b| a == b);
    let start = unit.len(old[..prefix].iter().copied());
    let removed = unit.len(old[prefix..old.len() - suffix].iter().copied());
    if removed > 0 {
        title.remove_range(txn, start, removed);
    }
    let inserted: String = new[prefix..new.len() - suffix].iter().collect();
    if !inserted.is_empty() {
        title.insert(txn, start, &inserted);
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Offsets
// ---------------------------------------------------------------------------------------------

/// The unit text indices are counted in: the document's [`OffsetKind`].
#[derive(Clone, Copy)]
enum Unit {
    Utf16,
    Bytes,
}

impl Unit {
    fn of(txn: &TransactionMut) -> Unit {
        match txn.doc().offset_kind() {
            OffsetKind::Utf16 => Unit::Utf16,
            OffsetKind::Bytes => Unit::Bytes,
        }
    }

    fn char_len(self, c: char) -> u32 {
        match self {
            Unit::Utf16 => c.len_utf16() as u32,
            Unit::Bytes => c.len_utf8() as u32,
        }
    }

    fn len(self, chars: impl Iterator<Item = char>) -> u32 {
        chars.map(|c| self.char_len(c)).sum()
    }
}

/// Lengths of the common prefix and suffix of `a` and `b` (not overlapping).
fn common_ends<T, U>(a: &[T], b: &[U], eq: impl Fn(&T, &U) -> bool) -> (usize, usize) {
    let max = a.len().min(b.len());
    let prefix = a.iter().zip(b).take_while(|(x, y)| eq(x, y)).count();
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max - prefix)
        .take_while(|(x, y)| eq(x, y))
        .count();
    (prefix, suffix)
}

// ---------------------------------------------------------------------------------------------
// The existing document, normalised
// ---------------------------------------------------------------------------------------------

/// One item of an existing children list.
struct ExChild {
    /// The normalised node, for children that can be matched or updated; `None` for
    /// items that can only be kept or removed.
    node: Option<ExNode>,
    /// The id of a removable child (always a shared type, one item long); `None` for
    /// items that stay where they are. Items the renderer does not show (non-XML
    /// values, empty texts, elements past the depth bound) are left where they are:
    /// removing them would change nothing visible and could strand a cursor.
    removable: Option<ID>,
}

struct ExNode {
    hash: u64,
    kind: ExKind,
}

enum ExKind {
    Element {
        el: XmlElementRef,
        tag: String,
        /// Visible attributes, normalised: (lower-cased name, value text), sorted, one
        /// per name.
        attrs: Vec<(String, String)>,
        /// The stored name of each visible attribute, by lower-cased name.
        stored: HashMap<String, String>,
        void: bool,
        children: Vec<ExChild>,
    },
    Text {
        text: XmlTextRef,
        /// The chunks as stored (not merged), for offsets and formatting.
        runs: Vec<ExRun>,
        /// `runs` with adjacent equal marks merged, for comparison.
        merged: Vec<(String, Marks)>,
    },
}

struct ExRun {
    text: String,
    marks: Marks,
    /// The stored formatting keys behind `marks` (`a--4f3a2b1c`), with their tag.
    keys: Vec<(Arc<str>, String)>,
}

impl ExChild {
    /// Whether the renderer writes anything for this child.
    fn is_visible(&self) -> bool {
        match &self.node {
            Some(ExNode {
                kind: ExKind::Text { merged, .. },
                ..
            }) => !merged.is_empty(),
            Some(_) => true,
            None => self.removable.is_some(),
        }
    }
}

/// The children of `parent`, an element at `depth` (the body is 0).
///
/// Walks the branch as an array, like the renderer, so that a non-XML item a client
/// slipped in is seen (and kept) without hiding what follows, and every item's index
/// is its index for `insert`/`remove_range`.
fn read_children<B: AsRef<ArrayRef>>(
    txn: &TransactionMut,
    parent: &B,
    depth: usize,
) -> Vec<ExChild> {
    let items: &ArrayRef = parent.as_ref();
    let mut children = Vec::new();
    for item in items.iter(txn) {
        let child = match item {
            Out::YXmlElement(el) if depth < MAX_DEPTH => {
                let id = item_id(&el);
                ExChild {
                    node: Some(read_element(txn, el, depth + 1)),
                    removable: id,
                }
            }
            Out::YXmlText(text) => {
                let id = item_id(&text);
                match read_text(txn, text) {
                    Some(node) => {
                        let visible =
                            matches!(&node.kind, ExKind::Text { merged, .. } if !merged.is_empty());
                        ExChild {
                            node: Some(node),
                            removable: id.filter(|_| visible),
                        }
                    }
                    // A text with embeds cannot be diffed run by run; it is replaced whole.
                    None => ExChild {
                        node: None,
                        removable: id,
                    },
                }
            }
            // Not produced by y-prosemirror; shows its children, so it cannot stay if the
            // target does not have them, and there is no way to match it.
            Out::YXmlFragment(f) => ExChild {
                node: None,
                removable: item_id(&f),
            },
            _ => ExChild {
                node: None,
                removable: None,
            },
        };
        children.push(child);
    }
    children
}

/// The id of the item holding a nested shared type (one item long).
fn item_id<T: AsRef<Branch>>(shared: &T) -> Option<ID> {
    match shared.as_ref().id() {
        BranchID::Nested(id) => Some(id),
        BranchID::Root(_) => None,
    }
}

fn ptr<T: AsRef<Branch>>(shared: &T) -> BranchPtr {
    BranchPtr::from(shared.as_ref())
}

fn read_element(txn: &TransactionMut, el: XmlElementRef, depth: usize) -> ExNode {
    let tag = el.tag().to_ascii_lowercase();
    let void = is_void(&tag);
    let mut visible: Vec<(String, String)> = el
        .attributes(txn)
        .filter(|(name, _)| is_valid_attr_name(name))
        .filter_map(|(name, value)| Some((name.to_owned(), attr_text(&value.to_json(txn))?)))
        .collect();
    // Sorted by stored name, then the first per lower-cased name: what the renderer
    // writes and an HTML parser reads back.
    visible.sort();
    let mut attrs: Vec<(String, String)> = Vec::with_capacity(visible.len());
    let mut stored = HashMap::with_capacity(visible.len());
    for (name, value) in visible {
        let lower = name.to_ascii_lowercase();
        if stored.contains_key(&lower) {
            continue;
        }
        stored.insert(lower.clone(), name);
        attrs.push((lower, value));
    }
    attrs.sort();
    let children = if void {
        Vec::new()
    } else {
        read_children(txn, &el, depth)
    };
    let mut h = FxHasher::default();
    hash_element_head(&mut h, &tag, &attrs);
    for child in children.iter().filter(|c| c.is_visible()) {
        match &child.node {
            Some(node) => node.hash.hash(&mut h),
            // Nothing in a target hashes to this: the parent can only be updated.
            None => u64::MAX.hash(&mut h),
        }
    }
    ExNode {
        hash: h.finish(),
        kind: ExKind::Element {
            el,
            tag,
            attrs,
            stored,
            void,
            children,
        },
    }
}

/// The runs of an XML text, or `None` if it holds anything but strings (embeds).
fn read_text(txn: &TransactionMut, text: XmlTextRef) -> Option<ExNode> {
    let mut runs = Vec::new();
    for chunk in text.diff(txn, YChange::identity) {
        let Out::Any(Any::String(s)) = chunk.insert else {
            return None;
        };
        let (marks, keys) = chunk
            .attributes
            .map(|attrs| stored_marks(&attrs))
            .unwrap_or_default();
        runs.push(ExRun {
            text: s.to_string(),
            marks,
            keys,
        });
    }
    let merged = merge_runs(runs.iter().map(|r| (r.text.as_str(), &r.marks)));
    Some(ExNode {
        hash: hash_text(&merged),
        kind: ExKind::Text { text, runs, merged },
    })
}

/// The marks of a stored chunk, as the renderer writes them: null values dropped, the
/// tag is the key up to its first `--`, marks with invalid tags skipped, an object
/// value gives the attributes (invalid names and null values skipped), any other value
/// (`true`) none. When several keys share a tag the last one (by key) wins, as the
/// innermost of the nested tags the renderer writes does when parsed back.
fn stored_marks(attrs: &Attrs) -> (Marks, Vec<(Arc<str>, String)>) {
    let mut keyed: Vec<(&Arc<str>, &Any)> = attrs
        .iter()
        .filter(|(_, v)| !matches!(v, Any::Null | Any::Undefined))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(b.0));
    let mut marks = Marks::new();
    let mut keys = Vec::with_capacity(keyed.len());
    for (key, value) in keyed {
        let tag = mark_tag(key).to_ascii_lowercase();
        if !is_valid_tag(&tag) {
            continue;
        }
        let mut mark_attrs = BTreeMap::new();
        if let Any::Map(map) = value {
            for (name, v) in map.iter() {
                if is_valid_attr_name(name) {
                    if let Some(text) = attr_text(v) {
                        mark_attrs.insert(name.to_ascii_lowercase(), text);
                    }
                }
            }
        }
        marks.insert(tag.clone(), mark_attrs);
        keys.push((key.clone(), tag));
    }
    (marks, keys)
}

// ---------------------------------------------------------------------------------------------
// The target, normalised
// ---------------------------------------------------------------------------------------------

struct TgNode<'a> {
    hash: u64,
    kind: TgKind<'a>,
}

enum TgKind<'a> {
    Element {
        /// As given, for inserting.
        tag: &'a str,
        /// Lower-cased, for comparing.
        key: String,
        /// (lower-cased name, value), sorted, one per name (the first given).
        attrs: Vec<(String, String)>,
        /// (name as given, value, how the editor stores it), in the given order, one
        /// per name.
        given: Vec<(&'a str, &'a str, ValueType)>,
        /// Empty for a void element (the renderer writes none).
        children: Vec<TgNode<'a>>,
    },
    Text {
        /// Non-empty runs, adjacent equal marks merged.
        runs: Vec<(String, Marks)>,
    },
}

/// The target children at `depth` (the body is 0): texts merged and emptied ones
/// dropped, elements past [`MAX_DEPTH`] dropped, void elements' children dropped.
fn normalise_children<'a>(
    nodes: &'a [BodyNode],
    depth: usize,
    profile: &EditorProfile,
) -> Vec<TgNode<'a>> {
    let mut out: Vec<TgNode<'_>> = Vec::with_capacity(nodes.len());
    let mut pending: Vec<(String, Marks)> = Vec::new();
    for node in nodes {
        match node {
            BodyNode::Text(runs) => {
                for run in runs {
                    push_merged(&mut pending, &run.text, normalise_marks(&run.marks));
                }
            }
            BodyNode::Element {
                tag,
                attrs,
                children,
            } => {
                flush_text(&mut out, &mut pending);
                if depth >= MAX_DEPTH {
                    continue;
                }
                out.push(normalise_element(tag, attrs, children, depth + 1, profile));
            }
        }
    }
    flush_text(&mut out, &mut pending);
    out
}

fn normalise_element<'a>(
    tag: &'a str,
    attrs: &'a [(String, String)],
    children: &'a [BodyNode],
    depth: usize,
    profile: &EditorProfile,
) -> TgNode<'a> {
    let node = profile.node(tag);
    let key = tag.to_ascii_lowercase();
    let void = is_void(&key);
    let mut given: Vec<(&str, &str, ValueType)> = Vec::with_capacity(attrs.len());
    let mut norm: Vec<(String, String)> = Vec::with_capacity(attrs.len());
    for (name, value) in attrs {
        // Names the renderer would not write could never compare equal: leave them out
        // rather than write them on every import.
        if !is_valid_attr_name(name) {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if norm.iter().any(|(n, _)| *n == lower) {
            continue;
        }
        let ty = node
            .and_then(|n| n.attributes.get(name))
            .map_or(ValueType::String, |a| a.value_type);
        given.push((name.as_str(), value.as_str(), ty));
        norm.push((lower, value.clone()));
    }
    norm.sort();
    let children = if void {
        Vec::new()
    } else {
        normalise_children(children, depth, profile)
    };
    let mut h = FxHasher::default();
    hash_element_head(&mut h, &key, &norm);
    for child in &children {
        child.hash.hash(&mut h);
    }
    TgNode {
        hash: h.finish(),
        kind: TgKind::Element {
            tag,
            key,
            attrs: norm,
            given,
            children,
        },
    }
}

fn normalise_marks(marks: &BTreeMap<String, BTreeMap<String, String>>) -> Marks {
    let mut out = Marks::new();
    for (tag, attrs) in marks {
        let tag = tag.to_ascii_lowercase();
        if !is_valid_tag(&tag) {
            continue;
        }
        let attrs = attrs
            .iter()
            .filter(|(name, _)| is_valid_attr_name(name))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        out.insert(tag, attrs);
    }
    out
}

fn push_merged(runs: &mut Vec<(String, Marks)>, text: &str, marks: Marks) {
    if text.is_empty() {
        return;
    }
    match runs.last_mut() {
        Some((last, last_marks)) if *last_marks == marks => last.push_str(text),
        _ => runs.push((text.to_owned(), marks)),
    }
}

fn merge_runs<'a>(runs: impl Iterator<Item = (&'a str, &'a Marks)>) -> Vec<(String, Marks)> {
    let mut merged = Vec::new();
    for (text, marks) in runs {
        push_merged(&mut merged, text, marks.clone());
    }
    merged
}

fn flush_text(out: &mut Vec<TgNode<'_>>, pending: &mut Vec<(String, Marks)>) {
    if !pending.is_empty() {
        let runs = std::mem::take(pending);
        out.push(TgNode {
            hash: hash_text(&runs),
            kind: TgKind::Text { runs },
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Hashing and comparison
// ---------------------------------------------------------------------------------------------

fn hash_element_head(h: &mut FxHasher, tag: &str, attrs: &[(String, String)]) {
    1u8.hash(h);
    tag.hash(h);
    attrs.hash(h);
}

fn hash_text(runs: &[(String, Marks)]) -> u64 {
    let mut h = FxHasher::default();
    2u8.hash(&mut h);
    runs.hash(&mut h);
    h.finish()
}

/// Whether `ex` renders exactly as `tg` (structurally, not by hash).
fn same(ex: &ExNode, tg: &TgNode<'_>) -> bool {
    if ex.hash != tg.hash {
        return false;
    }
    match (&ex.kind, &tg.kind) {
        (ExKind::Text { merged, .. }, TgKind::Text { runs }) => merged == runs,
        (
            ExKind::Element {
                tag,
                attrs,
                children,
                void,
                ..
            },
            TgKind::Element {
                key,
                attrs: tg_attrs,
                children: tg_children,
                ..
            },
        ) => {
            if tag != key || attrs != tg_attrs {
                return false;
            }
            if *void {
                return true;
            }
            let mut visible = children.iter().filter(|c| c.is_visible());
            for tg_child in tg_children {
                match visible.next().and_then(|c| c.node.as_ref()) {
                    Some(ex_child) if same(ex_child, tg_child) => {}
                    _ => return false,
                }
            }
            visible.next().is_none()
        }
        _ => false,
    }
}

/// What can be updated in place into what: same tag, or text into text.
#[derive(PartialEq, Eq, Hash, Clone, Copy)]
enum Kind<'a> {
    Text,
    Element(&'a str),
}

fn ex_kind(node: &ExNode) -> Kind<'_> {
    match &node.kind {
        ExKind::Text { .. } => Kind::Text,
        ExKind::Element { tag, .. } => Kind::Element(tag),
    }
}

fn tg_kind<'a>(node: &'a TgNode<'_>) -> Kind<'a> {
    match &node.kind {
        TgKind::Text { .. } => Kind::Text,
        TgKind::Element { key, .. } => Kind::Element(key),
    }
}

// ---------------------------------------------------------------------------------------------
// Matching a children list
// ---------------------------------------------------------------------------------------------

/// A longest common subsequence of `a` and `b`, as increasing index pairs.
///
/// Exact: a table of suffix LCS lengths up to [`LCS_MAX_CELLS`], else Myers' algorithm
/// up to [`MYERS_MAX_EDITS`]. For lists that are both long and very different,
/// [`patience`] matching: not always the longest, always valid, and it still keeps
/// every child that only moved relative to a few others in place.
fn lcs<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    exact_lcs(a, b).unwrap_or_else(|| patience(a, b))
}

/// The exact tiers of [`lcs`]: `None` when the lists are too long and too
/// different for either bound.
fn exact_lcs<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Option<Vec<(usize, usize)>> {
    if a.is_empty() || b.is_empty() {
        return Some(Vec::new());
    }
    if a.len().saturating_mul(b.len()) <= LCS_MAX_CELLS {
        return Some(lcs_table(a, b));
    }
    myers(a, b, MYERS_MAX_EDITS)
}

/// The bounded tiers of [`lcs`], then a greedy in-order match (each `b` takes the
/// first unused equal `a` after the previous match), which is linear.
fn lcs_bounded<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    if let Some(pairs) = exact_lcs(a, b) {
        return pairs;
    }
    let mut pairs = Vec::new();
    let mut positions: HashMap<K, VecDeque<usize>> = HashMap::new();
    for (i, k) in a.iter().enumerate() {
        positions.entry(*k).or_default().push_back(i);
    }
    let mut next = 0;
    for (j, k) in b.iter().enumerate() {
        if let Some(queue) = positions.get_mut(k) {
            while queue.front().is_some_and(|&i| i < next) {
                queue.pop_front();
            }
            if let Some(i) = queue.pop_front() {
                pairs.push((i, j));
                next = i + 1;
            }
        }
    }
    pairs
}

/// Patience matching: the keys that occur exactly once in each list are paired, the
/// longest sequence of those pairs that is in order in both lists becomes the anchors,
/// and the gaps between anchors are matched with [`lcs_bounded`]. O(n log n) plus the
/// gaps.
fn patience<K: Eq + Hash + Copy>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    // key → (count in a, index in a, count in b, index in b)
    let mut seen: HashMap<K, (u32, usize, u32, usize)> = HashMap::new();
    for (i, k) in a.iter().enumerate() {
        let entry = seen.entry(*k).or_insert((0, i, 0, 0));
        entry.0 += 1;
    }
    for (j, k) in b.iter().enumerate() {
        if let Some(entry) = seen.get_mut(k) {
            entry.2 += 1;
            entry.3 = j;
        }
    }
    let mut unique: Vec<(usize, usize)> = seen
        .values()
        .filter(|e| e.0 == 1 && e.2 == 1)
        .map(|e| (e.1, e.3))
        .collect();
    unique.sort_unstable_by_key(|&(_, j)| j);
    let anchors = increasing_in_a(&unique);

    let mut pairs = Vec::new();
    let (mut i0, mut j0) = (0, 0);
    for &(i, j) in &anchors {
        pairs.extend(
            lcs_bounded(&a[i0..i], &b[j0..j])
                .into_iter()
                .map(|(gi, gj)| (i0 + gi, j0 + gj)),
        );
        pairs.push((i, j));
        (i0, j0) = (i + 1, j + 1);
    }
    pairs.extend(
        lcs_bounded(&a[i0..], &b[j0..])
            .into_iter()
            .map(|(gi, gj)| (i0 + gi, j0 + gj)),
    );
    pairs
}

/// The longest subsequence of `pairs` (sorted by their second index) whose first
/// indices increase too (patience sorting, O(k log k)).
fn increasing_in_a(pairs: &[(usize, usize)]) -> Vec<(usize, usize)> {
    // tails[l]: the pair ending the best subsequence of length l + 1 found so far.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; pairs.len()];
    for (p, &(i, _)) in pairs.iter().enumerate() {
        let len = tails.partition_point(|&t| pairs[t].0 < i);
        if len > 0 {
            prev[p] = Some(tails[len - 1]);
        }
        if len == tails.len() {
            tails.push(p);
        } else {
            tails[len] = p;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut cur = tails.last().copied();
    while let Some(p) = cur {
        out.push(pairs[p]);
        cur = prev[p];
    }
    out.reverse();
    out
}

/// The LCS from a full table; `n · m` must be at most [`LCS_MAX_CELLS`].
fn lcs_table<K: Eq>(a: &[K], b: &[K]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    // len[i * (m + 1) + j] = LCS length of a[i..] and b[j..]; it never exceeds
    // min(n, m) ≤ 1024 here, so u16 is enough.
    let w = m + 1;
    let mut len = vec![0u16; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i * w + j] = if a[i] == b[j] {
                len[(i + 1) * w + j + 1] + 1
            } else {
                len[(i + 1) * w + j].max(len[i * w + j + 1])
            };
        }
    }
    // Walk forward; on a tie skip the existing child first, so that an inserted
    // child is paired with nothing rather than shifting its equal neighbours.
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if len[(i + 1) * w + j] >= len[i * w + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Myers' greedy shortest-edit-script algorithm: the LCS of `a` and `b` as index
/// pairs, or `None` if more than `max_d` insertions and deletions separate them.
fn myers<K: Eq>(a: &[K], b: &[K], max_d: usize) -> Option<Vec<(usize, usize)>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = max_d.min(a.len() + b.len()) as isize;
    let off = max_d + 1;
    let idx = |k: isize| (k + off) as usize;
    // v[idx(k)]: the furthest x reached on diagonal k = x - y.
    let mut v = vec![0isize; (2 * max_d + 3) as usize];
    // history[d]: v for diagonals -d..=d after round d.
    let mut history: Vec<Vec<isize>> = Vec::new();
    for d in 0..=max_d {
        for k in (-d..=d).step_by(2) {
            let down = k == -d || (k != d && v[idx(k - 1)] < v[idx(k + 1)]);
            let mut x = if down {
                v[idx(k + 1)]
            } else {
                v[idx(k - 1)] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx(k)] = x;
            if x >= n && y >= m {
                history.push(v[idx(-d)..=idx(d)].to_vec());
                return Some(myers_path(n, m, &history));
            }
        }
        history.push(v[idx(-d)..=idx(d)].to_vec());
    }
    None
}

/// Walks Myers' history back from (n, m), collecting the diagonal moves (matches).
fn myers_path(n: isize, m: isize, history: &[Vec<isize>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..history.len() as isize).rev() {
        let prev = &history[(d - 1) as usize];
        let at = |k: isize| prev[(k + d - 1) as usize];
        let k = x - y;
        let down = k == -d || (k != d && at(k - 1) < at(k + 1));
        let prev_k = if down { k + 1 } else { k - 1 };
        let prev_x = at(prev_k);
        // Round d's edit lands here; the snake after it is made of matches.
        let start_x = if down { prev_x } else { prev_x + 1 };
        while x > start_x {
            x -= 1;
            y -= 1;
            pairs.push((x as usize, y as usize));
        }
        x = prev_x;
        y = prev_x - prev_k;
    }
    // Round 0: the common prefix.
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        pairs.push((x as usize, y as usize));
    }
    pairs.reverse();
    pairs
}

/// How an existing child relates to the target.
#[derive(Clone, Copy)]
enum Pair {
    /// Renders exactly as target `j`: not touched.
    Keep(usize),
    /// Same tag (or both texts) as target `j`: updated in place.
    Update(usize),
}

/// Pairs each existing child with a target (or none), in order.
fn match_children(existing: &[ExChild], target: &[TgNode<'_>]) -> Vec<Option<Pair>> {
    let mut result: Vec<Option<Pair>> = vec![None; existing.len()];
    // The children that can be paired at all, with their index in `existing`.
    let cand: Vec<(usize, &ExNode)> = existing
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.node.as_ref().map(|n| (i, n)))
        .collect();

    // 1. Identical subtrees: common prefix and suffix, then an LCS on hashes in the
    //    middle, each match confirmed structurally.
    let (prefix, suffix) = common_ends(&cand, target, |(_, n), t| same(n, t));
    let mut kept: Vec<(usize, usize)> = (0..prefix).map(|k| (k, k)).collect();
    let (c_end, t_end) = (cand.len() - suffix, target.len() - suffix);
    let c_hashes: Vec<u64> = cand[prefix..c_end].iter().map(|(_, n)| n.hash).collect();
    let t_hashes: Vec<u64> = target[prefix..t_end].iter().map(|t| t.hash).collect();
    for (ci, tj) in lcs(&c_hashes, &t_hashes) {
        let (c, t) = (prefix + ci, prefix + tj);
        if same(cand[c].1, &target[t]) {
            kept.push((c, t));
        }
    }
    kept.extend((0..suffix).map(|k| (c_end + k, t_end + k)));

    // 2. In each gap between kept pairs, pair children of the same kind for an update
    //    in place (again an LCS, on the kind), so that a changed paragraph is edited
    //    rather than replaced.
    let mut bounds = kept.clone();
    bounds.push((cand.len(), target.len()));
    let (mut c0, mut t0) = (0, 0);
    for (c1, t1) in bounds {
        if c1 > c0 && t1 > t0 {
            let c_kinds: Vec<Kind<'_>> = cand[c0..c1].iter().map(|(_, n)| ex_kind(n)).collect();
            let t_kinds: Vec<Kind<'_>> = target[t0..t1].iter().map(tg_kind).collect();
            for (ci, tj) in lcs(&c_kinds, &t_kinds) {
                result[cand[c0 + ci].0] = Some(Pair::Update(t0 + tj));
            }
        }
        c0 = c1 + 1;
        t0 = t1 + 1;
    }
    for (c, t) in kept {
        result[cand[c].0] = Some(Pair::Keep(t));
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------

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

/// Marks as formatting attributes: every mark an object of its attributes (`{}` for
/// `strong`), the form y-prosemirror writes.
fn mark_attrs(marks: &Marks) -> Attrs {
    marks
        .iter()
        .map(|(tag, attrs)| (Arc::<str>::from(tag.as_str()), mark_value(attrs)))
        .collect()
}

fn mark_value(attrs: &BTreeMap<String, String>) -> Any {
    let map: HashMap<String, Any> = attrs
        .iter()
        .map(|(k, v)| (k.clone(), Any::String(Arc::from(v.as_str()))))
        .collect();
    Any::Map(Arc::new(map))
}

/// Updates a text in place: the common prefix and suffix (in characters) keep their
/// items; where their marks differ they are re-formatted; only the middle is deleted
/// and inserted with its marks. All of it is one delta, applied in a single pass.
fn diff_text(
    txn: &mut TransactionMut,
    text: &XmlTextRef,
    existing: &[ExRun],
    target: &[(String, Marks)],
    unit: Unit,
) -> bool {
    // Each character with the index of its run.
    let ex: Vec<(char, usize)> = existing
        .iter()
        .enumerate()
        .flat_map(|(r, run)| run.text.chars().map(move |c| (c, r)))
        .collect();
    let tg: Vec<(char, usize)> = target
        .iter()
        .enumerate()
        .flat_map(|(r, (s, _))| s.chars().map(move |c| (c, r)))
        .collect();
    let (prefix, suffix) = common_ends(&ex, &tg, |a, b| a.0 == b.0);
    let mut delta = DeltaBuilder::default();

    // The prefix: its characters stay; re-format where the marks differ.
    delta.keep(
        ex[..prefix].iter().zip(&tg[..prefix]),
        existing,
        target,
        unit,
    );
    // The middle: deleted, then inserted run by run with its marks.
    delta.delete(unit.len(ex[prefix..ex.len() - suffix].iter().map(|(c, _)| *c)));
    let middle = &tg[prefix..tg.len() - suffix];
    let mut k = 0;
    while k < middle.len() {
        let run = middle[k].1;
        let len = middle[k..].iter().take_while(|(_, r)| *r == run).count();
        let chunk: String = middle[k..k + len].iter().map(|(c, _)| *c).collect();
        k += len;
        if let Some((_, marks)) = target.get(run) {
            delta.insert(&chunk, marks);
        }
    }
    // The suffix, like the prefix.
    delta.keep(
        ex[ex.len() - suffix..].iter().zip(&tg[tg.len() - suffix..]),
        existing,
        target,
        unit,
    );
    if delta.ops.is_empty() {
        return false;
    }
    text.apply_delta(txn, delta.ops);
    true
}

/// Updates a text in place run by run (a run: what the text's diff reports as one
/// chunk, the characters between two changes of formatting): runs equal in text and
/// marks at both ends stay, every run between them is deleted whole and the target's
/// runs there are inserted.
///
/// Coarser than [`diff_text`] (a cursor inside a changed run moves to its edge), but
/// every edit falls on the boundary of a stored item, so yrs splits none. A split
/// inserts into the list of every item its client made, in clock order, which costs
/// the length of that list: for a rewrite of a draft one client imported, it is the
/// size of the document, per split.
fn diff_text_runs(
    txn: &mut TransactionMut,
    text: &XmlTextRef,
    existing: &[ExRun],
    target: &[(String, Marks)],
    unit: Unit,
) -> bool {
    let (prefix, suffix) = common_ends(existing, target, |ex, (s, marks)| {
        ex.text == *s && ex.marks == *marks
    });
    let mut delta = DeltaBuilder {
        ops: Vec::new(),
        retained: existing[..prefix]
            .iter()
            .map(|run| unit.len(run.text.chars()))
            .sum(),
    };
    delta.delete(
        existing[prefix..existing.len() - suffix]
            .iter()
            .map(|run| unit.len(run.text.chars()))
            .sum(),
    );
    for (s, marks) in &target[prefix..target.len() - suffix] {
        delta.insert(s, marks);
    }
    if delta.ops.is_empty() {
        return false;
    }
    text.apply_delta(txn, delta.ops);
    true
}

/// Builds a text delta, merging adjacent retains and leaving out a trailing one.
#[derive(Default)]
struct DeltaBuilder {
    ops: Vec<Delta<In>>,
    /// Unchanged length not yet written (written only if a change follows).
    retained: u32,
}

impl DeltaBuilder {
    fn flush_retained(&mut self) {
        if self.retained > 0 {
            self.ops.push(Delta::Retain(self.retained, None));
            self.retained = 0;
        }
    }

    /// Characters that stay, paired with their targets: retained, and re-formatted
    /// where the marks of the existing run and the target run differ.
    fn keep<'c>(
        &mut self,
        pairs: impl Iterator<Item = (&'c (char, usize), &'c (char, usize))>,
        existing: &[ExRun],
        target: &[(String, Marks)],
        unit: Unit,
    ) {
        // Consecutive characters with the same (existing run, target run) share one
        // formatting decision.
        let mut segment: Option<(usize, usize, u32)> = None;
        for ((c, er), (_, tr)) in pairs {
            match &mut segment {
                Some((e, t, len)) if e == er && t == tr => *len += unit.char_len(*c),
                _ => {
                    if let Some(done) = segment.take() {
                        self.keep_segment(done, existing, target);
                    }
                    segment = Some((*er, *tr, unit.char_len(*c)));
                }
            }
        }
        if let Some(done) = segment {
            self.keep_segment(done, existing, target);
        }
    }

    fn keep_segment(
        &mut self,
        (er, tr, len): (usize, usize, u32),
        existing: &[ExRun],
        target: &[(String, Marks)],
    ) {
        let attrs = match (existing.get(er), target.get(tr)) {
            (Some(run), Some((_, marks))) => format_changes(run, marks),
            _ => Attrs::new(),
        };
        if attrs.is_empty() {
            self.retained += len;
        } else {
            self.flush_retained();
            self.ops.push(Delta::Retain(len, Some(Box::new(attrs))));
        }
    }

    fn delete(&mut self, len: u32) {
        if len > 0 {
            self.flush_retained();
            self.ops.push(Delta::Deleted(len));
        }
    }

    fn insert(&mut self, chunk: &str, marks: &Marks) {
        if !chunk.is_empty() {
            self.flush_retained();
            self.ops.push(inserted(chunk, marks));
        }
    }
}

/// A text insertion carrying exactly `marks` (an empty set means "no marks", not
/// "inherit the neighbour's").
fn inserted(chunk: &str, marks: &Marks) -> Delta<In> {
    Delta::Inserted(In::Any(Any::from(chunk)), Some(Box::new(mark_attrs(marks))))
}

/// The formatting that turns `run`'s marks into `target`: each mark whose attributes
/// differ is set, each stored key of a mark that goes (or that is re-set under its
/// plain tag) is nulled. Marks that already render the same are left alone, even if
/// stored differently (`true`, `{}`, `strong--1a2b`).
fn format_changes(run: &ExRun, target: &Marks) -> Attrs {
    let mut attrs = Attrs::new();
    for (tag, tg_attrs) in target {
        if run.marks.get(tag) != Some(tg_attrs) {
            attrs.insert(Arc::from(tag.as_str()), mark_value(tg_attrs));
        }
    }
    for (key, tag) in &run.keys {
        match target.get(tag) {
            Some(tg_attrs) if run.marks.get(tag) == Some(tg_attrs) => {}
            Some(_) if key.as_ref() == tag.as_str() => {}
            _ => {
                attrs.insert(key.clone(), Any::Null);
            }
        }
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random sequences over a small alphabet (many repeats).
    fn sequence(seed: &mut u64, len: usize, alphabet: u64) -> Vec<u64> {
        (0..len)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (*seed >> 33) % alphabet
            })
            .collect()
    }

    fn assert_valid(a: &[u64], b: &[u64], pairs: &[(usize, usize)]) {
        for w in pairs.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 < w[1].1, "not increasing: {w:?}");
        }
        for &(i, j) in pairs {
            assert_eq!(a[i], b[j]);
        }
    }

    #[test]
    fn myers_and_patience_agree_with_the_table() {
        let mut seed = 42;
        for round in 0..300 {
            let alphabet = 2 + round as u64 % 7;
            let a = sequence(&mut seed, (round * 7) % 60, alphabet);
            let mut b = a.clone();
            // A few edits, so that Myers stays within its bound.
            for _ in 0..(round % 9) {
                let r = sequence(&mut seed, 2, 1000);
                let at = if b.is_empty() {
                    0
                } else {
                    r[0] as usize % b.len()
                };
                if r[1] & 1 == 0 && !b.is_empty() {
                    b.remove(at);
                } else {
                    b.insert(at, r[1] % alphabet);
                }
            }
            let table = lcs_table(&a, &b);
            assert_valid(&a, &b, &table);
            let myers = myers(&a, &b, a.len() + b.len()).unwrap();
            assert_valid(&a, &b, &myers);
            assert_eq!(myers.len(), table.len(), "{a:?} {b:?}");
            assert_valid(&a, &b, &patience(&a, &b));
        }
        // Beyond its bound Myers gives up rather than guess.
        assert!(myers(&[1u64, 2, 3], &[4, 5, 6], 2).is_none());
    }

    #[test]
    fn common_ends_do_not_overlap() {
        assert_eq!(common_ends(b"aXa", b"aa", |x, y| x == y), (1, 1));
        assert_eq!(common_ends(b"aaa", b"aa", |x, y| x == y), (2, 0));
        assert_eq!(common_ends(b"", b"a", |x, y| x == y), (0, 0));
    }
}
