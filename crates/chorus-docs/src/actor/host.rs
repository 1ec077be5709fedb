//! What the host API asks of a live document: external changes (and restores),
//! publishing, history points, and the bases of three-way external changes.
//!
//! Each operation runs inside the document's actor, like an edit: the change is
//! applied to the room (so editors receive it at once), and the host's answer waits
//! until the store has made it durable — the same rule as the "saved" acks editors
//! get. History points and publication markers ride in the same group-commit batch
//! as the document's updates.

use super::state::HostReply;
use super::{etag_of, DocActor};
use crate::command::{
    ActingUser, BaseState, ChangeOutcome, Draft, DraftContent, DraftFormat, HostAction,
    PreparedChange, PublishDraft, Published,
};
use crate::env::now_ms;
use crate::error::{DocError, HostError};
use chorus_hooks::HookEvent;
use chorus_store::{HistoryEntry, HistoryPoint};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};
use yrs::{ReadTxn, Transact};

impl DocActor {
    /// The draft's ETag now.
    pub(super) fn etag(&self) -> String {
        etag_of(&self.room.doc().transact().state_vector())
    }

    /// The live state a change is computed against, off the actor.
    pub(super) fn base_state(&self, with_state: bool) -> BaseState {
        BaseState {
            state_vector: self.room.doc().transact().state_vector(),
            state: with_state.then(|| self.room.encode_state()),
        }
    }

