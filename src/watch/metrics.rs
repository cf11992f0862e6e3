//! The daemon's Prometheus metrics (`GET /metrics`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    trigger: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    duration: Histogram,
    actions: Family<ActionLabels, Counter>,
    drifted: Gauge,
    blocked_projects: Gauge,
    contested_projects: Gauge,
    writer_conflicts: Counter,
    blocked_deletes: Counter,
    api_requests: Family<CodeLabels, Counter>,
    api_throttled: Counter<f64, AtomicU64>,
    last_success: Gauge<f64, AtomicU64>,
    manifest_valid: Gauge,
    file_events: Counter,
    git_fetches: Family<FetchLabels, Counter>,
    git_last_fetch: Gauge<f64, AtomicU64>,
    /// API responses already counted, by status, to add only what is new.
    api_seen: Mutex<BTreeMap<u16, u64>>,
    /// Throttled seconds already counted.
    throttled_seen: Mutex<f64>,
    /// `bbsync_webhook_deliveries_total{result}`: deliveries to `--webhook-listen`, by
    /// [`Metrics::webhook_delivery`]'s results.
    webhook_deliveries: Family<ResultLabels, Counter>,
    /// `bbsync_commit_statuses_total{result}`: Bitbucket commit statuses, `posted` or
    /// `failed`.
    commit_statuses: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bbsync");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Reconciliation runs, by what triggered them and how they ended",
            runs.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "run_duration_seconds",
            "Duration of reconciliation runs",
            duration.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Planned actions, by kind and outcome",
            actions.clone(),
        );
        let drifted = Gauge::default();
        registry.register(
            "drifted_projects",
            "Projects whose live state differed from the manifest at the last plan",
            drifted.clone(),
        );
        let blocked_projects = Gauge::default();
        registry.register(
            "blocked_projects",
            "Projects whose drift bbsync refuses to fix (protect, a guard), as of the last run",
            blocked_projects.clone(),
        );
        let contested_projects = Gauge::default();
        registry.register(
            "contested_projects",
            "Projects another writer keeps changing back, which bbsync no longer writes",
            contested_projects.clone(),
        );
        let writer_conflicts = Counter::default();
        registry.register(
            "writer_conflicts",
            "Times a project became contested: its writes undone by another writer, repeatedly",
            writer_conflicts.clone(),
        );
        let blocked_deletes = Counter::default();
        registry.register(
            "blocked_deletes",
            "Deletes and replaces blocked by protect or --max-deletes",
            blocked_deletes.clone(),
        );
        let api_requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Platform.sh API responses by HTTP status (0: no response)",
            api_requests.clone(),
        );
        let api_throttled = Counter::<f64, AtomicU64>::default();
        registry.register(
            "api_throttled_seconds",
            "Time API hosts were paused because they answered 429 (Retry-After), summed over hosts",
            api_throttled.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "When the last successful run ended (Unix time)",
            last_success.clone(),
        );
        let manifest_valid = Gauge::default();
        registry.register(
            "manifest_valid",
            "1 if the manifest on disk is valid, 0 if not",
            manifest_valid.clone(),
        );
        let file_events = Counter::default();
        registry.register(
            "file_events",
            "Manifest file events seen",
            file_events.clone(),
        );
        let git_fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "git_fetches",
            "Fetches of --git-url, by result (ok, failed)",
            git_fetches.clone(),
        );
        let git_last_fetch = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "git_last_fetch_success_timestamp_seconds",
            "When a fetch of --git-url last succeeded (Unix time)",
            git_last_fetch.clone(),
        );
        let webhook_deliveries = Family::<ResultLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Bitbucket webhook deliveries, by result: accepted, bad_signature, too_large, unreadable, ignored_event, ping",
            webhook_deliveries.clone(),
        );
        let commit_statuses = Family::<ResultLabels, Counter>::default();
        registry.register(
            "commit_statuses",
            "Bitbucket commit statuses sent, by result: posted, failed",
            commit_statuses.clone(),
        );
        Self {
            registry,
            runs,
            duration,
            actions,
            drifted,
            blocked_projects,
            contested_projects,
            writer_conflicts,
            blocked_deletes,
            api_requests,
            api_throttled,
            last_success,
            manifest_valid,
            file_events,
            git_fetches,
            git_last_fetch,
            api_seen: Mutex::new(BTreeMap::new()),
            throttled_seen: Mutex::new(0.0),
            webhook_deliveries,
            commit_statuses,
        }
    }
}

