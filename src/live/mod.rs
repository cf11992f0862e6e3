//! The live layer: the Platform.sh API client, and reading the live state through it.

mod bitbucket;
mod client;
mod error;
mod fetch;
mod pace;
mod rate_cache;
mod throttle;

pub use bitbucket::{
    BitbucketClient, BitbucketConfig, BitbucketCredentials, CLOUD_HOOK_EVENTS, COMMIT_PAGE_BASE,
    COMMIT_STATUS_KEY, COMMIT_STATUS_TEXT, Check, CheckKind, CheckOutcome, CommitState,
    CommitStatus, NEEDED_SCOPES, Posted, Preflight, PullRequest, RepositoryRef, SERVER_HOOK_EVENTS,
    missing_scopes, platform_hook_integration, scope_covers,
};
pub use client::{
    Awaited, Client, ClientConfig, MAX_BODY, Stats, Validation, Waited, Written, check_url,
};
pub use error::{ApiError, Call, chain, explain};
pub(crate) use error::{clean_text, redact, shown};
pub use fetch::{fetch, live_integration, project_live};
pub(crate) use fetch::{fetch_listed, project_state};
pub use throttle::{MAX_THROTTLE_WAIT, Throttle, ThrottleConfig, TokioClock};
