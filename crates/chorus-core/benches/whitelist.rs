//! What whitelist enforcement costs: updates/s through a [`Room`] with the policy on
//! (strip mode) versus off, on two workloads:
//!
//! - typing: 1,000 single-character updates (every 10th one bolds a word) into a
//!   document that already holds 200 paragraphs;
//! - paste: one update inserting a 200-row × 5-column table with attributes, styles
//!   and marks (about 1,000 cells).
//!
//! Run with `cargo bench -p chorus-core --bench whitelist`; the ratio on/off goes in
//! docs/PERFORMANCE.md.
//!
//! Timings on a shared 2-core machine are noisy, so the same workloads can also be
//! run once without criterion, for an instruction count that does not depend on the
//! machine's load: `WHITELIST_BENCH=strip|off WHITELIST_WORKLOAD=typing|paste` runs 20
//! rooms through the workload (see docs/PERFORMANCE.md for the callgrind command).

mod common;

use bytes::Bytes;
use chorus_core::{ConnId, Peer, Room, WhitelistMode};
use chorus_protocol::Message;
use common::{client_doc, receive_each, update_message};
use criterion::{BatchSize, Criterion, Throughput};
use std::collections::HashMap;
use std::sync::Arc;
use yrs::types::Attrs;
use yrs::{
    Any, GetString, ReadTxn, StateVector, Text, Transact, Xml, XmlElementPrelim, XmlFragment,
    XmlOut, XmlTextPrelim,
};

struct NullPeer;
impl Peer for NullPeer {
    fn send(&self, _frame: Bytes) -> bool {
        true
    }
}

fn room(mode: WhitelistMode, base: &[u8]) -> Room<NullPeer> {
    common::room(base, mode, [NullPeer])
}

fn strong() -> Attrs {
    HashMap::from([(
        Arc::from("strong"),
        Any::from(HashMap::<String, Any>::new()),
    )])
}

/// The base document (200 paragraphs) and 1,000 typing updates on top of it.
fn typing_workload() -> (Vec<u8>, Vec<Vec<u8>>) {
    let doc = client_doc();
    let body = doc.get_or_insert_xml_fragment("body");
    {
        let mut txn = doc.transact_mut();
        for i in 0..200 {
            let p = body.push_back(&mut txn, XmlElementPrelim::empty("p"));
            p.insert_attribute(&mut txn, "class", "para");
            p.push_back(
                &mut txn,
                XmlTextPrelim::new(format!("Paragraph {i} with some ordinary words in it.")),
            );
        }
    }
    let base = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let mut updates = Vec::with_capacity(1000);
    let Some(XmlOut::Element(p)) = body.get(&doc.transact(), 100) else {
        unreachable!()
    };
    let Some(XmlOut::Text(text)) = p.get(&doc.transact(), 0) else {
        unreachable!()
    };
    for i in 0..1000u32 {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn);
        if i % 10 == 9 {
            text.format(&mut txn, len - 5, 5, strong());
        } else {
            text.insert(&mut txn, len, "x");
        }
        updates.push(txn.encode_update_v1());
    }
    (base, updates)
}

/// An empty base and one update pasting a large table.
fn paste_workload() -> (Vec<u8>, Vec<u8>) {
    let doc = client_doc();
    let body = doc.get_or_insert_xml_fragment("body");
    let base = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let mut txn = doc.transact_mut();
    let table = body.push_back(&mut txn, XmlElementPrelim::empty("table"));
    table.insert_attribute(&mut txn, "class", "confluenceTable");
    let tbody = table.push_back(&mut txn, XmlElementPrelim::empty("tbody"));
    for r in 0..200 {
        let tr = tbody.push_back(&mut txn, XmlElementPrelim::empty("tr"));
        for c in 0..5 {
            let td = tr.push_back(&mut txn, XmlElementPrelim::empty("td"));
            td.insert_attribute(&mut txn, "colspan", "1");
            td.insert_attribute(&mut txn, "style", "text-align: left; color: #333");
            let t = td.push_back(&mut txn, XmlTextPrelim::new(format!("cell {r}:{c} ")));
            let end = t.len(&txn);
            t.insert_with_attributes(&mut txn, end, "bold", strong());
        }
    }
    let update = txn.encode_update_v1();
    drop(txn);
    assert!(body.get_string(&doc.transact()).len() > 10_000);
    (base, update)
}

fn bench(c: &mut Criterion) {
    let (base, typing) = typing_workload();
    let typing: Vec<Message> = typing.iter().map(|u| update_message(u)).collect();
    let mut group = c.benchmark_group("whitelist_typing");
    group.throughput(Throughput::Elements(typing.len() as u64));
    for (name, mode) in [("on", WhitelistMode::Strip), ("off", WhitelistMode::Off)] {
        group.bench_function(name, |b| receive_each(b, || room(mode, &base), &typing));
    }
    group.finish();

    let (base, paste) = paste_workload();
    let paste = update_message(&paste);
    let mut group = c.benchmark_group("whitelist_paste_table");
    group.throughput(Throughput::Elements(1));
    for (name, mode) in [("on", WhitelistMode::Strip), ("off", WhitelistMode::Off)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || (room(mode, &base), paste.clone()),
                |(mut room, msg)| {
                    room.receive(ConnId(1), msg).expect("allowed paste");
                    let (n, _) = room.take_neutralised();
                    assert_eq!(n.total(), 0, "the paste is inside the policy");
                    room
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// One pass of a workload through 20 rooms, outside criterion (for callgrind).
fn count(mode: WhitelistMode, workload: &str) {
    let (base, updates) = match workload {
        "paste" => {
            let (base, paste) = paste_workload();
            (base, vec![paste])
        }
        _ => typing_workload(),
    };
    let messages: Vec<Message> = updates.iter().map(|u| update_message(u)).collect();
    let mut rooms: Vec<_> = (0..20).map(|_| room(mode, &base)).collect();
    for room in &mut rooms {
        for m in messages.iter().cloned() {
            room.receive(ConnId(1), m).expect("allowed edit");
        }
    }
}

mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}

fn main() {
    if let Ok(mode) = std::env::var("WHITELIST_BENCH") {
        let mode = mode.parse().expect("WHITELIST_BENCH is strip or off");
        let workload = std::env::var("WHITELIST_WORKLOAD").unwrap_or_default();
        count(mode, &workload);
        return;
    }
    group::benches();
    Criterion::default().configure_from_args().final_summary();
}
