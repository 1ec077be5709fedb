//! The entry points that change a document so it renders as a target:
//! [`apply_body`] and [`apply_title`], and the two halves an external change uses
//! on its fork ([`read_body`] early, then [`apply_body_counting`] once the target
//! is ready). They choose the options; the minimal diff itself is `diff/`'s.

use super::body::BodyNode;
use super::diff;
use chorus_whitelist::EditorProfile;
use yrs::{TextRef, TransactionMut, XmlFragmentRef};

/// Change `body` so that it renders as `target`, touching as little as possible (see
/// the [`import`](super) module doc). Returns whether anything changed.
///
/// Comparison follows the renderer: attributes and marks that `body_html` would not
/// write (null values, invalid names) are neither compared nor removed, children of
/// void elements are ignored, tag and attribute names compare case-insensitively, and
/// mark values `true` and `{}` are the same mark. Items the renderer skips (non-XML
/// values, empty texts, elements deeper than [`crate::render::MAX_DEPTH`]) are left
/// where they are; target elements deeper than that are not inserted.
///
/// Indices are computed from the document inside `txn`, so nothing here can be out of
/// range whatever `target` holds.
pub fn apply_body(txn: &mut TransactionMut, body: &XmlFragmentRef, target: &[BodyNode]) -> bool {
    diff::apply_body(txn, body, None, target, true, &EditorProfile::html()).0
}

/// [`apply_body`] for a body in `profile`'s names (attribute values stored with the
/// types its editor uses), also saying how many changed nodes it replaced whole;
/// `existing` is the body as [`read_body`] read it earlier, if it was.
pub(crate) fn apply_body_counting(
    txn: &mut TransactionMut,
    body: &XmlFragmentRef,
    existing: Option<ExistingBody>,
    target: &[BodyNode],
    may_replace: bool,
    profile: &EditorProfile,
) -> (bool, usize) {
    diff::apply_body(txn, body, existing, target, may_replace, profile)
}

/// The existing body read and normalised for [`apply_body_counting`], so that part of
/// a change can run before its target is known.
pub(crate) use diff::ExistingBody;

pub(crate) fn read_body(txn: &TransactionMut, body: &XmlFragmentRef) -> ExistingBody {
    diff::read_body(txn, body)
}

/// Change `title` to `target`: the common prefix and suffix stay, only the middle is
/// deleted and inserted. Returns whether anything changed.
pub fn apply_title(txn: &mut TransactionMut, title: &TextRef, target: &str) -> bool {
    diff::apply_title(txn, title, target)
}
