//! Reading the manifest files and validating them into the desired state, in one call.

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;
use crate::manifest;
use crate::model::{self, DesiredState};

/// Reads `files` (files or directories) and builds the desired state, looking variables up in
/// `env`. On success, the state and its warnings; otherwise every diagnostic (errors first
/// among them where found).
pub fn load(
    files: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(DesiredState, Vec<Diagnostic>), Vec<Diagnostic>> {
    let parsed = manifest::read_all(files)?;
    let built = model::build(&parsed, env);
    match built.state {
        Some(state) => Ok((state, built.diagnostics)),
        None => Err(built.diagnostics),
    }
}
