//! # Rendering a Chorus document to HTML, plain text and JSON
//!
//! A Chorus document has two roots (see `DESIGN.md`, "Document model"): `title`, a
//! Y.Text holding plain text, and `body`, a Y.XmlFragment holding HTML directly.
//! Every Y.XmlElement's tag is an HTML tag and its attributes are HTML attributes;
//! inline formatting lives on Y.XmlText runs as formatting attributes whose keys are
//! inline tags (`strong`, `em`, `a`, …) and whose values are objects of that tag's
//! HTML attributes (`a` → `{"href": "…"}`, `strong` → `{}` or `true`). y-prosemirror
//! suffixes overlapping marks with `--` and a hash (`a--4f3a2b1c`): everything from
//! the first `--` on is dropped to get the tag.
//!
//! This module only produces *well-formed* output: text and attribute values are
//! escaped, names that are not valid HTML names are skipped, void elements have no
//! closing tag, and the output is deterministic (attributes and marks are sorted by
//! name). It applies no sanitising policy: the whitelist is enforced elsewhere.
//!
//! Rules, shared by the HTML and JSON renderings:
//! - children are walked item by item, so a non-XML item that a client slipped into
//!   the fragment (a bare string, a map, …) is skipped without hiding what follows;
//! - attribute values: strings as they are, numbers and booleans as their text
//!   (JavaScript style: `1`, `1.5`, `true`), `null`/`undefined` skipped, objects and
//!   arrays JSON-encoded (keys sorted);
//! - an element nested deeper than [`MAX_DEPTH`] is dropped with its subtree, so a
//!   hostile document cannot overflow the stack of the renderer (or of whoever
//!   serialises or drops the JSON tree afterwards).
//!
//! All functions are pure reads: they take a [`ReadTxn`] (or open a read
//! transaction on a [`Doc`]) and never change the document.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map as JsonMap, Value};
use yrs::types::text::YChange;
use yrs::types::ToJson;
use yrs::{
    Any, Array, ArrayRef, Doc, GetString, Number, Out, ReadTxn, Text, TextRef, Transact, Xml,
    XmlElementRef, XmlFragmentRef, XmlTextRef,
};

use crate::ROOT_TITLE;
use chorus_whitelist::profile::AttrMeaning;
use chorus_whitelist::EditorProfile;

/// Elements nested deeper than this (counting from the body's direct children, which
/// are at depth 1) are dropped together with their subtree. Real documents stay far
/// below it; the bound only protects the recursive renderers from hostile input.
pub const MAX_DEPTH: usize = 256;

/// HTML void elements: rendered as a start tag only, their children (if a client
/// managed to add any) are not rendered.
const VOID_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// The body fragment as HTML.
///
/// Text and attribute values are escaped (`& < > " '`). Tag names are written only if
/// they match `^[a-zA-Z][a-zA-Z0-9-]*$` and attribute names only if they match
/// `^[a-zA-Z_:][-a-zA-Z0-9_:.]*$`: an element with an invalid tag is unwrapped (its
/// children are rendered in its place), an inline mark with an invalid tag is not
/// opened (its text is still rendered), an invalid attribute is skipped. Void elements
/// (`area`, `base`, `br`, `col`, `embed`, `hr`, `img`, `input`, `link`, `meta`,
/// `source`, `track`, `wbr`) render without a closing tag. Each text run opens its
/// marks in a stable order (sorted by tag name, outermost first) as nested
/// `<tag attrs>…</tag>`. Attributes are written sorted by name. No sanitising policy
/// is applied here.
pub fn body_html<T: ReadTxn>(txn: &T, body: &XmlFragmentRef) -> String {
    let mut out = String::new();
    for node in &read_children(txn, body, 0) {
        write_node_html(&mut out, node);
    }
    out
}

/// [`body_html`] for a body written in `profile`'s names: each element, attribute
/// and mark is written as the HTML it means (`heading` with `level: 2` → `<h2>`,
/// `textAlign` → `style="text-align: …"`, `bold` → `<strong>`). A name the profile
/// does not know is written as it is (the HTML cleaner then drops it).
pub fn body_html_as<T: ReadTxn>(txn: &T, body: &XmlFragmentRef, profile: &EditorProfile) -> String {
    if profile.is_identity() {
        return body_html(txn, body);
    }
    let mut nodes = read_children(txn, body, 0);
    for node in &mut nodes {
        to_html_names(node, profile);
    }
    let mut out = String::new();
    for node in &nodes {
        write_node_html(&mut out, node);
    }
    out
}

