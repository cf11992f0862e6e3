//! `plan --pr-comment` (issue 19, DESIGN §6) against the sandbox's fake Bitbucket over loopback
//! HTTP: the comment is posted once and updated after, with Markdown Bitbucket renders, a
//! hidden marker, and clear failures that never show the token.

use bbsync::sandbox::Faults;

use crate::sync::{Api, MANIFEST, dir_with, world};

const TOKEN: &str = "repo-access-token-0123456789";

fn pipeline(api: &Api, dir: &std::path::Path, args: &[&str]) -> crate::common::Outcome {
    let mut all = vec!["plan", "--pr-comment"];
    all.extend_from_slice(args);
    api.run(dir, &all)
        .env("BITBUCKET_WORKSPACE", "acme")
        .env("BITBUCKET_REPO_SLUG", "integrations")
        .env("BITBUCKET_PR_ID", "7")
        .env("BBSYNC_BITBUCKET_TOKEN", TOKEN)
        .forbid(&[TOKEN])
        .run()
}

#[test]
fn the_plan_is_posted_once_then_updated_in_place() {
    let api = Api::start(world(), Faults::default());
    api.sandbox.world().bitbucket.pr_tokens = vec![TOKEN.to_owned()];
    // A reviewer's comments come first (more than a page of them: the listing is paged).
    for n in 0..3 {
        api.sandbox.world().bitbucket.add_pr_comment(
            "acme",
            "integrations",
            7,
            &format!("looks good {n}"),
        );
    }
    let dir = dir_with(MANIFEST);
    let first = pipeline(&api, dir.path(), &[]);
    assert_eq!(first.code, 0, "{first:#?}");
    assert!(
        first
            .stderr
            .contains("Posted the plan on pull request #7 of acme/integrations"),
        "{}",
        first.stderr
    );
    let comments = api
        .sandbox
        .world()
        .bitbucket
        .pr_comments("acme", "integrations", 7);
    assert_eq!(comments.len(), 4, "{comments:#?}");
    let posted = &comments[3];
    assert!(posted.contains("### bbsync plan"), "{posted}");
    assert!(
        !posted.contains("<details>") && !posted.contains("[!WARNING]"),
        "Bitbucket's Markdown: {posted}"
    );
    // The marker renders as nothing.
    let rendered: String = pulldown_cmark::Parser::new(posted)
        .filter_map(|e| match e {
            pulldown_cmark::Event::Text(t) => Some(t.to_string()),
            _ => None,
        })
        .collect();
    assert!(!rendered.contains("bbsync plan comment"), "{rendered}");
    // The plan changes; the next run updates that comment instead of adding one.
    std::fs::write(
        dir.path().join("integrations.yaml"),
        MANIFEST.replace("  todelete:\n    absent: true\n", ""),
    )
    .unwrap();
    let second = pipeline(&api, dir.path(), &[]);
    assert_eq!(second.code, 0, "{second:#?}");
    assert!(
        second
            .stderr
            .contains("Updated the plan on pull request #7"),
        "{}",
        second.stderr
    );
    let again = api
        .sandbox
        .world()
        .bitbucket
        .pr_comments("acme", "integrations", 7);
    assert_eq!(again.len(), 4, "no second comment: {again:#?}");
    assert_ne!(again[3], comments[3], "updated");
    assert!(
        again[0..3].iter().all(|c| c.starts_with("looks good")),
        "the reviewer's are untouched"
    );
}

#[test]
fn a_long_plan_is_shortened_to_fit() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = pipeline(&api, dir.path(), &["--markdown-limit", "1000"]);
    assert_eq!(out.code, 0, "{out:#?}");
    let comments = api
        .sandbox
        .world()
        .bitbucket
        .pr_comments("acme", "integrations", 7);
    assert!(
        comments[0].chars().count() <= 1000,
        "{}",
        comments[0].chars().count()
    );
    assert!(comments[0].contains("Shortened to fit"), "{}", comments[0]);
}

#[test]
fn a_bad_token_or_no_pull_request_fails_clearly() {
    let api = Api::start(world(), Faults::default());
    api.sandbox.world().bitbucket.pr_tokens = vec!["another-token-entirely".to_owned()];
    let dir = dir_with(MANIFEST);
    let refused = pipeline(&api, dir.path(), &[]);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains("cannot post the plan to the pull request"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("pullrequest:write"),
        "the hint: {}",
        refused.stderr
    );
    // Outside a pull-request pipeline: nothing is read, nothing is posted.
    let requests = api.sandbox.world().requests.len();
    let outside = api
        .run(dir.path(), &["plan", "--pr-comment"])
        .env("BBSYNC_BITBUCKET_TOKEN", TOKEN)
        .forbid(&[TOKEN])
        .run();
    assert_eq!(outside.code, 1, "{outside:#?}");
    assert!(
        outside
            .stderr
            .contains("BITBUCKET_WORKSPACE, BITBUCKET_REPO_SLUG, BITBUCKET_PR_ID not set"),
        "{}",
        outside.stderr
    );
    assert_eq!(api.sandbox.world().requests.len(), requests, "nothing read");
    let no_token = api
        .run(dir.path(), &["plan", "--pr-comment"])
        .env("BITBUCKET_WORKSPACE", "acme")
        .env("BITBUCKET_REPO_SLUG", "integrations")
        .env("BITBUCKET_PR_ID", "7")
        .run();
    assert_eq!(no_token.code, 1, "{no_token:#?}");
    assert!(
        no_token
            .stderr
            .contains("BBSYNC_BITBUCKET_TOKEN is not set"),
        "{}",
        no_token.stderr
    );
}

/// 200 opaque IDs tell a reviewer nothing: where the organization is listed (`prune: true`), each row gives
/// the project's title from the organization listing too.
#[test]
fn rows_give_the_project_title_where_the_organization_listing_has_it() {
    let org = "01J7ZQ4M1B6C8D9E0F2G3H4J5K";
    let api = Api::start(
        serde_json::json!({"projects": [
            {"id": "shop", "title": "Web shop", "organization": org},
            {"id": "untitled", "organization": org},
        ]}),
        Faults::default(),
    );
    let manifest = format!(
        "version: 1\norganization: {org}\nprune: true\nprojects:\n  shop:\n    bitbucket:\n      repository: acme/shop\n      app_credentials: {{key: \"${{BITBUCKET_KEY}}\", secret: \"${{BITBUCKET_SECRET}}\"}}\n  untitled:\n    bitbucket:\n      repository: acme/other\n      app_credentials: {{key: \"${{BITBUCKET_KEY}}\", secret: \"${{BITBUCKET_SECRET}}\"}}\n"
    );
    let dir = dir_with(&manifest);
    let out = api.run(dir.path(), &["plan", "--format", "markdown"]).run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout.contains("| `shop` (Web shop) | `acme/shop` |"),
        "{}",
        out.stdout
    );
    // A title that only repeats the ID (the sandbox's default) is not shown twice.
    assert!(
        out.stdout.contains("| `untitled` | `acme/other` |"),
        "{}",
        out.stdout
    );
}
