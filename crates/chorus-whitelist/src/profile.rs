//! Editor profiles: the names an editor writes into the shared document, and the
//! HTML each one means.
//!
//! The draft's `body` is HTML-named by default (an element `p`, a mark `strong`):
//! the web client's schema uses HTML's own names. Other editors write their own
//! schema's names: TipTap writes `paragraph`, `heading` with `level: 2`, a mark
//! `bold`. A profile says what each of those names means in HTML, so the policy
//! keeps judging meaning (is a `heading` at level 2 an allowed `h2`? is this
//! `link`'s `href` an allowed `a href`?), and the renderer and the importer
//! translate between the two vocabularies. The `html` profile is the identity.
//!
//! The JSON form (`proto/editor-tiptap.json` is the shipped TipTap profile):
//!
//! ```json
//! {
//!   "fragment": "default",
//!   "nodes": {
//!     "paragraph": { "html": "p", "attributes": { "textAlign": { "style": "text-align" } } },
//!     "heading": { "html": "h{level}",
//!                  "attributes": { "level": { "type": "number", "values": ["1", "2", "3"] } } },
//!     "orderedList": { "html": "ol", "attributes": { "start": { "html": "start", "type": "number" } } }
//!   },
//!   "marks": { "bold": { "html": "strong" },
//!              "link": { "html": "a", "attributes": { "href": "href", "target": "target" } } }
//! }
//! ```
//!
//! - `fragment`: the `Y.XmlFragment` the editor binds to (TipTap's `field`).
//! - `nodes`: element name → `html`, the tag it means. A tag may name one of the
//!   node's attributes in braces (`h{level}`): that attribute picks the tag, and
//!   its `values` list the ones it may take. Each other attribute maps to an HTML
//!   attribute (`html`) or to one CSS property of the `style` attribute (`style`).
//!   `type` is how the editor stores the value (`string`, the default, `number` or
//!   `boolean`), so what the importer writes is what the editor would have written;
//!   `format` puts the value inside a fixed HTML value (`language-{}`: `js` is
//!   `class="language-js"`).
//!   For what the importer writes to fit the editor's schema: `block: true` for a
//!   node the editor keeps as a block where HTML has it in running text (TipTap's
//!   `image`: a paragraph holding one is split around it), `plain: true` for one
//!   that holds plain text only (`codeBlock`), `first` for the node the
//!   content must start with (`listItem`: `paragraph`), `fill` for the node an
//!   empty one gets (content that may not be empty: table cells, `blockquote`).
//! - `marks`: formatting name → the inline tag it means, and its attributes
//!   (editor name → HTML attribute name).
//!
//! An element, attribute or mark the profile does not name means nothing in HTML:
//! the guard treats it as content outside the policy.

use crate::Policy;
use rustc_hash::FxHashMap as HashMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The shipped TipTap profile (StarterKit, Table, Image, TextAlign).
pub const TIPTAP_PROFILE_JSON: &str = include_str!("../../../proto/editor-tiptap.json");

/// Why a profile file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    /// Not valid JSON for the profile format.
    #[error("editor profile is not valid: {0}")]
    Format(String),
    /// A node or mark entry does not make sense.
    #[error("editor profile, {what}: {why}")]
    Entry {
        /// The node, attribute or mark.
        what: String,
        /// What is wrong with it.
        why: String,
    },
}

