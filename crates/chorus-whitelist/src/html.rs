//! HTML fragments cleaned by a [`Policy`], with `ammonia`.
//!
//! [`HtmlCleaner`] turns a policy into an `ammonia::Builder` once and then cleans
//! fragments with it. Everything the builder allows comes from the policy; what
//! it adds on top only ever removes more (see [`HtmlCleaner`] for the list).

use crate::{Policy, NEVER_ELEMENTS};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Elements removed together with everything inside them (when the policy does
/// not allow them), besides [`NEVER_ELEMENTS`]: elements whose content is raw text
/// to the parser (so keeping it would turn markup-looking text into text nodes
/// that a later, different parse may read as markup), `template`, and the two
/// foreign-content roots `svg` and `math`, whose content is the playground of
/// every namespace-confusion (mutation XSS) trick and never rich text.
pub const CLEAN_CONTENT_ELEMENTS: [&str; 10] = [
    "title",
    "textarea",
    "xmp",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
    "template",
    "svg",
    "math",
];

/// The `rel` value forced on every `<a>` when the policy allows `rel` on links.
pub const LINK_REL: &str = "noopener noreferrer";

/// Cleans HTML fragments so that only what a [`Policy`] allows survives.
///
/// Built once from the policy (building is not free; share one cleaner, e.g. in
/// an `Arc`), then [`HtmlCleaner::clean`] is cheap to call from any thread.
///
/// How the policy maps onto `ammonia`:
/// - allowed tags = [`Policy::element_names`]; disallowed elements are removed but
///   their content is kept (as ammonia does), except for [`NEVER_ELEMENTS`] and
///   [`CLEAN_CONTENT_ELEMENTS`], which vanish with their content (`<script>` code
///   and `<style>` rules never become text). Because `svg` and `math` are in that
///   list, no SVG or MathML content survives at all.
/// - allowed attributes = the policy's per-element, global and global-prefix
///   names; every surviving value then goes through [`Policy::allows_attribute`]
///   (URL attributes through [`Policy::allows_url`], on top of ammonia's own
///   check against [`Policy::url_schemes`]; relative URLs pass unchanged);
///   `style` values are replaced by [`Policy::clean_style`] (normalised as
///   `prop: value; prop: value`), and dropped if nothing is left.
/// - attribute values that could open a tag (`<` followed by a letter, `/`, `!`
///   or `?`) are dropped whatever the attribute: such a value is inert in a DOM,
///   but it is the payload of the known mutation-XSS tricks (a value re-read as
///   markup after a namespace or raw-text confusion, or by a careless serialiser).
/// - comments, processing instructions and doctypes are removed.
/// - `rel`: ammonia adds `rel="noopener noreferrer"` to every `<a>` by default, and
///   panics if `rel` is also allowed on `<a>` from the input. That default is kept only
///   when the policy allows `rel` on `<a>`: then every `<a>` (with or without
///   `href`) gets exactly `rel="noopener noreferrer"` (appended as the last
///   attribute) and any `rel` in the input is replaced — links with
///   `target="_blank"` can never reach back into the editor's window. When the
///   policy does not allow `rel` on `<a>`, no `rel` is added (adding it would
///   produce an attribute the policy refuses). Should a global attribute prefix
///   cover `rel`, ammonia cannot tell an input `rel` from its own, so no `rel` is
///   added and input values pass through the policy like any attribute.
///
/// The output is what html5ever serialises: lowercase names, double-quoted
/// attribute values with `&`, `"`, `<`, `>` and U+00A0 escaped, void elements
/// without a closing tag, boolean attributes as `name=""`. Attribute order is kept,
/// except that when a *value* is refused (by the checks above, not for its name)
/// ammonia moves the element's last attribute into the dropped one's place.
pub struct HtmlCleaner {
    builder: ammonia::Builder<'static>,
}

impl std::fmt::Debug for HtmlCleaner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HtmlCleaner").finish_non_exhaustive()
    }
}

