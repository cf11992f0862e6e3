//! Acting only on a manifest that has stopped changing.
//!
//! An editor's or `cp`'s non-atomic write over a slow disk can leave a manifest half written for
//! seconds; a plan made on the first half prunes what the second half still lists. So a file
//! change is acted on only once what the loader sees has been the same for a whole settle
//! window; the manifest is observed again between planning and writing, and a change there
//! restarts the run; and a change that newly drops projects is held for one more window, then
//! confirmed from disk, before anything is written.

use std::future::Future;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::manifest::diagnostic::Diagnostic;
use crate::reconcile::load::Loaded;

/// What the loader saw of the manifest files: a digest of every file's text when they are
/// valid, else of the diagnostics (which name the files and places that are wrong). Two equal
/// observations mean nothing changed that the loader could see.
pub(crate) fn observation(loaded: &Result<Loaded, Vec<Diagnostic>>) -> String {
    let mut hasher = Sha256::new();
    match loaded {
        Ok(loaded) => {
            hasher.update(b"valid");
            for source in &loaded.sources {
                hasher.update([0]);
                hasher.update(source.name().as_bytes());
                hasher.update([0]);
                hasher.update(source.text().as_bytes());
            }
        }
        Err(diagnostics) => {
            hasher.update(b"invalid");
            for diagnostic in diagnostics {
                hasher.update([0]);
                hasher.update(diagnostic.to_string().as_bytes());
            }
        }
    }
    format!("{:x}", hasher.finalize())
}

/// Observes with `observe` until two observations a `window` apart agree, and returns the last
/// (the loader's result). `on_wait` is told each time the content was still changing. `None`
/// when `stop` is cancelled first.
pub(crate) async fn settled<T, F, Fut>(
    mut observe: F,
    window: Duration,
    stop: &CancellationToken,
    on_wait: &mut (dyn FnMut(u32) + Send),
) -> Option<(String, T)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (String, T)>,
{
    let (mut seen, _) = observe().await;
    let mut waits = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(window) => {}
            () = stop.cancelled() => return None,
        }
        let (now, value) = observe().await;
        if now == seen {
            return Some((now, value));
        }
        waits += 1;
        on_wait(waits);
        seen = now;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Observations that follow `script`, then repeat its last one; the instant of each read.
    fn scripted(script: &[&str]) -> (Mutex<Vec<String>>, Mutex<Vec<tokio::time::Instant>>) {
        (
            Mutex::new(script.iter().rev().map(|s| (*s).to_owned()).collect()),
            Mutex::new(Vec::new()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_manifest_still_being_written_is_waited_for() {
        let (script, reads) = scripted(&["half", "half+", "full", "full"]);
        let start = tokio::time::Instant::now();
        let mut waits = Vec::new();
        let observe = || {
            let mut script = script.lock().unwrap();
            let value = if script.len() > 1 {
                script.pop().unwrap()
            } else {
                script[0].clone()
            };
            reads.lock().unwrap().push(tokio::time::Instant::now());
            std::future::ready((value.clone(), value))
        };
        let stop = CancellationToken::new();
        let (digest, value) = settled(observe, Duration::from_secs(5), &stop, &mut |n| {
            waits.push(n);
        })
        .await
        .expect("not stopped");
        assert_eq!((digest.as_str(), value.as_str()), ("full", "full"));
        assert_eq!(waits, [1, 2], "two windows saw a change");
        let offsets: Vec<u64> = reads
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.duration_since(start).as_secs())
            .collect();
        assert_eq!(offsets, [0, 5, 10, 15], "one read per window");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unchanged_manifest_takes_one_window() {
        let start = tokio::time::Instant::now();
        let stop = CancellationToken::new();
        let observe = || std::future::ready(("same".to_owned(), ()));
        let settled = settled(observe, Duration::from_secs(5), &stop, &mut |_| {}).await;
        assert!(settled.is_some());
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_ends_the_wait() {
        let stop = CancellationToken::new();
        stop.cancel();
        let observe = || std::future::ready(("a".to_owned(), ()));
        assert!(
            settled(observe, Duration::from_secs(5), &stop, &mut |_| {})
                .await
                .is_none()
        );
    }

    #[test]
    fn observations_change_with_the_text_and_the_errors() {
        let valid = |text: &str| {
            let file = crate::manifest::parse("m.yaml", text.as_bytes()).unwrap();
            let built = crate::model::build(std::slice::from_ref(&file), &Default::default());
            Ok(Loaded {
                state: built.state.unwrap(),
                warnings: Vec::new(),
                sources: vec![file.source.clone()],
            })
        };
        let a = "version: 1\nprojects:\n  abc:\n    absent: true\n";
        let b = "version: 1\nprojects:\n  abd:\n    absent: true\n";
        assert_eq!(observation(&valid(a)), observation(&valid(a)));
        assert_ne!(observation(&valid(a)), observation(&valid(b)));
        let broken = |line: usize| {
            Err(vec![Diagnostic::error(
                None,
                format!("broken at line {line}"),
            )])
        };
        assert_ne!(observation(&broken(3)), observation(&broken(4)));
        assert_ne!(observation(&valid(a)), observation(&broken(3)));
    }
}
