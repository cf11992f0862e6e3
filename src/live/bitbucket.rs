//! The Bitbucket client: pre-flight checks of the credentials bbsync would send to Platform.sh,
//! and the check that the repository has Platform.sh's webhook (DESIGN.md §5, issue 15).
//!
//! It writes only pull-request comments ([`BitbucketClient::pr_comment`]) and commit statuses
//! ([`BitbucketClient::commit_status`]), each with a Bearer access token. What it asks:
//!
//! * Bitbucket Cloud: a `client_credentials` grant at `{auth_url}/site/oauth2/access_token`
//!   with the consumer's key and secret (as upsun/cli `IntegrationCommandBase.php`
//!   `getBitbucketAccessToken` does), then with the access token (Bearer)
//!   `GET {api_url}/2.0/repositories/{workspace}/{slug}`,
//!   `GET {api_url}/2.0/repositories/{workspace}?role=admin&q=full_name="..."` and
//!   `GET {api_url}/2.0/repositories/{workspace}/{slug}/hooks`.
//! * Bitbucket Server / Data Center: with `username` and `token` (HTTP Basic, as Platform.sh
//!   uses them) `GET {url}/rest/api/1.0/projects/{project}/repos/{repository}` and
//!   `.../webhooks`.
//! * Commit statuses (Bitbucket Cloud): with the access token (Bearer)
//!   `POST {api_url}/2.0/repositories/{workspace}/{slug}/commit/{sha}/statuses/build`.
//!
//! Every request takes its turn from the process's one throttle, shared with the Platform.sh
//! client ([`super::throttle`]): a 429 pauses every request to that Bitbucket host for its
//! `Retry-After` (Bitbucket Cloud "API request limits" documents the 429) and uses no attempt;
//! a host found unreachable fails later requests at once. Retries: 5xx, a refused connection
//! or a timeout on GETs, on the token grant (which changes nothing) and on commit statuses
//! (posted again, the same key only overwrites), with
//! [`crate::model::backoff::exponential`].
//!
//! Results of [`BitbucketClient::preflight`] are kept for the client's lifetime (a run), per
//! credentials and repository: Bitbucket counts requests per consumer (about 1,000 an hour
//! for repository data), a budget Platform.sh's own fetches share (issue 15, "Budget"). The
//! cache's keys hold a SHA-256 of the credentials, never the secrets.
//!
//! Secrets (the consumer secret, the Server token, the access tokens obtained) appear in no
//! check, error, log line or `Debug` output: Bitbucket's own texts are cleaned and have every
//! one of them redacted before they are kept.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, OnceCell};
use url::Url;

use super::client::{BodyError, read_body, retry_after, transport_reason};
use super::error::{ApiError, clean_text, redact, shown};
use crate::model::secret::Secret;
use crate::wire::bitbucket::{
    CloudHook, CloudPage, CloudRepository, OAuthError, OAuthToken, ServerHook, ServerPage,
    error_message,
};

/// How to reach Bitbucket.
#[derive(Debug, Clone)]
pub struct BitbucketConfig {
    /// The Bitbucket Cloud API (`https://api.bitbucket.org`, `--bitbucket-api-url`).
    pub api_url: String,
    /// The Bitbucket Cloud OAuth server (`https://bitbucket.org`, `--bitbucket-auth-url`); the
    /// token URL is `{auth_url}/site/oauth2/access_token` (DESIGN.md §2).
    pub auth_url: String,
    /// Time allowed for one request, answer included.
    pub timeout: Duration,
    /// The largest answer body read, in bytes.
    pub max_body: usize,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff: Duration,
    /// Longest backoff delay (and longest `Retry-After` honoured).
    pub max_backoff: Duration,
    /// Send every Bitbucket Server request to this base URL instead of the integration's
    /// `url`: for `bbsync demo`, whose Server is fictitious and served by the sandbox.
    pub server_override: Option<String>,
    /// The process's throttle, shared with the Platform.sh client ([`super::Client::throttle`]);
    /// `None`: one of its own.
    pub throttle: Option<super::Throttle>,
}

impl BitbucketConfig {
    /// Defaults for `api_url` and `auth_url`: the Platform.sh client's timeout, body limit
    /// and retry schedule.
    pub fn new(api_url: &str, auth_url: &str) -> Self {
        Self {
            api_url: api_url.to_owned(),
            auth_url: auth_url.to_owned(),
            timeout: Duration::from_secs(30),
            max_body: super::MAX_BODY,
            max_attempts: 5,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            server_override: None,
            throttle: None,
        }
    }
}

/// The credentials bbsync would send to Platform.sh, as they are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitbucketCredentials {
    /// A Bitbucket Cloud OAuth consumer (`app_credentials`).
    Cloud {
        /// The consumer's key.
        key: String,
        /// The consumer's secret.
        secret: Secret,
    },
    /// A Bitbucket Server / Data Center user and token.
    Server {
        /// The server's base URL (`https://bitbucket.example.com`).
        url: String,
        /// The user.
        username: String,
        /// The user's token.
        token: Secret,
    },
}

