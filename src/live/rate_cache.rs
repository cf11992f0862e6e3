//! The rate limits measured by earlier processes, per host, in a small file (issue 17): a new
//! process that knows a host's limit paces just under it from its first request, instead of
//! spending two `Retry-After` pauses to measure it again.
//!
//! The file, `rates.json` in the cache directory (`BBSYNC_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/bbsync`, else `$HOME/.cache/bbsync`: the XDG Base Directory
//! specification's cache home), holds host names (`host:port`) and numbers only: the limit
//! (requests per second), the burst, and when they were measured (Unix seconds). Never a
//! token, a URL path or a project. An entry older than [`MAX_AGE`] is ignored and dropped.
//! It is written atomically (a temporary file renamed over it) with mode 0600 in a directory
//! of mode 0700; a file that cannot be read or parsed is ignored (a cache, not a setting).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::pace::Measured;

/// How long a measured limit is trusted: 24 hours (inferred: long enough that the daily CI
/// plans of an organization start warm, short enough that a changed limit is found again
/// without a 429 telling).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The file's name in the cache directory.
pub(crate) const FILE_NAME: &str = "rates.json";

/// The format written; another one is ignored.
const FORMAT: u32 = 1;

/// The cache file of one process.
#[derive(Debug, Clone)]
pub(crate) struct RateCache {
    dir: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    format: u32,
    hosts: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Entry {
    /// Requests per second.
    rate: f64,
    /// Requests.
    burst: f64,
    /// Unix seconds.
    measured_at: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl RateCache {
    /// The cache in `dir` (created when first written).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The limits measured less than [`MAX_AGE`] ago, by host; nothing when there is no file
    /// or it cannot be used.
    pub(crate) fn load(&self) -> BTreeMap<String, Measured> {
        self.load_at(unix_now())
    }

    fn load_at(&self, now: u64) -> BTreeMap<String, Measured> {
        read(&self.path())
            .hosts
            .into_iter()
            .filter(|(_, entry)| fresh(entry, now))
            .map(|(host, entry)| {
                (
                    host,
                    Measured {
                        rate: entry.rate,
                        burst: entry.burst,
                    },
                )
            })
            .collect()
    }

    /// Records `measured` for `host`, keeping the other hosts' fresh entries.
    pub(crate) fn record(&self, host: &str, measured: Measured) -> std::io::Result<()> {
        self.record_at(host, measured, unix_now())
    }

    fn record_at(&self, host: &str, measured: Measured, now: u64) -> std::io::Result<()> {
        if !measured.is_sane() {
            return Ok(());
        }
        let mut file = read(&self.path());
        file.format = FORMAT;
        file.hosts.retain(|_, entry| fresh(entry, now));
        file.hosts.insert(
            host.to_owned(),
            Entry {
                rate: measured.rate,
                burst: measured.burst,
                measured_at: now,
            },
        );
        write(&self.dir, &file)
    }
}

fn fresh(entry: &Entry, now: u64) -> bool {
    Measured {
        rate: entry.rate,
        burst: entry.burst,
    }
    .is_sane()
        && entry.measured_at <= now.saturating_add(60)
        && now.saturating_sub(entry.measured_at) < MAX_AGE.as_secs()
}

fn read(path: &Path) -> File {
    let Ok(bytes) = std::fs::read(path) else {
        return File::default();
    };
    match serde_json::from_slice::<File>(&bytes) {
        Ok(file) if file.format == FORMAT => file,
        _ => {
            tracing::debug!(path = %path.display(), "ignoring a rate cache that cannot be read");
            File::default()
        }
    }
}

fn write(dir: &Path, file: &File) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    // One temporary file per process, so two processes writing at once do not mix.
    let temp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options.open(&temp).and_then(|mut out| {
        out.write_all(&serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?)?;
        std::fs::rename(&temp, dir.join(FILE_NAME))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn fifty() -> Measured {
        Measured {
            rate: 50.0,
            burst: 10.0,
        }
    }

    #[test]
    fn a_recorded_rate_is_read_back_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RateCache::new(dir.path().join("bbsync"));
        assert!(cache.load_at(NOW).is_empty());
        cache.record_at("api.example:443", fifty(), NOW).unwrap();
        let loaded = cache.load_at(NOW + 3600);
        assert_eq!(loaded.get("api.example:443"), Some(&fifty()));
        assert!(
            !cache
                .load_at(NOW + MAX_AGE.as_secs())
                .contains_key("api.example:443")
        );
    }

    #[test]
    fn recording_one_host_keeps_the_others_and_drops_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RateCache::new(dir.path().to_owned());
        cache.record_at("old.example:443", fifty(), NOW).unwrap();
        cache
            .record_at("a.example:443", fifty(), NOW + MAX_AGE.as_secs() - 10)
            .unwrap();
        cache
            .record_at("b.example:443", fifty(), NOW + MAX_AGE.as_secs())
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("old.example"), "{text}");
        let loaded = cache.load_at(NOW + MAX_AGE.as_secs());
        assert_eq!(
            loaded.keys().collect::<Vec<_>>(),
            ["a.example:443", "b.example:443"]
        );
    }

    #[test]
    fn the_file_holds_host_names_and_numbers_only_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RateCache::new(dir.path().join("nested").join("bbsync"));
        cache.record_at("api.example:443", fifty(), NOW).unwrap();
        let path = dir.path().join("nested/bbsync").join(FILE_NAME);
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            file,
            serde_json::json!({"format": 1, "hosts": {"api.example:443": {"rate": 50.0, "burst": 10.0, "measured_at": NOW}}})
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_damaged_or_hostile_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RateCache::new(dir.path().to_owned());
        let path = dir.path().join(FILE_NAME);
        for text in [
            "not json",
            r#"{"format": 2, "hosts": {"a:1": {"rate": 50, "burst": 10, "measured_at": 1800000000}}}"#,
            r#"{"format": 1, "hosts": {"a:1": {"rate": -5, "burst": 10, "measured_at": 1800000000}}}"#,
            r#"{"format": 1, "hosts": {"a:1": {"rate": 50, "burst": 0, "measured_at": 1800000000}}}"#,
            r#"{"format": 1, "hosts": {"a:1": {"rate": 1e300, "burst": 10, "measured_at": 1800000000}}}"#,
            // Measured in the future: a clock set back, or a forged file.
            r#"{"format": 1, "hosts": {"a:1": {"rate": 50, "burst": 10, "measured_at": 1900000000}}}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(cache.load_at(NOW).is_empty(), "{text}");
        }
        // Writing over a damaged file replaces it.
        std::fs::write(&path, "not json").unwrap();
        cache.record_at("a:1", fifty(), NOW).unwrap();
        assert_eq!(cache.load_at(NOW).len(), 1);
    }
}
