//! `Room::receive` with updates written block by block: what no yrs client API
//! emits, sent as a hostile editor could.
//!
//! A [`Script`] is a base document (made by a real yrs client, client 1) and a list
//! of sends. Each send is an update encoded here ([`crate::v1`]) from structs whose
//! every field is chosen: the client (a few small ids, one large), the clock (the
//! next one most of the time, so the update integrates: the room refuses gaps), the
//! content kind (deleted, JSON, binary, string, embed, format, type with refs 0..6 and
//! others, any, doc, or raw bytes under any kind), origins and right origins pointing
//! at blocks the room holds or this update made (strings, formats, types, texts,
//! collected runs; their start, end, an id inside, the id after) or anywhere,
//! parents by root name or by a type's id, keys, and a delete set over known ranges.
//! Names and values come from both sides of the policy (`room::NAMES`, `VALUES`).
//!
//! Every script runs twice, in strip mode then in reject mode, through the same
//! [`Fixture`] as the other room targets: after each message the oracle, the
//! observer, the store and the full scan must all agree (see [`crate::room`]). A
//! refused update closes the editor; it connects again and goes on.
//!
//! [`Script::seed_bytes`] writes a script as the bytes `arbitrary` reads back into
//! it, so that chosen scripts (the lone-format bypass among them) are seeds.

use crate::room::{Fixture, NAMES, VALUES};
use crate::v1::{self, Block, Content, Id, Item, Parent, Run, TypeRef, Value};
use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use chorus_core::WhitelistMode;
use chorus_protocol::{Message, SyncMessage};
use std::collections::HashMap;
use yrs::{ReadTxn, StateVector, Transact};

/// Client ids the structs claim: small ones (1 made the base document; 2 is the
/// observer's own id) and one near the 53-bit limit.
const CLIENTS: &[u64] = &[9, 3, 1, 4, 2, (1 << 52) + 7];

/// Texts for string content.
const TEXTS: &[&str] = &[
    "click",
    "x",
    "hi",
    "",
    "😀",
    "a😀b",
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "line\nbreak",
    "\u{0}",
];

/// Scripts are cut to this many sends, structs and deletions per send.
const MAX_SENDS: usize = 8;
const MAX_STRUCTS: usize = 24;
const MAX_DELETES: usize = 8;

/// A script: a base document, then the updates the editor sends.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct Script {
    /// What client 1 wrote first (through the room, like any editor).
    pub base: Base,
    /// The hostile updates, in order.
    pub sends: Vec<Step>,
}

/// A base document, made with yrs' client API.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum Base {
    /// Nothing.
    Empty,
    /// `<p>hi</p>`: the p at 1:0, its text at 1:1, `hi` at 1:2..=1:3.
    Paragraph,
    /// A title, a heading with a class and marked text, a link, a list.
    Rich,
}

/// One update the editor sends.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct Step {
    /// As a sync step 2 instead of an update message.
    pub step2: bool,
    /// Its structs, grouped into one run per client in the order clients appear.
    pub structs: Vec<Struct>,
    /// Its delete set.
    pub deletes: Vec<Delete>,
}

/// One struct.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct Struct {
    /// `CLIENTS[client % len]`.
    pub client: u8,
    /// For a client's first struct in the update: below 0xf0 the client's next
    /// clock; 0xf0..=0xf7 that many + 1 ahead (a gap); 0xf8.. that many - 0xf7
    /// behind (ids the room has).
    pub clock: u8,
    /// What it is.
    pub block: BlockSpec,
}

/// A struct's kind.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum BlockSpec {
    /// An item.
    Item(ItemSpec),
    /// A collected run of this many clocks (0: one).
    Gc(u8),
    /// A skipped run of this many clocks (0: one).
    Skip(u8),
}

/// An item.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct ItemSpec {
    /// Its origin.
    pub origin: Option<Pick>,
    /// Its right origin.
    pub right_origin: Option<Pick>,
    /// Its parent: written only when it has neither origin.
    pub parent: ParentSpec,
    /// Its key: written only with a parent.
    pub key: Option<Name>,
    /// What it holds.
    pub content: ContentSpec,
}

/// An id to point at.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum Pick {
    /// A block of this kind (the room's and this update's so far, in id order;
    /// any block when none is of that kind), `index` modulo their number.
    Block {
        /// Which blocks.
        kind: Kind,
        /// Which one.
        index: u8,
        /// Where in it.
        at: At,
    },
    /// Any id.
    Raw {
        /// `CLIENTS[client % len]`.
        client: u8,
        /// The clock.
        clock: u16,
    },
}

/// Which blocks a [`Pick`] chooses among.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Any.
    Any,
    /// String items.
    String,
    /// Format items.
    Format,
    /// Type items.
    Type,
    /// XmlText type items.
    Text,
    /// Deleted items and collected runs.
    Gone,
    /// What this update made so far.
    ThisSend,
}

/// Where in a block.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
pub enum At {
    /// Its first id.
    Start,
    /// Its last id (the end of a text).
    End,
    /// The id this far in (modulo its length).
    Inside(u8),
    /// The id after it.
    After,
}

/// An item's explicit parent.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum ParentSpec {
    /// The root `body`.
    Body,
    /// The root `title`.
    Title,
    /// Another root.
    Root(Name),
    /// The type item `index` (modulo their number) the room has or this update made.
    Type(u8),
    /// Any id.
    Id(Pick),
}

/// A name (a key, a tag, a mark).
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum Name {
    /// `room::NAMES[i % len]`.
    Known(u8),
    /// That name with y-prosemirror's suffix: `name--xxxxxxxx`.
    Suffixed(u8, u32),
    /// Spelled from a small alphabet.
    Spelled(Vec<u8>),
}

