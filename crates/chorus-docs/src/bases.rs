//! Drafts hosts read recently, kept so that a later external change can name one as
//! its base (`baseEtag`) and be merged three-way. In memory, bounded in count, bytes
//! and age; a restart forgets them (the host gets 412 and reads again).

use crate::types::DocKey;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Bases kept at most, over all documents (oldest dropped first).
const MAX_BASES: usize = 256;
/// Bytes of bases kept at most, over all documents.
const MAX_BASE_BYTES: usize = 64 << 20;

/// Drafts hosts read recently, kept so that a later external change can name one as
/// its base (`baseEtag`). In memory, bounded in count, bytes and age.
#[derive(Default)]
pub(crate) struct Bases {
    entries: Mutex<VecDeque<Base>>,
}

struct Base {
    key: DocKey,
    etag: String,
    state: Arc<Vec<u8>>,
    at: Instant,
}

impl Bases {
    /// Remember `state` as the draft of `key` with `etag` (unless it is already known).
    pub(crate) fn remember(&self, key: &DocKey, etag: &str, state: impl FnOnce() -> Vec<u8>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pos) = entries.iter().position(|b| &b.key == key && b.etag == etag) {
            // Refresh its age: the host just read it again.
            if let Some(mut b) = entries.remove(pos) {
                b.at = Instant::now();
                entries.push_back(b);
            }
            return;
        }
        entries.push_back(Base {
            key: key.clone(),
            etag: etag.to_owned(),
            state: Arc::new(state()),
            at: Instant::now(),
        });
        let mut bytes: usize = entries.iter().map(|b| b.state.len()).sum();
        while entries.len() > MAX_BASES || (bytes > MAX_BASE_BYTES && entries.len() > 1) {
            if let Some(old) = entries.pop_front() {
                bytes -= old.state.len();
            }
        }
    }

    /// The draft of `key` that had `etag`, if it is still kept and younger than `ttl`.
    pub(crate) fn get(&self, key: &DocKey, etag: &str, ttl: Duration) -> Option<Arc<Vec<u8>>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|b| b.at.elapsed() <= ttl);
        entries
            .iter()
            .find(|b| &b.key == key && b.etag == etag)
            .map(|b| b.state.clone())
    }

    /// Forget every base of `key` (its draft was deleted).
    pub(crate) fn forget(&self, key: &DocKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|b| &b.key != key);
    }
}
