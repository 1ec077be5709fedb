//! The body model an import works on ([`BodyNode`], [`Run`]): elements with their
//! HTML tags and attributes, and texts made of runs carrying marks, as the
//! `render` module doc describes the document. Plain values; every other part of
//! the import reads or builds them.

use std::collections::BTreeMap;

/// One node of a body as the host supplies it (or as [`parse_body_html`] reads it).
///
/// [`parse_body_html`]: super::parse_body_html
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
