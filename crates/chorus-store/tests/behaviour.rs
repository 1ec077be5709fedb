//! Behaviour every `Store` must have, run against `SledStore` (real sled in a
//! temporary directory), `PostgresStore` (the real PostgreSQL of this machine, a fresh
//! database per test, dropped after) and `MemoryStore`.
//!
//! Reads come after a `flush`: the contract makes writes visible once flushed
//! (PostgreSQL applies them in the flush's transaction).

mod common;

use chorus_store::{
    DeadLetter, DocId, DocMeta, HistoryEntry, HistoryPoint, Store, StoreError, WriteBatch,
};
use common::{append, meta, records, update};

/// Run each behaviour once per implementation: `sled::<name>`, `postgres::<name>` and
/// `memory::<name>`.
macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod sled {
            $(#[test]
            fn $name() {
                let (_dir, store) = crate::common::sled_store();
                super::$name(&store);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                let db = chorus_store::TestDatabase::create();
                let store = chorus_store::PostgresStore::open(db.url()).unwrap();
                super::$name(&store);
                drop(store);
                drop(db);
            })*
        }
        mod memory {
            $(#[test]
            fn $name() {
                super::$name(&chorus_store::MemoryStore::new());
            })*
        }
    };
}

behaviours!(
    appends_load_back_in_seq_order_across_documents,
    never_stored_documents_load_as_none,
    load_returns_the_snapshot_and_only_newer_records,
    compaction_of_a_document_with_no_log_stores_the_snapshot,
    records_left_behind_by_a_crashed_compaction_are_skipped,
    metadata_older_than_the_snapshot_does_not_resurrect_covered_records,
    an_older_compaction_never_replaces_a_newer_snapshot,
    list_is_per_app_sorted_and_prefix_isolated,
    outbox_delivers_in_id_order_until_acked,
    later_metadata_in_a_batch_wins,
    ids_with_nul_are_refused,
    history_points_list_in_order_per_document_and_read_back_whole,
    app_switches_are_kept_per_app_the_last_one_winning,
    a_deleted_document_leaves_nothing_and_its_neighbours_everything,
    writes_after_a_deletion_in_the_same_batch_start_the_document_again,
    dead_letters_leave_the_outbox_per_app_until_acknowledged,
    history_points_deleted_by_retention_go_and_nothing_else,
);

fn app_switches_are_kept_per_app_the_last_one_winning(store: &dyn Store) {
    assert_eq!(store.app_switches().unwrap(), []);
    store.set_app_switch("wiki", false).unwrap();
    store.set_app_switch("cms", false).unwrap();
    store.set_app_switch("cms", true).unwrap();
    // Kept without a flush: the admin API answers once it is stored.
    assert_eq!(
        store.app_switches().unwrap(),
        [("cms".to_owned(), true), ("wiki".to_owned(), false)]
    );
    assert!(matches!(
        store.set_app_switch("bad\0app", false),
        Err(StoreError::InvalidId(_))
    ));
}

fn appends_load_back_in_seq_order_across_documents(store: &dyn Store) {
    let a = DocId::new("app", "a");
    let b = DocId::new("app", "b");
    let c = DocId::new("other", "a");
    // Interleaved batches, one spanning documents; seqs past 255 and 65535 catch a
    // key encoding that does not sort numerically.
    append(store, &a, 1..=3);
    let mut batch = WriteBatch::default();
    for seq in 1..=300 {
        batch.append(&b, seq, &update(&b, seq));
    }
    batch.append(&a, 4, &update(&a, 4));
    batch.put_meta(&b, &meta(300));
    batch.put_meta(&a, &meta(4));
    assert_eq!(batch.len(), 303);
    assert_eq!(batch.record_count(), 301);
    store.write(batch).unwrap();
    store.flush().unwrap();
    append(store, &c, [1, 2, 65_536, 65_537]);
    append(store, &a, 5..=6);
    store.flush().unwrap();

    let la = store.load(&a).unwrap().unwrap();
    assert_eq!(la.updates, records(&a, 1..=6));
    assert_eq!((la.snapshot, la.snapshot_seq), (None, 0));
    assert_eq!(la.meta, meta(6));
    let lb = store.load(&b).unwrap().unwrap();
    assert_eq!(lb.updates, records(&b, 1..=300));
    assert_eq!(lb.meta, meta(300));
    let lc = store.load(&c).unwrap().unwrap();
    assert_eq!(lc.updates, records(&c, [1, 2, 65_536, 65_537]));
}

