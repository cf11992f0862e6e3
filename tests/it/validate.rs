//! `bbsync validate` and `bbsync schema` end to end: the bad-manifest corpus, snapshots of the
//! most common mistakes, the shipped examples, and the committed schema.

use std::path::Path;

use crate::common::{Run, root};

fn corpus() -> std::path::PathBuf {
    root().join("tests/corpus/invalid")
}

/// Every file in the corpus states on its first line where the error is and what it says:
/// `# expect: LINE:COL message` (or just `# expect: message` for YAML syntax errors).
#[test]
fn every_bad_manifest_exits_4_with_its_location() {
    let mut checked = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("# expect: ");
        let (location, message) = match expect.split_once(' ') {
            Some((loc, msg)) if loc.contains(':') => (Some(loc), msg),
            _ => (None, expect),
        };
        let out = Run::new(&corpus(), &["validate", "-f", &name])
            .env("BITBUCKET_KEY", "k")
            .env("BITBUCKET_SECRET", "s")
            .run();
        assert_eq!(out.code, 4, "{name}: {out:#?}");
        assert!(
            out.stderr.contains(message),
            "{name}: wanted {message:?}\n{}",
            out.stderr
        );
        match location {
            Some(loc) => assert!(
                out.stderr.contains(&format!("{name}:{loc}: ")),
                "{name}: wanted {loc}\n{}",
                out.stderr
            ),
            None => assert!(
                out.stderr.contains(&format!("{name}:")),
                "{name}: no location\n{}",
                out.stderr
            ),
        }
        assert!(out.stderr.contains("nothing was sent to the API"), "{name}");
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} corpus files");
}

fn invalid_in_tempdir(name: &str, bytes: &[u8]) -> crate::common::Outcome {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    let out = Run::new(dir.path(), &["validate", "-f", name]).run();
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(out.stderr.contains(&format!("{name}:")), "{out:#?}");
    out
}

#[test]
fn an_empty_file_is_invalid() {
    let out = invalid_in_tempdir("empty.yaml", b"");
    assert!(
        out.stderr.contains("empty.yaml:1:1: the manifest is empty"),
        "{}",
        out.stderr
    );
    invalid_in_tempdir("comments.yaml", b"# nothing but\n# comments\n");
}

