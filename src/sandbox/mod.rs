//! The sandbox: an in-process fake of the Platform.sh API, served over real HTTP.
//!
//! It implements what bbsync uses (token exchange, projects, integrations of every type,
//! activities, `#validate`, organization listings with cursors) with the real API's rules
//! ([`world`]), and injects faults on demand: latency, 503s, 429s with `Retry-After`, creates
//! whose answer is lost, slow answers, broken projects; and a hostile API on request
//! ([`Hostile`]: canned answers, endless bodies, echoed secrets, creates that commit late). Tests, benchmarks, `bbsync demo` and
//! `bbsync sandbox` all use it. Paths work with and without the `/api` prefix, as the
//! gateway's do (platformsh-api.md §1.1).

pub mod bitbucket;
mod limit;
pub(crate) mod world;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use bitbucket::{Bitbucket, BitbucketSeed, CommitStatusRecord};
pub use world::{
    ActivityEnding, Canned, CannedBody, Faults, Hostile, LateCommit, Seed, SeedOrganization,
    SeedProject, TokenErrors, World, Write,
};

use futures_util::StreamExt as _;
use world::Rejection;

use crate::wire::{ErrorBody, TokenResponse};

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// The initial state.
    pub seed: Seed,
    /// Faults to inject.
    pub faults: Faults,
    /// Access token lifetime.
    pub token_lifetime: Duration,
    /// Time activities take to complete.
    pub activity_delay: Duration,
    /// Projects per page of organization listings.
    pub page_size: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Seed::default(),
            faults: Faults::default(),
            token_lifetime: Duration::from_secs(900),
            activity_delay: Duration::ZERO,
            page_size: 20,
        }
    }
}

/// A running sandbox. Stops when dropped.
pub struct Sandbox {
    url: String,
    token: String,
    world: Arc<Mutex<World>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

type Shared = Arc<Mutex<World>>;

impl Sandbox {
    /// Starts a sandbox on the current tokio runtime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Self> {
        let mut world = World::new(config.seed, config.faults).map_err(std::io::Error::other)?;
        world.token_lifetime = config.token_lifetime;
        world.activity_delay = config.activity_delay;
        world.page_size = config.page_size.max(1);
        let token = world.api_token.clone();
        let world = Arc::new(Mutex::new(world));
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let app = router(Arc::clone(&world));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "the sandbox stopped");
            }
        });
        Ok(Self {
            url: format!("http://{address}"),
            token,
            world,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The base URL (API and auth server alike).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The API token it accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The state, for inspection and out-of-band changes.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("the sandbox state lock")
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn router(world: Shared) -> Router {
    let api = Router::new()
        .route("/projects/{project}", get(project))
        .route("/projects/{project}/capabilities", get(capabilities))
        .route("/projects/{project}/environments", get(environments))
        .route("/projects/{project}/integrations", get(list).post(create))
        .route(
            "/projects/{project}/integrations/{id}",
            get(one).patch(update).delete(remove),
        )
        .route(
            "/projects/{project}/integrations/{id}/validate",
            post(validate),
        )
        .route("/projects/{project}/activities", get(project_activities))
        .route("/projects/{project}/activities/{id}", get(activity))
        .route("/organizations/{org}", get(organization))
        .route("/organizations/{org}/projects", get(organization_projects))
        .layer(middleware::from_fn_with_state(Arc::clone(&world), gate));
    Router::new()
        .merge(api.clone())
        .nest("/api", api)
        .route("/oauth2/token", post(token))
        .merge(bitbucket::routes(Arc::clone(&world)))
        .route("/__sandbox/state", get(dump))
        .layer(middleware::from_fn_with_state(Arc::clone(&world), canned))
        .with_state(world)
}

fn lock(world: &Shared) -> MutexGuard<'_, World> {
    world.lock().expect("the sandbox state lock")
}

/// `body` as a JSON answer.
fn json_answer(status: StatusCode, content_type: &'static str, body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// An API error: spec `Error`, with the reason phrase as `status` and `title` and an empty
/// `detail` when there are none (inferred).
fn reject(rejection: Rejection) -> Response {
    let status =
        StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = status.canonical_reason().unwrap_or("Error");
    let body = ErrorBody {
        status: Some(title.to_owned()),
        message: Some(rejection.message),
        code: Some(rejection.status),
        detail: Some(
            rejection
                .detail
                .unwrap_or_else(|| Value::Object(Default::default())),
        ),
        title: Some(title.to_owned()),
        ..ErrorBody::default()
    };
    json_answer(status, "application/json", &body)
}

/// An OAuth 2 error from the auth server (platformsh-api.md §3.1).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = ErrorBody {
        error: Some(error.to_owned()),
        error_description: Some(description.to_owned()),
        ..ErrorBody::default()
    };
    json_answer(status, "application/json", &body)
}

