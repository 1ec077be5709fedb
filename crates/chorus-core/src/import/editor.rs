//! Host HTML in an editor profile's names: the fitted, cleaned HTML body nodes
//! renamed to what the editor writes, and shaped so its schema accepts them.
//!
//! Why the shaping matters: y-prosemirror deletes, for everyone, a node its schema
//! cannot hold. So what has no name in the profile is not imported as is: an
//! element is unwrapped (its content kept in its place), a mark is dropped (its text
//! kept). A `block` node in running text (TipTap's image in a paragraph) splits the
//! paragraph around it; a node whose content must start with a given node
//! (`first`) or may not be empty (`fill`) gets an empty one; a code block keeps
//! plain text (a line break becomes `\n`, marks go).
//!
//! The translation is idempotent on what the renderer writes for a body in the
//! profile's names, so importing a draft's own HTML changes nothing.

use super::{BodyNode, Run};
use chorus_whitelist::EditorProfile;
use std::collections::BTreeMap;

/// `nodes` (HTML names, fitted) in `profile`'s names.
pub(crate) fn to_editor_names(nodes: Vec<BodyNode>, profile: &EditorProfile) -> Vec<BodyNode> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        convert(node, profile, false, &mut out);
    }
    merge_texts(&mut out);
    out
}

/// Append `node`, converted, to `out`. `plain`: inside a node that holds plain
/// text only (a code block).
fn convert(node: BodyNode, profile: &EditorProfile, plain: bool, out: &mut Vec<BodyNode>) {
    match node {
        BodyNode::Text(runs) => {
            let runs: Vec<Run> = runs
                .into_iter()
                .map(|run| Run {
                    marks: if plain {
                        BTreeMap::new()
                    } else {
                        editor_marks(run.marks, profile)
                    },
                    text: run.text,
                })
                .filter(|run| !run.text.is_empty())
                .collect();
            if !runs.is_empty() {
                out.push(BodyNode::Text(runs));
            }
        }
        BodyNode::Element {
            tag,
            attrs,
            children,
        } => {
            let Some((name, map, picked)) = profile.node_for_tag(&tag) else {
                if plain && tag == "br" {
                    out.push(BodyNode::Text(vec![Run {
                        text: "\n".into(),
                        marks: BTreeMap::new(),
                    }]));
                    return;
                }
                for child in children {
                    convert(child, profile, plain, out);
                }
                return;
            };
            if plain {
                // A code block holds text only.
                for child in children {
                    convert(child, profile, plain, out);
                }
                return;
            }
            let mut editor_attrs: Vec<(String, String)> = Vec::new();
            if let (Some(attr), Some(value)) = (&map.tag_attribute, picked) {
                editor_attrs.push((attr.clone(), value.to_owned()));
            }
            for (key, value) in &attrs {
                if key == "style" {
                    for declaration in value.split(';') {
                        let Some((property, v)) = declaration.split_once(':') else {
                            continue;
                        };
                        let (property, v) = (property.trim().to_ascii_lowercase(), v.trim());
                        if let Some((attr, rule)) = map.style_for(&property) {
                            let allowed = rule
                                .values
                                .as_ref()
                                .is_none_or(|vs| vs.iter().any(|x| x == v));
                            if allowed && !editor_attrs.iter().any(|(k, _)| k == attr) {
                                editor_attrs.push((attr.to_owned(), v.to_owned()));
                            }
                        }
                    }
                } else if let Some((attr, rule)) = map.attribute_for(key) {
                    if let Some(v) = rule.editor_value(value) {
                        if !editor_attrs.iter().any(|(k, _)| k == attr) {
                            editor_attrs.push((attr.to_owned(), v.to_owned()));
                        }
                    }
                }
            }
            editor_attrs.sort();
            let holds_plain_text = map.plain;
            let mut content = Vec::with_capacity(children.len());
            for child in children {
                convert(child, profile, holds_plain_text, &mut content);
            }
            merge_texts(&mut content);
            if let Some(first) = &map.first {
                let starts_right = matches!(content.first(),
                    Some(BodyNode::Element { tag, .. }) if tag == first);
                if !starts_right {
                    content.insert(0, empty(first));
                }
            }
            if content.is_empty() {
                if let Some(fill) = &map.fill {
                    content.push(empty(fill));
                }
            }
            let element = BodyNode::Element {
                tag: name.to_owned(),
                attrs: editor_attrs,
                children: content,
            };
            if super::EditorContent::get().holds_inline(&tag) {
                split_around_blocks(element, profile, out);
            } else {
                out.push(element);
            }
        }
    }
}

/// Push `element` (which holds running text); if a `block` node is in it, push it
/// split around each such node instead (empty halves left out).
fn split_around_blocks(element: BodyNode, profile: &EditorProfile, out: &mut Vec<BodyNode>) {
    let is_block = |n: &BodyNode| matches!(n, BodyNode::Element { tag, .. } if profile.node(tag).is_some_and(|m| m.block));
    let BodyNode::Element {
        tag,
        attrs,
        children,
    } = element
    else {
        out.push(element);
        return;
    };
    if !children.iter().any(is_block) {
        out.push(BodyNode::Element {
            tag,
            attrs,
            children,
        });
        return;
    }
    let mut part = Vec::new();
    let flush = |part: &mut Vec<BodyNode>, out: &mut Vec<BodyNode>| {
        if !part.is_empty() {
            out.push(BodyNode::Element {
                tag: tag.clone(),
                attrs: attrs.clone(),
                children: std::mem::take(part),
            });
        }
    };
    for child in children {
        if is_block(&child) {
            flush(&mut part, out);
            out.push(child);
        } else {
            part.push(child);
        }
    }
    flush(&mut part, out);
}

fn empty(tag: &str) -> BodyNode {
    BodyNode::Element {
        tag: tag.to_owned(),
        attrs: Vec::new(),
        children: Vec::new(),
    }
}

/// A run's marks in the profile's names; marks it does not name are dropped, and
/// so are attributes of a mark it does not name.
fn editor_marks(
    marks: BTreeMap<String, BTreeMap<String, String>>,
    profile: &EditorProfile,
) -> BTreeMap<String, BTreeMap<String, String>> {
    marks
        .into_iter()
        .filter_map(|(tag, attrs)| {
            let (name, map) = profile.mark_for_tag(&tag)?;
            let attrs = attrs
                .into_iter()
                .filter_map(|(k, v)| {
                    let editor = map.attributes.iter().find(|(_, html)| **html == k)?.0;
                    Some((editor.clone(), v))
                })
                .collect();
            Some((name.to_owned(), attrs))
        })
        .collect()
}

/// Adjacent texts become one, and adjacent runs with equal marks one run (what
/// unwrapping and dropped marks leave behind).
fn merge_texts(nodes: &mut Vec<BodyNode>) {
    let mut merged: Vec<BodyNode> = Vec::with_capacity(nodes.len());
    for node in nodes.drain(..) {
        match (merged.last_mut(), node) {
            (Some(BodyNode::Text(kept)), BodyNode::Text(runs)) => kept.extend(runs),
            (_, node) => merged.push(node),
        }
    }
    for node in &mut merged {
        if let BodyNode::Text(runs) = node {
            super::body::merge_equal_runs(runs);
        }
    }
    *nodes = merged;
}
