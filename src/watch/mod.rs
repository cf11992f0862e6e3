//! `bbsync watch`: the GitOps daemon that keeps the live integrations equal to the manifest.
//!
//! Runs are started by manifest changes (debounced), a jittered periodic resync and SIGHUP
//! ([`triggers`]); they never overlap. Each run loads the manifest (an invalid one is never acted
//! on: the last valid one stays in force for resyncs), plans, and applies with the same code and
//! guards as `apply --auto-approve`. Projects that keep failing back off exponentially without
//! holding up the others. SIGTERM/SIGINT let the action in flight finish, then the daemon exits.

mod audit;
pub mod git;
pub(crate) mod metrics;
mod server;
mod settle;
pub(crate) mod snapshot;
pub(crate) mod status;
pub(crate) mod triggers;
pub(crate) mod webhook;
mod writers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, ApplyOptions, Outcome};
use crate::manifest::diagnostic::Diagnostic;
use crate::model::DesiredState;
use crate::model::ids::ProjectId;
use crate::model::live::ProjectLive;
use crate::plan::{Action, ActionKind, Plan};
use crate::reconcile::{Approval, Hooks, PassOptions, Reconciler, Source, Stop};
use metrics::Metrics;
use snapshot::Snapshot;
use status::{RecordedAction, RunRecord, RunResult, Status};
use triggers::{Trigger, Triggers};
use writers::Writers;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The manifest files and directories.
    pub files: Vec<PathBuf>,
    /// Time between periodic resyncs (jittered by 10%).
    pub interval: Duration,
    /// Quiet time that ends a burst of file events.
    pub debounce: Duration,
    /// How long the manifest must stay unchanged before a file change is acted on; also how
    /// long a change that drops projects is held before its deletes ([`settle`]).
    pub settle: Duration,
    /// Detect and report drift; never write.
    pub plan_only: bool,
    /// `--max-deletes`.
    pub max_deletes: Option<usize>,
    /// `--max-environment-deletes`.
    pub max_environment_deletes: usize,
    /// Wait for activities after writes.
    pub wait: bool,
    /// `--activity-timeout`: how long to wait for them.
    pub activity_timeout: Duration,
    /// Projects applied at once.
    pub concurrency: usize,
    /// Longest time to wait for the action in flight after SIGTERM.
    pub grace: Duration,
    /// Runs kept in `/status`.
    pub history: usize,
    /// First delay for a failing project; doubles per failure.
    pub backoff: Duration,
    /// Longest delay for a failing project.
    pub max_backoff: Duration,
    /// Where the last valid manifest is kept, so that it stays in force across restarts.
    pub state_dir: Option<PathBuf>,
}

impl WatchOptions {
    /// Defaults for `files`.
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self {
            files,
            interval: Duration::from_secs(300),
            debounce: Duration::from_millis(500),
            settle: Duration::from_secs(5),
            plan_only: false,
            max_deletes: None,
            max_environment_deletes: 0,
            wait: true,
            activity_timeout: crate::apply::DEFAULT_ACTIVITY_TIMEOUT,
            concurrency: 16,
            grace: Duration::from_secs(60),
            history: 20,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            state_dir: None,
        }
    }
}

/// State shared with the HTTP endpoints.
pub struct Shared {
    /// What `/status` and `/readyz` show.
    pub status: Mutex<Status>,
    /// What `/metrics` shows.
    pub metrics: Metrics,
    /// Pending triggers.
    pub triggers: Triggers,
    /// The environment whose secret values every endpoint's answer is redacted of.
    pub env: crate::model::Env,
    /// When the daemon's loop last ticked ([`HEARTBEAT`]); `/healthz` fails when that is more
    /// than [`STUCK_AFTER`] ago.
    heartbeat: Mutex<tokio::time::Instant>,
}

/// How often the daemon's loop ticks, waiting or running.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long without a tick makes the daemon unhealthy: its loop is stuck (a blocking call, a
/// busy loop), and only a restart will help.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

impl Shared {
    /// Notes that the loop is alive.
    fn beat(&self) {
        *self.heartbeat.lock().expect("heartbeat lock") = tokio::time::Instant::now();
    }

    /// Whether the loop ticked within [`STUCK_AFTER`]; else how long ago it last did.
    pub fn health(&self) -> Result<(), Duration> {
        let since = self.heartbeat.lock().expect("heartbeat lock").elapsed();
        if since > STUCK_AFTER {
            Err(since)
        } else {
            Ok(())
        }
    }
}

/// A failing project's backoff, on tokio's clock (so paused time drives it in tests).
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Instant,
}

/// The daemon.
pub struct Daemon {
    options: WatchOptions,
    reconciler: Reconciler,
    shared: Arc<Shared>,
    in_force: Option<DesiredState>,
    /// What the loader saw on disk at this run's start ([`settle::observation`]).
    observed: Option<String>,
    /// Projects the manifest in force newly dropped, until a run confirms them from disk.
    dropped: Vec<ProjectId>,
    /// The digest of the snapshot in `--state-dir`, once known.
    saved: Option<String>,
    backoff: HashMap<ProjectId, Backoff>,
    /// What the daemon wrote, to notice another writer undoing it.
    writers: Writers,
    runs: u64,
    /// `--git-url`: the daemon's own checkout, which the manifest files are read from.
    git: Option<git::Checkout>,
    /// With `git`: the commit whose manifest is in force.
    commit_in_force: Option<String>,
    /// With `git`: the last fetch error logged, to log each new one once.
    fetch_error: Option<String>,
    /// Where each run is posted as a commit status.
    statuses: Option<CommitStatuses>,
}