/// Content.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum ContentSpec {
    /// 1: a deleted run (0: one clock).
    Deleted(u8),
    /// 2: JSON texts. `yrs_form`: the count one less than the texts (yrs 0.28.1 reads
    /// one text more than the count says); otherwise as Yjs writes it.
    Json {
        /// The values.
        values: Vec<ValueSpec>,
        /// Written as yrs reads it.
        yrs_form: bool,
    },
    /// 3.
    Binary(Vec<u8>),
    /// 4.
    String(TextSpec),
    /// 5.
    Embed(ValueSpec),
    /// 6: key and value.
    Format(Name, ValueSpec),
    /// 7.
    Type(TypeSpec),
    /// 8.
    Any(Vec<ValueSpec>),
    /// 9: a sub-document with this guid number.
    Doc(u8),
    /// Any kind (low five bits) and bytes, claiming `len` clocks (0: one).
    Raw {
        /// The kind.
        kind: u8,
        /// The clocks it claims.
        len: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// A type.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum TypeSpec {
    /// A type ref by number (modulo 16; 3 is an element named `p`).
    Ref(u8),
    /// An XmlElement.
    Element(Name),
    /// An XmlHook, with a name as Yjs writes it (yrs reads none) or without.
    Hook(Option<Name>),
}

/// Text.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum TextSpec {
    /// `TEXTS[i % len]`.
    Known(u8),
    /// Spelled from a small alphabet.
    Spelled(Vec<u8>),
}

/// A value (lib0 for `Any`, JSON text for JSON, embeds and formats).
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum ValueSpec {
    /// null.
    Null,
    /// undefined (the text `undefined` in JSON).
    Undefined,
    /// true.
    True,
    /// false.
    False,
    /// An integer.
    Int(i16),
    /// A quarter of this.
    Float(i8),
    /// `room::VALUES[i % len]`.
    Str(u8),
    /// A name as a string.
    Name(Name),
    /// An object (a mark's attributes).
    Object(Vec<(Name, Leaf)>),
    /// An array.
    Array(Vec<Leaf>),
    /// A byte buffer (lib0 only; an empty array in JSON).
    Buffer(Vec<u8>),
}

/// A value inside an object or array.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub enum Leaf {
    /// null.
    Null,
    /// true.
    True,
    /// An integer.
    Int(i16),
    /// `room::VALUES[i % len]`.
    Str(u8),
    /// A name as a string.
    Name(Name),
    /// An array of `room::VALUES` strings.
    List(Vec<u8>),
}

/// A deletion: `len` clocks (0: one) from the picked id.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub struct Delete {
    /// Where it starts.
    pub target: Pick,
    /// How many clocks.
    pub len: u8,
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz-_:/ <>\"'=&#;()0123456789ABC";

fn spell(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(64)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Name {
    fn get(&self) -> String {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
            Name::Suffixed(i, s) => format!("{}--{s:08x}", NAMES[*i as usize % NAMES.len()]),
            Name::Spelled(b) => spell(b),
        }
    }
}

impl TextSpec {
    fn get(&self) -> String {
        match self {
            TextSpec::Known(i) => TEXTS[*i as usize % TEXTS.len()].to_owned(),
            TextSpec::Spelled(b) => spell(b),
        }
    }
}

fn known_value(i: u8) -> String {
    VALUES[i as usize % VALUES.len()].to_owned()
}

impl Leaf {
    fn value(&self) -> Value {
        match self {
            Leaf::Null => Value::Null,
            Leaf::True => Value::Bool(true),
            Leaf::Int(i) => Value::Int(i64::from(*i)),
            Leaf::Str(i) => Value::Str(known_value(*i)),
            Leaf::Name(n) => Value::Str(n.get()),
            Leaf::List(l) => Value::Array(l.iter().map(|i| Value::Str(known_value(*i))).collect()),
        }
    }
}

impl ValueSpec {
    fn value(&self) -> Value {
        match self {
            ValueSpec::Null => Value::Null,
            ValueSpec::Undefined => Value::Undefined,
            ValueSpec::True => Value::Bool(true),
            ValueSpec::False => Value::Bool(false),
            ValueSpec::Int(i) => Value::Int(i64::from(*i)),
            ValueSpec::Float(f) => Value::Float(f64::from(*f) / 4.0),
            ValueSpec::Str(i) => Value::Str(known_value(*i)),
            ValueSpec::Name(n) => Value::Str(n.get()),
            ValueSpec::Object(entries) => Value::Map(
                entries
                    .iter()
                    .take(8)
                    .map(|(k, v)| (k.get(), v.value()))
                    .collect(),
            ),
            ValueSpec::Array(items) => {
                Value::Array(items.iter().take(8).map(Leaf::value).collect())
            }
            ValueSpec::Buffer(b) => Value::Buffer(b.iter().take(64).copied().collect()),
        }
    }

    /// As JSON text (`undefined` for undefined, as Yjs writes it in JSON content).
    fn json(&self) -> String {
        fn to_json(v: &Value) -> serde_json::Value {
            match v {
                Value::Undefined | Value::Null => serde_json::Value::Null,
                Value::Int(i) | Value::BigInt(i) => (*i).into(),
                Value::Float(f) => serde_json::Number::from_f64(*f)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Float32(f) => serde_json::Number::from_f64(f64::from(*f))
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Bool(b) => (*b).into(),
                Value::Str(s) => s.clone().into(),
                Value::Map(entries) => serde_json::Value::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), to_json(v)))
                        .collect(),
                ),
                Value::Array(items) => items.iter().map(to_json).collect(),
                Value::Buffer(_) => serde_json::Value::Array(Vec::new()),
            }
        }
        match self {
            ValueSpec::Undefined => "undefined".to_owned(),
            other => to_json(&other.value()).to_string(),
        }
    }
}

