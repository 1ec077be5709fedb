//! What the host API asks of a live document: external changes (and restores),
//! publishing, history points, and the bases of three-way external changes.
//!
//! Each operation runs inside the document's actor, like an edit: the change is
//! applied to the room (so editors receive it at once), and the host's answer waits
//! until the store has made it durable — the same rule as the "saved" acks editors
//! get. History points and publication markers ride in the same group-commit batch
//! as the document's updates.

use super::{etag_of, now_ms, DocActor, DocKey};
use chorus_core::import::{body_nodes_html, fit_editor, parse_body_html, BodyNode};
use chorus_core::ExternalError;
use chorus_hooks::HookEvent;
use chorus_store::{HistoryEntry, HistoryPoint};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{info, warn};
use yrs::{ReadTxn, Transact};

/// Bases kept at most, over all documents (oldest dropped first).
const MAX_BASES: usize = 256;
/// Bytes of bases kept at most, over all documents.
const MAX_BASE_BYTES: usize = 64 << 20;

/// A change the host asks for.
#[derive(Debug)]
pub struct HostChange {
    /// New title (plain text), if it changes.
    pub title: Option<String>,
    /// New body HTML, if it changes (cleaned by the app's whitelist first).
    pub html: Option<String>,
    /// The document as the host read it (three-way change), if given.
    pub base: Option<Arc<Vec<u8>>>,
    /// For a restore: the history point it brings back (recorded as a `restore` point).
    pub restoring: Option<u64>,
}

/// What an applied change answers.
#[derive(Debug, Clone)]
pub struct ChangeOutcome {
    /// The draft's ETag after the change.
    pub etag: String,
    /// Fields that changed (`title`, `body`); empty if the content already matched.
    pub fields: Vec<String>,
}

/// What a publish answers.
#[derive(Debug, Clone)]
pub struct Published {
    /// The published title.
    pub title: String,
    /// The published body HTML (cleaned by the app's whitelist).
    pub html: String,
    /// The ETag that was published.
    pub etag: String,
    /// When (ms since the epoch).
    pub published_at_ms: u64,
}

/// Why a host operation on a document failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// The document was never stored or edited.
    #[error("no such document")]
    NotFound,
    /// The draft moved on since the host read it (publish with a stale `If-Match`).
    #[error("the draft changed since it was read (current ETag {current})")]
    Conflict {
        /// The draft's ETag now.
        current: String,
    },
    /// The change holds content the app's whitelist refuses (reject mode).
    #[error("the change holds content outside the whitelist")]
    ContentRejected,
    /// The base does not decode as a document.
    #[error("the base of the change is not a valid document")]
    BadBase,
    /// The document could not be loaded or written.
    #[error("{0}")]
    Unavailable(String),
}

/// A host answer waiting for the store.
pub(super) enum HostReply {
    Change(
        oneshot::Sender<Result<ChangeOutcome, HostError>>,
        ChangeOutcome,
    ),
    Publish(oneshot::Sender<Result<Published, HostError>>, Published),
}

impl HostReply {
    /// The write carrying the operation is durable: answer.
    pub(super) fn complete(self) {
        match self {
            HostReply::Change(tx, outcome) => drop(tx.send(Ok(outcome))),
            HostReply::Publish(tx, published) => drop(tx.send(Ok(published))),
        }
    }

    /// The operation can no longer be made durable: answer with an error.
    pub(super) fn fail(self, why: &str) {
        let err = HostError::Unavailable(why.to_owned());
        match self {
            HostReply::Change(tx, _) => drop(tx.send(Err(err))),
            HostReply::Publish(tx, _) => drop(tx.send(Err(err))),
        }
    }
}

/// Drafts hosts read recently, kept so that a later external change can name one as
/// its base (`baseEtag`). In memory, bounded in count, bytes and age.
#[derive(Default)]
pub struct Bases {
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
    pub fn remember(&self, key: &DocKey, etag: &str, state: impl FnOnce() -> Vec<u8>) {
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
    pub fn get(&self, key: &DocKey, etag: &str, ttl: Duration) -> Option<Arc<Vec<u8>>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|b| b.at.elapsed() <= ttl);
        entries
            .iter()
            .find(|b| &b.key == key && b.etag == etag)
            .map(|b| b.state.clone())
    }
}

impl DocActor {
    /// The draft's ETag now.
    pub(super) fn etag(&self) -> String {
        etag_of(&self.room.doc().transact().state_vector())
    }

