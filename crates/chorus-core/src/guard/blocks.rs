//! The items of an update read from its bytes, for what yrs' type API cannot show.
//!
//! The guard reads a document through yrs' public types: children, attributes, a
//! text's chunks. Those show every *countable* item (strings, embeds, values, nodes)
//! and every map entry, but not a formatting item: it occupies no position, and a
//! text's diff or delta shows it only through the text after it. A hand-encoded
//! update can hold a format item with nothing after it (or under an element, or as a
//! map entry), and a later update of plain strings can then put text after it: the
//! value reaches every editor without ever showing in a delta the guard reads
//! (`YRS-NOTES`). So the guard also judges every format item by itself, here, from
//! the encoding: its key, its value and where it landed. A format item is kept only
//! in a text: in the `title` only as an end marker (`null`), in a body text as an end
//! marker or an allowed mark. Any other is deleted by its id.
//!
//! The reading also refuses, before anything is applied, what a Yjs 13 client
//! cannot decode: content kinds past 9 (yrs' move) and type refs past 6 (yrs' weak
//! link, undefined). Relayed, every stock Yjs client in the document would fail
//! to read the update, drop it whole, and then hold the sender's later updates as
//! pending: a silent divergence.
//! Items that yrs would link differently from Yjs (or into two nodes at once) are
//! refused before anything is applied as well, from the same reading
//! (`blocks/linking.rs`).
//!
//! Where an item landed is found without yrs' private block store: an item with
//! neither origin sits where its encoding says (a root by name, or the type item by
//! id); one with an origin sits where that origin does (else where its right origin
//! does), as yrs places it. An origin inside the same update is followed in the
//! update; one outside it is asked of the document ([`yrs::StickyIndex`], which walks
//! the origin's siblings to its left). Past [`LOOKUP_BUDGET`] items walked in one
//! update, the whole document is read from its own encoding instead, where every
//! origin is inside.

use super::lib0::{Cursor, Unreadable};
use super::marks::mark_allowed;
use super::nodes::{parent_of, utf16_len};
use chorus_whitelist::{EditorProfile, Policy};
use rustc_hash::FxHashMap;
use std::sync::Arc;
use yrs::branch::{BranchID, BranchPtr};
use yrs::types::TypeRef;
use yrs::{Any, Assoc, ClientID, IndexScope, ReadTxn, StateVector, StickyIndex, ID};

mod linking;

/// Flags of an item's info byte.
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
/// The content kind, as Yjs reads it (five bits; yrs reads four).
const KIND_MASK: u8 = 0b1_1111;
const GC: u8 = 0;
const DELETED: u8 = 1;
const JSON: u8 = 2;
const BINARY: u8 = 3;
const STRING: u8 = 4;
const EMBED: u8 = 5;
const FORMAT: u8 = 6;
const TYPE: u8 = 7;
const ANY: u8 = 8;
const DOC: u8 = 9;
const SKIP: u8 = 10;
/// Node kinds a Yjs 13 client reads (array … XML text); those with a name.
const LAST_YJS_TYPE_REF: u64 = 6;
const TYPE_TEXT: u64 = 2;
const TYPE_XML_ELEMENT: u64 = 3;
const TYPE_XML_HOOK: u64 = 5;
const TYPE_XML_TEXT: u64 = 6;
/// How many items the questions about origins outside the update may walk in all
/// (each walks its origin's left siblings: at most the length of their parent)
/// before the whole document is read from its own encoding instead. An external
/// change that edits every paragraph of a large draft asks once per paragraph, each
/// a short walk; one crafted update asking many times about a huge text does not
/// get to walk it each time.
pub(crate) const LOOKUP_BUDGET: u64 = 1 << 20;

/// Where an item's parent is named.
#[derive(Debug, Clone)]
enum Parent {
    /// Where its origin (or right origin) is.
    Inherited,
    Root(Arc<str>),
    Item(ID),
}

