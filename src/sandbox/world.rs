//! The sandbox's state and the real API's rules, with no HTTP in sight.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::model::IntegrationType;
use crate::wire::error::field_detail;
use crate::wire::time::rfc3339;
use crate::wire::{
    Accepted, Activity, ApiIntegration, Capabilities, Embedded, IntegrationCapabilities, Links,
    OrganizationProject, Project as ApiProject, ProjectPage, Status, TypeCapability, defaults,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// What the sandbox starts with (`--seed FILE`, JSON or YAML).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// The API token the sandbox accepts (default `sandbox-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Organizations (their projects name them).
    #[serde(default)]
    pub organizations: Vec<SeedOrganization>,
    /// Projects.
    #[serde(default)]
    pub projects: Vec<SeedProject>,
    /// The fake Bitbucket's consumers, workspaces, repositories and Server users.
    #[serde(default)]
    pub bitbucket: super::bitbucket::BitbucketSeed,
}

/// An organization.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOrganization {
    /// Its ID: a ULID, as the spec's `OrganizationID` (`format: ulid`) and `Organization.id`
    /// say; the seed is refused otherwise.
    pub id: String,
    /// Its machine name, by which `GET /organizations/name={name}` finds it (spec `get-org`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Make the project listing fail after this many pages (to test partial listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_after_pages: Option<usize>,
}

/// A project.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedProject {
    /// Its ID.
    pub id: String,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Every request about it fails with HTTP 500.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broken: bool,
    /// Its status in the organization listing (`ProjectStatus` in the spec: `requested`,
    /// `active`, `failed`, `suspended`, `deleted`; default `active`). Only active and suspended
    /// projects can be read: requests about the others are answered 404 (inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The API token cannot read it: every request about it is answered 403, while the
    /// organization listing still lists it (inferred: project access is granted per project).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
    /// Integration types it allows (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_types: Option<Vec<String>>,
    /// Activities of its integrations fail (hook registration fails).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_activities: bool,
    /// Its integrations have no `#validate` link (the API offers no validation of them;
    /// inferred: the operation link is left out where it is unavailable, as HAL operations
    /// are, platformsh-api.md §1.4).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_validation: bool,
    /// What `#validate` reports for its integrations: field -> message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub validation_errors: BTreeMap<String, String>,
    /// Its integrations, as the API would return them (IDs optional).
    #[serde(default)]
    pub integrations: Vec<Value>,
    /// Its environments (spec `Environment`: `name`, `is_pr`, `is_main`,
    /// `deployment_target`, `status`), as `GET /projects/{id}/environments` lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<crate::wire::ApiEnvironment>,
}

/// Injected faults, all off by default. The random ones are drawn from a seeded generator.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Added to every API request.
    pub latency: Duration,
    /// Fraction of API requests answered 503 without being processed.
    pub error_rate: f64,
    /// Fraction of API requests answered 429 without being processed.
    pub rate_limit_rate: f64,
    /// The `Retry-After` of those 429s, in seconds.
    pub retry_after: f64,
    /// A token bucket over every API request: this many per second (`--rate-limit`), `None`
    /// for none ([`super::limit`]).
    pub rate_limit: Option<f64>,
    /// What that bucket holds (`--rate-burst`).
    pub rate_burst: u32,
    /// Fraction of creates carried out whose answer is then lost (the connection drops).
    pub drop_post_rate: f64,
    /// Fraction of writes carried out whose answer comes only after this much time.
    pub slow_rate: f64,
    /// How late a slow answer is.
    pub slow_by: Duration,
    /// Seed of the fault generator.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after: 1.0,
            rate_limit: None,
            rate_burst: 10,
            drop_post_rate: 0.0,
            slow_rate: 0.0,
            slow_by: Duration::from_secs(60),
            seed: 1,
        }
    }
}

/// A hostile or broken API, beyond the random [`Faults`]: answers the real API does not give,
/// for tests of what bbsync does when the API misbehaves. Off by default. Set it on a running
/// sandbox (`sandbox.world().hostile`); it is not part of [`Faults`], which the `bbsync sandbox`
/// command builds field by field.
#[derive(Debug, Clone, Default)]
pub struct Hostile {
    /// Canned answers, checked in order before anything else (the token exchange included).
    pub canned: Vec<Canned>,
    /// Every create is answered at once with its answer lost, and carried out only this much
    /// later: a create that commits after the client has looked for it.
    pub late_commit: Option<LateCommit>,
}

/// A canned answer: requests with this method and path get it instead of the sandbox's own.
#[derive(Debug, Clone)]
pub struct Canned {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without `/api`; with a query (`?...`) only that query matches, without one any
    /// query does.
    pub path: String,
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: CannedBody,
    /// How many matching requests get it, then it stops matching (`None`: all of them).
    pub times: Option<usize>,
}

/// The body of a [`Canned`] answer.
#[derive(Debug, Clone)]
pub enum CannedBody {
    /// This JSON.
    Json(Value),
    /// JSON that never ends: `[` and then `{},` forever (an unbounded response).
    Endless,
    /// An HTML page (`text/html`), as a gateway or proxy answers a 502 or 504 (inferred).
    Html(String),
    /// A spec `Error` body whose `message` is `prefix` followed by what the request sent, its
    /// body and its `Authorization` header (an API that echoes its input into errors).
    Echo {
        /// Text before the echo (control characters welcome).
        prefix: String,
    },
}

/// A create that commits late ([`Hostile::late_commit`]).
#[derive(Debug, Clone, Copy)]
pub struct LateCommit {
    /// How long after the request the integration is made.
    pub after: Duration,
    /// The answer the client gets at once: `None` for a dropped connection, else this status
    /// with an error body (a 500 that later turns out to have succeeded).
    pub status: Option<u16>,
}

/// How the sandbox's activities end ([`World::activity_ending`]). Each is an answer the real
/// API can give: spec `Activity.state` and `Activity.result`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ActivityEnding {
    /// `complete` with `success`, unless the project's seed says `fail_activities` (then the
    /// hook registration ends `complete` with `failure`, with a `text` and a `log`).
    #[default]
    AsSeeded,
    /// `cancelled` with `failure` (the CLI shows these as "cancelled" and fails the wait:
    /// legacy-cli `src/Service/ActivityMonitor.php` `printResult`).
    Cancelled,
    /// `complete` with `failure`, an empty `text` and an empty `log`: a failure the API
    /// explains nowhere (inferred possible: both are nullable or free text in the spec).
    FailedSilently,
    /// Never finishes: `pending`, then `in_progress` forever (an activity stuck in the queue).
    Never,
}

/// A write the sandbox received, with its body as sent (tests assert exact shapes).
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// `POST`, `PATCH`, `DELETE`.
    pub method: String,
    /// The path, without `/api`.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

/// A stored integration.
#[derive(Debug, Clone)]
pub struct Stored {
    id: String,
    kind: String,
    /// Public fields, as GET returns them (no `id`, `type`, links or dates).
    pub fields: Map<String, Value>,
    /// SHA-256 of each write-only secret, by field path (`app_credentials.secret`).
    pub secrets: BTreeMap<String, String>,
    created: SystemTime,
    updated: SystemTime,
}

impl Stored {
    /// The integration's ID.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The integration's type.
    pub fn kind(&self) -> &str {
        &self.kind
    }
}

/// A project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Its seed (title, organization, flags).
    pub seed: SeedProject,
    /// Its integrations.
    pub integrations: Vec<Stored>,
}

