//! The Platform.sh API's JSON shapes, shared by the client (`live`) and the fake (`sandbox`).
//! Read leniently: unknown fields are ignored, optional ones may be missing.

pub mod body;
pub mod time;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// An integration of any type, as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiIntegration {
    /// Server-assigned ID.
    pub id: String,
    /// The integration type (`bitbucket`, `github`, `webhook`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// HAL links.
    #[serde(default, rename = "_links")]
    pub links: Links,
    /// Every other field.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

/// HAL links: rel -> `{href}`. Links the caller may not use are absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Links(BTreeMap<String, Value>);

impl Links {
    /// The `href` of link `rel`.
    pub fn href(&self, rel: &str) -> Option<&str> {
        self.0.get(rel)?.get("href")?.as_str()
    }
}

/// An activity started by a write.
#[derive(Debug, Clone, Deserialize)]
pub struct Activity {
    /// Its ID (absent in the oldest spec; present in practice).
    #[serde(default)]
    pub id: Option<String>,
    /// `integration.bitbucket.fetch`, ...
    #[serde(default, rename = "type")]
    pub kind: String,
    /// `pending`, `in_progress`, `complete`, `cancelled`, ...
    #[serde(default)]
    pub state: String,
    /// `success`, `failure` or null.
    #[serde(default)]
    pub result: Option<String>,
    /// The activity log (deprecated by the API, still useful for an excerpt).
    #[serde(default)]
    pub log: Option<String>,
    /// HAL links.
    #[serde(default, rename = "_links")]
    pub links: Links,
}

impl Activity {
    /// Whether the activity will change no more.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "complete" | "cancelled")
    }
}

/// The body of a write: `{status, code, _embedded: {entity, activities}}`, all optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Accepted {
    /// `created`, `updated`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// What was written, and what it started.
    #[serde(default, rename = "_embedded")]
    pub embedded: Embedded,
}

/// `_embedded` of a write.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Embedded {
    /// The object as a GET would now return it.
    #[serde(default)]
    pub entity: Option<ApiIntegration>,
    /// The activities the write started.
    #[serde(default)]
    pub activities: Vec<Activity>,
}

/// A page of an organization's projects.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectPage {
    /// The projects.
    #[serde(default)]
    pub items: Vec<OrganizationProject>,
    /// `next` when there are more.
    #[serde(default, rename = "_links")]
    pub links: Links,
}

/// A project as an organization lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct OrganizationProject {
    /// Project ID.
    pub id: String,
    /// Human title.
    #[serde(default)]
    pub title: Option<String>,
}

/// An access token from the auth server.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
}
