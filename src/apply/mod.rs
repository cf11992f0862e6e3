//! The applier: carries out a [`Plan`] and decides nothing.
//!
//! Projects are applied in parallel (bounded), one action at a time within a project (a replace
//! deletes, then creates). One failed action does not stop the others. Secrets are read from the
//! environment only here, only for the actions that send them. After each write its activities
//! are awaited unless `--no-wait`, for at most `--activity-timeout`; an activity that failed,
//! was cancelled, ended without a result or did not finish in time fails the action.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::live::{Awaited, Client, Written};
use crate::model::ids::ProjectId;
use crate::model::secret::Secret;
use crate::model::{DesiredIntegration, Env, Field, FieldValue, IntegrationType};
use crate::plan::{Action, ActionKind, Plan};
use crate::wire::body;
use crate::wire::{Activity, ApiIntegration};

/// Why one action failed. The report keeps it as text ([`crate::live::chain`]), causes included.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// A `${NAME}` the action sends is not set.
    #[error("environment variable `{variables}` is not set (needed for `{field}`{at})")]
    MissingVariable {
        /// The variables, `` `, ` ``-separated.
        variables: String,
        /// The field that needs them.
        field: String,
        /// ` at FILE:LINE:COL`, or nothing.
        at: String,
    },
    /// The plan lacks what the action needs (a hand-edited plan file).
    #[error("the plan has no {what} for this {action}")]
    Incomplete {
        /// What is missing.
        what: &'static str,
        /// The action.
        action: &'static str,
    },
    /// The create half of a replace cannot proceed, so its delete was not made.
    #[error("{cause}; the existing integration was left in place")]
    NotReplaced {
        /// Why the create cannot proceed (part of the message: it is what the user must fix).
        cause: Box<ApplyError>,
    },
    /// The request body could not be made.
    #[error("{0}")]
    Body(String),
    /// The API refused or did not answer.
    #[error(transparent)]
    Api(#[from] crate::live::ApiError),
    /// The write was made, but its activities could not be followed.
    #[error("the write was made, but its activities could not be followed")]
    Follow(#[source] crate::live::ApiError),
}

/// How long an apply waits for a write's activities by default (`--activity-timeout`): 10
/// minutes. Inferred: the CLI waits without a bound; a fetch of a large repository takes
/// minutes, and an unattended run must end.
pub const DEFAULT_ACTIVITY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Wait for the activities each write starts.
    pub wait: bool,
    /// How long to wait for them ([`DEFAULT_ACTIVITY_TIMEOUT`] unless changed).
    pub activity_timeout: std::time::Duration,
    /// Projects applied at once.
    pub concurrency: usize,
}

impl ApplyOptions {
    /// Waiting for activities, for [`DEFAULT_ACTIVITY_TIMEOUT`], `concurrency` projects at once.
    pub fn new(concurrency: usize) -> Self {
        Self {
            wait: true,
            activity_timeout: DEFAULT_ACTIVITY_TIMEOUT,
            concurrency,
        }
    }
}

/// What became of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It failed.
    Failed,
    /// A create whose outcome is unknown: it may have been made (it failed; the next plan will
    /// tell). Never sent twice in one run.
    Unknown,
    /// A guard refused it (protect).
    Blocked,
    /// Not attempted (unknown live state).
    Skipped,
    /// Not started: the apply was interrupted (Ctrl-C, SIGTERM) before it began. Nothing was
    /// sent for it, so it is no failure of its own, and the daemon does not back off for it.
    NotStarted,
    /// Deleted.
    Deleted,
    /// Replaced.
    Replaced,
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Nothing to do.
    Unchanged,
}

