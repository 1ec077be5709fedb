//! HTML in and out of body nodes: [`parse_body_html`] (bounded, as a browser parses
//! `innerHTML`), [`fit_editor`] (inline runs wrapped where the editor wants blocks),
//! [`body_nodes_html`] (nodes written back, for the cleaner), and the way an external
//! change takes a host's HTML, [`host_body`]: bounded, cleaned by the whitelist,
//! parsed again, fitted, and renamed for the editor profile. No document is touched
//! here; `apply.rs` changes one.

use super::body::{merge_equal_runs, BodyNode};
use super::{editor, fit, parse};
use crate::render::{escape_into, is_void};

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
///
/// [`EditorContent`]: super::EditorContent
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
pub(super) fn host_body_cleaned(
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
