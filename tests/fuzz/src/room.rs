//! `Room::receive`: update apply and the whitelist guard.
//!
//! Two members share a room: the *editor* sends what the fuzzer made, the
//! *observer* only listens. Whatever the editor sends, the room must not panic, and
//! unless a hostile update made yrs panic (caught: the room is then *poisoned* and
//! the server drops it without storing anything), four things hold after every
//! message:
//!
//! - the [`oracle`] (blocks read with this crate's own decoder, judged against the
//!   policy, no guard code) finds nothing in the room's live document, in the
//!   observer's, nor in the document the store's records load into;
//! - the observer, applying what it was sent, holds exactly the room's document;
//! - the store's records (`take_unsaved`, in order) load into exactly that
//!   document too: nothing the others saw is missing from disk;
//! - that stored document, loaded and scanned in full against the policy, holds
//!   nothing to neutralise: the guard's per-update checks let nothing through that
//!   a full scan would catch.
//!
//! Every check runs; a failure reports all that failed.
//!
//! [`room_receive_raw`] sends raw bytes (as a frame, or as an update payload);
//! [`room_receive_structured`] builds real yrs updates from a script of edits with
//! tag, attribute, mark and value names drawn from both sides of the policy, so the
//! guard's paths are reached far more often than by random bytes. In strip mode the
//! editor, applying what the room sent back, must converge with the room as well.

use crate::oracle;
use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use chorus_auth::Mode;
use chorus_core::{ConnId, Peer, Room, RoomLimits, Session, Whitelist, WhitelistMode};
use chorus_protocol::{Message, SyncMessage};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::{
    Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, TransactionMut, Update, WriteTxn,
    Xml, XmlElementPrelim, XmlFragment, XmlOut, XmlTextPrelim,
};

const EDITOR: ConnId = ConnId(1);
const OBSERVER: ConnId = ConnId(2);

/// A member that keeps what it is sent.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Rc<RefCell<Vec<Bytes>>>);

impl Peer for Recorder {
    fn send(&self, frame: Bytes) -> bool {
        self.0.borrow_mut().push(frame);
        true
    }
}

impl Recorder {
    /// Apply every update sent so far to `doc` (and forget them).
    fn apply_to(&self, doc: &Doc) {
        for frame in self.0.borrow_mut().drain(..) {
            let message = Message::decode(&frame).expect("the room sends frames that decode");
            if let Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) = message {
                let update = Update::decode_v1(&u).unwrap_or_else(|e| {
                    panic!("the room sent an update that does not decode ({e}): {u:?}")
                });
                let mut txn = doc.transact_mut();
                txn.apply_update(update)
                    .expect("the room sends updates that apply");
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

fn client_doc(client_id: u64) -> Doc {
    Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(client_id),
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    })
}

/// A document's content as a comparable value: title and body as JSON (element
/// attributes as an object, so their order does not count: it follows a hash map's
/// and differs between replicas) and the state vector.
fn content(doc: &Doc) -> (serde_json::Value, StateVector) {
    let json = chorus_core::render::doc_json(doc);
    let sv = doc.transact().state_vector();
    (json, sv)
}

pub(crate) struct Fixture {
    pub(crate) room: Room<Recorder>,
    pub(crate) editor: Recorder,
    observer: Recorder,
    observed: Doc,
    stored: Vec<Vec<u8>>,
}

impl Fixture {
    pub(crate) fn new(mode: WhitelistMode) -> Fixture {
        let limits = RoomLimits {
            whitelist: Whitelist::new(Whitelist::default().policy, mode),
            ..RoomLimits::default()
        };
        let mut room = Room::new(limits);
        let (editor, observer) = (Recorder::default(), Recorder::default());
        room.join(EDITOR, session("editor"), editor.clone());
        room.join(OBSERVER, session("observer"), observer.clone());
        Fixture {
            room,
            editor,
            observer,
            observed: client_doc(2),
            stored: Vec::new(),
        }
    }

