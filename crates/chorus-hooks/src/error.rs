//! [`HooksError`], the errors of this crate.

use chorus_store::StoreError;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum HooksError {
    /// The outbox could not be written.
    #[error("webhook outbox: {0}")]
    Store(#[from] StoreError),
    /// The event cannot be sent as given (its `data` is not an object, uses a reserved
    /// key, or the app or doc id is empty).
    #[error("invalid webhook event: {0}")]
    InvalidEvent(String),
    /// A [`HooksConfig`](crate::HooksConfig) value is out of range.
    #[error("invalid webhook configuration: {0}")]
    InvalidConfig(String),
    /// The HTTP client could not be built (TLS initialisation).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}
