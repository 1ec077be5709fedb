//! Fitting imported HTML to the web client's editor schema.
//!
//! ProseMirror (the web client's editor) cannot mix inline and block content in one
//! node, and y-prosemirror deletes from the shared document every element whose
//! children the schema refuses. HTML mixes them freely: `<li>text</li>`,
//! `<td>c</td>`, `<div>b</div>` and loose text in the body are all common. So the
//! import wraps each run of inline content (text with its marks, inline elements such
//! as `img` or `br`) that sits directly in a container which must hold blocks into the
//! wrapper element (`p`). Containers that hold inline content (`p`, `h1`, `dt`, …)
//! are left as they are.
//!
//! Which container holds what comes from `proto/editor-content.json`, the table the
//! web client's schema is checked against (tests/node/web-client.test.mjs), so the two
//! cannot drift apart unnoticed. Elements the table does not know are not wrapped and
//! do not count as inline.
//!
//! The result holds no inline run in a blocks container, so fitting what the
//! renderer writes back changes nothing: re-importing a rendered draft is a no-op.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::BodyNode;
use crate::render::MAX_DEPTH;

/// The table shared with the web client.
pub const EDITOR_CONTENT_JSON: &str = include_str!("../../../../proto/editor-content.json");

/// Where an element sits in the editor schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// A block node (a child of the body or of a blocks container).
    Block,
    /// An inline node, part of an inline run.
    Inline,
    /// Only inside a specific parent (`li`, `td`, `tr`, …).
    Part,
    /// Formatting on text, never an element.
    Mark,
}

/// What an element may hold in the editor schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Holds {
    /// Block nodes only: inline runs are wrapped.
    Blocks,
    /// Text, marks and inline nodes.
    Inline,
    /// Plain text only.
    Text,
    /// Only the specific elements that belong there (`li` in `ul`, `tr` in `tbody`).
    Children,
    /// Nothing (a void element).
    Empty,
}

/// One element of the table.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ElementContent {
    /// Where the element sits.
    pub is: Placement,
    /// What it holds (none for marks).
    #[serde(default)]
    pub holds: Option<Holds>,
}

/// `proto/editor-content.json`, parsed.
#[derive(Debug, Deserialize)]
pub struct EditorContent {
    /// What the body itself holds.
    pub root: Holds,
    /// The element inline runs are wrapped in.
    pub wrapper: String,
    /// Per tag.
    pub elements: HashMap<String, ElementContent>,
}

impl EditorContent {
    /// The table of `proto/editor-content.json` (parsed once; it is compiled in, so a
    /// parse failure is a build defect caught by the tests).
    pub fn get() -> &'static EditorContent {
        static TABLE: OnceLock<EditorContent> = OnceLock::new();
        TABLE.get_or_init(|| {
            serde_json::from_str(EDITOR_CONTENT_JSON).unwrap_or_else(|_| EditorContent {
                root: Holds::Blocks,
                wrapper: "p".to_owned(),
                elements: HashMap::new(),
            })
        })
    }

    fn entry(&self, tag: &str) -> Option<&ElementContent> {
        self.elements
            .get(tag)
            .or_else(|| self.elements.get(&tag.to_ascii_lowercase()))
    }

    /// Does `tag` hold only blocks (so inline runs in it are wrapped)?
    pub fn holds_blocks(&self, tag: &str) -> bool {
        self.entry(tag).and_then(|e| e.holds) == Some(Holds::Blocks)
    }

    /// Does `tag` hold running text (`p`, `h1`…)?
    pub fn holds_inline(&self, tag: &str) -> bool {
        self.entry(tag).and_then(|e| e.holds) == Some(Holds::Inline)
    }

    /// Is `node` inline content (text, or an inline element)?
    fn is_inline(&self, node: &BodyNode) -> bool {
        match node {
            BodyNode::Text(_) => true,
            BodyNode::Element { tag, .. } => {
                self.entry(tag).map(|e| e.is) == Some(Placement::Inline)
            }
        }
    }
}

/// `nodes` (a whole body) with every run of inline content that sits directly in the
/// body or in a container that holds blocks (`li`, `td`, `th`, `div`, `blockquote`,
/// `dd`, …) wrapped in a `p`. See the module doc.
pub(super) fn fit_editor(nodes: Vec<BodyNode>) -> Vec<BodyNode> {
    let table = EditorContent::get();
    fit_children(table, nodes, table.root == Holds::Blocks, 1, false)
}

fn fit_children(
    table: &EditorContent,
    nodes: Vec<BodyNode>,
    holds_blocks: bool,
    depth: usize,
    in_form: bool,
) -> Vec<BodyNode> {
    let nodes = nodes.into_iter().flat_map(|node| match node {
        // Deeper than the bound nothing is imported anyway (`apply_body` skips it).
        BodyNode::Element {
            tag,
            attrs,
            children,
        } if depth < MAX_DEPTH => {
            let form = tag.eq_ignore_ascii_case("form");
            if form && in_form {
                // HTML's parser makes a form inside a form (`<form><div></form>
                // <form>`: the first `</form>` leaves the div open inside it) but
                // never reads one back (a form start tag inside a form is
                // ignored), so a draft holding one would change when its own
                // rendering is written back. Its content takes its place. Found by
                // the `html_import` fuzz target (docs/FUZZING.md).
                return fit_children(table, children, holds_blocks, depth + 1, true);
            }
            let blocks = table.holds_blocks(&tag);
            vec![BodyNode::Element {
                children: fit_children(table, children, blocks, depth + 1, in_form || form),
                tag,
                attrs,
            }]
        }
        other => vec![other],
    });
    if !holds_blocks {
        return nodes.collect();
    }
    let mut out = Vec::new();
    let mut run: Vec<BodyNode> = Vec::new();
    for node in nodes {
        if table.is_inline(&node) && !holds_a_p_closer(&node) {
            run.push(node);
            continue;
        }
        wrap_run(table, &mut out, &mut run);
        out.push(node);
    }
    wrap_run(table, &mut out, &mut run);
    out
}

/// Start tags that close an open `p` (HTML's tree construction, "in body" insertion
/// mode: a start tag of these closes a `p` element in button scope).
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "search",
    "section",
    "summary",
    "ul",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "listing",
    "form",
    "li",
    "dd",
    "dt",
    "plaintext",
    "table",
    "hr",
    "xmp",
];

/// Whether an element holds, at any depth, an element whose start tag closes a `p`.
/// The parser puts one inside an inline element (`<label><form>`), but wrapped in a
/// `p` it could not be written back: `<p><label><form>` parses as
/// `<p><label></label></p><form>`, so re-importing the rendered draft would change
/// it. Such an inline element stays a block of its own. Found by the `html_import`
/// fuzz target (docs/FUZZING.md).
fn holds_a_p_closer(node: &BodyNode) -> bool {
    match node {
        BodyNode::Text(_) => false,
        BodyNode::Element { children, .. } => children.iter().any(|child| match child {
            BodyNode::Element { tag, .. } => {
                CLOSES_P.contains(&tag.to_ascii_lowercase().as_str()) || holds_a_p_closer(child)
            }
            BodyNode::Text(_) => false,
        }),
    }
}

fn wrap_run(table: &EditorContent, out: &mut Vec<BodyNode>, run: &mut Vec<BodyNode>) {
    if !run.is_empty() {
        out.push(BodyNode::Element {
            tag: table.wrapper.clone(),
            attrs: Vec::new(),
            children: std::mem::take(run),
        });
    }
}
