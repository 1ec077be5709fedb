//! What only `PostgresStore` does: one transaction per flush (a failed one rolls back
//! and forgets its writes), SQLSTATEs mapped to conditions, checksums verified on
//! read, migrations once when nodes start together, and no password in any message.
//! Real PostgreSQL, a fresh database per test.

mod common;

use chorus_store::{
    DocId, PostgresStore, Store, StoreCondition, StoreError, TestDatabase, WriteBatch,
};
use common::{meta, records, update};

/// Run SQL against the test database on a thread of its own (the blocking client).
fn sql(db: &TestDatabase, statements: &str) {
    let (url, statements) = (db.url().to_owned(), statements.to_owned());
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client.batch_execute(&statements).unwrap();
    })
    .join()
    .unwrap();
}

fn batch(id: &DocId, seqs: std::ops::RangeInclusive<u64>) -> WriteBatch {
    let mut batch = WriteBatch::default();
    let last = *seqs.end();
    for seq in seqs {
        batch.append(id, seq, &update(id, seq));
    }
    batch.put_meta(id, &meta(last));
    batch
}

#[test]
fn writes_are_invisible_until_the_flush_commits_them() {
    let db = TestDatabase::create();
    let store = PostgresStore::open(db.url()).unwrap();
    let id = DocId::new("app", "doc");
    store.write(batch(&id, 1..=3)).unwrap();
    let event = store.outbox_push("app", b"event").unwrap();
    assert!(store.load(&id).unwrap().is_none());
    assert!(store.outbox_pending(10).unwrap().is_empty());
    store.flush().unwrap();
    assert_eq!(
        store.load(&id).unwrap().unwrap().updates,
        records(&id, 1..=3)
    );
    assert_eq!(store.outbox_pending(10).unwrap()[0].id, event);
    // A second store on the same database (another node) sees the commit.
    let other = PostgresStore::open(db.url()).unwrap();
    assert_eq!(other.load(&id).unwrap().unwrap().meta, meta(3));
}

#[test]
fn a_failed_flush_rolls_back_the_whole_group_and_names_a_full_disk() {
    let db = TestDatabase::create();
    let store = PostgresStore::open(db.url()).unwrap();
    let (a, b) = (DocId::new("app", "a"), DocId::new("app", "b"));
    // The server's own error for a full disk, raised for the log insert only: the
    // metadata of the same group must not survive it either.
    sql(
        &db,
        "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' \
         USING ERRCODE = '53100'; END $$; \
         CREATE TRIGGER disk_full BEFORE INSERT ON chorus_log \
         FOR EACH STATEMENT EXECUTE FUNCTION disk_full();",
    );
    let mut both = batch(&a, 1..=2);
    both.put_meta(&b, &meta(9));
    store.write(both).unwrap();
    store.outbox_push("app", b"lost with its group").unwrap();
    let e = store.flush().unwrap_err();
    assert!(
        matches!(&e, StoreError::Database { code: Some(c), .. } if c == "53100"),
        "{e:?}"
    );
    assert_eq!(e.condition(), StoreCondition::DiskFull);
    assert!(e.to_string().contains("No space left"), "{e}");
    assert!(store.load(&a).unwrap().is_none());
    assert!(store.load(&b).unwrap().is_none(), "no partial group");
    assert!(store.outbox_pending(10).unwrap().is_empty());

    // Space is back: the failed group is gone (the caller rewrites), new ones commit.
    sql(&db, "DROP TRIGGER disk_full ON chorus_log");
    store.flush().unwrap();
    assert!(
        store.load(&a).unwrap().is_none(),
        "a failed flush forgets its writes"
    );
    store.write(batch(&a, 1..=2)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.load(&a).unwrap().unwrap().updates, records(&a, 1..=2));
}

#[test]
fn a_read_only_server_is_named_so() {
    let db = TestDatabase::create();
    let store = PostgresStore::open(db.url()).unwrap();
    sql(
        &db,
        &format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            db.name()
        ),
    );
    // New sessions only: make the pool open new ones.
    sql(
        &db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name()
        ),
    );
    let id = DocId::new("app", "doc");
    let mut failure = None;
    // The first attempts may meet a connection the termination just broke.
    for _ in 0..10 {
        store.write(batch(&id, 1..=1)).unwrap();
        match store.flush() {
            Err(e) if e.condition() == StoreCondition::ReadOnly => {
                failure = Some(e);
                break;
            }
            Err(_) => continue,
            Ok(()) => panic!("a read-only database accepted a write"),
        }
    }
    let e = failure.expect("a read-only failure");
    assert_eq!(e.condition().code(), "store-read-only", "{e}");
}

#[test]
fn a_record_changed_behind_the_stores_back_is_reported_as_corrupt() {
    let db = TestDatabase::create();
    let store = PostgresStore::open(db.url()).unwrap();
    let id = DocId::new("app", "doc");
    store.write(batch(&id, 1..=3)).unwrap();
    store.flush().unwrap();
    // Flip one byte of the payload of record 2 (after the 4 checksum bytes).
    sql(
        &db,
        "UPDATE chorus_log SET value = set_byte(value, 5, get_byte(value, 5) # 1) WHERE seq = 2",
    );
    let e = store.load(&id).unwrap_err();
    assert!(
        matches!(&e, StoreError::Corrupt { id: Some(bad), detail } if *bad == id && detail.contains("log record 2")),
        "{e:?}"
    );
    assert_eq!(e.condition(), StoreCondition::Corrupt);
}

#[test]
fn nodes_starting_together_migrate_once() {
    let db = TestDatabase::create();
    let url = db.url().to_owned();
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(&url).map(drop))
        })
        .collect();
    for node in opened {
        node.join().unwrap().unwrap();
    }
    let store = PostgresStore::open(&url).unwrap();
    let id = DocId::new("app", "doc");
    store.write(batch(&id, 1..=1)).unwrap();
    store.flush().unwrap();
    assert!(store.load(&id).unwrap().is_some());
}

#[test]
fn an_unreachable_server_is_unavailable_and_no_message_shows_the_password() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let e = PostgresStore::open("postgres://chorus:hunter2@127.0.0.1:1/chorus").unwrap_err();
    let text = e.to_string();
    assert_eq!(e.condition(), StoreCondition::Unavailable, "{text}");
    assert!(
        text.contains("postgres://chorus@127.0.0.1:1/chorus"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !format!("{e:?}").contains("hunter2"),
        "{e:?}"
    );
    let e = PostgresStore::open("not a url at all =").unwrap_err();
    assert_eq!(e.condition(), StoreCondition::Unavailable);
}
