//! # chorus-server — sockets, routes and configuration around the document layer
//!
//! Owns everything that touches the network:
//! - [`config`]: the one typed configuration (TOML file + `CHORUS_*` env + flags);
//! - `state`: [`AppState`], what every handler shares;
//! - `session`: one task per connection, whatever carries it (join, decode, rate
//!   limits, forward to the document's actor, write its frames out in batches,
//!   keepalive, close), over a `Transport` it is generic over;
//! - `websocket` and `framing`: the websocket transport, its plain (y-websocket)
//!   and Hocuspocus framings, and its lingering close;
//! - `join`: what every join goes through first (token, connection caps,
//!   admission control);
//! - `connection`: `/v1/ws/{app}/{content}` (token from the query or a
//!   subprotocol, then the session over a websocket);
//! - `hocuspocus`: `/v1/hocuspocus/{app}` for `@hocuspocus/provider` (its auth
//!   message, then the session with the document name on every frame);
//! - `http_transport`: `/v1/http/{app}/{content}`, the same session for networks
//!   that block websockets (server-sent events down, POSTs up, resumable);
//! - `direct`: every accepted socket shared (under one lock, never waiting)
//!   between its connection and, for a websocket, its document's actor, which
//!   writes the frames it fans out straight into it, one `writev` per member per
//!   turn;
//! - `upgrade`: the websocket handshake and the drain behind the lingering close
//!   (the connection owns the raw stream, so a close frame is never lost to a TCP
//!   reset);
//! - `api`: the host REST API (drafts, external changes, publish, history and
//!   restore, sessions, the admin switch);
//! - `close`: the single place where errors become websocket close codes;
//! - `limits`: per-connection rate limits, connection caps and the host API's
//!   request rate (bookkeeping only; the handlers apply the verdicts);
//! - `metrics` and `ops`: `/healthz`, `/readyz`, `/metrics`;
//! - `ids`: what app and content ids may be;
//! - `demo`: `/demo` and `/demo/token`, routed only with `--demo`;
//! - `serve`: binding, routing, and graceful shutdown in layers (stop accepting →
//!   close every socket with 1012 → wait for connection tasks, with a deadline →
//!   every document writes what it holds).
//!
//! The documents themselves (one actor per live document, persistence, webhooks'
//! timing) are `chorus-docs`'; this crate depends on it one way.
//!
//! The flow of an edit: socket frame → `connection` (size check, decode) →
//! document actor (`chorus-docs`) → `Room::receive` (apply, encode once) → every
//! other member's bounded outbound queue → its connection task → socket; and in
//! parallel actor → group-commit writer (one fsync for the group) → "saved up to n"
//! back to the sender.
//!
//! Must not contain CRDT rules, token rules or document policy: those live in
//! `chorus-core`, `chorus-auth` and `chorus-docs`, so they can be tested without a
//! network.

mod api;
mod close;
pub mod config;
mod connection;
mod demo;
mod direct;
mod forward;
mod framing;
mod hocuspocus;
mod http_transport;
mod ids;
mod join;
mod limits;
mod metrics;
mod ops;
mod serve;
mod session;
mod state;
mod upgrade;
mod websocket;

pub use config::{AppConfig, Config, LogFormat};
pub use serve::{build_router, rest_routes, serve, Server, StartError};
pub use state::AppState;
