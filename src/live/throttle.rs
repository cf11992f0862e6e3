//! The process's one throttle: every request bbsync makes, to Platform.sh (API and auth) and to
//! Bitbucket alike, asks it for its turn, and tells it how the request ended (issue 17).
//!
//! How it works:
//!
//! * Each host (`host:port`) has its own [`HostPace`] ([`super::pace`]): slow start, then, once
//!   a 429 asked for a pause of a second or more, a rate read from what the server accepted.
//!   A 429 pauses every request to that host until its `Retry-After` (RFC 9110 §10.2.3), not
//!   just the one that got it; requests to other hosts go on. upsun/cli reads `Retry-After` the
//!   same way, as seconds (`internal/init/command.go`, on a 429 of its AI route); Platform.sh
//!   documents no limit for the routes bbsync uses (platformsh-api.md §3.3), so that the
//!   gateway sends 429 with `Retry-After` for them too is inferred.
//! * `--max-rps` is a hard cap per host above the adaptive rate: a [`governor`] limiter
//!   (GCRA, no burst) on tokio's clock.
//! * A 429 is not a failure and does not use an attempt: a request waits for 429s at most
//!   [`ThrottleConfig::max_wait`] in total (`--max-throttle-wait`, 2 minutes by default). When
//!   the API asks for more, it fails at once, without waiting for nothing: the project's state is
//!   then unknown, never absent ([`ApiError::Throttled`]).
//! * A host whose connection failed after its retries is remembered as unreachable for
//!   [`super::pace::DOWN_FOR`]: later requests to it fail at once, as unknown, instead of
//!   retrying again each (an unreachable Bitbucket Server named by many projects).
//!
//! * A limit measured is kept per host in the rate cache ([`super::rate_cache`], when
//!   [`ThrottleConfig::cache`] names one), so the next process paces just under it from the
//!   start; one measured lower by a later process replaces it.
//!
//! Everything waits with `tokio::time`, so tests run it on paused time.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::state::{InMemoryState, NotKeyed};
use tokio::sync::Notify;
use tokio::time::Instant;
use url::Url;

use super::error::{ApiError, Call};
use super::pace::{Ending, HostPace, Measured, Turn};
use super::rate_cache::RateCache;

/// How the throttle paces.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Requests per second to one host at most (`--max-rps`), if capped.
    pub max_rps: Option<f64>,
    /// The longest one request waits for 429s, in total (`--max-throttle-wait`).
    pub max_wait: Duration,
    /// The directory of the rate cache ([`super::rate_cache`]), if limits are remembered
    /// across processes (`None`: they are not).
    pub cache: Option<PathBuf>,
}

/// The default of [`ThrottleConfig::max_wait`]: 2 minutes. Inferred: long enough for a gateway's
/// per-minute window to reset twice, short enough for a CI job.
pub const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(120);

/// How long a request waits after a 429 without `Retry-After`: 1 s (inferred; RFC 6585 §4 lets
/// the server leave it out).
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_rps: None,
            max_wait: MAX_THROTTLE_WAIT,
            cache: None,
        }
    }
}

/// The one throttle of a process. Cheap to clone; clones share every host's state.
#[derive(Clone)]
pub struct Throttle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ThrottleConfig,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// Time some host was paused, in total, in microseconds.
    paused_micros: AtomicU64,
    /// Where measured limits are remembered, if anywhere.
    cache: Option<RateCache>,
    /// The limits the cache held when the process started, by host.
    known: BTreeMap<String, Measured>,
}

type Cap = governor::RateLimiter<
    NotKeyed,
    InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

struct Host {
    name: String,
    pace: Mutex<HostPace>,
    /// Woken when a request ends (slow start's window) and when a pause begins.
    changed: Notify,
    cap: Option<Cap>,
}

/// governor's clock on tokio's time, so that paused test time paces too.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        Instant::now().into_std()
    }
}

/// What one request has waited for 429s so far.
#[derive(Debug, Default)]
pub(crate) struct Waited {
    total: Duration,
}

