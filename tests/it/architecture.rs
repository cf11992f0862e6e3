//! The layering rules of the README's architecture section, checked on the source tree so that
//! breaking one fails `cargo test` loudly.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(under: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&crate::common::root().join(under), &mut files);
    assert!(!files.is_empty(), "no Rust files under {under}");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            (path, text)
        })
        .collect()
}

/// `(file, line)` for every line of the files under `under` that contains one of `needles`
/// (comments included: a layer should not even talk about reaching up).
fn offending(under: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in sources(under) {
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

const UPPER_LAYERS: [&str; 6] = [
    "crate::live",
    "crate::apply",
    "crate::watch",
    "crate::cli",
    "crate::sandbox",
    "crate::reconcile",
];

#[test]
fn the_model_and_the_planner_import_no_layer_that_does_io() {
    for layer in ["src/model", "src/plan"] {
        let found = offending(layer, &UPPER_LAYERS);
        assert!(
            found.is_empty(),
            "{layer} must stay pure:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_wire_and_manifest_layers_know_nothing_above_them() {
    for layer in ["src/wire", "src/manifest"] {
        let found = offending(layer, &UPPER_LAYERS);
        assert!(
            found.is_empty(),
            "{layer} reaches up:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn only_the_settings_module_reads_the_process_environment() {
    let found: Vec<String> = offending("src", &["std::env::", "env::var"])
        .into_iter()
        .filter(|line| !line.contains("src/cli/settings.rs"))
        .collect();
    assert!(
        found.is_empty(),
        "read the environment in cli/settings.rs only, and pass `Env` down:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_crate_root_holds_only_lib_main_and_the_layer_folders() {
    let mut loose: Vec<String> = std::fs::read_dir(crate::common::root().join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "lib.rs" && name != "main.rs")
        .collect();
    loose.sort();
    assert!(loose.is_empty(), "files outside a layer: {loose:?}");
}
