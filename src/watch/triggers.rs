//! What starts a run, and how triggers are coalesced: runs never overlap, and any number of
//! triggers during a run cause exactly one more run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use notify::RecommendedWatcher;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Trigger {
    /// The daemon started.
    Startup,
    /// A manifest file changed.
    File,
    /// The periodic resync.
    Interval,
    /// SIGHUP.
    Signal,
    /// Time to fetch `--git-url` (`--git-interval`): a run follows only when there is a new
    /// commit.
    Poll,
    /// A signed Bitbucket push webhook delivery ([`super::webhook`]).
    Webhook,
}

impl Trigger {
    /// The trigger's name in metrics and logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::File => "file",
            Trigger::Interval => "interval",
            Trigger::Signal => "signal",
            Trigger::Poll => "git_poll",
            Trigger::Webhook => "webhook",
        }
    }
}

/// Pending triggers. [`Triggers::fire`] never blocks; [`Triggers::next`] waits for at least one
/// and takes all that are pending, so triggers that arrive during a run make one more run.
#[derive(Debug, Default)]
pub struct Triggers {
    pending: Mutex<BTreeSet<Trigger>>,
    notify: Notify,
}

impl Triggers {
    /// Records a trigger.
    pub(crate) fn fire(&self, trigger: Trigger) {
        self.pending.lock().expect("trigger lock").insert(trigger);
        self.notify.notify_one();
    }

    /// Waits for triggers and takes every pending one.
    pub(crate) async fn next(&self) -> BTreeSet<Trigger> {
        loop {
            {
                let mut pending = self.pending.lock().expect("trigger lock");
                if !pending.is_empty() {
                    return std::mem::take(&mut *pending);
                }
            }
            self.notify.notified().await;
        }
    }

    /// Takes every pending trigger without waiting (none: empty), for tests that check what a
    /// request fired once its answer is in.
    #[cfg(test)]
    pub(crate) fn take_pending(&self) -> BTreeSet<Trigger> {
        std::mem::take(&mut *self.pending.lock().expect("trigger lock"))
    }
}

/// Fires `trigger` ([`Trigger::Interval`], [`Trigger::Poll`]) every `interval`, give or take 10% (jitter spreads the load of
/// many daemons), until `stop`.
pub(crate) async fn every(
    interval: Duration,
    trigger: Trigger,
    triggers: &Triggers,
    stop: &CancellationToken,
) {
    loop {
        let wait = interval.mul_f64(0.9 + 0.2 * fastrand::f64());
        tokio::select! {
            () = tokio::time::sleep(wait) => triggers.fire(trigger),
            () = stop.cancelled() => return,
        }
    }
}

/// Fires [`Trigger::File`] once a burst of file events has been quiet for `quiet`. `events`
/// carries the number of events in each batch the watcher reports; `on_events` counts them.
pub(crate) async fn debounce(
    mut events: mpsc::UnboundedReceiver<usize>,
    quiet: Duration,
    triggers: &Triggers,
    stop: &CancellationToken,
    on_events: &(dyn Fn(usize) + Sync),
) {
    loop {
        let first = tokio::select! {
            received = events.recv() => received,
            () = stop.cancelled() => return,
        };
        let Some(count) = first else { return };
        on_events(count);
        // Wait for the burst to end: no event for `quiet`.
        loop {
            tokio::select! {
                received = events.recv() => match received {
                    Some(count) => on_events(count),
                    None => break,
                },
                () = tokio::time::sleep(quiet) => break,
                () = stop.cancelled() => return,
            }
        }
        triggers.fire(Trigger::File);
    }
}

/// What to watch for one `-f` argument.
#[derive(Debug, Clone)]
struct Target {
    /// The directory to watch, as given (made absolute).
    dir: PathBuf,
    /// A single file in it (every `*.yaml`/`*.yml` below `dir` otherwise).
    file: Option<PathBuf>,
    /// The same paths with symlinks resolved, as some platforms report events.
    canonical: Option<(PathBuf, Option<PathBuf>)>,
}

impl Target {
    fn new(path: &Path) -> Self {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let (dir, file) = if absolute.is_dir() {
            (absolute, None)
        } else {
            let dir = absolute
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            (dir, Some(absolute))
        };
        let canonical = dir.canonicalize().ok().map(|c| {
            let file = file
                .as_ref()
                .and_then(|f| f.file_name())
                .map(|name| c.join(name));
            (c, file)
        });
        Self {
            dir,
            file,
            canonical,
        }
    }

