//! Host operations prepared where they cannot stall anyone: an external change (or
//! restore), and a publish (its HTML cleaned off the actor).
//!
//! The expensive parts run on the blocking pool: bounding, cleaning (ammonia) and
//! fitting the host's HTML, then computing the minimal edit against the base on a
//! fork. The document's actor is asked only for its state vector (and its state,
//! when the host named no base) and, at the end, to merge the computed edit, which
//! costs what a paste of the same size costs. A change computed from the live state
//! merges as a concurrent edit with whatever editors typed meanwhile, exactly like a
//! three-way change from a base the host read. Under a reject-mode whitelist (whose
//! guard takes yrs' deep events) a long rewrite may replace changed paragraphs whole,
//! which is only safe if nobody typed in them meanwhile: the actor refuses such an
//! edit if its document moved after the state was handed out, and the change is
//! computed again (in place, never replacing, after two tries). In strip and off
//! mode every changed paragraph is edited in place.

use crate::command::{
    ActingUser, ChangeOutcome, Deleted, DocCommand, HostChange, PreparedChange, Published,
    Restoring,
};
use crate::error::{DocError, HostError};
use crate::registry::Documents;
use crate::types::DocKey;
use chorus_core::import::{host_body, BodyNode};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

impl Documents {
    /// Apply `change` to the draft of `key` (loading it if needed); answers once the
    /// change is durable.
    ///
    /// The host's HTML is cleaned on one blocking thread while the actor hands out its
    /// state and a second blocking thread decodes it into a fork and reads the fork's
    /// body: the two halves need nothing from each other until the diff, so on a
    /// machine with a core to spare the change costs about the longer of them, not
    /// their sum (docs/PERFORMANCE.md, "External changes").
    pub async fn external_change(
        self: &Arc<Self>,
        key: &DocKey,
        change: HostChange,
    ) -> Result<ChangeOutcome, HostError> {
        let started = Instant::now();
        let HostChange {
            title,
            html,
            base,
            restoring,
        } = change;
        let whitelist = self.whitelist_for(&key.app).clone();
        // Replacing changed paragraphs whole spares only a guard that takes deep events.
        let replacing = whitelist.takes_deep_events();
        let mut body = match html {
            None => PendingBody::Ready(Arc::new(None)),
            Some(html) => {
                let (done, cleaned) = oneshot::channel();
                tokio::task::spawn_blocking(move || {
                    let body = catch_unwind(AssertUnwindSafe(|| host_body(&whitelist, &html)));
                    let _ = done.send(body.ok().map(|b| Arc::new(Some(b))));
                });
                PendingBody::Cleaning(cleaned)
            }
        };
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            // After a change found the draft moved twice (someone typing while a long
            // rewrite was computed), compute it without replacing anything: slower,
            // but it cannot be overtaken.
            let may_replace = replacing && attempt <= MAY_REPLACE_ATTEMPTS;
            let (result, cleaned) = self
                .apply_once(
                    key,
                    title.clone(),
                    body,
                    base.clone(),
                    restoring.clone(),
                    may_replace,
                )
                .await;
            match (result, cleaned) {
                (Err(HostError::Unavailable(DocError::Moved)), Some(cleaned)) if may_replace => {
                    body = PendingBody::Ready(cleaned);
                }
                (outcome, _) => break outcome,
            }
        };
        self.env.metrics.external_change(started.elapsed());
        outcome
    }

    /// Ask the actor for the live state, compute the edit on the blocking pool (the
    /// fork built while the body may still be cleaned), have the actor merge it. Also
    /// gives back the cleaned body, for another attempt.
    async fn apply_once(
        self: &Arc<Self>,
        key: &DocKey,
        title: Option<String>,
        body: PendingBody,
        base: Option<Arc<Vec<u8>>>,
        restoring: Option<Restoring>,
        may_replace: bool,
    ) -> (Result<ChangeOutcome, HostError>, Option<CleanedBody>) {
        let with_state = base.is_none();
        let live = match self
            .ask(key, |reply| DocCommand::Base { with_state, reply })
            .await
        {
            Ok(Ok(live)) => live,
            Ok(Err(e)) | Err(e) => return (Err(e.into()), None),
        };
        // The change's own base, or the live state the actor handed out.
        let base = base.unwrap_or_else(|| Arc::new(live.state.unwrap_or_default()));
        let profile = self.whitelist_for(&key.app).profile.clone();
        let has_body = body.has_body();
        let prepared = on_blocking_pool(move || {
            let fork =
                chorus_core::ExternalFork::new(&base, &live.state_vector, &profile, has_body);
            let Some(cleaned) = body.wait() else {
                return (Err(HostError::Unavailable(DocError::Panicked)), None);
            };
            let edit = fork.and_then(|fork| {
                fork.edit_keeping(
                    title.as_deref(),
                    (*cleaned).as_deref(),
                    may_replace,
                    &profile,
                )
            });
            (edit.map_err(HostError::from), Some(cleaned))
        })
        .await;
        let (edit, spent, cleaned) = match prepared {
            Ok((Ok((edit, spent)), cleaned)) => (edit, spent, cleaned),
            Ok((Err(e), cleaned)) => return (Err(e), cleaned),
            Err(e) => return (Err(e.into()), None),
        };
        let change = PreparedChange { edit, restoring };
        let outcome = match self
            .ask(key, |reply| DocCommand::External { change, reply })
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => Err(e.into()),
        };
        // Freed once the change is in: nobody waits for it any more.
        tokio::task::spawn_blocking(move || drop(spent));
        (outcome, cleaned)
    }
}

