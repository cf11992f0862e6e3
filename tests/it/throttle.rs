//! Issue 17: bbsync under the API's rate limit, against the sandbox's token bucket
//! (`--rate-limit`), over real HTTP.

use std::time::Duration;

use bbsync::sandbox::Faults;
use serde_json::{Value, json};

use crate::sync::{Api, cloud_live, dir_with};

/// `n` projects, each with the Bitbucket integration its manifest entry asks for.
fn in_sync(n: usize) -> (Value, String) {
    let projects: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("p{i:04}"), "integrations": [cloud_live(&format!("acme/r{i}"))]}))
        .collect();
    let mut manifest = String::from("version: 1\nprojects:\n");
    for i in 0..n {
        manifest.push_str(&format!(
            "  p{i:04}:\n    bitbucket:\n      repository: acme/r{i}\n      app_credentials: {{key: \"${{BITBUCKET_KEY}}\", secret: \"${{BITBUCKET_SECRET}}\"}}\n"
        ));
    }
    (json!({"projects": projects}), manifest)
}

/// A sandbox of `n` projects in sync, answering after `latency_ms`, limited to `rate`
/// requests per second with a burst of `burst`, and the directory of their manifest.
fn limited(n: usize, latency_ms: u64, rate: f64, burst: u32) -> (Api, tempfile::TempDir) {
    let (seed, manifest) = in_sync(n);
    let api = Api::start(
        seed,
        Faults {
            latency: Duration::from_millis(latency_ms),
            rate_limit: Some(rate),
            rate_burst: burst,
            ..Faults::default()
        },
    );
    (api, dir_with(&manifest))
}

/// The scenario, smaller: at concurrency 64, 43 of 300 projects used to be left
/// unknown (exit 1). Now every project is read and the plan exits 0, though the limit was hit.
#[test]
fn r17_a_plan_under_a_rate_limit_at_high_concurrency_reads_every_project() {
    let (api, dir) = limited(120, 20, 50.0, 10);
    let out = api
        .run_quietly(
            dir.path(),
            &[
                "plan",
                "--concurrency",
                "64",
                "--format",
                "json",
                "--detailed-exitcode",
            ],
        )
        .deadline(Duration::from_secs(120))
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["errors"], json!([]), "{out:#?}");
    assert_eq!(
        plan["summary"]["unchanged"],
        json!(120),
        "{}",
        plan["summary"]
    );
    let world = api.sandbox.world();
    assert!(world.rate_limited > 0, "the limit was never reached");
    // Slow start and the host-wide pause keep 429s rare. Without them, 64 requests at once
    // against a burst of 10 would get most of the first wave answered 429, and every wave
    // after. The bound leaves room for a loaded CI machine (seen: 26 once); the benchmarks
    // measure the share itself (README, at most 8.5%).
    assert!(
        world.rate_limited <= 36,
        "{} requests answered 429",
        world.rate_limited
    );
    // One token exchange for the whole process.
    assert_eq!(world.exchanges, 1);
}

/// `-v` logs each throttle event, naming the host and not the token.
#[test]
fn r17_throttle_events_are_logged_at_v() {
    let (api, dir) = limited(30, 0, 20.0, 5);
    let out = api
        .run(dir.path(), &["plan", "--concurrency", "32"])
        .deadline(Duration::from_secs(60))
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stderr.contains("the API asked us to slow down"),
        "{}",
        out.stderr
    );
}

/// A Retry-After past `--max-throttle-wait` leaves the project unknown (exit 1), never absent:
/// nothing is planned for it.
#[test]
fn r17_a_wait_past_the_bound_leaves_projects_unknown_not_absent() {
    let (seed, manifest) = in_sync(3);
    let api = Api::start(
        seed,
        Faults {
            rate_limit_rate: 1.0,
            retry_after: 60.0,
            ..Faults::default()
        },
    );
    let dir = dir_with(&manifest);
    let out = api
        .run_quietly(
            dir.path(),
            &["plan", "--format", "json", "--max-throttle-wait", "10s"],
        )
        .deadline(Duration::from_secs(30))
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["create"], json!(0), "{}", out.stdout);
    assert!(out.stdout.contains("--max-throttle-wait"), "{}", out.stdout);
}

