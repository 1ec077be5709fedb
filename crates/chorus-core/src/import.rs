//! # Importing HTML into a live document, as a minimal diff
//!
//! The inverse of [`crate::render`]: [`parse_body_html`] turns an HTML fragment (what
//! [`crate::render::body_html`] writes, or what a host sends) into [`BodyNode`]s in
//! the document model (see the `render` module doc: elements with HTML tags and
//! attributes, inline formatting as marks on text runs), and [`apply_body`] /
//! [`apply_title`] change a document so that it renders as that target.
//!
//! Hosts push "external changes" (a saved draft, an edit made outside the editor)
//! into documents that people are typing in at that moment. Replacing the body
//! wholesale would work for the HTML but not for the people: every cursor and
//! selection (Yjs relative positions, [`yrs::StickyIndex`]) would point into deleted
//! items, every concurrent keystroke would land in a deleted paragraph and vanish
//! on merge, and the update would be as large as the document. So the apply
//! functions change as little as they can:
//!
//! - children lists are matched child by child (common prefix and suffix, then a
//!   longest common subsequence on a structural hash of each subtree, confirmed by
//!   structural equality); matched children are not touched at all, an unmatched
//!   child is removed, an unmatched target inserted where it belongs, and in each gap
//!   between matches, children and targets of the same tag (or both texts) are paired
//!   in order and updated in place rather than replaced;
//! - element attributes: only those that differ are set, only those gone removed;
//! - text: the common prefix and suffix (text and marks) stay, only the middle is
//!   deleted and re-inserted with its marks; where only marks differ the range is
//!   re-formatted, so the characters (and any cursor in them) survive. That holds
//!   for the first 64 texts one change edits (in document order); texts past those are
//!   edited run by run (a run: characters between two changes of formatting): runs
//!   equal at both ends stay, the runs between are replaced whole, so a cursor inside
//!   a changed run moves to its edge. The reason is yrs: an edit inside a stored item
//!   splits it, and a split inserts into one array holding every item of that item's
//!   client, so when a host rewrites every paragraph of a draft it imported itself
//!   each split costs the size of the document (twice on the fork, twice again in the
//!   live document);
//! - with `may_replace` (which callers pass only when the whitelist guard takes yrs'
//!   deep events: reject mode, [`crate::Whitelist::takes_deep_events`]), at most 128
//!   existing nodes are edited in place per change (a text's characters, an element's
//!   attributes, an element's children list), again the first in document order. A
//!   changed node reached after those is **replaced**: removed and inserted anew
//!   whole, right where it was. *Precision given up:* a cursor inside a replaced
//!   paragraph moves to the paragraph's edge. What someone typed into it
//!   concurrently would be lost with it, so an external change replaces only when
//!   nothing happened since its base, and is refused if the document moved before it
//!   was applied (`crate::external_edit`; the caller computes it again, and after two
//!   such refusals in place). The reason is the deep observer: every existing node a
//!   transaction edits is one event, and yrs sorts the events computing each one's
//!   path by walking the parent's children from the start
//!   (`yrs::types::Events::new`), so k edited nodes cost about k × the length of the
//!   body; new nodes make no events of their own. In strip and off mode there is no
//!   deep observer and every changed node is edited in place.
//!
//! Unchanged nodes are never touched, whatever the size of the change: their identity,
//! and every cursor inside them, survive.
//!
//! A change made this way merges with concurrent edits like any other user's edit:
//! what someone types into a paragraph the import did not touch is simply kept.
//! Applying a document's own rendering back onto it is a no-op (no update at all).
//!
//! What an HTML round trip cannot preserve (the parser normalises it): `\r` in text
//! becomes `\n`, a leading newline right after `<pre>`, `<textarea>` or `<listing>`
//! is dropped, invalid nesting is repaired (`<table><tr>` gains a `<tbody>`, a `<p>`
//! inside a `<p>` closes it), and whitespace-only text between block elements is
//! treated as layout and dropped. Documents written by y-prosemirror from a schema
//! of valid HTML do not contain those shapes.
//!
//! Text lengths and indices follow the document's [`yrs::OffsetKind`] (Chorus rooms
//! use UTF-16 code units, as Yjs in the browser does).
//!
//! Cost is bounded for any input, since hosts are not trusted to send sane HTML: the
//! HTML5 tree builder is quadratic in nesting depth and can multiply reopened
//! formatting elements, so a guard between tokenizer and tree builder caps the depth
//! it sees and the nodes it may create (`parse.rs`); conversion recursion is capped at
//! [`crate::render::MAX_DEPTH`]; the LCS is a table for small middles, Myers' O(ND)
//! for few edits, patience matching otherwise. yrs finds a list index by walking the
//! list from its start, so each children list is changed with one delta in a single
//! walk (yrs' text API, which works on any list of items: retains over the existing
//! children, the new nodes where they go, each built with its subtree in one pass),
//! and removed children are found by their id (one deletion set for the whole
//! change); text edits go in as one delta. Past the first 64 texts, texts are edited
//! run by run; with `may_replace`, past 128 edited nodes changed nodes are replaced
//! (above).
//!
//! What is not bounded here: when the live document commits a change that removes k
//! subtrees apart from each other (paragraphs the host deleted here and there, or,
//! under a reject-mode guard, paragraphs replaced), yrs garbage-collects them and merges each collected run in its client's
//! block list with a `Vec::drain`, shifting the rest of that list every time
//! (`ClientBlockList::squash_left_range_compaction`): about k × the document's item
//! count of memory moves. docs/PERFORMANCE.md ("External changes") has the figures.
//!
//! Host HTML is fitted to the web client's editor before it is applied
//! ([`fit_editor`]): inline content sitting directly in a container that must hold
//! blocks (`<li>text</li>`, `<td>c</td>`, loose text in the body) is wrapped in a
//! `p`, per the table in `proto/editor-content.json` that the editor's schema is
//! checked against. A ProseMirror schema cannot mix inline and block content in one
//! node, and y-prosemirror would delete such content for everyone. The fitted form
//! renders back to itself, so re-importing a rendered draft stays a no-op.
//!
//! No sanitising happens here: `<script>` parses as an element like any other, the
//! whitelist guard (`guard`) removes what the policy refuses in the same transaction.

