//! Scenario `joinstorm`: a big document, then many fresh clients join it at once.
//! One uploader sends `--doc-bytes` of printable text into the root Y.Text in
//! updates of `--chunk-bytes` and stays connected (the peers keep a document in
//! memory only while someone is); a fresh verifier's SyncStep2, applied, must hold
//! all of it. Then `--clients` fresh clients connect at once, each asking for
//! everything (SyncStep1 with an empty state vector). It measures the time from
//! the storm's start until each one's SyncStep2 arrived whole, and the server's
//! RSS before and at its peak (sampled every 50 ms: a peak of copies of the
//! document, one per joiner, may last well under a second).
//! `--phase upload` / `--phase load` split it as coldload does.

use super::client::{close_all, connect_all, connect_one, Cmd, Dial, Handle, Role, Shared};
use super::coldload::verify;
use super::proto::sync_msg;
use super::stats::{Clock, Hist, ProcMonitor};
use super::{base_result, finish, http_setup, random_id, round_to, Opts, Phase};
use anyhow::{anyhow, bail, Context};
use chorus_protocol::SYNC_UPDATE;
use std::time::{Duration, Instant};
use yrs::{Text, Transact};

/// Largest update the uploader sends: Chorus accepts 8 MiB a message
/// (`max_message_size`), but a document uploaded in small pieces is what editors
/// make, and every server's per-message costs stay out of the upload.
const MAX_UPDATE_BYTES: usize = 256 * 1024;
/// What an update adds to its text: struct and delete-set headers, the root's name.
const UPDATE_OVERHEAD: usize = 128;

/// `bytes` of printable ASCII (lowercase words and spaces: no `~`, so no marker)
/// appended to the root `root` in updates of `chunk` bytes, one transaction each.
fn build_doc(root: &str, bytes: usize, chunk: usize) -> Vec<Vec<u8>> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ";
    let doc = yrs::Doc::new();
    let text = doc.get_or_insert_text(root);
    let mut state = 0x2545_f491_u32;
    let mut updates = Vec::with_capacity(bytes.div_ceil(chunk));
    let mut piece = String::with_capacity(chunk);
    let mut left = bytes;
    while left > 0 {
        piece.clear();
        for _ in 0..left.min(chunk) {
            // xorshift32: cheap, and 20 MB of it takes a few tens of ms
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            piece.push(char::from(ALPHABET[state as usize % ALPHABET.len()]));
        }
        let mut txn = doc.transact_mut();
        text.push(&mut txn, &piece);
        updates.push(txn.encode_update_v1());
        left -= piece.len();
    }
    updates
}

