//! `bbsync plan` and `bbsync apply` end to end: the binary against a sandbox over loopback.

use std::path::Path;

use bbsync::sandbox::{Faults, Sandbox, SandboxConfig, Seed};
use serde_json::{Value, json};

use crate::common::{Outcome, Run};

/// A sandbox on its own runtime, so the binary can talk to it while the test waits.
pub struct Api {
    pub sandbox: Sandbox,
    _runtime: tokio::runtime::Runtime,
}

impl Api {
    pub fn start(seed: Value, faults: Faults) -> Self {
        Self::start_with(SandboxConfig {
            seed: serde_json::from_value::<Seed>(seed).expect("a valid seed"),
            faults,
            ..SandboxConfig::default()
        })
    }

    pub fn start_with(config: SandboxConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sandbox = runtime.block_on(Sandbox::start(config)).unwrap();
        Self {
            sandbox,
            _runtime: runtime,
        }
    }

    /// The environment that points bbsync at this sandbox, with the test secrets set.
    pub fn environment(&self) -> [(&'static str, String); 9] {
        [
            // Their Bitbucket Server is `https://bb.example.com`, out of reach: the checks are
            // tested on their own (`tests/it/preflight.rs`), against seeded fakes.
            ("BBSYNC_SKIP_BITBUCKET_CHECKS", "true".to_owned()),
            ("BBSYNC_API_URL", self.sandbox.url().to_owned()),
            ("BBSYNC_AUTH_URL", self.sandbox.url().to_owned()),
            // The sandbox serves the fake Bitbucket too (an unseeded one lets everything
            // through; tests of the pre-flight seed it).
            ("BBSYNC_BITBUCKET_API_URL", self.sandbox.url().to_owned()),
            ("BBSYNC_BITBUCKET_AUTH_URL", self.sandbox.url().to_owned()),
            ("PLATFORMSH_CLI_TOKEN", self.sandbox.token().to_owned()),
            ("BITBUCKET_KEY", "consumer-key".to_owned()),
            ("BITBUCKET_SECRET", SECRET.to_owned()),
            ("BBS_TOKEN", SERVER_TOKEN.to_owned()),
        ]
    }

    /// `bbsync ARGS` in `dir`, pointed at this sandbox, started and left running (stdout and
    /// stderr piped), for tests that signal it.
    pub fn spawn(&self, dir: &Path, args: &[&str]) -> std::process::Child {
        std::process::Command::new(crate::common::binary())
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("NO_COLOR", "1")
            .envs(self.environment())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `bbsync ARGS` in `dir`, pointed at this sandbox (no verbosity added).
    pub fn run_quietly(&self, dir: &Path, args: &[&str]) -> Run {
        self.environment()
            .iter()
            .fold(Run::new(dir, args), |run, (name, value)| {
                run.env(name, value)
            })
    }

    /// `bbsync ARGS -vvv` in `dir`, pointed at this sandbox, with the test secrets set: every
    /// run is scanned for them (and for access tokens) at the highest verbosity.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Run {
        let mut args = args.to_vec();
        args.push("-vvv");
        self.run_quietly(dir, &args).forbid(&[
            SECRET,
            SERVER_TOKEN,
            "rotated-SECRET",
            "sandbox-access-",
        ])
    }

    /// Applies the manifest in `dir` until a plan shows no change, at most `max_runs` times,
    /// and returns how many applies it took. `extra` holds global flags, given to both commands.
    /// Every run is scanned for secrets.
    ///
    /// The applies run under the sandbox's faults; each check runs with the faults off. A check
    /// under faults would exit 1 whenever one of its reads ran out of retries (an unknown
    /// project, rightly an error), which says nothing about whether the applies converged.
    pub fn converge(&self, dir: &Path, extra: &[&str], max_runs: usize) -> usize {
        let faults = self.sandbox.world().faults.clone();
        for run in 1..=max_runs {
            let mut apply = vec!["apply", "--auto-approve"];
            apply.extend_from_slice(extra);
            let out = self.run(dir, &apply).run();
            assert_ne!(out.code, 4, "{out:#?}");
            let mut plan = vec!["plan", "--detailed-exitcode"];
            plan.extend_from_slice(extra);
            self.sandbox.world().faults = Faults::default();
            let check = self.run(dir, &plan).run();
            self.sandbox.world().faults = faults.clone();
            eprintln!("apply {run}: exit {}; plan: exit {}", out.code, check.code);
            if check.code == 0 {
                return run;
            }
            assert!(
                run < max_runs,
                "not converged after {run} runs:\n{out:#?}\n{check:#?}"
            );
        }
        unreachable!("the loop returns or fails")
    }

    pub fn writes(&self) -> usize {
        self.sandbox.world().writes.len()
    }

    pub fn managed(&self, project: &str) -> Vec<(String, Value)> {
        self.sandbox
            .world()
            .managed(project)
            .into_iter()
            .map(|i| (i.kind().to_owned(), Value::Object(i.fields.clone())))
            .collect()
    }
}

pub const SECRET: &str = "s3cr3t-consumer-VALUE";
pub const SERVER_TOKEN: &str = "s3rv3r-t0ken-VALUE";

pub fn cloud_live(repository: &str) -> Value {
    json!({"type": "bitbucket", "repository": repository, "app_credentials": {"key": "consumer-key"},
           "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false})
}

/// Five projects: in sync, drifted, missing, to delete, to replace; plus an unmanaged GitHub one.
pub fn world() -> Value {
    let mut drifted = cloud_live("acme/docs");
    drifted["build_pull_requests"] = json!(false);
    json!({"projects": [
        {"id": "insync", "integrations": [cloud_live("acme/web"), {"type": "github", "repository": "acme/gh"}]},
        {"id": "drifted", "integrations": [drifted]},
        {"id": "missing"},
        {"id": "todelete", "integrations": [cloud_live("acme/old")]},
        {"id": "toreplace", "integrations": [cloud_live("acme/moved")]},
    ]})
}

pub const MANIFEST: &str = r#"version: 1
projects:
  insync:
    bitbucket:
      repository: acme/web
      app_credentials: {key: "${BITBUCKET_KEY}", secret: "${BITBUCKET_SECRET}"}
  drifted:
    bitbucket:
      repository: acme/docs
      app_credentials: {key: "${BITBUCKET_KEY}", secret: "${BITBUCKET_SECRET}"}
  missing:
    bitbucket:
      repository: https://bitbucket.org/acme/shop
      app_credentials: {key: "${BITBUCKET_KEY}", secret: "${BITBUCKET_SECRET}"}
      fetch_branches: false
  todelete:
    absent: true
  toreplace:
    bitbucket_server:
      url: https://bb.example.com
      username: bot
      token: ${BBS_TOKEN}
      project: WEB
      repository: moved
"#;

pub fn dir_with(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("integrations.yaml"), manifest).unwrap();
    dir
}

fn assert_no_secret(out: &Outcome) {
    let all = out.all();
    for secret in [SECRET, SERVER_TOKEN, "sandbox-access-"] {
        assert!(!all.contains(secret), "a secret leaked:\n{all}");
    }
}

#[test]
fn plan_then_apply_then_plan_is_empty() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let plan = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(plan.code, 2, "{plan:#?}");
    assert!(plan.stdout.starts_with("Plan: 1 to create, 1 to update, 1 to delete, 1 to replace, 1 unchanged, 0 blocked, 0 errors"), "{}", plan.stdout);
    assert_eq!(api.writes(), 0, "plan never writes");
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(apply.code, 0, "{apply:#?}");
    assert!(
        apply
            .stdout
            .contains("Apply: 1 created, 1 updated, 1 deleted, 1 replaced, 1 unchanged, 0 failed"),
        "{}",
        apply.stdout
    );
    assert_no_secret(&apply);
    let again = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(again.stdout.contains("No changes"));
    // What the API now holds, and what it was sent.
    assert_eq!(api.managed("todelete").len(), 0);
    assert_eq!(api.managed("toreplace")[0].0, "bitbucket_server");
    assert_eq!(api.managed("missing")[0].1["prune_branches"], json!(false));
    let world = api.sandbox.world();
    let github = &world.projects["insync"].integrations;
    assert!(
        github.iter().any(|i| i.kind() == "github"),
        "the GitHub integration is untouched"
    );
    let patch = world.writes.iter().find(|w| w.method == "PATCH").unwrap();
    assert_eq!(
        patch.body,
        json!({"build_pull_requests": true}),
        "only the changed key, no secret"
    );
    let create = world
        .writes
        .iter()
        .find(|w| w.path == "/projects/missing/integrations")
        .unwrap();
    assert_eq!(
        create.body,
        json!({"type": "bitbucket", "repository": "acme/shop", "app_credentials": {"key": "consumer-key", "secret": SECRET},
               "fetch_branches": false, "prune_branches": false, "build_pull_requests": true, "resync_pull_requests": false,
               "environment_init_resources": "parent"}),
        "every managed field, and what `platform integration:add` sends for an unmanaged one"
    );
    assert_eq!(
        world.managed("missing")[0].fields["environment_init_resources"],
        json!("parent")
    );
}

#[test]
fn plan_formats_and_project_selection() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let json = api.run(dir.path(), &["plan", "--format", "json"]).run();
    assert_eq!(json.code, 0);
    let plan: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(plan["format_version"], "1");
    assert_eq!(plan["summary"]["create"], 1);
    assert!(
        plan["manifest_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_no_secret(&json);
    let md = api.run(dir.path(), &["plan", "--format", "markdown"]).run();
    assert!(
        md.stdout.contains("### bbsync plan") && md.stdout.contains("**delete**"),
        "{}",
        md.stdout
    );
    assert!(!md.stdout.contains("Shortened"), "{}", md.stdout);
    // A limit for a pull-request comment: the summary and the delete row stay, diffs go.
    let short = api
        .run(
            dir.path(),
            &["plan", "--format", "markdown", "--markdown-limit", "1300"],
        )
        .run();
    assert_eq!(short.code, 0, "{short:#?}");
    assert!(short.stdout.chars().count() <= 1300, "{}", short.stdout);
    assert!(
        short.stdout.contains("Shortened to fit 1300 characters")
            && short.stdout.contains("**delete**"),
        "{}",
        short.stdout
    );
    let unlimited = api
        .run(
            dir.path(),
            &["plan", "--format", "markdown", "--markdown-limit", "0"],
        )
        .run();
    assert_eq!(unlimited.stdout, md.stdout);
    let partial = api
        .run(
            dir.path(),
            &["plan", "--project", "drifted", "--detailed-exitcode"],
        )
        .run();
    assert_eq!(partial.code, 2);
    assert!(
        partial.stdout.contains("partial plan"),
        "{}",
        partial.stdout
    );
    assert!(
        partial
            .stdout
            .starts_with("Plan: 0 to create, 1 to update, 0 to delete, 0 to replace, 0 unchanged"),
        "{}",
        partial.stdout
    );
    let insync = api
        .run(
            dir.path(),
            &["plan", "--project", "insync", "--detailed-exitcode"],
        )
        .run();
    assert_eq!(insync.code, 0, "{insync:#?}");
}

#[test]
fn a_broken_project_exits_1_and_gets_no_action() {
    let mut seed = world();
    seed["projects"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "broken", "broken": true}));
    let api = Api::start(seed, Faults::default());
    let manifest = format!("{MANIFEST}  broken:\n    absent: true\n");
    let dir = dir_with(&manifest);
    let plan = api.run(dir.path(), &["plan"]).run();
    assert_eq!(plan.code, 1, "{plan:#?}");
    assert!(plan.stdout.contains("x error    broken"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("live state unknown"),
        "{}",
        plan.stdout
    );
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(
        apply.code, 1,
        "the other projects are applied, and the exit says not all is well"
    );
    assert!(
        apply.stdout.contains("skipped   broken"),
        "{}",
        apply.stdout
    );
    assert_eq!(api.managed("todelete").len(), 0, "the others were applied");
}

#[test]
fn a_saved_plan_is_applied_exactly_and_refused_when_stale() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let plan = api.run(dir.path(), &["plan", "--out", "plan.json"]).run();
    assert_eq!(plan.code, 0, "{plan:#?}");
    let saved = std::fs::read_to_string(dir.path().join("plan.json")).unwrap();
    assert!(
        !saved.contains(SECRET)
            && !saved.contains(SERVER_TOKEN)
            && saved.contains("${BITBUCKET_SECRET}")
    );
    // Drift after the plan: the saved plan no longer describes the live state.
    assert!(
        api.sandbox
            .world()
            .tamper("todelete", "build_pull_requests", json!(false))
    );
    let stale = api.run(dir.path(), &["apply", "plan.json"]).run();
    assert_eq!(stale.code, 3, "{stale:#?}");
    assert!(
        stale.stderr.contains("stale") && stale.stderr.contains("todelete"),
        "{}",
        stale.stderr
    );
    assert_eq!(api.writes(), 0, "nothing written");
    // A fresh plan applies, without -f or --auto-approve.
    api.run(dir.path(), &["plan", "--out", "plan.json"]).run();
    let other_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("plan.json"),
        other_dir.path().join("plan.json"),
    )
    .unwrap();
    let applied = api.run(other_dir.path(), &["apply", "plan.json"]).run();
    assert_eq!(applied.code, 0, "{applied:#?}");
    let again = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(again.code, 0, "{again:#?}");
}

