//! What a host's external change costs, end to end: the body HTML goes through the
//! same pipeline as `chorus-docs` runs for a host's change (`prepare.rs`, on the blocking pool):
//! [`parse_body_html`] → [`body_nodes_html`] → the whitelist's HTML cleaner →
//! [`parse_body_html`] → [`fit_editor`] → [`Room::external_change`] on a room that
//! holds the previous version of the draft.
//!
//! The draft has `N` paragraphs (~120 bytes each: text, a bold and an italic run, a
//! heading every 25th, a link every 10th), and the new version changes a word in
//! every one of them but the headings, the worst case for a minimal diff: every
//! paragraph is matched and edited in place (in reject mode, the first ones in place
//! and the rest, past the differ's in-place budget, replaced). Sizes: ~0.1, 0.7, 2.3
//! and 6.6 MiB (870, 6,000, 20,000 and 57,000 paragraphs).
//!
//! Run with `cargo bench -p chorus-core --bench external_change`; figures in
//! docs/PERFORMANCE.md ("External changes").
//!
//! One-shot timing of one size, stage by stage, without criterion (for sizes too
//! slow to sample, or 16 MiB): `EXTERNAL_CHANGE_PARAGRAPHS=140000 cargo bench -p
//! chorus-core --bench external_change`; `EXTERNAL_CHANGE_WHITELIST=reject` for the
//! guard in reject mode.

use chorus_core::import::{body_nodes_html, fit_editor, host_body, parse_body_html, BodyNode};
use chorus_core::{ExternalFork, Peer, Room, RoomLimits, Whitelist};
use criterion::{BatchSize, Criterion, Throughput};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use yrs::updates::decoder::Decode;
use yrs::StateVector;

struct NullPeer;
impl Peer for NullPeer {
    fn send(&self, _frame: bytes::Bytes) -> bool {
        true
    }
}

/// The draft's body HTML, version `rev` (0 or 1): every paragraph of version 1
/// differs from version 0 by one word.
fn draft(paragraphs: usize, rev: usize) -> String {
    let words = ["quick", "swift"];
    let mut html = String::with_capacity(paragraphs * 128);
    for i in 0..paragraphs {
        if i % 25 == 0 {
            let _ = write!(html, "<h2>Section {} of the draft</h2>", i / 25);
            continue;
        }
        let w = words[rev % 2];
        let _ = write!(
            html,
            "<p>Paragraph {i}: the {w} brown fox jumps over <strong>the lazy dog</strong> \
             and <em>keeps running</em>"
        );
        if i % 10 == 0 {
            let _ = write!(html, " to <a href=\"https://example.com/{i}\">the end</a>");
        }
        html.push_str(".</p>");
    }
    html
}

/// The server's pipeline from host HTML to the nodes given to the room.
fn pipeline(whitelist: &Whitelist, html: &str) -> Vec<BodyNode> {
    host_body(whitelist, html)
}

/// The default limits, in the whitelist mode `EXTERNAL_CHANGE_WHITELIST` names
/// (`strip`, the default, or `reject`, whose guard takes yrs' deep events).
fn limits() -> RoomLimits {
    let mut limits = RoomLimits::default();
    if let Some(mode) = std::env::var("EXTERNAL_CHANGE_WHITELIST").ok().map(|m| {
        m.parse()
            .expect("EXTERNAL_CHANGE_WHITELIST: strip, reject or off")
    }) {
        limits.whitelist = Whitelist::new(limits.whitelist.policy.clone(), mode);
    }
    limits
}

/// The stored state of a room holding version 0 of the draft.
fn previous_version(paragraphs: usize) -> Vec<u8> {
    let mut room: Room<NullPeer> = Room::new(limits());
    let body = pipeline(room.whitelist(), &draft(paragraphs, 0));
    let fields = room
        .external_change(None, None, Some(&body))
        .expect("first version applies");
    assert_eq!(fields, ["body"]);
    room.encode_state()
}

