//! The planner: a pure, synchronous function of (desired state, live state) -> [`Plan`].
//!
//! No I/O and no clock: everything it needs is in its inputs, and the plan it returns leaves the
//! applier no decisions. Unknown is not absent: a project whose live state could not be read,
//! or an organization listing that failed, yields an `error` entry and never an action.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::ids::ProjectId;
use crate::model::live::{LiveIntegration, LiveState, OrganizationLive, ProjectLive};
use crate::model::{
    DesiredIntegration, DesiredState, Field, FieldValue, IntegrationType, Omitted, Origin, Target,
};

/// The plan format version written in plan files.
pub(crate) const FORMAT_VERSION: &str = "1";

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Only these projects (`--project`); `None` for all.
    pub only: Option<BTreeSet<ProjectId>>,
    /// Send the current credentials to every managed integration that exists.
    pub rotate_credentials: bool,
    /// Warnings from loading the manifest, carried into the plan.
    pub warnings: Vec<String>,
    /// Projects whose writes are held back this time, with why (the daemon's backoff after
    /// failures): their writing actions are left out of the plan and listed in [`Plan::held`].
    pub held: BTreeMap<ProjectId, String>,
}

/// A project whose planned write was left out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Held {
    /// The project.
    pub project: ProjectId,
    /// The write that was left out.
    pub action: ActionKind,
    /// Why it was held back.
    pub reason: String,
}

/// A plan: what `apply` will do, and why. Serialised, it is the plan file.
#[must_use]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Plan {
    /// `"1"`.
    #[schemars(extend("const" = "1"))]
    pub format_version: String,
    /// The bbsync that made it.
    pub bbsync_version: String,
    /// The manifest's digest.
    pub manifest_digest: String,
    /// Made with `--project`: other projects were not looked at.
    pub partial: bool,
    /// Made with `--rotate-credentials`.
    #[serde(default)]
    pub rotate_credentials: bool,
    /// Counts.
    pub summary: Summary,
    /// The actions: errors and blocked first, then deletes, replaces, creates, updates, noops.
    pub actions: Vec<Action>,
    /// Things worth a look that do not stop anything.
    pub warnings: Vec<String>,
    /// Problems not tied to one project (a failed organization listing).
    pub errors: Vec<String>,
    /// Writes left out because their project is held back ([`PlanOptions::held`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Held>,
}

/// What an action does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Live state unknown or ambiguous: nothing will be done.
    Error,
    /// A delete or replace refused because the project is protected.
    Blocked,
    /// Delete the integration.
    Delete,
    /// Delete, then create (the type changed).
    Replace,
    /// Create the integration.
    Create,
    /// Change some fields.
    Update,
    /// Nothing to do.
    Noop,
}

impl ActionKind {
    /// The word used in output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ActionKind::Error => "error",
            ActionKind::Blocked => "blocked",
            ActionKind::Delete => "delete",
            ActionKind::Replace => "replace",
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Noop => "noop",
        }
    }

    /// Whether it writes to the API.
    pub(crate) fn writes(self) -> bool {
        matches!(
            self,
            ActionKind::Delete | ActionKind::Replace | ActionKind::Create | ActionKind::Update
        )
    }
}

/// One project's action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Action {
    /// The project.
    pub project: ProjectId,
    /// The project's title, where the organization listing gave it (for reviewers; not
    /// written when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What happens.
    pub action: ActionKind,
    /// The integration type acted on (the new one for a replace).
    #[serde(rename = "type")]
    pub kind: Option<IntegrationType>,
    /// The live integration, when there is one.
    pub before: Option<LiveIntegration>,
    /// The desired integration (secrets as references only), when there is one.
    pub after: Option<DesiredIntegration>,
    /// The fields that change.
    pub fields: Vec<FieldChange>,
    /// The write-only secret is sent (create, replace, a changed public credential part, or a
    /// rotation).
    pub send_credentials: bool,
    /// The live object's fingerprint when planned (null for a create).
    pub live_fingerprint: Option<String>,
    /// For `blocked`: what was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_action: Option<ActionKind>,
    /// A delete because of `prune: true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pruned: bool,
    /// Why, in words.
    pub reason: Option<String>,
    /// Where the manifest lists the project (none for pruned projects).
    pub origin: Option<Origin>,
    /// The environments Platform.sh would delete at the first fetch this action causes
    /// ([`environments`]); null where the action cannot delete environments (DESIGN §2).
    #[serde(default)]
    pub environment_deletions: Option<EnvironmentDeletions>,
}

