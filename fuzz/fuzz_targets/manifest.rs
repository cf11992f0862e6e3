//! Fuzzes the manifest loader: any bytes through parsing, the schema check, the model and
//! diagnostic rendering must give a state or located diagnostics, and never panic. The checks
//! live in `bbsync::model::fuzzing`, where `cargo test` replays this target's corpus through them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bbsync::model::fuzzing::manifest_loader(data));
