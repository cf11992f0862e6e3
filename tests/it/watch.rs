//! `bbsync watch` end to end: the daemon process against a sandbox, read through its endpoints.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bbsync::sandbox::{Faults, SandboxConfig};
use serde_json::{Value, json};

use crate::sync::{Api, MANIFEST, SECRET, SERVER_TOKEN, dir_with, world};

/// A running `bbsync watch`.
pub(crate) struct Daemon {
    child: Child,
    address: String,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub(crate) fn start(api: &Api, dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(api, dir, extra, &[])
    }

    /// [`Daemon::start`], with more environment variables.
    pub(crate) fn start_with_env(
        api: &Api,
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut args = vec!["watch", "--listen", "127.0.0.1:0", "--log-format", "json"];
        if !extra.contains(&"--debounce") {
            args.extend(["--debounce", "300ms"]);
        }
        if !extra.contains(&"--settle") {
            args.extend(["--settle", "300ms"]);
        }
        args.extend_from_slice(extra);
        let mut child = Command::new(crate::common::binary())
            .args(&args)
            .current_dir(dir)
            .env_clear()
            .envs(api.environment())
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let stderr = Arc::clone(&stderr);
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    // `--log-format json`: every line on stderr is JSON, the notice of the
                    // listening address included.
                    let parsed: Value =
                        serde_json::from_str(&line).unwrap_or_else(|_| json!({"not_json": line}));
                    if parsed["message"] == "serving /healthz /readyz /metrics /status"
                        && let Some(address) = parsed["address"].as_str()
                    {
                        let _ = tx.send(address.to_owned());
                    }
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let address = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the daemon listens");
        Self {
            child,
            address,
            stderr,
        }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.address
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    pub(crate) fn status(&self) -> Value {
        serde_json::from_str(&self.get("/status").1).unwrap()
    }

    pub(crate) fn runs(&self) -> Vec<Value> {
        self.status()["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `ready(status)` holds.
    pub(crate) fn wait_for(&self, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.status();
            if ready(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {status:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGHUP: a resync now.
    pub(crate) fn hangup(&self) {
        Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    pub(crate) fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn terminate(self) -> i32 {
        self.stop().0
    }

    /// SIGTERM, then the exit code and every log line.
    pub(crate) fn stop(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let logs = self.logs();
                assert!(
                    !logs.contains(SECRET) && !logs.contains(SERVER_TOKEN),
                    "a secret leaked:\n{logs}"
                );
                let not_json: Vec<&str> = logs
                    .lines()
                    .filter(|l| serde_json::from_str::<Value>(l).is_err())
                    .collect();
                assert!(
                    not_json.is_empty(),
                    "--log-format json, yet lines that are not JSON: {not_json:#?}"
                );
                return (status.code().unwrap_or(-1), logs);
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn run_count(status: &Value) -> usize {
    status["runs"].as_array().map_or(0, Vec::len)
}

#[test]
fn endpoints_answer_with_the_documented_content() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h"]);
    let status = daemon.wait_for("the first run", |s| run_count(s) >= 1);
    assert_eq!(status["runs"][0]["result"], "ok", "{status:#}");
    assert_eq!(status["runs"][0]["triggers"], json!(["startup"]));
    assert!(
        status["manifest_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(status["drift"], json!({}), "applied, so no drift is left");
    assert_eq!(daemon.get("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(daemon.get("/readyz"), (200, "ready\n".to_owned()));
    let (code, metrics) = daemon.get("/metrics");
    assert_eq!(code, 200);
    for expected in [
        "bbsync_runs_total{trigger=\"startup\",result=\"ok\"} 1",
        "bbsync_manifest_valid 1",
        "bbsync_api_requests_total{code=\"200\"}",
        "bbsync_actions_total{action=\"create\",outcome=\"created\"} 1",
        "bbsync_run_duration_seconds_count 1",
        "bbsync_last_success_timestamp_seconds",
        "bbsync_drifted_projects 0",
        "bbsync_blocked_deletes_total 0",
        "# EOF",
    ] {
        assert!(metrics.contains(expected), "missing {expected}:\n{metrics}");
    }
    assert_eq!(api.managed("missing").len(), 1, "it applied");
    let logs = daemon.logs();
    assert!(logs.contains("\"message\":\"run finished\""), "{logs}");
    assert!(logs.contains("\"message\":\"action\""), "{logs}");
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn a_burst_of_50_writes_makes_exactly_one_run() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    // A quiet period well above the 5 ms between writes, even on a loaded machine.
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h", "--debounce", "1s"]);
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    let path = dir.path().join("integrations.yaml");
    for i in 0..50 {
        // Half in place, half as editors do: write a temporary file, rename it over.
        let text = format!("# edit {i}\n{MANIFEST}");
        if i % 2 == 0 {
            std::fs::write(&path, text).unwrap();
        } else {
            let temp = dir.path().join(".integrations.yaml.swp");
            std::fs::write(&temp, text).unwrap();
            std::fs::rename(&temp, &path).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = daemon.wait_for("the file run", |s| run_count(s) >= 2);
    std::thread::sleep(Duration::from_secs(2));
    let runs = daemon.runs();
    assert_eq!(runs.len(), 2, "exactly one run after the burst: {runs:#?}");
    assert_eq!(runs[1]["triggers"], json!(["file"]), "{status:#}");
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("bbsync_runs_total{trigger=\"file\",result=\"ok\"} 1"),
        "{metrics}"
    );
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn drift_made_by_hand_is_reverted_at_the_next_interval() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    // The shortest interval allowed (DESIGN §4).
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "10s"]);
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    assert!(
        api.sandbox
            .world()
            .tamper("insync", "build_pull_requests", json!(false))
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    while api.managed("insync")[0].1["build_pull_requests"] != json!(true) {
        assert!(
            Instant::now() < deadline,
            "not reverted:\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The write is seen before its run ends (the run still waits for the activities).
    let reverts = |run: &Value| {
        run["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["project"] == "insync"))
    };
    let status = daemon.wait_for("the reverting run to end", |s| {
        s["runs"].as_array().is_some_and(|r| r.iter().any(reverts))
    });
    let reverting = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| reverts(r));
    assert_eq!(reverting.unwrap()["triggers"], json!(["interval"]));
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn an_invalid_manifest_keeps_the_last_valid_one_and_flips_readiness() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h"]);
    let first = daemon.wait_for("the first run", |s| run_count(s) >= 1);
    let digest = first["manifest_digest"].clone();
    let writes = api.writes();
    // Half-written: cut in the middle of a project.
    std::fs::write(
        dir.path().join("integrations.yaml"),
        &MANIFEST[..MANIFEST.len() / 2],
    )
    .unwrap();
    let status = daemon.wait_for("the invalid manifest", |s| {
        s["manifest_valid"] == json!(false)
    });
    assert_eq!(
        status["manifest_digest"], digest,
        "the last valid manifest stays in force"
    );
    daemon.wait_for("the run to be recorded", |s| run_count(s) >= 2);
    let runs = daemon.runs();
    assert_eq!(runs[1]["result"], "invalid_manifest", "{runs:#?}");
    let (code, body) = daemon.get("/readyz");
    assert_eq!(code, 503);
    assert!(body.contains("the manifest on disk is invalid"), "{body}");
    let (_, metrics) = daemon.get("/metrics");
    assert!(metrics.contains("bbsync_manifest_valid 0"), "{metrics}");
    assert_eq!(api.writes(), writes, "nothing was written");
    // A SIGHUP resync acts on the last valid manifest: drift is still corrected.
    assert!(
        api.sandbox
            .world()
            .tamper("insync", "build_pull_requests", json!(false))
    );
    Command::new("kill")
        .args(["-HUP", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    daemon.wait_for("the resync", |s| run_count(s) >= 3);
    assert_eq!(
        api.managed("insync")[0].1["build_pull_requests"],
        json!(true)
    );
    // Fixed: ready again.
    std::fs::write(dir.path().join("integrations.yaml"), MANIFEST).unwrap();
    daemon.wait_for("the fixed manifest", |s| s["manifest_valid"] == json!(true));
    assert_eq!(daemon.get("/readyz").0, 200);
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn sigterm_during_an_apply_finishes_the_action_and_exits_0() {
    let mut config = SandboxConfig {
        seed: serde_json::from_value(world()).unwrap(),
        ..SandboxConfig::default()
    };
    config.faults.latency = Duration::from_millis(1500);
    let api = Api::start_with(config);
    let dir = dir_with(MANIFEST);
    let daemon = Daemon::start(
        &api,
        dir.path(),
        &["--interval", "1h", "--concurrency", "1"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api
        .sandbox
        .world()
        .requests
        .iter()
        .any(|r| r.starts_with("POST") || r.starts_with("PATCH") || r.starts_with("DELETE"))
    {
        assert!(Instant::now() < deadline, "no write started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let (code, logs) = daemon.stop();
    assert_eq!(code, 0);
    // Stopped, not failed: the actions never started say so, and nothing backs off.
    assert!(logs.contains("\"result\":\"interrupted\""), "{logs}");
    assert!(!logs.contains("backing off"), "{logs}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded shutdown"
    );
    let world = api.sandbox.world();
    let sent = world
        .requests
        .iter()
        .filter(|r| r.starts_with("POST") || r.starts_with("PATCH") || r.starts_with("DELETE"))
        .count();
    assert_eq!(
        world.writes.len(),
        sent,
        "every write sent was carried out, none was cut off"
    );
    assert!(
        sent < 5,
        "no new action started after SIGTERM ({sent} writes)"
    );
}

#[test]
fn plan_only_never_writes() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h", "--plan-only"]);
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    daemon.hangup();
    let status = daemon.wait_for("two runs", |s| run_count(s) >= 2);
    assert_eq!(api.writes(), 0);
    assert_eq!(status["runs"][0]["result"], "drift", "{status:#}");
    assert_eq!(status["drift"]["missing"], "create");
    assert_eq!(status["drift"]["todelete"], "delete");
    let (_, metrics) = daemon.get("/metrics");
    assert!(metrics.contains("bbsync_drifted_projects 4"), "{metrics}");
    assert!(
        metrics.contains("bbsync_actions_total{action=\"create\",outcome=\"planned\"}"),
        "{metrics}"
    );
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn max_deletes_blocks_a_run_without_retrying_in_a_loop() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let daemon = Daemon::start(
        &api,
        dir.path(),
        &["--interval", "1h", "--max-deletes", "0"],
    );
    let status = daemon.wait_for("the first run", |s| run_count(s) >= 1);
    assert_eq!(status["runs"][0]["result"], "blocked", "{status:#}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(run_count(&daemon.status()), 1, "no retry loop");
    assert_eq!(api.writes(), 0);
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("bbsync_blocked_deletes_total 2"),
        "{metrics}"
    );
    assert_eq!(daemon.terminate(), 0);
}

/// A standing block (a protected project needing a replace) is one story: the run completed
/// (`last_success` moves, no "no success" alert), the block is listed in `/status.blocked` and
/// `bbsync_blocked_projects`, logged at WARN once, and `drift` keeps only what is left.
#[test]
fn a_standing_block_is_reported_once_and_the_run_counts_as_completed() {
    let api = Api::start(world(), Faults::default());
    let manifest = MANIFEST.replace(
        "  toreplace:\n    bitbucket_server:\n",
        "  toreplace:\n    protect: true\n    bitbucket_server:\n",
    );
    let dir = dir_with(&manifest);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h"]);
    let status = daemon.wait_for("the first run", |s| run_count(s) >= 1);
    assert_eq!(status["runs"][0]["result"], "blocked", "{status:#}");
    assert!(status["last_success"].is_string(), "{status:#}");
    assert!(status["blocked"]["toreplace"].is_string(), "{status:#}");
    assert_eq!(
        status["drift"],
        json!({"toreplace": "blocked"}),
        "only what is left: {status:#}"
    );
    daemon.hangup();
    daemon.wait_for("a second run", |s| run_count(s) >= 2);
    let (_, metrics) = daemon.get("/metrics");
    assert!(metrics.contains("bbsync_blocked_projects 1"), "{metrics}");
    assert!(metrics.contains("bbsync_drifted_projects 1"), "{metrics}");
    let warned = daemon
        .logs()
        .lines()
        .filter(|l| l.contains("bbsync will not fix this project's drift"))
        .count();
    assert_eq!(warned, 1, "once, not per run:\n{}", daemon.logs());
    assert_eq!(daemon.terminate(), 0);
}

/// The attack as found: under git-sync, `/git/current` appears only after the first clone, and
/// the daemon exited at start (a crash loop). Now it waits, not ready, and starts when the path
/// appears.
#[test]
fn a_manifest_path_that_appears_later_is_waited_for() {
    let api = Api::start(world(), Faults::default());
    let root = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        &api,
        root.path(),
        &["--interval", "1h", "-f", "current/integrations.yaml"],
    );
    let (code, body) = daemon.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("waiting for `current/integrations.yaml`"),
        "{body}"
    );
    assert_eq!(daemon.get("/healthz").0, 200, "waiting is alive");
    std::fs::create_dir(root.path().join("current")).unwrap();
    std::fs::write(root.path().join("current/integrations.yaml"), MANIFEST).unwrap();
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn a_git_sync_symlink_swap_triggers_a_run() {
    let api = Api::start(world(), Faults::default());
    let root = tempfile::tempdir().unwrap();
    let v1 = root.path().join("rev1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("integrations.yaml"), MANIFEST).unwrap();
    std::os::unix::fs::symlink(&v1, root.path().join("current")).unwrap();
    let daemon = Daemon::start(
        &api,
        root.path(),
        &["--interval", "1h", "-f", "current/integrations.yaml"],
    );
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    // What git-sync does: a new worktree, then an atomic swap of the `current` symlink.
    let v2 = root.path().join("rev2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v2.join("integrations.yaml"),
        MANIFEST.replace("  todelete:\n    absent: true\n", ""),
    )
    .unwrap();
    std::os::unix::fs::symlink(&v2, root.path().join("current.tmp")).unwrap();
    std::fs::rename(root.path().join("current.tmp"), root.path().join("current")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    let status = daemon.wait_for("the run after the swap", |s| run_count(s) >= 2);
    assert_eq!(status["runs"][1]["triggers"], json!(["file"]), "{status:#}");
    assert_eq!(status["runs"][1]["result"], "ok", "{status:#}");
    assert_ne!(
        status["runs"][1]["manifest_digest"],
        status["runs"][0]["manifest_digest"]
    );
    assert_eq!(daemon.terminate(), 0);
}

/// The attack as found: after the manifest's directory was deleted and made again, file events
/// were lost for good, and only the hourly resync noticed changes. Now the watch begins again.
#[test]
fn a_manifest_directory_deleted_and_made_again_is_watched_again() {
    let api = Api::start(world(), Faults::default());
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("integrations.yaml"), MANIFEST).unwrap();
    let daemon = Daemon::start(&api, root.path(), &["--interval", "1h", "-f", "manifests"]);
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    std::fs::remove_dir_all(&dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !daemon
        .logs()
        .contains("a watched manifest directory was deleted")
    {
        assert!(Instant::now() < deadline, "not noticed:\n{}", daemon.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("integrations.yaml"),
        MANIFEST.replace("  todelete:\n    absent: true\n", ""),
    )
    .unwrap();
    let status = daemon.wait_for("the run after the directory came back", |s| {
        run_count(s) >= 2 && s["manifest_digest"] != s["runs"][0]["manifest_digest"]
    });
    assert_eq!(status["runs"][1]["triggers"], json!(["file"]), "{status:#}");
    // And the new directory is watched: an edit in it is a run.
    std::fs::write(
        dir.join("integrations.yaml"),
        MANIFEST.replace("      fetch_branches: false\n", ""),
    )
    .unwrap();
    let runs = run_count(&status);
    let status = daemon.wait_for("a run after an edit", |s| run_count(s) > runs);
    assert_eq!(
        status["runs"][runs]["triggers"],
        json!(["file"]),
        "{status:#}"
    );
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn a_failing_project_backs_off_without_holding_up_the_others() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    // `missing` is created, but its hook registration fails: the action fails every time.
    api.sandbox
        .world()
        .projects
        .get_mut("missing")
        .unwrap()
        .seed
        .fail_activities = true;
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h"]);
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    daemon.hangup();
    let status = daemon.wait_for("two runs", |s| run_count(s) >= 2);
    let first = &status["runs"][0];
    assert_eq!(first["result"], "failed", "{status:#}");
    let outcomes: Vec<(&str, &str)> = first["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["project"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(outcomes.contains(&("missing", "failed")), "{outcomes:?}");
    assert!(
        outcomes.contains(&("drifted", "updated")) && outcomes.contains(&("todelete", "deleted")),
        "the others went ahead: {outcomes:?}"
    );
    assert_eq!(status["backing_off"]["missing"], 1, "{status:#}");
    // Drift on `missing` is left alone while it backs off (30 s); others are still corrected.
    api.sandbox
        .world()
        .tamper("missing", "build_pull_requests", json!(false));
    api.sandbox
        .world()
        .tamper("insync", "build_pull_requests", json!(false));
    daemon.hangup();
    let status = daemon.wait_for("a run that skipped it", |s| {
        s["runs"].as_array().is_some_and(|runs| {
            runs.iter().any(|r| {
                r["backing_off"]
                    .as_array()
                    .is_some_and(|b| b.contains(&json!("missing")))
            })
        })
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.managed("insync")[0].1["build_pull_requests"] != json!(true) {
        assert!(
            Instant::now() < deadline,
            "the others are still corrected: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        api.managed("missing")[0].1["build_pull_requests"],
        json!(false),
        "left alone while backing off"
    );
    assert_eq!(daemon.terminate(), 0);
}

/// With `--state-dir`, a daemon restarted while the manifest on disk is invalid enforces the
/// last valid manifest it saw (and says so); without it, it acts on nothing.
#[test]
fn the_last_valid_manifest_survives_a_restart_with_state_dir() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let daemon = Daemon::start(
        &api,
        dir.path(),
        &["--interval", "1h", "--state-dir", state_dir],
    );
    let first = daemon.wait_for("the first run", |s| run_count(s) >= 1);
    let digest = first["manifest_digest"].clone();
    assert_eq!(daemon.terminate(), 0);
    let saved = std::fs::read_to_string(state.path().join("last-valid-manifest.json")).unwrap();
    assert!(saved.contains("${BITBUCKET_SECRET}") && !saved.contains(SECRET));

    // A bad commit lands, the daemon restarts, and someone changes an integration by hand.
    std::fs::write(
        dir.path().join("integrations.yaml"),
        &MANIFEST[..MANIFEST.len() / 2],
    )
    .unwrap();
    let tamper = || {
        assert!(
            api.sandbox
                .world()
                .tamper("insync", "build_pull_requests", json!(false))
        );
    };
    tamper();
    let writes = api.writes();
    let plain = Daemon::start(&api, dir.path(), &["--interval", "1h"]);
    let status = plain.wait_for("the first run", |s| run_count(s) >= 1);
    assert_eq!(
        status["runs"][0]["result"], "invalid_manifest",
        "{status:#}"
    );
    assert_eq!(plain.terminate(), 0);
    assert_eq!(
        api.writes(),
        writes,
        "without --state-dir nothing is in force"
    );

    let restored = Daemon::start(
        &api,
        dir.path(),
        &["--interval", "1h", "--state-dir", state_dir],
    );
    let status = restored.wait_for("the first run", |s| run_count(s) >= 1);
    assert_eq!(status["manifest_valid"], json!(false), "{status:#}");
    assert_eq!(status["manifest_digest"], digest, "{status:#}");
    assert!(
        status["restored_from"]
            .as_str()
            .is_some_and(|s| s.contains("last-valid-manifest.json")),
        "{status:#}"
    );
    assert_eq!(status["runs"][0]["result"], "ok", "{status:#}");
    assert_eq!(
        api.managed("insync")[0].1["build_pull_requests"],
        json!(true),
        "the drift was corrected from the saved manifest"
    );
    let (code, body) = restored.get("/readyz");
    assert_eq!(code, 503, "the manifest on disk is still invalid: {body}");
    assert!(restored.logs().contains("enforcing the last valid one"));
    assert_eq!(restored.terminate(), 0);
}

/// The attack as found: the daemon reverted a hand-made change and logged only
/// `outcome="updated"`. Every write now says what it changed, field by field, in the log and
/// in `/status`, with the secret as its reference.
#[test]
fn every_write_is_audited_field_by_field() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h"]);
    let status = daemon.wait_for("the first run", |s| run_count(s) >= 1);
    let changes = status["changes"].as_array().expect("changes in /status");
    let change = |project: &str| {
        changes
            .iter()
            .find(|c| c["project"] == project)
            .unwrap_or_else(|| panic!("no change for {project}: {status:#}"))
    };
    let drifted = change("drifted");
    assert_eq!(drifted["action"], "update");
    assert_eq!(drifted["run"], 1);
    assert_eq!(drifted["triggers"], json!(["startup"]));
    assert!(drifted["integration"].is_string(), "{drifted:#}");
    assert_eq!(
        drifted["fields"],
        json!([{"field": "build_pull_requests", "before": false, "after": true}]),
    );
    assert!(drifted["at"].is_string());
    let created = change("missing");
    assert_eq!(created["action"], "create");
    let fields = created["fields"].as_array().unwrap();
    assert!(
        fields.contains(&json!({"field": "repository", "before": null, "after": "acme/shop"})),
        "{created:#}"
    );
    assert!(
        fields.contains(&json!({"field": "app_credentials.secret", "before": null, "after": "${BITBUCKET_SECRET}"})),
        "the secret as its reference: {created:#}"
    );
    let deleted = change("todelete");
    assert!(
        deleted["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({"field": "repository", "before": "acme/old", "after": null})),
        "{deleted:#}"
    );
    let replaced = change("toreplace");
    assert!(
        replaced["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({"field": "repository", "before": "acme/moved", "after": "moved"})),
        "the live side of a replace: {replaced:#}"
    );
    // A hand-made change, reverted: the log says what was put back, as JSON fields.
    assert!(
        api.sandbox
            .world()
            .tamper("insync", "build_pull_requests", json!(false))
    );
    daemon.hangup();
    daemon.wait_for("the reverting run", |s| run_count(s) >= 2);
    let (_, logs) = daemon.stop();
    let reverted: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["message"] == "changed" && l["project"] == "insync")
        .collect();
    assert_eq!(reverted.len(), 1, "{logs}");
    let line = &reverted[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["field"], "build_pull_requests");
    assert_eq!(line["before"], "false");
    assert_eq!(line["after"], "true");
    assert_eq!(line["triggers"], "signal");
    assert_eq!(line["action"], "update");
}

/// The attack as found: a CI `apply` and the daemon on one organization reverted each other
/// for ever, silently. Three undos of the daemon's write within the hour stop its writes to
/// that project, and it says so.
#[test]
fn a_second_writer_undoing_the_daemons_writes_is_reported_and_left_alone() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let daemon = Daemon::start(&api, dir.path(), &["--interval", "1h"]);
    daemon.wait_for("the first run", |s| run_count(s) >= 1);
    // The first run wrote `drifted`; another writer puts it back, three times.
    for run in 2..=4 {
        assert!(
            api.sandbox
                .world()
                .tamper("drifted", "build_pull_requests", json!(false))
        );
        daemon.hangup();
        daemon.wait_for("a run", |s| run_count(s) >= run);
    }
    let status = daemon.status();
    let why = status["contested"]["drifted"]
        .as_str()
        .unwrap_or_else(|| panic!("contested: {status:#}"));
    assert!(
        why.contains("another writer is changing this project"),
        "{why}"
    );
    // The third undo was still reverted; from now on the project is left alone.
    assert_eq!(
        api.managed("drifted")[0].1["build_pull_requests"],
        json!(true)
    );
    let writes = api.writes();
    assert!(
        api.sandbox
            .world()
            .tamper("drifted", "build_pull_requests", json!(false))
    );
    daemon.hangup();
    let status = daemon.wait_for("a fifth run", |s| run_count(s) >= 5);
    assert_eq!(api.writes(), writes, "no write to the contested project");
    assert_eq!(
        api.managed("drifted")[0].1["build_pull_requests"],
        json!(false)
    );
    assert_eq!(
        status["drift"]["drifted"], "update",
        "still reported: {status:#}"
    );
    assert_eq!(
        status["runs"][4]["backing_off"],
        json!(["drifted"]),
        "{status:#}"
    );
    let (_, metrics) = daemon.get("/metrics");
    assert!(metrics.contains("bbsync_contested_projects 1"), "{metrics}");
    assert!(
        metrics.contains("bbsync_writer_conflicts_total 1"),
        "{metrics}"
    );
    let (_, logs) = daemon.stop();
    let warned: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("another writer is changing this project; bbsync stops writing it"))
        .collect();
    assert_eq!(warned.len(), 1, "once:\n{logs}");
    assert!(warned[0].contains("\"WARN\""), "{}", warned[0]);
}
