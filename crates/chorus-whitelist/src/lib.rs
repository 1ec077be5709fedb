//! # chorus-whitelist — what content may exist in a draft
//!
//! Owns the content policy: allowed elements, attributes (global and per
//! element), CSS properties with value patterns, URL schemes for URL-valued
//! attributes, and inline marks with their attributes. A [`Policy`] is loaded
//! from JSON (the default is `proto/whitelist-default.json`), validated once at
//! start, and then answers questions in O(1) per name.
//!
//! Some things are refused whatever a policy file says, because no rich-text
//! draft needs them and each is a script vector: the elements `script`, `style`,
//! `iframe`, `object`, `embed`, `base`, `meta`, `link`, `frame`, `frameset`,
//! `applet`; every `on*` event-handler attribute; the `style` *element*;
//! `javascript:`, `vbscript:` and `data:` URLs (data URLs are refused too: an
//! image pasted as a data URL should be uploaded to the host instead, and
//! `data:` also carries `text/html` and SVG with scripts).
//!
//! A [`Whitelist`] bundles a policy with what to do with content outside it
//! ([`WhitelistMode`]: strip, reject, off), its cleaner and an editor profile: the
//! one value configuration builds and enforcement takes.
//!
//! An [`EditorProfile`] (module [`profile`]) says what the names an editor writes
//! (TipTap's `paragraph`, `bold`) mean in HTML, so the policy judges meaning
//! whatever the editor's vocabulary.
//!
//! Must not touch: yrs documents, HTML rendering, IO. Enforcing the policy on
//! CRDT updates happens in the crate that owns those; it asks this one. The one
//! HTML concern here is [`HtmlCleaner`] (module [`html`]): an `ammonia`
//! sanitiser built from a [`Policy`], for HTML fragments that enter or leave
//! the server as text.

use regex::Regex;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

mod bundle;
pub mod html;
pub mod profile;
pub mod test_vectors;
pub use bundle::{Whitelist, WhitelistMode};
pub use html::HtmlCleaner;
pub use profile::{EditorProfile, ProfileError};

/// Elements no policy may allow.
pub const NEVER_ELEMENTS: [&str; 11] = [
    "script", "style", "iframe", "object", "embed", "base", "meta", "link", "frame", "frameset",
    "applet",
];

/// URL schemes no policy may allow.
pub const NEVER_SCHEMES: [&str; 3] = ["javascript", "vbscript", "data"];

/// The default policy as shipped.
pub const DEFAULT_POLICY_JSON: &str = include_str!("../../../proto/whitelist-default.json");

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Not valid JSON for the policy format.
    #[error("policy is not valid: {0}")]
    Format(String),
    /// A CSS value pattern does not compile.
    #[error("style {property:?}: invalid value pattern: {message}")]
    BadPattern {
        /// The CSS property.
        property: String,
        /// The regex error.
        message: String,
    },
    /// The file allows something that is never allowed.
    #[error("policy allows {0}, which is never allowed")]
    Forbidden(String),
}

/// The policy file format (see `proto/whitelist-default.json`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    elements: BTreeMap<String, Vec<String>>,
    global_attributes: Vec<String>,
    #[serde(default)]
    global_attribute_prefixes: Vec<String>,
    url_attributes: Vec<String>,
    url_schemes: Vec<String>,
    styles: BTreeMap<String, Option<String>>,
    marks: BTreeMap<String, Vec<String>>,
}

/// A validated content policy.
#[derive(Debug)]
pub struct Policy {
    elements: HashMap<String, HashSet<String>>,
    global_attributes: HashSet<String>,
    global_attribute_prefixes: Vec<String>,
    url_attributes: HashSet<String>,
    url_schemes: HashSet<String>,
    /// property → value pattern (anchored); `None` = any value that passes the generic checks.
    styles: HashMap<String, Option<Regex>>,
    marks: HashMap<String, HashSet<String>>,
    /// SHA-256 (hex) of the policy re-serialised in one canonical form.
    fingerprint: String,
}

impl Policy {
    /// The default policy (`proto/whitelist-default.json`).
    pub fn default_policy() -> Policy {
        Policy::from_json(DEFAULT_POLICY_JSON).expect("the shipped default policy is valid")
    }

