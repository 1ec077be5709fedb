//! `SledStore` specifics: persistence across reopen, the on-disk layout, corruption
//! detection through a raw sled handle, and open errors.

mod common;

use std::path::Path;

use chorus_store::{DocId, SledStore, Store, StoreError, WriteBatch};
use common::{append, meta, records};

/// Retry `open` while the database's file lock is still held: a sled handle
/// dropped a moment ago releases it from a background thread, shortly after.
fn when_unlocked<T, E: std::fmt::Display>(mut open: impl FnMut() -> Result<T, E>) -> T {
    for _ in 0..100 {
        match open() {
            Ok(v) => return v,
            Err(e) if e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("open failed: {e}"),
        }
    }
    panic!("the database stayed locked for 5 s")
}

/// Open the store in `dir` (see [`when_unlocked`]).
fn reopen(dir: &Path) -> SledStore {
    when_unlocked(|| SledStore::open(dir))
}

/// Run `f` on the raw sled trees of a closed store.
fn with_raw_db<T>(dir: &Path, f: impl FnOnce(&sled::Db) -> T) -> T {
    let db = when_unlocked(|| sled::open(dir));
    let out = f(&db);
    db.flush().unwrap();
    out
}

fn doc_key(id: &DocId) -> Vec<u8> {
    [id.app.as_bytes(), b"\0", id.doc.as_bytes()].concat()
}

fn log_key(id: &DocId, seq: u64) -> Vec<u8> {
    [&doc_key(id)[..], b"\0", &seq.to_be_bytes()].concat()
}

/// `[crc32 LE][payload]`, the documented framing.
fn framed(payload: &[u8]) -> Vec<u8> {
    [&crc32fast::hash(payload).to_le_bytes()[..], payload].concat()
}

/// Replace the value at `key` of `tree` with `edit(old value)`.
fn edit_raw(dir: &Path, tree: &str, key: &[u8], edit: impl FnOnce(&mut Vec<u8>)) {
    with_raw_db(dir, |db| {
        let tree = db.open_tree(tree).unwrap();
        let mut value = tree.get(key).unwrap().expect("raw key exists").to_vec();
        edit(&mut value);
        tree.insert(key, value).unwrap();
    });
}

fn expect_corrupt(result: Result<impl std::fmt::Debug, StoreError>, id: &DocId, what: &str) {
    match result {
        Err(StoreError::Corrupt {
            id: Some(bad),
            detail,
        }) => {
            assert_eq!(&bad, id);
            assert!(detail.contains(what), "{detail:?} should mention {what:?}");
            let message = StoreError::Corrupt {
                id: Some(bad),
                detail,
            }
            .to_string();
            assert!(message.contains(&id.to_string()), "{message}");
        }
        other => panic!("expected Corrupt for {id}, got {other:?}"),
    }
}

#[test]
fn documents_metadata_and_outbox_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = DocId::new("app", "a");
    let b = DocId::new("app", "b");
    let ids = {
        let store = reopen(dir.path());
        append(&store, &a, 1..=5);
        store.compact(&a, b"SNAP", 3, &meta(5)).unwrap();
        append(&store, &b, 1..=2);
        let ids = [
            store.outbox_push("app", b"one").unwrap(),
            store.outbox_push("app", b"two").unwrap(),
        ];
        store.outbox_ack(ids[0]).unwrap();
        store.flush().unwrap();
        ids
    };
    let store = reopen(dir.path());
    let loaded = store.load(&a).unwrap().unwrap();
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"SNAP"[..]));
    assert_eq!(loaded.snapshot_seq, 3);
    assert_eq!(loaded.updates, records(&a, 4..=5));
    assert_eq!(loaded.meta.update_count, 5);
    assert_eq!(store.load(&b).unwrap().unwrap().updates, records(&b, 1..=2));
    assert_eq!(store.list("app").unwrap().len(), 2);

    let pending = store.outbox_pending(10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].id, &pending[0].payload[..]),
        (ids[1], &b"two"[..])
    );
    let next = store.outbox_push("app", b"three").unwrap();
    assert!(next > ids[1], "outbox ids keep increasing across reopen");
}

