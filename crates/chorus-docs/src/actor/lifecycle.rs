//! The end of a draft's life: a deletion the host decides, or an eviction its app's
//! retention decides.
//!
//! A deletion is the actor's last act. Every member is closed first with
//! [`Disconnect::Deleted`] (clients stop reconnecting), so nothing can be typed into
//! a draft that is going; what was not yet written is dropped (none of it was
//! acknowledged); the store removes every record of the document in one job whose
//! `deleted` event rides with it (so a host never hears of a deletion a crash could
//! undo); the host's answer waits for that job. The actor then stops like an unload:
//! commands that raced in go to a fresh actor, which finds nothing stored and starts
//! empty.
//!
//! An eviction is the same end for a draft nobody used for its app's
//! `evict_after_secs`: the `evicted` event carries its final content (so nothing is
//! lost to the host), and what stays in the store is a marker
//! ([`DocMeta::evicted_at_ms`]): a client that opens the draft is refused (4410)
//! instead of getting an empty draft it would fill with its own copy, a host read is
//! 410, and the host's next write brings the draft back.
//!
//! [`DocMeta::evicted_at_ms`]: chorus_store::DocMeta::evicted_at_ms

use super::state::{DeleteReply, EditingSession};
use super::DocActor;
use crate::command::Deleted;
use crate::env::{last_used_ms, now_ms};
use crate::error::{DocError, HostError};
use crate::types::Disconnect;
use crate::writer::PersistOp;
use chorus_hooks::HookEvent;
use chorus_store::{DocMeta, WriteBatch};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// How often a session's opening is written on its own (it also rides with every
/// write): eviction is counted in days, not in minutes.
const OPENED_RESOLUTION_MS: u64 = 3_600_000;

impl DocActor {
    /// Delete the draft (see the module documentation); the actor stops after this.
    pub(super) async fn delete(&mut self, reply: DeleteReply) {
        let closed_sessions = self.members.controls.len();
        self.close_all(Disconnect::Deleted);
        // The editing session ends with the deletion: no `closed` after it.
        self.session = EditingSession::default();
        if let Some(job) = self.writes.inflight.as_mut() {
            // Its answers are due, and its writes must land before the deletion.
            let r = (&mut job.done).await;
            self.completed(r.unwrap_or(Err(DocError::WriterStopped)));
        }
        if self.lease_lost {
            let _ = reply.send(Err(HostError::Unavailable(DocError::Moved)));
            return;
        }
        self.collect();
        let w = &mut self.writes;
        w.unsaved.clear();
        w.acks.clear();
        w.history_pending.clear();
        w.events.clear();
        for pending in std::mem::take(&mut w.host_replies) {
            pending.fail(DocError::Deleted);
        }
        self.hook(HookEvent::deleted(
            &*self.key.app,
            &*self.key.doc,
            now_ms(),
            closed_sessions,
        ));
        match self.remove_stored(None).await {
            Ok(()) => {
                info!(app = %self.key.app, doc = %self.key.doc, closed_sessions, "draft deleted");
                let _ = reply.send(Ok(Deleted { closed_sessions }));
            }
            Err(e) => {
                // Still stored: the next load brings it back, and the host may retry.
                warn!(app = %self.key.app, doc = %self.key.doc, error = %e, "deleting the draft failed");
                let _ = reply.send(Err(HostError::Unavailable(e)));
            }
        }
    }

    /// A session opened the draft: noted (to the hour) for eviction.
    pub(super) fn note_opened(&mut self) {
        let now = now_ms();
        let meta = &mut self.writes.meta;
        if now.saturating_sub(meta.opened_at_ms) >= OPENED_RESOLUTION_MS {
            meta.opened_at_ms = now;
            self.writes.meta_changed = true;
        }
    }

    /// Whether the draft may be evicted now: stored, not evicted already, nobody
    /// connected, nothing waiting to be written, and neither changed nor opened since
    /// `cutoff_ms`.
    pub(super) fn evictable(&self, cutoff_ms: u64) -> bool {
        let w = &self.writes;
        w.exists
            && w.meta.evicted_at_ms == 0
            && self.room.is_empty()
            && !self.session.open
            && w.inflight.is_none()
            && w.unsaved.is_empty()
            && w.host_replies.is_empty()
            && last_used_ms(&w.meta) < cutoff_ms
    }

    /// Evict the draft (see the module documentation); the actor stops after this.
    pub(super) async fn evict(&mut self, reply: oneshot::Sender<Result<bool, HostError>>) {
        if self.lease_lost || !self.evictable(u64::MAX) {
            let _ = reply.send(Ok(false));
            return;
        }
        let (title, html) = self.final_content().await;
        let now = now_ms();
        let old = self.writes.meta.clone();
        let last_used = last_used_ms(&old);
        self.hook(HookEvent::evicted(
            &*self.key.app,
            &*self.key.doc,
            now,
            title,
            html,
            self.etag(),
            last_used,
        ));
        let marker = DocMeta {
            created_at_ms: old.created_at_ms,
            updated_at_ms: now,
            opened_at_ms: old.opened_at_ms,
            published_at_ms: old.published_at_ms,
            evicted_at_ms: now,
            ..DocMeta::default()
        };
        match self.remove_stored(Some(marker)).await {
            Ok(()) => {
                info!(app = %self.key.app, doc = %self.key.doc, last_used, "draft evicted");
                let _ = reply.send(Ok(true));
            }
            Err(e) => {
                warn!(app = %self.key.app, doc = %self.key.doc, error = %e, "evicting the draft failed; it stays");
                let _ = reply.send(Err(HostError::Unavailable(e)));
            }
        }
    }

    /// Remove every stored record of the draft (leaving `marker` as its metadata,
    /// if given) with the events raised for it, in one job; answers once durable.
    async fn remove_stored(&mut self, marker: Option<DocMeta>) -> Result<(), DocError> {
        let events = std::mem::take(&mut self.writes.events);
        let mut batch = WriteBatch::default();
        batch.delete_doc(&self.id);
        if let Some(marker) = &marker {
            batch.put_meta(&self.id, marker);
        }
        let done = self
            .env
            .writer
            .submit(PersistOp::Append(batch), events)
            .await;
        done.await.unwrap_or(Err(DocError::WriterStopped))?;
        self.env.bases.forget(&self.key);
        // Nothing is left to write at unload.
        self.writes.exists = false;
        Ok(())
    }
}
