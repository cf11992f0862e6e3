//! Reading the manifest files and validating them into the desired state, in one call.

use std::path::PathBuf;
use std::sync::Arc;

use crate::manifest;
use crate::manifest::diagnostic::{Diagnostic, SourceFile};
use crate::model::{self, DesiredState, Env};

/// Reads `files` (files or directories) and builds the desired state, looking variables up in
/// `env`. On success, the state and its warnings; otherwise every diagnostic (errors first
/// among them where found).
pub(crate) fn load(
    files: &[PathBuf],
    env: &Env,
) -> Result<(DesiredState, Vec<Diagnostic>), Vec<Diagnostic>> {
    load_with_sources(files, env).map(|loaded| (loaded.state, loaded.warnings))
}

/// A valid manifest, read.
pub(crate) struct Loaded {
    /// What it says.
    pub state: DesiredState,
    /// Its warnings.
    pub warnings: Vec<Diagnostic>,
    /// The text of every file read.
    pub sources: Vec<Arc<SourceFile>>,
}

/// [`load`], also keeping the text of every file read.
pub(crate) fn load_with_sources(files: &[PathBuf], env: &Env) -> Result<Loaded, Vec<Diagnostic>> {
    let parsed = manifest::read_all(files)?;
    let built = model::build(&parsed, env);
    match built.state {
        Some(state) => Ok(Loaded {
            state,
            warnings: built.diagnostics,
            sources: parsed.iter().map(|f| Arc::clone(&f.source)).collect(),
        }),
        None => Err(built.diagnostics),
    }
}
