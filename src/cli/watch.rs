//! `bbsync watch`: starts the daemon with its endpoints, and stops it on SIGTERM/SIGINT.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;

use super::args::WatchArgs;
use super::sandbox::shutdown_signal;
use super::sync::client;
use super::{Exit, Global};
use crate::watch::{Daemon, WatchOptions};

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(global: &Global, args: &WatchArgs) -> Result<Exit> {
    let client = client(global)?;
    let mut options = WatchOptions::new(args.manifest.files.clone());
    options.interval = args.interval;
    options.debounce = args.debounce;
    options.plan_only = args.plan_only;
    options.max_deletes = args.max_deletes;
    options.wait = !args.no_wait;
    options.concurrency = usize::from(global.concurrency);
    options.state_dir = args.state_dir.clone();
    let env = Arc::new(|name: &str| std::env::var(name).ok());
    let daemon = Daemon::new(options, client, env);
    let stop = CancellationToken::new();
    if let Some(listen) = args.listen {
        let address = daemon
            .serve(listen, stop.clone())
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(%address, "serving /healthz /readyz /metrics /status");
        eprintln!("bbsync watch: listening on http://{address}");
    }
    let signals = {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: finishing the action in flight");
            stop.cancel();
        })
    };
    daemon
        .run(stop)
        .await
        .context("cannot watch the manifest files")?;
    signals.abort();
    Ok(Exit::Ok)
}
