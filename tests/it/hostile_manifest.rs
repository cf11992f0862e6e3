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
