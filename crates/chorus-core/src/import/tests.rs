use super::html::host_body_cleaned;
use super::*;
use crate::render::{body_html, body_json, MAX_DEPTH};
use crate::{ROOT_BODY, ROOT_TITLE};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Assoc, BranchID, Doc, GetString, IndexedSequence, OffsetKind, Options, ReadTxn,
    StateVector, StickyIndex, Text, TextRef, Transact, TransactionMut, Update, WriteTxn, Xml,
    XmlElementPrelim, XmlElementRef, XmlFragment, XmlFragmentRef, XmlOut, XmlTextPrelim,
    XmlTextRef,
};

// --- helpers ---------------------------------------------------------------------------------

/// The whitelist's default mark set, as the server passes it.
const MARKS: &[&str] = &[
    "strong", "b", "em", "i", "u", "s", "code", "sub", "sup", "a", "span",
];

fn is_mark(tag: &str) -> bool {
    MARKS.contains(&tag)
}

fn parse(html: &str) -> Vec<BodyNode> {
    parse_body_html(html, &is_mark)
}

/// A document with both roots, created the way `Room` creates it (UTF-16 offsets).
fn new_doc(client_id: u64) -> (Doc, TextRef, XmlFragmentRef) {
    let doc = Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(client_id),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    });
    let (title, body) = {
        let mut txn = doc.transact_mut();
        (
            txn.get_or_insert_text(ROOT_TITLE),
            txn.get_or_insert_xml_fragment(ROOT_BODY),
        )
    };
    (doc, title, body)
}

fn obj(pairs: &[(&str, &str)]) -> Any {
    let map: HashMap<String, Any> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Any::from(*v)))
        .collect();
    Any::Map(Arc::new(map))
}

fn attrs(pairs: &[(&str, Any)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (Arc::<str>::from(*k), v.clone()))
        .collect()
}

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

/// A text node made of runs, each inserted with its full set of marks (as
/// y-prosemirror writes them).
fn text<P: XmlFragment>(
    txn: &mut TransactionMut,
    parent: &P,
    runs: &[(&str, Attrs)],
) -> XmlTextRef {
    let t = parent.push_back(txn, XmlTextPrelim::new(""));
    for (s, marks) in runs {
        let at = t.len(txn);
        t.insert_with_attributes(txn, at, s, marks.clone());
    }
    t
}

fn block<P: XmlFragment>(txn: &mut TransactionMut, parent: &P, tag: &str, s: &str) -> XmlTextRef {
    let el = element(txn, parent, tag, &[]);
    text(txn, &el, &[(s, Attrs::new())])
}

fn html(doc: &Doc) -> String {
    let txn = doc.transact();
    let body = txn.get_xml_fragment(ROOT_BODY).unwrap();
    body_html(&txn, &body)
}

/// What a transaction that changed nothing encodes to.
fn empty_update() -> Vec<u8> {
    let doc = Doc::new();
    let txn = doc.transact_mut();
    txn.encode_update_v1()
}

/// Applies `target` in one transaction: (changed, the transaction's update).
fn apply(doc: &Doc, target: &[BodyNode]) -> (bool, Vec<u8>) {
    let mut txn = doc.transact_mut();
    let body = txn.get_or_insert_xml_fragment(ROOT_BODY);
    let changed = apply_body(&mut txn, &body, target);
    (changed, txn.encode_update_v1())
}

fn apply_html(doc: &Doc, html: &str) -> (bool, Vec<u8>) {
    apply(doc, &parse(html))
}

/// `apply_body(parse_body_html(body_html(doc)))` changes nothing at all.
fn assert_round_trip_noop(doc: &Doc) {
    let before = html(doc);
    let json_before = {
        let txn = doc.transact();
        body_json(&txn, &txn.get_xml_fragment(ROOT_BODY).unwrap())
    };
    let sv_before = doc.transact().state_vector();
    let (changed, update) = apply_html(doc, &before);
    assert!(!changed, "round trip reported a change for {before}");
    assert_eq!(update, empty_update(), "round trip produced an update");
    assert_eq!(doc.transact().state_vector(), sv_before);
    assert_eq!(html(doc), before);
    let txn = doc.transact();
    assert_eq!(
        body_json(&txn, &txn.get_xml_fragment(ROOT_BODY).unwrap()),
        json_before
    );
}

/// A cursor at `index`, attached to the character after it (before it at the end).
fn sticky<S: IndexedSequence>(doc: &Doc, seq: &S, index: u32) -> StickyIndex {
    let txn = doc.transact();
    seq.sticky_index(&txn, index, Assoc::After)
        .or_else(|| seq.sticky_index(&txn, index, Assoc::Before))
        .unwrap()
}

fn resolve(doc: &Doc, s: &StickyIndex) -> u32 {
    let txn = doc.transact();
    s.get_offset(&txn).unwrap().index
}

/// The identities of the body's children (all elements in these tests).
///
/// Ids, not refs: a ref to a child that was deleted (and garbage-collected) points
/// at freed memory, so refs must not outlive the change under test.
fn children(doc: &Doc) -> Vec<BranchID> {
    let txn = doc.transact();
    let body = txn.get_xml_fragment(ROOT_BODY).unwrap();
    body.children(&txn)
        .map(|c| match c {
            XmlOut::Element(el) => id(&el),
            other => panic!("not an element: {other:?}"),
        })
        .collect()
}

fn id<T: AsRef<yrs::branch::Branch>>(shared: &T) -> BranchID {
    shared.as_ref().id()
}

/// The first child of body child `i`, a text.
fn text_of(doc: &Doc, i: u32) -> XmlTextRef {
    let txn = doc.transact();
    let body = txn.get_xml_fragment(ROOT_BODY).unwrap();
    let Some(XmlOut::Element(el)) = body.get(&txn, i) else {
        panic!("no element at {i}");
    };
    let Some(XmlOut::Text(t)) = el.get(&txn, 0) else {
        panic!("no text in element {i}");
    };
    t
}

fn decode(update: &[u8]) -> Update {
    Update::decode_v1(update).unwrap()
}

/// Ten paragraphs `<p>Paragraph N: some text here.</p>`.
fn ten_paragraphs() -> (Doc, Vec<String>) {
    let (doc, _, body) = new_doc(1);
    let texts: Vec<String> = (0..10)
        .map(|i| format!("Paragraph {i}: some text here."))
        .collect();
    {
        let mut txn = doc.transact_mut();
        for t in &texts {
            block(&mut txn, &body, "p", t);
        }
    }
    (doc, texts)
}

fn paragraphs_html(texts: &[String]) -> String {
    texts.iter().map(|t| format!("<p>{t}</p>")).collect()
}

// --- 1. round trip ---------------------------------------------------------------------------

