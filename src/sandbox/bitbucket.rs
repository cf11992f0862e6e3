//! The sandbox's Bitbucket: an in-process fake of Bitbucket Cloud (the OAuth token endpoint
//! `/site/oauth2/access_token` and the API under `/2.0/`) and of Bitbucket Server / Data
//! Center (`/rest/api/1.0/`), served by the same router as the Platform.sh fake (the paths do
//! not collide). It answers what bbsync's pre-flight asks (and takes the pull-request
//! comments and commit statuses bbsync posts), with Bitbucket's rules as far as
//! they are documented (each rule says its source, or "inferred"), and is seeded from the
//! `bitbucket` section of the sandbox seed ([`BitbucketSeed`]).
//!
//! Faults come from the seed: a wrong secret, a public consumer, a consumer without callback
//! URL or without a scope, a missing repository, an owner who is not an admin, a Server
//! token without REPO_ADMIN or that works only as Bearer, a token of another user. And from
//! [`Bitbucket::throttle`]: the next requests answered 429.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::world::World;
use super::{Shared, json_answer, lock};
use crate::wire::bitbucket::{
    CloudComment, CloudCommitStatus, CloudError, CloudErrorDetail, CloudHook, CloudPage,
    CloudRepository, CommentContent, OAuthError, OAuthToken, ServerErrors, ServerHook, ServerPage,
    ServerProject, ServerRepository,
};

/// The `bitbucket` section of the sandbox seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitbucketSeed {
    /// Bitbucket Cloud OAuth consumers.
    #[serde(default)]
    pub consumers: Vec<SeedConsumer>,
    /// Bitbucket Cloud workspaces, with their admins and repositories.
    #[serde(default)]
    pub workspaces: Vec<SeedWorkspace>,
    /// Bitbucket Server users and their tokens.
    #[serde(default)]
    pub server_users: Vec<SeedServerUser>,
    /// Bitbucket Server projects and their repositories.
    #[serde(default)]
    pub server_projects: Vec<SeedServerProject>,
}

/// A Bitbucket Cloud OAuth consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedConsumer {
    /// Its key.
    pub key: String,
    /// Its secret.
    pub secret: String,
    /// "This is a private consumer" is ticked (default true).
    #[serde(default = "yes")]
    pub private: bool,
    /// It has a callback URL (default true).
    #[serde(default = "yes")]
    pub callback_url: bool,
    /// The scopes it grants (default: those Platform.sh needs).
    #[serde(default = "needed_scopes")]
    pub scopes: Vec<String>,
    /// The user who owns it: its tokens act as this user.
    pub owner: String,
}

/// A Bitbucket Cloud workspace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedWorkspace {
    /// Its slug.
    pub slug: String,
    /// Users who administer every repository of it.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Users who can read every repository of it.
    #[serde(default)]
    pub members: Vec<String>,
    /// Its repositories.
    #[serde(default)]
    pub repositories: Vec<SeedRepository>,
}

/// A repository (Cloud or Server).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRepository {
    /// Its slug.
    pub slug: String,
    /// Its branches.
    #[serde(default)]
    pub branches: Vec<String>,
    /// Cloud: users who administer it (besides the workspace's admins).
    #[serde(default)]
    pub admins: Vec<String>,
    /// Its webhooks.
    #[serde(default)]
    pub hooks: Vec<SeedHook>,
    /// A webhook registered on it does not stay (a test knob: a hook deleted by hand right
    /// after Platform.sh registered it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drops_hooks: bool,
}

/// A webhook.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedHook {
    /// Where it posts.
    pub url: String,
    /// Whether it is active (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// Its events.
    #[serde(default)]
    pub events: Vec<String>,
}

/// A Bitbucket Server user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedServerUser {
    /// The username (`X-AUSERNAME` of its requests).
    pub name: String,
    /// Its HTTP access tokens.
    #[serde(default)]
    pub tokens: Vec<SeedServerToken>,
}

/// A Bitbucket Server HTTP access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedServerToken {
    /// The token.
    pub token: String,
    /// Personal, or a project or repository token (which works only as Bearer).
    #[serde(default)]
    pub kind: ServerTokenKind,
    /// It has Repository admin permission, and its user REPO_ADMIN (default true).
    #[serde(default = "yes")]
    pub repo_admin: bool,
}

/// What a Bitbucket Server HTTP access token belongs to (Atlassian "HTTP access tokens":
/// personal, project and repository tokens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerTokenKind {
    /// A user's own token: HTTP Basic with the username, or Bearer.
    #[default]
    Personal,
    /// A project's token: Bearer only.
    Project,
    /// A repository's token: Bearer only.
    Repository,
}

/// A Bitbucket Server project.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedServerProject {
    /// Its key (`PROJ`).
    pub key: String,
    /// Its repositories.
    #[serde(default)]
    pub repositories: Vec<SeedRepository>,
}

fn yes() -> bool {
    true
}

fn open_token(token: &str) -> SeedServerToken {
    SeedServerToken {
        token: token.to_owned(),
        kind: ServerTokenKind::Personal,
        repo_admin: true,
    }
}

