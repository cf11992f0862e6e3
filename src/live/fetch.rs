//! Reading the live state: the organization listing and each project's integrations, converted
//! from the wire types into the [`model`](crate::model) snapshot.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;

use super::client::Client;
use super::error::{ApiError, clean_text, shown};
use crate::model::ids::{IntegrationId, OrganizationId, ProjectId};
use crate::model::live::{
    LiveIntegration, LiveLinks, LiveState, OrganizationLive, OtherIntegration, ProjectLive,
};
use crate::model::{Field, FieldValue, IntegrationType};
use crate::wire::ApiIntegration;

/// The Bitbucket-family integration in `api`, or `None` for other types.
pub fn live_integration(api: &ApiIntegration) -> Option<LiveIntegration> {
    let kind = IntegrationType::from_api(&api.kind)?;
    let mut fields = BTreeMap::new();
    for field in Field::ALL.into_iter().filter(|f| f.applies_to(kind)) {
        let (key, inner) = field.api_path();
        let value = match inner {
            Some(inner) => api.fields.get(key).and_then(|o| o.get(inner)),
            None => api.fields.get(key),
        };
        if let Some(value) = value.and_then(FieldValue::from_json) {
            fields.insert(field, value);
        }
    }
    Some(LiveIntegration {
        id: IntegrationId::new(api.id.clone()),
        kind,
        fields,
        links: LiveLinks {
            self_href: api.links.href("self").map(str::to_owned),
            edit: api.links.resolved("#edit"),
            validate: api.links.resolved("#validate"),
        },
    })
}

/// The state of a project from its listed integrations. A type that looks like Bitbucket but
/// is not one bbsync knows (`Bitbucket`, a future `bitbucket_datacenter`: any type starting
/// with `bitbucket` in any case) makes the state unknown, naming it: such a project may well
/// have a Bitbucket integration, so it is never taken for one without.
pub fn project_live(list: &[ApiIntegration]) -> ProjectLive {
    let mut managed = Vec::new();
    let mut others = Vec::new();
    for api in list {
        match live_integration(api) {
            // Its ID goes into the path of every write to it: anything but an integration ID
            // (`../`, `/`) could send a write elsewhere.
            Some(live) if !live.id.is_valid() => {
                return ProjectLive::Unknown {
                    error: format!(
                        "its `{}` integration has the ID `{}`, which is not an integration ID (lowercase letters and digits): bbsync does not write to it",
                        live.kind,
                        shown(&clean_text(&api.id))
                    ),
                };
            }
            Some(live) => managed.push(live),
            None if IntegrationType::is_bitbucket_family(&api.kind) => {
                return ProjectLive::Unknown {
                    error: format!(
                        "integration `{}` has the type `{}`, which looks like Bitbucket but is not one bbsync knows (`bitbucket`, `bitbucket_server`): whether the project has a Bitbucket integration cannot be told",
                        clean_text(&api.id),
                        clean_text(&api.kind)
                    ),
                };
            }
            // Only listed (in `export` comments): the API's text, made safe to print.
            None => others.push(OtherIntegration {
                id: clean_text(&api.id),
                kind: clean_text(&api.kind),
            }),
        }
    }
    ProjectLive::Known { managed, others }
}

/// The state of `project` from its listed integrations ([`project_live`]), with every link of
/// its Bitbucket integrations checked: one that leaves the integration's own path (to another
/// integration, another project) makes the state unknown, naming it, so no write is ever
/// planned to it ([`Client::write_target`]).
pub(crate) fn project_state(
    client: &Client,
    project: &ProjectId,
    list: &[ApiIntegration],
) -> ProjectLive {
    let state = project_live(list);
    if let ProjectLive::Known { managed, .. } = &state {
        for live in managed {
            let links = [
                ("DELETE", live.links.self_href.as_deref(), false),
                ("PATCH", live.links.edit.as_deref(), true),
                ("POST", live.links.validate.as_deref(), true),
            ];
            for (method, href, sub_paths) in links {
                if href.is_none() {
                    continue;
                }
                if let Err(error) = client.write_target(method, project, &live.id, href, sub_paths)
                {
                    return ProjectLive::Unknown {
                        error: format!("its `{}` integration `{}`: {error}", live.kind, live.id),
                    };
                }
            }
        }
    }
    state
}

