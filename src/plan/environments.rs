//! Environments Platform.sh would delete: when it first fetches a repository with
//! `prune_branches: true`, it deletes the project's environments that match no branch.
//!
//! Source: platformsh/platformsh-docs#5451 (2026-02-24, "1 - Urgent - customers are
//! affected"): at an integration's first fetch (and again on webhook triggers when branches
//! are deleted), the project's pre-existing environments that match no branch of the remote
//! repository are deleted; pull-request environments are spared, only environments with local
//! deployment targets are deleted, environments matching a branch are kept (and get
//! `has_remote: true`), and the main environment is kept if its branch exists remotely.
//!
//! Pure: the reconcile pass reads the environments and the branches, and this module says
//! which actions need them ([`needs_preview`]), what would be deleted ([`would_delete`]) and
//! puts it on the plan ([`annotate`]).

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, ActionKind, Plan};
use crate::model::ids::ProjectId;
use crate::model::live::LiveEnvironment;
use crate::model::{Field, FieldValue};

/// What Platform.sh would delete because of one action: `{"known": true, "environments":
/// [...]}`, or `{"known": false, "reason": "..."}` when the environments or the branches could
/// not be read (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EnvironmentDeletions {
    /// Whether the list is known.
    pub known: bool,
    /// The environments that would be deleted, by name (when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    /// Why the list is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl EnvironmentDeletions {
    /// The known list `environments`.
    pub fn known(environments: Vec<String>) -> Self {
        Self {
            known: true,
            environments: Some(environments),
            reason: None,
        }
    }

    /// Unknown, because of `reason`.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            known: false,
            environments: None,
            reason: Some(reason.into()),
        }
    }

    /// The environments that would be deleted (none when unknown).
    pub fn names(&self) -> &[String] {
        self.environments.as_deref().unwrap_or_default()
    }
}

/// What the reconcile pass read for one project's preview: its environments and the branches
/// of the repository the action points at, or why either could not be read.
pub type Preview = Result<(Vec<LiveEnvironment>, BTreeSet<String>), String>;