/// What Platform.sh needs of a consumer (Platform.sh docs "Integrate with Bitbucket").
fn needed_scopes() -> Vec<String> {
    [
        "account",
        "email",
        "repository:write",
        "pullrequest",
        "webhook",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The fake Bitbucket's state.
#[derive(Debug, Clone, Default)]
pub struct Bitbucket {
    /// What it holds; hooks registered are added to its repositories.
    pub seed: BitbucketSeed,
    /// Requests received (`METHOD path?query`), oldest first.
    pub requests: Vec<String>,
    /// Answer this many of the next requests 429 with `Retry-After: 0`.
    pub throttle: u32,
    /// Access tokens issued: token -> consumer key.
    access: HashMap<String, String>,
    /// Nothing was seeded: the fake lets everything through ([`Bitbucket::open_up`]).
    open: bool,
    /// The access tokens accepted (as Bearer) for pull-request comments and commit statuses;
    /// none: any.
    pub pr_tokens: Vec<String>,
    /// Pull-request comments, by (workspace, slug, pull request): any pull request exists.
    pub(crate) comments: std::collections::BTreeMap<(String, String, u64), Vec<CloudComment>>,
    /// Pull-request comments posted, for IDs.
    comments_posted: u64,
    /// Commit statuses by (workspace, slug, commit): the one standing per key.
    statuses: std::collections::BTreeMap<(String, String, String), Vec<CloudCommitStatus>>,
    /// Every commit status posted, by (workspace, slug, commit), oldest first.
    status_posts: std::collections::BTreeMap<(String, String, String), Vec<CloudCommitStatus>>,
}

/// A commit status the fake holds ([`Bitbucket::commit_statuses`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatusRecord {
    /// Its key.
    pub key: String,
    /// `INPROGRESS`, `SUCCESSFUL`, `FAILED` or `STOPPED`.
    pub state: String,
    /// Its name.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// Where it links.
    pub url: String,
}

impl From<&CloudCommitStatus> for CommitStatusRecord {
    fn from(status: &CloudCommitStatus) -> Self {
        Self {
            key: status.key.clone(),
            state: status.state.clone(),
            name: status.name.clone(),
            description: status.description.clone(),
            url: status.url.clone(),
        }
    }
}

/// The user an open fake's consumers and tokens act as.
const OPEN_USER: &str = "sandbox-user";

/// Credentials that register a webhook, as the Platform.sh fake holds them: the secret as its
/// SHA-256 (hex), as [`World`] stores secrets.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // wired by the reconcile pass
pub(crate) enum HookCredentials<'a> {
    /// A Cloud consumer.
    Cloud {
        /// Its key.
        key: &'a str,
        /// SHA-256 of its secret.
        secret_sha256: &'a str,
    },
    /// A Server user and personal token.
    Server {
        /// The user.
        username: &'a str,
        /// SHA-256 of the token.
        token_sha256: &'a str,
    },
}