/// One field's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct FieldChange {
    /// The field.
    pub name: Field,
    /// Its live value (null when the API returned none).
    pub before: Option<FieldValue>,
    /// Its new value.
    pub after: FieldValue,
}

/// Counts of actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Summary {
    /// Creates.
    pub create: usize,
    /// Updates.
    pub update: usize,
    /// Deletes.
    pub delete: usize,
    /// Replaces.
    pub replace: usize,
    /// Noops.
    pub unchanged: usize,
    /// Blocked by `protect`.
    pub blocked: usize,
    /// Errors (per project, and for pruning as a whole).
    pub errors: usize,
}

impl Plan {
    /// Whether applying it would write anything.
    pub(crate) fn has_changes(&self) -> bool {
        self.actions.iter().any(|a| a.action.writes())
    }

    /// Whether anything could not be planned.
    pub(crate) fn has_errors(&self) -> bool {
        self.summary.errors > 0
    }

    /// The deletes (pruned or not) and replaces it holds.
    pub(crate) fn deletions(&self) -> impl Iterator<Item = &Action> {
        self.actions
            .iter()
            .filter(|a| matches!(a.action, ActionKind::Delete | ActionKind::Replace))
    }
}

/// Plans `desired` against `live`.
pub fn plan(desired: &DesiredState, live: &LiveState, options: &PlanOptions) -> Plan {
    let selected = |id: &ProjectId| options.only.as_ref().is_none_or(|only| only.contains(id));
    let mut actions = Vec::new();
    let mut warnings = options.warnings.clone();
    let mut errors = Vec::new();

    for (id, project) in desired.projects.iter().filter(|(id, _)| selected(id)) {
        let mut action = match live.projects.get(id) {
            None => error(id, "the live state of this project was not read".to_owned()),
            Some(ProjectLive::Unknown { error: message }) => error(
                id,
                format!("live state unknown, nothing planned: {message}"),
            ),
            Some(ProjectLive::Unreadable { reason }) => error(
                id,
                format!(
                    "the token cannot read this project ({reason}): nothing planned; give the API token's user access to it"
                ),
            ),
            Some(ProjectLive::Known { managed, others }) => {
                match (managed.as_slice(), &project.target) {
                    ([_, _, ..], _) => duplicates(id, managed),
                    // A create, or a replace (whose create half would fail after its delete).
                    ([] | [_], Target::Present(wanted))
                        if managed
                            .first()
                            .is_none_or(|current| current.kind != wanted.kind)
                            && let Some(source) =
                                others.iter().find(|o| is_code_source(&o.kind)) =>
                    {
                        error(
                            id,
                            format!(
                                "the project's code already comes from its `{}` integration `{}`: a project has one code source, so no Bitbucket integration is created; remove that integration first, or make this project `absent: true`",
                                source.kind, source.id
                            ),
                        )
                    }
                    ([], Target::Absent) => noop(id, None, "no Bitbucket integration, as wanted"),
                    ([current], Target::Absent) => delete(id, current, false),
                    ([], Target::Present(wanted)) => create(id, wanted),
                    ([current], Target::Present(wanted)) if current.kind != wanted.kind => {
                        replace(id, current, wanted)
                    }
                    ([current], Target::Present(wanted)) => update(
                        id,
                        current,
                        wanted,
                        options.rotate_credentials,
                        &mut warnings,
                    ),
                }
            }
        };
        action.origin = Some(project.origin.clone());
        if project.protect && matches!(action.action, ActionKind::Delete | ActionKind::Replace) {
            action.blocked_action = Some(action.action);
            action.reason = Some(format!(
                "protected: the planned {} is not carried out (remove `protect: true` to allow it)",
                action.action.as_str()
            ));
            action.action = ActionKind::Blocked;
        }
        actions.push(action);
    }

    if desired.prune
        && let Some(organization) = &desired.organization
    {
        match &live.organization {
            None => errors.push(format!(
                "the projects of organization `{organization}` were not listed: nothing is pruned"
            )),
            Some(OrganizationLive::Failed(message)) => errors.push(format!(
                "listing the projects of organization `{organization}` failed, so nothing is pruned: {message}"
            )),
            Some(OrganizationLive::Listed(ids)) => {
                let mut unreadable = Vec::new();
                for id in ids.iter().filter(|id| !desired.projects.contains_key(*id) && selected(id)) {
                    match live.projects.get(id) {
                        Some(ProjectLive::Known { managed, .. }) => match managed.as_slice() {
                            [] => {}
                            [current] => {
                                let mut action = delete(id, current, true);
                                action.reason = Some(format!(
                                    "not in the manifest, and `prune: true` for organization `{organization}`"
                                ));
                                actions.push(action);
                            }
                            _ => actions.push(duplicates(id, managed)),
                        },
                        Some(ProjectLive::Unknown { error: message }) => actions.push(error(
                            id,
                            format!("live state unknown, not pruned: {message}"),
                        )),
                        Some(ProjectLive::Unreadable { .. }) => unreadable.push(format!("`{id}`")),
                        None => actions.push(error(id, "the live state of this project was not read; not pruned".to_owned())),
                    }
                }
                if !unreadable.is_empty() {
                    warnings.push(format!(
                        "{} project{} of organization `{organization}` cannot be read with this API token, so {} not pruned: {}",
                        unreadable.len(),
                        if unreadable.len() == 1 { "" } else { "s" },
                        if unreadable.len() == 1 { "it is" } else { "they are" },
                        unreadable.join(", ")
                    ));
                }
            }
        }
    }

    let mut held = Vec::new();
    actions.retain(|action| match options.held.get(&action.project) {
        Some(reason) if action.action.writes() => {
            held.push(Held {
                project: action.project.clone(),
                action: action.action,
                reason: reason.clone(),
            });
            false
        }
        _ => true,
    });
    held.sort_by(|a, b| a.project.cmp(&b.project));
    actions.sort_by(|a, b| (a.action, &a.project).cmp(&(b.action, &b.project)));
    for action in &mut actions {
        action.title = live.titles.get(&action.project).cloned();
    }
    let summary = summarize(&actions, &errors);
    Plan {
        format_version: FORMAT_VERSION.to_owned(),
        bbsync_version: env!("CARGO_PKG_VERSION").to_owned(),
        manifest_digest: desired.digest.clone(),
        partial: options.only.is_some(),
        rotate_credentials: options.rotate_credentials,
        summary,
        actions,
        warnings,
        errors,
        held,
    }
}