impl Outcome {
    /// The word used in output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
            Outcome::Blocked => "blocked",
            Outcome::Skipped => "skipped",
            Outcome::NotStarted => "not started",
            Outcome::Deleted => "deleted",
            Outcome::Replaced => "replaced",
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// What happened to one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionReport {
    /// The project.
    pub project: ProjectId,
    /// What was planned.
    pub action: ActionKind,
    /// What became of it.
    pub outcome: Outcome,
    /// Why, or what went wrong.
    pub message: Option<String>,
    /// The integration written, when known.
    pub integration_id: Option<String>,
    /// The webhook URL to add in Bitbucket by hand, when hook registration failed.
    pub hook_url: Option<String>,
    /// The integration's webhook URL (its `#hook` link, absolute), for the webhook check
    /// after a create or a replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// The activities awaited, and how they ended.
    pub activities: Vec<ActivityReport>,
    /// A create whose answer was lost, found by re-listing instead of created twice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

/// How an activity ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityReport {
    /// Its ID, when the API gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `integration.bitbucket.fetch`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `complete`, `cancelled`, or the state it was left in.
    pub state: String,
    /// `success`, `failure`, or null.
    pub result: Option<String>,
    /// Its plain-text description (spec `Activity.text`), when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The end of its log, when it did not succeed.
    pub log: Option<String>,
}

impl ActivityReport {
    /// Whether it finished (`complete` or `cancelled`, [`Activity::is_finished`]).
    fn finished(&self) -> bool {
        matches!(self.state.as_str(), "complete" | "cancelled")
    }

    /// Whether it finished with `success` ([`Activity::succeeded`]).
    fn succeeded(&self) -> bool {
        self.finished() && self.result.as_deref() == Some("success")
    }

    /// `` `integration.bitbucket.fetch` (`id`) ``: the activity, named.
    fn name(&self) -> String {
        match &self.id {
            Some(id) => format!("`{}` (`{id}`)", self.kind),
            None => format!("`{}`", self.kind),
        }
    }

    /// What the API said about it: its `text`, then the tail of its log, never empty. The CLI
    /// prints the description and then the log of a failed activity (legacy-cli
    /// `src/Service/ActivityMonitor.php` `printResult`).
    fn details(&self) -> String {
        let text = self
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let log = self.log.as_deref().map(str::trim).filter(|l| !l.is_empty());
        match (text, log) {
            (Some(text), Some(log)) if text != log => format!("{text} (log: {log})"),
            (Some(text), _) => text.to_owned(),
            (None, Some(log)) => log.to_owned(),
            (None, None) => match &self.id {
                Some(id) => format!(
                    "the API gave no text and no log for it (`platform activity:log {id}` may tell more)"
                ),
                None => "the API gave no text and no log for it".to_owned(),
            },
        }
    }
}

/// The result of an apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Per project, in plan order.
    pub actions: Vec<ActionReport>,
    /// Ctrl-C stopped it before every action started.
    pub interrupted: bool,
    /// Problems not tied to one project (from the plan: a failed organization listing).
    pub errors: Vec<String>,
}

impl Report {
    /// How many actions ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.actions.iter().filter(|a| a.outcome == outcome).count()
    }

    /// Whether anything failed (an action, or a plan-level error).
    pub(crate) fn failed(&self) -> bool {
        self.count(Outcome::Failed) > 0
            || self.count(Outcome::Unknown) > 0
            || !self.errors.is_empty()
            || self.interrupted
            || self.count(Outcome::Skipped) > 0
    }
}

/// Carries out `plan`. `env` gives secrets and unset `${NAME}` values; `cancel` stops new
/// actions from starting; `on_done` is told of each finished action.
pub async fn apply(
    client: &Client,
    plan: &Plan,
    env: &Env,
    options: &ApplyOptions,
    cancel: &CancellationToken,
    on_done: &(dyn Fn(&ActionReport) + Sync),
) -> Report {
    // The futures are made by an `async fn`, not an `async` closure, so the whole apply stays
    // `Send` (the daemon spawns it).
    let runs: Vec<_> = plan
        .actions
        .iter()
        .enumerate()
        .map(|(index, action)| run_one(client, index, action, env, options, cancel, on_done))
        .collect();
    let mut reports: Vec<(usize, ActionReport)> = futures_util::stream::iter(runs)
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    reports.sort_by_key(|(index, _)| *index);
    Report {
        interrupted: cancel.is_cancelled(),
        actions: reports.into_iter().map(|(_, r)| r).collect(),
        errors: plan.errors.clone(),
    }
}

async fn run_one(
    client: &Client,
    index: usize,
    action: &Action,
    env: &Env,
    options: &ApplyOptions,
    cancel: &CancellationToken,
    on_done: &(dyn Fn(&ActionReport) + Sync),
) -> (usize, ActionReport) {
    let report = if cancel.is_cancelled() && action.action.writes() {
        report(
            action,
            Outcome::NotStarted,
            Some("interrupted before it started; nothing was sent".to_owned()),
        )
    } else {
        run(client, action, env, options).await
    };
    on_done(&report);
    (index, report)
}

