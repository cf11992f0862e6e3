//! The live-state snapshot a plan is made against: what was read of each project, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ids::{IntegrationId, ProjectId};
use super::{Field, FieldValue, IntegrationType};

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
}

impl LiveIntegration {
    /// A digest of the normalised object (ID, type, fields): it changes whenever anything bbsync
    /// could compare changes, and a saved plan is stale when it does.
    pub(crate) fn fingerprint(&self) -> String {
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
