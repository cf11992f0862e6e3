//! Manifests written to attack bbsync: whoever can open a pull request writes the manifest,
//! plan output is posted publicly, and the environment holds secrets. Each test is an attack
//! that once worked (a leak, a panic or a hang) and now ends in a located error, exit 4.

use std::path::Path;
use std::time::Duration;

use crate::common::{Outcome, Run};

/// Far more than any of these runs needs: a run that takes this long hangs.
const HANG: Duration = Duration::from_secs(120);

fn validate(dir: &Path, args: &[&str]) -> Outcome {
    let mut all = vec!["validate"];
    all.extend_from_slice(args);
    Run::new(dir, &all).deadline(HANG).run()
}

const VALID: &str = "version: 1\nprojects:\n  abcdefgh1234k:\n    absent: true\n";

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[cfg(unix)]
#[test]
fn symlink_loops_in_a_directory_end_in_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::fs::write(dir.path().join("m/a.yaml"), VALID).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("m/x")).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("m/y")).unwrap();
    for command in ["validate", "plan"] {
        let out = Run::new(dir.path(), &[command, "-f", "m"])
            .deadline(HANG)
            .run();
        assert_eq!(out.code, 4, "{out:#?}");
        assert!(
            out.stderr.contains("`m/x` leads to")
                && out.stderr.contains("a directory already read"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("help: remove the symlink"),
            "{}",
            out.stderr
        );
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_being_opened() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("pipe.yaml"));
    let out = validate(dir.path(), &["-f", "pipe.yaml"]);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stderr
            .contains("error: `pipe.yaml` is a FIFO, not a regular file"),
        "{}",
        out.stderr
    );
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::fs::write(dir.path().join("m/a.yaml"), VALID).unwrap();
    mkfifo(&dir.path().join("m/b.yaml"));
    let out = validate(dir.path(), &["-f", "m"]);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stderr
            .contains("error: `m/b.yaml` is a FIFO, not a regular file"),
        "{}",
        out.stderr
    );
}

#[cfg(unix)]
#[test]
fn dev_zero_is_refused_without_being_read() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = validate(dir.path(), &["-f", "/dev/zero"]);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stderr
            .contains("`/dev/zero` is a character device, not a regular file"),
        "{}",
        out.stderr
    );
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("m/zero.yaml")).unwrap();
    let out = validate(dir.path(), &["-f", "m"]);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stderr
            .contains("`m/zero.yaml` is a character device, not a regular file"),
        "{}",
        out.stderr
    );
}

/// A manifest file named `m.yaml` in a fresh directory.
fn manifest(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), text).unwrap();
    dir
}

/// A Bitbucket project on one line, its fields `padding` spaces in: `more` ends the block.
fn long_line(padding: usize, more: &str) -> String {
    format!(
        "version: 1\nprojects: {{abcdefgh1234k: {{bitbucket: {{{}repository: acme/web, app_credentials: {{key: '${{KEY}}', secret: '${{SECRET}}'}}{more}}}}}}}\n",
        " ".repeat(padding)
    )
}

/// miette panics drawing a caret past column 65,535 (exit 101): an error and a warning far out
/// on a long line are drawn in a window around their column, the header naming the real one.
#[test]
fn a_diagnostic_past_column_65535_is_drawn_not_a_panic() {
    let column = |text: &str, key: &str| 1 + text.lines().nth(1).unwrap().find(key).unwrap();
    let text = long_line(70_000, ", fetch_branch: true");
    let dir = manifest(&text);
    let out = validate(dir.path(), &["-f", "m.yaml"]);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(out.stderr.len() < 4_000, "{}", out.stderr);
    let at = format!("m.yaml:2:{}", column(&text, "fetch_branch"));
    assert!(
        out.stderr
            .contains(&format!("error: {at}: unknown field `fetch_branch`")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("[{at}]")), "{}", out.stderr);
    assert!(out.stderr.contains("…"), "{}", out.stderr);
    assert!(out.stderr.contains("fetch_branch: true"), "{}", out.stderr);

    let text = long_line(70_000, ", pull_requests_max_pages: 3");
    let dir = manifest(&text);
    let out = Run::new(dir.path(), &["validate", "-f", "m.yaml"])
        .env("KEY", "k")
        .env("SECRET", "s")
        .deadline(HANG)
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stderr.len() < 4_000, "{}", out.stderr);
    let at = format!("m.yaml:2:{}", column(&text, "pull_requests_max_pages"));
    assert!(
        out.stderr.contains(&format!("warning: {at}: ")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("[{at}]")), "{}", out.stderr);
}