/// One item of an update.
#[derive(Debug, Clone)]
struct Item {
    clock: u32,
    len: u32,
    origin: Option<ID>,
    right_origin: Option<ID>,
    parent: Parent,
    /// A map entry by its own encoding (its parent and key written).
    keyed: bool,
    /// Flagged a map entry (yrs and Yjs flag every entry, even where its key is
    /// not written; a hand-encoded update may flag anything, or nothing).
    flagged: bool,
    /// The node kind, for a type item.
    type_ref: Option<u64>,
}

/// A format item: its id, key and value.
#[derive(Debug, Clone)]
pub(crate) struct Format {
    pub id: ID,
    pub key: Arc<str>,
    pub value: Any,
}

/// What the guard needs of an update's items.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    /// Items of each client, in clock order.
    clients: FxHashMap<u64, Vec<Item>>,
    /// Every format item.
    pub formats: Vec<Format>,
    /// Every string item holding a character past U+FFFF.
    pub astral: Vec<ID>,
    /// Every embed item.
    pub embeds: Vec<ID>,
    /// Every countable item that starts before what the document knows of its
    /// client and ends after it (see [`Blocks::straddles_parents`]).
    pub straddling: Vec<ID>,
    /// Every countable item longer than one clock placed through its origins
    /// (see [`Blocks::long_map_entries`]).
    pub long: Vec<ID>,
    /// The origin and right origin of every item that has both (see
    /// [`Blocks::sides_disagree`]); read even where nothing else is.
    pub beside: Vec<(ID, ID)>,
}

/// Where a format item landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Title,
    BodyText,
    /// Anywhere else: an element's or the body's children, a map entry, another root.
    Elsewhere,
    /// Nowhere: its origin was collected, so yrs collected it too.
    Gone,
}

impl Blocks {
    /// Read an update (lib0 v1). Only its structs are read; its delete set is not.
    /// An update without format items holds no items here (nothing to place).
    /// `known`: what the document holds of each client, for an update about to be
    /// applied to it.
    pub fn read(update: &[u8], known: Option<&StateVector>) -> Result<Blocks, Unreadable> {
        // A first pass that allocates nothing: most updates (a keystroke) hold no
        // format item, and need only the check that Yjs can read them.
        // (The count is of format items, strings with astral characters,
        // straddling items and items whose right origin the update brings; a
        // keystroke's right origin is all it keeps.)
        let (first, count) = Blocks::walk(update, known, false)?;
        if count == 0 {
            return Ok(first);
        }
        Ok(Blocks::walk(update, known, true)?.0)
    }

