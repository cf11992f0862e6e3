//! What the daemon knows about itself (`GET /status`, `GET /readyz`).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::model::ids::ProjectId;
use crate::plan::{ActionKind, Summary};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Applied: everything ended well (or there was nothing to do).
    Ok,
    /// `--plan-only`: the live state matches.
    InSync,
    /// `--plan-only`: drift found, nothing written.
    Drift,
    /// Something failed (an action, a project's live state, the organization listing).
    Failed,
    /// A guard stopped the apply (or protect blocked an action); nothing else failed.
    Blocked,
    /// The daemon was stopped (SIGTERM) during the run: the actions in flight finished, the
    /// others were not started; nothing failed.
    Interrupted,
    /// The manifest on disk is invalid and there was nothing valid to act on.
    InvalidManifest,
    /// The manifest changed on disk after it was planned: nothing was written, and the changed
    /// one is planned in the next run.
    Superseded,
}

impl RunResult {
    /// The result's name in metrics and logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::InSync => "in_sync",
            RunResult::Drift => "drift",
            RunResult::Failed => "failed",
            RunResult::Blocked => "blocked",
            RunResult::Interrupted => "interrupted",
            RunResult::InvalidManifest => "invalid_manifest",
            RunResult::Superseded => "superseded",
        }
    }
}

/// One action of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedAction {
    /// The project.
    pub project: ProjectId,
    /// What was planned.
    pub action: ActionKind,
    /// What became of it (`planned` in `--plan-only`).
    pub outcome: String,
    /// Why, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Run number since the daemon started.
    pub id: u64,
    /// What started it.
    pub triggers: Vec<&'static str>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How long it took.
    pub duration_ms: u64,
    /// How it ended.
    pub result: RunResult,
    /// The manifest it acted on.
    pub manifest_digest: Option<String>,
    /// With `--git-url`: the commit whose manifest it acted on (for an invalid manifest, the
    /// commit that holds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The plan's counts.
    pub summary: Option<Summary>,
    /// The actions other than noops.
    pub actions: Vec<RecordedAction>,
    /// Projects left alone this run because they are backing off after failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backing_off: Vec<ProjectId>,
    /// What went wrong, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The daemon's state, as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Whether the manifest on disk is valid now.
    pub manifest_valid: bool,
    /// A manifest path that does not exist yet, which the daemon waits for before it starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// The digest of the manifest in force (the last valid one).
    pub manifest_digest: Option<String>,
    /// Why the manifest on disk is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_error: Option<String>,
    /// Where the manifest in force came from when it is the one saved in `--state-dir` before a
    /// restart (the manifest on disk being invalid since).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// Whether the last run reached the API.
    pub api_reached: bool,
    /// `--plan-only`.
    pub plan_only: bool,
    /// The last runs, newest last.
    pub runs: VecDeque<RunRecord>,
    /// Projects whose live state differed from the manifest at the last plan, with what was
    /// planned for them.
    pub drift: BTreeMap<ProjectId, ActionKind>,
    /// Projects whose drift bbsync refuses to fix, with why (`protect`, a guard): standing
    /// blocks, as of the last run that planned.
    pub blocked: BTreeMap<ProjectId, String>,
    /// Projects another writer keeps changing, with why: bbsync no longer writes them
    /// (`writers`).
    pub contested: BTreeMap<ProjectId, String>,
    /// The daemon's last writes, newest last: what each changed, field by field.
    pub changes: VecDeque<super::audit::Change>,
    /// Projects backing off after failures: failures in a row.
    pub backing_off: BTreeMap<ProjectId, u32>,
    /// The last error, of any run.
    pub last_error: Option<String>,
    /// When the last successful run ended (RFC 3339).
    pub last_success: Option<String>,
    /// With `--git-url`: the repository, and the commits in force and seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitStatus>,
    /// Runs kept.
    #[serde(skip)]
    pub history: usize,
}

/// The daemon's own checkout (`watch --git-url`), as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GitStatus {
    /// The repository (never with a credential).
    pub url: String,
    /// The ref followed (`HEAD`: the remote's default branch).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The commit whose manifest is in force: the last one with a valid manifest.
    pub commit_in_force: Option<String>,
    /// The newest commit fetched, valid or not.
    pub latest_commit: Option<String>,
    /// Whether the newest commit's manifest is valid (when it is not, `commit_in_force` is an
    /// older one).
    pub latest_valid: Option<bool>,
    /// When the last fetch ended (RFC 3339).
    pub last_fetch_at: Option<String>,
    /// When a fetch last succeeded (RFC 3339).
    pub last_fetch_success_at: Option<String>,
    /// Why the last fetch failed, while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
}

impl Status {
    /// A fresh status keeping `history` runs.
    pub(crate) fn new(plan_only: bool, history: usize) -> Self {
        Self {
            manifest_valid: false,
            waiting_for: None,
            manifest_digest: None,
            manifest_error: None,
            restored_from: None,
            api_reached: false,
            plan_only,
            runs: VecDeque::new(),
            drift: BTreeMap::new(),
            blocked: BTreeMap::new(),
            contested: BTreeMap::new(),
            changes: VecDeque::new(),
            backing_off: BTreeMap::new(),
            last_error: None,
            last_success: None,
            git: None,
            history: history.max(1),
        }
    }

    /// Adds a run, dropping the oldest beyond `history`.
    pub(crate) fn record(&mut self, run: RunRecord) {
        if let Some(error) = &run.error {
            self.last_error = Some(error.clone());
        }
        self.runs.push_back(run);
        while self.runs.len() > self.history {
            self.runs.pop_front();
        }
    }

    /// Adds a write to the audit trail, dropping the oldest beyond [`super::audit::KEPT`].
    pub(crate) fn change(&mut self, change: super::audit::Change) {
        self.changes.push_back(change);
        while self.changes.len() > super::audit::KEPT {
            self.changes.pop_front();
        }
    }

    /// `Ok` when ready (a valid manifest is loaded and the last run reached the API), else why not.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        if let Some(path) = &self.waiting_for {
            return Err(format!(
                "waiting for `{path}` to appear (a git-sync sidecar's first clone?)"
            ));
        }
        if self.manifest_digest.is_none() {
            return Err("no valid manifest has been loaded yet".to_owned());
        }
        if !self.manifest_valid {
            return Err(format!(
                "the manifest on disk is invalid (the last valid one stays in force): {}",
                self.manifest_error.as_deref().unwrap_or("see the logs")
            ));
        }
        if !self.api_reached {
            return Err("the last run did not reach the API".to_owned());
        }
        Ok(())
    }
}
