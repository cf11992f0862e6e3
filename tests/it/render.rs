//! Snapshots of the plan renderings (text, JSON, Markdown) for a plan with every kind of action.

use std::collections::{BTreeMap, BTreeSet};

use bbsync::ids::{IntegrationId, ProjectId};
use bbsync::live::{
    LiveIntegration, LiveLinks, LiveState, OrganizationLive, OtherIntegration, ProjectLive,
};
use bbsync::model::{self, Field, FieldValue, IntegrationType};
use bbsync::plan::{self, Plan, PlanOptions};
use bbsync::render::{self, Painter};

const MANIFEST: &str = r#"version: 1
organization: org1
prune: true
projects:
  created:
    bitbucket:
      repository: acme/new
      app_credentials: {key: "${KEY}", secret: "${SECRET}"}
      fetch_branches: false
  updated:
    bitbucket:
      repository: acme/web
      app_credentials: {key: "${KEY}", secret: "${SECRET}"}
      environment_init_resources: parent
  deleted:
    absent: true
  replaced:
    bitbucket_server:
      url: https://bb.example.com
      username: bot
      token: ${TOKEN}
      project: WEB
      repository: shop
  unchanged:
    bitbucket:
      repository: acme/same
      app_credentials: {key: "${KEY}", secret: "${SECRET}"}
  blocked:
    protect: true
    absent: true
  unknown:
    absent: true
  deferred:
    bitbucket:
      repository: acme/later
      app_credentials: {key: "${NOT_SET_KEY}", secret: "${SECRET}"}
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "KEY" => Some("new-key".into()),
        "SECRET" | "TOKEN" => Some("never-shown".into()),
        _ => None,
    }
}

fn live_cloud(id: &str, repository: &str, key: &str) -> LiveIntegration {
    let fields: BTreeMap<Field, FieldValue> = [
        (Field::Repository, FieldValue::Text(repository.into())),
        (Field::AppKey, FieldValue::Text(key.into())),
        (Field::FetchBranches, FieldValue::Bool(true)),
        (Field::PruneBranches, FieldValue::Bool(true)),
        (Field::BuildPullRequests, FieldValue::Bool(true)),
        (Field::ResyncPullRequests, FieldValue::Bool(false)),
        (
            Field::EnvironmentInitResources,
            FieldValue::Text("default".into()),
        ),
    ]
    .into_iter()
    .collect();
    LiveIntegration {
        id: IntegrationId::new(id),
        kind: IntegrationType::Bitbucket,
        fields,
        links: LiveLinks::default(),
    }
}

pub fn every_kind_of_plan() -> Plan {
    let file = bbsync::manifest::parse("integrations.yaml", MANIFEST.as_bytes()).unwrap();
    let built = model::build(&[file], &env);
    let warnings = built.warnings().map(ToString::to_string).collect();
    let desired = built.state.unwrap();
    let known = |managed: Vec<LiveIntegration>| ProjectLive::Known {
        managed,
        others: vec![OtherIntegration {
            id: "gh1".into(),
            kind: "github".into(),
        }],
    };
    let mut projects = BTreeMap::new();
    let mut put = |id: &str, state: ProjectLive| {
        projects.insert(ProjectId::new(id), state);
    };
    put("created", known(vec![]));
    let mut drifted = live_cloud("int-updated", "acme/web", "old-key");
    drifted
        .fields
        .insert(Field::BuildPullRequests, FieldValue::Bool(false));
    put("updated", known(vec![drifted]));
    put(
        "deleted",
        known(vec![live_cloud("int-deleted", "acme/gone", "new-key")]),
    );
    put(
        "replaced",
        known(vec![live_cloud("int-replaced", "acme/shop", "new-key")]),
    );
    put(
        "unchanged",
        known(vec![live_cloud("int-unchanged", "acme/same", "new-key")]),
    );
    put(
        "blocked",
        known(vec![live_cloud("int-blocked", "acme/keep", "new-key")]),
    );
    put(
        "unknown",
        ProjectLive::Unknown {
            error: "GET /projects/unknown/integrations failed with HTTP 500: Internal Server Error"
                .into(),
        },
    );
    put("deferred", known(vec![]));
    put(
        "orphan",
        known(vec![live_cloud("int-orphan", "acme/orphan", "new-key")]),
    );
    let listed: BTreeSet<ProjectId> = ["created", "orphan", "updated"]
        .into_iter()
        .map(ProjectId::new)
        .collect();
    let live = LiveState {
        projects,
        organization: Some(OrganizationLive::Listed(listed)),
    };
    let mut plan = plan::plan(
        &desired,
        &live,
        &PlanOptions {
            warnings,
            ..PlanOptions::default()
        },
    );
    // The version changes with every release; the snapshots should not.
    plan.bbsync_version = "0.0.0-test".into();
    plan
}

#[test]
fn text() {
    let plan = every_kind_of_plan();
    insta::assert_snapshot!(render::plan_text(&plan, Painter::new(false), true));
}

#[test]
fn json() {
    let plan = every_kind_of_plan();
    let text = render::plan_json(&plan);
    assert!(!text.contains("never-shown"));
    insta::assert_snapshot!(text);
}

#[test]
fn markdown() {
    insta::assert_snapshot!(render::plan_markdown(&every_kind_of_plan()));
}

#[test]
fn the_plan_file_round_trips() {
    let plan = every_kind_of_plan();
    let back: Plan = serde_json::from_str(&render::plan_json(&plan)).unwrap();
    assert_eq!(back, plan);
}
