//! Waiting for the activities a write starts, as the `platform` CLI does (legacy-cli
//! `src/Service/ActivityMonitor.php`): `complete` and `cancelled` end the wait, only a
//! `success` result is a success, the wait is bounded (`--activity-timeout`), one project
//! activity listing is read per poll, and a create recovered by re-listing still waits for its
//! activities.

use std::time::{Duration, Instant};

use bbsync::live::Awaited;
use bbsync::model::ids::ProjectId;
use bbsync::sandbox::{ActivityEnding, Faults, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::live::{client_for, seed};
use crate::sync::{Api, dir_with};

const ONE_CLOUD: &str = "version: 1\nprojects:\n  p1:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n";

fn pid(id: &str) -> ProjectId {
    ProjectId::new(id)
}

async fn sandbox_with_delay(delay: Duration) -> Sandbox {
    Sandbox::start(SandboxConfig {
        seed: seed(json!({"projects": [{"id": "p1"}]})),
        activity_delay: delay,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts")
}

fn cloud_create() -> Value {
    json!({"type": "bitbucket", "repository": "acme/web",
           "app_credentials": {"key": "k", "secret": "s"}})
}

/// Requests the sandbox received that start with `prefix` (`METHOD path`).
fn requests(sb: &Sandbox, prefix: &str) -> Vec<String> {
    sb.world()
        .requests
        .iter()
        .filter(|r| r.starts_with(prefix))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_poll_reads_one_listing_not_one_get_per_activity() {
    let sb = sandbox_with_delay(Duration::from_millis(300)).await;
    let client = client_for(&sb);
    let written = client
        .create_integration(&pid("p1"), &cloud_create(), &|_| false)
        .await
        .unwrap();
    assert_eq!(written.activities.len(), 2);
    assert!(
        written.activities.iter().all(|a| a.state == "pending"),
        "a fresh activity is pending: {:?}",
        written.activities
    );
    let waited = client
        .wait_for_activities(
            &pid("p1"),
            Awaited::Started(written.activities),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(!waited.timed_out);
    assert!(waited.activities.iter().all(|a| a.succeeded()));
    let listings = requests(&sb, "GET /projects/p1/activities");
    let singles = requests(&sb, "GET /projects/p1/activities/");
    assert!(singles.is_empty(), "no GET per activity: {singles:?}");
    assert!(listings.len() >= 2, "polled the listing: {listings:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activity_missing_from_the_listing_is_fetched_on_its_own() {
    let sb = sandbox_with_delay(Duration::from_millis(200)).await;
    // A page of one: the listing holds only the newest of the two activities.
    sb.world().activity_page = 1;
    let client = client_for(&sb);
    let written = client
        .create_integration(&pid("p1"), &cloud_create(), &|_| false)
        .await
        .unwrap();
    let waited = client
        .wait_for_activities(
            &pid("p1"),
            Awaited::Started(written.activities),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(waited.activities.iter().all(|a| a.succeeded()));
    assert!(
        !requests(&sb, "GET /projects/p1/activities/").is_empty(),
        "the one not listed was refreshed at its own link"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wait_is_bounded_and_says_it_timed_out() {
    let sb = sandbox_with_delay(Duration::ZERO).await;
    sb.world().activity_ending = ActivityEnding::Never;
    let client = client_for(&sb);
    let written = client
        .create_integration(&pid("p1"), &cloud_create(), &|_| false)
        .await
        .unwrap();
    let started = Instant::now();
    let waited = client
        .wait_for_activities(
            &pid("p1"),
            Awaited::Started(written.activities),
            Duration::from_millis(150),
        )
        .await
        .unwrap();
    assert!(waited.timed_out);
    assert!(waited.activities.iter().all(|a| !a.is_finished()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovered_create_finds_its_activities_in_the_listing() {
    let faults = Faults {
        drop_post_rate: 1.0,
        ..Faults::default()
    };
    let sb = Sandbox::start(SandboxConfig {
        seed: seed(json!({"projects": [{"id": "p1"}]})),
        faults,
        activity_delay: Duration::from_millis(100),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = client_for(&sb);
    let is_ours = |i: &bbsync::wire::ApiIntegration| i.kind == "bitbucket";
    let written = client
        .create_integration(&pid("p1"), &cloud_create(), &is_ours)
        .await
        .unwrap();
    assert!(written.recovered && written.activities.is_empty());
    let id = written.entity.unwrap().id;
    let waited = client
        .wait_for_activities(
            &pid("p1"),
            Awaited::OfIntegration(id.clone()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let mut kinds: Vec<&str> = waited.activities.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "integration.bitbucket.fetch",
            "integration.bitbucket.register_hooks"
        ]
    );
    assert!(
        waited
            .activities
            .iter()
            .all(|a| a.succeeded() && a.integration.as_deref() == Some(id.as_str()))
    );
}

#[test]
fn a_cancelled_activity_fails_the_action() {
    let api = Api::start(json!({"projects": [{"id": "p1"}]}), Faults::default());
    api.sandbox.world().activity_ending = ActivityEnding::Cancelled;
    let dir = dir_with(ONE_CLOUD);
    let out = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("failed    p1"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("the write was made, but activity `integration.bitbucket.register_hooks` (`")
            && out.stdout.contains("`) was cancelled: Registering the webhook of the bitbucket integration for acme/web"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_failure_the_api_does_not_explain_still_says_something() {
    let api = Api::start(json!({"projects": [{"id": "p1"}]}), Faults::default());
    api.sandbox.world().activity_ending = ActivityEnding::FailedSilently;
    let dir = dir_with(ONE_CLOUD);
    let out = api
        .run(dir.path(), &["apply", "--auto-approve", "--format", "json"])
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let action = &report["actions"][0];
    assert_eq!(action["outcome"], "failed");
    let message = action["message"].as_str().unwrap();
    assert!(
        message
            .contains("`) failed: the API gave no text and no log for it (`platform activity:log "),
        "{message}"
    );
    assert!(!message.ends_with(": "), "{message}");
}

#[test]
fn an_activity_timeout_fails_the_action_and_names_the_activity() {
    let api = Api::start(json!({"projects": [{"id": "p1"}]}), Faults::default());
    api.sandbox.world().activity_ending = ActivityEnding::Never;
    let dir = dir_with(ONE_CLOUD);
    let started = Instant::now();
    let out = api
        .run(
            dir.path(),
            &["apply", "--auto-approve", "--activity-timeout", "300ms"],
        )
        .deadline(Duration::from_secs(30))
        .run();
    assert_eq!(out.code, 1, "a timeout is never a success: {out:#?}");
    assert!(out.stdout.contains("failed    p1"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("the write was made, but activity `integration.bitbucket.")
            && out
                .stdout
                .contains("was still `in_progress` after 300ms (`--activity-timeout`)"),
        "{}",
        out.stdout
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn the_activity_timeout_flag_is_bounded() {
    let dir = dir_with(ONE_CLOUD);
    for (value, says) in [
        ("0s", "must be more than 0"),
        ("5", "has no unit"),
        ("200h", "longer than the limit"),
        ("soon", "is not a duration"),
    ] {
        for command in ["apply", "watch"] {
            let out =
                crate::common::Run::new(dir.path(), &[command, "--activity-timeout", value]).run();
            assert_eq!(out.code, 64, "{command} {value}: {out:#?}");
            assert!(
                out.stderr.contains(says),
                "{command} {value}: {}",
                out.stderr
            );
        }
    }
    let out = crate::common::Run::new(
        dir.path(),
        &["apply", "--no-wait", "--activity-timeout", "5m"],
    )
    .run();
    assert_eq!(out.code, 64, "waiting and not waiting: {out:#?}");
}

#[test]
fn a_create_recovered_after_a_lost_answer_still_waits_for_its_activities() {
    let api = Api::start(
        json!({"projects": [{"id": "p1", "fail_activities": true}]}),
        Faults {
            drop_post_rate: 1.0,
            ..Faults::default()
        },
    );
    let dir = dir_with(ONE_CLOUD);
    let out = api
        .run(dir.path(), &["apply", "--auto-approve", "--format", "json"])
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let action = &report["actions"][0];
    assert_eq!(action["recovered"], true, "{action:#}");
    assert_eq!(action["outcome"], "failed", "{action:#}");
    assert_eq!(
        action["activities"].as_array().unwrap().len(),
        2,
        "{action:#}"
    );
    assert!(
        action["message"]
            .as_str()
            .unwrap()
            .contains("register_hooks` (`"),
        "{action:#}"
    );
    assert!(
        action["hook_url"].as_str().unwrap().ends_with("/hook"),
        "{action:#}"
    );
    let posts = api
        .sandbox
        .world()
        .writes
        .iter()
        .filter(|w| w.method == "POST")
        .count();
    assert_eq!(posts, 1, "posted once");
}