/// A block the room holds or this update made.
#[derive(Clone, Debug)]
struct Known {
    id: Id,
    len: u32,
    kind: KnownKind,
    this_send: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum KnownKind {
    String,
    Format,
    Type,
    Text,
    Gone,
    Other,
}

fn known_kind(block: &Block) -> KnownKind {
    match block {
        Block::Gc(_) | Block::Skip(_) => KnownKind::Gone,
        Block::Item(item) => match &item.content {
            Content::String(_) => KnownKind::String,
            Content::Format(..) => KnownKind::Format,
            Content::Type(TypeRef::XmlText) => KnownKind::Text,
            Content::Type(_) => KnownKind::Type,
            Content::Deleted(_) => KnownKind::Gone,
            Content::Raw { kind: 7, .. } => KnownKind::Type,
            _ => KnownKind::Other,
        },
    }
}

/// Builds one update against what the room holds.
struct Builder {
    known: Vec<Known>,
    /// Per client: the next clock the room expects.
    next: HashMap<u64, u32>,
    runs: Vec<Run>,
    /// Per run: the clock after its last block.
    ends: Vec<u32>,
}

impl Builder {
    fn new(fixture: &Fixture) -> Builder {
        let doc = fixture.room.doc();
        let (state, sv) = {
            let txn = doc.transact();
            (
                txn.encode_state_as_update_v1(&StateVector::default()),
                txn.state_vector(),
            )
        };
        let mut known = Vec::new();
        if let Ok(update) = v1::decode(&state) {
            for run in &update.runs {
                let mut clock = run.clock;
                for block in &run.blocks {
                    known.push(Known {
                        id: Id {
                            client: run.client,
                            clock,
                        },
                        len: block.len(),
                        kind: known_kind(block),
                        this_send: false,
                    });
                    clock = clock.wrapping_add(block.len());
                }
            }
        }
        known.sort_by_key(|k| k.id);
        let next = sv
            .iter()
            .map(|(client, clock)| (client.get(), *clock))
            .collect();
        Builder {
            known,
            next,
            runs: Vec::new(),
            ends: Vec::new(),
        }
    }

    fn pick(&self, pick: &Pick) -> Id {
        match pick {
            Pick::Raw { client, clock } => Id {
                client: CLIENTS[*client as usize % CLIENTS.len()],
                clock: u32::from(*clock),
            },
            Pick::Block { kind, index, at } => {
                let of_kind: Vec<&Known> = self
                    .known
                    .iter()
                    .filter(|k| match kind {
                        Kind::Any => true,
                        Kind::String => k.kind == KnownKind::String,
                        Kind::Format => k.kind == KnownKind::Format,
                        Kind::Type => matches!(k.kind, KnownKind::Type | KnownKind::Text),
                        Kind::Text => k.kind == KnownKind::Text,
                        Kind::Gone => k.kind == KnownKind::Gone,
                        Kind::ThisSend => k.this_send,
                    })
                    .collect();
                let list = if of_kind.is_empty() {
                    self.known.iter().collect()
                } else {
                    of_kind
                };
                let Some(k) = list.get(*index as usize % list.len().max(1)) else {
                    return Id {
                        client: CLIENTS[0],
                        clock: 0,
                    };
                };
                let offset = match at {
                    At::Start => 0,
                    At::End => k.len.saturating_sub(1),
                    At::Inside(i) => u32::from(*i) % k.len.max(1),
                    At::After => k.len,
                };
                Id {
                    client: k.id.client,
                    clock: k.id.clock.wrapping_add(offset),
                }
            }
        }
    }

    fn parent(&self, spec: &ParentSpec) -> Parent {
        match spec {
            ParentSpec::Body => Parent::Root("body".to_owned()),
            ParentSpec::Title => Parent::Root("title".to_owned()),
            ParentSpec::Root(name) => Parent::Root(name.get()),
            ParentSpec::Type(i) => {
                let types: Vec<&Known> = self
                    .known
                    .iter()
                    .filter(|k| matches!(k.kind, KnownKind::Type | KnownKind::Text))
                    .collect();
                match types.get(*i as usize % types.len().max(1)) {
                    Some(k) => Parent::Item(k.id),
                    None => Parent::Root("body".to_owned()),
                }
            }
            ParentSpec::Id(pick) => Parent::Item(self.pick(pick)),
        }
    }

