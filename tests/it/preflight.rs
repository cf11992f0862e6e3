//! The Bitbucket side, checked before and after credentials are sent (DESIGN §5), end to end:
//! `bbsync` against the sandbox's Platform.sh and a seeded (strict) Bitbucket fake.

use bbsync::sandbox::Faults;
use serde_json::{Value, json};

use crate::common::Outcome;
use crate::sync::{Api, SECRET, cloud_live, dir_with};

/// Three projects to create: a good consumer for `web`, a wrong secret for `docs`, and a
/// repository the consumer's owner cannot administer for `shop`.
fn seed() -> Value {
    json!({
        "projects": [{"id": "web"}, {"id": "docs"}, {"id": "shop"}, {"id": "same", "integrations": [cloud_live("acme/same")]}],
        "bitbucket": {
            "consumers": [
                {"key": "consumer-key", "secret": SECRET, "owner": "alice"},
                {"key": "docs-key", "secret": "the-real-secret", "owner": "alice"},
            ],
            "workspaces": [
                {"slug": "acme", "admins": ["alice"], "repositories": [{"slug": "web"}, {"slug": "docs"}, {"slug": "same"}]},
                {"slug": "other", "members": ["alice"], "repositories": [{"slug": "shop"}]},
            ],
        },
    })
}

const MANIFEST: &str = r#"version: 1
projects:
  web:
    bitbucket:
      repository: acme/web
      app_credentials: {key: consumer-key, secret: "${BITBUCKET_SECRET}"}
  docs:
    bitbucket:
      repository: acme/docs
      app_credentials: {key: docs-key, secret: "${BITBUCKET_SECRET}"}
  shop:
    bitbucket:
      repository: other/shop
      app_credentials: {key: consumer-key, secret: "${BITBUCKET_SECRET}"}
"#;

fn checked(api: &Api, dir: &std::path::Path, args: &[&str]) -> Outcome {
    api.run(dir, args)
        .env_remove("BBSYNC_SKIP_BITBUCKET_CHECKS")
        .run()
}

#[test]
fn a_failed_pre_flight_is_an_error_for_its_project_and_the_others_go_on() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(MANIFEST);
    let plan = checked(&api, dir.path(), &["plan"]);
    assert_eq!(plan.code, 1, "{plan:#?}");
    assert!(
        plan.stdout
            .starts_with("Plan: 1 to create, 0 to update, 0 to delete, 0 to replace, 0 unchanged, 0 blocked, 2 errors"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("x error    docs")
            && plan
                .stdout
                .contains("the Bitbucket pre-flight failed (token)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("x error    shop")
            && plan
                .stdout
                .contains("the Bitbucket pre-flight failed (admin)"),
        "{}",
        plan.stdout
    );
    let apply = checked(&api, dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{apply:#?}");
    assert_eq!(api.managed("web").len(), 1, "the good one was created");
    assert!(api.managed("docs").is_empty() && api.managed("shop").is_empty());
    let writes: Vec<String> = api
        .sandbox
        .world()
        .writes
        .iter()
        .map(|w| w.path.clone())
        .collect();
    assert_eq!(
        writes,
        ["/projects/web/integrations"],
        "nothing else was written"
    );
    // The created one has its webhook, registered by Platform.sh with the same credentials.
    assert!(apply.stdout.contains("created   web"), "{}", apply.stdout);
}

#[test]
fn a_plan_that_sends_nothing_asks_bitbucket_nothing() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(
        "version: 1\nprojects:\n  same:\n    bitbucket:\n      repository: acme/same\n      app_credentials: {key: consumer-key, secret: \"${BITBUCKET_SECRET}\"}\n      build_pull_requests: false\n",
    );
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let out = checked(&api, dir.path(), args);
        assert_eq!(out.code, 0, "{out:#?}");
    }
    assert_eq!(api.writes(), 1, "the update was made");
    assert_eq!(
        api.sandbox.world().bitbucket.requests,
        Vec::<String>::new(),
        "no credentials sent, no Bitbucket request"
    );
}

#[test]
fn a_webhook_missing_after_a_create_fails_the_action_with_the_url_to_add() {
    let mut seed = seed();
    seed["bitbucket"]["workspaces"][0]["repositories"][0]["drops_hooks"] = json!(true);
    let api = Api::start(seed, Faults::default());
    let dir = dir_with(&MANIFEST[..MANIFEST.find("  docs:").unwrap()]);
    let out = checked(&api, dir.path(), &["apply", "--auto-approve"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("failed    web"), "{}", out.stdout);
    assert!(
        out.stdout.contains("the integration was made, but"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("https://eu-3.platform.sh/api/projects/web/integrations/")
            && out.stdout.contains("add it in Bitbucket by hand"),
        "{}",
        out.stdout
    );
    assert_eq!(api.managed("web").len(), 1, "the integration exists");
}

#[test]
fn skipping_the_checks_is_said_in_the_plan() {
    let api = Api::start(seed(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api.run(dir.path(), &["plan"]).run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout
            .contains("was not checked: --skip-bitbucket-checks"),
        "{}",
        out.stdout
    );
    assert!(api.sandbox.world().bitbucket.requests.is_empty());
}

/// `validate --online` prints the Bitbucket checklist of each project and exits 4 when a check
/// fails; pinned by a snapshot.
#[test]
fn validate_online_prints_a_checklist_per_project() {
    let mut seed = seed();
    let mut same = cloud_live("acme/same");
    same["id"] = json!("sameintegration1");
    seed["projects"][3]["integrations"] = json!([same]);
    seed["bitbucket"]["workspaces"][0]["repositories"][2]["hooks"] = json!([{
        "url": "https://eu-3.platform.sh/api/projects/same/integrations/sameintegration1/hook",
        "events": bbsync::live::CLOUD_HOOK_EVENTS,
    }]);
    let api = Api::start(seed, Faults::default());
    let manifest = format!(
        "{MANIFEST}  same:\n    bitbucket:\n      repository: acme/same\n      app_credentials: {{key: consumer-key, secret: \"${{BITBUCKET_SECRET}}\"}}\n"
    );
    let dir = dir_with(&manifest);
    let out = checked(&api, dir.path(), &["validate", "--online"]);
    assert_eq!(out.code, 4, "{out:#?}");
    insta::assert_snapshot!(out.stdout);
}