fn room_from(state: &[u8]) -> Room<NullPeer> {
    Room::from_stored(limits(), Some(state), []).expect("valid state")
}

/// One change, timed stage by stage.
fn one_shot(paragraphs: usize) {
    let t = Instant::now();
    let state = previous_version(paragraphs);
    let html = draft(paragraphs, 1);
    eprintln!(
        "{paragraphs} paragraphs, {:.2} MiB: previous version built in {:.2?}",
        html.len() as f64 / (1024.0 * 1024.0),
        t.elapsed()
    );
    let mut room = room_from(&state);
    let whitelist = room.whitelist().clone();
    let policy = whitelist.policy.clone();
    let is_mark = |tag: &str| policy.allows_mark(tag, &[]);
    let total = Instant::now();
    let t = Instant::now();
    let nodes = parse_body_html(&html, &is_mark);
    let parse1 = t.elapsed();
    let t = Instant::now();
    let bounded = body_nodes_html(&nodes);
    let write = t.elapsed();
    let t = Instant::now();
    let clean = whitelist.clean_html_for_import(&bounded);
    let clean_time = t.elapsed();
    let t = Instant::now();
    let parsed = parse_body_html(&clean, &is_mark);
    let parse2 = t.elapsed();
    let t = Instant::now();
    let body = fit_editor(parsed);
    let fit = t.elapsed();
    let t = Instant::now();
    let fields = room
        .external_change(None, None, Some(&body))
        .expect("change applies");
    let apply = t.elapsed();
    assert_eq!(fields, ["body"]);
    eprintln!(
        "parse {parse1:.2?}, write {write:.2?}, clean {clean_time:.2?}, parse again \
         {parse2:.2?}, fit {fit:.2?}, Room::external_change {apply:.2?}; total {:.2?}",
        total.elapsed()
    );
    drop(room);

    // As the server runs it (chorus-docs/src/prepare.rs): the HTML is cleaned on one
    // thread while another decodes the live state into a fork and reads its body; the
    // diff waits for both, then the live document merges the edit.
    let mut room = room_from(&state);
    let whitelist = room.whitelist().clone();
    let profile = whitelist.profile.clone();
    let replacing = whitelist.takes_deep_events();
    let t = Instant::now();
    let cleaning = std::thread::spawn(move || pipeline(&whitelist, &html));
    let live_sv = StateVector::decode_v1(&room.state_vector()).expect("state vector");
    let base = room.encode_state();
    let fork = ExternalFork::new(&base, &live_sv, &profile, true).expect("fork");
    let forked = t.elapsed();
    let body = cleaning.join().expect("cleaning");
    let cleaned = t.elapsed();
    let (edit, spent) = fork
        .edit_keeping(None, Some(&body), replacing, &profile)
        .expect("change computed");
    let computed = t.elapsed();
    let fields = room.apply_external(edit).expect("change applies");
    let merged = t.elapsed();
    assert_eq!(fields, ["body"]);
    // The server frees the fork after the merge, on the blocking pool.
    drop(spent);
    eprintln!(
        "as the server runs it, cleaning beside the fork: state and fork read {forked:.2?}, \
         HTML cleaned {cleaned:.2?}, edit computed {computed:.2?}, merged {merged:.2?} (wall)"
    );
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("external_change");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for paragraphs in [870, 6_000, 20_000, 57_000] {
        let state = previous_version(paragraphs);
        let html = draft(paragraphs, 1);
        group.throughput(Throughput::Bytes(html.len() as u64));
        group.bench_function(format!("{paragraphs}_paragraphs"), |b| {
            b.iter_batched(
                || room_from(&state),
                |mut room| {
                    let body = pipeline(room.whitelist(), &html);
                    let fields = room
                        .external_change(None, None, Some(&body))
                        .expect("change applies");
                    assert_eq!(fields, ["body"]);
                    room
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}

fn main() {
    if let Some(n) = std::env::var("EXTERNAL_CHANGE_PARAGRAPHS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        one_shot(n);
        return;
    }
    group::benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