    fn content(spec: &ContentSpec) -> Content {
        let len = |n: u8| u32::from(n.max(1));
        match spec {
            ContentSpec::Deleted(n) => Content::Deleted(len(*n)),
            ContentSpec::Json { values, yrs_form } => {
                let texts: Vec<String> = values.iter().take(8).map(ValueSpec::json).collect();
                if *yrs_form && !texts.is_empty() {
                    let mut w = v1::Writer::default();
                    w.var(texts.len() as u64 - 1);
                    for t in &texts {
                        w.string(t);
                    }
                    Content::Raw {
                        kind: 2,
                        len: texts.len() as u32,
                        bytes: w.out,
                    }
                } else {
                    Content::Json(texts)
                }
            }
            ContentSpec::Binary(b) => Content::Binary(b.iter().take(64).copied().collect()),
            ContentSpec::String(t) => Content::String(t.get()),
            ContentSpec::Embed(v) => Content::Embed(v.json()),
            ContentSpec::Format(k, v) => Content::Format(k.get(), v.json()),
            ContentSpec::Type(TypeSpec::Element(name)) => {
                Content::Type(TypeRef::XmlElement(name.get()))
            }
            ContentSpec::Type(TypeSpec::Hook(None)) => Content::Type(TypeRef::XmlHook),
            ContentSpec::Type(TypeSpec::Hook(Some(name))) => {
                let mut w = v1::Writer::default();
                w.u8(5);
                w.string(&name.get());
                Content::Raw {
                    kind: 7,
                    len: 1,
                    bytes: w.out,
                }
            }
            ContentSpec::Type(TypeSpec::Ref(r)) => match r % 16 {
                0 => Content::Type(TypeRef::Array),
                1 => Content::Type(TypeRef::Map),
                2 => Content::Type(TypeRef::Text),
                3 => Content::Type(TypeRef::XmlElement("p".to_owned())),
                4 => Content::Type(TypeRef::XmlFragment),
                5 => Content::Type(TypeRef::XmlHook),
                6 => Content::Type(TypeRef::XmlText),
                9 => Content::Type(TypeRef::SubDoc),
                15 => Content::Type(TypeRef::Undefined),
                other => Content::Raw {
                    kind: 7,
                    len: 1,
                    bytes: vec![other],
                },
            },
            ContentSpec::Any(values) => {
                Content::Any(values.iter().take(8).map(ValueSpec::value).collect())
            }
            ContentSpec::Doc(n) => Content::Doc(format!("sub-{n}"), Value::Map(Vec::new())),
            ContentSpec::Raw {
                kind,
                len: n,
                bytes,
            } => Content::Raw {
                kind: *kind,
                len: len(*n),
                bytes: bytes.iter().take(64).copied().collect(),
            },
        }
    }

    fn add(&mut self, s: &Struct) {
        let client = CLIENTS[s.client as usize % CLIENTS.len()];
        let run = match self.runs.iter().position(|r| r.client == client) {
            Some(run) => run,
            None => {
                let next = self.next.get(&client).copied().unwrap_or(0);
                let clock = match s.clock {
                    0..=0xef => next,
                    0xf0..=0xf7 => next.saturating_add(u32::from(s.clock - 0xef)),
                    _ => next.saturating_sub(u32::from(s.clock - 0xf7)),
                };
                self.runs.push(Run {
                    client,
                    clock,
                    blocks: Vec::new(),
                });
                self.ends.push(clock);
                self.runs.len() - 1
            }
        };
        let block = match &s.block {
            BlockSpec::Gc(n) => Block::Gc(u32::from((*n).max(1))),
            BlockSpec::Skip(n) => Block::Skip(u32::from((*n).max(1))),
            BlockSpec::Item(spec) => {
                let origin = spec.origin.as_ref().map(|p| self.pick(p));
                let right_origin = spec.right_origin.as_ref().map(|p| self.pick(p));
                Block::Item(Item {
                    origin,
                    right_origin,
                    parent: Some(self.parent(&spec.parent)),
                    parent_sub: spec.key.as_ref().map(Name::get),
                    content: Self::content(&spec.content),
                })
            }
        };
        let id = Id {
            client,
            clock: self.ends[run],
        };
        let len = block.len();
        self.known.push(Known {
            id,
            len,
            kind: known_kind(&block),
            this_send: true,
        });
        self.ends[run] = self.ends[run].wrapping_add(len);
        self.runs[run].blocks.push(block);
    }

