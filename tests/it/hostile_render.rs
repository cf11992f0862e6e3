//! Hostile live values against the renderings: what the API returns (project titles and IDs,
//! integration fields) must not change the structure of an exported manifest, break out of a
//! Markdown code span or table cell, or reach a terminal as raw control characters.

use bbsync::sandbox::Faults;
use serde_json::{Value, json};

use crate::sync::{Api, dir_with};

fn cloud(repository: &str, key: &str) -> Value {
    json!({"type": "bitbucket", "repository": repository, "app_credentials": {"key": key},
           "fetch_branches": true, "prune_branches": true, "build_pull_requests": true, "resync_pull_requests": false})
}

/// The attack as found: a `\r` in a project title ended the title's comment line, and the rest
/// of the title was read as manifest lines. The export validated, and `apply` deleted the
/// integration of a project that was never exported.
fn injected_title(separator: &str) -> String {
    format!("Mallory){separator}  victim: {{absent: true}}{separator}  # (")
}

fn export_then_apply(separator: &str) {
    let api = Api::start(
        json!({"projects": [
            {"id": "attacker", "title": injected_title(separator)},
            {"id": "web", "title": "Website", "integrations": [cloud("acme/web", "consumer-key")]},
            {"id": "victim", "title": "Victim", "integrations": [cloud("acme/victim", "consumer-key")]},
        ]}),
        Faults::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = api
        .run(
            dir.path(),
            &[
                "export",
                "--project",
                "attacker",
                "--project",
                "web",
                "-o",
                "integrations.yaml",
            ],
        )
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    let manifest = std::fs::read_to_string(dir.path().join("integrations.yaml")).unwrap();
    let lines: Vec<&str> = manifest.split(['\n', '\r']).collect();
    assert!(
        !lines.iter().any(|l| l.trim_start().starts_with("victim")),
        "the title wrote a manifest line:\n{manifest:?}"
    );
    let validate = api.run(dir.path(), &["validate"]).run();
    assert_eq!(validate.code, 0, "{manifest:?}\n{validate:#?}");
    let apply = api.run(dir.path(), &["apply", "--auto-approve"]).run();
    assert_eq!(apply.code, 0, "{manifest:?}\n{apply:#?}");
    assert_eq!(
        api.managed("victim").len(),
        1,
        "apply deleted the victim's integration:\n{manifest:?}\n{}",
        apply.stdout
    );
    assert_eq!(api.managed("web").len(), 1);
    assert_eq!(
        api.writes(),
        0,
        "the export plans zero changes:\n{}",
        apply.stdout
    );
}

#[test]
fn a_carriage_return_in_a_title_writes_no_manifest_line() {
    export_then_apply("\r");
}

#[test]
fn no_line_break_in_a_title_writes_a_manifest_line() {
    for separator in [
        "\n", "\r\n", "\u{85}", "\u{2028}", "\u{2029}", "\u{b}", "\u{c}",
    ] {
        export_then_apply(separator);
    }
}

/// Every live string of an integration comes back exactly: written so that the YAML reads it
/// as the same string, whatever YAML or template syntax it holds.
#[test]
fn hostile_live_values_are_exported_as_they_are() {
    let key = "k: v # not a comment\r  victim: {absent: true}\n- ${NOT_A_VARIABLE}:";
    let username = "bot\u{2028}'\"`|>\u{1b}[31m%@&*!?";
    let api = Api::start(
        json!({"projects": [
            {"id": "cloud", "title": "C\u{1b}]0;pwned\u{7}", "integrations": [cloud("acme/web", key)]},
            {"id": "server", "integrations": [
                {"type": "bitbucket_server", "url": "https://bb.example.com/x:", "username": username,
                 "project": "-WEB:", "repository": "#shop",
                 "fetch_branches": true, "prune_branches": true, "build_pull_requests": true,
                 "pull_requests_clone_parent_data": true}
            ]},
        ]}),
        Faults::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = api
        .run(
            dir.path(),
            &[
                "export",
                "--project",
                "cloud",
                "--project",
                "server",
                "-o",
                "integrations.yaml",
            ],
        )
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{2028}'),
        "{:?}",
        out.stderr
    );
    let manifest = std::fs::read_to_string(dir.path().join("integrations.yaml")).unwrap();
    assert!(
        !manifest.contains(['\r', '\u{1b}', '\u{7}', '\u{2028}']),
        "{manifest:?}"
    );
    let plan = api.run(dir.path(), &["plan", "--detailed-exitcode"]).run();
    assert_eq!(plan.code, 0, "{manifest}\n{plan:#?}");
    assert!(plan.stdout.contains("2 unchanged"), "{}", plan.stdout);
}
/// A manifest whose `web` project drifted from a hostile live key, and an organization project
/// with a hostile ID that `prune` deletes.
fn hostile_plan(format: &[&str]) -> crate::common::Outcome {
    let evil = "evil`x|y\u{1b}[2J<b>";
    let api = Api::start(
        json!({
            "organizations": [{"id": "01J7ZQ4M1B6C8D9E0F2G3H4J5K"}],
            "projects": [
                {"id": "web", "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K",
                 "integrations": [cloud("acme/web", "old`` `|\n\u{1b}[31m| x |")]},
                {"id": evil, "organization": "01J7ZQ4M1B6C8D9E0F2G3H4J5K", "integrations": [cloud("acme/evil\u{1b}[2J", "k")]},
            ]
        }),
        Faults::default(),
    );
    let dir = dir_with(
        "version: 1\norganization: 01J7ZQ4M1B6C8D9E0F2G3H4J5K\nprune: true\nprojects:\n  web:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: new-key, secret: \"${BITBUCKET_SECRET}\"}\n",
    );
    let mut args = vec!["plan"];
    args.extend_from_slice(format);
    let out = api.run(dir.path(), &args).run();
    // The hostile ID is no project ID, so bbsync refuses to delete under it: an error row.
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stdout.contains("is not a project ID"), "{out:#?}");
    out
}