/// The counts of `actions`, with the plan-level `errors`.
fn summarize(actions: &[Action], errors: &[String]) -> Summary {
    let mut summary = Summary {
        errors: errors.len(),
        ..Summary::default()
    };
    for action in actions {
        match action.action {
            ActionKind::Create => summary.create += 1,
            ActionKind::Update => summary.update += 1,
            ActionKind::Delete => summary.delete += 1,
            ActionKind::Replace => summary.replace += 1,
            ActionKind::Noop => summary.unchanged += 1,
            ActionKind::Blocked => summary.blocked += 1,
            ActionKind::Error => summary.errors += 1,
        }
    }
    summary
}

impl Plan {
    /// Turns `project`'s action into an `error` for `reason` (a failed check before any
    /// write): nothing is written for it, and the counts follow.
    pub(crate) fn refuse(&mut self, project: &ProjectId, reason: String) {
        for action in self.actions.iter_mut().filter(|a| &a.project == project) {
            action.action = ActionKind::Error;
            action.reason = Some(reason.clone());
            action.send_credentials = false;
            action.environment_deletions = None;
        }
        self.actions
            .sort_by(|a, b| (a.action, &a.project).cmp(&(b.action, &b.project)));
        self.summary = summarize(&self.actions, &self.errors);
    }
}

