//! The changes the guard makes to a document ([`Action`]) and how they are carried
//! out in the committing transaction ([`execute`]): key changes and unformatting,
//! then removals by position, then deletions by id. What must go is decided
//! elsewhere (`scan.rs`, `blocks.rs`); this only applies it.

use super::blocks;
use std::collections::HashMap;
use std::sync::Arc;
use yrs::branch::BranchPtr;
use yrs::types::Attrs;
use yrs::{Any, Array, ArrayRef, Map, MapRef, Text, TextRef, TransactionMut};

/// One change the hook makes. Branch pointers stay valid until the end of the commit
/// that produced them, which is when the hook runs.
pub(super) enum Action {
    RemoveChildren {
        parent: BranchPtr,
        index: u32,
        len: u32,
    },
    RemoveKey {
        target: BranchPtr,
        key: Arc<str>,
    },
    SetKey {
        target: BranchPtr,
        key: Arc<str>,
        value: Any,
    },
    Unformat {
        text: BranchPtr,
        index: u32,
        len: u32,
        keys: Vec<Arc<str>>,
    },
    RemoveText {
        text: BranchPtr,
        index: u32,
        len: u32,
    },
    /// Empty a root entirely (a foreign root, or a title whose content the text API
    /// cannot account for).
    Purge {
        branch: BranchPtr,
    },
    /// Delete items by id: format items, which have no position to name
    /// ([`blocks`]), and in reject mode everything the update inserted.
    DeleteItems(yrs::IdSet),
}

/// Carry out actions: key changes and unformatting first (they shift no index), then
/// removals, last index first within each parent so earlier indices stay valid.
pub(super) fn execute(txn: &mut TransactionMut, actions: Vec<Action>) {
    let purged: Vec<BranchPtr> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Purge { branch } => Some(*branch),
            _ => None,
        })
        .collect();
    for branch in &purged {
        purge(txn, *branch);
    }
    let mut removals: HashMap<BranchPtr, Vec<(u32, u32, bool)>> = HashMap::new();
    let mut by_id = Vec::new();
    for action in actions {
        match action {
            Action::Purge { .. } => {}
            // After every removal by position: those positions count these items.
            Action::DeleteItems(set) => by_id.push(set),
            Action::Unformat { text, .. } | Action::RemoveText { text, .. }
                if purged.contains(&text) => {}
            Action::RemoveKey { target, key } => {
                MapRef::from(target).remove(txn, &key);
            }
            Action::SetKey { target, key, value } => {
                MapRef::from(target).insert(txn, key, value);
            }
            Action::Unformat {
                text,
                index,
                len,
                keys,
            } => {
                let attrs: Attrs = keys.into_iter().map(|k| (k, Any::Null)).collect();
                TextRef::from(text).format(txn, index, len, attrs);
            }
            Action::RemoveChildren { parent, index, len } => removals
                .entry(parent)
                .or_default()
                .push((index, len, false)),
            Action::RemoveText { text, index, len } => {
                removals.entry(text).or_default().push((index, len, true))
            }
        }
    }
    for (branch, mut ranges) in removals {
        ranges.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut covered_from = u32::MAX;
        for (index, len, is_text) in ranges {
            // Overlapping ranges (an embed with a bad mark, say) are removed once.
            let len = len.min(covered_from.saturating_sub(index));
            if len == 0 {
                continue;
            }
            if is_text {
                TextRef::from(branch).remove_range(txn, index, len);
            } else {
                ArrayRef::from(branch).remove_range(txn, index, len);
            }
            covered_from = index;
        }
    }
    for set in by_id {
        blocks::delete_set(txn, &set);
    }
}

/// Delete everything a branch holds: every countable item whatever its content, then
/// its map entries. Its format items are judged by id like any other
/// ([`blocks`]: outside a body text, every one that is not an end marker goes).
/// Formatting the range away instead made yrs write a marker restoring the mark in
/// force at its end: a refused one came back (found by `room_receive_raw`).
fn purge(txn: &mut TransactionMut, branch: BranchPtr) {
    let len = branch.content_len;
    if len > 0 {
        ArrayRef::from(branch).remove_range(txn, 0, len);
    }
    let map = MapRef::from(branch);
    if map.len(txn) > 0 {
        map.clear(txn);
    }
}