/// A host's body as the editor's model ([`host_body`]), `None` for a change of the
/// title only.
type CleanedBody = Arc<Option<Vec<BodyNode>>>;

/// The body of a change: being cleaned on another blocking thread, or ready.
enum PendingBody {
    Cleaning(oneshot::Receiver<Option<CleanedBody>>),
    Ready(CleanedBody),
}

impl PendingBody {
    /// Whether the change has a body (one being cleaned always does).
    fn has_body(&self) -> bool {
        match self {
            PendingBody::Cleaning(_) => true,
            PendingBody::Ready(body) => body.is_some(),
        }
    }

    /// The cleaned body, waiting for it on this (blocking) thread if need be; `None`
    /// if cleaning it panicked.
    fn wait(self) -> Option<CleanedBody> {
        match self {
            PendingBody::Ready(body) => Some(body),
            PendingBody::Cleaning(cleaned) => cleaned.blocking_recv().ok().flatten(),
        }
    }
}

/// Attempts that may replace changed paragraphs whole before a change is computed
/// in place (see [`chorus_core::external_edit`]).
const MAY_REPLACE_ATTEMPTS: u32 = 2;

impl Documents {
    /// Publish the draft of `key` if its ETag is still `if_match`: the actor renders
    /// it, the blocking pool cleans the HTML with the app's whitelist, and the actor
    /// records the publication (a history point, the `published` event) unless the
    /// draft moved meanwhile (then `Conflict`). Answers once it is durable, when the
    /// editors are also told who published.
    pub async fn publish(
        self: &Arc<Self>,
        key: &DocKey,
        if_match: String,
        by: ActingUser,
    ) -> Result<Published, HostError> {
        let mut draft = self
            .ask(key, |reply| DocCommand::Render { if_match, reply })
            .await??;
        let whitelist = self.whitelist_for(&key.app).clone();
        let raw = std::mem::take(&mut draft.html);
        draft.html = on_blocking_pool(move || whitelist.clean_html(&raw)).await?;
        self.ask(key, |reply| DocCommand::Publish { draft, by, reply })
            .await?
    }
}

impl Documents {
    /// Delete the draft of `key`: its editors are closed with
    /// [`Disconnect::Deleted`](crate::Disconnect::Deleted), its records removed and a
    /// `deleted` event raised; answers once that is durable (`NotFound` if it was
    /// never stored).
    pub async fn delete(self: &Arc<Self>, key: &DocKey) -> Result<Deleted, HostError> {
        self.ask(key, |reply| DocCommand::Delete { reply }).await?
    }
}

/// Run `work` on the blocking pool; a panic in it is a [`DocError::Panicked`].
async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DocError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| DocError::Panicked)
}
