//! Reliability: convergence under every injected fault with zero duplicates and zero writes to
//! unmanaged integrations, and no secret on any output channel at any verbosity.

use std::collections::BTreeMap;
use std::time::Duration;

use bbsync::sandbox::{Faults, SandboxConfig};
use serde_json::{Value, json};

use crate::sync::{Api, SECRET, SERVER_TOKEN, dir_with};

fn cloud(repository: &str) -> Value {
    json!({"type": "bitbucket", "repository": repository, "app_credentials": {"key": "consumer-key"},
           "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false})
}

/// 60 projects: 20 to create, 15 drifted, 10 to delete, 5 to replace, 10 in sync; every fifth
/// also has GitHub and webhook integrations bbsync must never touch.
fn mixed_world() -> (Value, String) {
    let mut projects = Vec::new();
    let mut manifest = String::from("version: 1\nprojects:\n");
    let creds =
        "      app_credentials: {key: \"${BITBUCKET_KEY}\", secret: \"${BITBUCKET_SECRET}\"}\n";
    for i in 0..60 {
        let id = format!("p{i:02}");
        let repository = format!("acme/r{i}");
        let mut integrations = Vec::new();
        match i {
            0..20 => {}
            20..35 => {
                let mut drifted = cloud(&repository);
                drifted["build_pull_requests"] = json!(false);
                integrations.push(drifted);
            }
            35..45 => integrations.push(cloud(&repository)),
            45..50 => integrations.push(cloud(&repository)),
            _ => integrations.push(cloud(&repository)),
        }
        // A GitHub integration only beside a Bitbucket one that stays or goes: where a
        // Bitbucket one is created (or replaced), the GitHub one is the project's code source,
        // and neither would be planned.
        if i % 5 == 0 && (20..45).contains(&i) {
            integrations.push(json!({"type": "github", "repository": format!("acme/gh{i}"), "build_pull_requests": true}));
            integrations
                .push(json!({"type": "webhook", "url": format!("https://hooks.example.com/{i}")}));
        }
        projects.push(json!({"id": id, "integrations": integrations}));
        match i {
            35..45 => manifest.push_str(&format!("  {id}:\n    absent: true\n")),
            45..50 => manifest.push_str(&format!(
                "  {id}:\n    bitbucket_server:\n      url: https://bb.example.com\n      username: bot\n      token: ${{BBS_TOKEN}}\n      project: P{i}\n      repository: r{i}\n"
            )),
            _ => manifest.push_str(&format!("  {id}:\n    bitbucket:\n      repository: {repository}\n{creds}")),
        }
    }
    (json!({"projects": projects}), manifest)
}

fn unmanaged(api: &Api) -> BTreeMap<String, Value> {
    let dump = api.sandbox.world().dump();
    let mut found = BTreeMap::new();
    for project in dump["projects"].as_array().unwrap() {
        for integration in project["integrations"].as_array().unwrap() {
            let kind = integration["type"].as_str().unwrap();
            if kind != "bitbucket" && kind != "bitbucket_server" {
                let mut copy = integration.clone();
                copy.as_object_mut().unwrap().remove("updated_at");
                found.insert(integration["id"].as_str().unwrap().to_owned(), copy);
            }
        }
    }
    found
}

fn converge_under_faults(seed: u64) {
    let (world, manifest) = mixed_world();
    let api = Api::start_with(SandboxConfig {
        seed: serde_json::from_value(world).unwrap(),
        faults: Faults {
            error_rate: 0.15,
            rate_limit_rate: 0.10,
            retry_after: 0.01,
            drop_post_rate: 0.10,
            slow_rate: 0.05,
            slow_by: Duration::from_secs(3),
            seed,
            ..Faults::default()
        },
        // Access tokens expire mid-run, again and again.
        token_lifetime: Duration::from_secs(1),
        ..SandboxConfig::default()
    });
    let before = unmanaged(&api);
    let dir = dir_with(&manifest);
    api.converge(dir.path(), &["--timeout", "1s", "--concurrency", "16"], 3);
    let world = api.sandbox.world();
    for i in 0..60 {
        let project = format!("p{i:02}");
        let managed = world.managed(&project);
        let expected = usize::from(!(35..45).contains(&i));
        assert_eq!(managed.len(), expected, "seed {seed}: {project}");
        let posts = world
            .writes
            .iter()
            .filter(|w| w.method == "POST" && w.path == format!("/projects/{project}/integrations"))
            .count();
        let creates = usize::from((0..20).contains(&i) || (45..50).contains(&i));
        assert_eq!(
            posts, creates,
            "seed {seed}: {project} was posted {posts} times: a duplicate create"
        );
    }
    drop(world);
    assert_eq!(
        unmanaged(&api),
        before,
        "seed {seed}: an unmanaged integration was touched"
    );
}

#[test]
fn mixed_changes_converge_under_faults_seed_1() {
    converge_under_faults(1);
}

#[test]
fn mixed_changes_converge_under_faults_seed_2() {
    converge_under_faults(2);
}

#[test]
fn mixed_changes_converge_under_faults_seed_3() {
    converge_under_faults(3);
}

/// Every command, every output format, every verbosity, both log formats: no secret, no access
/// token, anywhere (stdout, stderr, plan files, exported manifests).
#[test]
fn no_secret_on_any_channel_at_any_verbosity() {
    let (world, manifest) = mixed_world();
    let api = Api::start(world, Faults::default());
    let dir = dir_with(&manifest);
    let forbidden = [SECRET, SERVER_TOKEN, "sandbox-access-", api.sandbox.token()];
    let run = |args: &[&str]| api.run_quietly(dir.path(), args).forbid(&forbidden).run();
    let mut runs = 0;
    for verbosity in ["-q", "", "-v", "-vv", "-vvv"] {
        for log_format in ["text", "json"] {
            let mut base = vec!["--log-format", log_format];
            if !verbosity.is_empty() {
                base.push(verbosity);
            }
            for command in [
                vec!["validate"],
                vec!["validate", "--online"],
                vec!["plan"],
                vec!["plan", "--format", "json", "--out", "plan.json"],
                vec!["plan", "--format", "markdown", "--rotate-credentials"],
                vec!["export", "--project", "p20", "--project", "p45", "--full"],
            ] {
                let mut args = command.clone();
                args.extend_from_slice(&base);
                let out = run(&args);
                assert!(out.code == 0 || out.code == 4, "{args:?}: {out:#?}");
                runs += 1;
            }
            let plan_file = std::fs::read_to_string(dir.path().join("plan.json")).unwrap();
            for secret in forbidden {
                assert!(!plan_file.contains(secret), "the plan file holds a secret");
            }
        }
    }
    // Applies last (they change the world): text and JSON reports, a failing one included.
    let out = run(&[
        "apply",
        "--auto-approve",
        "--format",
        "json",
        "-vvv",
        "--rotate-credentials",
    ]);
    assert_eq!(out.code, 0, "{out:#?}");
    let out = run(&[
        "apply",
        "--auto-approve",
        "-vvv",
        "--rotate-credentials",
        "--api-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(runs >= 60);
}