    fn matches(&self, path: &Path) -> bool {
        let one = |dir: &Path, file: Option<&PathBuf>| match file {
            Some(file) => path == file,
            None => {
                path.starts_with(dir)
                    && matches!(
                        path.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml")
                    )
            }
        };
        one(&self.dir, self.file.as_ref())
            || self
                .canonical
                .as_ref()
                .is_some_and(|(dir, file)| one(dir, file.as_ref()))
    }
}

/// The symlinks on the way to `path` (git-sync publishes a checkout by swapping a symlink).
fn symlinks_above(path: &Path) -> Vec<PathBuf> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .filter(|a| {
            a.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        })
        .map(Path::to_path_buf)
        .collect()
}

/// Sends the number of events in `result` that touch a path `relevant` accepts (reads aside).
fn forward(
    result: DebounceEventResult,
    events: &mpsc::UnboundedSender<usize>,
    relevant: impl Fn(&Path) -> bool,
) {
    let Ok(batch) = result else { return };
    let count = batch
        .iter()
        .filter(|event| !event.kind.is_access())
        .filter(|event| event.paths.iter().any(|p| relevant(p)))
        .count();
    if count > 0 {
        let _ = events.send(count);
    }
}

/// The watchers; dropping this stops watching.
pub(crate) struct FileWatch {
    _files: Debouncer<RecommendedWatcher, RecommendedCache>,
    _links: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    /// The directories watched, and which directory each was when the watch began.
    dirs: Vec<(PathBuf, Option<DirId>)>,
    /// A watched directory was seen gone since.
    gone: bool,
}

/// What [`FileWatch::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Watched {
    /// The directories watched are the ones the watch began on.
    Same,
    /// This one was deleted (first seen so now).
    Gone(PathBuf),
    /// A directory is not the one the watch began on (deleted and made again, or a symlink on
    /// the way swapped): the watch hears nothing of it any more and must begin again.
    Replaced,
}

/// What identifies a directory: one deleted and made again is another, with another inode (or,
/// where the inode is reused, another birth time).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DirId {
    device: u64,
    inode: u64,
    born: Option<std::time::SystemTime>,
}

fn dir_id(path: &Path) -> Option<DirId> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (device, inode) = {
        use std::os::unix::fs::MetadataExt as _;
        (metadata.dev(), metadata.ino())
    };
    #[cfg(not(unix))]
    let (device, inode) = (0, 0);
    Some(DirId {
        device,
        inode,
        born: metadata.created().ok(),
    })
}

impl FileWatch {
    /// Whether the directories watched are still the ones the watch began on. The daemon
    /// calls it once a second; a deletion seen gone counts as a replacement once the directory
    /// is back, even were it to get the same inode.
    pub(crate) fn check(&mut self) -> Watched {
        for (dir, began) in &self.dirs {
            match dir_id(dir) {
                None if self.gone => return Watched::Same,
                None => {
                    self.gone = true;
                    return Watched::Gone(dir.clone());
                }
                Some(now) if Some(&now) != began.as_ref() => return Watched::Replaced,
                Some(_) => {}
            }
        }
        if self.gone {
            Watched::Replaced
        } else {
            Watched::Same
        }
    }
}

