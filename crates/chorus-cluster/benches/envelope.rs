//! What signing costs a bus message: sealing (encode + HMAC-SHA256 over the
//! channel and the bytes) and opening (HMAC check in constant time + decode), for a
//! keystroke-sized frame, a larger one, and a 16 KiB one, against copying the same
//! payload (what building any message costs anyway). Opening is measured with the
//! right key first and with it second of two (a rotation in progress).
//!
//! `cargo bench -p chorus-cluster --bench envelope`; figures in docs/PERFORMANCE.md.

#![allow(missing_docs)]

use bytes::Bytes;
use chorus_cluster::bench_support::{open, seal};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const CHANNEL: &str = "chorus:bench:node:node-2";
const KEY: &[u8] = b"chorus-bench: the benchmark cluster bus key";

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("bus_envelope");
    group.throughput(Throughput::Elements(1));
    for size in [100usize, 1_000, 16_384] {
        let payload = vec![7u8; size];
        group.bench_function(format!("copy_{size}"), |b| {
            b.iter(|| Bytes::copy_from_slice(black_box(&payload)))
        });
        group.bench_function(format!("seal_{size}"), |b| {
            b.iter(|| seal(CHANNEL, KEY, "node-1", black_box(&payload)))
        });
        let sealed = seal(CHANNEL, KEY, "node-1", &payload);
        let one = [KEY.to_vec()];
        group.bench_function(format!("open_{size}"), |b| {
            b.iter(|| assert!(open(black_box(&sealed), CHANNEL, &one)))
        });
        let rotating = [
            b"a newer key, not signing yet, 32+ bytes".to_vec(),
            KEY.to_vec(),
        ];
        group.bench_function(format!("open_second_key_{size}"), |b| {
            b.iter(|| assert!(open(black_box(&sealed), CHANNEL, &rotating)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
