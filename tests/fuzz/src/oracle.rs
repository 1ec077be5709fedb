//! An oracle for the whitelist that shares no code with the guard: it reads what a
//! document would send a joiner — its full state, as yrs encodes it — with this
//! crate's own lib0 decoder ([`crate::v1`]), rebuilds every item (id, length, origins,
//! parent and key, content, liveness), and judges each live one against the policy.
//!
//! It reads blocks, not text deltas: a lone format item (the bypass of 2026-12-03:
//! one format item after the last character of a text, then a string whose origin is
//! that format item, in a later update) is an item here like any other.
//!
//! Where an item's parent comes from, as Yjs and yrs integrate it: written in the
//! item (a root by name, or the id of a type item) when the item has neither origin;
//! otherwise taken, with its key, from the item holding its origin, or when that is
//! no item with a known parent, from the item holding its right origin. An item whose
//! parent is deleted is dead, whatever the delete set says of the item itself.
//!
//! The rules (`Whitelist::profile.fragment()` names the body, `html`: `body`):
//!
//! - `title`: live items are strings, or format items whose value is null; no keys.
//! - the body and every live XmlElement: live children are XmlElements whose tag the
//!   profile and policy allow, or XmlTexts; the body has no keys.
//! - an XmlElement's keyed entries (attributes): every value the entry holds is a
//!   string, number or bool that the policy allows for that key on that tag.
//! - an XmlText: live items are strings, or format items whose value is null or an
//!   allowed mark (`true`, or an object of scalar attributes; the key may carry
//!   y-prosemirror's `--xxxxxxxx` suffix); no live keyed entries.
//! - any other root: nothing live.
//! - anything else live anywhere (embeds, JSON, binary, other types, sub-documents):
//!   a violation; and a deleted item holds no content (only a deleted run or a GC).
//! - every item the state holds has a parent a reader can find (it is not content the
//!   document serves and never placed).

use crate::v1::{self, Block, Content, Id, Parent, TypeRef, Value};
use chorus_core::Whitelist;
use std::collections::HashMap;
use yrs::{Doc, ReadTxn, StateVector, Transact};

/// Marks a violation on a keyed item that is not its key's value yet is not deleted
/// (the left part of an entry split by a later id pointing into it): shipped to
/// joiners and stored, read by no map API.
pub const STALE_PIECE: &str = "stale piece of a keyed entry";

/// What `doc` holds that `whitelist`'s policy does not allow, one line each (empty:
/// nothing).
pub fn violations(doc: &Doc, whitelist: &Whitelist) -> Vec<String> {
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    state_violations(&state, whitelist)
}

/// The same for a document's full state as lib0 v1 bytes.
pub fn state_violations(state: &[u8], whitelist: &Whitelist) -> Vec<String> {
    match v1::decode(state) {
        Ok(update) => Model::new(&update).judge(whitelist),
        Err(e) => vec![format!("the document's state does not decode: {e}")],
    }
}

/// Where an item sits.
#[derive(Clone, Debug, PartialEq)]
enum Place {
    Root(String),
    /// In the type that item (index) holds.
    Type(usize),
}