impl BitbucketCredentials {
    /// What identifies these credentials in the cache: the kind, the public parts and a
    /// SHA-256 of the secret, never the secret itself.
    fn identity(&self) -> String {
        let mut hash = Sha256::new();
        match self {
            Self::Cloud { key, secret } => {
                for part in ["cloud", key.as_str(), secret.expose()] {
                    hash.update(part.len().to_le_bytes());
                    hash.update(part.as_bytes());
                }
            }
            Self::Server {
                url,
                username,
                token,
            } => {
                for part in ["server", url.as_str(), username.as_str(), token.expose()] {
                    hash.update(part.len().to_le_bytes());
                    hash.update(part.as_bytes());
                }
            }
        }
        let digest = hash.finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A repository on Bitbucket: Cloud `{workspace}/{slug}`, Server `{project}/{repository}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryRef {
    /// The Cloud workspace, or the Server project key.
    pub workspace_or_project: String,
    /// The repository's slug.
    pub slug: String,
}

impl RepositoryRef {
    /// `workspace_or_project` / `slug`.
    pub fn new(workspace_or_project: &str, slug: &str) -> Self {
        Self {
            workspace_or_project: workspace_or_project.to_owned(),
            slug: slug.to_owned(),
        }
    }

    /// `owner/slug` as Platform.sh's `repository` field holds it; `None` unless it has
    /// exactly two non-empty parts.
    pub fn parse(text: &str) -> Option<Self> {
        let (owner, slug) = text.split_once('/')?;
        (!owner.is_empty() && !slug.is_empty() && !slug.contains('/'))
            .then(|| Self::new(owner, slug))
    }
}

impl fmt::Display for RepositoryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workspace_or_project, self.slug)
    }
}

/// What one check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Cloud: the consumer gets a token; Server: the username and token are accepted.
    Token,
    /// Cloud: the token's scopes cover what Platform.sh needs.
    Scopes,
    /// The repository exists and is visible.
    Repository,
    /// Cloud: the consumer's owner administers the repository; Server: the token may read
    /// the repository's webhooks (REPO_ADMIN).
    Admin,
    /// The repository has an active webhook for the integration's hook URL.
    Webhook,
    /// Server: the token belongs to `username`.
    Username,
    /// Server: the token is a personal one (works with HTTP Basic).
    TokenKind,
}

impl CheckKind {
    /// Its name in output: `token`, `scopes`, `repository`, `admin`, `webhook`, `username`,
    /// `token kind`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Scopes => "scopes",
            Self::Repository => "repository",
            Self::Admin => "admin",
            Self::Webhook => "webhook",
            Self::Username => "username",
            Self::TokenKind => "token kind",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a check went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// It passed.
    Passed {
        /// What was found (`repository `acme/web` found`).
        note: String,
    },
    /// It failed: nothing should be written with these credentials.
    Failed {
        /// What is wrong, plainly.
        problem: String,
        /// What to change, and where.
        hint: String,
    },
    /// It was not made (an earlier check failed, or there was nothing to compare).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What it checks.
    pub kind: CheckKind,
    /// How it went.
    #[serde(flatten)]
    pub outcome: CheckOutcome,
}

impl Check {
    fn passed(kind: CheckKind, note: impl Into<String>) -> Self {
        Self {
            kind,
            outcome: CheckOutcome::Passed { note: note.into() },
        }
    }

    fn failed(kind: CheckKind, problem: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            kind,
            outcome: CheckOutcome::Failed {
                problem: problem.into(),
                hint: hint.into(),
            },
        }
    }

    fn skipped(kind: CheckKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            outcome: CheckOutcome::Skipped {
                reason: reason.into(),
            },
        }
    }

    /// Whether it failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, CheckOutcome::Failed { .. })
    }
}

/// The pre-flight of one set of credentials against one repository: its checks in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preflight {
    /// The checks, in the order they were made; those after a failed one are skipped.
    pub checks: Vec<Check>,
}

impl Preflight {
    /// The first failed check, if any.
    pub fn failed(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.is_failed())
    }

    /// The check of this kind, if it is part of the pre-flight.
    pub fn check(&self, kind: CheckKind) -> Option<&Check> {
        self.checks.iter().find(|c| c.kind == kind)
    }

    /// Appends `check`, or, once a check has failed, `kind` skipped.
    fn push(&mut self, check: Check) {
        let check = match self.failed() {
            Some(failed) => Check::skipped(
                check.kind,
                format!("the {} check failed", failed.kind.name()),
            ),
            None => check,
        };
        self.checks.push(check);
    }

    fn skip_rest(&mut self, kinds: &[CheckKind]) {
        for kind in kinds {
            if self.check(*kind).is_none() {
                self.push(Check::skipped(*kind, ""));
            }
        }
    }
}

/// The scopes Platform.sh needs of a Bitbucket Cloud consumer, with the name Bitbucket's
/// consumer form gives each (Platform.sh docs "Integrate with Bitbucket", "Create an OAuth
/// consumer": Account Email and Read, Repositories Read and Write, Pull requests Read,
/// Webhooks Read and write; the API scope behind each form label: Atlassian "App password
/// permissions" and "Repository Access Token permissions", "Equivalent to the ... API
/// scope").
pub const NEEDED_SCOPES: [(&str, &str); 5] = [
    ("account", "Account: Read"),
    ("email", "Account: Email"),
    ("repository:write", "Repositories: Write"),
    ("pullrequest", "Pull requests: Read"),
    ("webhook", "Webhooks: Read and write"),
];

/// Whether the `granted` scope covers `needed`: the same, or a higher level of it.
///
/// * `repository:admin` ⊇ `repository:write` ⊇ `repository`, `pullrequest:write` ⊇
///   `pullrequest`, `account:write` ⊇ `account`: the consumer form ticks the lower levels
///   with a higher one (issue 15; inferred from the form's behaviour, not from a documented
///   rule).
/// * `account` ⊇ `email`: Account Read "provides access to view all of the user's account
///   information, including ... email addresses" (Atlassian "App password permissions").
/// * `pullrequest` ⊇ `repository` and `pullrequest:write` ⊇ `repository:write`: inferred from
///   Bitbucket's token answers, which list only the highest scopes of a working consumer
///   (`"scopes": "webhook pullrequest:write"` in SonarSource/sonarqube
///   `BitbucketCloudRestClientTest`).
pub fn scope_covers(granted: &str, needed: &str) -> bool {
    let implied: &[&str] = match granted {
        "repository:admin" => &["repository:write", "repository"],
        "repository:write" => &["repository"],
        "pullrequest:write" => &["pullrequest", "repository:write", "repository"],
        "pullrequest" => &["repository"],
        "account:write" => &["account", "email"],
        "account" => &["email"],
        _ => &[],
    };
    granted == needed || implied.contains(&needed)
}

/// The form names of the [`NEEDED_SCOPES`] that `granted` does not cover, in the form's order.
pub fn missing_scopes(granted: &[String]) -> Vec<&'static str> {
    NEEDED_SCOPES
        .iter()
        .filter(|(needed, _)| !granted.iter().any(|g| scope_covers(g, needed)))
        .map(|(_, label)| *label)
        .collect()
}

/// The events a Bitbucket Cloud webhook for Platform.sh needs: pushes and every pull-request
/// event except comments and approval (Platform.sh docs "Integrate with Bitbucket": "include
/// all pull request events except comments and approval"; the event keys are those
/// platformsh/legacy-cli `IntegrationCommandBase::updateHook` registered:
/// `pullrequest:created`, `:updated`, `:rejected`, `:fulfilled`, `repo:push`, and
/// `repo:updated`, which is not required here: inferred, a repository's rename is not a
/// code change).
pub const CLOUD_HOOK_EVENTS: [&str; 5] = [
    "repo:push",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
];

/// The events a Bitbucket Server / Data Center webhook for Platform.sh needs: "all events
/// except comments and approval" (Platform.sh docs "Integrate with Bitbucket", Bitbucket
/// Server). Which event keys that means is inferred: a push (`repo:refs_changed`) and the
/// pull request being opened, changed, merged or declined (Bitbucket Data Center "Event
/// payload").
pub const SERVER_HOOK_EVENTS: [&str; 5] = [
    "repo:refs_changed",
    "pr:opened",
    "pr:modified",
    "pr:merged",
    "pr:declined",
];

/// The integration ID in a Platform.sh hook URL (`.../projects/{project}/integrations/{id}/hook`,
/// the `#hook` link: platformsh-api.md §1.4), if `url` is one.
pub fn platform_hook_integration(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    let segments: Vec<&str> = parsed.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., "projects", project, "integrations", id, "hook"]
            if !project.is_empty() && !id.is_empty() =>
        {
            Some((*id).to_owned())
        }
        _ => None,
    }
}

/// A webhook as both kinds of Bitbucket describe it.
#[derive(Debug, Clone)]
struct Hook {
    url: String,
    active: bool,
    events: Vec<String>,
}

impl From<CloudHook> for Hook {
    fn from(h: CloudHook) -> Self {
        Self {
            url: h.url,
            active: h.active,
            events: h.events,
        }
    }
}

impl From<ServerHook> for Hook {
    fn from(h: ServerHook) -> Self {
        Self {
            url: h.url,
            active: h.active,
            events: h.events,
        }
    }
}

/// The webhook check of `hooks` for `hook_url`, needing `needed` events; `kind_name` and
/// `where_to` word the hint.
fn judge_hooks(
    hooks: &[Hook],
    hook_url: &str,
    needed: &[&str],
    known_integration_ids: &[String],
    where_to: &str,
) -> Check {
    let stale: BTreeSet<String> = hooks
        .iter()
        .filter(|h| h.url != hook_url)
        .filter_map(|h| platform_hook_integration(&h.url).map(|id| (id, &h.url)))
        .filter(|(id, _)| !known_integration_ids.contains(id))
        .map(|(id, url)| format!("`{}` (integration `{}`)", shown(&clean_text(url)), id))
        .collect();
    let stale_note = if stale.is_empty() {
        String::new()
    } else {
        format!(
            "; stale: {} point at Platform.sh integrations that no longer exist, and can be removed",
            stale.into_iter().collect::<Vec<_>>().join(", ")
        )
    };
    let events = needed.join(", ");
    let hint = format!(
        "add a webhook by hand ({where_to}) with URL `{hook_url}`, active, with these events: {events} (push, and all pull request events except comments and approval)"
    );
    let matching: Vec<&Hook> = hooks.iter().filter(|h| h.url == hook_url).collect();
    let missing_events = |h: &Hook| -> Vec<&str> {
        needed
            .iter()
            .filter(|e| !h.events.iter().any(|have| have == *e))
            .copied()
            .collect()
    };
    if matching
        .iter()
        .any(|h| h.active && missing_events(h).is_empty())
    {
        return Check::passed(
            CheckKind::Webhook,
            format!(
                "an active webhook for `{hook_url}` with push and pull-request events{stale_note}"
            ),
        );
    }
    let problem = if matching.is_empty() {
        format!(
            "the repository has no webhook for `{hook_url}`: pushes and pull requests will not reach Platform.sh"
        )
    } else if let Some(active) = matching.iter().find(|h| h.active) {
        format!(
            "the webhook for `{hook_url}` lacks the events {}: those changes will not reach Platform.sh",
            missing_events(active).join(", ")
        )
    } else {
        format!(
            "the webhook for `{hook_url}` is inactive: pushes and pull requests will not reach Platform.sh"
        )
    };
    Check::failed(CheckKind::Webhook, format!("{problem}{stale_note}"), hint)
}

/// How the token endpoint refused a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The key or secret is wrong.
    Credentials,
    /// The consumer is public.
    Public,
    /// The consumer has no callback URL.
    Callback,
    /// Anything else the endpoint said no to.
    Other,
}

