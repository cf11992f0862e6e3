//! The reconcile layer: the one pass that `plan`, `apply` and `watch` all make, from the desired
//! state (or a saved plan) to a report: fetch the live state -> plan -> guards -> approval ->
//! apply. It holds the process's one API client; what differs between the commands (printing,
//! asking on a terminal, the daemon's records) comes in through [`Hooks`].
//!
//! Also here: reading the manifest ([`load`]) and `validate --online` ([`online`]).

pub(crate) mod load;
pub(crate) mod online;
pub(crate) mod preflight;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::apply::{self, ActionReport, ApplyOptions, Report};
use crate::live::{self, BitbucketClient, Client};
use crate::model::ids::ProjectId;
use crate::model::live::LiveState;
use crate::model::{DesiredState, Env};
use crate::plan::{self, GuardViolation, Plan, PlanOptions};

/// What a pass starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Plan the manifest against the live state read now.
    Manifest(&'a DesiredState),
    /// Apply exactly this saved plan, if the live state is still what it was made against.
    Saved(&'a Plan),
}

/// How far a pass goes, and with which limits.
#[derive(Debug, Clone, Default)]
pub(crate) struct PassOptions {
    /// `--project`: only these projects.
    pub only: Option<BTreeSet<ProjectId>>,
    /// `--rotate-credentials`.
    pub rotate_credentials: bool,
    /// Manifest warnings, carried into the plan.
    pub warnings: Vec<String>,
    /// Projects held back this time, with why (the daemon's backoff).
    pub held: BTreeMap<ProjectId, String>,
    /// `--max-deletes`.
    pub max_deletes: Option<usize>,
    /// `--max-environment-deletes` (0 unless given).
    pub max_environment_deletes: usize,
    /// Apply with these options; `None` stops after planning.
    pub apply: Option<ApplyOptions>,
}

/// What stands between a plan and its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Approval {
    /// Write.
    Yes,
    /// Write, but read the live state again first and refuse a plan gone stale meanwhile (time
    /// passed at a prompt).
    YesIfUnchanged,
    /// Write nothing.
    No,
}

/// What the commands add to a pass. Every method has a default that does nothing (or approves).
pub(crate) trait Hooks: Sync {
    /// `done` of `total` projects read.
    fn progress(&self, done: usize, total: usize) {
        let _ = (done, total);
    }

    /// The plan is made (before the guards).
    fn planned(&mut self, plan: &Plan) {
        let _ = plan;
    }

    /// The plan passed the guards and writes something: may it?
    fn approve(&mut self, plan: &Plan) -> impl Future<Output = Approval> + Send {
        let _ = plan;
        std::future::ready(Approval::Yes)
    }

    /// Writing starts: `writes` actions write.
    fn applying(&mut self, writes: usize) {
        let _ = writes;
    }

    /// One action finished.
    fn done(&self, report: &ActionReport) {
        let _ = report;
    }
}

/// Hooks that add nothing: plan, approve, apply.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quiet;

impl Hooks for Quiet {}

/// Why a pass wrote nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// Asked to plan only.
    Planned,
    /// A guard refused the plan.
    Guard(GuardViolation),
    /// The plan no longer matches the live state (a saved plan, or one that waited at a prompt).
    Stale {
        /// It waited at a prompt (not a saved plan).
        at_prompt: bool,
        /// Each stale project and why.
        projects: Vec<(ProjectId, String)>,
    },
    /// Not approved.
    Declined,
    /// Variables the writes need are not set: nothing was written. Name -> the projects
    /// that need it.
    MissingVariables(BTreeMap<String, Vec<ProjectId>>),
}

