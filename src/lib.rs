//! bbsync: declarative Platform.sh (Upsun) Bitbucket integrations.
//!
//! The layers, in the order data flows through them: [`manifest`] (YAML to typed, located
//! values) -> [`model`] (validated desired state and the live-state snapshot, no I/O) ->
//! [`wire`] (the API's JSON shapes) -> [`live`] (the Platform.sh client) -> [`plan`] (a pure
//! function of desired and live state) -> [`reconcile`] (the one load, fetch, plan, guard and
//! apply pass) -> [`apply`] (executes, decides nothing) -> [`render`]; [`watch`] is the daemon,
//! [`sandbox`] the in-process fake API, and [`cli`] thin glue.

// The docs are built with `--document-private-items` (CI): links to crate-private items resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod apply;
pub mod cli;
pub mod live;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod reconcile;
pub mod render;
pub mod sandbox;
pub mod watch;
pub mod wire;
