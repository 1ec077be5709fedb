//! Items of an update that yrs would link into the document differently from Yjs,
//! or into two nodes at once, refused before the update is applied: an item whose
//! known head sits in another node ([`Blocks::straddles_parents`]), one longer than
//! a clock that would land as a map entry ([`Blocks::long_map_entries`]), one whose
//! right origin is a map entry or whose two sides disagree on being collected
//! ([`Blocks::sides_disagree`]). Each was found by fuzzing (docs/FUZZING.md); no
//! client writes any of them.
//!
//! These ask where an item lands as a map entry or a sequence item, and in which
//! node; judging format items by their place is the parent's (`blocks.rs`).

use super::{held, Blocks, Parent, GC, HAS_PARENT_SUB, KIND_MASK, SKIP};
use crate::guard::lib0::Cursor;
use rustc_hash::FxHashMap;
use yrs::branch::{BranchID, BranchPtr};
use yrs::{Assoc, IndexScope, ReadTxn, StateVector, StickyIndex, ID};

/// How many items of one update may straddle what the document knows of their
/// clients (each is checked with an encoding of part of its client's clocks). A real
/// client's update straddles at most once per client it merged items of.
const MAX_STRADDLING: usize = 64;

/// How many right origins of one update are told apart from map entries by their
/// position (each walks its left siblings) before the whole document is read once
/// instead. A keystroke has one; a paste with marks one per run.
const MAX_POSITION_LOOKUPS: usize = 32;

/// How many items whose position cannot tell are read from an encoding of their
/// client's later clocks before the whole document is read once instead.
const MAX_TAIL_ENCODINGS: usize = 4;

impl Blocks {
    /// Whether an item the document already holds the start of would be joined to
    /// a node it does not belong to, asked before the update is applied.
    ///
    /// yrs (like Yjs) applies only the unknown tail of such an item: it links the
    /// tail right of its client's last known clock (the *head*) and keeps the parent
    /// the encoding names (or its origin's), and takes a map key from the head or
    /// its right neighbour. A real client re-sends a merged item whose head sits in
    /// the same node and is not a map entry. A hand-encoded one whose head sits in
    /// another node was linked into one node's list and counted in another: every
    /// walk of either node then ran past its end forever (found by
    /// `room_receive_raw`, an update that hung the room). One whose head or right
    /// neighbour is a map entry becomes a map entry longer than one clock.
    pub fn straddles_parents<T: ReadTxn>(&self, txn: &T, known: &StateVector) -> bool {
        if self.straddling.is_empty() {
            return false;
        }
        if self.straddling.len() > MAX_STRADDLING {
            return true;
        }
        let (mut memo, mut document) = (FxHashMap::default(), DocumentKeys::default());
        self.straddling.iter().any(|id| {
            let Some(at) = self.find(id) else {
                return true;
            };
            let head = ID::new(id.client, known.get(&id.client).saturating_sub(1));
            let item = &self.clients[&at.0][at.1];
            let right_keyed = item.right_origin.is_some_and(|r| {
                match self.find(&r).filter(|_| !held(Some(known), &r)) {
                    Some(next) => self.lands_keyed(txn, known, next, &mut memo, &mut document),
                    None => self.link_keyed(txn, known, r, &mut memo, &mut document),
                }
            });
            if keyed_in_document(txn, known, head) != Some(false) || right_keyed {
                return true;
            }
            match (existing_branch(txn, head), self.branch_of(txn, known, at)) {
                (Some(a), Some(b)) => a != b,
                _ => true,
            }
        })
    }

    /// Whether an item longer than one clock would become a map entry, asked before
    /// the update is applied. yrs takes an item's key from its left neighbour (its
    /// origin), else from its right one; Yjs writes every entry one clock long.
    /// A longer one can be split by a later id pointing into it: removing the
    /// entry then leaves its left part, undeleted, in what joiners and the store
    /// get (found by `room_receive_blocks`: a refused value carried, not shown).
    pub fn long_map_entries<T: ReadTxn>(&self, txn: &T, known: &StateVector) -> bool {
        if self.long.is_empty() {
            return false;
        }
        let (mut memo, mut document) = (FxHashMap::default(), DocumentKeys::default());
        self.long.iter().any(|id| {
            self.find(id)
                .is_some_and(|at| self.lands_keyed(txn, known, at, &mut memo, &mut document))
        })
    }