/// Where runs are posted as Bitbucket commit statuses (`key: bbsync`, DESIGN §7).
#[derive(Debug, Clone)]
pub struct CommitStatuses {
    /// The client (its throttle is the process's).
    pub client: crate::live::BitbucketClient,
    /// `BBSYNC_BITBUCKET_TOKEN`.
    pub token: crate::model::secret::Secret,
    /// The repository: `--commit-status-repo`, or the one `--git-url` names.
    pub repository: crate::live::RepositoryRef,
    /// `--public-url`.
    pub link: Option<String>,
}

impl Daemon {
    /// A daemon that reconciles through `reconciler` (its client and environment).
    pub fn new(options: WatchOptions, reconciler: Reconciler) -> Self {
        let mut status = Status::new(options.plan_only, options.history);
        // Said from the start, so that `/readyz` never answers before the wait is known.
        status.waiting_for = options
            .files
            .iter()
            .find(|p| !p.exists())
            .map(|p| p.display().to_string());
        let shared = Arc::new(Shared {
            status: Mutex::new(status),
            metrics: Metrics::default(),
            triggers: Triggers::default(),
            env: reconciler.env().clone(),
            heartbeat: Mutex::new(tokio::time::Instant::now()),
        });
        Self {
            options,
            reconciler,
            shared,
            in_force: None,
            observed: None,
            dropped: Vec::new(),
            saved: None,
            backoff: HashMap::new(),
            writers: Writers::default(),
            runs: 0,
            git: None,
            commit_in_force: None,
            fetch_error: None,
            statuses: None,
        }
    }

    /// Posts each run as a commit status on the commit it acted on.
    pub fn with_commit_statuses(mut self, statuses: CommitStatuses) -> Self {
        self.statuses = Some(statuses);
        self
    }

    /// Posts `state` with `description` on `commit`; a failure is logged and counted, never
    /// fails the run.
    async fn post_status(
        &self,
        commit: Option<&str>,
        state: crate::live::CommitState,
        description: String,
    ) {
        let (Some(statuses), Some(commit)) = (&self.statuses, commit) else {
            return;
        };
        let status = crate::live::CommitStatus {
            state,
            name: "bbsync watch".to_owned(),
            description,
            url: statuses.link.clone(),
        };
        match statuses
            .client
            .commit_status(&statuses.token, &statuses.repository, commit, &status)
            .await
        {
            Ok(()) => {
                tracing::debug!(%commit, state = ?state, "posted the commit status");
                self.shared.metrics.commit_status("posted");
            }
            Err(error) => {
                tracing::warn!(%commit, %error, "cannot post the commit status");
                self.shared.metrics.commit_status("failed");
            }
        }
    }

    /// Reads the manifest from `checkout` (the files being paths inside it), which each run
    /// fetches first, instead of watching the files.
    pub fn with_git(mut self, checkout: git::Checkout) -> Self {
        let mut status = self.shared.status.lock().expect("status lock");
        status.waiting_for = None;
        status.git = Some(status::GitStatus {
            url: checkout.source().url.clone(),
            reference: checkout.reference().to_owned(),
            latest_commit: checkout.current().map(str::to_owned),
            ..status::GitStatus::default()
        });
        drop(status);
        self.git = Some(checkout);
        self
    }

    /// The state the endpoints show.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Serves the endpoints on `listen` until `stop`; returns the bound address. See
    /// [`server::serve`] for the limits the listener keeps.
    pub(crate) async fn serve(
        &self,
        listen: SocketAddr,
        stop: CancellationToken,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let app = server::router(self.shared(), address);
        tokio::spawn(server::serve(
            listener,
            app,
            server::Limits::default(),
            stop,
        ));
        Ok(address)
    }