/// `BITBUCKET_SECRET` (needed by `web`, `docs`); `BBS_TOKEN` (needed by `intra`).
pub(crate) fn describe_missing(missing: &BTreeMap<String, Vec<ProjectId>>) -> String {
    missing
        .iter()
        .map(|(name, projects)| {
            let projects: Vec<String> = projects.iter().map(|p| format!("`{p}`")).collect();
            format!("`{name}` (needed by {})", projects.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The result of a pass.
#[derive(Debug, Clone)]
pub(crate) struct Pass {
    /// The plan made (or the saved plan).
    pub plan: Plan,
    /// The live state planned against (empty for a saved plan).
    pub live: LiveState,
    /// Why nothing was written, when nothing was.
    pub stop: Option<Stop>,
    /// What the applier did, when it ran.
    pub report: Option<Report>,
}

/// The one reconcile pass, with the process's one API client.
#[derive(Clone)]
pub struct Reconciler {
    client: Client,
    env: Env,
    /// Checks the Bitbucket side before credentials are sent ([`preflight`]); none in tests
    /// that build a pass without one.
    bitbucket: Option<BitbucketClient>,
    /// The checks were turned off by the user (`--skip-bitbucket-checks`): plans that send
    /// credentials say so.
    skipped: bool,
}

impl Reconciler {
    /// Passes through `client`, resolving secrets from `env`; no Bitbucket checks until
    /// [`Reconciler::with_bitbucket`].
    pub fn new(client: Client, env: Env) -> Self {
        Self {
            client,
            env,
            bitbucket: None,
            skipped: false,
        }
    }

    /// The same, with the Bitbucket checks turned off on purpose; plans that send credentials
    /// say so in a warning.
    #[must_use]
    pub(crate) fn skipping_bitbucket_checks(mut self) -> Self {
        self.skipped = true;
        self
    }

    /// The same, with the Bitbucket pre-flight and webhook checks made through `bitbucket`.
    #[must_use]
    pub fn with_bitbucket(mut self, bitbucket: BitbucketClient) -> Self {
        self.bitbucket = Some(bitbucket);
        self
    }

    /// The client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The environment secrets are resolved from.
    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    /// Reads the live state a plan of `desired` needs (every listed project, and with pruning the
    /// organization's), limited to `only` when given.
    pub(crate) async fn read_live(
        &self,
        desired: &DesiredState,
        only: Option<&BTreeSet<ProjectId>>,
        hooks: &impl Hooks,
    ) -> LiveState {
        let projects: BTreeSet<ProjectId> = desired
            .projects
            .keys()
            .filter(|id| only.is_none_or(|o| o.contains(*id)))
            .cloned()
            .collect();
        let organization = desired.organization.as_ref().filter(|_| desired.prune);
        let progress = |done: usize, total: usize| hooks.progress(done, total);
        live::fetch(&self.client, &projects, organization, only, &progress).await
    }

    /// Reads again the live state of every project `plan` writes to, and names those where it
    /// is no longer what the plan was made against (empty when the plan still holds). When it
    /// holds, every write's target is taken from this read, never from the plan
    /// ([`plan::bind_to_live`]).
    pub(crate) async fn stale(&self, plan: &mut Plan) -> Vec<(ProjectId, String)> {
        let projects: BTreeSet<ProjectId> = plan
            .actions
            .iter()
            .filter(|a| a.action.writes())
            .map(|a| a.project.clone())
            .collect();
        if projects.is_empty() {
            return Vec::new();
        }
        let live = live::fetch(&self.client, &projects, None, None, &|_, _| {}).await;
        let stale = plan::stale_projects(plan, &live);
        if stale.is_empty() {
            plan::bind_to_live(plan, &live);
        }
        stale
    }

    /// Fetch -> plan -> guards -> approval -> apply. `cancel` stops actions from starting.
    pub(crate) async fn pass(
        &self,
        source: Source<'_>,
        options: &PassOptions,
        hooks: &mut impl Hooks,
        cancel: &CancellationToken,
    ) -> Pass {
        let (plan, live) = match source {
            Source::Manifest(desired) => {
                let live = self.read_live(desired, options.only.as_ref(), hooks).await;
                let plan = plan::plan(
                    desired,
                    &live,
                    &PlanOptions {
                        only: options.only.clone(),
                        rotate_credentials: options.rotate_credentials,
                        warnings: options.warnings.clone(),
                        held: options.held.clone(),
                    },
                );
                (plan, live)
            }
            Source::Saved(saved) => {
                let mut plan = saved.clone();
                let stale = self.stale(&mut plan).await;
                if !stale.is_empty() {
                    return Pass {
                        plan: saved.clone(),
                        live: LiveState::default(),
                        stop: Some(Stop::Stale {
                            at_prompt: false,
                            projects: stale,
                        }),
                        report: None,
                    };
                }
                (plan, LiveState::default())
            }
        };
        let mut plan = plan;
        if let Some(bitbucket) = &self.bitbucket {
            // Before anything shows the plan: a project whose Bitbucket side would refuse the
            // credentials is an `error` in the plan, not a failed write.
            preflight::check(
                bitbucket,
                &mut plan,
                &self.env,
                self.client.config().concurrency,
            )
            .await;
        } else if self.skipped && plan.actions.iter().any(|a| a.send_credentials) {
            plan.warnings.push(
                "the Bitbucket side (consumer or token, repository, webhook) was not checked: --skip-bitbucket-checks"
                    .to_owned(),
            );
        }
        // Which environments each first fetch would make Platform.sh delete (DESIGN §5).
        let saved_deletions: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (a.project.clone(), a.environment_deletions.clone()))
            .collect();
        let previews = preflight::environment_previews(
            &self.client,
            self.bitbucket.as_ref(),
            &plan,
            &self.env,
            self.client.config().concurrency,
        )
        .await;
        plan::environments::annotate(&mut plan, &previews);
        if let Source::Saved(_) = source {
            // A saved plan records the environments it was made against: a change is stale.
            let changed: Vec<(ProjectId, String)> = plan
                .actions
                .iter()
                .filter(|a| {
                    saved_deletions
                        .iter()
                        .any(|(p, d)| p == &a.project && d != &a.environment_deletions)
                })
                .map(|a| {
                    (
                        a.project.clone(),
                        "the environments Platform.sh would delete at the first fetch changed since the plan was made"
                            .to_owned(),
                    )
                })
                .collect();
            if !changed.is_empty() {
                return Pass {
                    plan,
                    live: LiveState::default(),
                    stop: Some(Stop::Stale {
                        at_prompt: false,
                        projects: changed,
                    }),
                    report: None,
                };
            }
        }
        hooks.planned(&plan);
        let mut pass = Pass {
            plan,
            live,
            stop: None,
            report: None,
        };
        let Some(apply_options) = &options.apply else {
            pass.stop = Some(Stop::Planned);
            return pass;
        };
        if let Err(violation) = plan::check_guards(
            &pass.plan,
            options.max_deletes,
            options.max_environment_deletes,
        ) {
            pass.stop = Some(Stop::Guard(violation));
            return pass;
        }
        // Every variable the writes need, before the first write: never part-way.
        let missing = apply::missing_variables(&pass.plan, &self.env);
        if !missing.is_empty() {
            pass.stop = Some(Stop::MissingVariables(missing));
            return pass;
        }
        if pass.plan.has_changes() {
            let approval = match source {
                // The reviewed plan file is the approval.
                Source::Saved(_) => Approval::Yes,
                Source::Manifest(_) => hooks.approve(&pass.plan).await,
            };
            match approval {
                Approval::No => {
                    pass.stop = Some(Stop::Declined);
                    return pass;
                }
                Approval::YesIfUnchanged => {
                    let stale = self.stale(&mut pass.plan).await;
                    if !stale.is_empty() {
                        pass.stop = Some(Stop::Stale {
                            at_prompt: true,
                            projects: stale,
                        });
                        return pass;
                    }
                }
                Approval::Yes => {}
            }
        }
        hooks.applying(
            pass.plan
                .actions
                .iter()
                .filter(|a| a.action.writes())
                .count(),
        );
        let done = |report: &ActionReport| hooks.done(report);
        let report = apply::apply(
            &self.client,
            &pass.plan,
            &self.env,
            apply_options,
            cancel,
            &done,
        )
        .await;
        let report = self.check_webhooks(&pass.plan, report).await;
        pass.report = Some(report);
        pass
    }

    /// After the writes: each create or replace that went well has its webhook on the
    /// repository (DESIGN §5), or fails with the URL to add by hand.
    async fn check_webhooks(&self, plan: &Plan, mut report: Report) -> Report {
        let Some(bitbucket) = &self.bitbucket else {
            return report;
        };
        for done in report.actions.iter_mut().filter(|a| {
            matches!(
                a.outcome,
                apply::Outcome::Created | apply::Outcome::Replaced
            )
        }) {
            let (Some(hook), Some(id)) = (done.hook.clone(), done.integration_id.clone()) else {
                continue;
            };
            let Some(after) = plan
                .actions
                .iter()
                .find(|a| a.project == done.project)
                .and_then(|a| a.after.as_ref())
            else {
                continue;
            };
            if let Some(check) = preflight::webhook(bitbucket, after, &self.env, &hook, &id).await {
                done.outcome = apply::Outcome::Failed;
                done.message = Some(match &check.outcome {
                    live::CheckOutcome::Failed { problem, .. } => {
                        format!("the integration was made, but {problem}")
                    }
                    _ => preflight::refusal(&check),
                });
                done.hook_url = Some(hook);
            }
        }
        report
    }
}