/// No request is sent twice in a plan (no rate limit, no faults): each answer is read once.
#[test]
fn r17_a_plan_sends_no_request_twice() {
    let api = Api::start(crate::sync::world(), Faults::default());
    let dir = dir_with(crate::sync::MANIFEST);
    let out = api.run_quietly(dir.path(), &["plan"]).run();
    assert_eq!(out.code, 0, "{out:#?}");
    let world = api.sandbox.world();
    let mut seen = std::collections::BTreeSet::new();
    for request in &world.requests {
        assert!(
            seen.insert(request.clone()),
            "sent twice: {request}\n{:#?}",
            world.requests
        );
    }
    assert_eq!(world.exchanges, 1);
}

/// A second plan against the same rate-limited API starts at the limit the first one measured
/// (the rate cache, `BBSYNC_CACHE_DIR`), so it needs no 429 to learn it: counted by the
/// sandbox. The cache file holds the host and numbers, never the token.
#[test]
fn r17_a_second_plan_paces_by_the_remembered_rate_without_429s() {
    let (api, dir) = limited(150, 20, 50.0, 10);
    let cache = dir.path().join("shared-cache");
    let plan = |cache: &std::path::Path| {
        let before = api.sandbox.world().rate_limited;
        let out = api
            .run(dir.path(), &["plan", "--concurrency", "32"])
            .env("BBSYNC_CACHE_DIR", cache.to_str().unwrap())
            .deadline(Duration::from_secs(120))
            .run();
        assert_eq!(out.code, 0, "{out:#?}");
        api.sandbox.world().rate_limited - before
    };
    let cold = plan(&cache);
    // Two pauses at least: one to find the burst, one to measure the rate.
    assert!(cold >= 2, "{cold} requests answered 429 in the first plan");
    let file = std::fs::read_to_string(cache.join("rates.json")).unwrap();
    assert!(file.contains("127.0.0.1:"), "{file}");
    assert!(!file.contains(api.sandbox.token()), "{file}");
    // Let the sandbox's bucket refill, as between two CI jobs.
    std::thread::sleep(Duration::from_secs(1));
    let warm = plan(&cache);
    // Measuring the rate takes two pauses (two 429s at least, as the cold plan and the plan
    // with the cache off show); a remembered rate needs none. One 429 is allowed for a loaded
    // machine whose scheduling jitter bunches a few requests (seen once in CI).
    assert!(
        warm <= 1,
        "{warm} requests answered 429 in the second plan ({cold} in the first)"
    );
    // With the cache off, the limit is measured again.
    std::thread::sleep(Duration::from_secs(1));
    let off = plan(std::path::Path::new("off"));
    assert!(off >= 2, "{off} requests answered 429 with the cache off");
}

/// The daemon's `/metrics` counts the time its API hosts were paused by 429s and keeps the
/// 429s among the answers.
#[test]
fn r17_the_daemon_reports_throttled_time_in_its_metrics() {
    let (api, dir) = limited(30, 0, 20.0, 5);
    let daemon = crate::watch::Daemon::start(
        &api,
        dir.path(),
        &["--interval", "1h", "--concurrency", "32"],
    );
    let status = daemon.wait_for("the first run", |s| {
        s["runs"].as_array().is_some_and(|runs| !runs.is_empty())
    });
    assert_eq!(status["runs"][0]["result"], "ok", "{status:#}");
    let (code, metrics) = daemon.get("/metrics");
    assert_eq!(code, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
    };
    assert!(
        api.sandbox.world().rate_limited > 0,
        "the limit was never reached"
    );
    // Each 429 pauses the host for its `Retry-After`, a whole second at least.
    assert!(
        value("bbsync_api_throttled_seconds_total ") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("bbsync_api_requests_total{code=\"429\"} ") >= 1.0,
        "{metrics}"
    );
    assert_eq!(daemon.terminate(), 0);
}
