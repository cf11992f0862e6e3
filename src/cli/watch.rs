//! `bbsync watch`: starts the daemon with its endpoints, and stops it on SIGTERM/SIGINT.

use super::output::eprintln_redacted;
use tokio_util::sync::CancellationToken;

use super::args::{LogFormat, WatchArgs};
use super::sandbox::shutdown_signal;
use super::{Error, Exit, Settings};
use crate::watch::{Daemon, WatchOptions};

/// Runs the daemon until SIGTERM or SIGINT.
pub(crate) async fn run(settings: &Settings, args: &WatchArgs) -> Result<Exit, Error> {
    let reconciler = settings.reconciler()?;
    let mut options = WatchOptions::new(args.manifest.files.clone());
    options.interval = args.interval;
    options.debounce = args.debounce;
    options.settle = args.settle;
    options.plan_only = args.plan_only;
    options.max_deletes = args.max_deletes;
    options.max_environment_deletes = args.max_environment_deletes;
    options.wait = !args.no_wait;
    options.activity_timeout = args.activity_timeout;
    options.concurrency = settings.api.concurrency;
    options.state_dir = args.state_dir.clone();
    let daemon = Daemon::new(options, reconciler);
    let stop = CancellationToken::new();
    if let Some(listen) = args.listen {
        let address = daemon
            .serve(listen, stop.clone())
            .await
            .map_err(|e| Error::setup(format!("cannot listen on {listen}"), e))?;
        tracing::info!(%address, "serving /healthz /readyz /metrics /status");
        // With `--log-format json`, every line on stderr is JSON: the log line above says it.
        if settings.log_format == LogFormat::Text {
            eprintln_redacted!("bbsync watch: listening on http://{address}");
        }
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
        .map_err(|e| Error::setup("cannot watch the manifest files", e))?;
    signals.abort();
    Ok(Exit::Ok)
}