impl HtmlCleaner {
    /// Configure a cleaner from a policy.
    pub fn new(policy: Arc<Policy>) -> HtmlCleaner {
        let tags: HashSet<&'static str> = policy.element_names().into_iter().map(intern).collect();

        let rel_by_prefix = policy
            .global_attribute_prefixes()
            .iter()
            .any(|p| "rel".starts_with(p));
        let force_rel = policy.allows_attribute_name("a", "rel") && !rel_by_prefix;

        // With `link_rel` set, ammonia panics if `rel` is allowed on `a` (per tag or
        // generically): keep it out of the generic set and of `a`'s set, and give
        // every other element the global `rel` per tag instead.
        let global = policy.global_attribute_names();
        let global_rel = global.contains("rel");
        let generic: HashSet<&'static str> = global
            .into_iter()
            .filter(|a| !(force_rel && *a == "rel"))
            .map(intern)
            .collect();
        let mut per_tag: HashMap<&'static str, HashSet<&'static str>> = HashMap::new();
        for &tag in &tags {
            let mut names: BTreeSet<&str> = policy.element_attribute_names(tag);
            if force_rel && global_rel {
                names.insert("rel");
            }
            if force_rel && tag == "a" {
                names.remove("rel");
            }
            if !names.is_empty() {
                per_tag.insert(tag, names.into_iter().map(intern).collect());
            }
        }
        let prefixes: HashSet<&'static str> = policy
            .global_attribute_prefixes()
            .into_iter()
            .map(intern)
            .collect();
        let schemes: HashSet<&'static str> = policy.url_schemes().into_iter().map(intern).collect();

        // ammonia panics if a tag is both allowed and content-cleaned: only clean
        // the content of what the policy does not allow (it never allows the
        // NEVER_ELEMENTS, which include script and style).
        let clean_content: HashSet<&'static str> = NEVER_ELEMENTS
            .iter()
            .chain(CLEAN_CONTENT_ELEMENTS.iter())
            .copied()
            .filter(|t| !tags.contains(t))
            .collect();
        debug_assert!(clean_content.contains("script") && clean_content.contains("style"));
        debug_assert!(clean_content.is_disjoint(&tags));

        let mut builder = ammonia::Builder::empty();
        builder
            .tags(tags)
            .clean_content_tags(clean_content)
            .tag_attributes(per_tag)
            .tag_attribute_values(HashMap::new())
            .set_tag_attribute_values(HashMap::new())
            .generic_attributes(generic)
            .generic_attribute_prefixes(prefixes)
            .url_schemes(schemes)
            .url_relative(ammonia::UrlRelative::PassThrough)
            .link_rel(force_rel.then_some(LINK_REL))
            .allowed_classes(HashMap::new())
            .strip_comments(true)
            .id_prefix(None)
            .attribute_filter(move |element, attr, value| filter(&policy, element, attr, value));
        HtmlCleaner { builder }
    }

    /// Clean an HTML fragment: only what the policy allows survives.
    ///
    /// The fragment is parsed as the content of a `<div>` (as a browser would
    /// parse it for `innerHTML`), cleaned, and serialised again. The result is then
    /// cleaned again until it no longer changes (normally one extra pass, at most
    /// [`MAX_PASSES`] in all), so the output is a fixed point:
    /// `clean(clean(x)) == clean(x)`. That matters because serialising a cleaned
    /// tree and parsing it again does not always give the same tree: removing an
    /// element can leave nestings the parser never builds itself
    /// (`<h1><x><h2>` becomes `<h1><h2>`, which parses as `<h1></h1><h2>`), and
    /// html5ever does not re-emit the newline a parser drops after `<pre>`. A
    /// browser parses the output, not our tree; being a fixed point means that
    /// what it parses is exactly what the cleaner keeps, and that equal content
    /// always cleans to equal text. Should the output still change after the last
    /// pass (no input known to do so), that last pass's output is returned — it is
    /// cleaned like any other.
    pub fn clean(&self, html: &str) -> String {
        let mut out = self.clean_once(html);
        for _ in 1..MAX_PASSES {
            let again = self.clean_once(&out);
            if again == out {
                break;
            }
            out = again;
        }
        out
    }

