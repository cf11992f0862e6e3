//! The Platform.sh API client: token exchange, retries, concurrency limits, link rebasing.
//!
//! Every request, the token exchange included, takes its turn from the process's one
//! [`Throttle`] ([`super::throttle`]): a 429 pauses its whole host and does not use an attempt;
//! the wait for 429s is bounded in time instead ([`ClientConfig::max_throttle_wait`]).
//!
//! What is retried: every request on 503 (the server did not handle it: RFC 9110 §15.6.4;
//! `Retry-After` is honoured) and on a refused connection (nothing was sent);
//! GET, PATCH and DELETE also on 502, 504, timeouts and resets. A POST whose outcome is unclear
//! (a 500, 502 or 504, a timeout, a reset, an answer cut short) is never sent again in the same
//! run: the client looks for what it tried to create, and otherwise reports the outcome unknown
//! ([`Client::create_integration`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use url::Url;

use super::error::{ApiError, Call, clean_text, describe_answer, shown};
use super::throttle::{AfterThrottle, Throttle, ThrottleConfig, Waited as Throttled};
use crate::model::IntegrationType;
use crate::model::ids::{IntegrationId, OrganizationId, ProjectId};
use crate::model::secret::Secret;
use crate::wire::{
    Accepted, Activity, ApiIntegration, Links, OrganizationProject, ProjectPage, TokenResponse,
};

/// How to reach and talk to the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API base URL (`https://api.platform.sh`).
    pub api_url: String,
    /// The auth server (`https://auth.api.platform.sh`).
    pub auth_url: String,
    /// The API token (`PLATFORMSH_CLI_TOKEN`).
    pub token: Secret,
    /// The OAuth client ID for the token exchange.
    pub client_id: String,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests per second to one host at most, if capped (`--max-rps`).
    pub max_rps: Option<f64>,
    /// The longest one request waits for 429s in total (`--max-throttle-wait`).
    pub max_throttle_wait: Duration,
    /// Where measured rate limits are remembered across processes (the rate cache's
    /// directory), if anywhere.
    pub rate_cache: Option<std::path::PathBuf>,
    /// Time allowed for one request, answer included.
    pub timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff: Duration,
    /// Longest backoff delay (and longest `Retry-After` honoured).
    pub max_backoff: Duration,
    /// Time between activity polls (1 s: the CLI's, legacy-cli `ActivityMonitor::waitMultiple`).
    pub activity_poll: Duration,
    /// The largest answer body read, in bytes ([`MAX_BODY`] unless changed).
    pub max_body: usize,
    /// How long after a create whose outcome is unclear the project is listed a second time,
    /// if the first look found nothing (2 s).
    pub create_recheck: Duration,
}

/// The largest answer body bbsync reads: 16 MiB. A longer one is an error, and it is never
/// buffered whole (read chunk by chunk, and refused at once when `Content-Length` says so).
/// Inferred: the API's largest answers (an integrations list, a page of 100 projects) are some
/// hundred KiB; nothing the API documents comes near.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

impl ClientConfig {
    /// Defaults for `api_url`, `auth_url` and `token`.
    pub fn new(api_url: &str, auth_url: &str, token: Secret) -> Self {
        Self {
            api_url: api_url.to_owned(),
            auth_url: auth_url.to_owned(),
            token,
            client_id: "platform-api-user".to_owned(),
            concurrency: 16,
            max_rps: None,
            max_throttle_wait: super::throttle::MAX_THROTTLE_WAIT,
            rate_cache: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            activity_poll: Duration::from_secs(1),
            max_body: MAX_BODY,
            create_recheck: Duration::from_secs(2),
        }
    }
}

/// Counters of what the client did, for logs and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Responses by HTTP status (0: no response).
    pub responses: std::sync::Mutex<BTreeMap<u16, u64>>,
    /// Retries made.
    pub retries: AtomicU64,
    /// Token exchanges made.
    pub token_exchanges: AtomicU64,
}

impl Stats {
    fn count(&self, status: u16) {
        let mut map = self.responses.lock().expect("stats lock");
        *map.entry(status).or_default() += 1;
    }

    /// Responses with this status so far.
    pub fn responses_with(&self, status: u16) -> u64 {
        self.responses
            .lock()
            .expect("stats lock")
            .get(&status)
            .copied()
            .unwrap_or(0)
    }
}

/// The result of a write.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The integration as it now is, when the API said.
    pub entity: Option<ApiIntegration>,
    /// The activities it started.
    pub activities: Vec<Activity>,
    /// A create whose answer was lost, found by re-listing: taken as created.
    pub recovered: bool,
}

/// The activities to wait for after a write ([`Client::wait_for_activities`]).
#[derive(Debug, Clone)]
pub enum Awaited {
    /// Those the write's answer named (`_embedded.activities`).
    Started(Vec<Activity>),
    /// Those of this integration, found in the project's activity listing: a create recovered
    /// by re-listing ([`Written::recovered`]), whose answer was lost.
    OfIntegration(String),
}

/// What a wait for activities saw.
#[derive(Debug, Clone)]
pub struct Waited {
    /// The activities, as last seen.
    pub activities: Vec<Activity>,
    /// The wait ran out of time with some not finished.
    pub timed_out: bool,
}

/// The answer of `#validate`.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    /// The API found it valid.
    Valid,
    /// The API found problems (`field: message`).
    Invalid(Vec<String>),
    /// The integration offers no `#validate` link.
    Unsupported,
}

/// A Platform.sh API client. Cheap to clone; clones share the token, limits and counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    api: Url,
    token_url: Url,
    access: Mutex<Option<(Secret, Instant)>>,
    /// The last access tokens issued, redacted from the API's text in errors.
    issued: std::sync::Mutex<std::collections::VecDeque<Secret>>,
    permits: Semaphore,
    throttle: Throttle,
    stats: Arc<Stats>,
}

enum Retry {
    /// GET, PATCH, DELETE: retried on transient failures.
    Idempotent,
    /// POST: retried only where the API surely did nothing (429, 503, connection refused).
    Unsafe,
}

/// Checks an API or auth URL against the one URL policy ([`crate::model::check_url`]).
pub fn check_url(name: &str, text: &str) -> Result<Url, ApiError> {
    crate::model::check_url(name, text).map_err(ApiError::Config)
}

