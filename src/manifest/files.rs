//! Finding and reading manifest files: `-f` paths to the bytes of every `*.yaml` / `*.yml`.
//!
//! The paths come from whoever controls the checkout, so nothing here trusts them: a directory
//! is walked once however many symlinks lead to it (a symlink loop is an error, not an endless
//! walk), the walk is bounded in depth and in files, only regular files are opened (a FIFO would
//! block forever, `/dev/zero` never ends), and a file is read through a bounded reader.

use std::collections::HashSet;
use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::MAX_FILE_BYTES;
use crate::manifest::diagnostic::Diagnostic;

/// How many directories deep `-f DIR` is walked below `DIR`.
pub(crate) const MAX_DIR_DEPTH: usize = 16;

/// How many manifest files one `-f` directory may hold.
pub(crate) const MAX_FILES: usize = 10_000;

/// The bounds of a directory walk ([`MAX_DIR_DEPTH`] and [`MAX_FILES`]; smaller in tests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Directories below the one given.
    pub depth: usize,
    /// Manifest files found.
    pub files: usize,
}

impl Limits {
    /// The limits bbsync runs with.
    pub(crate) const DEFAULT: Limits = Limits {
        depth: MAX_DIR_DEPTH,
        files: MAX_FILES,
    };
}

/// Whether a YAML file found in a directory walk is to be read as a bbsync manifest: unless its
/// top level is, beyond doubt, a block mapping of something else (`bitbucket-pipelines.yml`, a
/// GitHub workflow, a Kubernetes object), whose keys at column 0 include neither `version` nor
/// `projects`. Anything else is read and checked as today: a file with either key, a flow
/// mapping, a scalar, an empty or half-written file (the daemon must never skip a manifest
/// caught mid-write and act without its projects), invalid YAML.
///
/// Pure, and reads lines only: it runs before the file is parsed, on any YAML (several
/// documents, anchors) without the parser's limits.
pub(crate) fn is_manifest_text(text: &str) -> bool {
    let mut keys = 0usize;
    for line in text.trim_start_matches('\u{feff}').lines() {
        let first = line.chars().next();
        if matches!(
            first,
            None | Some(' ' | '\t' | '#' | '-' | '.' | '%' | '{' | '[' | '?')
        ) {
            continue;
        }
        let Some(colon) = line.find(':') else {
            continue;
        };
        if !line[colon + 1..].is_empty() && !line[colon + 1..].starts_with([' ', '\t']) {
            continue;
        }
        let key = line[..colon].trim();
        let key = key
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
            .unwrap_or(key);
        if key == "version" || key == "projects" {
            return true;
        }
        keys += 1;
    }
    keys == 0
}

/// Expands `-f` arguments: files as given, directories to their `*.yaml` / `*.yml` files
/// (recursively, sorted). Problems reading them come back as diagnostics.
pub(crate) fn discover(paths: &[PathBuf], limits: Limits) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut visited = HashSet::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let before = problems.len();
                let mut found = Vec::new();
                walk(path, limits, &mut visited, &mut found, &mut problems);
                if found.is_empty() && problems.len() == before {
                    problems.push(
                        Diagnostic::error(
                            None,
                            format!("`{}` holds no `*.yaml` or `*.yml` file", path.display()),
                        )
                        .with_help("point `-f` at a manifest file or a directory of them"),
                    );
                }
                found.sort();
                files.extend(found);
            }
            Ok(meta) if meta.is_file() => files.push(path.clone()),
            Ok(meta) => problems.push(not_regular(path, &meta)),
            Err(error) => problems.push(
                Diagnostic::error(None, format!("cannot read `{}`: {error}", path.display()))
                    .with_help(if path == Path::new("integrations.yaml") {
                        "create `integrations.yaml` (see integrations.yaml.example) or pass `-f PATH`"
                    } else {
                        "check the path given to `-f`"
                    }),
            ),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

