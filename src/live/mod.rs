//! The live layer: the Platform.sh API client, and reading the live state through it.

mod client;
mod error;
mod fetch;

pub use client::{
    Awaited, Client, ClientConfig, MAX_BODY, Stats, Validation, Waited, Written, check_url,
};
pub use error::{ApiError, Call, chain};
pub(crate) use error::{clean_text, redact};
pub(crate) use fetch::project_state;
pub use fetch::{fetch, live_integration, project_live};