/// What a 4xx of the token endpoint means.
///
/// * "Cannot use client_credentials with a consumer marked as \"public\"" (400
///   `invalid_grant`; SonarSource/sonarqube `BitbucketCloudRestClientTest`): a public
///   consumer.
/// * A description naming the callback (inferred: upsun/cli `validateBitbucketCredentials`
///   hints at the callback URL on any 400; Bitbucket's words, "No callback uri defined for
///   the OAuth client.", are as reported by users): a missing callback URL.
/// * 401, `invalid_client`, `unauthorized_client`, or "Invalid OAuth client credentials"
///   (RFC 6749 §5.2; SonarSource/sonarqube `BitbucketCloudRestClientTest`: 400
///   `unauthorized_client` "Invalid OAuth client credentials"): a wrong key or secret.
fn classify_refusal(status: u16, body: &OAuthError) -> Refusal {
    let description = body
        .error_description
        .as_deref()
        .unwrap_or("")
        .to_lowercase();
    let error = body.error.as_deref().unwrap_or("");
    if description.contains("marked as \"public\"") || description.contains("public") {
        Refusal::Public
    } else if description.contains("callback") {
        Refusal::Callback
    } else if status == 401
        || matches!(error, "invalid_client" | "unauthorized_client")
        || description.contains("client credentials")
    {
        Refusal::Credentials
    } else {
        Refusal::Other
    }
}

/// A Bitbucket Cloud pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its repository's workspace.
    pub workspace: String,
    /// Its repository's slug.
    pub slug: String,
    /// Its number.
    pub id: u64,
}

/// What [`BitbucketClient::pr_comment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// A new comment, with its ID.
    Created(u64),
    /// The earlier comment, updated.
    Updated(u64),
}

/// The key of every commit status bbsync posts (DESIGN.md §7): one status per commit, which
/// each post replaces (Cloud REST API "Create a build status for a commit": "If the specified
/// key already exists, the existing status object will be overwritten").
pub const COMMIT_STATUS_KEY: &str = "bbsync";

/// The most characters of a status's `name` and `description` sent. Atlassian documents no
/// limit; 255 is the one Bitbucket enforces on `name` as found by
/// jenkinsci/bitbucket-branch-source-plugin#928 ("name must be less than 255 characters"),
/// taken for `description` too (inferred).
pub const COMMIT_STATUS_TEXT: usize = 255;

/// Where a commit status links when no public URL is given: the commit's page on
/// bitbucket.org (`https://bitbucket.org/{workspace}/{slug}/commits/{sha}`, the address
/// Bitbucket Cloud's web pages use for a commit; inferred). Bitbucket refuses a status without
/// a valid `url` (400 "url: Enter a valid URL.", runatlantis/atlantis#710), although its
/// schema does not mark it required.
pub const COMMIT_PAGE_BASE: &str = "https://bitbucket.org";

/// A commit status's state (Cloud REST API "Commit statuses": `commitstatus.state`, one of
/// `INPROGRESS`, `FAILED`, `STOPPED`, `SUCCESSFUL`; bbsync posts three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CommitState {
    /// A run on the commit has started.
    #[serde(rename = "INPROGRESS")]
    InProgress,
    /// The run ended well.
    #[serde(rename = "SUCCESSFUL")]
    Successful,
    /// The run failed.
    #[serde(rename = "FAILED")]
    Failed,
}

impl CommitState {
    /// The state as Bitbucket spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "INPROGRESS",
            Self::Successful => "SUCCESSFUL",
            Self::Failed => "FAILED",
        }
    }
}

impl fmt::Display for CommitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A commit status to post ([`BitbucketClient::commit_status`]); its key is always
/// [`COMMIT_STATUS_KEY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// Its state.
    pub state: CommitState,
    /// What Bitbucket shows as its title (`bbsync`, `bbsync watch`); cut to
    /// [`COMMIT_STATUS_TEXT`] characters.
    pub name: String,
    /// One line ("2 updated, 1 blocked"); line breaks become spaces, and it is cut to
    /// [`COMMIT_STATUS_TEXT`] characters.
    pub description: String,
    /// Where it links (`--public-url`); `None`: the commit's page ([`COMMIT_PAGE_BASE`]).
    pub url: Option<String>,
}

/// A Bitbucket client for pre-flight checks and pull-request comments. Cheap to clone; clones
/// share the cache. `Debug` shows only where it goes.
#[derive(Clone)]
pub struct BitbucketClient {
    inner: Arc<Inner>,
}

/// Pre-flights by credentials identity and repository, each made once.
type PreflightCache = HashMap<(String, RepositoryRef), Arc<OnceCell<Preflight>>>;

struct Inner {
    http: reqwest::Client,
    config: BitbucketConfig,
    api: Url,
    token_url: Url,
    preflights: Mutex<PreflightCache>,
    /// Cloud access tokens by credentials identity, until their deadline.
    tokens: Mutex<HashMap<String, (Secret, Instant)>>,
    requests: AtomicU64,
    throttle: super::Throttle,
}

impl BitbucketClient {
    /// Where a Server at `base` is reached ([`BitbucketConfig::server_override`]).
    fn server_base<'a>(&'a self, base: &'a str) -> &'a str {
        self.inner.config.server_override.as_deref().unwrap_or(base)
    }
}

impl fmt::Debug for BitbucketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitbucketClient")
            .field("api_url", &self.inner.api.as_str())
            .field("token_url", &self.inner.token_url.as_str())
            .finish_non_exhaustive()
    }
}

/// An answer, read whole.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// How a request was made: credentials and retries.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a Secret),
    Bearer(&'a Secret),
}

impl BitbucketClient {
    /// A client for `config`. Refuses `http://` URLs to non-loopback hosts (DESIGN.md §2, as
    /// the Platform.sh client does).
    pub fn new(config: BitbucketConfig) -> Result<Self, ApiError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = super::check_url("the Bitbucket API URL", &config.api_url)?;
        let auth = super::check_url("the Bitbucket auth URL", &config.auth_url)?;
        let token_url = Url::parse(&format!(
            "{}/site/oauth2/access_token",
            auth.as_str().trim_end_matches('/')
        ))
        .map_err(|e| ApiError::Config(format!("bad Bitbucket auth URL: {e}")))?;
        let http = super::client::http_client(
            config.timeout,
            config.timeout.min(Duration::from_secs(10)),
        )?;
        let throttle = config
            .throttle
            .clone()
            .unwrap_or_else(|| super::Throttle::new(super::ThrottleConfig::default()));
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                throttle,
                config,
                api,
                token_url,
                preflights: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The pre-flight of `credentials` against `repository` (DESIGN.md §5 "Pre-flight"): for
    /// Cloud the token, scopes, repository and admin checks; for Server the token, token
    /// kind, repository, username and admin (webhook rights) checks. Made once per
    /// credentials and repository for the client's lifetime: asked again, it sends nothing.
    pub async fn preflight(
        &self,
        credentials: &BitbucketCredentials,
        repository: &RepositoryRef,
    ) -> Preflight {
        let cell = {
            let mut cache = self.inner.preflights.lock().await;
            Arc::clone(
                cache
                    .entry((credentials.identity(), repository.clone()))
                    .or_default(),
            )
        };
        cell.get_or_init(|| async {
            match credentials {
                BitbucketCredentials::Cloud { key, secret } => {
                    self.cloud_preflight(credentials, key, secret, repository)
                        .await
                }
                BitbucketCredentials::Server {
                    url,
                    username,
                    token,
                } => {
                    self.server_preflight(url, username, token, repository)
                        .await
                }
            }
        })
        .await
        .clone()
    }

    /// Whether `repository` has an active webhook for `hook_url` with push and pull-request
    /// events (DESIGN.md §5 "The webhook"). Hooks pointing at Platform.sh integrations not in
    /// `known_integration_ids` are named as stale. Not cached: it is asked after a write.
    pub async fn webhook(
        &self,
        credentials: &BitbucketCredentials,
        repository: &RepositoryRef,
        hook_url: &str,
        known_integration_ids: &[String],
    ) -> Check {
        let hooks = match credentials {
            BitbucketCredentials::Cloud { key, secret } => {
                self.cloud_hooks(credentials, key, secret, repository).await
            }
            BitbucketCredentials::Server {
                url,
                username,
                token,
            } => self.server_hooks(url, username, token, repository).await,
        };
        match hooks {
            Ok(hooks) => {
                let (needed, where_to): (&[&str], String) = match credentials {
                    BitbucketCredentials::Cloud { .. } => (
                        &CLOUD_HOOK_EVENTS,
                        format!("Repository settings → Webhooks of `{repository}`"),
                    ),
                    BitbucketCredentials::Server { .. } => (
                        &SERVER_HOOK_EVENTS,
                        format!("Repository settings → Webhooks of `{repository}`"),
                    ),
                };
                judge_hooks(&hooks, hook_url, needed, known_integration_ids, &where_to)
            }
            Err(problem) => Check::failed(
                CheckKind::Webhook,
                format!("the repository's webhooks could not be read: {problem}"),
                format!(
                    "check by hand that `{repository}` has an active webhook for `{hook_url}` with push and all pull request events except comments and approval"
                ),
            ),
        }
    }