impl Metrics {
    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// A run ended.
    pub(crate) fn run(&self, triggers: &[&str], result: &str, seconds: f64) {
        for trigger in triggers {
            self.runs
                .get_or_create(&RunLabels {
                    trigger: (*trigger).to_owned(),
                    result: result.to_owned(),
                })
                .inc();
        }
        self.duration.observe(seconds);
    }

    /// An action ended.
    pub(crate) fn action(&self, action: &str, outcome: &str) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Projects standing blocked.
    pub(crate) fn blocked_projects(&self, count: usize) {
        self.blocked_projects
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Projects contested by another writer.
    pub(crate) fn contested_projects(&self, count: usize) {
        self.contested_projects
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A project became contested.
    pub(crate) fn writer_conflict(&self) {
        self.writer_conflicts.inc();
    }

    /// Projects drifted at the last plan.
    pub(crate) fn drifted(&self, count: usize) {
        self.drifted.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Deletes blocked.
    pub(crate) fn blocked_deletes(&self, count: usize) {
        self.blocked_deletes.inc_by(count as u64);
    }

    /// A successful run ended now.
    pub(crate) fn success(&self, unix_seconds: f64) {
        self.last_success.set(unix_seconds);
    }

    /// Whether the manifest on disk is valid.
    pub(crate) fn manifest_valid(&self, valid: bool) {
        self.manifest_valid.set(i64::from(valid));
    }

    /// Manifest file events seen.
    pub(crate) fn file_events(&self, count: usize) {
        self.file_events.inc_by(count as u64);
    }

    /// A fetch of `--git-url` ended: `ok` (at `unix_seconds`) or `failed`.
    pub(crate) fn git_fetch(&self, ok: bool, unix_seconds: f64) {
        let result = if ok { "ok" } else { "failed" };
        self.git_fetches
            .get_or_create(&FetchLabels {
                result: result.to_owned(),
            })
            .inc();
        if ok {
            self.git_last_fetch.set(unix_seconds);
        }
    }

    /// Brings the API response counters up to the client's totals.
    pub(crate) fn api_responses(&self, totals: &BTreeMap<u16, u64>) {
        let mut seen = self.api_seen.lock().expect("metrics lock");
        for (code, total) in totals {
            let before = seen.insert(*code, *total).unwrap_or(0);
            if *total > before {
                self.api_requests
                    .get_or_create(&CodeLabels {
                        code: code.to_string(),
                    })
                    .inc_by(total - before);
            }
        }
    }

    /// Brings the throttled time up to the throttle's total (`Throttle::paused_seconds`).
    pub(crate) fn api_throttled(&self, total_seconds: f64) {
        let mut seen = self.throttled_seen.lock().expect("metrics lock");
        if total_seconds > *seen {
            self.api_throttled.inc_by(total_seconds - *seen);
            *seen = total_seconds;
        }
    }

    /// A webhook delivery ended with `result`: `accepted` (a push; a run is triggered),
    /// `ping` (Data Center's "Test connection"), `ignored_event` (signed, not a push),
    /// `bad_signature` (missing, malformed or wrong `X-Hub-Signature`: 401), `too_large` (the
    /// body passed the cap: 413) or `unreadable` (the body could not be read).
    pub(crate) fn webhook_delivery(&self, result: &str) {
        self.webhook_deliveries
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// A Bitbucket commit status ended with `result`: `posted` or `failed`.
    pub(crate) fn commit_status(&self, result: &str) {
        self.commit_statuses
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }
}