    /// Read the structs; collect the items (and the format items' values) only if
    /// `collect`. Also returns how many items need a closer look.
    fn walk(
        update: &[u8],
        known: Option<&StateVector>,
        collect: bool,
    ) -> Result<(Blocks, usize), Unreadable> {
        let mut r = Cursor::new(update);
        let mut counted = 0usize;
        let mut astral = 0usize;
        let mut straddling = 0usize;
        let mut long = 0usize;
        let mut beside_new = 0usize;
        let mut collected: Vec<(u64, u32, u32)> = Vec::new();
        let mut blocks = Blocks::default();
        let mut items: Vec<(u64, Item)> = Vec::new();
        let clients = r.var()?;
        // The clients seen, to refuse one given twice: a few in an array (a keystroke
        // names one), more in a vector.
        let mut few = [0u64; 8];
        let mut many = Vec::new();
        for n in 0..clients {
            let structs = r.var()?;
            let client = r.var()?;
            match usize::try_from(n) {
                Ok(n) if n < few.len() => {
                    if few[..n].contains(&client) {
                        return Err(Unreadable::Malformed);
                    }
                    few[n] = client;
                }
                _ => many.push(client),
            }
            let mut clock = r.clock()?;
            let held = known.map_or(0, |sv| sv.get(&ClientID::new(client)));
            for _ in 0..structs {
                let info = r.byte()?;
                let kind = info & KIND_MASK;
                if kind == GC || kind == SKIP {
                    let len = r.clock()?;
                    let end = clock.checked_add(len).ok_or(Unreadable::Malformed)?;
                    if kind == GC {
                        collected.push((client, clock, end));
                    }
                    clock = end;
                    continue;
                }
                let origin = (info & HAS_ORIGIN != 0).then(|| r.id()).transpose()?;
                let right_origin = (info & HAS_RIGHT_ORIGIN != 0).then(|| r.id()).transpose()?;
                if let (Some(left), Some(right), Some(_)) = (origin, right_origin, known) {
                    blocks.beside.push((left, right));
                    if !self::held(known, &right) || !self::held(known, &left) {
                        beside_new += 1;
                    }
                }
                let (mut parent, mut keyed) = (Parent::Inherited, false);
                if origin.is_none() && right_origin.is_none() {
                    parent = match r.var()? {
                        1 => Parent::Root(Arc::from(r.string()?)),
                        _ => Parent::Item(r.id()?),
                    };
                    if info & HAS_PARENT_SUB != 0 {
                        r.string()?;
                        keyed = true;
                    }
                }
                let mut type_ref = None;
                let len = match kind {
                    DELETED => r.clock()?,
                    // Legacy JSON content: Yjs 13 reads `count` texts, yrs 0.28 one more.
                    // Whatever the room kept, peers would read differently; no current
                    // Yjs writes it.
                    JSON => return Err(Unreadable::Misread),
                    BINARY => {
                        r.bytes()?;
                        1
                    }
                    STRING => {
                        let text = r.string()?;
                        let len = utf16_len(text);
                        if len as usize != text.chars().count() {
                            // Characters past U+FFFF: placed before the update is applied.
                            astral += 1;
                            if collect {
                                blocks.astral.push(ID::new(ClientID::new(client), clock));
                            }
                        }
                        len
                    }
                    EMBED => {
                        r.string()?;
                        // No policy allows an embed: each is deleted by id (a string
                        // embed of one character reads as text through the text API).
                        counted += 1;
                        if collect {
                            blocks.embeds.push(ID::new(ClientID::new(client), clock));
                        }
                        1
                    }
                    FORMAT => {
                        let (key, json) = (r.string()?, r.string()?);
                        counted += 1;
                        if collect {
                            let value = Any::from_json(json).map_err(|_| Unreadable::Malformed)?;
                            blocks.formats.push(Format {
                                id: ID::new(ClientID::new(client), clock),
                                key: Arc::from(key),
                                value,
                            });
                        }
                        1
                    }
                    TYPE => {
                        let kind = r.var()?;
                        if kind > LAST_YJS_TYPE_REF {
                            return Err(Unreadable::NotYjs);
                        }
                        if kind == TYPE_XML_HOOK {
                            // Yjs reads a hook's name, yrs 0.28.1 does not: what follows
                            // would be read as different items by the two.
                            return Err(Unreadable::Misread);
                        }
                        if kind == TYPE_XML_ELEMENT {
                            r.string()?;
                        }
                        type_ref = Some(kind);
                        1
                    }
                    ANY => {
                        let n = r.clock()?;
                        for _ in 0..n {
                            r.value(0)?;
                        }
                        n
                    }
                    DOC => {
                        r.string()?;
                        r.value(0)?;
                        1
                    }
                    _ => return Err(Unreadable::NotYjs),
                };
                if len == 0 {
                    return Err(Unreadable::Malformed);
                }
                if keyed && len > 1 && kind != DELETED {
                    // A map entry Yjs writes is one clock long; a longer one can be
                    // split by an id pointing into it, and a removed entry would
                    // leave its left part behind.
                    return Err(Unreadable::Malformed);
                }
                if len > 1 && kind != DELETED && matches!(parent, Parent::Inherited) {
                    long += 1;
                    if collect {
                        blocks.long.push(ID::new(ClientID::new(client), clock));
                    }
                }
                if kind != DELETED && clock < held && clock.saturating_add(len) > held {
                    straddling += 1;
                    if collect {
                        blocks
                            .straddling
                            .push(ID::new(ClientID::new(client), clock));
                    }
                }
                if !collect {
                    clock = clock.checked_add(len).ok_or(Unreadable::Malformed)?;
                    continue;
                }
                items.push((
                    client,
                    Item {
                        clock,
                        len,
                        origin,
                        right_origin,
                        parent,
                        keyed,
                        flagged: info & HAS_PARENT_SUB != 0,
                        type_ref,
                    },
                ));
                clock = clock.checked_add(len).ok_or(Unreadable::Malformed)?;
            }
        }
        // Each client's structs once: Yjs keeps the last list given for a client,
        // yrs appends them all, and from two lists of one client yrs emitted an
        // update that does not make what it applied (a stored record that did not
        // load, found by `room_receive_raw`).
        if !many.is_empty() {
            many.extend_from_slice(&few);
            many.sort_unstable();
            if many.windows(2).any(|w| w[0] == w[1]) {
                return Err(Unreadable::Malformed);
            }
        }
        // An item whose origin this update gives as collected: Yjs collects the item
        // too (its parent was deleted), yrs places it by its right origin, in
        // whatever node that is. Likewise one with an origin whose right origin
        // this update gives as collected: yrs places it by its origin. A real client
        // never writes one (an item of a deleted parent is collected with it, and
        // its neighbours are its siblings).
        if !collected.is_empty() {
            let in_collected = |id: &ID| {
                collected.iter().any(|&(c, start, end)| {
                    c == id.client.get() && (start..end).contains(&id.clock)
                })
            };
            if items.iter().any(|(_, item)| {
                item.origin.as_ref().is_some_and(in_collected)
                    || (item.origin.is_some()
                        && item.right_origin.as_ref().is_some_and(in_collected))
            }) {
                return Err(Unreadable::Misread);
            }
        }
        if collect {
            for (client, item) in items {
                blocks.clients.entry(client).or_default().push(item);
            }
            for list in blocks.clients.values_mut() {
                list.sort_by_key(|i| i.clock);
            }
        }
        Ok((
            blocks,
            counted + astral + straddling + long + beside_new + collected.len(),
        ))
    }

