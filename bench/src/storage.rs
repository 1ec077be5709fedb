//! `storage`: what one document costs on disk over a long editing run, and what
//! compaction and history retention do to it.
//!
//! One writer edits a document's title at `rate` edits a second for `secs` seconds,
//! as a person types: a character at the cursor, a backspace three times in ten, the
//! cursor moved to a random place every 64 edits; so the content grows by a fraction
//! of what the edits do. The
//! server takes a history point every second of editing (`history_interval_secs =
//! 1`: each second stands for the default ten minutes). Run three times on fresh
//! servers: `log` (compaction off: every edit stays a log record), `compacted` (the
//! defaults: the log folds into a snapshot every 1,000 records or 1 MiB) and
//! `retained` (compacted, and the retention sweep keeps the newest `keep` auto
//! points, sweeping every 5 s). Sampled every 10 s from the store itself: the
//! draft's bytes (snapshot + log since it, the metadata's `size_bytes`), the history
//! points and their bytes, and the content's own size (the document encoded once).

use chorus_e2e::{TestServer, APP};
use chorus_store::DocId;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

pub struct Storage {
    pub secs: u64,
    pub rate: u64,
    pub keep: usize,
}

#[derive(Clone, Copy)]
enum Mode {
    Log,
    Compacted,
    Retained,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Log => "log",
            Mode::Compacted => "compacted",
            Mode::Retained => "retained",
        }
    }
}

impl Storage {
    pub async fn run(self) -> anyhow::Result<serde_json::Value> {
        let mut runs = Vec::new();
        for mode in [Mode::Log, Mode::Compacted, Mode::Retained] {
            runs.push(self.one(mode).await?);
        }
        Ok(serde_json::json!({
            "scenario": "storage",
            "secs": self.secs,
            "rate": self.rate,
            "keep": self.keep,
            "runs": runs,
        }))
    }

    async fn one(&self, mode: Mode) -> anyhow::Result<serde_json::Value> {
        let keep = self.keep;
        let server = TestServer::start_with(|c| {
            c.history_interval_secs = 1;
            match mode {
                Mode::Log => {
                    c.compact_after_updates = u64::MAX;
                    c.compact_after_bytes = u64::MAX;
                    c.retention_sweep_secs = 0;
                }
                Mode::Compacted => c.retention_sweep_secs = 0,
                Mode::Retained => {
                    c.retention_sweep_secs = 5;
                    for app in &mut c.apps {
                        app.retention.auto_points = keep;
                    }
                }
            }
        })
        .await;
        let doc = "storage";
        let writer = server.ext_client(doc, "typist").await;
        let store = server.state.documents.store().clone();
        let id = DocId::new(APP, doc);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut len: u32 = 0;
        let mut edits = 0u64;
        let mut samples = Vec::new();
        let started = Instant::now();
        let every = Duration::from_secs_f64(1.0 / self.rate.max(1) as f64);
        let mut next_sample = Duration::from_secs(10);
        let mut last = 0;
        let mut cursor: u32 = 0;
        while started.elapsed() < Duration::from_secs(self.secs) {
            // A person typing: a character at the cursor, a backspace now and then,
            // and the cursor moved elsewhere every 64 edits.
            if edits % 64 == 63 {
                cursor = rng.random_range(0..=len);
            }
            if cursor > 0 && rng.random_bool(0.3) {
                cursor -= 1;
                last = writer.delete_title(cursor, 1);
                len -= 1;
            } else {
                let ch = char::from(b'a' + rng.random_range(0..26u8));
                last = writer.insert_title(cursor, ch.encode_utf8(&mut [0; 4]));
                cursor += 1;
                len += 1;
            }
            edits += 1;
            tokio::time::sleep(every).await;
            if started.elapsed() >= next_sample {
                next_sample += Duration::from_secs(10);
                samples.push(sample(&store, &id, started, edits, writer.state().len()).await?);
            }
        }
        // Everything typed is stored, then one last sample after a sweep period.
        let deadline = Instant::now() + Duration::from_secs(30);
        while writer.saved() < last && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if matches!(mode, Mode::Retained) {
            tokio::time::sleep(Duration::from_secs(6)).await;
        }
        let last_sample = sample(&store, &id, started, edits, writer.state().len()).await?;
        samples.push(last_sample.clone());
        writer.close().await;
        server.stop().await?;
        Ok(serde_json::json!({
            "mode": mode.name(),
            "edits": edits,
            "final": last_sample,
            "samples": samples,
        }))
    }
}

async fn sample(
    store: &std::sync::Arc<dyn chorus_store::Store>,
    id: &DocId,
    started: Instant,
    edits: u64,
    content_bytes: usize,
) -> anyhow::Result<serde_json::Value> {
    let (store, id) = (store.clone(), id.clone());
    let (draft, points, history) = tokio::task::spawn_blocking(move || {
        let meta = store
            .list(&id.app)?
            .into_iter()
            .find(|(d, _)| *d == id.doc)
            .map(|(_, m)| m)
            .unwrap_or_default();
        let entries = store.history(&id)?;
        let bytes: u64 = entries.iter().map(|e| e.size_bytes).sum();
        Ok::<_, chorus_store::StoreError>((meta.size_bytes, entries.len(), bytes))
    })
    .await??;
    Ok(serde_json::json!({
        "t": started.elapsed().as_secs(),
        "edits": edits,
        "content_bytes": content_bytes,
        "draft_bytes": draft,
        "history_points": points,
        "history_bytes": history,
        "total_bytes": draft + history,
    }))
}