fn sha256(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Whether the granted scope `granted` covers `needed` (the fake's own table, kept apart from
/// the client's so that a mistake in one is caught by the other; the same rules: Atlassian
/// "App password permissions"; the consumer form ticks lower levels with a higher one,
/// inferred).
fn covers(granted: &str, needed: &str) -> bool {
    granted == needed
        || matches!(
            (granted, needed),
            ("repository:admin", "repository:write" | "repository")
                | ("repository:write", "repository")
                | (
                    "pullrequest:write",
                    "pullrequest" | "repository:write" | "repository"
                )
                | ("pullrequest", "repository")
                | ("account:write", "account" | "email")
                | ("account", "email")
        )
}

impl Bitbucket {
    /// A fake Bitbucket holding `seed`.
    pub(crate) fn new(seed: BitbucketSeed) -> Self {
        let open = seed.consumers.is_empty()
            && seed.workspaces.is_empty()
            && seed.server_users.is_empty()
            && seed.server_projects.is_empty();
        Self {
            seed,
            open,
            ..Self::default()
        }
    }

    /// An unseeded fake is open, a sandbox convenience (not Bitbucket's behaviour): before a
    /// request is answered, what it names is made to exist and to allow it — a private
    /// consumer with the key and secret it presents, every scope Platform.sh needs and an
    /// owner who administers every repository; any repository (no branches); a Server user
    /// with the personal token it presents, with REPO_ADMIN. So the Platform.sh fake works
    /// without a Bitbucket seed, and a seeded one is strict.
    fn open_up(&mut self, path: &str, headers: &HeaderMap) {
        if !self.open {
            return;
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["site", "oauth2", "access_token"] => {
                if let Some((key, secret)) = basic(headers) {
                    self.open_consumer(&key, &secret);
                }
            }
            // The workspace listing (`?q=full_name=...`) comes after the repository's own GET
            // in a pre-flight, which made the repository.
            ["2.0", "repositories", workspace, rest @ ..] => {
                self.open_cloud(workspace, rest.first().copied());
            }
            ["rest", "api", "1.0", "projects", project, "repos", slug, ..] => {
                if let Some((user, token)) = basic(headers) {
                    self.open_server(&user, &token, project, slug);
                }
            }
            _ => {}
        }
    }

    fn open_consumer(&mut self, key: &str, secret: &str) {
        match self.seed.consumers.iter_mut().find(|c| c.key == key) {
            Some(consumer) => consumer.secret = secret.to_owned(),
            None => self.seed.consumers.push(SeedConsumer {
                key: key.to_owned(),
                secret: secret.to_owned(),
                private: true,
                callback_url: true,
                scopes: needed_scopes(),
                owner: OPEN_USER.to_owned(),
            }),
        }
    }

    fn open_cloud(&mut self, workspace: &str, slug: Option<&str>) {
        let index = match self
            .seed
            .workspaces
            .iter()
            .position(|w| w.slug == workspace)
        {
            Some(index) => index,
            None => {
                self.seed.workspaces.push(SeedWorkspace {
                    slug: workspace.to_owned(),
                    admins: vec![OPEN_USER.to_owned()],
                    ..SeedWorkspace::default()
                });
                self.seed.workspaces.len() - 1
            }
        };
        let workspace = &mut self.seed.workspaces[index];
        if let Some(slug) = slug
            && !workspace.repositories.iter().any(|r| r.slug == slug)
        {
            workspace.repositories.push(SeedRepository {
                slug: slug.to_owned(),
                ..SeedRepository::default()
            });
        }
    }

    fn open_server(&mut self, user: &str, token: &str, project: &str, slug: &str) {
        match self.seed.server_users.iter_mut().find(|u| u.name == user) {
            Some(u) if u.tokens.iter().any(|t| t.token == token) => {}
            Some(u) => u.tokens.push(open_token(token)),
            None => self.seed.server_users.push(SeedServerUser {
                name: user.to_owned(),
                tokens: vec![open_token(token)],
            }),
        }
        self.open_server_repository(project, slug);
    }

    fn open_server_repository(&mut self, project: &str, slug: &str) {
        let index = match self
            .seed
            .server_projects
            .iter()
            .position(|p| p.key.eq_ignore_ascii_case(project))
        {
            Some(index) => index,
            None => {
                self.seed.server_projects.push(SeedServerProject {
                    key: project.to_owned(),
                    repositories: Vec::new(),
                });
                self.seed.server_projects.len() - 1
            }
        };
        let repositories = &mut self.seed.server_projects[index].repositories;
        if !repositories.iter().any(|r| r.slug == slug) {
            repositories.push(SeedRepository {
                slug: slug.to_owned(),
                ..SeedRepository::default()
            });
        }
    }

    /// Adds a comment to a pull request, as a reviewer would.
    pub fn add_pr_comment(&mut self, workspace: &str, slug: &str, id: u64, raw: &str) {
        let content = CommentContent {
            raw: raw.to_owned(),
        };
        self.push_comment(workspace, slug, id, content);
    }

    /// Adds a comment with a new ID; returns it.
    fn push_comment(
        &mut self,
        workspace: &str,
        slug: &str,
        id: u64,
        content: CommentContent,
    ) -> CloudComment {
        self.comments_posted += 1;
        let comment = CloudComment {
            id: 1000 + self.comments_posted,
            content,
            deleted: false,
        };
        self.comments
            .entry((workspace.to_owned(), slug.to_owned(), id))
            .or_default()
            .push(comment.clone());
        comment
    }

    /// The text of each comment on a pull request, oldest first.
    pub fn pr_comments(&self, workspace: &str, slug: &str, id: u64) -> Vec<String> {
        self.comments
            .get(&(workspace.to_owned(), slug.to_owned(), id))
            .map(|c| c.iter().map(|c| c.content.raw.clone()).collect())
            .unwrap_or_default()
    }

    /// The commit statuses standing on a commit: one per key, the latest post of each, in the
    /// order the keys first came.
    pub fn commit_statuses(
        &self,
        workspace: &str,
        slug: &str,
        commit: &str,
    ) -> Vec<CommitStatusRecord> {
        self.statuses
            .get(&(workspace.to_owned(), slug.to_owned(), commit.to_owned()))
            .map(|all| all.iter().map(CommitStatusRecord::from).collect())
            .unwrap_or_default()
    }

    /// Every commit status posted on a commit, oldest first (INPROGRESS, then SUCCESSFUL).
    pub fn commit_status_posts(
        &self,
        workspace: &str,
        slug: &str,
        commit: &str,
    ) -> Vec<CommitStatusRecord> {
        self.status_posts
            .get(&(workspace.to_owned(), slug.to_owned(), commit.to_owned()))
            .map(|all| all.iter().map(CommitStatusRecord::from).collect())
            .unwrap_or_default()
    }

    /// Posts a commit status: it replaces the one with its key, if any (Cloud REST API
    /// "Create a build status for a commit": "If the specified key already exists, the
    /// existing status object will be overwritten"); `true` if it was new.
    fn post_status(
        &mut self,
        workspace: &str,
        slug: &str,
        commit: &str,
        status: CloudCommitStatus,
    ) -> bool {
        let at = (workspace.to_owned(), slug.to_owned(), commit.to_owned());
        self.status_posts
            .entry(at.clone())
            .or_default()
            .push(status.clone());
        let standing = self.statuses.entry(at).or_default();
        match standing.iter_mut().find(|s| s.key == status.key) {
            Some(existing) => {
                *existing = status;
                false
            }
            None => {
                standing.push(status);
                true
            }
        }
    }

    /// The access tokens issued so far (for tests that look for them where they must not be).
    pub fn access_tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = self.access.keys().cloned().collect();
        tokens.sort();
        tokens
    }

    fn consumer(&self, key: &str) -> Option<&SeedConsumer> {
        self.seed.consumers.iter().find(|c| c.key == key)
    }

    fn workspace(&self, slug: &str) -> Option<&SeedWorkspace> {
        self.seed.workspaces.iter().find(|w| w.slug == slug)
    }

    fn can_read(workspace: &SeedWorkspace, repository: &SeedRepository, user: &str) -> bool {
        Self::can_admin(workspace, repository, user) || workspace.members.iter().any(|m| m == user)
    }

    fn can_admin(workspace: &SeedWorkspace, repository: &SeedRepository, user: &str) -> bool {
        workspace.admins.iter().any(|a| a == user) || repository.admins.iter().any(|a| a == user)
    }

    fn server_token(&self, token: &str) -> Option<(&SeedServerUser, &SeedServerToken)> {
        self.seed.server_users.iter().find_map(|user| {
            user.tokens
                .iter()
                .find(|t| t.token == token)
                .map(|t| (user, t))
        })
    }

    fn server_repository_mut(&mut self, project: &str, slug: &str) -> Option<&mut SeedRepository> {
        self.seed
            .server_projects
            .iter_mut()
            .find(|p| p.key.eq_ignore_ascii_case(project))?
            .repositories
            .iter_mut()
            .find(|r| r.slug == slug)
    }

    fn server_repository(&self, project: &str, slug: &str) -> Option<&SeedRepository> {
        self.seed
            .server_projects
            .iter()
            .find(|p| p.key.eq_ignore_ascii_case(project))?
            .repositories
            .iter()
            .find(|r| r.slug == slug)
    }

    /// Adds (or re-activates, with these events) the webhook `url` on repository
    /// `owner/slug` (a Cloud workspace, or a Server project key), as Platform.sh's
    /// `register_hooks` activity does with the integration's credentials; `false`, and
    /// nothing changed, when they may not (the same rules as the API: a private consumer
    /// with a callback URL, the `webhook` scope and an owner who administers the repository;
    /// a Server personal token with REPO_ADMIN).
    pub(crate) fn register_hook(
        &mut self,
        credentials: HookCredentials<'_>,
        owner: &str,
        slug: &str,
        url: &str,
        events: &[String],
    ) -> bool {
        if self.open {
            // Open: the credentials are whatever Platform.sh holds; the repository is made.
            match credentials {
                HookCredentials::Cloud { .. } => self.open_cloud(owner, Some(slug)),
                HookCredentials::Server { .. } => self.open_server_repository(owner, slug),
            }
            let repository = match credentials {
                HookCredentials::Cloud { .. } => self
                    .seed
                    .workspaces
                    .iter_mut()
                    .find(|w| w.slug == owner)
                    .and_then(|w| w.repositories.iter_mut().find(|r| r.slug == slug)),
                HookCredentials::Server { .. } => self.server_repository_mut(owner, slug),
            };
            let Some(repository) = repository else {
                return false;
            };
            add_hook(repository, url, events);
            return true;
        }
        let repository = match credentials {
            HookCredentials::Cloud { key, secret_sha256 } => {
                let Some(consumer) = self.consumer(key) else {
                    return false;
                };
                let allowed = sha256(&consumer.secret) == secret_sha256
                    && consumer.private
                    && consumer.callback_url
                    && consumer.scopes.iter().any(|s| covers(s, "webhook"));
                let user = consumer.owner.clone();
                let Some(workspace) = self.seed.workspaces.iter_mut().find(|w| w.slug == owner)
                else {
                    return false;
                };
                let admins = workspace.admins.clone();
                let Some(repository) = workspace.repositories.iter_mut().find(|r| r.slug == slug)
                else {
                    return false;
                };
                if !allowed || !(admins.contains(&user) || repository.admins.contains(&user)) {
                    return false;
                }
                repository
            }
            HookCredentials::Server {
                username,
                token_sha256,
            } => {
                let allowed = self.seed.server_users.iter().any(|u| {
                    u.name == username
                        && u.tokens.iter().any(|t| {
                            sha256(&t.token) == token_sha256
                                && t.kind == ServerTokenKind::Personal
                                && t.repo_admin
                        })
                });
                match self.server_repository_mut(owner, slug) {
                    Some(repository) if allowed => repository,
                    _ => return false,
                }
            }
        };
        add_hook(repository, url, events);
        true
    }
}

/// Adds (or re-activates, with these events) the webhook `url` on `repository`.
fn add_hook(repository: &mut SeedRepository, url: &str, events: &[String]) {
    if repository.drops_hooks {
        return;
    }
    match repository.hooks.iter_mut().find(|h| h.url == url) {
        Some(hook) => {
            hook.active = true;
            hook.events = events.to_vec();
        }
        None => repository.hooks.push(SeedHook {
            url: url.to_owned(),
            active: true,
            events: events.to_vec(),
        }),
    }
}

impl World {
    /// [`Bitbucket::register_hook`] on this world's Bitbucket.
    #[allow(dead_code)] // wired by the reconcile pass
    pub(crate) fn register_hook(
        &mut self,
        credentials: HookCredentials<'_>,
        owner: &str,
        slug: &str,
        url: &str,
        events: &[String],
    ) -> bool {
        self.bitbucket
            .register_hook(credentials, owner, slug, url, events)
    }
}

/// The fake Bitbucket's routes.
pub(super) fn routes(world: Shared) -> Router<Shared> {
    Router::new()
        .route("/site/oauth2/access_token", post(token))
        .route("/2.0/repositories/{workspace}", get(cloud_list))
        .route(
            "/2.0/repositories/{workspace}/{slug}",
            get(cloud_repository),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/hooks",
            get(cloud_hooks),
        )
        .route(
            "/rest/api/1.0/projects/{project}/repos/{slug}",
            get(server_repository),
        )
        .route(
            "/rest/api/1.0/projects/{project}/repos/{slug}/webhooks",
            get(server_hooks),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/refs/branches",
            get(cloud_branches),
        )
        .route(
            "/rest/api/1.0/projects/{project}/repos/{slug}/branches",
            get(server_branches),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/pullrequests/{id}/comments",
            get(list_comments).post(post_comment),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/pullrequests/{id}/comments/{comment}",
            axum::routing::put(update_comment),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/commit/{commit}/statuses",
            get(list_statuses),
        )
        .route(
            "/2.0/repositories/{workspace}/{slug}/commit/{commit}/statuses/build",
            post(post_status),
        )
        .layer(middleware::from_fn_with_state(world, gate))
}

/// Every Bitbucket request: recorded, and answered 429 while [`Bitbucket::throttle`] lasts
/// (Bitbucket Cloud "API request limits": 429 when over the hourly limit; the `Retry-After`
/// header is inferred).
async fn gate(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let throttled = {
        let mut w = lock(&world);
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        w.bitbucket
            .requests
            .push(format!("{} {target}", request.method()));
        w.bitbucket.open_up(request.uri().path(), request.headers());
        if w.bitbucket.throttle > 0 {
            w.bitbucket.throttle -= 1;
            true
        } else {
            false
        }
    };
    if throttled {
        let mut response = cloud_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("0"));
        return response;
    }
    next.run(request).await
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = OAuthError {
        error: Some(error.to_owned()),
        error_description: Some(description.to_owned()),
    };
    json_answer(status, "application/json", &body)
}

