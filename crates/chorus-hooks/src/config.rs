//! [`HooksConfig`]: the tuning of webhook delivery (backoff, age limit, timeouts,
//! concurrency, memory), its production defaults and the check of its ranges.

use std::time::Duration;

use crate::error::HooksError;

/// Tuning of [`Hooks`](crate::Hooks). [`Default`] gives the production values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HooksConfig {
    /// Ceiling of the first retry delay; each failure doubles it (default 1 s).
    pub backoff_base: Duration,
    /// Largest retry delay (default 5 min).
    pub backoff_cap: Duration,
    /// An event still undelivered this long after it was enqueued is dropped after
    /// its next failed attempt (default 24 h).
    pub max_age: Duration,
    /// Time limit of one attempt, from connecting to the last byte of the answer
    /// (default 10 s).
    pub request_timeout: Duration,
    /// Requests in flight at once, across documents (default 8).
    pub concurrency: usize,
    /// Pending events held in memory by the delivery loop, and the most read from the
    /// outbox at once (default 50 000).
    pub max_loaded: usize,
    /// The outbox is shared with other processes that enqueue into it (cluster mode:
    /// one node delivers for all): every event is read from the outbox, which shows
    /// only committed events, at least this often. `None` (default): this process is
    /// the outbox's only writer, and its events reach the loop in memory.
    pub shared_outbox_poll: Option<Duration>,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
            request_timeout: Duration::from_secs(10),
            concurrency: 8,
            max_loaded: 50_000,
            shared_outbox_poll: None,
        }
    }
}

impl HooksConfig {
    pub(crate) fn validate(&self) -> Result<(), HooksError> {
        let problem = if self.backoff_base.is_zero() {
            "backoff_base must be positive"
        } else if self.backoff_cap < self.backoff_base {
            "backoff_cap must be at least backoff_base"
        } else if self.request_timeout.is_zero() {
            "request_timeout must be positive"
        } else if self.concurrency == 0 {
            "concurrency must be at least 1"
        } else if self.max_loaded < 2 {
            "max_loaded must be at least 2"
        } else {
            return Ok(());
        };
        Err(HooksError::InvalidConfig(problem.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_bad_values_are_refused() {
        assert!(HooksConfig::default().validate().is_ok());
        for bad in [
            HooksConfig {
                concurrency: 0,
                ..HooksConfig::default()
            },
            HooksConfig {
                backoff_base: Duration::ZERO,
                ..HooksConfig::default()
            },
            HooksConfig {
                backoff_cap: Duration::from_millis(1),
                ..HooksConfig::default()
            },
            HooksConfig {
                max_loaded: 1,
                ..HooksConfig::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(HooksError::InvalidConfig(_))));
        }
    }
}