impl Client {
    /// A client for `config`. Refuses `http://` URLs to non-loopback hosts.
    pub fn new(config: ClientConfig) -> Result<Self, ApiError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = check_url("the API URL", &config.api_url)?;
        let auth = check_url("the auth URL", &config.auth_url)?;
        let token_url = Url::parse(&format!(
            "{}/oauth2/token",
            auth.as_str().trim_end_matches('/')
        ))
        .map_err(|e| ApiError::Config(format!("bad auth URL: {e}")))?;
        let http = http_client(config.timeout, config.connect_timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                permits: Semaphore::new(config.concurrency.max(1)),
                throttle: Throttle::new(ThrottleConfig {
                    max_rps: config.max_rps,
                    max_wait: config.max_throttle_wait,
                    cache: config.rate_cache.clone(),
                }),
                config,
                api,
                token_url,
                access: Mutex::new(None),
                issued: std::sync::Mutex::new(std::collections::VecDeque::new()),
                stats: Arc::new(Stats::default()),
            }),
        })
    }

    /// The process's throttle, to share with the Bitbucket client.
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// What the client did so far.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// `{api}{path}`.
    pub(crate) fn url(&self, path: &str) -> Url {
        let base = self.inner.api.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}")).unwrap_or_else(|_| self.inner.api.clone())
    }

    /// A HAL link made usable: its path and query on the configured API origin (links may name
    /// a regional host such as `https://eu-3.platform.sh/api/...`).
    pub(crate) fn rebase(&self, href: &str) -> Url {
        let parsed = Url::parse(href).or_else(|_| self.inner.api.join(href));
        match parsed {
            Ok(link) => {
                let mut url = self.inner.api.clone();
                url.set_path(link.path());
                url.set_query(link.query());
                url
            }
            Err(_) => self.url(href),
        }
    }

    /// `href` with an origin: as it is when it has one, else on the configured API URL's origin
    /// (the URL the object came from, as platformsh-client-php `makeAbsoluteUrl` does). Not
    /// rebased: it is for people (a webhook URL to paste into Bitbucket), not for requests.
    pub(crate) fn absolute(&self, href: &str) -> String {
        if href.contains("//") {
            return href.to_owned();
        }
        self.inner
            .api
            .join(href)
            .map_or_else(|_| href.to_owned(), |url| url.to_string())
    }

    /// The path of `url` as the API sees it: without the configured API URL's own path (a base
    /// such as `https://host/api`), or else without a leading `/api`, which the gateway also
    /// serves and links often carry (platformsh-api.md §1.1).
    pub(crate) fn api_path<'u>(&self, url: &'u Url) -> &'u str {
        let path = url.path();
        let base = self.inner.api.path().trim_end_matches('/');
        for prefix in [base, "/api"] {
            if let Some(rest) = path.strip_prefix(prefix)
                && !prefix.is_empty()
                && rest.starts_with('/')
            {
                return rest;
            }
        }
        path
    }

    /// Where a write to integration `id` of `project` goes: its link `href` (rebased), or the
    /// spec path `/projects/{project}/integrations/{id}` without one. Refused unless the ID is
    /// an integration ID ([`IntegrationId::is_valid`]) and the link stays on that integration's
    /// path: exactly it, or with `sub_paths` below it (`#edit` and `#validate` links, as
    /// platformsh-api.md §1.4 lists them, name the integration or a path under it), with no
    /// query. Inferred: the API's links always do; one that does not would send the write to
    /// another integration (`../`), another project or another kind of integration.
    pub(crate) fn write_target(
        &self,
        method: &str,
        project: &ProjectId,
        id: &IntegrationId,
        href: Option<&str>,
        sub_paths: bool,
    ) -> Result<Url, ApiError> {
        let refuse = |reason: String| ApiError::Refused {
            method: method.to_owned(),
            reason: shown(&clean_text(&reason)),
        };
        if !crate::model::ids::is_project_id(project.as_str()) {
            return Err(refuse(format!(
                "`{project}` is not a project ID (lowercase letters and digits)"
            )));
        }
        if !id.is_valid() {
            return Err(refuse(format!(
                "`{id}` of project `{project}` is not an integration ID (lowercase letters and digits)"
            )));
        }
        let expected = format!("/projects/{project}/integrations/{id}");
        let Some(href) = href else {
            return Ok(self.url(&expected));
        };
        let url = self.rebase(href);
        let path = self.api_path(&url);
        let below = path
            .strip_prefix(expected.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| {
                sub_paths
                    && rest.split('/').all(|segment| {
                        !segment.is_empty()
                            && segment
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
            });
        if (path != expected && !below) || url.query().is_some() {
            return Err(refuse(format!(
                "its link `{href}` is not integration `{id}` of project `{project}` (`{expected}`)"
            )));
        }
        Ok(url)
    }

    async fn access_token(&self, force: bool) -> Result<Secret, ApiError> {
        let mut cached = self.inner.access.lock().await;
        if !force
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let call = Call {
            method: "POST".to_owned(),
            path: self.inner.token_url.path().to_owned(),
        };
        self.inner
            .stats
            .token_exchanges
            .fetch_add(1, Ordering::Relaxed);
        let mut attempt = 0;
        let mut throttled = Throttled::default();
        let response = loop {
            attempt += 1;
            let ticket = self
                .inner
                .throttle
                .turn(&self.inner.token_url, &mut throttled)
                .await
                .map_err(|refusal| {
                    refusal.into_error(call.clone(), self.inner.config.max_throttle_wait)
                })?;
            let sent = self
                .inner
                .http
                .post(self.inner.token_url.clone())
                .basic_auth(&self.inner.config.client_id, Some(""))
                .form(&[
                    ("grant_type", "api_token"),
                    ("api_token", self.inner.config.token.expose()),
                ])
                .send()
                .await;
            // Retried as a GET is (the exchange changes nothing the next one depends on): on
            // 429, 502, 503 and 504, a refused connection and a timeout, with the same backoff
            // and `Retry-After`, counted as retries. An auth service that stays down is
            // [`ApiError::AuthUnavailable`].
            match sent {
                // A 429 pauses the auth host and uses no attempt ([`Throttle`]).
                Ok(response) if response.status().as_u16() == 429 => {
                    match self
                        .inner
                        .throttle
                        .throttled(ticket, retry_after(&response), &throttled)
                    {
                        AfterThrottle::Retry => attempt -= 1,
                        AfterThrottle::GiveUp(refusal) => {
                            return Err(refusal
                                .into_error(call.clone(), self.inner.config.max_throttle_wait));
                        }
                    }
                }
                Ok(response)
                    if retryable_status(response.status().as_u16())
                        && attempt < self.inner.config.max_attempts =>
                {
                    ticket.ended(true);
                    self.retry_wait(attempt, retry_after(&response)).await;
                }
                Ok(response) => {
                    ticket.ended(true);
                    break response;
                }
                Err(error)
                    if attempt < self.inner.config.max_attempts
                        && (error.is_connect() || error.is_timeout()) =>
                {
                    ticket.ended(false);
                    self.retry_wait(attempt, None).await;
                }
                Err(error) => {
                    ticket.ended(false);
                    if error.is_connect() {
                        self.inner.throttle.mark_down(&self.inner.token_url);
                    }
                    return Err(ApiError::Transport {
                        call,
                        reason: transport_reason(&error),
                        unclear: false,
                        source: Some(Arc::new(error)),
                    });
                }
            }
        };
        let status = response.status().as_u16();
        let mut response = response;
        let bytes = match read_body(&mut response, self.inner.config.max_body).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge) => {
                return Err(ApiError::TooLarge {
                    call,
                    status,
                    limit: self.inner.config.max_body,
                    unclear: false,
                });
            }
            // A token answer cut short reads as no answer (and fails below when it was a 2xx).
            Err(BodyError::Read(_)) => Vec::new(),
        };
        if !(200..300).contains(&status) {
            return Err(token_error(&call.path, status, &bytes));
        }
        let body = parse(&bytes);
        let token: TokenResponse = serde_json::from_value(body).map_err(|e| ApiError::Shape {
            call,
            reason: clean_text(&format!("no access token in the answer ({e})")),
        })?;
        let secret = Secret::new(token.access_token);
        {
            let mut issued = self.inner.issued.lock().expect("issued tokens lock");
            if issued.len() >= 4 {
                issued.pop_front();
            }
            issued.push_back(secret.clone());
        }
        *cached = Some((
            secret.clone(),
            token_deadline(Instant::now(), token.expires_in),
        ));
        Ok(secret)
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let config = &self.inner.config;
        if let Some(wait) = retry_after {
            return wait.min(config.max_backoff);
        }
        let exponential =
            crate::model::backoff::exponential(config.backoff, attempt, config.max_backoff);
        // Equal jitter: half fixed, half random, so retries spread out but never hammer.
        let half = exponential / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// `error` without the client's own secrets (the API token, the access tokens issued)
    /// wherever the API's text in it repeats them: an API may echo what it was sent.
    fn scrub(&self, mut error: ApiError) -> ApiError {
        error.redact(self.inner.config.token.expose());
        for token in self.inner.issued.lock().expect("issued tokens lock").iter() {
            error.redact(token.expose());
        }
        error
    }

    /// An answer that could not be understood, for `method url` ([`Client::scrub`]bed: the
    /// reason may quote the API).
    fn shape(&self, url: &Url, method: &str, reason: &str) -> ApiError {
        self.scrub(ApiError::Shape {
            call: Call {
                method: method.to_owned(),
                path: url.path().to_owned(),
            },
            reason: clean_text(reason),
        })
    }

    /// Sends one API request; JSON in, JSON out. Errors are [`Client::scrub`]bed.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<Value, ApiError> {
        self.send_unscrubbed(method, url, body, retry)
            .await
            .map_err(|e| self.scrub(e))
    }

    async fn send_unscrubbed(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<Value, ApiError> {
        let call = Call {
            method: method.to_string(),
            path: url.path().to_owned(),
        };
        let mut attempt = 0u32;
        let mut refreshed = false;
        let mut throttled = Throttled::default();
        loop {
            attempt += 1;
            let token = self.access_token(false).await?;
            let permit = self
                .inner
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let ticket = self
                .inner
                .throttle
                .turn(&url, &mut throttled)
                .await
                .map_err(|refusal| {
                    refusal.into_error(call.clone(), self.inner.config.max_throttle_wait)
                })?;
            let started = Instant::now();
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let span =
                tracing::debug_span!("api", method = %call.method, path = %call.path, attempt);
            let limit = self.inner.config.max_body;
            let exchange = async {
                match request.send().await {
                    Ok(mut response) => {
                        let status = response.status().as_u16();
                        let wait = retry_after(&response);
                        let step_up = asks_for_step_up(&response);
                        let text = read_body(&mut response, limit).await;
                        (Some(status), wait, step_up, text)
                    }
                    Err(error) => (None, None, false, Err(BodyError::Read(error))),
                }
            };
            let result = tracing::Instrument::instrument(exchange, span).await;
            drop(permit);
            let (status, wait, step_up, text) = result;
            tracing::debug!(
                method = %call.method,
                path = %call.path,
                status = status.unwrap_or(0),
                duration_ms = started.elapsed().as_millis() as u64,
                attempt,
                "api request"
            );
            self.inner.stats.count(status.unwrap_or(0));
            let can_retry = attempt < self.inner.config.max_attempts;
            if status == Some(429) {
                // Not handled (RFC 9110 §15.5.30 via RFC 6585 §4), so safe to send again, a
                // POST too: the host is paused and the request waits its turn again, using no
                // attempt; its wait for 429s is bounded in time ([`Throttle`]).
                match self.inner.throttle.throttled(ticket, wait, &throttled) {
                    AfterThrottle::Retry => {
                        attempt -= 1;
                        self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    AfterThrottle::GiveUp(refusal) => {
                        return Err(refusal.into_error(call, self.inner.config.max_throttle_wait));
                    }
                }
            }
            let connect_failed =
                matches!(&text, Err(BodyError::Read(e)) if status.is_none() && e.is_connect());
            ticket.ended(status.is_some());
            match (status, text) {
                // Step-up (RFC 9470): a new access token for the same API token cannot satisfy
                // it (legacy-cli asks the user to log in again, `Api::onStepUpAuthResponse`;
                // an API token cannot), so it is not exchanged again.
                (Some(401), Ok(bytes)) if step_up => {
                    let (message, _) = describe_answer(&bytes);
                    return Err(ApiError::StepUp {
                        call,
                        methods: step_up_methods(&parse(&bytes)),
                        message,
                    });
                }
                (Some(401), _) if !refreshed => {
                    // The access token expired or was revoked: exchange again, once.
                    refreshed = true;
                    attempt -= 1;
                    self.access_token(true).await?;
                }
                (Some(401), Ok(bytes)) => {
                    let (message, _) = describe_answer(&bytes);
                    return Err(ApiError::TokenRejected {
                        message: format!(
                            "{call} answered HTTP 401 with a fresh access token: {message}"
                        ),
                    });
                }
                // 503 says the request was not handled (RFC 9110 §15.6.4): safe to send
                // again, a POST too. The sandbox's are never handled; the API documents no 503
                // (platformsh-api.md §3.3): inferred.
                (Some(503), _) if can_retry => self.retry_wait(attempt, wait).await,
                (Some(502 | 504), _) if can_retry && matches!(retry, Retry::Idempotent) => {
                    self.retry_wait(attempt, wait).await;
                }
                (Some(status @ 200..=299), Ok(bytes)) => {
                    return if bytes.is_empty() {
                        Ok(Value::Null)
                    } else {
                        serde_json::from_slice(&bytes).map_err(|e| ApiError::Shape {
                            call: call.clone(),
                            reason: clean_text(&format!(
                                "HTTP {status} with a body that is not JSON ({e})"
                            )),
                        })
                    };
                }
                (Some(status), Ok(bytes)) => {
                    let (message, details) = describe_answer(&bytes);
                    return Err(ApiError::Status {
                        call,
                        status,
                        message,
                        details,
                    });
                }
                (_, Err(BodyError::TooLarge)) => {
                    // Not retried: the same request gets the same answer.
                    let status = status.unwrap_or(0);
                    return Err(ApiError::TooLarge {
                        call,
                        status,
                        limit: self.inner.config.max_body,
                        unclear: !(400..500).contains(&status),
                    });
                }
                (_, Err(BodyError::Read(error))) => {
                    // No answer at all, or one that broke off: a refused connection sent
                    // nothing; anything else may have reached the API.
                    let unclear = status.is_some() || !error.is_connect();
                    let reason = transport_reason(&error);
                    let source = Arc::new(error);
                    let safe = !unclear || matches!(retry, Retry::Idempotent);
                    if can_retry && safe {
                        self.retry_wait(attempt, None).await;
                    } else {
                        if connect_failed {
                            self.inner.throttle.mark_down(&url);
                        }
                        return Err(ApiError::Transport {
                            call,
                            reason,
                            unclear,
                            source: Some(source),
                        });
                    }
                }
                (None, Ok(_)) => unreachable!("a body without a status"),
            }
        }
    }

    async fn retry_wait(&self, attempt: u32, wait: Option<Duration>) {
        self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.backoff(attempt, wait)).await;
    }

    /// Every integration of a project, of every type.
    pub async fn list_integrations(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<ApiIntegration>, ApiError> {
        let first = self.url(&format!("/projects/{project}/integrations"));
        let mut url = first.clone();
        let mut pager = Pager::new(self, &first);
        let mut items = Vec::new();
        loop {
            let body = self
                .send(Method::GET, url.clone(), None, Retry::Idempotent)
                .await?;
            // The list is a bare array, never paged (platformsh-api.md §1.7). Should the API
            // ever send a HAL collection, `{items, _links}` as client-php's `Collection` reads
            // (§1.7), its pages are followed to the end: part of a list is never the list.
            let (page, links) = match body {
                Value::Array(page) => (page, Links::default()),
                Value::Object(mut map) => match map.remove("items") {
                    Some(Value::Array(page)) => {
                        let links = map
                            .remove("_links")
                            .map(serde_json::from_value::<Links>)
                            .transpose()
                            .map_err(|e| {
                                self.shape(&url, "GET", &format!("unreadable `_links` ({e})"))
                            })?
                            .unwrap_or_default();
                        (page, links)
                    }
                    _ => return Err(self.shape(&url, "GET", "expected a list of integrations")),
                },
                _ => return Err(self.shape(&url, "GET", "expected a list of integrations")),
            };
            let count = page.len();
            items.extend(page);
            match pager.next(self, &url, &links, count)? {
                Some(next) => url = next,
                None => break,
            }
        }
        let url = first;
        // An entry that cannot be read is skipped only if it is not Bitbucket-family; a
        // Bitbucket integration bbsync cannot read would make the project's state unknown.
        let mut integrations = Vec::with_capacity(items.len());
        for item in items {
            match serde_json::from_value::<ApiIntegration>(item.clone()) {
                Ok(integration) => integrations.push(integration),
                Err(error) => {
                    let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
                    if IntegrationType::is_bitbucket_family(kind) || kind.is_empty() {
                        return Err(self.shape(
                            &url,
                            "GET",
                            &format!("an integration could not be read ({error})"),
                        ));
                    }
                }
            }
        }
        Ok(integrations)
    }

    /// Creates an integration, sending the POST once. When its outcome is unclear (the answer
    /// was lost, or was a 500, 502 or 504), it is never sent again: the project is listed at
    /// once and, if that finds nothing, once more after [`ClientConfig::create_recheck`]; an
    /// integration for which `is_ours` holds is taken as created. Otherwise the outcome is
    /// [`ApiError::CreateUnknown`]: the create may still commit (inferred: a slow commit, or a
    /// 5xx after the work was done), and the next plan will tell.
    pub async fn create_integration(
        &self,
        project: &ProjectId,
        body: &Value,
        is_ours: &(dyn Fn(&ApiIntegration) -> bool + Sync),
    ) -> Result<Written, ApiError> {
        let url = self.url(&format!("/projects/{project}/integrations"));
        let error = match self
            .send(Method::POST, url.clone(), Some(body), Retry::Unsafe)
            .await
        {
            Ok(answer) => return Ok(written(answer)),
            Err(error) if error.is_unclear() => error,
            Err(error) => return Err(error),
        };
        tracing::info!(%project, %error, "the create's outcome is unclear; looking for it");
        let mut looked = None;
        for wait in [Duration::ZERO, self.inner.config.create_recheck] {
            tokio::time::sleep(wait).await;
            match self.list_integrations(project).await {
                Ok(list) => {
                    if let Some(found) = list.into_iter().find(|i| is_ours(i)) {
                        return Ok(Written {
                            entity: Some(found),
                            activities: Vec::new(),
                            recovered: true,
                        });
                    }
                    looked = None;
                }
                Err(failed) => looked = Some(failed),
            }
        }
        Err(ApiError::CreateUnknown {
            call: Call {
                method: "POST".to_owned(),
                path: url.path().to_owned(),
            },
            looked: looked.is_none(),
            cause: Box::new(error),
        })
    }

    /// Updates an integration with a partial body (PATCH to its `#edit` link when known).
    pub async fn update_integration(
        &self,
        project: &ProjectId,
        id: &IntegrationId,
        edit_href: Option<&str>,
        body: &Value,
    ) -> Result<Written, ApiError> {
        let url = self.write_target("PATCH", project, id, edit_href, true)?;
        let answer = self
            .send(Method::PATCH, url, Some(body), Retry::Idempotent)
            .await?;
        Ok(written(answer))
    }

    /// Deletes an integration (at its `self` link when known). Already gone counts as done.
    pub async fn delete_integration(
        &self,
        project: &ProjectId,
        id: &IntegrationId,
        self_href: Option<&str>,
    ) -> Result<Written, ApiError> {
        let url = self.write_target("DELETE", project, id, self_href, false)?;
        match self
            .send(Method::DELETE, url, None, Retry::Idempotent)
            .await
        {
            Ok(answer) => Ok(written(answer)),
            Err(error) if error.status() == Some(404) => Ok(Written::default()),
            Err(error) => Err(error),
        }
    }

    /// Runs the API's validation (`#validate` link, POST, no body).
    pub async fn validate_integration(
        &self,
        validate_href: Option<&str>,
    ) -> Result<Validation, ApiError> {
        let Some(href) = validate_href else {
            return Ok(Validation::Unsupported);
        };
        match self
            .send(Method::POST, self.rebase(href), None, Retry::Idempotent)
            .await
        {
            Ok(_) => Ok(Validation::Valid),
            Err(ApiError::Status {
                status: 400,
                details,
                message,
                ..
            }) => Ok(Validation::Invalid(if details.is_empty() {
                vec![shown(&message)]
            } else {
                details.iter().map(|d| shown(d)).collect()
            })),
            Err(error) => Err(error),
        }
    }

    /// Polls the activities a write started until each is `complete` or `cancelled`, or
    /// `timeout` passes; returns their last known states and whether the wait timed out.
    ///
    /// As the CLI does (legacy-cli `src/Service/ActivityMonitor.php` `waitMultiple`,
    /// platformsh-api.md §1.9): every [`ClientConfig::activity_poll`] (1 s, the CLI's), **one**
    /// `GET /projects/{id}/activities?starts_at=<newest created_at of those awaited>` (spec
    /// `list-projects-activities`; `starts_at` as client-php `HasActivitiesTrait` sends it: the
    /// listing holds activities created at or before it, newest first) refreshes all of them;
    /// only an unfinished one missing from that listing is fetched on its own, at its `self`
    /// link (or `/projects/{id}/activities/{activity}`, spec `get-projects-activities`).
    ///
    /// [`Awaited::OfIntegration`] (a create recovered by re-listing, whose answer and its
    /// `_embedded.activities` were lost) first finds them in the listing: the activities whose
    /// `integration` is the one created (spec `Activity.integration`) and whose type is an
    /// `integration.*` one (platformsh-api.md §1.3). Inferred: an integration's activities name
    /// it there, and are in the listing's first page; none found means none to wait for.
    pub async fn wait_for_activities(
        &self,
        project: &ProjectId,
        awaited: Awaited,
        timeout: Duration,
    ) -> Result<Waited, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut activities = match awaited {
            Awaited::Started(activities) => activities,
            Awaited::OfIntegration(id) => self
                .list_activities(project, None)
                .await?
                .into_iter()
                .filter(|a| {
                    a.integration.as_deref() == Some(id.as_str())
                        && a.kind.starts_with("integration.")
                })
                .collect(),
        };
        loop {
            if activities.iter().all(Activity::is_finished) {
                return Ok(Waited {
                    activities,
                    timed_out: false,
                });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Waited {
                    activities,
                    timed_out: true,
                });
            }
            tokio::time::sleep((deadline - now).min(self.inner.config.activity_poll)).await;
            self.refresh_activities(project, &mut activities).await?;
        }
    }

    /// One poll of [`Client::wait_for_activities`]: one listing, and a GET for an unfinished
    /// activity the listing lacks.
    async fn refresh_activities(
        &self,
        project: &ProjectId,
        activities: &mut [Activity],
    ) -> Result<(), ApiError> {
        // The newest `created_at` of those awaited, compared as dates (the API writes them as
        // RFC 3339, offsets included).
        let newest = activities
            .iter()
            .filter_map(|a| {
                let text = a.created_at.as_deref()?;
                Some((crate::wire::time::parse_rfc3339(text)?, text))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, text)| text.to_owned());
        let listed = self.list_activities(project, newest.as_deref()).await?;
        for activity in activities.iter_mut().filter(|a| !a.is_finished()) {
            let found = activity
                .id
                .as_ref()
                .and_then(|id| listed.iter().find(|l| l.id.as_ref() == Some(id)));
            if let Some(found) = found {
                *activity = found.clone();
                continue;
            }
            let url = match (activity.links.href("self"), &activity.id) {
                (Some(href), _) => self.rebase(href),
                (None, Some(id)) => self.url(&format!("/projects/{project}/activities/{id}")),
                (None, None) => continue,
            };
            let body = self
                .send(Method::GET, url.clone(), None, Retry::Idempotent)
                .await?;
            *activity = serde_json::from_value(body)
                .map_err(|e| self.shape(&url, "GET", &format!("not an activity ({e})")))?;
        }
        Ok(())
    }

    /// A project's activities, newest first (spec `list-projects-activities`: an
    /// `ActivityCollection`, a bare array), created at or before `starts_at` when given. An
    /// entry that cannot be read is skipped (it is not one bbsync waits for, or it is
    /// fetched on its own).
    async fn list_activities(
        &self,
        project: &ProjectId,
        starts_at: Option<&str>,
    ) -> Result<Vec<Activity>, ApiError> {
        let mut url = self.url(&format!("/projects/{project}/activities"));
        if let Some(at) = starts_at {
            url.query_pairs_mut().append_pair("starts_at", at);
        }
        let body = self
            .send(Method::GET, url.clone(), None, Retry::Idempotent)
            .await?;
        match body {
            Value::Array(items) => Ok(items
                .into_iter()
                .filter_map(|item| serde_json::from_value(item).ok())
                .collect()),
            _ => Err(self.shape(&url, "GET", "expected a list of activities")),
        }
    }

    /// The ID of `organization`: itself when it is a ULID, else the ID of the organization of
    /// that name, as legacy-cli finds it (`CommandBase::validateOrganizationInput`: a ULID is an
    /// ID, anything else a name; client-php `PlatformClient::getOrganizationByName` asks
    /// `GET /organizations/name={name}`, the spec's `get-org`, whose `OrganizationIDName`
    /// parameter says "Prefix with name= to retrieve the organization by name instead"). A
    /// 404 is [`ApiError::OrganizationNotFound`].
    pub async fn organization_id(
        &self,
        organization: &OrganizationId,
    ) -> Result<OrganizationId, ApiError> {
        let name = organization.as_str();
        if crate::model::ids::is_ulid(name) {
            return Ok(organization.clone());
        }
        let mut url = self.url("/organizations");
        url.path_segments_mut()
            .map_err(|()| ApiError::Config("the API URL cannot have a path".to_owned()))?
            .push(&format!("name={name}"));
        let body = match self
            .send(Method::GET, url.clone(), None, Retry::Idempotent)
            .await
        {
            Ok(body) => body,
            Err(error) if error.status() == Some(404) => {
                return Err(ApiError::OrganizationNotFound {
                    name: shown(&clean_text(name)),
                });
            }
            Err(error) => return Err(error),
        };
        // The spec's `Organization`: `id` is `format: ulid`. Anything else would go into the
        // listing's path: refused.
        match body.get("id").and_then(Value::as_str) {
            Some(id) if crate::model::ids::is_ulid(id) => Ok(OrganizationId::new(id)),
            Some(id) => Err(self.shape(
                &url,
                "GET",
                &format!("the organization's ID `{id}` is not a ULID"),
            )),
            None => Err(self.shape(&url, "GET", "not an organization: no `id`")),
        }
    }

    /// Every active or suspended project of an organization (given by ID or name:
    /// [`Client::organization_id`]), following `_links.next` to the end. Any failure fails the
    /// whole listing: a partial list must never be taken for the full one. Requested, failed
    /// and deleted projects are left out by the API, with `filter[status][in]=active,suspended`,
    /// as the official CLI lists them (legacy-cli
    /// `src/Command/Team/Project/TeamProjectAddCommand.php`, `loadOrgProjects`; the filter is
    /// `filter[status]` of `list-org-projects` in the spec, a `StringFilter`).
    pub async fn organization_projects(
        &self,
        organization: &OrganizationId,
    ) -> Result<Vec<OrganizationProject>, ApiError> {
        let organization = self.organization_id(organization).await?;
        let mut url = self.url(&format!("/organizations/{organization}/projects"));
        url.query_pairs_mut()
            .append_pair("filter[status][in]", "active,suspended")
            .append_pair("page[size]", "100");
        let mut pager = Pager::new(self, &url);
        let mut projects = Vec::new();
        loop {
            let body = self
                .send(Method::GET, url.clone(), None, Retry::Idempotent)
                .await?;
            let page: ProjectPage = serde_json::from_value(body)
                .map_err(|e| self.shape(&url, "GET", &format!("not a page of projects ({e})")))?;
            let count = page.items.len();
            projects.extend(page.items);
            match pager.next(self, &url, &page.links, count)? {
                Some(next) => url = next,
                None => return Ok(projects),
            }
        }
    }

    /// A project's details (`GET /projects/{id}`).
    pub(crate) async fn project(&self, project: &ProjectId) -> Result<Value, ApiError> {
        self.send(
            Method::GET,
            self.url(&format!("/projects/{project}")),
            None,
            Retry::Idempotent,
        )
        .await
    }

    /// A project's environments (`GET /projects/{id}/environments`, spec
    /// `list-projects-environments`: an array, not paged).
    pub(crate) async fn environments(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<crate::wire::ApiEnvironment>, ApiError> {
        let url = self.url(&format!("/projects/{project}/environments"));
        let body = self
            .send(Method::GET, url.clone(), None, Retry::Idempotent)
            .await?;
        serde_json::from_value(body)
            .map_err(|e| self.shape(&url, "GET", &format!("not a list of environments ({e})")))
    }

    /// A project's capabilities (`GET /projects/{id}/capabilities`).
    pub(crate) async fn capabilities(&self, project: &ProjectId) -> Result<Value, ApiError> {
        let url = self.url(&format!("/projects/{project}/capabilities"));
        self.send(Method::GET, url, None, Retry::Idempotent).await
    }
}

