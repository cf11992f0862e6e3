//! The Bitbucket side, checked before credentials are sent (DESIGN §5): the pre-flight
//! before a write that sends them, and the webhook after a create or a replace.
//!
//! Policy lives here; the requests live in [`BitbucketClient`]. A project whose check
//! fails gets an `error` instead of its action, naming the check; the other projects go on.

use futures_util::StreamExt as _;

use crate::live::{BitbucketClient, BitbucketCredentials, Check, CheckOutcome, RepositoryRef};
use crate::model::ids::ProjectId;
use crate::model::secret::Secret;
use crate::model::{DesiredIntegration, Env, Field, FieldValue, IntegrationType};
use crate::plan::{Action, Plan};

/// What a pre-flight checks for one integration: the credentials it would send, and its
/// repository.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The credentials, exactly as they would be sent.
    pub credentials: BitbucketCredentials,
    /// The repository.
    pub repository: RepositoryRef,
}

fn text(after: &DesiredIntegration, field: Field) -> Option<&str> {
    match after.fields.get(&field) {
        Some(FieldValue::Text(t)) => Some(t),
        _ => None,
    }
}

/// The pre-flight target of `after`, with its secret from `env`; why there is none otherwise
/// (an add-on, an unset variable): such an action is not checked.
pub(crate) fn target(after: &DesiredIntegration, env: &Env) -> Result<Target, String> {
    let public = |field: Field| -> Result<String, String> {
        if let Some(value) = text(after, field) {
            return Ok(value.to_owned());
        }
        match after.deferred.get(&field).map(|t| t.resolve(env)) {
            Some(Ok(value)) => Ok(value),
            Some(Err(missing)) => Err(format!(
                "`{}` uses `${{{}}}`, which is not set",
                field.name(),
                missing.join("}`, `${")
            )),
            None => Err(format!("`{}` is not set", field.name())),
        }
    };
    let secret = env
        .get(&after.secret.variable)
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret::new(v.to_owned()))
        .ok_or_else(|| format!("`${{{}}}` is not set", after.secret.variable))?;
    match after.kind {
        IntegrationType::Bitbucket => {
            if after.fields.contains_key(&Field::AddonKey) {
                return Err(
                    "it uses add-on credentials, which the pre-flight (an OAuth consumer's client_credentials grant) cannot check"
                        .to_owned(),
                );
            }
            let repository = public(Field::Repository)?;
            Ok(Target {
                credentials: BitbucketCredentials::Cloud {
                    key: public(Field::AppKey)?,
                    secret,
                },
                repository: RepositoryRef::parse(&repository)
                    .ok_or_else(|| format!("`{repository}` is not `workspace/slug`"))?,
            })
        }
        IntegrationType::BitbucketServer => Ok(Target {
            credentials: BitbucketCredentials::Server {
                url: public(Field::Url)?,
                username: public(Field::Username)?,
                token: secret,
            },
            repository: RepositoryRef::new(&public(Field::Project)?, &public(Field::Repository)?),
        }),
    }
}

/// The sentence an `error` action gets for a failed check.
pub(crate) fn refusal(check: &Check) -> String {
    match &check.outcome {
        CheckOutcome::Failed { problem, hint } => format!(
            "the Bitbucket pre-flight failed ({}): {problem}; {hint}. Nothing is written for this project",
            check.kind
        ),
        CheckOutcome::Passed { note } | CheckOutcome::Skipped { reason: note } => {
            format!("the Bitbucket check `{}`: {note}", check.kind)
        }
    }
}

/// The actions of `plan` that send credentials, with their targets.
fn sending(plan: &Plan, env: &Env) -> Vec<(ProjectId, Result<Target, String>)> {
    plan.actions
        .iter()
        .filter(|a| a.send_credentials && a.action.writes())
        .filter_map(|a: &Action| Some((a.project.clone(), target(a.after.as_ref()?, env))))
        .collect()
}

