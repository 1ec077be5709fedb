//! The early answer to a joiner that has nothing: [`sync_from_stored`] builds one
//! step 2 from a document's stored bytes (snapshot and the log after it) while the
//! room is integrated from them. Measured for a 100,000-insert history (the cold
//! load benchmark's document) as one snapshot with 0, 1, 100 and 1,000 log records
//! after it (1,000 is `compact_after_updates`' default: the most a stored document
//! holds after a crash).
//!
//! Run with `cargo bench -p chorus-core --bench cold_answer`; figures in
//! docs/PERFORMANCE.md.

mod common;

use chorus_core::sync_from_stored;
use criterion::Criterion;
use std::hint::black_box;
use yrs::{ReadTxn, StateVector, Text, Transact};

/// The snapshot of a typed history, and `log` more one-character updates after it.
fn stored(log: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (doc, title) = common::typed_history();
    let snapshot = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let records = (0..log)
        .map(|i| {
            let mut txn = doc.transact_mut();
            let before = txn.state_vector();
            title.insert(&mut txn, (i as u32 * 31) % common::HISTORY, "y");
            txn.encode_state_as_update_v1(&before)
        })
        .collect();
    (snapshot, records)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("cold_answer");
    group.sample_size(20);
    for log in [0usize, 1, 100, 1000] {
        let (snapshot, records) = stored(log);
        let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        group.bench_function(format!("snapshot_and_{log}_records"), |b| {
            b.iter(|| black_box(sync_from_stored(Some(&snapshot), &records).unwrap()))
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