/// The title as plain text.
pub fn title_text<T: ReadTxn>(txn: &T, title: &TextRef) -> String {
    title.get_string(txn)
}

/// The body as a JSON tree: an array of nodes, where an element is
/// `{"type":"element","name":"p","attrs":{..},"children":[..]}` and a text run is
/// `{"type":"text","text":"…","marks":{"strong":{},"a":{"href":"…"}}}` (`marks` is
/// omitted when empty).
///
/// The JSON keeps the data as stored (it is not markup, so nothing is escaped and no
/// name is filtered): element names as they are; attribute values with their JSON
/// type (`undefined` attributes skipped). Marks are keyed by tag (the y-prosemirror
/// `--xxxxxxxx` suffix removed) and valued by their attribute object (`{}` when the
/// stored value is not an object, e.g. `true`); when several marks of a run share a
/// tag, the first by stored key wins. An inline element embedded in a text that
/// carries formatting gets the same `marks` member.
pub fn body_json<T: ReadTxn>(txn: &T, body: &XmlFragmentRef) -> Value {
    Value::Array(read_children(txn, body, 0).iter().map(node_json).collect())
}

/// The `title` root as text, empty if the document has none.
fn read_title<T: ReadTxn>(txn: &T) -> String {
    txn.get_text(ROOT_TITLE)
        .map(|t| title_text(txn, &t))
        .unwrap_or_default()
}

/// The whole document as JSON: `{"title": "...", "body": [...]}` (see [`body_json`]).
///
/// Opens a read transaction on `doc`: the caller must not hold a write transaction
/// on it (that would block). A missing root reads as empty.
pub fn doc_json(doc: &Doc) -> Value {
    doc_json_as(doc, &EditorProfile::html())
}

/// [`doc_json`] for a document whose body is `profile`'s fragment. The tree keeps
/// the editor's own names (for TipTap, what its `getJSON` would name).
pub fn doc_json_as(doc: &Doc, profile: &EditorProfile) -> Value {
    let txn = doc.transact();
    let title = read_title(&txn);
    let body = txn
        .get_xml_fragment(profile.fragment())
        .map(|b| body_json(&txn, &b))
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let mut obj = JsonMap::new();
    obj.insert("title".to_owned(), Value::String(title));
    obj.insert("body".to_owned(), body);
    Value::Object(obj)
}

/// The whole document as `(title, body HTML)` (see [`title_text`] and [`body_html`]).
///
/// Opens a read transaction on `doc`: the caller must not hold a write transaction
/// on it (that would block). A missing root reads as empty.
pub fn doc_html(doc: &Doc) -> (String, String) {
    doc_html_as(doc, &EditorProfile::html())
}

/// [`doc_html`] for a document whose body is `profile`'s fragment, written in its
/// names (see [`body_html_as`]).
pub fn doc_html_as(doc: &Doc, profile: &EditorProfile) -> (String, String) {
    let txn = doc.transact();
    let title = read_title(&txn);
    let body = txn
        .get_xml_fragment(profile.fragment())
        .map(|b| body_html_as(&txn, &b, profile))
        .unwrap_or_default();
    (title, body)
}

// ---------------------------------------------------------------------------------------------
// Intermediate tree, read once from yrs and rendered to HTML or JSON
// ---------------------------------------------------------------------------------------------

/// One inline mark of a text run (or of an embedded inline element).
#[derive(Debug)]
struct Mark {
    /// The tag: the stored key up to its first `--`.
    tag: String,
    /// The stored value (`{attrs}`, `true`, …).
    value: Any,
}

#[derive(Debug)]
enum Node {
    Element {
        name: String,
        /// Sorted by name; values already reduced to plain data.
        attrs: Vec<(String, Any)>,
        /// Only for elements embedded in a text with formatting; usually empty.
        marks: Vec<Mark>,
        children: Vec<Node>,
    },
    Text {
        text: String,
        marks: Vec<Mark>,
    },
}

