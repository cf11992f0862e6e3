//! The invariants the fuzz target checks, shared with the test that replays its corpus, so
//! that every input the fuzzer ever kept is checked again by `cargo test`.

/// Loads `data` as a manifest and checks what must hold for any bytes at all: a state or
/// located diagnostics, diagnostics that render, and never a panic. Panics when one fails.
pub fn manifest_loader(data: &[u8]) {
    // Every `${NAME}` the input names is set when its name has an even length: both the set
    // and the unset paths are fuzzed.
    let text = String::from_utf8_lossy(data);
    let env = crate::model::Env::new(
        text.split("${")
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .filter(|name| name.len().is_multiple_of(2))
            .map(|name| (name.to_owned(), format!("value-{name}"))),
    );
    match crate::manifest::parse("fuzz.yaml", data) {
        Ok(file) => {
            let built = crate::model::build(std::slice::from_ref(&file), &env);
            for diagnostic in &built.diagnostics {
                let _ = diagnostic.render(false);
            }
            if built.state.is_none() {
                assert!(
                    built.diagnostics.iter().any(|d| d.is_error()),
                    "no state and no error"
                );
            }
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "an error without a diagnostic");
            for diagnostic in &diagnostics {
                assert!(
                    diagnostic.location.is_some(),
                    "an error without a location: {diagnostic}"
                );
                let _ = diagnostic.render(false);
            }
        }
    }
}
