//! The manifest as written: serde structs that mirror `integrations.yaml` exactly.
//!
//! These types are the single source of truth for the manifest's shape: the JSON Schema
//! (`bbsync schema`, `schema/bbsync.schema.json`) is derived from them, and the loader checks
//! every document against that schema before deserialising.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A bbsync manifest (format version 1): which Bitbucket repository each Platform.sh project
/// mirrors, and with which options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "bbsync manifest")]
pub struct Manifest {
    /// Manifest format version. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Platform.sh organization: its ID (a ULID) or its name, looked up online. Needed only for
    /// `prune: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Delete Bitbucket integrations on projects of `organization` that this manifest does not
    /// list. Requires `organization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Values every integration gets unless it sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Options>,
    /// Platform.sh projects, by project ID.
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectEntry>,
}

/// What one Platform.sh project must have: exactly one of `bitbucket`, `bitbucket_server` or
/// `absent: true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectEntry {
    /// A Bitbucket Cloud integration (API type `bitbucket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitbucket: Option<Bitbucket>,
    /// A Bitbucket Server / Data Center integration (API type `bitbucket_server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitbucket_server: Option<BitbucketServer>,
    /// `true`: this project must have no Bitbucket integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<bool>,
    /// `true`: bbsync never deletes or replaces this project's integration; such an action is
    /// skipped and reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<bool>,
}

/// Options shared by both integration types, as allowed in `defaults:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Mirror branches as inactive environments. Omitted: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_branches: Option<bool>,
    /// Delete environments whose branch was deleted. Omitted: `true`; forced `false` when
    /// `fetch_branches` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_branches: Option<bool>,
    /// Create environments for pull requests. Omitted: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_pull_requests: Option<bool>,
    /// Bitbucket Cloud only: build the merge result of pull requests. Omitted: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_pull_requests_post_merge: Option<bool>,
    /// Clone the parent environment's data for pull request environments. Omitted: not managed
    /// for `bitbucket`, `true` for `bitbucket_server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_requests_clone_parent_data: Option<bool>,
    /// Bitbucket Cloud only: re-sync pull request environment data on every build. Omitted:
    /// `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_pull_requests: Option<bool>,
    /// Resources used to initialise new services. Omitted: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_init_resources: Option<InitResources>,
    /// Bitbucket Cloud only (Upsun API): maximum number of pull request pages walked during a
    /// full sync. Omitted: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pull_requests_max_pages: Option<u32>,
}

/// How new environments get their resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InitResources {
    /// The project's default resources.
    Default,
    /// Resources are set by hand.
    Manual,
    /// The minimum resources.
    Minimum,
    /// The parent environment's resources.
    Parent,
}

impl InitResources {
    /// The API's spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InitResources::Default => "default",
            InitResources::Manual => "manual",
            InitResources::Minimum => "minimum",
            InitResources::Parent => "parent",
        }
    }
}

/// A Bitbucket Cloud integration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bitbucket {
    /// `owner/repo`; a `https://bitbucket.org/owner/repo` URL is accepted and normalised.
    pub repository: String,
    /// OAuth consumer credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_credentials: Option<AppCredentials>,
    /// Bitbucket Connect add-on credentials (as set up by the Console).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon_credentials: Option<AddonCredentials>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_branches: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_branches: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_pull_requests: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_pull_requests_post_merge: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_requests_clone_parent_data: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_pull_requests: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_init_resources: Option<InitResources>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pull_requests_max_pages: Option<u32>,
}

/// Bitbucket OAuth consumer credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppCredentials {
    /// The consumer key (public; may be a `${NAME}` reference).
    pub key: String,
    /// The consumer secret: must be a `${NAME}` reference. Write-only in the API.
    pub secret: String,
}

/// Bitbucket Connect add-on credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddonCredentials {
    /// The add-on key.
    pub addon_key: String,
    /// The client key.
    pub client_key: String,
    /// The shared secret: must be a `${NAME}` reference. Write-only in the API.
    pub shared_secret: String,
}

/// A Bitbucket Server / Data Center integration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BitbucketServer {
    /// Base URL of the Bitbucket Server installation; `https://` (`http://` only for a loopback
    /// host).
    pub url: String,
    /// The user bbsync's token belongs to.
    pub username: String,
    /// The access token: must be a `${NAME}` reference. Write-only in the API.
    pub token: String,
    /// The Bitbucket Server project key.
    pub project: String,
    /// The repository slug.
    pub repository: String,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_branches: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_branches: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_pull_requests: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_requests_clone_parent_data: Option<bool>,
    /// See `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_init_resources: Option<InitResources>,
}