/// Children of an element or fragment at `depth` (the depth of the parent; the body
/// itself is 0).
///
/// Walks every item of the branch, not [`yrs::XmlFragment::children`], which stops at the
/// first non-XML item; and in one pass rather than `get(i)` per index, which is O(i).
/// The branch is read through its [`ArrayRef`] view (yrs provides `AsRef<ArrayRef>` for
/// XML elements and fragments), whose iterator yields every live item as an [`Out`].
fn read_children<T: ReadTxn, B: AsRef<ArrayRef>>(txn: &T, parent: &B, depth: usize) -> Vec<Node> {
    let items: &ArrayRef = parent.as_ref();
    let mut nodes = Vec::new();
    for item in items.iter(txn) {
        match item {
            Out::YXmlElement(_) | Out::YXmlText(_) | Out::YXmlFragment(_) => {
                read_out(txn, item, depth, Vec::new(), &mut nodes)
            }
            other => tracing::debug!(?other, "render: skipping a non-XML child"),
        }
    }
    nodes
}

/// Appends the node(s) for one item (a child of a fragment/element, or a chunk of a
/// text diff carrying `marks`) to `nodes`.
fn read_out<T: ReadTxn>(txn: &T, item: Out, depth: usize, marks: Vec<Mark>, nodes: &mut Vec<Node>) {
    match item {
        Out::YXmlElement(el) => {
            if let Some(node) = read_element(txn, &el, depth + 1, marks) {
                nodes.push(node);
            }
        }
        Out::YXmlText(text) => read_text(txn, &text, depth, nodes),
        Out::YXmlFragment(frag) => {
            // Not produced by y-prosemirror; render its children in place.
            if depth < MAX_DEPTH {
                nodes.extend(read_children(txn, &frag, depth + 1));
            }
        }
        Out::Any(Any::String(s)) => {
            if !s.is_empty() {
                nodes.push(Node::Text {
                    text: s.to_string(),
                    marks,
                });
            }
        }
        other => {
            tracing::debug!(?other, "render: skipping a non-text embed");
        }
    }
}

fn read_element<T: ReadTxn>(
    txn: &T,
    el: &XmlElementRef,
    depth: usize,
    marks: Vec<Mark>,
) -> Option<Node> {
    if depth > MAX_DEPTH {
        tracing::warn!(
            depth,
            "render: element nested too deep, dropped with its subtree"
        );
        return None;
    }
    let mut attrs: Vec<(String, Any)> = el
        .attributes(txn)
        .map(|(name, value)| (name.to_owned(), value.to_json(txn)))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    Some(Node::Element {
        name: el.tag().to_string(),
        attrs,
        marks,
        children: read_children(txn, el, depth),
    })
}

/// The runs of an XML text: one [`Node::Text`] per formatted chunk, embedded
/// elements as element nodes.
fn read_text<T: ReadTxn>(txn: &T, text: &XmlTextRef, depth: usize, nodes: &mut Vec<Node>) {
    for chunk in text.diff(txn, YChange::identity) {
        let marks = chunk
            .attributes
            .map(|attrs| marks_of(*attrs))
            .unwrap_or_default();
        match chunk.insert {
            // A text nested in a text (not produced by y-prosemirror): its own runs.
            Out::YXmlText(inner) => {
                if depth < MAX_DEPTH {
                    read_text(txn, &inner, depth + 1, nodes)
                }
            }
            other => read_out(txn, other, depth, marks, nodes),
        }
    }
}

/// The marks of a run, sorted by tag then by stored key; removed (`null`) marks are
/// dropped.
fn marks_of(attrs: HashMap<Arc<str>, Any>) -> Vec<Mark> {
    let mut keyed: Vec<(Arc<str>, Any)> = attrs
        .into_iter()
        .filter(|(_, v)| !matches!(v, Any::Null | Any::Undefined))
        .collect();
    keyed.sort_by(|a, b| {
        mark_tag(&a.0)
            .cmp(mark_tag(&b.0))
            .then_with(|| a.0.cmp(&b.0))
    });
    keyed
        .into_iter()
        .map(|(key, value)| Mark {
            tag: mark_tag(&key).to_owned(),
            value,
        })
        .collect()
}

/// `a--4f3a2b1c` → `a`.
pub(crate) fn mark_tag(key: &str) -> &str {
    match key.find("--") {
        Some(i) => &key[..i],
        None => key,
    }
}

