//! The one configuration struct: defaults, then the TOML file, then `CHORUS_*`
//! environment variables, then command-line flags (each layer overrides the last).
//!
//! By concern: `schema` (the keys, their types and defaults), `env` (loading the
//! layers; which environment variables are read), `validate`, `secrets` (read from
//! files, judged for length), `redact` (secrets kept out of logs) and `convert` (the settings as other crates' types).

mod convert;
mod env;
mod error;
mod redact;
mod schema;
mod secrets;
mod validate;

pub use convert::StoreLocation;
pub use error::ConfigError;
pub use redact::redact_url_password;
pub use schema::{
    AppConfig, AppLimits, Config, HttpTransportConfig, Limits, LogFormat, DEFAULT_BIND,
};
pub use secrets::MIN_SECRET_BYTES;