fn report(action: &Action, outcome: Outcome, message: Option<String>) -> ActionReport {
    ActionReport {
        project: action.project.clone(),
        action: action.action,
        outcome,
        message,
        integration_id: action.before.as_ref().map(|b| b.id.to_string()),
        hook_url: None,
        hook: None,
        activities: Vec::new(),
        recovered: false,
    }
}

async fn run(client: &Client, action: &Action, env: &Env, options: &ApplyOptions) -> ActionReport {
    let result = match action.action {
        ActionKind::Noop => return report(action, Outcome::Unchanged, None),
        ActionKind::Blocked => return report(action, Outcome::Blocked, action.reason.clone()),
        ActionKind::Error => return report(action, Outcome::Skipped, action.reason.clone()),
        ActionKind::Delete => delete(client, action, options)
            .await
            .map(|w| (Outcome::Deleted, w)),
        ActionKind::Create => create(client, action, env, options)
            .await
            .map(|w| (Outcome::Created, w)),
        // A replace that could not create must not delete: the values the create needs are
        // resolved first, so a missing variable leaves the old integration in place.
        ActionKind::Replace => match replace_ready(action, env) {
            Err(failure) => Err(ApplyError::NotReplaced {
                cause: Box::new(failure),
            }),
            Ok(()) => match delete(client, action, options).await {
                Ok(_) => create(client, action, env, options)
                    .await
                    .map(|w| (Outcome::Replaced, w)),
                Err(failure) => Err(failure),
            },
        },
        ActionKind::Update => update(client, action, env, options)
            .await
            .map(|w| (Outcome::Updated, w)),
    };
    match result {
        Ok((outcome, done)) => {
            let mut r = report(action, outcome, None);
            r.integration_id = done.id.or(r.integration_id);
            r.recovered = done.recovered;
            r.activities = done.activities;
            r.hook_url = done.hook_url;
            r.hook = done.hook;
            let unfinished = r.activities.iter().find(|a| !a.finished());
            if let (Some(timeout), Some(pending)) = (done.timed_out, unfinished) {
                // A timeout is never a success: the write was made, what it started is unknown.
                r.outcome = Outcome::Failed;
                r.message = Some(format!(
                    "the write was made, but activity {} was still `{}` after {} (`--activity-timeout`)",
                    pending.name(),
                    pending.state,
                    humantime(timeout)
                ));
            } else if let Some(failed) =
                r.activities.iter().find(|a| a.finished() && !a.succeeded())
            {
                let how = match (failed.state.as_str(), failed.result.as_deref()) {
                    ("cancelled", _) => "was cancelled",
                    (_, Some("failure")) => "failed",
                    _ => "ended without a success",
                };
                r.outcome = Outcome::Failed;
                r.message = Some(format!(
                    "the write was made, but activity {} {how}: {}",
                    failed.name(),
                    failed.details()
                ));
            } else if let Some(pending) = unfinished {
                r.message = Some(format!(
                    "activity {} was `{}` when bbsync moved on (`--no-wait`)",
                    pending.name(),
                    pending.state
                ));
            }
            r
        }
        Err(error) => {
            let outcome = if error.is_create_unknown() {
                Outcome::Unknown
            } else {
                Outcome::Failed
            };
            report(action, outcome, Some(crate::live::chain(&error)))
        }
    }
}

impl ApplyError {
    /// A create whose outcome is unknown (it may have been made).
    fn is_create_unknown(&self) -> bool {
        matches!(
            self,
            ApplyError::Api(crate::live::ApiError::CreateUnknown { .. })
        )
    }
}

/// A finished write.
struct Done {
    id: Option<String>,
    activities: Vec<ActivityReport>,
    hook_url: Option<String>,
    hook: Option<String>,
    recovered: bool,
    /// The wait for its activities ran out after this long.
    timed_out: Option<std::time::Duration>,
}