#[test]
fn an_incompatible_plan_file_is_refused() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    std::fs::write(
        dir.path().join("plan.json"),
        r#"{"format_version": "99", "actions": []}"#,
    )
    .unwrap();
    let out = api.run(dir.path(), &["apply", "plan.json"]).run();
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stderr.contains("format version `99`"), "{}", out.stderr);
}

#[test]
fn max_deletes_stops_everything_before_a_write() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api
        .run(
            dir.path(),
            &["apply", "--auto-approve", "--max-deletes", "1"],
        )
        .run();
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(
        out.stderr.contains("the plan deletes 2 integration(s)"),
        "{}",
        out.stderr
    );
    assert_eq!(api.writes(), 0);
    let ok = api
        .run(
            dir.path(),
            &["apply", "--auto-approve", "--max-deletes", "2"],
        )
        .run();
    assert_eq!(ok.code, 0, "{ok:#?}");
}

#[test]
fn pruning_has_a_default_delete_limit() {
    let projects: Vec<Value> = (0..12).map(|i| json!({"id": format!("old{i:02}"), "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "integrations": [cloud_live(&format!("acme/old{i}"))]})).collect();
    let api = Api::start(json!({"projects": projects}), Faults::default());
    let dir = dir_with(
        "version: 1\norganization: 01J7ZQ4M1B6C8D9E0F2G3H4J5K\nprune: true\nprojects: {}\n",
    );
    let out = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(
        out.stderr
            .contains("12 integration(s) (12 by pruning); the limit is 10"),
        "{}",
        out.stderr
    );
    assert_eq!(api.writes(), 0);
    let out = api
        .run(
            dir.path(),
            &["apply", "--auto-approve", "--max-deletes", "12"],
        )
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(api.sandbox.world().writes.len(), 12);
}

#[test]
fn protected_integrations_are_skipped_and_reported() {
    let api = Api::start(world(), Faults::default());
    let manifest = MANIFEST.replace(
        "  todelete:\n    absent: true\n",
        "  todelete:\n    absent: true\n    protect: true\n",
    );
    let dir = dir_with(&manifest);
    let out = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.contains("blocked   todelete"), "{}", out.stdout);
    assert_eq!(api.managed("todelete").len(), 1, "never deleted");
    assert_eq!(api.managed("missing").len(), 1, "the rest was applied");
    // What is left is a block only: plan says so with exit 2, not "no changes" (DESIGN §2),
    // and apply keeps exiting 3.
    let plan = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(plan.code, 2, "{plan:#?}");
    assert!(plan.stdout.contains("1 blocked"), "{}", plan.stdout);
}

#[test]
fn a_failing_activity_is_reported_with_the_hook_url() {
    let mut seed = world();
    seed["projects"][2]["fail_activities"] = json!(true);
    let api = Api::start(seed, Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("failed    missing"), "{}", out.stdout);
    // The activity, named with its ID; its `text`, then the tail of its log.
    assert!(
        out.stdout
            .contains("activity `integration.bitbucket.register_hooks` (`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("`) failed: Registering the webhook of the bitbucket integration for acme/shop failed (log: Registering the webhook on Bitbucket failed: the OAuth consumer lacks"),
        "{}",
        out.stdout
    );
    // The API gives `#hook` as a path: shown absolute, against the integration's `self`, so
    // that it can be pasted into Bitbucket.
    let hook = out
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.ends_with("/hook"))
        .unwrap_or_else(|| panic!("no hook URL: {}", out.stdout));
    assert!(
        hook.starts_with("https://eu-3.platform.sh/api/projects/missing/integrations/"),
        "{hook}"
    );
    // Only a failed hook registration asks for a webhook by hand.
    assert_eq!(
        out.stdout.matches("add it in Bitbucket by hand").count(),
        1,
        "{}",
        out.stdout
    );
}

#[test]
fn a_missing_secret_stops_the_apply_before_any_write() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api
        .run(dir.path(), &["apply", "--auto-approve"])
        .env("BBS_TOKEN", "")
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains(
            "error: environment variables the writes need are not set, so nothing was written: `BBS_TOKEN` (needed by `toreplace`)"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: set them"), "{}", out.stderr);
    assert_eq!(
        api.writes(),
        0,
        "never part-way: nothing at all was written"
    );
}

#[test]
fn a_replace_without_its_secret_deletes_nothing() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api
        .run(dir.path(), &["apply", "--auto-approve"])
        .env("BBS_TOKEN", "")
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(
        api.managed("toreplace")[0].0,
        "bitbucket",
        "the old integration is still there"
    );
    assert!(
        api.sandbox
            .world()
            .writes
            .iter()
            .all(|w| !w.path.contains("/toreplace/")),
        "no write for it"
    );
}

#[test]
fn rotation_sends_the_credentials() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    assert_eq!(
        api.run(dir.path(), &["apply", "--auto-approve"]).run().code,
        0
    );
    let before = api.writes();
    let out = api
        .run(
            dir.path(),
            &["apply", "--auto-approve", "--rotate-credentials"],
        )
        .env("BITBUCKET_SECRET", "rotated-SECRET")
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(!out.all().contains("rotated-SECRET"));
    let world = api.sandbox.world();
    let rotations: Vec<&bbsync::sandbox::Write> = world.writes[before..].iter().collect();
    assert_eq!(rotations.len(), 4, "one PATCH per existing integration");
    let insync = rotations
        .iter()
        .find(|w| w.path.starts_with("/projects/insync/"))
        .unwrap();
    assert_eq!(
        insync.body,
        json!({"app_credentials": {"key": "consumer-key", "secret": "rotated-SECRET"}})
    );
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api.run(dir.path(), &["apply"]).run();
    assert_eq!(out.code, 64, "{out:#?}");
    assert!(out.stderr.contains("--auto-approve"), "{}", out.stderr);
    assert_eq!(api.writes(), 0);
}

#[test]
fn no_token_and_bad_token_are_clear() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api
        .run(dir.path(), &["plan"])
        .env("PLATFORMSH_CLI_TOKEN", "")
        .run();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no API token"), "{}", out.stderr);
    let out = api
        .run(dir.path(), &["plan"])
        .env("PLATFORMSH_CLI_TOKEN", "")
        .env("UPSUN_CLI_TOKEN", api.sandbox.token())
        .run();
    assert_eq!(out.code, 0, "UPSUN_CLI_TOKEN is the fallback: {out:#?}");
    let out = api
        .run(dir.path(), &["plan"])
        .env("PLATFORMSH_CLI_TOKEN", "wrong")
        .run();
    assert_eq!(out.code, 1);
    assert!(
        out.all().contains("the API token was rejected"),
        "{}",
        out.all()
    );
}