/// How the editor stores an attribute's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// A string.
    #[default]
    String,
    /// A JSON number.
    Number,
    /// `true` / `false`.
    Boolean,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    fragment: String,
    #[serde(default)]
    nodes: BTreeMap<String, NodeFile>,
    #[serde(default)]
    marks: BTreeMap<String, MarkFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFile {
    html: String,
    #[serde(default)]
    attributes: BTreeMap<String, AttrFile>,
    #[serde(default)]
    block: bool,
    #[serde(default)]
    plain: bool,
    first: Option<String>,
    fill: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttrFile {
    html: Option<String>,
    style: Option<String>,
    #[serde(default, rename = "type")]
    value_type: ValueType,
    values: Option<Vec<String>>,
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkFile {
    html: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// What one editor attribute means in HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrMeaning {
    /// It picks the element's tag (`level` of `h{level}`).
    Tag,
    /// The HTML attribute of this name.
    Attribute(String),
    /// This CSS property, inside the `style` attribute.
    Style(String),
}

/// One editor attribute of a node.
#[derive(Debug, Clone)]
pub struct NodeAttr {
    /// What it means.
    pub meaning: AttrMeaning,
    /// How the editor stores it.
    pub value_type: ValueType,
    /// The values it may take (`None`: any).
    pub values: Option<Vec<String>>,
    /// The HTML value around the editor's: (before, after), from a `format` such as
    /// `language-{}`.
    pub format: Option<(String, String)>,
}

impl NodeAttr {
    /// The HTML value for the editor's value `v`.
    pub fn html_value(&self, v: &str) -> String {
        match &self.format {
            Some((before, after)) => format!("{before}{v}{after}"),
            None => v.to_owned(),
        }
    }

    /// The editor's value for the HTML value `v` (`None`: it does not fit the format).
    pub fn editor_value<'a>(&self, v: &'a str) -> Option<&'a str> {
        match &self.format {
            Some((before, after)) => v
                .strip_prefix(before.as_str())?
                .strip_suffix(after.as_str())
                .filter(|x| !x.is_empty()),
            None => Some(v),
        }
    }
}

/// One editor node: its tag and attributes.
#[derive(Debug, Clone)]
pub struct NodeMap {
    /// The tag, whole (`p`), or around the value of [`NodeMap::tag_attribute`]
    /// (`h` + `2` + ``).
    prefix: String,
    suffix: String,
    /// The attribute that picks the tag, if the tag has a `{…}`.
    pub tag_attribute: Option<String>,
    /// Editor attribute name → meaning.
    pub attributes: BTreeMap<String, NodeAttr>,
    /// A block in the editor's schema although HTML puts it in running text
    /// (TipTap's `image`): imported HTML is split around it.
    pub block: bool,
    /// Holds plain text only, no marks or other nodes (TipTap's `codeBlock`).
    pub plain: bool,
    /// The node its content must start with (TipTap's `listItem`: `paragraph`).
    pub first: Option<String>,
    /// The node an empty one is filled with (content that may not be empty).
    pub fill: Option<String>,
}

impl NodeMap {
    /// The tag for the picking attribute's value (`None` for a value it may not take).
    pub fn tag(&self, picked: Option<&str>) -> Option<String> {
        match (&self.tag_attribute, picked) {
            (None, _) => Some(self.prefix.clone()),
            (Some(attr), Some(value)) => {
                let rule = &self.attributes[attr];
                let allowed = rule
                    .values
                    .as_ref()
                    .is_none_or(|v| v.iter().any(|x| x == value));
                allowed.then(|| format!("{}{value}{}", self.prefix, self.suffix))
            }
            (Some(_), None) => None,
        }
    }

    /// Every tag this node can mean (for a node whose picking attribute is not
    /// known yet); empty if its values are open-ended.
    pub fn tags(&self) -> Vec<String> {
        match &self.tag_attribute {
            None => vec![self.prefix.clone()],
            Some(attr) => self.attributes[attr]
                .values
                .iter()
                .flatten()
                .map(|v| format!("{}{v}{}", self.prefix, self.suffix))
                .collect(),
        }
    }

    /// The editor attribute that means the HTML attribute `html`.
    pub fn attribute_for(&self, html: &str) -> Option<(&str, &NodeAttr)> {
        self.attributes
            .iter()
            .find(|(_, a)| matches!(&a.meaning, AttrMeaning::Attribute(h) if h == html))
            .map(|(k, a)| (k.as_str(), a))
    }

    /// The editor attribute that means the CSS property `property`.
    pub fn style_for(&self, property: &str) -> Option<(&str, &NodeAttr)> {
        self.attributes
            .iter()
            .find(|(_, a)| matches!(&a.meaning, AttrMeaning::Style(p) if p == property))
            .map(|(k, a)| (k.as_str(), a))
    }
}

/// One editor mark: its inline tag and attributes.
#[derive(Debug, Clone)]
pub struct MarkMap {
    /// The inline tag it means.
    pub tag: String,
    /// Editor attribute name → HTML attribute name.
    pub attributes: BTreeMap<String, String>,
}

/// A validated editor profile.
#[derive(Debug)]
pub struct EditorProfile {
    name: String,
    /// SHA-256 (hex) of the profile in one canonical form; `html` for the identity.
    fingerprint: String,
    fragment: String,
    /// Empty for the identity (`html`) profile.
    nodes: HashMap<String, NodeMap>,
    /// HTML tag → editor node names that may mean it (a tag can be meant by one
    /// node only; a templated tag is found by prefix).
    by_tag: HashMap<String, String>,
    templated: Vec<String>,
    marks: HashMap<String, MarkMap>,
    by_mark_tag: HashMap<String, String>,
}

