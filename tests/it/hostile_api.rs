//! A hostile or broken API: each test is an attack that found a defect, against the sandbox's
//! hostile knobs (`sandbox.world().hostile`: canned answers, endless bodies, echoed input,
//! creates that commit late), through the client or the binary.

use std::time::Duration;

use bbsync::live::Client;
use bbsync::model::ids::ProjectId;
use bbsync::sandbox::{Canned, CannedBody, Faults, Sandbox};
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
