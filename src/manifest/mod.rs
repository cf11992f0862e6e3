//! The manifest layer: `integrations.yaml` files to typed, located [`Manifest`]s.
//!
//! Loading a file goes: bytes -> UTF-8 text (size-limited) -> located YAML tree (serde-saphyr,
//! with budgets against alias bombs) -> every problem against the JSON Schema at once ->
//! typed [`Manifest`] plus a [`Locations`] table for later, semantic errors.

pub(crate) mod check;
pub(crate) mod diagnostic;
pub(crate) mod files;
mod mask;
pub(crate) mod node;
mod types;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub use check::Locations;
pub(crate) use types::*;

use crate::manifest::diagnostic::{Diagnostic, Location, SourceFile};
use node::{Node, Position};

/// The largest manifest file read, in bytes. A bigger manifest is split into a directory.
pub(crate) const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// One parsed manifest file.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// The file's text and name.
    pub source: Arc<SourceFile>,
    /// What it says.
    pub manifest: Manifest,
    /// Where each value stands.
    pub locations: Locations,
}

impl ManifestFile {
    /// The location of the value at `pointer`, or of its key when `key` is set; the file's start
    /// when the pointer is unknown.
    pub(crate) fn location(&self, pointer: &str, key: bool) -> Location {
        let position = self
            .locations
            .get(pointer)
            .map(|spot| if key { spot.key } else { spot.value })
            .unwrap_or(Position { line: 1, column: 1 });
        Location::new(&self.source, position)
    }
}

/// The manifest's JSON Schema (2020-12), as `bbsync schema` prints it.
pub(crate) fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = serde_json::to_value(schemars::schema_for!(Manifest))
            .expect("a schema serialises to JSON");
        disallow_null(&mut schema);
        if let Some(object) = schema.as_object_mut() {
            object.insert(
                "$id".to_owned(),
                "https://bbsync.dev/schema/bbsync.schema.json".into(),
            );
        }
        schema
    })
}

/// `bbsync schema`'s output: the schema, pretty-printed, with a final newline.
pub(crate) fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(schema()).expect("a schema serialises");
    text.push('\n');
    text
}

/// An omitted option and an empty one (`fetch_branches:`) must not mean the same thing, so the
/// schema accepts no `null` where serde's `Option` would: an empty value is reported.
fn disallow_null(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(branches)) = map.get_mut(key) {
                    branches.retain(|b| b.get("type").is_none_or(|t| t != "null"));
                    if branches.len() == 1 {
                        let only = branches.remove(0);
                        map.remove(key);
                        if let Value::Object(inner) = only {
                            map.extend(inner);
                        }
                    }
                }
            }
            if map.get("default").is_some_and(Value::is_null) {
                map.remove("default");
            }
            map.values_mut().for_each(disallow_null);
        }
        Value::Array(items) => items.iter_mut().for_each(disallow_null),
        _ => {}
    }
}

/// Parses one manifest from its bytes. `name` is how the file is named in messages.
pub fn parse(name: &str, bytes: &[u8]) -> Result<ManifestFile, Vec<Diagnostic>> {
    let at_start =
        |source: &Arc<SourceFile>| Some(Location::new(source, Position { line: 1, column: 1 }));
    if bytes.len() > MAX_FILE_BYTES {
        return Err(vec![files::too_large(name, Some(bytes.len() as u64))]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = &bytes[..error.valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let masked = mask::textual_secret_spans(valid);
            let source = Arc::new(SourceFile::new(name, valid.to_owned()).with_masked(masked));
            let position = source.end_position();
            return Err(vec![
                Diagnostic::error(
                    Some(Location::new(&source, position)),
                    format!(
                        "the file is not valid UTF-8 (byte 0x{:02x} at offset {})",
                        bytes[error.valid_up_to()],
                        error.valid_up_to()
                    ),
                )
                .with_help("save the manifest as UTF-8"),
            ]);
        }
    };
    let text: Arc<str> = text.strip_prefix('\u{feff}').unwrap_or(text).into();
    // Until the document is parsed, secrets are found by their keys on each line.
    let masked = mask::textual_secret_spans(&text);
    let source = Arc::new(SourceFile::new(name, Arc::clone(&text)).with_masked(masked));
    if text
        .split(['\n', '\r'])
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(vec![
            Diagnostic::error(at_start(&source), "the manifest is empty")
                .with_help("start it with `version: 1` and a `projects:` block (see integrations.yaml.example)"),
        ]);
    }
    let root = parse_tree(&source)?;
    let masked = mask::secret_spans(&root);
    let source = Arc::new(SourceFile::new(name, text).with_masked(masked));
    let (problems, locations) = check::check(&root, schema(), &source);
    if !problems.is_empty() {
        return Err(problems);
    }
    match serde_json::from_value::<Manifest>(root.value.to_json()) {
        Ok(manifest) => Ok(ManifestFile {
            source,
            manifest,
            locations,
        }),
        // The schema check accepts only what deserialises; this is a safety net.
        Err(error) => Err(vec![Diagnostic::error(
            at_start(&source),
            error.to_string(),
        )]),
    }
}

