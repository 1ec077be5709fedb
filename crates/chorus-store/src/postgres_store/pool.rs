//! [`PostgresStore`] itself: its connection pool, opening (connection settings,
//! TLS as the URL's `sslmode` asks (see `tls`), schema migrations under an advisory
//! lock), the helpers every statement goes through, and closing.
//!
//! The other files of this module add the rest of its methods: the fences, the group
//! commit, the [`Store`](crate::Store) and [`Leases`](crate::Leases) impls.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::config::Host;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pending::Pending;
use super::tls;
use crate::{DocId, StoreError};

// One connector type whatever the URL asks: with `sslmode` unset or `disable` the
// driver never starts TLS, so a plaintext URL connects exactly as it always did.
type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;
pub(super) type Connection = r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>;

/// Connections kept open: the writer thread, webhook delivery and a few concurrent
/// loads and listings.
const POOL_SIZE: u32 = 8;

/// How long a caller waits for a connection (or a new one to be opened) before the
/// operation fails. Short, so an unreachable server turns into an error and a 503
/// quickly instead of piling up waiting work.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// Serialises migrations of nodes that start at once (any fixed key; this one spells
/// "chorus" in ASCII).
const MIGRATION_LOCK: i64 = 0x6368_6f72_7573;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The PostgreSQL-backed [`Store`](crate::Store). Cheap to share behind an `Arc`;
/// every method is safe to call from several threads. Its methods block: call them
/// from a plain thread or `spawn_blocking`, never from an async task.
pub struct PostgresStore {
    /// `None` only while dropping (see `Drop`).
    pool: Option<Pool>,
    /// `postgres://user@host:port/db`, without any password, for messages.
    pub(super) target: String,
    /// What the connections promise: plaintext, or TLS and what it checks.
    security: String,
    pending: Mutex<Vec<Pending>>,
    /// Lease tokens documents are written under
    /// ([`Leases::fence`](crate::Leases::fence)).
    pub(super) fences: Mutex<HashMap<DocId, i64>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://USER@HOST:PORT/DB`, with the
    /// parameters the `postgres` crate accepts, and libpq's `sslmode` and
    /// `sslrootcert`) and bring its schema up to date, over TLS if `sslmode` asks
    /// (the module `tls` says what each mode checks).
    ///
    /// Fails with [`StoreError::Database`] naming the target (never the password) if
    /// the URL or its TLS settings do not parse, the server cannot be reached within a
    /// few seconds (a refused TLS handshake included: the message names what the
    /// certificate was checked against and rustls's reason), or a migration fails.
    /// A TLS failure never falls back to plaintext.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let tls::Connection {
            mut config,
            tls,
            security,
        } = tls::parse(url).map_err(|e| {
            StoreError::database("parsing the store URL (postgres://USER@HOST:PORT/DB)", e)
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_TIMEOUT);
        }
        // A server that vanished without closing the connection (a partition, a
        // stopped machine) is noticed by keepalives instead of never.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(5));
        config.tcp_user_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("chorus");
        }
        let target = describe(&config);
        let connecting = || format!("connecting to {target} over {security}");
        // One connection first, outside the pool: a refused handshake or login fails
        // at once with the driver's error and its causes (rustls's reason), where the
        // pool would retry for CONNECTION_TIMEOUT and keep only the driver's summary.
        drop(
            config
                .connect(tls.clone())
                .map_err(|e| StoreError::database(connecting(), e))?,
        );
        let manager = PostgresConnectionManager::new(config, tls);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECTION_TIMEOUT)
            .build(manager)
            .map_err(|e| StoreError::database(connecting(), e))?;
        let store = Self {
            pool: Some(pool),
            target,
            security,
            pending: Mutex::new(Vec::new()),
            fences: Mutex::new(HashMap::new()),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where the store is, as `postgres://user@host:port/db` (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What its connections promise, for the start-up log: `plaintext`, or `TLS (…)`
    /// saying what the server's certificate is checked against.
    pub fn security(&self) -> &str {
        &self.security
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        self.target.rsplit('/').next().unwrap_or_default()
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let context = || format!("migrating the schema of {}", self.target);
        let mut conn = self.conn("migrating the schema of")?;
        conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| StoreError::database(context(), e))?;
        let migrated = embedded::migrations::runner()
            .run(&mut *conn)
            .map_err(|e| StoreError::database(context(), e));
        let unlocked = conn
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .map_err(|e| StoreError::database(context(), e));
        migrated?;
        unlocked.map(drop)
    }

    pub(super) fn conn(&self, what: &str) -> Result<Connection, StoreError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::Internal(format!(
                "{what} {}: the store is closed",
                self.target
            )));
        };
        pool.get()
            .map_err(|e| StoreError::database(format!("{what} {}", self.target), e))
    }

    pub(super) fn err(&self, what: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
        let context = format!("{what} {}", self.target);
        move |e| StoreError::database(context.clone(), e)
    }

    pub(super) fn pending(&self) -> MutexGuard<'_, Vec<Pending>> {
        // Pushing to or taking a Vec cannot leave it half-changed.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The blocking client closes each connection by blocking on its own small
        // runtime, which panics on an async runtime's thread, and the last handle
        // of the store may well be dropped on one: close them on a thread of their
        // own.
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new()
                .name("chorus-pg-close".into())
                .spawn(move || drop(pool));
        }
    }
}

/// `postgres://user@host:port/db` for messages: everything but the password.
fn describe(config: &postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{db}")
}