    /// The item of this update that holds `id`.
    fn find(&self, id: &ID) -> Option<(u64, usize)> {
        let client = id.client.get();
        let list = self.clients.get(&client)?;
        let i = list.partition_point(|item| item.clock <= id.clock);
        let item = list.get(i.checked_sub(1)?)?;
        (id.clock < item.clock + item.len).then_some((client, i - 1))
    }

    /// The ids of the format items that must go, among those integrated after
    /// `before` (earlier ones were judged when they arrived): outside a text, a mark in
    /// the title, a refused mark in a body text.
    ///
    /// `before: None` judges every format item (the whole document read from its
    /// own encoding, where every origin is inside: nothing is walked).
    pub fn refused_formats<T: ReadTxn>(
        &self,
        txn: &T,
        before: Option<&StateVector>,
        places: &Places,
        policy: &Policy,
        profile: &EditorProfile,
    ) -> Vec<ID> {
        let mut memo: FxHashMap<(u64, usize), Place> = FxHashMap::default();
        let mut walked = 0u64;
        let mut refused = Vec::new();
        // What yrs held back (a missing dependency) is not in the document: deleting
        // it by id would leave a deletion of an unknown id in what is relayed and
        // stored, which no one can load.
        let now = txn.state_vector();
        for format in &self.formats {
            if before.is_some_and(|sv| format.id.clock < sv.get(&format.id.client))
                || format.id.clock >= now.get(&format.id.client)
            {
                continue;
            }
            // A mark refused anywhere needs no place.
            let allowed_in_text = match &format.value {
                Any::Null => true,
                value => mark_allowed(policy, profile, &format.key, value),
            };
            if !allowed_in_text {
                refused.push(format.id);
                continue;
            }
            let Some(at) = self.find(&format.id) else {
                continue;
            };
            let place = self.place_as(txn, at, places, &mut memo, &mut walked, before, false);
            let keep = match place {
                Place::Gone => true,
                Place::Title => format.value == Any::Null,
                Place::BodyText => true,
                Place::Elsewhere => false,
            };
            if !keep {
                refused.push(format.id);
            }
            if walked > LOOKUP_BUDGET && before.is_some() {
                // Too many walks of existing siblings: read the document instead.
                return whole_document_formats(txn, places, policy, profile);
            }
        }
        refused
    }

