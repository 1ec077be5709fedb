//! [`ConfigError`]: why a configuration was refused, for loading, validation and the
//! conversions that read files.

use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    /// The `store` key names no store this build knows.
    #[error("store {0:?} is neither \"sled\" nor a postgres://USER@HOST:PORT/DB URL")]
    UnknownStore(String),
    /// A value could not be parsed.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}