/// A success as HAL JSON (platformsh-api.md §1.3), or the rejection.
fn answer(result: Result<Value, Rejection>, status: StatusCode) -> Response {
    match result {
        Ok(body) => json_answer(status, "application/hal+json", &body),
        Err(rejection) => reject(rejection),
    }
}

/// Every API request: recorded, delayed, maybe failed by a fault, and checked for a token
/// (`Authorization: Bearer`, platformsh-api.md §3.2). The faults are the sandbox's own: the
/// API documents no 429 or `Retry-After` (§3.3), so their bodies are inferred.
async fn gate(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let (latency, fault, retry_after, authorized, step_up) = {
        let mut w = lock(&world);
        let path = request.uri().path().trim_start_matches("/api").to_owned();
        w.record_request(format!("{} {path}", request.method()));
        let faults = w.faults.clone();
        let draw = w.draw();
        let limited = w.limiter.as_ref().and_then(|limiter| limiter.take());
        if limited.is_some() {
            w.rate_limited += 1;
        }
        let fault = if limited.is_some() {
            429
        } else if draw < faults.error_rate {
            503
        } else if draw < faults.error_rate + faults.rate_limit_rate {
            429
        } else {
            0
        };
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        (
            faults.latency,
            fault,
            limited.map_or(faults.retry_after, |seconds| seconds as f64),
            w.authorized(bearer),
            w.step_up.clone(),
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !authorized {
        // 401 for an expired or invalid token; clients exchange again (platformsh-api.md
        // §1.8, §3.2). The body is inferred.
        let body = ErrorBody {
            error: Some("invalid_token".to_owned()),
            message: Some("The access token is missing, invalid or expired.".to_owned()),
            code: Some(401),
            ..ErrorBody::default()
        };
        return json_answer(StatusCode::UNAUTHORIZED, "application/json", &body);
    }
    if let Some(methods) = step_up {
        return step_up_challenge(&methods);
    }
    match fault {
        503 => reject(Rejection {
            status: 503,
            message: "The service is temporarily unavailable.".to_owned(),
            detail: None,
        }),
        429 => {
            let mut response = reject(Rejection {
                status: 429,
                message: "Too many requests.".to_owned(),
                detail: None,
            });
            if let Ok(value) = retry_after.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        _ => next.run(request).await,
    }
}

/// An RFC 9470 step-up challenge (platformsh-api.md §3.2): 401 with `WWW-Authenticate: Bearer
/// error="insufficient_user_authentication"`, and a body naming the methods asked for in `amr`
/// (legacy-cli `Api::onStepUpAuthResponse` reads `amr` and `max_age` from the body). The
/// description's words are inferred.
fn step_up_challenge(methods: &[String]) -> Response {
    let description = "A stronger authentication is required by the organization.";
    let body = serde_json::json!({
        "error": "insufficient_user_authentication",
        "error_description": description,
        "amr": methods,
    });
    let mut response = json_answer(StatusCode::UNAUTHORIZED, "application/json", &body);
    let challenge = format!(
        "Bearer error=\"insufficient_user_authentication\", error_description=\"{description}\""
    );
    if let Ok(value) = challenge.parse() {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Canned answers ([`Hostile::canned`]), checked before anything else: the sandbox's own rules,
/// faults and token checks do not apply to them. A hostile API's behaviour, not the real
/// API's (inferred: what a broken or malicious server could send).
async fn canned(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let full = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let path = full
        .strip_prefix("/api")
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(&full)
        .to_owned();
    let found = {
        let mut w = lock(&world);
        let found = w.canned(request.method().as_str(), &path);
        if found.is_some() {
            w.record_request(format!("{} {path}", request.method()));
        }
        found
    };
    let Some(canned) = found else {
        return next.run(request).await;
    };
    let status = StatusCode::from_u16(canned.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match canned.body {
        CannedBody::Json(value) => json_answer(status, "application/json", &value),
        CannedBody::Html(page) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response(),
        CannedBody::Endless => {
            // 64 KiB at a time, for ever.
            let chunk = Bytes::from(b"{},".repeat(21_845));
            let open = futures_util::stream::once(async {
                Ok::<Bytes, std::io::Error>(Bytes::from_static(b"["))
            });
            let forever = futures_util::stream::repeat_with(move || Ok(chunk.clone()));
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(open.chain(forever)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        CannedBody::Echo { prefix } => {
            let authorization = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let sent = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let body = ErrorBody {
                message: Some(format!(
                    "{prefix}{} (authorization: {authorization})",
                    String::from_utf8_lossy(&sent)
                )),
                code: Some(canned.status),
                ..ErrorBody::default()
            };
            json_answer(status, "application/json", &body)
        }
    }
}

async fn token(
    State(world): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    // The client authenticates with HTTP Basic, its ID and an empty secret, as every official
    // client does (platformsh-api.md §3.1): `platform-api-user` (the spec's curl example,
    // bbsync's default), `platform-cli` (legacy-cli `config.yaml` `api.oauth2_client_id`, sent
    // by `GrantTypeBase` with `auth_location: headers`) and `upsun-cli` (upsun/cli
    // `internal/config/upsun-cli.yaml`). A client ID in the form, another ID, or a secret is
    // refused (inferred: no official client sends one).
    const CLIENTS: [&str; 3] = [
        "Basic cGxhdGZvcm0tYXBpLXVzZXI6", // platform-api-user:
        "Basic cGxhdGZvcm0tY2xpOg==",     // platform-cli:
        "Basic dXBzdW4tY2xpOg==",         // upsun-cli:
    ];
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !CLIENTS.contains(&basic) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        );
    }
    // `grant_type=api_token&api_token=...` (platformsh-api.md §3.1).
    if form.get("grant_type").map(String::as_str) != Some("api_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The grant type is not supported.",
        );
    }
    let (result, style) = {
        let mut w = lock(&world);
        let result = w.exchange(form.get("api_token").map(String::as_str).unwrap_or(""));
        (result, w.token_errors)
    };
    match result {
        Ok((access, expires_in)) => {
            let body = TokenResponse {
                access_token: access,
                expires_in: Some(expires_in),
                token_type: Some("bearer".to_owned()),
            };
            json_answer(StatusCode::OK, "application/json", &body)
        }
        // A bad token is a 400 whose description names the "API token" (platformsh-api.md
        // §3.1), or the newer auth server's shape ([`TokenErrors::Current`]).
        Err(_) => match style {
            TokenErrors::Legacy => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid API token.",
            ),
            TokenErrors::Current => {
                let body = ErrorBody {
                    error: Some("request_unauthorized".to_owned()),
                    error_description: Some("The request could not be authorized.".to_owned()),
                    error_hint: Some("The API token is invalid or expired.".to_owned()),
                    ..ErrorBody::default()
                };
                json_answer(StatusCode::UNAUTHORIZED, "application/json", &body)
            }
        },
    }
}

/// A write's body, refused unless it says it is JSON: `Content-Type: application/json` or
/// another `+json` type (415 Unsupported Media Type, RFC 9110 §15.5.16). The spec's request
/// bodies are `application/json` only; the status and words of the refusal are inferred.
fn typed_json_body(headers: &HeaderMap, bytes: &Bytes) -> Result<Value, Rejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(Rejection {
            status: 415,
            message: format!(
                "The request body must be JSON (Content-Type: application/json), not `{}`.",
                if content_type.is_empty() {
                    "none"
                } else {
                    content_type
                }
            ),
            detail: None,
        });
    }
    json_body(bytes)
}

async fn project(State(world): State<Shared>, Path(project): Path<String>) -> Response {
    answer(lock(&world).project_view(&project), StatusCode::OK)
}

async fn capabilities(State(world): State<Shared>, Path(project): Path<String>) -> Response {
    answer(lock(&world).capabilities(&project), StatusCode::OK)
}

async fn environments(State(world): State<Shared>, Path(project): Path<String>) -> Response {
    answer(lock(&world).environments(&project), StatusCode::OK)
}

async fn list(State(world): State<Shared>, Path(project): Path<String>) -> Response {
    answer(lock(&world).list(&project), StatusCode::OK)
}

async fn one(State(world): State<Shared>, Path((project, id)): Path<(String, String)>) -> Response {
    answer(lock(&world).get(&project, &id), StatusCode::OK)
}

fn json_body(bytes: &Bytes) -> Result<Value, Rejection> {
    serde_json::from_slice(bytes).map_err(|e| Rejection {
        status: 400,
        message: format!("The body is not valid JSON: {e}"),
        detail: None,
    })
}

/// After a write is carried out: answer, or lose the answer (a dropped connection), or answer
/// too late (past the client's timeout), as the faults say.
async fn deliver(
    world: &Shared,
    result: Result<Value, Rejection>,
    status: StatusCode,
    droppable: bool,
) -> Response {
    let (drop_it, slow_by) = {
        let mut w = lock(world);
        let faults = w.faults.clone();
        let drop_it = result.is_ok() && droppable && w.draw() < faults.drop_post_rate;
        let slow = result.is_ok() && w.draw() < faults.slow_rate;
        (drop_it, slow.then_some(faults.slow_by))
    };
    if drop_it {
        return dropped(status);
    }
    if let Some(delay) = slow_by {
        tokio::time::sleep(delay).await;
    }
    answer(result, status)
}

/// An answer whose connection drops after the status line: the client cannot tell whether
/// the request was carried out.
fn dropped(status: StatusCode) -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Vec<u8>, std::io::Error>(std::io::Error::other("the sandbox dropped the connection"))
    });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/hal+json")
        .body(Body::from_stream(failing))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn create(
    State(world): State<Shared>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let late = lock(&world).hostile.late_commit;
    if let Some(late) = late {
        // A create that commits after its answer is lost ([`Hostile::late_commit`]).
        let value = match typed_json_body(&headers, &body) {
            Ok(value) => value,
            Err(rejection) => return reject(rejection),
        };
        lock(&world).record_create(&project, &value);
        let later = Arc::clone(&world);
        tokio::spawn(async move {
            tokio::time::sleep(late.after).await;
            let _ = lock(&later).commit_create(&project, &value);
        });
        return match late.status {
            None => dropped(StatusCode::CREATED),
            Some(status) => reject(Rejection {
                status,
                message: "Internal Server Error".to_owned(),
                detail: None,
            }),
        };
    }
    let result =
        typed_json_body(&headers, &body).and_then(|body| lock(&world).create(&project, &body));
    deliver(&world, result, StatusCode::CREATED, true).await
}

