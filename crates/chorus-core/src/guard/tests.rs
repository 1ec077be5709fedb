use super::*;

mod crafted;
use super::engine::changed_nodes;
use super::nodes::ptr;
use crate::{ConnId, Peer, Room, RoomError, RoomLimits, Session};
use bytes::Bytes;
use chorus_auth::Mode;
use chorus_protocol::{ChorusMessage, Message, SyncMessage};
use chorus_whitelist::EditorProfile;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use yrs::types::text::YChange;
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, ArrayRef, Doc, GetString, Map, MapRef, Out, ReadTxn, Text, TextPrelim, TextRef,
    Transact, TransactionMut, Update, WriteTxn, Xml, XmlElementPrelim, XmlFragment, XmlFragmentRef,
    XmlOut, XmlTextPrelim,
};

#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<Vec<Bytes>>>);

impl Peer for Recorder {
    fn send(&self, frame: Bytes) -> bool {
        self.0.borrow_mut().push(frame);
        true
    }
}

impl Recorder {
    fn bytes(&self) -> Vec<u8> {
        self.0.borrow().iter().flat_map(|f| f.to_vec()).collect()
    }
    fn messages(&self) -> Vec<Message> {
        self.0
            .borrow()
            .iter()
            .map(|f| Message::decode(f).unwrap())
            .collect()
    }
    /// Apply every update this peer received to `doc`.
    fn apply_to(&self, doc: &Doc) {
        for m in self.messages() {
            if let Message::Sync(SyncMessage::Update(u)) | Message::Sync(SyncMessage::Step2(u)) = m
            {
                doc.transact_mut()
                    .apply_update(Update::decode_v1(&u).unwrap())
                    .unwrap();
            }
        }
    }
}

fn session(user: &str) -> Arc<Session> {
    Arc::new(Session {
        user_id: user.into(),
        name: user.into(),
        color: "#123456".into(),
        avatar: None,
        mode: Mode::Edit,
        extensions: true,
        expires_at: u64::MAX,
        credential: Default::default(),
    })
}

struct Fixture {
    room: Room<Recorder>,
    sender: Recorder,
    peer: Recorder,
    client: Doc,
    /// The body's fragment (the editor profile's).
    fragment: String,
}

fn fixture(mode: WhitelistMode) -> Fixture {
    fixture_for(Whitelist::new(Whitelist::default().policy, mode))
}

fn fixture_for(whitelist: Whitelist) -> Fixture {
    let fragment = whitelist.profile.fragment().to_owned();
    let limits = RoomLimits {
        whitelist,
        ..RoomLimits::default()
    };
    let mut room = Room::new(limits);
    let (sender, peer) = (Recorder::default(), Recorder::default());
    room.join(ConnId(1), session("a"), sender.clone());
    room.join(ConnId(2), session("b"), peer.clone());
    sender.0.borrow_mut().clear();
    peer.0.borrow_mut().clear();
    let client = Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(7),
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    });
    Fixture {
        room,
        sender,
        peer,
        client,
        fragment,
    }
}

impl Fixture {
    /// Make an edit on the client document and send it to the room as client 1.
    fn edit(
        &mut self,
        f: impl FnOnce(&mut TransactionMut, &XmlFragmentRef, &TextRef),
    ) -> Result<(), RoomError> {
        let body = self
            .client
            .get_or_insert_xml_fragment(self.fragment.as_str());
        let title = self.client.get_or_insert_text("title");
        let update = {
            let mut txn = self.client.transact_mut();
            f(&mut txn, &body, &title);
            txn.encode_update_v1()
        };
        self.send(&update)
    }

    fn send(&mut self, update: &[u8]) -> Result<(), RoomError> {
        self.room.receive(
            ConnId(1),
            Message::Sync(SyncMessage::Update(Bytes::copy_from_slice(update))),
        )
    }

    fn body(&self) -> String {
        let body = self
            .room
            .doc()
            .get_or_insert_xml_fragment(self.fragment.as_str());
        body.get_string(&self.room.doc().transact())
    }

