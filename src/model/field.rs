//! The managed fields of a Bitbucket-family integration: names, API paths, which type has them,
//! and what an omitted option means. Planning, rendering and request bodies all read this table.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The two integration types bbsync manages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationType {
    /// Bitbucket Cloud (`bitbucket`).
    Bitbucket,
    /// Bitbucket Server / Data Center (`bitbucket_server`).
    BitbucketServer,
}

impl IntegrationType {
    /// The API's name for the type.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            IntegrationType::Bitbucket => "bitbucket",
            IntegrationType::BitbucketServer => "bitbucket_server",
        }
    }

    /// The type named `name` by the API, if it is one bbsync manages.
    pub(crate) fn from_api(name: &str) -> Option<Self> {
        match name {
            "bitbucket" => Some(IntegrationType::Bitbucket),
            "bitbucket_server" => Some(IntegrationType::BitbucketServer),
            _ => None,
        }
    }

    /// Whether the API type `name` is of the Bitbucket family (`bitbucket`, `bitbucket_server`,
    /// and any future or differently spelled `Bitbucket...`): such an integration is never
    /// taken for one of another kind (inferred: the API documents no other Bitbucket types).
    pub(crate) fn is_bitbucket_family(name: &str) -> bool {
        name.get(..9)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("bitbucket"))
    }

    /// The fields that identify one integration of this type: what a create made, found again
    /// by listing (a repository for Cloud; the server, project and repository for Server).
    pub(crate) fn identity(self) -> &'static [Field] {
        match self {
            IntegrationType::Bitbucket => &[Field::Repository],
            IntegrationType::BitbucketServer => &[Field::Url, Field::Project, Field::Repository],
        }
    }

    /// The write-only secret this type's credentials carry.
    pub fn secret_field(self, addon: bool) -> SecretField {
        match (self, addon) {
            (IntegrationType::BitbucketServer, _) => SecretField::Token,
            (IntegrationType::Bitbucket, false) => SecretField::AppSecret,
            (IntegrationType::Bitbucket, true) => SecretField::AddonSharedSecret,
        }
    }
}

impl fmt::Display for IntegrationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A managed, readable field of an integration. Declaration order is display order. It
/// serialises as its manifest name (`app_credentials.key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Field {
    /// `url` (server).
    Url,
    /// `username` (server).
    Username,
    /// `project` (server).
    Project,
    /// `repository`.
    Repository,
    /// `app_credentials.key` (cloud).
    AppKey,
    /// `addon_credentials.addon_key` (cloud).
    AddonKey,
    /// `addon_credentials.client_key` (cloud).
    ClientKey,
    /// `fetch_branches`.
    FetchBranches,
    /// `prune_branches`.
    PruneBranches,
    /// `build_pull_requests`.
    BuildPullRequests,
    /// `build_pull_requests_post_merge` (cloud).
    BuildPullRequestsPostMerge,
    /// `pull_requests_clone_parent_data`.
    PullRequestsCloneParentData,
    /// `resync_pull_requests` (cloud).
    ResyncPullRequests,
    /// `environment_init_resources`.
    EnvironmentInitResources,
    /// `pull_requests_max_pages` (cloud).
    PullRequestsMaxPages,
}

/// What an omitted option means.
#[derive(Debug, Clone, PartialEq)]
pub enum Omitted {
    /// The field is required; it cannot be omitted.
    Required,
    /// Omitted means this value.
    Default(FieldValue),
    /// Omitted means never compared and never sent.
    NotManaged,
}

impl Field {
    /// Every field, in display order.
    pub const ALL: [Field; 15] = [
        Field::Url,
        Field::Username,
        Field::Project,
        Field::Repository,
        Field::AppKey,
        Field::AddonKey,
        Field::ClientKey,
        Field::FetchBranches,
        Field::PruneBranches,
        Field::BuildPullRequests,
        Field::BuildPullRequestsPostMerge,
        Field::PullRequestsCloneParentData,
        Field::ResyncPullRequests,
        Field::EnvironmentInitResources,
        Field::PullRequestsMaxPages,
    ];

