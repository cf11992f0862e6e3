//! The Platform.sh API's JSON shapes, shared by the client (`live`) and the fake (`sandbox`).
//! Read leniently: unknown fields are ignored, optional ones may be missing. Written (by the
//! sandbox) as the API writes them: what a type leaves out when serialising is said per field.
//!
//! Sources: the OpenAPI spec (`openapispec-platformsh.json`, schema names given as
//! `spec Name`), the reference notes (`platformsh-api.md §n`), or "inferred".

pub(crate) mod bitbucket;
pub mod body;
pub(crate) mod defaults;
pub(crate) mod error;
pub(crate) mod time;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

pub(crate) use error::ErrorBody;

/// An integration of any type, as the API returns it: spec `Integration` (a `oneOf` of the
/// per-type read schemas, without `id` and `_links`, which real objects carry:
/// platformsh-api.md §1.4, §2.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiIntegration {
    /// Server-assigned ID.
    pub id: String,
    /// The integration type (`bitbucket`, `github`, `webhook`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Every other field (written between `type` and `_links`, in their own order).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
    /// HAL links (not written when there are none).
    #[serde(default, rename = "_links", skip_serializing_if = "Links::is_empty")]
    pub links: Links,
}

/// HAL links: rel -> `{href}`, in the order they were given. Links the caller may not use are
/// absent (spec `HalLinks`, platformsh-api.md §1.4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Links(Map<String, Value>);

impl Links {
    /// No links.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// These links and `rel` -> `{"href": href}` (spec `Link`).
    pub(crate) fn with(mut self, rel: &str, href: impl Into<String>) -> Self {
        let mut link = Map::new();
        link.insert("href".to_owned(), Value::String(href.into()));
        self.0.insert(rel.to_owned(), Value::Object(link));
        self
    }

    /// The `href` of link `rel`.
    pub fn href(&self, rel: &str) -> Option<&str> {
        self.0.get(rel)?.get("href")?.as_str()
    }

    /// The `href` of link `rel`, made absolute against this object's `self` link when it is a
    /// path (`/api/projects/...`), as the PHP client makes links absolute against the URL the
    /// object came from (platformsh-client-php `ApiResourceBase::getLink`, `makeAbsoluteUrl`:
    /// the base's origin with the link as its path). The real API gives `self` absolute and
    /// `#hook` as a path (platformsh-api.md §1.4, the spec's examples). As given when it
    /// already has an origin, or when `self` has none either.
    pub fn resolved(&self, rel: &str) -> Option<String> {
        let href = self.href(rel)?;
        if href.contains("//") {
            return Some(href.to_owned());
        }
        let base = self.href("self").and_then(|s| url::Url::parse(s).ok());
        Some(match base.and_then(|base| base.join(href).ok()) {
            Some(url) => url.to_string(),
            None => href.to_owned(),
        })
    }

    /// Link `rel` as given (`{"href": ...}` when well formed), whatever its shape.
    pub(crate) fn get(&self, rel: &str) -> Option<&Value> {
        self.0.get(rel)
    }

    /// Whether there are no links.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An activity started by a write: spec `Activity` (its `id` is in the Upsun spec and in
/// practice: platformsh-api.md §1.3; `_links` as on every HAL object, §1.4). The fields bbsync
/// reads are named; every other one is kept as given, in [`Activity::other`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    /// Its ID (absent in the oldest spec; present in practice). Not written when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `integration.bitbucket.fetch`, ... (platformsh-api.md §1.3).
    #[serde(default, rename = "type")]
    pub kind: String,
    /// One of [`STATES`] (spec `Activity.state`).
    #[serde(default)]
    pub state: String,
    /// `success`, `failure` or null (spec `Activity.result`, nullable: written as null).
    #[serde(default)]
    pub result: Option<String>,
    /// The project's ID.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub project: Option<String>,
    /// The integration's ID (spec `Activity.integration`; not in its `required` list, so not
    /// written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub integration: Option<String>,
    /// When it was created (RFC 3339; spec: nullable, required).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<String>,
    /// Progress, 0 to 100.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub completion_percent: Option<u32>,
    /// "The description of the activity, formatted as plain text" (spec `Activity.text`,
    /// nullable). What a failure is reported with first (legacy-cli
    /// `src/Service/ActivityMonitor.php` `printResult` prints the description).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub text: Option<String>,
    /// The activity log (spec `Activity.log`: a string, deprecated; client-php 1.x reads the
    /// log from `_links.log` instead). Only its tail is reported, after `text`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub log: Option<String>,
    /// Every other field, as given (the sandbox writes the rest of the spec's `required`
    /// list here: `updated_at`, `started_at`, `payload`, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
    /// HAL links (`self`). Not written when there are none.
    #[serde(default, rename = "_links", skip_serializing_if = "Links::is_empty")]
    pub links: Links,
}