/// A Cloud error: `{"type": "error", "error": {"message": ...}}` (REST API "Error").
fn cloud_error(status: StatusCode, message: &str) -> Response {
    let body = CloudError {
        kind: Some("error".to_owned()),
        error: Some(CloudErrorDetail {
            message: Some(message.to_owned()),
        }),
    };
    json_answer(status, "application/json", &body)
}

/// A Server error: `{"errors": [{"message": ...}]}` (Data Center REST API "Errors").
fn server_error(status: StatusCode, message: &str) -> Response {
    json_answer(status, "application/json", &ServerErrors::one(message))
}

/// The `user:password` of an `Authorization: Basic` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

/// Standard base64, padded (RFC 4648 §4), as HTTP Basic carries it (RFC 7617).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut buffer = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            buffer |= value(*c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = buffer.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&[a, b, c]),
            3 => out.extend_from_slice(&[a, b]),
            2 => out.push(a),
            _ => return None,
        }
    }
    Some(out)
}

/// `POST /site/oauth2/access_token`, `grant_type=client_credentials`, the consumer's key and
/// secret as HTTP Basic (Bitbucket Cloud OAuth 2.0 "Client Credentials Grant"; upsun/cli
/// `getBitbucketAccessToken`).
async fn token(
    State(world): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some((key, secret)) = basic(&headers) else {
        // RFC 6749 §5.2: `invalid_client` with 401 when the client authenticated through
        // the `Authorization` header; here it did not at all (inferred).
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client credentials missing",
        );
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type",
        );
    }
    let mut w = lock(&world);
    let Some(consumer) = w.bitbucket.consumer(&key).cloned() else {
        // An unknown key: 401 `invalid_client` (RFC 6749 §5.2; the words as in
        // SonarSource/sonarqube `BitbucketCloudRestClientTest`).
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid OAuth client credentials",
        );
    };
    if consumer.secret != secret {
        // A wrong secret: 400 `unauthorized_client` "Invalid OAuth client credentials"
        // (SonarSource/sonarqube `BitbucketCloudRestClientTest`).
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Invalid OAuth client credentials",
        );
    }
    if !consumer.private {
        // SonarSource/sonarqube `BitbucketCloudRestClientTest`, word for word.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Cannot use client_credentials with a consumer marked as \"public\". Calls for auto generated consumers should use urn:bitbucket:oauth2:jwt instead.",
        );
    }
    if !consumer.callback_url {
        // A 400 (upsun/cli `validateBitbucketCredentials` hints at the callback URL on a
        // 400); the words are as users report them, inferred.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "No callback uri defined for the OAuth client.",
        );
    }
    let issued = w.bitbucket.access.len();
    let access = format!(
        "bbat-{issued}-{}",
        &sha256(&format!("{}:{issued}", consumer.key))[..24]
    );
    w.bitbucket
        .access
        .insert(access.clone(), consumer.key.clone());
    let body = OAuthToken {
        access_token: access,
        scopes: Some(consumer.scopes.join(" ")),
        expires_in: Some(7200),
        token_type: Some("bearer".to_owned()),
    };
    json_answer(StatusCode::OK, "application/json", &body)
}

