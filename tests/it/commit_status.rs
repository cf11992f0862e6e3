//! Bitbucket Cloud commit statuses (issue 20, DESIGN.md §7) from the client to the sandbox's
//! fake Bitbucket over loopback HTTP: posted with key `bbsync` and replaced by the next post,
//! the history kept, the link and description as Bitbucket takes them, and clear failures
//! that never show the token.

use std::time::Duration;

use bbsync::live::{
    BitbucketClient, BitbucketConfig, COMMIT_STATUS_KEY, COMMIT_STATUS_TEXT, CommitState,
    CommitStatus, RepositoryRef,
};
use bbsync::model::secret::Secret;
use bbsync::sandbox::{Canned, CannedBody, Faults, Sandbox};
use serde_json::{Value, json};

const TOKEN: &str = "repo-access-token-status-0123456789";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

async fn start() -> Sandbox {
    let seed = json!({
        "bitbucket": {
            "workspaces": [{"slug": "acme", "repositories": [{"slug": "integrations"}]}],
        }
    });
    let sandbox = crate::live::sandbox(seed, Faults::default()).await;
    sandbox.world().bitbucket.pr_tokens = vec![TOKEN.to_owned()];
    sandbox
}

fn client(sandbox: &Sandbox) -> BitbucketClient {
    let mut config = BitbucketConfig::new(sandbox.url(), sandbox.url());
    config.timeout = Duration::from_secs(5);
    config.backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(50);
    BitbucketClient::new(config).expect("a client")
}

fn repository() -> RepositoryRef {
    RepositoryRef::new("acme", "integrations")
}

fn status(state: CommitState, description: &str) -> CommitStatus {
    CommitStatus {
        state,
        name: "bbsync watch".to_owned(),
        description: description.to_owned(),
        url: None,
    }
}

#[tokio::test]
async fn a_status_is_posted_then_replaced_by_key_with_its_history_kept() {
    let sandbox = start().await;
    let bitbucket = client(&sandbox);
    let token = Secret::new(TOKEN);
    bitbucket
        .commit_status(
            &token,
            &repository(),
            SHA,
            &status(CommitState::InProgress, "applying"),
        )
        .await
        .expect("posted");
    let mut done = status(CommitState::Successful, "2 updated, 1 blocked");
    done.url = Some("https://bbsync.example.com/status".to_owned());
    bitbucket
        .commit_status(&token, &repository(), SHA, &done)
        .await
        .expect("replaced");
    let world = sandbox.world();
    let standing = world.bitbucket.commit_statuses("acme", "integrations", SHA);
    assert_eq!(standing.len(), 1, "one per key: {standing:#?}");
    let standing = &standing[0];
    assert_eq!(standing.key, COMMIT_STATUS_KEY);
    assert_eq!(standing.key, "bbsync");
    assert_eq!(standing.state, "SUCCESSFUL");
    assert_eq!(standing.name.as_deref(), Some("bbsync watch"));
    assert_eq!(
        standing.description.as_deref(),
        Some("2 updated, 1 blocked")
    );
    assert_eq!(standing.url, "https://bbsync.example.com/status");
    let states: Vec<String> = world
        .bitbucket
        .commit_status_posts("acme", "integrations", SHA)
        .into_iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states, ["INPROGRESS", "SUCCESSFUL"]);
    // Without a public URL, the status links to the commit's page.
    let first = &world
        .bitbucket
        .commit_status_posts("acme", "integrations", SHA)[0];
    assert_eq!(
        first.url,
        format!("https://bitbucket.org/acme/integrations/commits/{SHA}")
    );
    // Posted where the API says, with the token as Bearer.
    let posts: Vec<&String> = world
        .bitbucket
        .requests
        .iter()
        .filter(|r| r.starts_with("POST "))
        .collect();
    assert_eq!(
        posts,
        [&format!("POST /2.0/repositories/acme/integrations/commit/{SHA}/statuses/build"); 2]
    );
}

