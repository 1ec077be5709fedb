//! [`Room`]: one live document and its members.
//!
//! Where it lives: the member types ([`ConnId`], [`Peer`], [`RoomLimits`]) in
//! `members.rs`; the room and its protocol state machine in `sync.rs`; what it
//! hands to and takes from the store in `persistence.rs`; host changes computed on
//! a fork and merged in `external.rs`; the checks on a client's bytes before yrs
//! sees them in `checks.rs`. This file only declares and re-exports.

mod checks;
mod external;
mod members;
mod persistence;
mod sync;

pub use checks::is_empty_state_vector;
pub use external::{external_edit, ExternalEdit, ExternalFork, SpentFork};
pub use members::{ConnId, Peer, RoomLimits};
pub use persistence::{checked_state, sync_from_stored};
pub use sync::Room;

#[cfg(test)]
mod tests;