    /// Runs until `stop` is cancelled (SIGTERM/SIGINT), then lets the run in flight finish its
    /// actions in flight (at most `grace`) and returns.
    pub async fn run(mut self, stop: CancellationToken) -> notify::Result<()> {
        let shared = self.shared();
        let (events, received) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        // With `--git-url`, commits come from the daemon's own fetches, not from file events.
        let mut watcher = if let Some(checkout) = &self.git {
            let (shared, stop, every) = (
                Arc::clone(&shared),
                stop.clone(),
                checkout.source().interval,
            );
            tasks.push(tokio::spawn(async move {
                triggers::every(every, Trigger::Poll, &shared.triggers, &stop).await;
            }));
            tracing::info!(url = %checkout.source().url, r#ref = checkout.reference(), git_interval_s = checkout.source().interval.as_secs_f64(), "following the repository");
            None
        } else {
            // A path that is not there yet (a git-sync sidecar's first clone) is waited for,
            // with `/readyz` saying so, rather than an exit that would crash-loop the pod.
            if !self.wait_for_paths(&stop).await {
                return Ok(());
            }
            let watcher = triggers::watch_files(&self.options.files, events.clone())?;
            let (shared, stop, quiet) = (Arc::clone(&shared), stop.clone(), self.options.debounce);
            tasks.push(tokio::spawn(async move {
                let count = |n: usize| shared.metrics.file_events(n);
                triggers::debounce(received, quiet, &shared.triggers, &stop, &count).await;
            }));
            Some(watcher)
        };
        let ticker = {
            let (shared, stop, interval) =
                (Arc::clone(&shared), stop.clone(), self.options.interval);
            tokio::spawn(async move {
                triggers::every(interval, Trigger::Interval, &shared.triggers, &stop).await;
            })
        };
        tasks.push(ticker);
        tasks.push(tokio::spawn(hangups(Arc::clone(&shared), stop.clone())));
        tracing::info!(files = ?self.options.files, interval_s = self.options.interval.as_secs_f64(), plan_only = self.options.plan_only, "watching");
        shared.triggers.fire(Trigger::Startup);
        // The loop ticks while it waits and while it runs: a tick that does not come means the
        // task is stuck, and `/healthz` says so.
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let fired = loop {
                tokio::select! {
                    fired = shared.triggers.next() => break Some(fired),
                    () = stop.cancelled() => break None,
                    _ = heartbeat.tick() => {
                        shared.beat();
                        if let Some(watcher) = &mut watcher {
                            self.rewatch(watcher, &events);
                        }
                    }
                }
            };
            let Some(fired) = fired else { break };
            let grace = self.options.grace;
            let run = self.run_once(&fired, &stop);
            tokio::pin!(run);
            let expired = async {
                stop.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::pin!(expired);
            let finished = loop {
                tokio::select! {
                    () = &mut run => break true,
                    () = &mut expired => break false,
                    _ = heartbeat.tick() => shared.beat(),
                }
            };
            if !finished {
                tracing::warn!(
                    grace_s = grace.as_secs_f64(),
                    "the run in flight did not finish in time; exiting anyway"
                );
                break;
            }
            if stop.is_cancelled() {
                break;
            }
        }
        drop(watcher);
        for task in tasks {
            task.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Begins the file watch again when a watched directory was deleted and made again (its
    /// old watch hears nothing of the new one), and plans what is there now.
    fn rewatch(&self, watcher: &mut triggers::FileWatch, events: &mpsc::UnboundedSender<usize>) {
        match watcher.check() {
            triggers::Watched::Same => {}
            triggers::Watched::Gone(dir) => {
                tracing::warn!(dir = %dir.display(), "a watched manifest directory was deleted; waiting for it to come back (the manifest in force stays)");
            }
            triggers::Watched::Replaced => {
                match triggers::watch_files(&self.options.files, events.clone()) {
                    Ok(fresh) => {
                        tracing::info!(
                            "a watched manifest directory was made again; watching it anew"
                        );
                        *watcher = fresh;
                        self.shared.triggers.fire(Trigger::File);
                    }
                    Err(error) => {
                        // Tried again at the next tick.
                        tracing::debug!(%error, "cannot watch the manifest directory yet");
                    }
                }
            }
        }
    }

    /// Waits until every manifest path exists, polling once a second; false when stopped
    /// first.
    async fn wait_for_paths(&self, stop: &CancellationToken) -> bool {
        let mut logged = None;
        loop {
            let missing = self.options.files.iter().find(|p| !p.exists()).cloned();
            let Some(missing) = missing else {
                self.shared.status.lock().expect("status lock").waiting_for = None;
                return true;
            };
            let shown = missing.display().to_string();
            if logged.as_ref() != Some(&shown) {
                tracing::info!(path = %shown, "waiting for the manifest path to appear");
                logged = Some(shown.clone());
            }
            self.shared.status.lock().expect("status lock").waiting_for = Some(shown);
            // Waiting is alive: `/healthz` must not have the pod killed meanwhile.
            self.shared.beat();
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => return false,
            }
        }
    }

    /// One reconciliation.
    pub(crate) async fn run_once(&mut self, fired: &BTreeSet<Trigger>, stop: &CancellationToken) {
        let mut new_commit = false;
        if self.git.is_some() {
            new_commit = self.sync_git().await;
            // A poll that brings no new commit is no reason to plan.
            if !new_commit && fired.iter().all(|t| *t == Trigger::Poll) {
                return;
            }
        }
        self.runs += 1;
        let started = Instant::now();
        let started_at = crate::wire::time::rfc3339(SystemTime::now());
        let triggers: Vec<&'static str> = fired.iter().map(|t| t.as_str()).collect();
        let mut record = RunRecord {
            id: self.runs,
            triggers: triggers.clone(),
            started_at,
            duration_ms: 0,
            result: RunResult::Ok,
            manifest_digest: None,
            commit: None,
            summary: None,
            actions: Vec::new(),
            backing_off: Vec::new(),
            error: None,
        };
        // A change (a file event, a new commit, a push) to an invalid manifest is never acted
        // on; a resync acts on the manifest in force.
        let only_file = new_commit
            || fired
                .iter()
                .all(|t| matches!(t, Trigger::File | Trigger::Poll | Trigger::Webhook));
        let loaded = if fired.contains(&Trigger::File) {
            // A file change: act only on content that has stopped changing.
            let files = &self.options.files;
            let env = self.reconciler.env();
            let observe = || {
                let loaded = crate::reconcile::load::load_with_sources(files, env);
                std::future::ready((settle::observation(&loaded), loaded))
            };
            let settle_s = self.options.settle.as_secs_f64();
            let mut on_wait = |waits: u32| {
                tracing::info!(
                    waits,
                    settle_s,
                    "the manifest is still changing; waiting for it to settle"
                );
            };
            match settle::settled(observe, self.options.settle, stop, &mut on_wait).await {
                Some((_, loaded)) => loaded,
                None => return,
            }
        } else {
            crate::reconcile::load::load_with_sources(&self.options.files, self.reconciler.env())
        };
        let seen = self
            .git
            .as_ref()
            .and_then(|c| c.current().map(str::to_owned));
        let manifest_ok = self.take(loaded, seen.clone());
        let proceed = match (&self.in_force, manifest_ok, only_file) {
            (None, _, _) => false,
            // A change to an invalid manifest is never acted on; a resync uses the last valid one.
            (Some(_), false, true) => false,
            (Some(_), _, _) => true,
        };
        record.commit = if proceed {
            self.commit_in_force.clone()
        } else {
            seen
        };
        if proceed {
            self.post_status(
                record.commit.as_deref(),
                crate::live::CommitState::InProgress,
                "planning and applying".to_owned(),
            )
            .await;
            self.reconcile(&mut record, stop).await;
        } else {
            record.result = RunResult::InvalidManifest;
            record.error = self
                .shared
                .status
                .lock()
                .expect("status lock")
                .manifest_error
                .clone();
        }
        if proceed || new_commit {
            let (state, description) = status_of(&record, self.commit_in_force.as_deref());
            self.post_status(record.commit.as_deref(), state, description)
                .await;
        }
        let seconds = started.elapsed().as_secs_f64();
        record.duration_ms = started.elapsed().as_millis() as u64;
        let metrics = &self.shared.metrics;
        metrics.run(&triggers, record.result.as_str(), seconds);
        metrics.api_responses(
            &self
                .reconciler
                .client()
                .stats()
                .responses
                .lock()
                .expect("stats lock"),
        );
        metrics.api_throttled(self.reconciler.client().throttle().paused_seconds());
        // A run whose only problem is a block completed: the block is reported on its own
        // (`/status.blocked`, `bbsync_blocked_projects`), and "no success" alerts stay quiet.
        if matches!(
            record.result,
            RunResult::Ok | RunResult::InSync | RunResult::Drift | RunResult::Blocked
        ) {
            metrics.success(crate::wire::time::unix_seconds(SystemTime::now()));
        }
        tracing::info!(
            run = record.id,
            triggers = %triggers.join(","),
            result = record.result.as_str(),
            commit = record.commit.as_deref().unwrap_or(""),
            duration_ms = record.duration_ms,
            actions = record.actions.len(),
            error = record.error.as_deref().unwrap_or(""),
            "run finished"
        );
        let mut status = self.shared.status.lock().expect("status lock");
        // A run whose only problem is a block completed: the block is reported on its own
        // (`/status.blocked`, `bbsync_blocked_projects`), and "no success" alerts stay quiet.
        if matches!(
            record.result,
            RunResult::Ok | RunResult::InSync | RunResult::Drift | RunResult::Blocked
        ) {
            status.last_success = Some(crate::wire::time::rfc3339(SystemTime::now()));
        }
        status.backing_off = self
            .backoff
            .iter()
            .map(|(p, b)| (p.clone(), b.failures))
            .collect();
        status.record(record);
    }

    /// Takes the manifest just read; keeps the last valid one in force when it is invalid.
    /// Returns whether the manifest on disk is valid.
    fn take(
        &mut self,
        loaded: Result<crate::reconcile::load::Loaded, Vec<Diagnostic>>,
        commit: Option<String>,
    ) -> bool {
        // What this run saw on disk, valid or not: writes wait until it is still so.
        self.observed = Some(settle::observation(&loaded));
        match loaded {
            Ok(crate::reconcile::load::Loaded {
                state,
                warnings,
                sources,
            }) => {
                for warning in &warnings {
                    tracing::warn!(warning = %warning, "manifest warning");
                }
                if self.in_force.as_ref().map(|s| &s.digest) != Some(&state.digest) {
                    tracing::info!(digest = %state.digest, projects = state.projects.len(), "manifest loaded");
                    // New values: what another writer undid of the old ones no longer counts.
                    if !self.writers.contested().is_empty() {
                        tracing::info!(
                            "the manifest changed: contested projects are written again"
                        );
                    }
                    self.writers.reset();
                    self.shared.metrics.contested_projects(0);
                    self.shared
                        .status
                        .lock()
                        .expect("status lock")
                        .contested
                        .clear();
                    // Projects the previous valid manifest listed and this one does not: their
                    // deletes wait for a confirmation from disk.
                    self.dropped = self.in_force.as_ref().map_or_else(Vec::new, |old| {
                        old.projects
                            .keys()
                            .filter(|id| !state.projects.contains_key(*id))
                            .cloned()
                            .collect()
                    });
                }
                if self.git.is_some() && self.commit_in_force != commit {
                    tracing::info!(
                        commit = commit.as_deref().unwrap_or(""),
                        "the commit in force is now this one"
                    );
                }
                self.commit_in_force.clone_from(&commit);
                self.save_snapshot(&state.digest, &sources);
                self.note_commits(true);
                let mut status = self.shared.status.lock().expect("status lock");
                status.manifest_valid = true;
                status.manifest_error = None;
                status.manifest_digest = Some(state.digest.clone());
                status.restored_from = None;
                self.in_force = Some(state);
                self.shared.metrics.manifest_valid(true);
                true
            }
            Err(diagnostics) => {
                let summary = summarize(&diagnostics);
                if self.in_force.is_none() {
                    self.restore_snapshot();
                }
                let mut status = self.shared.status.lock().expect("status lock");
                tracing::error!(error = %summary, in_force = status.manifest_digest.as_deref().unwrap_or("none"), commit = commit.as_deref().unwrap_or(""), commit_in_force = self.commit_in_force.as_deref().unwrap_or(""), "the manifest is invalid; the last valid one stays in force");
                status.manifest_valid = false;
                status.manifest_error = Some(summary);
                drop(status);
                self.shared.metrics.manifest_valid(false);
                self.note_commits(false);
                false
            }
        }
    }

    /// Keeps the valid manifest just read in `--state-dir`, when it differs from the one there.
    fn save_snapshot(
        &mut self,
        digest: &str,
        sources: &[Arc<crate::manifest::diagnostic::SourceFile>],
    ) {
        let Some(dir) = &self.options.state_dir else {
            return;
        };
        // A new commit with the same manifest is saved too: the commit in force is named.
        let key = match &self.commit_in_force {
            Some(commit) => format!("{digest}@{commit}"),
            None => digest.to_owned(),
        };
        if self.saved.as_deref() == Some(key.as_str()) {
            return;
        }
        let mut snapshot = Snapshot::new(
            &self.options.files,
            digest,
            sources,
            self.commit_in_force.as_deref(),
        );
        snapshot.source = self.git.as_ref().map(git::Checkout::identity);
        match snapshot.save(dir) {
            Ok(()) => {
                tracing::info!(digest, dir = %dir.display(), "saved the valid manifest");
                self.saved = Some(key);
            }
            Err(error) => {
                tracing::warn!(%error, dir = %dir.display(), "cannot save the valid manifest; a restart will not restore it");
            }
        }
    }

    /// At startup with an invalid manifest on disk: puts the last valid one saved in
    /// `--state-dir` in force, if there is one for these files and it is still valid.
    fn restore_snapshot(&mut self) {
        let Some(dir) = &self.options.state_dir else {
            return;
        };
        let snapshot = match Snapshot::load(dir, &self.options.files) {
            Ok(Some(snapshot))
                if snapshot.source == self.git.as_ref().map(git::Checkout::identity) =>
            {
                snapshot
            }
            Ok(Some(snapshot)) => {
                tracing::warn!(
                    saved_from = snapshot.source.as_deref().unwrap_or("files"),
                    "the saved manifest is of another repository or ref; it is not used"
                );
                return;
            }
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "the saved manifest cannot be used");
                return;
            }
        };
        match snapshot.build(self.reconciler.env()) {
            Ok((state, _)) => {
                tracing::warn!(digest = %state.digest, saved_at = %snapshot.saved_at, commit = snapshot.commit.as_deref().unwrap_or(""), dir = %dir.display(), "the manifest on disk is invalid; enforcing the last valid one, saved before the restart");
                self.commit_in_force.clone_from(&snapshot.commit);
                let mut status = self.shared.status.lock().expect("status lock");
                status.manifest_digest = Some(state.digest.clone());
                status.restored_from = Some(format!(
                    "{} (saved at {})",
                    dir.join(snapshot::FILE_NAME).display(),
                    snapshot.saved_at
                ));
                self.saved = Some(match &snapshot.commit {
                    Some(commit) => format!("{}@{commit}", snapshot.digest),
                    None => snapshot.digest.clone(),
                });
                self.in_force = Some(state);
            }
            Err(diagnostics) => {
                tracing::warn!(error = %summarize(&diagnostics), "the saved manifest is no longer valid; it is not used");
            }
        }
    }

    /// Fetches `--git-url` and checks out the commit fetched when it is new; returns whether it
    /// is. A failure is logged (each new message once), counted and shown in `/status`: the
    /// commit in force stays.
    async fn sync_git(&mut self) -> bool {
        let Some(checkout) = self.git.as_mut() else {
            return false;
        };
        let fetched = checkout.fetch().await;
        let now = SystemTime::now();
        let outcome = match fetched {
            Ok(commit) if checkout.current() == Some(commit.as_str()) => Ok(false),
            Ok(commit) => match checkout.switch(&commit).await {
                Ok(()) => {
                    tracing::info!(%commit, "fetched a new commit");
                    Ok(true)
                }
                Err(error) => Err(error.0),
            },
            Err(error) => Err(error.0),
        };
        let checked_out = checkout.current().map(str::to_owned);
        self.shared
            .metrics
            .git_fetch(outcome.is_ok(), crate::wire::time::unix_seconds(now));
        let message = outcome.as_ref().err().cloned();
        if message != self.fetch_error {
            match &message {
                Some(error) => {
                    tracing::warn!(%error, commit_in_force = self.commit_in_force.as_deref().unwrap_or(""), "cannot bring the repository up to date; the commit in force stays");
                }
                None if self.fetch_error.is_some() => {
                    tracing::info!("the repository can be fetched again");
                }
                None => {}
            }
        }
        self.fetch_error.clone_from(&message);
        let mut status = self.shared.status.lock().expect("status lock");
        if let Some(git) = &mut status.git {
            let at = crate::wire::time::rfc3339(now);
            if outcome.is_ok() {
                git.last_fetch_success_at = Some(at.clone());
                git.latest_commit = checked_out;
            }
            git.last_fetch_at = Some(at);
            git.fetch_error = message;
        }
        outcome.unwrap_or(false)
    }

    /// Shows the commit in force, and whether the newest commit's manifest is `valid`, in
    /// `/status`.
    fn note_commits(&self, valid: bool) {
        let mut status = self.shared.status.lock().expect("status lock");
        if let Some(git) = &mut status.git {
            git.commit_in_force.clone_from(&self.commit_in_force);
            if self.git.as_ref().and_then(|c| c.current()).is_some() {
                git.latest_valid = Some(valid);
            }
        }
    }

    async fn reconcile(&mut self, record: &mut RunRecord, stop: &CancellationToken) {
        let desired = self.in_force.clone().expect("checked by the caller");
        record.manifest_digest = Some(desired.digest.clone());
        let held = self.held(Instant::now());
        let options = PassOptions {
            held,
            max_deletes: self.options.max_deletes,
            max_environment_deletes: self.options.max_environment_deletes,
            apply: (!self.options.plan_only).then_some(ApplyOptions {
                wait: self.options.wait,
                activity_timeout: self.options.activity_timeout,
                concurrency: self.options.concurrency,
            }),
            ..PassOptions::default()
        };
        let mut recorder = Recorder {
            shared: &self.shared,
            writers: (!self.options.plan_only).then_some(&mut self.writers),
            run: record.id,
            triggers: record.triggers.clone(),
            planned: Vec::new(),
            files: &self.options.files,
            env: self.reconciler.env(),
            observed: self.observed.as_deref().unwrap_or(""),
            settle: self.options.settle,
            dropped: &self.dropped,
            stop,
            changed: false,
            confirmed: false,
        };
        let pass = self
            .reconciler
            .pass(Source::Manifest(&desired), &options, &mut recorder, stop)
            .await;
        let (changed, confirmed) = (recorder.changed, recorder.confirmed);
        drop(recorder);
        if confirmed {
            self.dropped.clear();
        }
        let reached = pass
            .live
            .projects
            .values()
            .any(|p| matches!(p, ProjectLive::Known { .. }))
            || pass.live.projects.is_empty();
        self.shared.status.lock().expect("status lock").api_reached = reached;
        let plan = &pass.plan;
        record.summary = Some(plan.summary.clone());
        record.backing_off = plan.held.iter().map(|h| h.project.clone()).collect();
        let failed_to_plan = plan.has_errors();
        if !plan.errors.is_empty() {
            record.error = Some(plan.errors.join("; "));
        }
        let report = match pass.stop {
            Some(Stop::Planned) => {
                record.actions = recorded(plan, None);
                record.result = if failed_to_plan {
                    RunResult::Failed
                } else if drift(plan).is_empty() {
                    RunResult::InSync
                } else {
                    RunResult::Drift
                };
                for action in plan.actions.iter().filter(|a| a.action != ActionKind::Noop) {
                    self.shared
                        .metrics
                        .action(action.action.as_str(), "planned");
                }
                return;
            }
            Some(Stop::Guard(violation)) => {
                // Reported, not retried in a loop: the next trigger plans afresh.
                record.result = RunResult::Blocked;
                record.error = Some(format!("{violation}; nothing was written"));
                let (outcome, reason) = match &violation {
                    crate::plan::GuardViolation::TooManyDeletes { .. } => {
                        self.shared
                            .metrics
                            .blocked_deletes(plan.deletions().count());
                        ("blocked by --max-deletes", "blocked by --max-deletes")
                    }
                    crate::plan::GuardViolation::Environments(_) => (
                        "blocked by --max-environment-deletes",
                        "Platform.sh would delete environments (--max-environment-deletes)",
                    ),
                };
                record.actions = recorded(plan, Some(outcome));
                let blocked = plan
                    .actions
                    .iter()
                    .filter(|a| a.action.writes() || a.action == ActionKind::Blocked)
                    .map(|a| (a.project.clone(), reason.to_owned()))
                    .collect();
                self.note_blocks(blocked);
                return;
            }
            Some(Stop::MissingVariables(missing)) => {
                // Nothing written, and the run says which variables to set.
                record.result = RunResult::Failed;
                record.error = Some(format!(
                    "environment variables the writes need are not set, so nothing was written: {}",
                    crate::reconcile::describe_missing(&missing)
                ));
                record.actions = recorded(plan, Some("not started: a variable is not set"));
                return;
            }
            Some(Stop::Declined) => {
                // The manifest changed after it was planned (or while a destructive change
                // was held): nothing was written; the changed one is planned next.
                record.result = if changed {
                    RunResult::Superseded
                } else {
                    RunResult::Failed
                };
                record.error = Some(
                    "the manifest changed on disk while this run was planning; nothing was written, a new run follows"
                        .to_owned(),
                );
                record.actions = recorded(plan, Some("not started: the manifest changed"));
                self.shared.triggers.fire(Trigger::File);
                return;
            }
            // The daemon applies from the manifest, never a saved plan: no stale plan.
            Some(Stop::Stale { .. }) | None => pass.report.unwrap_or_default(),
        };
        for action in report
            .actions
            .iter()
            .filter(|a| a.action != ActionKind::Noop)
        {
            self.shared
                .metrics
                .action(action.action.as_str(), action.outcome.as_str());
            record.actions.push(RecordedAction {
                project: action.project.clone(),
                action: action.action,
                outcome: action.outcome.as_str().to_owned(),
                message: action.message.clone(),
            });
            self.note_outcome(&action.project, action.outcome);
            if let Some(planned) = audit::planned(&plan.actions, action) {
                self.writers.wrote(planned, action.outcome);
            }
        }
        let blocked = report.count(Outcome::Blocked);
        self.shared.metrics.blocked_deletes(blocked);
        self.note_blocks(
            report
                .actions
                .iter()
                .filter(|a| a.outcome == Outcome::Blocked)
                .map(|a| {
                    (
                        a.project.clone(),
                        a.message.clone().unwrap_or_else(|| "protected".to_owned()),
                    )
                })
                .collect(),
        );
        // What is still drifted: what was planned, less what this run fixed.
        {
            let mut status = self.shared.status.lock().expect("status lock");
            for action in report.actions.iter().filter(|a| {
                matches!(
                    a.outcome,
                    Outcome::Created | Outcome::Updated | Outcome::Deleted | Outcome::Replaced
                )
            }) {
                status.drift.remove(&action.project);
            }
            self.shared.metrics.drifted(status.drift.len());
        }
        let failed_itself = report.count(Outcome::Failed) > 0
            || report.count(Outcome::Unknown) > 0
            || report.count(Outcome::Skipped) > 0
            || !report.errors.is_empty()
            || failed_to_plan;
        record.result = if report.interrupted && !failed_itself {
            // Stopped, not failed: what was not started is reported so, without backoff.
            RunResult::Interrupted
        } else if report.failed() || failed_to_plan {
            RunResult::Failed
        } else if blocked > 0 {
            RunResult::Blocked
        } else {
            RunResult::Ok
        };
        if record.error.is_none()
            && let Some(failed) = report.actions.iter().find(|a| a.outcome == Outcome::Failed)
        {
            record.error = Some(format!(
                "{}: {}",
                failed.project,
                failed.message.as_deref().unwrap_or("failed")
            ));
        }
        if report.failed() || blocked > 0 || !plan.held.is_empty() {
            return;
        }
        // A clean run: the drift is gone.
        self.shared.metrics.drifted(0);
        self.shared
            .status
            .lock()
            .expect("status lock")
            .drift
            .clear();
    }

    /// The projects this run leaves alone, with why: those backing off after failures, and
    /// those another writer keeps changing ([`writers`]).
    fn held(&self, now: Instant) -> BTreeMap<ProjectId, String> {
        let backing_off = self
            .backoff
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(project, b)| {
                let wait = b.until.saturating_duration_since(now).as_secs();
                let why = format!(
                    "backing off after {} failure(s); next attempt in {wait}s",
                    b.failures
                );
                (project.clone(), why)
            });
        let contested = self
            .writers
            .contested()
            .iter()
            .map(|(project, why)| (project.clone(), why.clone()));
        backing_off.chain(contested).collect()
    }

