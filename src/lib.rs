//! bbsync: declarative Platform.sh (Upsun) Bitbucket integrations.
//!
//! The layers, in the order data flows through them: [`manifest`] (YAML to typed, located
//! values) -> [`model`] (validated desired state, no I/O) -> `live` (the Platform.sh client) ->
//! `plan` (a pure function of desired and live state) -> `apply` (executes, decides nothing) ->
//! `render`; [`cli`] is thin glue.

pub mod apply;
pub mod cli;
pub mod diagnostic;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod live;
pub mod load;
pub mod manifest;
pub mod model;
pub mod online;
pub mod plan;
pub mod render;
pub mod sandbox;
pub mod secret;
pub mod time;
pub mod watch;
