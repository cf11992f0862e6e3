//! `bbsync watch`: starts the daemon with its endpoints, and stops it on SIGTERM/SIGINT.

use super::output::eprintln_redacted;
use tokio_util::sync::CancellationToken;

use super::args::{LogFormat, WatchArgs};
use super::sandbox::shutdown_signal;
use super::{Error, Exit, Settings};
use std::path::{Component, Path, PathBuf};

use crate::model::secret::Secret;
use crate::watch::git::{self, Checkout, GitSource};
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
    let mut temporary = None;
    let checkout = match &args.git_url {
        Some(url) => {
            let (checkout, temp) = checkout(url, args, reconciler.env())?;
            temporary = temp;
            options.files = relative_files(&args.manifest.files, &checkout.root())?;
            Some(checkout)
        }
        None => None,
    };
    let mut daemon = Daemon::new(options, reconciler);
    if let Some(checkout) = checkout {
        daemon = daemon.with_git(checkout);
    }
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
    if let Some(dir) = temporary {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(Exit::Ok)
}

/// How long one git command may take (a first fetch of a large repository included).
const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The checkout `--git-url` asks for: in `--state-dir` (kept across restarts), else in a
/// temporary directory, returned to be removed at exit.
fn checkout(
    url: &str,
    args: &WatchArgs,
    env: &crate::model::Env,
) -> Result<(Checkout, Option<PathBuf>), Error> {
    let url = git::check_url(url).map_err(|e| Error::Usage(format!("--git-url: {e}")))?;
    for (flag, path) in [
        ("--git-ssh-key", &args.git_ssh_key),
        ("--git-known-hosts", &args.git_known_hosts),
    ] {
        if let Some(path) = path
            && !path.is_file()
        {
            return Err(Error::Usage(format!(
                "{flag}: `{}` is not a readable file",
                path.display()
            )));
        }
    }
    let var = |name: &str| env.get(name).map(str::trim).filter(|v| !v.is_empty());
    let token = var("BBSYNC_GIT_TOKEN")
        .or_else(|| var("BBSYNC_BITBUCKET_TOKEN"))
        .map(|token| {
            let user = git::url_user(&url).unwrap_or_else(|| git::TOKEN_USER.to_owned());
            (user, Secret::new(token))
        });
    let (dir, temporary) = match &args.state_dir {
        Some(state) => (state.join("git"), None),
        None => {
            let dir = std::env::temp_dir().join(format!("bbsync-git-{}", std::process::id()));
            (dir.clone(), Some(dir))
        }
    };
    let source = GitSource {
        url,
        reference: args.git_ref.clone(),
        interval: args.git_interval,
        dir: dir.clone(),
        token,
        ssh_key: args.git_ssh_key.clone(),
        known_hosts: args.git_known_hosts.clone(),
        inherit: git::INHERITED
            .iter()
            .filter_map(|name| env.get(name).map(|v| ((*name).to_owned(), v.to_owned())))
            .collect(),
        timeout: GIT_TIMEOUT,
    };
    let checkout = Checkout::open(source)
        .map_err(|e| Error::setup(format!("cannot make the checkout in {}", dir.display()), e))?;
    Ok((checkout, temporary))
}

/// `-f` paths inside the checkout: each must be relative to the repository's root, and stay
/// inside it.
fn relative_files(files: &[PathBuf], root: &Path) -> Result<Vec<PathBuf>, Error> {
    files
        .iter()
        .map(|file| {
            let inside = file
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if inside {
                Ok(root.join(file))
            } else {
                Err(Error::Usage(format!(
                    "-f {}: with --git-url, manifest paths are relative to the repository's root (e.g. `-f integrations.yaml` or `-f infra/`)",
                    file.display()
                )))
            }
        })
        .collect()
}
