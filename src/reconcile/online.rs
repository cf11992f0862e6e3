//! `bbsync validate --online`: what only the API can tell about a manifest.
//!
//! For each listed project: it exists (and the token can see it), it allows the integration
//! type (`/projects/{id}/capabilities`), and the API's own validation (`#validate`) accepts its
//! existing Bitbucket integration.

use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use crate::live::{ApiError, BitbucketClient, Check, Client, Validation};
use crate::model::ids::ProjectId;
use crate::model::live::{LiveIntegration, ProjectLive};
use crate::model::{DesiredState, Env, IntegrationType, Target};

/// The verdict on one project.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// Everything checked is fine; the note says what was checked.
    Valid {
        /// What was checked.
        note: String,
    },
    /// The API says the manifest cannot work for this project.
    Invalid {
        /// Why.
        problems: Vec<String>,
    },
    /// The project was checked, but its integration cannot be validated by the API (it has no
    /// `#validate` link): a warning, never taken for valid.
    CannotValidate {
        /// Why.
        reason: String,
    },
    /// The API could not be asked.
    Unchecked {
        /// Why.
        error: String,
    },
}

/// One project's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProjectCheck {
    /// The project.
    pub project: ProjectId,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The Bitbucket side (DESIGN §5): token, scopes, repository, admin (and username, token
    /// kind on Server), and the webhook of the existing integration; empty when not checked.
    pub bitbucket: Vec<Check>,
    /// Why the Bitbucket side was not checked, when it was not.
    pub bitbucket_unchecked: Option<String>,
}

impl ProjectCheck {
    /// Whether a Bitbucket check failed.
    pub(crate) fn bitbucket_failed(&self) -> bool {
        self.bitbucket.iter().any(Check::is_failed)
    }
}

/// Whether `capabilities` allow `kind` integrations: `integrations.enabled`, and
/// `integrations.config.<type>.enabled` true. A type the capabilities do not list is not
/// allowed: the CLI offers and accepts only the types enabled there ("The integration type
/// '...' is not available on this project", legacy-cli
/// `src/Command/Integration/IntegrationCommandBase.php`; platformsh-api.md §2.4).
pub(crate) fn type_allowed(capabilities: &Value, kind: IntegrationType) -> Result<(), String> {
    let integrations = capabilities.get("integrations");
    if integrations
        .and_then(|i| i.get("enabled"))
        .and_then(Value::as_bool)
        != Some(true)
    {
        return Err(
            "integrations are disabled for this project (its capabilities do not enable them; its plan may not include them)"
                .to_owned(),
        );
    }
    let enabled = integrations
        .and_then(|i| i.get("config"))
        .and_then(|c| c.get(kind.as_str()))
        .map(|t| t.get("enabled").and_then(Value::as_bool));
    match enabled {
        Some(Some(true)) => Ok(()),
        Some(_) => Err(format!("the project does not allow `{kind}` integrations")),
        None => Err(format!(
            "the project's capabilities do not list `{kind}` integrations, so it does not offer them"
        )),
    }
}

/// Checks every project of `desired` against the API, `concurrency` at a time, and with
/// `bitbucket` the Bitbucket side too, with the credentials from `env`.
pub(crate) async fn check(
    client: &Client,
    bitbucket: Option<&BitbucketClient>,
    env: &Env,
    desired: &DesiredState,
    concurrency: usize,
) -> Vec<ProjectCheck> {
    let checks: Vec<_> = desired
        .projects
        .values()
        .map(|p| check_project(client, bitbucket, env, &p.id, &p.target))
        .collect();
    let mut results: Vec<ProjectCheck> = futures_util::stream::iter(checks)
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by(|a, b| a.project.cmp(&b.project));
    results
}