/// The consumer behind a request's Bearer token, or the 401 (REST API "Authentication
/// methods"; the message is inferred).
fn cloud_caller(w: &World, headers: &HeaderMap) -> Result<SeedConsumer, Box<Response>> {
    bearer(headers)
        .and_then(|token| w.bitbucket.access.get(&token))
        .and_then(|key| w.bitbucket.consumer(key))
        .cloned()
        .ok_or_else(|| {
            Box::new(cloud_error(
                StatusCode::UNAUTHORIZED,
                "Access token expired or invalid.",
            ))
        })
}

/// 403 unless the consumer was granted a scope covering `needed` (Bitbucket answers "Your
/// credentials lack one or more required privilege scopes.": SonarSource/sonarqube
/// `BitbucketCloudRestClientTest`; 403 rather than its 400 is inferred, RFC 9110 §15.5.4).
fn require_scope(consumer: &SeedConsumer, needed: &str) -> Result<(), Box<Response>> {
    if consumer.scopes.iter().any(|s| covers(s, needed)) {
        Ok(())
    } else {
        Err(Box::new(cloud_error(
            StatusCode::FORBIDDEN,
            "Your credentials lack one or more required privilege scopes.",
        )))
    }
}

fn cloud_view(workspace: &str, repository: &SeedRepository) -> CloudRepository {
    CloudRepository {
        full_name: format!("{workspace}/{}", repository.slug),
        slug: Some(repository.slug.clone()),
        kind: Some("repository".to_owned()),
        is_private: Some(true),
    }
}

