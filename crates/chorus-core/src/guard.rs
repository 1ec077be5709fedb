//! The content guard: the whitelist [`Policy`](chorus_whitelist::Policy) enforced inside the transaction that
//! applies an update.
//!
//! yrs commits a transaction in this order: type observers, then after-transaction
//! hooks, then garbage collection of what the transaction deleted, then the update
//! events. The guard uses all three:
//!
//! 1. Find what the transaction changed — children added, attributes set, text, embeds
//!    and formatting inserted — and decide what must go (a list of [`Action`](actions::Action)s). Content
//!    new in this transaction is walked in full (with an explicit stack: a hostile update
//!    may nest deeply); content that was already there was checked when it arrived, so a
//!    keystroke costs a look at one text. The `title` has a shallow observer. The body is
//!    read by the after-transaction hook in strip mode: the changed nodes from
//!    [`TransactionMut::changed_parent_types`](yrs::TransactionMut::changed_parent_types), new children by their ids in the
//!    transaction's insertions. Reject mode has a deep observer on the body instead,
//!    because undoing a refused update takes the attribute values it replaced, which
//!    yrs shows only in its events' old values; yrs then
//!    sorts each transaction's events by path, so a transaction editing k existing nodes
//!    costs ~k × the body's length there (docs/PERFORMANCE.md, "External changes").
//! 2. The after-transaction hook carries the actions out in the same transaction and
//!    empties any root other than `title` and `body`.
//! 3. yrs then garbage-collects the removed items, so the update that peers and the
//!    store receive never holds the removed values (a removed attribute's *key* may
//!    survive as a collected map entry; its value does not).
//!
//! In `reject` mode the observers also record the attribute values the transaction
//! replaced; if anything violated the policy, the hook undoes the whole transaction
//! instead: it deletes every item the transaction inserted by id (the insert set) and
//! puts those values back. Deletions
//! the refused update carried cannot be recalled inside yrs and still apply (they carry
//! no content); the sender is then closed so that it reloads.
//!
//! Where it lives: the public bundle a deployment configures ([`Whitelist`],
//! [`WhitelistMode`]) in `whitelist.rs`; what the guard reports ([`Verdict`],
//! [`Neutralised`], [`Violation`], [`UnreadableUpdate`]) in `verdict.rs`; the
//! [`Guard`] installed on a document (its observers and hook) in `engine.rs`, which
//! has `scan.rs` judge what a transaction changed and `actions.rs` carry out what
//! must go. The readers of an update's bytes are `blocks.rs` (format items, and
//! what yrs and Yjs would place differently) and `profile.rs` (what checks an
//! update can skip), both walking the bytes with `lib0.rs`'s reader; `marks.rs`
//! and `nodes.rs` hold the few questions they all ask. This file only declares and re-exports.

mod actions;
mod blocks;
mod engine;
mod lib0;
mod marks;
mod nodes;
mod scan;
mod update_profile;
mod verdict;

pub use chorus_whitelist::{Whitelist, WhitelistMode};
pub use engine::Guard;
pub use verdict::{Neutralised, UnreadableUpdate, Verdict, Violation};

/// Version of the checks the guard makes beyond the policy file (roots, embeds,
/// node kinds, the refusals before an update is applied). Bump it when they change:
/// content a build checked under older rules is then checked again when it is next
/// loaded.
const GUARD_RULES: u32 = 2;

/// Identifies what content this guard let through under `whitelist` conforms to
/// (stored beside a document: one stored under the same answer is served without a
/// second look).
pub fn content_fingerprint(whitelist: &Whitelist) -> String {
    whitelist.conformance(GUARD_RULES)
}

#[cfg(test)]
mod tests;
