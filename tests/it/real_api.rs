//! Where the real Platform.sh API is stricter, or plainer, than a kind sandbox would be: each
//! test is a behaviour of the real API (its source is cited in the sandbox) that bbsync must
//! meet.

use bbsync::sandbox::Faults;
use serde_json::json;

use crate::sync::{Api, cloud_live, dir_with};

/// An ordinary organization: besides the projects bbsync manages, a deleted, a requested and a
/// failed project, and two the token cannot read.
fn ordinary_organization() -> serde_json::Value {
    json!({"projects": [
        {"id": "web", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "integrations": [cloud_live("acme/web")]},
        {"id": "old", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "integrations": [cloud_live("acme/old")]},
        {"id": "gone", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "status": "deleted"},
        {"id": "asked", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "status": "requested"},
        {"id": "broke", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "status": "failed"},
        {"id": "paused", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "status": "suspended"},
        {"id": "secret1", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "unreadable": true, "integrations": [cloud_live("acme/s1")]},
        {"id": "secret2", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "unreadable": true},
    ]})
}

const PRUNING: &str = "version: 1\norganization: 01J7ZQ4M1B6C8D9E0F2G3H4J5K\nprune: true\nprojects:\n  web:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n";

#[test]
fn pruning_an_ordinary_organization_lists_active_projects_and_names_unreadable_ones() {
    let api = Api::start(ordinary_organization(), Faults::default());
    let dir = dir_with(PRUNING);
    let plan = api.run(dir.path(), &["plan"]).run();
    assert_eq!(plan.code, 0, "{plan:#?}");
    assert!(
        plan.stdout.starts_with(
            "Plan: 0 to create, 0 to update, 1 to delete, 0 to replace, 1 unchanged, 0 blocked, 0 errors"
        ),
        "{}",
        plan.stdout
    );
    let warning = "2 projects of organization `01J7ZQ4M1B6C8D9E0F2G3H4J5K` cannot be read with this API token, so they are not pruned: `secret1`, `secret2`";
    assert!(plan.all().contains(warning), "{plan:#?}");
    for project in ["gone", "asked", "broke"] {
        assert!(!plan.all().contains(project), "{project} listed: {plan:#?}");
    }
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(apply.code, 0, "{apply:#?}");
    assert!(apply.all().contains(warning), "{apply:#?}");
    assert!(api.managed("old").is_empty(), "pruned");
    assert_eq!(
        api.sandbox.world().managed("secret1").len(),
        1,
        "never written"
    );
    let again = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(again.code, 0, "{again:#?}");
}

#[test]
fn exporting_an_ordinary_organization_leaves_unreadable_projects_out_with_a_warning() {
    let api = Api::start(ordinary_organization(), Faults::default());
    let dir = tempfile::tempdir().unwrap();
    let out = api
        .run(
            dir.path(),
            &["export", "--organization", "01J7ZQ4M1B6C8D9E0F2G3H4J5K"],
        )
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    for project in ["secret1", "secret2"] {
        assert!(
            out.stderr.contains(&format!(
                "warning: not exported: {project}: this API token cannot read it (HTTP 403"
            )),
            "{out:#?}"
        );
    }
    assert!(out.stdout.contains("  web:\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("  # paused: no Bitbucket integration"),
        "{}",
        out.stdout
    );
    for project in ["gone", "asked", "broke"] {
        assert!(!out.stdout.contains(project), "{project}: {}", out.stdout);
    }
}

#[test]
fn a_manifest_project_the_token_cannot_read_is_an_error() {
    let api = Api::start(ordinary_organization(), Faults::default());
    let dir = dir_with(
        &PRUNING
            .replace("  web:", "  secret1:")
            .replace("acme/web", "acme/s1"),
    );
    let plan = api.run(dir.path(), &["plan"]).run();
    assert_eq!(plan.code, 1, "{plan:#?}");
    assert!(
        plan.stdout.contains("x error    secret1") && plan.stdout.contains("HTTP 403"),
        "{plan:#?}"
    );
}

/// A project mirrored from GitHub has its code source: a Bitbucket create would be refused by
/// the API (or give the project two sources), so the plan says so and writes nothing.
#[test]
fn a_project_whose_code_comes_from_github_gets_an_error_not_a_create() {
    let api = Api::start(
        json!({"projects": [{"id": "web", "integrations": [{"id": "gh1", "type": "github", "repository": "acme/web"}]}]}),
        Faults::default(),
    );
    let dir = dir_with(
        "version: 1\nprojects:\n  web:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n",
    );
    let plan = api.run(dir.path(), &["plan"]).run();
    assert_eq!(plan.code, 1, "{plan:#?}");
    assert!(
        plan.stdout.starts_with("Plan: 0 to create,")
            && plan
                .stdout
                .contains("the project's code already comes from its `github` integration `gh1`"),
        "{plan:#?}"
    );
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(apply.code, 1, "{apply:#?}");
    assert_eq!(api.writes(), 0);
}