/// Every state of spec `Activity.state`.
pub const STATES: [&str; 6] = [
    "cancelled",
    "complete",
    "in_progress",
    "pending",
    "scheduled",
    "staged",
];

impl Activity {
    /// Whether the activity will change no more: `complete` or `cancelled`, the two states the
    /// CLI stops waiting at (legacy-cli `src/Service/ActivityMonitor.php` `waitMultiple`:
    /// `isComplete() || state === STATE_CANCELLED`; platformsh-api.md §1.9). Every other state
    /// (`pending`, `in_progress`, `scheduled`, `staged`, or one the spec does not list) is not
    /// finished.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "complete" | "cancelled")
    }

    /// Whether it succeeded: finished with `result: success`. The CLI counts anything else as
    /// a failure: `failure`, a cancel, or no result at all (`ActivityMonitor::waitMultiple`:
    /// `$success = $activity->result === Activity::RESULT_SUCCESS && $success`).
    pub fn succeeded(&self) -> bool {
        self.is_finished() && self.result.as_deref() == Some("success")
    }
}

/// The body of a write: spec `AcceptedResponse` (`{status, code}`) plus the `_embedded` that
/// the API adds in practice (platformsh-api.md §1.3). All optional when read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Accepted {
    /// `created`, `updated`, `deleted`, ... (not written when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The HTTP status, repeated (not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<u16>,
    /// What was written, and what it started.
    #[serde(default, rename = "_embedded")]
    pub embedded: Embedded,
}

/// `_embedded` of a write (platformsh-api.md §1.3: a DELETE has activities and no entity).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Embedded {
    /// The object as a GET would now return it (not written when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<ApiIntegration>,
    /// The activities the write started (always written, empty or not).
    #[serde(default)]
    pub activities: Vec<Activity>,
}

/// A bare spec `AcceptedResponse`, `{status, code}` and nothing else: what a `#validate` that
/// finds nothing wrong answers (inferred: the spec has no validate endpoint, §1.5 says only
/// that a 2xx means valid).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Status {
    /// `ok`, ...
    pub status: String,
    /// The HTTP status, repeated.
    pub code: u16,
}

/// A project as `GET /projects/{id}` returns it: spec `Project`, of which only these fields
/// are used (`id` and `organization_id` are not in the spec; inferred from the organization
/// listing's `OrganizationProject`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    /// Project ID.
    pub id: String,
    /// Human title (not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<String>,
    /// Its organization (written as null when it has none).
    #[serde(default, deserialize_with = "lenient")]
    pub organization_id: Option<String>,
    /// Its region's host (`eu-3.platform.sh`; not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub region: Option<String>,
    /// HAL links (`self`).
    #[serde(default, rename = "_links", skip_serializing_if = "Links::is_empty")]
    pub links: Links,
}

/// What a project may do: spec `ProjectCapabilities`, of which only `integrations` is used
/// (platformsh-api.md §2.4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Capabilities {
    /// Integrations: on at all, and per type (not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub integrations: Option<IntegrationCapabilities>,
}

/// `integrations` of spec `ProjectCapabilities`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct IntegrationCapabilities {
    /// Whether integrations can be used at all.
    #[serde(default)]
    pub enabled: bool,
    /// Per integration type (`bitbucket`, `bitbucket_server`, ...).
    #[serde(default)]
    pub config: BTreeMap<String, TypeCapability>,
}

/// One type in `integrations.config` of spec `ProjectCapabilities`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TypeCapability {
    /// Whether the type is enabled.
    #[serde(default)]
    pub enabled: bool,
    /// The minimum role for creating one (not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub role: Option<String>,
}

