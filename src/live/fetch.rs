//! Reading the live state: the organization listing and each project's integrations, converted
//! from the wire types into the [`model`](crate::model) snapshot.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;

use super::client::Client;
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
            edit: api.links.href("#edit").map(str::to_owned),
            validate: api.links.href("#validate").map(str::to_owned),
        },
    })
}

/// The state of a project from its listed integrations.
pub fn project_live(list: &[ApiIntegration]) -> ProjectLive {
    let mut managed = Vec::new();
    let mut others = Vec::new();
    for api in list {
        match live_integration(api) {
            Some(live) => managed.push(live),
            None => others.push(OtherIntegration {
                id: api.id.clone(),
                kind: api.kind.clone(),
            }),
        }
    }
    ProjectLive::Known { managed, others }
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
    let organization = match organization {
        Some(org) => Some(match client.organization_projects(org).await {
            Ok(listed) => {
                let ids: BTreeSet<ProjectId> =
                    listed.into_iter().map(|p| ProjectId::new(p.id)).collect();
                wanted.extend(
                    ids.iter()
                        .filter(|id| only.is_none_or(|o| o.contains(*id)))
                        .cloned(),
                );
                OrganizationLive::Listed(ids)
            }
            Err(error) => OrganizationLive::Failed(error.to_string()),
        }),
        None => None,
    };
    let total = wanted.len();
    let concurrency = client.config().concurrency.max(1);
    let mut done = 0;
    let mut states = BTreeMap::new();
    let mut reads = futures_util::stream::iter(wanted.into_iter().map(|id| async move {
        let state = match client.list_integrations(&id).await {
            Ok(list) => project_live(&list),
            Err(error) => ProjectLive::Unknown {
                error: super::chain(&error),
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
    LiveState {
        projects: states,
        organization,
    }
}