    async fn cloud_preflight(
        &self,
        credentials: &BitbucketCredentials,
        key: &str,
        secret: &Secret,
        repository: &RepositoryRef,
    ) -> Preflight {
        const KINDS: [CheckKind; 4] = [
            CheckKind::Token,
            CheckKind::Scopes,
            CheckKind::Repository,
            CheckKind::Admin,
        ];
        let mut preflight = Preflight { checks: Vec::new() };
        let token = match self.grant(credentials, key, secret).await {
            Ok(token) => token,
            Err(check) => {
                preflight.push(*check);
                preflight.skip_rest(&KINDS);
                return preflight;
            }
        };
        preflight.push(Check::passed(
            CheckKind::Token,
            format!("consumer `{}` got an access token", shown(&clean_text(key))),
        ));
        let granted = token.1;
        let missing = missing_scopes(&granted);
        preflight.push(if missing.is_empty() {
            Check::passed(
                CheckKind::Scopes,
                format!("granted: {}", shown(&clean_text(&granted.join(" ")))),
            )
        } else {
            Check::failed(
                CheckKind::Scopes,
                format!("the consumer lacks the permissions {}", missing.join(", ")),
                format!(
                    "edit consumer `{}` (Workspace settings → OAuth consumers → Edit) and tick {}",
                    shown(&clean_text(key)),
                    missing.join(", ")
                ),
            )
        });
        if preflight.failed().is_some() {
            preflight.skip_rest(&KINDS);
            return preflight;
        }
        let access = token.0;
        let scrub = [secret.clone(), access.clone()];
        // Repository: `GET /2.0/repositories/{workspace}/{repo_slug}` (REST API
        // "Repositories", "Get a repository"): 404 when it does not exist or cannot be seen
        // (inferred for the latter: Bitbucket hides private repositories as not found), 403
        // when the token may not read it.
        let path = format!(
            "/2.0/repositories/{}/{}",
            segment(&repository.workspace_or_project),
            segment(&repository.slug)
        );
        let url = self.api_url(&path, &[]);
        let check = match self.get(&url, Auth::Bearer(&access), &scrub).await {
            Ok(answer) if (200..300).contains(&answer.status) => {
                match serde_json::from_slice::<CloudRepository>(&answer.body) {
                    Ok(repo) => Check::passed(
                        CheckKind::Repository,
                        format!(
                            "repository `{}` found",
                            shown(&clean_text(if repo.full_name.is_empty() {
                                &path
                            } else {
                                &repo.full_name
                            }))
                        ),
                    ),
                    Err(_) => Check::failed(
                        CheckKind::Repository,
                        format!("GET {path} returned an unexpected response"),
                        "try again later; if it persists, check the Bitbucket API URL",
                    ),
                }
            }
            Ok(answer) if matches!(answer.status, 403 | 404) => Check::failed(
                CheckKind::Repository,
                format!(
                    "repository `{repository}` was not found, or the consumer's owner cannot see it (HTTP {})",
                    answer.status
                ),
                format!(
                    "check the workspace and slug in `repository`, and that the consumer belongs to a workspace that can read `{repository}`"
                ),
            ),
            Ok(answer) => self.unexpected(CheckKind::Repository, "GET", &path, &answer, &scrub),
            Err(problem) => no_answer(CheckKind::Repository, &problem),
        };
        preflight.push(check);
        // Admin: `GET /2.0/repositories/{workspace}?role=admin&q=full_name="..."` (REST API
        // "Repositories", "List repositories in a workspace": `role=admin` keeps those the
        // caller administers; "Filtering and sorting" for `q`). Not
        // `/2.0/user/permissions/repositories`: Atlassian removed it (410; issue 15).
        if preflight.failed().is_none() {
            let path = format!(
                "/2.0/repositories/{}",
                segment(&repository.workspace_or_project)
            );
            let query = format!(
                "full_name=\"{}/{}\"",
                repository.workspace_or_project, repository.slug
            );
            let url = self.api_url(&path, &[("role", "admin"), ("q", &query)]);
            let check = match self.get(&url, Auth::Bearer(&access), &scrub).await {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    match serde_json::from_slice::<CloudPage<CloudRepository>>(&answer.body) {
                        Ok(page)
                            if page.values.iter().any(|r| {
                                r.full_name.eq_ignore_ascii_case(&repository.to_string())
                            }) =>
                        {
                            Check::passed(
                                CheckKind::Admin,
                                format!(
                                    "the consumer's owner administers `{repository}`, as registering the webhook needs"
                                ),
                            )
                        }
                        Ok(_) => Check::failed(
                            CheckKind::Admin,
                            format!(
                                "the consumer's owner is not an admin of `{repository}`: Platform.sh could not register its webhook, and pull-request environments would never build"
                            ),
                            format!(
                                "give the consumer's owner Admin on `{repository}` (Repository settings → User and group access), or create the consumer under a workspace admin"
                            ),
                        ),
                        Err(_) => Check::failed(
                            CheckKind::Admin,
                            format!("GET {path} returned an unexpected response"),
                            "try again later; if it persists, check the Bitbucket API URL",
                        ),
                    }
                }
                Ok(answer) => self.unexpected(CheckKind::Admin, "GET", &path, &answer, &scrub),
                Err(problem) => no_answer(CheckKind::Admin, &problem),
            };
            preflight.push(check);
        }
        preflight.skip_rest(&KINDS);
        preflight
    }

    /// A `client_credentials` grant (cached for the run, by identity), or the failed token
    /// check. upsun/cli `IntegrationCommandBase.php` `getBitbucketAccessToken`: `POST
    /// https://bitbucket.org/site/oauth2/access_token`, HTTP Basic key:secret, form
    /// `grant_type=client_credentials`; its `validateBitbucketCredentials` hints, on a 400,
    /// that key and secret be valid and that the consumer have a callback URL.
    async fn grant(
        &self,
        credentials: &BitbucketCredentials,
        key: &str,
        secret: &Secret,
    ) -> Result<(Secret, Vec<String>), Box<Check>> {
        let path = self.inner.token_url.path().to_owned();
        let answer = self
            .send(
                || {
                    self.inner
                        .http
                        .post(self.inner.token_url.clone())
                        .basic_auth(key, Some(secret.expose()))
                        .form(&[("grant_type", "client_credentials")])
                },
                true,
                std::slice::from_ref(secret),
            )
            .await;
        let shown_key = shown(&clean_text(key));
        let answer = match answer {
            Ok(answer) => answer,
            Err(problem) => return Err(Box::new(no_answer(CheckKind::Token, &problem))),
        };
        if (200..300).contains(&answer.status) {
            let token: OAuthToken = serde_json::from_slice(&answer.body).unwrap_or_default();
            if token.access_token.is_empty() {
                // upsun/cli: "Access token not found in Bitbucket response".
                return Err(Box::new(Check::failed(
                    CheckKind::Token,
                    format!("POST {path} answered without an access token"),
                    "check the Bitbucket auth URL (`--bitbucket-auth-url`)",
                )));
            }
            let scopes = token.scope_list();
            let access = Secret::new(token.access_token.as_str());
            // Renewed a little early; Bitbucket's tokens live 2 hours (`expires_in: 7200`).
            let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600).min(7200));
            let deadline = Instant::now()
                .checked_add(lifetime.saturating_sub(lifetime / 10))
                .unwrap_or_else(Instant::now);
            self.inner
                .tokens
                .lock()
                .await
                .insert(credentials.identity(), (access.clone(), deadline));
            return Ok((access, scopes));
        }
        let body: OAuthError = serde_json::from_slice(&answer.body).unwrap_or_default();
        let said = self.said(&answer, std::slice::from_ref(secret));
        let check = if (400..500).contains(&answer.status) && answer.status != 429 {
            match classify_refusal(answer.status, &body) {
                Refusal::Credentials => Check::failed(
                    CheckKind::Token,
                    format!(
                        "Bitbucket refused consumer `{shown_key}`: the key or the secret is wrong (HTTP {}: {said})",
                        answer.status
                    ),
                    "copy the Key and Secret again from Workspace settings → OAuth consumers (click the consumer's name), and check that the secret's environment variable holds the consumer's secret",
                ),
                Refusal::Public => Check::failed(
                    CheckKind::Token,
                    format!(
                        "consumer `{shown_key}` is public: Bitbucket gives public consumers no token for a client_credentials grant, which Platform.sh uses"
                    ),
                    "edit the consumer (Workspace settings → OAuth consumers → Edit) and tick \"This is a private consumer\"",
                ),
                Refusal::Callback => Check::failed(
                    CheckKind::Token,
                    format!("consumer `{shown_key}` has no callback URL ({said})"),
                    "edit the consumer (Workspace settings → OAuth consumers → Edit) and set a Callback URL; any will do, such as http://localhost",
                ),
                Refusal::Other => Check::failed(
                    CheckKind::Token,
                    format!(
                        "Bitbucket refused consumer `{shown_key}` (HTTP {}: {said})",
                        answer.status
                    ),
                    "check the consumer's key and secret, that it is private, and that it has a callback URL (even just http://localhost)",
                ),
            }
        } else {
            Check::failed(
                CheckKind::Token,
                format!(
                    "Bitbucket's OAuth service did not answer the token request (POST {path}: HTTP {}: {said})",
                    answer.status
                ),
                "try again later; Bitbucket's status is at https://bitbucket.status.atlassian.com",
            )
        };
        Err(Box::new(check))
    }

    async fn server_preflight(
        &self,
        base: &str,
        username: &str,
        token: &Secret,
        repository: &RepositoryRef,
    ) -> Preflight {
        const KINDS: [CheckKind; 5] = [
            CheckKind::Token,
            CheckKind::TokenKind,
            CheckKind::Repository,
            CheckKind::Username,
            CheckKind::Admin,
        ];
        let mut preflight = Preflight { checks: Vec::new() };
        let scrub = [token.clone()];
        let user = shown(&clean_text(username));
        let repo_path = format!(
            "/rest/api/1.0/projects/{}/repos/{}",
            segment(&repository.workspace_or_project),
            segment(&repository.slug)
        );
        let url = match server_url(self.server_base(base), &repo_path) {
            Ok(url) => url,
            Err(problem) => {
                preflight.push(Check::failed(
                    CheckKind::Token,
                    problem,
                    "set `url` to the Bitbucket Server's base URL, such as https://bitbucket.example.com",
                ));
                preflight.skip_rest(&KINDS);
                return preflight;
            }
        };
        // Repository, with `username` and `token` as HTTP Basic, as Platform.sh sends them
        // (Data Center REST API "Get repository"; HTTP access tokens "can be used ... as a
        // Bearer token or with Basic authentication" for personal tokens only: Atlassian
        // "HTTP access tokens"; that project and repository tokens work only as Bearer is
        // inferred from the same page, which lets only personal tokens stand for a user).
        let basic = match self.get(&url, Auth::Basic(username, token), &scrub).await {
            Ok(answer) => answer,
            Err(problem) => {
                preflight.push(no_answer(CheckKind::Token, &problem));
                preflight.skip_rest(&KINDS);
                return preflight;
            }
        };
        if basic.status == 401 {
            let bearer = self.get(&url, Auth::Bearer(token), &scrub).await;
            match bearer {
                Ok(answer) if answer.status != 401 => {
                    preflight.push(Check::passed(
                        CheckKind::Token,
                        "the token is valid (as a Bearer token)",
                    ));
                    preflight.push(Check::failed(
                        CheckKind::TokenKind,
                        format!(
                            "the token is a project or repository HTTP access token: it works only as a Bearer token, and Platform.sh signs in with username `{user}` and the token (HTTP Basic)"
                        ),
                        format!(
                            "create a personal HTTP access token for `{user}` (Manage account → HTTP access tokens) with Project read and Repository admin permissions"
                        ),
                    ));
                }
                _ => preflight.push(Check::failed(
                    CheckKind::Token,
                    format!(
                        "Bitbucket Server refused username `{user}` with this token (HTTP 401: {})",
                        self.said(&basic, &scrub)
                    ),
                    format!(
                        "check `username` and that the token is a current personal HTTP access token of `{user}` (Manage account → HTTP access tokens)"
                    ),
                )),
            }
            preflight.skip_rest(&KINDS);
            return preflight;
        }
        preflight.push(Check::passed(
            CheckKind::Token,
            format!("username `{user}` and the token are accepted"),
        ));
        preflight.push(Check::passed(
            CheckKind::TokenKind,
            "a personal token (HTTP Basic accepted)",
        ));
        let check = match basic.status {
            200..=299 => Check::passed(
                CheckKind::Repository,
                format!("repository `{repository}` found"),
            ),
            403 | 404 => Check::failed(
                CheckKind::Repository,
                format!(
                    "repository `{repository}` was not found, or `{user}` cannot see it (HTTP {})",
                    basic.status
                ),
                format!(
                    "check `project` (the project key) and `repository` (its slug), and that `{user}` can read it"
                ),
            ),
            _ => self.unexpected(CheckKind::Repository, "GET", &repo_path, &basic, &scrub),
        };
        preflight.push(check);
        // Username: Bitbucket Server names the authenticated user in `X-AUSERNAME` (inferred
        // from Bitbucket Server's answers; Atlassian documents it for no endpoint). A token of
        // another user is one Platform.sh would use as that other user.
        if preflight.failed().is_none() {
            let said = basic
                .headers
                .get("x-ausername")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            preflight.push(match said {
                Some(name) if name.eq_ignore_ascii_case(username) => {
                    Check::passed(CheckKind::Username, format!("the token is `{user}`'s"))
                }
                Some(name) => Check::failed(
                    CheckKind::Username,
                    format!(
                        "the token belongs to `{}`, not to `{user}`",
                        shown(&clean_text(&name))
                    ),
                    format!(
                        "set `username` to the token's owner, or create a personal HTTP access token as `{user}`"
                    ),
                ),
                None => Check::skipped(
                    CheckKind::Username,
                    "the server did not say whose token it is (no X-AUSERNAME header)",
                ),
            });
        }
        // Webhook rights: `GET .../webhooks` needs REPO_ADMIN (Data Center REST API "Find
        // webhooks": "The authenticated user must have REPO_ADMIN permission"), which
        // Platform.sh needs to register its hook (Platform.sh docs: "admin access to
        // repositories").
        if preflight.failed().is_none() {
            let hooks_path = format!("{repo_path}/webhooks");
            let check = match server_url(self.server_base(base), &hooks_path) {
                Err(problem) => no_answer(CheckKind::Admin, &problem),
                Ok(url) => match self.get(&url, Auth::Basic(username, token), &scrub).await {
                    Ok(answer) if (200..300).contains(&answer.status) => Check::passed(
                        CheckKind::Admin,
                        format!("`{user}` may administer the webhooks of `{repository}`"),
                    ),
                    Ok(answer) if matches!(answer.status, 401 | 403) => Check::failed(
                        CheckKind::Admin,
                        format!(
                            "`{user}`'s token may not administer the webhooks of `{repository}` (HTTP {}): Platform.sh could not register its webhook",
                            answer.status
                        ),
                        format!(
                            "give `{user}` Admin on `{repository}` (Repository settings → Repository permissions), and use a token with Repository admin permission"
                        ),
                    ),
                    Ok(answer) => {
                        self.unexpected(CheckKind::Admin, "GET", &hooks_path, &answer, &scrub)
                    }
                    Err(problem) => no_answer(CheckKind::Admin, &problem),
                },
            };
            preflight.push(check);
        }
        preflight.skip_rest(&KINDS);
        preflight
    }

    /// Every hook of a Cloud repository: `GET /2.0/repositories/{w}/{r}/hooks` (REST API
    /// "Webhooks", "List webhooks for a repository").
    async fn cloud_hooks(
        &self,
        credentials: &BitbucketCredentials,
        key: &str,
        secret: &Secret,
        repository: &RepositoryRef,
    ) -> Result<Vec<Hook>, String> {
        let hooks: Vec<CloudHook> = self
            .cloud_list(credentials, key, secret, repository, "/hooks")
            .await?;
        Ok(hooks.into_iter().map(Hook::from).collect())
    }

    /// Every item of a Cloud repository listing `GET /2.0/repositories/{w}/{r}{below}`, paged
    /// by `next` (REST API "Pagination"), with the consumer's access token.
    async fn cloud_list<T: serde::de::DeserializeOwned>(
        &self,
        credentials: &BitbucketCredentials,
        key: &str,
        secret: &Secret,
        repository: &RepositoryRef,
        below: &str,
    ) -> Result<Vec<T>, String> {
        let cached = {
            let tokens = self.inner.tokens.lock().await;
            tokens
                .get(&credentials.identity())
                .filter(|(_, until)| Instant::now() < *until)
                .map(|(token, _)| token.clone())
        };
        let access = match cached {
            Some(token) => token,
            None => match self.grant(credentials, key, secret).await {
                Ok((token, _)) => token,
                Err(check) => {
                    return Err(match check.outcome {
                        CheckOutcome::Failed { problem, .. } => problem,
                        _ => "the token grant failed".to_owned(),
                    });
                }
            },
        };
        let scrub = [secret.clone(), access.clone()];
        let path = format!(
            "/2.0/repositories/{}/{}{below}",
            segment(&repository.workspace_or_project),
            segment(&repository.slug)
        );
        self.cloud_pages(&path, &access, &scrub).await
    }

    /// Every item of the Cloud listing at `path`, paged by `next`, with `access` as Bearer.
    async fn cloud_pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        access: &Secret,
        scrub: &[Secret],
    ) -> Result<Vec<T>, String> {
        let mut url = self.api_url(path, &[]);
        let mut items = Vec::new();
        let mut seen = BTreeSet::new();
        loop {
            let answer = self.get(&url, Auth::Bearer(access), scrub).await?;
            if !(200..300).contains(&answer.status) {
                return Err(format!(
                    "GET {path} answered HTTP {}: {}",
                    answer.status,
                    self.said(&answer, scrub)
                ));
            }
            let page: CloudPage<T> = serde_json::from_slice(&answer.body)
                .map_err(|_| format!("GET {path} returned an unexpected response"))?;
            let empty = page.values.is_empty();
            items.extend(page.values);
            let Some(next) = page.next.filter(|n| !n.trim().is_empty()) else {
                break;
            };
            // `next` is a full URL (REST API "Pagination"); only its query is taken, on the
            // configured API origin and this listing's path: a `next` elsewhere, a loop or
            // an empty page with a `next` end the listing with an error (inferred, as the
            // Platform.sh client's pager does).
            let next = Url::parse(&next)
                .or_else(|_| self.inner.api.join(&next))
                .map_err(|_| format!("GET {path}: the listing's `next` is not a URL"))?;
            if next.path() != url.path()
                || empty
                || !seen.insert(next.query().map(str::to_owned))
                || seen.len() > 100
            {
                return Err(format!(
                    "GET {path}: the listing's `next` link is not usable"
                ));
            }
            let mut rebased = url.clone();
            rebased.set_query(next.query());
            url = rebased;
        }
        Ok(items)
    }

    /// Posts `body` on a pull request, or updates the comment there that holds `marker`
    /// (`plan --pr-comment`, DESIGN §6), authenticated with `token` as Bearer (a repository or
    /// workspace access token: Bitbucket Cloud "Access tokens"). Bitbucket Cloud REST API,
    /// "Pullrequests" group: `GET .../pullrequests/{id}/comments` ("List comments on a pull
    /// request", paged), `PUT .../comments/{comment_id}` ("Update a comment on a pull
    /// request") and `POST .../comments` ("Create a comment on a pull request"), each with
    /// `{"content": {"raw": ...}}`. A POST is never retried once sent (it could post twice).
    pub async fn pr_comment(
        &self,
        token: &Secret,
        pull_request: &PullRequest,
        marker: &str,
        body: &str,
    ) -> Result<Posted, String> {
        let scrub = [token.clone()];
        let path = format!(
            "/2.0/repositories/{}/{}/pullrequests/{}/comments",
            segment(&pull_request.workspace),
            segment(&pull_request.slug),
            pull_request.id
        );
        let comments: Vec<crate::wire::bitbucket::CloudComment> =
            self.cloud_pages(&path, token, &scrub).await?;
        let mine = comments
            .iter()
            .find(|c| !c.deleted && c.content.raw.contains(marker));
        let payload = serde_json::json!({"content": {"raw": body}});
        let (method, url) = match mine {
            Some(comment) => (
                reqwest::Method::PUT,
                self.api_url(&format!("{path}/{}", comment.id), &[]),
            ),
            None => (reqwest::Method::POST, self.api_url(&path, &[])),
        };
        let retried = method == reqwest::Method::PUT;
        let answer = self
            .send(
                || {
                    self.inner
                        .http
                        .request(method.clone(), url.clone())
                        .header(reqwest::header::ACCEPT, "application/json")
                        .bearer_auth(token.expose())
                        .json(&payload)
                },
                retried,
                &scrub,
            )
            .await?;
        if !(200..300).contains(&answer.status) {
            return Err(format!(
                "{method} {} answered HTTP {}: {}",
                url.path(),
                answer.status,
                self.said(&answer, &scrub)
            ));
        }
        let written: crate::wire::bitbucket::CloudComment = serde_json::from_slice(&answer.body)
            .map_err(|_| format!("{method} {} returned an unexpected response", url.path()))?;
        Ok(match mine {
            Some(_) => Posted::Updated(written.id),
            None => Posted::Created(written.id),
        })
    }

    /// Posts `status` on `commit` of the Bitbucket Cloud `repository` with key
    /// [`COMMIT_STATUS_KEY`], replacing bbsync's earlier status there (DESIGN.md §7),
    /// authenticated with `token` as Bearer (a repository or workspace access token: Bitbucket
    /// Cloud "Access tokens"). Cloud REST API, "Commit statuses" group, "Create a build status
    /// for a commit": `POST /2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`
    /// with `{key, state, name, description, url}`; 201 (a new status) or 200 (inferred: the
    /// key existed and was overwritten). As a POST with the same key only overwrites, it is
    /// retried like a GET.
    ///
    /// Refused before any request: a `commit` that is not 7 to 40 hex digits, a workspace or
    /// slug that is empty, `.` or `..`, a `url` that is not `http(s)://`. A 401, 403 or 404 is
    /// said with what to fix. Errors never hold the token.
    pub async fn commit_status(
        &self,
        token: &Secret,
        repository: &RepositoryRef,
        commit: &str,
        status: &CommitStatus,
    ) -> Result<(), String> {
        let scrub = [token.clone()];
        let commit = check_commit(commit)?;
        for (what, part) in [
            ("workspace", &repository.workspace_or_project),
            ("repository slug", &repository.slug),
        ] {
            if part.is_empty() || part == "." || part == ".." {
                return Err(format!(
                    "cannot post a commit status: the {what} `{}` is not usable",
                    shown(&clean_text(part))
                ));
            }
        }
        let url = match &status.url {
            Some(url) => {
                let parsed = Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
                if parsed.is_none() {
                    return Err(format!(
                        "cannot post a commit status: its link `{}` is not an http(s) URL (Bitbucket refuses it)",
                        shown(&clean_text(url))
                    ));
                }
                url.clone()
            }
            None => format!(
                "{COMMIT_PAGE_BASE}/{}/{}/commits/{commit}",
                segment(&repository.workspace_or_project),
                segment(&repository.slug)
            ),
        };
        let payload = crate::wire::bitbucket::CloudCommitStatus {
            key: COMMIT_STATUS_KEY.to_owned(),
            state: status.state.as_str().to_owned(),
            name: Some(one_line(&status.name, COMMIT_STATUS_TEXT)),
            description: Some(one_line(&status.description, COMMIT_STATUS_TEXT)),
            url,
        };
        let path = format!(
            "/2.0/repositories/{}/{}/commit/{commit}/statuses/build",
            segment(&repository.workspace_or_project),
            segment(&repository.slug),
        );
        let target = self.api_url(&path, &[]);
        let answer = self
            .send(
                || {
                    self.inner
                        .http
                        .post(target.clone())
                        .header(reqwest::header::ACCEPT, "application/json")
                        .bearer_auth(token.expose())
                        .json(&payload)
                },
                true,
                &scrub,
            )
            .await?;
        if (200..300).contains(&answer.status) {
            return Ok(());
        }
        let hint = match answer.status {
            401 => format!(
                "BBSYNC_BITBUCKET_TOKEN was refused: check that it is a valid repository or workspace access token for `{repository}`"
            ),
            403 => format!(
                "the token may not post statuses on `{repository}`: it needs the `repository` scope (Read suffices: Atlassian's \"Updating commit status permissions\"), and a `{COMMIT_STATUS_KEY}` status that another user posted can be overwritten only by that user or a repository admin"
            ),
            404 => format!(
                "the repository `{repository}` or the commit `{commit}` is not there, or not visible to the token: check --commit-status-repo (or the repository --git-url names) and that the commit is pushed"
            ),
            429 => "Bitbucket is rate-limiting this token; the next run posts again".to_owned(),
            500.. => "Bitbucket failed; the next run posts again".to_owned(),
            _ => "check the repository, the commit and the token".to_owned(),
        };
        Err(format!(
            "POST {} answered HTTP {}: {}; {hint}",
            shown(&clean_text(target.path())),
            answer.status,
            self.said(&answer, &scrub)
        ))
    }

    /// Every webhook of a Server repository: `GET .../repos/{slug}/webhooks` (Data Center
    /// REST API "Find webhooks").
    async fn server_hooks(
        &self,
        base: &str,
        username: &str,
        token: &Secret,
        repository: &RepositoryRef,
    ) -> Result<Vec<Hook>, String> {
        let hooks: Vec<ServerHook> = self
            .server_list(base, username, token, repository, "/webhooks")
            .await?;
        Ok(hooks.into_iter().map(Hook::from).collect())
    }

    /// The names of the repository's branches: Cloud `GET /2.0/repositories/{w}/{r}/refs/branches`
    /// (REST API "List open branches", `values[].name`), Server `.../repos/{slug}/branches`
    /// (Data Center REST API "Get branches", `values[].displayId`), every page, with the same
    /// credentials as the pre-flight. For the environment preview (DESIGN §5).
    pub async fn branches(
        &self,
        credentials: &BitbucketCredentials,
        repository: &RepositoryRef,
    ) -> Result<BTreeSet<String>, String> {
        match credentials {
            BitbucketCredentials::Cloud { key, secret } => {
                let branches: Vec<crate::wire::bitbucket::CloudBranch> = self
                    .cloud_list(credentials, key, secret, repository, "/refs/branches")
                    .await?;
                Ok(branches.into_iter().map(|b| b.name).collect())
            }
            BitbucketCredentials::Server {
                url,
                username,
                token,
            } => {
                let branches: Vec<crate::wire::bitbucket::ServerBranch> = self
                    .server_list(url, username, token, repository, "/branches")
                    .await?;
                Ok(branches.into_iter().map(|b| b.display_id).collect())
            }
        }
    }

    /// Every item of a Server repository listing `GET .../repos/{slug}{below}`, paged by
    /// `start` / `nextPageStart` (Data Center REST API "Paged APIs").
    async fn server_list<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        username: &str,
        token: &Secret,
        repository: &RepositoryRef,
        below: &str,
    ) -> Result<Vec<T>, String> {
        let scrub = [token.clone()];
        let path = format!(
            "/rest/api/1.0/projects/{}/repos/{}{below}",
            segment(&repository.workspace_or_project),
            segment(&repository.slug)
        );
        let first = server_url(self.server_base(base), &path)?;
        let mut items = Vec::new();
        let mut start: Option<u64> = None;
        for _ in 0..100 {
            let mut url = first.clone();
            if let Some(start) = start {
                url.query_pairs_mut()
                    .append_pair("start", &start.to_string());
            }
            let answer = self.get(&url, Auth::Basic(username, token), &scrub).await?;
            if !(200..300).contains(&answer.status) {
                return Err(format!(
                    "GET {path} answered HTTP {}: {}",
                    answer.status,
                    self.said(&answer, &scrub)
                ));
            }
            let page: ServerPage<T> = serde_json::from_slice(&answer.body)
                .map_err(|_| format!("GET {path} returned an unexpected response"))?;
            items.extend(page.values);
            match page.next_page_start {
                Some(next) if !page.is_last_page && start.is_none_or(|s| next > s) => {
                    start = Some(next);
                }
                _ => return Ok(items),
            }
        }
        Err(format!(
            "GET {path}: the listing does not end after 100 pages"
        ))
    }

    /// `{api}{path}` with `query`.
    fn api_url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let base = self.inner.api.as_str().trim_end_matches('/');
        let mut url =
            Url::parse(&format!("{base}{path}")).unwrap_or_else(|_| self.inner.api.clone());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn get(&self, url: &Url, auth: Auth<'_>, scrub: &[Secret]) -> Result<Answer, String> {
        self.send(
            || {
                let request = self
                    .inner
                    .http
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json");
                match auth {
                    Auth::Basic(user, secret) => request.basic_auth(user, Some(secret.expose())),
                    Auth::Bearer(secret) => request.bearer_auth(secret.expose()),
                }
            },
            true,
            scrub,
        )
        .await
    }

    /// Sends a request, retrying 429 always and, when `transient` is retried, 5xx, refused
    /// connections and timeouts. An error is a sentence without secrets.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        transient: bool,
        scrub: &[Secret],
    ) -> Result<Answer, String> {
        let config = &self.inner.config;
        let throttle = &self.inner.throttle;
        let mut attempt = 0;
        let mut throttled = super::throttle::Waited::default();
        loop {
            attempt += 1;
            let request = build();
            let built = request.try_clone().and_then(|r| r.build().ok());
            let described = built
                .as_ref()
                .map(|r| format!("{} {}", r.method(), r.url().path()))
                .unwrap_or_else(|| "a request".to_owned());
            let url = built.map(|r| r.url().clone());
            let ticket = match &url {
                Some(url) => match throttle.turn(url, &mut throttled).await {
                    Ok(ticket) => Some(ticket),
                    Err(refusal) => {
                        return Err(self.refused(&described, refusal));
                    }
                },
                None => None,
            };
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let last = attempt >= config.max_attempts.max(1);
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status == 429
                        && let Some(ticket) = ticket
                    {
                        match throttle.throttled(ticket, retry_after(&response), &throttled) {
                            super::throttle::AfterThrottle::Retry => {
                                attempt -= 1;
                                continue;
                            }
                            super::throttle::AfterThrottle::GiveUp(refusal) => {
                                return Err(self.refused(&described, refusal));
                            }
                        }
                    }
                    if let Some(ticket) = ticket {
                        ticket.ended(true);
                    }
                    let retry = status == 429 || (transient && status >= 500);
                    if retry && !last {
                        let wait = retry_after(&response);
                        tracing::debug!(call = %described, status, attempt, "bitbucket: retrying");
                        self.wait(attempt, wait).await;
                        continue;
                    }
                    let headers = response.headers().clone();
                    let mut response = response;
                    return match read_body(&mut response, config.max_body).await {
                        Ok(body) => Ok(Answer {
                            status,
                            headers,
                            body,
                        }),
                        Err(BodyError::TooLarge) => Err(format!(
                            "{described} answered HTTP {status} with a body larger than bbsync reads"
                        )),
                        Err(BodyError::Read(error)) => Err(format!(
                            "{described} got no answer: {}",
                            transport_reason(&error)
                        )),
                    };
                }
                Err(error) => {
                    drop(ticket);
                    if transient && !last && (error.is_connect() || error.is_timeout()) {
                        self.wait(attempt, None).await;
                        continue;
                    }
                    if error.is_connect()
                        && let Some(url) = &url
                    {
                        throttle.mark_down(url);
                    }
                    let reason = transport_reason(&error);
                    let mut text = format!("{described} got no answer: {reason}");
                    for secret in scrub {
                        text = redact(&text, secret.expose());
                    }
                    return Err(text);
                }
            }
        }
    }

    /// A request the throttle would not let go, as the sentence [`BitbucketClient::send`]
    /// returns.
    fn refused(&self, described: &str, refusal: super::throttle::Refusal) -> String {
        match refusal {
            super::throttle::Refusal::Down => format!(
                "{described} got no answer: could not connect (the host was found unreachable earlier in this run)"
            ),
            super::throttle::Refusal::TooLong { asked, waited } => format!(
                "{described} was rate-limited by Bitbucket: it asked to wait {} s more after {} s of waiting, past the {} s a request may wait (--max-throttle-wait)",
                asked.as_secs(),
                waited.as_secs(),
                self.inner.throttle.max_wait().as_secs()
            ),
        }
    }

    async fn wait(&self, attempt: u32, retry_after: Option<Duration>) {
        let config = &self.inner.config;
        let delay = match retry_after {
            Some(wait) => wait.min(config.max_backoff),
            None => {
                let exponential =
                    crate::model::backoff::exponential(config.backoff, attempt, config.max_backoff);
                let half = exponential / 2;
                half + half.mul_f64(fastrand::f64())
            }
        };
        tokio::time::sleep(delay).await;
    }

    /// What Bitbucket said in an error answer: its message, cleaned, with every secret
    /// redacted, cut for display.
    fn said(&self, answer: &Answer, scrub: &[Secret]) -> String {
        let text = error_message(&answer.body).unwrap_or_else(|| {
            let (message, _) = super::error::describe_answer(&answer.body);
            message
        });
        let mut text = clean_text(&text);
        for secret in scrub {
            text = redact(&text, secret.expose());
        }
        shown(&text)
    }

    fn unexpected(
        &self,
        kind: CheckKind,
        method: &str,
        path: &str,
        answer: &Answer,
        scrub: &[Secret],
    ) -> Check {
        let said = self.said(answer, scrub);
        let hint = match answer.status {
            401 => "the credentials were refused; check them",
            429 => "Bitbucket is rate-limiting these credentials; try again later",
            500.. => "Bitbucket failed; try again later",
            _ => "check the repository and the credentials",
        };
        Check::failed(
            kind,
            format!(
                "{method} {} answered HTTP {}: {said}",
                shown(&clean_text(path)),
                answer.status
            ),
            hint,
        )
    }
}

