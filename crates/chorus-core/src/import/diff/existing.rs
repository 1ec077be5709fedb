//! Reading the existing body from the document into the normal form
//! ([`ExistingBody`]): every child as the renderer would show it, with the ids that
//! let a change remove it and the stored names and keys that let it be edited in
//! place. Reads only; the document must not change while what it read is used.

// Attribute values compare as the renderer writes them (its own function, so
// comparing and rendering can never disagree).
use crate::render::{attr_text, is_valid_attr_name, is_valid_tag, is_void, mark_tag};

use super::normal::{hash_element_head, hash_text, merge_runs, Marks};
use crate::render::MAX_DEPTH;
use rustc_hash::FxHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use yrs::branch::Branch;
use yrs::types::text::YChange;
use yrs::types::{Attrs, ToJson};
use yrs::{
    Any, Array, ArrayRef, BranchID, Out, Text, TransactionMut, Xml, XmlElementRef, XmlFragmentRef,
    XmlTextRef, ID,
};

/// A body as it was read from the document, normalised for matching
/// ([`read_body`]): valid while the document is not changed, and only for it.
pub(crate) struct ExistingBody(pub(super) Vec<ExChild>);

/// Read and normalise the existing `body`, the half of a change that needs no target:
/// a caller may do it while the target is still being prepared, then give it to
/// [`apply_body`](super::apply_body) (the document must not change in between).
pub(in crate::import) fn read_body(txn: &TransactionMut, body: &XmlFragmentRef) -> ExistingBody {
    ExistingBody(read_children(txn, body, 0))
}

/// One item of an existing children list.
pub(super) struct ExChild {
    /// The normalised node, for children that can be matched or updated; `None` for
    /// items that can only be kept or removed.
    pub(super) node: Option<ExNode>,
    /// The id of a removable child (always a shared type, one item long); `None` for
    /// items that stay where they are. Items the renderer does not show (non-XML
    /// values, empty texts, elements past the depth bound) are left where they are:
    /// removing them would change nothing visible and could strand a cursor.
    pub(super) removable: Option<ID>,
}

pub(super) struct ExNode {
    pub(super) hash: u64,
    pub(super) kind: ExKind,
}

pub(super) enum ExKind {
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

pub(super) struct ExRun {
    pub(super) text: String,
    pub(super) marks: Marks,
    /// The stored formatting keys behind `marks` (`a--4f3a2b1c`), with their tag.
    pub(super) keys: Vec<(Arc<str>, String)>,
}

impl ExChild {
    /// Whether the renderer writes anything for this child.
    pub(super) fn is_visible(&self) -> bool {
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
pub(super) fn read_children<B: AsRef<ArrayRef>>(
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