/// Everything a real document holds: headings, marks (stored as `{}`, as `true`, with
/// the y-prosemirror `--hash` suffix), links, nested lists, a table with attributes
/// and styles (one numeric), an image between texts, a Confluence-style macro, void
/// elements, escaping, astral characters, an empty paragraph and one holding an empty
/// text.
fn rich_doc() -> Doc {
    let (doc, title, body) = new_doc(7);
    {
        let mut txn = doc.transact_mut();
        let txn = &mut txn;
        title.push(txn, "Rich 😀 title");
        let none = Attrs::new;
        let h1 = element(txn, &body, "h1", &[("id", Any::from("top"))]);
        text(
            txn,
            &h1,
            &[
                ("Heading with ", none()),
                ("emphasis", attrs(&[("em", obj(&[]))])),
            ],
        );
        let p = element(txn, &body, "p", &[]);
        text(
            txn,
            &p,
            &[
                ("Plain, ", none()),
                ("bold", attrs(&[("strong", obj(&[]))])),
                (", bold as true", attrs(&[("strong", Any::Bool(true))])),
                (" both ", attrs(&[("strong", obj(&[])), ("em", obj(&[]))])),
                (
                    "a link",
                    attrs(&[(
                        "a--4f3a2b1c",
                        obj(&[("href", "https://example.com/?a=1&b=<2>")]),
                    )]),
                ),
                (" & <escaped> \"quotes\" 'too' ", none()),
                ("😀 ünïcödé", attrs(&[("code", obj(&[]))])),
                (" red", attrs(&[("span", obj(&[("style", "color: red")]))])),
                (
                    " all",
                    attrs(&[
                        ("u", obj(&[])),
                        ("s", obj(&[])),
                        ("sub", obj(&[])),
                        ("i", obj(&[])),
                    ]),
                ),
            ],
        );
        let ul = element(txn, &body, "ul", &[]);
        let li = element(txn, &ul, "li", &[]);
        block(txn, &li, "p", "one");
        let li = element(txn, &ul, "li", &[]);
        block(txn, &li, "p", "two");
        let ol = element(txn, &li, "ol", &[("start", Any::from("3"))]);
        let li = element(txn, &ol, "li", &[]);
        block(txn, &li, "p", "nested");

        let table = element(
            txn,
            &body,
            "table",
            &[
                ("class", Any::from("data")),
                ("style", Any::from("border-collapse: collapse; width: 100%")),
            ],
        );
        let tbody = element(txn, &table, "tbody", &[]);
        let tr = element(txn, &tbody, "tr", &[]);
        let th = element(
            txn,
            &tr,
            "th",
            &[
                ("colspan", Any::from("2")),
                ("style", Any::from("background-color: #eee")),
            ],
        );
        block(txn, &th, "p", "Header");
        let tr = element(txn, &tbody, "tr", &[]);
        let td = element(txn, &tr, "td", &[("colspan", Any::from(1.0))]);
        block(txn, &td, "p", "numeric colspan");
        let td = element(txn, &tr, "td", &[("data-colwidth", Any::from("120"))]);
        block(txn, &td, "p", "cell");

        let p = element(txn, &body, "p", &[]);
        text(txn, &p, &[("Before ", none())]);
        element(
            txn,
            &p,
            "img",
            &[
                ("src", Any::from("https://example.com/a.png")),
                ("alt", Any::from("An image")),
            ],
        );
        text(txn, &p, &[(" after", none())]);
        element(txn, &p, "br", &[]);
        text(txn, &p, &[("next line", none())]);

        let mac = element(
            txn,
            &body,
            "div",
            &[
                ("class", Any::from("confluence-macro")),
                ("data-macro-name", Any::from("info")),
                ("data-macro-id", Any::from("abc-123")),
                ("data-macro-parameters", Any::from("{\"title\":\"Note\"}")),
            ],
        );
        block(txn, &mac, "p", "Macro body");
        element(txn, &body, "hr", &[]);
        let bq = element(txn, &body, "blockquote", &[]);
        block(txn, &bq, "p", "Quoted");
        let pre = element(txn, &body, "pre", &[]);
        text(
            txn,
            &pre,
            &[("let x = 1;\nlet y = 2;", attrs(&[("code", obj(&[]))]))],
        );
        element(txn, &body, "p", &[]);
        let p = element(txn, &body, "p", &[]);
        text(txn, &p, &[]);
        // Non-XML junk a client slipped into the fragment: invisible, left alone.
        let arr: &yrs::ArrayRef = body.as_ref();
        let n = yrs::Array::len(arr, txn);
        yrs::Array::insert(arr, txn, n, Any::from(42.0));
        block(txn, &body, "h2", "The end");
    }
    doc
}

#[test]
fn round_trip_of_a_rich_document_is_a_noop() {
    let doc = rich_doc();
    let rendered = html(&doc);
    // The document really holds what the test claims.
    for needle in [
        "<h1 id=\"top\">",
        "<strong>bold</strong><strong>, bold as true</strong>",
        "<a href=\"https://example.com/?a=1&amp;b=&lt;2&gt;\">a link</a>",
        "<td colspan=\"1\">",
        "<img alt=\"An image\" src=\"https://example.com/a.png\">",
        "data-macro-name=\"info\"",
        "<hr>",
        "<ol start=\"3\">",
        "<p></p><p></p>",
    ] {
        assert!(rendered.contains(needle), "{needle} not in {rendered}");
    }
    assert_round_trip_noop(&doc);
}

#[test]
fn round_trip_of_ten_paragraphs_is_a_noop() {
    let (doc, _) = ten_paragraphs();
    assert_round_trip_noop(&doc);
}

#[test]
fn building_from_html_renders_that_html_and_is_then_stable() {
    let source = rich_doc();
    let source_html = html(&source);
    let (doc, _, _) = new_doc(2);
    let (changed, _) = apply_html(&doc, &source_html);
    assert!(changed);
    // The same content; adjacent runs whose marks render the same are one run now
    // (`<strong>bold</strong><strong>, bold as true</strong>` in the source).
    assert_eq!(parse(&html(&doc)), parse(&source_html));
    assert!(html(&doc).contains("<strong>bold, bold as true</strong>"));
    assert_round_trip_noop(&doc);
}

#[test]
fn indentation_between_blocks_is_layout_not_content() {
    let (doc, _, _) = new_doc(3);
    apply_html(
        &doc,
        "<ul><li><p>a</p></li><li><p>b <em>c</em></p></li></ul><p> </p>",
    );
    let pretty =
        "\n<ul>\n  <li>\n    <p>a</p>\n  </li>\n  <li><p>b <em>c</em></p></li>\n</ul>\n<p> </p>\n";
    let (changed, update) = apply_html(&doc, pretty);
    assert!(!changed);
    assert_eq!(update, empty_update());
    // Whitespace that is content stays: inside a paragraph, and next to inline elements.
    assert_eq!(
        parse("<p>a <img src=x> <b>b</b> c</p>"),
        vec![BodyNode::Element {
            tag: "p".into(),
            attrs: vec![],
            children: vec![
                BodyNode::Text(vec![Run {
                    text: "a ".into(),
                    marks: BTreeMap::new()
                }]),
                BodyNode::Element {
                    tag: "img".into(),
                    attrs: vec![("src".into(), "x".into())],
                    children: vec![]
                },
                BodyNode::Text(vec![
                    Run {
                        text: " ".into(),
                        marks: BTreeMap::new()
                    },
                    Run {
                        text: "b".into(),
                        marks: BTreeMap::from([("b".into(), BTreeMap::new())])
                    },
                    Run {
                        text: " c".into(),
                        marks: BTreeMap::new()
                    },
                ]),
            ],
        }]
    );
}

// --- 2. one paragraph of ten -----------------------------------------------------------------