struct ActivityRecord {
    project: String,
    integration: String,
    /// The integration's type and repository, for the activity's text (inferred wording).
    subject: String,
    kind: String,
    started: Instant,
    created: SystemTime,
    /// How long it takes ([`World::activity_delay`] when it started).
    delay: Duration,
    ending: Ending,
}

/// How one activity ends, decided when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Success,
    /// The seed's `fail_activities`: hook registration fails, with a reason in `text` and `log`.
    HookFailure,
    Cancelled,
    FailedSilently,
    Never,
}

/// An API error to answer with.
#[derive(Debug)]
pub(crate) struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// The message.
    pub message: String,
    /// Per-field details.
    pub detail: Option<Value>,
}

impl Rejection {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            detail: None,
        }
    }

    /// A validation error: 400 with per-field `detail` (spec `Error`, platformsh-api.md §1.8).
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status: 400,
            message: "Invalid input".to_owned(),
            detail: Some(field_detail([(field, message.as_str())])),
        }
    }
}

/// The shape of the token endpoint's refusal of an API token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenErrors {
    /// 400 `{error: invalid_grant, error_description: "Invalid API token."}` (platformsh-api.md
    /// §3.1; legacy-cli `ApiTokenLoginCommand::exceptionMeansInvalidToken`, "legacy auth
    /// provider").
    #[default]
    Legacy,
    /// The newer auth server's `{error: request_unauthorized, error_description, error_hint}`
    /// naming the API token in `error_hint` (legacy-cli, the same function, "new auth
    /// provider"), with status 401 (inferred: the CLI accepts 400 or 401).
    Current,
}

/// Everything the sandbox knows.
pub struct World {
    /// The API token accepted at the token exchange.
    pub api_token: String,
    /// How long an access token lives.
    pub token_lifetime: Duration,
    access: HashMap<String, Instant>,
    /// Access tokens issued so far (each a token exchange).
    pub exchanges: u64,
    /// Projects by ID.
    pub projects: BTreeMap<String, Project>,
    /// Organizations by ID.
    pub organizations: BTreeMap<String, SeedOrganization>,
    activities: HashMap<String, ActivityRecord>,
    /// Activity IDs, oldest first: the oldest are forgotten past [`ACTIVITY_LOG`].
    activity_order: VecDeque<String>,
    /// Writes received, in order.
    pub writes: Vec<Write>,
    /// Requests received, the last ones: `METHOD path`.
    pub requests: Vec<String>,
    /// Faults to inject.
    pub faults: Faults,
    /// The rate limit of [`Faults::rate_limit`].
    pub(crate) limiter: Option<std::sync::Arc<super::limit::Limiter>>,
    /// Requests answered 429 by that limit.
    pub rate_limited: u64,
    /// A hostile API (off by default).
    pub hostile: Hostile,
    /// Time activities take to complete (the first half `pending`, the second `in_progress`).
    pub activity_delay: Duration,
    /// How activities end (tests set it on a running sandbox).
    pub activity_ending: ActivityEnding,
    /// Activities a project listing returns at most without `count` (inferred: the API's
    /// default page size is not documented; the CLI's `activity:list` shows 10 by default).
    pub activity_page: usize,
    /// Base of HAL links (a regional host, as the real API uses).
    pub link_base: String,
    /// Projects per page of an organization listing, unless asked for fewer.
    pub page_size: usize,
    /// How the token endpoint refuses an API token.
    pub token_errors: TokenErrors,
    /// When set, every API call with a valid access token is answered with an RFC 9470
    /// step-up challenge asking for these methods (`mfa`, `sso:...`): an organization that
    /// enforces MFA or SSO, and a token whose user lacks it.
    pub step_up: Option<Vec<String>>,
    /// The fake Bitbucket ([`super::bitbucket`]).
    pub bitbucket: super::bitbucket::Bitbucket,
    rng: fastrand::Rng,
}

/// The Bitbucket family: at most one per project, as one code source per project
/// (platformsh-api.md §4.4 item 8, inferred).
const MANAGED: [&str; 2] = ["bitbucket", "bitbucket_server"];

/// Requests remembered at most.
pub(crate) const REQUEST_LOG: usize = 10_000;

/// Activities remembered at most (a long-running sandbox must not grow without bound). A
/// client polls an activity right after the write that started it, long before it is forgotten.
pub(crate) const ACTIVITY_LOG: usize = 10_000;

impl World {
    /// A world from a seed.
    pub(crate) fn new(seed: Seed, faults: Faults) -> Result<Self, String> {
        let mut world = Self {
            api_token: seed
                .token
                .clone()
                .unwrap_or_else(|| "sandbox-token".to_owned()),
            // 15 minutes (platformsh-api.md §3.1).
            token_lifetime: Duration::from_secs(900),
            access: HashMap::new(),
            exchanges: 0,
            projects: BTreeMap::new(),
            organizations: seed
                .organizations
                .iter()
                .map(|o| (o.id.clone(), o.clone()))
                .collect(),
            activities: HashMap::new(),
            activity_order: VecDeque::new(),
            writes: Vec::new(),
            requests: Vec::new(),
            limiter: faults
                .rate_limit
                .and_then(|rate| super::limit::Limiter::new(rate, faults.rate_burst))
                .map(std::sync::Arc::new),
            rate_limited: 0,
            rng: fastrand::Rng::with_seed(faults.seed),
            faults,
            hostile: Hostile::default(),
            activity_delay: Duration::ZERO,
            activity_ending: ActivityEnding::AsSeeded,
            activity_page: 10,
            // Links name a regional host (platformsh-api.md §1.1).
            link_base: "https://eu-3.platform.sh/api".to_owned(),
            page_size: 20,
            token_errors: TokenErrors::default(),
            step_up: None,
            bitbucket: super::bitbucket::Bitbucket::new(seed.bitbucket.clone()),
        };
        for project in seed.projects {
            if let Some(org) = &project.organization {
                world
                    .organizations
                    .entry(org.clone())
                    .or_insert_with(|| SeedOrganization {
                        id: org.clone(),
                        ..SeedOrganization::default()
                    });
            }
            let integrations = project.integrations.clone();
            let id = project.id.clone();
            world.projects.insert(
                id.clone(),
                Project {
                    seed: SeedProject {
                        integrations: Vec::new(),
                        ..project
                    },
                    integrations: Vec::new(),
                },
            );
            for mut body in integrations {
                let given_id = body
                    .as_object_mut()
                    .and_then(|o| o.remove("id"))
                    .and_then(|v| v.as_str().map(str::to_owned));
                world.insert(&id, &body, given_id, false).map_err(|r| {
                    format!("seed integration of `{id}`: {}", r.message_with_detail())
                })?;
            }
        }
        if let Some(bad) = world
            .organizations
            .keys()
            .find(|id| !crate::model::ids::is_ulid(id))
        {
            return Err(format!(
                "organization `{bad}`: the API's organization IDs are ULIDs (26 digits and capital letters, such as 01H5ZF6Y7W9QK8X3M2N4P6R8T0); give the name as `name`"
            ));
        }
        Ok(world)
    }

    /// The organization `key` names: `name={name}` finds it by name, anything else is its ID
    /// (spec `get-org`, parameter `OrganizationIDName`: "Prefix with name= to retrieve the
    /// organization by name instead"). Its view is the spec's `Organization`, in part.
    pub(crate) fn organization(&self, key: &str) -> Result<Value, Rejection> {
        let found = match key.strip_prefix("name=") {
            Some(name) => self
                .organizations
                .values()
                .find(|o| o.name.as_deref() == Some(name)),
            None => self.organizations.get(key),
        };
        // A bare 404, as the API gives for an unknown organization (spec `get-org`: 404
        // `Error`).
        let org = found.ok_or_else(|| Rejection::new(404, "Not Found"))?;
        let name = org.name.clone().unwrap_or_else(|| org.id.to_lowercase());
        Ok(serde_json::json!({
            "id": org.id,
            "type": "flexible",
            "name": name,
            "label": name,
            "status": "active",
            "_links": {"self": {"href": format!("{}/organizations/{}", self.link_base, org.id)}},
        }))
    }

