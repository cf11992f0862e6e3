//! The sandbox's rate limit (`--rate-limit RPS`, `--rate-burst N`): a token bucket over every
//! API request, as API gateways commonly enforce one (inferred: Platform.sh documents no limit;
//! issue 17 measured bbsync against such a bucket). A request over it is answered 429 with
//! `Retry-After` in whole seconds, at least 1 (RFC 9110 §10.2.3 `delay-seconds`; RFC 6585 §4),
//! and is not handled.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::state::{InMemoryState, NotKeyed};

use crate::live::TokioClock;

type Bucket = governor::RateLimiter<
    NotKeyed,
    InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

/// A token bucket of `rate` per second holding `burst` (governor's GCRA, which is one).
pub(crate) struct Limiter {
    bucket: Bucket,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

impl Limiter {
    /// A full bucket; `None` for a rate that limits nothing.
    pub(crate) fn new(rate: f64, burst: u32) -> Option<Self> {
        if !(rate.is_finite() && rate > 0.0) {
            return None;
        }
        let quota = governor::Quota::with_period(Duration::from_secs_f64(1.0 / rate))?
            .allow_burst(NonZeroU32::new(burst.max(1))?);
        Some(Self {
            bucket: Bucket::direct_with_clock(quota, TokioClock),
        })
    }

    /// Takes a token: `None` if there was one, else the `Retry-After` to answer.
    pub(crate) fn take(&self) -> Option<u64> {
        match self.bucket.check() {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(TokioClock.now());
                Some(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }
}