#[test]
fn changing_one_paragraph_touches_only_that_paragraph() {
    let (doc, mut texts) = ten_paragraphs();
    let before = children(&doc);
    let changed_text = text_of(&doc, 3);
    let changed_id = id(&changed_text);
    let other = sticky(&doc, &text_of(&doc, 7), 5);
    let in_prefix = sticky(&doc, &changed_text, 4);
    // "Paragraph 3: some text here|." — after the insertion point, moves with it.
    let after_change = sticky(&doc, &changed_text, 27);

    texts[3] = "Paragraph 3: some text here, now edited.".into();
    let target = paragraphs_html(&texts);
    let (changed, update) = apply_html(&doc, &target);
    assert!(changed);
    assert_eq!(html(&doc), target);

    // Every paragraph is the same Y.XmlElement, the changed one keeps its Y.XmlText.
    assert_eq!(children(&doc), before);
    assert_eq!(id(&text_of(&doc, 3)), changed_id);
    assert_eq!(resolve(&doc, &other), 5);
    assert_eq!(resolve(&doc, &in_prefix), 4);
    assert_eq!(
        resolve(&doc, &after_change),
        27 + ", now edited".len() as u32
    );
    // A pure insertion: nothing deleted, only the inserted characters are new.
    let update = decode(&update);
    assert!(update.delete_set().is_empty());
    let inserted: u32 = update
        .insertions(false)
        .iter()
        .flat_map(|(_, ranges)| ranges.iter().map(|r| r.end - r.start))
        .sum();
    assert_eq!(inserted, ", now edited".len() as u32);
}

#[test]
fn replacing_the_middle_of_a_paragraph_keeps_prefix_and_suffix() {
    let (doc, mut texts) = ten_paragraphs();
    let t = text_of(&doc, 2);
    let t_id = id(&t);
    let start = sticky(&doc, &t, 2);
    let end = sticky(&doc, &t, 27); // the final "."
    texts[2] = "Paragraph 2: 😀 other words here.".into();
    let target = paragraphs_html(&texts);
    apply_html(&doc, &target);
    assert_eq!(html(&doc), target);
    assert_eq!(id(&text_of(&doc, 2)), t_id);
    assert_eq!(resolve(&doc, &start), 2);
    // "some text" (9) became "😀 other words" (2 + 12 UTF-16 units).
    assert_eq!(resolve(&doc, &end), 27 - 9 + 14);
}

// --- 3. insert one, delete one ---------------------------------------------------------------

#[test]
fn inserting_and_deleting_paragraphs_leaves_the_others_alone() {
    let (doc, mut texts) = ten_paragraphs();
    let before = children(&doc);
    let stickies: Vec<(usize, StickyIndex)> = [0usize, 4, 5, 6, 8, 9]
        .iter()
        .map(|&i| (i, sticky(&doc, &text_of(&doc, i as u32), 3 + i as u32)))
        .collect();

    texts.remove(7);
    texts.insert(5, "A new paragraph.".into());
    let target = paragraphs_html(&texts);
    let (changed, _) = apply_html(&doc, &target);
    assert!(changed);
    assert_eq!(html(&doc), target);

    let after = children(&doc);
    let mut expected = before.clone();
    expected.remove(7);
    assert_eq!(after.len(), expected.len() + 1);
    assert_eq!(&after[..5], &expected[..5]);
    assert_eq!(&after[6..], &expected[5..]);
    assert!(!before.contains(&after[5]));
    for (i, s) in stickies {
        assert_eq!(resolve(&doc, &s), 3 + i as u32, "paragraph {i}");
    }
}

#[test]
fn a_changed_tag_replaces_the_element() {
    let (doc, texts) = ten_paragraphs();
    let before = children(&doc);
    let mut target = String::new();
    for (i, t) in texts.iter().enumerate() {
        if i == 4 {
            target.push_str(&format!("<h2>{t}</h2>"));
        } else {
            target.push_str(&format!("<p>{t}</p>"));
        }
    }
    apply_html(&doc, &target);
    assert_eq!(html(&doc), target);
    let after = children(&doc);
    assert_eq!(&after[..4], &before[..4]);
    assert_eq!(&after[5..], &before[5..]);
    assert_ne!(after[4], before[4]);
}

// --- 4. mark-only change ---------------------------------------------------------------------

#[test]
fn making_a_word_bold_formats_and_keeps_the_characters() {
    let (doc, _, body) = new_doc(1);
    {
        let mut txn = doc.transact_mut();
        block(&mut txn, &body, "p", "Make this word bold.");
    }
    let t = text_of(&doc, 0);
    let t_id = id(&t);
    let in_word = sticky(&doc, &t, 11); // "Make this w|ord"
    let target = "<p>Make this <strong>word</strong> bold.</p>";
    let (changed, update) = apply_html(&doc, target);
    assert!(changed);
    assert_eq!(html(&doc), target);
    assert_eq!(id(&text_of(&doc, 0)), t_id);
    assert_eq!(resolve(&doc, &in_word), 11);
    // No character was deleted: only formatting items were added.
    let update = decode(&update);
    assert!(update.delete_set().is_empty());
    assert_eq!(t.len(&doc.transact()), 20);

    // And back, and a link whose stored key has the y-prosemirror suffix gets a new href.
    let (changed, _) = apply_html(&doc, "<p>Make this word bold.</p>");
    assert!(changed);
    assert_eq!(html(&doc), "<p>Make this word bold.</p>");
    assert_eq!(resolve(&doc, &in_word), 11);
    assert_eq!(t.len(&doc.transact()), 20);
    {
        let mut txn = doc.transact_mut();
        t.format(
            &mut txn,
            5,
            4,
            attrs(&[("a--1a2b3c4d", obj(&[("href", "https://old.example")]))]),
        );
    }
    assert_eq!(
        html(&doc),
        "<p>Make <a href=\"https://old.example\">this</a> word bold.</p>"
    );
    let target = "<p>Make <a href=\"https://new.example\">this</a> word bold.</p>";
    let (changed, _) = apply_html(&doc, target);
    assert!(changed);
    assert_eq!(html(&doc), target);
    assert_eq!(resolve(&doc, &in_word), 11);
    assert_round_trip_noop(&doc);
}

#[test]
fn marks_change_together_with_text() {
    let (doc, _, _) = new_doc(1);
    apply_html(&doc, "<p>one <em>two</em> three</p>");
    let t = text_of(&doc, 0);
    let t_id = id(&t);
    let start = sticky(&doc, &t, 1);
    let target = "<p>one <em>two</em> and <strong>four</strong> three</p>";
    apply_html(&doc, target);
    assert_eq!(html(&doc), target);
    assert_eq!(id(&text_of(&doc, 0)), t_id);
    assert_eq!(resolve(&doc, &start), 1);
    let target = "<p><strong>one</strong> <em>two</em> and four three</p>";
    apply_html(&doc, target);
    assert_eq!(html(&doc), target);
    assert_round_trip_noop(&doc);
}

// --- 5. attributes and title -----------------------------------------------------------------

