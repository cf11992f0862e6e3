//! Issue 14: the token endpoint's and the API's refusals told apart as the official CLI tells
//! them, organizations given by name, and a sandbox as strict as the real API where it was
//! kinder (client IDs, content types, error shapes).

use bbsync::live::{self, Client, ClientConfig};
use bbsync::model::ids::{OrganizationId, ProjectId};
use bbsync::model::secret::Secret;
use bbsync::sandbox::{Canned, CannedBody, Faults, Sandbox, SandboxConfig, TokenErrors};
use serde_json::json;

use crate::common::Run;
use crate::live::{client_for, sandbox, seed};
use crate::sync::{Api, dir_with};

const ORG: &str = "01J7ZQ4M1B6C8D9E0F2G3H4J5K";

fn canned(method: &str, path: &str, status: u16, body: CannedBody) -> Canned {
    Canned {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        body,
        times: None,
    }
}

fn pid(id: &str) -> ProjectId {
    ProjectId::new(id)
}

fn token_requests(sb: &Sandbox) -> usize {
    sb.world()
        .requests
        .iter()
        .filter(|r| r.as_str() == "POST /oauth2/token")
        .count()
}

const BAD_GATEWAY: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>";

#[tokio::test(flavor = "multi_thread")]
async fn an_auth_outage_is_retried_and_never_called_a_rejected_token() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.canned.push(canned(
        "POST",
        "/oauth2/token",
        503,
        CannedBody::Json(json!({"error": "temporarily_unavailable"})),
    ));
    let client = client_for(&sb);
    let error = client.list_integrations(&pid("p1")).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(
        text,
        "the auth service is unavailable: POST /oauth2/token answered HTTP 503: temporarily_unavailable"
    );
    assert_eq!(token_requests(&sb), 5, "retried as API calls are");
    assert_eq!(
        client
            .stats()
            .retries
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    assert!(live::explain(&error).contains("hint: the API token was not judged"));

    // An HTML page from the gateway: summarised, not "no details given".
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.canned.push(canned(
        "POST",
        "/oauth2/token",
        502,
        CannedBody::Html(BAD_GATEWAY.to_owned()),
    ));
    let text = client_for(&sb)
        .list_integrations(&pid("p1"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "the auth service is unavailable: POST /oauth2/token answered HTTP 502: the gateway answered with an HTML error page (\"502 Bad Gateway\")"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_refusals_are_classified_by_their_oauth_body() {
    // The newer auth server: `request_unauthorized` with an `error_hint` naming the API token.
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().token_errors = TokenErrors::Current;
    let client = Client::new(ClientConfig::new(sb.url(), sb.url(), Secret::new("wrong"))).unwrap();
    let error = client.list_integrations(&pid("p1")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the API token was rejected: The request could not be authorized: The API token is invalid or expired: request_unauthorized"
    );
    assert!(live::explain(&error).contains("hint: create a new API token"));

    // Anything else keeps its text: not a rejected token.
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.canned.push(canned(
        "POST",
        "/oauth2/token",
        400,
        CannedBody::Json(json!({"error": "unsupported_grant_type", "error_description": "The grant type is not supported."})),
    ));
    let text = client_for(&sb)
        .list_integrations(&pid("p1"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "the token exchange failed: POST /oauth2/token answered HTTP 400: The grant type is not supported: unsupported_grant_type"
    );
    assert_eq!(token_requests(&sb), 1, "a 400 is not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_up_challenge_and_a_403_say_what_the_token_user_needs() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().step_up = Some(vec!["mfa".to_owned()]);
    let client = client_for(&sb);
    let error = client.list_integrations(&pid("p1")).await.unwrap_err();
    let text = live::explain(&error);
    assert!(
        text.starts_with("GET /projects/p1/integrations answered HTTP 401: the API asks for stronger authentication than this API token's user has (mfa): "),
        "{text}"
    );
    assert!(
        text.contains("hint: if the organization enforces MFA or SSO"),
        "{text}"
    );
    assert_eq!(sb.world().exchanges, 1, "a new access token would not help");

    let sb = sandbox(
        json!({"projects": [{"id": "p1"}, {"id": "p2"}]}),
        Faults::default(),
    )
    .await;
    sb.world().hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations",
        403,
        CannedBody::Json(json!({"status": "Forbidden", "message": "Access denied.", "code": 403})),
    ));
    sb.world().hostile.canned.push(canned(
        "GET",
        "/projects/p2/integrations",
        403,
        CannedBody::Json(json!({"message": "The organization requires multi-factor authentication.", "code": 403})),
    ));
    let client = client_for(&sb);
    let admin = client.list_integrations(&pid("p1")).await.unwrap_err();
    assert_eq!(
        admin.to_string(),
        "GET /projects/p1/integrations failed with HTTP 403: Access denied. (managing integrations needs the project admin role; an organization that enforces MFA or SSO also refuses users without it)"
    );
    assert!(live::explain(&admin).contains("hint: give the API token's user the admin role"));
    let mfa = live::explain(&client.list_integrations(&pid("p2")).await.unwrap_err());
    assert!(
        mfa.contains(
            "(the organization enforces MFA or SSO, and the API token's user does not satisfy it)"
        ) && mfa.contains("hint: if the organization enforces MFA or SSO"),
        "{mfa}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_html_page_is_summarised() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    sb.world().hostile.canned.push(canned(
        "GET",
        "/projects/p1/integrations",
        500,
        CannedBody::Html("<html><body>oops</body></html>".to_owned()),
    ));
    let text = client_for(&sb)
        .list_integrations(&pid("p1"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "GET /projects/p1/integrations failed with HTTP 500: the gateway answered with an HTML error page"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_name_is_resolved_to_its_id() {
    let sb = sandbox(
        json!({"organizations": [{"id": ORG, "name": "acme"}],
               "projects": [{"id": "p1", "organization": ORG}, {"id": "p2", "organization": ORG}]}),
        Faults::default(),
    )
    .await;
    let client = client_for(&sb);
    let by_name = client
        .organization_projects(&OrganizationId::new("acme"))
        .await
        .unwrap();
    assert_eq!(by_name.len(), 2);
    assert!(
        sb.world()
            .requests
            .contains(&"GET /organizations/name=acme".to_owned())
    );
    let by_id = client
        .organization_id(&OrganizationId::new(ORG))
        .await
        .unwrap();
    assert_eq!(by_id.to_string(), ORG);
    let missing = client
        .organization_projects(&OrganizationId::new("nope"))
        .await
        .unwrap_err();
    let text = live::explain(&missing);
    assert!(
        text.starts_with("organization `nope` was not found")
            && text.contains("`platform organization:info --org NAME id`"),
        "{text}"
    );
    // The sandbox, as the API, lists by ID only; its seeds' IDs are ULIDs.
    let listing = reqwest_get(&sb, "/organizations/acme/projects").await;
    assert_eq!(listing, 404);
    let refused = Sandbox::start(SandboxConfig {
        seed: seed(json!({"organizations": [{"id": "org1"}]})),
        ..SandboxConfig::default()
    })
    .await;
    assert!(refused.err().unwrap().to_string().contains("are ULIDs"));
}

async fn access_token(sb: &Sandbox) -> String {
    sb.world().issue_access_token()
}

async fn reqwest_get(sb: &Sandbox, path: &str) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = access_token(sb).await;
    reqwest::Client::new()
        .get(format!("{}{path}", sb.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_takes_the_official_client_ids_and_json_bodies_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    let http = reqwest::Client::new();
    let exchange = |user: &'static str, secret: Option<&'static str>| {
        http.post(format!("{}/oauth2/token", sb.url()))
            .basic_auth(user, secret)
            .form(&[
                ("grant_type", "api_token"),
                ("api_token", sb.token()),
                ("scope", ""),
            ])
            .send()
    };
    for client_id in ["platform-api-user", "platform-cli", "upsun-cli"] {
        let status = exchange(client_id, Some("")).await.unwrap().status();
        assert_eq!(status, 200, "{client_id}");
    }
    for (client_id, secret) in [("someone-else", Some("")), ("platform-cli", Some("s"))] {
        let answer = exchange(client_id, secret).await.unwrap();
        assert_eq!(answer.status(), 401, "{client_id}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    // A write whose body is not said to be JSON: 415, and nothing created.
    let token = access_token(&sb).await;
    let answer = http
        .post(format!("{}/projects/p1/integrations", sb.url()))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"type": "github", "repository": "a/b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 415);
    assert!(sb.world().writes.is_empty() && sb.world().managed("p1").is_empty());
}

/// The binary: a name in the manifest is resolved (prune lists the organization), an unknown
/// one is a plan error with its hint; the official CLI's URL variables are fallbacks.
#[test]
fn plan_resolves_an_organization_name_and_reads_the_clis_url_variables() {
    let api = Api::start(
        json!({"organizations": [{"id": ORG, "name": "acme"}],
               "projects": [{"id": "p1", "organization": ORG}]}),
        Faults::default(),
    );
    let dir = dir_with(
        "version: 1\norganization: acme\nprune: true\nprojects:\n  p1:\n    absent: true\n",
    );
    let out = api.run(dir.path(), &["plan"]).run();
    assert_eq!(out.code, 0, "{out:#?}");
    let dir = dir_with(
        "version: 1\norganization: nope\nprune: true\nprojects:\n  p1:\n    absent: true\n",
    );
    let out = api.run(dir.path(), &["plan"]).run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.all().contains("organization `nope` was not found")
            && out.all().contains("platform organization:info"),
        "{out:#?}"
    );
    let out = api.run(dir.path(), &["validate", "--online"]).run();
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stdout.contains("invalid    organization nope"),
        "{out:#?}"
    );

    // PLATFORMSH_CLI_API_URL and _AUTH_URL in place of bbsync's own.
    let dir = dir_with("version: 1\nprojects:\n  p1:\n    absent: true\n");
    let cli_env = |run: Run| {
        run.env("PLATFORMSH_CLI_TOKEN", api.sandbox.token())
            .env("PLATFORMSH_CLI_API_URL", api.sandbox.url())
            .env("PLATFORMSH_CLI_AUTH_URL", api.sandbox.url())
    };
    let out = cli_env(Run::new(dir.path(), &["plan"])).run();
    assert_eq!(out.code, 0, "{out:#?}");
    let out =
        cli_env(Run::new(dir.path(), &["plan"]).env("UPSUN_CLI_API_URL", "http://127.0.0.1:9"))
            .run();
    assert_eq!(out.code, 0, "the PLATFORMSH_CLI_ ones come first: {out:#?}");
    // bbsync's own variable wins.
    let out =
        cli_env(Run::new(dir.path(), &["plan"]).env("BBSYNC_AUTH_URL", "http://127.0.0.1:9")).run();
    assert_eq!(out.code, 1, "{out:#?}");
}

/// The binary: a step-up challenge reaches the plan with its MFA/SSO hint.
#[test]
fn plan_shows_the_step_up_hint() {
    let api = Api::start(json!({"projects": [{"id": "p1"}]}), Faults::default());
    api.sandbox.world().step_up = Some(vec!["sso:acme".to_owned()]);
    let dir = dir_with("version: 1\nprojects:\n  p1:\n    absent: true\n");
    let out = api.run(dir.path(), &["plan"]).run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.all()
            .contains("stronger authentication than this API token's user has (sso:acme)")
            && out
                .all()
                .contains("exclude the machine user from SSO enforcement"),
        "{out:#?}"
    );
}