/// Collects the manifest files under `root` into `found`. Each directory is read once, by its
/// canonical path, so a symlink back to a directory already read is reported instead of
/// followed again.
fn walk(
    root: &Path,
    limits: Limits,
    visited: &mut HashSet<PathBuf>,
    found: &mut Vec<PathBuf>,
    problems: &mut Vec<Diagnostic>,
) {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let canonical = match std::fs::canonicalize(&dir) {
            Ok(canonical) => canonical,
            Err(error) => {
                problems.push(cannot_read_dir(&dir, &error));
                continue;
            }
        };
        if !visited.insert(canonical.clone()) {
            problems.push(
                Diagnostic::error(
                    None,
                    format!(
                        "`{}` leads to `{}`, a directory already read (a symlink loop or a second link to it)",
                        dir.display(),
                        canonical.display()
                    ),
                )
                .with_help("remove the symlink: bbsync reads each manifest directory once"),
            );
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                problems.push(cannot_read_dir(&dir, &error));
                continue;
            }
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(error) => {
                    problems.push(cannot_read_dir(&dir, &error));
                    continue;
                }
            };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            let is_manifest = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            // Symlinks are followed: a checkout's `current -> worktree` is a directory.
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(error) if is_manifest => {
                    problems.push(Diagnostic::error(
                        None,
                        format!("cannot read `{}`: {error}", path.display()),
                    ));
                    continue;
                }
                // A dangling link or an unreadable entry that is no manifest: not ours.
                Err(_) => continue,
            };
            if meta.is_dir() {
                if depth + 1 > limits.depth {
                    problems.push(
                        Diagnostic::error(
                            None,
                            format!(
                                "`{}` is nested more than {} directories deep below `{}`",
                                path.display(),
                                limits.depth,
                                root.display()
                            ),
                        )
                        .with_help("keep manifest directories shallow, or pass the deep one with its own `-f`"),
                    );
                    continue;
                }
                stack.push((path, depth + 1));
            } else if is_manifest {
                if !meta.is_file() {
                    problems.push(not_regular(&path, &meta));
                    continue;
                }
                if found.len() == limits.files {
                    problems.push(
                        Diagnostic::error(
                            None,
                            format!(
                                "`{}` holds more than {} manifest files",
                                root.display(),
                                thousands(limits.files)
                            ),
                        )
                        .with_help("put several projects in each file, or split the directory over several `-f` arguments"),
                    );
                    return;
                }
                found.push(path);
            }
        }
    }
}

fn cannot_read_dir(dir: &Path, error: &std::io::Error) -> Diagnostic {
    Diagnostic::error(
        None,
        format!("cannot read directory `{}`: {error}", dir.display()),
    )
    .with_help("check the directory's permissions, or leave it out of `-f`")
}

/// What kind of special file `meta` describes, for messages.
fn kind(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let file_type = meta.file_type();
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "not a regular file"
}

fn not_regular(path: &Path, meta: &Metadata) -> Diagnostic {
    let what = kind(meta);
    let what = if what == "not a regular file" {
        what.to_owned()
    } else {
        format!("{what}, not a regular file")
    };
    Diagnostic::error(None, format!("`{}` is {what}", path.display()))
        .with_help("a manifest is a regular file: point `-f` at one, or remove the special file from the directory")
}

/// `10,000` for 10000.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The "too large" error for the file `name`: `bytes` is its size when known.
pub(crate) fn too_large(name: &str, bytes: Option<u64>) -> Diagnostic {
    use crate::manifest::diagnostic::{Location, SourceFile};
    use crate::manifest::node::Position;
    use std::sync::Arc;
    let source = Arc::new(SourceFile::new(name, ""));
    let size = match bytes {
        Some(bytes) => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
        None => format!("over {} MiB", MAX_FILE_BYTES / 1_048_576),
    };
    Diagnostic::error(
        Some(Location::new(&source, Position { line: 1, column: 1 })),
        format!(
            "the file is {size}; a manifest file may be at most {} MiB",
            MAX_FILE_BYTES / 1_048_576
        ),
    )
    .with_help("split the projects over several files in a directory and pass `-f DIR`")
}

