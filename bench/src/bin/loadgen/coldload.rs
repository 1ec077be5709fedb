//! Scenario `coldload`: a long typed history, then fresh clients time how long
//! their SyncStep2 takes. `--phase upload` / `--phase load` split it so that a
//! script can restart the server in between (the doc then comes from its store);
//! `--phase all` keeps the uploader connected, as the Node generator does.

use super::client::{close_all, connect_one, Cmd, Dial, Handle, Role, Shared};
use super::proto::sync_msg;
use super::stats::{Clock, ProcMonitor};
use super::{base_result, finish, random_id, round_to, Opts, Phase};
use anyhow::{anyhow, bail, Context};
use chorus_protocol::{Writer, SYNC_UPDATE};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Node generator's LCG, so the same `--seed` gives the same positions.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        f64::from(self.0) / 4_294_967_296.0
    }
}

/// Client id of the generated history.
const HISTORY_CLIENT: u64 = 1;

/// The v1 update of one single-char insert, encoded as Yjs encodes it: one Item
/// (`HISTORY_CLIENT`, `clock`) with a ContentString, its origin the char before it
/// and its right origin the char after it (the root's name when it has neither),
/// and an empty delete set.
fn insert_update(root: &str, clock: u32, left: Option<u32>, right: Option<u32>, c: u8) -> Vec<u8> {
    let mut w = Writer::with_capacity(24);
    w.write_var_u64(1); // clients
    w.write_var_u64(1); // structs of this client
    w.write_var_u64(HISTORY_CLIENT);
    w.write_var_u64(u64::from(clock));
    let mut info = 4u8; // ContentString
    if left.is_some() {
        info |= 0x80;
    }
    if right.is_some() {
        info |= 0x40;
    }
    w.write_u8(info);
    for id in [left, right].into_iter().flatten() {
        w.write_var_u64(HISTORY_CLIENT);
        w.write_var_u64(u64::from(id));
    }
    if left.is_none() && right.is_none() {
        w.write_var_u64(1); // parent is a root type, by name
        w.write_var_string(root);
    }
    w.write_var_bytes(&[c]);
    w.write_var_u64(0); // delete set: no clients
    w.finish().into()
}

/// The text as a sequence of item clocks, in blocks (an insert costs O(√n), not the
/// O(n) walk of an index-based insert into a text of n single-char items).
#[derive(Default)]
struct Seq {
    blocks: Vec<Vec<u32>>,
    len: usize,
}

impl Seq {
    const MAX_BLOCK: usize = 512;

    fn locate(&self, mut pos: usize) -> (usize, usize) {
        for (i, b) in self.blocks.iter().enumerate() {
            if pos < b.len() {
                return (i, pos);
            }
            pos -= b.len();
        }
        (self.blocks.len(), 0)
    }

    fn get(&self, pos: usize) -> Option<u32> {
        (pos < self.len).then(|| {
            let (i, off) = self.locate(pos);
            self.blocks[i][off]
        })
    }

    fn insert(&mut self, pos: usize, id: u32) {
        let (i, off) = if pos >= self.len {
            match self.blocks.len() {
                0 => {
                    self.blocks.push(Vec::new());
                    (0, 0)
                }
                n => (n - 1, self.blocks[n - 1].len()),
            }
        } else {
            self.locate(pos)
        };
        self.blocks[i].insert(off, id);
        self.len += 1;
        if self.blocks[i].len() > Self::MAX_BLOCK {
            let tail = self.blocks[i].split_off(Self::MAX_BLOCK / 2);
            self.blocks.insert(i + 1, tail);
        }
    }
}

/// `history` single-char inserts at random positions of the root text, one
/// update each (as one transaction per insert makes them), merged into updates of
/// `chunk` inserts.
fn build_history(
    root: &str,
    history: u32,
    chunk: usize,
    seed: u32,
) -> anyhow::Result<Vec<Vec<u8>>> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ";
    let mut rng = Lcg(seed);
    let mut seq = Seq::default();
    let mut pending = Vec::with_capacity(chunk);
    let mut chunks = Vec::new();
    for i in 0..history {
        let len = seq.len;
        let at = ((rng.next() * (len + 1) as f64).floor() as usize).min(len);
        let left = at.checked_sub(1).and_then(|p| seq.get(p));
        let right = seq.get(at);
        let c = ALPHABET[i as usize % ALPHABET.len()];
        pending.push(insert_update(root, i, left, right, c));
        seq.insert(at, i);
        if pending.len() >= chunk.max(1) {
            chunks.push(yrs::merge_updates_v1(&pending).context("merging updates")?);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        chunks.push(yrs::merge_updates_v1(&pending).context("merging updates")?);
    }
    Ok(chunks)
}

/// Polls with fresh clients until one's root text, the SyncStep2 applied, is
/// `len` long: the whole upload (60 tries). joinstorm's check too.
pub async fn verify(
    dial: &Arc<Dial>,
    shared: &Arc<Shared>,
    doc: &str,
    len: u32,
) -> anyhow::Result<()> {
    let mut last = String::from("no attempt");
    for attempt in 0..60 {
        let wait = if attempt == 0 { 200 } else { 1000 };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match connect_one(dial, shared, doc, 1, Role::Full).await {
            Ok((h, info)) => {
                close_all(vec![Some(h)]).await;
                if info.text_len == len {
                    return Ok(());
                }
                last = format!("length {}", info.text_len);
            }
            Err(e) => last = format!("{e:#}"),
        }
    }
    bail!("server never reached full history; last: {last}")
}

