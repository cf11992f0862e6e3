//! The live layer: the Platform.sh API client and the live-state snapshot it reads.

pub mod api;
pub mod body;
mod client;
mod error;
mod state;

pub use client::{Client, ClientConfig, Stats, Validation, Written, check_url};
pub use error::{ApiError, Call};
pub use state::{
    LiveIntegration, LiveLinks, LiveState, OrganizationLive, OtherIntegration, ProjectLive, fetch,
};
