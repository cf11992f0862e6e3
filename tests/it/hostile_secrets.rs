//! Secrets against a manifest author who can open a pull request, and whose plan is posted
//! publicly: bbsync's own credentials can never be referenced, a variable used in a secret
//! field can never be used in a public one, and whatever still carries a secret value to an
//! output (an API answer, a value that happens to equal a secret) is redacted there.

use bbsync::sandbox::Faults;
use serde_json::{Value, json};

use crate::sync::{Api, SECRET, dir_with};

const CREDS: &str =
    "      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n";

fn cloud_live(key: &str) -> Value {
    json!({"type": "bitbucket", "repository": "acme/web", "app_credentials": {"key": key},
           "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false})
}

/// The attacks as found: each validated, and its resolved value was printed in plans.
#[test]
fn credentials_and_secret_variables_in_public_fields_are_refused_before_any_request() {
    let api = Api::start(json!({"projects": [{"id": "web"}]}), Faults::default());
    let cases = [
        (
            "version: 1\nprojects:\n  web:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: \"${PLATFORMSH_CLI_TOKEN}\", secret: \"${BITBUCKET_SECRET}\"}\n".to_owned(),
            "integrations.yaml:6:",
            "bbsync's own credential",
        ),
        (
            format!(
                "version: 1\nprojects:\n  web:\n    bitbucket_server:\n      url: https://${{BITBUCKET_SECRET}}.example.com\n      username: bot\n      token: ${{BBS_TOKEN}}\n      project: P\n      repository: r\n  api:\n    bitbucket:\n      repository: acme/api\n{CREDS}"
            ),
            "integrations.yaml:5:12",
            "which holds a secret",
        ),
        (
            format!(
                "version: 1\nprojects:\n  web:\n    bitbucket:\n      repository: acme/${{BITBUCKET_SECRET}}\n{CREDS}"
            ),
            "integrations.yaml:5:19",
            "which holds a secret",
        ),
    ];
    for (manifest, at, what) in cases {
        let dir = dir_with(&manifest);
        for command in [
            &["validate"][..],
            &["plan"],
            &["plan", "--format", "markdown"],
        ] {
            let out = api
                .run(dir.path(), command)
                .forbid(&[api.sandbox.token()])
                .run();
            assert_eq!(out.code, 4, "{manifest}\n{out:#?}");
            assert!(out.stderr.contains(at), "{at}\n{out:#?}");
            assert!(out.stderr.contains(what), "{out:#?}");
            assert!(out.stdout.is_empty(), "{out:#?}");
        }
    }
    assert_eq!(api.sandbox.world().writes.len(), 0, "nothing written");
}

/// Defence in depth: the API answers with a secret's value (a consumer key set to the secret
/// in the Console, or an echoing API), and every rendering, the log and the plan file show
/// `[redacted]` instead.
#[test]
fn a_secret_value_the_api_returns_is_redacted_from_every_output() {
    const TOKEN: &str = "api-token-VALUE-123";
    for (live_key, name) in [(SECRET, "the Bitbucket secret"), (TOKEN, "the API token")] {
        let api = Api::start(
            json!({"token": TOKEN, "projects": [{"id": "web", "integrations": [cloud_live(live_key)]}]}),
            Faults::default(),
        );
        let dir = dir_with(&format!(
            "version: 1\nprojects:\n  web:\n    bitbucket:\n      repository: acme/web\n{CREDS}"
        ));
        for format in ["text", "json", "markdown"] {
            let out = api
                .run(
                    dir.path(),
                    &["plan", "--format", format, "--out", "plan.json"],
                )
                .forbid(&[TOKEN])
                .run();
            assert_eq!(out.code, 0, "{name}: {out:#?}");
            assert!(out.stdout.contains("[redacted]"), "{name}: {out:#?}");
            let saved = std::fs::read_to_string(dir.path().join("plan.json")).unwrap();
            assert!(
                !saved.contains(live_key) && saved.contains("[redacted]"),
                "{name}: {saved}"
            );
        }
    }
}