#[test]
fn an_invalid_manifest_sends_nothing() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(&MANIFEST.replace("fetch_branches", "fetch_branch"));
    let out = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(api.sandbox.world().requests.is_empty(), "no request at all");
}

/// Under injected faults, an apply of 300 creates converges within three runs: exactly one
/// integration per project, nothing else touched.
#[test]
fn three_hundred_creates_converge_under_faults() {
    let mut projects: Vec<Value> = (0..300)
        .map(|i| json!({"id": format!("p{i:03}")}))
        .collect();
    // No GitHub one: it would be the project's code source, and no create would be planned.
    projects[0]["integrations"] = json!([{"type": "health.email", "recipients": ["ops@example.com"]}, {"type": "webhook", "url": "https://hooks.example.com"}]);
    let faults = Faults {
        error_rate: 0.15,
        rate_limit_rate: 0.10,
        retry_after: 0.01,
        drop_post_rate: 0.10,
        seed: 42,
        ..Faults::default()
    };
    let api = Api::start(json!({"projects": projects}), faults);
    let mut manifest = String::from("version: 1\nprojects:\n");
    for i in 0..300 {
        manifest.push_str(&format!(
            "  p{i:03}:\n    bitbucket:\n      repository: acme/repo{i}\n      app_credentials: {{key: \"${{BITBUCKET_KEY}}\", secret: \"${{BITBUCKET_SECRET}}\"}}\n"
        ));
    }
    let dir = dir_with(&manifest);
    api.converge(dir.path(), &["--concurrency", "32"], 3);
    let world = api.sandbox.world();
    for i in 0..300 {
        assert_eq!(world.managed(&format!("p{i:03}")).len(), 1, "p{i:03}");
    }
    let kinds: Vec<&str> = world.projects["p000"]
        .integrations
        .iter()
        .map(|i| i.kind())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "health.email" || **k == "webhook")
            .count(),
        2,
        "{kinds:?}"
    );
    let unmanaged: Vec<&str> = world.projects["p000"]
        .integrations
        .iter()
        .filter(|i| i.kind() != "bitbucket")
        .map(|i| i.id())
        .collect();
    assert!(
        world
            .writes
            .iter()
            .all(|w| unmanaged.iter().all(|id| !w.path.ends_with(id))),
        "no write to an unmanaged integration"
    );
    assert!(
        world.writes.iter().all(|w| w.method == "POST"),
        "creates only: nothing was updated or deleted"
    );
}