/// Runs the pre-flight for every action of `plan` that sends credentials, `concurrency` at a
/// time, and turns each one that fails into an `error` naming the check. An action that
/// cannot be checked (an unset variable, an add-on) gets a warning; the apply reports a
/// missing secret on its own. A plan that sends nothing makes no request.
pub(crate) async fn check(
    bitbucket: &BitbucketClient,
    plan: &mut Plan,
    env: &Env,
    concurrency: usize,
) {
    let mut unchecked = Vec::new();
    let mut checks = Vec::new();
    for (project, target) in sending(plan, env) {
        match target {
            Ok(target) => checks.push((project, target)),
            Err(why) => unchecked.push(format!(
                "{project}: the Bitbucket pre-flight was not run: {why}"
            )),
        }
    }
    let checks: Vec<_> = checks
        .into_iter()
        .map(|(project, target)| failed_check(bitbucket, project, target))
        .collect();
    let results: Vec<(ProjectId, Option<Check>)> = futures_util::stream::iter(checks)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (project, failed) in results {
        if let Some(check) = failed {
            plan.refuse(&project, refusal(&check));
        }
    }
    plan.warnings.extend(unchecked);
}

/// The failed check of `target`'s pre-flight, if any.
async fn failed_check(
    bitbucket: &BitbucketClient,
    project: ProjectId,
    target: Target,
) -> (ProjectId, Option<Check>) {
    let preflight = bitbucket
        .preflight(&target.credentials, &target.repository)
        .await;
    (project, preflight.failed().cloned())
}

/// What Platform.sh would delete at each first fetch `plan` causes ([`crate::plan::environments`]):
/// the project's environments, and, when some could be deleted, the repository's branches,
/// read with the credentials the action sends. Unknown (never absent) when either cannot be
/// read.
pub(crate) async fn environment_previews(
    client: &crate::live::Client,
    bitbucket: Option<&BitbucketClient>,
    plan: &Plan,
    env: &Env,
    concurrency: usize,
) -> std::collections::BTreeMap<ProjectId, crate::plan::environments::Preview> {
    let needed: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| crate::plan::environments::needs_preview(a))
        .collect();
    // Named `async fn`s, not `async` closures, keep the pass `Send` (the daemon spawns it).
    let previews: Vec<_> = needed
        .into_iter()
        .map(|action| preview(client, bitbucket, action, env))
        .collect();
    futures_util::stream::iter(previews)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// One action's [`environment_previews`] entry.
async fn preview(
    client: &crate::live::Client,
    bitbucket: Option<&BitbucketClient>,
    action: &Action,
    env: &Env,
) -> (ProjectId, crate::plan::environments::Preview) {
    (
        action.project.clone(),
        read_preview(client, bitbucket, action, env).await,
    )
}

async fn read_preview(
    client: &crate::live::Client,
    bitbucket: Option<&BitbucketClient>,
    action: &Action,
    env: &Env,
) -> crate::plan::environments::Preview {
    let environments: Vec<crate::model::live::LiveEnvironment> = client
        .environments(&action.project)
        .await
        .map_err(|e| {
            format!(
                "its environments could not be read: {}",
                crate::live::chain(&e)
            )
        })?
        .into_iter()
        .map(|e| crate::model::live::LiveEnvironment {
            name: e.name,
            is_pr: e.is_pr,
            is_main: e.is_main,
            deployment_target: e.deployment_target,
        })
        .collect();
    if !environments
        .iter()
        .any(crate::plan::environments::deletable)
    {
        // Nothing Platform.sh could delete: the branches do not matter.
        return Ok((environments, std::collections::BTreeSet::new()));
    }
    let bitbucket = bitbucket.ok_or_else(|| {
        "the repository's branches were not read (--skip-bitbucket-checks)".to_owned()
    })?;
    let after = action
        .after
        .as_ref()
        .ok_or_else(|| "no integration to read the branches with".to_owned())?;
    let target = target(after, env)
        .map_err(|why| format!("the repository's branches cannot be read: {why}"))?;
    let branches = bitbucket
        .branches(&target.credentials, &target.repository)
        .await
        .map_err(|e| format!("the repository's branches could not be read: {e}"))?;
    Ok((environments, branches))
}

/// The webhook check after a create or replace: `project`'s repository has an active hook to
/// `hook_url` with the events Platform.sh needs; the failed check otherwise.
pub(crate) async fn webhook(
    bitbucket: &BitbucketClient,
    after: &DesiredIntegration,
    env: &Env,
    hook_url: &str,
    integration: &str,
) -> Option<Check> {
    let target = target(after, env).ok()?;
    let check = bitbucket
        .webhook(
            &target.credentials,
            &target.repository,
            hook_url,
            &[integration.to_owned()],
        )
        .await;
    check.is_failed().then_some(check)
}