/// Reads the live state of `projects`, and with `organization` (for pruning) the list of its
/// projects and the state of those not in `projects` (limited to `only` when given).
/// `progress(done, total)` is called as projects are read.
pub async fn fetch(
    client: &Client,
    projects: &BTreeSet<ProjectId>,
    organization: Option<&OrganizationId>,
    only: Option<&BTreeSet<ProjectId>>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> LiveState {
    let mut wanted: BTreeSet<ProjectId> = projects.clone();
    let mut titles = BTreeMap::new();
    let organization = match organization {
        Some(org) => Some(match client.organization_projects(org).await {
            Ok(listed) => {
                // `title` of the listing's `OrganizationProject` (spec). Absent titles, and
                // titles that only repeat the ID, tell a reviewer nothing: skipped.
                titles = listed
                    .iter()
                    .filter_map(|p| {
                        let title = p.title.as_deref()?.trim();
                        (!title.is_empty() && title != p.id)
                            .then(|| (ProjectId::new(p.id.clone()), title.to_owned()))
                    })
                    .collect();
                let ids: BTreeSet<ProjectId> =
                    listed.into_iter().map(|p| ProjectId::new(p.id)).collect();
                wanted.extend(
                    ids.iter()
                        .filter(|id| only.is_none_or(|o| o.contains(*id)))
                        .cloned(),
                );
                OrganizationLive::Listed(ids)
            }
            Err(error) => OrganizationLive::Failed(super::explain(&error)),
        }),
        None => None,
    };
    LiveState {
        titles,
        projects: read(client, wanted, projects, progress).await,
        organization,
    }
}

/// Reads the live state of an organization's projects, `listed` by
/// [`Client::organization_projects`]: one the token cannot read is
/// [`ProjectLive::Unreadable`], not an error.
pub(crate) async fn fetch_listed(
    client: &Client,
    listed: BTreeSet<ProjectId>,
) -> BTreeMap<ProjectId, ProjectLive> {
    read(client, listed, &BTreeSet::new(), &|_, _| {}).await
}

/// Reads each of `wanted`; those not `named` (by the manifest) may be
/// [`ProjectLive::Unreadable`].
async fn read(
    client: &Client,
    wanted: BTreeSet<ProjectId>,
    projects: &BTreeSet<ProjectId>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> BTreeMap<ProjectId, ProjectLive> {
    let total = wanted.len();
    let concurrency = client.config().concurrency.max(1);
    let mut done = 0;
    let mut states = BTreeMap::new();
    let mut reads = futures_util::stream::iter(wanted.into_iter().map(|id| async move {
        let state = match client.list_integrations(&id).await {
            Ok(list) => project_state(client, &id, &list),
            // An organization lists every project in it, and a token may read only some: an
            // organization member without access to a project is answered 403 (inferred from
            // the access model: project access is granted per project, platformsh-api.md §8).
            // A 404 is a project deleted since the listing, or hidden the same way.
            Err(ApiError::Status {
                status: status @ (403 | 404),
                message,
                ..
            }) if !projects.contains(&id) => ProjectLive::Unreadable {
                reason: if message.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {message}")
                },
            },
            Err(error) => ProjectLive::Unknown {
                error: super::explain(&error),
            },
        };
        (id, state)
    }))
    .buffer_unordered(concurrency);
    while let Some((id, state)) = reads.next().await {
        states.insert(id, state);
        done += 1;
        progress(done, total);
    }
    states
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn api(value: serde_json::Value) -> ApiIntegration {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_bitbucket_like_type_bbsync_does_not_know_makes_the_state_unknown() {
        let github = api(json!({"id": "g1", "type": "github"}));
        for kind in [
            "Bitbucket",
            "bitbucket_datacenter",
            "BITBUCKET_SERVER",
            "bitbucketcloud",
        ] {
            let odd = api(json!({"id": "b1", "type": kind, "repository": "a/b"}));
            match project_live(&[github.clone(), odd]) {
                ProjectLive::Unknown { error } => {
                    assert!(
                        error.contains(&format!("`b1` has the type `{kind}`")),
                        "{error}"
                    );
                }
                known => panic!("{kind}: {known:?}"),
            }
        }
        assert!(matches!(
            project_live(&[github.clone(), api(json!({"id": "w1", "type": "bit"}))]),
            ProjectLive::Known { managed, others } if managed.is_empty() && others.len() == 2
        ));
    }

    #[test]
    fn an_integration_id_that_is_not_one_makes_the_state_unknown() {
        for id in ["../../../p2/integrations/gh1", "a/b", "A1", "x-y", ""] {
            let odd = api(json!({"id": id, "type": "bitbucket", "repository": "a/b"}));
            match project_live(&[odd]) {
                ProjectLive::Unknown { error } => {
                    assert!(error.contains("is not an integration ID"), "{error}");
                }
                known => panic!("{id}: {known:?}"),
            }
        }
        // Other types are never written to: their IDs are only listed.
        let other = api(json!({"id": "Web-Hook_1", "type": "webhook"}));
        assert!(matches!(project_live(&[other]), ProjectLive::Known { .. }));
    }
}