    fn title(&self) -> String {
        let title = self.room.doc().get_or_insert_text("title");
        title.get_string(&self.room.doc().transact())
    }

    fn client_body(&self) -> String {
        let body = self
            .client
            .get_or_insert_xml_fragment(self.fragment.as_str());
        body.get_string(&self.client.transact())
    }

    /// The marker appears in no byte the peer got, the store gets, or the room holds.
    fn assert_gone(&mut self, marker: &str) {
        let m = marker.as_bytes();
        let contains = |hay: &[u8]| hay.windows(m.len()).any(|w| w == m);
        assert!(
            !contains(&self.peer.bytes()),
            "{marker} relayed to the peer"
        );
        let stored: Vec<u8> = self.room.take_unsaved().concat();
        assert!(!contains(&stored), "{marker} handed to the store");
        assert!(
            !contains(&self.room.encode_state()),
            "{marker} in the document"
        );
    }

    /// The sender, given what the room sent it, holds the same document as the room.
    fn assert_sender_converges(&self) {
        self.sender.apply_to(&self.client);
        let client = self
            .client
            .transact()
            .encode_state_as_update_v1(&Default::default());
        assert_eq!(client, self.room.encode_state(), "{}", self.client_body());
    }
}

/// The text node of the body's first paragraph.
fn first_text(txn: &TransactionMut, body: &XmlFragmentRef) -> yrs::XmlTextRef {
    let Some(XmlOut::Element(para)) = body.get(txn, 0) else {
        panic!("the body starts with a paragraph")
    };
    let Some(XmlOut::Text(text)) = para.get(txn, 0) else {
        panic!("the paragraph starts with text")
    };
    text
}

fn p(txn: &mut TransactionMut, parent: &XmlFragmentRef, text: &str) {
    let el = parent.push_back(txn, XmlElementPrelim::empty("p"));
    el.push_back(txn, XmlTextPrelim::new(text));
}

#[test]
fn disallowed_element_is_removed_with_its_subtree_and_the_rest_survives() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        p(txn, body, "kept");
        let script = body.push_back(txn, XmlElementPrelim::empty("script"));
        script.push_back(txn, XmlTextPrelim::new("alert('XSS-EL')"));
        let div = body.push_back(txn, XmlElementPrelim::empty("div"));
        let iframe = div.push_back(txn, XmlElementPrelim::empty("IFRAME"));
        iframe.insert_attribute(txn, "src", "https://XSS-NESTED.example");
    })
    .unwrap();
    assert_eq!(f.body(), "<p>kept</p><div></div>");
    f.assert_gone("XSS-EL");
    f.assert_gone("XSS-NESTED");
    f.assert_sender_converges();
    let (n, rejected) = f.room.take_neutralised();
    assert_eq!(n.count(Violation::Element), 2);
    assert_eq!(rejected, 0);
    // The opted-in sender is told; the peer only sees the cleaned update.
    assert!(f.sender.messages().iter().any(|m| matches!(
        m,
        Message::Chorus(ChorusMessage::Error { code, .. }) if code == "content-stripped"
    )));
    assert!(!f
        .peer
        .messages()
        .iter()
        .any(|m| matches!(m, Message::Chorus(_))));
}

#[test]
fn attributes_are_checked_by_name_and_value() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        let img = body.push_back(txn, XmlElementPrelim::empty("img"));
        img.insert_attribute(txn, "src", "https://example.com/a.png");
        img.insert_attribute(txn, "alt", "a picture");
        img.insert_attribute(txn, "onerror", "alert('XSS-ON')");
        let a = body.push_back(txn, XmlElementPrelim::empty("a"));
        a.insert_attribute(txn, "href", "java\tscript:alert('XSS-HREF')");
        a.insert_attribute(txn, "title", Any::Number(yrs::any::Number::Int(3)));
        a.insert_attribute(txn, "rel", Any::from(vec![Any::from("XSS-ARRAY")]));
    })
    .unwrap();
    f.assert_gone("XSS-ON");
    f.assert_gone("XSS-HREF");
    f.assert_gone("XSS-ARRAY");
    let body = f.body();
    assert!(body.contains("alt=\"a picture\""), "{body}");
    assert!(body.contains("src=\"https://example.com/a.png\""), "{body}");
    assert!(body.contains("title=\"3\""), "{body}");
    assert!(
        !body.contains("onerror") && !body.contains("href"),
        "{body}"
    );
    f.assert_sender_converges();
}

