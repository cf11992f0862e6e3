//! `bbsync watch`: starts the daemon with its endpoints, and stops it on SIGTERM/SIGINT.

use super::output::eprintln_redacted;
use tokio_util::sync::CancellationToken;

use super::args::{LogFormat, WatchArgs};
use super::sandbox::shutdown_signal;
use super::{Error, Exit, Settings};
use std::path::{Component, Path, PathBuf};

use crate::model::secret::Secret;
use crate::watch::git::{self, Checkout, GitSource};
use crate::watch::{CommitStatuses, Daemon, WatchOptions};

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
    let mut temporary = Removed(None);
    let checkout = match &args.git_url {
        Some(url) => {
            let (checkout, temp) = checkout(url, args, reconciler.env())?;
            temporary = Removed(temp);
            options.files = relative_files(&args.manifest.files, &checkout.root())?;
            Some(checkout)
        }
        None => None,
    };
    let webhook_secret = match args.webhook_listen {
        Some(_) => Some(webhook_secret(reconciler.env())?),
        None => None,
    };
    let statuses = match &checkout {
        Some(checkout) => commit_statuses(settings, &reconciler, args, checkout)?,
        None => None,
    };
    let mut daemon = Daemon::new(options, reconciler);
    if let Some(checkout) = checkout {
        daemon = daemon.with_git(checkout);
    }
    if let Some(statuses) = statuses {
        tracing::info!(repository = %statuses.repository, "posting each run as a commit status");
        daemon = daemon.with_commit_statuses(statuses);
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
    if let (Some(listen), Some(secret)) = (args.webhook_listen, webhook_secret) {
        let address = crate::watch::webhook::serve(listen, daemon.shared(), secret, stop.clone())
            .await
            .map_err(|e| Error::setup(format!("cannot listen on {listen}"), e))?;
        tracing::info!(%address, "serving POST /hooks/bitbucket");
        if settings.log_format == LogFormat::Text {
            eprintln_redacted!("bbsync watch: webhook at http://{address}/hooks/bitbucket");
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
    drop(temporary);
    Ok(Exit::Ok)
}

/// A temporary checkout, removed however the daemon ends.
struct Removed(Option<PathBuf>);

impl Drop for Removed {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `BBSYNC_WEBHOOK_SECRET`, which `--webhook-listen` needs.
fn webhook_secret(env: &crate::model::Env) -> Result<Secret, Error> {
    match env.get("BBSYNC_WEBHOOK_SECRET").map(str::trim) {
        Some(secret) if secret.len() >= 16 => Ok(Secret::new(secret)),
        Some(_) => Err(Error::Usage(
            "BBSYNC_WEBHOOK_SECRET is shorter than 16 characters; use a long random one (`openssl rand -hex 32`)".to_owned(),
        )),
        None => Err(Error::Usage(
            "--webhook-listen needs BBSYNC_WEBHOOK_SECRET, the secret set on the Bitbucket webhook: an unsigned webhook would let anyone trigger runs".to_owned(),
        )),
    }
}

/// Where runs are posted as commit statuses: with `BBSYNC_BITBUCKET_TOKEN`, in
/// `--commit-status-repo` or the Bitbucket Cloud repository `--git-url` names.
fn commit_statuses(
    settings: &Settings,
    reconciler: &crate::reconcile::Reconciler,
    args: &WatchArgs,
    checkout: &Checkout,
) -> Result<Option<CommitStatuses>, Error> {
    let token = reconciler
        .env()
        .get("BBSYNC_BITBUCKET_TOKEN")
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Ok(None);
    };
    let repository = args
        .commit_status_repo
        .clone()
        .or_else(|| git::bitbucket_cloud_repository(&checkout.source().url));
    let Some((workspace, slug)) = repository else {
        return Err(Error::Usage(
            "BBSYNC_BITBUCKET_TOKEN is set, so each run is posted as a commit status, but --git-url is not a bitbucket.org repository: give --commit-status-repo WORKSPACE/SLUG".to_owned(),
        ));
    };
    Ok(Some(CommitStatuses {
        client: settings.bitbucket(reconciler.client())?,
        token: Secret::new(token),
        repository: crate::live::RepositoryRef {
            workspace_or_project: workspace,
            slug,
        },
        link: args.public_url.as_ref().map(ToString::to_string),
    }))
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
    // The Bitbucket token goes to bitbucket.org only, never to another git host.
    let bitbucket = git::bitbucket_cloud_repository(&url).is_some();
    let token = var("BBSYNC_GIT_TOKEN")
        .or_else(|| var("BBSYNC_BITBUCKET_TOKEN").filter(|_| bitbucket))
        .map(|token| {
            let user = git::url_user(&url).unwrap_or_else(|| git::TOKEN_USER.to_owned());
            (user, Secret::new(token))
        });
    let (dir, temporary) = match &args.state_dir {
        Some(state) => (state.join("git"), None),
        None => {
            // `TMPDIR`, as the standard library reads it, but from the one `Env`.
            let temp = env
                .get("TMPDIR")
                .filter(|t| !t.is_empty())
                .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            let dir = private_dir(&temp).map_err(|e| {
                Error::setup("cannot make a temporary directory for the checkout", e)
            })?;
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

/// A new directory in `parent` that nobody else made first, readable by its owner only (as
/// mkdtemp(3)): another user cannot plant a repository configuration in it.
fn private_dir(parent: &Path) -> std::io::Result<PathBuf> {
    let mut tries = 0;
    loop {
        let dir = parent.join(format!("bbsync-git-{:016x}", fastrand::u64(..)));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            Err(e) => return Err(e),
        }
    }
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
