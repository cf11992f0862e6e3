//! The last valid manifest, kept on disk (`watch --state-dir`): a daemon restarted while the
//! manifest on disk is invalid (a bad commit, a half-finished deploy) still enforces the last
//! valid one instead of nothing, as it would have had it kept running.
//!
//! The snapshot holds the manifest files' text as read, so it is rebuilt with the same rules and
//! the same environment lookups as the files themselves. A valid manifest holds no secret values,
//! only `${NAME}` references; the file is still written readable by its owner only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::manifest::diagnostic::{Diagnostic, SourceFile};
use crate::model::{DesiredState, Env};

/// The snapshot's file name inside the state directory.
pub(crate) const FILE_NAME: &str = "last-valid-manifest.json";

const FORMAT: u32 = 1;

/// The last valid manifest, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// The snapshot format.
    pub format: u32,
    /// The bbsync that saved it.
    pub bbsync_version: String,
    /// When it was saved (RFC 3339).
    pub saved_at: String,
    /// The `-f` arguments it was read from: a snapshot of other files is not used.
    pub manifest_args: Vec<String>,
    /// The manifest's digest when saved.
    pub digest: String,
    /// Every file, as read.
    pub files: Vec<SavedFile>,
    /// The commit it was read from, with `--git-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// With `--git-url`: the repository and ref (`URL#REF`); a snapshot of another one is not
    /// used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One manifest file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedFile {
    /// Its name, as diagnostics show it.
    pub name: String,
    /// Its text.
    pub text: String,
}

fn args(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.display().to_string()).collect()
}

impl Snapshot {
    /// A snapshot of the valid manifest read from `files`, with `digest`, made of `sources`.
    pub(crate) fn new(
        files: &[PathBuf],
        digest: &str,
        sources: &[Arc<SourceFile>],
        commit: Option<&str>,
    ) -> Self {
        Self {
            format: FORMAT,
            bbsync_version: env!("CARGO_PKG_VERSION").to_owned(),
            saved_at: crate::wire::time::rfc3339(std::time::SystemTime::now()),
            manifest_args: args(files),
            digest: digest.to_owned(),
            files: sources
                .iter()
                .map(|s| SavedFile {
                    name: s.name().to_owned(),
                    text: s.text().to_owned(),
                })
                .collect(),
            commit: commit.map(str::to_owned),
            source: None,
        }
    }

    /// Writes the snapshot into `dir` (created if needed), atomically: a reader sees the old
    /// snapshot or the new one, never half of one.
    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        std::fs::create_dir_all(dir)?;
        let temp = dir.join(format!(".{FILE_NAME}.tmp"));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&temp, dir.join(FILE_NAME))
    }

    /// The snapshot saved in `dir` for the manifest `files`: `Ok(None)` when there is none,
    /// an error saying why one cannot be used.
    pub(crate) fn load(dir: &Path, files: &[PathBuf]) -> Result<Option<Self>, String> {
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
        };
        let snapshot: Self = serde_json::from_slice(&bytes)
            .map_err(|e| format!("`{}` is not a manifest snapshot: {e}", path.display()))?;
        if snapshot.format != FORMAT {
            return Err(format!(
                "`{}` has snapshot format {}; this bbsync reads format {FORMAT}",
                path.display(),
                snapshot.format
            ));
        }
        if snapshot.manifest_args != args(files) {
            return Err(format!(
                "`{}` was saved for `-f {}`, not `-f {}`",
                path.display(),
                snapshot.manifest_args.join(" -f "),
                args(files).join(" -f ")
            ));
        }
        Ok(Some(snapshot))
    }

    /// The desired state the snapshot describes, built as the files themselves would be.
    pub(crate) fn build(
        &self,
        env: &Env,
    ) -> Result<(DesiredState, Vec<Diagnostic>), Vec<Diagnostic>> {
        let mut parsed = Vec::new();
        for file in &self.files {
            parsed.push(crate::manifest::parse(&file.name, file.text.as_bytes())?);
        }
        let built = crate::model::build(&parsed, env);
        match built.state {
            Some(state) => Ok((state, built.diagnostics)),
            None => Err(built.diagnostics),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "version: 1\nprojects:\n  abc:\n    bitbucket:\n      repository: acme/web\n      app_credentials: {key: k, secret: \"${S}\"}\n";

    fn env() -> Env {
        Env::default()
    }

    #[test]
    fn a_snapshot_round_trips_and_rebuilds_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![PathBuf::from("integrations.yaml")];
        let file = crate::manifest::parse("integrations.yaml", MANIFEST.as_bytes()).unwrap();
        let state = crate::model::build(std::slice::from_ref(&file), &env())
            .state
            .unwrap();
        let snapshot = Snapshot::new(
            &files,
            &state.digest,
            &[Arc::clone(&file.source)],
            Some("0123456789abcdef0123456789abcdef01234567"),
        );
        snapshot.save(dir.path()).unwrap();
        let loaded = Snapshot::load(dir.path(), &files).unwrap().unwrap();
        assert_eq!(loaded, snapshot);
        let (rebuilt, _) = loaded.build(&env()).unwrap();
        assert_eq!(rebuilt.digest, state.digest);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only");
        }
    }

    #[test]
    fn a_missing_foreign_or_corrupt_snapshot_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![PathBuf::from("integrations.yaml")];
        assert_eq!(Snapshot::load(dir.path(), &files), Ok(None));
        let snapshot = Snapshot::new(&files, "sha256:x", &[], None);
        snapshot.save(dir.path()).unwrap();
        let other = Snapshot::load(dir.path(), &[PathBuf::from("other.yaml")]).unwrap_err();
        assert!(
            other.contains("was saved for `-f integrations.yaml`"),
            "{other}"
        );
        std::fs::write(dir.path().join(FILE_NAME), "{").unwrap();
        let corrupt = Snapshot::load(dir.path(), &files).unwrap_err();
        assert!(corrupt.contains("is not a manifest snapshot"), "{corrupt}");
    }
}