    /// Records the standing blocks of this run: in `/status`, in `bbsync_blocked_projects`, and
    /// at WARN for each block that is new or changed (not on every run).
    fn note_blocks(&mut self, blocked: BTreeMap<ProjectId, String>) {
        let mut status = self.shared.status.lock().expect("status lock");
        for (project, reason) in &blocked {
            if status.blocked.get(project) != Some(reason) {
                tracing::warn!(%project, reason = %reason, "blocked: bbsync will not fix this project's drift until the block is lifted");
            }
        }
        self.shared.metrics.blocked_projects(blocked.len());
        status.blocked = blocked;
    }

    /// Per-project backoff: failures double the delay before the next attempt, success clears it.
    fn note_outcome(&mut self, project: &ProjectId, outcome: Outcome) {
        match outcome {
            Outcome::Failed | Outcome::Skipped => {
                let failures = self.backoff.get(project).map_or(0, |b| b.failures) + 1;
                let delay = crate::model::backoff::exponential(
                    self.options.backoff,
                    failures - 1,
                    self.options.max_backoff,
                );
                tracing::warn!(%project, failures, retry_in_s = delay.as_secs_f64(), "backing off");
                self.backoff.insert(
                    project.clone(),
                    Backoff {
                        failures,
                        until: Instant::now() + delay,
                    },
                );
            }
            _ => {
                self.backoff.remove(project);
            }
        }
    }
}

