//! Adoption: `export`, `validate --online`, `demo`, completions.

use bbsync::sandbox::Faults;
use serde_json::{Value, json};

use crate::common::{Run, root};
use crate::sync::{Api, dir_with};

fn organization() -> Value {
    let org = "01J7ZQ4M1B6C8D9E0F2G3H4J5K";
    json!({"projects": [
        {"id": "plain", "title": "Website", "organization": org, "integrations": [
            {"type": "bitbucket", "repository": "acme/web", "app_credentials": {"key": "key-one", "secret": "x"},
             "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false,
             "pull_requests_clone_parent_data": true, "environment_init_resources": "default"},
            {"type": "github", "repository": "acme/web-gh"}
        ]},
        {"id": "custom", "title": "Docs: \"v2\"", "organization": org, "integrations": [
            {"type": "bitbucket", "repository": "acme/docs", "app_credentials": {"key": "key-two"},
             "fetch_branches": false, "prune_branches": false, "build_pull_requests": false, "resync_pull_requests": true,
             "environment_init_resources": "parent", "pull_requests_max_pages": 4}
        ]},
        {"id": "server", "title": "Intranet", "organization": org, "integrations": [
            {"type": "bitbucket_server", "url": "https://bb.example.com", "username": "bot", "project": "WEB", "repository": "portal",
             "fetch_branches": true, "prune_branches": false, "build_pull_requests": true, "pull_requests_clone_parent_data": false}
        ]},
        {"id": "sameconsumer", "organization": org, "integrations": [
            {"type": "bitbucket", "repository": "acme/true", "app_credentials": {"key": "key-one"},
             "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false}
        ]},
        {"id": "githubonly", "organization": org, "integrations": [{"type": "github", "repository": "acme/gh"}]},
        {"id": "nothing", "organization": org}
    ]})
}

fn export_round_trip(full: bool) {
    let api = Api::start(organization(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "export",
        "--organization",
        "01J7ZQ4M1B6C8D9E0F2G3H4J5K",
        "-o",
        "integrations.yaml",
    ];
    if full {
        args.push("--full");
    }
    let out = api.run(dir.path(), &args).run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stderr
            .contains("Exported 4 Bitbucket integration(s) from 6 project(s)"),
        "{}",
        out.stderr
    );
    let manifest = std::fs::read_to_string(dir.path().join("integrations.yaml")).unwrap();
    assert!(manifest.contains("  plain: # Website"), "{manifest}");
    assert!(
        manifest.contains("# also has a `github` integration"),
        "{manifest}"
    );
    assert!(
        manifest.contains("# githubonly: no Bitbucket integration"),
        "{manifest}"
    );
    assert!(
        manifest.contains("secret: \"${BITBUCKET_SECRET}\""),
        "{manifest}"
    );
    assert!(
        manifest.contains("secret: \"${BITBUCKET_SECRET_2}\""),
        "a second consumer, a second variable:\n{manifest}"
    );
    assert!(manifest.contains("token: \"${BBS_TOKEN}\""), "{manifest}");
    assert!(
        manifest.contains("repository: \"acme/true\"")
            || manifest.contains("repository: acme/true"),
        "{manifest}"
    );
    if !full {
        assert!(
            !manifest.contains("resync_pull_requests: false"),
            "defaults are left out:\n{manifest}"
        );
        assert!(
            manifest.contains("resync_pull_requests: true"),
            "{manifest}"
        );
    }
    let plan = api
        .run(dir.path(), &["plan", "--detailed-exitcode"])
        .env("BITBUCKET_SECRET_2", "s2")
        .run();
    assert_eq!(
        plan.code, 0,
        "the export plans zero changes:\n{manifest}\n{plan:#?}"
    );
    assert!(plan.stdout.contains("4 unchanged"), "{}", plan.stdout);
}

#[test]
fn an_exported_organization_plans_zero_changes() {
    export_round_trip(false);
}

#[test]
fn a_full_export_plans_zero_changes_too() {
    export_round_trip(true);
}

#[test]
fn export_by_project_and_what_it_cannot_export() {
    let mut seed = organization();
    seed["projects"].as_array_mut().unwrap().push(json!({"id": "double", "integrations": [
        {"type": "bitbucket", "repository": "a/b"}, {"type": "bitbucket_server", "url": "https://x", "username": "u", "project": "P", "repository": "r"}
    ]}));
    let api = Api::start(seed, Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let out = api
        .run(
            dir.path(),
            &["export", "--project", "server", "--project", "double"],
        )
        .run();
    assert_eq!(out.code, 1, "an incomplete export says so: {out:#?}");
    assert!(
        out.stdout.contains("  server: # Intranet"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("double: several Bitbucket integrations"),
        "{}",
        out.stderr
    );
    let usage = api.run(dir.path(), &["export"]).run();
    assert_eq!(usage.code, 64, "a source is required");
}

const ONLINE: &str = r#"version: 1
projects:
  plain:
    bitbucket:
      repository: acme/web
      app_credentials: {key: key-one, secret: "${BITBUCKET_SECRET}"}
"#;

fn online(seed: Value, manifest: &str) -> crate::common::Outcome {
    let api = Api::start(seed, Faults::default());
    let dir = dir_with(manifest);
    api.run(dir.path(), &["validate", "--online"]).run()
}

#[test]
fn validate_online_accepts_a_good_manifest() {
    let out = online(organization(), ONLINE);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout
            .contains("ok         plain  the API validated the existing `bitbucket` integration"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_online_catches_a_nonexistent_project() {
    let out = online(organization(), &ONLINE.replace("  plain:", "  ghost:"));
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stdout
            .contains("invalid    ghost  the project does not exist"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_online_catches_a_type_the_project_does_not_allow() {
    let mut seed = organization();
    seed["projects"][5]["integration_types"] = json!(["bitbucket", "github"]);
    let manifest = "version: 1\nprojects:\n  nothing:\n    bitbucket_server:\n      url: https://bb.example.com\n      username: bot\n      token: ${BBS_TOKEN}\n      project: P\n      repository: r\n";
    let out = online(seed, manifest);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stdout
            .contains("does not allow `bitbucket_server` integrations"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_online_reports_the_apis_validation() {
    let mut seed = organization();
    seed["projects"][0]["validation_errors"] =
        json!({"app_credentials": "The OAuth consumer must be private."});
    let out = online(seed, ONLINE);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stdout
            .contains("app_credentials: The OAuth consumer must be private."),
        "{}",
        out.stdout
    );
}

/// An integration the API offers no validation for is a warning, never "ok".
#[test]
fn validate_online_warns_when_an_integration_cannot_be_validated() {
    let mut seed = organization();
    seed["projects"][0]["no_validation"] = json!(true);
    let out = online(seed, ONLINE);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout.contains("warning    plain  integration ")
            && out
                .stdout
                .contains("cannot be validated: it has no `#validate` link"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("ok         plain"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("0 valid, 0 invalid, 1 whose integration cannot be validated"),
        "{}",
        out.stdout
    );
}

/// A type the project's capabilities do not enable is not allowed (one they do not list, neither:
/// `online::tests::capabilities_decide_the_type`).
#[test]
fn validate_online_refuses_a_type_the_capabilities_do_not_enable() {
    let mut seed = organization();
    seed["projects"][5]["integration_types"] = json!(["github"]);
    let manifest = "version: 1\nprojects:\n  nothing:\n    bitbucket:\n      repository: acme/x\n      app_credentials: {key: k, secret: \"${BITBUCKET_SECRET}\"}\n";
    let out = online(seed, manifest);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(out.stdout.contains("invalid    nothing"), "{}", out.stdout);
}

#[test]
fn the_demo_plans_applies_and_plans_nothing() {
    let started = std::time::Instant::now();
    let out = Run::new(&root(), &["demo"]).run();
    assert_eq!(out.code, 0, "{out:#?}");
    let plans: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("Plan: "))
        .collect();
    assert_eq!(plans.len(), 2, "{}", out.stdout);
    assert!(
        plans[0].contains("1 to create, 1 to update, 1 to delete, 1 to replace"),
        "{}",
        plans[0]
    );
    assert!(
        plans[0].contains("1 error")
            && out.stdout.contains("x error    ggggapp000007")
            && out.stdout.contains("`demo-public-key` is public"),
        "the pre-flight catches the public consumer: {}",
        out.stdout
    );
    assert!(
        plans[1].starts_with(
            "Plan: 0 to create, 0 to update, 0 to delete, 0 to replace, 6 unchanged, 0 blocked, 1 error"
        ),
        "{}",
        plans[1]
    );
    assert!(
        out.stdout
            .contains("Apply: 1 created, 1 updated, 1 deleted, 1 replaced"),
        "{}",
        out.stdout
    );
    // The environment guard: the deletion is shown and refused, and the environment survives.
    assert!(
        out.stdout.contains(
            "! Platform.sh will delete 1 environment when it first fetches acme/wiki: staging-2019"
        ) && out
            .stdout
            .contains("error: refused (exit 3): Platform.sh would delete 1 environment(s)")
            && out.stdout.contains("created   hhhhwiki00008"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("demo-consumer-secret") && !out.stdout.contains("demo-server-token")
    );
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn completions_and_help() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = Run::new(dir.path(), &["completions", shell]).run();
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("bbsync"), "{shell}");
    }
    let help = Run::new(dir.path(), &["--help"]).run();
    assert!(
        help.stdout.contains("Exit codes:") && help.stdout.contains("PLATFORMSH_CLI_TOKEN"),
        "{}",
        help.stdout
    );
}

/// Issue 19 item 5: a live integration that lacks an option the planner defaults (made before
/// the API had `resync_pull_requests`, say) exports to a manifest that plans zero changes.
#[test]
fn r19_an_integration_lacking_a_defaulted_option_exports_to_zero_changes() {
    let seed = json!({"projects": [
        {"id": "old", "title": "Old", "integrations": [
            {"type": "bitbucket", "repository": "acme/old", "app_credentials": {"key": "key-old"},
             "fetch_branches": true, "build_pull_requests": true}
        ]},
        {"id": "nofetch", "integrations": [
            {"type": "bitbucket", "repository": "acme/nofetch", "app_credentials": {"key": "key-nf"},
             "fetch_branches": false}
        ]}
    ]});
    let api = Api::start(seed, Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let out = api
        .run(
            dir.path(),
            &[
                "export",
                "--project",
                "old",
                "--project",
                "nofetch",
                "-o",
                "integrations.yaml",
            ],
        )
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    let manifest = std::fs::read_to_string(dir.path().join("integrations.yaml")).unwrap();
    assert!(!manifest.contains("resync_pull_requests"), "{manifest}");
    assert!(!manifest.contains("prune_branches"), "{manifest}");
    let plan = api
        .run(
            dir.path(),
            &["plan", "--detailed-exitcode", "--format", "json"],
        )
        .env("BITBUCKET_SECRET_2", "s2")
        .run();
    assert_eq!(
        plan.code, 0,
        "the export plans zero changes:\n{manifest}\n{plan:#?}"
    );
    let json: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(json["summary"]["unchanged"], 2, "{json:#}");
}

/// `export -o FILE` never overwrites a file unless `--force`; the refusal is a usage error
/// (exit 64) that reads nothing from the API and leaves the file as it was.
#[test]
fn export_refuses_to_overwrite_a_file_without_force() {
    let api = Api::start(organization(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("integrations.yaml");
    std::fs::write(&path, "# mine\n").unwrap();
    let args = ["export", "--project", "plain", "-o", "integrations.yaml"];
    let out = api.run(dir.path(), &args).run();
    assert_eq!(out.code, 64, "{out:#?}");
    assert!(
        out.stderr
            .contains("`integrations.yaml` already exists; nothing was written"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    let mut forced = args.to_vec();
    forced.push("--force");
    let out = api.run(dir.path(), &forced).run();
    assert_eq!(out.code, 0, "{out:#?}");
    let manifest = std::fs::read_to_string(&path).unwrap();
    assert!(manifest.contains("  plain: # Website"), "{manifest}");
    let usage = api
        .run(dir.path(), &["export", "--project", "plain", "--force"])
        .run();
    assert_eq!(usage.code, 64, "--force needs -o: {usage:#?}");
}

/// The `$schema` an export names is a file the user can make: the export says how, and the
/// command it gives prints the manifest schema.
#[test]
fn the_exported_schema_comment_names_a_file_the_user_can_make() {
    let api = Api::start(organization(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let out = api.run(dir.path(), &["export", "--project", "plain"]).run();
    assert_eq!(out.code, 0, "{out:#?}");
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("# yaml-language-server: $schema=bbsync.schema.json")
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.ends_with("bbsync schema > bbsync.schema.json")),
        "{}",
        out.stdout
    );
    let schema = Run::new(dir.path(), &["schema"]).run();
    assert_eq!(schema.code, 0);
    assert_eq!(
        schema.stdout,
        std::fs::read_to_string(root().join("schema/bbsync.schema.json")).unwrap()
    );
}