#[test]
fn a_later_update_setting_a_bad_attribute_on_an_existing_element_is_caught() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| p(txn, body, "hello")).unwrap();
    f.edit(|txn, body, _| {
        let Some(XmlOut::Element(el)) = body.get(txn, 0) else {
            panic!("paragraph expected")
        };
        el.insert_attribute(txn, "onclick", "XSS-LATER");
        el.insert_attribute(txn, "class", "intro");
    })
    .unwrap();
    f.assert_gone("XSS-LATER");
    assert_eq!(f.body(), "<p class=\"intro\">hello</p>");
    f.assert_sender_converges();
}

#[test]
fn style_keeps_only_allowed_declarations() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        let el = body.push_back(txn, XmlElementPrelim::empty("p"));
        el.insert_attribute(
            txn,
            "style",
            "color: red; background-image: url(javascript:XSS-STYLE); padding-left: 9px",
        );
        let el = body.push_back(txn, XmlElementPrelim::empty("p"));
        el.insert_attribute(txn, "style", "width: expression(XSS-EXPR)");
    })
    .unwrap();
    f.assert_gone("XSS-STYLE");
    f.assert_gone("XSS-EXPR");
    assert_eq!(f.body(), "<p style=\"color: red\"></p><p></p>");
    let (n, _) = f.room.take_neutralised();
    assert_eq!(n.count(Violation::Style), 2);
    f.assert_sender_converges();
}

fn attrs(pairs: &[(&str, Any)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (Arc::from(*k), v.clone()))
        .collect()
}

fn link(href: &str) -> Any {
    Any::from(HashMap::from([("href".to_string(), Any::from(href))]))
}

#[test]
fn marks_are_checked_when_inserted_and_when_applied_later() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        let para = body.push_back(txn, XmlElementPrelim::empty("p"));
        let text = para.push_back(txn, XmlTextPrelim::new(""));
        text.insert(txn, 0, "😀 bold ");
        text.insert_with_attributes(
            txn,
            2,
            "x",
            attrs(&[("strong", Any::from(HashMap::<String, Any>::new()))]),
        );
        text.insert_with_attributes(
            txn,
            text.len(txn),
            "evil",
            attrs(&[("a", link("javascript:alert('XSS-MARK')"))]),
        );
        text.insert_with_attributes(
            txn,
            text.len(txn),
            "suffix",
            attrs(&[("a--abcd1234", link("vbscript:XSS-SUFFIX"))]),
        );
        text.insert_with_attributes(
            txn,
            text.len(txn),
            "unknown",
            attrs(&[("script", Any::from("XSS-UNKNOWN"))]),
        );
    })
    .unwrap();
    for m in ["XSS-MARK", "XSS-SUFFIX", "XSS-UNKNOWN"] {
        f.assert_gone(m);
    }
    let body = f.body();
    assert!(body.contains("<strong>x</strong>"), "{body}");
    assert!(body.contains("evilsuffixunknown"), "{body}");
    f.assert_sender_converges();

    // A mark applied to existing text in a later update.
    f.edit(|txn, body, _| {
        let text = first_text(txn, body);
        text.format(txn, 0, 2, attrs(&[("a", link("javascript:XSS-LATERMARK"))]));
        text.format(txn, 3, 2, attrs(&[("em", Any::Bool(true))]));
    })
    .unwrap();
    f.assert_gone("XSS-LATERMARK");
    assert!(f.body().contains("<em>"), "{}", f.body());
    let (n, _) = f.room.take_neutralised();
    assert_eq!(n.count(Violation::Mark), 4);
    f.assert_sender_converges();
}