    /// Records a request, keeping the last [`REQUEST_LOG`] (a long-running sandbox must not
    /// grow without bound).
    /// Puts a token bucket of `rate` per second holding `burst` over every API request from
    /// now on ([`Faults::rate_limit`]), full.
    pub fn install_rate_limit(&mut self, rate: f64, burst: u32) {
        self.faults.rate_limit = Some(rate);
        self.faults.rate_burst = burst;
        self.limiter = super::limit::Limiter::new(rate, burst).map(std::sync::Arc::new);
    }

    pub(crate) fn record_request(&mut self, request: String) {
        if self.requests.len() >= REQUEST_LOG {
            self.requests.drain(..REQUEST_LOG / 2);
        }
        self.requests.push(request);
    }

    /// A random draw for the fault injector.
    pub(crate) fn draw(&mut self) -> f64 {
        self.rng.f64()
    }

    /// 13 lowercase alphanumerics, like the API's IDs (platformsh-api.md §2.1).
    fn next_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..13)
            .map(|_| ALPHABET[self.rng.usize(..ALPHABET.len())] as char)
            .collect()
    }

    /// The canned answer for `method` and `path_and_query` (without `/api`), if one matches;
    /// a match counts against its [`Canned::times`].
    pub(crate) fn canned(&mut self, method: &str, path_and_query: &str) -> Option<Canned> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let found = self.hostile.canned.iter_mut().find(|c| {
            c.method.eq_ignore_ascii_case(method)
                && c.times != Some(0)
                && (c.path == path_and_query || (!c.path.contains('?') && c.path == path))
        })?;
        if let Some(times) = found.times.as_mut() {
            *times -= 1;
        }
        Some(found.clone())
    }

    /// Exchanges the API token for an access token.
    pub(crate) fn exchange(&mut self, api_token: &str) -> Result<(String, u64), Rejection> {
        if api_token.is_empty() || api_token != self.api_token {
            return Err(Rejection::new(400, "Invalid API token"));
        }
        self.exchanges += 1;
        let access = format!("sandbox-access-{}", self.next_id());
        self.access
            .insert(access.clone(), Instant::now() + self.token_lifetime);
        Ok((access, self.token_lifetime.as_secs().max(1)))
    }

    /// An access token valid for [`World::token_lifetime`], as an exchange issues it: for a
    /// canned token answer that must still give a working token.
    pub fn issue_access_token(&mut self) -> String {
        let token = self.api_token.clone();
        self.exchange(&token)
            .map(|(access, _)| access)
            .unwrap_or_default()
    }

    /// Whether a bearer token is valid now.
    pub(crate) fn authorized(&self, bearer: &str) -> bool {
        self.access
            .get(bearer)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// Expires every access token (token expiry mid-run).
    pub fn expire_tokens(&mut self) {
        self.access.clear();
    }

    fn project(&self, id: &str) -> Result<&Project, Rejection> {
        let project = self
            .projects
            .get(id)
            .ok_or_else(|| Rejection::new(404, format!("Project `{id}` not found")))?;
        if project.seed.broken {
            return Err(Rejection::new(500, "Internal Server Error"));
        }
        if !matches!(
            project.seed.status.as_deref(),
            None | Some("active" | "suspended")
        ) {
            return Err(Rejection::new(404, format!("Project `{id}` not found")));
        }
        if project.seed.unreadable {
            return Err(Rejection::new(
                403,
                "You do not have access to this project.",
            ));
        }
        Ok(project)
    }

    /// A project's environments (`GET /projects/{id}/environments`: an array, spec
    /// `list-projects-environments`).
    pub(crate) fn environments(&self, id: &str) -> Result<Value, Rejection> {
        Ok(to_json(&self.project(id)?.seed.environments))
    }

    /// A project as GET returns it: its title defaults to its ID (inferred).
    pub(crate) fn project_view(&self, id: &str) -> Result<Value, Rejection> {
        let project = self.project(id)?;
        Ok(to_json(&ApiProject {
            id: id.to_owned(),
            title: Some(project.seed.title.clone().unwrap_or_else(|| id.to_owned())),
            organization_id: project.seed.organization.clone(),
            region: Some("eu-3.platform.sh".to_owned()),
            links: Links::new().with("self", format!("{}/projects/{id}", self.link_base)),
        }))
    }

    /// A project's capabilities: the seed's integration types enabled (all by default), each
    /// for admins (platformsh-api.md §2.4; the role is inferred).
    pub(crate) fn capabilities(&self, id: &str) -> Result<Value, Rejection> {
        let project = self.project(id)?;
        let mut config = BTreeMap::new();
        for kind in [
            "bitbucket",
            "bitbucket_server",
            "github",
            "gitlab",
            "webhook",
            "slack",
        ] {
            let enabled = project
                .seed
                .integration_types
                .as_ref()
                .is_none_or(|t| t.iter().any(|k| k == kind));
            config.insert(
                kind.to_owned(),
                TypeCapability {
                    enabled,
                    role: Some("admin".to_owned()),
                },
            );
        }
        Ok(to_json(&Capabilities {
            integrations: Some(IntegrationCapabilities {
                enabled: true,
                config,
            }),
        }))
    }

    /// Every integration of a project: a bare array (spec `IntegrationCollection`,
    /// platformsh-api.md §1.7).
    pub(crate) fn list(&self, project: &str) -> Result<Value, Rejection> {
        let project_ref = self.project(project)?;
        let views: Vec<ApiIntegration> = project_ref
            .integrations
            .iter()
            .map(|i| self.view(project, i))
            .collect();
        Ok(to_json(&views))
    }

    /// One integration.
    pub(crate) fn get(&self, project: &str, id: &str) -> Result<Value, Rejection> {
        let stored = self.find(project, id)?;
        Ok(to_json(&self.view(project, stored)))
    }

    fn find(&self, project: &str, id: &str) -> Result<&Stored, Rejection> {
        self.project(project)?
            .integrations
            .iter()
            .find(|i| i.id == id)
            .ok_or_else(|| Rejection::new(404, format!("Integration `{id}` not found")))
    }

    /// An integration as GET returns it: the read-only `created_at`, `updated_at` and `role`
    /// (spec `BitbucketIntegration`, Upsun spec for `role`; its value is inferred), the stored
    /// public fields, and the links of platformsh-api.md §1.4 (`#validate` and `#hook` paths
    /// inferred, after the docs' example).
    fn view(&self, project: &str, stored: &Stored) -> ApiIntegration {
        let href = format!(
            "{}/projects/{project}/integrations/{}",
            self.link_base, stored.id
        );
        let mut fields = Map::new();
        fields.insert("created_at".to_owned(), rfc3339(stored.created).into());
        fields.insert("updated_at".to_owned(), rfc3339(stored.updated).into());
        fields.insert("role".to_owned(), "source".into());
        fields.extend(stored.fields.clone());
        // `self` absolute, the operations as paths, as the spec's examples and the JS client's
        // fixtures give them (platformsh-api.md §1.4: `#hook` is
        // `/api/projects/P/integrations/ID/hook`).
        let path = href
            .find("/api/")
            .map_or(href.as_str(), |i| &href[i..])
            .to_owned();
        let mut links = Links::new()
            .with("self", &href)
            .with("#edit", &path)
            .with("#delete", &path);
        if !self
            .projects
            .get(project)
            .is_some_and(|p| p.seed.no_validation)
        {
            links = links.with("#validate", format!("{path}/validate"));
        }
        ApiIntegration {
            id: stored.id.clone(),
            kind: stored.kind.clone(),
            fields,
            links: links.with("#hook", format!("{path}/hook")),
        }
    }

    /// Creates an integration (POST), checking the body as the real API does.
    pub(crate) fn create(&mut self, project: &str, body: &Value) -> Result<Value, Rejection> {
        self.project(project)?;
        self.record_create(project, body);
        self.commit_create(project, body)
    }

    /// Records a create received (in [`World::writes`]).
    pub(crate) fn record_create(&mut self, project: &str, body: &Value) {
        self.writes.push(Write {
            method: "POST".to_owned(),
            path: format!("/projects/{project}/integrations"),
            body: body.clone(),
        });
    }

    /// Carries out a create already recorded.
    pub(crate) fn commit_create(
        &mut self,
        project: &str,
        body: &Value,
    ) -> Result<Value, Rejection> {
        self.project(project)?;
        let id = self.insert(project, body, None, true)?;
        let stored = self.find(project, &id)?.clone();
        self.first_fetch(project, &stored);
        // A source integration's create registers hooks and fetches (platformsh-api.md §1.3,
        // §4.4 item 10).
        let activities = self.start_activities(project, &stored, &["register_hooks", "fetch"]);
        Ok(to_json(&Accepted {
            status: Some("created".to_owned()),
            code: Some(201),
            embedded: Embedded {
                entity: Some(self.view(project, &stored)),
                activities,
            },
        }))
    }

    fn insert(
        &mut self,
        project: &str,
        body: &Value,
        id: Option<String>,
        strict: bool,
    ) -> Result<String, Rejection> {
        let object = body
            .as_object()
            .ok_or_else(|| Rejection::new(400, "The body must be a JSON object"))?;
        let kind = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Rejection::invalid("type", "This field is required."))?
            .to_owned();
        let project_ref = self
            .projects
            .get(project)
            .ok_or_else(|| Rejection::new(404, "Project not found"))?;
        // Only the types the project's capabilities enable (platformsh-api.md §2.4; the
        // message is inferred).
        if let Some(allowed) = &project_ref.seed.integration_types
            && !allowed.contains(&kind)
        {
            return Err(Rejection::invalid(
                "type",
                format!("The integration type `{kind}` is not enabled for this project."),
            ));
        }
        let (mut fields, secrets) = if !strict {
            // A seed is what the API returns, oddities included: taken as it is.
            let mut fields = object.clone();
            fields.remove("type");
            let mut secrets = BTreeMap::new();
            for (object_key, secret_key) in [
                ("app_credentials", "secret"),
                ("addon_credentials", "shared_secret"),
            ] {
                if let Some(Value::Object(inner)) = fields.get_mut(object_key)
                    && let Some(v) = inner.remove(secret_key)
                {
                    secrets.insert(format!("{object_key}.{secret_key}"), digest(&v));
                }
            }
            if let Some(v) = fields.remove("token") {
                secrets.insert("token".to_owned(), digest(&v));
            }
            (fields, secrets)
        } else if MANAGED.contains(&kind.as_str()) {
            // A project has one code source: github, gitlab, bitbucket or bitbucket_server
            // (legacy-cli `src/Service/Api.php`, `getCodeSourceIntegration`, which takes the
            // first as the project's). That the API refuses a second one, and how, is inferred.
            if let Some(source) = project_ref.integrations.iter().find(|i| {
                matches!(
                    i.kind.as_str(),
                    "github" | "gitlab" | "bitbucket" | "bitbucket_server"
                )
            }) {
                return Err(Rejection::invalid(
                    "type",
                    format!(
                        "This project's code already comes from its `{}` integration.",
                        source.kind
                    ),
                ));
            }
            check_body(&kind, object, true)?
        } else {
            let mut fields = object.clone();
            fields.remove("type");
            let mut secrets = BTreeMap::new();
            for secret in ["token", "secret"] {
                if let Some(v) = fields.remove(secret) {
                    secrets.insert(secret.to_owned(), digest(&v));
                }
            }
            (fields, secrets)
        };
        if strict && MANAGED.contains(&kind.as_str()) {
            apply_defaults(&kind, &mut fields);
            check_fetch_prune(&fields)?;
        }
        let id = id.unwrap_or_else(|| self.next_id());
        let now = SystemTime::now();
        let project_mut = self.projects.get_mut(project).expect("checked above");
        project_mut.integrations.push(Stored {
            id: id.clone(),
            kind,
            fields,
            secrets,
            created: now,
            updated: now,
        });
        Ok(id)
    }

    /// Updates an integration (PATCH).
    pub(crate) fn update(
        &mut self,
        project: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value, Rejection> {
        self.find(project, id)?;
        self.writes.push(Write {
            method: "PATCH".to_owned(),
            path: format!("/projects/{project}/integrations/{id}"),
            body: body.clone(),
        });
        let object = body
            .as_object()
            .ok_or_else(|| Rejection::new(400, "The body must be a JSON object"))?;
        let stored = self.find(project, id)?.clone();
        // `type` is immutable (platformsh-api.md §4.4 item 6); a PATCH is partial (§2.2).
        if let Some(kind) = object.get("type")
            && kind.as_str() != Some(stored.kind.as_str())
        {
            return Err(Rejection::invalid(
                "type",
                "The integration type cannot be changed.",
            ));
        }
        let mut updated = stored.clone();
        if MANAGED.contains(&stored.kind.as_str()) {
            let (fields, secrets) = check_body(&stored.kind, object, false)?;
            updated.fields.extend(fields);
            updated.secrets.extend(secrets);
            check_fetch_prune(&updated.fields)?;
        } else {
            updated.fields.extend(object.clone());
        }
        updated.updated = SystemTime::now();
        let project_mut = self.projects.get_mut(project).expect("found above");
        let slot = project_mut
            .integrations
            .iter_mut()
            .find(|i| i.id == id)
            .expect("found above");
        *slot = updated.clone();
        // An update fetches again (inferred).
        let activities = self.start_activities(project, &updated, &["fetch"]);
        Ok(to_json(&Accepted {
            status: Some("updated".to_owned()),
            code: Some(200),
            embedded: Embedded {
                entity: Some(self.view(project, &updated)),
                activities,
            },
        }))
    }

    /// Deletes an integration.
    pub(crate) fn delete(&mut self, project: &str, id: &str) -> Result<Value, Rejection> {
        self.find(project, id)?;
        self.writes.push(Write {
            method: "DELETE".to_owned(),
            path: format!("/projects/{project}/integrations/{id}"),
            body: Value::Null,
        });
        let project_mut = self.projects.get_mut(project).expect("found above");
        project_mut.integrations.retain(|i| i.id != id);
        // Activities and no entity (platformsh-api.md §1.3); none started here (inferred).
        Ok(to_json(&Accepted {
            status: Some("deleted".to_owned()),
            code: Some(200),
            embedded: Embedded::default(),
        }))
    }

    /// Runs `#validate`: a 2xx when valid, else 400 with per-field `detail`
    /// (platformsh-api.md §1.5).
    pub(crate) fn validate(&self, project: &str, id: &str) -> Result<Value, Rejection> {
        self.find(project, id)?;
        let errors = &self.projects[project].seed.validation_errors;
        if errors.is_empty() {
            Ok(to_json(&Status {
                status: "ok".to_owned(),
                code: 200,
            }))
        } else {
            Err(Rejection {
                status: 400,
                message: "The integration is invalid.".to_owned(),
                detail: Some(field_detail(
                    errors.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )),
            })
        }
    }

    /// Starts `integration.{type}.{step}` activities (platformsh-api.md §1.3).
    fn start_activities(
        &mut self,
        project: &str,
        stored: &Stored,
        steps: &[&str],
    ) -> Vec<Activity> {
        let fails = self.projects[project].seed.fail_activities;
        // Registering the hooks registers the webhook on the fake Bitbucket with the
        // integration's own credentials, and fails where Bitbucket would refuse them
        // (platformsh-api.md §4.4 item 10: hook registration is the `register_hooks` activity;
        // that it fails exactly then is inferred).
        let registered = !steps.contains(&"register_hooks") || self.register(project, stored);
        let subject = match stored.fields.get("repository").and_then(Value::as_str) {
            Some(repository) => format!("{} integration for {repository}", stored.kind),
            None => format!("{} integration", stored.kind),
        };
        let mut views = Vec::new();
        for step in steps {
            let id = self.next_id();
            if self.activity_order.len() >= ACTIVITY_LOG
                && let Some(oldest) = self.activity_order.pop_front()
            {
                self.activities.remove(&oldest);
            }
            let ending = match self.activity_ending {
                ActivityEnding::AsSeeded if (fails || !registered) && *step == "register_hooks" => {
                    Ending::HookFailure
                }
                ActivityEnding::AsSeeded => Ending::Success,
                ActivityEnding::Cancelled => Ending::Cancelled,
                ActivityEnding::FailedSilently => Ending::FailedSilently,
                ActivityEnding::Never => Ending::Never,
            };
            self.activity_order.push_back(id.clone());
            self.activities.insert(
                id.clone(),
                ActivityRecord {
                    project: project.to_owned(),
                    integration: stored.id.clone(),
                    subject: subject.clone(),
                    kind: format!("integration.{}.{step}", stored.kind),
                    started: Instant::now(),
                    created: SystemTime::now(),
                    delay: self.activity_delay,
                    ending,
                },
            );
            views.push(self.activity_view(&id).expect("just inserted"));
        }
        views
    }

    /// The first fetch of a new source integration with `fetch_branches` and `prune_branches`
    /// on: the project's environments that match no branch of the repository are deleted,
    /// pull-request environments and non-local deployment targets spared
    /// (platformsh/platformsh-docs#5451). A repository the fake Bitbucket does not know
    /// deletes nothing (inferred: the fetch fails).
    fn first_fetch(&mut self, project: &str, stored: &Stored) {
        let on = |key: &str| stored.fields.get(key).and_then(Value::as_bool) == Some(true);
        if !(on("fetch_branches") && on("prune_branches")) {
            return;
        }
        let text = |key: &str| stored.fields.get(key).and_then(Value::as_str).unwrap_or("");
        let (owner, slug) = match stored.kind.as_str() {
            "bitbucket" => match text("repository").split_once('/') {
                Some((owner, slug)) => (owner.to_owned(), slug.to_owned()),
                None => return,
            },
            _ => (text("project").to_owned(), text("repository").to_owned()),
        };
        let Some(branches) = self.bitbucket.branches_of(&owner, &slug) else {
            return;
        };
        if let Some(p) = self.projects.get_mut(project) {
            p.seed.environments.retain(|e| {
                e.is_pr
                    || e.deployment_target.as_deref().is_some_and(|t| t != "local")
                    || branches.contains(&e.name)
            });
        }
    }

    /// Registers `stored`'s webhook on the fake Bitbucket with its credentials: whether
    /// Bitbucket allowed it.
    fn register(&mut self, project: &str, stored: &Stored) -> bool {
        use crate::sandbox::bitbucket::HookCredentials;
        let hook = format!(
            "{}/projects/{project}/integrations/{}/hook",
            self.link_base, stored.id
        );
        let field = |key: &str| stored.fields.get(key).and_then(Value::as_str).unwrap_or("");
        let secret = |key: &str| stored.secrets.get(key).map_or("", String::as_str);
        match stored.kind.as_str() {
            "bitbucket" => {
                let key = stored
                    .fields
                    .get("app_credentials")
                    .and_then(|c| c.get("key"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let Some((owner, slug)) = field("repository").split_once('/') else {
                    return false;
                };
                let (owner, slug) = (owner.to_owned(), slug.to_owned());
                let events = crate::live::CLOUD_HOOK_EVENTS.map(str::to_owned);
                let secret_sha256 = secret("app_credentials.secret").to_owned();
                self.register_hook(
                    HookCredentials::Cloud {
                        key,
                        secret_sha256: &secret_sha256,
                    },
                    &owner,
                    &slug,
                    &hook,
                    &events,
                )
            }
            "bitbucket_server" => {
                let events = crate::live::SERVER_HOOK_EVENTS.map(str::to_owned);
                let (username, token) = (field("username").to_owned(), secret("token").to_owned());
                let (owner, slug) = (field("project").to_owned(), field("repository").to_owned());
                self.register_hook(
                    HookCredentials::Server {
                        username: &username,
                        token_sha256: &token,
                    },
                    &owner,
                    &slug,
                    &hook,
                    &events,
                )
            }
            _ => true,
        }
    }

    /// An activity as GET returns it.
    pub(crate) fn activity(&self, project: &str, id: &str) -> Result<Value, Rejection> {
        self.project(project)?;
        match self.activities.get(id) {
            Some(record) if record.project == project => {
                Ok(to_json(&self.activity_view(id).expect("exists")))
            }
            _ => Err(Rejection::new(404, format!("Activity `{id}` not found"))),
        }
    }

    /// A project's activities, newest first: spec `list-projects-activities`, an
    /// `ActivityCollection` (a bare array). The spec documents no query parameters; these are
    /// the ones client-php's `HasActivitiesTrait::getActivities` sends: `type`, `state` and
    /// `result` filter (several values: repeated or comma-separated, inferred), `starts_at`
    /// keeps those created at or before it ("Only activities created before this date will
    /// be listed", the CLI's `--start`; inclusive, inferred from `ActivityMonitor`, which
    /// passes the newest `created_at` of the activities it waits for and expects them all),
    /// and `count` caps the page (default [`World::activity_page`]).
    pub(crate) fn project_activities(
        &self,
        project: &str,
        query: &[(String, String)],
    ) -> Result<Value, Rejection> {
        self.project(project)?;
        let values = |name: &str| -> Vec<String> {
            query
                .iter()
                .filter(|(key, _)| key == name || key.strip_suffix("[]") == Some(name))
                .flat_map(|(_, value)| value.split(',').map(str::trim).map(str::to_owned))
                .filter(|value| !value.is_empty())
                .collect()
        };
        let (types, states, results) = (values("type"), values("state"), values("result"));
        let starts_at = match values("starts_at").first() {
            Some(text) => Some(crate::wire::time::parse_rfc3339(text).ok_or_else(|| {
                Rejection::invalid("starts_at", format!("`{text}` is not a date"))
            })?),
            None => None,
        };
        let count = match values("count").first() {
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| Rejection::invalid("count", format!("`{text}` is not a number")))?,
            None => self.activity_page,
        };
        let mut views: Vec<Activity> = self
            .activity_order
            .iter()
            .rev()
            .filter(|id| self.activities[*id].project == project)
            .filter(|id| {
                // Dates are to the second: compare whole seconds.
                starts_at.is_none_or(|at| {
                    crate::wire::time::unix_seconds(self.activities[*id].created).floor() <= at
                })
            })
            .filter_map(|id| self.activity_view(id))
            .filter(|a| types.is_empty() || types.contains(&a.kind))
            .filter(|a| states.is_empty() || states.contains(&a.state))
            .filter(|a| {
                results.is_empty() || a.result.as_ref().is_some_and(|r| results.contains(r))
            })
            .collect();
        views.truncate(count);
        Ok(to_json(&views))
    }

    /// Every activity of `project` as the sandbox answers it (newest first, unfiltered, no
    /// page limit): for tests that check its answers against the spec.
    pub fn activities_of(&self, project: &str) -> Vec<Value> {
        self.activity_order
            .iter()
            .rev()
            .filter(|id| self.activities[*id].project == project)
            .filter_map(|id| self.activity_view(id))
            .map(|a| to_json(&a))
            .collect()
    }

    /// An activity: `pending` for the first half of its delay, `in_progress` for the
    /// second, then `complete` or `cancelled` with a result (spec `Activity`: its `state` enum,
    /// its nullable `result` enum, and every field of its `required` list, plus `id` (Upsun
    /// spec), `integration` and `_links.self`). `text` and `log` wording are inferred.
    fn activity_view(&self, id: &str) -> Option<Activity> {
        let record = self.activities.get(id)?;
        let elapsed = record.started.elapsed();
        let done = elapsed >= record.delay && record.ending != Ending::Never;
        let started = done || elapsed >= record.delay / 2;
        let step = record.kind.rsplit('.').next().unwrap_or("");
        let doing = match step {
            "register_hooks" => "Registering the webhook of",
            "fetch" => "Fetching from",
            _ => "Working on",
        };
        let text = format!("{doing} the {}", record.subject);
        let (state, result, text, log) = match (done, record.ending) {
            (false, _) if started => ("in_progress", None, text, format!("{doing}...")),
            (false, _) => ("pending", None, text, String::new()),
            (true, Ending::Success | Ending::Never) => {
                ("complete", Some("success"), text, "Done.".to_owned())
            }
            (true, Ending::HookFailure) => (
                "complete",
                Some("failure"),
                format!("Registering the webhook of the {} failed", record.subject),
                "Registering the webhook on Bitbucket failed: the OAuth consumer lacks the Webhooks Read and Write permission."
                    .to_owned(),
            ),
            (true, Ending::Cancelled) => ("cancelled", Some("failure"), text, String::new()),
            (true, Ending::FailedSilently) => {
                ("complete", Some("failure"), String::new(), String::new())
            }
        };
        let created = rfc3339(record.created);
        let at = |offset: Duration| rfc3339(record.created + offset);
        let mut other = Map::new();
        let null = Value::Null;
        other.insert(
            "updated_at".to_owned(),
            at(elapsed.min(record.delay)).into(),
        );
        other.insert("parameters".to_owned(), Value::Object(Map::new()));
        other.insert("environments".to_owned(), Value::Array(Vec::new()));
        other.insert(
            "started_at".to_owned(),
            if started {
                at(record.delay / 2).into()
            } else {
                null.clone()
            },
        );
        let finished_at = if done {
            at(record.delay).into()
        } else {
            null.clone()
        };
        let cancelled = done && state == "cancelled";
        other.insert(
            "completed_at".to_owned(),
            if cancelled {
                null.clone()
            } else {
                finished_at.clone()
            },
        );
        other.insert(
            "cancelled_at".to_owned(),
            if cancelled { finished_at } else { null.clone() },
        );
        other.insert("timings".to_owned(), Value::Object(Map::new()));
        other.insert("payload".to_owned(), Value::Object(Map::new()));
        other.insert("description".to_owned(), text.clone().into());
        other.insert("expires_at".to_owned(), null);
        other.insert("commands".to_owned(), Value::Array(Vec::new()));
        Some(Activity {
            id: Some(id.to_owned()),
            kind: record.kind.clone(),
            state: state.to_owned(),
            result: result.map(str::to_owned),
            project: Some(record.project.clone()),
            integration: Some(record.integration.clone()),
            created_at: Some(created),
            completion_percent: Some(match (done, started) {
                (true, _) => 100,
                (false, true) => 50,
                (false, false) => 0,
            }),
            text: Some(text),
            log: Some(log),
            other,
            links: Links::new().with(
                "self",
                format!(
                    "{}/projects/{}/activities/{id}",
                    self.link_base, record.project
                ),
            ),
        })
    }

    /// One page of an organization's projects, sorted by ID, after the cursor `after`: pages
    /// of `page[size]` (1 to 100) with a `next` link holding the cursor while there are more
    /// (platformsh-api.md §8).
    ///
    /// `statuses` is the `filter[status][in]` (or `filter[status]`) of the request: without it
    /// every project is listed, whatever its status (spec: `list-org-projects`, whose
    /// `filter[status]` is a `StringFilter`; that an unfiltered listing includes deleted
    /// projects is inferred from the official CLI filtering them out,
    /// legacy-cli `TeamProjectAddCommand.php`).
    pub(crate) fn organization_projects(
        &self,
        org: &str,
        size: Option<usize>,
        after: Option<&str>,
        page: usize,
        statuses: Option<&[&str]>,
    ) -> Result<Value, Rejection> {
        // Only an ID: the listing's `OrganizationID` is `format: ulid` (spec
        // `list-org-projects`); a name here is a bare 404, as issue 14 reports of the API
        // (inferred from that report).
        let organization = self
            .organizations
            .get(org)
            .ok_or_else(|| Rejection::new(404, "Not Found"))?;
        if organization.fail_after_pages.is_some_and(|n| page >= n) {
            return Err(Rejection::new(500, "Internal Server Error"));
        }
        let size = size
            .unwrap_or(self.page_size)
            .clamp(1, 100)
            .min(self.page_size);
        let mut ids: Vec<&Project> = self
            .projects
            .values()
            .filter(|p| p.seed.organization.as_deref() == Some(org))
            .filter(|p| {
                statuses.is_none_or(|s| s.contains(&p.seed.status.as_deref().unwrap_or("active")))
            })
            .filter(|p| after.is_none_or(|a| p.seed.id.as_str() > a))
            .collect();
        let more = ids.len() > size;
        ids.truncate(size);
        let items = ids
            .iter()
            .map(|p| OrganizationProject {
                id: p.seed.id.clone(),
                organization_id: Some(org.to_owned()),
                title: Some(p.seed.title.clone().unwrap_or_else(|| p.seed.id.clone())),
                status: Some(p.seed.status.clone().unwrap_or_else(|| "active".to_owned())),
            })
            .collect();
        let base = format!("{}/organizations/{org}/projects", self.link_base);
        let mut links = Links::new().with("self", &base);
        if more && let Some(last) = ids.last() {
            // `page_number` is the sandbox's own, for `fail_after_pages`.
            // The next link keeps the request's filter (inferred: cursor links carry the
            // query they continue).
            let filter = statuses.map_or_else(String::new, |s| {
                format!("filter%5Bstatus%5D%5Bin%5D={}&", s.join(","))
            });
            links = links.with(
                "next",
                format!(
                    "{base}?{filter}page%5Bsize%5D={size}&page%5Bafter%5D={}&page_number={}",
                    last.seed.id,
                    page + 1
                ),
            );
        }
        Ok(to_json(&ProjectPage { items, links }))
    }

    /// Every project with its integrations (public fields, secret digests), for tests and
    /// `GET /__sandbox/state`.
    pub fn dump(&self) -> Value {
        let projects = self
            .projects
            .iter()
            .map(|(id, p)| DumpProject {
                id,
                title: p.seed.title.as_deref(),
                organization: p.seed.organization.as_deref(),
                integrations: p
                    .integrations
                    .iter()
                    .map(|i| {
                        let mut view = self.view(id, i);
                        view.links = Links::new();
                        view.fields
                            .insert("secret_sha256".to_owned(), to_json(&i.secrets));
                        view
                    })
                    .collect(),
            })
            .collect();
        to_json(&Dump { projects })
    }

    /// Changes a stored integration behind bbsync's back (drift made in the console).
    pub fn tamper(&mut self, project: &str, field: &str, value: Value) -> bool {
        let Some(p) = self.projects.get_mut(project) else {
            return false;
        };
        let Some(i) = p
            .integrations
            .iter_mut()
            .find(|i| MANAGED.contains(&i.kind.as_str()))
        else {
            return false;
        };
        i.fields.insert(field.to_owned(), value);
        i.updated = SystemTime::now();
        true
    }

    /// The Bitbucket-family integrations of a project.
    pub fn managed(&self, project: &str) -> Vec<&Stored> {
        self.projects
            .get(project)
            .map(|p| {
                p.integrations
                    .iter()
                    .filter(|i| MANAGED.contains(&i.kind.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Rejection {
    /// The message and details on one line.
    pub(crate) fn message_with_detail(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{} {detail}", self.message),
            None => self.message.clone(),
        }
    }
}

/// The fields the published spec allows for each managed type (create and patch alike): spec
/// `BitbucketIntegrationCreateInput` / `BitbucketIntegrationPatch` and
/// `BitbucketServerIntegrationCreateInput` / `BitbucketServerIntegrationPatch` (all
/// `additionalProperties: false`), with `pull_requests_max_pages` from the Upsun spec.
pub(crate) fn allowed_fields(kind: &str) -> &'static [(&'static str, FieldType)] {
    use FieldType::*;
    match kind {
        "bitbucket" => &[
            ("type", Text),
            ("repository", Text),
            ("app_credentials", Object(&["key", "secret"])),
            (
                "addon_credentials",
                Object(&["addon_key", "client_key", "shared_secret"]),
            ),
            ("fetch_branches", Bool),
            ("prune_branches", Bool),
            ("build_pull_requests", Bool),
            ("pull_requests_clone_parent_data", Bool),
            ("resync_pull_requests", Bool),
            ("environment_init_resources", Resources),
            ("pull_requests_max_pages", OptionalInteger),
        ],
        _ => &[
            ("type", Text),
            ("url", Text),
            ("username", Text),
            ("token", Secret),
            ("project", Text),
            ("repository", Text),
            ("fetch_branches", Bool),
            ("prune_branches", Bool),
            ("build_pull_requests", Bool),
            ("pull_requests_clone_parent_data", Bool),
            ("environment_init_resources", Resources),
        ],
    }
}

/// The type of a field the sandbox checks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldType {
    /// A string.
    Text,
    /// A write-only string.
    Secret,
    /// A boolean.
    Bool,
    /// One of `default`, `manual`, `minimum`, `parent`.
    Resources,
    /// An integer or null.
    OptionalInteger,
    /// An object with exactly these keys (the last one write-only).
    Object(&'static [&'static str]),
}

type Checked = (Map<String, Value>, BTreeMap<String, String>);

/// Checks a create or PATCH body of a managed type against its spec schema (see
/// [`allowed_fields`]); returns the public fields to store and the digests of the secrets,
/// which are write-only and never returned (platformsh-api.md §2.1, §2.2).
fn check_body(kind: &str, body: &Map<String, Value>, create: bool) -> Result<Checked, Rejection> {
    let allowed = allowed_fields(kind);
    let mut fields = Map::new();
    let mut secrets = BTreeMap::new();
    for (key, value) in body {
        let Some((_, field_type)) = allowed.iter().find(|(name, _)| name == key) else {
            return Err(Rejection::invalid(key, "This field is not allowed."));
        };
        let ok = match field_type {
            FieldType::Text | FieldType::Secret => value.as_str().is_some_and(|s| !s.is_empty()),
            FieldType::Bool => value.is_boolean(),
            FieldType::Resources => matches!(
                value.as_str(),
                Some("default" | "manual" | "minimum" | "parent")
            ),
            FieldType::OptionalInteger => value.is_null() || value.is_u64(),
            // A credential object goes whole, its secret included (spec `required` inside
            // it; platformsh-api.md §4.4 item 1).
            FieldType::Object(keys) => value.as_object().is_some_and(|o| {
                o.len() == keys.len()
                    && keys
                        .iter()
                        .all(|k| o.get(*k).and_then(Value::as_str).is_some())
            }),
        };
        if !ok {
            return Err(Rejection::invalid(key, "This value is not valid."));
        }
        match field_type {
            FieldType::Secret => {
                secrets.insert(key.clone(), digest(value));
            }
            FieldType::Object(keys) => {
                let (secret_key, public) = keys.split_last().expect("objects have keys");
                let mut object = Map::new();
                for k in public {
                    object.insert((*k).to_owned(), value[*k].clone());
                }
                secrets.insert(format!("{key}.{secret_key}"), digest(&value[*secret_key]));
                fields.insert(key.clone(), Value::Object(object));
            }
            _ if key == "type" => {}
            _ => {
                fields.insert(key.clone(), value.clone());
            }
        }
    }
    // The create schemas' `required` (PATCH is partial in practice: platformsh-api.md §2.2).
    if create {
        let required: &[&str] = if kind == "bitbucket" {
            &["repository"]
        } else {
            &["url", "username", "token", "project", "repository"]
        };
        for key in required {
            if !body.contains_key(*key) {
                return Err(Rejection::invalid(key, "This field is required."));
            }
        }
    }
    // An http(s) URL (the CLI's UrlField, platformsh-api.md §4.1; inferred for the API).
    if let Some(url) = fields.get("url").and_then(Value::as_str)
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(Rejection::invalid("url", "This value is not a valid URL."));
    }
    // Cloud repositories are `user/repo` (spec `BitbucketIntegration.repository`; the CLI's
    // validator, platformsh-api.md §4.2).
    if let Some(repository) = fields.get("repository").and_then(Value::as_str)
        && kind == "bitbucket"
        && repository.matches('/').count() != 1
    {
        return Err(Rejection::invalid(
            "repository",
            "The repository must be in the form `owner/repo`.",
        ));
    }
    Ok((fields, secrets))
}

/// The API's defaults for omitted fields ([`defaults::on_create`]), including its quirk:
/// `prune_branches` defaults to true even when `fetch_branches` is false (and then fails
/// validation, [`check_fetch_prune`]).
fn apply_defaults(kind: &str, fields: &mut Map<String, Value>) {
    let Some(kind) = IntegrationType::from_api(kind) else {
        return;
    };
    for (key, value) in defaults::on_create(kind) {
        fields.entry(key.to_owned()).or_insert(value);
    }
}

/// Pruning requires fetching: `fetch_branches: false` with `prune_branches: true` fails
/// validation (spec `BitbucketIntegration.prune_branches`; platformsh-api.md §4.2, §4.4
/// item 3).
fn check_fetch_prune(fields: &Map<String, Value>) -> Result<(), Rejection> {
    let fetch = fields
        .get("fetch_branches")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let prune = fields
        .get("prune_branches")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !fetch && prune {
        return Err(Rejection::invalid(
            "prune_branches",
            "Pruning branches requires fetching branches (fetch_branches).",
        ));
    }
    Ok(())
}

/// A wire value as JSON (the wire types always serialise).
fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("wire types serialise to JSON")
}