/// The unescaped `|` of a Markdown table row: a row of `columns` cells has `columns + 1`.
/// As in GitHub's cmark-gfm, a `|` right after a `\` is escaped (a `\\` before it is not an
/// escape of its own).
fn cell_separators(row: &str) -> usize {
    let chars: Vec<char> = row.chars().collect();
    (0..chars.len())
        .filter(|&i| chars[i] == '|' && (i == 0 || chars[i - 1] != '\\'))
        .count()
}

#[test]
fn markdown_keeps_hostile_values_inside_their_code_spans_and_cells() {
    let out = hostile_plan(&["--format", "markdown"]);
    let markdown = &out.stdout;
    assert!(
        !markdown.contains(['\u{1b}', '\r']),
        "a control character reached the Markdown:\n{markdown:?}"
    );
    // The drifted key: one cell, one code span fenced longer than the value's backtick runs.
    let key_row = markdown
        .lines()
        .find(|l| l.starts_with("| `app_credentials.key` |"))
        .unwrap_or_else(|| panic!("no key row:\n{markdown}"));
    assert_eq!(cell_separators(key_row), 4, "{key_row}");
    assert!(
        key_row.contains(r#"| ```"old`` `\|\n\u{1b}[31m\| x \|"``` |"#),
        "{key_row}"
    );
    // The project with the hostile ID: its row keeps six cells, its ID one code span.
    let evil_row = markdown
        .lines()
        .find(|l| l.contains("| error |"))
        .unwrap_or_else(|| panic!("no delete row:\n{markdown}"));
    assert_eq!(cell_separators(evil_row), 7, "{evil_row}");
    assert!(
        evil_row.contains(r"| ``evil`x\|y\u{1b}[2J<b>`` |"),
        "{evil_row}"
    );
    for row in markdown.lines().filter(|l| l.starts_with('|')) {
        let fields =
            row.starts_with("| `") || row.starts_with("| Field |") || row == "|---|---|---|";
        assert_eq!(cell_separators(row), if fields { 4 } else { 7 }, "{row}");
    }
}

#[test]
fn the_text_plan_shows_hostile_values_without_their_control_characters() {
    let out = hostile_plan(&[]);
    let text = &out.stdout;
    assert!(
        !text.contains(['\u{1b}', '\r']),
        "a control character reached the terminal:\n{text:?}"
    );
    assert!(
        text.contains("  x error    evil`x|y\\u{1b}[2J<b>  \n"),
        "{text}"
    );
}