#[test]
fn title_is_plain_text() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, _, title| {
        title.insert(txn, 0, "Plan");
        title.insert_embed(
            txn,
            4,
            Any::from(HashMap::from([("x".to_string(), Any::from("XSS-EMBED"))])),
        );
        title.insert_with_attributes(txn, 5, "!", attrs(&[("strong", Any::from("XSS-FMT"))]));
        title.insert_embed(txn, 6, TextPrelim::new("XSS-NESTED-TEXT"));
    })
    .unwrap();
    for m in ["XSS-EMBED", "XSS-FMT", "XSS-NESTED-TEXT"] {
        f.assert_gone(m);
    }
    {
        let title = f.room.doc().get_or_insert_text("title");
        let txn = f.room.doc().transact();
        assert_eq!(title.get_string(&txn), "Plan!");
        assert!(title
            .diff(&txn, YChange::identity)
            .iter()
            .all(|d| d.attributes.is_none()));
    }
    f.assert_sender_converges();

    // A string embed looks like text to the text API but is one item: positions
    // cannot be trusted, so the title is emptied rather than guessed at.
    f.edit(|txn, _, title| {
        title.insert_embed(txn, 2, Any::from("XSS-STRING-EMBED"));
    })
    .unwrap();
    f.assert_gone("XSS-STRING-EMBED");
    f.assert_sender_converges();
}

#[test]
fn foreign_roots_are_emptied() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        p(txn, body, "kept");
        txn.get_or_insert_map("evil").insert(txn, "k", "XSS-MAP");
        let t = txn.get_or_insert_text("other");
        t.insert_with_attributes(txn, 0, "XSS-TEXT", attrs(&[("b", Any::from("XSS-TFMT"))]));
        txn.get_or_insert_array("arr").push_back(txn, "XSS-ARR");
        let frag = txn.get_or_insert_xml_fragment("body2");
        frag.push_back(txn, XmlTextPrelim::new("XSS-FRAG"));
    })
    .unwrap();
    f.assert_sender_converges();
    for m in ["XSS-MAP", "XSS-TEXT", "XSS-TFMT", "XSS-ARR", "XSS-FRAG"] {
        f.assert_gone(m);
    }
    assert_eq!(f.body(), "<p>kept</p>");
    let (n, _) = f.room.take_neutralised();
    assert_eq!(n.count(Violation::Root), 4);
}

#[test]
fn non_xml_children_and_attributes_on_text_and_root_are_removed() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        let para = body.push_back(txn, XmlElementPrelim::empty("p"));
        let text = para.push_back(txn, XmlTextPrelim::new("ok"));
        text.insert_attribute(txn, "onclick", "XSS-TEXTATTR");
        ArrayRef::from(ptr(body)).push_back(txn, "XSS-ANY");
        ArrayRef::from(ptr(&para)).push_back(txn, TextPrelim::new("XSS-YTEXT"));
        MapRef::from(ptr(body)).insert(txn, "onload", "XSS-ROOTATTR");
    })
    .unwrap();
    for m in ["XSS-TEXTATTR", "XSS-ANY", "XSS-YTEXT", "XSS-ROOTATTR"] {
        f.assert_gone(m);
    }
    assert_eq!(f.body(), "<p>ok</p>");
}