    /// The field's name in the manifest and plan (`app_credentials.key`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Url => "url",
            Field::Username => "username",
            Field::Project => "project",
            Field::Repository => "repository",
            Field::AppKey => "app_credentials.key",
            Field::AddonKey => "addon_credentials.addon_key",
            Field::ClientKey => "addon_credentials.client_key",
            Field::FetchBranches => "fetch_branches",
            Field::PruneBranches => "prune_branches",
            Field::BuildPullRequests => "build_pull_requests",
            Field::BuildPullRequestsPostMerge => "build_pull_requests_post_merge",
            Field::PullRequestsCloneParentData => "pull_requests_clone_parent_data",
            Field::ResyncPullRequests => "resync_pull_requests",
            Field::EnvironmentInitResources => "environment_init_resources",
            Field::PullRequestsMaxPages => "pull_requests_max_pages",
        }
    }

    /// The field named `name`, if any.
    pub(crate) fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Where the field sits in an API object: a top-level key, and a key inside it for
    /// credential objects.
    pub fn api_path(self) -> (&'static str, Option<&'static str>) {
        match self {
            Field::AppKey => ("app_credentials", Some("key")),
            Field::AddonKey => ("addon_credentials", Some("addon_key")),
            Field::ClientKey => ("addon_credentials", Some("client_key")),
            other => (other.name(), None),
        }
    }

    /// A public part of the credentials: when it changes, the secret is sent along.
    pub(crate) fn is_credential(self) -> bool {
        matches!(
            self,
            Field::Url | Field::Username | Field::AppKey | Field::AddonKey | Field::ClientKey
        )
    }

    /// What omitting the field means for `kind`, or `None` when `kind` has no such field.
    pub(crate) fn omitted(self, kind: IntegrationType) -> Option<Omitted> {
        use IntegrationType::{Bitbucket as Cloud, BitbucketServer as Server};
        let yes = || Some(Omitted::Default(FieldValue::Bool(true)));
        match (self, kind) {
            (Field::Url | Field::Username | Field::Project, Server) => Some(Omitted::Required),
            (Field::Repository, _) => Some(Omitted::Required),
            // Cloud credentials are one of two objects; the model checks that one is given.
            (Field::AppKey | Field::AddonKey | Field::ClientKey, Cloud) => {
                Some(Omitted::NotManaged)
            }
            (Field::FetchBranches | Field::PruneBranches | Field::BuildPullRequests, _) => yes(),
            (Field::BuildPullRequestsPostMerge, Cloud) => Some(Omitted::NotManaged),
            (Field::PullRequestsCloneParentData, Cloud) => Some(Omitted::NotManaged),
            (Field::PullRequestsCloneParentData, Server) => yes(),
            (Field::ResyncPullRequests, Cloud) => Some(Omitted::Default(FieldValue::Bool(false))),
            (Field::EnvironmentInitResources, _) => Some(Omitted::NotManaged),
            (Field::PullRequestsMaxPages, Cloud) => Some(Omitted::NotManaged),
            _ => None,
        }
    }

    /// Whether `kind` has this field.
    pub fn applies_to(self, kind: IntegrationType) -> bool {
        self.omitted(kind).is_some()
    }
}

impl From<Field> for &'static str {
    fn from(field: Field) -> Self {
        field.name()
    }
}

/// A field is written as its manifest name: the schema lists [`Field::ALL`]'s names, the same
/// function ([`Field::name`]) that serialises them.
impl JsonSchema for Field {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Field".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        schemars::json_schema!({
            "description": "A managed field, by its manifest name.",
            "type": "string",
            "enum": names,
        })
    }
}