#[test]
fn a_table_cell_attribute_change_sets_only_that_attribute() {
    let (doc, _, _) = new_doc(1);
    let source = "<table><tbody><tr>\
        <td colspan=\"1\" style=\"color: red\"><p>a</p></td>\
        <td class=\"x\"><p>b</p></td></tr></tbody></table>";
    apply_html(&doc, source);
    let cells = |doc: &Doc| -> Vec<XmlElementRef> {
        let txn = doc.transact();
        let body = txn.get_xml_fragment(ROOT_BODY).unwrap();
        let mut cells = Vec::new();
        for node in body.successors(&txn) {
            if let XmlOut::Element(el) = node {
                if el.tag().as_ref() == "td" {
                    cells.push(el);
                }
            }
        }
        cells
    };
    let before = cells(&doc);
    let before_ids: Vec<BranchID> = before.iter().map(id).collect();
    let cell_text = {
        let txn = doc.transact();
        let Some(XmlOut::Element(p)) = before[0].get(&txn, 0) else {
            panic!()
        };
        let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
            panic!()
        };
        t
    };
    let in_cell = sticky(&doc, &cell_text, 1);

    let target = "<table><tbody><tr>\
        <td colspan=\"2\" data-colwidth=\"100\"><p>a</p></td>\
        <td class=\"x\"><p>b</p></td></tr></tbody></table>";
    let (changed, update) = apply_html(&doc, target);
    assert!(changed);
    assert_eq!(html(&doc), target);
    let after = cells(&doc);
    assert_eq!(after.iter().map(id).collect::<Vec<_>>(), before_ids);
    assert_eq!(resolve(&doc, &in_cell), 1);
    // Deleted: the old `colspan` and `style` values. Inserted: two attribute values.
    let update = decode(&update);
    let count = |set: &yrs::IdSet| -> u32 {
        set.iter()
            .flat_map(|(_, ranges)| ranges.iter().map(|r| r.end - r.start))
            .sum()
    };
    assert_eq!(count(update.delete_set()), 2);
    assert_eq!(count(&update.insertions(false)), 2);
    {
        let txn = doc.transact();
        assert_eq!(after[0].get_attribute(&txn, "style"), None);
    }
    assert_round_trip_noop(&doc);
}

#[test]
fn a_title_change_keeps_prefix_and_suffix() {
    let (doc, title, _) = new_doc(1);
    {
        let mut txn = doc.transact_mut();
        title.push(&mut txn, "Quarterly 😀 report draft");
    }
    let start = sticky(&doc, &title, 3);
    let end = sticky(&doc, &title, 14); // "Quarterly 😀 |report"
    let target = "Quarterly 😀 financial report draft";
    let update = {
        let mut txn = doc.transact_mut();
        assert!(apply_title(&mut txn, &title, target));
        txn.encode_update_v1()
    };
    assert_eq!(title.get_string(&doc.transact()), target);
    assert_eq!(resolve(&doc, &start), 3);
    assert_eq!(resolve(&doc, &end), 14 + "financial ".len() as u32);
    let update = decode(&update);
    assert!(update.delete_set().is_empty());

    // Replacing an astral character in the middle (two UTF-16 units).
    let update = {
        let mut txn = doc.transact_mut();
        assert!(apply_title(
            &mut txn,
            &title,
            "Quarterly 😃 financial report draft"
        ));
        txn.encode_update_v1()
    };
    assert_eq!(
        title.get_string(&doc.transact()),
        "Quarterly 😃 financial report draft"
    );
    assert_eq!(resolve(&doc, &start), 3);
    let update = decode(&update);
    assert!(!update.delete_set().is_empty());

    // The same title: nothing.
    let mut txn = doc.transact_mut();
    assert!(!apply_title(
        &mut txn,
        &title,
        "Quarterly 😃 financial report draft"
    ));
    assert_eq!(txn.encode_update_v1(), empty_update());
}

// --- 6. concurrency --------------------------------------------------------------------------

#[test]
fn an_external_change_merges_with_concurrent_typing() {
    let (a, _) = ten_paragraphs();
    let (b, _, _) = new_doc(2);
    {
        let state = a
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        b.transact_mut()
            .apply_update(Update::decode_v1(&state).unwrap())
            .unwrap();
    }
    assert_eq!(html(&a), html(&b));
    let sv_a = a.transact().state_vector();
    let sv_b = b.transact().state_vector();

    // A types into paragraph 5.
    {
        let t = text_of(&a, 5);
        let mut txn = a.transact_mut();
        t.insert(&mut txn, 13, "typed by A, ");
    }
    // B pushes an external change to paragraph 1 (and the host still has the old
    // paragraph 5).
    let mut texts: Vec<String> = (0..10)
        .map(|i| format!("Paragraph {i}: some text here."))
        .collect();
    texts[1] = "Paragraph 1: changed by the host.".into();
    let (changed, _) = apply_html(&b, &paragraphs_html(&texts));
    assert!(changed);

    // Exchange what each has that the other lacks.
    let from_a = a.transact().encode_state_as_update_v1(&sv_b);
    let from_b = b.transact().encode_state_as_update_v1(&sv_a);
    a.transact_mut()
        .apply_update(Update::decode_v1(&from_b).unwrap())
        .unwrap();
    b.transact_mut()
        .apply_update(Update::decode_v1(&from_a).unwrap())
        .unwrap();

    let merged = html(&a);
    assert_eq!(merged, html(&b));
    assert!(merged.contains("<p>Paragraph 1: changed by the host.</p>"));
    assert!(merged.contains("<p>Paragraph 5: typed by A, some text here.</p>"));
    assert_eq!(children(&a).len(), 10);
}

// --- 7. hostile and odd HTML ----------------------------------------------------------------

/// Depth of the deepest element in `nodes` (body children are at depth 1), iteratively.
fn max_depth(nodes: &[BodyNode]) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&BodyNode, usize)> = nodes.iter().map(|n| (n, 1)).collect();
    while let Some((node, depth)) = stack.pop() {
        if let BodyNode::Element { children, .. } = node {
            max = max.max(depth);
            stack.extend(children.iter().map(|c| (c, depth + 1)));
        }
    }
    max
}

/// Parses, applies to a fresh document, and checks that applying the document's own
/// rendering is then a no-op.
fn parse_and_apply(html_in: &str) -> (Vec<BodyNode>, String) {
    let nodes = parse(html_in);
    let (doc, _, _) = new_doc(5);
    apply(&doc, &nodes);
    let rendered = html(&doc);
    assert_round_trip_noop(&doc);
    (nodes, rendered)
}

#[test]
fn unclosed_and_misnested_tags_are_repaired() {
    let (_, rendered) = parse_and_apply("<p>one<p>two <b>bold <i>both</p>after");
    assert_eq!(
        rendered,
        "<p>one</p><p>two <b>bold </b><b><i>both</i></b></p><b><i>after</i></b>"
    );
    let (_, rendered) = parse_and_apply("<table><tr><td>cell</table></div></span>");
    assert_eq!(
        rendered,
        "<table><tbody><tr><td>cell</td></tr></tbody></table>"
    );
}

#[test]
fn deep_nesting_is_capped_without_overflowing_the_stack() {
    let n = 10_000;
    for (open, close) in [
        ("<div>", "</div>"),
        ("<ul><li>", "</li></ul>"),
        ("<blockquote>", ""),
        ("<b><i>", "</i></b>"),
        ("<span><div>", "</div></span>"),
    ] {
        let html_in = format!("{}deep{}", open.repeat(n), close.repeat(n));
        let (nodes, rendered) = parse_and_apply(&html_in);
        assert!(max_depth(&nodes) <= MAX_DEPTH, "{open}");
        assert!(!rendered.is_empty() || open == "<b><i>", "{open}");
    }
}