/// Rename `node` (and its subtree) from `profile`'s names to HTML's.
fn to_html_names(node: &mut Node, profile: &EditorProfile) {
    match node {
        Node::Text { marks, .. } => marks_to_html(marks, profile),
        Node::Element {
            name,
            attrs,
            marks,
            children,
        } => {
            marks_to_html(marks, profile);
            for child in children.iter_mut() {
                to_html_names(child, profile);
            }
            let Some(map) = profile.node(name) else {
                return;
            };
            let picked = map
                .tag_attribute
                .as_ref()
                .and_then(|a| attrs.iter().find(|(k, _)| k == a))
                .and_then(|(_, v)| attr_text(v));
            // A node whose picking attribute is missing takes the first value the
            // editor's schema lists (its default: TipTap's heading level 1).
            let default = map.tags().into_iter().next();
            let Some(tag) = map.tag(picked.as_deref()).or(default) else {
                return;
            };
            let mut html: Vec<(String, Any)> = Vec::with_capacity(attrs.len());
            let mut style = String::new();
            for (key, value) in attrs.drain(..) {
                let (Some(rule), Some(text)) = (map.attributes.get(&key), attr_text(&value)) else {
                    continue;
                };
                match &rule.meaning {
                    AttrMeaning::Tag => {}
                    AttrMeaning::Attribute(h) => {
                        html.push((h.clone(), Any::from(rule.html_value(&text))))
                    }
                    AttrMeaning::Style(property) => {
                        if !style.is_empty() {
                            style.push_str("; ");
                        }
                        style.push_str(&format!("{property}: {text}"));
                    }
                }
            }
            if !style.is_empty() {
                html.push(("style".into(), Any::from(style)));
            }
            html.sort_by(|a, b| a.0.cmp(&b.0));
            *name = tag;
            *attrs = html;
        }
    }
}

/// Rename a run's marks to their inline tags and HTML attribute names.
fn marks_to_html(marks: &mut [Mark], profile: &EditorProfile) {
    for mark in marks.iter_mut() {
        let Some(map) = profile.mark(&mark.tag) else {
            continue;
        };
        mark.tag = map.tag.clone();
        if let Any::Map(attrs) = &mark.value {
            let renamed: HashMap<String, Any> = attrs
                .iter()
                .filter_map(|(k, v)| Some((map.attributes.get(k.as_str())?.clone(), v.clone())))
                .collect();
            mark.value = Any::from(renamed);
        }
    }
    marks.sort_by(|a, b| a.tag.cmp(&b.tag));
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

fn write_node_html(out: &mut String, node: &Node) {
    match node {
        Node::Text { text, marks } => {
            let opened = open_marks(out, marks);
            escape_into(out, text);
            close_marks(out, &opened);
        }
        Node::Element {
            name,
            attrs,
            marks,
            children,
        } => {
            let opened = open_marks(out, marks);
            if is_valid_tag(name) {
                out.push('<');
                out.push_str(name);
                write_attrs(out, attrs.iter().map(|(k, v)| (k.as_str(), v)));
                out.push('>');
                if is_void(name) {
                    if !children.is_empty() {
                        tracing::debug!(%name, "render: children of a void element skipped");
                    }
                } else {
                    for child in children {
                        write_node_html(out, child);
                    }
                    out.push_str("</");
                    out.push_str(name);
                    out.push('>');
                }
            } else {
                tracing::debug!(%name, "render: invalid tag name, element unwrapped");
                for child in children {
                    write_node_html(out, child);
                }
            }
            close_marks(out, &opened);
        }
    }
}

/// Opens the marks with a valid tag, in order; returns the tags opened (to close in
/// reverse order).
fn open_marks<'a>(out: &mut String, marks: &'a [Mark]) -> Vec<&'a str> {
    let mut opened = Vec::with_capacity(marks.len());
    for mark in marks {
        if !is_valid_tag(&mark.tag) {
            tracing::debug!(tag = %mark.tag, "render: invalid mark tag skipped");
            continue;
        }
        out.push('<');
        out.push_str(&mark.tag);
        if let Any::Map(attrs) = &mark.value {
            let mut sorted: Vec<(&str, &Any)> =
                attrs.iter().map(|(k, v)| (k.as_str(), v)).collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            write_attrs(out, sorted.into_iter());
        }
        out.push('>');
        opened.push(mark.tag.as_str());
    }
    opened
}

fn close_marks(out: &mut String, opened: &[&str]) {
    for tag in opened.iter().rev() {
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }
}

/// Writes ` name="value"` for each attribute (already sorted) with a valid name and a
/// renderable value.
fn write_attrs<'a>(out: &mut String, attrs: impl Iterator<Item = (&'a str, &'a Any)>) {
    for (name, value) in attrs {
        if !is_valid_attr_name(name) {
            tracing::debug!(%name, "render: invalid attribute name skipped");
            continue;
        }
        let Some(text) = attr_text(value) else {
            continue;
        };
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_into(out, &text);
        out.push('"');
    }
}