    fn finish(self, deletes: &[Delete]) -> Vec<u8> {
        let mut ds: Vec<(u64, Vec<(u32, u32)>)> = Vec::new();
        for d in deletes.iter().take(MAX_DELETES) {
            let id = self.pick(&d.target);
            let len = u32::from(d.len.max(1));
            match ds.iter_mut().find(|(c, _)| *c == id.client) {
                Some((_, ranges)) => ranges.push((id.clock, len)),
                None => ds.push((id.client, vec![(id.clock, len)])),
            }
        }
        v1::encode(&v1::Update {
            runs: self.runs,
            deletes: ds,
        })
    }
}

/// The base document's update, made by client 1 with yrs' API.
fn base_update(base: &Base) -> Option<Vec<u8>> {
    use std::sync::Arc;
    use yrs::{Any, Text, WriteTxn, Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim};
    let doc = yrs::Doc::with_options(yrs::Options {
        client_id: yrs::ClientID::new(1),
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::default()
    });
    let mut txn = doc.transact_mut();
    match base {
        Base::Empty => return None,
        Base::Paragraph => {
            let body = txn.get_or_insert_xml_fragment("body");
            let p = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
            p.push_back(&mut txn, XmlTextPrelim::new("hi"));
        }
        Base::Rich => {
            let title = txn.get_or_insert_text("title");
            title.insert(&mut txn, 0, "Notes");
            let body = txn.get_or_insert_xml_fragment("body");
            let h = body.push_back(&mut txn, XmlElementPrelim::empty("h2"));
            h.insert_attribute(&mut txn, "class", "big");
            let t = h.push_back(&mut txn, XmlTextPrelim::new("hello world"));
            let link = Any::from(HashMap::from([(
                "href".to_owned(),
                Any::from("https://example.com/"),
            )]));
            t.format(&mut txn, 0, 5, [(Arc::from("a"), link)].into());
            t.format(
                &mut txn,
                6,
                5,
                [(Arc::from("strong"), Any::Bool(true))].into(),
            );
            let ul = body.push_back(&mut txn, XmlElementPrelim::empty("ul"));
            let li = ul.push_back(&mut txn, XmlElementPrelim::empty("li"));
            li.push_back(&mut txn, XmlTextPrelim::new("one"));
        }
    }
    Some(txn.encode_update_v1())
}

/// Run `script` in one mode.
fn run(script: &Script, mode: WhitelistMode) {
    let mut fixture = Fixture::new(mode);
    if let Some(base) = base_update(&script.base) {
        let sent = fixture.send(Message::Sync(SyncMessage::Update(Bytes::from(base))));
        assert!(sent, "the room refused the base document");
    }
    for send in script.sends.iter().take(MAX_SENDS) {
        let mut builder = Builder::new(&fixture);
        for s in send.structs.iter().take(MAX_STRUCTS) {
            builder.add(s);
        }
        let payload = Bytes::from(builder.finish(&send.deletes));
        let bytes_shown = payload.clone();
        let message = if send.step2 {
            Message::Sync(SyncMessage::Step2(payload))
        } else {
            Message::Sync(SyncMessage::Update(payload))
        };
        let accepted = fixture.send(message);
        if std::env::var_os("CHORUS_FUZZ_SHOW").is_some() {
            eprintln!(
                "{mode:?}: {} update {:?}\n  the room: {}",
                if accepted { "accepted" } else { "refused" },
                v1::decode(&bytes_shown),
                chorus_core::render::doc_json(fixture.room.doc())
            );
        }
        if !accepted {
            if fixture.room.is_poisoned() {
                // yrs panicked (caught): the server drops the room unsaved.
                return;
            }
            fixture.rejoin_editor();
        }
    }
}

/// Block-level updates from a script, in strip mode then in reject mode.
pub fn room_receive_blocks(data: &[u8]) {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if std::env::var_os("CHORUS_FUZZ_SHOW").is_some() {
        eprintln!("{script:#?}");
    }
    for mode in [WhitelistMode::Strip, WhitelistMode::Reject] {
        run(&script, mode);
    }
}

/// Writes values as the bytes `arbitrary` (1.x, derived) reads back into them.
pub trait SeedBytes {
    /// Append this value's bytes.
    fn write(&self, out: &mut Vec<u8>);
}

/// A derived enum's variant `k` of `n`: a little-endian u32 `v` with `(v * n) >> 32 == k`.
fn variant(out: &mut Vec<u8>, k: u64, n: u64) {
    let v = (k << 32).div_ceil(n);
    out.extend_from_slice(&(v as u32).to_le_bytes());
}

impl SeedBytes for u8 {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
}

impl SeedBytes for bool {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl SeedBytes for $t {
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
le_bytes!(u16, u32, i8, i16);

impl<T: SeedBytes> SeedBytes for Vec<T> {
    fn write(&self, out: &mut Vec<u8>) {
        for x in self {
            out.push(1);
            x.write(out);
        }
        out.push(0);
    }
}

impl<T: SeedBytes> SeedBytes for Option<T> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(x) => {
                out.push(1);
                x.write(out);
            }
        }
    }
}

impl<A: SeedBytes, B: SeedBytes> SeedBytes for (A, B) {
    fn write(&self, out: &mut Vec<u8>) {
        self.0.write(out);
        self.1.write(out);
    }
}

impl SeedBytes for Script {
    fn write(&self, out: &mut Vec<u8>) {
        self.base.write(out);
        self.sends.write(out);
    }
}

impl SeedBytes for Base {
    fn write(&self, out: &mut Vec<u8>) {
        let k = match self {
            Base::Empty => 0,
            Base::Paragraph => 1,
            Base::Rich => 2,
        };
        variant(out, k, 3);
    }
}

impl SeedBytes for Step {
    fn write(&self, out: &mut Vec<u8>) {
        self.step2.write(out);
        self.structs.write(out);
        self.deletes.write(out);
    }
}

impl SeedBytes for Struct {
    fn write(&self, out: &mut Vec<u8>) {
        self.client.write(out);
        self.clock.write(out);
        self.block.write(out);
    }
}

impl SeedBytes for BlockSpec {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            BlockSpec::Item(i) => {
                variant(out, 0, 3);
                i.write(out);
            }
            BlockSpec::Gc(n) => {
                variant(out, 1, 3);
                n.write(out);
            }
            BlockSpec::Skip(n) => {
                variant(out, 2, 3);
                n.write(out);
            }
        }
    }
}

impl SeedBytes for ItemSpec {
    fn write(&self, out: &mut Vec<u8>) {
        self.origin.write(out);
        self.right_origin.write(out);
        self.parent.write(out);
        self.key.write(out);
        self.content.write(out);
    }
}

impl SeedBytes for Pick {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Pick::Block { kind, index, at } => {
                variant(out, 0, 2);
                kind.write(out);
                index.write(out);
                at.write(out);
            }
            Pick::Raw { client, clock } => {
                variant(out, 1, 2);
                client.write(out);
                clock.write(out);
            }
        }
    }
}

impl SeedBytes for Kind {
    fn write(&self, out: &mut Vec<u8>) {
        variant(out, *self as u64, 7);
    }
}

impl SeedBytes for At {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            At::Start => variant(out, 0, 4),
            At::End => variant(out, 1, 4),
            At::Inside(i) => {
                variant(out, 2, 4);
                i.write(out);
            }
            At::After => variant(out, 3, 4),
        }
    }
}