fn flag(action: &Action, field: Field) -> Option<bool> {
    let after = action.after.as_ref()?;
    match after.fields.get(&field) {
        Some(FieldValue::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn live_flag(action: &Action, field: Field) -> Option<bool> {
    match action.before.as_ref()?.fields.get(&field) {
        Some(FieldValue::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// Whether `action` makes Platform.sh fetch the repository as if for the first time with
/// pruning on: a create or a replace, or an update that turns `fetch_branches` or
/// `prune_branches` on, where the integration ends with both on. Omitted, both default to on
/// (`wire::defaults::on_create`).
pub fn needs_preview(action: &Action) -> bool {
    let fetch = flag(action, Field::FetchBranches)
        .or_else(|| live_flag(action, Field::FetchBranches))
        .unwrap_or(true);
    let prune = flag(action, Field::PruneBranches)
        .or_else(|| live_flag(action, Field::PruneBranches))
        .unwrap_or(true);
    if !(fetch && prune) {
        return false;
    }
    match action.action {
        ActionKind::Create | ActionKind::Replace => true,
        ActionKind::Update => action.fields.iter().any(|change| {
            matches!(change.name, Field::FetchBranches | Field::PruneBranches)
                && change.after == FieldValue::Bool(true)
        }),
        _ => false,
    }
}

/// Whether a first fetch could delete `environment` at all, whatever the branches: not a
/// pull-request environment, and deployed locally (docs#5451; no target is taken as local,
/// inferred).
pub fn deletable(environment: &LiveEnvironment) -> bool {
    !environment.is_pr
        && environment
            .deployment_target
            .as_deref()
            .is_none_or(|t| t == "local")
}

/// The environments a first fetch with pruning deletes, given the project's `environments`
/// and the repository's `branches`: those that are not pull-request environments, deploy
/// locally, and match no branch. With a warning when the main environment is among them
/// (the repository's main branch is named differently).
pub fn would_delete(
    environments: &[LiveEnvironment],
    branches: &BTreeSet<String>,
) -> (Vec<String>, Option<String>) {
    let mut deleted: Vec<String> = environments
        .iter()
        .filter(|e| deletable(e))
        .filter(|e| !branches.contains(&e.name))
        .map(|e| e.name.clone())
        .collect();
    deleted.sort();
    let main = environments
        .iter()
        .find(|e| e.is_main && deleted.contains(&e.name))
        .map(|e| {
            format!(
                "the main environment `{}` matches no branch of the repository (is its main branch named differently?): Platform.sh would delete it",
                e.name
            )
        });
    (deleted, main)
}

/// Puts each project's preview on its actions that need one ([`needs_preview`]): the
/// environments that would be deleted, or unknown when the preview is missing or failed. A
/// warning is added for a main environment that would go.
pub fn annotate(plan: &mut Plan, previews: &BTreeMap<ProjectId, Preview>) {
    let mut warnings = Vec::new();
    for action in plan.actions.iter_mut().filter(|a| needs_preview(a)) {
        action.environment_deletions = Some(match previews.get(&action.project) {
            None => EnvironmentDeletions::unknown("the environments and branches were not read"),
            Some(Err(reason)) => EnvironmentDeletions::unknown(reason.clone()),
            Some(Ok((environments, branches))) => {
                let (deleted, main) = would_delete(environments, branches);
                if let Some(main) = main {
                    warnings.push(format!("{}: {main}", action.project));
                }
                EnvironmentDeletions::known(deleted)
            }
        });
    }
    plan.warnings.extend(warnings);
}

/// The guard: the projects whose environment deletions are unknown or, in all, more than
/// `max` — `None` when the plan may go ahead.
pub fn violation(plan: &Plan, max: usize) -> Option<EnvironmentViolation> {
    let mut unknown = Vec::new();
    let mut deleted = Vec::new();
    for action in &plan.actions {
        match &action.environment_deletions {
            Some(d) if !d.known => {
                unknown.push((action.project.clone(), d.reason.clone().unwrap_or_default()))
            }
            Some(d) if !d.names().is_empty() => {
                deleted.push((action.project.clone(), d.names().to_vec()));
            }
            _ => {}
        }
    }
    let total: usize = deleted.iter().map(|(_, names)| names.len()).sum();
    (!unknown.is_empty() || total > max).then_some(EnvironmentViolation {
        total,
        max,
        deleted,
        unknown,
    })
}

/// Why the environment guard stops a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentViolation {
    /// Environments that would be deleted, in all.
    pub total: usize,
    /// The limit (`--max-environment-deletes`).
    pub max: usize,
    /// Per project: the environments.
    pub deleted: Vec<(ProjectId, Vec<String>)>,
    /// Per project: why the list is unknown.
    pub unknown: Vec<(ProjectId, String)>,
}

impl std::fmt::Display for EnvironmentViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.total > self.max {
            let listed: Vec<String> = self
                .deleted
                .iter()
                .map(|(p, names)| format!("{p} ({})", names.join(", ")))
                .collect();
            parts.push(format!(
                "Platform.sh would delete {} environment(s) at the first fetch, more than --max-environment-deletes {}: {}",
                self.total,
                self.max,
                listed.join("; ")
            ));
        }
        if !self.unknown.is_empty() {
            let listed: Vec<String> = self
                .unknown
                .iter()
                .map(|(p, why)| format!("{p} ({why})"))
                .collect();
            parts.push(format!(
                "which environments Platform.sh would delete is unknown for {}",
                listed.join("; ")
            ));
        }
        write!(
            f,
            "{}; nothing was written. Set `prune_branches: false` for the first sync, or pass --max-environment-deletes N after review",
            parts.join("; and ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> LiveEnvironment {
        LiveEnvironment {
            name: name.to_owned(),
            is_pr: false,
            is_main: false,
            deployment_target: Some("local".to_owned()),
        }
    }

    fn branches(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn unmatched_local_environments_go_pr_and_remote_targets_stay() {
        let mut main = env("main");
        main.is_main = true;
        let mut pr = env("pr-12");
        pr.is_pr = true;
        let mut dedicated = env("production-dedicated");
        dedicated.deployment_target = Some("dedicated".to_owned());
        let environments = [
            main,
            env("feature-x"),
            env("old-demo"),
            pr,
            dedicated,
            env("dev"),
        ];
        let (deleted, warning) = would_delete(&environments, &branches(&["main", "dev"]));
        assert_eq!(deleted, ["feature-x", "old-demo"]);
        assert_eq!(warning, None);
    }

    #[test]
    fn a_renamed_main_branch_is_a_warning_of_its_own() {
        let mut main = env("master");
        main.is_main = true;
        let (deleted, warning) = would_delete(&[main], &branches(&["main"]));
        assert_eq!(deleted, ["master"]);
        assert!(warning.unwrap().contains("main environment `master`"));
    }
}
