//! Applying [`BodyNode`](super::BodyNode)s to a live document as a minimal set of changes.
//!
//! Both sides are first brought to one normal form that mirrors what the renderer
//! writes (so "renders the same" and "compares equal" agree): tags, attribute names and
//! mark tags lower-cased, attributes and marks that `body_html` skips left out, mark
//! values reduced to their attribute strings, adjacent runs with equal marks merged.
//! Every normalised node carries a hash of its whole subtree, computed bottom-up once,
//! so matching a children list costs a hash comparison per pair; a match is confirmed
//! with a structural comparison before the existing child is left alone.
//!
//! Where it lives: the existing body read into that form in `existing.rs`, the
//! target in `target.rs`, what both share in `normal.rs`; children lists paired in
//! `matching.rs` on top of the generic alignment in `align.rs`; the document
//! changed in `splice.rs` (children lists, attributes, new subtrees) and `text.rs`
//! (text deltas, the title). This file only declares and re-exports.

mod align;
mod existing;
mod matching;
mod normal;
mod splice;
mod target;
mod text;

pub(super) use existing::read_body;
pub(crate) use existing::ExistingBody;
pub(super) use splice::apply_body;
// The budgets of one change, which the import tests measure against.
#[cfg(test)]
pub(super) use splice::{IN_PLACE_EDITS, PRECISE_TEXT_EDITS};
pub(super) use text::apply_title;
