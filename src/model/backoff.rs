//! The one backoff rule: a delay that doubles per step, from `base`, never above `max`. The
//! API client's retries and the daemon's per-project backoff both use it.

use std::time::Duration;

/// `base × 2^step`, at most `max` (the doubling stops at 2^16).
pub(crate) fn exponential(base: Duration, step: u32, max: Duration) -> Duration {
    base.saturating_mul(1 << step.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(exponential(s(30), 0, s(3600)), s(30));
        assert_eq!(exponential(s(30), 3, s(3600)), s(240));
        assert_eq!(exponential(s(30), 10, s(3600)), s(3600));
        assert_eq!(exponential(s(30), u32::MAX, s(3600)), s(3600));
    }
}