/// How deeply blocks and lists may nest. A valid manifest nests 5 levels (the file >
/// `projects` > project > `bitbucket` > `app_credentials`), so the limit rejects nothing the
/// schema would accept. It is low because serde-saphyr reads nesting by recursion, about 43 KiB
/// of stack per level in a debug build: the fuzzer found 50 levels overflowing the 2 MiB stack
/// of a test thread (a tokio worker's is the same size). 16 levels stay under 1 MiB.
pub(crate) const MAX_DEPTH: usize = 16;

/// How many nodes (mappings, lists and scalars: keys, values and list items) one file may hold:
/// serde-saphyr's default, explicit here because the README promises it. A project takes about
/// 10, so this is far more than any real manifest, and far less than a file of 8 MiB can
/// hold (`[0,0,0,...]`: four million).
pub(crate) const MAX_NODES: usize = 250_000;

/// What a breached parser budget means to the author of the file, and what to do.
fn budget_breach(breach: &serde_saphyr::budget::BudgetBreach) -> (String, &'static str) {
    use serde_saphyr::budget::BudgetBreach;
    match breach {
        BudgetBreach::Depth { .. } => (
            format!("invalid YAML: blocks and lists nested more than {MAX_DEPTH} levels deep"),
            "a manifest needs about 6 levels; look for a runaway `{` or `[`, or unintended indentation",
        ),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. } => (
            "invalid YAML: too many anchors and aliases".to_owned(),
            "the document expands too much through anchors and aliases; write values out instead",
        ),
        BudgetBreach::Documents { .. } => (
            "invalid YAML: more than one document (`---`) in one file".to_owned(),
            "put each manifest in a file of its own and pass them with -f, or use a directory",
        ),
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => (
            "invalid YAML: more than 250,000 keys, values and list items in one file".to_owned(),
            "a project needs about 10; split the projects over several files in a directory and pass the directory with -f",
        ),
        // The other budgets (scalar bytes, anchors recorded, merge keys...) are breached only
        // through anchors and aliases, or by a text far over the 8 MiB a file may have.
        _ => (
            "invalid YAML: the document expands to too much text to read".to_owned(),
            "write values out instead of repeating them through anchors and aliases, or split the manifest into several files in a directory and pass the directory with -f",
        ),
    }
}

fn parse_tree(source: &Arc<SourceFile>) -> Result<Node, Vec<Diagnostic>> {
    // YAML 1.2 booleans only: `yes`/`no`/`on`/`off` stay text, so `build_pull_requests: yes`
    // is reported instead of guessed, and a project or repository named `no` stays a name.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_aliases: 1_000,
            max_depth: MAX_DEPTH,
            max_documents: 1,
            max_nodes: MAX_NODES,
        },
    };
    serde_saphyr::from_str_with_options::<Node>(source.text(), options).map_err(|error| {
        let position = error
            .location()
            .map(|l| Position {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX).max(1),
                column: u32::try_from(l.column()).unwrap_or(u32::MAX).max(1),
            })
            .unwrap_or(Position { line: 1, column: 1 });
        let error = error.without_snippet();
        if let serde_saphyr::Error::Budget { breach, .. } = error {
            let (message, help) = budget_breach(breach);
            return vec![
                Diagnostic::error(Some(Location::new(source, position)), message).with_help(help),
            ];
        }
        let message = error.to_string();
        let message = first_line(&message);
        let help = if message.contains("alias") {
            "the document expands too much through anchors and aliases; write values out instead"
        } else if message.contains("duplicate") {
            "each key may appear once in a block; remove or merge the repeated one"
        } else {
            "fix the YAML syntax here (indentation with spaces, `key: value`, quotes closed)"
        };
        vec![
            Diagnostic::error(
                Some(Location::new(source, position)),
                format!("invalid YAML: {message}"),
            )
            .with_help(help),
        ]
    })
}

/// The first line of a message, without a trailing "at line X column Y" that the caret repeats.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = match line.find(" at line ") {
        Some(i) => &line[..i],
        None => line,
    };
    line.trim_end_matches('.').to_owned()
}