use std::collections::BTreeMap;

use crate::render::{escape_into, is_void};

use chorus_whitelist::EditorProfile;
use yrs::{TextRef, TransactionMut, XmlFragmentRef};

mod diff;
mod editor;
mod fit;
mod parse;

pub use fit::{EditorContent, ElementContent, Holds, Placement, EDITOR_CONTENT_JSON};

/// One node of a body as the host supplies it (or as [`parse_body_html`] reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyNode {
    /// An element: a Y.XmlElement with this tag and these attributes.
    Element {
        /// The HTML tag name (`p`, `h2`, `table`, …).
        tag: String,
        /// HTML attributes in source order; for a repeated name the first one counts.
        attrs: Vec<(String, String)>,
        /// Child nodes in order.
        children: Vec<BodyNode>,
    },
    /// A Y.XmlText made of formatted runs.
    Text(Vec<Run>),
}

/// A run of text with the same marks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Run {
    /// The characters, exactly (no whitespace collapsing).
    pub text: String,
    /// Mark tag (`strong`, `a`, …) → that mark's HTML attributes (`{}` for most,
    /// `{"href": "…"}` for a link).
    pub marks: BTreeMap<String, BTreeMap<String, String>>,
}

/// Parse an HTML fragment (what `body_html` produces, or what a host sends) into body
/// nodes.
///
/// The fragment is parsed the way a browser parses `innerHTML` of a `<body>` (servo's
/// html5ever, so unclosed tags, stray end tags and misnesting are repaired exactly as
/// browsers do). `is_mark(tag)` says which inline tags become marks (the caller passes
/// the whitelist's mark set: `strong`, `b`, `em`, `i`, `u`, `s`, `code`, `sub`, `sup`,
/// `a`, `span`, …): their text becomes runs carrying `tag → attributes`; every other
/// element becomes an element node. Consecutive text (across marks) forms one
/// [`BodyNode::Text`]; adjacent runs with equal marks are merged.
///
/// Comments, doctypes and processing instructions are dropped. Whitespace-only text
/// between block elements (or between a block and the start or end of its parent) is
/// dropped; text is kept exactly otherwise. Elements nested deeper than
/// [`crate::render::MAX_DEPTH`] are dropped with their subtree (as the renderer does),
/// and so is anything below a bounded depth of nested marks, so hostile nesting
/// cannot overflow the stack. Never panics on any input.
pub fn parse_body_html(html: &str, is_mark: &dyn Fn(&str) -> bool) -> Vec<BodyNode> {
    parse::parse(html, is_mark)
}