impl EditorProfile {
    /// The default profile: HTML's own names in the fragment `body`.
    pub fn html() -> EditorProfile {
        EditorProfile {
            name: "html".into(),
            fingerprint: "html".into(),
            fragment: "body".into(),
            nodes: HashMap::default(),
            by_tag: HashMap::default(),
            templated: Vec::new(),
            marks: HashMap::default(),
            by_mark_tag: HashMap::default(),
        }
    }

    /// The shipped TipTap profile (`proto/editor-tiptap.json`).
    pub fn tiptap() -> EditorProfile {
        EditorProfile::from_json("tiptap", TIPTAP_PROFILE_JSON)
            .expect("the shipped TipTap profile is valid")
    }

    /// A profile by its built-in name (`html`, `tiptap`).
    pub fn builtin(name: &str) -> Option<EditorProfile> {
        match name {
            "html" => Some(EditorProfile::html()),
            "tiptap" => Some(EditorProfile::tiptap()),
            _ => None,
        }
    }

    /// Parse and validate a profile named `name`.
    pub fn from_json(name: &str, text: &str) -> Result<EditorProfile, ProfileError> {
        let file: ProfileFile =
            serde_json::from_str(text).map_err(|e| ProfileError::Format(e.to_string()))?;
        let entry = |what: String, why: &str| ProfileError::Entry {
            what,
            why: why.into(),
        };
        if !is_name(&file.fragment) {
            return Err(entry("fragment".into(), "not a valid root name"));
        }
        let mut nodes = HashMap::default();
        let mut by_tag = HashMap::default();
        let mut templated = Vec::new();
        for (node, spec) in file.nodes {
            let (prefix, tag_attribute, suffix) = match spec.html.split_once('{') {
                None => (spec.html.clone(), None, String::new()),
                Some((prefix, rest)) => {
                    let (attr, suffix) = rest
                        .split_once('}')
                        .ok_or_else(|| entry(format!("node {node:?}"), "unclosed `{` in html"))?;
                    (prefix.to_owned(), Some(attr.to_owned()), suffix.to_owned())
                }
            };
            let tag_ok = |t: &str| {
                t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            };
            if prefix.is_empty() || !tag_ok(&prefix) || !tag_ok(&suffix) || !is_name(&node) {
                return Err(entry(
                    format!("node {node:?}"),
                    "html must be a lowercase tag",
                ));
            }
            let mut attributes = BTreeMap::new();
            for (attr, a) in spec.attributes {
                let what = || format!("node {node:?}, attribute {attr:?}");
                let picks = tag_attribute.as_deref() == Some(attr.as_str());
                let meaning = match (a.html, a.style, picks) {
                    (None, None, true) => AttrMeaning::Tag,
                    (Some(h), None, false) if is_name(&h) => AttrMeaning::Attribute(h),
                    (None, Some(p), false) if is_name(&p) => AttrMeaning::Style(p),
                    (_, _, true) => {
                        return Err(entry(what(), "picks the tag: it has no html or style"))
                    }
                    _ => return Err(entry(what(), "needs exactly one of html or style")),
                };
                if picks {
                    match &a.values {
                        Some(v)
                            if !v.is_empty() && v.iter().all(|x| tag_ok(x) && !x.is_empty()) => {}
                        _ => {
                            return Err(entry(
                                what(),
                                "picks the tag: list its values (lowercase letters and digits)",
                            ))
                        }
                    }
                }
                let format = match a.format {
                    None => None,
                    Some(f) => match f.split_once("{}") {
                        Some((before, after)) if !picks && !after.contains("{}") => {
                            Some((before.to_owned(), after.to_owned()))
                        }
                        _ => return Err(entry(what(), "format needs one `{}` (and no tag pick)")),
                    },
                };
                attributes.insert(
                    attr,
                    NodeAttr {
                        meaning,
                        value_type: a.value_type,
                        values: a.values,
                        format,
                    },
                );
            }
            if let Some(t) = &tag_attribute {
                if !attributes.contains_key(t) {
                    return Err(entry(
                        format!("node {node:?}"),
                        "the attribute named in html is not among its attributes",
                    ));
                }
            }
            let map = NodeMap {
                prefix,
                suffix,
                tag_attribute,
                attributes,
                block: spec.block,
                plain: spec.plain,
                first: spec.first,
                fill: spec.fill,
            };
            for tag in map.tags() {
                if let Some(other) = by_tag.insert(tag.clone(), node.clone()) {
                    return Err(entry(
                        format!("node {node:?}"),
                        &format!("<{tag}> is already the meaning of {other:?}"),
                    ));
                }
            }
            if map.tag_attribute.is_some() {
                templated.push(node.clone());
            }
            nodes.insert(node, map);
        }
        for (node, map) in &nodes {
            for wanted in map.first.iter().chain(&map.fill) {
                let plain = nodes
                    .get(wanted)
                    .is_some_and(|w: &NodeMap| w.tag_attribute.is_none());
                if !plain {
                    return Err(entry(
                        format!("node {node:?}"),
                        &format!(
                            "first/fill {wanted:?} must be a node of the profile with a fixed tag"
                        ),
                    ));
                }
            }
        }
        let mut marks = HashMap::default();
        let mut by_mark_tag = HashMap::default();
        for (mark, spec) in file.marks {
            if !is_name(&mark) || !is_name(&spec.html) || spec.html.contains("--") {
                return Err(entry(format!("mark {mark:?}"), "not a valid name"));
            }
            if let Some(other) = by_mark_tag.insert(spec.html.clone(), mark.clone()) {
                return Err(entry(
                    format!("mark {mark:?}"),
                    &format!("<{}> is already the meaning of {other:?}", spec.html),
                ));
            }
            marks.insert(
                mark,
                MarkMap {
                    tag: spec.html,
                    attributes: spec.attributes,
                },
            );
        }
        // Key order and layout of the file do not change the fingerprint.
        let canonical: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ProfileError::Format(e.to_string()))?;
        let fingerprint = Sha256::digest(canonical.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(EditorProfile {
            name: name.into(),
            fingerprint,
            fragment: file.fragment,
            nodes,
            by_tag,
            templated,
            marks,
            by_mark_tag,
        })
    }