impl SeedBytes for ParentSpec {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            ParentSpec::Body => variant(out, 0, 5),
            ParentSpec::Title => variant(out, 1, 5),
            ParentSpec::Root(n) => {
                variant(out, 2, 5);
                n.write(out);
            }
            ParentSpec::Type(i) => {
                variant(out, 3, 5);
                i.write(out);
            }
            ParentSpec::Id(p) => {
                variant(out, 4, 5);
                p.write(out);
            }
        }
    }
}

impl SeedBytes for Name {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Name::Known(i) => {
                variant(out, 0, 3);
                i.write(out);
            }
            Name::Suffixed(i, s) => {
                variant(out, 1, 3);
                i.write(out);
                s.write(out);
            }
            Name::Spelled(b) => {
                variant(out, 2, 3);
                b.write(out);
            }
        }
    }
}

impl SeedBytes for ContentSpec {
    fn write(&self, out: &mut Vec<u8>) {
        const N: u64 = 10;
        match self {
            ContentSpec::Deleted(n) => {
                variant(out, 0, N);
                n.write(out);
            }
            ContentSpec::Json { values, yrs_form } => {
                variant(out, 1, N);
                values.write(out);
                yrs_form.write(out);
            }
            ContentSpec::Binary(b) => {
                variant(out, 2, N);
                b.write(out);
            }
            ContentSpec::String(t) => {
                variant(out, 3, N);
                t.write(out);
            }
            ContentSpec::Embed(v) => {
                variant(out, 4, N);
                v.write(out);
            }
            ContentSpec::Format(k, v) => {
                variant(out, 5, N);
                k.write(out);
                v.write(out);
            }
            ContentSpec::Type(t) => {
                variant(out, 6, N);
                t.write(out);
            }
            ContentSpec::Any(v) => {
                variant(out, 7, N);
                v.write(out);
            }
            ContentSpec::Doc(n) => {
                variant(out, 8, N);
                n.write(out);
            }
            ContentSpec::Raw { kind, len, bytes } => {
                variant(out, 9, N);
                kind.write(out);
                len.write(out);
                bytes.write(out);
            }
        }
    }
}

impl SeedBytes for TypeSpec {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            TypeSpec::Ref(r) => {
                variant(out, 0, 3);
                r.write(out);
            }
            TypeSpec::Element(n) => {
                variant(out, 1, 3);
                n.write(out);
            }
            TypeSpec::Hook(n) => {
                variant(out, 2, 3);
                n.write(out);
            }
        }
    }
}

impl SeedBytes for TextSpec {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            TextSpec::Known(i) => {
                variant(out, 0, 2);
                i.write(out);
            }
            TextSpec::Spelled(b) => {
                variant(out, 1, 2);
                b.write(out);
            }
        }
    }
}

impl SeedBytes for ValueSpec {
    fn write(&self, out: &mut Vec<u8>) {
        const N: u64 = 11;
        match self {
            ValueSpec::Null => variant(out, 0, N),
            ValueSpec::Undefined => variant(out, 1, N),
            ValueSpec::True => variant(out, 2, N),
            ValueSpec::False => variant(out, 3, N),
            ValueSpec::Int(i) => {
                variant(out, 4, N);
                i.write(out);
            }
            ValueSpec::Float(f) => {
                variant(out, 5, N);
                f.write(out);
            }
            ValueSpec::Str(i) => {
                variant(out, 6, N);
                i.write(out);
            }
            ValueSpec::Name(n) => {
                variant(out, 7, N);
                n.write(out);
            }
            ValueSpec::Object(e) => {
                variant(out, 8, N);
                e.write(out);
            }
            ValueSpec::Array(a) => {
                variant(out, 9, N);
                a.write(out);
            }
            ValueSpec::Buffer(b) => {
                variant(out, 10, N);
                b.write(out);
            }
        }
    }
}

impl SeedBytes for Leaf {
    fn write(&self, out: &mut Vec<u8>) {
        const N: u64 = 6;
        match self {
            Leaf::Null => variant(out, 0, N),
            Leaf::True => variant(out, 1, N),
            Leaf::Int(i) => {
                variant(out, 2, N);
                i.write(out);
            }
            Leaf::Str(i) => {
                variant(out, 3, N);
                i.write(out);
            }
            Leaf::Name(n) => {
                variant(out, 4, N);
                n.write(out);
            }
            Leaf::List(l) => {
                variant(out, 5, N);
                l.write(out);
            }
        }
    }
}

impl SeedBytes for Delete {
    fn write(&self, out: &mut Vec<u8>) {
        self.target.write(out);
        self.len.write(out);
    }
}

impl Script {
    /// The bytes [`room_receive_blocks`] reads back into this script.
    pub fn seed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

/// Index of `name` in `room::NAMES`.
fn name(name: &str) -> Name {
    Name::Known(
        NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} is not in NAMES")) as u8,
    )
}

/// Index of `value` in `room::VALUES`.
fn value(value: &str) -> u8 {
    VALUES
        .iter()
        .position(|v| *v == value)
        .unwrap_or_else(|| panic!("{value} is not in VALUES")) as u8
}

fn client(id: u64) -> u8 {
    CLIENTS.iter().position(|c| *c == id).expect("a client") as u8
}

fn item(origin: Option<Pick>, parent: ParentSpec, content: ContentSpec) -> Struct {
    Struct {
        client: client(9),
        clock: 0,
        block: BlockSpec::Item(ItemSpec {
            origin,
            right_origin: None,
            parent,
            key: None,
            content,
        }),
    }
}

fn send(structs: Vec<Struct>) -> Step {
    Step {
        step2: false,
        structs,
        deletes: Vec::new(),
    }
}