pub async fn joinstorm(o: &Opts) -> anyhow::Result<serde_json::Value> {
    let clients = o.clients();
    if o.phase != Phase::Upload && clients == 0 {
        bail!("--clients must be positive");
    }
    if o.doc_bytes == 0 || o.chunk_bytes == 0 {
        bail!("--doc-bytes and --chunk-bytes must be positive");
    }
    if o.chunk_bytes > MAX_UPDATE_BYTES - UPDATE_OVERHEAD {
        bail!(
            "--chunk-bytes must be at most {} (an update stays under 256 KiB)",
            MAX_UPDATE_BYTES - UPDATE_OVERHEAD
        );
    }
    let doc_len = u32::try_from(o.doc_bytes).context("--doc-bytes over 4 GB")?;
    let doc = match (o.doc.is_empty(), o.phase) {
        (false, _) => o.doc.clone(),
        (true, Phase::Load) => bail!("--phase load needs --doc (the uploaded doc)"),
        (true, _) => format!("join-{}", random_id()),
    };
    let shared = Shared::new(Clock::new(), &o.root, 0);
    let dial = Dial::new(o);
    let mut r = base_result(o);
    r.insert("phase".into(), o.phase.name().into());
    r.insert("doc".into(), doc.clone().into());
    r.insert("doc_bytes".into(), o.doc_bytes.into());
    // 1. build locally, upload through one connection, verify with a fresh client
    let mut uploader: Option<Handle> = None;
    if o.phase != Phase::Load {
        let tb0 = Instant::now();
        let (root, bytes, chunk) = (o.root.clone(), o.doc_bytes, o.chunk_bytes);
        let updates = tokio::task::spawn_blocking(move || build_doc(&root, bytes, chunk))
            .await
            .map_err(|e| anyhow!("building the document: {e}"))?;
        let build_ms = tb0.elapsed().as_secs_f64() * 1e3;
        if let Some(big) = updates.iter().find(|u| u.len() > MAX_UPDATE_BYTES) {
            bail!("an update of {} bytes (over 256 KiB)", big.len());
        }
        let (w, _) = connect_one(&dial, &shared, &doc, 0, Role::Writer)
            .await
            .context("uploader")?;
        let tu0 = Instant::now();
        for u in &updates {
            w.cmds
                .send(Cmd::Send(sync_msg(SYNC_UPDATE, u)))
                .map_err(|_| anyhow!("uploader disconnected"))?;
        }
        if !w.flushed().await {
            bail!("uploader disconnected");
        }
        verify(&dial, &shared, &doc, doc_len)
            .await
            .context("verifying the upload")?;
        r.insert("chunk_bytes".into(), o.chunk_bytes.into());
        r.insert("chunks".into(), updates.len().into());
        r.insert(
            "upload_bytes".into(),
            updates.iter().map(Vec::len).sum::<usize>().into(),
        );
        r.insert("local_build_ms".into(), build_ms.round().into());
        r.insert(
            "upload_and_verify_ms".into(),
            (tu0.elapsed().as_secs_f64() * 1e3).round().into(),
        );
        uploader = Some(w);
    }
    if o.phase == Phase::Upload {
        close_all(vec![uploader]).await;
        r.insert("conn".into(), shared.conn_json());
        return Ok(serde_json::Value::Object(r));
    }
    // 2. the storm: every client at once (concurrency = clients)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mon = ProcMonitor::begin_every(o.server_pid, Duration::from_millis(50));
    let t0 = Instant::now();
    let specs = (0..clients).map(|_| (doc.clone(), Role::Quiet)).collect();
    let mut conn = connect_all(&dial, &shared, specs, clients).await;
    let storm_s = t0.elapsed().as_secs_f64();
    let mut synced = Hist::new();
    let (mut incomplete, mut min_bytes, mut max_bytes) = (0u64, usize::MAX, 0usize);
    for info in conn.infos.iter().flatten() {
        if let Some(at) = info.step2_at {
            synced.add(at.duration_since(t0).as_secs_f64() * 1e3);
        }
        // The text is in the update verbatim (ContentString): a SyncStep2 smaller
        // than the document's text cannot hold all of it.
        if info.step2_bytes < o.doc_bytes {
            incomplete += 1;
        }
        min_bytes = min_bytes.min(info.step2_bytes);
        max_bytes = max_bytes.max(info.step2_bytes);
    }
    mon.end(&mut r);
    // the highest of the 50 ms samples and the one after the storm
    if let Some(peak) = r.get("server_rss_mb_peak_sampled").cloned() {
        r.insert("server_peak_rss_mb".into(), peak);
    }
    let connected = conn.live().len();
    close_all(std::mem::take(&mut conn.handles)).await;
    close_all(vec![uploader]).await;
    let failed = conn.failures + incomplete;
    let fields = serde_json::json!({
        "clients": clients,
        "connected": connected,
        "connect_failures": conn.failures,
        "fail_reasons": conn.fail_reasons_json(),
        "incomplete": incomplete,
        "failed": failed,
        "all_synced": failed == 0,
        "synced_ms": synced.summary(),
        "storm_s": round_to(storm_s, 2),
        "connect_sync_ms": conn.connect_hist.summary(),
        "http_setup_ms": http_setup(o, &conn),
        "step2_bytes_min": (connected > 0).then_some(min_bytes),
        "step2_bytes_max": (connected > 0).then_some(max_bytes),
        "conn": shared.conn_json(),
    });
    Ok(finish(r, fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::GetString;

    #[test]
    fn the_document_is_built_in_updates_of_the_chunk_size() {
        let updates = build_doc("title", 10_500, 1000);
        assert_eq!(updates.len(), 11);
        assert!(updates.iter().all(|u| u.len() < 1000 + UPDATE_OVERHEAD));
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("title");
        for u in &updates {
            let u = yrs::Update::decode_v1(u).unwrap();
            doc.transact_mut().apply_update(u).unwrap();
        }
        let s = text.get_string(&doc.transact());
        assert_eq!(s.len(), 10_500);
        assert!(s.bytes().all(|c| c == b' ' || c.is_ascii_lowercase()));
    }
}