/// Why a request may not go.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The host asks for a longer wait than the request has left: `asked` more, after
    /// `waited`.
    TooLong {
        /// The wait asked for.
        asked: Duration,
        /// What the request waited already.
        waited: Duration,
    },
    /// The host was found unreachable earlier in this run.
    Down,
}

impl Refusal {
    /// As an error of `call`.
    pub(crate) fn into_error(self, call: Call, limit: Duration) -> ApiError {
        match self {
            Refusal::TooLong { asked, waited } => ApiError::Throttled {
                call,
                asked,
                waited,
                limit,
            },
            Refusal::Down => ApiError::Transport {
                call,
                reason: "could not connect (the host was found unreachable earlier in this run)"
                    .to_owned(),
                unclear: false,
                source: None,
            },
        }
    }
}

/// A request's turn: tell how it ended with [`Ticket::ended`]; dropped unended, it counts as
/// not answered.
pub(crate) struct Ticket {
    host: Arc<Host>,
    sent: Instant,
    open: bool,
}

/// What to do after a 429.
#[derive(Debug)]
pub(crate) enum AfterThrottle {
    /// Ask for a turn again (it waits for the pause).
    Retry,
    /// Give up: the wait asked is past what the request has left.
    GiveUp(Refusal),
}

impl Throttle {
    /// A throttle knowing no host yet.
    pub fn new(config: ThrottleConfig) -> Self {
        let cache = config.cache.clone().map(RateCache::new);
        let known = cache.as_ref().map(RateCache::load).unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                config,
                hosts: Mutex::new(HashMap::new()),
                paused_micros: AtomicU64::new(0),
                cache,
                known,
            }),
        }
    }

    /// The longest one request waits for 429s ([`ThrottleConfig::max_wait`]).
    pub(crate) fn max_wait(&self) -> Duration {
        self.inner.config.max_wait
    }

    /// Time some host was paused so far, in seconds (a pause of two hosts at once counts twice).
    pub fn paused_seconds(&self) -> f64 {
        self.inner.paused_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// The longest pause in force now, if any host is paused: for progress lines.
    pub fn pause_left(&self) -> Option<Duration> {
        let now = Instant::now();
        let hosts = self.inner.hosts.lock().expect("throttle lock");
        hosts
            .values()
            .filter_map(|host| host.pace.lock().expect("pace lock").paused(now))
            .max()
            .map(|until| until - now)
    }

    /// The rate a host is paced at now, if it is (for tests and logs).
    pub fn rate(&self, url: &Url) -> Option<f64> {
        let host = self.host(url);
        let pace = host.pace.lock().expect("pace lock");
        pace.rate(Instant::now())
    }

    fn host(&self, url: &Url) -> Arc<Host> {
        let name = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self.inner.hosts.lock().expect("throttle lock");
        Arc::clone(hosts.entry(name.clone()).or_insert_with(|| {
            let cap = self
                .inner
                .config
                .max_rps
                .filter(|rps| *rps > 0.0)
                .and_then(|rps| governor::Quota::with_period(Duration::from_secs_f64(1.0 / rps)))
                .map(|quota| {
                    Cap::direct_with_clock(quota.allow_burst(NonZeroU32::MIN), TokioClock)
                });
            let pace = match self.inner.known.get(&name) {
                Some(known) => {
                    tracing::debug!(host = %name, rate = known.rate, "pacing by the limit an earlier run measured");
                    HostPace::known(Instant::now(), *known)
                }
                None => HostPace::new(Instant::now()),
            };
            Arc::new(Host {
                name,
                pace: Mutex::new(pace),
                changed: Notify::new(),
                cap,
            })
        }))
    }

    /// Waits for a request's turn to go to `url`'s host. Waiting out a pause counts in
    /// `waited`; a pause longer than what is left of [`ThrottleConfig::max_wait`] is refused at
    /// once, as is a host found unreachable.
    pub(crate) async fn turn(&self, url: &Url, waited: &mut Waited) -> Result<Ticket, Refusal> {
        let host = self.host(url);
        loop {
            let (turn, changed) = {
                let mut pace = host.pace.lock().expect("pace lock");
                let now = Instant::now();
                if pace.is_down(now) {
                    return Err(Refusal::Down);
                }
                // Registered before the lock is let go, so no wake-up is lost.
                let changed = host.changed.notified();
                (pace.turn(now), changed)
            };
            match turn {
                Turn::Now => break,
                Turn::Reserved(at, generation) => {
                    tokio::time::sleep_until(at).await;
                    if host
                        .pace
                        .lock()
                        .expect("pace lock")
                        .still_clear(Instant::now(), generation)
                    {
                        break;
                    }
                }
                Turn::PausedUntil(until) => {
                    let now = Instant::now();
                    let asked = until - now;
                    if waited.total + asked > self.inner.config.max_wait {
                        return Err(Refusal::TooLong {
                            asked,
                            waited: waited.total,
                        });
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = changed => {}
                    }
                    waited.total += Instant::now() - now;
                }
                Turn::Full => changed.await,
            }
        }
        if let Some(cap) = &host.cap {
            while let Err(not_until) = cap.check() {
                let wait = not_until.wait_time_from(TokioClock.now());
                tokio::time::sleep(wait).await;
            }
        }
        Ok(Ticket {
            host,
            sent: Instant::now(),
            open: true,
        })
    }

    /// Keeps a limit just measured in the rate cache, if there is one. A cache that cannot be
    /// written only costs the next process its warm start: logged, not an error.
    fn remember(&self, host: &str, measured: Measured) {
        tracing::info!(
            host = %host,
            rate = format_args!("{:.1}", measured.rate),
            burst = format_args!("{:.0}", measured.burst),
            "measured the host's rate limit"
        );
        if let Some(cache) = &self.inner.cache
            && let Err(error) = cache.record(host, measured)
        {
            tracing::warn!(%error, "could not write the rate cache");
        }
    }

    /// Marks `url`'s host unreachable: its connection failed after the retries.
    pub(crate) fn mark_down(&self, url: &Url) {
        let host = self.host(url);
        host.pace
            .lock()
            .expect("pace lock")
            .mark_down(Instant::now());
        tracing::info!(host = %host.name, "the host is unreachable; later requests to it in this run fail at once");
        host.changed.notify_waiters();
    }

    /// A 429 for `ticket`'s request, asking `retry_after` (or [`DEFAULT_RETRY_AFTER`]): the
    /// host is paused, and the request retries unless that wait is past what it has left.
    pub(crate) fn throttled(
        &self,
        mut ticket: Ticket,
        retry_after: Option<Duration>,
        waited: &Waited,
    ) -> AfterThrottle {
        let asked = retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
        ticket.open = false;
        let (began, before, measured) = {
            let mut pace = ticket.host.pace.lock().expect("pace lock");
            let before = pace.paused_total();
            let (_, measurements) = pace.measured();
            let began = pace.ended(ticket.sent, Instant::now(), Ending::Throttled(asked));
            let (measured, after) = pace.measured();
            (
                began,
                pace.paused_total() - before,
                measured.filter(|_| after != measurements),
            )
        };
        if let Some(measured) = measured {
            self.remember(&ticket.host.name, measured);
        }
        ticket.host.changed.notify_waiters();
        self.inner.paused_micros.fetch_add(
            u64::try_from(before.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if began {
            tracing::info!(
                host = %ticket.host.name,
                wait_ms = u64::try_from(asked.as_millis()).unwrap_or(u64::MAX),
                "the API asked us to slow down: every request to this host waits"
            );
        } else {
            tracing::debug!(host = %ticket.host.name, "429 during a pause");
        }
        if waited.total + asked > self.inner.config.max_wait {
            AfterThrottle::GiveUp(Refusal::TooLong {
                asked,
                waited: waited.total,
            })
        } else {
            AfterThrottle::Retry
        }
    }
}

impl Ticket {
    /// The request got an answer other than 429 (`true`), or none (`false`).
    pub(crate) fn ended(mut self, answered: bool) {
        self.finish(if answered {
            Ending::Answered
        } else {
            Ending::NoAnswer
        });
    }

    fn finish(&mut self, ending: Ending) {
        if !self.open {
            return;
        }
        self.open = false;
        self.host
            .pace
            .lock()
            .expect("pace lock")
            .ended(self.sent, Instant::now(), ending);
        self.host.changed.notify_waiters();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.finish(Ending::NoAnswer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_on_one_request_delays_the_others_on_its_host_only() {
        let throttle = Throttle::new(ThrottleConfig::default());
        let (api, other) = (url("https://api.example/a"), url("https://bb.example/b"));
        let mut waited = Waited::default();
        let first = throttle.turn(&api, &mut waited).await.unwrap();
        let started = Instant::now();
        assert!(matches!(
            throttle.throttled(first, Some(Duration::from_secs(3)), &waited),
            AfterThrottle::Retry
        ));
        // Another request to the same host, which never got a 429 itself, waits the 3 s.
        let mut others = Waited::default();
        throttle.turn(&api, &mut others).await.unwrap().ended(true);
        assert_eq!(Instant::now() - started, Duration::from_secs(3));
        assert_eq!(others.total, Duration::from_secs(3));
        // Another host does not.
        let before = Instant::now();
        throttle
            .turn(&other, &mut Waited::default())
            .await
            .unwrap()
            .ended(true);
        assert_eq!(Instant::now(), before);
        assert!((throttle.paused_seconds() - 3.0).abs() < 1e-6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_retry_after_is_honoured_up_to_the_bound_then_refused() {
        let throttle = Throttle::new(ThrottleConfig {
            max_rps: None,
            max_wait: Duration::from_secs(120),
            cache: None,
        });
        let api = url("https://api.example/a");
        let mut waited = Waited::default();
        let started = Instant::now();
        // 100 s is within the bound: waited.
        let ticket = throttle.turn(&api, &mut waited).await.unwrap();
        assert!(matches!(
            throttle.throttled(ticket, Some(Duration::from_secs(100)), &waited),
            AfterThrottle::Retry
        ));
        let ticket = throttle.turn(&api, &mut waited).await.unwrap();
        assert_eq!(Instant::now() - started, Duration::from_secs(100));
        // 30 s more would pass 120 s in total: refused at once, nothing waited.
        let after = throttle.throttled(ticket, Some(Duration::from_secs(30)), &waited);
        assert!(matches!(
            after,
            AfterThrottle::GiveUp(Refusal::TooLong { waited, .. }) if waited == Duration::from_secs(100)
        ));
        // A request coming now is refused too: the pause is past its bound.
        let mut fresh = Waited {
            total: Duration::from_secs(100),
        };
        assert!(matches!(
            throttle.turn(&api, &mut fresh).await,
            Err(Refusal::TooLong { .. })
        ));
        assert_eq!(Instant::now() - started, Duration::from_secs(100));
    }

    #[tokio::test(start_paused = true)]
    async fn max_rps_caps_each_host() {
        let throttle = Throttle::new(ThrottleConfig {
            max_rps: Some(10.0),
            ..ThrottleConfig::default()
        });
        let api = url("https://api.example/a");
        let started = Instant::now();
        for _ in 0..21 {
            throttle
                .turn(&api, &mut Waited::default())
                .await
                .unwrap()
                .ended(true);
        }
        let took = Instant::now() - started;
        assert!(
            took >= Duration::from_millis(1990) && took <= Duration::from_millis(2010),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_found_unreachable_refuses_at_once() {
        let throttle = Throttle::new(ThrottleConfig::default());
        let down = url("https://bitbucket.example.com/rest");
        throttle.mark_down(&down);
        assert!(matches!(
            throttle.turn(&down, &mut Waited::default()).await,
            Err(Refusal::Down)
        ));
        assert!(
            throttle
                .turn(&url("https://api.example/"), &mut Waited::default())
                .await
                .is_ok()
        );
    }
}
