//! Bitbucket's JSON shapes that bbsync reads for its pre-flight checks, shared by the
//! Bitbucket client (`live`) and the fake (`sandbox`). Read leniently, as
//! the Platform.sh shapes are: unknown fields are ignored, and a part of the wrong type reads
//! as absent where bbsync does not rely on it.
//!
//! Sources: Bitbucket Cloud REST API (<https://developer.atlassian.com/cloud/bitbucket/rest/>,
//! section named per type), Bitbucket Cloud OAuth
//! (<https://developer.atlassian.com/cloud/bitbucket/oauth-2/>), Bitbucket Data Center REST
//! API (<https://developer.atlassian.com/server/bitbucket/rest/>), or "inferred".

use std::fmt;

use serde::{Deserialize, Serialize};

use super::lenient;

/// A Bitbucket Cloud access token answer (`POST /site/oauth2/access_token`, grant
/// `client_credentials`): `{access_token, scopes, expires_in, token_type, ...}`, `scopes`
/// space-separated. Bitbucket Cloud OAuth 2.0 "Client Credentials Grant"; the field set as in
/// SonarSource/sonarqube `BitbucketCloudRestClientTest` (`"scopes": "webhook
/// pullrequest:write", "access_token": ..., "expires_in": 7200, "token_type": "bearer"`).
/// `Debug` never shows the token.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct OAuthToken {
    /// The bearer token (a secret).
    #[serde(default)]
    pub access_token: String,
    /// Granted scopes, space-separated (`account email repository:write ...`).
    #[serde(default, deserialize_with = "lenient")]
    pub scopes: Option<String>,
    /// Lifetime in seconds (7200 in Bitbucket's answers).
    #[serde(default, deserialize_with = "lenient")]
    pub expires_in: Option<u64>,
    /// `bearer`.
    #[serde(default, deserialize_with = "lenient")]
    pub token_type: Option<String>,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("access_token", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .finish()
    }
}

impl OAuthToken {
    /// The granted scopes, one per item.
    pub(crate) fn scope_list(&self) -> Vec<String> {
        self.scopes
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }
}

/// An OAuth 2 error from Bitbucket's token endpoint: `{error, error_description}` (RFC 6749
/// §5.2; Bitbucket's texts as in SonarSource/sonarqube `BitbucketCloudRestClientTest`:
/// `unauthorized_client` "Invalid OAuth client credentials", `invalid_grant` "Cannot use
/// client_credentials with a consumer marked as \"public\". ...").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct OAuthError {
    /// The OAuth 2 error code.
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<String>,
    /// Its description.
    #[serde(default, deserialize_with = "lenient")]
    pub error_description: Option<String>,
}

/// A Bitbucket Cloud repository (REST API "Repositories", `repository` object). Only what
/// bbsync reads, and what the fake writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CloudRepository {
    /// `workspace/slug`.
    #[serde(default)]
    pub full_name: String,
    /// The repository's slug.
    #[serde(default, deserialize_with = "lenient")]
    pub slug: Option<String>,
    /// `repository` (inferred: the API's objects carry their type).
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    /// Whether it is private.
    #[serde(default, deserialize_with = "lenient")]
    pub is_private: Option<bool>,
}

/// A page of a Bitbucket Cloud list: `{values, next, pagelen, ...}`, `next` the full URL of
/// the next page, absent on the last (REST API "Pagination").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CloudPage<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub values: Vec<T>,
    /// The next page's URL (not written on the last page).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub next: Option<String>,
    /// Items per page.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub pagelen: Option<u64>,
}

/// A Bitbucket Cloud repository webhook (REST API "Webhooks", `webhook_subscription`:
/// `{uuid, url, active, events, description, ...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CloudHook {
    /// `{...}`-wrapped UUID.
    #[serde(default, deserialize_with = "lenient")]
    pub uuid: Option<String>,
    /// Where it posts.
    #[serde(default)]
    pub url: String,
    /// Whether it is active.
    #[serde(default)]
    pub active: bool,
    /// The events it is subscribed to (`repo:push`, `pullrequest:created`, ...).
    #[serde(default)]
    pub events: Vec<String>,
    /// Its description.
    #[serde(default, deserialize_with = "lenient")]
    pub description: Option<String>,
}

/// A Bitbucket Cloud error body: `{"type": "error", "error": {"message": ...}}` (REST API
/// "Error" object; e.g. SonarSource/sonarqube `BitbucketCloudRestClientTest`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CloudError {
    /// `error`.
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    /// The error.
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<CloudErrorDetail>,
}

/// The inside of a [`CloudError`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CloudErrorDetail {
    /// What went wrong.
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
}

/// A Bitbucket Server / Data Center project reference inside a repository (`{key}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerProject {
    /// The project key (`PROJ`).
    #[serde(default)]
    pub key: String,
}

/// A Bitbucket Server / Data Center repository (`GET /rest/api/1.0/projects/{key}/repos/
/// {slug}`: `{slug, name, project: {key}, ...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerRepository {
    /// Its slug.
    #[serde(default)]
    pub slug: String,
    /// Its project.
    #[serde(default)]
    pub project: ServerProject,
}

/// A Bitbucket Server / Data Center webhook (`GET .../repos/{slug}/webhooks`:
/// `{id, name, url, active, events, ...}`; events such as `repo:refs_changed`, `pr:opened`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerHook {
    /// Its ID.
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<u64>,
    /// Its name (inferred: the form asks for one).
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Where it posts.
    #[serde(default)]
    pub url: String,
    /// Whether it is active.
    #[serde(default)]
    pub active: bool,
    /// The events it is subscribed to.
    #[serde(default)]
    pub events: Vec<String>,
}