#[test]
fn every_run_logs_at_vvv_without_secrets() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api
        .run(
            dir.path(),
            &["apply", "--auto-approve", "--log-format", "json"],
        )
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stderr.contains("\"message\":\"api request\""),
        "debug logs are on: {}",
        out.stderr
    );
    assert!(out.stderr.contains("\"method\":\"POST\""), "{}", out.stderr);
}

#[test]
fn the_standalone_sandbox_serves_bbsync_and_stops_on_sigterm() {
    use std::io::{BufRead as _, BufReader};
    let dir = dir_with(MANIFEST);
    let mut child = std::process::Command::new(crate::common::binary())
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--activity-delay",
            "0ms",
            "--token",
            "my-token",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.split_whitespace().last().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let out = Run::new(dir.path(), &["plan", "--api-url", &url, "--auth-url", &url])
        .env("PLATFORMSH_CLI_TOKEN", "my-token")
        .env("BITBUCKET_KEY", "k")
        .run();
    // The sandbox has no such projects: every project's state is unknown (404), so exit 1.
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("HTTP 404"), "{}", out.stdout);
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `bbsync apply` on a terminal (a pseudo-terminal from util-linux's `script`), answering `answer`.
fn apply_on_a_terminal(api: &Api, dir: &Path, answer: &str) -> String {
    apply_on_a_terminal_after(api, dir, answer, || {})
}

/// Like [`apply_on_a_terminal`], calling `meanwhile` once the question is on the screen and
/// before answering it.
fn apply_on_a_terminal_after(
    api: &Api,
    dir: &Path,
    answer: &str,
    meanwhile: impl FnOnce(),
) -> String {
    use std::io::{Read as _, Write as _};
    let command = format!("{} apply", crate::common::binary().display());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .envs(api.environment())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs bbsync on a pseudo-terminal");
    let mut stdout = child.stdout.take().unwrap();
    let (asked, question) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut told = false;
        while let Ok(n @ 1..) = stdout.read(&mut chunk) {
            seen.extend_from_slice(&chunk[..n]);
            if !told && String::from_utf8_lossy(&seen).contains("Only 'yes' will be accepted:") {
                told = true;
                let _ = asked.send(());
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    question
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("apply asks for confirmation");
    meanwhile();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

/// A change made while `apply` waits for its answer is not overwritten: the plan is checked
/// against the live state again after "yes", and refused (exit 3) when it went stale.
#[test]
fn a_change_made_while_apply_waits_for_yes_is_not_overwritten() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = apply_on_a_terminal_after(&api, dir.path(), "yes", || {
        assert!(
            api.sandbox
                .world()
                .tamper("drifted", "build_pull_requests", json!(true))
        );
    });
    assert!(
        out.contains("the plan went stale while waiting for the answer for 1 project(s)")
            && out.contains("- drifted:"),
        "{out}"
    );
    assert_eq!(api.writes(), 0, "nothing was written");
}

/// An interactive apply reads, asks, reads again and writes through one client: one token
/// exchange (it used to build three clients, and make three exchanges).
#[test]
fn an_interactive_apply_exchanges_the_token_once() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = apply_on_a_terminal(&api, dir.path(), "yes");
    assert!(out.contains("Apply:"), "{out}");
    assert!(api.writes() > 0, "{out}");
    assert_eq!(api.sandbox.world().exchanges, 1, "{out}");
}

#[test]
fn apply_on_a_terminal_asks_and_takes_only_yes() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let refused = apply_on_a_terminal(&api, dir.path(), "y");
    assert!(
        refused.contains("Apply these changes? Only 'yes' will be accepted:"),
        "{refused}"
    );
    assert!(
        refused.contains("Apply cancelled; nothing was written."),
        "{refused}"
    );
    assert_eq!(api.writes(), 0);
    let accepted = apply_on_a_terminal(&api, dir.path(), "yes");
    assert!(
        accepted.contains("Apply: 1 created, 1 updated, 1 deleted, 1 replaced"),
        "{accepted}"
    );
    assert!(!accepted.contains(SECRET));
}

#[test]
fn colors_follow_clicolor_force_and_no_color() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let forced = api
        .run(dir.path(), &["plan"])
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .run();
    assert!(
        forced.stdout.contains("\u{1b}["),
        "colors when forced: {forced:#?}"
    );
    let piped = api.run(dir.path(), &["plan"]).env_remove("NO_COLOR").run();
    assert!(!piped.stdout.contains("\u{1b}["), "no colors into a pipe");
    let no_color = api
        .run(dir.path(), &["plan"])
        .env("CLICOLOR_FORCE", "1")
        .run();
    assert!(!no_color.stdout.contains("\u{1b}["), "NO_COLOR wins");
}