#[derive(Clone, Debug)]
enum Resolved {
    /// Parent and key.
    At(Place, Option<String>),
    /// No parent a reader can find: why.
    Nowhere(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Life {
    Live,
    Deleted,
    Unplaced,
}

#[derive(Clone, Copy)]
enum Target {
    Item(usize),
    Gc,
    Skip,
}

struct Model<'u> {
    /// Every item: its id and the item itself.
    items: Vec<(Id, &'u v1::Item)>,
    /// Per client: (clock, len, target), sorted by clock.
    index: HashMap<u64, Vec<(u32, u32, Target)>>,
    /// Per client: deleted (clock, end) ranges, sorted and merged.
    deleted: HashMap<u64, Vec<(u64, u64)>>,
    duplicate: Vec<String>,
}

impl<'u> Model<'u> {
    fn new(update: &'u v1::Update) -> Self {
        let mut items = Vec::new();
        let mut index: HashMap<u64, Vec<(u32, u32, Target)>> = HashMap::new();
        let mut duplicate = Vec::new();
        for run in &update.runs {
            let mut clock = run.clock;
            for block in &run.blocks {
                let len = block.len();
                let target = match block {
                    Block::Gc(_) => Target::Gc,
                    Block::Skip(_) => Target::Skip,
                    Block::Item(item) => {
                        items.push((
                            Id {
                                client: run.client,
                                clock,
                            },
                            item,
                        ));
                        Target::Item(items.len() - 1)
                    }
                };
                index
                    .entry(run.client)
                    .or_default()
                    .push((clock, len, target));
                clock = clock.wrapping_add(len);
            }
        }
        for (client, blocks) in index.iter_mut() {
            blocks.sort_by_key(|b| b.0);
            for w in blocks.windows(2) {
                if u64::from(w[0].0) + u64::from(w[0].1) > u64::from(w[1].0) {
                    duplicate.push(format!(
                        "the state holds overlapping blocks at {client}:{}",
                        w[1].0
                    ));
                }
            }
        }
        let mut deleted: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        for (client, ranges) in &update.deletes {
            let list = deleted.entry(*client).or_default();
            for (clock, len) in ranges {
                list.push((u64::from(*clock), u64::from(*clock) + u64::from(*len)));
            }
        }
        for list in deleted.values_mut() {
            list.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(list.len());
            for &(s, e) in list.iter() {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            *list = merged;
        }
        Model {
            items,
            index,
            deleted,
            duplicate,
        }
    }

    /// The block holding `id`, if the state has it.
    fn find(&self, id: Id) -> Option<Target> {
        let blocks = self.index.get(&id.client)?;
        let i = blocks.partition_point(|b| b.0 <= id.clock);
        let (clock, len, target) = *blocks.get(i.checked_sub(1)?)?;
        (u64::from(id.clock) < u64::from(clock) + u64::from(len)).then_some(target)
    }

    /// Does the delete set cover all of `[clock, clock + len)`?
    fn all_deleted(&self, id: Id, len: u32) -> bool {
        let start = u64::from(id.clock);
        let end = start + u64::from(len);
        let Some(ranges) = self.deleted.get(&id.client) else {
            return false;
        };
        let i = ranges.partition_point(|r| r.0 <= start);
        i > 0 && ranges[i - 1].1 >= end
    }

    /// Every item's parent and key, following origins without recursion (a text
    /// typed one character at a time is a chain as long as the text).
    fn resolve(&self) -> Vec<Resolved> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            New,
            Visiting,
            Done,
        }
        let n = self.items.len();
        let mut state = vec![State::New; n];
        let mut out: Vec<Resolved> = vec![Resolved::Nowhere(String::new()); n];
        for start in 0..n {
            if state[start] == State::Done {
                continue;
            }
            let mut stack = vec![start];
            while let Some(&i) = stack.last() {
                if state[i] == State::Done {
                    stack.pop();
                    continue;
                }
                let item = self.items[i].1;
                if let Some(parent) = &item.parent {
                    out[i] = match parent {
                        Parent::Root(name) => {
                            Resolved::At(Place::Root(name.clone()), item.parent_sub.clone())
                        }
                        Parent::Item(pid) => match self.find(*pid) {
                            Some(Target::Item(j)) => match &self.items[j].1.content {
                                Content::Type(_) => {
                                    Resolved::At(Place::Type(j), item.parent_sub.clone())
                                }
                                Content::Deleted(_) => {
                                    Resolved::Nowhere(format!("its parent {pid} is deleted"))
                                }
                                _ => Resolved::Nowhere(format!("its parent {pid} is no type")),
                            },
                            Some(_) => Resolved::Nowhere(format!("its parent {pid} is collected")),
                            None => Resolved::Nowhere(format!("its parent {pid} is missing")),
                        },
                    };
                    state[i] = State::Done;
                    stack.pop();
                    continue;
                }
                let left = item.origin.map(|o| (o, self.find(o)));
                let right = item.right_origin.map(|o| (o, self.find(o)));
                let item_of = |side: Option<(Id, Option<Target>)>| match side {
                    Some((_, Some(Target::Item(j)))) => Some(j),
                    _ => None,
                };
                // The origin's item first; the right origin's only if that gives
                // nothing. A dependency already on the stack is a cycle: unresolved.
                if let Some(j) = item_of(left).filter(|j| state[*j] == State::New) {
                    state[i] = State::Visiting;
                    stack.push(j);
                    continue;
                }
                let left_placed = item_of(left)
                    .is_some_and(|j| state[j] == State::Done && matches!(out[j], Resolved::At(..)));
                if !left_placed {
                    if let Some(j) = item_of(right).filter(|j| state[*j] == State::New) {
                        state[i] = State::Visiting;
                        stack.push(j);
                        continue;
                    }
                }
                let from = |side: Option<(Id, Option<Target>)>| -> Option<Resolved> {
                    match side? {
                        (_, Some(Target::Item(j))) if state[j] == State::Done => match &out[j] {
                            r @ Resolved::At(..) => Some(r.clone()),
                            Resolved::Nowhere(_) => None,
                        },
                        _ => None,
                    }
                };
                out[i] = from(left).or_else(|| from(right)).unwrap_or_else(|| {
                    let describe = |side: Option<(Id, Option<Target>)>| match side {
                        None => "none".to_owned(),
                        Some((o, None)) => format!("{o} missing"),
                        Some((o, Some(Target::Gc))) => format!("{o} collected"),
                        Some((o, Some(Target::Skip))) => format!("{o} skipped"),
                        Some((o, Some(Target::Item(_)))) => format!("{o} placed nowhere"),
                    };
                    Resolved::Nowhere(format!(
                        "origin {}, right origin {}",
                        describe(left),
                        describe(right)
                    ))
                });
                state[i] = State::Done;
                stack.pop();
            }
        }
        out
    }

    fn judge(&self, whitelist: &Whitelist) -> Vec<String> {
        let mut found = self.duplicate.clone();
        let places = self.resolve();
        // Deleted, or under a deleted type; unplaced, or under an unplaced type
        // (iteratively, memoised).
        let n = self.items.len();
        let mut life: Vec<Option<Life>> = vec![None; n];
        let mut on_chain = vec![false; n];
        for start in 0..n {
            let mut chain = Vec::new();
            let mut i = start;
            let value = loop {
                if let Some(l) = life[i] {
                    break l;
                }
                if on_chain[i] {
                    break Life::Unplaced; // a cycle of parents: under no root
                }
                let (id, item) = self.items[i];
                if self.all_deleted(id, item.content.len()) {
                    life[i] = Some(Life::Deleted);
                    break Life::Deleted;
                }
                on_chain[i] = true;
                chain.push(i);
                match &places[i] {
                    Resolved::At(Place::Type(j), _) => i = *j,
                    Resolved::At(Place::Root(_), _) => break Life::Live,
                    Resolved::Nowhere(_) => break Life::Unplaced,
                }
            };
            for c in chain {
                life[c] = Some(value);
                on_chain[c] = false;
            }
        }
        let body = whitelist.profile.fragment().to_owned();
        let name_of = |j: usize| -> String {
            match &self.items[j].1.content {
                Content::Type(TypeRef::XmlElement(tag)) => format!("<{tag}> {}", self.items[j].0),
                Content::Type(t) => format!("{t:?} {}", self.items[j].0),
                _ => format!("{}", self.items[j].0),
            }
        };
        // Keyed items with a right neighbour under the same key: not their key's value
        // (that is the rightmost). Yjs deletes an entry's left neighbour when it
        // integrates, so such a piece is either deleted, or the left part of an entry
        // split by an id pointing into it, which nothing deletes.
        let mut has_right = vec![false; n];
        for (y, &(_, item)) in self.items.iter().enumerate() {
            let (Some(o), Resolved::At(py, Some(ky))) = (item.origin, &places[y]) else {
                continue;
            };
            if let Some(Target::Item(x)) = self.find(o) {
                let (xid, xitem) = self.items[x];
                let last = u64::from(xid.clock) + u64::from(xitem.content.len()).max(1) - 1;
                if u64::from(o.clock) == last
                    && matches!(&places[x], Resolved::At(px, Some(kx)) if px == py && kx == ky)
                {
                    has_right[x] = true;
                }
            }
        }
        for (i, &(id, item)) in self.items.iter().enumerate() {
            if matches!(item.content, Content::Deleted(_)) {
                continue;
            }
            let what = describe(&item.content);
            let what = if has_right[i] {
                format!("{what} ({STALE_PIECE})")
            } else {
                what
            };
            let place = match &places[i] {
                Resolved::Nowhere(why) => {
                    found.push(format!("{id} {what} is placed nowhere ({why})"));
                    continue;
                }
                Resolved::At(place, sub) => (place, sub),
            };
            let (place, sub) = place;
            let where_ = match place {
                Place::Root(name) => format!("root {name:?}"),
                Place::Type(j) => name_of(*j),
            };
            let where_ = match sub {
                Some(k) => format!("{where_} key {k:?}"),
                None => where_,
            };
            match life[i] {
                Some(Life::Deleted) => {
                    found.push(format!(
                        "{id} {what} in {where_} is deleted but keeps its content"
                    ));
                    continue;
                }
                Some(Life::Unplaced) => {
                    found.push(format!(
                        "{id} {what} in {where_} is under an item placed nowhere"
                    ));
                    continue;
                }
                _ => {}
            }
            if let Some(problem) = self.problem(whitelist, &body, place, sub.as_deref(), item) {
                found.push(format!("{id} {what} in {where_}: {problem}"));
            }
        }
        found
    }

    /// What is wrong with a live `item` at `place` (key `sub`), if anything.
    fn problem(
        &self,
        whitelist: &Whitelist,
        body: &str,
        place: &Place,
        sub: Option<&str>,
        item: &v1::Item,
    ) -> Option<String> {
        let container = match place {
            Place::Root(name) if name == "title" => Container::Title,
            Place::Root(name) if name == body => Container::Element(None),
            Place::Root(_) => return Some("content in a root the document does not have".into()),
            Place::Type(j) => match &self.items[*j].1.content {
                Content::Type(TypeRef::XmlElement(tag)) => Container::Element(Some(tag)),
                Content::Type(TypeRef::XmlText) => Container::Text,
                // Inside a type that may not exist: that type is reported itself.
                _ => return None,
            },
        };
        match (container, sub) {
            (Container::Title, Some(_)) => Some("a keyed entry on the title".into()),
            (Container::Title, None) => match &item.content {
                Content::String(_) => None,
                Content::Format(_, v) if is_null(v) => None,
                _ => Some("the title holds only text".into()),
            },
            (Container::Element(None), Some(_)) => Some("a keyed entry on the body".into()),
            (Container::Element(_), None) => match &item.content {
                Content::Type(TypeRef::XmlText) => None,
                Content::Type(TypeRef::XmlElement(tag))
                    if whitelist.profile.allows_element(&whitelist.policy, tag) =>
                {
                    None
                }
                Content::Type(TypeRef::XmlElement(_)) => Some("element not allowed".into()),
                _ => Some("an element holds only elements and texts".into()),
            },
            (Container::Element(Some(tag)), Some(key)) => attribute(whitelist, tag, key, item),
            (Container::Text, Some(_)) => Some("a keyed entry on a text".into()),
            (Container::Text, None) => match &item.content {
                Content::String(_) => None,
                Content::Format(key, v) if mark_allowed(whitelist, key, v) => None,
                Content::Format(..) => Some("mark not allowed".into()),
                _ => Some("a text holds only strings and marks".into()),
            },
        }
    }
}

enum Container<'a> {
    Title,
    /// The body (`None`) or an element with this tag.
    Element(Option<&'a str>),
    Text,
}

fn describe(c: &Content) -> String {
    let short = |s: &str| -> String {
        if s.chars().count() > 40 {
            format!("{:?}…", s.chars().take(40).collect::<String>())
        } else {
            format!("{s:?}")
        }
    };
    match c {
        Content::Deleted(n) => format!("deleted({n})"),
        Content::Json(v) => format!("json{v:?}"),
        Content::Binary(b) => format!("binary({} bytes)", b.len()),
        Content::String(s) => format!("string {}", short(s)),
        Content::Embed(s) => format!("embed {}", short(s)),
        Content::Format(k, v) => format!("format {k:?}={}", short(v)),
        Content::Type(t) => format!("type {t:?}"),
        Content::Any(v) => format!("any{v:?}"),
        Content::Doc(g, _) => format!("doc {g:?}"),
        Content::Raw { kind, .. } => format!("raw kind {kind}"),
    }
}

fn is_null(json: &str) -> bool {
    matches!(
        serde_json::from_str::<serde_json::Value>(json),
        Ok(serde_json::Value::Null)
    )
}

/// A scalar as the text an attribute would carry (`None`: not a scalar).
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) | Value::BigInt(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Float32(f) => Some(f64::from(*f).to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        }),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The attribute `key` on an element `tag`: every reading of the entry's value must be
/// a scalar the policy allows there.
fn attribute(whitelist: &Whitelist, tag: &str, key: &str, item: &v1::Item) -> Option<String> {
    // Each reading a Yjs or yrs reader may take of the entry.
    let readings: Vec<Option<String>> = match &item.content {
        Content::Any(values) => values.iter().map(value_text).collect(),
        // yrs reads a string entry whole.
        Content::String(s) => vec![Some(s.clone())],
        // yrs reads the JSON text itself, Yjs the value it parses to.
        Content::Json(texts) => texts
            .iter()
            .flat_map(|t| {
                let parsed = serde_json::from_str::<serde_json::Value>(t)
                    .ok()
                    .and_then(|v| json_text(&v));
                [Some(t.clone()), parsed]
            })
            .collect(),
        Content::Embed(json) => vec![serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| json_text(&v))],
        _ => vec![None],
    };
    for reading in readings {
        let Some(text) = reading else {
            return Some("an attribute value that is not a string, number or bool".into());
        };
        let allowed = if whitelist.profile.is_identity() {
            whitelist.policy.allows_attribute(tag, key, &text)
        } else {
            whitelist
                .profile
                .allows_attribute(&whitelist.policy, tag, key, &text)
        };
        if !allowed {
            return Some(format!("attribute not allowed ({key}={text:?})"));
        }
    }
    None
}

