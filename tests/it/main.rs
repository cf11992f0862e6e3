//! bbsync's integration tests: one binary, one module per area (as just and uv do).

mod adopt;
mod architecture;
mod common;
mod errors;
mod hostile_manifest;
mod live;
mod openapi;
mod reliability;
mod render;
mod sync;
mod validate;
mod watch;
