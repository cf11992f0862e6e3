//! A hostile or broken API: each test is an attack that found a defect, against the sandbox's
//! hostile knobs (`sandbox.world().hostile`: canned answers, endless bodies, echoed input,
//! creates that commit late), through the client or the binary.

use std::time::Duration;

use bbsync::live::Client;
use bbsync::model::ids::ProjectId;
use bbsync::sandbox::{Canned, CannedBody, Faults, LateCommit, Sandbox};
use serde_json::json;

use crate::live::{client_for, sandbox};
use crate::sync::{Api, dir_with};

fn pid(id: &str) -> ProjectId {
    ProjectId::new(id)
}

fn canned(method: &str, path: &str, status: u16, body: CannedBody) -> Canned {
    Canned {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        body,
        times: None,
    }
}

/// The tests' client (5 s per request): an attack must fail fast, not by a timeout.
fn quick_client(sb: &Sandbox) -> Client {
    client_for(sb)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_body_is_cut_off_at_16_mib() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations",
        200,
        CannedBody::Endless,
    ));
    let client = quick_client(&sb);
    let started = std::time::Instant::now();
    let error = client
        .list_integrations(&pid("p1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "GET /projects/p1/integrations answered HTTP 200 with a body larger than 16 MiB"
        ),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(4), "not a timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_token_answer_is_cut_off_at_16_mib() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world()
        .hostile
        .canned
        .push(canned("POST", "/oauth2/token", 200, CannedBody::Endless));
    let error = quick_client(&sb)
        .list_integrations(&pid("p1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("POST /oauth2/token answered HTTP 200 with a body larger than 16 MiB"),
        "{error}"
    );
}

#[test]
fn plan_against_an_endless_body_reports_that_project_as_an_error() {
    let api = Api::start(
        json!({"projects": [{"id": "p1"}, {"id": "p2"}]}),
        Faults::default(),
    );
    api.sandbox.world().hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations",
        200,
        CannedBody::Endless,
    ));
    let dir = dir_with("version: 1\nprojects:\n  p1:\n    absent: true\n  p2:\n    absent: true\n");
    let out = api.run(dir.path(), &["plan"]).run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("larger than 16 MiB"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expires_in_of_u64_max_is_capped_not_a_panic() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    // A real access token (so the API accepts it), with a lifetime of `u64::MAX` seconds.
    let access = sb.world().issue_access_token();
    sb.world().hostile.canned.push(canned(
        "POST",
        "/oauth2/token",
        200,
        CannedBody::Json(
            json!({"access_token": access, "expires_in": u64::MAX, "token_type": "bearer"}),
        ),
    ));
    let client = quick_client(&sb);
    client.list_integrations(&pid("p1")).await.unwrap();
    client.list_integrations(&pid("p1")).await.unwrap();
}

fn bitbucket(id: &str, project: &str, repository: &str) -> serde_json::Value {
    let href = format!("https://eu-3.platform.sh/api/projects/{project}/integrations/{id}");
    json!({"id": id, "type": "bitbucket", "repository": repository,
           "app_credentials": {"key": "consumer-key"}, "fetch_branches": true, "prune_branches": true,
           "build_pull_requests": true, "resync_pull_requests": false,
           "_links": {"self": {"href": href}, "#edit": {"href": href}}})
}

/// An integrations list in two pages: a GitHub integration, then (`_links.next`) the
/// Bitbucket one. Read as page 1 only, the project looked as if it had no Bitbucket integration.
fn paged_list(api: &Sandbox) {
    let mut world = api.world();
    world.hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations?page=2",
        200,
        CannedBody::Json(json!({"items": [bitbucket("bb1", "p1", "acme/web")], "_links": {}})),
    ));
    world.hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations",
        200,
        CannedBody::Json(json!({
            "items": [{"id": "gh1", "type": "github", "repository": "acme/gh"}],
            "_links": {"next": {"href": "https://eu-3.platform.sh/api/projects/p1/integrations?page=2"}},
        })),
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paged_integrations_list_is_read_to_its_last_page() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    paged_list(&sb);
    let list = quick_client(&sb)
        .list_integrations(&pid("p1"))
        .await
        .unwrap();
    let ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["gh1", "bb1"]);
}

