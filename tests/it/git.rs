//! `bbsync watch --git-url`: the daemon's own checkout, against local bare repositories (no
//! network), read through `/status`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use bbsync::sandbox::Faults;
use serde_json::Value;

use crate::sync::{Api, MANIFEST, world};
use crate::watch::Daemon;

/// A bare repository and a clone to commit in.
pub(crate) struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        git(
            dir.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "origin.git",
            ],
        );
        git(
            dir.path(),
            &["init", "--quiet", "--initial-branch=main", "work"],
        );
        Self { dir }
    }

    pub(crate) fn bare(&self) -> PathBuf {
        self.dir.path().join("origin.git")
    }

    pub(crate) fn url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// Commits `text` as `path` and pushes it to `main`; returns the commit.
    pub(crate) fn commit(&self, path: &str, text: &str) -> String {
        let work = self.dir.path().join("work");
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        git(&work, &["add", "--all"]);
        git(
            &work,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "--quiet",
                "--allow-empty",
                "-m",
                "change",
            ],
        );
        let bare = self.bare();
        git(
            &work,
            &["push", "--quiet", bare.to_str().unwrap(), "HEAD:main"],
        );
        git(&work, &["rev-parse", "HEAD"]).trim().to_owned()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const PATH: &str = "infra/integrations.yaml";

fn last_run(status: &Value) -> &Value {
    status["runs"]
        .as_array()
        .and_then(|runs| runs.last())
        .unwrap_or(&Value::Null)
}

fn runs(status: &Value) -> usize {
    status["runs"].as_array().map_or(0, Vec::len)
}

/// Waits for the run after `before` runs, and returns the status then.
fn next_run(daemon: &Daemon, before: usize) -> Value {
    daemon.wait_for("the next run", |s| {
        runs(s) > before && last_run(s)["result"] != Value::Null
    })
}