fn never_stored_documents_load_as_none(store: &dyn Store) {
    append(store, &DocId::new("app", "doc"), 1..=2);
    assert!(store.load(&DocId::new("app", "do")).unwrap().is_none());
    assert!(store.load(&DocId::new("app", "doc2")).unwrap().is_none());
    assert!(store.load(&DocId::new("ap", "pdoc")).unwrap().is_none());
    store.write(WriteBatch::default()).unwrap();
    assert!(WriteBatch::default().is_empty());
}

fn load_returns_the_snapshot_and_only_newer_records(store: &dyn Store) {
    let id = DocId::new("app", "doc");
    let other = DocId::new("app", "doc-other");
    append(store, &id, 1..=5);
    append(store, &other, 1..=5);
    store.compact(&id, b"SNAPSHOT@5", 5, &meta(5)).unwrap();
    store.flush().unwrap();
    append(store, &id, 6..=8);

    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"SNAPSHOT@5"[..]));
    assert_eq!(loaded.snapshot_seq, 5);
    assert_eq!(loaded.updates, records(&id, 6..=8));
    assert_eq!(
        loaded.meta.snapshot_seq, 5,
        "compact records the seq in meta"
    );

    // A second compaction replaces the first.
    store.compact(&id, b"SNAPSHOT@8", 8, &meta(8)).unwrap();
    store.flush().unwrap();
    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"SNAPSHOT@8"[..]));
    assert_eq!(loaded.snapshot_seq, 8);
    assert!(loaded.updates.is_empty());
    let expected = DocMeta {
        snapshot_seq: 8,
        ..meta(8)
    };
    assert_eq!(loaded.meta, expected);

    // The neighbour whose id extends this one is untouched.
    assert_eq!(
        store.load(&other).unwrap().unwrap().updates,
        records(&other, 1..=5)
    );
}

fn compaction_of_a_document_with_no_log_stores_the_snapshot(store: &dyn Store) {
    // The server may fold never-written updates straight into a snapshot.
    let id = DocId::new("app", "fresh");
    store.compact(&id, b"S", 3, &meta(3)).unwrap();
    store.flush().unwrap();
    append(store, &id, [4]);
    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(
        (loaded.snapshot.as_deref(), loaded.snapshot_seq),
        (Some(&b"S"[..]), 3)
    );
    assert_eq!(loaded.updates, records(&id, [4]));
}

fn records_left_behind_by_a_crashed_compaction_are_skipped(store: &dyn Store) {
    // A crash after the snapshot was written but before the covered records were
    // deleted leaves both; re-appending the covered seqs recreates that state.
    let id = DocId::new("app", "doc");
    append(store, &id, 1..=6);
    store.compact(&id, b"SNAPSHOT@4", 4, &meta(6)).unwrap();
    store.flush().unwrap();
    let mut batch = WriteBatch::default();
    for seq in 1..=4 {
        batch.append(&id, seq, b"already in the snapshot");
    }
    store.write(batch).unwrap();
    store.flush().unwrap();

    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(loaded.snapshot_seq, 4);
    assert_eq!(loaded.updates, records(&id, 5..=6));

    // The next compaction sweeps the leftovers too.
    store.compact(&id, b"SNAPSHOT@6", 6, &meta(6)).unwrap();
    store.flush().unwrap();
    let loaded = store.load(&id).unwrap().unwrap();
    assert!(loaded.updates.is_empty());
}

