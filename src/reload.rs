//! Noticing that configuration files changed, for the files that are reloaded while the gateway
//! runs (the web configuration with its certificates, and the authorization file): each file's
//! modification time, size and inode, compared every quarter second.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::model::Timestamp;
use crate::telemetry::Telemetry;

/// How often the files are checked.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// A file's identity and version, as far as its metadata tells; `None` when it cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

impl Stamp {
    fn of(path: &Path) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp(
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))),
        )
    }
}

/// The files one configuration was loaded from, as they were then.
#[derive(Debug, Default)]
pub struct FileSet(Vec<(PathBuf, Stamp)>);

impl FileSet {
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> FileSet {
        FileSet(
            paths
                .into_iter()
                .map(|p| {
                    let stamp = Stamp::of(&p);
                    (p, stamp)
                })
                .collect(),
        )
    }

    /// Whether any of the files differs from when the set was made.
    pub fn changed(&self) -> bool {
        self.0.iter().any(|(path, old)| Stamp::of(path) != *old)
    }

    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.0.iter().map(|(p, _)| p)
    }
}

/// How a reloaded file reports its loads: a log line and three metric families.
#[derive(Clone, Copy, Debug)]
pub struct ReloadReport {
    /// What the file holds, for log lines ("web configuration").
    pub what: &'static str,
    pub reloads_total: &'static str,
    pub last_reload_successful: &'static str,
    pub last_reload_success_time: &'static str,
}

impl ReloadReport {
    /// A version was loaded and is in service (at start-up or by a reload).
    pub fn loaded(&self, telemetry: &Telemetry) {
        telemetry.set(self.last_reload_successful, &[], 1.0);
        telemetry.set(
            self.last_reload_success_time,
            &[],
            Timestamp::now().as_seconds_f64(),
        );
    }

    pub fn reloaded(&self, telemetry: &Telemetry, path: &Path) {
        tracing::info!(file = %path.display(), "{} reloaded", self.what);
        telemetry.increment(self.reloads_total, &[("result", "success")]);
        self.loaded(telemetry);
    }

    /// A changed version was refused; the last good one stays in service.
    pub fn refused(&self, telemetry: &Telemetry, path: &Path, err: &dyn Display) {
        tracing::error!(
            file = %path.display(),
            err = %err,
            "{} not reloaded; the last good version stays in use",
            self.what
        );
        telemetry.increment(self.reloads_total, &[("result", "failure")]);
        telemetry.set(self.last_reload_successful, &[], 0.0);
    }
}

/// Runs `check` every [`CHECK_INTERVAL`] on a blocking thread (loading reads files and may
/// hash passwords) until the task is dropped.
pub async fn poll(check: Arc<dyn Fn() + Send + Sync>) {
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let check = check.clone();
        let _ = tokio::task::spawn_blocking(move || check()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_writes_replacements_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yml");
        std::fs::write(&file, "one").unwrap();
        let set = FileSet::new([file.clone()]);
        assert!(!set.changed());
        std::fs::write(&file, "three").unwrap();
        assert!(set.changed());
        let set = FileSet::new([file.clone()]);
        let replacement = dir.path().join("b.yml");
        std::fs::write(&replacement, "three").unwrap();
        std::fs::rename(&replacement, &file).unwrap();
        assert!(set.changed(), "a rename over the file is a change");
        let set = FileSet::new([file.clone()]);
        std::fs::remove_file(&file).unwrap();
        assert!(set.changed());
    }
}
