//! HTML text → [`BodyNode`]s.
//!
//! html5ever's tree builder does the HTML5 parsing (error recovery included) into a
//! flat arena defined here: nodes refer to each other by index, so building and
//! dropping a 10,000-deep tree needs no recursion. The arena is then walked into body
//! nodes by a recursive walk whose depth is capped, which is what keeps hostile
//! nesting from overflowing the stack.

use std::borrow::Cow;
use std::cell::{Ref, RefCell};
use std::collections::{BTreeMap, HashMap};

use html5ever::interface::{create_element, ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::tree_builder::{TreeBuilder, TreeBuilderOpts};
use html5ever::{local_name, ns, Attribute, LocalName, QualName, TokenizerResult};

use super::{BodyNode, Run};
use crate::render::MAX_DEPTH;

/// How many levels of marks may wrap a text on top of its element depth before the
/// content below is dropped. Real runs carry a handful of marks; the bound only caps
/// the recursion for hostile input (`<b><i><b><i>…` ten thousand deep).
const MAX_MARK_NESTING: usize = 64;

/// Elements that are phrasing content: whitespace next to them is text, not layout.
/// Anything else (including unknown tags) counts as a block for whitespace dropping.
const INLINE_ELEMENTS: &[&str] = &[
    "a", "abbr", "audio", "b", "bdi", "bdo", "br", "button", "canvas", "cite", "code", "data",
    "del", "dfn", "em", "embed", "i", "iframe", "img", "input", "ins", "kbd", "label", "map",
    "mark", "math", "meter", "object", "output", "picture", "progress", "q", "ruby", "s", "samp",
    "select", "small", "span", "strong", "sub", "sup", "svg", "textarea", "time", "u", "var",
    "video", "wbr",
];

type Id = usize;

enum Data {
    Document,
    Element(Vec<Attribute>),
    Text(String),
    /// Comments and processing instructions: kept as nodes (the tree builder may
    /// move them) but never converted.
    Ignored,
}

struct DomNode {
    parent: Option<Id>,
    children: Vec<Id>,
    /// The element's name; an empty placeholder for other nodes (the tree builder only
    /// asks for element names, but a name for every node keeps `elem_name` total).
    name: QualName,
    data: Data,
}

/// The tree sink: an arena of nodes behind a `RefCell` (the sink API takes `&self`).
struct Arena {
    nodes: RefCell<Vec<DomNode>>,
}

fn placeholder_name() -> QualName {
    QualName::new(None, ns!(), local_name!(""))
}

impl Arena {
    fn new() -> Self {
        Arena {
            nodes: RefCell::new(vec![DomNode {
                parent: None,
                children: Vec::new(),
                name: placeholder_name(),
                data: Data::Document,
            }]),
        }
    }

    fn push(&self, name: QualName, data: Data) -> Id {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(DomNode {
            parent: None,
            children: Vec::new(),
            name,
            data,
        });
        nodes.len() - 1
    }
}

/// Unlinks `child` from its parent, if it has one.
fn detach(nodes: &mut [DomNode], child: Id) {
    let Some(parent) = nodes.get_mut(child).and_then(|n| n.parent.take()) else {
        return;
    };
    if let Some(p) = nodes.get_mut(parent) {
        p.children.retain(|&c| c != child);
    }
}

/// Inserts `new` into `parent`'s children at `index` (appends when `index` is `None`),
/// merging text into an adjacent text node the way the DOM does.
fn insert_at(nodes: &mut Vec<DomNode>, parent: Id, index: Option<usize>, new: NodeOrText<Id>) {
    match new {
        NodeOrText::AppendText(text) => {
            let Some(p) = nodes.get(parent) else { return };
            let at = index.unwrap_or(p.children.len());
            let before = at.checked_sub(1).and_then(|i| p.children.get(i)).copied();
            if let Some(Data::Text(existing)) =
                before.and_then(|b| nodes.get_mut(b)).map(|n| &mut n.data)
            {
                existing.push_str(&text);
                return;
            }
            nodes.push(DomNode {
                parent: Some(parent),
                children: Vec::new(),
                name: placeholder_name(),
                data: Data::Text(text.to_string()),
            });
            let id = nodes.len() - 1;
            if let Some(p) = nodes.get_mut(parent) {
                let at = at.min(p.children.len());
                p.children.insert(at, id);
            }
        }
        NodeOrText::AppendNode(child) => {
            if child == parent || nodes.get(child).is_none() {
                return;
            }
            detach(nodes, child);
            let Some(p) = nodes.get_mut(parent) else {
                return;
            };
            let at = index.unwrap_or(p.children.len()).min(p.children.len());
            p.children.insert(at, child);
            if let Some(c) = nodes.get_mut(child) {
                c.parent = Some(parent);
            }
        }
    }
}

impl TreeSink for Arena {
    type Handle = Id;
    type Output = Vec<DomNode>;
    type ElemName<'a> = Ref<'a, QualName>;

    fn finish(self) -> Vec<DomNode> {
        self.nodes.into_inner()
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {
        // Error recovery is the point of using an HTML5 parser; nothing to report.
    }

    fn get_document(&self) -> Id {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a Id) -> Ref<'a, QualName> {
        // Every node has a name (see `DomNode::name`); the document's is the placeholder.
        Ref::map(self.nodes.borrow(), |nodes| match nodes.get(*target) {
            Some(node) => &node.name,
            None => &nodes[0].name,
        })
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, _: ElementFlags) -> Id {
        self.push(name, Data::Element(attrs))
    }

    fn create_comment(&self, _text: StrTendril) -> Id {
        self.push(placeholder_name(), Data::Ignored)
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> Id {
        self.push(placeholder_name(), Data::Ignored)
    }

    fn append(&self, parent: &Id, child: NodeOrText<Id>) {
        insert_at(&mut self.nodes.borrow_mut(), *parent, None, child);
    }

    fn append_based_on_parent_node(&self, element: &Id, prev_element: &Id, child: NodeOrText<Id>) {
        let has_parent = self
            .nodes
            .borrow()
            .get(*element)
            .is_some_and(|n| n.parent.is_some());
        if has_parent {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn get_template_contents(&self, target: &Id) -> Id {
        // A template's content is kept as its children: the model has no separate
        // document fragment for it.
        *target
    }

    fn same_node(&self, x: &Id, y: &Id) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &Id, new_node: NodeOrText<Id>) {
        let mut nodes = self.nodes.borrow_mut();
        // Detach first so that the sibling's index is computed after any move within
        // the same parent.
        if let NodeOrText::AppendNode(child) = &new_node {
            if child == sibling {
                return;
            }
            detach(&mut nodes, *child);
        }
        let Some(parent) = nodes.get(*sibling).and_then(|n| n.parent) else {
            return;
        };
        let index = nodes
            .get(parent)
            .and_then(|p| p.children.iter().position(|c| c == sibling));
        insert_at(&mut nodes, parent, index, new_node);
    }

    fn add_attrs_if_missing(&self, target: &Id, attrs: Vec<Attribute>) {
        let mut nodes = self.nodes.borrow_mut();
        if let Some(DomNode {
            data: Data::Element(existing),
            ..
        }) = nodes.get_mut(*target)
        {
            for attr in attrs {
                if !existing.iter().any(|a| a.name == attr.name) {
                    existing.push(attr);
                }
            }
        }
    }

    fn remove_from_parent(&self, target: &Id) {
        detach(&mut self.nodes.borrow_mut(), *target);
    }

    fn reparent_children(&self, node: &Id, new_parent: &Id) {
        if node == new_parent {
            return;
        }
        let mut nodes = self.nodes.borrow_mut();
        let Some(moved) = nodes
            .get_mut(*node)
            .map(|n| std::mem::take(&mut n.children))
        else {
            return;
        };
        for &child in &moved {
            if let Some(c) = nodes.get_mut(child) {
                c.parent = Some(*new_parent);
            }
        }
        if let Some(p) = nodes.get_mut(*new_parent) {
            p.children.extend(moved);
        }
    }
}

/// See [`super::parse_body_html`].
pub(super) fn parse(html: &str, is_mark: &dyn Fn(&str) -> bool) -> Vec<BodyNode> {
    if u32::try_from(html.len()).is_err() {
        // html5ever's buffers are indexed by u32; no host sends 4 GiB of HTML.
        tracing::warn!(len = html.len(), "import: HTML too large, ignored");
        return Vec::new();
    }
    let nodes = run_parser(html);
    // Fragment parsing puts the content under an `html` element it appends to the
    // document; that element's children are the fragment.
    let root = nodes.first().and_then(|doc| {
        doc.children
            .iter()
            .copied()
            .find(|&c| matches!(nodes.get(c).map(|n| &n.data), Some(Data::Element(_))))
    });
    let Some(root) = root else {
        return Vec::new();
    };
    let walker = Walker {
        nodes: &nodes,
        is_mark,
    };
    walker.children(root, 0, &Marks::new(), 0)
}

/// Runs html5ever's fragment parsing (as for `innerHTML` of a `<body>`) with a
/// [`Guard`] between the tokenizer and the tree builder.
fn run_parser(html: &str) -> Vec<DomNode> {
    let arena = Arena::new();
    let context = create_element(
        &arena,
        QualName::new(None, ns!(html), local_name!("body")),
        Vec::new(),
    );
    let opts = TreeBuilderOpts {
        // Content, not a page to run: `<noscript>` holds markup, as with scripting off.
        scripting_enabled: false,
        ..TreeBuilderOpts::default()
    };
    let builder = TreeBuilder::new_for_fragment(arena, context, None, opts);
    let initial_state = builder.tokenizer_state_for_context_elem(false);
    let guard = Guard {
        builder,
        open: RefCell::new(Vec::new()),
        dropped: RefCell::new(HashMap::new()),
        node_budget: html.len().saturating_add(NODE_BUDGET_BASE),
    };
    let tokenizer = Tokenizer::new(
        guard,
        TokenizerOpts {
            initial_state: Some(initial_state),
            ..TokenizerOpts::default()
        },
    );
    let input = BufferQueue::default();
    input.push_back(StrTendril::from(html));
    // `feed` stops after each `</script>` (a browser would run it); just go on.
    while let TokenizerResult::Script(_) = tokenizer.feed(&input) {}
    tokenizer.end();
    tokenizer.sink.builder.sink.finish()
}

/// How deep the guard lets the tree builder's stack of open elements grow (as it
/// estimates it). Above the depth the walk keeps (elements past
/// [`MAX_DEPTH`], marks past [`MAX_MARK_NESTING`] are dropped anyway), so no kept
/// content is lost; low enough that the builder's scope checks, which walk the
/// stack on most start tags, stay cheap.
const MAX_OPEN: usize = 2 * (MAX_DEPTH + MAX_MARK_NESTING);

/// How far below the top of the stack an end tag (or an implied end) is looked for.
const END_TAG_REACH: usize = 32;

/// Nodes the tree builder may create beyond one per input byte.
const NODE_BUDGET_BASE: usize = 10_000;

/// Sits between the tokenizer and the tree builder and bounds the work the tree
/// builder does, whatever the input.
///
/// The HTML5 tree-building algorithm walks its stack of open elements on most start
/// tags, so 100,000 nested `<ul><li>` cost 10^10 steps (minutes); and reopening
/// formatting elements (`<b>`, …) after each block can create far more elements than
/// the input has tags. So the guard keeps an estimate of the stack (start tags push,
/// end tags pop to the nearest match, the common implied ends are modelled) and drops
/// start tags that would open an element beyond [`MAX_OPEN`] (and their end tags);
/// and once the tree holds more nodes than the input has bytes (plus a margin) it
/// stops feeding the builder. Legitimate documents reach neither bound.
struct Guard {
    builder: TreeBuilder<Id, Arena>,
    /// Estimated stack of open elements.
    open: RefCell<Vec<LocalName>>,
    /// Start tags dropped for depth, by name, so that their end tags are dropped too.
    dropped: RefCell<HashMap<LocalName, usize>>,
    node_budget: usize,
}

impl TokenSink for Guard {
    type Handle = Id;

    fn process_token(&self, token: Token, line_number: u64) -> TokenSinkResult<Id> {
        if self.builder.sink.nodes.borrow().len() > self.node_budget && token != Token::EOFToken {
            return TokenSinkResult::Continue;
        }
        if let Token::TagToken(tag) = &token {
            if !self.admit(tag) {
                return TokenSinkResult::Continue;
            }
        }
        self.builder.process_token(token, line_number)
    }

    fn end(&self) {
        self.builder.end()
    }

    fn adjusted_current_node_present_but_not_in_html_namespace(&self) -> bool {
        self.builder
            .adjusted_current_node_present_but_not_in_html_namespace()
    }
}

impl Guard {
    /// Updates the estimated stack for `tag`; false if the tag is to be dropped.
    fn admit(&self, tag: &Tag) -> bool {
        let name = &tag.name;
        let mut open = self.open.borrow_mut();
        match tag.kind {
            TagKind::StartTag => {
                if tag.self_closing || is_void(name) || is_structural(name) {
                    close_implied(&mut open, name);
                    return true;
                }
                if open.len() >= MAX_OPEN {
                    // Past the bound the tag is dropped outright, implied ends included:
                    // the builder never sees it, and this stays O(1) per tag.
                    *self.dropped.borrow_mut().entry(name.clone()).or_default() += 1;
                    return false;
                }
                close_implied(&mut open, name);
                open.push(name.clone());
                true
            }
            TagKind::EndTag => {
                if let Some(n) = self.dropped.borrow_mut().get_mut(name).filter(|n| **n > 0) {
                    *n -= 1;
                    return false;
                }
                if let Some(i) = open
                    .iter()
                    .rev()
                    .take(END_TAG_REACH)
                    .position(|n| n == name)
                {
                    let len = open.len() - 1 - i;
                    open.truncate(len);
                }
                true
            }
        }
    }
}

/// The ends a start tag implies, as far as they matter for depth (a simplified form of
/// the tree-building rules): a new `li` closes the open `li` of the same list, a block
/// closes an open `p`, a row closes the open cell and row, ….
fn close_implied(open: &mut Vec<LocalName>, name: &LocalName) {
    match &**name {
        "li" => {
            close_p(open);
            close_to(open, &["li"], is_list_item_boundary);
        }
        "dd" | "dt" => {
            close_p(open);
            close_to(open, &["dd", "dt"], is_list_item_boundary);
        }
        "tr" => close_to(open, &["tr", "td", "th"], |n| {
            matches!(
                n,
                "table" | "tbody" | "thead" | "tfoot" | "template" | "html"
            )
        }),
        "td" | "th" => close_to(open, &["td", "th"], |n| {
            matches!(
                n,
                "tr" | "table" | "tbody" | "thead" | "tfoot" | "template" | "html"
            )
        }),
        "tbody" | "thead" | "tfoot" => {
            close_to(open, &["tbody", "thead", "tfoot", "tr", "td", "th"], |n| {
                matches!(n, "table" | "template" | "html")
            })
        }
        "option" => close_top(open, &["option"]),
        "optgroup" => {
            close_top(open, &["option"]);
            close_top(open, &["optgroup"]);
        }
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            close_p(open);
            close_top(open, &["h1", "h2", "h3", "h4", "h5", "h6"]);
        }
        "address" | "article" | "aside" | "blockquote" | "center" | "details" | "dialog"
        | "dir" | "div" | "dl" | "fieldset" | "figcaption" | "figure" | "footer" | "form"
        | "header" | "hgroup" | "hr" | "main" | "menu" | "nav" | "ol" | "p" | "pre" | "section"
        | "summary" | "table" | "ul" => close_p(open),
        _ => {}
    }
}

/// Pops up to and including the nearest element named in `targets`, unless an element
/// for which `boundary` holds comes first (or it is not within reach).
fn close_to(open: &mut Vec<LocalName>, targets: &[&str], boundary: impl Fn(&str) -> bool) {
    for (i, n) in open.iter().rev().take(END_TAG_REACH).enumerate() {
        if targets.contains(&&**n) {
            let len = open.len() - 1 - i;
            open.truncate(len);
            return;
        }
        if boundary(n) {
            return;
        }
    }
}

/// Pops the current element if it is named in `targets`.
fn close_top(open: &mut Vec<LocalName>, targets: &[&str]) {
    if open.last().is_some_and(|n| targets.contains(&&**n)) {
        open.pop();
    }
}

/// Closes a `p` in button scope.
fn close_p(open: &mut Vec<LocalName>) {
    close_to(open, &["p"], |n| {
        matches!(
            n,
            "applet"
                | "caption"
                | "html"
                | "table"
                | "td"
                | "th"
                | "marquee"
                | "object"
                | "template"
                | "button"
                | "foreignObject"
                | "desc"
                | "title"
                | "mi"
                | "mo"
                | "mn"
                | "ms"
                | "mtext"
                | "annotation-xml"
        )
    });
}

/// Where the search for an open `li` (`dd`, `dt`) stops: the "special" elements other
/// than `address`, `div` and `p`.
fn is_list_item_boundary(name: &str) -> bool {
    matches!(
        name,
        "applet"
            | "area"
            | "article"
            | "aside"
            | "base"
            | "basefont"
            | "bgsound"
            | "blockquote"
            | "body"
            | "br"
            | "button"
            | "caption"
            | "center"
            | "col"
            | "colgroup"
            | "dd"
            | "details"
            | "dir"
            | "dl"
            | "dt"
            | "embed"
            | "fieldset"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "frame"
            | "frameset"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "head"
            | "header"
            | "hgroup"
            | "hr"
            | "html"
            | "iframe"
            | "img"
            | "input"
            | "keygen"
            | "li"
            | "link"
            | "listing"
            | "main"
            | "marquee"
            | "menu"
            | "meta"
            | "nav"
            | "noembed"
            | "noframes"
            | "noscript"
            | "object"
            | "ol"
            | "param"
            | "plaintext"
            | "pre"
            | "script"
            | "search"
            | "section"
            | "select"
            | "source"
            | "style"
            | "summary"
            | "table"
            | "tbody"
            | "td"
            | "template"
            | "textarea"
            | "tfoot"
            | "th"
            | "thead"
            | "title"
            | "tr"
            | "track"
            | "ul"
            | "wbr"
            | "xmp"
    )
}

/// Void elements never stay open.
fn is_void(name: &LocalName) -> bool {
    matches!(
        &**name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "keygen"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
            | "image"
    )
}

/// Start tags that never open a new element inside a fragment's body.
fn is_structural(name: &LocalName) -> bool {
    matches!(&**name, "html" | "head" | "body" | "frameset" | "frame")
}

type Marks = BTreeMap<String, BTreeMap<String, String>>;

struct Walker<'a> {
    nodes: &'a [DomNode],
    is_mark: &'a dyn Fn(&str) -> bool,
}

impl Walker<'_> {
    /// The body nodes for the children of `parent`, an element at `depth` (the root is
    /// 0, the body's direct children 1, as in the renderer) whose text inherits
    /// `marks`; `nesting` counts the marks opened since the body.
    fn children(&self, parent: Id, depth: usize, marks: &Marks, nesting: usize) -> Vec<BodyNode> {
        let mut out = Vec::new();
        let mut runs = Vec::new();
        self.walk(parent, depth, marks, nesting, &mut out, &mut runs);
        flush(&mut out, &mut runs);
        drop_layout_whitespace(out)
    }

    /// Appends the content of `parent` to `out`, collecting consecutive text (through
    /// marks) in `runs`.
    fn walk(
        &self,
        parent: Id,
        depth: usize,
        marks: &Marks,
        nesting: usize,
        out: &mut Vec<BodyNode>,
        runs: &mut Vec<Run>,
    ) {
        let Some(node) = self.nodes.get(parent) else {
            return;
        };
        for &child in &node.children {
            let Some(child_node) = self.nodes.get(child) else {
                continue;
            };
            match &child_node.data {
                Data::Text(text) => push_run(runs, text, marks),
                Data::Element(attrs) => {
                    let tag = child_node.name.local.to_string();
                    if (self.is_mark)(&tag) {
                        if nesting >= MAX_MARK_NESTING {
                            tracing::debug!("import: marks nested too deep, content dropped");
                            continue;
                        }
                        let mut inner = marks.clone();
                        inner.insert(tag, attr_map(attrs));
                        self.walk(child, depth, &inner, nesting + 1, out, runs);
                    } else {
                        flush(out, runs);
                        if depth + 1 > MAX_DEPTH {
                            tracing::debug!("import: element nested too deep, dropped");
                            continue;
                        }
                        // Marks around a block carry into it: the reader saw that text
                        // formatted, so it stays formatted.
                        let children = self.children(child, depth + 1, marks, nesting);
                        out.push(BodyNode::Element {
                            tag,
                            attrs: attrs
                                .iter()
                                .map(|a| (attr_name(a), a.value.to_string()))
                                .collect(),
                            children,
                        });
                    }
                }
                Data::Document | Data::Ignored => {}
            }
        }
    }
}