/// A format item in a text: a null value ends a mark; otherwise the key (less
/// y-prosemirror's `--suffix`) must be an allowed mark with `true` or an object of
/// allowed scalar attributes.
fn mark_allowed(whitelist: &Whitelist, key: &str, json: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return false;
    };
    let name = key.split_once("--").map_or(key, |(n, _)| n);
    let allows = |attrs: &[(&str, &str)]| {
        whitelist
            .profile
            .allows_mark(&whitelist.policy, name, attrs)
    };
    match &value {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(true) => allows(&[]),
        serde_json::Value::Object(map) => {
            let mut pairs: Vec<(&str, String)> = Vec::new();
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                match json_text(v) {
                    Some(t) => pairs.push((k, t)),
                    None => return false,
                }
            }
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            allows(&borrowed)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{encode, Item, Run, Update};
    use std::sync::Arc;
    use yrs::updates::decoder::Decode;
    use yrs::{
        Any, GetString, Map, Text, WriteTxn, Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim,
    };

    fn apply(doc: &Doc, bytes: &[u8]) {
        let update = yrs::Update::decode_v1(bytes).expect("decodes");
        doc.transact_mut().apply_update(update).expect("applies");
    }

    /// The body `<p>hi</p>` as client 1 makes it: p at 1:0, its text at 1:1, "hi" at 1:2..4.
    fn paragraph_hi() -> Doc {
        let doc = Doc::with_client_id(1);
        {
            let mut txn = doc.transact_mut();
            let body = txn.get_or_insert_xml_fragment("body");
            let p = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
            p.push_back(&mut txn, XmlTextPrelim::new("hi"));
        }
        doc
    }

    /// The bypass: a lone format item after the last character of `hi` (1:3), then a
    /// string whose origin is that format item.
    pub(crate) fn lone_format_attack() -> [Vec<u8>; 2] {
        let format = Update {
            runs: vec![Run {
                client: 9,
                clock: 0,
                blocks: vec![Block::Item(Item {
                    origin: Some(Id {
                        client: 1,
                        clock: 3,
                    }),
                    right_origin: None,
                    parent: None,
                    parent_sub: None,
                    content: Content::Format(
                        "a".into(),
                        r#"{"href":"javascript:alert(1)"}"#.into(),
                    ),
                })],
            }],
            deletes: vec![],
        };
        let text = Update {
            runs: vec![Run {
                client: 9,
                clock: 1,
                blocks: vec![Block::Item(Item {
                    origin: Some(Id {
                        client: 9,
                        clock: 0,
                    }),
                    right_origin: None,
                    parent: None,
                    parent_sub: None,
                    content: Content::String("click".into()),
                })],
            }],
            deletes: vec![],
        };
        [encode(&format), encode(&text)]
    }

    #[test]
    fn normal_yrs_content_has_no_violations() {
        let doc = paragraph_hi();
        {
            let mut txn = doc.transact_mut();
            let title = txn.get_or_insert_text("title");
            title.insert(&mut txn, 0, "Release notes");
            title.remove_range(&mut txn, 0, 3);
            let body = txn.get_or_insert_xml_fragment("body");
            let h = body.push_back(&mut txn, XmlElementPrelim::empty("h2"));
            h.insert_attribute(&mut txn, "class", "big");
            let t = h.push_back(&mut txn, XmlTextPrelim::new("hello world"));
            let link = Any::from(std::collections::HashMap::from([(
                "href".to_owned(),
                Any::from("https://example.com/"),
            )]));
            t.format(
                &mut txn,
                0,
                5,
                yrs::types::Attrs::from([(Arc::from("a"), link)]),
            );
            t.format(
                &mut txn,
                2,
                5,
                yrs::types::Attrs::from([(Arc::from("strong"), Any::Bool(true))]),
            );
            t.remove_range(&mut txn, 1, 3);
            let a = body.push_back(&mut txn, XmlElementPrelim::empty("a"));
            a.insert_attribute(&mut txn, "href", "https://example.com/x");
            a.insert_attribute(&mut txn, "href", "/y");
            let gone = body.push_back(&mut txn, XmlElementPrelim::empty("ul"));
            let li = gone.push_back(&mut txn, XmlElementPrelim::empty("li"));
            li.push_back(&mut txn, XmlTextPrelim::new("x"));
            body.remove_range(&mut txn, 3, 1);
        }
        let found = violations(&doc, &Whitelist::default());
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn the_lone_format_attack_is_flagged() {
        let doc = paragraph_hi();
        let [format, text] = lone_format_attack();
        apply(&doc, &format);
        let after_format = violations(&doc, &Whitelist::default());
        assert_eq!(after_format.len(), 1, "{after_format:#?}");
        assert!(
            after_format[0].contains("mark not allowed"),
            "{after_format:#?}"
        );
        apply(&doc, &text);
        let found = violations(&doc, &Whitelist::default());
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("9:0 format \"a\"") && v.contains("mark not allowed")),
            "{found:#?}"
        );
        // what a reader sees: the link mark on the new text
        let body = doc.get_or_insert_xml_fragment("body");
        let txn = doc.transact();
        let Some(yrs::XmlOut::Element(p)) = body.get(&txn, 0) else {
            panic!("no p")
        };
        let Some(yrs::XmlOut::Text(t)) = p.get(&txn, 0) else {
            panic!("no text")
        };
        assert!(t.get_string(&txn).contains("javascript:alert(1)"));
    }

    #[test]
    fn what_the_rules_refuse_is_flagged() {
        let doc = paragraph_hi();
        {
            let mut txn = doc.transact_mut();
            let title = txn.get_or_insert_text("title");
            title.insert_embed(&mut txn, 0, Any::from("x"));
            let body = txn.get_or_insert_xml_fragment("body");
            let s = body.push_back(&mut txn, XmlElementPrelim::empty("script"));
            s.insert_attribute(&mut txn, "onclick", "x");
            let a = body.push_back(&mut txn, XmlElementPrelim::empty("a"));
            a.insert_attribute(&mut txn, "href", "javascript:x");
            let t = a.push_back(&mut txn, XmlTextPrelim::new("x"));
            t.insert_embed(&mut txn, 1, Any::from("y"));
            t.format(
                &mut txn,
                0,
                1,
                yrs::types::Attrs::from([(Arc::from("script"), Any::Bool(true))]),
            );
            let other = txn.get_or_insert_map("other");
            other.insert(&mut txn, "k", "v");
        }
        let found = violations(&doc, &Whitelist::default());
        for expected in [
            "root \"title\": the title holds only text",
            "type XmlElement(\"script\") in root \"body\": element not allowed",
            "key \"onclick\": attribute not allowed",
            "key \"href\": attribute not allowed",
            "a text holds only strings and marks",
            "format \"script\"=\"true\"",
            "content in a root the document does not have",
        ] {
            assert!(
                found.iter().any(|f| f.contains(expected)),
                "{expected} not in {found:#?}"
            );
        }
    }
}
