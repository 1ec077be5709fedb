//! What a durable update costs on sled, with and without group commit.
//!
//! The data directory is a temporary directory under `$CHORUS_BENCH_DIR` if set, else
//! the system temp dir: put it on the disk you care about (fsync on tmpfs is free).

use std::hint::black_box;

use chorus_store::{DocId, DocMeta, SledStore, Store, WriteBatch};
use criterion::{criterion_main, BatchSize, Criterion, Throughput};

/// A typical small keystroke update.
const UPDATE: [u8; 30] = [7; 30];
/// Updates per group commit.
const GROUP: u64 = 100;
/// Documents the grouped updates are spread over.
const DOCS: u64 = 10;

fn temp_store() -> (tempfile::TempDir, SledStore) {
    let dir = match std::env::var_os("CHORUS_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("open store");
    (dir, store)
}

fn durable_appends(c: &mut Criterion) {
    let (_dir, store) = temp_store();
    let docs: Vec<DocId> = (0..DOCS)
        .map(|i| DocId::new("bench", format!("doc-{i}")))
        .collect();
    let mut seq = 0u64;
    let mut group = c.benchmark_group("durable_append");

    group.throughput(Throughput::Elements(1));
    group.bench_function("1_update_then_flush", |b| {
        b.iter(|| {
            seq += 1;
            let mut batch = WriteBatch::default();
            batch.append(&docs[0], seq, &UPDATE);
            store.write(batch).unwrap();
            store.flush().unwrap();
        })
    });

    group.throughput(Throughput::Elements(GROUP));
    group.bench_function("100_updates_one_batch_one_flush", |b| {
        b.iter_batched(
            || {
                let mut batch = WriteBatch::default();
                for i in 0..GROUP {
                    seq += 1;
                    batch.append(&docs[(i % DOCS) as usize], seq, &UPDATE);
                }
                batch
            },
            |batch| {
                store.write(batch).unwrap();
                store.flush().unwrap();
            },
            BatchSize::SmallInput,
        )
    });

    // What the server's writer thread does: one `write` per job, one flush per group.
    group.bench_function("100_writes_one_flush", |b| {
        b.iter(|| {
            for i in 0..GROUP {
                seq += 1;
                let mut batch = WriteBatch::default();
                batch.append(&docs[(i % DOCS) as usize], seq, &UPDATE);
                store.write(black_box(batch)).unwrap();
            }
            store.flush().unwrap();
        })
    });
    // The same, with the metadata put every server append job carries.
    let meta = DocMeta {
        created_at_ms: 1_700_000_000_000,
        updated_at_ms: 1_700_000_000_000,
        contributors: ["alice".to_string(), "bob".to_string()].into(),
        size_bytes: 4096,
        update_count: 1,
        state_vector: vec![2, 0xb5, 0x8f, 0x9a, 0x07, 12, 0xc1, 0xe4, 0x80, 0x03, 40],
        snapshot_seq: 0,
        ..DocMeta::default()
    };
    group.bench_function("100_writes_with_meta_one_flush", |b| {
        b.iter(|| {
            for i in 0..GROUP {
                seq += 1;
                let id = &docs[(i % DOCS) as usize];
                let mut batch = WriteBatch::default();
                batch.append(id, seq, &UPDATE);
                batch.put_meta(id, &meta);
                store.write(black_box(batch)).unwrap();
            }
            store.flush().unwrap();
        })
    });
    group.finish();
}

/// Private, so the undocumented `pub fn` the macro generates is not public API.
mod group {
    criterion::criterion_group!(benches, super::durable_appends);
}
criterion_main!(group::benches);
