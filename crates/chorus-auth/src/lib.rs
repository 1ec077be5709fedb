//! Token verification and minting for Chorus.
//!
//! This crate owns:
//! - the JWT claim types: [`SessionClaims`] (browser → websocket) and
//!   [`HostClaims`] (host application → REST API);
//! - the app registry ([`AppRegistry`] of [`App`]s, each with one or more
//!   [`Secret`]s for rotation and an enabled flag that can be flipped at runtime);
//! - verification ([`AppRegistry::verify_session`], [`AppRegistry::verify_host`])
//!   and minting ([`mint_session`], [`mint_host`]) of HS256 tokens;
//! - the [`AuthError`] taxonomy, including [`AuthError::is_forbidden`] which tells
//!   the caller whether a refusal is "who are you?" (401) or "not allowed" (403).
//!
//! It must not touch: any IO (files, network, environment, the system clock —
//! every verify function takes `now` in unix seconds), logging (and in particular
//! never logs or formats secrets or tokens), HTTP, websockets or close codes. The
//! server maps [`AuthError`] to close codes / HTTP statuses in one place.
//!
//! Algorithms are pinned to HS256: the JOSE header is inspected by this crate
//! before anything else, and `alg: none`, HS384, HS512, RS256, … are refused with
//! [`AuthError::AlgorithmNotAllowed`]. `exp` and `nbf` are checked here against
//! the injected clock (jsonwebtoken's own time validation is not used).

mod claims;
mod error;
mod registry;
mod secret;
mod token;

#[cfg(test)]
mod tests;

pub use claims::{HostClaims, Mode, SessionClaims, HOST_SCOPE};
pub use error::AuthError;
pub use registry::{App, AppRegistry};
pub use secret::Secret;
pub use token::{mint_host, mint_session, MAX_TOKEN_LEN};

/// Default clock-skew allowance, in seconds, applied to `exp` and `nbf` checks.
///
/// Use [`AppRegistry::with_leeway`] to change it.
pub const DEFAULT_LEEWAY_SECS: u64 = 0;