pub async fn coldload(o: &Opts) -> anyhow::Result<serde_json::Value> {
    if o.runs == 0 && o.phase != Phase::Upload {
        bail!("--runs must be positive");
    }
    let doc = match (o.doc.is_empty(), o.phase) {
        (false, _) => o.doc.clone(),
        (true, Phase::Load) => bail!("--phase load needs --doc (the uploaded doc)"),
        (true, _) => format!("cold-{}", random_id()),
    };
    let shared = Shared::new(Clock::new(), &o.root, 0);
    let dial = Dial::new(o);
    let mut r = base_result(o);
    r.insert("phase".into(), o.phase.name().into());
    r.insert("doc".into(), doc.clone().into());
    r.insert("history_inserts".into(), o.history.into());
    // 1-2. build the history locally, upload it through one connection, verify
    let mut writer: Option<Handle> = None;
    if o.phase != Phase::Load {
        let tb0 = Instant::now();
        let (root, history, chunk, seed) = (o.root.clone(), o.history, o.chunk, o.seed);
        let chunks =
            tokio::task::spawn_blocking(move || build_history(&root, history, chunk, seed))
                .await
                .map_err(|e| anyhow!("building the history: {e}"))??;
        let build_ms = tb0.elapsed().as_secs_f64() * 1e3;
        let (w, _) = connect_one(&dial, &shared, &doc, 0, Role::Writer)
            .await
            .context("uploader")?;
        let tu0 = Instant::now();
        for ch in &chunks {
            w.cmds
                .send(Cmd::Send(sync_msg(SYNC_UPDATE, ch)))
                .map_err(|_| anyhow!("uploader disconnected"))?;
        }
        if !w.flushed().await {
            bail!("uploader disconnected");
        }
        verify(&dial, &shared, &doc, o.history).await?;
        r.insert("local_build_ms".into(), build_ms.round().into());
        r.insert(
            "upload_and_verify_ms".into(),
            (tu0.elapsed().as_secs_f64() * 1e3).round().into(),
        );
        r.insert("chunks".into(), chunks.len().into());
        writer = Some(w);
    }
    if o.phase == Phase::Upload {
        close_all(vec![writer]).await;
        r.insert("conn".into(), shared.conn_json());
        return Ok(serde_json::Value::Object(r));
    }
    // 3. fresh clients, one at a time
    let mon = ProcMonitor::begin(o.server_pid);
    let mut runs = Vec::with_capacity(o.runs);
    for i in 0..o.runs {
        let (h, info) = connect_one(&dial, &shared, &doc, 2 + i, Role::Full)
            .await
            .with_context(|| format!("run {i}"))?;
        runs.push(info);
        close_all(vec![Some(h)]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mon.end(&mut r);
    close_all(vec![writer]).await;
    let med = |f: fn(&super::client::ConnectInfo) -> f64| {
        let mut a: Vec<f64> = runs.iter().map(f).collect();
        a.sort_by(f64::total_cmp);
        round_to(a[a.len() / 2], 1)
    };
    let fields = serde_json::json!({
        "step2_bytes": runs[0].step2_bytes,
        "runs": o.runs,
        "median_step2_recv_ms": med(|x| x.step2_ms),
        "median_synced_applied_ms": med(|x| x.applied_ms),
        "median_open_ms": med(|x| x.open_ms),
        "first_step2_recv_ms": round_to(runs[0].step2_ms, 1),
        "all_complete": runs.iter().all(|x| x.text_len == o.history),
        "all_runs": runs.iter().map(|x| serde_json::json!({
            "step2_recv_ms": round_to(x.step2_ms, 1),
            "synced_applied_ms": round_to(x.applied_ms, 1),
            "len": x.text_len,
        })).collect::<Vec<_>>(),
        "conn": shared.conn_json(),
    });
    Ok(finish(r, fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, Transact};

    #[test]
    fn the_history_merges_into_chunks() {
        let chunks = build_history("title", 250, 100, 1).unwrap();
        assert_eq!(chunks.len(), 3);
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("title");
        for c in &chunks {
            let u = yrs::Update::decode_v1(c).unwrap();
            doc.transact_mut().apply_update(u).unwrap();
        }
        assert_eq!(text.get_string(&doc.transact()).len(), 250);
    }

    #[test]
    fn the_encoded_history_is_what_yrs_makes_of_the_same_inserts() {
        use yrs::{ReadTxn, Text};
        let (history, seed) = (700u32, 3);
        let reference = yrs::Doc::new();
        let text = reference.get_or_insert_text("title");
        let mut rng = Lcg(seed);
        for i in 0..history {
            let mut txn = reference.transact_mut();
            let len = text.len(&txn);
            let at = ((rng.next() * f64::from(len + 1)).floor() as u32).min(len);
            let c = b"abcdefghijklmnopqrstuvwxyz "[i as usize % 27] as char;
            text.insert(&mut txn, at, &c.to_string());
        }
        let want = text.get_string(&reference.transact());
        let doc = yrs::Doc::new();
        let got_text = doc.get_or_insert_text("title");
        for c in build_history("title", history, 64, seed).unwrap() {
            let u = yrs::Update::decode_v1(&c).unwrap();
            doc.transact_mut().apply_update(u).unwrap();
        }
        assert_eq!(got_text.get_string(&doc.transact()), want);
        // nothing left pending: every item integrated
        assert!(doc.transact().store().pending_update().is_none());
    }

    #[test]
    fn lcg_matches_the_node_tool() {
        // node: seed = (1 * 1664525 + 1013904223) >>> 0 = 1015568748
        assert_eq!(Lcg(1).next(), 1_015_568_748.0 / 4_294_967_296.0);
    }
}