/// The bypass of 2026-12-03: on `<p>hi</p>`, an update holding one format item
/// `a = {"href":"javascript:alert(1)"}` whose origin is the `i` of `hi` (1:3) and
/// nothing after it, then an update holding only a string whose origin is that
/// format item (9:0).
pub fn lone_format_attack() -> Script {
    let link = ValueSpec::Object(vec![(
        name("href"),
        Leaf::Str(value("javascript:alert(1)")),
    )]);
    Script {
        base: Base::Paragraph,
        sends: vec![
            send(vec![item(
                Some(Pick::Raw {
                    client: client(1),
                    clock: 3,
                }),
                ParentSpec::Body,
                ContentSpec::Format(name("a"), link),
            )]),
            send(vec![item(
                Some(Pick::Raw {
                    client: client(9),
                    clock: 0,
                }),
                ParentSpec::Body,
                ContentSpec::String(TextSpec::Known(0)),
            )]),
        ],
    }
}

/// The same bypass hidden from a reader that takes JSON content as Yjs writes it (n
/// texts after the count n): yrs 0.28.1 takes n + 1. The first item is JSON with count
/// 1, the text `1`, then an empty text; a Yjs reading ends the item there and reads the
/// empty text's length byte as a collected run (whose length takes the next item's
/// first two bytes), and with that has read the two structs the update announces. yrs
/// reads both texts, then the next item: the lone link format after `hi`'s `i`.
pub fn lone_format_behind_json() -> Script {
    let link = ValueSpec::Object(vec![(
        name("href"),
        Leaf::Str(value("javascript:alert(1)")),
    )]);
    Script {
        base: Base::Paragraph,
        sends: vec![
            send(vec![
                item(
                    None,
                    ParentSpec::Root(Name::Spelled(vec![25, 25])),
                    ContentSpec::Raw {
                        kind: 2,
                        len: 2,
                        bytes: vec![1, 1, b'1', 0],
                    },
                ),
                item(
                    Some(Pick::Raw {
                        client: client(1),
                        clock: 3,
                    }),
                    ParentSpec::Body,
                    ContentSpec::Format(name("a"), link),
                ),
            ]),
            send(vec![item(
                Some(Pick::Raw {
                    client: client(9),
                    clock: 2,
                }),
                ParentSpec::Body,
                ContentSpec::String(TextSpec::Known(0)),
            )]),
        ],
    }
}

