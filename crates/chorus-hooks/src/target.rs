//! Where an app's events go: [`HookTarget`] (callback URL and signing secret) and
//! the [`Targets`] lookup the delivery loop asks before every attempt.

use std::fmt;

/// Where and how to deliver an app's events.
#[derive(Clone, PartialEq, Eq)]
pub struct HookTarget {
    /// The app's `callback_url` (`http` or `https`).
    pub callback_url: String,
    /// The signing secret (the first of the app's secrets). An empty secret makes
    /// every attempt fail (and be retried) until the app gets one.
    pub secret: Vec<u8>,
}

impl fmt::Debug for HookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the secret nor the URL (it may carry credentials).
        f.debug_struct("HookTarget").finish_non_exhaustive()
    }
}

/// Lookup of an app's target, asked before every attempt (apps can be disabled or
/// change their URL or secret at runtime). Called on the delivery loop: keep it quick
/// and non-blocking. Closures `Fn(&str) -> Option<HookTarget>` implement it.
pub trait Targets: Send + Sync + 'static {
    /// `None` if the app has no callback URL (any more) or is disabled: its pending
    /// event is dropped with a `warn!`.
    fn target(&self, app: &str) -> Option<HookTarget>;
}

impl<F> Targets for F
where
    F: Fn(&str) -> Option<HookTarget> + Send + Sync + 'static,
{
    fn target(&self, app: &str) -> Option<HookTarget> {
        self(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_debug_hides_secret_and_url() {
        let target = HookTarget {
            callback_url: "https://user:pw@host/hook".into(),
            secret: b"topsecret".to_vec(),
        };
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("pw@"),
            "{shown}"
        );
    }
}
