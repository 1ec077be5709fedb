//! When a document tells its host something: the webhook events a document actor
//! raises (`editing`, `saved`, `closed`, `external-change`, `published`).
//!
//! The actor only decides *when*; `chorus-hooks` owns the outbox format, signing and
//! delivery. An event goes into the store's outbox at once and becomes durable with
//! the actor's next write (or a flush-only job if there is none), and the writer lets
//! the delivery loop send it only after that flush: a host never hears of something a
//! crash could still undo.

use super::{now_ms, DocActor};
use chorus_core::Session;
use chorus_hooks::HookEvent;
use tokio::time::Instant;
use tracing::{debug, error};

impl DocActor {
    /// Put `event` in the outbox if the app has a callback URL.
    pub(super) fn hook(&mut self, event: HookEvent) {
        if !self.docs.hooked_apps.contains(&*self.key.0) {
            return;
        }
        match self.docs.hooks.enqueue(&event) {
            Ok(id) => {
                debug!(app = %self.key.0, doc = %self.key.1, %id, kind = event.kind.as_str(), "webhook event queued");
                self.flush_due = true;
            }
            Err(e) => {
                error!(app = %self.key.0, doc = %self.key.1, error = %e, kind = event.kind.as_str(), "webhook event could not be queued")
            }
        }
    }

    /// A member joined: the first editor opens an editing session (`editing`).
    pub(super) fn editor_joined(&mut self, conn: chorus_core::ConnId, session: &Session) {
        if !session.can_edit() {
            return;
        }
        self.editors.insert(conn, session.user_id.clone());
        self.closing_at = None;
        if !self.editing {
            self.editing = true;
            let users: std::collections::BTreeSet<String> =
                self.editors.values().cloned().collect();
            let event = HookEvent::editing(&*self.key.0, &*self.key.1, now_ms(), users);
            self.hook(event);
        }
    }

    /// A member left: once no editor is left, `closed` is due after the save delay.
    pub(super) fn editor_left(&mut self, conn: chorus_core::ConnId) {
        if self.editors.remove(&conn).is_some() && self.editors.is_empty() && self.editing {
            self.closing_at = Some(Instant::now() + self.docs.policy.close_delay);
        }
    }

    /// The editing session ended (every editor left and the delay passed, or the
    /// document unloads): `closed` with the final draft and its contributors.
    pub(super) fn close_session(&mut self) {
        self.closing_at = None;
        if !self.editing {
            return;
        }
        self.editing = false;
        let (title, html) = chorus_core::render::doc_html(self.room.doc());
        let html = self.room.whitelist().clean_html(&html);
        let contributors = std::mem::take(&mut self.session_contributors);
        let event = HookEvent::closed(
            &*self.key.0,
            &*self.key.1,
            now_ms(),
            title,
            html,
            contributors,
            self.etag(),
        );
        self.hook(event);
    }

    /// A write that stored edits completed: `saved`, at most once per
    /// `saved_webhook_secs`.
    pub(super) fn saved(&mut self) {
        let every = self.docs.policy.saved_webhook_every;
        if self.last_saved_hook.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_saved_hook = Some(Instant::now());
        let event = HookEvent::saved(&*self.key.0, &*self.key.1, now_ms(), self.etag());
        self.hook(event);
    }
}