/// YAML ends a line at a lone `\r` too: the parser's line numbers and the snippet's agree.
#[test]
fn bare_cr_line_breaks_are_counted_as_lines() {
    for text in [
        "version: 1\rprojects:\r  abcdefgh1234k:\r    absent: true\r    protekt: true\r",
        "version: 1\r\nprojects:\r\n  abcdefgh1234k:\r\n    absent: true\r\n    protekt: true\r\n",
    ] {
        let dir = manifest(text);
        let out = validate(dir.path(), &["-f", "m.yaml"]);
        assert_eq!(out.code, 4, "{out:#?}");
        assert!(
            out.stderr
                .contains("error: m.yaml:5:5: unknown field `protekt`"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("[m.yaml:5:5]"), "{}", out.stderr);
        assert!(
            out.stderr.contains(" 5 │     protekt: true\n"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains('\r'), "{:?}", out.stderr);
    }
}

/// Validates `text`, which holds the literal secret `secret` next to some other problem: the
/// run fails (exit 4) and its output shows `********` where the secret stands, never the value.
fn assert_masked(text: &str, secret: &str) -> Outcome {
    let dir = manifest(text);
    let out = Run::new(dir.path(), &["validate", "-f", "m.yaml"])
        .env("KEY", "k")
        .forbid(&[secret])
        .deadline(HANG)
        .run();
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(out.stderr.contains("********"), "{}", out.stderr);
    let json = Run::new(
        dir.path(),
        &["validate", "-f", "m.yaml", "--format", "json"],
    )
    .env("KEY", "k")
    .forbid(&[secret])
    .deadline(HANG)
    .run();
    assert_eq!(json.code, 4, "{json:#?}");
    let document: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(document["valid"], false, "{}", json.stdout);
    out
}

const HEAD: &str = "version: 1\nprojects:\n  abcdefgh1234k:\n    bitbucket:\n";

/// Issue 13: a literal secret is an error, but the snippets of other diagnostics showed it.
#[test]
fn a_literal_secret_on_a_line_next_to_another_error_is_masked() {
    let text = format!(
        "{HEAD}      repository: acme/web\n      app_credentials:\n        key: ${{KEY}}\n        secret: hunter2-adjacent\n      fetch_branch: true\n"
    );
    let out = assert_masked(&text, "hunter2-adjacent");
    assert!(
        out.stderr
            .contains("m.yaml:9:7: unknown field `fetch_branch`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("secret: ********\n"), "{}", out.stderr);
}

/// Two errors, each with the other's line in its snippet: the literal secret's own, and a bad
/// repository just above it.
#[test]
fn a_literal_secret_is_masked_in_another_errors_snippet() {
    let text = format!(
        "{HEAD}      repository: not a repository\n      app_credentials: {{key: '${{KEY}}', secret: hunter2-other}}\n"
    );
    let out = assert_masked(&text, "hunter2-other");
    assert!(out.stderr.contains("m.yaml:5:19: "), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`app_credentials.secret` must be a `${NAME}` reference"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("secret: ********}"), "{}", out.stderr);
}

/// `token` belongs to `bitbucket_server`; under `bitbucket` it is an unknown field, and its
/// value still a secret.
#[test]
fn a_literal_secret_under_the_wrong_block_is_masked() {
    let text = format!(
        "{HEAD}      repository: acme/web\n      token: hunter2-wrong-block\n      app_credentials: {{key: '${{KEY}}', secret: '${{S}}'}}\n"
    );
    let out = assert_masked(&text, "hunter2-wrong-block");
    assert!(
        out.stderr.contains("m.yaml:6:7: unknown field `token`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("token: ********\n"), "{}", out.stderr);
    // Where a block is expected, the type error describes the value without quoting it.
    let text = "version: 1\nprojects:\n  token: hunter2-as-project\n";
    let out = assert_masked(text, "hunter2-as-project");
    assert!(
        out.stderr
            .contains("m.yaml:3:10: `projects.token` must be a mapping, found a string\n"),
        "{}",
        out.stderr
    );
}

/// A number is no reference either: the type error about it shows no digits.
#[test]
fn a_numeric_literal_secret_is_masked() {
    let text = format!(
        "{HEAD}      repository: acme/web\n      app_credentials:\n        key: ${{KEY}}\n        secret: 987654321\n"
    );
    let out = assert_masked(&text, "987654321");
    assert!(out.stderr.contains("m.yaml:8:17: "), "{}", out.stderr);
    assert!(out.stderr.contains("must be a string"), "{}", out.stderr);
}

/// A block scalar's value stands on the lines below its key.
#[test]
fn a_literal_secret_in_a_block_scalar_is_masked() {
    let text = format!(
        "{HEAD}      repository: acme/web\n      app_credentials:\n        key: ${{KEY}}\n        secret: |\n          hunter2-block\n          hunter3-block\n      fetch_branch: true\n"
    );
    let out = assert_masked(&text, "hunter2-block");
    assert!(!out.all().contains("hunter3-block"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("m.yaml:11:7: unknown field `fetch_branch`"),
        "{}",
        out.stderr
    );
}

/// Before the YAML is parsed (a syntax error), secrets are found by their keys.
#[test]
fn a_literal_secret_next_to_a_yaml_syntax_error_is_masked() {
    let text = format!(
        "{HEAD}      repository: acme/web\n      app_credentials:\n        key: ${{KEY}}\n        secret: hunter2-syntax\n        x: [\n"
    );
    let out = assert_masked(&text, "hunter2-syntax");
    assert!(out.stderr.contains("invalid YAML"), "{}", out.stderr);
}

/// Issue 13: 20,000 errors took 35 s to print, each snippet rescanning the file. Drawing is
/// linear now, and text output shows the first 50; `--format json` has them all.
#[test]
fn twenty_thousand_errors_print_fast_and_capped() {
    let mut text = String::from("version: 1\nprojects:\n");
    for i in 0..20_000 {
        text.push_str(&format!("  p{i:08}: {{absent: true, protekt: true}}\n"));
    }
    let dir = manifest(&text);
    let guard = Duration::from_secs(45);
    let out = Run::new(dir.path(), &["validate", "-f", "m.yaml"])
        .deadline(guard)
        .run();
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("unknown field `protekt`").count(),
        50,
        "{}",
        out.stderr
    );
    assert!(out.stderr.len() < 50_000, "{}", out.stderr.len());
    assert!(
        out.stderr.contains(
            "\n... and 19,950 more errors; `bbsync validate --format json` lists them all\n"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(20000 errors)"), "{}", out.stderr);

    let out = Run::new(
        dir.path(),
        &["validate", "-f", "m.yaml", "--format", "json"],
    )
    .deadline(guard)
    .run();
    assert_eq!(out.code, 4, "{}", out.stderr);
    let document: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(document["errors"], 20_000);
    let diagnostics = document["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 20_000);
    assert_eq!(diagnostics[19_999]["line"], 20_002);
    assert_eq!(diagnostics[19_999]["file"], "m.yaml");
}

/// `acme/..` passed as `owner/repo` (dots are allowed in names): a path out of the owner's
/// repositories. Every dot segment is refused at its line and column, with what to write.
#[test]
fn dot_segments_in_a_repository_are_refused() {
    for (repository, dots) in [
        ("acme/..", ".."),
        ("../web", ".."),
        ("./x", "."),
        ("acme/.", "."),
    ] {
        let text = format!(
            "{HEAD}      repository: {repository}\n      app_credentials: {{key: '${{KEY}}', secret: '${{S}}'}}\n"
        );
        let dir = manifest(&text);
        let out = Run::new(dir.path(), &["validate", "-f", "m.yaml"])
            .env("KEY", "k")
            .env("S", "s")
            .deadline(HANG)
            .run();
        assert_eq!(out.code, 4, "{out:#?}");
        let expected = format!(
            "error: m.yaml:5:19: repository `{repository}` has a `{dots}` part: an owner or repository name is never `.` or `..`"
        );
        assert!(out.stderr.contains(&expected), "{}", out.stderr);
        assert!(
            out.stderr.contains("help: write `owner/repo`"),
            "{}",
            out.stderr
        );
    }
}

/// A file within 8 MiB can hold millions of values; past the node budget the error says so in
/// words (it once printed serde-saphyr's `Nodes { nodes: 250001 }`), and what to do.
#[test]
fn the_node_budget_is_a_located_error_in_words() {
    let text = format!("version: 1\nprojects:\n  p: [{}0]\n", "0,".repeat(250_000));
    let dir = manifest(&text);
    let out = validate(dir.path(), &["-f", "m.yaml"]);
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stderr
            .contains("invalid YAML: more than 250,000 keys, values and list items in one file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("error: m.yaml:3:"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("help: a project needs about 10; split the projects over several files"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Nodes"), "{}", out.stderr);
    assert!(out.stderr.len() < 4_000, "{}", out.stderr);
}
