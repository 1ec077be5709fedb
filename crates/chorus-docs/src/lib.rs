//! # chorus-docs — the document layer
//!
//! Every live document of the process has one actor task, the single owner of its
//! [`chorus_core::Room`] and of that document's persistence. Whoever wants something
//! of a document (a websocket connection, a host API call) sends a [`DocCommand`] to
//! its actor through the [`Documents`] registry and, where it needs one, waits for
//! the answer on a oneshot channel.
//!
//! ## Layers
//!
//! Each module uses only modules of the layers above it in this table, never one
//! beside or below it (`scripts/module-cycles.py`, run in CI, refuses a circle):
//!
//! | layer | modules | own |
//! |---|---|---|
//! | words | `types` | [`DocKey`], [`Disconnect`] (why a connection is closed), [`Route`] |
//! | leaves | `error`, `metrics`, `plan`, `release` | [`DocError`] / [`HostError`]; [`DocMetrics`]; "what to write next" as a pure state machine; handing freed heap back to the OS |
//! | queues | `inbox`, `frames`, `direct` | the bounded queue into an actor, and the frame queue out to a connection ("outbox" is only the store's webhook table); [`DirectSink`], a connection whose socket the actor writes into itself |
//! | node links | `wire`, `link` | what nodes say to each other about documents (bus payloads); the owner's per-node link that sends each frame once per node |
//! | members | `peer` | [`QueuePeer`] (a member's bounded outbound queue, local or over a link, or frames staged for its [`DirectSink`]), `Sweep` (the members with staged frames, written at the end of the actor's turn) and [`ConnControl`] (how an actor closes a connection) |
//! | commands | `command` | [`DocCommand`] and its answers (`Draft`, `HostChange`, …), the cluster's commands to an actor |
//! | services | `bases`, `writer`, `nodes` | drafts hosts read (bases of three-way changes); the group-commit writer thread in front of the store, which also puts webhook events in the outbox table; what this node knows of the cluster (bus, leases, owners) |
//! | environment | `env` | what an actor is given: policy, limits and whitelists per app, the writer, metrics, bases, the cluster state, and an `Exit` to leave the map by. No map of actors |
//! | actor | `actor/` | one document's task: load, serve loop, persistence, host operations, webhook events, sessions and the exclusive hold, proxy and remote members in cluster mode; its state in `actor/state.rs` |
//! | registry | `registry` | [`Documents`]: the map of live actors, starting one exactly once, the sweeper, shutdown, handing a stopped actor's inbox to its successor. The actor never sees it |
//! | top | `host`, `cluster`, `webhooks` | the host API's prepared operations ([`Documents::external_change`], [`Documents::publish`]); cluster mode's tasks (bus events, lease renewal, host calls carried to the owner); webhook delivery (on one node, or on whichever node holds the `webhooks` lease) |
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

// Layers, lowest first; a module uses only those above it in this list.
mod actor;
mod bases;
mod cluster;
mod command;
mod direct;
mod env;
mod error;
mod frames;
mod host;
mod inbox;
mod link;
mod metrics;
mod nodes;
mod peer;
mod plan;
mod registry;
mod release;
mod retention;
mod types;
mod webhooks;
mod wire;
mod writer;

pub use actor::etag_of;
pub use command::{
    ActingUser, BaseState, ChangeOutcome, ClusterCommand, Deleted, DocCommand, Draft, DraftContent,
    DraftFormat, HostAction, HostChange, PreparedChange, PublishDraft, Published, Restoring,
    SessionInfo,
};
pub use direct::DirectSink;
pub use env::{AppRules, DocPolicy, DocSetup, OverMaxEditors, RetentionPolicy, SessionPolicy};
pub use error::{DocError, HostError};
pub use frames::{frame_queue, FrameReceiver, FrameSender, PushError};
pub use metrics::{DocMetrics, NoMetrics};
pub use nodes::{AppStateHandler, ClusterSetup, ClusterStats, HostHandler, SessionVerifier};
pub use peer::{ConnControl, QueuePeer};
pub use registry::{DocHandle, Documents};
pub use types::{Disconnect, DocKey, Route};
