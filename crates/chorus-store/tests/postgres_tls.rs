//! PostgresStore over TLS, against a PostgreSQL the test starts (chorus-tls-fixture):
//! TLS only (`hostnossl … reject`), its certificate signed by a CA the test makes.

mod common;

use chorus_store::{DocId, PostgresStore, Store, WriteBatch};
use chorus_tls_fixture::{TestCa, TlsPostgres};
use common::{meta, records, update};

fn param(path: &std::path::Path) -> String {
    percent_encoding::utf8_percent_encode(
        &path.display().to_string(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string()
}

/// Open, write, flush and read back one document.
fn round_trip(store: &PostgresStore, doc: &str) {
    let id = DocId::new("app", doc);
    let mut batch = WriteBatch::default();
    for seq in 1..=3 {
        batch.append(&id, seq, &update(&id, seq));
    }
    batch.put_meta(&id, &meta(3));
    store.write(batch).unwrap();
    store.flush().unwrap();
    let loaded = store.load(&id).unwrap().expect("the document");
    assert_eq!(loaded.updates, records(&id, 1..=3));
    assert_eq!(loaded.meta, meta(3));
}

fn open_err(url: &str) -> String {
    let e = PostgresStore::open(url).expect_err(url);
    e.to_string()
}

#[test]
fn the_store_migrates_and_round_trips_over_tls_and_refuses_what_it_cannot_trust() {
    let ca = TestCa::new("chorus test CA");
    let pg = TlsPostgres::start(&ca);
    let root = param(&ca.ca_file());

    // verify-full against the test's CA: the schema is migrated (over TLS: the
    // server refuses anything else) and a document round-trips.
    let store =
        PostgresStore::open(&pg.url(&format!("sslmode=verify-full&sslrootcert={root}"))).unwrap();
    assert!(
        store.security().contains("verify-full") && store.security().contains("name the host"),
        "{}",
        store.security()
    );
    round_trip(&store, "verified");
    // The host name as the certificate's DNS name works too.
    let by_name = format!(
        "postgres://postgres@localhost:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={root}",
        pg.port()
    );
    round_trip(&PostgresStore::open(&by_name).unwrap(), "by-name");

    // require: encrypted, certificate not checked (the server takes only TLS, so
    // this connection is TLS).
    let store = PostgresStore::open(&pg.url("sslmode=require")).unwrap();
    assert!(
        store.security().contains("not checked"),
        "{}",
        store.security()
    );
    round_trip(&store, "required");
    // verify-ca: the chain, whatever the name.
    let wrong_name = |mode: &str, root: &str| {
        format!(
            "postgres://postgres@db.invalid:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={root}",
            pg.port()
        )
    };
    round_trip(
        &PostgresStore::open(&wrong_name("verify-ca", &root)).unwrap(),
        "chain-only",
    );

    // A certificate another CA signed is refused, and the message says why.
    let other = TestCa::new("someone else's CA");
    let other_root = param(&other.ca_file());
    let e = open_err(&pg.url(&format!("sslmode=verify-full&sslrootcert={other_root}")));
    assert!(
        e.contains("TLS") && e.contains("UnknownIssuer"),
        "the cause named: {e}"
    );
    assert!(
        e.contains(&other.ca_file().display().to_string()),
        "what was trusted: {e}"
    );
    // So is require with that CA as its root (libpq: it then checks the chain).
    let e = open_err(&pg.url(&format!("sslmode=require&sslrootcert={other_root}")));
    assert!(e.contains("UnknownIssuer"), "{e}");

    // A host name the certificate does not carry fails verify-full.
    let e = open_err(&wrong_name("verify-full", &root));
    assert!(
        e.contains("not valid for name \"db.invalid\"") && e.contains("name the host"),
        "the cause named: {e}"
    );

    // Plaintext is refused by the server, explicitly or without sslmode.
    for url in [pg.url("sslmode=disable"), pg.url("")] {
        let e = open_err(&url);
        assert!(e.contains("no encryption"), "pg_hba's reason: {e}");
    }
}