    /// The embed items the document now holds, among those integrated after `before`
    /// (`None`: all).
    pub fn held_embeds<T: ReadTxn>(&self, txn: &T, before: Option<&StateVector>) -> Vec<ID> {
        let now = txn.state_vector();
        self.embeds
            .iter()
            .filter(|id| {
                before.is_none_or(|sv| id.clock >= sv.get(&id.client))
                    && id.clock < now.get(&id.client)
            })
            .copied()
            .collect()
    }

    /// Whether a string with characters past U+FFFF would land where only nodes go
    /// (the children of the body or an element, a map entry, another root), asked
    /// before the update is applied. yrs 0.28 reads such a string there by
    /// characters but measures it in UTF-16 units, and any walk of those children
    /// (the guard's, a render's) never ends: the update is refused instead. Only a
    /// hand-encoded update puts a string there.
    pub fn misplaces_strings<T: ReadTxn>(
        &self,
        txn: &T,
        known: &StateVector,
        places: &Places,
    ) -> bool {
        let mut memo = FxHashMap::default();
        let mut walked = 0u64;
        self.astral.iter().any(|id| {
            self.find(id).is_some_and(|at| {
                let place =
                    self.place_as(txn, at, places, &mut memo, &mut walked, Some(known), true);
                place == Place::Elsewhere
            })
        })
    }

    /// Where the item at `at` landed: follow origins inside the update, then ask the
    /// document once. `before_apply`: the update's own nodes are not in the document
    /// yet, so a parent among them is judged by its kind (a text or not).
    ///
    /// `known`: what the document held before the update. An origin it held is
    /// asked of the document even where the update repeats it: yrs keeps its own
    /// copy, and a repeated one may name another parent.
    #[allow(clippy::too_many_arguments)]
    fn place_as<T: ReadTxn>(
        &self,
        txn: &T,
        at: (u64, usize),
        places: &Places,
        memo: &mut FxHashMap<(u64, usize), Place>,
        walked: &mut u64,
        known: Option<&StateVector>,
        before_apply: bool,
    ) -> Place {
        let mut path = Vec::new();
        let mut on_path = rustc_hash::FxHashSet::default();
        let mut current = at;
        let place = loop {
            if let Some(place) = memo.get(&current) {
                break *place;
            }
            if !on_path.insert(current) {
                // A cycle of origins: yrs cannot have integrated it.
                break Place::Gone;
            }
            path.push(current);
            let item = &self.clients[&current.0][current.1];
            if item.origin.is_some() || item.right_origin.is_some() {
                // yrs takes the parent from the origin when that is an item it
                // holds, else from the right origin (an origin in a collected range
                // is not an item: a format item after one landed by its right origin,
                // in an element, found by `room_receive_blocks`).
                let mut landed = Place::Gone;
                let mut follow = None;
                for link in [item.origin, item.right_origin].into_iter().flatten() {
                    if !held(known, &link) {
                        if let Some(next) = self.find(&link) {
                            follow = Some(next);
                            break;
                        }
                    }
                    landed = places.of_existing(txn, link, walked);
                    if landed != Place::Gone {
                        break;
                    }
                }
                match follow {
                    Some(next) => {
                        current = next;
                        continue;
                    }
                    None => break landed,
                }
            }
            if item.keyed {
                break Place::Elsewhere;
            }
            break match &item.parent {
                Parent::Root(name) => places.of_root(name),
                Parent::Item(id) if held(known, id) => match BranchID::get_nested(txn, id) {
                    Some(branch) => places.of_branch(branch),
                    None => Place::Gone,
                },
                Parent::Item(id) => match (before_apply, self.find(id)) {
                    (true, Some((client, i))) => match self.clients[&client][i].type_ref {
                        Some(TYPE_TEXT | TYPE_XML_TEXT) => Place::BodyText,
                        _ => Place::Elsewhere,
                    },
                    _ => match BranchID::get_nested(txn, id) {
                        Some(branch) => places.of_branch(branch),
                        // Not a type (then yrs collects the item) or collected.
                        None => Place::Gone,
                    },
                },
                Parent::Inherited => Place::Gone,
            };
        };
        for step in path {
            memo.insert(step, place);
        }
        place
    }
}

