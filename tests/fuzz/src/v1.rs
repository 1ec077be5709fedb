//! The lib0 v1 update format, read and written here without yrs: the oracle
//! ([`crate::oracle`]) decodes a document's state with it, and the block-level
//! generator ([`crate::blocks`]) encodes the updates it sends with it.
//!
//! The layout (Yjs `encoding.js` / `UpdateEncoderV1`, as yrs 0.28 writes it):
//!
//! ```text
//! update      = varuint(#clients) { varuint(#structs) varuint(client) varuint(clock) struct* }
//!               delete-set
//! struct      = info:u8 ...
//!   info & 31 == 0   GC       varuint(len)
//!   info & 31 == 10  Skip     varuint(len)
//!   otherwise        Item     [origin id if info & 0x80] [right origin id if info & 0x40]
//!                             [if neither: varuint(1) string(root) | varuint(0) id(parent),
//!                                          then string(parent_sub) if info & 0x20]
//!                             content (kind = info & 31)
//! id          = varuint(client) varuint(clock)
//! delete-set  = varuint(#clients) { varuint(client) varuint(#ranges) { varuint(clock) varuint(len) } }
//! ```
//!
//! Content kinds: 1 deleted `varuint(len)`; 2 JSON `varuint(n)` + n JSON strings; 3 binary
//! `buf`; 4 string; 5 embed (a JSON string); 6 format `string(key)` + JSON string; 7 type
//! `u8(ref)` (+ `string(tag)` for an XmlElement); 8 any `varuint(n)` + n lib0 values;
//! 9 doc `string(guid)` + a lib0 value. Two places where yrs 0.28.1 differs from Yjs,
//! followed here when decoding because the oracle reads what yrs wrote: an XmlHook type
//! carries no name, and (only on reading, which this decoder does not copy) yrs takes
//! one JSON string more than the count says.

use std::fmt;

/// A block's id: client and clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    /// The client that made it.
    pub client: u64,
    /// Its clock in that client's sequence.
    pub clock: u32,
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.client, self.clock)
    }
}

/// An item's explicit parent.
#[derive(Clone, Debug, PartialEq)]
pub enum Parent {
    /// A root type, by name.
    Root(String),
    /// The type held by the item with this id.
    Item(Id),
}

/// What a type item holds.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeRef {
    /// 0.
    Array,
    /// 1.
    Map,
    /// 2.
    Text,
    /// 3, with its tag.
    XmlElement(String),
    /// 4.
    XmlFragment,
    /// 5 (yrs writes and reads no name).
    XmlHook,
    /// 6.
    XmlText,
    /// 9: a sub-document type.
    SubDoc,
    /// 15.
    Undefined,
}

impl TypeRef {
    /// Its number on the wire.
    pub fn number(&self) -> u8 {
        match self {
            TypeRef::Array => 0,
            TypeRef::Map => 1,
            TypeRef::Text => 2,
            TypeRef::XmlElement(_) => 3,
            TypeRef::XmlFragment => 4,
            TypeRef::XmlHook => 5,
            TypeRef::XmlText => 6,
            TypeRef::SubDoc => 9,
            TypeRef::Undefined => 15,
        }
    }
}

/// A lib0 value (`writeAny`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// 127.
    Undefined,
    /// 126.
    Null,
    /// 125: a signed varint.
    Int(i64),
    /// 124.
    Float32(f32),
    /// 123.
    Float(f64),
    /// 122: eight bytes, big-endian.
    BigInt(i64),
    /// 120 (true), 121 (false).
    Bool(bool),
    /// 119.
    Str(String),
    /// 118: entries in their order on the wire.
    Map(Vec<(String, Value)>),
    /// 117.
    Array(Vec<Value>),
    /// 116.
    Buffer(Vec<u8>),
}

/// An item's content.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// 1: a deleted run of this length.
    Deleted(u32),
    /// 2: JSON texts, one per element.
    Json(Vec<String>),
    /// 3.
    Binary(Vec<u8>),
    /// 4.
    String(String),
    /// 5: a JSON text.
    Embed(String),
    /// 6: key and a JSON text.
    Format(String, String),
    /// 7.
    Type(TypeRef),
    /// 8.
    Any(Vec<Value>),
    /// 9: guid and options.
    Doc(String, Value),
    /// Written as is (only by the generator): `kind` in the info byte's low five bits,
    /// `bytes` after the item's header, `len` the clocks it claims.
    Raw {
        /// The content kind the info byte names.
        kind: u8,
        /// The clocks the item is taken to span.
        len: u32,
        /// The content's bytes.
        bytes: Vec<u8>,
    },
}