    /// One parse, clean and serialise: [`HtmlCleaner::clean`] without the passes that
    /// make its output a fixed point. For a caller that parses the output itself with
    /// an HTML5 parser and checks what it parsed against the same policy (an import:
    /// the document guard judges every node it makes), since a further pass only
    /// repeats what that parse does: it rebuilds the nestings the parser would build
    /// (`<h1><h2>` → `<h1></h1><h2>`), and whatever the new tree would let a second
    /// pass remove, the guard removes. Never for HTML that leaves the service.
    pub fn clean_once(&self, html: &str) -> String {
        self.builder.clean(html).to_string()
    }
}

/// The most times [`HtmlCleaner::clean`] parses and cleans (the input once, then
/// its own output until that is stable).
pub const MAX_PASSES: usize = 4;

/// The attribute-value check: `None` drops the attribute.
fn filter<'u>(policy: &Policy, element: &str, attr: &str, value: &'u str) -> Option<Cow<'u, str>> {
    if could_open_a_tag(value) {
        return None;
    }
    if attr.eq_ignore_ascii_case("style") {
        let cleaned = policy.clean_style(value)?;
        if !policy.allows_attribute(element, attr, &cleaned) {
            return None;
        }
        return Some(if cleaned == value {
            Cow::Borrowed(value)
        } else {
            Cow::Owned(cleaned)
        });
    }
    policy
        .allows_attribute(element, attr, value)
        .then_some(Cow::Borrowed(value))
}

/// Does the value hold something a parser could take for the start of a tag,
/// an end tag, a comment or a processing instruction?
fn could_open_a_tag(value: &str) -> bool {
    value
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
}