/// `GET /__sandbox/state` (the sandbox's own, not the API's).
#[derive(Serialize)]
struct Dump<'a> {
    projects: Vec<DumpProject<'a>>,
}

/// A project in [`Dump`]: its integrations as GET returns them, without links, with the
/// SHA-256 of each secret (`secret_sha256`).
#[derive(Serialize)]
struct DumpProject<'a> {
    id: &'a str,
    title: Option<&'a str>,
    organization: Option<&'a str>,
    integrations: Vec<ApiIntegration>,
}

fn digest(value: &Value) -> String {
    format!(
        "{:x}",
        Sha256::digest(value.as_str().unwrap_or_default().as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn world() -> World {
        let seed: Seed =
            serde_json::from_value(json!({"projects": [{"id": "p1"}, {"id": "p2"}]})).unwrap();
        World::new(seed, Faults::default()).unwrap()
    }

    #[test]
    fn activities_go_pending_then_in_progress_then_complete() {
        let mut w = world();
        w.activity_delay = Duration::from_millis(300);
        let body = json!({"type": "bitbucket", "repository": "a/b"});
        let answer = w.create("p1", &body).unwrap();
        let first = &answer["_embedded"]["activities"][0];
        assert_eq!(
            (&first["state"], &first["result"], &first["started_at"]),
            (&json!("pending"), &Value::Null, &Value::Null)
        );
        let id = first["id"].as_str().unwrap().to_owned();
        std::thread::sleep(Duration::from_millis(160));
        assert_eq!(w.activity("p1", &id).unwrap()["state"], "in_progress");
        std::thread::sleep(Duration::from_millis(160));
        let done = w.activity("p1", &id).unwrap();
        assert_eq!(
            (&done["state"], &done["result"]),
            (&json!("complete"), &json!("success"))
        );
        assert!(done["completed_at"].is_string() && done["cancelled_at"].is_null());
        // The spec's states only; `text` and `log` are strings (no invented field).
        assert!(crate::wire::STATES.contains(&done["state"].as_str().unwrap()));
        assert!(done["text"].is_string() && done["log"].is_string());
    }

    #[test]
    fn cancelled_and_never_ending_activities() {
        let mut w = world();
        w.activity_ending = ActivityEnding::Cancelled;
        let body = json!({"type": "bitbucket", "repository": "a/b"});
        let answer = w.create("p1", &body).unwrap();
        let cancelled = &answer["_embedded"]["activities"][0];
        assert_eq!(
            (&cancelled["state"], &cancelled["result"]),
            (&json!("cancelled"), &json!("failure"))
        );
        assert!(cancelled["cancelled_at"].is_string() && cancelled["completed_at"].is_null());
        w.activity_ending = ActivityEnding::Never;
        let answer = w.create("p2", &body).unwrap();
        assert_eq!(answer["_embedded"]["activities"][0]["state"], "in_progress");
    }

    #[test]
    fn the_project_activity_listing_filters_like_the_clients_ask() {
        let mut w = world();
        let body = json!({"type": "bitbucket", "repository": "a/b"});
        w.create("p1", &body).unwrap();
        w.create("p2", &body).unwrap();
        let query = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let all = w.project_activities("p1", &[]).unwrap();
        let all = all.as_array().unwrap();
        assert_eq!(all.len(), 2, "only the project's own");
        // Newest first: the create started register_hooks, then fetch.
        assert_eq!(all[0]["type"], "integration.bitbucket.fetch");
        let created = all[0]["created_at"].as_str().unwrap();
        let listed = |pairs: &[(&str, &str)]| {
            w.project_activities("p1", &query(pairs))
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(listed(&[("starts_at", created)]), 2, "inclusive");
        assert_eq!(listed(&[("starts_at", "2000-01-01T00:00:00+00:00")]), 0);
        assert_eq!(listed(&[("type", "integration.bitbucket.fetch")]), 1);
        assert_eq!(listed(&[("state", "complete"), ("result", "success")]), 2);
        assert_eq!(listed(&[("state", "pending,in_progress")]), 0);
        assert_eq!(listed(&[("count", "1")]), 1);
        let bad = w.project_activities("p1", &query(&[("starts_at", "soon")]));
        assert_eq!(bad.unwrap_err().status, 400);
        assert_eq!(w.project_activities("nope", &[]).unwrap_err().status, 404);
    }

    #[test]
    fn create_applies_defaults_and_hides_secrets() {
        let mut w = world();
        let body = json!({"type": "bitbucket", "repository": "a/b", "app_credentials": {"key": "k", "secret": "s"}});
        w.create("p1", &body).unwrap();
        let list = w.list("p1").unwrap();
        assert_eq!(list[0]["fetch_branches"], json!(true));
        assert_eq!(list[0]["app_credentials"], json!({"key": "k"}));
        assert!(!list.to_string().contains("\"s\""));
    }

    #[test]
    fn a_second_code_source_is_refused() {
        let mut w = world();
        let github = json!({"type": "github", "repository": "a/b", "token": "t"});
        w.create("p1", &github).unwrap();
        let body = json!({"type": "bitbucket", "repository": "a/b", "app_credentials": {"key": "k", "secret": "s"}});
        let e = w.create("p1", &body).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn the_prune_default_quirk_is_emulated() {
        let mut w = world();
        let body = json!({"type": "bitbucket", "repository": "a/b", "fetch_branches": false});
        let e = w.create("p1", &body).unwrap_err();
        assert_eq!(e.status, 400);
        let body = json!({"type": "bitbucket", "repository": "a/b", "fetch_branches": false, "prune_branches": false});
        w.create("p1", &body).unwrap();
    }

    #[test]
    fn one_bitbucket_integration_per_project_and_unknown_fields_rejected() {
        let mut w = world();
        let body = json!({"type": "bitbucket", "repository": "a/b"});
        w.create("p1", &body).unwrap();
        assert_eq!(w.create("p1", &body).unwrap_err().status, 400);
        let bad = json!({"type": "bitbucket_server", "url": "https://x", "username": "u", "token": "t", "project": "P", "repository": "r", "resync_pull_requests": true});
        assert_eq!(
            w.create("p2", &bad).unwrap_err().detail.unwrap()["resync_pull_requests"][0],
            "This field is not allowed."
        );
        let half = json!({"app_credentials": {"key": "k2"}});
        let id = w.managed("p1")[0].id().to_owned();
        assert_eq!(w.update("p1", &id, &half).unwrap_err().status, 400);
    }

    #[test]
    fn activities_are_forgotten_oldest_first_past_the_bound() {
        let mut w = world();
        let body = json!({"type": "bitbucket", "repository": "a/b"});
        let first = w.create("p1", &body).unwrap()["_embedded"]["activities"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(w.activity("p1", &first).unwrap()["state"], "complete");
        let id = w.managed("p1")[0].id().to_owned();
        // A create starts two activities and each update one.
        for _ in 0..ACTIVITY_LOG {
            w.update("p1", &id, &json!({"fetch_branches": true}))
                .unwrap();
        }
        assert_eq!(w.activities.len(), ACTIVITY_LOG);
        assert_eq!(w.activity("p1", &first).unwrap_err().status, 404);
        let last = w.activity_order.back().unwrap().clone();
        assert_eq!(w.activity("p1", &last).unwrap()["state"], "complete");
    }
}