    /// Whether the item at `at` lands as a map entry: written as one, or next to
    /// one (its origin, else its right origin, as yrs takes the key). Over the
    /// update's own chains without recursion (a paste chains thousands of items).
    fn lands_keyed<T: ReadTxn>(
        &self,
        txn: &T,
        known: &StateVector,
        at: (u64, usize),
        memo: &mut FxHashMap<(u64, usize), bool>,
        document: &mut DocumentKeys,
    ) -> bool {
        let mut visiting = rustc_hash::FxHashSet::default();
        let mut stack = vec![(at, false)];
        while let Some((current, expanded)) = stack.pop() {
            if memo.contains_key(&current) {
                continue;
            }
            let item = &self.clients[&current.0][current.1];
            let links = [item.origin, item.right_origin];
            if !expanded {
                if !visiting.insert(current) {
                    // A cycle of origins: yrs cannot integrate it.
                    continue;
                }
                stack.push((current, true));
                for link in links.into_iter().flatten() {
                    if held(Some(known), &link) {
                        continue;
                    }
                    if let Some(next) = self.find(&link) {
                        if !memo.contains_key(&next) && !visiting.contains(&next) {
                            stack.push((next, false));
                        }
                    }
                }
                continue;
            }
            let mut keyed = item.keyed;
            for link in links.into_iter().flatten() {
                keyed = keyed || self.link_keyed(txn, known, link, memo, document);
            }
            memo.insert(current, keyed);
        }
        memo.get(&at).copied().unwrap_or(false)
    }

    /// Whether an item with both an origin and a right origin would be read
    /// differently by yrs and by Yjs, asked before the update is applied:
    ///
    /// - its right origin is (or lands as) a map entry. yrs takes an item's key
    ///   from its origin, and where that has none from its right origin; Yjs only
    ///   from its origin. The room filed a string after a list item's text as the
    ///   item's attribute and deleted that text, where a Yjs client holds text.
    /// - one of the two is collected and the other is not. Yjs collects an item
    ///   next to a collected one (its parent was deleted); yrs places it by the
    ///   other side. Integrating such an item's stored record again, where its
    ///   right origin was not collected yet, made it a map entry of the title and
    ///   cut the title short (both found by `room_receive_blocks`).
    ///
    /// No client writes either: a map entry has no right origin, a sequence item's
    /// neighbours are its siblings, and siblings are collected together.
    pub fn sides_disagree<T: ReadTxn>(&self, txn: &T, known: &StateVector) -> bool {
        if self.beside.is_empty() {
            return false;
        }
        let (mut memo, mut document) = (FxHashMap::default(), DocumentKeys::default());
        if self.beside.len() > MAX_POSITION_LOOKUPS {
            // Each position walks its item's left siblings: read the document once.
            document.read_whole(txn);
        }
        let mut seen: FxHashMap<ID, Side> = FxHashMap::default();
        let mut side = |id: ID, want_key: bool| -> Side {
            if let Some(side) = seen.get(&id) {
                if want_key || *side != Side::Item {
                    return *side;
                }
            }
            let side = if held(Some(known), &id) {
                document.side(txn, known, id, want_key)
            } else {
                // An item of this update (a collected run given as a neighbour was
                // refused when the update was read); not there either: a missing
                // dependency, which is refused.
                match self.find(&id) {
                    Some(at)
                        if want_key
                            && self.lands_keyed(txn, known, at, &mut memo, &mut document) =>
                    {
                        Side::Entry
                    }
                    _ => Side::Sequence,
                }
            };
            seen.insert(id, side);
            side
        };
        self.beside.iter().any(|&(left, right)| {
            let right = side(right, true);
            right == Side::Entry
                || (side(left, false) == Side::Collected) != (right == Side::Collected)
        })
    }

    /// Whether the item at `link` is (or lands as) a map entry: asked of the
    /// document if it held it, else of `memo` (the update's answers, which
    /// [`Blocks::lands_keyed`] gives before it asks).
    fn link_keyed<T: ReadTxn>(
        &self,
        txn: &T,
        known: &StateVector,
        link: ID,
        memo: &mut FxHashMap<(u64, usize), bool>,
        document: &mut DocumentKeys,
    ) -> bool {
        if held(Some(known), &link) {
            return document.keyed(txn, known, link);
        }
        match self.find(&link) {
            // Not answered yet: on a cycle of origins, which yrs cannot integrate.
            Some(next) => memo.get(&next).copied().unwrap_or(false),
            // Not in the update either: yrs holds the item back, and the room
            // refuses an update with a missing dependency.
            None => false,
        }
    }