    /// The profile's name (`html`, `tiptap`, or the name a host gave its own).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Identifies the mapping: content checked under one profile needs a new look
    /// under another.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The fragment the editor binds to (`body`, `default`, …).
    pub fn fragment(&self) -> &str {
        &self.fragment
    }

    /// Whether names are HTML's own (no translation at all).
    pub fn is_identity(&self) -> bool {
        self.nodes.is_empty() && self.marks.is_empty()
    }

    /// The node `name`, if the profile has it.
    pub fn node(&self, name: &str) -> Option<&NodeMap> {
        self.nodes.get(name)
    }

    /// The editor node meaning the HTML tag `tag`, with the value of its
    /// tag-picking attribute (`h2` → `heading`, `Some("2")`).
    pub fn node_for_tag<'a>(
        &'a self,
        tag: &'a str,
    ) -> Option<(&'a str, &'a NodeMap, Option<&'a str>)> {
        let name = self.by_tag.get(tag)?;
        let map = &self.nodes[name];
        let picked = map
            .tag_attribute
            .as_ref()
            .map(|_| &tag[map.prefix.len()..tag.len() - map.suffix.len()]);
        Some((name, map, picked))
    }

    /// The mark `name` (without y-prosemirror's `--xxxxxxxx` suffix).
    pub fn mark(&self, name: &str) -> Option<&MarkMap> {
        self.marks.get(name)
    }

    /// The editor mark meaning the inline tag `tag`.
    pub fn mark_for_tag(&self, tag: &str) -> Option<(&str, &MarkMap)> {
        let name = self.by_mark_tag.get(tag)?;
        Some((name, &self.marks[name]))
    }

    /// Every editor node name (sorted), for docs and errors.
    pub fn node_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.nodes.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    #[doc(hidden)]
    pub fn templated_nodes(&self) -> &[String] {
        &self.templated
    }

    /// Whether an element named `name` may exist under `policy`: it means an
    /// allowed tag (a node whose tag its attribute picks: one of them is).
    pub fn allows_element(&self, policy: &Policy, name: &str) -> bool {
        if self.is_identity() {
            return policy.allows_element(name);
        }
        self.node(name)
            .is_some_and(|n| n.tags().iter().any(|t| policy.allows_element(t)))
    }

    /// Whether `key = value` may sit on the element `name` under `policy`: the
    /// profile names the attribute, its value is one it may take, and what it means
    /// (a tag, an HTML attribute and its URL, a CSS declaration) is allowed. Only
    /// for a profile that is not the identity (the guard judges HTML names itself).
    pub fn allows_attribute(&self, policy: &Policy, name: &str, key: &str, value: &str) -> bool {
        let Some(node) = self.node(name) else {
            return false;
        };
        let Some(attr) = node.attributes.get(key) else {
            return false;
        };
        if attr
            .values
            .as_ref()
            .is_some_and(|v| !v.iter().any(|x| x == value))
        {
            return false;
        }
        let tag = || match &node.tag_attribute {
            None => Some(node.prefix.clone()),
            Some(_) => node.tags().into_iter().find(|t| policy.allows_element(t)),
        };
        match &attr.meaning {
            AttrMeaning::Tag => node
                .tag(Some(value))
                .is_some_and(|t| policy.allows_element(&t)),
            AttrMeaning::Attribute(html) => {
                let html_value = attr.html_value(value);
                tag().is_some_and(|t| policy.allows_attribute_name(&t, html))
                    && (!policy.is_url_attribute(html) || policy.allows_url(&html_value))
            }
            AttrMeaning::Style(property) => {
                tag().is_some_and(|t| policy.allows_attribute_name(&t, "style"))
                    && policy.allows_style(&format!("{property}: {value}"))
            }
        }
    }

    /// Whether the mark `name` (y-prosemirror's `--xxxxxxxx` suffix removed) with
    /// `attrs` (editor names; null values left out) may exist under `policy`.
    pub fn allows_mark(&self, policy: &Policy, name: &str, attrs: &[(&str, &str)]) -> bool {
        if self.is_identity() {
            return policy.allows_mark(name, attrs);
        }
        let Some(mark) = self.mark(name) else {
            return false;
        };
        let mut html: Vec<(&str, &str)> = Vec::with_capacity(attrs.len());
        for (k, v) in attrs {
            match mark.attributes.get(*k) {
                Some(h) => html.push((h.as_str(), v)),
                None => return false,
            }
        }
        policy.allows_mark(&mark.tag, &html)
    }
}