impl TryFrom<String> for Field {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        Field::from_name(&name).ok_or_else(|| format!("unknown field `{name}`"))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A write-only secret field. It serialises as its manifest name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum SecretField {
    /// `app_credentials.secret`.
    #[serde(rename = "app_credentials.secret")]
    AppSecret,
    /// `addon_credentials.shared_secret`.
    #[serde(rename = "addon_credentials.shared_secret")]
    AddonSharedSecret,
    /// `token` (server).
    #[serde(rename = "token")]
    Token,
}

impl SecretField {
    /// The field's name in the manifest.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SecretField::AppSecret => "app_credentials.secret",
            SecretField::AddonSharedSecret => "addon_credentials.shared_secret",
            SecretField::Token => "token",
        }
    }

    /// Where the secret sits in an API object.
    pub(crate) fn api_path(self) -> (&'static str, Option<&'static str>) {
        match self {
            SecretField::AppSecret => ("app_credentials", Some("secret")),
            SecretField::AddonSharedSecret => ("addon_credentials", Some("shared_secret")),
            SecretField::Token => ("token", None),
        }
    }
}

/// A field's value.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(untagged)]
pub enum FieldValue {
    /// A boolean option.
    Bool(bool),
    /// An integer option.
    Integer(u64),
    /// Text.
    Text(String),
}

impl FieldValue {
    /// The value as JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Bool(b) => (*b).into(),
            FieldValue::Integer(i) => (*i).into(),
            FieldValue::Text(s) => s.clone().into(),
        }
    }

    /// A JSON scalar as a field value; `None` for null, objects and lists.
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Bool(b) => Some(FieldValue::Bool(*b)),
            serde_json::Value::Number(n) => n.as_u64().map(FieldValue::Integer),
            serde_json::Value::String(s) => Some(FieldValue::Text(s.clone())),
            _ => None,
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bool(b) => write!(f, "{b}"),
            FieldValue::Integer(i) => write!(f, "{i}"),
            FieldValue::Text(s) => write!(f, "{s:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitbucket_family_in_any_spelling() {
        for name in [
            "bitbucket",
            "bitbucket_server",
            "Bitbucket",
            "bitbucket_datacenter",
        ] {
            assert!(IntegrationType::is_bitbucket_family(name), "{name}");
        }
        for name in ["github", "gitlab", "", "bit", "webhook"] {
            assert!(!IntegrationType::is_bitbucket_family(name), "{name}");
        }
    }

    #[test]
    fn names_round_trip() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
    }

    #[test]
    fn the_option_table_matches_the_design() {
        use IntegrationType::*;
        let t = |b| Some(Omitted::Default(FieldValue::Bool(b)));
        assert_eq!(Field::FetchBranches.omitted(Bitbucket), t(true));
        assert_eq!(Field::PruneBranches.omitted(BitbucketServer), t(true));
        assert_eq!(Field::BuildPullRequests.omitted(Bitbucket), t(true));
        assert_eq!(
            Field::BuildPullRequestsPostMerge.omitted(Bitbucket),
            Some(Omitted::NotManaged)
        );
        assert_eq!(
            Field::BuildPullRequestsPostMerge.omitted(BitbucketServer),
            None
        );
        assert_eq!(
            Field::PullRequestsCloneParentData.omitted(Bitbucket),
            Some(Omitted::NotManaged)
        );
        assert_eq!(
            Field::PullRequestsCloneParentData.omitted(BitbucketServer),
            t(true)
        );
        assert_eq!(Field::ResyncPullRequests.omitted(Bitbucket), t(false));
        assert_eq!(Field::ResyncPullRequests.omitted(BitbucketServer), None);
        assert_eq!(
            Field::EnvironmentInitResources.omitted(BitbucketServer),
            Some(Omitted::NotManaged)
        );
        assert_eq!(
            Field::PullRequestsMaxPages.omitted(Bitbucket),
            Some(Omitted::NotManaged)
        );
        assert_eq!(Field::PullRequestsMaxPages.omitted(BitbucketServer), None);
    }
}
