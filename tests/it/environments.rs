//! Environments Platform.sh would delete at a first fetch with pruning (DESIGN §5,
//! platformsh/platformsh-docs#5451): previewed in the plan, and guarded.

use bbsync::sandbox::Faults;
use serde_json::{Value, json};

use crate::common::Outcome;
use crate::sync::{Api, SECRET, dir_with};

fn seed() -> Value {
    json!({
        "projects": [{"id": "site", "environments": [
            {"name": "main", "is_main": true, "deployment_target": "local"},
            {"name": "feature-x", "deployment_target": "local"},
            {"name": "old-demo"},
            {"name": "pr-12", "is_pr": true, "deployment_target": "local"},
            {"name": "big-customer", "deployment_target": "dedicated"},
        ]}],
        "bitbucket": {
            "consumers": [{"key": "consumer-key", "secret": SECRET, "owner": "alice"}],
            "workspaces": [{"slug": "acme", "admins": ["alice"], "repositories": [
                {"slug": "site", "branches": ["main", "develop"]}
            ]}],
        },
    })
}

const MANIFEST: &str = "version: 1\nprojects:\n  site:\n    bitbucket:\n      repository: acme/site\n      app_credentials: {key: consumer-key, secret: \"${BITBUCKET_SECRET}\"}\n";

fn checked(api: &Api, dir: &std::path::Path, args: &[&str]) -> Outcome {
    api.run(dir, args)
        .env_remove("BBSYNC_SKIP_BITBUCKET_CHECKS")
        .run()
}

fn environments(api: &Api) -> Vec<String> {
    let world = api.sandbox.world();
    world.projects["site"]
        .seed
        .environments
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

#[test]
fn the_plan_shows_the_environments_a_first_fetch_deletes_and_apply_refuses_them() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(MANIFEST);
    let plan = checked(&api, dir.path(), &["plan"]);
    assert_eq!(plan.code, 0, "{plan:#?}");
    assert!(
        plan.stdout.contains(
            "! Platform.sh will delete 2 environments when it first fetches acme/site: feature-x, old-demo (no branch of that name)"
        ),
        "{}",
        plan.stdout
    );
    let json = checked(&api, dir.path(), &["plan", "--format", "json"]);
    let parsed: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        parsed["actions"][0]["environment_deletions"],
        json!({"known": true, "environments": ["feature-x", "old-demo"]})
    );
    // The guard: nothing written, nothing lost.
    let apply = checked(&api, dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(apply.code, 3, "{apply:#?}");
    assert!(
        apply
            .stderr
            .contains("Platform.sh would delete 2 environment(s)")
            && apply.stderr.contains("prune_branches: false"),
        "{}",
        apply.stderr
    );
    assert_eq!(api.writes(), 0);
    assert_eq!(environments(&api).len(), 5, "none lost");
}

#[test]
fn raising_the_limit_after_review_lets_platform_sh_delete_them() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(MANIFEST);
    let apply = checked(
        &api,
        dir.path(),
        &["apply", "--auto-approve", "--max-environment-deletes", "2"],
    );
    assert_eq!(apply.code, 0, "{apply:#?}");
    assert_eq!(
        environments(&api),
        ["main", "pr-12", "big-customer"],
        "the first fetch deleted what the plan said, and only that"
    );
}

#[test]
fn prune_branches_false_for_the_first_sync_deletes_nothing() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(&format!("{MANIFEST}      prune_branches: false\n"));
    let apply = checked(&api, dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{apply:#?}");
    assert_eq!(environments(&api).len(), 5);
}

#[test]
fn unknown_branches_are_not_no_branches() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(MANIFEST);
    // The branches cannot be read without the Bitbucket side.
    let apply = api
        .run(
            dir.path(),
            &["apply", "--auto-approve", "--max-environment-deletes", "99"],
        )
        .run();
    assert_eq!(apply.code, 3, "{apply:#?}");
    assert!(
        apply
            .stderr
            .contains("which environments Platform.sh would delete is unknown for site"),
        "{}",
        apply.stderr
    );
    assert_eq!(api.writes(), 0);
}

#[test]
fn a_saved_plan_is_stale_when_the_environments_it_would_delete_changed() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(MANIFEST);
    let plan = checked(&api, dir.path(), &["plan", "--out", "plan.json"]);
    assert_eq!(plan.code, 0, "{plan:#?}");
    api.sandbox.world().bitbucket.seed.workspaces[0].repositories[0]
        .branches
        .push("feature-x".to_owned());
    let apply = checked(
        &api,
        dir.path(),
        &["apply", "plan.json", "--max-environment-deletes", "5"],
    );
    assert_eq!(apply.code, 3, "{apply:#?}");
    assert!(
        apply
            .all()
            .contains("the environments Platform.sh would delete at the first fetch changed"),
        "{apply:#?}"
    );
    assert_eq!(api.writes(), 0);
}

#[test]
fn unknown_environments_are_not_no_environments() {
    let api = Api::start(seed(), Faults::default());
    api.sandbox
        .world()
        .hostile
        .canned
        .push(bbsync::sandbox::Canned {
            method: "GET".to_owned(),
            path: "/projects/site/environments".to_owned(),
            status: 500,
            body: bbsync::sandbox::CannedBody::Json(json!({"message": "Internal Server Error"})),
            times: None,
        });
    let dir = dir_with(MANIFEST);
    let plan = checked(&api, dir.path(), &["plan", "--format", "json"]);
    let parsed: Value =
        serde_json::from_str(&plan.stdout).unwrap_or_else(|e| panic!("{e}: {plan:#?}"));
    let deletions = &parsed["actions"][0]["environment_deletions"];
    assert_eq!(deletions["known"], json!(false), "{deletions}");
    assert!(
        deletions["reason"]
            .as_str()
            .unwrap()
            .starts_with("its environments could not be read"),
        "{deletions}"
    );
    let apply = checked(
        &api,
        dir.path(),
        &["apply", "--auto-approve", "--max-environment-deletes", "99"],
    );
    assert_eq!(apply.code, 3, "{apply:#?}");
    assert_eq!(api.writes(), 0);
    assert_eq!(environments(&api).len(), 5);
}
