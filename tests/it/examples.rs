//! The examples under `examples/` run as written (issue 19 item 7): every YAML file parses,
//! and every `bbsync ...` command line in them names a subcommand and flags that exist.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::root;

/// Every `*.yaml` / `*.yml` below `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every document of `path`, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_multiple_with_options(&text, options)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Splits a shell command into words: whitespace outside quotes; quotes removed.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// The `bbsync ...` commands of a shell script: each simple command (split at `;`, `&&`,
/// `||`, `|`) whose first word is `bbsync` and that has a second, up to its first redirection or comment.
fn commands_in_script(script: &str) -> Vec<Vec<String>> {
    let joined = script.replace("\\\n", " ");
    let mut commands = Vec::new();
    for line in joined.lines() {
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        let line = line.replace("&&", ";").replace("||", ";").replace('|', ";");
        for segment in line.split(';') {
            let segment = segment.trim();
            let segment = segment
                .find(['>', '<'])
                .map_or(segment, |i| segment[..i].trim_end_matches(['2', ' ']));
            let words = words(segment);
            // `bbsync` alone is a name (`name: bbsync`, `caches: [bbsync]`), not a command.
            if words.len() > 1 && words[0] == "bbsync" {
                commands.push(words);
            }
        }
    }
    commands
}

/// The bbsync command lines in a YAML value: in every string (CI scripts), and a container
/// whose image is bbsync's with its `args` (Kubernetes; the image's entrypoint is bbsync).
fn commands_in(value: &Value, out: &mut Vec<Vec<String>>) {
    match value {
        Value::String(text) => out.extend(commands_in_script(text)),
        Value::Array(items) => items.iter().for_each(|item| commands_in(item, out)),
        Value::Object(map) => {
            let bbsync_image = map
                .get("image")
                .and_then(Value::as_str)
                .is_some_and(|image| image.starts_with("bbsync"));
            if bbsync_image && let Some(Value::Array(args)) = map.get("args") {
                let mut command = vec!["bbsync".to_owned()];
                command.extend(args.iter().filter_map(Value::as_str).map(str::to_owned));
                out.push(command);
            }
            map.values().for_each(|inner| commands_in(inner, out));
        }
        _ => {}
    }
}

/// Why `command` is not a bbsync command line, if it is not one. A value that the shell fills
/// in (`$VAR`) may fail the flag's own check: the flag exists, which is what is checked.
fn check(command: &[String]) -> Result<(), String> {
    use clap::error::ErrorKind;
    match bbsync::cli::command().try_get_matches_from(command) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ValueValidation | ErrorKind::InvalidValue
            ) && command.iter().any(|w| w.contains('$')) =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn r19_every_example_yaml_parses_and_its_bbsync_commands_exist() {
    let mut checked = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for path in yaml_files(&root().join("examples")) {
        let mut commands = Vec::new();
        for document in documents(&path) {
            commands_in(&document, &mut commands);
        }
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        for command in &commands {
            if let Err(e) = check(command) {
                problems.push(format!("{name}: `{}`: {e}", command.join(" ")));
            }
        }
        checked.insert(name, commands.len());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The check found the commands it is about.
    for (example, at_least) in [
        ("examples/ci/bitbucket-pipelines.yml", 7),
        ("examples/ci/github-actions.yml", 4),
        ("examples/deploy/kubernetes.yaml", 1),
        ("examples/deploy/kubernetes-git.yaml", 1),
    ] {
        assert!(
            checked.get(example).is_some_and(|n| *n >= at_least),
            "{example}: {checked:#?}"
        );
    }
}

/// The checker itself: a wrong subcommand or flag is caught; shell syntax around a command
/// is not taken for its arguments.
#[test]
fn the_example_checker_catches_wrong_commands() {
    let found = commands_in_script(
        "set +e; bbsync plan --format markdown --detailed-exitcode > plan.md; code=$?\ncommand -v bbsync || bbsync --version 2>/dev/null | grep -q 1\nbbsync apply \\\n  plan.json  # a comment\n",
    );
    let lines: Vec<String> = found.iter().map(|c| c.join(" ")).collect();
    assert_eq!(
        lines,
        [
            "bbsync plan --format markdown --detailed-exitcode",
            "bbsync --version",
            "bbsync apply plan.json",
        ]
    );
    for line in &found {
        check(line).unwrap();
    }
    for wrong in [
        "bbsync plna",
        "bbsync plan --formt json",
        "bbsync apply --yes",
    ] {
        let words: Vec<String> = wrong.split(' ').map(str::to_owned).collect();
        assert!(check(&words).is_err(), "{wrong}");
    }
}
