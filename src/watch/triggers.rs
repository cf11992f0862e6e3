//! What starts a run, and how triggers are coalesced: runs never overlap, and any number of
//! triggers during a run cause exactly one more run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The daemon started.
    Startup,
    /// A manifest file changed.
    File,
    /// The periodic resync.
    Interval,
    /// SIGHUP.
    Signal,
}

impl Trigger {
    /// The trigger's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::File => "file",
            Trigger::Interval => "interval",
            Trigger::Signal => "signal",
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
    pub fn fire(&self, trigger: Trigger) {
        self.pending.lock().expect("trigger lock").insert(trigger);
        self.notify.notify_one();
    }

    /// Waits for triggers and takes every pending one.
    pub async fn next(&self) -> BTreeSet<Trigger> {
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
}

/// Fires [`Trigger::Interval`] every `interval`, give or take 10% (jitter spreads the load of
/// many daemons), until `stop`.
pub async fn every(interval: Duration, triggers: &Triggers, stop: &CancellationToken) {
    loop {
        let wait = interval.mul_f64(0.9 + 0.2 * fastrand::f64());
        tokio::select! {
            () = tokio::time::sleep(wait) => triggers.fire(Trigger::Interval),
            () = stop.cancelled() => return,
        }
    }
}

/// Fires [`Trigger::File`] once a burst of file events has been quiet for `quiet`. `events`
/// carries the number of events in each batch the watcher reports; `on_events` counts them.
pub async fn debounce(
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
    /// The watched directory.
    dir: PathBuf,
    /// A single file in it, or every `*.yaml`/`*.yml` below it.
    file: Option<PathBuf>,
}

impl Target {
    fn matches(&self, path: &Path) -> bool {
        match &self.file {
            Some(file) => path == file,
            None => {
                path.starts_with(&self.dir)
                    && matches!(
                        path.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml")
                    )
            }
        }
    }
}

/// Watches the manifest files and directories. Editors save by writing a temporary file and
/// renaming it over the manifest, so a file's directory is watched and events are filtered by
/// path. Each batch of relevant events is sent as its size. Dropping the result stops watching.
pub fn watch_files(
    paths: &[PathBuf],
    events: mpsc::UnboundedSender<usize>,
) -> notify::Result<impl Drop + use<>> {
    let mut targets = Vec::new();
    for path in paths {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        if absolute.is_dir() {
            let dir = absolute.canonicalize().unwrap_or(absolute);
            targets.push(Target { dir, file: None });
        } else {
            let parent = absolute
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let dir = parent.canonicalize().unwrap_or(parent);
            let name = absolute.file_name().map(PathBuf::from).unwrap_or_default();
            targets.push(Target {
                file: Some(dir.join(name)),
                dir,
            });
        }
    }
    let filter = targets.clone();
    let mut debouncer = new_debouncer(
        Duration::from_millis(100),
        None,
        move |result: DebounceEventResult| {
            let Ok(batch) = result else { return };
            let relevant = batch
                .iter()
                .filter(|event| !event.kind.is_access())
                .filter(|event| {
                    event
                        .paths
                        .iter()
                        .any(|p| filter.iter().any(|t| t.matches(p)))
                })
                .count();
            if relevant > 0 {
                let _ = events.send(relevant);
            }
        },
    )?;
    for target in &targets {
        let mode = if target.file.is_some() {
            RecursiveMode::NonRecursive
        } else {
            RecursiveMode::Recursive
        };
        debouncer.watch(&target.dir, mode)?;
    }
    Ok(debouncer)
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

    #[tokio::test(start_paused = true)]
    async fn intervals_are_jittered_within_ten_percent() {
        let triggers = Arc::new(Triggers::default());
        let stop = CancellationToken::new();
        let task = {
            let (triggers, stop) = (Arc::clone(&triggers), stop.clone());
            tokio::spawn(async move { every(Duration::from_secs(300), &triggers, &stop).await })
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