/// A `'static` copy of a name, leaked once per distinct name for the life of the
/// process (ammonia's builder borrows its names). Policies are few and small, so
/// this is bounded by the names of all policies ever loaded.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaner() -> HtmlCleaner {
        HtmlCleaner::new(Arc::new(Policy::default_policy()))
    }

    #[test]
    fn the_cleaner_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HtmlCleaner>();
    }

    #[test]
    fn allowed_content_survives_and_the_rest_goes() {
        let c = cleaner();
        assert_eq!(
            c.clean(r#"<p class="x" onclick="alert(1)">a<script>alert(2)</script>b</p>"#),
            r#"<p class="x">ab</p>"#
        );
        assert_eq!(
            c.clean("<custom>kept <b>text</b></custom>"),
            "kept <b>text</b>"
        );
        assert_eq!(c.clean("<style>p { color: red }</style>x"), "x");
        assert_eq!(c.clean("<!-- comment -->x"), "x");
        assert_eq!(c.clean("<svg><text>drawn</text></svg>x"), "x");
        assert_eq!(c.clean("<math><mi>x</mi></math>y"), "y");
        assert_eq!(c.clean("<textarea>t</textarea><title>u</title>v"), "v");
    }

    #[test]
    fn urls_are_judged_by_the_policy() {
        let c = cleaner();
        assert_eq!(
            c.clean(r#"<a href="javas&#99;ript:alert(1)">x</a>"#),
            r#"<a rel="noopener noreferrer">x</a>"#
        );
        assert_eq!(
            c.clean(r#"<img src="//cdn.example.com/a.png"><img src="data:image/png;base64,AA">"#),
            r#"<img src="//cdn.example.com/a.png"><img>"#
        );
        // `cite` is no URL attribute to ammonia, but it is one to the policy.
        assert_eq!(
            c.clean(r#"<blockquote cite="javascript:alert(1)">q</blockquote>"#),
            "<blockquote>q</blockquote>"
        );
        assert_eq!(
            c.clean(r#"<blockquote cite="https://example.com/">q</blockquote>"#),
            r#"<blockquote cite="https://example.com/">q</blockquote>"#
        );
    }

    #[test]
    fn styles_are_cleaned_declaration_by_declaration() {
        let c = cleaner();
        assert_eq!(
            c.clean(r#"<p style="COLOR:red;padding:1px;text-align:center">x</p>"#),
            r#"<p style="color: red; text-align: center">x</p>"#
        );
        assert_eq!(
            c.clean(r#"<p style="padding: 1px; background: url(x)">x</p>"#),
            "<p>x</p>"
        );
    }

    #[test]
    fn rel_is_forced_on_links_when_the_policy_allows_it() {
        let c = cleaner();
        assert_eq!(
            c.clean(r#"<a href="https://e.com/" rel="opener" target="_blank">x</a>"#),
            r#"<a href="https://e.com/" target="_blank" rel="noopener noreferrer">x</a>"#
        );
        let mut json: serde_json::Value = serde_json::from_str(crate::DEFAULT_POLICY_JSON).unwrap();
        json["elements"]["a"] = serde_json::json!(["href"]);
        let no_rel = HtmlCleaner::new(Arc::new(Policy::from_json(&json.to_string()).unwrap()));
        assert_eq!(
            no_rel.clean(r#"<a href="https://e.com/" rel="opener">x</a>"#),
            r#"<a href="https://e.com/">x</a>"#
        );
        // A global `rel` must not make ammonia panic, and is kept off `a` only.
        json["elements"]["a"] = serde_json::json!(["href", "rel"]);
        json["global_attributes"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("rel"));
        let global_rel = HtmlCleaner::new(Arc::new(Policy::from_json(&json.to_string()).unwrap()));
        assert_eq!(
            global_rel.clean(r#"<a rel="x">a</a><span rel="y">b</span>"#),
            r#"<a rel="noopener noreferrer">a</a><span rel="y">b</span>"#
        );
    }

    #[test]
    fn values_that_could_open_a_tag_are_dropped() {
        let c = cleaner();
        assert_eq!(
            c.clean(r#"<p title="</p><img src=x onerror=alert(1)>">x</p>"#),
            "<p>x</p>"
        );
        assert_eq!(c.clean(r#"<p title="a &lt;!-- b">x</p>"#), "<p>x</p>");
        assert_eq!(
            c.clean(r#"<p title="1 < 2 > 0">x</p>"#),
            r#"<p title="1 &lt; 2 &gt; 0">x</p>"#
        );
    }

    #[test]
    fn the_output_is_a_fixed_point_even_when_a_reparse_restructures_it() {
        let c = cleaner();
        // One pass gives `<h1><h2>a</h2></h1>`, which a parser reads as siblings.
        let out = c.clean("<h1><x><h2>a</h2></x></h1>");
        assert_eq!(out, "<h1></h1><h2>a</h2>");
        assert_eq!(c.clean(&out), out);
        // The parser drops one newline after `<pre>`; html5ever does not put it back.
        let out = c.clean("<pre>\n\nx</pre>");
        assert_eq!(c.clean(&out), out);
        let plain = "<p>a <b>b</b></p>";
        assert_eq!(c.clean(plain), plain);
    }

    #[test]
    fn a_policy_allowing_a_clean_content_element_does_not_panic() {
        let mut json: serde_json::Value = serde_json::from_str(crate::DEFAULT_POLICY_JSON).unwrap();
        json["elements"]["textarea"] = serde_json::json!([]);
        let c = HtmlCleaner::new(Arc::new(Policy::from_json(&json.to_string()).unwrap()));
        assert_eq!(
            c.clean("<textarea>t</textarea><script>s</script>"),
            "<textarea>t</textarea>"
        );
    }
}
