//! # Importing HTML into a live document, as a minimal diff
//!
//! The inverse of [`crate::render`]: [`parse_body_html`] turns an HTML fragment (what
//! [`crate::render::body_html`] writes, or what a host sends) into [`BodyNode`]s in
//! the document model (see the `render` module doc: elements with HTML tags and
//! attributes, inline formatting as marks on text runs), and [`apply_body`] /
//! [`apply_title`] change a document so that it renders as that target.
//!
//! Hosts push "external changes" (a saved draft, an edit made outside the editor)
//! into documents that people are typing in at that moment. Replacing the body
//! wholesale would work for the HTML but not for the people: every cursor and
//! selection (Yjs relative positions, [`yrs::StickyIndex`]) would point into deleted
//! items, every concurrent keystroke would land in a deleted paragraph and vanish
//! on merge, and the update would be as large as the document. So the apply
//! functions change as little as they can:
//!
//! - children lists are matched child by child (common prefix and suffix, then a
//!   longest common subsequence on a structural hash of each subtree, confirmed by
//!   structural equality); matched children are not touched at all, an unmatched
//!   child is removed, an unmatched target inserted where it belongs, and in each gap
//!   between matches, children and targets of the same tag (or both texts) are paired
//!   in order and updated in place rather than replaced;
//! - element attributes: only those that differ are set, only those gone removed;
//! - text: the common prefix and suffix (text and marks) stay, only the middle is
//!   deleted and re-inserted with its marks; where only marks differ the range is
//!   re-formatted, so the characters (and any cursor in them) survive. That holds
//!   for the first 64 texts one change edits (in document order); texts past those are
//!   edited run by run (a run: characters between two changes of formatting): runs
//!   equal at both ends stay, the runs between are replaced whole, so a cursor inside
//!   a changed run moves to its edge. The reason is yrs: an edit inside a stored item
//!   splits it, and a split inserts into one array holding every item of that item's
//!   client, so when a host rewrites every paragraph of a draft it imported itself
//!   each split costs the size of the document (twice on the fork, twice again in the
//!   live document);
//! - with `may_replace` (which callers pass only when the whitelist guard takes yrs'
//!   deep events: reject mode, [`crate::Whitelist::takes_deep_events`]), at most 128
//!   existing nodes are edited in place per change (a text's characters, an element's
//!   attributes, an element's children list), again the first in document order. A
//!   changed node reached after those is **replaced**: removed and inserted anew
//!   whole, right where it was. *Precision given up:* a cursor inside a replaced
//!   paragraph moves to the paragraph's edge. What someone typed into it
//!   concurrently would be lost with it, so an external change replaces only when
//!   nothing happened since its base, and is refused if the document moved before it
//!   was applied (`crate::external_edit`; the caller computes it again, and after two
//!   such refusals in place). The reason is the deep observer: every existing node a
//!   transaction edits is one event, and yrs sorts the events computing each one's
//!   path by walking the parent's children from the start
//!   (`yrs::types::Events::new`), so k edited nodes cost about k × the length of the
//!   body; new nodes make no events of their own. In strip and off mode there is no
//!   deep observer and every changed node is edited in place.
//!
//! Unchanged nodes are never touched, whatever the size of the change: their identity,
//! and every cursor inside them, survive.
//!
//! A change made this way merges with concurrent edits like any other user's edit:
//! what someone types into a paragraph the import did not touch is simply kept.
//! Applying a document's own rendering back onto it is a no-op (no update at all).
//!
//! What an HTML round trip cannot preserve (the parser normalises it): `\r` in text
//! becomes `\n`, a leading newline right after `<pre>`, `<textarea>` or `<listing>`
//! is dropped, invalid nesting is repaired (`<table><tr>` gains a `<tbody>`, a `<p>`
//! inside a `<p>` closes it), and whitespace-only text between block elements is
//! treated as layout and dropped. Documents written by y-prosemirror from a schema
//! of valid HTML do not contain those shapes.
//!
//! Text lengths and indices follow the document's [`yrs::OffsetKind`] (Chorus rooms
//! use UTF-16 code units, as Yjs in the browser does).
//!
//! Cost is bounded for any input, since hosts are not trusted to send sane HTML: the
//! HTML5 tree builder is quadratic in nesting depth and can multiply reopened
//! formatting elements, so a guard between tokenizer and tree builder caps the depth
//! it sees and the nodes it may create (`parse.rs`); conversion recursion is capped at
//! [`crate::render::MAX_DEPTH`]; the LCS is a table for small middles, Myers' O(ND)
//! for few edits, patience matching otherwise. yrs finds a list index by walking the
//! list from its start, so each children list is changed with one delta in a single
//! walk (yrs' text API, which works on any list of items: retains over the existing
//! children, the new nodes where they go, each built with its subtree in one pass),
//! and removed children are found by their id (one deletion set for the whole
//! change); text edits go in as one delta. Past the first 64 texts, texts are edited
//! run by run; with `may_replace`, past 128 edited nodes changed nodes are replaced
//! (above).
//!
//! What is not bounded here: when the live document commits a change that removes k
//! subtrees apart from each other (paragraphs the host deleted here and there, or,
//! under a reject-mode guard, paragraphs replaced), yrs garbage-collects them and merges each collected run in its client's
//! block list with a `Vec::drain`, shifting the rest of that list every time
//! (`ClientBlockList::squash_left_range_compaction`): about k × the document's item
//! count of memory moves. docs/PERFORMANCE.md ("External changes") has the figures.
//!
//! Host HTML is fitted to the web client's editor before it is applied
//! ([`fit_editor`]): inline content sitting directly in a container that must hold
//! blocks (`<li>text</li>`, `<td>c</td>`, loose text in the body) is wrapped in a
//! `p`, per the table in `proto/editor-content.json` that the editor's schema is
//! checked against. A ProseMirror schema cannot mix inline and block content in one
//! node, and y-prosemirror would delete such content for everyone. The fitted form
//! renders back to itself, so re-importing a rendered draft stays a no-op.
//!
//! No sanitising happens here: `<script>` parses as an element like any other, the
//! whitelist guard (`guard`) removes what the policy refuses in the same transaction.
//!
//! Where it lives: the body model in `body.rs`; HTML in and out of it (parsing,
//! fitting, the host's HTML cleaned and renamed, nodes written back) in `html.rs`,
//! over `parse.rs`, `fit.rs` and `editor.rs`; the entry points that change a
//! document in `apply.rs`, over the minimal diff in `diff/`. This file only
//! declares and re-exports.

mod apply;
mod body;
mod diff;
mod editor;
mod fit;
mod html;
mod parse;

pub use apply::{apply_body, apply_title};
pub(crate) use apply::{apply_body_counting, read_body, ExistingBody};
pub use body::{BodyNode, Run};
pub use fit::{EditorContent, ElementContent, Holds, Placement, EDITOR_CONTENT_JSON};
pub use html::{body_nodes_html, fit_editor, host_body, parse_body_html};

#[cfg(test)]
mod tests;