/// Watches the manifest files and directories. Editors save by writing a temporary file and
/// renaming it over the manifest, so a file's directory is watched and events are filtered by
/// path. git-sync publishes a checkout by swapping a symlink and deleting the old worktree; a
/// debouncer watching that worktree takes it as removed and drops the swap, so the parents of
/// the symlinks on the way are watched by a second debouncer, where a swap counts as a change.
/// Each batch of relevant events is sent as its size.
pub(crate) fn watch_files(
    paths: &[PathBuf],
    events: mpsc::UnboundedSender<usize>,
) -> notify::Result<FileWatch> {
    let targets: Vec<Target> = paths.iter().map(|p| Target::new(p)).collect();
    let links: Vec<PathBuf> = paths.iter().flat_map(|p| symlinks_above(p)).collect();
    let sender = events.clone();
    let filter = targets.clone();
    let mut files = new_debouncer(Duration::from_millis(100), None, move |result| {
        forward(result, &sender, |p| filter.iter().any(|t| t.matches(p)));
    })?;
    for target in &targets {
        let mode = if target.file.is_some() {
            RecursiveMode::NonRecursive
        } else {
            RecursiveMode::Recursive
        };
        files.watch(&target.dir, mode)?;
    }
    let links = if links.is_empty() {
        None
    } else {
        let filter = links.clone();
        let mut watcher = new_debouncer(Duration::from_millis(100), None, move |result| {
            forward(result, &events, |p| filter.iter().any(|l| l == p));
        })?;
        for link in &links {
            if let Some(parent) = link.parent() {
                watcher.watch(parent, RecursiveMode::NonRecursive)?;
            }
        }
        Some(watcher)
    };
    let dirs = targets
        .iter()
        .map(|t| (t.dir.clone(), dir_id(&t.dir)))
        .collect();
    Ok(FileWatch {
        _files: files,
        _links: links,
        dirs,
        gone: false,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn triggers_during_a_run_make_exactly_one_more_run() {
        let triggers = Triggers::default();
        triggers.fire(Trigger::Startup);
        assert_eq!(triggers.next().await, [Trigger::Startup].into());
        // While "running", many triggers arrive.
        for _ in 0..10 {
            triggers.fire(Trigger::File);
        }
        triggers.fire(Trigger::Interval);
        assert_eq!(
            triggers.next().await,
            [Trigger::File, Trigger::Interval].into()
        );
        let nothing = tokio::time::timeout(Duration::from_secs(3600), triggers.next()).await;
        assert!(nothing.is_err(), "no third run");
    }

    /// A burst of webhook deliveries while nothing has taken the triggers is one pending
    /// trigger: one fetch and one run (issue 20, "Triggers").
    #[tokio::test(start_paused = true)]
    async fn ten_webhook_deliveries_are_one_pending_trigger() {
        let triggers = Triggers::default();
        for _ in 0..10 {
            triggers.fire(Trigger::Webhook);
        }
        assert_eq!(triggers.next().await, [Trigger::Webhook].into());
        let nothing = tokio::time::timeout(Duration::from_secs(3600), triggers.next()).await;
        assert!(nothing.is_err(), "one run only");
        assert_eq!(Trigger::Webhook.as_str(), "webhook");
        assert_eq!(
            serde_json::to_value(Trigger::Webhook).unwrap(),
            serde_json::json!("webhook")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_fires_once() {
        let triggers = Arc::new(Triggers::default());
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let counted = Arc::new(AtomicUsize::new(0));
        let task = {
            let (triggers, stop, counted) =
                (Arc::clone(&triggers), stop.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                let count = |n: usize| {
                    counted.fetch_add(n, Ordering::Relaxed);
                };
                debounce(rx, Duration::from_millis(300), &triggers, &stop, &count).await;
            })
        };
        for _ in 0..50 {
            tx.send(1).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(triggers.next().await, [Trigger::File].into());
        assert!(
            tokio::time::timeout(Duration::from_secs(60), triggers.next())
                .await
                .is_err(),
            "one run only"
        );
        assert_eq!(counted.load(Ordering::Relaxed), 50);
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn a_directory_deleted_and_made_again_is_noticed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut watch = watch_files(std::slice::from_ref(&dir), tx).unwrap();
        assert_eq!(watch.check(), Watched::Same);
        std::fs::write(dir.join("a.yaml"), "x").unwrap();
        assert_eq!(
            watch.check(),
            Watched::Same,
            "a change inside is no replacement"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(watch.check(), Watched::Gone(dir.clone()));
        assert_eq!(watch.check(), Watched::Same, "gone is said once");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(watch.check(), Watched::Replaced);
        // Deleted and made again between two looks: another inode, or another birth time.
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut watch = watch_files(std::slice::from_ref(&dir), tx).unwrap();
        let keep = dir.with_file_name("old");
        std::fs::rename(&dir, &keep).unwrap();
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(watch.check(), Watched::Replaced);
    }

    #[tokio::test(start_paused = true)]
    async fn intervals_are_jittered_within_ten_percent() {
        let triggers = Arc::new(Triggers::default());
        let stop = CancellationToken::new();
        let task = {
            let (triggers, stop) = (Arc::clone(&triggers), stop.clone());
            tokio::spawn(async move {
                every(
                    Duration::from_secs(300),
                    Trigger::Interval,
                    &triggers,
                    &stop,
                )
                .await
            })
        };
        let start = tokio::time::Instant::now();
        for n in 1..=20u32 {
            triggers.next().await;
            let elapsed = start.elapsed().as_secs_f64();
            assert!(
                elapsed >= 270.0 * f64::from(n) && elapsed <= 330.0 * f64::from(n),
                "{elapsed}"
            );
        }
        stop.cancel();
        task.await.unwrap();
    }
}