#[test]
fn the_on_disk_layout_is_the_documented_one() {
    let dir = tempfile::tempdir().unwrap();
    let id = DocId::new("app", "doc");
    {
        let store = reopen(dir.path());
        append(&store, &id, [1, 2]);
        store.compact(&id, b"SNAP", 1, &meta(2)).unwrap();
        store.outbox_push("app", b"ev").unwrap();
        store.flush().unwrap();
    }
    assert!(
        !dir.path().join(".chorus-write-probe").exists(),
        "the writability probe is removed"
    );
    with_raw_db(dir.path(), |db| {
        let log = db.open_tree("log").unwrap();
        let keys: Vec<_> = log.iter().keys().map(|k| k.unwrap().to_vec()).collect();
        assert_eq!(keys, [log_key(&id, 2)], "compaction deleted seq 1");
        let value = log.get(log_key(&id, 2)).unwrap().unwrap();
        assert_eq!(&value[..], framed(&common::update(&id, 2)));

        let snap = db
            .open_tree("snapshots")
            .unwrap()
            .get(doc_key(&id))
            .unwrap()
            .unwrap();
        assert_eq!(
            &snap[..],
            framed(&[&1u64.to_be_bytes()[..], b"SNAP"].concat())
        );

        let meta_value = db
            .open_tree("meta")
            .unwrap()
            .get(doc_key(&id))
            .unwrap()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&meta_value[4..]).unwrap();
        assert_eq!(json["update_count"], 2);
        assert_eq!(json["snapshot_seq"], 1);
        assert_eq!(
            &meta_value[..4],
            crc32fast::hash(&meta_value[4..]).to_le_bytes()
        );

        let outbox: Vec<_> = db
            .open_tree("outbox")
            .unwrap()
            .iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].0.len(), 8);
        assert_eq!(&outbox[0].1[..], framed(b"\0\0\0\x03appev"));
    });
}

#[test]
fn compaction_deletes_exactly_the_covered_records_of_that_document() {
    let dir = tempfile::tempdir().unwrap();
    let id = DocId::new("app", "doc");
    let neighbour = DocId::new("app", "doc2");
    {
        let store = reopen(dir.path());
        append(&store, &id, 1..=300);
        append(&store, &neighbour, 1..=3);
        store.compact(&id, b"SNAP", 257, &meta(300)).unwrap();
    }
    with_raw_db(dir.path(), |db| {
        let log = db.open_tree("log").unwrap();
        let mine = log.scan_prefix([&doc_key(&id)[..], b"\0"].concat()).count();
        assert_eq!(mine, 300 - 257);
        let theirs = log
            .scan_prefix([&doc_key(&neighbour)[..], b"\0"].concat())
            .count();
        assert_eq!(theirs, 3);
    });
}

#[test]
fn a_snapshot_written_without_deleting_the_log_still_loads_correctly() {
    // The first step of a compaction alone, as a crash mid-way would leave it: the new
    // snapshot is on disk, metadata and log are untouched.
    let dir = tempfile::tempdir().unwrap();
    let id = DocId::new("app", "doc");
    {
        let store = reopen(dir.path());
        append(&store, &id, 1..=5);
    }
    with_raw_db(dir.path(), |db| {
        let snapshot = framed(&[&3u64.to_be_bytes()[..], b"SNAPSHOT@3"].concat());
        db.open_tree("snapshots")
            .unwrap()
            .insert(doc_key(&id), snapshot)
            .unwrap();
    });
    let store = reopen(dir.path());
    let loaded = store.load(&id).unwrap().unwrap();
    assert_eq!(loaded.snapshot.as_deref(), Some(&b"SNAPSHOT@3"[..]));
    assert_eq!(loaded.snapshot_seq, 3);
    assert_eq!(loaded.updates, records(&id, 4..=5));
    assert_eq!(loaded.meta.snapshot_seq, 3);
    assert_eq!(loaded.meta.update_count, 5);
}

/// Three documents; `damage` breaks something of `victim` through the raw handle.
fn corruption_case(damage: impl FnOnce(&Path, &DocId), what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let victim = DocId::new("app", "victim");
    let before = DocId::new("app", "before");
    let after = DocId::new("app", "victim2");
    {
        let store = reopen(dir.path());
        for id in [&before, &victim, &after] {
            append(&store, id, 1..=4);
            store.compact(id, b"SNAP", 2, &meta(4)).unwrap();
        }
    }
    damage(dir.path(), &victim);
    let store = reopen(dir.path());
    expect_corrupt(store.load(&victim), &victim, what);
    for id in [&before, &after] {
        let loaded = store.load(id).unwrap().unwrap();
        assert_eq!(loaded.updates, records(id, 3..=4), "{id} is unaffected");
    }
}

#[test]
fn a_flipped_byte_in_a_log_record_is_reported_as_corrupt() {
    corruption_case(
        |dir, id| {
            edit_raw(dir, "log", &log_key(id, 3), |v| {
                *v.last_mut().unwrap() ^= 0x20
            })
        },
        "log record 3",
    );
}