#[test]
fn non_utf8_bytes_are_located() {
    let out = invalid_in_tempdir("latin1.yaml", b"version: 1\nprojects:\n  caf\xe9: {}\n");
    assert!(
        out.stderr
            .contains("latin1.yaml:3:6: the file is not valid UTF-8"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_10_mb_file_is_refused_without_parsing() {
    let mut text = b"version: 1\nprojects: {}\n".to_vec();
    text.resize(10 * 1024 * 1024, b'#');
    let out = invalid_in_tempdir("huge.yaml", &text);
    assert!(
        out.stderr.contains("may be at most 8 MiB"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_alias_bomb_is_stopped_by_the_budget() {
    let mut text = String::from("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..=9 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("projects: {}\n");
    let start = std::time::Instant::now();
    let out = invalid_in_tempdir("bomb.yaml", text.as_bytes());
    assert!(
        start.elapsed().as_secs() < 20,
        "the bomb took {:?}",
        start.elapsed()
    );
    assert!(out.stderr.contains("bomb.yaml:"), "{}", out.stderr);
}

#[test]
fn a_project_in_two_files_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let body = "version: 1\nprojects:\n  abcdefgh1234k:\n    absent: true\n";
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::fs::write(dir.path().join("m/a.yaml"), body).unwrap();
    std::fs::write(dir.path().join("m/b.yml"), body).unwrap();
    std::fs::write(dir.path().join("m/notes.txt"), "ignored").unwrap();
    let out = Run::new(dir.path(), &["validate", "-f", "m"]).run();
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stderr
            .contains("m/b.yml:3:3: project `abcdefgh1234k` is defined twice"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("m/a.yaml:3:3"), "{}", out.stderr);
}

#[test]
fn a_missing_file_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = Run::new(dir.path(), &["validate"]).run();
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stderr.contains("cannot read `integrations.yaml`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("integrations.yaml.example"),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Run::new(dir.path(), &["validat"]).run().code, 64);
    assert_eq!(
        Run::new(dir.path(), &["validate", "--bogus"]).run().code,
        64
    );
    let small = Run::new(dir.path(), &["plan", "--markdown-limit", "500"]).run();
    assert_eq!(small.code, 64, "{small:#?}");
    assert!(small.stderr.contains("at least 1000"), "{}", small.stderr);
    assert_eq!(Run::new(dir.path(), &["--help"]).run().code, 0);
    assert_eq!(Run::new(dir.path(), &["--version"]).run().code, 0);
}

/// The ten most common mistakes, rendered: these messages change only on purpose.
#[test]
fn common_mistakes_render_stably() {
    for name in [
        "01-unknown-field",
        "02-string-for-boolean",
        "03-repository-three-parts",
        "04-two-types",
        "05-literal-secret",
        "06-missing-version",
        "09-bad-indentation",
        "12-bad-init-resources",
        "16-missing-credentials",
        "21-server-field-on-cloud",
    ] {
        let file = format!("{name}.yaml");
        let out = Run::new(&corpus(), &["validate", "-f", &file])
            .env("BITBUCKET_KEY", "k")
            .env("BITBUCKET_SECRET", "s")
            .run();
        insta::assert_snapshot!(name, out.stderr);
    }
}

#[test]
fn the_literal_secret_never_reaches_output() {
    let out = Run::new(&corpus(), &["validate", "-f", "05-literal-secret.yaml"]).run();
    assert!(!out.all().contains("hunter2"), "{}", out.all());
}

#[test]
fn the_shipped_example_validates_cleanly() {
    let out = Run::new(&root(), &["validate", "-f", "integrations.yaml.example"])
        .env("BITBUCKET_KEY", "key")
        .env("BITBUCKET_SECRET", "secret")
        .env("BBS_TOKEN", "token")
        .env("SHOP_BITBUCKET_KEY", "key")
        .env("SHOP_BITBUCKET_SECRET", "secret")
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stderr, "", "a clean summary, no warnings");
    assert!(out.stdout.contains(": valid"), "{}", out.stdout);
}

#[test]
fn every_example_manifest_is_valid() {
    let examples = root().join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let is_manifest = path.is_dir()
            && path.file_name().is_some_and(|n| n != "ci" && n != "deploy")
            || path.extension().is_some_and(|e| e == "yaml");
        if !is_manifest {
            continue;
        }
        let out = Run::new(&examples, &["validate", "-f", path.to_str().unwrap()]).run();
        assert_eq!(out.code, 0, "{}: {out:#?}", path.display());
        seen += 1;
    }
    assert!(seen >= 4, "only {seen} examples");
}

#[test]
fn the_committed_schema_is_what_the_code_generates() {
    let out = Run::new(Path::new("."), &["schema"]).run();
    assert_eq!(out.code, 0);
    let committed = std::fs::read_to_string(root().join("schema/bbsync.schema.json")).unwrap();
    assert!(
        committed == out.stdout,
        "schema/bbsync.schema.json is stale: run `cargo run -- schema > schema/bbsync.schema.json`"
    );
}

#[test]
fn ci_and_deploy_examples_are_valid_yaml() {
    let mut seen = 0;
    for dir in ["examples/ci", "examples/deploy"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            ) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!documents.is_empty(), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 3);
}

/// Every input the fuzzer kept (the committed, minimised corpus) passes the fuzz target's
/// checks again: a regression found by fuzzing stays fixed without a nightly toolchain.
#[test]
fn the_fuzz_corpus_replays_without_a_panic() {
    let corpus = root().join("fuzz/corpus/manifest");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| bbsync::model::fuzzing::manifest_loader(&data));
        assert!(outcome.is_ok(), "{} broke the loader", path.display());
        replayed += 1;
    }
    assert!(replayed > 1000, "the corpus is missing: {replayed} files");
}

/// `validate --format json`: one document on stdout, warnings included, exit 0 when valid;
/// not with `--online`.
#[test]
fn validate_json_lists_warnings_of_a_valid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        "version: 1\nprojects:\n  abcdefgh1234k:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: '${KEY}', secret: '${SECRET}'}\n",
    )
    .unwrap();
    let out = Run::new(
        dir.path(),
        &["validate", "-f", "m.yaml", "--format", "json"],
    )
    .run();
    assert_eq!(out.code, 0, "{out:#?}");
    let document: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(document["valid"], true);
    assert_eq!(document["projects"], 1);
    assert_eq!(document["errors"], 0);
    let diagnostics = document["diagnostics"].as_array().unwrap();
    assert!(!diagnostics.is_empty(), "{}", out.stdout);
    assert_eq!(diagnostics[0]["severity"], "warning", "{}", out.stdout);
    assert_eq!(diagnostics[0]["file"], "m.yaml", "{}", out.stdout);
    let out = Run::new(
        dir.path(),
        &["validate", "-f", "m.yaml", "--format", "json", "--online"],
    )
    .run();
    assert_eq!(out.code, 64, "{out:#?}");
}
