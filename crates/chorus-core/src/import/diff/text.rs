//! Text edits as deltas: the title's common prefix and suffix kept
//! ([`apply_title`]); a body text edited character by character ([`diff_text`]) or,
//! past the first few texts of a change, run by run ([`diff_text_runs`]); marks as
//! the formatting attributes y-prosemirror writes. Lengths and indices are in the
//! document's offset unit ([`Unit`]).

use super::align::common_ends;
use super::existing::ExRun;
use super::normal::Marks;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use yrs::types::{Attrs, Delta};
use yrs::{Any, GetString, In, OffsetKind, Text, TextRef, TransactionMut, XmlTextRef};

pub(in crate::import) fn apply_title(
    txn: &mut TransactionMut,
    title: &TextRef,
    target: &str,
) -> bool {
    let unit = Unit::of(txn);
    let current = title.get_string(txn);
    if current == target {
        return false;
    }
    let old: Vec<char> = current.chars().collect();
    let new: Vec<char> = target.chars().collect();
    let (prefix, suffix) = common_ends(&old, &new, |a, b| a == b);
    let start = unit.len(old[..prefix].iter().copied());
    let removed = unit.len(old[prefix..old.len() - suffix].iter().copied());
    if removed > 0 {
        title.remove_range(txn, start, removed);
    }
    let inserted: String = new[prefix..new.len() - suffix].iter().collect();
    if !inserted.is_empty() {
        title.insert(txn, start, &inserted);
    }
    true
}

/// The unit text indices are counted in: the document's [`OffsetKind`].
#[derive(Clone, Copy)]
pub(super) enum Unit {
    Utf16,
    Bytes,
}

impl Unit {
    pub(super) fn of(txn: &TransactionMut) -> Unit {
        match txn.doc().offset_kind() {
            OffsetKind::Utf16 => Unit::Utf16,
            OffsetKind::Bytes => Unit::Bytes,
        }
    }

    fn char_len(self, c: char) -> u32 {
        match self {
            Unit::Utf16 => c.len_utf16() as u32,
            Unit::Bytes => c.len_utf8() as u32,
        }
    }

    fn len(self, chars: impl Iterator<Item = char>) -> u32 {
        chars.map(|c| self.char_len(c)).sum()
    }
}

/// Marks as formatting attributes: every mark an object of its attributes (`{}` for
/// `strong`), the form y-prosemirror writes.
fn mark_attrs(marks: &Marks) -> Attrs {
    marks
        .iter()
        .map(|(tag, attrs)| (Arc::<str>::from(tag.as_str()), mark_value(attrs)))
        .collect()
}

fn mark_value(attrs: &BTreeMap<String, String>) -> Any {
    let map: HashMap<String, Any> = attrs
        .iter()
        .map(|(k, v)| (k.clone(), Any::String(Arc::from(v.as_str()))))
        .collect();
    Any::Map(Arc::new(map))
}

/// Updates a text in place: the common prefix and suffix (in characters) keep their
/// items; where their marks differ they are re-formatted; only the middle is deleted
/// and inserted with its marks. All of it is one delta, applied in a single pass.
pub(super) fn diff_text(
    txn: &mut TransactionMut,
    text: &XmlTextRef,
    existing: &[ExRun],
    target: &[(String, Marks)],
    unit: Unit,
) -> bool {
    // Each character with the index of its run.
    let ex: Vec<(char, usize)> = existing
        .iter()
        .enumerate()
        .flat_map(|(r, run)| run.text.chars().map(move |c| (c, r)))
        .collect();
    let tg: Vec<(char, usize)> = target
        .iter()
        .enumerate()
        .flat_map(|(r, (s, _))| s.chars().map(move |c| (c, r)))
        .collect();
    let (prefix, suffix) = common_ends(&ex, &tg, |a, b| a.0 == b.0);
    let mut delta = DeltaBuilder::default();

    // The prefix: its characters stay; re-format where the marks differ.
    delta.keep(
        ex[..prefix].iter().zip(&tg[..prefix]),
        existing,
        target,
        unit,
    );
    // The middle: deleted, then inserted run by run with its marks.
    delta.delete(unit.len(ex[prefix..ex.len() - suffix].iter().map(|(c, _)| *c)));
    let middle = &tg[prefix..tg.len() - suffix];
    let mut k = 0;
    while k < middle.len() {
        let run = middle[k].1;
        let len = middle[k..].iter().take_while(|(_, r)| *r == run).count();
        let chunk: String = middle[k..k + len].iter().map(|(c, _)| *c).collect();
        k += len;
        if let Some((_, marks)) = target.get(run) {
            delta.insert(&chunk, marks);
        }
    }
    // The suffix, like the prefix.
    delta.keep(
        ex[ex.len() - suffix..].iter().zip(&tg[tg.len() - suffix..]),
        existing,
        target,
        unit,
    );
    if delta.ops.is_empty() {
        return false;
    }
    text.apply_delta(txn, delta.ops);
    true
}