    /// Merge a host's change computed off the actor; the answer waits for the store.
    pub(super) fn external_change(
        &mut self,
        change: PreparedChange,
        reply: oneshot::Sender<Result<ChangeOutcome, HostError>>,
    ) {
        let result = self.room.apply_external(change.edit);
        if result.is_ok() && self.writes.meta.evicted_at_ms > 0 {
            // The host writes the evicted draft again: it is back.
            info!(app = %self.key.app, doc = %self.key.doc, "evicted draft written again by the host");
            self.writes.meta.evicted_at_ms = 0;
            self.writes.meta_changed = true;
        }
        let fields = match result {
            Ok(fields) => fields,
            Err(e) => {
                if e == chorus_core::ExternalError::Moved {
                    // Computed again by the caller (`Documents::external_change`).
                    debug!(app = %self.key.app, doc = %self.key.doc, "external change overtaken by an edit");
                } else {
                    warn!(app = %self.key.app, doc = %self.key.doc, error = %e, "external change refused");
                }
                let _ = reply.send(Err(HostError::from(e)));
                return;
            }
        };
        let outcome = ChangeOutcome {
            etag: self.etag(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        if fields.is_empty() && !self.writes.exists {
            // A change to a draft that does not exist creates it, even when its
            // content is what an empty draft already has (`{"title": ""}`): the host
            // asked for a document, and a later read must find one.
            info!(app = %self.key.app, doc = %self.key.doc, "empty draft created by an external change");
            self.writes.exists = true;
            self.writes.meta_changed = true;
        }
        if fields.is_empty() && change.restoring.is_none() {
            // Nothing new to write, but the content it matched may not be stored yet
            // (a write in flight, or failed): answer with the next write, or at once
            // when nothing is pending.
            self.writes
                .host_replies
                .push(HostReply::Change(reply, outcome, None));
            return;
        }
        info!(app = %self.key.app, doc = %self.key.doc, fields = ?outcome.fields, restoring = ?change.restoring, "external change applied");
        let tell = change.restoring.map(|r| {
            let kind = match r.action {
                HostAction::Discarded => "discard",
                _ => "restore",
            };
            self.take_history_point(kind, Some(r.point));
            r.action.message(&r.by)
        });
        if !outcome.fields.is_empty() {
            self.writes.meta.host_etag = outcome.etag.clone();
            let event = HookEvent::external_change(
                &*self.key.app,
                &*self.key.doc,
                now_ms(),
                outcome.fields.clone(),
                outcome.etag.clone(),
            );
            self.hook(event);
        }
        self.writes.exists = true;
        self.writes
            .host_replies
            .push(HostReply::Change(reply, outcome, tell));
    }

    /// The draft rendered for a publish, if it exists and still has `if_match`.
    pub(super) fn render(&self, if_match: &str) -> Result<PublishDraft, HostError> {
        if self.writes.meta.evicted_at_ms > 0 {
            return Err(HostError::Evicted {
                at_ms: self.writes.meta.evicted_at_ms,
            });
        }
        if !self.writes.exists {
            return Err(HostError::NotFound);
        }
        let etag = self.etag();
        if etag != if_match {
            return Err(HostError::Conflict { current: etag });
        }
        let (title, html) =
            chorus_core::render::doc_html_as(self.room.doc(), &self.room.whitelist().profile);
        Ok(PublishDraft { etag, title, html })
    }

    /// Publish `draft` (rendered and cleaned) if the draft has not moved since it was
    /// rendered; the answer waits for the store.
    pub(super) fn publish(
        &mut self,
        draft: PublishDraft,
        by: ActingUser,
        reply: oneshot::Sender<Result<Published, HostError>>,
    ) {
        let PublishDraft { etag, title, html } = draft;
        let current = self.etag();
        if current != etag {
            // An edit came in while the HTML was being cleaned.
            let _ = reply.send(Err(HostError::Conflict { current }));
            return;
        }
        let now = now_ms();
        self.take_history_point("publish", None);
        self.writes.meta.published_at_ms = now;
        self.writes.meta.published_etag = etag.clone();
        self.writes.meta.host_etag = etag.clone();
        info!(app = %self.key.app, doc = %self.key.doc, %etag, "draft published");
        let event = HookEvent::published(
            &*self.key.app,
            &*self.key.doc,
            now,
            title.clone(),
            html.clone(),
            etag.clone(),
            now,
        );
        self.hook(event);
        self.writes.host_replies.push(HostReply::Publish(
            reply,
            Published {
                title,
                html,
                etag,
                published_at_ms: now,
            },
            Some(HostAction::Published.message(&by)),
        ));
    }

    /// Queue a history point of the document as it is now, for the next write.
    pub(super) fn take_history_point(&mut self, kind: &str, restored: Option<u64>) {
        let now = now_ms();
        let title = {
            let doc = self.room.doc();
            let title = doc.get_or_insert_text(chorus_core::ROOT_TITLE);
            chorus_core::render::title_text(&doc.transact(), &title)
        };
        let w = &mut self.writes;
        w.meta.last_history_point += 1;
        w.meta.last_history_at_ms = now;
        w.changed_since_point = false;
        let point = w.meta.last_history_point;
        let etag = self.etag();
        self.writes.history_pending.push(HistoryPoint {
            entry: HistoryEntry {
                point,
                at_ms: now,
                kind: kind.to_owned(),
                restored_from: restored.unwrap_or(0),
                etag,
                title,
                size_bytes: 0,
            },
            state: self.room.encode_state(),
        });
    }

    /// Take an automatic history point if the draft changed and the interval passed.
    pub(super) fn maybe_auto_history(&mut self) {
        if !self.writes.changed_since_point {
            return;
        }
        let now = now_ms();
        if self.writes.meta.last_history_at_ms == 0 {
            // The interval counts from the first edit seen, not from the epoch.
            self.writes.meta.last_history_at_ms = now;
            return;
        }
        let interval = self.env.policy.history_interval.as_millis() as u64;
        if now.saturating_sub(self.writes.meta.last_history_at_ms) >= interval {
            self.take_history_point("auto", None);
        }
    }

    /// Answer a host's read of the draft; what the host read may become the base of
    /// its next external change. HTML is rendered here and cleaned on the blocking
    /// pool, which answers.
    pub(super) fn read(
        &self,
        format: DraftFormat,
        reply: oneshot::Sender<Result<Draft, DocError>>,
    ) {
        let doc = self.room.doc();
        let etag = self.etag();
        if self.writes.exists {
            self.env
                .bases
                .remember(&self.key, &etag, || self.room.encode_state());
        }
        let evicted_at_ms = self.writes.meta.evicted_at_ms;
        let exists = self.writes.exists && evicted_at_ms == 0;
        let updated_at_ms = self.writes.meta.updated_at_ms;
        let draft = move |content| Draft {
            exists,
            evicted_at_ms,
            etag,
            updated_at_ms,
            content,
        };
        let content = match format {
            DraftFormat::Json => DraftContent::Json(chorus_core::render::doc_json_as(
                doc,
                &self.room.whitelist().profile,
            )),
            DraftFormat::Yjs => DraftContent::Yjs(self.room.encode_state()),
            DraftFormat::Html => {
                let (title, raw) =
                    chorus_core::render::doc_html_as(doc, &self.room.whitelist().profile);
                // The guard already keeps the document inside the policy; the HTML is
                // cleaned with the same policy anyway, since hosts publish it as is.
                let whitelist = self.room.whitelist().clone();
                tokio::task::spawn_blocking(move || {
                    let html = whitelist.clean_html(&raw);
                    let _ = reply.send(Ok(draft(DraftContent::Html { title, html })));
                });
                return;
            }
        };
        let _ = reply.send(Ok(draft(content)));
    }
}