fn metadata_older_than_the_snapshot_does_not_resurrect_covered_records(store: &dyn Store) {
    let id = DocId::new("app", "doc");
    append(store, &id, 1..=4);
    store.compact(&id, b"SNAPSHOT@3", 3, &meta(4)).unwrap();
    store.flush().unwrap();
    // Metadata written as if no snapshot existed (snapshot_seq 0).
    let mut batch = WriteBatch::default();
    batch.put_meta(&id, &meta(4));
    store.write(batch).unwrap();
    store.flush().unwrap();
    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(loaded.snapshot_seq, 3);
    assert_eq!(loaded.meta.snapshot_seq, 3, "meta agrees with the snapshot");
    assert_eq!(loaded.updates, records(&id, [4]));
}

fn an_older_compaction_never_replaces_a_newer_snapshot(store: &dyn Store) {
    let id = DocId::new("app", "doc");
    append(store, &id, 1..=10);
    store.compact(&id, b"SNAPSHOT@8", 8, &meta(10)).unwrap();
    store.flush().unwrap();
    store.compact(&id, b"SNAPSHOT@5", 5, &meta(5)).unwrap();
    store.flush().unwrap();
    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"SNAPSHOT@8"[..]));
    assert_eq!(loaded.snapshot_seq, 8);
    assert_eq!(loaded.updates, records(&id, 9..=10));
    assert_eq!(loaded.meta.update_count, 10);
}

fn list_is_per_app_sorted_and_prefix_isolated(store: &dyn Store) {
    for doc in ["x", "b", "a", "b-2"] {
        append(store, &DocId::new("a", doc), [1]);
    }
    append(store, &DocId::new("ab", "x"), 1..=2);
    append(store, &DocId::new("", "empty-app"), [1]);
    store
        .compact(&DocId::new("a", "x"), b"S", 1, &meta(1))
        .unwrap();
    store.flush().unwrap();

    let listed = store.list("a").unwrap();
    let names: Vec<_> = listed.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(names, ["a", "b", "b-2", "x"]);
    assert_eq!(listed[0].1, meta(1));
    assert_eq!(listed[3].1.snapshot_seq, 1);

    assert_eq!(store.list("ab").unwrap(), vec![("x".to_string(), meta(2))]);
    assert_eq!(store.list("").unwrap().len(), 1);
    assert!(store.list("b").unwrap().is_empty());
    assert!(store.list("x").unwrap().is_empty());
}

fn outbox_delivers_in_id_order_until_acked(store: &dyn Store) {
    assert!(store.outbox_pending(10).unwrap().is_empty());
    let ids: Vec<u64> = (0..5)
        .map(|i| {
            let app = if i % 2 == 0 { "a" } else { "b" };
            store
                .outbox_push(app, format!("event {i}").as_bytes())
                .unwrap()
        })
        .collect();
    store.flush().unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(ids[0] > 0);

    let first = store.outbox_pending(3).unwrap();
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), &ids[..3]);
    assert_eq!(
        (first[1].app.as_str(), &first[1].payload[..]),
        ("b", &b"event 1"[..])
    );

    store.outbox_ack(ids[1]).unwrap();
    store.outbox_ack(ids[0]).unwrap();
    store.outbox_ack(ids[1]).unwrap(); // twice is fine
    store.outbox_ack(u64::MAX).unwrap(); // unknown is fine
    let rest = store.outbox_pending(10).unwrap();
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), &ids[2..]);
    assert_eq!(rest[0].payload, b"event 2");

    let later = store.outbox_push("a", b"later").unwrap();
    store.flush().unwrap();
    assert!(later > ids[4]);
    assert_eq!(store.outbox_pending(10).unwrap().last().unwrap().id, later);
    assert!(store.outbox_pending(0).unwrap().is_empty());
}

fn later_metadata_in_a_batch_wins(store: &dyn Store) {
    let id = DocId::new("app", "doc");
    let mut batch = WriteBatch::default();
    batch.append(&id, 1, b"u");
    batch.put_meta(&id, &meta(1));
    batch.put_meta(&id, &meta(2));
    store.write(batch).unwrap();
    store.flush().unwrap();
    assert_eq!(store.load(&id).unwrap().unwrap().meta, meta(2));
}