/// One of a project's environments: spec `Environment`, the fields the environment preview
/// reads (`GET /projects/{projectId}/environments`, `list-projects-environments`, answers an
/// `EnvironmentCollection`: a plain array). The spec requires all of them; a missing flag is
/// read as false, a missing target as none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiEnvironment {
    /// Its name (the branch it follows).
    pub name: String,
    /// A pull-request environment.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_pr: bool,
    /// The main environment.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_main: bool,
    /// Its deployment target (nullable in the spec).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub deployment_target: Option<String>,
    /// `active`, `inactive`, ... (spec enum; not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
}

fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(lenient::<D, bool>(deserializer)?.unwrap_or(false))
}

/// A page of an organization's projects: `list-org-projects`' 200 answer, `{items, _links}`
/// with `_links.next` while there are more (spec path `/organizations/{organization_id}/projects`,
/// platformsh-api.md §8).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProjectPage {
    /// The projects.
    #[serde(default)]
    pub items: Vec<OrganizationProject>,
    /// `self`, and `next` when there are more (spec `ListLinks`).
    #[serde(default, rename = "_links")]
    pub links: Links,
}

/// A project as an organization lists it: spec `OrganizationProject`, the fields bbsync uses
/// or the sandbox sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrganizationProject {
    /// Project ID.
    pub id: String,
    /// Its organization (not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub organization_id: Option<String>,
    /// Human title (not written when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `active`, ... (spec `ProjectStatus`; not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
}

/// An access token from the auth server: `{access_token, expires_in, token_type}`
/// (platformsh-api.md §3.1, from the spec's introduction).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Lifetime in seconds (not written when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// `bearer` (not written when absent).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub token_type: Option<String>,
}

/// Reads an optional field that must never make the whole object unreadable: a value of the
/// wrong type counts as absent. For fields bbsync does not rely on, so that reading stays as
/// lenient as when they were ignored.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_links_resolve_against_self() {
        let links = Links::new()
            .with(
                "self",
                "https://eu-3.platform.sh/api/projects/p/integrations/i",
            )
            .with("#hook", "/api/projects/p/integrations/i/hook")
            .with(
                "#edit",
                "https://other.example/api/projects/p/integrations/i",
            );
        assert_eq!(
            links.resolved("#hook").as_deref(),
            Some("https://eu-3.platform.sh/api/projects/p/integrations/i/hook")
        );
        assert_eq!(
            links.resolved("#edit").as_deref(),
            Some("https://other.example/api/projects/p/integrations/i"),
            "an absolute link stays"
        );
        assert_eq!(links.resolved("#validate"), None);
        let relative = Links::new()
            .with("self", "/api/projects/p/integrations/i")
            .with("#hook", "/api/projects/p/integrations/i/hook");
        assert_eq!(
            relative.resolved("#hook").as_deref(),
            Some("/api/projects/p/integrations/i/hook"),
            "no origin to take"
        );
    }

    #[test]
    fn integrations_round_trip_in_order() {
        let text = r##"{"id":"i1","type":"bitbucket","created_at":"t","repository":"a/b","_links":{"self":{"href":"s"},"#edit":{"href":"e"}}}"##;
        let read: ApiIntegration = serde_json::from_str(text).unwrap();
        assert_eq!(read.links.href("#edit"), Some("e"));
        assert_eq!(serde_json::to_string(&read).unwrap(), text);
        let built = Links::new().with("self", "s").with("#edit", "e");
        assert_eq!(
            serde_json::to_value(&built).unwrap(),
            json!({"self": {"href": "s"}, "#edit": {"href": "e"}})
        );
    }

    #[test]
    fn fields_read_only_for_the_sandbox_never_break_reading() {
        let activity: Activity = serde_json::from_value(json!({
            "id": "a1", "type": "integration.bitbucket.fetch", "state": "complete",
            "result": "success", "project": 7, "completion_percent": "half", "created_at": null,
        }))
        .unwrap();
        assert!(activity.is_finished());
        assert_eq!(
            (activity.project, activity.completion_percent),
            (None, None)
        );
        let accepted: Accepted =
            serde_json::from_value(json!({"status": "created", "code": "201"})).unwrap();
        assert_eq!(accepted.status.as_deref(), Some("created"));
        let page: ProjectPage = serde_json::from_value(
            json!({"items": [{"id": "p1", "status": {"odd": true}}], "_links": {}}),
        )
        .unwrap();
        assert_eq!(page.items[0].id, "p1");
    }
}
