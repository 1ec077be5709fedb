//! [`PostgresStore`]: the durable store of cluster mode, in PostgreSQL.
//!
//! # Group commit is one transaction
//!
//! [`Store::write`], [`Store::compact`] and [`Store::outbox_push`] only queue their
//! writes in memory; [`Store::flush`] applies everything queued, in order, in one
//! transaction, and returns after its `COMMIT`. So a group commit is one round of
//! statements and one `COMMIT` however many documents it spans, and the writer's
//! acknowledgements (`saved`) come after the commit, as the contract wants. A failed
//! flush rolls back and forgets what it held: the caller acknowledged none of it, and
//! retries those documents from a snapshot, as after any failed write. Reads see
//! committed data only (the [`Store`] contract allows that: a write is visible after
//! the flush that makes it durable).
//!
//! # Schema
//!
//! One table per sled tree (`chorus_meta`, `chorus_snapshots`, `chorus_log`,
//! `chorus_history`, `chorus_outbox`; see `migrations/`), applied at open by refinery
//! under an advisory lock, so nodes starting together migrate once. Values are framed
//! exactly as in sled, `[crc32][payload]`, and verified on every read: a mismatch is
//! [`StoreError::Corrupt`] naming the document. Ids are `COLLATE "C"` so listings sort
//! bytewise, as the embedded store's do.
//!
//! # TLS
//!
//! The URL's `sslmode` and `sslrootcert` (libpq's names and meanings) choose
//! plaintext, TLS without a certificate check (`require`), or TLS checked against a
//! CA file or the system's roots (`verify-ca`, `verify-full`); see `tls`. Without
//! `sslmode` the store connects in plaintext, as it always did. Every connection of
//! the pool, the migrations' included, goes the same way.
//!
//! # Errors
//!
//! Every failure is a [`StoreError::Database`] carrying the SQLSTATE when the server
//! sent one; [`StoreError::condition`] maps `53100` (disk full) to `disk-full`,
//! `25006` (read-only transaction) to `store-read-only` and everything else,
//! an unreachable server included, to `store-unavailable`.
//!
//! [`PostgresStore`]: pool::PostgresStore
//! [`Store`]: crate::Store
//! [`Store::write`]: crate::Store::write
//! [`Store::compact`]: crate::Store::compact
//! [`Store::outbox_push`]: crate::Store::outbox_push
//! [`Store::flush`]: crate::Store::flush
//! [`StoreError::Corrupt`]: crate::StoreError::Corrupt
//! [`StoreError::Database`]: crate::StoreError::Database
//! [`StoreError::condition`]: crate::StoreError::condition

mod columns;
mod commit;
mod fences;
mod leases;
mod pending;
mod pool;
mod store;
#[cfg(feature = "test-database")]
mod test_database;
mod tls;

pub use pool::PostgresStore;
#[cfg(feature = "test-database")]
pub use test_database::TestDatabase;