/// A name the Y document and HTML can both carry: ASCII letters, digits, `-`, `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiptap_profile_names_what_starter_kit_table_image_and_text_align_write() {
        let p = EditorProfile::tiptap();
        assert_eq!(p.fragment(), "default");
        assert!(!p.is_identity());
        for (node, tag) in [
            ("paragraph", "p"),
            ("blockquote", "blockquote"),
            ("bulletList", "ul"),
            ("orderedList", "ol"),
            ("listItem", "li"),
            ("codeBlock", "pre"),
            ("horizontalRule", "hr"),
            ("hardBreak", "br"),
            ("table", "table"),
            ("tableRow", "tr"),
            ("tableCell", "td"),
            ("tableHeader", "th"),
            ("image", "img"),
        ] {
            assert_eq!(
                p.node(node).unwrap().tag(None).as_deref(),
                Some(tag),
                "{node}"
            );
            assert_eq!(p.node_for_tag(tag).unwrap().0, node);
        }
        let heading = p.node("heading").unwrap();
        assert_eq!(heading.tag(Some("2")).as_deref(), Some("h2"));
        assert_eq!(heading.tag(Some("7")), None);
        assert_eq!(heading.tag(None), None);
        assert_eq!(
            p.node_for_tag("h3").map(|n| (n.0, n.2)),
            Some(("heading", Some("3")))
        );
        assert_eq!(heading.attributes["level"].value_type, ValueType::Number);
        assert_eq!(
            heading.style_for("text-align").map(|a| a.0),
            Some("textAlign")
        );
        let code = &p.node("codeBlock").unwrap().attributes["language"];
        assert_eq!(code.html_value("js"), "language-js");
        assert_eq!(code.editor_value("language-js"), Some("js"));
        assert_eq!(code.editor_value("hljs"), None);
        let ol = p.node("orderedList").unwrap();
        assert_eq!(ol.attribute_for("start").map(|a| a.0), Some("start"));
        for (mark, tag) in [
            ("bold", "strong"),
            ("italic", "em"),
            ("strike", "s"),
            ("code", "code"),
            ("underline", "u"),
            ("link", "a"),
        ] {
            assert_eq!(p.mark(mark).unwrap().tag, tag);
            assert_eq!(p.mark_for_tag(tag).unwrap().0, mark);
        }
        let link = p.mark("link").unwrap();
        for a in ["href", "target", "rel"] {
            assert_eq!(link.attributes[a], a);
        }
    }

    #[test]
    fn the_policy_judges_what_tiptap_names_mean() {
        let (p, policy) = (EditorProfile::tiptap(), Policy::default_policy());
        for node in [
            "paragraph",
            "heading",
            "bulletList",
            "listItem",
            "image",
            "hardBreak",
        ] {
            assert!(p.allows_element(&policy, node), "{node}");
        }
        for node in ["script", "p", "iframe", "mention"] {
            assert!(!p.allows_element(&policy, node), "{node}");
        }
        let attr = |n: &str, k: &str, v: &str| p.allows_attribute(&policy, n, k, v);
        assert!(attr("heading", "level", "2"));
        assert!(!attr("heading", "level", "9"));
        assert!(attr("paragraph", "textAlign", "center"));
        assert!(!attr(
            "paragraph",
            "textAlign",
            "center; background: url(x)"
        ));
        assert!(attr("image", "src", "https://example.com/a.png"));
        assert!(!attr("image", "src", "javascript:alert(1)"));
        assert!(!attr("image", "src", "data:image/png;base64,AAAA"));
        assert!(!attr("paragraph", "onclick", "alert(1)"));
        assert!(!attr("paragraph", "class", "x"), "not in the profile");
        assert!(attr("codeBlock", "language", "rust"));
        assert!(attr("orderedList", "start", "3"));
        let mark = |n: &str, a: &[(&str, &str)]| p.allows_mark(&policy, n, a);
        assert!(mark("bold", &[]));
        assert!(mark(
            "link",
            &[("href", "https://example.com"), ("target", "_blank")]
        ));
        assert!(!mark("link", &[("href", "javascript:alert(1)")]));
        assert!(!mark("link", &[("onclick", "x")]));
        assert!(!mark("strong", &[]), "HTML's name is not TipTap's");
        assert!(!mark("highlight", &[]));
        let html = EditorProfile::html();
        assert!(html.allows_element(&policy, "p") && !html.allows_element(&policy, "paragraph"));
        assert!(
            html.allows_mark(&policy, "strong", &[]) && !html.allows_mark(&policy, "bold", &[])
        );
    }

    #[test]
    fn the_html_profile_is_the_identity_on_body() {
        let p = EditorProfile::html();
        assert!(p.is_identity());
        assert_eq!(p.fragment(), "body");
        assert!(p.node("p").is_none());
        assert!(EditorProfile::builtin("tiptap").is_some());
        assert!(EditorProfile::builtin("quill").is_none());
    }

    #[test]
    fn a_profile_that_makes_no_sense_is_refused_with_what_is_wrong() {
        let refused = |json: &str| EditorProfile::from_json("x", json).unwrap_err().to_string();
        assert!(refused("{}").contains("fragment"));
        assert!(refused(r#"{"fragment":"b d"}"#).contains("root name"));
        let two = r#"{"fragment":"f","nodes":{"a":{"html":"p"},"b":{"html":"p"}}}"#;
        assert!(
            refused(two).contains("already the meaning"),
            "{}",
            refused(two)
        );
        let open = r#"{"fragment":"f","nodes":{"h":{"html":"h{level"}}}"#;
        assert!(refused(open).contains("unclosed"));
        let no_values =
            r#"{"fragment":"f","nodes":{"h":{"html":"h{level}","attributes":{"level":{}}}}}"#;
        assert!(refused(no_values).contains("list its values"));
        let missing = r#"{"fragment":"f","nodes":{"h":{"html":"h{level}"}}}"#;
        assert!(refused(missing).contains("not among its attributes"));
        let both = r#"{"fragment":"f","nodes":{"p":{"html":"p","attributes":{"a":{"html":"x","style":"y"}}}}}"#;
        assert!(refused(both).contains("exactly one"));
        let upper = r#"{"fragment":"f","nodes":{"p":{"html":"P"}}}"#;
        assert!(refused(upper).contains("lowercase"));
        let typo = r#"{"fragment":"f","nodez":{}}"#;
        assert!(refused(typo).contains("unknown field"));
    }
}