/// `nodes` (a whole body, as [`parse_body_html`] returns it) fitted to the web
/// client's editor schema: every run of inline content (text with its marks, inline
/// elements such as `img`, `br`, `abbr`) directly in the body or in a container that
/// holds blocks (`li`, `td`, `th`, `div`, `blockquote`, `dd`, `figure`, `form`) is
/// wrapped in a `p`: `<li>text <b>x</b></li>` becomes `<li><p>text <b>x</b></p></li>`.
/// Containers that hold inline content (`p`, `h1`…`h6`, `dt`, `caption`, …) are left
/// alone. Which is which comes from `proto/editor-content.json` ([`EditorContent`]);
/// unknown elements are neither wrapped nor counted as inline.
///
/// Idempotent, and a no-op on what the renderer writes for a fitted body.
pub fn fit_editor(nodes: Vec<BodyNode>) -> Vec<BodyNode> {
    fit::fit_editor(nodes)
}

/// A host's body HTML as the editor's model, the way an external change takes it:
/// bounded by [`parse_body_html`] first (it caps nesting before anything costs; the
/// cleaner's parser is quadratic in depth), then cleaned by one pass of the whitelist's HTML
/// cleaner, parsed again and [`fit_editor`]ed, then (for an editor profile other
/// than `html`) renamed to the profile's names and shaped to its editor's schema
/// (`editor.rs`). The guard checks the resulting update like any edit as well, so
/// the policy holds twice.
pub fn host_body(whitelist: &crate::Whitelist, html: &str) -> Vec<BodyNode> {
    host_body_cleaned(whitelist, html, &|bounded| {
        whitelist.clean_html_for_import(bounded)
    })
}

/// [`host_body`] with the cleaning step given (tests compare it with the cleaner's
/// fixed point).
fn host_body_cleaned(
    whitelist: &crate::Whitelist,
    html: &str,
    clean: &dyn Fn(&str) -> String,
) -> Vec<BodyNode> {
    let policy = whitelist.policy.clone();
    let is_mark = |tag: &str| policy.allows_mark(tag, &[]);
    let bounded = body_nodes_html(&parse_body_html(html, &is_mark));
    let clean = clean(&bounded);
    let mut body = fit_editor(parse_body_html(&clean, &is_mark));
    keep_allowed_mark_attributes(&mut body, &policy);
    if !whitelist.profile.is_identity() {
        body = editor::to_editor_names(body, &whitelist.profile);
    }
    body
}

/// Drop each mark attribute the policy does not allow *on that mark*, keeping the
/// mark. The HTML cleaner judges an inline tag as an element, whose allowed
/// attributes include the global ones (`class`, `style`, `data-*`, …); a mark allows
/// only its own few (`a`: `href`, `title`, `target`, `rel`). Left in, the guard would
/// remove the whole mark: `<code class="language-rust">` would lose its code
/// formatting. Found by the `html_import` fuzz target (docs/FUZZING.md).
fn keep_allowed_mark_attributes(nodes: &mut [BodyNode], policy: &chorus_whitelist::Policy) {
    for node in nodes {
        match node {
            BodyNode::Element { children, .. } => keep_allowed_mark_attributes(children, policy),
            BodyNode::Text(runs) => {
                for run in runs.iter_mut() {
                    for (mark, attrs) in run.marks.iter_mut() {
                        attrs.retain(|k, v| policy.allows_mark(mark, &[(k.as_str(), v.as_str())]));
                    }
                }
                // Runs that differed only in a dropped attribute are one run now.
                merge_equal_runs(runs);
            }
        }
    }
}

