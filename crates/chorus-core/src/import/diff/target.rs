//! The target body ([`BodyNode`]s, as a host gave them or the parser read them)
//! in the normal form: what the renderer would write for it, hashed bottom-up, with
//! each attribute's name as given and the type the editor stores it as, for
//! inserting. Reads only.

use super::normal::{hash_element_head, hash_text, push_merged, Marks};
use crate::import::BodyNode;
use crate::render::{is_valid_attr_name, is_valid_tag, is_void, MAX_DEPTH};
use chorus_whitelist::profile::ValueType;
use chorus_whitelist::EditorProfile;
use rustc_hash::FxHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

pub(super) struct TgNode<'a> {
    pub(super) hash: u64,
    pub(super) kind: TgKind<'a>,
}

pub(super) enum TgKind<'a> {
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
pub(super) fn normalise_children<'a>(
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

fn flush_text(out: &mut Vec<TgNode<'_>>, pending: &mut Vec<(String, Marks)>) {
    if !pending.is_empty() {
        let runs = std::mem::take(pending);
        out.push(TgNode {
            hash: hash_text(&runs),
            kind: TgKind::Text { runs },
        });
    }
}