/// Reads the manifest file `path`: a regular file only (checked before it is opened, and again
/// on the open file), and never more than [`MAX_FILE_BYTES`] + 1 bytes of it.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Box<Diagnostic>> {
    let name = path.display().to_string();
    let cannot = |error: std::io::Error| {
        Box::new(
            Diagnostic::error(None, format!("cannot read `{name}`: {error}"))
                .with_help("check that the file exists and is readable"),
        )
    };
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(Box::new(not_regular(path, &meta)));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(Box::new(too_large(&name, Some(meta.len()))));
    }
    let file = open(path).map_err(cannot)?;
    // The path may have been swapped for something else since it was looked at.
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(Box::new(not_regular(path, &meta)));
    }
    let bytes = read_bounded(file, MAX_FILE_BYTES).map_err(cannot)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Box::new(too_large(&name, None)));
    }
    Ok(bytes)
}

/// Opens `path` for reading without waiting for a writer, should it be a FIFO after all.
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// At most `limit + 1` bytes of `reader`: one more than allowed says "too large" without
/// reading the rest.
pub(crate) fn read_bounded(reader: impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(result: Result<Vec<PathBuf>, Vec<Diagnostic>>) -> Vec<String> {
        match result {
            Ok(files) => panic!("expected problems, found {files:?}"),
            Err(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn only_files_that_are_surely_something_else_are_not_manifests() {
        for other in [
            "image: rust:1.89\npipelines:\n  default:\n    - step:\n        script: [bbsync plan]\n",
            "name: bbsync\non:\n  pull_request:\njobs:\n  plan: {}\n",
            "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: apps/v1\nkind: Deployment\n",
            "# comment\n\"services\": {}\n",
        ] {
            assert!(!is_manifest_text(other), "{other}");
        }
        for manifest in [
            "version: 1\nprojects: {}\n",
            "# yaml-language-server: $schema=x\nversion: 1\n",
            "projects:\n  abc:\n    absent: true\n",
            "\"version\": 1\n",
            "'projects': {}\n",
            "version:\n",
            "prune: true\nversion: 1\n",
            // Empty, half-written, flow or invalid: read, and reported if wrong.
            "",
            "# only a comment\n",
            "vers",
            "{version: 1, projects: {}}\n",
            "- a\n- b\n",
            "version 1\n",
            "\u{feff}version: 1\n",
        ] {
            assert!(is_manifest_text(manifest), "{manifest:?}");
        }
    }

    #[test]
    fn the_bounded_reader_stops_one_byte_past_the_limit() {
        let bytes = read_bounded(std::io::repeat(b'#'), 1000).unwrap();
        assert_eq!(bytes.len(), 1001);
        assert_eq!(read_bounded(&b"abc"[..], 1000).unwrap(), b"abc");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_walk_is_bounded_in_depth() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("m.yaml"), "version: 1\n").unwrap();
        let limits = Limits {
            depth: 3,
            files: 10,
        };
        let found = discover(&[dir.path().to_path_buf()], limits).unwrap();
        assert_eq!(found, vec![deep.join("m.yaml")]);
        let limits = Limits {
            depth: 2,
            files: 10,
        };
        let found = messages(discover(&[dir.path().to_path_buf()], limits));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("nested more than 2 directories deep"),
            "{found:#?}"
        );
    }

    #[test]
    fn the_walk_is_bounded_in_files() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..4 {
            std::fs::write(dir.path().join(format!("{i}.yaml")), "version: 1\n").unwrap();
        }
        let limits = Limits { depth: 1, files: 4 };
        assert_eq!(
            discover(&[dir.path().to_path_buf()], limits).unwrap().len(),
            4
        );
        let limits = Limits { depth: 1, files: 3 };
        let found = messages(discover(&[dir.path().to_path_buf()], limits));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("holds more than 3 manifest files"),
            "{found:#?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_reported_once_per_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), "version: 1\n").unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("x")).unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("y")).unwrap();
        let found = messages(discover(&[dir.path().to_path_buf()], Limits::DEFAULT));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found.iter().all(|m| m.contains("a directory already read")),
            "{found:#?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_before_they_are_opened() {
        let zero = Path::new("/dev/zero");
        if !zero.exists() {
            return;
        }
        let found = read(zero).unwrap_err().to_string();
        assert_eq!(
            found,
            "`/dev/zero` is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(zero, dir.path().join("zero.yaml")).unwrap();
        let found = messages(discover(&[dir.path().to_path_buf()], Limits::DEFAULT));
        assert!(
            found[0].ends_with("zero.yaml` is a character device, not a regular file"),
            "{found:#?}"
        );
    }
}
