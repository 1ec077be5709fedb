//! What the document layer reports about itself. The layer only calls these hooks;
//! the server decides how they are kept and exported (`/metrics`), so this crate
//! needs no metrics library and tests can pass [`NoMetrics`].

use chorus_core::Neutralised;
use std::time::Duration;

/// Events of the document layer worth counting. Called on hot paths (every group
/// commit, every turn that neutralised something): implementations must not block.
pub trait DocMetrics: Send + Sync + 'static {
    /// A document actor started (its document is loading or loaded).
    fn document_loaded(&self) {}
    /// A document actor stopped.
    fn document_unloaded(&self) {}
    /// A document finished loading from the store (snapshot + log integrated) in `took`.
    fn document_load_time(&self, _took: Duration) {}
    /// One group commit: `jobs` jobs with `records` log records, written and
    /// flushed in `took`.
    fn store_flush(&self, _jobs: usize, _records: usize, _took: Duration) {}
    /// A group commit failed (nothing in it acknowledged).
    fn store_error(&self) {}
    /// What the whitelist guard removed in one document turn, and how many updates
    /// it refused whole.
    fn whitelist(&self, _neutralised: &Neutralised, _rejected_updates: u64) {}
    /// A host's external change was prepared and applied in `took` (HTML work on the
    /// blocking pool plus the merge in the actor).
    fn external_change(&self, _took: Duration) {}
    /// A member's message that fans out (an update, awareness) was queued for every
    /// other member `took` after its connection decoded it (inbox wait included).
    fn fanout(&self, _took: Duration) {}
    /// The end of an actor turn handed `members` members their staged frames (one
    /// write each) in `took`.
    fn broadcast_sweep(&self, _members: usize, _took: Duration) {}
}

/// Counts nothing (tests, embedding without metrics).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl DocMetrics for NoMetrics {}