/// An attribute value as text: strings as they are, numbers and booleans as their
/// (JavaScript) text, null/undefined: none, anything else JSON-encoded.
pub(crate) fn attr_text(value: &Any) -> Option<String> {
    match value {
        Any::Null | Any::Undefined => None,
        Any::String(s) => Some(s.to_string()),
        Any::Bool(b) => Some(b.to_string()),
        Any::Number(n) => Some(number_text(n)),
        other => Some(any_json(other).to_string()),
    }
}

/// A number as JavaScript's `String(n)` writes it for the usual cases (`1`, `1.5`,
/// `-3`, `NaN`, `Infinity`).
fn number_text(n: &Number) -> String {
    match *n {
        Number::Int(i) => i.to_string(),
        Number::Float(f) if f.is_nan() => "NaN".to_owned(),
        Number::Float(f) if f.is_infinite() => {
            if f > 0.0 {
                "Infinity".to_owned()
            } else {
                "-Infinity".to_owned()
            }
        }
        // Rust's Display already writes `1` for 1.0; only -0 differs from JavaScript.
        Number::Float(f) => {
            if f == 0.0 {
                "0".to_owned()
            } else {
                f.to_string()
            }
        }
    }
}

pub(crate) fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `^[a-zA-Z][a-zA-Z0-9-]*$`
pub(crate) fn is_valid_tag(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `^[a-zA-Z_:][-a-zA-Z0-9_:.]*$`
pub(crate) fn is_valid_attr_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

pub(crate) fn is_void(name: &str) -> bool {
    VOID_ELEMENTS.iter().any(|v| v.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

fn node_json(node: &Node) -> Value {
    let mut obj = JsonMap::new();
    match node {
        Node::Element {
            name,
            attrs,
            marks,
            children,
        } => {
            obj.insert("type".to_owned(), Value::from("element"));
            obj.insert("name".to_owned(), Value::from(name.as_str()));
            let mut attrs_json = JsonMap::new();
            for (k, v) in attrs {
                if !matches!(v, Any::Undefined) {
                    attrs_json.insert(k.clone(), any_json(v));
                }
            }
            obj.insert("attrs".to_owned(), Value::Object(attrs_json));
            if !marks.is_empty() {
                obj.insert("marks".to_owned(), marks_json(marks));
            }
            obj.insert(
                "children".to_owned(),
                Value::Array(children.iter().map(node_json).collect()),
            );
        }
        Node::Text { text, marks } => {
            obj.insert("type".to_owned(), Value::from("text"));
            obj.insert("text".to_owned(), Value::from(text.as_str()));
            if !marks.is_empty() {
                obj.insert("marks".to_owned(), marks_json(marks));
            }
        }
    }
    Value::Object(obj)
}

fn marks_json(marks: &[Mark]) -> Value {
    let mut obj = JsonMap::new();
    for mark in marks {
        if obj.contains_key(&mark.tag) {
            continue;
        }
        let value = match &mark.value {
            Any::Map(_) => any_json(&mark.value),
            _ => Value::Object(JsonMap::new()),
        };
        obj.insert(mark.tag.clone(), value);
    }
    Value::Object(obj)
}

/// [`Any`] as JSON, object keys inserted in sorted order (stable output whether or not
/// serde_json preserves insertion order). Integral floats in the safe-integer range
/// become integers (`1`, not `1.0`, as JavaScript writes them); NaN and infinities
/// become `null` (as `JSON.stringify` does); buffers become arrays of bytes.
fn any_json(value: &Any) -> Value {
    match value {
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(b) => Value::Bool(*b),
        Any::Number(Number::Int(i)) => Value::from(*i),
        Any::Number(Number::Float(f)) => {
            const SAFE: f64 = 9_007_199_254_740_991.0;
            if f.fract() == 0.0 && f.abs() <= SAFE {
                Value::from(*f as i64)
            } else {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
        }
        Any::String(s) => Value::from(s.as_ref()),
        Any::Buffer(bytes) => Value::Array(bytes.iter().map(|b| Value::from(*b)).collect()),
        Any::Array(items) => Value::Array(items.iter().map(any_json).collect()),
        Any::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut obj = JsonMap::new();
            for key in keys {
                obj.insert(key.clone(), any_json(&map[key]));
            }
            Value::Object(obj)
        }
    }
}

#[cfg(test)]
mod tests;