#[test]
fn a_flipped_checksum_byte_is_reported_as_corrupt() {
    corruption_case(
        |dir, id| edit_raw(dir, "log", &log_key(id, 4), |v| v[0] ^= 0x01),
        "checksum mismatch",
    );
}

#[test]
fn a_truncated_log_record_is_reported_as_corrupt() {
    corruption_case(
        |dir, id| edit_raw(dir, "log", &log_key(id, 4), |v| v.truncate(3)),
        "truncated",
    );
}

#[test]
fn a_covered_but_corrupt_leftover_record_is_still_reported() {
    // "Verifies every checksum": even a record the snapshot makes redundant.
    corruption_case(
        |dir, id| {
            with_raw_db(dir, |db| {
                let mut bad = framed(b"leftover");
                bad[5] ^= 1;
                db.open_tree("log")
                    .unwrap()
                    .insert(log_key(id, 1), bad)
                    .unwrap();
            })
        },
        "log record 1",
    );
}

#[test]
fn a_flipped_byte_in_a_snapshot_is_reported_as_corrupt() {
    corruption_case(
        |dir, id| {
            edit_raw(dir, "snapshots", &doc_key(id), |v| {
                *v.last_mut().unwrap() ^= 0xff
            })
        },
        "snapshot",
    );
}

#[test]
fn a_flipped_byte_in_metadata_is_reported_as_corrupt_by_load_and_list() {
    let flip = |dir: &Path, id: &DocId| {
        edit_raw(dir, "meta", &doc_key(id), |v| {
            let i = v.len() / 2;
            v[i] ^= 0x04;
        })
    };
    corruption_case(flip, "metadata");

    let dir = tempfile::tempdir().unwrap();
    let id = DocId::new("app", "victim");
    drop({
        let store = reopen(dir.path());
        append(&store, &id, [1]);
        append(&store, &DocId::new("other", "fine"), [1]);
        store
    });
    flip(dir.path(), &id);
    let store = reopen(dir.path());
    expect_corrupt(store.list("app"), &id, "metadata");
    assert_eq!(store.list("other").unwrap().len(), 1);
}

#[test]
fn metadata_with_a_valid_checksum_but_bad_json_is_corrupt() {
    corruption_case(
        |dir, id| {
            with_raw_db(dir, |db| {
                db.open_tree("meta")
                    .unwrap()
                    .insert(doc_key(id), framed(b"{nope"))
                    .unwrap();
            })
        },
        "bad metadata JSON",
    );
}

#[test]
fn a_corrupt_outbox_event_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = reopen(dir.path());
        store.outbox_push("app", b"payload").unwrap()
    };
    edit_raw(dir.path(), "outbox", &id.to_be_bytes(), |v| v[6] ^= 1);
    let store = reopen(dir.path());
    match store.outbox_pending(10) {
        Err(StoreError::Corrupt { id: None, detail }) => {
            assert!(detail.contains(&format!("outbox event {id}")), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The operator's way out: acknowledge (drop) it.
    store.outbox_ack(id).unwrap();
    assert!(store.outbox_pending(10).unwrap().is_empty());
}

#[test]
fn opening_a_regular_file_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    for path in [file.clone(), file.join("data")] {
        let err = SledStore::open(&path).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file is untouched");
}

#[test]
fn a_directory_that_cannot_be_written_is_read_only_even_for_root() {
    // sysfs refuses new files even to root, as a read-only mount would; permission
    // bits alone would not stop root, which is why `open` probes with a real file.
    let dir = Path::new("/sys/kernel");
    if !cfg!(target_os = "linux") || !dir.is_dir() {
        return;
    }
    match SledStore::open(dir) {
        Err(StoreError::ReadOnly(path)) => assert_eq!(path, dir),
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    let message = StoreError::ReadOnly(dir.into()).to_string();
    assert!(message.contains("/sys/kernel") && message.contains("not writable"));
}

#[test]
fn a_second_open_of_the_same_directory_fails_cleanly() {
    let (dir, _store) = common::sled_store();
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&*dir.path().to_string_lossy()),
        "{err}"
    );
}

#[test]
fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/data");
    let store = SledStore::open(&nested).unwrap();
    assert_eq!(store.path(), nested);
    let mut batch = WriteBatch::default();
    batch.append(&DocId::new("x", "y"), 1, b"u");
    store.write(batch).unwrap();
    store.flush().unwrap();
    assert!(store.size_on_disk().unwrap() > 0);
}
