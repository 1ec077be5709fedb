//! The normal form both sides of a diff are brought to (see the [`diff`](super)
//! module doc): marks as the renderer writes them, adjacent runs with equal marks
//! merged, and the hashes of a subtree that matching compares first. Shared by the
//! reading of the document (`existing.rs`) and of the target (`target.rs`), so the
//! two cannot drift apart.

use rustc_hash::FxHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// Normalised marks: tag → attribute name → value, all as the renderer writes them.
pub(super) type Marks = BTreeMap<String, BTreeMap<String, String>>;

pub(super) fn push_merged(runs: &mut Vec<(String, Marks)>, text: &str, marks: Marks) {
    if text.is_empty() {
        return;
    }
    match runs.last_mut() {
        Some((last, last_marks)) if *last_marks == marks => last.push_str(text),
        _ => runs.push((text.to_owned(), marks)),
    }
}

pub(super) fn merge_runs<'a>(
    runs: impl Iterator<Item = (&'a str, &'a Marks)>,
) -> Vec<(String, Marks)> {
    let mut merged = Vec::new();
    for (text, marks) in runs {
        push_merged(&mut merged, text, marks.clone());
    }
    merged
}

pub(super) fn hash_element_head(h: &mut FxHasher, tag: &str, attrs: &[(String, String)]) {
    1u8.hash(h);
    tag.hash(h);
    attrs.hash(h);
}

pub(super) fn hash_text(runs: &[(String, Marks)]) -> u64 {
    let mut h = FxHasher::default();
    2u8.hash(&mut h);
    runs.hash(&mut h);
    h.finish()
}