#[test]
fn rich_allowed_content_passes_untouched() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        let table = body.push_back(txn, XmlElementPrelim::empty("table"));
        let tbody = table.push_back(txn, XmlElementPrelim::empty("tbody"));
        for r in 0..3 {
            let tr = tbody.push_back(txn, XmlElementPrelim::empty("tr"));
            let td = tr.push_back(txn, XmlElementPrelim::empty("td"));
            td.insert_attribute(txn, "colspan", "2");
            td.push_back(txn, XmlTextPrelim::new(format!("cell {r}")));
        }
        let macro_el = body.push_back(txn, XmlElementPrelim::empty("div"));
        macro_el.insert_attribute(txn, "data-macro-name", "info");
        macro_el.insert_attribute(txn, "contenteditable", "false");
        let para = body.push_back(txn, XmlElementPrelim::empty("p"));
        para.insert_attribute(txn, "style", "text-align: center");
        let text = para.push_back(txn, XmlTextPrelim::new(""));
        text.insert_with_attributes(txn, 0, "link", attrs(&[("a", link("https://example.com"))]));
    })
    .unwrap();
    // Nothing changed: the sender gets nothing back, the room holds exactly the client's state.
    assert!(f.sender.messages().is_empty());
    assert_eq!(f.room.take_neutralised().0.total(), 0);
    assert_eq!(
        f.room.encode_state(),
        f.client
            .transact()
            .encode_state_as_update_v1(&Default::default())
    );
}

#[test]
fn deep_nesting_is_walked_without_recursion() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        let mut el = body.push_back(txn, XmlElementPrelim::empty("div"));
        for _ in 0..20_000 {
            el = el.push_back(txn, XmlElementPrelim::empty("div"));
        }
        el.push_back(txn, XmlElementPrelim::empty("script"));
    })
    .unwrap();
    assert_eq!(f.room.take_neutralised().0.count(Violation::Element), 1);
}

#[test]
fn reject_mode_refuses_everything_the_update_inserted() {
    let mut f = fixture(WhitelistMode::Reject);
    f.edit(|txn, body, _| p(txn, body, "first")).unwrap();
    f.peer.0.borrow_mut().clear();
    let err = f
        .edit(|txn, body, title| {
            title.insert(txn, 0, "XSS-TITLE-OK");
            p(txn, body, "XSS-ALLOWED-PART");
            let script = body.push_back(txn, XmlElementPrelim::empty("script"));
            script.push_back(txn, XmlTextPrelim::new("XSS-SCRIPT"));
        })
        .unwrap_err();
    assert_eq!(err, RoomError::ContentRejected);
    for m in ["XSS-TITLE-OK", "XSS-ALLOWED-PART", "XSS-SCRIPT"] {
        f.assert_gone(m);
    }
    assert_eq!(f.body(), "<p>first</p>");
    assert_eq!(f.room.take_neutralised().1, 1);
}

#[test]
fn reject_mode_refuses_a_string_embed_without_poisoning_the_room() {
    // An empty text, then a string embed in it: the delta shows the embed as 21
    // characters of text, while it occupies one position.
    let mut f = fixture(WhitelistMode::Reject);
    f.edit(|txn, body, _| {
        body.push_back(txn, XmlTextPrelim::new(""));
    })
    .unwrap();
    let err = f
        .edit(|txn, body, _| {
            let Some(XmlOut::Text(text)) = body.get(txn, 0) else {
                panic!("the body starts with a text")
            };
            text.insert_embed(txn, 0, Any::from("https://XSS-EMBED.org"));
        })
        .unwrap_err();
    assert_eq!(err, RoomError::ContentRejected);
    assert!(!f.room.is_poisoned());
    f.assert_gone("XSS-EMBED");
    // The room goes on taking edits.
    f.edit(|txn, body, _| p(txn, body, "later")).unwrap();
    assert!(f.body().ends_with("<p>later</p>"), "{}", f.body());
}

#[test]
fn off_mode_checks_nothing() {
    let mut f = fixture(WhitelistMode::Off);
    f.edit(|txn, body, _| {
        body.push_back(txn, XmlElementPrelim::empty("script"));
    })
    .unwrap();
    assert_eq!(f.body(), "<script></script>");
}

#[test]
fn a_dependency_gap_cannot_smuggle_content() {
    let mut f = fixture(WhitelistMode::Strip);
    let body = f.client.get_or_insert_xml_fragment("body");
    // First update: never sent. Second: depends on it and carries a script.
    {
        let mut txn = f.client.transact_mut();
        p(&mut txn, &body, "unsent");
    }
    let update = {
        let mut txn = f.client.transact_mut();
        let Some(XmlOut::Element(para)) = body.get(&txn, 0) else {
            panic!()
        };
        let s = para.push_back(&mut txn, XmlElementPrelim::empty("script"));
        s.push_back(&mut txn, XmlTextPrelim::new("XSS-GAP"));
        txn.encode_update_v1()
    };
    assert_eq!(f.send(&update), Err(RoomError::MissingDependencies));
    f.assert_gone("XSS-GAP");
}