    /// The node the item at `at` names as its parent (through its origins), if the
    /// document already holds it.
    fn branch_of<T: ReadTxn>(
        &self,
        txn: &T,
        known: &StateVector,
        at: (u64, usize),
    ) -> Option<BranchPtr> {
        let mut seen = rustc_hash::FxHashSet::default();
        let mut current = at;
        loop {
            if !seen.insert(current) {
                return None;
            }
            let item = &self.clients[&current.0][current.1];
            if let Some(link) = item.origin.or(item.right_origin) {
                match self.find(&link) {
                    Some(next) if !held(Some(known), &link) => current = next,
                    _ => return existing_branch(txn, link),
                }
                continue;
            }
            return match &item.parent {
                Parent::Root(name) => BranchID::get_root(txn, name.as_ref()),
                // A node the update brings is not the head's: the head is older.
                Parent::Item(id) => BranchID::get_nested(txn, id),
                Parent::Inherited => None,
            };
        }
    }
}

/// What an item the document holds is, as one side of another item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Collected: no item any more (its parent was deleted).
    Collected,
    /// A map entry.
    Entry,
    /// A sequence item.
    Sequence,
    /// An item, not asked whether it is an entry.
    Item,
}

/// Which of the document's items are map entries: told by an item's position
/// where it can, else read from the document's own encoding (the item's client's
/// clocks from it on for the first few, then the whole document once).
#[derive(Default)]
struct DocumentKeys {
    whole: Option<Blocks>,
    /// How many questions the position could not answer.
    encoded: usize,
}

impl DocumentKeys {
    fn keyed<T: ReadTxn>(&mut self, txn: &T, known: &StateVector, id: ID) -> bool {
        self.side(txn, known, id, true) == Side::Entry
    }

    /// What the item at `id` is (`want_key`: whether an entry; else only whether
    /// collected).
    fn side<T: ReadTxn>(&mut self, txn: &T, known: &StateVector, id: ID, want_key: bool) -> Side {
        if self.whole.is_none() {
            // A sequence item the document holds sits after whatever its parent
            // holds before it; an entry's position counts only earlier values of
            // its key, which are deleted (an entry is one clock long and is never
            // split: see `long_map_entries` and `straddles_parents`). Past position
            // 0 it is not an entry; at 0, deleted, or collected, the encoding says.
            let index = StickyIndex::new(IndexScope::Relative(id), Assoc::After);
            match index.get_offset(txn) {
                None => return Side::Collected,
                Some(_) if !want_key => return Side::Item,
                Some(o) if o.index > 0 => return Side::Sequence,
                Some(_) => {}
            }
            if self.encoded < MAX_TAIL_ENCODINGS {
                self.encoded += 1;
                return match keyed_in_document(txn, known, id) {
                    Some(true) => Side::Entry,
                    Some(false) => Side::Sequence,
                    None => Side::Collected,
                };
            }
            self.read_whole(txn);
        }
        let Some(whole) = self.whole.as_ref() else {
            return Side::Collected;
        };
        match whole.find(&id) {
            None => Side::Collected,
            Some((client, i)) => {
                let item = &whole.clients[&client][i];
                if item.keyed || item.flagged {
                    Side::Entry
                } else {
                    Side::Sequence
                }
            }
        }
    }

    fn read_whole<T: ReadTxn>(&mut self, txn: &T) {
        if self.whole.is_none() {
            let state = txn.encode_state_as_update_v1(&StateVector::default());
            self.whole = Some(
                Blocks::walk(&state, None, true)
                    .map(|(blocks, _)| blocks)
                    .unwrap_or_default(),
            );
        }
    }
}

/// The node an item the document holds sits in (yrs' [`StickyIndex`] walks the
/// item's left siblings to find its position, and knows its parent on the way).
fn existing_branch<T: ReadTxn>(txn: &T, id: ID) -> Option<BranchPtr> {
    StickyIndex::new(IndexScope::Relative(id), Assoc::After)
        .get_offset(txn)
        .map(|o| o.branch)
}

/// Whether the item the document holds at `id` is a map entry (`None`: collected
/// or unknown), read from the document's own encoding of that one clock: yrs flags
/// an entry there even where its key is not written.
fn keyed_in_document<T: ReadTxn>(txn: &T, known: &StateVector, id: ID) -> Option<bool> {
    if id.clock >= known.get(&id.client) {
        return None;
    }
    let mut from = known.clone();
    from.set_min(id.client, id.clock);
    // Only this client's clocks from `id` on are written (and the delete set).
    let bytes = txn.encode_state_as_update_v1(&from);
    let mut r = Cursor::new(&bytes);
    // One client (the others are written up to what they hold: nothing).
    if r.var().ok()? != 1 {
        return None;
    }
    let _structs = r.var().ok()?;
    let client = r.var().ok()?;
    let _clock = r.clock().ok()?;
    if client != id.client.get() {
        return None;
    }
    let info = r.byte().ok()?;
    let kind = info & KIND_MASK;
    (kind != GC && kind != SKIP).then_some(info & HAS_PARENT_SUB != 0)
}