fn base(project: &ProjectId, action: ActionKind) -> Action {
    Action {
        project: project.clone(),
        title: None,
        action,
        kind: None,
        before: None,
        after: None,
        fields: Vec::new(),
        send_credentials: false,
        live_fingerprint: None,
        blocked_action: None,
        pruned: false,
        reason: None,
        origin: None,
        environment_deletions: None,
    }
}

fn error(project: &ProjectId, reason: String) -> Action {
    Action {
        reason: Some(reason),
        ..base(project, ActionKind::Error)
    }
}

fn duplicates(project: &ProjectId, managed: &[LiveIntegration]) -> Action {
    let ids: Vec<String> = managed
        .iter()
        .map(|i| format!("`{}` ({})", i.id, i.kind))
        .collect();
    error(
        project,
        format!(
            "the project has {} Bitbucket-family integrations ({}); bbsync manages at most one: delete the extra one by hand",
            managed.len(),
            ids.join(", ")
        ),
    )
}

/// Nothing to do. A noop carries the live object's fingerprint but no copy of the object: it
/// writes nothing, and plans of large organizations (mostly noops) stay small and fast.
fn noop(project: &ProjectId, current: Option<&LiveIntegration>, reason: &str) -> Action {
    Action {
        kind: current.map(|c| c.kind),
        live_fingerprint: current.map(LiveIntegration::fingerprint),
        reason: Some(reason.to_owned()),
        ..base(project, ActionKind::Noop)
    }
}

fn delete(project: &ProjectId, current: &LiveIntegration, pruned: bool) -> Action {
    Action {
        kind: Some(current.kind),
        before: Some(current.clone()),
        live_fingerprint: Some(current.fingerprint()),
        pruned,
        reason: Some(if pruned {
            "not in the manifest".to_owned()
        } else {
            "`absent: true`".to_owned()
        }),
        ..base(project, ActionKind::Delete)
    }
}

fn create(project: &ProjectId, wanted: &DesiredIntegration) -> Action {
    Action {
        kind: Some(wanted.kind),
        after: Some(wanted.clone()),
        fields: wanted
            .fields
            .iter()
            .map(|(name, value)| FieldChange {
                name: *name,
                before: None,
                after: value.clone(),
            })
            .collect(),
        send_credentials: true,
        reason: Some("no Bitbucket integration yet".to_owned()),
        ..base(project, ActionKind::Create)
    }
}

fn replace(project: &ProjectId, current: &LiveIntegration, wanted: &DesiredIntegration) -> Action {
    Action {
        before: Some(current.clone()),
        live_fingerprint: Some(current.fingerprint()),
        reason: Some(format!(
            "the type changes from `{}` to `{}`: the integration is deleted, then created",
            current.kind, wanted.kind
        )),
        ..create(project, wanted)
    }
    .with_kind(ActionKind::Replace)
}