#[test]
fn loose_text_comments_and_scripts() {
    let nodes = parse("loose <b>text</b><p>para<!-- inner -->graph</p><!-- c -->tail");
    let plain = BTreeMap::new;
    assert_eq!(
        nodes,
        vec![
            BodyNode::Text(vec![
                Run {
                    text: "loose ".into(),
                    marks: plain()
                },
                Run {
                    text: "text".into(),
                    marks: BTreeMap::from([("b".to_string(), BTreeMap::new())])
                },
            ]),
            BodyNode::Element {
                tag: "p".into(),
                attrs: vec![],
                children: vec![BodyNode::Text(vec![Run {
                    text: "paragraph".into(),
                    marks: plain()
                }])],
            },
            BodyNode::Text(vec![Run {
                text: "tail".into(),
                marks: plain()
            }]),
        ]
    );
    parse_and_apply("loose <b>text</b><p>para<!-- inner -->graph</p><!-- c -->tail");

    let nodes = parse("<p>x</p><script>alert(1)</script><style>p{}</style>");
    assert_eq!(
        nodes[1],
        BodyNode::Element {
            tag: "script".into(),
            attrs: vec![],
            children: vec![BodyNode::Text(vec![Run {
                text: "alert(1)".into(),
                marks: plain()
            }])],
        }
    );
    parse_and_apply("<p>x</p><script>alert(1)</script>");
    for odd in [
        "",
        "<",
        "</p>",
        "<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p></body></html>",
        "<?php echo 1 ?><p>x</p>",
        "<template><p>in a template</p></template>",
        "<svg viewBox=\"0 0 1 1\"><foreignObject><p>x</p></foreignObject></svg>",
        "<p a=1 a=2 A=3 xlink:href=x>dup</p>",
        "<a href=x><div>block in a link</div></a>",
        "\0\r\n\u{FEFF}<p>\u{0}</p>",
        "<table><td>cell</td><p>foster-parented</p></table>",
        "<select><option>o</select><textarea>t</textarea><noscript><p>n</p></noscript>",
    ] {
        let nodes = parse(odd);
        let (doc, _, _) = new_doc(5);
        apply(&doc, &nodes);
        // Idempotent: the same target again changes nothing.
        let (changed, _) = apply(&doc, &nodes);
        assert!(!changed, "{odd:?}");
    }
}

#[test]
fn host_supplied_nodes_deeper_than_the_bound_are_not_inserted() {
    // Built bottom-up, so no recursion is needed to make it.
    let mut node = BodyNode::Text(vec![Run {
        text: "deep".into(),
        marks: BTreeMap::new(),
    }]);
    for _ in 0..(MAX_DEPTH + 10) {
        node = BodyNode::Element {
            tag: "div".into(),
            attrs: vec![],
            children: vec![node],
        };
    }
    let target = vec![node];
    let (doc, _, _) = new_doc(1);
    let (changed, _) = apply(&doc, &target);
    assert!(changed);
    let (changed, update) = apply(&doc, &target);
    assert!(!changed);
    assert_eq!(update, empty_update());
    assert!(!html(&doc).contains("deep"));
    // Dropping the host's tree iteratively is the host's business; here it is small.
    let mut stack = target;
    while let Some(n) = stack.pop() {
        if let BodyNode::Element { children, .. } = n {
            stack.extend(children);
        }
    }
}

/// Counts the nodes of a parse result, iteratively.
fn count_nodes(nodes: &[BodyNode]) -> usize {
    let mut count = 0;
    let mut stack: Vec<&BodyNode> = nodes.iter().collect();
    while let Some(node) = stack.pop() {
        count += 1;
        if let BodyNode::Element { children, .. } = node {
            stack.extend(children);
        }
    }
    count
}

#[test]
fn reopened_formatting_cannot_multiply_the_tree() {
    // Each `</div>` closes 30 distinct `<b>`s that stay "active": a browser reopens all
    // of them inside every later paragraph (9,000 elements per `<p>`). The parser's
    // node budget stops that long before it costs anything.
    let mut bomb = String::new();
    for i in 0..300 {
        bomb.push_str("<div>");
        for j in 0..30 {
            bomb.push_str(&format!("<b title={i}-{j}>"));
        }
        bomb.push_str("</div>");
    }
    bomb.push_str(&"<p>x</p>".repeat(3000));
    let nodes = parse(&bomb);
    assert!(count_nodes(&nodes) <= bomb.len());
}

#[test]
fn wide_documents_are_built_and_diffed() {
    // Ten thousand paragraphs and stray end tags (each makes an empty paragraph):
    // building inserts them all in one delta (one walk of the list), so this stays linear.
    let (doc, _, _) = new_doc(1);
    let paragraphs: Vec<String> = (0..10_000).map(|i| format!("<p>x{i}</p>")).collect();
    let source = format!("{}{}", paragraphs.concat(), "</p>".repeat(1000));
    let (changed, _) = apply_html(&doc, &source);
    assert!(changed);
    assert_eq!(children(&doc).len(), 11_000);
    // One paragraph changed, one moved to the front, the empty ones gone: too large for
    // the LCS table, so Myers' algorithm matches the rest.
    let before = children(&doc);
    let mut target = paragraphs.clone();
    target[5000] = "<p>x5000 changed</p>".into();
    let moved = target.remove(7000);
    target.insert(0, moved);
    apply_html(&doc, &target.concat());
    assert_eq!(html(&doc), target.concat());
    let after = children(&doc);
    assert_eq!(after.len(), 10_000);
    assert!(!before.contains(&after[0]));
    assert!(after[1..7001] == before[..7000]);
    assert!(after[7001..] == before[7001..10_000]);
}

/// Paragraph `i` of a large draft, version `rev`: a plain run, a bold run, a plain end.
fn draft_paragraph(i: usize, rev: usize) -> String {
    let word = ["quick", "swift"][rev];
    format!("<p>Paragraph {i}: the {word} fox <strong>jumps over the dog</strong> twice.</p>")
}

#[test]
fn a_rewrite_of_every_other_paragraph_keeps_the_others_and_their_cursors() {
    // More changed texts than PRECISE_TEXT_EDITS: the first ones are edited character
    // by character, the rest run by run; the untouched paragraphs are not touched.
    let n = 3 * diff::PRECISE_TEXT_EDITS;
    let (doc, _, _) = new_doc(1);
    let v0: String = (0..n).map(|i| draft_paragraph(i, 0)).collect();
    apply_html(&doc, &v0);
    let before = children(&doc);
    let texts: Vec<BranchID> = (0..n as u32).map(|i| id(&text_of(&doc, i))).collect();
    // In every paragraph: a cursor in the plain prefix ("Para|graph") and one in the
    // bold run ("jumps |over"), after the changed word.
    let prefix_at = 4;
    let bold_at = |i: usize| format!("Paragraph {i}: the quick fox jumps ").len() as u32;
    let cursors: Vec<(StickyIndex, StickyIndex)> = (0..n)
        .map(|i| {
            let t = text_of(&doc, i as u32);
            (sticky(&doc, &t, prefix_at), sticky(&doc, &t, bold_at(i)))
        })
        .collect();

    let v1: String = (0..n).map(|i| draft_paragraph(i, i % 2)).collect();
    let (changed, _) = apply_html(&doc, &v1);
    assert!(changed);
    assert_eq!(html(&doc), v1);
    // Every paragraph and every text keeps its identity.
    assert_eq!(children(&doc), before);
    let after: Vec<BranchID> = (0..n as u32).map(|i| id(&text_of(&doc, i))).collect();
    assert_eq!(after, texts);
    for (i, (in_prefix, in_bold)) in cursors.iter().enumerate() {
        let changed_here = i % 2 == 1;
        // Unchanged paragraphs: every cursor where it was.
        // Changed ones: the bold run is not touched, so its cursor stays too.
        assert_eq!(resolve(&doc, in_bold), bold_at(i), "paragraph {i}");
        if !changed_here || i / 2 < diff::PRECISE_TEXT_EDITS {
            // Character precision: the prefix before the changed word survives.
            assert_eq!(resolve(&doc, in_prefix), prefix_at, "paragraph {i}");
        } else {
            // Run precision: the changed plain run was replaced whole; its cursor
            // lands at the run's edge.
            assert_eq!(resolve(&doc, in_prefix), 0, "paragraph {i}");
        }
    }
    assert_round_trip_noop(&doc);
}

