//! bbsync's integration tests: one binary, one module per area (as just and uv do).

mod activities;
mod adopt;
mod architecture;
mod auth;
mod bitbucket;
mod common;
mod environments;
mod errors;
mod examples;
mod files;
mod hostile_api;
mod hostile_daemon;
mod hostile_manifest;
mod hostile_render;
mod hostile_secrets;
mod live;
mod openapi;
mod pr_comment;
mod preflight;
mod real_api;
mod reliability;
mod render;
mod sync;
mod throttle;
mod validate;
mod watch;
