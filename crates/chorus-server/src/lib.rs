//! # chorus-server — sockets, tasks and routes around the IO-free core
//!
//! Owns everything that touches the network or the runtime:
//! - [`config`]: the one typed configuration (TOML file + `CHORUS_*` env + flags);
//! - [`registry`]: one actor task per live document, each the single owner of its
//!   [`chorus_core::Room`] and its persistence; connections talk to it over a
//!   bounded channel;
//! - [`persistence`]: the group-commit writer thread in front of the store;
//! - [`api`]: the host REST API (draft reads, listing);
//! - [`connection`]: one task per websocket (authenticate, decode, forward, write);
//! - [`close`]: the single place where errors become websocket close codes;
//! - [`metrics`] and [`ops`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`release`]: handing freed heap back to the OS after documents unload;
//! - [`demo`]: `/demo` and `/demo/token`, routed only with `--demo`;
//! - [`serve`]: binding, routing, and graceful shutdown in layers (stop accepting →
//!   close every socket with 1012 → wait for connection tasks, with a deadline).
//!
//! The flow of an edit: socket frame → [`connection`] (size check, decode) →
//! document actor ([`registry`]) → `Room::receive` (apply, encode once) → every other
//! member's bounded outbound queue → its connection task → socket; and in
//! parallel actor → [`persistence`] (one fsync for the group) → "saved up to n"
//! back to the sender.
//!
//! Must not contain CRDT rules or token rules: those live in `chorus-core` and
//! `chorus-auth`, so they can be tested without a runtime.

pub mod api;
pub mod close;
pub mod config;
pub mod connection;
pub mod demo;
pub mod inbox;
pub mod metrics;
pub mod ops;
pub mod outbox;
pub mod persistence;
pub mod registry;
pub mod release;
mod serve;

pub use config::{AppConfig, Config, LogFormat};
pub use serve::{build_router, host_api_routes, serve, AppState, Server, StartError};