#[test]
fn run_edits_split_no_stored_item() {
    // Past the precise budget a changed run is deleted whole: the update's deletions
    // cover whole items, so applying it to another replica splits nothing either.
    let n = diff::PRECISE_TEXT_EDITS + 10;
    let (doc, _, _) = new_doc(1);
    let v0: String = (0..n).map(|i| draft_paragraph(i, 0)).collect();
    apply_html(&doc, &v0);
    let v1: String = (0..n).map(|i| draft_paragraph(i, 1)).collect();
    let (_, update) = apply_html(&doc, &v1);
    assert_eq!(html(&doc), v1);
    let deleted: Vec<(u32, u32)> = decode(&update)
        .delete_set()
        .iter()
        .flat_map(|(_, ranges)| ranges.iter().map(|r| (r.start, r.end)).collect::<Vec<_>>())
        .collect();
    // The last paragraphs' changed runs ("Paragraph i: the quick fox "), each whole.
    let whole_runs = deleted
        .iter()
        .filter(|(start, end)| {
            (0..n).any(|i| end - start == format!("Paragraph {i}: the quick fox ").len() as u32)
        })
        .count();
    assert!(whole_runs >= 10, "{deleted:?}");
}

#[test]
fn a_rewrite_past_the_in_place_budget_replaces_only_changed_paragraphs() {
    // Two of every three paragraphs change: more changed texts than IN_PLACE_EDITS.
    // The first ones are edited in place; once the budget is spent, a changed
    // paragraph is replaced whole. Unchanged paragraphs are never touched, and a cursor
    // inside one stays where it was.
    let n = 3 * diff::IN_PLACE_EDITS;
    let changes = |i: usize| !i.is_multiple_of(3);
    let (doc, _, _) = new_doc(1);
    let v0: String = (0..n).map(|i| draft_paragraph(i, 0)).collect();
    apply_html(&doc, &v0);
    let base = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let before = children(&doc);
    let texts: Vec<BranchID> = (0..n as u32).map(|i| id(&text_of(&doc, i))).collect();
    let cursors: Vec<StickyIndex> = (0..n)
        .map(|i| sticky(&doc, &text_of(&doc, i as u32), 4))
        .collect();

    let v1: String = (0..n)
        .map(|i| draft_paragraph(i, changes(i) as usize))
        .collect();
    let (changed, update) = apply_html(&doc, &v1);
    assert!(changed);
    assert_eq!(html(&doc), v1);
    let after = children(&doc);
    assert_eq!(after.len(), n);
    let mut replaced = 0;
    for i in 0..n {
        if !changes(i) {
            // Untouched: the same paragraph, the same text, the cursor in place.
            assert_eq!(after[i], before[i], "paragraph {i}");
            assert_eq!(id(&text_of(&doc, i as u32)), texts[i], "paragraph {i}");
            assert_eq!(resolve(&doc, &cursors[i]), 4, "paragraph {i}");
        } else if after[i] != before[i] {
            replaced += 1;
        }
    }
    // The first changed paragraphs (in document order) keep their identity and, within
    // PRECISE_TEXT_EDITS, their cursors; those after the budget are new.
    assert_eq!(after[1], before[1]);
    assert_eq!(resolve(&doc, &cursors[1]), 4);
    assert!(after[n - 1] != before[n - 1]);
    let changed_count = (0..n).filter(|&i| changes(i)).count();
    assert!(
        replaced >= changed_count - diff::IN_PLACE_EDITS && replaced < changed_count,
        "{replaced} of {changed_count} replaced"
    );
    assert_round_trip_noop(&doc);

    // Another replica of the base converges on the update, and sees few events: one per
    // node edited in place, plus the body's.
    let (replica, _, body) = new_doc(2);
    replica.transact_mut().apply_update(decode(&base)).unwrap();
    let events = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = events.clone();
    yrs::DeepObservable::observe_deep(&body, "count", move |_, e: &yrs::types::Events| {
        counted.fetch_add(e.iter().count(), std::sync::atomic::Ordering::Relaxed);
    });
    replica
        .transact_mut()
        .apply_update(decode(&update))
        .unwrap();
    assert_eq!(html(&replica), v1);
    let events = events.load(std::sync::atomic::Ordering::Relaxed);
    assert!(events <= diff::IN_PLACE_EDITS + 1, "{events} events");
}

#[test]
fn a_small_change_keeps_character_precision() {
    // A few changed paragraphs: edited in place, the characters around the change keep
    // their items, so a cursor before the changed word and one after it both stay.
    let n = 50;
    let (doc, _, _) = new_doc(1);
    let v0: String = (0..n).map(|i| draft_paragraph(i, 0)).collect();
    apply_html(&doc, &v0);
    let before = children(&doc);
    let t = text_of(&doc, 7);
    let prefix = sticky(&doc, &t, 4);
    let after_word = "Paragraph 7: the quick f".len() as u32;
    let suffix = sticky(&doc, &t, after_word);
    let v1: String = (0..n)
        .map(|i| draft_paragraph(i, (i == 7 || i == 30) as usize))
        .collect();
    apply_html(&doc, &v1);
    assert_eq!(html(&doc), v1);
    assert_eq!(children(&doc), before);
    assert_eq!(resolve(&doc, &prefix), 4);
    // "quick" → "swift": same length, the cursor after the word is where it was.
    assert_eq!(resolve(&doc, &suffix), after_word);
}

#[test]
fn nodes_written_back_as_html_parse_to_the_same_nodes() {
    let html = "<h1 class=\"t\">Title &amp; more</h1><p>plain <strong>bold</strong> \
                <a href=\"https://x.org/?a=1&amp;b=&quot;2&quot;\">link</a></p>\
                <ul><li>one<br>two</li></ul><p><img src=\"/i.png\" alt=\"&lt;i&gt;\"></p>";
    let is_mark = |t: &str| matches!(t, "strong" | "em" | "a");
    let nodes = crate::import::parse_body_html(html, &is_mark);
    let again = crate::import::parse_body_html(&crate::import::body_nodes_html(&nodes), &is_mark);
    assert_eq!(nodes, again);
}

#[test]
fn written_back_html_nests_no_deeper_than_the_bound() {
    let deep = "<div>".repeat(5_000) + "x";
    let nodes = crate::import::parse_body_html(&deep, &|_| false);
    let html = crate::import::body_nodes_html(&nodes);
    let depth = html.matches("<div>").count();
    assert!(depth <= crate::render::MAX_DEPTH, "{depth} levels written");
}

// --- fitting host HTML to the editor schema --------------------------------------------------

/// What the server imports for a host's HTML: parsed, then fitted to the editor.
fn fitted(html_in: &str) -> Vec<BodyNode> {
    fit_editor(parse(html_in))
}

fn fitted_html(html_in: &str) -> String {
    body_nodes_html(&fitted(html_in))
}

/// Applies `html_in` as the server imports it: (changed, update).
fn apply_fitted(doc: &Doc, html_in: &str) -> (bool, Vec<u8>) {
    apply(doc, &fitted(html_in))
}