fn ids_with_nul_are_refused(store: &dyn Store) {
    let bad = DocId::new("app", "doc\0x");
    let mut batch = WriteBatch::default();
    batch.append(&DocId::new("app", "fine"), 1, b"u");
    batch.append(&bad, 1, b"u");
    assert!(matches!(store.write(batch), Err(StoreError::InvalidId(id)) if id == bad));
    assert!(
        store.load(&DocId::new("app", "fine")).unwrap().is_none(),
        "nothing of a refused batch is written"
    );
    assert!(matches!(store.load(&bad), Err(StoreError::InvalidId(_))));
    assert!(matches!(
        store.compact(&bad, b"s", 1, &DocMeta::default()),
        Err(StoreError::InvalidId(_))
    ));
    assert!(matches!(store.list("a\0b"), Err(StoreError::InvalidId(_))));
}

fn point(n: u64, kind: &str, state: &[u8]) -> HistoryPoint {
    HistoryPoint {
        entry: HistoryEntry {
            point: n,
            at_ms: 1_000 * n,
            kind: kind.into(),
            restored_from: 0,
            etag: format!("\"e{n}\""),
            title: format!("Title {n}"),
            size_bytes: 0,
        },
        state: state.to_vec(),
    }
}

fn history_points_list_in_order_per_document_and_read_back_whole(store: &dyn Store) {
    let a = DocId::new("app", "a");
    let ab = DocId::new("app", "ab");
    let mut batch = WriteBatch::default();
    batch.put_history(&a, &point(2, "auto", b"STATE-2"));
    batch.put_history(&a, &point(1, "publish", b"STATE-1"));
    batch.put_history(&ab, &point(1, "auto", b"OTHER"));
    let mut m = DocMeta {
        last_history_point: 2,
        ..DocMeta::default()
    };
    m.published_etag = "\"e1\"".into();
    batch.put_meta(&a, &m);
    store.write(batch).unwrap();
    store.flush().unwrap();

    let listed = store.history(&a).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.point, e.kind.as_str()))
            .collect::<Vec<_>>(),
        [(1, "publish"), (2, "auto")]
    );
    assert_eq!(listed[1].size_bytes, 7, "size is taken from the state");
    assert_eq!(listed[0].title, "Title 1");
    let two = store.history_point(&a, 2).unwrap().unwrap();
    assert_eq!(two.state, b"STATE-2");
    assert_eq!(two.entry.etag, "\"e2\"");
    assert_eq!(store.history_point(&a, 3).unwrap(), None);
    assert_eq!(store.history(&ab).unwrap().len(), 1, "prefix-isolated");
    assert!(store
        .history(&DocId::new("app", "none"))
        .unwrap()
        .is_empty());
    let loaded = store.load(&a).unwrap().unwrap();
    assert_eq!(loaded.meta.last_history_point, 2);
    assert_eq!(loaded.meta.published_etag, "\"e1\"");
}

/// A document with log records, a snapshot, metadata and history points.
fn stored_with_everything(store: &dyn Store, id: &DocId) {
    append(store, id, 1..=3);
    store.compact(id, b"SNAP", 2, &meta(2)).unwrap();
    let mut batch = WriteBatch::default();
    batch.put_history(id, &point(1, "publish", b"P1"));
    batch.put_history(id, &point(2, "auto", b"P2"));
    store.write(batch).unwrap();
    store.flush().unwrap();
}