#[test]
fn plan_sees_the_bitbucket_integration_on_page_two_and_creates_nothing() {
    let api = Api::start(json!({"projects": [{"id": "p1"}]}), Faults::default());
    paged_list(&api.sandbox);
    let dir = dir_with(
        "version: 1\nprojects:\n  p1:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n",
    );
    let out = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stdout.contains("No changes"), "{out:#?}");
}

/// An organization listing whose first page is answered by `first` (any query), with more
/// canned pages before it.
async fn org_listing_error(pages: Vec<(&str, serde_json::Value)>) -> (String, usize) {
    let sb = sandbox(
        json!({"projects": [{"id": "p1", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K"}]}),
        Faults::default(),
    )
    .await;
    for (path, body) in pages {
        sb.world()
            .hostile
            .canned
            .push(canned("GET", path, 200, CannedBody::Json(body)));
    }
    let client = quick_client(&sb);
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        client.organization_projects(&bbsync::model::ids::OrganizationId::new(
            "01J7ZQ4M1B6C8D9E0F2G3H4J5K",
        )),
    )
    .await
    .expect("the listing ends at once")
    .unwrap_err()
    .to_string();
    let requests = sb
        .world()
        .requests
        .iter()
        .filter(|r| r.contains("/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects"))
        .count();
    (error, requests)
}

const ORG: &str = "https://eu-3.platform.sh/api/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects";

fn page(items: &[&str], next: Option<&str>) -> serde_json::Value {
    let items: Vec<serde_json::Value> = items.iter().map(|id| json!({"id": id})).collect();
    match next {
        Some(next) => json!({"items": items, "_links": {"next": {"href": next}}}),
        None => json!({"items": items, "_links": {}}),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_page_whose_next_is_itself_ends_the_listing_with_an_error() {
    let itself = format!("{ORG}?filter%5Bstatus%5D%5Bin%5D=active%2Csuspended&page%5Bsize%5D=100");
    let (error, requests) = org_listing_error(vec![(
        "/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects",
        page(&["p1"], Some(&itself)),
    )])
    .await;
    assert!(error.contains("the listing loops"), "{error}");
    assert_eq!(requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_org_listing_that_comes_back_to_a_page_already_read_ends_with_an_error() {
    let a = format!("{ORG}?page%5Bafter%5D=a");
    let b = format!("{ORG}?page%5Bafter%5D=b");
    let (error, requests) = org_listing_error(vec![
        (
            "/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects?page%5Bafter%5D=a",
            page(&["p2"], Some(&b)),
        ),
        (
            "/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects?page%5Bafter%5D=b",
            page(&["p3"], Some(&a)),
        ),
        (
            "/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects",
            page(&["p1"], Some(&a)),
        ),
    ])
    .await;
    assert!(error.contains("the listing loops"), "{error}");
    assert_eq!(requests, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_next_link_ends_the_org_listing_with_an_error() {
    let (error, requests) = org_listing_error(vec![(
        "/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects",
        page(&["p1"], Some("")),
    )])
    .await;
    assert!(error.contains("`next` link has no address"), "{error}");
    assert_eq!(requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_org_page_with_a_next_link_ends_the_listing_with_an_error() {
    let (error, requests) = org_listing_error(vec![(
        "/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects",
        page(&[], Some(&format!("{ORG}?page%5Bafter%5D=z"))),
    )])
    .await;
    assert!(
        error.contains("an empty page of the listing has a `next` link"),
        "{error}"
    );
    assert_eq!(requests, 1);
}

/// Terminal control sequences a hostile API puts in its error text: a title change, a screen
/// clear, a right-to-left override.
const ESCAPES: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}";

#[tokio::test(flavor = "multi_thread")]
async fn an_auth_server_that_echoes_the_api_token_does_not_leak_it() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.canned.push(canned(
        "POST",
        "/oauth2/token",
        400,
        CannedBody::Echo {
            prefix: format!("bad grant{ESCAPES}: "),
        },
    ));
    let error = quick_client(&sb)
        .list_integrations(&pid("p1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("api_token=[redacted]"), "{error}");
    assert!(!error.contains(sb.token()), "{error}");
    assert!(
        !error.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_that_echoes_the_access_token_and_rambles_is_redacted_cleaned_and_cut() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations",
        400,
        CannedBody::Echo {
            prefix: format!("{ESCAPES}{}", "blah ".repeat(400)),
        },
    ));
    // The echo comes at the end of 2,000 characters: shown cut, so check it unshown as well.
    let client = quick_client(&sb);
    let error = client.list_integrations(&pid("p1")).await.unwrap_err();
    let text = error.to_string();
    assert!(
        !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{text:?}"
    );
    assert!(text.ends_with('…'), "{text}");
    assert!(text.chars().count() < 600, "{}", text.chars().count());
    let full = format!("{error:?}");
    assert!(full.contains("Bearer [redacted]"), "{full}");
    assert!(!full.contains("sandbox-access-"), "{full}");
}

#[test]
fn an_api_that_echoes_the_create_body_never_shows_the_secret_it_was_sent() {
    let api = Api::start(json!({"projects": [{"id": "p1"}]}), Faults::default());
    api.sandbox.world().hostile.canned.push(canned(
        "POST",
        "/projects/p1/integrations",
        400,
        CannedBody::Echo {
            prefix: format!("cannot use{ESCAPES} "),
        },
    ));
    let dir = dir_with(
        "version: 1\nprojects:\n  p1:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n",
    );
    // `Api::run` fails the test if the secret or an access token reaches the output.
    for format in ["text", "json"] {
        let out = api
            .run(dir.path(), &["apply", "--auto-approve", "--format", format])
            .run();
        assert_eq!(out.code, 1, "{out:#?}");
        assert!(out.stdout.contains("[redacted]"), "{out:#?}");
        assert!(
            !out.stdout.contains('\u{1b}') && !out.stdout.contains('\u{202e}'),
            "{out:#?}"
        );
    }
}

#[test]
fn a_bitbucket_like_type_bbsync_does_not_know_is_an_error_not_a_create() {
    let api = Api::start(
        json!({"projects": [
            {"id": "p1", "integrations": [{"type": "Bitbucket", "repository": "acme/web"}]},
            {"id": "p2", "integrations": [{"type": "bitbucket_datacenter", "repository": "acme/dc"}]},
        ]}),
        Faults::default(),
    );
    let creds =
        "      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n";
    let dir = dir_with(&format!(
        "version: 1\nprojects:\n  p1:\n    bitbucket:\n      repository: acme/web\n{creds}  p2:\n    bitbucket:\n      repository: acme/dc\n{creds}"
    ));
    let out = api.run(dir.path(), &["plan", "--format", "json"]).run();
    assert_eq!(out.code, 1, "{out:#?}");
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["create"], 0, "{plan:#}");
    assert_eq!(plan["summary"]["errors"], 2, "{plan:#}");
    for (project, kind) in [("p1", "Bitbucket"), ("p2", "bitbucket_datacenter")] {
        let action = plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["project"] == project)
            .unwrap();
        assert_eq!(action["action"], "error");
        let reason = action["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("type `{kind}`")), "{reason}");
    }
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(apply.code, 1, "{apply:#?}");
    assert_eq!(api.writes(), 0, "nothing created");
}

/// p1 has a Bitbucket integration to delete (`absent: true`); p2 a GitHub integration `gh1`
/// that bbsync must never touch.
fn two_projects() -> serde_json::Value {
    json!({"projects": [
        {"id": "p1", "integrations": [{"id": "bb1", "type": "bitbucket", "repository": "acme/web"}]},
        {"id": "p2", "integrations": [{"id": "gh1", "type": "github", "repository": "acme/gh"}]},
    ]})
}

const DELETE_P1: &str = "version: 1\nprojects:\n  p1:\n    absent: true\n";

fn github_survives(api: &Api) {
    let world = api.sandbox.world();
    let kinds: Vec<&str> = world.projects["p2"]
        .integrations
        .iter()
        .map(|i| i.kind())
        .collect();
    assert_eq!(kinds, ["github"], "p2's GitHub integration was touched");
    assert!(
        world.writes.iter().all(|w| !w.path.contains("/p2/")),
        "{:?}",
        world.writes
    );
}

#[test]
fn a_plan_file_edited_to_aim_a_delete_elsewhere_deletes_only_what_was_planned() {
    // The attack: only `before.links.self_href` is edited (the fingerprint is left as it was);
    // or only `before.id`, with the links removed so that the spec path is built from it.
    let edits: [fn(&mut serde_json::Value); 2] = [
        |before| {
            before["links"]["self_href"] =
                json!("https://eu-3.platform.sh/api/projects/p2/integrations/gh1");
        },
        |before| {
            before["id"] = json!("../../p2/integrations/gh1");
            before["links"] = json!({});
        },
    ];
    for edit in edits {
        let api = Api::start(two_projects(), Faults::default());
        let dir = dir_with(DELETE_P1);
        let out = api.run(dir.path(), &["plan", "--out", "plan.json"]).run();
        assert_eq!(out.code, 0, "{out:#?}");
        let path = dir.path().join("plan.json");
        let mut plan: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut plan["actions"][0]["before"]);
        std::fs::write(&path, plan.to_string()).unwrap();
        let out = api.run(dir.path(), &["apply", "plan.json"]).run();
        assert_eq!(out.code, 0, "{out:#?}");
        assert!(
            out.stdout.contains("deleted   p1 (integration bb1)"),
            "{out:#?}"
        );
        assert!(api.managed("p1").is_empty(), "the planned delete was made");
        github_survives(&api);
        let writes: Vec<String> = api
            .sandbox
            .world()
            .writes
            .iter()
            .map(|w| format!("{} {}", w.method, w.path))
            .collect();
        assert_eq!(writes, ["DELETE /projects/p1/integrations/bb1"]);
    }
}

#[test]
fn an_api_link_that_points_at_another_project_is_an_error_and_never_followed() {
    let api = Api::start(two_projects(), Faults::default());
    // The API lists p1's Bitbucket integration with links to p2's GitHub integration.
    let mut hostile = bitbucket("bb1", "p1", "acme/web");
    let elsewhere = "https://eu-3.platform.sh/api/projects/p2/integrations/gh1";
    hostile["_links"] = json!({"self": {"href": elsewhere}, "#edit": {"href": elsewhere}});
    api.sandbox.world().hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations",
        200,
        CannedBody::Json(json!([hostile])),
    ));
    let dir = dir_with(DELETE_P1);
    let plan = api.run(dir.path(), &["plan", "--format", "json"]).run();
    assert_eq!(plan.code, 1, "{plan:#?}");
    let parsed: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(parsed["actions"][0]["action"], "error", "{parsed:#}");
    let reason = parsed["actions"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("is not integration `bb1` of project `p1`"),
        "{reason}"
    );
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(apply.code, 1, "{apply:#?}");
    assert_eq!(api.writes(), 0, "nothing written");
    github_survives(&api);
}

#[test]
fn an_api_integration_id_with_dot_dot_is_an_error_and_never_written_to() {
    // A Bitbucket integration whose ID climbs out of its path: its links (built from the ID)
    // and the spec path both lead to p2's GitHub integration.
    let api = Api::start(
        json!({"projects": [
            {"id": "p1", "integrations": [{"id": "x/../../../p2/integrations/gh1", "type": "bitbucket", "repository": "acme/web"}]},
            {"id": "p2", "integrations": [{"id": "gh1", "type": "github", "repository": "acme/gh"}]},
        ]}),
        Faults::default(),
    );
    let dir = dir_with(DELETE_P1);
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(apply.code, 1, "{apply:#?}");
    assert!(
        apply.stdout.contains("is not an integration ID"),
        "{apply:#?}"
    );
    assert_eq!(api.writes(), 0, "nothing written");
    github_survives(&api);
}

fn posts(sb: &Sandbox) -> usize {
    sb.world()
        .writes
        .iter()
        .filter(|w| w.method == "POST")
        .count()
}

fn cloud_create() -> serde_json::Value {
    json!({"type": "bitbucket", "repository": "acme/web",
           "app_credentials": {"key": "consumer-key", "secret": "s3cr3t"}})
}

fn is_ours(i: &bbsync::wire::ApiIntegration) -> bool {
    i.kind == "bitbucket" && i.fields.get("repository") == Some(&json!("acme/web"))
}

fn client_rechecking_after(sb: &Sandbox, recheck: Duration) -> Client {
    let mut config = bbsync::live::ClientConfig::new(
        sb.url(),
        sb.url(),
        bbsync::model::secret::Secret::new(sb.token()),
    );
    config.backoff = Duration::from_millis(5);
    config.timeout = Duration::from_secs(5);
    config.create_recheck = recheck;
    Client::new(config).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_commits_after_the_first_look_is_found_by_the_second() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.late_commit = Some(LateCommit {
        after: Duration::from_millis(300),
        status: None,
    });
    let client = client_rechecking_after(&sb, Duration::from_secs(1));
    let written = client
        .create_integration(&pid("p1"), &cloud_create(), &is_ours)
        .await
        .unwrap();
    assert!(written.recovered, "found by looking again");
    assert_eq!(posts(&sb), 1, "posted once");
    assert_eq!(sb.world().managed("p1").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_whose_create_commits_late_is_unknown_and_never_sent_again() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.late_commit = Some(LateCommit {
        after: Duration::from_millis(800),
        status: Some(500),
    });
    let client = client_rechecking_after(&sb, Duration::from_millis(100));
    let error = client
        .create_integration(&pid("p1"), &cloud_create(), &is_ours)
        .await
        .unwrap_err();
    let text = bbsync::live::chain(&error);
    assert!(
        text.starts_with("POST /projects/p1/integrations: the outcome is unknown: the integration may have been created"),
        "{text}"
    );
    assert!(text.contains("the next plan will tell"), "{text}");
    assert!(text.contains("HTTP 500"), "the cause is kept: {text}");
    assert_eq!(posts(&sb), 1, "never sent again");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sb.world().managed("p1").len(), 1, "it did commit, once");
    assert_eq!(posts(&sb), 1);
}

#[test]
fn apply_reports_a_late_create_unknown_and_the_next_plan_finds_it() {
    let api = Api::start(json!({"projects": [{"id": "p1"}]}), Faults::default());
    // Commits after both looks (at once, and 2 s later).
    api.sandbox.world().hostile.late_commit = Some(LateCommit {
        after: Duration::from_secs(3),
        status: None,
    });
    let dir = dir_with(
        "version: 1\nprojects:\n  p1:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n",
    );
    let started = std::time::Instant::now();
    let out = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("unknown   p1"), "{out:#?}");
    assert!(
        out.stdout.contains("may have been created") && out.stdout.contains("next plan will tell"),
        "{out:#?}"
    );
    assert_eq!(
        posts(&api.sandbox),
        1,
        "one POST, however the answer was lost"
    );
    api.sandbox.world().hostile.late_commit = None;
    std::thread::sleep(
        Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(300),
    );
    let plan = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(plan.code, 0, "{plan:#?}");
    assert_eq!(api.managed("p1").len(), 1);
    assert_eq!(posts(&api.sandbox), 1, "no duplicate create");
}