/// A run's commit status: its state, and one line on what it did ("2 updated, 1 blocked").
fn status_of(record: &RunRecord, in_force: Option<&str>) -> (crate::live::CommitState, String) {
    use crate::live::CommitState;
    let state = match record.result {
        RunResult::Ok | RunResult::InSync | RunResult::Drift => CommitState::Successful,
        RunResult::Failed
        | RunResult::Blocked
        | RunResult::InvalidManifest
        | RunResult::Interrupted
        | RunResult::Superseded => CommitState::Failed,
    };
    if record.result == RunResult::InvalidManifest {
        let kept = in_force.map_or_else(
            || "nothing is in force".to_owned(),
            |c| format!("{} stays in force", &c[..c.len().min(12)]),
        );
        let why = record.error.as_deref().unwrap_or("see the daemon's log");
        return (
            state,
            format!("invalid manifest, not applied ({kept}): {why}"),
        );
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for action in &record.actions {
        *counts.entry(action.outcome.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = counts
        .iter()
        .map(|(outcome, n)| format!("{n} {}", outcome.replace('_', " ")))
        .collect();
    if parts.is_empty() {
        parts.push(match record.result {
            RunResult::Ok | RunResult::InSync => "in sync".to_owned(),
            other => other.as_str().replace('_', " "),
        });
    }
    let mut line = parts.join(", ");
    if matches!(
        record.result,
        RunResult::Interrupted | RunResult::Superseded
    ) {
        line = format!("{}: {line}", record.result.as_str());
    } else if let Some(error) = &record.error
        && state == CommitState::Failed
    {
        line = format!("{line}: {error}");
    }
    (state, line)
}

/// What a run records as it goes (the drift once planned, a log line per action), and the
/// last look at the manifest before anything is written.
struct Recorder<'a> {
    shared: &'a Shared,
    /// Where writes are noted to see another writer undo them; `None` in `--plan-only`.
    writers: Option<&'a mut Writers>,
    /// The run, and what started it, for the audit trail.
    run: u64,
    triggers: Vec<&'static str>,
    /// The plan's writes, for the audit trail.
    planned: Vec<Action>,
    files: &'a [PathBuf],
    env: &'a crate::model::Env,
    /// What the loader saw of the manifest that was planned.
    observed: &'a str,
    settle: Duration,
    /// Projects the manifest newly dropped, not yet confirmed.
    dropped: &'a [ProjectId],
    stop: &'a CancellationToken,
    /// The manifest on disk changed after planning: nothing may be written.
    changed: bool,
    /// The dropped projects were confirmed from disk after a hold.
    confirmed: bool,
}

impl Hooks for Recorder<'_> {
    /// Writes only if the manifest on disk is still the one planned; a plan that deletes
    /// because the manifest newly dropped projects waits one more settle window first.
    fn approve(&mut self, plan: &Plan) -> impl Future<Output = Approval> + Send {
        let deletes = plan.deletions().count();
        async move {
            let hold = deletes > 0 && !self.dropped.is_empty();
            if hold {
                let dropped: Vec<&str> = self.dropped.iter().map(ProjectId::as_str).collect();
                tracing::warn!(
                    dropped = %dropped.join(","),
                    deletes,
                    hold_s = self.settle.as_secs_f64(),
                    "the manifest newly drops projects: holding the deletes, then confirming the manifest from disk"
                );
                tokio::select! {
                    () = tokio::time::sleep(self.settle) => {}
                    () = self.stop.cancelled() => return Approval::No,
                }
            }
            let now = crate::reconcile::load::load_with_sources(self.files, self.env);
            if settle::observation(&now) != self.observed {
                tracing::warn!(
                    "the manifest changed on disk after it was planned; nothing is written, the new one is planned next"
                );
                self.changed = true;
                return Approval::No;
            }
            self.confirmed = hold;
            Approval::Yes
        }
    }

    fn planned(&mut self, plan: &Plan) {
        let drift = drift(plan);
        self.shared.metrics.drifted(drift.len());
        self.planned = plan
            .actions
            .iter()
            .filter(|a| a.action.writes())
            .cloned()
            .collect();
        let mut status = self.shared.status.lock().expect("status lock");
        status.drift = drift;
        if let Some(writers) = self.writers.as_deref_mut() {
            for (project, why) in writers.observe(plan, Instant::now()) {
                tracing::warn!(%project, reason = %why, "another writer is changing this project; bbsync stops writing it");
                self.shared.metrics.writer_conflict();
            }
            status.contested = writers.contested().clone();
            self.shared
                .metrics
                .contested_projects(status.contested.len());
        }
    }

    fn done(&self, report: &apply::ActionReport) {
        if report.action != ActionKind::Noop {
            tracing::info!(
                project = %report.project,
                action = report.action.as_str(),
                outcome = report.outcome.as_str(),
                message = report.message.as_deref().unwrap_or(""),
                "action"
            );
        }
        // The audit trail: what the write changed, as it happens.
        let at = crate::wire::time::rfc3339(SystemTime::now());
        if let Some(change) = audit::planned(&self.planned, report)
            .and_then(|action| audit::change(action, report, self.run, &self.triggers, at))
        {
            audit::log(&change);
            self.shared
                .status
                .lock()
                .expect("status lock")
                .change(change);
        }
    }
}

/// The projects the plan would change or refuses to, held-back ones included.
fn drift(plan: &Plan) -> BTreeMap<ProjectId, ActionKind> {
    plan.actions
        .iter()
        .filter(|a| a.action.writes() || a.action == ActionKind::Blocked)
        .map(|a| (a.project.clone(), a.action))
        .chain(plan.held.iter().map(|h| (h.project.clone(), h.action)))
        .collect()
}

fn recorded(plan: &Plan, outcome: Option<&str>) -> Vec<RecordedAction> {
    plan.actions
        .iter()
        .filter(|a| a.action != ActionKind::Noop)
        .map(|a| RecordedAction {
            project: a.project.clone(),
            action: a.action,
            outcome: outcome.unwrap_or("planned").to_owned(),
            message: a.reason.clone(),
        })
        .collect()
}

fn summarize(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    match errors.as_slice() {
        [] => "the manifest is invalid".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// SIGHUP starts a run.
async fn hangups(shared: Arc<Shared>, stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                received = hangup.recv() => {
                    if received.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: resyncing");
                    shared.triggers.fire(Trigger::Signal);
                }
                () = stop.cancelled() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (shared, stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{Client, ClientConfig};
    use crate::model::Env;

    fn daemon() -> Daemon {
        let config = ClientConfig::new(
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/",
            crate::model::secret::Secret::new("unused"),
        );
        let reconciler = Reconciler::new(Client::new(config).unwrap(), Env::new::<&str, &str>([]));
        Daemon::new(WatchOptions::new(vec![PathBuf::from("m.yaml")]), reconciler)
    }

    fn held_for(daemon: &Daemon, project: &ProjectId) -> Option<String> {
        daemon.held(Instant::now()).remove(project)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_project_backs_off_on_the_tokio_clock_doubling_per_failure() {
        let mut daemon = daemon();
        let project: ProjectId = "abcdefgh1234k".parse().unwrap();
        daemon.note_outcome(&project, Outcome::Failed);
        let why = held_for(&daemon, &project).expect("held after a failure");
        assert!(why.contains("1 failure(s); next attempt in 30s"), "{why}");
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(held_for(&daemon, &project).is_some(), "still backing off");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            held_for(&daemon, &project).is_none(),
            "tried again after 30 s"
        );
        daemon.note_outcome(&project, Outcome::Skipped);
        let why = held_for(&daemon, &project).expect("held after a second failure");
        assert!(why.contains("2 failure(s); next attempt in 60s"), "{why}");
        tokio::time::advance(Duration::from_secs(61)).await;
        // Success clears it at once; "not started" (SIGTERM) is no failure.
        daemon.note_outcome(&project, Outcome::Updated);
        daemon.note_outcome(&project, Outcome::NotStarted);
        assert!(daemon.backoff.is_empty());
        for _ in 0..20 {
            daemon.note_outcome(&project, Outcome::Failed);
        }
        let why = held_for(&daemon, &project).unwrap();
        assert!(why.contains("next attempt in 3600s"), "capped: {why}");
    }
}