fn a_deleted_document_leaves_nothing_and_its_neighbours_everything(store: &dyn Store) {
    let gone = DocId::new("app", "a");
    // Prefix neighbours: the same app with a longer id, and another app.
    let longer = DocId::new("app", "ab");
    let other_app = DocId::new("app2", "a");
    for id in [&gone, &longer, &other_app] {
        stored_with_everything(store, id);
    }
    let before_longer = store.load(&longer).unwrap();
    let mut batch = WriteBatch::default();
    batch.delete_doc(&gone);
    store.write(batch).unwrap();
    store.flush().unwrap();

    assert_eq!(
        store.load(&gone).unwrap(),
        None,
        "no snapshot, log or metadata"
    );
    assert!(store.history(&gone).unwrap().is_empty());
    assert_eq!(store.history_point(&gone, 1).unwrap(), None);
    assert_eq!(
        store
            .list("app")
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect::<Vec<_>>(),
        ["ab"]
    );
    assert_eq!(store.load(&longer).unwrap(), before_longer);
    assert_eq!(store.history(&longer).unwrap().len(), 2);
    assert_eq!(store.history(&other_app).unwrap().len(), 2);
    assert!(store.load(&other_app).unwrap().is_some());

    // Deleting what is not stored is no error.
    let mut batch = WriteBatch::default();
    batch.delete_doc(&DocId::new("app", "never"));
    store.write(batch).unwrap();
    store.flush().unwrap();
}

fn writes_after_a_deletion_in_the_same_batch_start_the_document_again(store: &dyn Store) {
    let id = DocId::new("app", "again");
    stored_with_everything(store, &id);
    let mut batch = WriteBatch::default();
    batch.append(&id, 1, b"OLD-AFTER");
    batch.delete_doc(&id);
    batch.append(&id, 1, b"NEW-1");
    batch.put_meta(&id, &meta(0));
    store.write(batch).unwrap();
    store.flush().unwrap();
    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(loaded.snapshot, None, "the old snapshot went");
    assert_eq!(loaded.updates, [(1, b"NEW-1".to_vec())]);
    assert!(store.history(&id).unwrap().is_empty());
}

fn dead_letters_leave_the_outbox_per_app_until_acknowledged(store: &dyn Store) {
    let a1 = store.outbox_push("a", b"first of a").unwrap();
    let b1 = store.outbox_push("b", b"first of b").unwrap();
    let a2 = store.outbox_push("a", b"second of a").unwrap();
    store.flush().unwrap();
    assert_eq!(store.dead_letter_count().unwrap(), 0);

    store
        .outbox_dead_letter(a1, "a", "max-age: HTTP 500", 42)
        .unwrap();
    store.outbox_dead_letter(b1, "b", "no-target", 43).unwrap();
    store
        .outbox_dead_letter(999_999, "a", "never pending", 44)
        .unwrap();
    let pending: Vec<u64> = store
        .outbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(pending, [a2], "dead letters are no longer pending");
    assert_eq!(store.dead_letter_count().unwrap(), 2);
    assert_eq!(
        store.dead_letters("a", 10).unwrap(),
        [DeadLetter {
            id: a1,
            app: "a".into(),
            payload: b"first of a".to_vec(),
            reason: "max-age: HTTP 500".into(),
            at_ms: 42,
        }]
    );
    assert_eq!(
        store.dead_letters("b", 10).unwrap()[0].payload,
        b"first of b"
    );
    assert!(store.dead_letters("c", 10).unwrap().is_empty());

    assert!(
        !store.dead_letter_ack("b", a1).unwrap(),
        "not another app's"
    );
    assert!(store.dead_letter_ack("a", a1).unwrap());
    assert!(!store.dead_letter_ack("a", a1).unwrap(), "taken once");
    assert!(store.dead_letters("a", 10).unwrap().is_empty());
    assert_eq!(store.dead_letter_count().unwrap(), 1);
}

fn history_points_deleted_by_retention_go_and_nothing_else(store: &dyn Store) {
    let a = DocId::new("app", "a");
    let ab = DocId::new("app", "ab");
    stored_with_everything(store, &a);
    stored_with_everything(store, &ab);
    let before = store.load(&a).unwrap();
    store.delete_history(&a, &[1, 7]).unwrap();
    let left: Vec<u64> = store.history(&a).unwrap().iter().map(|e| e.point).collect();
    assert_eq!(left, [2], "point 1 went; a point that never was is skipped");
    assert_eq!(store.history_point(&a, 1).unwrap(), None);
    assert_eq!(store.load(&a).unwrap(), before, "the draft is untouched");
    assert_eq!(store.history(&ab).unwrap().len(), 2, "prefix-isolated");
}
