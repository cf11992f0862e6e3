//! The Bitbucket pre-flight client against the sandbox's fake Bitbucket over loopback HTTP
//! (issue 15): one test per check and per fault, the run's cache, the webhook check, and
//! that no secret shows.

use std::time::Duration;

use bbsync::live::{
    BitbucketClient, BitbucketConfig, BitbucketCredentials, CLOUD_HOOK_EVENTS, CheckKind,
    CheckOutcome, Preflight, RepositoryRef, SERVER_HOOK_EVENTS,
};
use bbsync::model::secret::Secret;
use bbsync::sandbox::{Canned, CannedBody, Faults, Sandbox};
use serde_json::{Value, json};

const HOOK: &str = "https://eu-3.platform.sh/api/projects/p1/integrations/i1/hook";
const STALE: &str = "https://eu-3.platform.sh/api/projects/p1/integrations/gone/hook";

/// A world with one good consumer (`good`) and one of each fault, workspace `acme` with
/// `web` (hooked) and `bare` (no hooks), and a Bitbucket Server with users and tokens.
fn bitbucket_seed() -> Value {
    json!({
        "projects": [{"id": "p1"}],
        "bitbucket": {
            "consumers": [
                {"key": "good", "secret": "good-secret", "owner": "alice"},
                {"key": "wide", "secret": "wide-secret", "owner": "alice",
                 "scopes": ["account:write", "repository:admin", "pullrequest:write", "webhook"]},
                {"key": "public", "secret": "public-secret", "owner": "alice", "private": false},
                {"key": "nocallback", "secret": "nocallback-secret", "owner": "alice",
                 "callback_url": false},
                {"key": "narrow", "secret": "narrow-secret", "owner": "alice",
                 "scopes": ["account", "email", "repository", "pullrequest"]},
                {"key": "member", "secret": "member-secret", "owner": "bob"},
            ],
            "workspaces": [{
                "slug": "acme",
                "admins": ["alice"],
                "members": ["bob"],
                "repositories": [
                    {"slug": "web", "branches": ["main"],
                     "hooks": [{"url": HOOK, "events": CLOUD_HOOK_EVENTS}]},
                    {"slug": "bare", "branches": ["main"]},
                    {"slug": "sleepy", "hooks": [{"url": HOOK, "active": false,
                                                  "events": CLOUD_HOOK_EVENTS}]},
                    {"slug": "stale", "hooks": [{"url": STALE, "events": CLOUD_HOOK_EVENTS}]},
                ],
            }],
            "server_users": [
                {"name": "dev", "tokens": [
                    {"token": "dev-personal"},
                    {"token": "dev-readonly", "repo_admin": false},
                    {"token": "dev-project", "kind": "project"},
                ]},
                {"name": "other", "tokens": [{"token": "other-personal"}]},
            ],
            "server_projects": [{"key": "PROJ", "repositories": [
                {"slug": "web", "hooks": [{"url": HOOK, "events": SERVER_HOOK_EVENTS}]},
                {"slug": "bare"},
            ]}],
        }
    })
}

async fn start() -> Sandbox {
    crate::live::sandbox(bitbucket_seed(), Faults::default()).await
}

fn client(sandbox: &Sandbox) -> BitbucketClient {
    let mut config = BitbucketConfig::new(sandbox.url(), sandbox.url());
    config.timeout = Duration::from_secs(5);
    config.backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(50);
    BitbucketClient::new(config).expect("a client")
}

fn cloud(key: &str, secret: &str) -> BitbucketCredentials {
    BitbucketCredentials::Cloud {
        key: key.to_owned(),
        secret: Secret::new(secret),
    }
}

fn server(sandbox: &Sandbox, username: &str, token: &str) -> BitbucketCredentials {
    BitbucketCredentials::Server {
        url: sandbox.url().to_owned(),
        username: username.to_owned(),
        token: Secret::new(token),
    }
}

fn repo(slug: &str) -> RepositoryRef {
    RepositoryRef::new("acme", slug)
}

fn proj(slug: &str) -> RepositoryRef {
    RepositoryRef::new("PROJ", slug)
}