#[test]
fn stored_content_is_checked_on_load_and_the_fix_is_stored() {
    // A document stored before the policy refused <script>.
    let old = Doc::with_client_id(9);
    let body = old.get_or_insert_xml_fragment("body");
    let stored = {
        let mut txn = old.transact_mut();
        p(&mut txn, &body, "old");
        body.push_back(&mut txn, XmlElementPrelim::empty("script"))
            .push_back(&mut txn, XmlTextPrelim::new("XSS-STORED"));
        drop(txn);
        old.transact()
            .encode_state_as_update_v1(&Default::default())
    };
    let mut room: Room<Recorder> =
        Room::from_stored(RoomLimits::default(), Some(&stored), []).unwrap();
    let body = room.doc().get_or_insert_xml_fragment("body");
    assert_eq!(body.get_string(&room.doc().transact()), "<p>old</p>");
    let fix = room.take_unsaved();
    assert_eq!(fix.len(), 1, "the neutralising update goes to the store");
    // Snapshot + fix reload to the clean document, with nothing left to fix.
    let mut again: Room<Recorder> =
        Room::from_stored(RoomLimits::default(), Some(&stored), [fix[0].as_slice()]).unwrap();
    assert!(again.take_unsaved().is_empty());
}

#[test]
fn rendered_html_is_cleaned_with_the_same_policy() {
    // A document built without the guard (as if stored before a policy change and
    // rendered before the load-time scan): the HTML render path still cleans it.
    let doc = Doc::new();
    let body = doc.get_or_insert_xml_fragment("body");
    {
        let mut txn = doc.transact_mut();
        p(&mut txn, &body, "text");
        let img = body.push_back(&mut txn, XmlElementPrelim::empty("img"));
        img.insert_attribute(&mut txn, "src", "javascript:alert('XSS-RENDER-SRC')");
        img.insert_attribute(&mut txn, "onerror", "alert('XSS-RENDER-ON')");
        body.push_back(&mut txn, XmlElementPrelim::empty("script"))
            .push_back(&mut txn, XmlTextPrelim::new("XSS-RENDER-SCRIPT"));
    }
    let (_, html) = crate::render::doc_html(&doc);
    assert!(
        html.contains("XSS-RENDER-SCRIPT"),
        "the raw render holds it: {html}"
    );
    let clean = Whitelist::default().clean_html(&html);
    assert!(!clean.contains("XSS-RENDER"), "{clean}");
    assert!(clean.starts_with("<p>text</p><img"), "{clean}");
    let off = Whitelist::new(Whitelist::default().policy, WhitelistMode::Off);
    assert_eq!(off.clean_html(&html), html);
}

#[test]
fn json_values_hidden_in_text_nodes_are_removed() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| p(txn, body, "hello")).unwrap();
    f.edit(|txn, body, _| {
        let text = first_text(txn, body);
        ArrayRef::from(ptr(&text)).insert(txn, 2, "XSS-ANY-IN-TEXT");
    })
    .unwrap();
    f.assert_gone("XSS-ANY-IN-TEXT");
    f.edit(|txn, _, title| {
        title.insert(txn, 0, "T");
        ArrayRef::from(ptr(title)).insert(txn, 1, "XSS-ANY-IN-TITLE");
    })
    .unwrap();
    f.assert_gone("XSS-ANY-IN-TITLE");
}