async fn check_project(
    client: &Client,
    bitbucket: Option<&BitbucketClient>,
    env: &Env,
    project: &ProjectId,
    target: &Target,
) -> ProjectCheck {
    let mut hook = None;
    let verdict = match verdict(client, project, target, &mut hook).await {
        Ok(verdict) => verdict,
        Err(error) if error.status() == Some(404) => Verdict::Invalid {
            problems: vec!["the project does not exist, or the API token cannot see it".to_owned()],
        },
        Err(error) => Verdict::Unchecked {
            error: crate::live::explain(&error),
        },
    };
    let (mut checks, mut unchecked) = (Vec::new(), None);
    if let (Some(bitbucket), Target::Present(wanted)) = (bitbucket, target) {
        match super::preflight::target(wanted, env) {
            Ok(t) => {
                checks = bitbucket
                    .preflight(&t.credentials, &t.repository)
                    .await
                    .checks;
                if let Some((id, url)) = &hook
                    && !checks.iter().any(Check::is_failed)
                {
                    checks.push(
                        bitbucket
                            .webhook(&t.credentials, &t.repository, url, std::slice::from_ref(id))
                            .await,
                    );
                }
            }
            Err(why) => unchecked = Some(why),
        }
    }
    ProjectCheck {
        project: project.clone(),
        verdict,
        bitbucket: checks,
        bitbucket_unchecked: unchecked,
    }
}

/// The API's verdict on `project`; `hook` gets the existing integration's ID and webhook URL
/// (its `#hook` link, absolute).
async fn verdict(
    client: &Client,
    project: &ProjectId,
    target: &Target,
    hook: &mut Option<(String, String)>,
) -> Result<Verdict, ApiError> {
    client.project(project).await?;
    let Target::Present(wanted) = target else {
        return Ok(Verdict::Valid {
            note: "the project exists (`absent: true`: nothing else to check)".to_owned(),
        });
    };
    let capabilities = client.capabilities(project).await?;
    if let Err(problem) = type_allowed(&capabilities, wanted.kind) {
        return Ok(Verdict::Invalid {
            problems: vec![problem],
        });
    }
    let list = client.list_integrations(project).await?;
    if let [one] = list
        .iter()
        .filter(|i| IntegrationType::from_api(&i.kind).is_some())
        .collect::<Vec<_>>()
        .as_slice()
        && let Some(url) = one.links.resolved("#hook")
    {
        *hook = Some((one.id.clone(), client.absolute(&url)));
    }
    // Read as a plan reads it: an odd ID, type or link is a verdict, never followed.
    let current: Vec<LiveIntegration> = match crate::live::project_state(client, project, &list) {
        ProjectLive::Known { managed, .. } => managed,
        ProjectLive::Unknown { error } | ProjectLive::Unreadable { reason: error } => {
            return Ok(Verdict::Unchecked { error });
        }
    };
    match current.as_slice() {
        [] => Ok(Verdict::Valid {
            note: format!(
                "the project exists and allows `{}`; no integration yet to validate",
                wanted.kind
            ),
        }),
        [one] => match client
            .validate_integration(one.links.validate.as_deref())
            .await?
        {
            Validation::Valid => Ok(Verdict::Valid {
                note: format!(
                    "the API validated the existing `{}` integration {}",
                    one.kind, one.id
                ),
            }),
            Validation::Invalid(problems) => Ok(Verdict::Invalid {
                problems: problems
                    .into_iter()
                    .map(|p| format!("the API rejects integration {}: {p}", one.id))
                    .collect(),
            }),
            // No `#validate` link: the API offers no validation of this integration (the CLI's
            // `integration:validate` needs the `#validate` operation, platformsh-api.md §1.4).
            Validation::Unsupported => Ok(Verdict::CannotValidate {
                reason: format!(
                    "integration {} cannot be validated: it has no `#validate` link",
                    one.id
                ),
            }),
        },
        several => Ok(Verdict::Invalid {
            problems: vec![format!(
                "the project has {} Bitbucket integrations; bbsync manages at most one",
                several.len()
            )],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capabilities_decide_the_type() {
        let all =
            json!({"integrations": {"enabled": true, "config": {"bitbucket": {"enabled": true}}}});
        assert!(type_allowed(&all, IntegrationType::Bitbucket).is_ok());
        assert!(
            type_allowed(&all, IntegrationType::BitbucketServer)
                .unwrap_err()
                .contains("do not list `bitbucket_server`"),
            "an unlisted type is not allowed"
        );
        let off = json!({"integrations": {"enabled": true, "config": {"bitbucket_server": {"enabled": false}}}});
        assert!(type_allowed(&off, IntegrationType::BitbucketServer).is_err());
        let none = json!({"integrations": {"enabled": false}});
        assert!(
            type_allowed(&none, IntegrationType::Bitbucket)
                .unwrap_err()
                .contains("disabled")
        );
        assert!(type_allowed(&json!({}), IntegrationType::Bitbucket).is_err());
    }
}