    /// Parse and validate a policy.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            serde_json::from_str(text).map_err(|e| PolicyError::Format(e.to_string()))?;
        let lower =
            |v: &[String]| -> Vec<String> { v.iter().map(|s| s.to_ascii_lowercase()).collect() };
        for name in file.elements.keys() {
            if NEVER_ELEMENTS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(PolicyError::Forbidden(format!("element <{name}>")));
            }
        }
        let all_attrs = file
            .elements
            .values()
            .flatten()
            .chain(&file.global_attributes)
            .chain(file.marks.values().flatten())
            .chain(&file.global_attribute_prefixes);
        for a in all_attrs {
            if a.to_ascii_lowercase().starts_with("on") {
                return Err(PolicyError::Forbidden(format!(
                    "event-handler attribute {a:?}"
                )));
            }
        }
        for s in &file.url_schemes {
            if NEVER_SCHEMES.contains(&s.to_ascii_lowercase().as_str()) {
                return Err(PolicyError::Forbidden(format!("URL scheme {s:?}")));
            }
        }
        let mut styles = HashMap::default();
        for (property, pattern) in &file.styles {
            let compiled = match pattern {
                None => None,
                Some(p) => Some(Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    PolicyError::BadPattern {
                        property: property.clone(),
                        message: e.to_string(),
                    }
                })?),
            };
            styles.insert(property.to_ascii_lowercase(), compiled);
        }
        // Maps are ordered and whitespace is gone, so the same rules in another
        // layout of the file get the same fingerprint.
        let canonical =
            serde_json::to_vec(&file).map_err(|e| PolicyError::Format(e.to_string()))?;
        let fingerprint = Sha256::digest(&canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Policy {
            fingerprint,
            elements: file
                .elements
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lower(v).into_iter().collect()))
                .collect(),
            global_attributes: lower(&file.global_attributes).into_iter().collect(),
            global_attribute_prefixes: lower(&file.global_attribute_prefixes),
            url_attributes: lower(&file.url_attributes).into_iter().collect(),
            url_schemes: lower(&file.url_schemes).into_iter().collect(),
            styles,
            marks: file
                .marks
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lower(v).into_iter().collect()))
                .collect(),
        })
    }

    /// Identifies these rules: equal for two policies with the same rules, different
    /// otherwise. Stored next to a document, it tells a later load whether the
    /// stored content was checked against the policy in force now.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// May an element with this tag exist?
    pub fn allows_element(&self, tag: &str) -> bool {
        self.elements.contains_key(&*lower(tag))
    }

    /// May `element` carry `attr="value"`? URL-valued attributes must use an allowed
    /// scheme (or be relative); `style` values are judged declaration by declaration
    /// and pass only if every declaration is allowed (see [`Policy::clean_style`]).
    pub fn allows_attribute(&self, element: &str, attr: &str, value: &str) -> bool {
        if !self.allows_attribute_name(element, attr) {
            return false;
        }
        let attr = lower(attr);
        if attr == "style" {
            return self.allows_style(value);
        }
        if self.url_attributes.contains(&*attr) {
            return self.allows_url(value);
        }
        true
    }

    /// May this mark (inline formatting, keyed by its tag) exist with these attributes?
    pub fn allows_mark(&self, mark: &str, attrs: &[(&str, &str)]) -> bool {
        let Some(allowed) = self.marks.get(&*lower(mark)) else {
            return false;
        };
        attrs.iter().all(|(k, v)| {
            let k = lower(k);
            allowed.contains(&*k)
                && !k.starts_with("on")
                && (!self.url_attributes.contains(&*k) || self.allows_url(v))
                && (&*k != "style" || self.allows_style(v))
        })
    }

    /// Is this URL relative, or absolute with an allowed scheme? Control characters
    /// and whitespace inside the scheme (`java\tscript:`) are stripped first, as
    /// browsers do. Protocol-relative URLs (`//host/path`) count as relative.
    ///
    /// Entities are not decoded here (values are plain text, already decoded by
    /// whatever parsed them), so an entity left in a value is harmless in a DOM. For
    /// belt and braces a value is refused anyway if it still looks entity-encoded
    /// and might be decoded a second time somewhere: it begins with `&`, or contains
    /// `&#` (`&#106;avascript:`, `&#x6A;…`) or `&colon` (`javascript&colon;…`, which
    /// otherwise has no colon and would pass as a relative URL).
    pub fn allows_url(&self, url: &str) -> bool {
        let squeezed: Cow<'_, str> = if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Cow::Owned(
                url.chars()
                    .filter(|c| !c.is_control() && !c.is_whitespace())
                    .collect(),
            )
        } else {
            Cow::Borrowed(url)
        };
        if squeezed.starts_with('&')
            || squeezed.contains("&#")
            || contains_ignore_case(&squeezed, "&colon")
        {
            return false;
        }
        match squeezed.split_once(':') {
            Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
                self.url_schemes.contains(&*lower(scheme))
            }
            _ => true,
        }
    }

    /// The allowed declarations of a `style` value, normalised as `prop: value; …`,
    /// or `None` if none is allowed. A declaration passes if its property is listed,
    /// its value matches the property's pattern (if any), and the value holds no
    /// `url(`, `expression(`, `\\`, `<`, `@import` or `javascript:`.
    pub fn clean_style(&self, style: &str) -> Option<String> {
        let (kept, _) = self.style_declarations(style);
        (!kept.is_empty()).then(|| kept.join("; "))
    }

    /// True if the style value has at least one declaration and every one is allowed
    /// (the check [`Policy::clean_style`] makes, without building the result). Whether
    /// `style` may appear on an element at all is [`Policy::allows_attribute_name`].
    pub fn allows_style(&self, style: &str) -> bool {
        let mut any = false;
        for decl in style.split(';').filter(|d| !d.trim().is_empty()) {
            any = true;
            let Some((prop, value)) = decl.split_once(':') else {
                return false;
            };
            if !self.declaration_allowed(&lower(prop.trim()), value.trim()) {
                return false;
            }
        }
        any
    }

    fn declaration_allowed(&self, prop: &str, value: &str) -> bool {
        let Some(rule) = self.styles.get(prop) else {
            return false;
        };
        // Every refused fragment holds one of these bytes; most values hold none.
        let suspicious = value
            .bytes()
            .any(|b| matches!(b, b'(' | b'\\' | b'<' | b'@' | b':'));
        let dangerous = suspicious
            && ["url(", "expression(", "\\", "<", "@import", "javascript:"]
                .iter()
                .any(|bad| contains_ignore_case(value, bad));
        !value.is_empty() && !dangerous && rule.as_ref().is_none_or(|re| re.is_match(value))
    }

    /// (allowed declarations normalised, number of non-empty declarations).
    fn style_declarations(&self, style: &str) -> (Vec<String>, usize) {
        let mut total = 0;
        let kept = style
            .split(';')
            .filter(|d| !d.trim().is_empty())
            .inspect(|_| total += 1)
            .filter_map(|decl| {
                let (prop, value) = decl.split_once(':')?;
                let prop = lower(prop.trim());
                let value = value.trim();
                self.declaration_allowed(&prop, value)
                    .then(|| format!("{prop}: {value}"))
            })
            .collect();
        (kept, total)
    }

    /// Every allowed element tag (for building an HTML sanitiser from the same policy).
    pub fn element_names(&self) -> BTreeSet<&str> {
        self.elements.keys().map(String::as_str).collect()
    }

    /// Attribute names every allowed element may carry (lowercase).
    pub fn global_attribute_names(&self) -> BTreeSet<&str> {
        self.global_attributes.iter().map(String::as_str).collect()
    }

    /// Attribute names allowed on this element in addition to the global ones
    /// (lowercase; empty if the element itself is not allowed).
    pub fn element_attribute_names(&self, tag: &str) -> BTreeSet<&str> {
        self.elements
            .get(&tag.to_ascii_lowercase())
            .map(|attrs| attrs.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Prefixes (such as `data-macro-`) of attribute names every allowed element
    /// may carry (lowercase).
    pub fn global_attribute_prefixes(&self) -> BTreeSet<&str> {
        self.global_attribute_prefixes
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// The allowed URL schemes (lowercase, without the colon).
    pub fn url_schemes(&self) -> BTreeSet<&str> {
        self.url_schemes.iter().map(String::as_str).collect()
    }

    /// Is this attribute URL-valued (its values are judged by [`Policy::allows_url`])?
    pub fn is_url_attribute(&self, attr: &str) -> bool {
        self.url_attributes.contains(&*lower(attr))
    }

    /// May `attr` (any value) appear on `element` at all? True if it is allowed on
    /// that element, globally, or by a global prefix — and is not an `on*` handler.
    pub fn allows_attribute_name(&self, element: &str, attr: &str) -> bool {
        let attr = lower(attr);
        !attr.starts_with("on")
            && (self
                .elements
                .get(&*lower(element))
                .is_some_and(|allowed| allowed.contains(&*attr))
                || self.global_attributes.contains(&*attr)
                || self
                    .global_attribute_prefixes
                    .iter()
                    .any(|p| attr.starts_with(p.as_str())))
    }
}

/// `s` in ASCII lowercase, allocating only if it has an uppercase letter (names in
/// documents almost never do; this is on the path of every checked update).
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// ASCII case-insensitive substring test without allocating.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests;