/// The update profile lets the guard trust new texts when the update's bytes show
/// nothing but strings, allowed marks and nodes. A node inside a text must still be
/// found: the walk then reaches fewer nodes than the update carries.
#[test]
fn a_node_hidden_inside_a_text_of_a_clean_looking_paste_is_removed() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| {
        let para = body.push_back(txn, XmlElementPrelim::empty("p"));
        para.insert_attribute(txn, "class", "intro");
        let text = para.push_back(txn, XmlTextPrelim::new("kept words"));
        text.format(txn, 0, 4, attrs(&[("strong", Any::Bool(true))]));
        // An element of an allowed kind, but inside the text, where no node may be.
        let hidden = text.insert_embed(txn, 5, XmlElementPrelim::empty("span"));
        hidden.push_back(txn, XmlTextPrelim::new("XSS-NODE-IN-NEW-TEXT"));
    })
    .unwrap();
    f.assert_gone("XSS-NODE-IN-NEW-TEXT");
    assert!(f.body().contains("kept"), "{}", f.body());
    assert!(f.body().contains("intro"), "{}", f.body());
    f.assert_sender_converges();
}

#[test]
fn a_node_inserted_into_an_existing_text_is_removed() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| p(txn, body, "hello")).unwrap();
    f.edit(|txn, body, _| {
        let text = first_text(txn, body);
        text.insert(txn, 5, " world");
        text.insert_embed(txn, 2, XmlTextPrelim::new("XSS-TEXT-IN-OLD-TEXT"));
    })
    .unwrap();
    f.assert_gone("XSS-TEXT-IN-OLD-TEXT");
    assert!(f.body().contains("hello world"), "{}", f.body());
    f.assert_sender_converges();
}

/// Keystrokes take the fast path (their bytes hold only strings); what they type must
/// still arrive, and a typed mark that the policy refuses must still go.
#[test]
fn typing_and_marking_in_strip_mode_keeps_allowed_and_drops_refused() {
    let mut f = fixture(WhitelistMode::Strip);
    f.edit(|txn, body, _| p(txn, body, "abc")).unwrap();
    for ch in ["d", "e", "f"] {
        f.edit(|txn, body, _| {
            let t = first_text(txn, body);
            let end = t.len(txn);
            t.insert(txn, end, ch);
        })
        .unwrap();
    }
    f.edit(|txn, body, _| {
        first_text(txn, body).format(txn, 0, 2, attrs(&[("em", Any::Bool(true))]));
    })
    .unwrap();
    f.edit(|txn, body, _| {
        first_text(txn, body).format(
            txn,
            2,
            2,
            attrs(&[("blink", Any::from("XSS-REFUSED-MARK"))]),
        );
    })
    .unwrap();
    f.assert_gone("XSS-REFUSED-MARK");
    assert_eq!(f.body(), "<p><em>ab</em>cdef</p>");
    f.assert_sender_converges();
}

/// A yrs map of mark attributes, as y-prosemirror writes a mark's `attrs`.
fn mark_attrs(pairs: &[(&str, &str)]) -> Any {
    Any::from(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Any::from(*v)))
            .collect::<std::collections::HashMap<String, Any>>(),
    )
}

#[test]
fn under_the_tiptap_profile_what_tiptap_writes_stays_and_what_html_forbids_goes() {
    let whitelist = Whitelist::new(Whitelist::default().policy, WhitelistMode::Strip)
        .with_profile(Arc::new(EditorProfile::tiptap()));
    let mut f = fixture_for(whitelist);
    assert_eq!(f.fragment, "default");
    f.edit(|txn, body, _| {
        let heading = body.push_back(txn, XmlElementPrelim::empty("heading"));
        heading.insert_attribute(txn, "level", Any::from(2));
        heading.insert_attribute(txn, "textAlign", "center");
        heading.push_back(txn, XmlTextPrelim::new("Title"));
        let para = body.push_back(txn, XmlElementPrelim::empty("paragraph"));
        para.insert_attribute(txn, "onclick", "alert('XSS-ATTR')");
        let text = para.push_back(txn, XmlTextPrelim::new("bold link"));
        text.format(txn, 0, 4, attrs(&[("bold", mark_attrs(&[]))]));
        let evil = mark_attrs(&[("href", "javascript:alert('XSS-HREF')")]);
        text.format(txn, 5, 4, attrs(&[("link", evil)]));
        let script = body.push_back(txn, XmlElementPrelim::empty("script"));
        script.push_back(txn, XmlTextPrelim::new("XSS-EL"));
        // HTML's own name means nothing to this editor.
        body.push_back(txn, XmlElementPrelim::empty("p"));
        let big = body.push_back(txn, XmlElementPrelim::empty("heading"));
        big.insert_attribute(txn, "level", Any::from(9));
    })
    .unwrap();
    let (_, html) = crate::render::doc_html_as(f.room.doc(), &EditorProfile::tiptap());
    assert_eq!(
        html,
        "<h2 style=\"text-align: center\">Title</h2><p><strong>bold</strong> link</p><h1></h1>"
    );
    assert!(f.body().starts_with("<heading"), "{}", f.body());
    f.assert_gone("XSS-ATTR");
    f.assert_gone("XSS-HREF");
    f.assert_gone("XSS-EL");
    f.assert_sender_converges();
}

