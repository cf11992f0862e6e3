//! The live-state snapshot a plan is made against: what was read of each project, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ids::{IntegrationId, ProjectId};
use super::{Field, FieldValue, IntegrationType};

/// A live Bitbucket-family integration, reduced to what bbsync compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
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
    /// A digest of the normalised object (ID, type, fields, links): it changes whenever anything
    /// bbsync could compare, or anything that decides where a write goes, changes, and a saved
    /// plan is stale when it does.
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
        // Each link present: a 0xFF byte (never in UTF-8 text, so never confused with a field),
        // the link's tag, its length and its bytes. An object without links digests as it did
        // before links were covered.
        for (tag, link) in [
            (1u8, &self.links.self_href),
            (2, &self.links.edit),
            (3, &self.links.validate),
        ] {
            if let Some(href) = link {
                hasher.update([0xff, tag]);
                hasher.update((href.len() as u64).to_be_bytes());
                hasher.update(href.as_bytes());
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
    /// An organization's project that the token may not read (the API answered 403 or 404 for
    /// its integrations). Nothing is planned for it; pruning and export name it in a warning,
    /// which does not fail the run by itself. A project the manifest names is an error instead.
    Unreadable {
        /// What the API answered.
        reason: String,
    },
}

/// A project's environment, as the environment preview needs it (spec `Environment`:
/// `name`, `is_pr`, `is_main`, `deployment_target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEnvironment {
    /// Its name (the branch it follows).
    pub name: String,
    /// A pull-request environment.
    pub is_pr: bool,
    /// The main environment.
    pub is_main: bool,
    /// Its deployment target (`local` for the usual ones).
    pub deployment_target: Option<String>,
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
    /// Project titles, where the organization listing gave them (for reviewers).
    pub titles: BTreeMap<ProjectId, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration() -> LiveIntegration {
        LiveIntegration {
            id: IntegrationId::new("i1"),
            kind: IntegrationType::Bitbucket,
            fields: [(Field::Repository, FieldValue::Text("acme/web".into()))]
                .into_iter()
                .collect(),
            links: LiveLinks::default(),
        }
    }

    #[test]
    fn the_fingerprint_covers_where_writes_go() {
        let plain = integration();
        let mut linked = plain.clone();
        linked.links.self_href =
            Some("https://eu-3.platform.sh/api/projects/p1/integrations/i1".into());
        linked.links.edit = linked.links.self_href.clone();
        assert_ne!(plain.fingerprint(), linked.fingerprint());
        let mut elsewhere = linked.clone();
        elsewhere.links.self_href =
            Some("https://eu-3.platform.sh/api/projects/p2/integrations/gh1".into());
        assert_ne!(linked.fingerprint(), elsewhere.fingerprint());
        // The same href as another link is another object.
        let mut swapped = linked.clone();
        swapped.links.edit = None;
        swapped.links.validate = linked.links.edit.clone();
        assert_ne!(linked.fingerprint(), swapped.fingerprint());
        let mut other_id = plain.clone();
        other_id.id = IntegrationId::new("i2");
        assert_ne!(plain.fingerprint(), other_id.fingerprint());
        // Without links, the digest is the one plans made before links were covered.
        assert_eq!(
            plain.fingerprint(),
            "sha256:22c2b690a57823ba5b546e2be33dcb0f2629f3abe5cbc786f773c06a489b6ab9"
        );
    }
}
