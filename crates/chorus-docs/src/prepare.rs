//! Host operations prepared where they cannot stall anyone: an external change (or
//! restore), and a publish (its HTML cleaned off the actor).
//!
//! The expensive parts run on the blocking pool: bounding, cleaning (ammonia) and
//! fitting the host's HTML, then computing the minimal edit against the base on a
//! fork. The document's actor is asked only for its state vector (and its state,
//! when the host named no base) and, at the end, to merge the computed edit, which
//! costs what a paste of the same size costs. A change computed from the live state
//! merges as a concurrent edit with whatever editors typed meanwhile, exactly like a
//! three-way change from a base the host read. A long rewrite may replace changed
//! paragraphs whole, which is only safe if nobody typed in them meanwhile: the
//! actor refuses such an edit if its document moved after the state was handed out,
//! and the change is computed again (in place, never replacing, after two tries).

use crate::command::{ChangeOutcome, DocCommand, HostChange, PreparedChange, Published};
use crate::error::{DocError, HostError};
use crate::registry::{DocKey, Documents};
use chorus_core::import::{host_body, BodyNode};
use std::sync::Arc;
use std::time::Instant;

impl Documents {
    /// Apply `change` to the draft of `key` (loading it if needed); answers once the
    /// change is durable.
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
        let whitelist = self.whitelist_for(&key.0).clone();
        let body = match html {
            None => None,
            Some(html) => Some(on_blocking_pool(move || host_body(&whitelist, &html)).await?),
        };
        let body = Arc::new(body);
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            // After a change found the draft moved twice (someone typing while a long
            // rewrite was computed), compute it without replacing anything: slower,
            // but it cannot be overtaken.
            let may_replace = attempt <= MAY_REPLACE_ATTEMPTS;
            let (title, body, base) = (title.clone(), body.clone(), base.clone());
            match self
                .apply_once(key, title, body, base, restoring, may_replace)
                .await
            {
                Err(HostError::Unavailable(DocError::Moved)) if may_replace => continue,
                outcome => break outcome,
            }
        };
        self.metrics.external_change(started.elapsed());
        outcome
    }

    /// Ask the actor for the live state, compute the edit on the blocking pool, have
    /// the actor merge it.
    async fn apply_once(
        self: &Arc<Self>,
        key: &DocKey,
        title: Option<String>,
        body: Arc<Option<Vec<BodyNode>>>,
        base: Option<Arc<Vec<u8>>>,
        restoring: Option<u64>,
        may_replace: bool,
    ) -> Result<ChangeOutcome, HostError> {
        let with_state = base.is_none();
        let live = self
            .ask(key, |reply| DocCommand::Base { with_state, reply })
            .await??;
        // The change's own base, or the live state the actor handed out.
        let base = base.unwrap_or_else(|| Arc::new(live.state.unwrap_or_default()));
        let profile = self.whitelist_for(&key.0).profile.clone();
        let edit = on_blocking_pool(move || {
            chorus_core::external_edit(
                &base,
                &live.state_vector,
                title.as_deref(),
                (*body).as_deref(),
                may_replace,
                &profile,
            )
        })
        .await??;
        let change = PreparedChange { edit, restoring };
        self.ask(key, |reply| DocCommand::External { change, reply })
            .await?
    }
}

/// Attempts that may replace changed paragraphs whole before a change is computed
/// in place (see [`chorus_core::external_edit`]).
const MAY_REPLACE_ATTEMPTS: u32 = 2;

impl Documents {
    /// Publish the draft of `key` if its ETag is still `if_match`: the actor renders
    /// it, the blocking pool cleans the HTML with the app's whitelist, and the actor
    /// records the publication (a history point, the `published` event) unless the
    /// draft moved meanwhile (then `Conflict`). Answers once it is durable.
    pub async fn publish(
        self: &Arc<Self>,
        key: &DocKey,
        if_match: String,
    ) -> Result<Published, HostError> {
        let mut draft = self
            .ask(key, |reply| DocCommand::Render { if_match, reply })
            .await??;
        let whitelist = self.whitelist_for(&key.0).clone();
        let raw = std::mem::take(&mut draft.html);
        draft.html = on_blocking_pool(move || whitelist.clean_html(&raw)).await?;
        self.ask(key, |reply| DocCommand::Publish { draft, reply })
            .await?
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