fn update(
    project: &ProjectId,
    current: &LiveIntegration,
    wanted: &DesiredIntegration,
    rotate: bool,
    warnings: &mut Vec<String>,
) -> Action {
    let mut changes = Vec::new();
    for (name, value) in &wanted.fields {
        let live = current.fields.get(name);
        if live
            .cloned()
            .or_else(|| live_default(*name, current))
            .as_ref()
            == Some(value)
        {
            continue;
        }
        if let (Some(FieldValue::Text(a)), FieldValue::Text(b)) = (live, value)
            && a.eq_ignore_ascii_case(b)
        {
            warnings.push(format!(
                "{project}: `{name}` differs from the live value only by case (`{a}` vs `{b}`); it is updated"
            ));
        }
        changes.push(FieldChange {
            name: *name,
            before: live.cloned(),
            after: value.clone(),
        });
    }
    let credential_change = changes
        .iter()
        .find(|c| c.name.is_credential())
        .map(|c| c.name);
    let send_credentials = rotate || credential_change.is_some();
    if changes.is_empty() && !send_credentials {
        return noop(project, Some(current), "in sync");
    }
    let reason = match (credential_change, rotate) {
        (Some(field), _) => format!(
            "{} field(s) differ; credentials are sent because `{field}` changed",
            changes.len()
        ),
        (None, true) => format!("{} field(s) differ; credentials are rotated", changes.len()),
        (None, false) => format!("{} field(s) differ", changes.len()),
    };
    Action {
        kind: Some(wanted.kind),
        before: Some(current.clone()),
        after: Some(wanted.clone()),
        fields: changes,
        send_credentials,
        live_fingerprint: Some(current.fingerprint()),
        reason: Some(reason),
        ..base(project, ActionKind::Update)
    }
}

/// What a live integration that lacks `field` holds: the option's default where it has one
/// (the API applies it, and `export` leaves such options out), so that a field the API does
/// not return is never "changed" to the value it already means. Pruning defaults to off when
/// fetching is off, as in the manifest.
fn live_default(field: Field, current: &LiveIntegration) -> Option<FieldValue> {
    if field == Field::PruneBranches
        && current.fields.get(&Field::FetchBranches) == Some(&FieldValue::Bool(false))
    {
        return Some(FieldValue::Bool(false));
    }
    match field.omitted(current.kind)? {
        Omitted::Default(value) => Some(value),
        Omitted::Required | Omitted::NotManaged => None,
    }
}

impl Action {
    fn with_kind(mut self, kind: ActionKind) -> Self {
        self.action = kind;
        self
    }

    /// The changes as a map, for request bodies.
    pub(crate) fn changes(&self) -> BTreeMap<Field, FieldValue> {
        self.fields
            .iter()
            .map(|c| (c.name, c.after.clone()))
            .collect()
    }
}

/// A safety guard that stops a whole apply before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardViolation {
    /// More deletions than allowed.
    #[error(
        "the plan deletes {planned} integration(s) ({pruned} by pruning); the limit is {limit}"
    )]
    TooManyDeletes {
        /// Deletes and replaces planned.
        planned: usize,
        /// Of which by pruning.
        pruned: usize,
        /// The limit that applies.
        limit: usize,
    },
    /// Platform.sh would delete more environments than allowed, or which is unknown.
    #[error("{0}")]
    Environments(environments::EnvironmentViolation),
}

/// The default limit on deletions when the plan prunes: a mass deletion needs a deliberate
/// `--max-deletes`.
pub(crate) const DEFAULT_PRUNE_DELETE_LIMIT: usize = 10;

/// Checks the plan against `--max-deletes` and `--max-environment-deletes`. Without the
/// first, explicit `absent` deletions are not limited, but a plan that prunes may delete at
/// most [`DEFAULT_PRUNE_DELETE_LIMIT`]. Environment deletions that are unknown, or more than
/// `max_environment_deletes`, stop the plan ([`environments::violation`]).
pub(crate) fn check_guards(
    plan: &Plan,
    max_deletes: Option<usize>,
    max_environment_deletes: usize,
) -> Result<(), GuardViolation> {
    if let Some(violation) = environments::violation(plan, max_environment_deletes) {
        return Err(GuardViolation::Environments(violation));
    }
    let planned = plan.deletions().count();
    let pruned = plan.deletions().filter(|a| a.pruned).count();
    let limit = match max_deletes {
        Some(limit) => limit,
        None if pruned > 0 => DEFAULT_PRUNE_DELETE_LIMIT,
        None => return Ok(()),
    };
    if planned > limit {
        return Err(GuardViolation::TooManyDeletes {
            planned,
            pruned,
            limit,
        });
    }
    Ok(())
}