/// A page of a Bitbucket Server / Data Center list: `{values, size, isLastPage, start,
/// nextPageStart}` (Data Center REST API "Paged APIs").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerPage<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    pub values: Vec<T>,
    /// Whether this is the last page (absent reads as the last: inferred, so that a broken
    /// answer never loops).
    #[serde(default = "yes", deserialize_with = "lenient_bool")]
    pub is_last_page: bool,
    /// Where the next page starts (`start=` of the next request).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_page_start: Option<u64>,
}

fn yes() -> bool {
    true
}

fn lenient_bool<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(lenient(deserializer)?.unwrap_or(true))
}

/// A Bitbucket Server / Data Center error body: `{"errors": [{"message": ...}]}` (Data Center
/// REST API "Errors").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ServerErrors {
    /// The errors.
    #[serde(default, deserialize_with = "lenient_errors")]
    pub errors: Vec<ServerError>,
}

fn lenient_errors<'de, D>(deserializer: D) -> Result<Vec<ServerError>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(lenient(deserializer)?.unwrap_or_default())
}

/// One error of a [`ServerErrors`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ServerError {
    /// What went wrong.
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
}

impl ServerErrors {
    /// An error body with one message.
    pub(crate) fn one(message: &str) -> Self {
        Self {
            errors: vec![ServerError {
                message: Some(message.to_owned()),
            }],
        }
    }
}

/// The message of a Bitbucket error body of any of the shapes above (Cloud `error.message`,
/// OAuth `error_description` or `error`, Server `errors[].message`), if it has one.
pub(crate) fn error_message(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Ok(cloud) = serde_json::from_value::<CloudError>(value.clone())
        && let Some(message) = cloud.error.and_then(|e| e.message)
    {
        return Some(message);
    }
    if let Ok(server) = serde_json::from_value::<ServerErrors>(value.clone()) {
        let messages: Vec<String> = server
            .errors
            .into_iter()
            .filter_map(|e| e.message)
            .collect();
        if !messages.is_empty() {
            return Some(messages.join("; "));
        }
    }
    let oauth: OAuthError = serde_json::from_value(value).ok()?;
    oauth.error_description.or(oauth.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_error_shape_and_the_token_never_prints() {
        assert_eq!(
            error_message(br#"{"type": "error", "error": {"message": "No workspace"}}"#).as_deref(),
            Some("No workspace")
        );
        assert_eq!(
            error_message(br#"{"errors": [{"message": "a"}, {"message": "b"}]}"#).as_deref(),
            Some("a; b")
        );
        assert_eq!(
            error_message(br#"{"error": "invalid_grant", "error_description": "d"}"#).as_deref(),
            Some("d")
        );
        assert_eq!(error_message(b"<html>"), None);
        let token: OAuthToken = serde_json::from_str(
            r#"{"access_token": "s3cr3t", "scopes": "a  b", "expires_in": "x"}"#,
        )
        .unwrap();
        assert_eq!(token.scope_list(), ["a", "b"]);
        assert_eq!(token.expires_in, None);
        assert!(!format!("{token:?}").contains("s3cr3t"));
        let page: ServerPage<ServerHook> =
            serde_json::from_str(r#"{"values": [{"url": "u", "active": true}], "isLastPage": false, "nextPageStart": 25}"#)
                .unwrap();
        assert!(!page.is_last_page);
        assert_eq!(page.next_page_start, Some(25));
    }
}

/// A Cloud branch (REST API "List open branches": `values[].name`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CloudBranch {
    /// Its name.
    pub name: String,
}

/// A Server branch (Data Center REST API "Get branches": `values[].displayId`, the name
/// without `refs/heads/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerBranch {
    /// Its name.
    #[serde(rename = "displayId")]
    pub display_id: String,
}

/// A pull-request comment (Bitbucket Cloud REST API, "Pullrequests" group: `pullrequest_comment`
/// with `id`, `content.raw` and `deleted`; only these are read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CloudComment {
    /// Its ID.
    pub id: u64,
    /// Its text.
    #[serde(default)]
    pub content: CommentContent,
    /// Deleted comments stay listed with `deleted: true`.
    #[serde(default)]
    pub deleted: bool,
}

/// A comment's text (`content.raw`: the Markdown as written).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CommentContent {
    /// The Markdown.
    #[serde(default)]
    pub raw: String,
}

/// A commit build status (Bitbucket Cloud REST API, "Commit statuses" group: `commitstatus`,
/// posted to `POST .../commit/{commit}/statuses/build` and listed by
/// `GET .../commit/{commit}/statuses`; the fields bbsync writes and reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CloudCommitStatus {
    /// "An identifier for the status that's unique to its type ... and the vendor"; at most
    /// 40 characters (Bitbucket's 400 "key: Ensure this value has at most 40 characters",
    /// quoted in buildbot/buildbot#7049).
    #[serde(default)]
    pub key: String,
    /// `INPROGRESS`, `SUCCESSFUL`, `FAILED` or `STOPPED`.
    #[serde(default)]
    pub state: String,
    /// "An identifier for the build itself".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// "A description of the build".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// "A URL linking back to the vendor or build system"; Bitbucket answers 400 "url: Enter a
    /// valid URL." without a valid one (quoted in runatlantis/atlantis#710 and
    /// jenkinsci/bitbucket-branch-source-plugin#3).
    #[serde(default)]
    pub url: String,
}