/// Adjacent runs with the same marks become one run.
pub(crate) fn merge_equal_runs(runs: &mut Vec<Run>) {
    runs.dedup_by(|next, kept| {
        if next.marks == kept.marks {
            kept.text.push_str(&next.text);
            true
        } else {
            false
        }
    });
}

/// Write body nodes back as HTML (text and attribute values escaped, marks as inline
/// elements in name order, void elements without children or end tag). Nodes deeper
/// than [`crate::render::MAX_DEPTH`] are left out, so the output nests no deeper than
/// that, whatever built the nodes.
///
/// Used to hand host HTML to the whitelist's HTML cleaner only after
/// [`parse_body_html`] has bounded it: the HTML5 tree builder behind that cleaner is
/// quadratic in nesting depth, and this parser caps depth before it costs anything.
pub fn body_nodes_html(nodes: &[BodyNode]) -> String {
    let mut out = String::new();
    write_nodes(&mut out, nodes, 1);
    out
}

fn write_start_tag<'a>(
    out: &mut String,
    tag: &str,
    attrs: impl Iterator<Item = (&'a String, &'a String)>,
) {
    out.push('<');
    out.push_str(tag);
    for (name, value) in attrs {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_into(out, value);
        out.push('"');
    }
    out.push('>');
}

fn write_nodes(out: &mut String, nodes: &[BodyNode], depth: usize) {
    if depth > crate::render::MAX_DEPTH {
        return;
    }
    for node in nodes {
        match node {
            BodyNode::Element {
                tag,
                attrs,
                children,
            } => {
                write_start_tag(out, tag, attrs.iter().map(|(n, v)| (n, v)));
                if !is_void(tag) {
                    write_nodes(out, children, depth + 1);
                    out.push_str("</");
                    out.push_str(tag);
                    out.push('>');
                }
            }
            BodyNode::Text(runs) => {
                for run in runs {
                    for (mark, attrs) in &run.marks {
                        write_start_tag(out, mark, attrs.iter());
                    }
                    escape_into(out, &run.text);
                    for mark in run.marks.keys().rev() {
                        out.push_str("</");
                        out.push_str(mark);
                        out.push('>');
                    }
                }
            }
        }
    }
}

/// Change `body` so that it renders as `target`, touching as little as possible (see
/// the module doc). Returns whether anything changed.
///
/// Comparison follows the renderer: attributes and marks that `body_html` would not
/// write (null values, invalid names) are neither compared nor removed, children of
/// void elements are ignored, tag and attribute names compare case-insensitively, and
/// mark values `true` and `{}` are the same mark. Items the renderer skips (non-XML
/// values, empty texts, elements deeper than [`crate::render::MAX_DEPTH`]) are left
/// where they are; target elements deeper than that are not inserted.
///
/// Indices are computed from the document inside `txn`, so nothing here can be out of
/// range whatever `target` holds.
pub fn apply_body(txn: &mut TransactionMut, body: &XmlFragmentRef, target: &[BodyNode]) -> bool {
    diff::apply_body(txn, body, None, target, true, &EditorProfile::html()).0
}

/// [`apply_body`] for a body in `profile`'s names (attribute values stored with the
/// types its editor uses), also saying how many changed nodes it replaced whole;
/// `existing` is the body as [`read_body`] read it earlier, if it was.
pub(crate) fn apply_body_counting(
    txn: &mut TransactionMut,
    body: &XmlFragmentRef,
    existing: Option<ExistingBody>,
    target: &[BodyNode],
    may_replace: bool,
    profile: &EditorProfile,
) -> (bool, usize) {
    diff::apply_body(txn, body, existing, target, may_replace, profile)
}

/// The existing body read and normalised for [`apply_body_counting`], so that part of
/// a change can run before its target is known.
pub(crate) use diff::ExistingBody;

pub(crate) fn read_body(txn: &TransactionMut, body: &XmlFragmentRef) -> ExistingBody {
    diff::read_body(txn, body)
}

/// Change `title` to `target`: the common prefix and suffix stay, only the middle is
/// deleted and inserted. Returns whether anything changed.
pub fn apply_title(txn: &mut TransactionMut, title: &TextRef, target: &str) -> bool {
    diff::apply_title(txn, title, target)
}

#[cfg(test)]
mod tests;
