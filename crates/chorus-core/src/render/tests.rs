use super::*;
use crate::ROOT_BODY;
use serde_json::json;
use yrs::types::Attrs;
use yrs::{any, TransactionMut, WriteTxn, XmlElementPrelim, XmlFragment, XmlTextPrelim};

/// A document with both roots, as the room creates it.
fn new_doc() -> (Doc, TextRef, XmlFragmentRef) {
    let doc = Doc::new();
    let title = doc.get_or_insert_text(ROOT_TITLE);
    let body = doc.get_or_insert_xml_fragment(ROOT_BODY);
    (doc, title, body)
}

fn attrs(pairs: &[(&str, Any)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (Arc::<str>::from(*k), v.clone()))
        .collect()
}

/// An element with string attributes (XmlElementPrelim only takes strings; other
/// values are set with `insert_attribute`, as y-prosemirror does).
fn element<P: XmlFragment>(
    txn: &mut TransactionMut,
    parent: &P,
    tag: &str,
    attributes: &[(&str, Any)],
) -> XmlElementRef {
    let el = parent.push_back(txn, XmlElementPrelim::empty(tag));
    for (k, v) in attributes {
        el.insert_attribute(txn, *k, v.clone());
    }
    el
}

/// Appends a text node made of `runs` (text, marks), the way y-prosemirror's
/// `applyDelta` writes one: every run inserted with its full set of marks.
fn text<P: XmlFragment>(
    txn: &mut TransactionMut,
    parent: &P,
    runs: &[(&str, &[(&str, Any)])],
) -> XmlTextRef {
    let t = parent.push_back(txn, XmlTextPrelim::new(""));
    for (s, marks) in runs {
        let at = t.len(txn);
        t.insert_with_attributes(txn, at, s, attrs(marks));
    }
    t
}

/// `<tag>plain text</tag>` under `parent`.
fn block<P: XmlFragment>(txn: &mut TransactionMut, parent: &P, tag: &str, s: &str) {
    let el = element(txn, parent, tag, &[]);
    text(txn, &el, &[(s, &[])]);
}

fn render(doc: &Doc) -> (String, Value) {
    let (_, html) = doc_html(doc);
    let json = doc_json(doc)["body"].clone();
    let txn = doc.transact();
    let body = txn.get_xml_fragment(ROOT_BODY).unwrap();
    assert_eq!(body_html(&txn, &body), html);
    assert_eq!(body_json(&txn, &body), json);
    (html, json)
}

fn el(name: &str, attrs: Value, children: Value) -> Value {
    json!({"type": "element", "name": name, "attrs": attrs, "children": children})
}