#[test]
fn commits_are_applied_an_invalid_one_is_ignored_and_a_restart_keeps_the_last_good() {
    let api = Api::start(world(), Faults::default());
    let repo = Repo::new();
    let state = tempfile::tempdir().unwrap();
    let first = repo.commit(PATH, MANIFEST);
    let url = repo.url();
    let state_dir = state.path().to_str().unwrap();
    let args = [
        "--git-url",
        url.as_str(),
        "--git-ref",
        "main",
        "-f",
        PATH,
        "--interval",
        "1h",
        "--state-dir",
        state_dir,
    ];
    let cwd = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&api, cwd.path(), &args);

    // The first commit is fetched and applied.
    let status = next_run(&daemon, 0);
    assert_eq!(last_run(&status)["result"], "ok", "{status:#}");
    assert_eq!(last_run(&status)["commit"], first.as_str());
    assert_eq!(status["git"]["commit_in_force"], first.as_str());
    assert_eq!(status["git"]["latest_commit"], first.as_str());
    assert_eq!(status["git"]["ref"], "main");
    assert_eq!(
        api.managed("missing").len(),
        1,
        "the first commit is applied"
    );

    // A new commit: SIGHUP makes the daemon fetch at once (a webhook would too).
    let second = repo.commit(
        PATH,
        &MANIFEST.replace(
            "      fetch_branches: false",
            "      fetch_branches: false\n      build_pull_requests: false",
        ),
    );
    daemon.hangup();
    let status = next_run(&daemon, 1);
    assert_eq!(last_run(&status)["result"], "ok", "{status:#}");
    assert_eq!(last_run(&status)["commit"], second.as_str());
    assert_eq!(api.managed("missing")[0].1["build_pull_requests"], false);

    // An invalid commit is never acted on: the second stays in force.
    let writes = api.writes();
    let third = repo.commit(PATH, "version: 1\nprojects:\n  missing: [\n");
    daemon.hangup();
    let status = next_run(&daemon, 2);
    let run = last_run(&status);
    assert_eq!(run["commit"], third.as_str(), "{status:#}");
    assert_eq!(status["git"]["latest_commit"], third.as_str());
    assert_eq!(status["git"]["latest_valid"], false);
    assert_eq!(status["git"]["commit_in_force"], second.as_str());
    assert_eq!(status["manifest_valid"], false);
    assert!(
        status["manifest_error"]
            .as_str()
            .unwrap()
            .contains("integrations.yaml"),
        "{status:#}"
    );
    assert_eq!(
        api.writes(),
        writes,
        "nothing written for an invalid commit"
    );
    let (code, logs) = daemon.stop();
    assert_eq!(code, 0);
    assert!(
        logs.contains(&third),
        "the log names the commit of every run"
    );

    // A restart on the invalid head enforces the last good commit, saved in --state-dir.
    assert!(
        api.sandbox
            .world()
            .tamper("missing", "build_pull_requests", serde_json::json!(true))
    );
    let daemon = Daemon::start(&api, cwd.path(), &args);
    let status = next_run(&daemon, 0);
    assert_eq!(last_run(&status)["result"], "ok", "{status:#}");
    assert_eq!(last_run(&status)["commit"], second.as_str());
    assert_eq!(status["git"]["commit_in_force"], second.as_str());
    assert_eq!(status["git"]["latest_commit"], third.as_str());
    assert_eq!(
        api.managed("missing")[0].1["build_pull_requests"],
        false,
        "the drift is repaired from the last good commit"
    );

    // A fix is applied.
    let fourth = repo.commit(PATH, MANIFEST);
    daemon.hangup();
    let status = next_run(&daemon, 1);
    assert_eq!(last_run(&status)["result"], "ok", "{status:#}");
    assert_eq!(last_run(&status)["commit"], fourth.as_str());
    assert_eq!(status["git"]["commit_in_force"], fourth.as_str());
    assert_eq!(status["git"]["latest_valid"], true);
    assert_eq!(status["manifest_valid"], true);
    assert_eq!(api.managed("missing")[0].1["build_pull_requests"], true);
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("bbsync_git_fetches_total{result=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("bbsync_git_last_fetch_success_timestamp_seconds"));
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn the_poll_fetches_new_commits_and_an_unchanged_head_makes_no_run() {
    let api = Api::start(world(), Faults::default());
    let repo = Repo::new();
    repo.commit("integrations.yaml", MANIFEST);
    let url = repo.url();
    let cwd = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        &api,
        cwd.path(),
        &[
            "--git-url",
            &url,
            "--git-interval",
            "10s",
            "--interval",
            "1h",
        ],
    );
    next_run(&daemon, 0);
    // At least one poll (10 s, jittered by 10%) passes with no new commit: no run.
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("bbsync_git_fetches_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    daemon.wait_for("a poll", |_| {
        let (_, metrics) = daemon.get("/metrics");
        metrics.contains("bbsync_git_fetches_total{result=\"ok\"} 2")
    });
    assert_eq!(
        runs(&daemon.status()),
        1,
        "a poll that finds nothing new runs nothing"
    );
    let second = repo.commit(
        "integrations.yaml",
        &MANIFEST.replace(
            "      fetch_branches: false",
            "      fetch_branches: false\n      build_pull_requests: false",
        ),
    );
    let status = next_run(&daemon, 1);
    assert_eq!(last_run(&status)["commit"], second.as_str(), "{status:#}");
    assert_eq!(last_run(&status)["triggers"][0], "git_poll");
    assert_eq!(api.managed("missing")[0].1["build_pull_requests"], false);
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn manifest_paths_must_stay_inside_the_repository() {
    let api = Api::start(world(), Faults::default());
    let cwd = tempfile::tempdir().unwrap();
    for path in ["../integrations.yaml", "/etc/integrations.yaml"] {
        let out = api
            .run_quietly(
                cwd.path(),
                &["watch", "--git-url", "file:///nowhere.git", "-f", path],
            )
            .run();
        assert_eq!(out.code, 64, "{}", out.all());
        assert!(
            out.stderr.contains("relative to the repository's root"),
            "{}",
            out.all()
        );
    }
    let out = api
        .run_quietly(
            cwd.path(),
            &[
                "watch",
                "--git-url",
                "https://x-token-auth:hunter2-token@bitbucket.org/a/b.git",
            ],
        )
        .run();
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(out.stderr.contains("BBSYNC_GIT_TOKEN"), "{}", out.all());
    assert!(!out.all().contains("hunter2-token"), "{}", out.all());
}