    /// Hand `message` to the room from the editor; false if the room refused it
    /// (the server then closes the connection) or is poisoned.
    pub(crate) fn send(&mut self, message: Message) -> bool {
        // `CHORUS_FUZZ_BYTES=1`: print each update the editor sends (to read a crash).
        if std::env::var_os("CHORUS_FUZZ_BYTES").is_some() {
            if let Message::Sync(SyncMessage::Update(u) | SyncMessage::Step2(u)) = &message {
                eprintln!("update sent: {:?}", u.to_vec());
            }
        }
        let refused = self.room.receive(EDITOR, message).is_err();
        self.stored.extend(self.room.take_unsaved());
        if self.room.is_poisoned() {
            return false;
        }
        self.check();
        !refused
    }

    /// The editor was refused (the server closed its connection): it connects again.
    pub(crate) fn rejoin_editor(&mut self) {
        self.room.leave(EDITOR);
        self.editor.0.borrow_mut().clear();
        self.room
            .join(EDITOR, session("editor"), self.editor.clone());
    }

    /// Everything that must hold after a message; all of it is checked, and every
    /// failure is reported at once.
    fn check(&mut self) {
        let mut failures = Vec::new();
        let whitelist = self.room.whitelist().clone();
        let live = content(self.room.doc());
        let mut judge = |what: &str, doc: &Doc| {
            let found = open_filtered(oracle::violations(doc, &whitelist));
            if !found.is_empty() {
                failures.push(format!(
                    "the oracle found in {what} what the policy refuses:\n  {}",
                    found.join("\n  ")
                ));
            }
        };
        judge("the room's document", self.room.doc());
        self.observer.apply_to(&self.observed);
        judge("the observer's document", &self.observed);
        if content(&self.observed) != live {
            failures.push("the observer diverged from the room".to_owned());
        }
        let records = self.stored.iter().map(Vec::as_slice);
        let mut reloaded: Room<Recorder> = Room::from_stored(
            RoomLimits {
                whitelist: whitelist.clone(),
                ..RoomLimits::default()
            },
            None,
            records,
        )
        .expect("the stored records load");
        if content(reloaded.doc()) != live {
            failures.push("the store's records do not make the room's document".to_owned());
        }
        let (neutralised, _) = reloaded.take_neutralised();
        if neutralised.total() != 0 {
            failures.push(format!(
                "a full scan of the stored document found what the guard let in: {neutralised:?}"
            ));
        }
        let found = open_filtered(oracle::violations(reloaded.doc(), &whitelist));
        if !found.is_empty() {
            failures.push(format!(
                "the oracle found in the reloaded document what the policy refuses:\n  {}",
                found.join("\n  ")
            ));
        }
        assert!(
            failures.is_empty(),
            "{}\nthe room's document: {}",
            failures.join("\n"),
            live.0
        );
    }
}

/// The oracle's findings less those reported and open, if asked ([`crate::skip_open`]).
fn open_filtered(found: Vec<String>) -> Vec<String> {
    if !crate::skip_open() {
        return found;
    }
    found
        .into_iter()
        .filter(|f| !f.contains(oracle::STALE_PIECE))
        .collect()
}

/// Raw bytes from the editor: the first byte picks a full frame, a sync step 2, an
/// update, or several updates (each prefixed by one length byte).
pub fn room_receive_raw(data: &[u8]) {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let mut fixture = Fixture::new(if how & 0x80 == 0 {
        WhitelistMode::Strip
    } else {
        WhitelistMode::Reject
    });
    let payload = |b: &[u8]| Bytes::copy_from_slice(b);
    match how % 4 {
        0 => {
            if let Ok(message) = Message::decode(&payload(rest)) {
                fixture.send(message);
            }
        }
        1 => {
            fixture.send(Message::Sync(SyncMessage::Step2(payload(rest))));
        }
        2 => {
            fixture.send(Message::Sync(SyncMessage::Update(payload(rest))));
        }
        _ => {
            let mut rest = rest;
            while let Some((&len, tail)) = rest.split_first() {
                let (update, tail) = tail.split_at((len as usize).min(tail.len()));
                if !fixture.send(Message::Sync(SyncMessage::Update(payload(update)))) {
                    break;
                }
                rest = tail;
            }
        }
    }
}

/// Names from both sides of the default policy (and the names Yjs editors use).
pub(crate) const NAMES: &[&str] = &[
    "p",
    "h1",
    "h2",
    "ul",
    "ol",
    "li",
    "a",
    "img",
    "table",
    "tr",
    "td",
    "pre",
    "code",
    "blockquote",
    "div",
    "span",
    "br",
    "strong",
    "em",
    "b",
    "i",
    "u",
    "s",
    "sub",
    "sup",
    "script",
    "style",
    "iframe",
    "object",
    "svg",
    "math",
    "form",
    "input",
    "IFRAME",
    "paragraph",
    "heading",
    "bold",
    "link",
    "href",
    "src",
    "alt",
    "title",
    "class",
    "id",
    "style",
    "onclick",
    "onerror",
    "ONLOAD",
    "data-x",
    "xlink:href",
    "colspan",
    "width",
    "target",
    "rel",
    "level",
    "",
];

/// Values from both sides of the policy.
pub(crate) const VALUES: &[&str] = &[
    "https://example.com/a",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:x",
    " javascript:x",
    "data:text/html,<script>x</script>",
    "vbscript:x",
    "mailto:a@b.c",
    "/relative",
    "#top",
    "color: red",
    "background-image: url(javascript:x)",
    "width: expression(x)",
    "x\" onclick=\"y",
    "<script>x</script>",
    "2",
    "",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

impl Name {
    fn get(&self) -> String {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
            Name::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Value {
    Known(u8),
    Other(String),
    Number(i32),
    Bool(bool),
    Null,
    List(Vec<u8>),
    Object(Vec<(Name, u8)>),
}

impl Value {
    fn get(&self) -> Any {
        let known = |i: &u8| VALUES[*i as usize % VALUES.len()];
        match self {
            Value::Known(i) => Any::from(known(i)),
            Value::Other(s) => Any::from(s.as_str()),
            Value::Number(n) => Any::from(*n as f64),
            Value::Bool(b) => Any::Bool(*b),
            Value::Null => Any::Null,
            Value::List(items) => Any::from(
                items
                    .iter()
                    .map(|i| Any::from(known(i)))
                    .collect::<Vec<_>>(),
            ),
            Value::Object(entries) => Any::from(
                entries
                    .iter()
                    .map(|(k, v)| (k.get(), Any::from(known(v))))
                    .collect::<HashMap<String, Any>>(),
            ),
        }
    }
}

/// Marks as yrs formatting attributes (Chorus keeps a mark's HTML attributes in
/// an object value, `true` when it has none).
fn marks(marks: &[(Name, Value)]) -> Attrs {
    marks
        .iter()
        .map(|(name, value)| (Arc::from(name.get().as_str()), value.get()))
        .collect()
}

/// Text without astral characters: a UTF-16 offset inside a surrogate pair is a
/// client-side yrs panic, not what this target is after.
fn bmp(text: &str) -> String {
    text.chars().filter(|c| (*c as u32) < 0x1_0000).collect()
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Element {
        at: u16,
        index: u8,
        tag: Name,
        attrs: Vec<(Name, Value)>,
    },
    NewText {
        at: u16,
        index: u8,
        text: String,
    },
    Type {
        at: u16,
        offset: u8,
        text: String,
        marks: Vec<(Name, Value)>,
    },
    Format {
        at: u16,
        offset: u8,
        len: u8,
        marks: Vec<(Name, Value)>,
    },
    Embed {
        at: u16,
        offset: u8,
        value: Value,
    },
    SetAttribute {
        at: u16,
        name: Name,
        value: Value,
    },
    RemoveAttribute {
        at: u16,
        name: Name,
    },
    Remove {
        at: u16,
        index: u8,
        len: u8,
    },
    Title {
        offset: u8,
        text: String,
        marks: Vec<(Name, Value)>,
    },
    TitleRemove {
        offset: u8,
        len: u8,
    },
    OtherRoot {
        key: Name,
        value: Value,
        as_array: bool,
    },
}

#[derive(Arbitrary, Debug)]
enum Delivery {
    Update,
    Step2,
    /// The step as two updates, the second sent first (it waits as pending).
    Reversed,
}

#[derive(Arbitrary, Debug)]
struct Step {
    edits: Vec<Edit>,
    delivery: Delivery,
}

#[derive(Arbitrary, Debug)]
struct Script {
    reject_mode: bool,
    steps: Vec<Step>,
}

/// Every node of the client's body, in document order.
enum Node {
    Element(yrs::XmlElementRef),
    Text(yrs::XmlTextRef),
}

fn nodes<T: ReadTxn>(txn: &T, parent: &impl XmlFragment, out: &mut Vec<Node>) {
    for child in parent.children(txn) {
        match child {
            XmlOut::Element(el) => {
                out.push(Node::Element(el.clone()));
                nodes(txn, &el, out);
            }
            XmlOut::Text(text) => out.push(Node::Text(text)),
            XmlOut::Fragment(_) => {}
        }
    }
}

fn apply(txn: &mut TransactionMut, edit: &Edit) {
    let body = txn.get_or_insert_xml_fragment("body");
    let title = txn.get_or_insert_text("title");
    let mut all = Vec::new();
    nodes(txn, &body, &mut all);
    // `at` 0 is the body itself, for the edits that take a parent.
    let pick = |at: u16| -> Option<&Node> {
        match at as usize % (all.len() + 1) {
            0 => None,
            i => all.get(i - 1),
        }
    };
    let clamp = |i: u8, len: u32| i as u32 % (len + 1);
    match edit {
        Edit::Element {
            at,
            index,
            tag,
            attrs,
        } => {
            let tag = tag.get();
            if tag.is_empty() {
                return;
            }
            let el = match pick(*at) {
                Some(Node::Element(parent)) => {
                    let i = clamp(*index, parent.len(txn));
                    parent.insert(txn, i, XmlElementPrelim::empty(tag.as_str()))
                }
                None => {
                    let i = clamp(*index, body.len(txn));
                    body.insert(txn, i, XmlElementPrelim::empty(tag.as_str()))
                }
                Some(Node::Text(_)) => return,
            };
            for (name, value) in attrs {
                el.insert_attribute(txn, name.get(), value.get());
            }
        }
        Edit::NewText { at, index, text } => {
            let text = bmp(text);
            match pick(*at) {
                Some(Node::Element(parent)) => {
                    let i = clamp(*index, parent.len(txn));
                    parent.insert(txn, i, XmlTextPrelim::new(text));
                }
                None => {
                    let i = clamp(*index, body.len(txn));
                    body.insert(txn, i, XmlTextPrelim::new(text));
                }
                Some(Node::Text(_)) => {}
            }
        }
        Edit::Type {
            at,
            offset,
            text,
            marks: m,
        } => {
            if let Some(Node::Text(t)) = pick(*at) {
                let i = clamp(*offset, t.len(txn));
                let text = bmp(text);
                if m.is_empty() {
                    t.insert(txn, i, &text);
                } else {
                    t.insert_with_attributes(txn, i, &text, marks(m));
                }
            }
        }
        Edit::Format {
            at,
            offset,
            len,
            marks: m,
        } => {
            if let Some(Node::Text(t)) = pick(*at) {
                let total = t.len(txn);
                let i = clamp(*offset, total);
                let n = (*len as u32).min(total - i);
                t.format(txn, i, n, marks(m));
            }
        }
        Edit::Embed { at, offset, value } => {
            if let Some(Node::Text(t)) = pick(*at) {
                let i = clamp(*offset, t.len(txn));
                t.insert_embed(txn, i, value.get());
            }
        }
        Edit::SetAttribute { at, name, value } => {
            if let Some(Node::Element(el)) = pick(*at) {
                el.insert_attribute(txn, name.get(), value.get());
            }
        }
        Edit::RemoveAttribute { at, name } => {
            if let Some(Node::Element(el)) = pick(*at) {
                el.remove_attribute(txn, &name.get());
            }
        }
        Edit::Remove { at, index, len } => match pick(*at) {
            Some(Node::Element(el)) => {
                let total = el.len(txn);
                let i = clamp(*index, total);
                el.remove_range(txn, i, (*len as u32).min(total - i));
            }
            Some(Node::Text(t)) => {
                let total = t.len(txn);
                let i = clamp(*index, total);
                t.remove_range(txn, i, (*len as u32).min(total - i));
            }
            None => {
                let total = body.len(txn);
                let i = clamp(*index, total);
                body.remove_range(txn, i, (*len as u32).min(total - i));
            }
        },
        Edit::Title {
            offset,
            text,
            marks: m,
        } => {
            let i = clamp(*offset, title.len(txn));
            let text = bmp(text);
            if m.is_empty() {
                title.insert(txn, i, &text);
            } else {
                title.insert_with_attributes(txn, i, &text, marks(m));
            }
        }
        Edit::TitleRemove { offset, len } => {
            let total = title.len(txn);
            let i = clamp(*offset, total);
            title.remove_range(txn, i, (*len as u32).min(total - i));
        }
        Edit::OtherRoot {
            key,
            value,
            as_array,
        } => {
            let name = key.get();
            if name == "title" || name == "body" || name.is_empty() {
                return;
            }
            if *as_array {
                let array = txn.get_or_insert_array(name.as_str());
                array.push_back(txn, value.get());
            } else {
                let map = txn.get_or_insert_map(name.as_str());
                map.insert(txn, "k", value.get());
            }
        }
    }
}

/// The updates a step's edits make on the client document, in the order they are sent.
fn client_updates(client: &Doc, step: &Step, edits: &[Edit]) -> Vec<Vec<u8>> {
    match step.delivery {
        Delivery::Update | Delivery::Step2 => {
            let mut txn = client.transact_mut();
            for edit in edits {
                apply(&mut txn, edit);
            }
            vec![txn.encode_update_v1()]
        }
        Delivery::Reversed => {
            let (first, second) = edits.split_at(edits.len() / 2);
            let mut out = Vec::new();
            for half in [first, second] {
                let mut txn = client.transact_mut();
                for edit in half {
                    apply(&mut txn, edit);
                }
                out.push(txn.encode_update_v1());
            }
            out.reverse();
            out
        }
    }
}

/// A script of edits on a real client document, sent as the updates it makes.
pub fn room_receive_structured(data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if std::env::var_os("CHORUS_FUZZ_SHOW").is_some() {
        eprintln!("{script:#?}");
    }
    let mode = if script.reject_mode {
        WhitelistMode::Reject
    } else {
        WhitelistMode::Strip
    };
    let mut fixture = Fixture::new(mode);
    let client = client_doc(7);
    for step in script.steps.iter().take(16) {
        let edits = &step.edits[..step.edits.len().min(16)];
        // yrs panics on some edits a client makes on its own document (a range
        // past the end of a text holding embeds); that is not what is under test,
        // and the client document is not to be trusted after it.
        let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client_updates(&client, step, edits)
        }));
        let Ok(updates) = made else {
            return;
        };
        for update in updates {
            let payload = Bytes::from(update);
            let message = match step.delivery {
                Delivery::Step2 => Message::Sync(SyncMessage::Step2(payload)),
                _ => Message::Sync(SyncMessage::Update(payload)),
            };
            if !fixture.send(message) {
                assert!(
                    !fixture.room.is_poisoned(),
                    "an update a real yrs client made poisoned the room"
                );
                // The server closes the connection here; the client would reload.
                return;
            }
        }
        // What a client does with what it is sent: apply it.
        fixture.editor.apply_to(&client);
        if mode == WhitelistMode::Strip {
            assert_eq!(
                content(&client),
                content(fixture.room.doc()),
                "the editor did not converge with the room"
            );
        }
    }
}
