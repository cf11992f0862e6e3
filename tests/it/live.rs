//! The API client against the sandbox over real loopback HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bbsync::live::{self, Awaited, Client, ClientConfig, Validation};
use bbsync::model::ids::{IntegrationId, OrganizationId, ProjectId};
use bbsync::model::live::ProjectLive;
use bbsync::model::secret::Secret;
use bbsync::model::{Field, FieldValue, IntegrationType, SecretField};
use bbsync::sandbox::{Faults, Sandbox, SandboxConfig, Seed};
use bbsync::wire::body;
use serde_json::{Value, json};

pub fn seed(value: Value) -> Seed {
    serde_json::from_value(value).expect("a valid seed")
}

pub async fn sandbox(seed_value: Value, faults: Faults) -> Sandbox {
    Sandbox::start(SandboxConfig {
        seed: seed(seed_value),
        faults,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts")
}

pub fn client_for(sandbox: &Sandbox) -> Client {
    let mut config = ClientConfig::new(sandbox.url(), sandbox.url(), Secret::new(sandbox.token()));
    config.backoff = Duration::from_millis(5);
    config.max_backoff = Duration::from_millis(200);
    config.activity_poll = Duration::from_millis(10);
    config.timeout = Duration::from_secs(5);
    Client::new(config).expect("a client")
}

fn pid(id: &str) -> ProjectId {
    ProjectId::new(id)
}

fn cloud_body() -> Value {
    let fields: BTreeMap<Field, FieldValue> = [
        (Field::Repository, FieldValue::Text("acme/web".into())),
        (Field::AppKey, FieldValue::Text("key".into())),
        (Field::FetchBranches, FieldValue::Bool(false)),
        (Field::PruneBranches, FieldValue::Bool(false)),
        (Field::BuildPullRequests, FieldValue::Bool(true)),
        (Field::ResyncPullRequests, FieldValue::Bool(false)),
    ]
    .into_iter()
    .collect();
    body::create(
        IntegrationType::Bitbucket,
        &fields,
        (SecretField::AppSecret, &Secret::new("secret")),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn create_update_delete_send_the_exact_bodies() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    let client = client_for(&sb);
    let created = client
        .create_integration(&pid("p1"), &cloud_body(), &|_| false)
        .await
        .unwrap();
    let entity = created.entity.expect("the entity");
    assert_eq!(created.activities.len(), 2);
    let id = IntegrationId::new(entity.id.clone());
    assert_eq!(
        entity.links.href("#edit").map(|h| &h[..17]),
        Some("/api/projects/p1/"),
        "operation links are paths"
    );
    let edit = entity.links.resolved("#edit");
    assert!(
        edit.as_deref()
            .unwrap()
            .starts_with("https://eu-3.platform.sh/api/projects/p1/"),
        "resolved against `self`, which names a regional host"
    );
    client
        .update_integration(
            &pid("p1"),
            &id,
            edit.as_deref(),
            &json!({"build_pull_requests": false}),
        )
        .await
        .unwrap();
    client
        .delete_integration(&pid("p1"), &id, entity.links.href("self"))
        .await
        .unwrap();
    let writes = sb.world().writes.clone();
    assert_eq!(writes.len(), 3);
    assert_eq!(writes[0].method, "POST");
    assert_eq!(
        writes[0].body,
        json!({"type": "bitbucket", "repository": "acme/web", "app_credentials": {"key": "key", "secret": "secret"},
               "fetch_branches": false, "prune_branches": false, "build_pull_requests": true, "resync_pull_requests": false,
               "environment_init_resources": "parent"})
    );
    assert_eq!(
        (writes[1].method.as_str(), &writes[1].body),
        ("PATCH", &json!({"build_pull_requests": false}))
    );
    assert_eq!(
        writes[1].path,
        format!("/projects/p1/integrations/{id}"),
        "the regional link was rebased"
    );
    assert_eq!(writes[2].method, "DELETE");
    assert!(sb.world().managed("p1").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_token_is_cached_and_renewed_after_expiry() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    let client = client_for(&sb);
    for _ in 0..5 {
        client.list_integrations(&pid("p1")).await.unwrap();
    }
    assert_eq!(
        client.stats().token_exchanges.load(Ordering::Relaxed),
        1,
        "one exchange for five calls"
    );
    sb.world().expire_tokens();
    client.list_integrations(&pid("p1")).await.unwrap();
    assert_eq!(
        client.stats().token_exchanges.load(Ordering::Relaxed),
        2,
        "a 401 made it exchange again"
    );
    assert_eq!(client.stats().responses_with(401), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_token_is_a_clear_error() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    let config = ClientConfig::new(sb.url(), sb.url(), Secret::new("wrong-token"));
    let client = Client::new(config).unwrap();
    let error = client
        .list_integrations(&pid("p1"))
        .await
        .unwrap_err()
        .to_string();
    // The auth server's `Invalid API token.` and `invalid_grant`, without a doubled `.:`.
    assert_eq!(
        error,
        "the API token was rejected: Invalid API token: invalid_grant"
    );
    assert!(!error.contains("wrong-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn http_urls_are_refused_unless_loopback() {
    let token = Secret::new("t");
    let refused = Client::new(ClientConfig::new(
        "http://api.example.com",
        "https://auth.example.com",
        token.clone(),
    ));
    assert!(refused.err().unwrap().to_string().contains("non-loopback"));
    assert!(
        Client::new(ClientConfig::new(
            "http://127.0.0.1:1",
            "http://localhost:1",
            token
        ))
        .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_full_of_unknown_fields_are_read() {
    let strange = json!({"id": "i1", "type": "bitbucket", "repository": "a/b", "app_credentials": {"key": "k"},
        "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false,
        "brand_new_field": {"nested": [1, 2]}, "another": null});
    let sb = sandbox(json!({"projects": [{"id": "p1", "integrations": [strange, {"id": "g1", "type": "github", "repository": "x/y", "future": true}, {"id": "w1", "type": "some_future_type"}]}]}), Faults::default()).await;
    let client = client_for(&sb);
    let list = client.list_integrations(&pid("p1")).await;
    // The sandbox refuses unknown fields in bodies it is sent, but a seed may carry anything.
    let list = list.unwrap();
    match live::project_live(&list) {
        ProjectLive::Known { managed, others } => {
            assert_eq!(managed.len(), 1);
            assert_eq!(
                managed[0].fields[&Field::AppKey],
                FieldValue::Text("k".into())
            );
            assert_eq!(others.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn organization_listings_follow_cursors_across_pages() {
    let projects: Vec<Value> = (0..47)
        .map(|i| json!({"id": format!("p{i:03}"), "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K"}))
        .collect();
    let mut other = projects.clone();
    other.push(json!({"id": "elsewhere", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5M"}));
    let sb = Sandbox::start(SandboxConfig {
        seed: seed(json!({"projects": other})),
        page_size: 10,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = client_for(&sb);
    let listed = client
        .organization_projects(&OrganizationId::new("01J7ZQ4M1B6C8D9E0F2G3H4J5K"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 47);
    let pages = sb
        .world()
        .requests
        .iter()
        .filter(|r| r.contains("/organizations/01J7ZQ4M1B6C8D9E0F2G3H4J5K/projects"))
        .count();
    assert_eq!(pages, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_that_fails_part_way_fails_whole() {
    let projects: Vec<Value> = (0..30)
        .map(|i| json!({"id": format!("p{i:03}"), "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K"}))
        .collect();
    let sb = Sandbox::start(SandboxConfig {
        seed: seed(
            json!({"organizations": [{"id": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "fail_after_pages": 1}], "projects": projects}),
        ),
        page_size: 10,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = client_for(&sb);
    assert!(
        client
            .organization_projects(&OrganizationId::new("01J7ZQ4M1B6C8D9E0F2G3H4J5K"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_429_and_503_honouring_retry_after() {
    let faults = Faults {
        error_rate: 0.3,
        rate_limit_rate: 0.3,
        retry_after: 0.05,
        seed: 7,
        ..Faults::default()
    };
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), faults).await;
    let mut config = ClientConfig::new(sb.url(), sb.url(), Secret::new(sb.token()));
    config.backoff = Duration::from_millis(1);
    config.max_attempts = 12;
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    for _ in 0..20 {
        client.list_integrations(&pid("p1")).await.unwrap();
    }
    let stats = client.stats();
    assert!(stats.responses_with(429) > 0 && stats.responses_with(503) > 0);
    let waited = Duration::from_millis(50) * u32::try_from(stats.responses_with(429)).unwrap();
    assert!(
        started.elapsed() >= waited,
        "each 429 waited its Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_create_answer_makes_no_duplicate() {
    let faults = Faults {
        drop_post_rate: 1.0,
        ..Faults::default()
    };
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), faults).await;
    let client = client_for(&sb);
    let is_ours = |i: &bbsync::wire::ApiIntegration| {
        i.kind == "bitbucket" && i.fields.get("repository") == Some(&json!("acme/web"))
    };
    let written = client
        .create_integration(&pid("p1"), &cloud_body(), &is_ours)
        .await
        .unwrap();
    assert!(written.recovered, "found by re-listing");
    assert_eq!(sb.world().managed("p1").len(), 1);
    assert_eq!(
        sb.world()
            .writes
            .iter()
            .filter(|w| w.method == "POST")
            .count(),
        1,
        "posted once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_project_fails_alone() {
    let sb = sandbox(
        json!({"projects": [{"id": "good"}, {"id": "bad", "broken": true}, {"id": "also"}]}),
        Faults::default(),
    )
    .await;
    let client = client_for(&sb);
    let ids: BTreeSet<ProjectId> = ["good", "bad", "also"].into_iter().map(pid).collect();
    let state = live::fetch(&client, &ids, None, None, &|_, _| {}).await;
    assert!(matches!(
        state.projects[&pid("good")],
        ProjectLive::Known { .. }
    ));
    assert!(matches!(
        state.projects[&pid("also")],
        ProjectLive::Known { .. }
    ));
    match &state.projects[&pid("bad")] {
        ProjectLive::Unknown { error } => assert!(error.contains("HTTP 500"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_and_activities() {
    let sb = sandbox(
        json!({"projects": [{"id": "p1", "fail_activities": true, "validation_errors": {"app_credentials": "The OAuth consumer is not private."}}]}),
        Faults::default(),
    )
    .await;
    let client = client_for(&sb);
    let created = client
        .create_integration(&pid("p1"), &cloud_body(), &|_| false)
        .await
        .unwrap();
    let waited = client
        .wait_for_activities(
            &pid("p1"),
            Awaited::Started(created.activities),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(!waited.timed_out);
    let finished = waited.activities;
    assert!(finished.iter().all(|a| a.is_finished()));
    assert!(
        finished
            .iter()
            .any(|a| a.result.as_deref() == Some("failure"))
    );
    let entity = created.entity.unwrap();
    let validation = client
        .validate_integration(entity.links.href("#validate"))
        .await
        .unwrap();
    assert_eq!(
        validation,
        Validation::Invalid(vec![
            "app_credentials: The OAuth consumer is not private.".into()
        ])
    );
    assert_eq!(
        client.validate_integration(None).await.unwrap(),
        Validation::Unsupported
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_work_with_and_without_the_api_prefix() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    let prefixed = format!("{}/api", sb.url());
    let config = ClientConfig::new(&prefixed, sb.url(), Secret::new(sb.token()));
    let client = Client::new(config).unwrap();
    assert!(
        client
            .list_integrations(&pid("p1"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_rps_spaces_requests_out() {
    let sb = sandbox(json!({"projects": [{"id": "p1"}]}), Faults::default()).await;
    let mut config = ClientConfig::new(sb.url(), sb.url(), Secret::new(sb.token()));
    config.max_rps = Some(20.0);
    let client = Client::new(config).unwrap();
    client.list_integrations(&pid("p1")).await.unwrap();
    let started = Instant::now();
    let project = pid("p1");
    let calls = (0..10).map(|_| client.list_integrations(&project));
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }
    // Ten requests at 20 per second take at least 9 gaps of 50 ms, however many run at once.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}
