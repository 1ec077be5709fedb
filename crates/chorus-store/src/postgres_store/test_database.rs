//! [`TestDatabase`]: a fresh PostgreSQL database per test run, for this crate's tests
//! and other crates' (behind the `test-database` feature).

use postgres::NoTls;

/// A fresh, empty database for one test run, dropped (with its connections) when the
/// value is dropped, so runs never see each other's data.
///
/// It connects as `CHORUS_TEST_POSTGRES` (default
/// `postgres://postgres@127.0.0.1:5432/postgres`, a local server with trust auth) and
/// creates `chorus_test_<pid>_<n>_<time>`. Creation panics with a message naming the
/// server if it cannot be reached: a test that needs PostgreSQL fails without it.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Create the database.
    pub fn create() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin_url = std::env::var("CHORUS_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "chorus_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Self::admin(&admin_url, &format!("CREATE DATABASE {name}"));
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// The database's URL, for [`PostgresStore::open`](crate::PostgresStore::open) or a server's `store` key.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run one statement as the admin user, on a thread of its own: the blocking
    /// client must not run inside an async runtime, and tests often are one.
    fn admin(admin_url: &str, statement: &str) {
        let (url, statement) = (admin_url.to_owned(), statement.to_owned());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, NoTls).unwrap_or_else(|e| {
                panic!("tests need PostgreSQL at {url} (set CHORUS_TEST_POSTGRES): {e}")
            });
            client
                .batch_execute(&statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, statement) = (
            self.admin_url.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        // Never panic in drop (a failing test is already unwinding through here).
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, NoTls) {
                let _ = client.batch_execute(&statement);
            }
        })
        .join();
    }
}
