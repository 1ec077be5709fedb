//! Exponential backoff with full jitter.

use std::time::Duration;

use rand::Rng as _;

/// The largest delay allowed before attempt `failures + 1`: `base * 2^(failures - 1)`,
/// at most `cap`.
pub(crate) fn ceiling(base: Duration, cap: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    base.checked_mul(1u32 << doublings).unwrap_or(cap).min(cap)
}

/// Full jitter: uniformly random in `[0, ceiling]`, so that many events failing at
/// once (a host that went down) do not come back in lockstep.
pub(crate) fn delay(base: Duration, cap: Duration, failures: u32) -> Duration {
    let max = u64::try_from(ceiling(base, cap, failures).as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::rng().random_range(0..=max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_from_base_up_to_cap() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(300));
        let secs: Vec<u64> = (1..=11).map(|n| ceiling(base, cap, n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(ceiling(base, cap, u32::MAX), cap);
        assert_eq!(ceiling(base, cap, 0), base);
    }

    #[test]
    fn delay_stays_within_the_ceiling() {
        let (base, cap) = (Duration::from_millis(10), Duration::from_millis(70));
        for failures in 1..20 {
            let d = delay(base, cap, failures);
            assert!(d <= ceiling(base, cap, failures), "{d:?}");
        }
    }
}