#[test]
fn an_ssh_url_uses_the_key_and_checks_host_keys() {
    let api = Api::start(world(), Faults::default());
    let repo = Repo::new();
    let commit = repo.commit("integrations.yaml", MANIFEST);
    // A stand-in for `ssh`: it notes its arguments, then runs the command git asked the
    // server to run, here.
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("ssh.log");
    let script = bin.path().join("ssh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nfor last; do :; done\nexec sh -c \"$last\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let key = bin.path().join("id_ed25519");
    std::fs::write(&key, "not a real key").unwrap();
    let known = bin.path().join("known_hosts");
    std::fs::write(&known, "").unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let url = format!("ssh://git@git.example.com{}", repo.bare().display());
    let cwd = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_env(
        &api,
        cwd.path(),
        &[
            "--git-url",
            &url,
            "--git-ssh-key",
            key.to_str().unwrap(),
            "--git-known-hosts",
            known.to_str().unwrap(),
            "--interval",
            "1h",
        ],
        &[("PATH", &path)],
    );
    let status = next_run(&daemon, 0);
    assert_eq!(
        last_run(&status)["commit"],
        commit.as_str(),
        "{status:#}\n{}",
        daemon.logs()
    );
    let args = std::fs::read_to_string(&log).unwrap();
    for expected in [
        format!("-i {}", key.display()),
        "IdentitiesOnly=yes".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
        "BatchMode=yes".to_owned(),
        format!("UserKnownHostsFile={}", known.display()),
        "git@git.example.com".to_owned(),
    ] {
        assert!(
            args.contains(&expected),
            "ssh ran without {expected}: {args}"
        );
    }
    assert_eq!(daemon.terminate(), 0);
}

/// A git server stand-in that asks for credentials, notes the `Authorization` git sends, and
/// refuses it.
fn asks_for_credentials() -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut authorization = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
            }
            let mut stream = stream;
            let answer = match authorization {
                Some(value) => {
                    let _ = tx.send(value);
                    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                }
                None => {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                }
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (format!("http://{address}/acme/infra.git"), rx)
}