#[test]
fn inline_runs_in_block_containers_are_wrapped_in_paragraphs() {
    assert_eq!(
        fitted_html("<ul><li>text <b>x</b></li></ul><div>b</div><table><tr><td>c</td><th>h</th></tr></table>"),
        "<ul><li><p>text <b>x</b></p></li></ul><div><p>b</p></div>\
         <table><tbody><tr><td><p>c</p></td><th><p>h</p></th></tr></tbody></table>"
    );
    // Loose text in the body, blockquote, dd, figure; runs end at each block.
    assert_eq!(
        fitted_html("loose <em>text</em><blockquote>q<p>para</p>tail <img src=\"/i.png\"></blockquote><dl><dt>term</dt><dd>def</dd></dl>"),
        "<p>loose <em>text</em></p><blockquote><p>q</p><p>para</p><p>tail <img src=\"/i.png\"></p></blockquote>\
         <dl><dt>term</dt><dd><p>def</p></dd></dl>"
    );
    // A list item with text and a nested list: the text becomes the item's paragraph.
    assert_eq!(
        fitted_html("<ul><li>a<br>b<ul><li>c</li></ul></li></ul>"),
        "<ul><li><p>a<br>b</p><ul><li><p>c</p></li></ul></li></ul>"
    );
    // Inline elements that are nodes (not marks) are part of the run.
    assert_eq!(
        fitted_html("<td>x</td><div><abbr title=\"t\">ab</abbr> and <q>q</q></div>"),
        "<p>x</p><div><p><abbr title=\"t\">ab</abbr> and <q>q</q></p></div>"
    );
}

#[test]
fn containers_of_inline_content_and_fitted_html_are_left_alone() {
    for html_in in [
        "<p>plain <strong>bold</strong></p>",
        "<h2>Title</h2><pre>code\n  indented</pre><address>Street<br>Town</address>",
        "<dl><dt>term <em>x</em></dt></dl><table><caption>Cap</caption><tbody><tr><td><p>c</p></td></tr></tbody></table>",
        "<ul><li><p>a</p><ul><li><p>b</p></li></ul></li></ul><div><p>x</p><div><p>y</p></div></div>",
        "<figure><img src=\"/a.png\"><figcaption>Fig</figcaption></figure>",
        "<hr><p></p>",
    ] {
        let once = fitted_html(html_in);
        let nodes = parse(html_in);
        // Only the figure's image is loose inline content among these.
        if !html_in.starts_with("<figure>") {
            assert_eq!(fit_editor(nodes.clone()), nodes, "{html_in}");
        }
        assert_eq!(fitted_html(&once), once, "fitting is idempotent: {html_in}");
    }
    assert_eq!(
        fitted_html("<figure><img src=\"/a.png\"><figcaption>Fig</figcaption></figure>"),
        "<figure><p><img src=\"/a.png\"></p><figcaption>Fig</figcaption></figure>"
    );
}

#[test]
fn fitted_imports_round_trip_and_re_import_without_a_diff() {
    let host = "Intro <b>bold</b><ul><li>one</li><li>two <a href=\"https://x.org/\">link</a><ol><li>deep</li></ol></li></ul>\
                <div>b<p>para</p></div><table><tr><td colspan=\"2\">c</td></tr><tr><th>h</th><td><p>ok</p></td></tr></table>\
                <blockquote>quoted</blockquote><p>last</p>";
    let (doc, _, _) = new_doc(11);
    let (changed, _) = apply_fitted(&doc, host);
    assert!(changed);
    let rendered = html(&doc);
    assert_eq!(
        rendered,
        "<p>Intro <b>bold</b></p><ul><li><p>one</p></li><li><p>two <a href=\"https://x.org/\">link</a></p><ol><li><p>deep</p></li></ol></li></ul>\
         <div><p>b</p><p>para</p></div><table><tbody><tr><td colspan=\"2\"><p>c</p></td></tr><tr><th><p>h</p></th><td><p>ok</p></td></tr></tbody></table>\
         <blockquote><p>quoted</p></blockquote><p>last</p>"
    );
    // The rendering re-imports (plain or fitted) without a single change…
    assert_round_trip_noop(&doc);
    let (changed, update) = apply_fitted(&doc, &rendered);
    assert!(!changed);
    assert_eq!(update, empty_update());
    // …and so does the host's original, unfitted HTML.
    let (changed, update) = apply_fitted(&doc, host);
    assert!(!changed, "re-importing the host's HTML changed the draft");
    assert_eq!(update, empty_update());
    assert_eq!(html(&doc), rendered);
}

#[test]
fn a_fitted_re_import_touches_only_what_changed() {
    let host = "<ul><li>one</li><li>two</li></ul><div>b</div><table><tr><td>c</td></tr></table>";
    let (doc, _, _) = new_doc(12);
    apply_fitted(&doc, host);
    let before = children(&doc);
    // A cursor inside the list's second item.
    let two = {
        let txn = doc.transact();
        let body = txn.get_xml_fragment(ROOT_BODY).unwrap();
        let Some(XmlOut::Element(ul)) = body.get(&txn, 0) else {
            panic!()
        };
        let Some(XmlOut::Element(li)) = ul.get(&txn, 1) else {
            panic!()
        };
        let Some(XmlOut::Element(p)) = li.get(&txn, 0) else {
            panic!()
        };
        let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
            panic!()
        };
        t
    };
    let cursor = sticky(&doc, &two, 2);
    // The host changes only the cell, sending its own unfitted HTML again.
    let (changed, update) = apply_fitted(
        &doc,
        "<ul><li>one</li><li>two</li></ul><div>b</div><table><tr><td>cell</td></tr></table>",
    );
    assert!(changed);
    assert_eq!(children(&doc), before, "no top-level element was replaced");
    assert_eq!(resolve(&doc, &cursor), 2, "the cursor in the list stayed");
    let update = decode(&update);
    assert!(
        update.delete_set().is_empty(),
        "nothing deleted: \"c\" was extended"
    );
    assert!(html(&doc).ends_with("<td><p>cell</p></td></tr></tbody></table>"));
}

#[test]
fn the_editor_content_table_covers_the_default_whitelist() {
    let table = EditorContent::get();
    assert_eq!(table.root, Holds::Blocks);
    assert_eq!(table.wrapper, "p");
    let policy = chorus_whitelist::Policy::default_policy();
    let elements: std::collections::BTreeSet<&str> = policy.element_names();
    let known: std::collections::BTreeSet<&str> =
        table.elements.keys().map(String::as_str).collect();
    assert_eq!(
        known, elements,
        "proto/editor-content.json lists exactly the whitelist's elements"
    );
    for (tag, entry) in &table.elements {
        // A tag the parser turns into a mark is a mark in the editor, and only those.
        assert_eq!(
            entry.is == Placement::Mark,
            policy.allows_mark(tag, &[]),
            "<{tag}>: mark in the table iff a mark of the whitelist"
        );
        assert_eq!(
            entry.holds.is_none(),
            entry.is == Placement::Mark,
            "<{tag}>: holds"
        );
    }
    // The wrapper itself is a block that holds inline content.
    let p = table.elements["p"];
    assert_eq!((p.is, p.holds), (Placement::Block, Some(Holds::Inline)));
}

