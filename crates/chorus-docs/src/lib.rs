//! # chorus-docs — the document layer
//!
//! Every live document of the process has one actor task, the single owner of its
//! [`chorus_core::Room`] and of that document's persistence. Whoever wants something
//! of a document (a websocket connection, a host API call) sends a [`DocCommand`] to
//! its actor through the [`Documents`] registry and, where it needs one, waits for
//! the answer on a oneshot channel.
//!
//! ## Layout
//!
//! | module | owns |
//! |---|---|
//! | [`command`](crate::DocCommand) | the commands an actor takes and the answers it gives (`Draft`, `HostChange`, …) |
//! | `peer` | the connection's side: [`QueuePeer`] (a member's bounded outbound queue) and [`ConnControl`] (how an actor closes a connection, with a [`Disconnect`] reason) |
//! | `registry` | [`Documents`]: the map of live actors, starting one exactly once, the sweeper that keeps memory bounded, shutdown |
//! | `actor` | one document's task: the load phase (`actor/load.rs`), the serve loop, persistence bookkeeping (`actor/persist.rs`), host operations (`actor/host.rs`), webhook events (`actor/events.rs`), sessions and the exclusive hold (`actor/sessions.rs`) |
//! | `plan` | "what to write next" (append, snapshot, flush, retry after a failure) as a pure state machine |
//! | `writer` | the group-commit writer thread in front of the store (one fsync per group); it also puts webhook events in the outbox |
//! | `prepare` | host operations prepared on the blocking pool: [`Documents::external_change`] (clean, parse, fit, diff) and [`Documents::publish`] (clean) |
//! | `bases` | drafts hosts read recently, kept as bases of three-way external changes |
//! | `inbox` / `outbox` | the bounded queues into an actor and out to a connection |
//! | `release` | handing freed heap back to the OS after documents unload |
//! | `cluster` | cluster mode: leases with fencing, the proxy's and the owner's sides of forwarding (`actor/proxy.rs`, `actor/remote.rs`), the per-node link that sends each frame once per node, resync on bus losses, host calls carried to the owner |
//! | [`DocMetrics`] | what this layer reports; the server renders it |
//! | [`DocError`] | why a document could not be read or written, typed down to the store's I/O kind |
//!
//! ## What it must not touch
//!
//! No HTTP, no websockets, no axum, no close codes and no tokens: a connection is a
//! [`QueuePeer`] and a [`ConnControl`]; the server maps [`Disconnect`] to a close code
//! and [`DocError`] / [`HostError`] to an HTTP status, each in one place. No CRDT
//! rules either: those are `chorus-core`'s.
//!
//! ## No blocking on the runtime's threads
//!
//! Store reads, room building and host HTML work (cleaning, parsing, diffing) run on
//! the blocking pool, store writes and webhook enqueueing on the writer thread; the
//! actor only decides and applies results.

mod actor;
mod bases;
mod cluster;
mod command;
mod error;
mod inbox;
mod metrics;
mod outbox;
mod peer;
mod plan;
mod prepare;
mod registry;
mod release;
mod writer;

pub use actor::etag_of;
pub use cluster::{
    AppStateHandler, ClusterCommand, ClusterSetup, ClusterStats, HostHandler, Route,
};
pub use command::{
    BaseState, ChangeOutcome, DocCommand, Draft, DraftContent, DraftFormat, HostChange,
    PreparedChange, PublishDraft, Published, SessionInfo,
};
pub use error::{DocError, HostError};
pub use metrics::{DocMetrics, NoMetrics};
pub use outbox::{outbox, OutboxReceiver, PushError};
pub use peer::{ConnControl, Disconnect, QueuePeer};
pub use registry::{AppRules, DocHandle, DocKey, DocPolicy, Documents};
pub use writer::Writer;