/// The failed check: its kind, problem and hint; and every later check is skipped.
fn failure(preflight: &Preflight) -> (CheckKind, String, String) {
    let failed = preflight.failed().expect("a failed check");
    let at = preflight
        .checks
        .iter()
        .position(|c| c.kind == failed.kind)
        .unwrap();
    for later in &preflight.checks[at + 1..] {
        assert!(
            matches!(later.outcome, CheckOutcome::Skipped { .. }),
            "{preflight:?}"
        );
    }
    match &failed.outcome {
        CheckOutcome::Failed { problem, hint } => (failed.kind, problem.clone(), hint.clone()),
        _ => unreachable!(),
    }
}

fn kinds(preflight: &Preflight) -> Vec<CheckKind> {
    preflight.checks.iter().map(|c| c.kind).collect()
}

fn all_passed(preflight: &Preflight) {
    assert!(
        preflight
            .checks
            .iter()
            .all(|c| matches!(c.outcome, CheckOutcome::Passed { .. })),
        "{preflight:#?}"
    );
}

#[tokio::test]
async fn a_good_cloud_consumer_passes_every_check() {
    let sandbox = start().await;
    let preflight = client(&sandbox)
        .preflight(&cloud("good", "good-secret"), &repo("web"))
        .await;
    all_passed(&preflight);
    assert_eq!(
        kinds(&preflight),
        [
            CheckKind::Token,
            CheckKind::Scopes,
            CheckKind::Repository,
            CheckKind::Admin
        ]
    );
    let requests = sandbox.world().bitbucket.requests.clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[0].starts_with("POST /site/oauth2/access_token"));
    assert_eq!(requests[1], "GET /2.0/repositories/acme/web");
    assert!(
        requests[2].starts_with("GET /2.0/repositories/acme?role=admin&q=full_name")
            && !requests.iter().any(|r| r.contains("/user/permissions")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_said_plainly() {
    let sandbox = start().await;
    let (kind, problem, hint) = failure(
        &client(&sandbox)
            .preflight(&cloud("good", "not-the-secret"), &repo("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::Token);
    assert!(
        problem.contains("the key or the secret is wrong"),
        "{problem}"
    );
    assert!(hint.contains("Key and Secret"), "{hint}");
}

#[tokio::test]
async fn an_unknown_key_is_a_wrong_key() {
    let sandbox = start().await;
    let (kind, problem, _) = failure(
        &client(&sandbox)
            .preflight(&cloud("nobody", "x"), &repo("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::Token);
    assert!(problem.contains("HTTP 401"), "{problem}");
    assert!(
        problem.contains("the key or the secret is wrong"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_public_consumer_is_said_plainly() {
    let sandbox = start().await;
    let (kind, problem, hint) = failure(
        &client(&sandbox)
            .preflight(&cloud("public", "public-secret"), &repo("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::Token);
    assert!(problem.contains("is public"), "{problem}");
    assert!(hint.contains("This is a private consumer"), "{hint}");
}

#[tokio::test]
async fn a_consumer_without_callback_url_is_said_plainly() {
    let sandbox = start().await;
    let (kind, problem, hint) = failure(
        &client(&sandbox)
            .preflight(&cloud("nocallback", "nocallback-secret"), &repo("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::Token);
    assert!(problem.contains("no callback URL"), "{problem}");
    assert!(hint.contains("http://localhost"), "{hint}");
}

#[tokio::test]
async fn a_missing_scope_is_named_as_the_consumer_form_names_it() {
    let sandbox = start().await;
    let preflight = client(&sandbox)
        .preflight(&cloud("narrow", "narrow-secret"), &repo("web"))
        .await;
    let (kind, problem, hint) = failure(&preflight);
    assert_eq!(kind, CheckKind::Scopes);
    assert!(
        problem.contains("Repositories: Write") && problem.contains("Webhooks: Read and write"),
        "{problem}"
    );
    assert!(!problem.contains("Account"), "{problem}");
    assert!(hint.contains("OAuth consumers"), "{hint}");
    // Nothing was asked after the token.
    assert_eq!(sandbox.world().bitbucket.requests.len(), 1);
}

#[tokio::test]
async fn higher_scopes_cover_lower_ones() {
    let sandbox = start().await;
    all_passed(
        &client(&sandbox)
            .preflight(&cloud("wide", "wide-secret"), &repo("web"))
            .await,
    );
}

#[tokio::test]
async fn a_missing_repository_fails_the_repository_check() {
    let sandbox = start().await;
    let (kind, problem, _) = failure(
        &client(&sandbox)
            .preflight(&cloud("good", "good-secret"), &repo("nope"))
            .await,
    );
    assert_eq!(kind, CheckKind::Repository);
    assert!(problem.contains("`acme/nope` was not found"), "{problem}");
}

#[tokio::test]
async fn an_owner_who_is_not_an_admin_fails_the_admin_check() {
    let sandbox = start().await;
    let preflight = client(&sandbox)
        .preflight(&cloud("member", "member-secret"), &repo("web"))
        .await;
    let (kind, problem, hint) = failure(&preflight);
    assert_eq!(kind, CheckKind::Admin, "{preflight:?}");
    assert!(problem.contains("not an admin of `acme/web`"), "{problem}");
    assert!(hint.contains("Admin"), "{hint}");
}

#[tokio::test]
async fn a_good_server_token_passes_every_check() {
    let sandbox = start().await;
    let preflight = client(&sandbox)
        .preflight(&server(&sandbox, "dev", "dev-personal"), &proj("web"))
        .await;
    all_passed(&preflight);
    assert_eq!(
        kinds(&preflight),
        [
            CheckKind::Token,
            CheckKind::TokenKind,
            CheckKind::Repository,
            CheckKind::Username,
            CheckKind::Admin
        ]
    );
    assert_eq!(
        sandbox.world().bitbucket.requests,
        [
            "GET /rest/api/1.0/projects/PROJ/repos/web",
            "GET /rest/api/1.0/projects/PROJ/repos/web/webhooks"
        ]
    );
}

#[tokio::test]
async fn a_wrong_server_token_fails_the_token_check() {
    let sandbox = start().await;
    let (kind, problem, _) = failure(
        &client(&sandbox)
            .preflight(&server(&sandbox, "dev", "bad-token-xyz"), &proj("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::Token);
    assert!(problem.contains("refused username `dev`"), "{problem}");
}

#[tokio::test]
async fn a_project_token_gets_a_hint_to_use_a_personal_one() {
    let sandbox = start().await;
    let (kind, problem, hint) = failure(
        &client(&sandbox)
            .preflight(&server(&sandbox, "dev", "dev-project"), &proj("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::TokenKind);
    assert!(
        problem.contains("project or repository HTTP access token"),
        "{problem}"
    );
    assert!(hint.contains("personal HTTP access token"), "{hint}");
}

#[tokio::test]
async fn a_missing_server_repository_fails_the_repository_check() {
    let sandbox = start().await;
    let (kind, problem, _) = failure(
        &client(&sandbox)
            .preflight(&server(&sandbox, "dev", "dev-personal"), &proj("nope"))
            .await,
    );
    assert_eq!(kind, CheckKind::Repository);
    assert!(problem.contains("`PROJ/nope` was not found"), "{problem}");
}

#[tokio::test]
async fn another_users_token_fails_the_username_check() {
    let sandbox = start().await;
    let (kind, problem, _) = failure(
        &client(&sandbox)
            .preflight(&server(&sandbox, "dev", "other-personal"), &proj("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::Username);
    assert!(
        problem.contains("belongs to `other`, not to `dev`"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_server_token_without_admin_rights_fails_the_admin_check() {
    let sandbox = start().await;
    let (kind, problem, hint) = failure(
        &client(&sandbox)
            .preflight(&server(&sandbox, "dev", "dev-readonly"), &proj("web"))
            .await,
    );
    assert_eq!(kind, CheckKind::Admin);
    assert!(
        problem.contains("may not administer the webhooks"),
        "{problem}"
    );
    assert!(hint.contains("Repository permissions"), "{hint}");
}

#[tokio::test]
async fn a_second_identical_preflight_makes_no_request() {
    let sandbox = start().await;
    let client = client(&sandbox);
    for (credentials, repository) in [
        (cloud("good", "good-secret"), repo("web")),
        (cloud("good", "not-the-secret"), repo("web")),
        (server(&sandbox, "dev", "dev-personal"), proj("web")),
    ] {
        let first = client.preflight(&credentials, &repository).await;
        let before = sandbox.world().bitbucket.requests.len();
        assert!(before > 0);
        let second = client.preflight(&credentials, &repository).await;
        assert_eq!(first, second);
        assert_eq!(sandbox.world().bitbucket.requests.len(), before);
        sandbox.world().bitbucket.requests.clear();
    }
    // Another repository, or another secret, is asked again.
    client
        .preflight(&cloud("good", "good-secret"), &repo("bare"))
        .await;
    assert!(!sandbox.world().bitbucket.requests.is_empty());
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let sandbox = start().await;
    sandbox.world().bitbucket.throttle = 2;
    let client = client(&sandbox);
    all_passed(
        &client
            .preflight(&cloud("good", "good-secret"), &repo("web"))
            .await,
    );
    assert_eq!(sandbox.world().bitbucket.requests.len(), 5);
    assert_eq!(client.requests(), 5);
}

#[tokio::test]
async fn the_webhook_check_wants_an_active_hook_with_every_event() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let good = cloud("good", "good-secret");
    let ids = ["i1".to_owned()];
    let hooked = client.webhook(&good, &repo("web"), HOOK, &ids).await;
    assert!(
        matches!(hooked.outcome, CheckOutcome::Passed { .. }),
        "{hooked:?}"
    );
    for (slug, words) in [("bare", "no webhook"), ("sleepy", "inactive")] {
        let check = client.webhook(&good, &repo(slug), HOOK, &ids).await;
        assert_eq!(check.kind, CheckKind::Webhook);
        match &check.outcome {
            CheckOutcome::Failed { problem, hint } => {
                assert!(problem.contains(words), "{problem}");
                assert!(hint.contains(HOOK), "{hint}");
                for event in CLOUD_HOOK_EVENTS {
                    assert!(hint.contains(event), "{hint}");
                }
                assert!(hint.contains("except comments and approval"), "{hint}");
            }
            other => panic!("{slug}: {other:?}"),
        }
    }
    let stale = client.webhook(&good, &repo("stale"), HOOK, &ids).await;
    match &stale.outcome {
        CheckOutcome::Failed { problem, .. } => {
            assert!(
                problem.contains("stale") && problem.contains("`gone`"),
                "{problem}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A hook registered later (as Platform.sh's `register_hooks` does) is found.
    sandbox.world().bitbucket.seed.workspaces[0].repositories[1]
        .hooks
        .push(bbsync::sandbox::bitbucket::SeedHook {
            url: HOOK.to_owned(),
            active: true,
            events: CLOUD_HOOK_EVENTS.map(str::to_owned).to_vec(),
        });
    let now = client.webhook(&good, &repo("bare"), HOOK, &ids).await;
    assert!(!now.is_failed(), "{now:?}");
}

#[tokio::test]
async fn the_webhook_check_reads_every_page() {
    let sandbox = start().await;
    {
        let mut world = sandbox.world();
        let hooks = &mut world.bitbucket.seed.workspaces[0].repositories[1].hooks;
        for n in 0..12 {
            hooks.push(bbsync::sandbox::bitbucket::SeedHook {
                url: format!("https://ci.example.com/{n}"),
                active: true,
                events: vec!["repo:push".to_owned()],
            });
        }
        hooks.push(bbsync::sandbox::bitbucket::SeedHook {
            url: HOOK.to_owned(),
            active: true,
            events: CLOUD_HOOK_EVENTS.map(str::to_owned).to_vec(),
        });
    }
    let check = client(&sandbox)
        .webhook(&cloud("good", "good-secret"), &repo("bare"), HOOK, &[])
        .await;
    assert!(!check.is_failed(), "{check:?}");
    let requests = sandbox.world().bitbucket.requests.clone();
    assert!(
        requests.iter().any(|r| r.ends_with("/hooks?page=2")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn the_server_webhook_check() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let dev = server(&sandbox, "dev", "dev-personal");
    assert!(
        !client
            .webhook(&dev, &proj("web"), HOOK, &[])
            .await
            .is_failed()
    );
    let bare = client.webhook(&dev, &proj("bare"), HOOK, &[]).await;
    match &bare.outcome {
        CheckOutcome::Failed { problem, hint } => {
            assert!(problem.contains("no webhook"), "{problem}");
            assert!(hint.contains("pr:merged") && hint.contains(HOOK), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    let unreadable = client
        .webhook(
            &server(&sandbox, "dev", "dev-readonly"),
            &proj("web"),
            HOOK,
            &[],
        )
        .await;
    assert!(unreadable.is_failed(), "{unreadable:?}");
}

#[tokio::test]
async fn no_secret_appears_in_any_check_or_debug_output() {
    let sandbox = start().await;
    // Bitbucket echoing the request's `Authorization` (the access token) into an error.
    sandbox.world().hostile.canned.push(Canned {
        method: "GET".to_owned(),
        path: "/2.0/repositories/acme/bare".to_owned(),
        status: 400,
        body: CannedBody::Echo {
            prefix: "bad request: ".to_owned(),
        },
        times: None,
    });
    let client = client(&sandbox);
    let mut shown = vec![format!("{client:?}")];
    let secrets = [
        "good-secret",
        "not-the-secret",
        "public-secret",
        "nocallback-secret",
        "narrow-secret",
        "member-secret",
        "dev-personal",
        "dev-readonly",
        "dev-project",
        "other-personal",
        "bad-token-xyz",
    ];
    let runs = [
        (cloud("good", "good-secret"), repo("web")),
        (cloud("good", "good-secret"), repo("bare")),
        (cloud("good", "not-the-secret"), repo("web")),
        (cloud("public", "public-secret"), repo("web")),
        (cloud("nocallback", "nocallback-secret"), repo("web")),
        (cloud("narrow", "narrow-secret"), repo("web")),
        (cloud("member", "member-secret"), repo("web")),
        (server(&sandbox, "dev", "dev-personal"), proj("nope")),
        (server(&sandbox, "dev", "dev-readonly"), proj("web")),
        (server(&sandbox, "dev", "dev-project"), proj("web")),
        (server(&sandbox, "dev", "other-personal"), proj("web")),
        (server(&sandbox, "dev", "bad-token-xyz"), proj("web")),
    ];
    for (credentials, repository) in &runs {
        shown.push(format!("{credentials:?}"));
        let preflight = client.preflight(credentials, repository).await;
        shown.push(format!("{preflight:?}"));
        shown.push(serde_json::to_string(&preflight).unwrap());
        let hook = client.webhook(credentials, repository, HOOK, &[]).await;
        shown.push(format!("{hook:?}"));
    }
    let echoed = client
        .preflight(&cloud("good", "good-secret"), &repo("bare"))
        .await;
    let text = format!("{echoed:?}");
    assert!(text.contains("[redacted]"), "the echo was not seen: {text}");
    let issued = sandbox.world().bitbucket.access_tokens();
    assert!(!issued.is_empty());
    let all = shown.join("\n");
    for secret in secrets
        .iter()
        .copied()
        .chain(issued.iter().map(String::as_str))
    {
        assert!(!all.contains(secret), "`{secret}` shown:\n{all}");
    }
}

#[tokio::test]
async fn http_is_refused_for_other_hosts() {
    let refused = BitbucketClient::new(BitbucketConfig::new(
        "http://api.bitbucket.org",
        "https://bitbucket.org",
    ))
    .unwrap_err()
    .to_string();
    assert!(refused.contains("http://"), "{refused}");
    assert!(
        BitbucketClient::new(BitbucketConfig::new(
            "https://api.bitbucket.org",
            "https://bitbucket.org"
        ))
        .is_ok()
    );
}