/// Updates a text in place run by run (a run: what the text's diff reports as one
/// chunk, the characters between two changes of formatting): runs equal in text and
/// marks at both ends stay, every run between them is deleted whole and the target's
/// runs there are inserted.
///
/// Coarser than [`diff_text`] (a cursor inside a changed run moves to its edge), but
/// every edit falls on the boundary of a stored item, so yrs splits none. A split
/// inserts into the list of every item its client made, in clock order, which costs
/// the length of that list: for a rewrite of a draft one client imported, it is the
/// size of the document, per split.
pub(super) fn diff_text_runs(
    txn: &mut TransactionMut,
    text: &XmlTextRef,
    existing: &[ExRun],
    target: &[(String, Marks)],
    unit: Unit,
) -> bool {
    let (prefix, suffix) = common_ends(existing, target, |ex, (s, marks)| {
        ex.text == *s && ex.marks == *marks
    });
    let mut delta = DeltaBuilder {
        ops: Vec::new(),
        retained: existing[..prefix]
            .iter()
            .map(|run| unit.len(run.text.chars()))
            .sum(),
    };
    delta.delete(
        existing[prefix..existing.len() - suffix]
            .iter()
            .map(|run| unit.len(run.text.chars()))
            .sum(),
    );
    for (s, marks) in &target[prefix..target.len() - suffix] {
        delta.insert(s, marks);
    }
    if delta.ops.is_empty() {
        return false;
    }
    text.apply_delta(txn, delta.ops);
    true
}

/// Builds a text delta, merging adjacent retains and leaving out a trailing one.
#[derive(Default)]
struct DeltaBuilder {
    ops: Vec<Delta<In>>,
    /// Unchanged length not yet written (written only if a change follows).
    retained: u32,
}

impl DeltaBuilder {
    fn flush_retained(&mut self) {
        if self.retained > 0 {
            self.ops.push(Delta::Retain(self.retained, None));
            self.retained = 0;
        }
    }

    /// Characters that stay, paired with their targets: retained, and re-formatted
    /// where the marks of the existing run and the target run differ.
    fn keep<'c>(
        &mut self,
        pairs: impl Iterator<Item = (&'c (char, usize), &'c (char, usize))>,
        existing: &[ExRun],
        target: &[(String, Marks)],
        unit: Unit,
    ) {
        // Consecutive characters with the same (existing run, target run) share one
        // formatting decision.
        let mut segment: Option<(usize, usize, u32)> = None;
        for ((c, er), (_, tr)) in pairs {
            match &mut segment {
                Some((e, t, len)) if e == er && t == tr => *len += unit.char_len(*c),
                _ => {
                    if let Some(done) = segment.take() {
                        self.keep_segment(done, existing, target);
                    }
                    segment = Some((*er, *tr, unit.char_len(*c)));
                }
            }
        }
        if let Some(done) = segment {
            self.keep_segment(done, existing, target);
        }
    }

    fn keep_segment(
        &mut self,
        (er, tr, len): (usize, usize, u32),
        existing: &[ExRun],
        target: &[(String, Marks)],
    ) {
        let attrs = match (existing.get(er), target.get(tr)) {
            (Some(run), Some((_, marks))) => format_changes(run, marks),
            _ => Attrs::new(),
        };
        if attrs.is_empty() {
            self.retained += len;
        } else {
            self.flush_retained();
            self.ops.push(Delta::Retain(len, Some(Box::new(attrs))));
        }
    }

    fn delete(&mut self, len: u32) {
        if len > 0 {
            self.flush_retained();
            self.ops.push(Delta::Deleted(len));
        }
    }

    fn insert(&mut self, chunk: &str, marks: &Marks) {
        if !chunk.is_empty() {
            self.flush_retained();
            self.ops.push(inserted(chunk, marks));
        }
    }
}

/// A text insertion carrying exactly `marks` (an empty set means "no marks", not
/// "inherit the neighbour's").
pub(super) fn inserted(chunk: &str, marks: &Marks) -> Delta<In> {
    Delta::Inserted(In::Any(Any::from(chunk)), Some(Box::new(mark_attrs(marks))))
}

/// The formatting that turns `run`'s marks into `target`: each mark whose attributes
/// differ is set, each stored key of a mark that goes (or that is re-set under its
/// plain tag) is nulled. Marks that already render the same are left alone, even if
/// stored differently (`true`, `{}`, `strong--1a2b`).
fn format_changes(run: &ExRun, target: &Marks) -> Attrs {
    let mut attrs = Attrs::new();
    for (tag, tg_attrs) in target {
        if run.marks.get(tag) != Some(tg_attrs) {
            attrs.insert(Arc::from(tag.as_str()), mark_value(tg_attrs));
        }
    }
    for (key, tag) in &run.keys {
        match target.get(tag) {
            Some(tg_attrs) if run.marks.get(tag) == Some(tg_attrs) => {}
            Some(_) if key.as_ref() == tag.as_str() => {}
            _ => {
                attrs.insert(key.clone(), Any::Null);
            }
        }
    }
    attrs
}
