//! The hot path of one keystroke, stage by stage: what the server does between a
//! frame arriving on a socket and the encoded frames sitting in every member's
//! queue. Each stage is measured alone so a regression points at its stage:
//!
//! - `decode`: a websocket payload (a sync update frame) into a [`Message`];
//! - `encode`: an update into the sync frame every member receives;
//! - `apply_whitelist`: [`Room::receive`] of one typing update with the whitelist
//!   on (strip mode), one member, so nothing is fanned out;
//! - `apply_whitelist_mid_text`: the same, typed before a paragraph's last
//!   character, so each update has a right origin (which the guard asks about);
//! - `broadcast`: the same with 500 members, each behind a bounded queue like the
//!   server's (a `VecDeque` drained every 64 frames): the difference to
//!   `apply_whitelist` is the fan-out, which shares one encoded `Bytes` across
//!   every recipient.
//!
//! The store append (a record and its group commit) is measured in
//! `crates/chorus-store/benches/store.rs`. Run with
//! `cargo bench -p chorus-core --bench hot_path`; figures in docs/PERFORMANCE.md.

mod common;

use bytes::Bytes;
use chorus_core::{Peer, WhitelistMode};
use chorus_protocol::{encode_sync, Message, SYNC_UPDATE};
use common::{client_doc, receive_each, room, update_message};
use criterion::{Criterion, Throughput};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::hint::black_box;
use std::rc::Rc;
use yrs::{ReadTxn, StateVector, Text, Transact, XmlElementPrelim, XmlFragment};
use yrs::{XmlOut, XmlTextPrelim};

/// Typing updates per measured batch.
const KEYSTROKES: usize = 1000;
/// Members of the fan-out room.
const MEMBERS: u64 = 500;

/// A member's outbound queue as the server keeps it: frames wait until the
/// connection task takes them.
#[derive(Clone, Default)]
struct QueuedPeer(Rc<RefCell<VecDeque<Bytes>>>);

impl Peer for QueuedPeer {
    fn send(&self, frame: Bytes) -> bool {
        let mut queue = self.0.borrow_mut();
        if queue.len() >= 64 {
            queue.clear();
        }
        queue.push_back(frame);
        true
    }
}

/// A base document of 200 paragraphs and `KEYSTROKES` single-character updates
/// typed in paragraph 100 (at its end, or `mid_text`: before its last character),
/// as a client produces them.
fn typing(mid_text: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
    let doc = client_doc();
    let body = doc.get_or_insert_xml_fragment("body");
    {
        let mut txn = doc.transact_mut();
        for i in 0..200 {
            let p = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
            p.push_back(&mut txn, XmlTextPrelim::new(format!("Paragraph {i}.")));
        }
    }
    let base = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let Some(XmlOut::Element(p)) = body.get(&doc.transact(), 100) else {
        unreachable!()
    };
    let Some(XmlOut::Text(text)) = p.get(&doc.transact(), 0) else {
        unreachable!()
    };
    let updates = (0..KEYSTROKES)
        .map(|_| {
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len - u32::from(mid_text), "x");
            txn.encode_update_v1()
        })
        .collect();
    (base, updates)
}

fn bench(c: &mut Criterion) {
    let (base, updates) = typing(false);
    let frames: Vec<Bytes> = updates
        .iter()
        .map(|u| encode_sync(SYNC_UPDATE, u))
        .collect();

    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode", |b| {
        let frame = &frames[500];
        b.iter(|| Message::decode(black_box(frame)).expect("valid frame"))
    });
    group.bench_function("encode", |b| {
        let update = &updates[500];
        b.iter(|| encode_sync(SYNC_UPDATE, black_box(update)))
    });

    let messages: Vec<Message> = updates.iter().map(|u| update_message(u)).collect();
    group.throughput(Throughput::Elements(KEYSTROKES as u64));
    for (name, members) in [("apply_whitelist", 1), ("broadcast_500", MEMBERS)] {
        group.bench_function(name, |b| {
            let peers = || (0..members).map(|_| QueuedPeer::default());
            receive_each(b, || room(&base, WhitelistMode::Strip, peers()), &messages)
        });
    }
    let (base, mid) = typing(true);
    let messages: Vec<Message> = mid.iter().map(|u| update_message(u)).collect();
    group.bench_function("apply_whitelist_mid_text", |b| {
        receive_each(
            b,
            || {
                room(
                    &base,
                    WhitelistMode::Strip,
                    std::iter::once(QueuedPeer::default()),
                )
            },
            &messages,
        )
    });
    group.finish();
}

mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}

fn main() {
    group::benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