/// `prefix:local` for the namespaced attributes of foreign content (`xlink:href`),
/// the local name otherwise.
fn attr_name(attr: &Attribute) -> String {
    match &attr.name.prefix {
        Some(prefix) => format!("{}:{}", prefix, attr.name.local),
        None => attr.name.local.to_string(),
    }
}

fn attr_map(attrs: &[Attribute]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for attr in attrs {
        // The parser already dropped repeated names; `entry` keeps the first anyway.
        map.entry(attr_name(attr))
            .or_insert_with(|| attr.value.to_string());
    }
    map
}

fn push_run(runs: &mut Vec<Run>, text: &str, marks: &Marks) {
    if text.is_empty() {
        return;
    }
    if let Some(last) = runs.last_mut() {
        if &last.marks == marks {
            last.text.push_str(text);
            return;
        }
    }
    runs.push(Run {
        text: text.to_owned(),
        marks: marks.clone(),
    });
}

fn flush(out: &mut Vec<BodyNode>, runs: &mut Vec<Run>) {
    if !runs.is_empty() {
        out.push(BodyNode::Text(std::mem::take(runs)));
    }
}

fn is_html_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C')
}

/// Whether whitespace next to this node is layout (indentation between blocks).
fn is_block(node: Option<&BodyNode>) -> bool {
    match node {
        None => true,
        Some(BodyNode::Element { tag, .. }) => {
            !INLINE_ELEMENTS.iter().any(|t| t.eq_ignore_ascii_case(tag))
        }
        Some(BodyNode::Text(_)) => false,
    }
}

/// Drops whitespace-only texts that sit between blocks (or between a block and the
/// parent's edge). A parent whose only content is whitespace keeps it (`<p> </p>`):
/// that is content, not indentation.
fn drop_layout_whitespace(nodes: Vec<BodyNode>) -> Vec<BodyNode> {
    if nodes.len() < 2 {
        return nodes;
    }
    let layout: Vec<bool> = (0..nodes.len())
        .map(|i| match &nodes[i] {
            BodyNode::Text(runs) => {
                runs.iter().all(|r| r.text.chars().all(is_html_whitespace))
                    && is_block(i.checked_sub(1).and_then(|p| nodes.get(p)))
                    && is_block(nodes.get(i + 1))
            }
            BodyNode::Element { .. } => false,
        })
        .collect();
    nodes
        .into_iter()
        .zip(layout)
        .filter_map(|(node, drop)| (!drop).then_some(node))
        .collect()
}