/// `10m`, `90s`, `250ms`: a duration as the flags take it.
fn humantime(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(60_000) && millis > 0 {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

async fn finish(
    client: &Client,
    project: &ProjectId,
    written: Written,
    options: &ApplyOptions,
) -> Result<Done, ApplyError> {
    // A create recovered by re-listing lost its answer, and the activities named in it: they
    // are looked for in the project's activity listing instead.
    let awaited = match (&written.entity, written.recovered) {
        (Some(entity), true) if written.activities.is_empty() => {
            Some(Awaited::OfIntegration(entity.id.clone()))
        }
        _ if written.activities.is_empty() => None,
        _ => Some(Awaited::Started(written.activities.clone())),
    };
    let (activities, timed_out) = match awaited {
        Some(awaited) if options.wait => {
            let waited = client
                .wait_for_activities(project, awaited, options.activity_timeout)
                .await
                .map_err(ApplyError::Follow)?;
            (
                waited.activities,
                waited.timed_out.then_some(options.activity_timeout),
            )
        }
        _ => (written.activities, None),
    };
    let hook_failed = activities
        .iter()
        .any(|a| a.kind.ends_with(".register_hooks") && a.is_finished() && !a.succeeded());
    let hook = written
        .entity
        .as_ref()
        .and_then(|e| e.links.resolved("#hook"))
        .map(|href| client.absolute(&href))
        .map(|href| crate::live::clean_text(&href));
    let hook_url = hook.clone().filter(|_| hook_failed);
    Ok(Done {
        id: written.entity.as_ref().map(|e| e.id.clone()),
        activities: activities.iter().map(activity_report).collect(),
        hook_url,
        hook,
        recovered: written.recovered,
        timed_out,
    })
}

fn activity_report(activity: &Activity) -> ActivityReport {
    let failed = activity.is_finished() && !activity.succeeded();
    // The API's text, made safe to print (no terminal control sequences).
    let clean = crate::live::clean_text;
    ActivityReport {
        id: activity.id.as_deref().map(clean),
        kind: clean(&activity.kind),
        state: clean(&activity.state),
        result: activity.result.as_deref().map(clean),
        text: failed
            .then(|| activity.text.as_deref().map(|t| clean(&excerpt(t))))
            .flatten()
            .filter(|t| !t.is_empty()),
        log: failed.then(|| clean(&excerpt(activity.log.as_deref().unwrap_or("")))),
    }
}

/// The last lines of a log, at most 600 characters.
fn excerpt(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.chars().count() > 600 {
        let skip = tail.chars().count() - 600;
        format!("...{}", tail.chars().skip(skip).collect::<String>())
    } else {
        tail
    }
}

/// Every field with deferred `${NAME}` values resolved, and the secret, from `env`.
fn resolve(
    after: &DesiredIntegration,
    env: &Env,
) -> Result<(BTreeMap<Field, FieldValue>, Secret), ApplyError> {
    let mut fields = after.fields.clone();
    for (field, template) in &after.deferred {
        let value = template
            .resolve(env)
            .map_err(|missing| ApplyError::MissingVariable {
                variables: missing.join("`, `"),
                field: field.to_string(),
                at: String::new(),
            })?;
        fields.insert(*field, FieldValue::Text(value));
    }
    let secret = env
        .get(&after.secret.variable)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApplyError::MissingVariable {
            variables: after.secret.variable.clone(),
            field: after.secret.field.name().to_owned(),
            at: format!(" at {}", after.secret.origin),
        })?;
    Ok((fields, Secret::new(secret)))
}

/// Every environment variable the writes of `plan` need and `env` does not set, with the
/// projects that need it: the secrets of the actions that send credentials, and the deferred
/// `${NAME}` values of creates and replaces. Checked before the first write, so that an apply
/// never stops part-way for a missing variable.
pub(crate) fn missing_variables(
    plan: &crate::plan::Plan,
    env: &Env,
) -> BTreeMap<String, Vec<ProjectId>> {
    let mut missing: BTreeMap<String, Vec<ProjectId>> = BTreeMap::new();
    for action in plan.actions.iter().filter(|a| a.action.writes()) {
        let Some(after) = &action.after else {
            continue;
        };
        let creates = matches!(action.action, ActionKind::Create | ActionKind::Replace);
        if !(creates || action.send_credentials) {
            continue;
        }
        let mut names: Vec<String> = after
            .deferred
            .values()
            .filter_map(|t| t.resolve(env).err())
            .flatten()
            .collect();
        if env.get(&after.secret.variable).is_none_or(|v| v.is_empty()) {
            names.push(after.secret.variable.clone());
        }
        for name in names {
            let projects = missing.entry(name).or_default();
            if !projects.contains(&action.project) {
                projects.push(action.project.clone());
            }
        }
    }
    missing
}

/// Whether the create half of a replace has every value it needs.
fn replace_ready(action: &Action, env: &Env) -> Result<(), ApplyError> {
    let after = action.after.as_ref().ok_or(ApplyError::Incomplete {
        what: "desired integration",
        action: "replace",
    })?;
    resolve(after, env).map(|_| ())
}

/// Whether a listed integration is the one a create made: same type and natural key.
fn is_ours(
    kind: IntegrationType,
    fields: &BTreeMap<Field, FieldValue>,
) -> impl Fn(&ApiIntegration) -> bool + Sync + '_ {
    move |api| {
        let Some(live) = crate::live::live_integration(api) else {
            return false;
        };
        live.kind == kind
            && kind
                .identity()
                .iter()
                .all(|f| live.fields.get(f) == fields.get(f))
    }
}