#[test]
fn ctrl_c_during_apply_finishes_the_action_in_flight_and_reports() {
    let mut config = SandboxConfig {
        seed: serde_json::from_value(world()).unwrap(),
        ..SandboxConfig::default()
    };
    config.faults.latency = std::time::Duration::from_millis(1500);
    let api = Api::start_with(config);
    let dir = dir_with(MANIFEST);
    let child = api.spawn(
        dir.path(),
        &["apply", "--auto-approve", "--concurrency", "1"],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let is_write =
        |r: &String| r.starts_with("POST") || r.starts_with("PATCH") || r.starts_with("DELETE");
    while !api.sandbox.world().requests.iter().any(is_write) {
        assert!(std::time::Instant::now() < deadline, "no write started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Interrupted: starting nothing new"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Interrupted: the actions not started were skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("not started"), "{stdout}");
    let world = api.sandbox.world();
    let sent = world.requests.iter().filter(|r| is_write(r)).count();
    assert_eq!(
        world.writes.len(),
        sent,
        "the write in flight was carried out, none cut off"
    );
    assert!(
        sent <= 2,
        "nothing new started after Ctrl-C ({sent} writes; a replace makes two)"
    );
}

/// The attack as found: SIGTERM (a CI job's timeout, `kubectl delete`) between a replace's
/// delete and its create killed bbsync there, and the project was left with no integration.
/// Now the replace in flight is finished, nothing new starts, and the report says so.
#[test]
fn sigterm_during_a_replace_finishes_both_halves() {
    let mut config = SandboxConfig {
        seed: serde_json::from_value(json!({"projects": [
            {"id": "toreplace", "integrations": [cloud_live("acme/moved")]},
        ]}))
        .unwrap(),
        ..SandboxConfig::default()
    };
    config.faults.latency = std::time::Duration::from_millis(1000);
    let api = Api::start_with(config);
    let manifest = MANIFEST.split("\n  ").next().unwrap().to_owned()
        + &MANIFEST[MANIFEST.find("\n  toreplace:").unwrap()..];
    let dir = dir_with(&manifest);
    let child = api.spawn(dir.path(), &["apply", "--auto-approve"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !api
        .sandbox
        .world()
        .requests
        .iter()
        .any(|r| r.starts_with("DELETE"))
    {
        assert!(std::time::Instant::now() < deadline, "no delete started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for _ in 0..2 {
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Terminated (SIGTERM): starting nothing new"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("replaced  toreplace"), "{stdout}\n{stderr}");
    let managed = api.managed("toreplace");
    assert_eq!(managed.len(), 1, "{managed:?}");
    assert_eq!(managed[0].0, "bitbucket_server", "the create half was made");
}

/// `bbsync show PLANFILE` renders a saved plan exactly as `plan` rendered it, in every format,
/// without reading the API: one plan makes both the PR comment and the file to apply.
#[test]
fn show_renders_a_saved_plan_as_plan_did() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    for (format, flavor) in [
        ("text", "bitbucket"),
        ("markdown", "bitbucket"),
        ("markdown", "github"),
        ("json", "bitbucket"),
    ] {
        let plan = api
            .run(
                dir.path(),
                &[
                    "plan",
                    "--format",
                    format,
                    "--markdown-flavor",
                    flavor,
                    "--out",
                    "plan.json",
                ],
            )
            .run();
        assert_eq!(plan.code, 0, "{plan:#?}");
        let requests = api.sandbox.world().requests.len();
        let shown = api
            .run(
                dir.path(),
                &[
                    "show",
                    "plan.json",
                    "--format",
                    format,
                    "--markdown-flavor",
                    flavor,
                ],
            )
            .run();
        assert_eq!(shown.code, 0, "{shown:#?}");
        assert_eq!(shown.stdout, plan.stdout, "{format} {flavor}");
        assert_eq!(
            api.sandbox.world().requests.len(),
            requests,
            "show reads no API"
        );
        assert_no_secret(&shown);
    }
    let saved = std::fs::read_to_string(dir.path().join("plan.json")).unwrap();
    let json = api
        .run(dir.path(), &["show", "plan.json", "--format", "json"])
        .run();
    assert_eq!(
        serde_json::from_str::<Value>(&json.stdout).unwrap(),
        serde_json::from_str::<Value>(&saved).unwrap()
    );
    // Not a plan: a clear error, exit 1.
    let not = api.run(dir.path(), &["show", "integrations.yaml"]).run();
    assert_ne!(not.code, 0, "{not:#?}");
    assert!(not.stderr.contains("integrations.yaml"), "{}", not.stderr);
}
