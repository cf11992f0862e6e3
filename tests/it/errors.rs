//! How failures reach the user: one `error:` / `Caused by:` / `hint:` rendering, exit codes by
//! the error's class, and a closed stdout that ends bbsync quietly.

use crate::common::Run;
use crate::sync::{Api, MANIFEST, dir_with, world};
use bbsync::sandbox::Faults;

/// `bbsync plan | head`: when the reader goes away, bbsync stops without an error message.
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Run::new(dir.path(), &["schema"]).run_with_stdout_closed();
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stderr, "", "{out:#?}");

    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api
        .run_quietly(dir.path(), &["plan"])
        .run_with_stdout_closed();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(!out.stderr.contains("error"), "{out:#?}");
}

/// A plan file that cannot be read is a usage error (64), not an API outage (1).
#[test]
fn an_unreadable_plan_file_is_a_usage_error_with_its_cause() {
    let api = Api::start(world(), Faults::default());
    let dir = dir_with(MANIFEST);
    let out = api.run(dir.path(), &["apply", "missing.json"]).run();
    assert_eq!(out.code, 64, "{out:#?}");
    assert!(
        out.stderr
            .contains("error: cannot read the plan file `missing.json`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("\nCaused by:\n  "), "{}", out.stderr);
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);

    std::fs::write(dir.path().join("plan.json"), "{not json").unwrap();
    let out = api.run(dir.path(), &["apply", "plan.json"]).run();
    assert_eq!(out.code, 64, "{out:#?}");
    assert!(
        out.stderr.contains("`plan.json` is not a valid plan file"),
        "{}",
        out.stderr
    );
    assert_eq!(api.writes(), 0);
}

/// A connection failure names its cause (refused, DNS, TLS), not only "could not connect".
#[test]
fn a_transport_failure_shows_its_cause() {
    // One project: each read retries the token exchange with backoff, for about 6 s.
    let dir = dir_with(
        "version: 1\nprojects:\n  p1:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: k, secret: \"${BITBUCKET_SECRET}\"}\n",
    );
    // Port 9 on loopback: nothing listens there.
    let out = Run::new(dir.path(), &["plan"])
        .env("BBSYNC_API_URL", "http://127.0.0.1:9")
        .env("BBSYNC_AUTH_URL", "http://127.0.0.1:9")
        .env("PLATFORMSH_CLI_TOKEN", "a-token")
        .env("BITBUCKET_KEY", "k")
        .env("BITBUCKET_SECRET", "s")
        .env("BBS_TOKEN", "t")
        .forbid(&["a-token"])
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    // Each project's state is unknown, with the whole cause: no longer a bare "could not
    // connect" or "the connection failed".
    assert!(
        out.stdout.contains("got no answer: could not connect: ")
            && out.stdout.contains("Connection refused"),
        "{}",
        out.stdout
    );
}

/// Without a token: a message, a hint, exit 1, and nothing read.
#[test]
fn no_token_is_reported_with_a_hint() {
    let dir = dir_with(MANIFEST);
    let out = Run::new(dir.path(), &["plan"])
        .env("BITBUCKET_KEY", "k")
        .env("BITBUCKET_SECRET", "s")
        .env("BBS_TOKEN", "t")
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .starts_with("error: no API token: set PLATFORMSH_CLI_TOKEN (or UPSUN_CLI_TOKEN)\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("  hint: create one in the Console"),
        "{}",
        out.stderr
    );
}

/// `--project` takes what the manifest takes: an ID that could never match is refused (64).
#[test]
fn a_project_id_the_manifest_would_refuse_is_a_usage_error() {
    let dir = dir_with(MANIFEST);
    let out = Run::new(dir.path(), &["plan", "--project", "ABC"]).run();
    assert_eq!(out.code, 64, "{out:#?}");
    assert!(
        out.stderr.contains("is not a Platform.sh project ID"),
        "{}",
        out.stderr
    );
}

/// Hostile numbers on the command line (the attacks as found panicked): each is a usage error
/// (64) naming the flag and its range, never a panic.
#[test]
fn out_of_range_numbers_are_usage_errors_never_panics() {
    let dir = dir_with(MANIFEST);
    for (flags, says) in [
        (&["--timeout", "99999999999999999999999s"][..], "a week"),
        (&["--timeout", "5"], "has no unit: write `5s`"),
        (&["--timeout", "1e30"], "unknown unit"),
        (&["--timeout", "0s"], "more than 0"),
        (&["--max-rps", "1e-300"], "from 0.01 to 10000"),
        (&["--max-rps", "inf"], "from 0.01 to 10000"),
        (&["--max-rps", "NaN"], "from 0.01 to 10000"),
        (&["--max-rps=-1"], "from 0.01 to 10000"),
        (&["--concurrency", "99999999999"], "--concurrency"),
    ] {
        let mut args = flags.to_vec();
        args.push("plan");
        let out = Run::new(dir.path(), &args)
            .env("PLATFORMSH_CLI_TOKEN", "t")
            .run();
        assert_eq!(out.code, 64, "{flags:?}: {out:#?}");
        assert!(
            out.stderr.contains(flags[0].split('=').next().unwrap()) && out.stderr.contains(says),
            "{flags:?}: {}",
            out.stderr
        );
    }
    for flags in [
        &["watch", "--interval", "0s"][..],
        &["watch", "--interval", "9s"],
        &["watch", "--interval", "5"],
        &["watch", "--settle", "999999h"],
        &["watch", "--debounce", "18446744073709551616ms"],
    ] {
        let out = Run::new(dir.path(), flags)
            .env("PLATFORMSH_CLI_TOKEN", "t")
            .run();
        assert_eq!(out.code, 64, "{flags:?}: {out:#?}");
        assert!(out.stderr.contains(flags[1]), "{flags:?}: {}", out.stderr);
    }
}

/// `--log-format json`: the error that ends bbsync is a JSON line too, like every other line on
/// stderr.
#[test]
fn with_json_logs_the_final_error_is_json() {
    let dir = dir_with(MANIFEST);
    let out = Run::new(dir.path(), &["plan", "--log-format", "json"])
        .env("BITBUCKET_KEY", "k")
        .env("BITBUCKET_SECRET", "s")
        .env("BBS_TOKEN", "t")
        .run();
    assert_eq!(out.code, 1, "{out:#?}");
    for line in out.stderr.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(parsed["level"], "ERROR", "{line}");
        assert!(
            parsed["message"]
                .as_str()
                .unwrap()
                .starts_with("no API token"),
            "{line}"
        );
        assert_eq!(parsed["exit_code"], 1);
    }
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}
