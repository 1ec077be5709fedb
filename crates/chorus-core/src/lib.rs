//! # chorus-core — one shared document and the people editing it, without IO
//!
//! Owns the state of a live document: the yrs [`yrs::Doc`] with its fixed roots,
//! the awareness (presence) states, and the per-connection sync rules of the
//! y-protocols handshake. A [`Room`] takes decoded [`chorus_protocol::Message`]s in
//! and pushes encoded frames out through the [`Peer`] trait; it never touches a
//! socket, a clock or a file, so every rule here is unit-tested with plain values.
//!
//! Rules enforced here (see `proto/PROTOCOL.md`):
//! - updates are applied once, and what the document *emits* is broadcast (encoded
//!   once, the same bytes shared by every recipient), never the client's raw bytes;
//! - view-mode sessions never change the document (an empty step 2 is fine, the
//!   first real write earns a warning, the next one closes the connection);
//! - awareness `user` fields are stamped from the verified session, and a
//!   connection's awareness states are removed (and the removal broadcast) when
//!   it leaves;
//! - undecodable or panicking input is an error for that connection only;
//! - content outside the whitelist policy is neutralised inside the transaction that
//!   brings it, before anything is relayed or stored ([`guard`]).
//!
//! Must not touch: sockets, tasks, channels, storage, configuration files, tokens.
//! Authentication happens before a connection reaches a room; persistence hooks
//! arrive with the store.

mod awareness;
mod error;
pub mod guard;
pub mod import;
mod presence;
pub mod render;
mod room;
mod roots;
mod session;

pub use error::{ExternalError, LoadError, RoomError};
pub use guard::{
    content_fingerprint, Neutralised, UnreadableUpdate, Verdict, Violation, Whitelist,
    WhitelistMode,
};
pub use room::{
    checked_state, external_edit, is_empty_state_vector, sync_from_stored, ConnId, ExternalEdit,
    ExternalFork, Peer, Room, RoomLimits, SpentFork,
};
pub use roots::{ROOT_BODY, ROOT_TITLE};
pub use session::{Credential, Session};