/// Read back over HTTP as Bitbucket lists them (paged `values`), as CLI tests will.
#[tokio::test]
async fn statuses_are_listed_over_http_one_per_key() {
    let sandbox = start().await;
    let bitbucket = client(&sandbox);
    let token = Secret::new(TOKEN);
    for state in [CommitState::InProgress, CommitState::Failed] {
        bitbucket
            .commit_status(&token, &repository(), SHA, &status(state, "a run"))
            .await
            .unwrap();
    }
    let url = format!(
        "{}/2.0/repositories/acme/integrations/commit/{SHA}/statuses",
        sandbox.url().trim_end_matches('/')
    );
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values = listed["values"].as_array().expect("values");
    assert_eq!(values.len(), 1, "{listed}");
    assert_eq!(values[0]["key"], "bbsync");
    assert_eq!(values[0]["state"], "FAILED");
    let refused = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
}

#[tokio::test]
async fn a_refused_token_is_said_with_the_fix_and_never_shown() {
    let sandbox = start().await;
    let bitbucket = client(&sandbox);
    let wrong = "a-wrong-token-that-must-not-show-9876";
    let error = bitbucket
        .commit_status(
            &Secret::new(wrong),
            &repository(),
            SHA,
            &status(CommitState::InProgress, "applying"),
        )
        .await
        .unwrap_err();
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(error.contains("BBSYNC_BITBUCKET_TOKEN"), "the fix: {error}");
    assert!(error.contains("acme/integrations"), "{error}");
    assert!(!error.contains(wrong), "{error}");
    assert!(
        sandbox
            .world()
            .bitbucket
            .commit_statuses("acme", "integrations", SHA)
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_repository_is_said_with_the_fix() {
    let sandbox = start().await;
    let error = client(&sandbox)
        .commit_status(
            &Secret::new(TOKEN),
            &RepositoryRef::new("acme", "elsewhere"),
            SHA,
            &status(CommitState::InProgress, "applying"),
        )
        .await
        .unwrap_err();
    assert!(error.contains("HTTP 404"), "{error}");
    assert!(error.contains("--commit-status-repo"), "the fix: {error}");
    assert!(!error.contains(TOKEN), "{error}");
}

/// Nothing untrusted reaches a URL path: a bad SHA, a `..` slug or a link that is no URL is
/// refused before any request.
#[tokio::test]
async fn a_bad_sha_slug_or_link_is_refused_before_any_request() {
    let sandbox = start().await;
    let bitbucket = client(&sandbox);
    let token = Secret::new(TOKEN);
    for sha in [
        "",
        "abc123",
        "../../../user",
        "0123456789abcdef0123456789abcdef012345678",
        "g123456",
        "0123456 ",
        "main",
    ] {
        let error = bitbucket
            .commit_status(
                &token,
                &repository(),
                sha,
                &status(CommitState::InProgress, "x"),
            )
            .await
            .unwrap_err();
        assert!(error.contains("is not a commit SHA"), "{sha:?}: {error}");
    }
    for repository in [
        RepositoryRef::new("acme", ".."),
        RepositoryRef::new(".", "integrations"),
        RepositoryRef::new("", "integrations"),
    ] {
        let error = bitbucket
            .commit_status(
                &token,
                &repository,
                SHA,
                &status(CommitState::InProgress, "x"),
            )
            .await
            .unwrap_err();
        assert!(error.contains("is not usable"), "{repository}: {error}");
    }
    let mut linked = status(CommitState::InProgress, "x");
    linked.url = Some("javascript:alert(1)".to_owned());
    let error = bitbucket
        .commit_status(&token, &repository(), SHA, &linked)
        .await
        .unwrap_err();
    assert!(error.contains("not an http(s) URL"), "{error}");
    assert_eq!(bitbucket.requests(), 0);
    assert!(sandbox.world().bitbucket.requests.is_empty());
    // A short SHA in capitals is fine, and sent in lower case.
    bitbucket
        .commit_status(
            &token,
            &repository(),
            "ABCDEF0",
            &status(CommitState::Successful, "x"),
        )
        .await
        .unwrap();
    assert_eq!(
        sandbox
            .world()
            .bitbucket
            .commit_statuses("acme", "integrations", "abcdef0")
            .len(),
        1
    );
}

/// The description is one line within what Bitbucket takes; a multi-line summary or a long
/// one is not refused.
#[tokio::test]
async fn the_description_is_one_line_within_the_limit() {
    let sandbox = start().await;
    let long = format!("2 updated\n1 failed:\r\n\t{}", "x".repeat(400));
    client(&sandbox)
        .commit_status(
            &Secret::new(TOKEN),
            &repository(),
            SHA,
            &status(CommitState::Failed, &long),
        )
        .await
        .unwrap();
    let world = sandbox.world();
    let posted = &world.bitbucket.commit_statuses("acme", "integrations", SHA)[0];
    let description = posted.description.clone().unwrap();
    assert!(
        description.starts_with("2 updated 1 failed: xxx"),
        "{description}"
    );
    assert_eq!(description.chars().count(), COMMIT_STATUS_TEXT);
    assert!(description.ends_with('…'), "{description}");
    assert!(!description.contains(['\n', '\r', '\t']), "{description}");
}

/// A status is posted again after a 5xx or a 429: the same key only overwrites.
#[tokio::test]
async fn a_failed_or_throttled_post_is_sent_again() {
    let sandbox = start().await;
    let path = format!("/2.0/repositories/acme/integrations/commit/{SHA}/statuses/build");
    sandbox.world().hostile.canned.push(Canned {
        method: "POST".to_owned(),
        path: path.clone(),
        status: 502,
        body: CannedBody::Html("<html>bad gateway</html>".to_owned()),
        times: Some(1),
    });
    sandbox.world().bitbucket.throttle = 1;
    client(&sandbox)
        .commit_status(
            &Secret::new(TOKEN),
            &repository(),
            SHA,
            &status(CommitState::InProgress, "applying"),
        )
        .await
        .expect("posted after the 502 and the 429");
    let world = sandbox.world();
    assert_eq!(
        world
            .bitbucket
            .commit_status_posts("acme", "integrations", SHA)
            .len(),
        1
    );
    let sent = world
        .bitbucket
        .requests
        .iter()
        .filter(|r| **r == format!("POST {path}"))
        .count();
    assert!(sent >= 2, "{:#?}", world.bitbucket.requests);
}

/// A 403 (a token without the permission, or a `bbsync` status another user posted) names
/// the scope and the rule; an answer that echoes the request never shows the token.
#[tokio::test]
async fn a_forbidden_post_names_the_scope_and_hides_an_echoed_token() {
    let sandbox = start().await;
    sandbox.world().hostile.canned.push(Canned {
        method: "POST".to_owned(),
        path: format!("/2.0/repositories/acme/integrations/commit/{SHA}/statuses/build"),
        status: 403,
        body: CannedBody::Echo {
            prefix: "forbidden: ".to_owned(),
        },
        times: None,
    });
    let error = client(&sandbox)
        .commit_status(
            &Secret::new(TOKEN),
            &repository(),
            SHA,
            &status(CommitState::InProgress, "applying"),
        )
        .await
        .unwrap_err();
    assert!(error.contains("HTTP 403"), "{error}");
    assert!(error.contains("`repository` scope"), "the fix: {error}");
    assert!(error.contains("repository admin"), "the rule: {error}");
    assert!(!error.contains(TOKEN), "{error}");
}

/// The fake keeps Bitbucket's known rules, so that a client that breaks them fails here: a
/// key past 40 characters, an unknown state, no valid `url`; 201 for a new key, 200 for a
/// replaced one.
#[tokio::test]
async fn the_fake_refuses_what_bitbucket_refuses() {
    let sandbox = start().await;
    let _ = client(&sandbox);
    let url = format!(
        "{}/2.0/repositories/acme/integrations/commit/{SHA}/statuses/build",
        sandbox.url().trim_end_matches('/')
    );
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let request = http.post(&url).bearer_auth(TOKEN).json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let good = json!({"key": "bbsync", "state": "INPROGRESS", "url": "https://example.com/x"});
    for (name, bad) in [
        (
            "long key",
            json!({"key": "k".repeat(41), "state": "INPROGRESS", "url": "https://e.com"}),
        ),
        (
            "no key",
            json!({"state": "INPROGRESS", "url": "https://e.com"}),
        ),
        (
            "state",
            json!({"key": "bbsync", "state": "DONE", "url": "https://e.com"}),
        ),
        ("no url", json!({"key": "bbsync", "state": "INPROGRESS"})),
        (
            "bad url",
            json!({"key": "bbsync", "state": "INPROGRESS", "url": "not a url"}),
        ),
    ] {
        assert_eq!(post(bad).await, 400, "{name}");
    }
    assert_eq!(post(good.clone()).await, 201);
    assert_eq!(post(good).await, 200);
    assert_eq!(
        sandbox
            .world()
            .bitbucket
            .commit_status_posts("acme", "integrations", SHA)
            .len(),
        2
    );
}
