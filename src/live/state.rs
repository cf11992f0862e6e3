//! A snapshot of the live integrations of the projects a plan covers.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::api::ApiIntegration;
use super::client::Client;
use crate::ids::{IntegrationId, OrganizationId, ProjectId};
use crate::model::{Field, FieldValue, IntegrationType};

/// A live Bitbucket-family integration, reduced to what bbsync compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveIntegration {
    /// Server-assigned ID.
    pub id: IntegrationId,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: IntegrationType,
    /// Every readable field of the type that the API returned.
    pub fields: BTreeMap<Field, FieldValue>,
    /// Its HAL links.
    pub links: LiveLinks,
}

/// The links bbsync follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveLinks {
    /// `self`: GET and DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_href: Option<String>,
    /// `#edit`: PATCH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<String>,
    /// `#validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<String>,
    /// `#hook`: the webhook URL to add in Bitbucket by hand if registration failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
}

impl LiveIntegration {
    /// The Bitbucket-family integration in `api`, or `None` for other types.
    pub fn from_api(api: &ApiIntegration) -> Option<Self> {
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
        Some(Self {
            id: IntegrationId::new(api.id.clone()),
            kind,
            fields,
            links: LiveLinks {
                self_href: api.links.href("self").map(str::to_owned),
                edit: api.links.href("#edit").map(str::to_owned),
                validate: api.links.href("#validate").map(str::to_owned),
                hook: api.links.href("#hook").map(str::to_owned),
            },
        })
    }

    /// A digest of the normalised object (ID, type, fields): it changes whenever anything bbsync
    /// could compare changes, and a saved plan is stale when it does.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.id.as_str());
        hasher.update([0]);
        hasher.update(self.kind.as_str());
        for (field, value) in &self.fields {
            hasher.update([0]);
            hasher.update(field.name());
            // A type tag, then the value's bytes: no allocation per field.
            match value {
                FieldValue::Bool(b) => hasher.update([1, u8::from(*b)]),
                FieldValue::Integer(i) => {
                    hasher.update([2]);
                    hasher.update(i.to_be_bytes());
                }
                FieldValue::Text(t) => {
                    hasher.update([3]);
                    hasher.update(t.as_bytes());
                }
            }
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = hasher.finalize();
        let mut text = String::with_capacity(7 + 64);
        text.push_str("sha256:");
        for byte in digest {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        text
    }
}

/// Another type of integration: listed, never touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherIntegration {
    /// Its ID.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// What is known of one project.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectLive {
    /// Its integrations were read.
    Known {
        /// Its Bitbucket-family integrations (normally zero or one).
        managed: Vec<LiveIntegration>,
        /// Its other integrations.
        others: Vec<OtherIntegration>,
    },
    /// Reading failed; nothing may be planned for it.
    Unknown {
        /// Why.
        error: String,
    },
}

impl ProjectLive {
    /// The state of a project from its listed integrations.
    pub fn from_list(list: &[ApiIntegration]) -> Self {
        let mut managed = Vec::new();
        let mut others = Vec::new();
        for api in list {
            match LiveIntegration::from_api(api) {
                Some(live) => managed.push(live),
                None => others.push(OtherIntegration {
                    id: api.id.clone(),
                    kind: api.kind.clone(),
                }),
            }
        }
        ProjectLive::Known { managed, others }
    }
}

/// What is known of an organization's projects.
#[derive(Debug, Clone, PartialEq)]
pub enum OrganizationLive {
    /// The complete list.
    Listed(BTreeSet<ProjectId>),
    /// The listing failed (perhaps part-way): nothing may be pruned.
    Failed(String),
}

/// The live state a plan is made against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveState {
    /// Each project read (or not).
    pub projects: BTreeMap<ProjectId, ProjectLive>,
    /// The organization's projects, when pruning.
    pub organization: Option<OrganizationLive>,
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
            Ok(list) => ProjectLive::from_list(&list),
            Err(error) => ProjectLive::Unknown {
                error: error.to_string(),
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
