//! Document ownership in PostgreSQL: leases with fencing tokens. Two stores on one
//! fresh database stand for two nodes; a short ttl stands for a node that paused.

mod common;

use chorus_store::{
    Acquired, DocId, Leases, PostgresStore, Store, StoreError, TestDatabase, WriteBatch,
};
use common::{meta, records, update};
use std::time::Duration;

const TTL: Duration = Duration::from_millis(400);

fn write(store: &PostgresStore, id: &DocId, seq: u64) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    batch.append(id, seq, &update(id, seq));
    batch.put_meta(id, &meta(seq));
    store.write(batch)?;
    store.flush()
}

fn owned(acquired: Acquired) -> u64 {
    match acquired {
        Acquired::Owned { token, .. } => token,
        other => panic!("expected the lease, got {other:?}"),
    }
}

#[test]
fn a_node_that_lost_its_lease_can_never_write_again() {
    let db = TestDatabase::create();
    let (a, b) = (
        PostgresStore::open(db.url()).unwrap(),
        PostgresStore::open(db.url()).unwrap(),
    );
    let id = DocId::new("app", "doc");

    let first = owned(a.acquire(&id, "node-a", TTL).unwrap());
    a.fence(&id, first);
    write(&a, &id, 1).unwrap();
    assert_eq!(
        b.acquire(&id, "node-b", TTL).unwrap(),
        Acquired::HeldBy {
            node: "node-a".into(),
            token: first
        },
        "a live lease is not taken"
    );
    assert_eq!(a.renew("node-a", TTL).unwrap(), vec![(id.clone(), first)]);

    // node-a pauses past its lease; node-b takes over with a larger token.
    std::thread::sleep(TTL + Duration::from_millis(200));
    let taken = b.acquire(&id, "node-b", TTL).unwrap();
    assert!(
        matches!(&taken, Acquired::Owned { previous: Some(p), .. } if p == "node-a"),
        "a takeover names the node it took from: {taken:?}"
    );
    let second = owned(taken);
    assert!(second > first, "{second} > {first}");
    b.fence(&id, second);

    // node-a resumes: its write is refused whole, and its renewal shows the loss.
    let e = write(&a, &id, 2).unwrap_err();
    assert!(
        matches!(&e, StoreError::Fenced { lost } if lost == std::slice::from_ref(&id)),
        "{e:?}"
    );
    assert!(a.renew("node-a", TTL).unwrap().is_empty());
    write(&b, &id, 2).unwrap();
    let loaded = b.load(&id).unwrap().unwrap();
    assert_eq!(
        loaded.updates,
        records(&id, 1..=2),
        "node-b's record 2, not node-a's"
    );
    assert_eq!(loaded.meta, meta(2));

    // Whatever else node-a's group held is not written either.
    let other = DocId::new("app", "other");
    let mut batch = WriteBatch::default();
    batch.append(&other, 1, b"o");
    batch.append(&id, 3, b"stale owner");
    a.write(batch).unwrap();
    assert!(matches!(a.flush(), Err(StoreError::Fenced { .. })));
    assert!(
        a.load(&other).unwrap().is_none(),
        "the whole group rolled back"
    );
    // Unfenced documents (a single node) are written unchecked.
    a.unfence(&id, second); // not its token: stays fenced
    assert!(matches!(write(&a, &id, 3), Err(StoreError::Fenced { .. })));
    a.unfence(&id, first);
    let mut batch = WriteBatch::default();
    batch.append(&other, 1, b"o");
    a.write(batch).unwrap();
    a.flush().unwrap();
}

#[test]
fn a_released_lease_is_free_and_holders_say_who_and_whether_live() {
    let db = TestDatabase::create();
    let (a, b) = (
        PostgresStore::open(db.url()).unwrap(),
        PostgresStore::open(db.url()).unwrap(),
    );
    let (x, y, z) = (
        DocId::new("app", "x"),
        DocId::new("app", "y"),
        DocId::new("app", "z"),
    );
    let tx = owned(a.acquire(&x, "node-a", Duration::from_secs(30)).unwrap());
    let ty = owned(a.acquire(&y, "node-a", Duration::from_millis(100)).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let mut holders = b.holders(&[x.clone(), y.clone(), z.clone()]).unwrap();
    holders.sort_by(|p, q| p.id.cmp(&q.id));
    let seen: Vec<_> = holders
        .iter()
        .map(|h| (h.id.doc.as_str(), h.node.as_str(), h.token, h.live))
        .collect();
    assert_eq!(
        seen,
        [("x", "node-a", tx, true), ("y", "node-a", ty, false)]
    );

    // Releasing with a stale token does nothing; with the current one frees it.
    a.release(&x, tx + 1000).unwrap();
    assert!(matches!(
        b.acquire(&x, "node-b", Duration::from_secs(30)).unwrap(),
        Acquired::HeldBy { .. }
    ));
    a.release(&x, tx).unwrap();
    let tb = owned(b.acquire(&x, "node-b", Duration::from_secs(30)).unwrap());
    assert!(tb > ty);
    // Taking a lease this node already holds gives a new token (fencing an older
    // holder on the same node).
    let again = owned(b.acquire(&x, "node-b", Duration::from_secs(30)).unwrap());
    assert!(again > tb);
}