#[test]
fn an_https_token_goes_to_the_server_and_nowhere_else() {
    let api = Api::start(world(), Faults::default());
    let (url, authorizations) = asks_for_credentials();
    let token = "git-t0ken-VALUE-42";
    let cwd = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_env(
        &api,
        cwd.path(),
        &["--git-url", &url, "--interval", "1h"],
        &[("BBSYNC_GIT_TOKEN", token)],
    );
    let sent = authorizations
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("git sends the token when asked");
    // RFC 7617: `Basic base64(user:password)`; the user Bitbucket expects with access tokens.
    assert_eq!(
        sent,
        format!("Basic {}", base64(&format!("x-token-auth:{token}")))
    );
    let status = daemon.wait_for("a failed fetch", |s| s["git"]["fetch_error"].is_string());
    let shown = status.to_string();
    assert!(shown.contains("cannot fetch"), "{status:#}");
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("bbsync_git_fetches_total{result=\"failed\"}"),
        "{metrics}"
    );
    let (code, logs) = daemon.stop();
    assert_eq!(code, 0);
    for output in [&shown, &metrics, &logs] {
        assert!(!output.contains(token), "the token leaked: {output}");
    }
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const WEBHOOK_SECRET: &str = "whsec-0123456789abcdef-VALUE";
const BITBUCKET_TOKEN: &str = "bb-status-t0ken-VALUE";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// POSTs a delivery to the webhook; its HTTP status.
fn deliver(port: u16, event: &str, body: &str, secret: &str) -> u16 {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /hooks/bitbucket HTTP/1.1\r\nHost: bbsync.example.com\r\nX-Event-Key: {event}\r\nX-Hub-Signature: sha256={signature}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_signed_push_runs_at_once_a_forged_one_runs_nothing_and_a_burst_is_one_run() {
    let api = Api::start(world(), Faults::default());
    api.sandbox.world().bitbucket.pr_tokens = vec![BITBUCKET_TOKEN.to_owned()];
    let repo = Repo::new();
    let first = repo.commit("integrations.yaml", MANIFEST);
    let url = repo.url();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cwd = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_env(
        &api,
        cwd.path(),
        &[
            "--git-url",
            &url,
            "--webhook-listen",
            &listen,
            "--commit-status-repo",
            "acme/infra",
            "--public-url",
            "https://bbsync.example.com/status",
            "--interval",
            "1h",
            "--git-interval",
            "1h",
        ],
        &[
            ("BBSYNC_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("BBSYNC_BITBUCKET_TOKEN", BITBUCKET_TOKEN),
        ],
    );
    let status = next_run(&daemon, 0);
    assert_eq!(last_run(&status)["commit"], first.as_str(), "{status:#}");

    // The statuses of the first run, on its commit: INPROGRESS, then SUCCESSFUL.
    let posts = daemon.wait_for("the final status", |_| {
        api.sandbox
            .world()
            .bitbucket
            .commit_status_posts("acme", "infra", &first)
            .len()
            >= 2
    });
    drop(posts);
    let posts = api
        .sandbox
        .world()
        .bitbucket
        .commit_status_posts("acme", "infra", &first);
    let states: Vec<&str> = posts.iter().map(|p| p.state.as_str()).collect();
    assert_eq!(states, ["INPROGRESS", "SUCCESSFUL"], "{posts:#?}");
    assert!(posts.iter().all(|p| p.key == "bbsync"));
    let last = posts.last().unwrap();
    assert_eq!(last.url, "https://bbsync.example.com/status");
    let description = last.description.clone().unwrap_or_default();
    assert!(description.contains("created"), "{description}");

    // A forged delivery is refused and starts nothing.
    let second = repo.commit(
        "integrations.yaml",
        &MANIFEST.replace(
            "      fetch_branches: false",
            "      fetch_branches: false\n      build_pull_requests: false",
        ),
    );
    assert_eq!(
        deliver(port, "repo:push", "{}", "not-the-secret-at-all"),
        401
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(runs(&daemon.status()), 1, "a forged delivery runs nothing");

    // A signed push fetches and runs at once (the poll is an hour away).
    assert_eq!(
        deliver(port, "repo:push", "{\"push\":{}}", WEBHOOK_SECRET),
        202
    );
    let status = next_run(&daemon, 1);
    assert_eq!(last_run(&status)["commit"], second.as_str(), "{status:#}");
    assert_eq!(last_run(&status)["triggers"][0], "webhook");
    assert_eq!(api.managed("missing")[0].1["build_pull_requests"], false);

    // A burst: ten deliveries while a run is in flight or pending make at most one more run.
    let before = runs(&daemon.status());
    for _ in 0..10 {
        assert_eq!(
            deliver(port, "repo:refs_changed", "{}", WEBHOOK_SECRET),
            202
        );
    }
    let status = next_run(&daemon, before);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after = runs(&daemon.status());
    assert!(
        after - before <= 2 && after > before,
        "ten deliveries made {} runs: {status:#}",
        after - before
    );
    let (_, metrics) = daemon.get("/metrics");
    assert!(
        metrics.contains("bbsync_webhook_deliveries_total{result=\"accepted\"} 11"),
        "{metrics}"
    );
    assert!(metrics.contains("bbsync_webhook_deliveries_total{result=\"bad_signature\"} 1"));
    assert!(metrics.contains("bbsync_commit_statuses_total{result=\"posted\"}"));
    let status_text = daemon.status().to_string();
    let (code, logs) = daemon.stop();
    assert_eq!(code, 0);
    for output in [&status_text, &metrics, &logs] {
        for secret in [WEBHOOK_SECRET, BITBUCKET_TOKEN] {
            assert!(!output.contains(secret), "a secret leaked: {output}");
        }
    }
}

#[test]
fn an_invalid_commit_gets_a_failed_status_naming_the_commit_in_force() {
    let api = Api::start(world(), Faults::default());
    let repo = Repo::new();
    let good = repo.commit("integrations.yaml", MANIFEST);
    let url = repo.url();
    let cwd = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_env(
        &api,
        cwd.path(),
        &[
            "--git-url",
            &url,
            "--commit-status-repo",
            "acme/infra",
            "--interval",
            "1h",
        ],
        &[("BBSYNC_BITBUCKET_TOKEN", BITBUCKET_TOKEN)],
    );
    next_run(&daemon, 0);
    let bad = repo.commit("integrations.yaml", "version: 1\nprojects: [\n");
    daemon.hangup();
    next_run(&daemon, 1);
    let posts = api
        .sandbox
        .world()
        .bitbucket
        .commit_status_posts("acme", "infra", &bad);
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].state, "FAILED");
    let description = posts[0].description.clone().unwrap_or_default();
    assert!(description.contains("invalid manifest"), "{description}");
    assert!(description.contains(&good[..12]), "{description}");
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn a_webhook_without_a_secret_or_statuses_without_a_repository_are_usage_errors() {
    let api = Api::start(world(), Faults::default());
    let cwd = tempfile::tempdir().unwrap();
    let out = api
        .run_quietly(
            cwd.path(),
            &[
                "watch",
                "--git-url",
                "file:///nowhere.git",
                "--webhook-listen",
                ":0",
            ],
        )
        .run();
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(
        out.stderr.contains("BBSYNC_WEBHOOK_SECRET"),
        "{}",
        out.all()
    );
    let out = api
        .run_quietly(cwd.path(), &["watch", "--git-url", "file:///nowhere.git"])
        .env("BBSYNC_BITBUCKET_TOKEN", BITBUCKET_TOKEN)
        .run();
    assert_eq!(out.code, 64, "{}", out.all());
    assert!(out.stderr.contains("--commit-status-repo"), "{}", out.all());
    assert!(!out.all().contains(BITBUCKET_TOKEN));
}
