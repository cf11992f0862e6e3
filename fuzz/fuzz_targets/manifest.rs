//! Fuzzes the manifest loader: any bytes through parsing, the schema check, the model and
//! diagnostic rendering must give a state or located diagnostics, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let env = |name: &str| (name.len() % 2 == 0).then(|| format!("value-{name}"));
    match bbsync::manifest::parse("fuzz.yaml", data) {
        Ok(file) => {
            let built = bbsync::model::build(std::slice::from_ref(&file), &env);
            for diagnostic in &built.diagnostics {
                let _ = diagnostic.render(false);
            }
            if built.state.is_none() {
                assert!(built.diagnostics.iter().any(|d| d.is_error()), "no state and no error");
            }
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "an error without a diagnostic");
            for diagnostic in &diagnostics {
                assert!(diagnostic.location.is_some(), "an error without a location: {diagnostic}");
                let _ = diagnostic.render(false);
            }
        }
    }
});