async fn create(
    client: &Client,
    action: &Action,
    env: &Env,
    options: &ApplyOptions,
) -> Result<Done, ApplyError> {
    let after = action.after.as_ref().ok_or(ApplyError::Incomplete {
        what: "desired integration",
        action: "create",
    })?;
    let (fields, secret) = resolve(after, env)?;
    let request = body::create(after.kind, &fields, (after.secret.field, &secret));
    // An API may echo the body it was sent: the secret never reaches a message.
    let written = client
        .create_integration(&action.project, &request, &is_ours(after.kind, &fields))
        .await
        .map_err(|e| e.redacted(secret.expose()))?;
    let done = finish(client, &action.project, written, options).await;
    redact_done(done, secret.expose())
}

/// A finished write's result with `secret` redacted from the API's text in it (its error, its
/// activity logs): the write sent it, and an API may echo it.
fn redact_done(done: Result<Done, ApplyError>, secret: &str) -> Result<Done, ApplyError> {
    match done {
        Ok(mut done) => {
            for activity in &mut done.activities {
                for text in [&mut activity.log, &mut activity.text]
                    .into_iter()
                    .flatten()
                {
                    *text = crate::live::redact(text, secret);
                }
            }
            Ok(done)
        }
        Err(ApplyError::Follow(error)) => Err(ApplyError::Follow(error.redacted(secret))),
        Err(other) => Err(other),
    }
}

async fn update(
    client: &Client,
    action: &Action,
    env: &Env,
    options: &ApplyOptions,
) -> Result<Done, ApplyError> {
    let after = action.after.as_ref().ok_or(ApplyError::Incomplete {
        what: "desired integration",
        action: "update",
    })?;
    let before = action.before.as_ref().ok_or(ApplyError::Incomplete {
        what: "live integration",
        action: "update",
    })?;
    let (fields, secret) = if action.send_credentials {
        let (fields, secret) = resolve(after, env)?;
        (fields, Some(secret))
    } else {
        (after.fields.clone(), None)
    };
    let credentials = secret.as_ref().map(|s| (after.secret.field, s));
    let request = body::patch(&action.changes(), &fields, credentials)
        .map_err(|e| ApplyError::Body(e.to_string()))?;
    let sent = secret.as_ref().map_or("", |s| s.expose());
    let written = client
        .update_integration(
            &action.project,
            &before.id,
            before.links.edit.as_deref(),
            &request,
        )
        .await
        .map_err(|e| e.redacted(sent))?;
    let done = finish(client, &action.project, written, options).await;
    redact_done(done, sent)
}

async fn delete(
    client: &Client,
    action: &Action,
    options: &ApplyOptions,
) -> Result<Done, ApplyError> {
    let before = action.before.as_ref().ok_or(ApplyError::Incomplete {
        what: "live integration",
        action: "delete",
    })?;
    let written = client
        .delete_integration(
            &action.project,
            &before.id,
            before.links.self_href.as_deref(),
        )
        .await?;
    let mut done = finish(client, &action.project, written, options).await?;
    done.id = Some(before.id.to_string());
    Ok(done)
}
