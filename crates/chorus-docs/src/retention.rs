//! The retention sweep: every so often, each app's documents lose the history
//! points their app's [`RetentionPolicy`] no longer keeps, so history grows with
//! time kept, not with time edited; and drafts neither changed nor opened for the
//! app's `evict_after` are evicted (by their actor: see `actor/lifecycle.rs`).
//!
//! It works on the store alone (documents need not be loaded, and a live one is not
//! disturbed: history points are written once under numbers that only grow, and a
//! deletion touches none but those it names). In cluster mode every node sweeps; the
//! deletions are idempotent, and each node starts at a random moment of the period.
//!
//! [`RetentionPolicy`]: crate::RetentionPolicy

use crate::command::DocCommand;
use crate::env::{last_used_ms, now_ms};
use crate::registry::Documents;
use crate::types::DocKey;
use chorus_store::DocId;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What a sweep found: documents looked at, history points dropped, drafts to
/// evict (with the cutoff their last use must be before).
type SweepFound = (usize, usize, Vec<(DocKey, u64)>);

impl Documents {
    /// Sweep every `every` until `stop` (nothing if no app has a retention policy).
    pub async fn run_retention(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        if self.env.retention.is_empty() || every.is_zero() {
            return;
        }
        // Nodes started together do not sweep together.
        let first = every.mul_f64(rand::random::<f64>().clamp(0.05, 1.0));
        let mut wait = first.min(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = every;
            let me = self.clone();
            let swept = tokio::task::spawn_blocking(move || me.sweep_history()).await;
            let candidates = match swept {
                Ok(Ok((docs, dropped, candidates))) => {
                    if dropped > 0 {
                        info!(docs, dropped, "history retention: points dropped");
                    }
                    candidates
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "history retention sweep failed; next one in a period");
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "history retention sweep failed; next one in a period");
                    continue;
                }
            };
            let mut evicted = 0;
            for (key, cutoff_ms) in candidates {
                if stop.is_cancelled() {
                    return;
                }
                match self
                    .ask(&key, |reply| DocCommand::Evict { cutoff_ms, reply })
                    .await
                {
                    Ok(Ok(true)) => evicted += 1,
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        warn!(app = %key.app, doc = %key.doc, error = %e, "eviction failed")
                    }
                    Err(e) => warn!(app = %key.app, doc = %key.doc, error = %e, "eviction failed"),
                }
            }
            if evicted > 0 {
                info!(
                    evicted,
                    "drafts evicted (unused past their app's evict_after_secs)"
                );
            }
        }
    }

    /// One sweep, on a blocking thread: (documents looked at, points dropped, drafts
    /// to evict with their cutoff).
    fn sweep_history(&self) -> Result<SweepFound, chorus_store::StoreError> {
        let store = self.env.store();
        let now = now_ms();
        let (mut docs, mut dropped, mut candidates) = (0, 0, Vec::new());
        for (app, policy) in &self.env.retention {
            for (doc, meta) in store.list(app)? {
                docs += 1;
                if let Some(after) = policy.evict_after {
                    let cutoff = now.saturating_sub(after.as_millis() as u64);
                    if meta.evicted_at_ms == 0 && last_used_ms(&meta) < cutoff {
                        candidates.push((DocKey::new(app.as_str(), doc.as_str()), cutoff));
                    }
                }
                if meta.last_history_point == 0 {
                    continue;
                }
                let id = DocId::new(app.as_str(), doc);
                let entries = store.history(&id)?;
                let points = policy.points_to_drop(&entries, now);
                if !points.is_empty() {
                    store.delete_history(&id, &points)?;
                    dropped += points.len();
                }
            }
        }
        Ok((docs, dropped, candidates))
    }
}

#[cfg(test)]
mod tests {
    use crate::env::RetentionPolicy;
    use chorus_store::HistoryEntry;
    use std::time::Duration;

    const DAY: u64 = 86_400_000;

    fn entry(point: u64, kind: &str, at_ms: u64) -> HistoryEntry {
        HistoryEntry {
            point,
            at_ms,
            kind: kind.into(),
            ..HistoryEntry::default()
        }
    }

    /// The reference: keep a point if it is the latest publish, or among the newest
    /// `n` of its class and young enough; written as a filter over each point.
    fn reference(p: &RetentionPolicy, entries: &[HistoryEntry], now: u64) -> Vec<u64> {
        let last_publish = entries
            .iter()
            .filter(|e| e.kind == "publish")
            .map(|e| e.point)
            .max();
        entries
            .iter()
            .filter(|e| {
                if Some(e.point) == last_publish {
                    return false;
                }
                let auto = e.kind == "auto";
                let newer_of_class = entries
                    .iter()
                    .filter(|o| (o.kind == "auto") == auto && o.point > e.point)
                    .count();
                let (n, max) = if auto {
                    (p.auto_points, p.max_auto_age)
                } else {
                    // The latest publish counts among the named ones.
                    (p.named_points, p.max_named_age)
                };
                let old = max.is_some_and(|m| now.saturating_sub(e.at_ms) > m.as_millis() as u64);
                newer_of_class >= n || old
            })
            .map(|e| e.point)
            .collect()
    }

    #[test]
    fn keeps_the_newest_of_each_class_the_young_and_always_the_last_publish() {
        let now = 1_000 * DAY;
        let policy = RetentionPolicy {
            auto_points: 2,
            max_auto_age: Some(Duration::from_millis(30 * DAY)),
            named_points: 2,
            max_named_age: Some(Duration::from_millis(365 * DAY)),
            evict_after: None,
        };
        let entries = [
            entry(1, "publish", now - 800 * DAY), // the last publish: kept however old
            entry(2, "auto", now - 40 * DAY),     // too old
            entry(3, "auto", now - 5 * DAY),      // third newest auto
            entry(4, "restore", now - 4 * DAY),   // second newest named: kept
            entry(5, "auto", now - 3 * DAY),
            entry(6, "discard", now - 2 * DAY), // newest named
            entry(7, "auto", now - DAY),
        ];
        let dropped = policy.points_to_drop(&entries, now);
        assert_eq!(dropped, [2, 3]);
        // One named point fewer: the restore goes, the older last publish stays.
        let tighter = RetentionPolicy {
            named_points: 1,
            ..policy
        };
        assert_eq!(tighter.points_to_drop(&entries, now), [2, 3, 4]);
        assert_eq!(dropped, reference(&policy, &entries, now));
    }

    #[test]
    fn agrees_with_the_reference_on_generated_histories() {
        let kinds = ["auto", "publish", "restore", "discard"];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let now = 2_000 * DAY;
            let n = (next() % 40) as usize;
            let mut at = now - 1_000 * DAY;
            let entries: Vec<HistoryEntry> = (1..=n as u64)
                .map(|p| {
                    at += next() % (60 * DAY);
                    entry(p, kinds[(next() % 4) as usize], at.min(now))
                })
                .collect();
            let age =
                |x: u64| (!x.is_multiple_of(3)).then(|| Duration::from_millis((x % 400) * DAY));
            let policy = RetentionPolicy {
                auto_points: (next() % 6) as usize,
                max_auto_age: age(next()),
                named_points: (next() % 6) as usize,
                max_named_age: age(next()),
                evict_after: None,
            };
            assert_eq!(
                policy.points_to_drop(&entries, now),
                reference(&policy, &entries, now),
                "{policy:?} {entries:?}"
            );
        }
    }
}