/// The HTTP client both API clients use: rustls, bbsync's user agent, `timeout` per request
/// (answer included) and `connect` to connect, and no redirects (a redirect could carry a
/// token elsewhere).
pub(crate) fn http_client(
    timeout: Duration,
    connect: Duration,
) -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .user_agent(concat!("bbsync/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(connect)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ApiError::Config(format!("cannot build the HTTP client: {e}")))
}

/// Pages of one listing read at most (100 projects a page: ten million projects).
const MAX_PAGES: usize = 100_000;

/// Follows `_links.next` through a paged listing (cursor pagination: the client follows `next`
/// until it is absent and never builds a cursor itself, platformsh-api.md §8). It ends the
/// listing with an error at once, rather than loop or take part of a list for the whole, when
/// `next` is not a link with a non-empty `href`, names a page already read (the current one
/// included), leaves the listing's path, or follows a page with no items (inferred: what a
/// broken or hostile server could send).
struct Pager {
    /// The listing's path, as the API sees it ([`Client::api_path`]).
    path: String,
    /// Pages read: path and query.
    seen: std::collections::HashSet<String>,
}

impl Pager {
    fn new(client: &Client, first: &Url) -> Self {
        let mut pager = Self {
            path: client.api_path(first).to_owned(),
            seen: std::collections::HashSet::new(),
        };
        pager.seen.insert(pager.key(client, first));
        pager
    }

    fn key(&self, client: &Client, url: &Url) -> String {
        format!("{}?{}", client.api_path(url), url.query().unwrap_or(""))
    }

    /// The page after `current` (which had `items` items and these links), or `None` at the end.
    fn next(
        &mut self,
        client: &Client,
        current: &Url,
        links: &Links,
        items: usize,
    ) -> Result<Option<Url>, ApiError> {
        let refuse = |why: String| Err(client.shape(current, "GET", &why));
        let href = match links.get("next") {
            None | Some(Value::Null) => return Ok(None),
            Some(link) => match link.get("href").and_then(Value::as_str) {
                Some(href) if !href.trim().is_empty() => href,
                _ => return refuse("the listing's `next` link has no address".to_owned()),
            },
        };
        if items == 0 {
            return refuse("an empty page of the listing has a `next` link".to_owned());
        }
        let next = client.rebase(href);
        if client.api_path(&next) != self.path {
            return refuse(format!(
                "the listing's `next` link leaves the listing (`{}`)",
                shown(&clean_text(next.path()))
            ));
        }
        if !self.seen.insert(self.key(client, &next)) {
            return refuse(
                "the listing loops: its `next` link names a page already read".to_owned(),
            );
        }
        if self.seen.len() > MAX_PAGES {
            return refuse(format!("the listing does not end after {MAX_PAGES} pages"));
        }
        Ok(Some(next))
    }
}

/// The longest an access token is used before exchanging again: 1 hour, whatever the auth
/// server claims. Its tokens live 15 minutes (`expires_in: 900`, platformsh-api.md §3.1); a
/// longer claim is capped, and a huge one (`u64::MAX`) can never overflow the clock.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// When an access token issued at `now` for `expires_in` seconds (900 when not said,
/// platformsh-api.md §3.1) is renewed: a little early, so that it never expires between check
/// and use.
fn token_deadline(now: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = Duration::from_secs(expires_in.unwrap_or(900)).min(MAX_TOKEN_LIFETIME);
    let margin = (lifetime / 10).min(Duration::from_secs(60));
    now.checked_add(lifetime.saturating_sub(margin))
        .unwrap_or(now)
}

/// Why an answer's body was not read.
pub(crate) enum BodyError {
    /// It is longer than the limit.
    TooLarge,
    /// The connection failed (or there was no answer at all).
    Read(reqwest::Error),
}

/// Reads a body of at most `limit` bytes, chunk by chunk: a longer one is refused as soon as
/// its `Content-Length` or the bytes read so far exceed the limit, never buffered whole.
pub(crate) async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if response.content_length().is_some_and(|n| n > limit_u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if chunk.len() > limit.saturating_sub(body.len()) {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn written(answer: Value) -> Written {
    let accepted: Accepted = serde_json::from_value(answer).unwrap_or_default();
    Written {
        entity: accepted.embedded.entity,
        activities: accepted.embedded.activities,
        recovered: false,
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// Why the token exchange failed, told as legacy-cli tells it (`Api::onRefreshError`: only a
/// 400 or 401 is about the credentials):
///
/// * a 5xx: the auth service failed ([`ApiError::AuthUnavailable`]);
/// * a 400 or 401 that names the API token ([`names_the_api_token`]): the token is invalid or
///   expired ([`ApiError::TokenRejected`]);
/// * anything else, with its text ([`ApiError::TokenExchange`]).
fn token_error(path: &str, status: u16, bytes: &[u8]) -> ApiError {
    let (message, _) = describe_answer(bytes);
    let body = crate::wire::ErrorBody::read(&parse(bytes));
    if status >= 500 {
        ApiError::AuthUnavailable {
            path: path.to_owned(),
            status,
            message,
        }
    } else if matches!(status, 400 | 401) && names_the_api_token(&body) {
        ApiError::TokenRejected { message }
    } else {
        ApiError::TokenExchange {
            path: path.to_owned(),
            status,
            message,
        }
    }
}

/// Whether an OAuth error body says the API token is bad. legacy-cli: `Api::isApiTokenInvalid`
/// (an `error_description` containing "API token"), `ApiTokenLoginCommand::
/// exceptionMeansInvalidToken` (`invalid_grant` with "Invalid API token"; the newer auth
/// server's `request_unauthorized` with an `error_hint` containing "API token"). An
/// `invalid_grant` with other words is taken as the same (RFC 6749 §5.2: the grant, here the
/// API token, "is invalid, expired, revoked").
fn names_the_api_token(body: &crate::wire::ErrorBody) -> bool {
    let names = |text: &Option<String>| {
        text.as_deref()
            .is_some_and(|t| t.to_lowercase().contains("api token"))
    };
    names(&body.error_description)
        || names(&body.error_hint)
        || body.error.as_deref() == Some("invalid_grant")
}

/// Whether a response is an RFC 9470 step-up challenge: a `WWW-Authenticate` with `Bearer` and
/// `insufficient_user_authentication` (platformsh-api.md §3.2).
fn asks_for_step_up(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(is_step_up_challenge)
}

fn is_step_up_challenge(value: &str) -> bool {
    value.contains("Bearer") && value.contains("insufficient_user_authentication")
}

/// The authentication methods a step-up answer asks for: its body's `amr` (legacy-cli
/// `Api::onStepUpAuthResponse` reads `amr` and `max_age` from the body), a few, cleaned.
fn step_up_methods(body: &Value) -> Vec<String> {
    body.get("amr")
        .and_then(Value::as_array)
        .map(|methods| {
            methods
                .iter()
                .filter_map(Value::as_str)
                .take(5)
                .map(|m| shown(&clean_text(m)))
                .collect()
        })
        .unwrap_or_default()
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    parse_retry_after(value, SystemTime::now())
}

/// A `Retry-After` value (RFC 9110 §10.2.3): a number of seconds, or an HTTP date, read
/// against `now`. A date in the past means "now". Anything else is ignored, and the caller
/// falls back to its own backoff.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::try_from_secs_f64(seconds).ok())
            .flatten();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

pub(crate) fn transport_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the connection dropped while reading the answer".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{MAX_TOKEN_LIFETIME, parse_retry_after, token_deadline};

    #[test]
    fn token_errors_are_classified_as_the_cli_does() {
        use super::{ApiError, is_step_up_challenge, token_error};
        let classify =
            |status: u16, body: &str| token_error("/oauth2/token", status, body.as_bytes());
        assert!(matches!(
            classify(
                400,
                r#"{"error": "invalid_grant", "error_description": "Invalid API token."}"#
            ),
            ApiError::TokenRejected { .. }
        ));
        assert!(matches!(
            classify(
                401,
                r#"{"error": "request_unauthorized", "error_hint": "The API token is invalid."}"#
            ),
            ApiError::TokenRejected { .. }
        ));
        assert!(matches!(
            classify(503, r#"{"error": "invalid_grant"}"#),
            ApiError::AuthUnavailable { status: 503, .. }
        ));
        assert!(matches!(
            classify(502, "<html><title>502</title></html>"),
            ApiError::AuthUnavailable { .. }
        ));
        assert!(matches!(
            classify(401, r#"{"error": "invalid_client"}"#),
            ApiError::TokenExchange { status: 401, .. }
        ));
        assert!(matches!(classify(429, ""), ApiError::TokenExchange { .. }));
        assert!(is_step_up_challenge(
            r#"Bearer error="insufficient_user_authentication", max_age="300""#
        ));
        assert!(!is_step_up_challenge(r#"Bearer error="invalid_token""#));
    }

    #[test]
    fn writes_go_only_to_the_integration_they_are_meant_for() {
        use crate::model::ids::{IntegrationId, ProjectId};
        use crate::model::secret::Secret;
        for api in ["http://127.0.0.1:8787", "http://127.0.0.1:8787/api"] {
            let client = super::Client::new(super::ClientConfig::new(
                api,
                "http://127.0.0.1:8787",
                Secret::new("t"),
            ))
            .unwrap();
            let (p1, i1) = (ProjectId::new("p1"), IntegrationId::new("i1"));
            let target = |href: Option<&str>, sub_paths: bool| {
                client
                    .write_target("DELETE", &p1, &i1, href, sub_paths)
                    .map(|url| client.api_path(&url).to_owned())
            };
            let own = "https://eu-3.platform.sh/api/projects/p1/integrations/i1";
            assert_eq!(
                target(Some(own), false).unwrap(),
                "/projects/p1/integrations/i1"
            );
            assert_eq!(target(None, false).unwrap(), "/projects/p1/integrations/i1");
            assert_eq!(
                target(Some("/projects/p1/integrations/i1"), false).unwrap(),
                "/projects/p1/integrations/i1"
            );
            assert!(target(Some(&format!("{own}/validate")), true).is_ok());
            assert!(target(Some(&format!("{own}/validate")), false).is_err());
            for hostile in [
                "https://eu-3.platform.sh/api/projects/p2/integrations/gh1",
                "https://eu-3.platform.sh/api/projects/p1/integrations/gh1",
                "https://eu-3.platform.sh/api/projects/p1/integrations/i1/../gh1",
                "https://eu-3.platform.sh/api/projects/p1/integrations/i1/%2e%2e/gh1",
                "https://eu-3.platform.sh/api/projects/p1/integrations/i1/x%2F..%2Fgh1",
                "https://eu-3.platform.sh/api/projects/p1/integrations/i1?id=gh1",
                "https://eu-3.platform.sh/api/projects/p1/integrations",
                "https://eu-3.platform.sh/api/projects/p1/integrations/i10",
                "https://eu-3.platform.sh/api/projects/p1",
                "",
            ] {
                let refused = target(Some(hostile), true).unwrap_err().to_string();
                assert!(
                    refused.starts_with("DELETE refused, nothing was sent:"),
                    "{hostile}: {refused}"
                );
            }
            for id in ["../../p2/integrations/gh1", "a/b", "I1"] {
                let refused = client
                    .write_target("PATCH", &p1, &IntegrationId::new(id), None, true)
                    .unwrap_err()
                    .to_string();
                assert!(refused.contains("is not an integration ID"), "{refused}");
            }
        }
    }

    #[test]
    fn token_lifetimes_are_capped_and_never_overflow() {
        let now = std::time::Instant::now();
        // `expires_in: 18446744073709551615` from the auth server used to panic here.
        assert_eq!(
            token_deadline(now, Some(u64::MAX)),
            now + MAX_TOKEN_LIFETIME - Duration::from_secs(60)
        );
        assert_eq!(
            token_deadline(now, Some(900)),
            now + Duration::from_secs(840)
        );
        assert_eq!(token_deadline(now, None), now + Duration::from_secs(840));
        assert_eq!(token_deadline(now, Some(0)), now);
        assert_eq!(token_deadline(now, Some(10)), now + Duration::from_secs(9));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Tue, 24 Nov 2026 10:00:00 GMT").unwrap();
        let read = |value: &str| parse_retry_after(value, now);
        assert_eq!(read("5"), Some(Duration::from_secs(5)));
        assert_eq!(read(" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(
            read("Tue, 24 Nov 2026 10:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms a server may still send (RFC 850, asctime).
        assert_eq!(
            read("Tuesday, 24-Nov-26 10:01:00 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            read("Tue Nov 24 10:00:02 2026"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(read("Tue, 24 Nov 2026 09:59:00 GMT"), Some(Duration::ZERO));
        for garbage in ["", "-1", "soon", "NaN", "inf", "1e400"] {
            assert_eq!(read(garbage), None, "{garbage:?}");
        }
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", SystemTime::now()),
            Some(Duration::ZERO)
        );
    }
}