impl Content {
    /// The clocks the item takes (a string counts UTF-16 units, as Yjs does).
    pub fn len(&self) -> u32 {
        match self {
            Content::Deleted(n) => *n,
            Content::Json(v) => v.len() as u32,
            Content::String(s) => s.encode_utf16().count() as u32,
            Content::Any(v) => v.len() as u32,
            Content::Raw { len, .. } => *len,
            Content::Binary(_)
            | Content::Embed(_)
            | Content::Format(..)
            | Content::Type(_)
            | Content::Doc(..) => 1,
        }
    }

    /// Never true for anything but a raw content claiming no clocks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its number on the wire.
    pub fn kind(&self) -> u8 {
        match self {
            Content::Deleted(_) => 1,
            Content::Json(_) => 2,
            Content::Binary(_) => 3,
            Content::String(_) => 4,
            Content::Embed(_) => 5,
            Content::Format(..) => 6,
            Content::Type(_) => 7,
            Content::Any(_) => 8,
            Content::Doc(..) => 9,
            Content::Raw { kind, .. } => *kind & 0b1_1111,
        }
    }
}

/// An item.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The id to its left when it was made.
    pub origin: Option<Id>,
    /// The id to its right when it was made.
    pub right_origin: Option<Id>,
    /// Written only when there is neither origin (as Yjs does).
    pub parent: Option<Parent>,
    /// Written only with a parent.
    pub parent_sub: Option<String>,
    /// What it holds.
    pub content: Content,
}

/// One struct of a client's run.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// Collected: this many clocks.
    Gc(u32),
    /// Not sent: this many clocks.
    Skip(u32),
    /// An item.
    Item(Item),
}

impl Block {
    /// The clocks it spans.
    pub fn len(&self) -> u32 {
        match self {
            Block::Gc(n) | Block::Skip(n) => *n,
            Block::Item(item) => item.content.len(),
        }
    }

    /// Spans no clock.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A client's run of structs, the first at `clock`.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Whose blocks.
    pub client: u64,
    /// The first block's clock.
    pub clock: u32,
    /// The blocks, each starting where the one before ends.
    pub blocks: Vec<Block>,
}

/// A whole update.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Update {
    /// One run per client.
    pub runs: Vec<Run>,
    /// Per client: (clock, len) ranges.
    pub deletes: Vec<(u64, Vec<(u32, u32)>)>,
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError(
    /// What and where.
    pub String,
);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(what.into()))
}

