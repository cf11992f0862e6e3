//! Snapshots of the plan renderings (text, JSON, Markdown) for a plan with every kind of action.

use std::collections::{BTreeMap, BTreeSet};

use bbsync::model::ids::{IntegrationId, ProjectId};
use bbsync::model::live::{
    LiveEnvironment, LiveIntegration, LiveLinks, LiveState, OrganizationLive, OtherIntegration,
    ProjectLive,
};
use bbsync::model::{self, Field, FieldValue, IntegrationType};
use bbsync::plan::{self, Plan, PlanOptions};
use bbsync::render::{self, Flavor, Painter};

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

fn env() -> model::Env {
    model::Env::new([
        ("KEY", "new-key"),
        ("SECRET", "never-shown"),
        ("TOKEN", "never-shown"),
    ])
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
    let built = model::build(&[file], &env());
    let warnings = built.warnings().map(ToString::to_string).collect();
    let desired = built.state.unwrap();
    let known = |managed: Vec<LiveIntegration>| ProjectLive::Known {
        managed,
        others: vec![OtherIntegration {
            id: "wh1".into(),
            kind: "webhook".into(),
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
        // Titles come from the organization listing: live text, escaped in Markdown.
        titles: [("updated", "Web shop | *main*"), ("orphan", "Old site")]
            .into_iter()
            .map(|(id, title)| (ProjectId::new(id), title.to_owned()))
            .collect(),
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
    // The environments Platform.sh would delete at the first fetches: three for a create
    // (with a renamed main branch; `created` does not fetch branches), unknown for the replace.
    let env = |name: &str, is_main: bool, is_pr: bool| LiveEnvironment {
        name: name.to_owned(),
        is_pr,
        is_main,
        deployment_target: Some("local".to_owned()),
    };
    let previews: BTreeMap<ProjectId, plan::environments::Preview> = [
        (
            ProjectId::new("deferred"),
            Ok((
                vec![
                    env("master", true, false),
                    env("feature-x", false, false),
                    env("pr-7", false, true),
                    env("staging", false, false),
                ],
                ["main", "staging"].into_iter().map(str::to_owned).collect(),
            )),
        ),
        (
            ProjectId::new("replaced"),
            Err("the branches of WEB/shop could not be read: HTTP 403".to_owned()),
        ),
    ]
    .into_iter()
    .collect();
    plan::environments::annotate(&mut plan, &previews);
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
    insta::assert_snapshot!(render::plan_markdown(&every_kind_of_plan(), Flavor::Github));
}

/// Shortened for a pull-request comment: the summary, the alerts and the rows in plan order
/// (errors, blocked, deletes and replaces first) stay; diffs and then rows go, and a note says so.
/// What a CommonMark renderer with pipe tables (what Bitbucket Cloud and Data Center support)
/// makes of `markdown`: the raw HTML it would pass on (Bitbucket escapes it), the tables, and
/// the text.
fn commonmark(markdown: &str) -> (Vec<String>, usize, String) {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    let (mut html, mut tables, mut text) = (Vec::new(), 0, String::new());
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Html(h) | Event::InlineHtml(h) => html.push(h.to_string()),
            Event::Start(Tag::Table(_)) => tables += 1,
            Event::Text(t) | Event::Code(t) => {
                text.push_str(&t);
                text.push('\n');
            }
            _ => {}
        }
    }
    (html, tables, text)
}

#[test]
fn markdown_for_bitbucket() {
    let markdown = render::plan_markdown(&every_kind_of_plan(), Flavor::Bitbucket);
    insta::assert_snapshot!(markdown);
    let (html, tables, text) = commonmark(&markdown);
    assert!(
        html.is_empty(),
        "raw HTML, which Bitbucket escapes: {html:?}"
    );
    assert!(
        tables >= 2,
        "the action table and the field tables: {markdown}"
    );
    assert!(!text.contains("[!"), "GitHub's alert syntax: {markdown}");
    let shortcode = text
        .split_whitespace()
        .any(|w| w.len() > 2 && w.starts_with(':') && w.ends_with(':'));
    assert!(!shortcode, "emoji shortcodes: {markdown}");
    // The GitHub flavour keeps its HTML, so the check above can fail.
    let (html, _, _) = commonmark(&render::plan_markdown(
        &every_kind_of_plan(),
        Flavor::Github,
    ));
    assert!(html.iter().any(|h| h.contains("<details>")), "{html:?}");
}

#[test]
fn markdown_shortened_to_a_limit() {
    let plan = every_kind_of_plan();
    let full = render::plan_markdown(&plan, Flavor::Github);
    let size = full.chars().count();
    assert_eq!(
        render::plan_markdown_within(&plan, Some(size), Flavor::Github),
        full
    );
    assert_eq!(
        render::plan_markdown_within(&plan, None, Flavor::Github),
        full
    );
    let short = render::plan_markdown_within(&plan, Some(2000), Flavor::Github);
    assert!(short.chars().count() <= 2000, "{}", short.chars().count());
    insta::assert_snapshot!(short);
    // Too small for every row: the first rows, the most important, are the ones kept.
    let tiny = render::plan_markdown_within(&plan, Some(1500), Flavor::Github);
    assert!(tiny.chars().count() <= 1500, "{}", tiny.chars().count());
    assert!(tiny.contains("`unknown` |  | error"), "{tiny}");
    assert!(!tiny.contains("`updated` |"), "{tiny}");
    assert!(tiny.contains("action rows"), "{tiny}");
    // The smallest limit `--markdown-limit` accepts holds the summary, alerts and note.
    let least = render::plan_markdown_within(&plan, Some(1000), Flavor::Github);
    assert!(least.chars().count() <= 1000, "{least}");
    assert!(
        least.contains("Shortened to fit 1000 characters"),
        "{least}"
    );
}

/// 3,000 creates render far past a comment's size; shortened, they fit GitHub's limit.
#[test]
fn a_large_plan_fits_a_comment() {
    let mut text = String::from("version: 1\nprojects:\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "  p{i:04}:\n    bitbucket:\n      repository: acme/r{i}\n      app_credentials: {{key: k, secret: \"${{SECRET}}\"}}\n"
        ));
    }
    let file = bbsync::manifest::parse("big.yaml", text.as_bytes()).unwrap();
    let desired = model::build(&[file], &env()).state.unwrap();
    let projects = desired
        .projects
        .keys()
        .map(|id| {
            (
                id.clone(),
                ProjectLive::Known {
                    managed: vec![],
                    others: vec![],
                },
            )
        })
        .collect();
    let live = LiveState {
        titles: Default::default(),
        projects,
        organization: None,
    };
    let plan = plan::plan(&desired, &live, &PlanOptions::default());
    assert!(render::plan_markdown(&plan, Flavor::Github).chars().count() > 500_000);
    let short = render::plan_markdown_within(&plan, Some(render::MARKDOWN_LIMIT), Flavor::Github);
    let size = short.chars().count();
    assert!(
        size <= render::MARKDOWN_LIMIT && size > render::MARKDOWN_LIMIT - 1000,
        "{size}"
    );
    assert!(short.contains("**Plan: 3000 to create"), "{short}");
    assert!(short.contains("of 3000 field diffs"), "{short}");
}

#[test]
fn the_plan_file_round_trips() {
    let plan = every_kind_of_plan();
    let back: Plan = serde_json::from_str(&render::plan_json(&plan)).unwrap();
    assert_eq!(back, plan);
}
