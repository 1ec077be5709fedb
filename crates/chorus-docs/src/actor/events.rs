//! When a document tells its host something: the webhook events a document actor
//! raises (`editing`, `saved`, `closed`, `external-change`, `published`).
//!
//! The actor only decides *when*; `chorus-hooks` owns the outbox format, signing and
//! delivery. An event rides in the actor's next write job (or a flush-only job if
//! there is none): the writer thread puts it in the store's outbox before that job's
//! flush and lets the delivery loop send it only after the flush, so a host never
//! hears of something a crash could still undo, and the actor never waits on the
//! store.

use super::DocActor;
use crate::env::now_ms;
use chorus_core::Session;
use chorus_hooks::HookEvent;
use tokio::time::Instant;
use tracing::debug;

impl DocActor {
    /// Queue `event` for the next write if the app has a callback URL.
    pub(super) fn hook(&mut self, event: HookEvent) {
        if !self.env.hooked_apps.contains(&*self.key.app) {
            return;
        }
        debug!(app = %self.key.app, doc = %self.key.doc, kind = event.kind.as_str(), "webhook event raised");
        self.writes.events.push(event);
    }

    /// A member joined: the first editor opens an editing session (`editing`).
    pub(super) fn editor_joined(&mut self, conn: chorus_core::ConnId, session: &Session) {
        if !session.can_edit() {
            return;
        }
        self.session.editors.insert(conn, session.user_id.clone());
        self.session.closing_at = None;
        if !self.session.open {
            self.session.open = true;
            let users: std::collections::BTreeSet<String> =
                self.session.editors.values().cloned().collect();
            let event = HookEvent::editing(&*self.key.app, &*self.key.doc, now_ms(), users);
            self.hook(event);
        }
    }

    /// A member left: once no editor is left, `closed` is due after the save delay.
    pub(super) fn editor_left(&mut self, conn: chorus_core::ConnId) {
        let s = &mut self.session;
        if s.editors.remove(&conn).is_some() && s.editors.is_empty() && s.open {
            s.closing_at = Some(Instant::now() + self.env.policy.close_delay);
        }
    }

    /// The editing session ended (every editor left and the delay passed, or the
    /// document unloads): `closed` with the final draft, its contributors, and
    /// whether it changed since the host last published or changed it.
    ///
    /// The final draft's HTML is cleaned on the blocking pool: this actor waits (its
    /// editors are gone by now), the runtime's worker does not.
    pub(super) async fn close_session(&mut self) {
        self.session.closing_at = None;
        if !self.session.open {
            return;
        }
        self.session.open = false;
        let (title, html) = self.final_content().await;
        let contributors = std::mem::take(&mut self.session.contributors);
        let etag = self.etag();
        let changed = etag != self.writes.meta.host_etag;
        let event = HookEvent::closed(
            &*self.key.app,
            &*self.key.doc,
            now_ms(),
            title,
            html,
            contributors,
            etag,
        )
        .with_changed(changed);
        self.hook(event);
    }

    /// The draft's title and HTML as a host is sent them (`closed`, `evicted`): the
    /// HTML cleaned on the blocking pool, so this actor waits and the runtime's
    /// worker does not.
    pub(super) async fn final_content(&self) -> (String, String) {
        let (title, raw) =
            chorus_core::render::doc_html_as(self.room.doc(), &self.room.whitelist().profile);
        let whitelist = self.room.whitelist().clone();
        let html = tokio::task::spawn_blocking(move || whitelist.clean_html(&raw))
            .await
            .unwrap_or_default();
        (title, html)
    }

    /// A write that stored edits completed: `saved`, at most once per
    /// `saved_webhook_secs`.
    pub(super) fn saved(&mut self) {
        let every = self.env.policy.saved_webhook_every;
        if self
            .session
            .last_saved_hook
            .is_some_and(|t| t.elapsed() < every)
        {
            return;
        }
        self.session.last_saved_hook = Some(Instant::now());
        let event = HookEvent::saved(&*self.key.app, &*self.key.doc, now_ms(), self.etag());
        self.hook(event);
    }
}