/// Reads lib0 primitives.
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Read `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .data
            .get(self.at)
            .ok_or_else(|| DecodeError(format!("end of input at byte {}", self.at)))?;
        self.at += 1;
        Ok(b)
    }

    fn exact(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return err(format!("{n} bytes wanted at byte {}", self.at));
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    /// An unsigned varint (7 bits a byte, low first), at most 64 bits.
    pub fn var(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift >= 64 || (shift == 63 && (b & 0x7f) > 1) {
                return err("varint longer than 64 bits");
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// An unsigned varint that must fit 32 bits.
    pub fn var_u32(&mut self) -> Result<u32, DecodeError> {
        let v = self.var()?;
        u32::try_from(v).map_err(|_| DecodeError(format!("{v} does not fit 32 bits")))
    }

    /// A signed varint (lib0 `writeVarInt`: first byte continue, sign, 6 bits).
    pub fn var_signed(&mut self) -> Result<i64, DecodeError> {
        let b = self.u8()?;
        let negative = b & 0x40 != 0;
        let mut value = u64::from(b & 0x3f);
        let mut shift = 6u32;
        let mut more = b & 0x80 != 0;
        while more {
            let b = self.u8()?;
            if shift > 63 {
                return err("signed varint too long");
            }
            value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            shift += 7;
            more = b & 0x80 != 0;
        }
        let value = value as i64;
        Ok(if negative {
            value.wrapping_neg()
        } else {
            value
        })
    }

    /// A length-prefixed byte string.
    pub fn buf(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.var()?;
        let n = usize::try_from(n).map_err(|_| DecodeError("length too large".into()))?;
        self.exact(n)
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.at;
        let b = self.buf()?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError(format!("string at byte {at} is not UTF-8")))
    }

    /// Client and clock.
    pub fn id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id {
            client: self.var()?,
            clock: self.var_u32()?,
        })
    }

    /// A count, bounded by what is left (each element takes a byte at least).
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.var()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => err(format!(
                "count {n} exceeds the {} bytes left",
                self.remaining()
            )),
        }
    }

    /// A lib0 value.
    pub fn value(&mut self) -> Result<Value, DecodeError> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > 256 {
            return err("value nested too deeply");
        }
        Ok(match self.u8()? {
            127 => Value::Undefined,
            126 => Value::Null,
            125 => Value::Int(self.var_signed()?),
            124 => {
                let b = self.exact(4)?;
                Value::Float32(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            123 => {
                let b = self.exact(8)?;
                let mut a = [0; 8];
                a.copy_from_slice(b);
                Value::Float(f64::from_be_bytes(a))
            }
            122 => {
                let b = self.exact(8)?;
                let mut a = [0; 8];
                a.copy_from_slice(b);
                Value::BigInt(i64::from_be_bytes(a))
            }
            121 => Value::Bool(false),
            120 => Value::Bool(true),
            119 => Value::Str(self.string()?),
            118 => {
                let n = self.count()?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    let k = self.string()?;
                    entries.push((k, self.value_at(depth + 1)?));
                }
                Value::Map(entries)
            }
            117 => {
                let n = self.count()?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value_at(depth + 1)?);
                }
                Value::Array(items)
            }
            116 => Value::Buffer(self.buf()?.to_vec()),
            tag => return err(format!("unknown value tag {tag}")),
        })
    }
}

fn content(r: &mut Reader<'_>, kind: u8) -> Result<Content, DecodeError> {
    Ok(match kind {
        1 => Content::Deleted(r.var_u32()?),
        2 => {
            let n = r.count()?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(r.string()?);
            }
            Content::Json(v)
        }
        3 => Content::Binary(r.buf()?.to_vec()),
        4 => Content::String(r.string()?),
        5 => Content::Embed(r.string()?),
        6 => {
            let key = r.string()?;
            Content::Format(key, r.string()?)
        }
        7 => Content::Type(match r.u8()? {
            0 => TypeRef::Array,
            1 => TypeRef::Map,
            2 => TypeRef::Text,
            3 => TypeRef::XmlElement(r.string()?),
            4 => TypeRef::XmlFragment,
            5 => TypeRef::XmlHook,
            6 => TypeRef::XmlText,
            9 => TypeRef::SubDoc,
            15 => TypeRef::Undefined,
            other => return err(format!("unknown type ref {other}")),
        }),
        8 => {
            let n = r.count()?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(r.value()?);
            }
            Content::Any(v)
        }
        9 => {
            let guid = r.string()?;
            Content::Doc(guid, r.value()?)
        }
        other => return err(format!("unknown content kind {other}")),
    })
}

/// Decode a whole v1 update; trailing bytes are an error.
pub fn decode(data: &[u8]) -> Result<Update, DecodeError> {
    let mut r = Reader::new(data);
    let mut update = Update::default();
    let clients = r.count()?;
    for _ in 0..clients {
        let structs = r.count()?;
        let client = r.var()?;
        let clock = r.var_u32()?;
        let mut run = Run {
            client,
            clock,
            blocks: Vec::new(),
        };
        for _ in 0..structs {
            let info = r.u8()?;
            let block = match info & 0b1_1111 {
                0 => Block::Gc(r.var_u32()?),
                10 => Block::Skip(r.var_u32()?),
                kind => {
                    let origin = if info & 0x80 != 0 {
                        Some(r.id()?)
                    } else {
                        None
                    };
                    let right_origin = if info & 0x40 != 0 {
                        Some(r.id()?)
                    } else {
                        None
                    };
                    let (parent, parent_sub) = if info & 0xc0 == 0 {
                        let parent = if r.var()? == 1 {
                            Parent::Root(r.string()?)
                        } else {
                            Parent::Item(r.id()?)
                        };
                        let sub = if info & 0x20 != 0 {
                            Some(r.string()?)
                        } else {
                            None
                        };
                        (Some(parent), sub)
                    } else {
                        (None, None)
                    };
                    Block::Item(Item {
                        origin,
                        right_origin,
                        parent,
                        parent_sub,
                        content: content(&mut r, kind)?,
                    })
                }
            };
            run.blocks.push(block);
        }
        update.runs.push(run);
    }
    let clients = r.count()?;
    for _ in 0..clients {
        let client = r.var()?;
        let n = r.count()?;
        let mut ranges = Vec::new();
        for _ in 0..n {
            ranges.push((r.var_u32()?, r.var_u32()?));
        }
        update.deletes.push((client, ranges));
    }
    if r.remaining() != 0 {
        return err(format!("{} bytes after the delete set", r.remaining()));
    }
    Ok(update)
}

/// Writes lib0 primitives.
#[derive(Default)]
pub struct Writer {
    /// What was written.
    pub out: Vec<u8>,
}

impl Writer {
    /// One byte.
    pub fn u8(&mut self, b: u8) {
        self.out.push(b);
    }

    /// An unsigned varint.
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// A signed varint.
    pub fn var_signed(&mut self, v: i64) {
        let negative = v < 0;
        let mut m = v.unsigned_abs();
        let mut first = (m & 0x3f) as u8;
        if negative {
            first |= 0x40;
        }
        m >>= 6;
        if m > 0 {
            first |= 0x80;
        }
        self.out.push(first);
        while m > 0 {
            let mut b = (m & 0x7f) as u8;
            m >>= 7;
            if m > 0 {
                b |= 0x80;
            }
            self.out.push(b);
        }
    }

    /// A length-prefixed byte string.
    pub fn buf(&mut self, b: &[u8]) {
        self.var(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    /// A length-prefixed string.
    pub fn string(&mut self, s: &str) {
        self.buf(s.as_bytes());
    }

    /// Client and clock.
    pub fn id(&mut self, id: Id) {
        self.var(id.client);
        self.var(u64::from(id.clock));
    }

    /// A lib0 value.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Undefined => self.u8(127),
            Value::Null => self.u8(126),
            Value::Int(i) => {
                self.u8(125);
                self.var_signed(*i);
            }
            Value::Float32(f) => {
                self.u8(124);
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Float(f) => {
                self.u8(123);
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Value::BigInt(i) => {
                self.u8(122);
                self.out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Bool(b) => self.u8(if *b { 120 } else { 121 }),
            Value::Str(s) => {
                self.u8(119);
                self.string(s);
            }
            Value::Map(entries) => {
                self.u8(118);
                self.var(entries.len() as u64);
                for (k, v) in entries {
                    self.string(k);
                    self.value(v);
                }
            }
            Value::Array(items) => {
                self.u8(117);
                self.var(items.len() as u64);
                for v in items {
                    self.value(v);
                }
            }
            Value::Buffer(b) => {
                self.u8(116);
                self.buf(b);
            }
        }
    }

    fn content(&mut self, c: &Content) {
        match c {
            Content::Deleted(n) => self.var(u64::from(*n)),
            Content::Json(v) => {
                self.var(v.len() as u64);
                for s in v {
                    self.string(s);
                }
            }
            Content::Binary(b) => self.buf(b),
            Content::String(s) | Content::Embed(s) => self.string(s),
            Content::Format(k, v) => {
                self.string(k);
                self.string(v);
            }
            Content::Type(t) => {
                self.u8(t.number());
                if let TypeRef::XmlElement(tag) = t {
                    self.string(tag);
                }
            }
            Content::Any(v) => {
                self.var(v.len() as u64);
                for x in v {
                    self.value(x);
                }
            }
            Content::Doc(guid, options) => {
                self.string(guid);
                self.value(options);
            }
            Content::Raw { bytes, .. } => self.out.extend_from_slice(bytes),
        }
    }

    /// One struct.
    pub fn block(&mut self, b: &Block) {
        match b {
            Block::Gc(n) => {
                self.u8(0);
                self.var(u64::from(*n));
            }
            Block::Skip(n) => {
                self.u8(10);
                self.var(u64::from(*n));
            }
            Block::Item(item) => {
                let has_parent = item.origin.is_none() && item.right_origin.is_none();
                let mut info = item.content.kind();
                if item.origin.is_some() {
                    info |= 0x80;
                }
                if item.right_origin.is_some() {
                    info |= 0x40;
                }
                if has_parent && item.parent_sub.is_some() {
                    info |= 0x20;
                }
                self.u8(info);
                if let Some(o) = item.origin {
                    self.id(o);
                }
                if let Some(o) = item.right_origin {
                    self.id(o);
                }
                if has_parent {
                    match &item.parent {
                        Some(Parent::Root(name)) => {
                            self.var(1);
                            self.string(name);
                        }
                        Some(Parent::Item(id)) => {
                            self.var(0);
                            self.id(*id);
                        }
                        // No parent at all: what a hostile client may send, as an
                        // empty root name.
                        None => {
                            self.var(1);
                            self.string("");
                        }
                    }
                    if let Some(sub) = &item.parent_sub {
                        self.string(sub);
                    }
                }
                self.content(&item.content);
            }
        }
    }
}

/// Encode a whole v1 update.
pub fn encode(update: &Update) -> Vec<u8> {
    let mut w = Writer::default();
    w.var(update.runs.len() as u64);
    for run in &update.runs {
        w.var(run.blocks.len() as u64);
        w.var(run.client);
        w.var(u64::from(run.clock));
        for b in &run.blocks {
            w.block(b);
        }
    }
    w.var(update.deletes.len() as u64);
    for (client, ranges) in &update.deletes {
        w.var(*client);
        w.var(ranges.len() as u64);
        for (clock, len) in ranges {
            w.var(u64::from(*clock));
            w.var(u64::from(*len));
        }
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{ReadTxn, StateVector, Text, Transact, WriteTxn, Xml, XmlFragment};

    #[test]
    fn what_yrs_writes_decodes_and_encodes_back_to_the_same_bytes() {
        let doc = yrs::Doc::with_client_id(5);
        {
            let mut txn = doc.transact_mut();
            let title = txn.get_or_insert_text("title");
            title.insert(&mut txn, 0, "héllo 😀 world");
            let body = txn.get_or_insert_xml_fragment("body");
            let p = body.push_back(&mut txn, yrs::XmlElementPrelim::empty("p"));
            p.insert_attribute(&mut txn, "class", "x");
            p.insert_attribute(&mut txn, "data-n", 3.5);
            let t = p.push_back(&mut txn, yrs::XmlTextPrelim::new("abc"));
            let bold = yrs::types::Attrs::from([(std::sync::Arc::from("strong"), true.into())]);
            t.format(&mut txn, 1, 1, bold);
            title.remove_range(&mut txn, 1, 2);
        }
        let bytes = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let update = decode(&bytes).expect("decodes");
        assert_eq!(encode(&update), bytes);
        // and what this crate writes, yrs reads
        let again = yrs::Update::decode_v1(&encode(&update)).expect("yrs decodes it");
        let copy = yrs::Doc::new();
        copy.transact_mut().apply_update(again).unwrap();
        assert_eq!(
            copy.transact()
                .encode_state_as_update_v1(&StateVector::default()),
            bytes
        );
    }

    #[test]
    fn values_round_trip() {
        let v = Value::Map(vec![
            ("a".into(), Value::Int(-70)),
            ("b".into(), Value::Int(1 << 40)),
            ("c".into(), Value::Float(0.5)),
            (
                "d".into(),
                Value::Array(vec![Value::Null, Value::Undefined, Value::Bool(true)]),
            ),
            ("e".into(), Value::Buffer(vec![1, 2])),
            ("f".into(), Value::Str("x".into())),
            ("g".into(), Value::Int(i64::MIN + 1)),
            ("h".into(), Value::Float32(2.5)),
            ("i".into(), Value::BigInt(-3)),
        ]);
        let mut w = Writer::default();
        w.value(&v);
        assert_eq!(Reader::new(&w.out).value().unwrap(), v);
    }
}