/// Whether an integration of type `kind` is a project's code source, as the official CLI
/// counts them (legacy-cli `src/Service/Api.php`, `getCodeSourceIntegration`: `github`,
/// `gitlab`, `bitbucket`, `bitbucket_server`). The Bitbucket ones are bbsync's own.
fn is_code_source(kind: &str) -> bool {
    matches!(kind, "github" | "gitlab")
}

/// The projects whose live state no longer matches what `plan` was made against: a changed or
/// vanished integration, or one that appeared where a create was planned.
pub(crate) fn stale_projects(plan: &Plan, live: &LiveState) -> Vec<(ProjectId, String)> {
    let mut stale = Vec::new();
    for action in plan.actions.iter().filter(|a| a.action.writes()) {
        let current = match live.projects.get(&action.project) {
            Some(ProjectLive::Known { managed, .. }) => managed,
            Some(ProjectLive::Unknown { error } | ProjectLive::Unreadable { reason: error }) => {
                stale.push((
                    action.project.clone(),
                    format!("its live state cannot be read now: {error}"),
                ));
                continue;
            }
            None => {
                stale.push((
                    action.project.clone(),
                    "its live state was not read".to_owned(),
                ));
                continue;
            }
        };
        let now = match current.as_slice() {
            [] => None,
            [one] => Some(one.fingerprint()),
            _ => {
                stale.push((
                    action.project.clone(),
                    "it now has several Bitbucket integrations".to_owned(),
                ));
                continue;
            }
        };
        if now != action.live_fingerprint {
            let why = match (&action.live_fingerprint, &now) {
                (None, Some(_)) => "a Bitbucket integration appeared since the plan was made",
                (Some(_), None) => "its Bitbucket integration disappeared since the plan was made",
                _ => "its Bitbucket integration changed since the plan was made",
            };
            stale.push((action.project.clone(), why.to_owned()));
        }
    }
    stale
}

/// Takes the target of every write from `live`, the state just read by the stale check
/// ([`stale_projects`] found nothing): each delete, update and replace gets the live
/// integration read now as its `before`, whatever the plan says. A saved plan is a file that
/// anyone may have edited; an edit to `before` (an ID, a link) must never move a write to
/// another integration while the report names the planned one. After a clean stale check the
/// two describe the same object (the fingerprint covers the ID, the fields and the links); a
/// project without exactly one Bitbucket integration now is left without `before`, and its
/// action fails rather than write anywhere.
pub(crate) fn bind_to_live(plan: &mut Plan, live: &LiveState) {
    for action in plan.actions.iter_mut().filter(|a| {
        matches!(
            a.action,
            ActionKind::Delete | ActionKind::Update | ActionKind::Replace
        )
    }) {
        action.before = match live.projects.get(&action.project) {
            Some(ProjectLive::Known { managed, .. }) => match managed.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            },
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests;

pub mod environments;
pub(crate) mod schema;
pub use environments::EnvironmentDeletions;

/// Plans and actions for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::{Action, ActionKind, Plan, PlanOptions};
    use crate::model::DesiredState;
    use crate::model::live::LiveState;

    /// An action of `kind` for `project`, with nothing else set.
    pub(crate) fn action(project: &str, kind: ActionKind) -> Action {
        super::base(&project.parse().expect("a project ID"), kind)
    }

    /// A plan with no actions.
    pub(crate) fn empty_plan() -> Plan {
        let desired = DesiredState {
            organization: None,
            prune: false,
            projects: Default::default(),
            digest: String::new(),
        };
        super::plan(&desired, &LiveState::default(), &PlanOptions::default())
    }
}
