//! Helpers shared by the integration tests.

#![allow(dead_code)]

use chorus_store::{DocId, DocMeta, SledStore, Store, WriteBatch};

/// A sled store in a fresh temporary directory (kept alive by the returned guard).
pub fn sled_store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    (dir, store)
}

/// The update stored at `seq` of `id`, distinct per document and seq.
pub fn update(id: &DocId, seq: u64) -> Vec<u8> {
    format!("{}/{}#{seq}", id.app, id.doc).into_bytes()
}

/// Metadata that identifies how many updates it has seen.
pub fn meta(update_count: u64) -> DocMeta {
    DocMeta {
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: 1_700_000_000_000 + update_count,
        contributors: ["alice".to_string(), "bob".to_string()].into(),
        size_bytes: update_count * 10,
        update_count,
        state_vector: vec![1, 0xb5, 0x8f, 0x02, update_count as u8],
        snapshot_seq: 0,
        ..DocMeta::default()
    }
}

/// Append `seqs` of `id` (with [`update`] bodies) and their metadata in one batch, and
/// flush it.
pub fn append(store: &dyn Store, id: &DocId, seqs: impl IntoIterator<Item = u64>) {
    let mut batch = WriteBatch::default();
    let mut last = 0;
    for seq in seqs {
        batch.append(id, seq, &update(id, seq));
        last = seq;
    }
    batch.put_meta(id, &meta(last));
    store.write(batch).unwrap();
    store.flush().unwrap();
}

/// The expected `updates` of a load: [`update`] bodies for `seqs`.
pub fn records(id: &DocId, seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u8>)> {
    seqs.into_iter().map(|s| (s, update(id, s))).collect()
}