/// A check that failed because Bitbucket did not answer.
fn no_answer(kind: CheckKind, problem: &str) -> Check {
    Check::failed(
        kind,
        problem.to_owned(),
        "check the Bitbucket URL and the network, then try again",
    )
}

/// `commit` lowercased if it is 7 to 40 hex digits (an abbreviated or full SHA-1, as Git
/// writes them); the error otherwise. It goes into a URL path, so nothing else may pass.
fn check_commit(commit: &str) -> Result<String, String> {
    if (7..=40).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(commit.to_ascii_lowercase())
    } else {
        Err(format!(
            "cannot post a commit status: `{}` is not a commit SHA (7 to 40 hex digits)",
            shown(&clean_text(commit))
        ))
    }
}

/// `text` on one line (line breaks and other control characters become spaces, runs of
/// spaces one), cut to `most` characters with `…` at the end when cut.
fn one_line(text: &str, most: usize) -> String {
    let line = text
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if line.chars().count() <= most {
        line
    } else {
        let mut cut: String = line.chars().take(most.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// `text` as one URL path segment.
fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `{base}{path}` for a Server `url`, checked against the URL policy.
fn server_url(base: &str, path: &str) -> Result<Url, String> {
    let base = crate::model::check_url("the Bitbucket Server URL", base)?;
    let joined = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&joined).map_err(|e| format!("the Bitbucket Server URL is not usable ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_higher_scope_covers_a_lower_one() {
        assert!(scope_covers("repository:admin", "repository:write"));
        assert!(scope_covers("repository:write", "repository"));
        assert!(scope_covers("pullrequest:write", "pullrequest"));
        assert!(scope_covers("account:write", "account"));
        assert!(scope_covers("webhook", "webhook"));
        assert!(!scope_covers("repository", "repository:write"));
        assert!(!scope_covers("pullrequest", "webhook"));
        assert!(!scope_covers("email", "account"));
        assert_eq!(
            missing_scopes(&strings(&[
                "account",
                "repository:admin",
                "pullrequest",
                "webhook"
            ])),
            Vec::<&str>::new()
        );
        assert_eq!(
            missing_scopes(&strings(&["email", "repository", "pullrequest"])),
            [
                "Account: Read",
                "Repositories: Write",
                "Webhooks: Read and write"
            ]
        );
        assert_eq!(missing_scopes(&[]).len(), 5);
    }

    #[test]
    fn token_refusals_are_told_apart() {
        let body = |error: &str, description: &str| OAuthError {
            error: Some(error.to_owned()),
            error_description: Some(description.to_owned()),
        };
        assert_eq!(
            classify_refusal(
                400,
                &body(
                    "invalid_grant",
                    "Cannot use client_credentials with a consumer marked as \"public\". Calls for auto generated consumers should use urn:bitbucket:oauth2:jwt instead."
                )
            ),
            Refusal::Public
        );
        assert_eq!(
            classify_refusal(
                400,
                &body(
                    "invalid_grant",
                    "No callback uri defined for the OAuth client."
                )
            ),
            Refusal::Callback
        );
        assert_eq!(
            classify_refusal(
                400,
                &body("unauthorized_client", "Invalid OAuth client credentials")
            ),
            Refusal::Credentials
        );
        assert_eq!(
            classify_refusal(401, &OAuthError::default()),
            Refusal::Credentials
        );
        assert_eq!(
            classify_refusal(400, &body("invalid_request", "Something else")),
            Refusal::Other
        );
    }

    #[test]
    fn hook_urls_name_their_integration() {
        assert_eq!(
            platform_hook_integration(
                "https://eu-3.platform.sh/api/projects/p1/integrations/abc123/hook"
            )
            .as_deref(),
            Some("abc123")
        );
        assert_eq!(
            platform_hook_integration("https://x.example/projects/p1/integrations/abc/hook/")
                .as_deref(),
            Some("abc")
        );
        for other in [
            "https://ci.example.com/hook",
            "https://eu-3.platform.sh/api/projects/p1/integrations/abc",
            "https://eu-3.platform.sh/api/projects/p1/integrations//hook",
            "not a url",
        ] {
            assert_eq!(platform_hook_integration(other), None, "{other}");
        }
    }

    #[test]
    fn hooks_pass_only_when_active_with_every_event() {
        let url = "https://eu-3.platform.sh/api/projects/p1/integrations/i1/hook";
        let hook = |url: &str, active: bool, events: &[&str]| Hook {
            url: url.to_owned(),
            active,
            events: strings(events),
        };
        let judge =
            |hooks: &[Hook]| judge_hooks(hooks, url, &CLOUD_HOOK_EVENTS, &strings(&["i1"]), "here");
        assert!(!judge(&[hook(url, true, &CLOUD_HOOK_EVENTS)]).is_failed());
        let inactive = judge(&[hook(url, false, &CLOUD_HOOK_EVENTS)]);
        assert!(
            matches!(&inactive.outcome, CheckOutcome::Failed { problem, hint } if problem.contains("inactive") && hint.contains(url) && hint.contains("pullrequest:fulfilled")),
            "{inactive:?}"
        );
        let partial = judge(&[hook(url, true, &["repo:push"])]);
        assert!(
            matches!(&partial.outcome, CheckOutcome::Failed { problem, .. } if problem.contains("pullrequest:created")),
            "{partial:?}"
        );
        let stale_url = "https://eu-3.platform.sh/api/projects/p1/integrations/gone/hook";
        let missing = judge(&[hook(stale_url, true, &CLOUD_HOOK_EVENTS)]);
        assert!(
            matches!(&missing.outcome, CheckOutcome::Failed { problem, .. } if problem.contains("no webhook") && problem.contains("stale") && problem.contains("`gone`")),
            "{missing:?}"
        );
        let both = judge(&[
            hook(url, true, &CLOUD_HOOK_EVENTS),
            hook(stale_url, true, &["repo:push"]),
        ]);
        assert!(
            matches!(&both.outcome, CheckOutcome::Passed { note } if note.contains("stale")),
            "{both:?}"
        );
        // A hook of a known integration is not stale.
        let known = judge_hooks(
            &[
                hook(url, true, &CLOUD_HOOK_EVENTS),
                hook(stale_url, true, &[]),
            ],
            url,
            &CLOUD_HOOK_EVENTS,
            &strings(&["i1", "gone"]),
            "here",
        );
        assert!(matches!(&known.outcome, CheckOutcome::Passed { note } if !note.contains("stale")));
    }

    #[test]
    fn the_cache_key_holds_no_secret() {
        let cloud = BitbucketCredentials::Cloud {
            key: "k".to_owned(),
            secret: Secret::new("hunter2"),
        };
        let other = BitbucketCredentials::Cloud {
            key: "k".to_owned(),
            secret: Secret::new("hunter3"),
        };
        assert!(!cloud.identity().contains("hunter2"));
        assert_ne!(cloud.identity(), other.identity());
        assert!(!format!("{cloud:?}").contains("hunter2"));
    }

    #[test]
    fn repositories_parse_from_the_integration_field() {
        assert_eq!(
            RepositoryRef::parse("acme/web"),
            Some(RepositoryRef::new("acme", "web"))
        );
        for bad in ["acme", "/web", "acme/", "a/b/c"] {
            assert_eq!(RepositoryRef::parse(bad), None, "{bad}");
        }
    }
}
