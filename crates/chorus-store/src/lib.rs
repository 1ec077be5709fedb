//! Persistence of Chorus documents.
//!
//! # What this crate owns
//!
//! Everything a document leaves on disk: per document a compacted **snapshot**, an
//! append-only **update log** written since that snapshot, and **metadata**
//! (timestamps, contributors, sizes, last state vector, publication); its **history
//! points** (the whole document as it was at each publish and every few minutes of
//! editing); plus a durable **outbox** of webhook events. The [`Store`] trait is the
//! whole contract; [`SledStore`] is the embedded implementation, [`PostgresStore`] the
//! durable store of cluster mode (same records and checksums, one table per tree, a
//! group commit is one transaction), and [`MemoryStore`] an in-memory fake with the
//! same semantics for other crates' unit tests. One behaviour suite
//! (`tests/behaviour.rs`) runs against all three.
//!
//! The store is synchronous (PostgreSQL through the blocking `postgres` client): the
//! server calls it from its dedicated writer thread
//! (writes, group-commit [`Store::flush`], compaction) and from `spawn_blocking`
//! (loads, listings). Updates and snapshots are opaque bytes here.
//!
//! # On-disk layout (sled, one database in the data directory)
//!
//! | tree        | key                                   | value payload                      |
//! |-------------|---------------------------------------|------------------------------------|
//! | `snapshots` | `app \0 doc`                          | `upto_seq` (u64 BE) ++ snapshot    |
//! | `log`       | `app \0 doc \0` ++ `seq` (u64 BE)     | one update                         |
//! | `meta`      | `app \0 doc`                          | [`DocMeta`] as JSON                |
//! | `outbox`    | event id (u64 BE)                     | `app` length (u32 BE) ++ `app` ++ payload |
//! | `history`   | `app \0 doc \0` ++ `point` (u64 BE)   | header length (u32 BE) ++ [`HistoryEntry`] JSON ++ state |
//!
//! Every value is framed as `[crc32 of payload, 4 bytes LE][payload]` and verified on
//! every read: sled 0.34 has open reports of corruption after abrupt stops, so a
//! mismatch is reported as [`StoreError::Corrupt`] naming the document, never
//! returned as a partial document and never a panic. Big-endian sequence numbers make
//! a prefix scan of the `log` tree return a document's records in order; the `\0`
//! separators (ids never contain `\0`) keep app `a` from seeing app `ab`.
//!
//! The snapshot record carries the sequence number it covers, so a snapshot is
//! self-describing: [`Store::load`] skips log records `<= upto_seq` even if a crash
//! left them behind or the metadata is older than the snapshot.
//!
//! # Errors
//!
//! Every failure is a [`StoreError`] whose message, for operators, names the
//! operation and the path or document. An I/O failure
//! ([`StoreError::Io`](variant@StoreError::Io)) keeps the [`std::io::Error`] it came
//! from, sled's included, so its kind survives.
//! [`StoreError::condition`] sorts any error into one of four [`StoreCondition`]s —
//! disk full, read-only, corrupt, unavailable — each with a stable code
//! (`disk-full`, `store-read-only`, `store-corrupt`, `store-unavailable`) for the
//! server to map once to an HTTP status, a readiness text and a log field.
//! [`MemoryStore`] can inject failures of a chosen kind, so callers can test a full
//! disk without one.
//!
//! # What it must not touch
//!
//! No yrs / CRDT semantics (updates are bytes; the caller assigns sequence numbers and
//! computes state vectors), no websockets, tokens or HTTP, and no async runtime. It
//! never decides *when* to write, flush or compact — the server's persistence policy
//! does.

mod batch;
mod codec;
mod error;
mod leases;
mod memory;
mod postgres_store;
mod sled_store;
mod store;
mod types;

pub use batch::WriteBatch;
pub use error::{StoreCondition, StoreError};
pub use leases::{Acquired, LeaseHolder, Leases};
pub use memory::MemoryStore;
pub use postgres_store::PostgresStore;
#[cfg(feature = "test-database")]
pub use postgres_store::TestDatabase;
pub use sled_store::{SledStore, DEFAULT_CACHE_BYTES};
pub use store::Store;
pub use types::{
    DeadLetter, DocId, DocMeta, HistoryEntry, HistoryPoint, OutboxEvent, Revocation, StoredDoc,
};