/// Reads and parses every file of `paths` (after [`files::discover`]); all problems of all files are
/// returned together.
pub(crate) fn read_all(paths: &[PathBuf]) -> Result<Vec<ManifestFile>, Vec<Diagnostic>> {
    let files = files::discover(paths, files::Limits::DEFAULT)?;
    let mut parsed = Vec::new();
    let mut problems = Vec::new();
    let mut skipped = 0usize;
    for path in files {
        let name = path.display().to_string();
        // A file named with `-f` is always read; one found in a directory only if it is a
        // bbsync manifest ([`files::is_manifest_text`]).
        let walked = !paths.contains(&path);
        match files::read(&path) {
            Ok(bytes)
                if walked
                    && std::str::from_utf8(&bytes).is_ok_and(|t| !files::is_manifest_text(t)) =>
            {
                skipped += 1;
                tracing::info!(
                    file = %name,
                    "skipped `{name}`: not a bbsync manifest (no `version` or `projects` at its top level)"
                );
            }
            Ok(bytes) => match parse(&name, &bytes) {
                Ok(file) => parsed.push(file),
                Err(mut found) => problems.append(&mut found),
            },
            Err(problem) => problems.push(*problem),
        }
    }
    if parsed.is_empty() && problems.is_empty() && skipped > 0 {
        problems.push(
            Diagnostic::error(
                None,
                format!(
                    "no bbsync manifest found: the {skipped} YAML file(s) read have no `version` or `projects` at their top level"
                ),
            )
            .with_help("point `-f` at the manifest (run with -v to list the files skipped)"),
        );
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse("m.yaml", text.as_bytes()) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn parses_the_design_example() {
        let text = "version: 1\nprojects:\n  abc:\n    bitbucket:\n      repository: acme/web\n      app_credentials:\n        key: ${K}\n        secret: ${S}\n";
        let file = parse("m.yaml", text.as_bytes()).unwrap();
        let entry = &file.manifest.projects["abc"];
        assert_eq!(entry.bitbucket.as_ref().unwrap().repository, "acme/web");
        let spot = file
            .locations
            .get("/projects/abc/bitbucket/repository")
            .unwrap();
        assert_eq!((spot.key.line, spot.key.column), (5, 7));
        assert_eq!((spot.value.line, spot.value.column), (5, 19));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let text = "version: 1\nprojects:\n  abc:\n    bitbucket:\n      repository: a/b\n      fetch_branch: true\n      build_pull_requests: yes\n    protekt: true\n";
        let found = errors(text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].contains("m.yaml:6:7: unknown field `fetch_branch`"),
            "{found:#?}"
        );
        assert!(
            found[1].contains(
                "m.yaml:7:28: `projects.abc.bitbucket.build_pull_requests` must be a boolean"
            ),
            "{found:#?}"
        );
        assert!(
            found[2].contains("m.yaml:8:5: unknown field `protekt`"),
            "{found:#?}"
        );
    }

    /// Nesting up to the limit, as blocks and as flow, is walked on a 1 MiB stack (half of a
    /// test or tokio worker thread's) in whatever build runs the tests; one level more is a
    /// located error, not a deeper walk.
    #[test]
    fn nesting_is_bounded_well_inside_a_thread_stack() {
        let flow = |depth: usize| {
            let inner = "{a: ".repeat(depth - 1) + "1" + &"}".repeat(depth - 1);
            format!("version: 1\nprojects: {inner}\n")
        };
        let block = |depth: usize| {
            let mut text = String::from("version: 1\n");
            for level in 0..depth {
                text.push_str(&"  ".repeat(level));
                text.push_str(if level == 0 { "projects:\n" } else { "- \n" });
            }
            text
        };
        let walk = |text: String| {
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || errors(&text))
                .unwrap()
                .join()
                .expect("no stack overflow")
        };
        for make in [&flow as &dyn Fn(usize) -> String, &block] {
            let found = walk(make(MAX_DEPTH));
            assert!(
                !found.iter().any(|e| e.contains("nested more than")),
                "{found:#?}"
            );
            let found = walk(make(MAX_DEPTH + 1));
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(
                found[0].contains("nested more than 16 levels deep"),
                "{found:#?}"
            );
        }
    }

    #[test]
    fn empty_values_are_not_omissions() {
        let found = errors("version: 1\ndefaults:\n  fetch_branches:\nprojects: {}\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("m.yaml:3:3: `defaults.fetch_branches` must be a boolean"));
    }

    #[test]
    fn version_must_be_one() {
        let found = errors("version: 2\nprojects: {}\n");
        assert!(
            found[0].contains("m.yaml:1:10: unsupported manifest version `2`"),
            "{found:#?}"
        );
        let found = errors("projects: {}\n");
        assert!(found[0].contains("missing field `version`"), "{found:#?}");
    }

    #[test]
    fn the_schema_has_no_nulls() {
        let text = schema_text();
        assert!(!text.contains("\"null\""), "{text}");
    }
}