/// Strip mode judges the nodes [`changed_nodes`] reads from the transaction; if yrs
/// built `changed_parent_types` otherwise, every ancestor would count as changed (each
/// keystroke walking the whole body). This pins the reading to exact.
#[test]
fn the_changed_nodes_of_a_transaction_are_read_exactly_from_yrs() {
    let doc = Doc::new();
    let title = doc.get_or_insert_text(crate::ROOT_TITLE);
    let body = doc.get_or_insert_xml_fragment(crate::ROOT_BODY);
    let (item_text, second, second_text) = {
        let mut txn = doc.transact_mut();
        let list = body.push_back(&mut txn, XmlElementPrelim::empty("ul"));
        let item = list.push_back(&mut txn, XmlElementPrelim::empty("li"));
        let para = item.push_back(&mut txn, XmlElementPrelim::empty("p"));
        let item_text = para.push_back(&mut txn, XmlTextPrelim::new("ab"));
        let second = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
        let second_text = second.push_back(&mut txn, XmlTextPrelim::new("cd"));
        (item_text, second, second_text)
    };
    fn sorted(mut ids: Vec<yrs::BranchID>) -> Vec<yrs::BranchID> {
        ids.sort_by_key(|id| format!("{id:?}"));
        ids
    }
    // Per transaction: the changed nodes' ids, sorted, and whether they were exact.
    type Seen = Vec<(Vec<yrs::BranchID>, bool)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = seen.clone();
    let (body_ptr, title_ptr) = (ptr(&body), ptr(&title));
    doc.observe_after_transaction("test", move |txn| {
        let (changed, exact) = changed_nodes(txn, body_ptr, title_ptr);
        let ids = sorted(changed.iter().map(|b| b.id()).collect());
        record.lock().unwrap().push((ids, exact));
    })
    .unwrap();

    // A keystroke three levels down: only its text changed.
    item_text.insert(&mut doc.transact_mut(), 1, "x");
    // An attribute, a character and a new paragraph: three nodes, each once.
    {
        let mut txn = doc.transact_mut();
        second.insert_attribute(&mut txn, "class", "note");
        second_text.insert(&mut txn, 0, "y");
        body.push_back(&mut txn, XmlElementPrelim::empty("p"));
    }
    // The title and a foreign root have checks of their own.
    {
        let mut txn = doc.transact_mut();
        title.insert(&mut txn, 0, "T");
        txn.get_or_insert_map("elsewhere").insert(&mut txn, "k", 1);
    }

    let seen = seen.lock().unwrap();
    // (Registering the observer commits an empty transaction of its own first.)
    assert!(seen.len() >= 3, "{seen:?}");
    let seen = &seen[seen.len() - 3..];
    assert_eq!(seen[0], (vec![ptr(&item_text).id()], true));
    assert_eq!(
        seen[1],
        (
            sorted(vec![
                ptr(&second).id(),
                ptr(&second_text).id(),
                body_ptr.id()
            ]),
            true
        )
    );
    assert_eq!(seen[2], (vec![], true));
}