async fn update(
    State(world): State<Shared>,
    Path((project, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result =
        typed_json_body(&headers, &body).and_then(|body| lock(&world).update(&project, &id, &body));
    deliver(&world, result, StatusCode::OK, false).await
}

async fn remove(
    State(world): State<Shared>,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let result = lock(&world).delete(&project, &id);
    deliver(&world, result, StatusCode::OK, false).await
}

async fn validate(
    State(world): State<Shared>,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    answer(lock(&world).validate(&project, &id), StatusCode::OK)
}

async fn activity(
    State(world): State<Shared>,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    answer(lock(&world).activity(&project, &id), StatusCode::OK)
}

async fn organization(State(world): State<Shared>, Path(org): Path<String>) -> Response {
    answer(lock(&world).organization(&org), StatusCode::OK)
}

async fn project_activities(
    State(world): State<Shared>,
    Path(project): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    answer(
        lock(&world).project_activities(&project, &query),
        StatusCode::OK,
    )
}

async fn organization_projects(
    State(world): State<Shared>,
    Path(org): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let size = query.get("page[size]").and_then(|s| s.parse().ok());
    let after = query.get("page[after]").map(String::as_str);
    let page = query
        .get("page_number")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let statuses: Option<Vec<&str>> = query
        .get("filter[status][in]")
        .map(|s| s.split(',').collect())
        .or_else(|| query.get("filter[status]").map(|s| vec![s.as_str()]));
    answer(
        lock(&world).organization_projects(&org, size, after, page, statuses.as_deref()),
        StatusCode::OK,
    )
}

async fn dump(State(world): State<Shared>) -> Response {
    answer(Ok(lock(&world).dump()), StatusCode::OK)
}
