//! A join storm on a warm document: every joiner that has nothing (an empty state
//! vector) asks for the whole document. Before, the room encoded it for each of
//! them; now the first answer is encoded once and shared (the same bytes) by the
//! ones after it, with what changed since appended when the document moved on.
//! Measured on the cold load benchmark's document (a 100,000-insert history):
//! what one joiner costs each way.
//!
//! Run with `cargo bench -p chorus-core --bench join_storm`; figures in
//! docs/PERFORMANCE.md.

mod common;

use bytes::Bytes;
use chorus_core::{ConnId, Peer, Room, RoomLimits};
use chorus_protocol::{encode_sync, Message, SyncMessage, SYNC_STEP2};
use criterion::{BatchSize, Criterion};
use std::cell::RefCell;
use std::hint::black_box;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Transact};

/// A member whose frames go nowhere (its queue is always empty).
struct Discard;

impl Peer for Discard {
    fn send(&self, frame: Bytes) -> bool {
        black_box(frame);
        true
    }
}

fn history() -> Vec<u8> {
    let (doc, _) = common::typed_history();
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    state
}

fn bench(c: &mut Criterion) {
    let state = history();
    let room: RefCell<Room<Discard>> =
        RefCell::new(Room::from_stored(RoomLimits::default(), Some(&state), []).unwrap());
    let empty = Bytes::from(StateVector::default().encode_v1());
    let step1 = || Message::Sync(SyncMessage::Step1(empty.clone()));
    let mut next = 1u64;
    let mut group = c.benchmark_group("join_storm");
    group.sample_size(20);
    // What every joiner cost before: the whole document encoded for it.
    group.bench_function("each_joiner_encoded", |b| {
        b.iter(|| {
            let room = room.borrow();
            let txn = room.doc().transact();
            let update = txn.encode_state_as_update_v1(&StateVector::default());
            black_box(encode_sync(SYNC_STEP2, &update))
        })
    });
    // What a joiner costs now, after the first: the shared answer.
    group.bench_function("each_joiner_shared", |b| {
        b.iter_batched(
            || {
                let conn = ConnId(next);
                next += 1;
                room.borrow_mut().join(conn, common::session(), Discard);
                conn
            },
            |conn| room.borrow_mut().receive(conn, step1()).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    let size = room
        .borrow()
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
        .len();
    eprintln!("join_storm: the document's whole state is {size} bytes");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