#[test]
fn a_host_mark_keeps_its_formatting_and_loses_only_attributes_the_mark_may_not_carry() {
    let whitelist = crate::Whitelist::default();
    let body = host_body(
        &whitelist,
        r#"<pre><code class="language-rust">fn main() {}</code></pre><p><i style="color:red">x</i><i>y</i> <a name="n" href="https://example.com" title="t">z</a></p>"#,
    );
    assert_eq!(
        body_nodes_html(&body),
        r#"<pre><code>fn main() {}</code></pre><p><i>xy</i> <a href="https://example.com" rel="noopener noreferrer" title="t">z</a></p>"#
    );
    // What the guard then sees needs no neutralising at all.
    struct Nobody;
    impl crate::Peer for Nobody {
        fn send(&self, _: bytes::Bytes) -> bool {
            true
        }
    }
    let mut room: crate::Room<Nobody> = crate::Room::new(Default::default());
    room.external_change(None, None, Some(&body)).unwrap();
    assert_eq!(room.take_neutralised().0.total(), 0);
}

#[test]
fn an_inline_element_holding_a_block_is_not_wrapped_so_its_rendering_reimports_unchanged() {
    let whitelist = crate::Whitelist::default();
    let body = host_body(
        &whitelist,
        "<label><form></form></label><label>plain</label>",
    );
    let html = body_nodes_html(&body);
    assert_eq!(
        html,
        "<label><form></form></label><p><label>plain</label></p>"
    );
    assert_eq!(host_body(&whitelist, &html), body, "a fixed point");
}

#[test]
fn a_form_the_parser_puts_inside_a_form_gives_way_to_its_content() {
    let whitelist = crate::Whitelist::default();
    // The first `</form>` leaves the div open inside the form; the forms after it
    // start inside that div, inside the first form.
    let body = host_body(
        &whitelist,
        "<form><div>a</form><form>b</form><form>c</form><form id=\"t\"></form><p>X</p></div>",
    );
    let html = body_nodes_html(&body);
    assert!(!html[1..].contains("<form"), "one form: {html}");
    assert_eq!(host_body(&whitelist, &html), body, "a fixed point: {html}");
}

/// A member that drops what it is sent (the room's relaying is not under test here).
struct Nobody;

impl crate::Peer for Nobody {
    fn send(&self, _: bytes::Bytes) -> bool {
        true
    }
}

/// A room whose app's editor is TipTap.
fn tiptap_room() -> crate::Room<Nobody> {
    let whitelist = crate::Whitelist::default()
        .with_profile(Arc::new(chorus_whitelist::EditorProfile::tiptap()));
    crate::Room::new(crate::RoomLimits {
        whitelist,
        ..crate::RoomLimits::default()
    })
}

#[test]
fn host_html_arrives_in_tiptaps_names_and_shaped_to_its_schema() {
    let whitelist = crate::Whitelist::default()
        .with_profile(Arc::new(chorus_whitelist::EditorProfile::tiptap()));
    let body = host_body(
        &whitelist,
        "<h2 style=\"text-align: center; color: red\">T</h2>\
         <p><strong>b</strong> <a href=\"https://example.com/\" onclick=\"x()\">l</a> <sub>s</sub></p>\
         <ul><li>one</li></ul>\
         <p>x<img src=\"https://example.com/a.png\" alt=\"a\">y</p>\
         <pre><code>fn main() {\n}</code></pre>\
         <div><p>in a div</p></div>\
         <table><tbody><tr><td></td><th>h</th></tr></tbody></table>",
    );
    let html = body_nodes_html(&body);
    assert_eq!(
        html,
        "<heading level=\"2\" textAlign=\"center\">T</heading>\
         <paragraph><bold>b</bold> <link href=\"https://example.com/\" rel=\"noopener noreferrer\">l</link> s</paragraph>\
         <bulletList><listItem><paragraph>one</paragraph></listItem></bulletList>\
         <paragraph>x</paragraph><image alt=\"a\" src=\"https://example.com/a.png\"></image><paragraph>y</paragraph>\
         <codeBlock>fn main() {\n}</codeBlock>\
         <paragraph>in a div</paragraph>\
         <table><tableRow><tableCell><paragraph></paragraph></tableCell>\
         <tableHeader><paragraph>h</paragraph></tableHeader></tableRow></table>"
    );
}

#[test]
fn a_tiptap_draft_takes_a_host_change_in_its_own_names_and_renders_it_back_unchanged() {
    let mut room = tiptap_room();
    let profile = chorus_whitelist::EditorProfile::tiptap();
    let whitelist = room.whitelist().clone();
    let host = "<h2 style=\"text-align: center\">Title</h2>\
                <p><strong>bold</strong> and <a href=\"https://example.com/\" rel=\"noopener noreferrer\" target=\"_blank\">a link</a></p>\
                <ol start=\"3\"><li><p>three</p></li></ol>\
                <pre class=\"language-rust\">fn main() {}</pre>";
    let body = host_body(&whitelist, host);
    let fields = room.external_change(None, None, Some(&body)).unwrap();
    assert_eq!(fields, vec!["body"]);
    // Stored in TipTap's fragment, with the types TipTap uses.
    let doc = room.doc();
    let txn = doc.transact();
    let fragment = txn.get_xml_fragment("default").expect("TipTap's fragment");
    let Some(yrs::XmlOut::Element(heading)) = fragment.get(&txn, 0) else {
        panic!("a heading first")
    };
    assert_eq!(heading.tag().as_ref(), "heading");
    assert_eq!(
        heading.get_attribute(&txn, "level"),
        Some(yrs::Out::Any(Any::from(2.0)))
    );
    assert!(
        txn.get_xml_fragment(ROOT_BODY).is_none(),
        "nothing written to `body`"
    );
    drop(txn);
    let (_, rendered) = crate::render::doc_html_as(doc, &profile);
    assert_eq!(rendered, host);
    // Its own rendering imports as no change at all.
    let again = host_body(&whitelist, &rendered);
    assert_eq!(
        room.external_change(None, None, Some(&again)).unwrap(),
        Vec::<&str>::new()
    );
}

// ---------------------------------------------------------------------------------------------
// One cleaning pass on the way in
// ---------------------------------------------------------------------------------------------

const XSS_CORPUS: &str = include_str!("../../../../proto/test-vectors/xss-html.txt");
const RICH_CORPUS: &str = include_str!("../../../../proto/test-vectors/rich-html.txt");

/// A host's HTML is cleaned once on its way in (`Whitelist::clean_html_for_import`),
/// not to the cleaner's fixed point, because the import parses the result itself:
/// on the hostile and the rich corpora one pass gives the very body the fixed point
/// gives, and nothing in it is left for the guard.
#[test]
fn one_cleaning_pass_imports_what_the_fixed_point_imports() {
    let whitelist = crate::Whitelist::default();
    let mut checked = 0;
    for (corpus, name) in [(XSS_CORPUS, "xss-html.txt"), (RICH_CORPUS, "rich-html.txt")] {
        for (line, _, html) in chorus_whitelist::test_vectors::vectors(corpus) {
            let one_pass = host_body(&whitelist, &html);
            let fixed = host_body_cleaned(&whitelist, &html, &|b| whitelist.clean_html(b));
            assert_eq!(one_pass, fixed, "{name}:{line}: {html:?}");

            let mut room: crate::Room<Nobody> = crate::Room::new(crate::RoomLimits::default());
            room.external_change(None, None, Some(&one_pass))
                .unwrap_or_else(|e| panic!("{name}:{line}: does not apply: {e}"));
            let (neutralised, rejected) = room.take_neutralised();
            assert_eq!(
                (neutralised.total(), rejected),
                (0, 0),
                "{name}:{line}: the guard removed what one pass kept: {neutralised:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} vectors");
}