/// `GET /2.0/repositories/{workspace}/{slug}`: the repository, or 404 when it does not exist
/// or the caller cannot read it (REST API "Get a repository"; hiding a private repository as
/// not found is inferred).
async fn cloud_repository(
    State(world): State<Shared>,
    Path((workspace, slug)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    let consumer = match cloud_caller(&w, &headers) {
        Ok(consumer) => consumer,
        Err(response) => return *response,
    };
    if let Err(response) = require_scope(&consumer, "repository") {
        return *response;
    }
    let found = w.bitbucket.workspace(&workspace).and_then(|ws| {
        ws.repositories
            .iter()
            .find(|r| r.slug == slug && Bitbucket::can_read(ws, r, &consumer.owner))
    });
    match found {
        Some(repository) => json_answer(
            StatusCode::OK,
            "application/json",
            &cloud_view(&workspace, repository),
        ),
        None => cloud_error(
            StatusCode::NOT_FOUND,
            &format!("Repository {workspace}/{slug} not found"),
        ),
    }
}

/// `GET /2.0/repositories/{workspace}?role=...&q=full_name="..."`: the workspace's
/// repositories the caller has that role on (`member`, `contributor`, `admin`, `owner`),
/// filtered by `q` (REST API "List repositories in a workspace"; only the `full_name="..."`
/// filter is understood, inferred enough for bbsync's one query). One page.
async fn cloud_list(
    State(world): State<Shared>,
    Path(workspace): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    let consumer = match cloud_caller(&w, &headers) {
        Ok(consumer) => consumer,
        Err(response) => return *response,
    };
    if let Err(response) = require_scope(&consumer, "repository") {
        return *response;
    }
    let Some(ws) = w.bitbucket.workspace(&workspace) else {
        return cloud_error(
            StatusCode::NOT_FOUND,
            &format!("No workspace with identifier '{workspace}'."),
        );
    };
    let admin_only = matches!(
        query.get("role").map(String::as_str),
        Some("admin" | "owner")
    );
    let wanted = query.get("q").and_then(|q| {
        q.trim()
            .strip_prefix("full_name=\"")
            .and_then(|rest| rest.strip_suffix('"'))
            .map(str::to_owned)
    });
    let values: Vec<CloudRepository> = ws
        .repositories
        .iter()
        .filter(|r| {
            if admin_only {
                Bitbucket::can_admin(ws, r, &consumer.owner)
            } else {
                Bitbucket::can_read(ws, r, &consumer.owner)
            }
        })
        .map(|r| cloud_view(&workspace, r))
        .filter(|r| wanted.as_ref().is_none_or(|name| &r.full_name == name))
        .collect();
    let page = CloudPage {
        values,
        next: None,
        pagelen: Some(10),
    };
    json_answer(StatusCode::OK, "application/json", &page)
}

/// Hooks per page of `GET .../hooks` (REST API "Pagination": `pagelen` defaults to 10).
const CLOUD_PAGE: usize = 10;

/// `GET /2.0/repositories/{workspace}/{slug}/hooks?page=N`: its webhooks, 10 a page, `next`
/// a full URL (REST API "List webhooks for a repository", "Pagination"). Needs the `webhook`
/// scope and admin rights on the repository (Atlassian "Repository Access Token
/// permissions": Admin "List and edit the repository webhooks"; 403 is inferred).
async fn cloud_hooks(
    State(world): State<Shared>,
    Path((workspace, slug)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    let consumer = match cloud_caller(&w, &headers) {
        Ok(consumer) => consumer,
        Err(response) => return *response,
    };
    if let Err(response) = require_scope(&consumer, "webhook") {
        return *response;
    }
    let Some((ws, repository)) = w.bitbucket.workspace(&workspace).and_then(|ws| {
        ws.repositories
            .iter()
            .find(|r| r.slug == slug && Bitbucket::can_read(ws, r, &consumer.owner))
            .map(|r| (ws, r))
    }) else {
        return cloud_error(
            StatusCode::NOT_FOUND,
            &format!("Repository {workspace}/{slug} not found"),
        );
    };
    if !Bitbucket::can_admin(ws, repository, &consumer.owner) {
        return cloud_error(
            StatusCode::FORBIDDEN,
            "You must be an administrator of this repository to manage its webhooks.",
        );
    }
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let values: Vec<CloudHook> = repository
        .hooks
        .iter()
        .enumerate()
        .skip((page - 1) * CLOUD_PAGE)
        .take(CLOUD_PAGE)
        .map(|(i, h)| CloudHook {
            uuid: Some(format!("{{00000000-0000-4000-8000-{i:012}}}")),
            url: h.url.clone(),
            active: h.active,
            events: h.events.clone(),
            description: None,
        })
        .collect();
    let next = (repository.hooks.len() > page * CLOUD_PAGE).then(|| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!(
            "http://{host}/2.0/repositories/{workspace}/{slug}/hooks?page={}",
            page + 1
        )
    });
    let body = CloudPage {
        values,
        next,
        pagelen: Some(CLOUD_PAGE as u64),
    };
    json_answer(StatusCode::OK, "application/json", &body)
}

/// Who a Server request is from: `(username, token)` for HTTP Basic with a personal token, or
/// for Bearer with any token; `None` is a 401.
///
/// Atlassian "HTTP access tokens": personal tokens work with Basic (as the user) or as
/// Bearer; project and repository tokens only as Bearer (inferred from that page). That a
/// personal token is accepted with another user's name, as its owner, is inferred: it lets
/// the username check be tested.
fn server_caller(bb: &Bitbucket, headers: &HeaderMap) -> Option<(String, SeedServerToken)> {
    if let Some((_, token)) = basic(headers) {
        let (user, token) = bb.server_token(&token)?;
        return (token.kind == ServerTokenKind::Personal)
            .then(|| (user.name.clone(), token.clone()));
    }
    let token = bearer(headers)?;
    let (user, token) = bb.server_token(&token)?;
    let name = match token.kind {
        ServerTokenKind::Personal => user.name.clone(),
        // Project and repository tokens act as a bot user (inferred name).
        _ => format!("{}-token-bot", user.name),
    };
    Some((name, token.clone()))
}

fn server_unauthorized() -> Response {
    server_error(
        StatusCode::UNAUTHORIZED,
        "Authentication failed. Please check your credentials and try again.",
    )
}

/// `X-AUSERNAME: user` on a Server answer (Bitbucket Server names the authenticated user in
/// it: inferred from its answers).
fn with_user(mut response: Response, user: &str) -> Response {
    if let Ok(value) = header::HeaderValue::from_str(user) {
        response.headers_mut().insert("x-ausername", value);
    }
    response
}

/// `GET /rest/api/1.0/projects/{project}/repos/{slug}` (Data Center REST API "Get
/// repository"): the repository, 401 without valid credentials, 404 when missing.
async fn server_repository(
    State(world): State<Shared>,
    Path((project, slug)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    let Some((user, _)) = server_caller(&w.bitbucket, &headers) else {
        return server_unauthorized();
    };
    let response = match w.bitbucket.server_repository(&project, &slug) {
        Some(repository) => json_answer(
            StatusCode::OK,
            "application/json",
            &ServerRepository {
                slug: repository.slug.clone(),
                project: ServerProject {
                    key: project.to_uppercase(),
                },
            },
        ),
        None => server_error(
            StatusCode::NOT_FOUND,
            &format!("Repository {project}/{slug} does not exist."),
        ),
    };
    with_user(response, &user)
}

/// Webhooks per page of `GET .../webhooks` (Data Center REST API "Paged APIs": `limit`
/// defaults to 25).
const SERVER_PAGE: usize = 25;

/// `GET .../repos/{slug}/webhooks?start=N` (Data Center REST API "Find webhooks": "The
/// authenticated user must have REPO_ADMIN permission"; 401 for too few permissions, as the
/// Data Center REST API lists for its endpoints).
async fn server_hooks(
    State(world): State<Shared>,
    Path((project, slug)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    let Some((user, token)) = server_caller(&w.bitbucket, &headers) else {
        return server_unauthorized();
    };
    let Some(repository) = w.bitbucket.server_repository(&project, &slug) else {
        return with_user(
            server_error(
                StatusCode::NOT_FOUND,
                &format!("Repository {project}/{slug} does not exist."),
            ),
            &user,
        );
    };
    if !token.repo_admin {
        return with_user(
            server_error(
                StatusCode::UNAUTHORIZED,
                "You are not permitted to access this resource",
            ),
            &user,
        );
    }
    let start: usize = query.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let values: Vec<ServerHook> = repository
        .hooks
        .iter()
        .enumerate()
        .skip(start)
        .take(SERVER_PAGE)
        .map(|(i, h)| ServerHook {
            id: Some(i as u64 + 1),
            name: Some("hook".to_owned()),
            url: h.url.clone(),
            active: h.active,
            events: h.events.clone(),
        })
        .collect();
    let end = start + values.len();
    let last = end >= repository.hooks.len();
    let page = ServerPage {
        values,
        is_last_page: last,
        next_page_start: (!last).then_some(end as u64),
    };
    with_user(
        json_answer(StatusCode::OK, "application/json", &page),
        &user,
    )
}

/// `GET /2.0/repositories/{w}/{r}/refs/branches`: the seeded branches, one page (REST API
/// "List open branches"; reading needs the `repository` scope, the fake's own rule).
async fn cloud_branches(
    State(world): State<Shared>,
    Path((workspace, slug)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    let consumer = match cloud_caller(&w, &headers) {
        Ok(consumer) => consumer,
        Err(response) => return *response,
    };
    if let Err(response) = require_scope(&consumer, "repository") {
        return *response;
    }
    let Some(repository) = w.bitbucket.workspace(&workspace).and_then(|ws| {
        ws.repositories
            .iter()
            .find(|r| r.slug == slug && Bitbucket::can_read(ws, r, &consumer.owner))
    }) else {
        return cloud_error(
            StatusCode::NOT_FOUND,
            &format!("Repository {workspace}/{slug} not found"),
        );
    };
    let values: Vec<crate::wire::bitbucket::CloudBranch> = repository
        .branches
        .iter()
        .map(|name| crate::wire::bitbucket::CloudBranch { name: name.clone() })
        .collect();
    let page = CloudPage {
        values,
        next: None,
        pagelen: None,
    };
    json_answer(StatusCode::OK, "application/json", &page)
}

/// `GET .../repos/{slug}/branches`: the seeded branches, one page (Data Center REST API "Get
/// branches").
async fn server_branches(
    State(world): State<Shared>,
    Path((project, slug)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    let Some((user, _)) = server_caller(&w.bitbucket, &headers) else {
        return server_unauthorized();
    };
    let Some(repository) = w.bitbucket.server_repository(&project, &slug) else {
        return with_user(
            server_error(
                StatusCode::NOT_FOUND,
                &format!("Repository {project}/{slug} does not exist."),
            ),
            &user,
        );
    };
    let values: Vec<crate::wire::bitbucket::ServerBranch> = repository
        .branches
        .iter()
        .map(|name| crate::wire::bitbucket::ServerBranch {
            display_id: name.clone(),
        })
        .collect();
    let page = ServerPage {
        values,
        is_last_page: true,
        next_page_start: None,
    };
    with_user(
        json_answer(StatusCode::OK, "application/json", &page),
        &user,
    )
}

impl Bitbucket {
    /// The branches of repository `owner/slug` (a Cloud workspace, else a Server project), for
    /// the Platform.sh fake's first fetch; `None` when there is no such repository.
    pub(crate) fn branches_of(&self, owner: &str, slug: &str) -> Option<Vec<String>> {
        self.workspace(owner)
            .and_then(|w| w.repositories.iter().find(|r| r.slug == slug))
            .or_else(|| self.server_repository(owner, slug))
            .map(|r| r.branches.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(base64_decode("a2V5OnNlY3JldA==").unwrap(), b"key:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("!!!!").is_none());
    }

    #[test]
    fn hooks_register_only_with_rights() {
        let seed: BitbucketSeed = serde_json::from_value(serde_json::json!({
            "consumers": [
                {"key": "k", "secret": "s", "owner": "alice"},
                {"key": "k2", "secret": "s", "owner": "bob"},
            ],
            "workspaces": [{"slug": "acme", "admins": ["alice"], "members": ["bob"],
                            "repositories": [{"slug": "web"}]}],
            "server_users": [{"name": "u", "tokens": [{"token": "t", "repo_admin": false}]}],
            "server_projects": [{"key": "PROJ", "repositories": [{"slug": "web"}]}],
        }))
        .unwrap();
        let mut bb = Bitbucket::new(seed);
        let events = vec!["repo:push".to_owned()];
        let cloud = |key| HookCredentials::Cloud {
            key,
            secret_sha256: Box::leak(sha256("s").into_boxed_str()),
        };
        assert!(!bb.register_hook(cloud("k2"), "acme", "web", "https://h", &events));
        assert!(!bb.register_hook(
            HookCredentials::Cloud {
                key: "k",
                secret_sha256: "wrong"
            },
            "acme",
            "web",
            "https://h",
            &events
        ));
        assert!(bb.register_hook(cloud("k"), "acme", "web", "https://h", &events));
        assert!(bb.register_hook(cloud("k"), "acme", "web", "https://h", &events));
        assert_eq!(bb.seed.workspaces[0].repositories[0].hooks.len(), 1);
        let server = HookCredentials::Server {
            username: "u",
            token_sha256: Box::leak(sha256("t").into_boxed_str()),
        };
        assert!(!bb.register_hook(server, "PROJ", "web", "https://h", &events));
    }
}

/// Whether `headers` carry an access token the fake accepts for pull-request comments and
/// commit statuses (Bearer: Bitbucket Cloud "Access tokens"); the 401 otherwise.
fn comment_caller(w: &World, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty());
    match token {
        Some(t)
            if w.bitbucket.pr_tokens.is_empty() || w.bitbucket.pr_tokens.iter().any(|k| k == t) =>
        {
            Ok(())
        }
        _ => Err(Box::new(cloud_error(
            StatusCode::UNAUTHORIZED,
            "Token is invalid or not supported for this endpoint.",
        ))),
    }
}

/// The comment body sent: `{"content": {"raw": ...}}` (Cloud REST API "Create a comment on a
/// pull request").
#[derive(Debug, Deserialize)]
struct NewComment {
    content: CommentContent,
}

/// `GET .../pullrequests/{id}/comments`: every comment, two a page, so that clients must follow
/// `next` (Cloud REST API "List comments on a pull request"; pagination as REST API
/// "Pagination"; the page size is the fake's).
async fn list_comments(
    State(world): State<Shared>,
    Path((workspace, slug, id)): Path<(String, String, u64)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    if let Err(response) = comment_caller(&w, &headers) {
        return *response;
    }
    let all = w
        .bitbucket
        .comments
        .get(&(workspace.clone(), slug.clone(), id))
        .cloned()
        .unwrap_or_default();
    two_per_page(
        &all,
        &query,
        &format!("/2.0/repositories/{workspace}/{slug}/pullrequests/{id}/comments"),
    )
}

/// One page of `all`, two to a page (so that tests see clients follow `next`), as Cloud pages
/// (`values`, `next`, `pagelen`); `path` is the listing's, for `next`.
fn two_per_page<T: Clone + Serialize>(
    all: &[T],
    query: &HashMap<String, String>,
    path: &str,
) -> Response {
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let values: Vec<T> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
    let next =
        (all.len() > page * 2).then(|| format!("http://bitbucket.invalid{path}?page={}", page + 1));
    let page = CloudPage {
        values,
        next,
        pagelen: Some(2),
    };
    json_answer(StatusCode::OK, "application/json", &page)
}

/// `POST .../pullrequests/{id}/comments`: 201 with the new comment.
async fn post_comment(
    State(world): State<Shared>,
    Path((workspace, slug, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    axum::Json(new): axum::Json<NewComment>,
) -> Response {
    let mut w = lock(&world);
    if let Err(response) = comment_caller(&w, &headers) {
        return *response;
    }
    let comment = w.bitbucket.push_comment(&workspace, &slug, id, new.content);
    json_answer(StatusCode::CREATED, "application/json", &comment)
}

/// `PUT .../comments/{comment_id}`: 200 with the comment changed; 404 for another's.
async fn update_comment(
    State(world): State<Shared>,
    Path((workspace, slug, id, comment)): Path<(String, String, u64, u64)>,
    headers: HeaderMap,
    axum::Json(new): axum::Json<NewComment>,
) -> Response {
    let mut w = lock(&world);
    if let Err(response) = comment_caller(&w, &headers) {
        return *response;
    }
    let found = w
        .bitbucket
        .comments
        .get_mut(&(workspace, slug, id))
        .and_then(|all| all.iter_mut().find(|c| c.id == comment));
    match found {
        Some(existing) => {
            existing.content = new.content;
            let answer = existing.clone();
            json_answer(StatusCode::OK, "application/json", &answer)
        }
        None => cloud_error(StatusCode::NOT_FOUND, "No such comment"),
    }
}

/// The 404 for a commit-status request on a repository the seed does not hold (an open fake
/// holds every repository it is asked about, [`Bitbucket::open_up`]). Any commit of a held
/// repository exists: the fake has no Git.
fn status_repository(w: &World, workspace: &str, slug: &str) -> Result<(), Box<Response>> {
    let held = w
        .bitbucket
        .workspace(workspace)
        .is_some_and(|ws| ws.repositories.iter().any(|r| r.slug == slug));
    if held {
        Ok(())
    } else {
        Err(Box::new(cloud_error(
            StatusCode::NOT_FOUND,
            &format!("Repository {workspace}/{slug} not found"),
        )))
    }
}

/// `GET .../commit/{commit}/statuses`: the statuses standing on the commit, two a page as the
/// comments are (Cloud REST API "List commit statuses for a commit": a paginated list of
/// `commitstatus`). Same Bearer check as the comments.
async fn list_statuses(
    State(world): State<Shared>,
    Path((workspace, slug, commit)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let w = lock(&world);
    if let Err(response) =
        comment_caller(&w, &headers).and_then(|()| status_repository(&w, &workspace, &slug))
    {
        return *response;
    }
    let all = w
        .bitbucket
        .statuses
        .get(&(workspace.clone(), slug.clone(), commit.clone()))
        .cloned()
        .unwrap_or_default();
    two_per_page(
        &all,
        &query,
        &format!("/2.0/repositories/{workspace}/{slug}/commit/{commit}/statuses"),
    )
}

/// `POST .../commit/{commit}/statuses/build`: 201 with the status when its key is new on the
/// commit, 200 when it replaced one (the 200 is inferred). The rules Bitbucket is known to
/// apply: a `key` of 1 to 40 characters (buildbot/buildbot#7049), a `state` of the four, an
/// http(s) `url` (400 "url: Enter a valid URL.", runatlantis/atlantis#710).
async fn post_status(
    State(world): State<Shared>,
    Path((workspace, slug, commit)): Path<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(status): axum::Json<CloudCommitStatus>,
) -> Response {
    let mut w = lock(&world);
    if let Err(response) =
        comment_caller(&w, &headers).and_then(|()| status_repository(&w, &workspace, &slug))
    {
        return *response;
    }
    let count = status.key.chars().count();
    if count == 0 || count > 40 {
        return cloud_error(
            StatusCode::BAD_REQUEST,
            &format!("key: Ensure this value has at most 40 characters (it has {count})."),
        );
    }
    if !matches!(
        status.state.as_str(),
        "INPROGRESS" | "SUCCESSFUL" | "FAILED" | "STOPPED"
    ) {
        return cloud_error(StatusCode::BAD_REQUEST, "state: Select a valid choice.");
    }
    let valid_url = url::Url::parse(&status.url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !valid_url {
        return cloud_error(StatusCode::BAD_REQUEST, "url: Enter a valid URL.");
    }
    let new = w
        .bitbucket
        .post_status(&workspace, &slug, &commit, status.clone());
    let code = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_answer(code, "application/json", &status)
}
