//! The end of a draft's life the host decides: a deletion.
//!
//! A deletion is the actor's last act. Every member is closed first with
//! [`Disconnect::Deleted`] (clients stop reconnecting), so nothing can be typed into
//! a draft that is going; what was not yet written is dropped (none of it was
//! acknowledged); the store removes every record of the document in one job whose
//! `deleted` event rides with it (so a host never hears of a deletion a crash could
//! undo); the host's answer waits for that job. The actor then stops like an unload:
//! commands that raced in go to a fresh actor, which finds nothing stored and starts
//! empty.

use super::state::{DeleteReply, EditingSession};
use super::DocActor;
use crate::command::Deleted;
use crate::env::now_ms;
use crate::error::{DocError, HostError};
use crate::types::Disconnect;
use crate::writer::PersistOp;
use chorus_hooks::HookEvent;
use chorus_store::WriteBatch;
use tracing::{info, warn};

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
        let events = std::mem::take(&mut self.writes.events);
        let mut batch = WriteBatch::default();
        batch.delete_doc(&self.id);
        let done = self
            .env
            .writer
            .submit(PersistOp::Append(batch), events)
            .await;
        match done.await.unwrap_or(Err(DocError::WriterStopped)) {
            Ok(()) => {
                self.env.bases.forget(&self.key);
                // Nothing is left to write at unload.
                self.writes.exists = false;
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
}