    /// Apply a host's change; the answer waits for the store.
    pub(super) fn external_change(
        &mut self,
        change: HostChange,
        reply: oneshot::Sender<Result<ChangeOutcome, HostError>>,
    ) {
        let body: Option<Vec<BodyNode>> = change.html.as_deref().map(|html| {
            let whitelist = self.room.whitelist();
            let policy = whitelist.policy.clone();
            let is_mark = |tag: &str| policy.allows_mark(tag, &[]);
            // Bound the host's HTML first (our parser caps nesting before it costs
            // anything; the cleaner's parser is quadratic in depth), then the same
            // policy guards it twice: ammonia drops what it refuses, and the guard
            // checks the resulting update like an edit. Last, inline runs in block
            // containers are wrapped in `p`, so the web client's editor can hold them.
            let bounded = body_nodes_html(&parse_body_html(html, &is_mark));
            let clean = whitelist.clean_html(&bounded);
            fit_editor(parse_body_html(&clean, &is_mark))
        });
        let result = self.room.external_change(
            change.base.as_deref().map(Vec::as_slice),
            change.title.as_deref(),
            body.as_deref(),
        );
        let fields = match result {
            Ok(fields) => fields,
            Err(e) => {
                warn!(app = %self.key.0, doc = %self.key.1, error = %e, "external change refused");
                let err = match e {
                    ExternalError::BadBase => HostError::BadBase,
                    ExternalError::ContentRejected => HostError::ContentRejected,
                    ExternalError::Panicked => HostError::Unavailable(e.to_string()),
                };
                let _ = reply.send(Err(err));
                return;
            }
        };
        let outcome = ChangeOutcome {
            etag: self.etag(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        if fields.is_empty() && change.restoring.is_none() {
            // Nothing to make durable.
            let _ = reply.send(Ok(outcome));
            return;
        }
        info!(app = %self.key.0, doc = %self.key.1, fields = ?outcome.fields, restoring = ?change.restoring, "external change applied");
        if let Some(point) = change.restoring {
            self.take_history_point("restore", Some(point));
        }
        if !outcome.fields.is_empty() {
            let event = HookEvent::external_change(
                &*self.key.0,
                &*self.key.1,
                now_ms(),
                outcome.fields.clone(),
                outcome.etag.clone(),
            );
            self.hook(event);
        }
        self.exists = true;
        self.host_replies.push(HostReply::Change(reply, outcome));
    }

    /// Publish the draft if it still has `if_match`; the answer waits for the store.
    pub(super) fn publish(
        &mut self,
        if_match: &str,
        reply: oneshot::Sender<Result<Published, HostError>>,
    ) {
        if !self.exists {
            let _ = reply.send(Err(HostError::NotFound));
            return;
        }
        let etag = self.etag();
        if etag != if_match {
            let _ = reply.send(Err(HostError::Conflict { current: etag }));
            return;
        }
        let doc = self.room.doc();
        let (title, html) = chorus_core::render::doc_html(doc);
        let html = self.room.whitelist().clean_html(&html);
        let now = now_ms();
        self.take_history_point("publish", None);
        self.meta.published_at_ms = now;
        self.meta.published_etag = etag.clone();
        info!(app = %self.key.0, doc = %self.key.1, %etag, "draft published");
        let event = HookEvent::published(
            &*self.key.0,
            &*self.key.1,
            now,
            title.clone(),
            html.clone(),
            etag.clone(),
            now,
        );
        self.hook(event);
        self.host_replies.push(HostReply::Publish(
            reply,
            Published {
                title,
                html,
                etag,
                published_at_ms: now,
            },
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
        self.meta.last_history_point += 1;
        self.meta.last_history_at_ms = now;
        self.changed_since_point = false;
        self.history_pending.push(HistoryPoint {
            entry: HistoryEntry {
                point: self.meta.last_history_point,
                at_ms: now,
                kind: kind.to_owned(),
                restored_from: restored.unwrap_or(0),
                etag: self.etag(),
                title,
                size_bytes: 0,
            },
            state: self.room.encode_state(),
        });
    }

    /// Take an automatic history point if the draft changed and the interval passed.
    pub(super) fn maybe_auto_history(&mut self) {
        if !self.changed_since_point {
            return;
        }
        let now = now_ms();
        if self.meta.last_history_at_ms == 0 {
            // The interval counts from the first edit seen, not from the epoch.
            self.meta.last_history_at_ms = now;
            return;
        }
        let interval = self.docs.policy.history_interval.as_millis() as u64;
        if now.saturating_sub(self.meta.last_history_at_ms) >= interval {
            self.take_history_point("auto", None);
        }
    }
}