/// Seeds: chosen scripts, by name.
pub fn seeds() -> Vec<(&'static str, Script)> {
    let end_of_text = || Pick::Block {
        kind: Kind::String,
        index: 0,
        at: At::End,
    };
    let this_send = |at| Pick::Block {
        kind: Kind::ThisSend,
        index: 0,
        at,
    };
    let lone_format_by_kind = Script {
        base: Base::Rich,
        sends: vec![
            // Rich's strings by id: "Notes", "hello", " ", "world", "one": the end of
            // "world", the end of the heading's text.
            send(vec![item(
                Some(Pick::Block {
                    kind: Kind::String,
                    index: 3,
                    at: At::End,
                }),
                ParentSpec::Body,
                ContentSpec::Format(
                    match name("a") {
                        Name::Known(i) => Name::Suffixed(i, 0x1a2b_3c4d),
                        other => other,
                    },
                    ValueSpec::Object(vec![(
                        name("href"),
                        Leaf::Str(value("JaVaScRiPt:alert(1)")),
                    )]),
                ),
            )]),
            send(vec![item(
                // Rich holds four format items of client 1; this one (9:0) is the fifth.
                Some(Pick::Block {
                    kind: Kind::Format,
                    index: 4,
                    at: At::Start,
                }),
                ParentSpec::Body,
                ContentSpec::String(TextSpec::Known(1)),
            )]),
        ],
    };
    let mut element = Struct {
        client: client(3),
        clock: 0,
        block: BlockSpec::Item(ItemSpec {
            origin: None,
            right_origin: None,
            parent: ParentSpec::Type(0),
            key: Some(name("href")),
            content: ContentSpec::Any(vec![ValueSpec::Str(value("javascript:alert(1)"))]),
        }),
    };
    let attribute_on_a_type = send(vec![element.clone()]);
    element.block = BlockSpec::Item(ItemSpec {
        origin: None,
        right_origin: None,
        parent: ParentSpec::Body,
        key: None,
        content: ContentSpec::Type(TypeSpec::Element(name("p"))),
    });
    let nested = send(vec![
        element.clone(),
        Struct {
            client: client(3),
            clock: 0,
            block: BlockSpec::Item(ItemSpec {
                origin: None,
                right_origin: None,
                parent: ParentSpec::Id(this_send(At::Start)),
                key: None,
                content: ContentSpec::Type(TypeSpec::Ref(6)),
            }),
        },
        Struct {
            client: client(3),
            clock: 0,
            block: BlockSpec::Item(ItemSpec {
                origin: None,
                right_origin: None,
                parent: ParentSpec::Type(255),
                key: None,
                content: ContentSpec::String(TextSpec::Known(6)),
            }),
        },
    ]);
    let every_kind = send(
        [
            ContentSpec::Deleted(2),
            ContentSpec::Json {
                values: vec![
                    ValueSpec::Str(value("javascript:alert(1)")),
                    ValueSpec::Null,
                ],
                yrs_form: true,
            },
            ContentSpec::Binary(vec![1, 2, 3]),
            ContentSpec::Embed(ValueSpec::Object(vec![(name("src"), Leaf::Str(1))])),
            ContentSpec::Type(TypeSpec::Ref(1)),
            ContentSpec::Type(TypeSpec::Element(name("script"))),
            ContentSpec::Any(vec![ValueSpec::True, ValueSpec::Float(-3)]),
            ContentSpec::Doc(1),
        ]
        .into_iter()
        .map(|c| {
            item(
                Some(Pick::Block {
                    kind: Kind::ThisSend,
                    index: 255,
                    at: At::End,
                }),
                ParentSpec::Body,
                c,
            )
        })
        .collect(),
    );
    let mut every_kind = every_kind;
    // the first has nothing of this send to follow: put it at the end of a text
    if let BlockSpec::Item(i) = &mut every_kind.structs[0].block {
        i.origin = Some(end_of_text());
    }
    let title_and_roots = send(vec![
        item(
            None,
            ParentSpec::Title,
            ContentSpec::Embed(ValueSpec::Str(1)),
        ),
        item(
            None,
            ParentSpec::Title,
            ContentSpec::Format(name("strong"), ValueSpec::True),
        ),
        item(
            None,
            ParentSpec::Root(name("script")),
            ContentSpec::String(TextSpec::Known(6)),
        ),
        Struct {
            client: client(4),
            clock: 0,
            block: BlockSpec::Item(ItemSpec {
                origin: None,
                right_origin: None,
                parent: ParentSpec::Body,
                key: Some(name("onclick")),
                content: ContentSpec::Any(vec![ValueSpec::Str(1)]),
            }),
        },
    ]);
    let deletions_and_gaps = Step {
        step2: true,
        structs: vec![
            Struct {
                client: client(9),
                clock: 0,
                block: BlockSpec::Gc(3),
            },
            Struct {
                client: client(9),
                clock: 0,
                block: BlockSpec::Skip(2),
            },
            Struct {
                client: client(4),
                clock: 0xf1,
                block: BlockSpec::Item(ItemSpec {
                    origin: Some(end_of_text()),
                    right_origin: Some(Pick::Block {
                        kind: Kind::Any,
                        index: 0,
                        at: At::Start,
                    }),
                    parent: ParentSpec::Body,
                    key: None,
                    content: ContentSpec::String(TextSpec::Known(2)),
                }),
            },
        ],
        deletes: vec![Delete {
            target: Pick::Block {
                kind: Kind::String,
                index: 0,
                at: At::Inside(1),
            },
            len: 3,
        }],
    };
    // A keyed string on the title, then an item whose right origin is inside it: yrs
    // splits the entry; the guard deletes the key's value (the right part) and the
    // left part stays, undeleted, in what joiners and the store get.
    let split_keyed_entry = Script {
        base: Base::Empty,
        sends: vec![send(vec![
            Struct {
                client: client(3),
                clock: 0,
                block: BlockSpec::Item(ItemSpec {
                    origin: None,
                    right_origin: None,
                    parent: ParentSpec::Title,
                    key: Some(name("bold")),
                    content: ContentSpec::String(TextSpec::Known(2)),
                }),
            },
            Struct {
                client: client(4),
                clock: 0,
                block: BlockSpec::Item(ItemSpec {
                    origin: None,
                    right_origin: Some(Pick::Raw {
                        client: client(3),
                        clock: 1,
                    }),
                    parent: ParentSpec::Title,
                    key: None,
                    content: ContentSpec::String(TextSpec::Known(1)),
                }),
            },
        ])],
    };
    vec![
        ("lone-format-attack", lone_format_attack()),
        ("keyed-entry-split-by-a-right-origin", split_keyed_entry),
        ("lone-format-behind-json", lone_format_behind_json()),
        ("lone-format-by-kind", lone_format_by_kind),
        (
            "attribute-by-parent-id",
            Script {
                base: Base::Rich,
                sends: vec![attribute_on_a_type],
            },
        ),
        (
            "nested-element-text",
            Script {
                base: Base::Empty,
                sends: vec![nested],
            },
        ),
        (
            "every-content-kind",
            Script {
                base: Base::Paragraph,
                sends: vec![every_kind],
            },
        ),
        (
            "title-roots-keys",
            Script {
                base: Base::Rich,
                sends: vec![title_and_roots],
            },
        ),
        (
            "deletions-and-gaps",
            Script {
                base: Base::Rich,
                sends: vec![deletions_and_gaps],
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_bytes_read_back_as_the_same_script() {
        for (name, script) in seeds() {
            let bytes = script.seed_bytes();
            let read = Script::arbitrary_take_rest(Unstructured::new(&bytes))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(read, script, "{name}");
        }
    }

    #[test]
    fn the_lone_format_attack_is_the_bytes_of_the_report() {
        // What the seed sends, decoded by this crate: one format item after 1:3,
        // then one string after it.
        let script = lone_format_attack();
        let mut fixture = Fixture::new(WhitelistMode::Off);
        let base = base_update(&script.base).unwrap();
        assert!(fixture.send(Message::Sync(SyncMessage::Update(Bytes::from(base)))));
        let mut b = Builder::new(&fixture);
        b.add(&script.sends[0].structs[0]);
        let first = v1::decode(&b.finish(&[])).unwrap();
        assert_eq!(first.runs.len(), 1);
        assert_eq!((first.runs[0].client, first.runs[0].clock), (9, 0));
        let Block::Item(item) = &first.runs[0].blocks[0] else {
            panic!()
        };
        assert_eq!(
            item.origin,
            Some(Id {
                client: 1,
                clock: 3
            })
        );
        assert_eq!(
            item.content,
            Content::Format("a".into(), r#"{"href":"javascript:alert(1)"}"#.into())
        );
    }
}