fn t(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

fn tm(s: &str, marks: Value) -> Value {
    json!({"type": "text", "text": s, "marks": marks})
}

// --- documents -------------------------------------------------------------------------------

fn headings_doc() -> Doc {
    let (doc, title, body) = new_doc();
    let mut txn = doc.transact_mut();
    title.push(&mut txn, "Release notes");
    block(&mut txn, &body, "h1", "Chorus");
    block(&mut txn, &body, "p", "First paragraph.");
    block(&mut txn, &body, "h2", "Details");
    block(&mut txn, &body, "p", "Second paragraph.");
    drop(txn);
    doc
}

fn lists_doc() -> Doc {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let ul = element(&mut txn, &body, "ul", &[]);
    let li1 = element(&mut txn, &ul, "li", &[]);
    block(&mut txn, &li1, "p", "one");
    let ol = element(&mut txn, &li1, "ol", &[("start", Any::from(3))]);
    let li11 = element(&mut txn, &ol, "li", &[]);
    block(&mut txn, &li11, "p", "one.a");
    let li2 = element(&mut txn, &ul, "li", &[]);
    block(&mut txn, &li2, "p", "two");
    drop(txn);
    doc
}

fn table_doc() -> Doc {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let table = element(&mut txn, &body, "table", &[("class", Any::from("wide"))]);
    let tbody = element(&mut txn, &table, "tbody", &[]);
    let tr1 = element(&mut txn, &tbody, "tr", &[]);
    // prosemirror-tables stores colspan/rowspan as numbers.
    let th = element(
        &mut txn,
        &tr1,
        "th",
        &[
            ("colspan", Any::Number(Number::Float(2.0))),
            ("rowspan", Any::Number(Number::Int(1))),
        ],
    );
    block(&mut txn, &th, "p", "Head");
    let tr2 = element(&mut txn, &tbody, "tr", &[]);
    for s in ["a", "b"] {
        let td = element(&mut txn, &tr2, "td", &[]);
        block(&mut txn, &td, "p", s);
    }
    drop(txn);
    doc
}

fn marks_doc() -> Doc {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let p = element(&mut txn, &body, "p", &[]);
    text(
        &mut txn,
        &p,
        &[
            ("see ", &[]),
            (
                "the docs",
                &[("a", any!({"href": "https://x.test/?a=1&b=2"}))],
            ),
            (".", &[]),
        ],
    );
    // Bold on "abcd", italic on "cdef", applied with `format` as an editor would.
    let p2 = element(&mut txn, &body, "p", &[]);
    let t2 = text(&mut txn, &p2, &[("abcdef", &[])]);
    t2.format(&mut txn, 0, 4, attrs(&[("strong", any!({}))]));
    t2.format(&mut txn, 2, 4, attrs(&[("em", Any::Bool(true))]));
    drop(txn);
    doc
}

fn suffixed_doc() -> Doc {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let p = element(&mut txn, &body, "p", &[]);
    text(
        &mut txn,
        &p,
        &[
            (
                "link",
                &[("a--abcdef12", any!({"href": "/x", "title": "T"}))],
            ),
            (
                " two comments",
                &[
                    ("span--22222222", any!({"class": "c2"})),
                    ("span--11111111", any!({"class": "c1"})),
                ],
            ),
        ],
    );
    drop(txn);
    doc
}

fn img_doc() -> Doc {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let p = element(&mut txn, &body, "p", &[]);
    text(&mut txn, &p, &[("before ", &[])]);
    // An inline atom: a sibling element of the text runs.
    element(
        &mut txn,
        &p,
        "img",
        &[
            ("src", Any::from("/a.png")),
            ("alt", Any::from("An image")),
            ("width", Any::from(120)),
        ],
    );
    text(&mut txn, &p, &[(" after", &[])]);
    element(&mut txn, &body, "hr", &[]);
    // An element embedded inside a text also renders as an element.
    let p2 = element(&mut txn, &body, "p", &[]);
    let t = text(&mut txn, &p2, &[("x", &[]), ("y", &[])]);
    t.insert_embed(&mut txn, 1, XmlElementPrelim::empty("br"));
    drop(txn);
    doc
}

fn escaping_doc() -> Doc {
    let (doc, title, body) = new_doc();
    let mut txn = doc.transact_mut();
    title.push(&mut txn, "<b>\"Title\"</b>");
    let p = element(
        &mut txn,
        &body,
        "p",
        &[("title", Any::from("say \"hi\" & 'bye' <b>"))],
    );
    text(&mut txn, &p, &[("<script>alert('x & y')</script>", &[])]);
    drop(txn);
    doc
}

fn values_doc() -> Doc {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let div = element(
        &mut txn,
        &body,
        "div",
        &[
            ("data-int", Any::Number(Number::Int(42))),
            ("data-float", Any::Number(Number::Float(1.5))),
            ("data-true", Any::Bool(true)),
            ("data-false", Any::Bool(false)),
            ("data-null", Any::Null),
            ("data-obj", any!({"b": 1, "a": "x\"y"})),
        ],
    );
    block(&mut txn, &div, "p", "v");
    drop(txn);
    doc
}

fn invalid_names_doc() -> Doc {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let p = element(
        &mut txn,
        &body,
        "p",
        &[
            ("class", Any::from("ok")),
            ("onclick\"x", Any::from("bad")),
            ("a b", Any::from("bad")),
            ("1x", Any::from("bad")),
            ("data-ok:x.y", Any::from("ok")),
        ],
    );
    text(
        &mut txn,
        &p,
        &[("marked", &[("bad mark", any!({})), ("em", any!({}))])],
    );
    // An element with an invalid tag is unwrapped: its children stay.
    let bad = element(&mut txn, &body, "x y", &[("id", Any::from("i"))]);
    block(&mut txn, &bad, "p", "inside");
    drop(txn);
    doc
}

// --- HTML ------------------------------------------------------------------------------------

#[test]
fn html_paragraphs_and_headings() {
    let doc = headings_doc();
    let (html, _) = render(&doc);
    assert_eq!(
        html,
        "<h1>Chorus</h1><p>First paragraph.</p><h2>Details</h2><p>Second paragraph.</p>"
    );
    assert_eq!(doc_html(&doc).0, "Release notes");
    let txn = doc.transact();
    let title = txn.get_text(ROOT_TITLE).unwrap();
    assert_eq!(title_text(&txn, &title), "Release notes");
}

#[test]
fn html_nested_lists() {
    let (html, _) = render(&lists_doc());
    assert_eq!(
        html,
        "<ul><li><p>one</p><ol start=\"3\"><li><p>one.a</p></li></ol></li><li><p>two</p></li></ul>"
    );
}

#[test]
fn html_table() {
    let (html, _) = render(&table_doc());
    assert_eq!(
        html,
        "<table class=\"wide\"><tbody>\
         <tr><th colspan=\"2\" rowspan=\"1\"><p>Head</p></th></tr>\
         <tr><td><p>a</p></td><td><p>b</p></td></tr>\
         </tbody></table>"
    );
}

#[test]
fn html_link_and_overlapping_bold_italic() {
    let (html, _) = render(&marks_doc());
    assert_eq!(
        html,
        "<p>see <a href=\"https://x.test/?a=1&amp;b=2\">the docs</a>.</p>\
         <p><strong>ab</strong><em><strong>cd</strong></em><em>ef</em></p>"
    );
}

#[test]
fn html_suffixed_marks() {
    let (html, _) = render(&suffixed_doc());
    assert_eq!(
        html,
        "<p><a href=\"/x\" title=\"T\">link</a>\
         <span class=\"c1\"><span class=\"c2\"> two comments</span></span></p>"
    );
}

#[test]
fn html_img_void_element() {
    let (html, _) = render(&img_doc());
    assert_eq!(
        html,
        "<p>before <img alt=\"An image\" src=\"/a.png\" width=\"120\"> after</p><hr><p>x<br>y</p>"
    );
}

#[test]
fn html_escapes_text_and_attribute_values() {
    let doc = escaping_doc();
    let (html, _) = render(&doc);
    assert_eq!(
        html,
        "<p title=\"say &quot;hi&quot; &amp; &#39;bye&#39; &lt;b&gt;\">\
         &lt;script&gt;alert(&#39;x &amp; y&#39;)&lt;/script&gt;</p>"
    );
    // The title is plain text: not escaped.
    assert_eq!(doc_html(&doc).0, "<b>\"Title\"</b>");
}

#[test]
fn html_non_string_attribute_values() {
    let (html, _) = render(&values_doc());
    assert_eq!(
        html,
        "<div data-false=\"false\" data-float=\"1.5\" data-int=\"42\" \
         data-obj=\"{&quot;a&quot;:&quot;x\\&quot;y&quot;,&quot;b&quot;:1}\" data-true=\"true\">\
         <p>v</p></div>"
    );
}

#[test]
fn html_skips_invalid_names() {
    let (html, _) = render(&invalid_names_doc());
    assert_eq!(
        html,
        "<p class=\"ok\" data-ok:x.y=\"ok\"><em>marked</em></p><p>inside</p>"
    );
}

#[test]
fn html_skips_non_xml_children() {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    block(&mut txn, &body, "p", "a");
    // A client can put a non-XML value into the fragment; XmlFragment::children()
    // would stop there and hide the rest.
    let raw: &ArrayRef = body.as_ref();
    raw.push_back(&mut txn, Any::from("junk"));
    raw.push_back(&mut txn, any!({"k": 1}));
    block(&mut txn, &body, "p", "b");
    assert_eq!(body.len(&txn), 4);
    assert_eq!(body.children(&txn).count(), 1);
    drop(txn);
    let (html, json) = render(&doc);
    assert_eq!(html, "<p>a</p><p>b</p>");
    assert_eq!(
        json,
        json!([
            el("p", json!({}), json!([t("a")])),
            el("p", json!({}), json!([t("b")]))
        ])
    );
}

#[test]
fn html_void_element_children_are_not_rendered() {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let img = element(&mut txn, &body, "IMG", &[("src", Any::from("x"))]);
    text(&mut txn, &img, &[("hidden", &[])]);
    drop(txn);
    assert_eq!(render(&doc).0, "<IMG src=\"x\">");
}

#[test]
fn too_deep_elements_are_dropped() {
    let (doc, _, body) = new_doc();
    let mut txn = doc.transact_mut();
    let mut parent = element(&mut txn, &body, "div", &[]);
    for _ in 1..MAX_DEPTH + 10 {
        parent = element(&mut txn, &parent, "div", &[]);
    }
    text(&mut txn, &parent, &[("deep", &[])]);
    drop(txn);
    let (html, _) = render(&doc);
    assert_eq!(
        html,
        format!(
            "{}{}",
            "<div>".repeat(MAX_DEPTH),
            "</div>".repeat(MAX_DEPTH)
        )
    );
}

// --- JSON ------------------------------------------------------------------------------------

#[test]
fn json_paragraphs_and_headings() {
    let doc = headings_doc();
    assert_eq!(
        doc_json(&doc),
        json!({
            "title": "Release notes",
            "body": [
                el("h1", json!({}), json!([t("Chorus")])),
                el("p", json!({}), json!([t("First paragraph.")])),
                el("h2", json!({}), json!([t("Details")])),
                el("p", json!({}), json!([t("Second paragraph.")])),
            ]
        })
    );
}

#[test]
fn json_nested_lists() {
    let (_, json) = render(&lists_doc());
    assert_eq!(
        json,
        json!([el(
            "ul",
            json!({}),
            json!([
                el(
                    "li",
                    json!({}),
                    json!([
                        el("p", json!({}), json!([t("one")])),
                        el(
                            "ol",
                            json!({"start": 3}),
                            json!([el(
                                "li",
                                json!({}),
                                json!([el("p", json!({}), json!([t("one.a")]))])
                            )])
                        )
                    ])
                ),
                el(
                    "li",
                    json!({}),
                    json!([el("p", json!({}), json!([t("two")]))])
                )
            ])
        )])
    );
}

#[test]
fn json_table() {
    let (_, json) = render(&table_doc());
    let cell = |tag: &str, attrs: Value, s: &str| {
        el(tag, attrs, json!([el("p", json!({}), json!([t(s)]))]))
    };
    assert_eq!(
        json,
        json!([el(
            "table",
            json!({"class": "wide"}),
            json!([el(
                "tbody",
                json!({}),
                json!([
                    el(
                        "tr",
                        json!({}),
                        json!([cell("th", json!({"colspan": 2, "rowspan": 1}), "Head")])
                    ),
                    el(
                        "tr",
                        json!({}),
                        json!([cell("td", json!({}), "a"), cell("td", json!({}), "b")])
                    )
                ])
            )])
        )])
    );
}

#[test]
fn json_link_and_overlapping_bold_italic() {
    let (_, json) = render(&marks_doc());
    assert_eq!(
        json,
        json!([
            el(
                "p",
                json!({}),
                json!([
                    t("see "),
                    tm(
                        "the docs",
                        json!({"a": {"href": "https://x.test/?a=1&b=2"}})
                    ),
                    t(".")
                ])
            ),
            el(
                "p",
                json!({}),
                json!([
                    tm("ab", json!({"strong": {}})),
                    tm("cd", json!({"em": {}, "strong": {}})),
                    tm("ef", json!({"em": {}}))
                ])
            )
        ])
    );
}

#[test]
fn json_suffixed_marks() {
    let (_, json) = render(&suffixed_doc());
    assert_eq!(
        json,
        json!([el(
            "p",
            json!({}),
            json!([
                tm("link", json!({"a": {"href": "/x", "title": "T"}})),
                // Two marks with the same tag: the first by stored key wins.
                tm(" two comments", json!({"span": {"class": "c1"}}))
            ])
        )])
    );
}

#[test]
fn json_img_void_element() {
    let (_, json) = render(&img_doc());
    assert_eq!(
        json,
        json!([
            el(
                "p",
                json!({}),
                json!([
                    t("before "),
                    el(
                        "img",
                        json!({"alt": "An image", "src": "/a.png", "width": 120}),
                        json!([])
                    ),
                    t(" after")
                ])
            ),
            el("hr", json!({}), json!([])),
            el(
                "p",
                json!({}),
                json!([t("x"), el("br", json!({}), json!([])), t("y")])
            )
        ])
    );
}

#[test]
fn json_keeps_text_and_values_unescaped() {
    let doc = escaping_doc();
    assert_eq!(
        doc_json(&doc),
        json!({
            "title": "<b>\"Title\"</b>",
            "body": [el(
                "p",
                json!({"title": "say \"hi\" & 'bye' <b>"}),
                json!([t("<script>alert('x & y')</script>")])
            )]
        })
    );
}

#[test]
fn json_non_string_attribute_values() {
    let (_, json) = render(&values_doc());
    assert_eq!(
        json,
        json!([el(
            "div",
            json!({
                "data-false": false,
                "data-float": 1.5,
                "data-int": 42,
                "data-null": null,
                "data-obj": {"a": "x\"y", "b": 1},
                "data-true": true
            }),
            json!([el("p", json!({}), json!([t("v")]))])
        )])
    );
}

#[test]
fn json_keeps_names_as_stored() {
    let (_, json) = render(&invalid_names_doc());
    assert_eq!(
        json,
        json!([
            el(
                "p",
                json!({
                    "1x": "bad",
                    "a b": "bad",
                    "class": "ok",
                    "data-ok:x.y": "ok",
                    "onclick\"x": "bad"
                }),
                json!([tm("marked", json!({"bad mark": {}, "em": {}}))])
            ),
            el(
                "x y",
                json!({"id": "i"}),
                json!([el("p", json!({}), json!([t("inside")]))])
            )
        ])
    );
}

// --- empty -----------------------------------------------------------------------------------

#[test]
fn empty_doc() {
    let (doc, _, body) = new_doc();
    assert_eq!(render(&doc), (String::new(), json!([])));
    assert_eq!(doc_html(&doc), (String::new(), String::new()));
    assert_eq!(doc_json(&doc), json!({"title": "", "body": []}));

    // An empty paragraph and an empty text node.
    let mut txn = doc.transact_mut();
    let p = element(&mut txn, &body, "p", &[]);
    text(&mut txn, &p, &[]);
    drop(txn);
    assert_eq!(
        render(&doc),
        ("<p></p>".to_owned(), json!([el("p", json!({}), json!([]))]))
    );
}

#[test]
fn doc_without_roots() {
    let doc = Doc::new();
    assert_eq!(doc_html(&doc), (String::new(), String::new()));
    assert_eq!(doc_json(&doc), json!({"title": "", "body": []}));
    // Reading did not create the roots.
    let mut txn = doc.transact_mut();
    assert!(txn.get_text(ROOT_TITLE).is_none());
    assert!(txn.get_xml_fragment(ROOT_BODY).is_none());
    // ... and a body created later renders normally.
    let body = txn.get_or_insert_xml_fragment(ROOT_BODY);
    block(&mut txn, &body, "p", "late");
    drop(txn);
    assert_eq!(doc_html(&doc).1, "<p>late</p>");
}

#[test]
fn number_text_matches_javascript() {
    assert_eq!(number_text(&Number::Float(1.0)), "1");
    assert_eq!(number_text(&Number::Float(-0.0)), "0");
    assert_eq!(number_text(&Number::Float(0.25)), "0.25");
    assert_eq!(number_text(&Number::Float(f64::NAN)), "NaN");
    assert_eq!(number_text(&Number::Float(f64::NEG_INFINITY)), "-Infinity");
    assert_eq!(number_text(&Number::Int(-7)), "-7");
}

#[test]
fn a_tiptap_body_renders_as_the_html_its_names_mean() {
    let profile = EditorProfile::tiptap();
    let doc = Doc::new();
    let body = doc.get_or_insert_xml_fragment(profile.fragment());
    {
        let mut txn = doc.transact_mut();
        let h = element(
            &mut txn,
            &body,
            "heading",
            &[("level", Any::from(2)), ("textAlign", Any::from("center"))],
        );
        text(&mut txn, &h, &[("Title", &[])]);
        let p = element(&mut txn, &body, "paragraph", &[]);
        let link = Any::from(std::collections::HashMap::from([
            ("href".to_owned(), Any::from("https://example.com/")),
            ("target".to_owned(), Any::from("_blank")),
            ("class".to_owned(), Any::Null),
        ]));
        text(
            &mut txn,
            &p,
            &[
                (
                    "bold",
                    &[(
                        "bold",
                        Any::from(std::collections::HashMap::<String, Any>::new()),
                    )],
                ),
                (" and ", &[]),
                ("link", &[("link", link)]),
            ],
        );
        // TipTap's default level when the attribute is missing.
        let bare = element(&mut txn, &body, "heading", &[]);
        text(&mut txn, &bare, &[("Bare", &[])]);
        let code = element(
            &mut txn,
            &body,
            "codeBlock",
            &[("language", Any::from("rust"))],
        );
        text(&mut txn, &code, &[("fn main() {}", &[])]);
        let list = element(&mut txn, &body, "orderedList", &[("start", Any::from(3))]);
        let item = element(&mut txn, &list, "listItem", &[]);
        block(&mut txn, &item, "paragraph", "three");
        element(&mut txn, &body, "horizontalRule", &[]);
    }
    let (_, html) = doc_html_as(&doc, &profile);
    assert_eq!(
        html,
        "<h2 style=\"text-align: center\">Title</h2>\
         <p><strong>bold</strong> and <a href=\"https://example.com/\" target=\"_blank\">link</a></p>\
         <h1>Bare</h1>\
         <pre class=\"language-rust\">fn main() {}</pre>\
         <ol start=\"3\"><li><p>three</p></li></ol>\
         <hr>"
    );
    // The identity profile reads `body`, which this document does not have.
    assert_eq!(doc_html(&doc).1, "");
}