/// Whether the document held `id` before the update (`known`: what it held).
fn held(known: Option<&StateVector>, id: &ID) -> bool {
    known.is_some_and(|sv| id.clock < sv.get(&id.client))
}

/// The format items of the whole document that must go (the document read from its
/// own encoding, where every origin is an item of the same encoding).
pub(crate) fn whole_document_formats<T: ReadTxn>(
    txn: &T,
    places: &Places,
    policy: &Policy,
    profile: &EditorProfile,
) -> Vec<ID> {
    whole_document(txn, |blocks| {
        blocks.refused_formats(txn, None, places, policy, profile)
    })
}

/// The embed items of the whole document (none is allowed).
pub(crate) fn whole_document_embeds<T: ReadTxn>(txn: &T) -> Vec<ID> {
    whole_document(txn, |blocks| blocks.held_embeds(txn, None))
}

fn whole_document<T: ReadTxn>(txn: &T, judge: impl FnOnce(&Blocks) -> Vec<ID>) -> Vec<ID> {
    let state = txn.encode_state_as_update_v1(&StateVector::default());
    match Blocks::read(&state, None) {
        // Judged from the start: every item counts.
        Ok(blocks) => judge(&blocks),
        // The document's own encoding reads: what Yjs cannot read is refused before
        // it is applied, and a stored document is loaded through the same room.
        Err(e) => {
            tracing::warn!(
                ?e,
                "the document's own encoding does not read; format items unchecked"
            );
            Vec::new()
        }
    }
}

/// The document's two roots, to tell where a branch is.
#[derive(Clone, Copy)]
pub(crate) struct Places {
    pub title: BranchPtr,
    pub body: BranchPtr,
}

impl Places {
    fn of_root(&self, name: &str) -> Place {
        // The roots are the document's own branches (yrs made them when the room did).
        match name {
            "title" => Place::Title,
            _ => Place::Elsewhere,
        }
    }

    fn of_branch(&self, branch: BranchPtr) -> Place {
        if branch == self.title {
            return Place::Title;
        }
        if !matches!(branch.type_ref(), TypeRef::XmlText) {
            return Place::Elsewhere;
        }
        let mut top = branch;
        while let Some(parent) = parent_of(top) {
            top = parent;
        }
        if top == self.body {
            Place::BodyText
        } else {
            Place::Elsewhere
        }
    }

    /// Where an item the document already holds sits (the branch of its parent);
    /// adds what yrs may have walked to find it (its parent's length) to `walked`.
    fn of_existing<T: ReadTxn>(&self, txn: &T, id: ID, walked: &mut u64) -> Place {
        let index = StickyIndex::new(IndexScope::Relative(id), Assoc::After);
        match index.get_offset(txn) {
            Some(offset) => {
                *walked += u64::from(offset.branch.block_len.max(1));
                self.of_branch(offset.branch)
            }
            None => Place::Gone,
        }
    }
}

/// Delete every item in `set` (what is deleted already stays so), as a delete set
/// applied like a peer's: a format item has no position a type's API could name.
pub(crate) fn delete_set(txn: &mut yrs::TransactionMut, set: &yrs::IdSet) {
    use yrs::encoding::write::Write;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
    if set.is_empty() {
        return;
    }
    let mut encoder = EncoderV1::new();
    encoder.write_var(0u32); // no structs
    set.encode(&mut encoder);
    let bytes = encoder.to_vec();
    let update = yrs::Update::decode_v1(&bytes).expect("a delete set we encoded decodes");
    // Deleting known items cannot leave anything pending.
    let _ = txn.apply_update(update);
}
