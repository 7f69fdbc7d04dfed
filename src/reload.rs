//! Configuration files that are reloaded while the gateway runs (the web configuration with the
//! certificates it names, and the authorization file), through one helper: [`Reloadable`].
//!
//! Invariants:
//! - Every file a version was loaded from was read through [`FileReads`], which recorded its
//!   metadata (device, inode, size, modification and change times to the nanosecond) just
//!   before reading it, and a digest of what was read.
//! - Every access ([`Reloadable::current`]) compares those records with the files as they are
//!   now, one `stat` per file: whoever comes after a change (the next request, the next TLS
//!   handshake) is served by the new version, or by the last good one if the new one is
//!   refused. A caller that uses only what the loader's own file holds may look at that file
//!   alone ([`Reloadable::current_own`]). A file is parsed again only when it changed (its
//!   metadata, or for a file read moments after a change, its content; see below).
//! - One reload at a time, on a blocking thread (loading reads files and may hash passwords).
//!   Whoever finds a change while a reload runs waits for it, then looks again.
//! - A refused version is logged and counted once: the files it was read from are recorded as
//!   a good version's are, so the next attempt waits for the next change.
//!
//! Metadata alone misses a rewrite of the same size that lands in the same timestamp tick as
//! the version that was read (the "racy" case git knows from its index): file systems stamp
//! changes with a clock that ticks every few milliseconds, or every second or two on some.
//! A file whose change time is less than [`RACY_WINDOW`] older than the moment it was read is
//! therefore also compared by content (read and digested on each access) until the window has
//! passed; from then on any change moves its change time, and the metadata suffices. What
//! remains: on network file systems, the client's attribute cache and the server's clock
//! decide when a change shows in the metadata, so a change counts once it is visible there.
//!
//! The files are also looked at every [`CHECK_INTERVAL`] by [`Reloadable::watch`], so that a
//! change is loaded, logged and counted while no request comes, and usually before the next
//! one (which then does not wait for the load).

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::model::Timestamp;
use crate::telemetry::Telemetry;

/// How often [`Reloadable::watch`] looks at the files.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// How long after a change a file's metadata may still miss a further change of the same size:
/// the coarsest timestamp granularity of common local file systems (FAT's two seconds), which
/// also covers the kernel's coarse clock tick.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What the metadata of a file tells about its identity and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Meta {
    /// `None` when the file cannot be looked at (it is missing, or a directory on its path is
    /// not searchable): that is a state too, and leaving it is a change.
    fn of(path: &Path) -> Option<Meta> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Meta {
            device: m.dev(),
            inode: m.ino(),
            size: m.size(),
            modified: (m.mtime(), m.mtime_nsec()),
            changed: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// Whether a write at `at` or later might leave this metadata as it is: the change time is
    /// too recent for the file system's clock to have moved on for sure. A change time in the
    /// future (a clock set back) counts as recent.
    fn racy(&self, at: SystemTime) -> bool {
        let (seconds, nanos) = self.changed;
        let Some(changed) = u64::try_from(seconds)
            .ok()
            .zip(u32::try_from(nanos).ok())
            .and_then(|(s, n)| UNIX_EPOCH.checked_add(Duration::new(s, n)))
        else {
            return false;
        };
        at.duration_since(changed)
            .map_or(true, |age| age < RACY_WINDOW)
    }
}

type Digest = [u8; 32];

fn digest(content: &[u8]) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content).as_ref());
    out
}

/// One file as a version was read from it.
#[derive(Clone, Debug)]
struct Read {
    path: PathBuf,
    /// Taken just before the content was read.
    meta: Option<Meta>,
    /// Of the content as read; `None` when it could not be read.
    digest: Option<Digest>,
    /// Whether `meta` alone cannot tell a later change (see the module's documentation).
    racy: bool,
}

/// What looking at one file found.
enum Seen {
    Same,
    /// The same, and its metadata alone will tell any later change.
    Settled,
    Changed,
}

impl Read {
    /// `at`: a moment before the look began.
    fn look(&self, at: SystemTime) -> Seen {
        let meta = Meta::of(&self.path);
        if meta != self.meta {
            return Seen::Changed;
        }
        if !self.racy {
            return Seen::Same;
        }
        if std::fs::read(&self.path).ok().map(|c| digest(&c)) != self.digest {
            return Seen::Changed;
        }
        // The content is still what was read, and any write from `at` on moves the metadata.
        if meta.is_some_and(|m| m.racy(at)) {
            Seen::Same
        } else {
            Seen::Settled
        }
    }
}

/// What looking at the files of a version found.
enum Look {
    /// Nothing changed.
    Same,
    /// Nothing changed, and files that had to be compared by content no longer need to be:
    /// the records to keep instead.
    Settled(FileReads),
    Changed,
}

/// The files one version is read from: a loader reads every file through this, so that the
/// version can be compared with the files later.
#[derive(Clone, Debug, Default)]
pub struct FileReads(Vec<Read>);

impl FileReads {
    pub fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        let at = SystemTime::now();
        let meta = Meta::of(path);
        let content = std::fs::read(path);
        // A file read twice keeps its first record, the one that is older.
        if !self.0.iter().any(|r| r.path == path) {
            self.0.push(Read {
                path: path.to_path_buf(),
                meta,
                digest: content.as_ref().ok().map(|c| digest(c)),
                racy: meta.is_some_and(|m| m.racy(at)),
            });
        }
        content
    }

    pub fn read_to_string(&mut self, path: &Path) -> io::Result<String> {
        String::from_utf8(self.read(path)?).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    }

    fn look(&self) -> Look {
        self.look_at(SystemTime::now(), None)
    }

    /// `only`: look at this file alone.
    fn look_at(&self, at: SystemTime, only: Option<&Path>) -> Look {
        let mut settled = Vec::new();
        for (i, read) in self.0.iter().enumerate() {
            if only.is_some_and(|path| path != read.path) {
                continue;
            }
            match read.look(at) {
                Seen::Same => {}
                Seen::Settled => settled.push(i),
                Seen::Changed => return Look::Changed,
            }
        }
        if settled.is_empty() {
            return Look::Same;
        }
        let mut reads = self.clone();
        for i in settled {
            reads.0[i].racy = false;
        }
        Look::Settled(reads)
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
    fn loaded(&self, telemetry: &Telemetry) {
        telemetry.set(self.last_reload_successful, &[], 1.0);
        telemetry.set(
            self.last_reload_success_time,
            &[],
            Timestamp::now().as_seconds_f64(),
        );
    }

    fn reloaded(&self, telemetry: &Telemetry, path: &Path) {
        tracing::info!(file = %path.display(), "{} reloaded", self.what);
        telemetry.increment(self.reloads_total, &[("result", "success")]);
        self.loaded(telemetry);
    }

    /// A changed version was refused; the last good one stays in service.
    fn refused(&self, telemetry: &Telemetry, path: &Path, err: &dyn Display) {
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

/// A configuration file and how to load it.
pub trait Loader: Send + Sync + 'static {
    type Value: Send + Sync + 'static;
    type Error: Display + Send + 'static;

    /// How its loads are logged and counted.
    const REPORT: ReloadReport;

    /// The loader's own file: named in log lines, and the file [`Reloadable::current_own`]
    /// looks at (so `load` reads it through `files` by this very path).
    fn path(&self) -> &Path;

    /// Reads and checks one version, reading every file through `files`.
    fn load(&self, files: &mut FileReads) -> Result<Self::Value, Self::Error>;

    /// Refuses a new version that changes what only a restart may change.
    fn check_reload(&self, current: &Self::Value, new: &Self::Value) -> Result<(), Self::Error>;

    /// A version goes into service (at start-up or by a reload).
    fn in_service(&self, _value: &Self::Value, _telemetry: &Telemetry) {}
}

/// Which files an access looks at.
#[derive(Clone, Copy)]
enum Scope {
    All,
    /// The loader's own file.
    Own,
}

/// One version in service and the files it was read from (for a refused version: the files
/// that one was read from, so that it is retried only after they change).
struct Version<T> {
    value: Arc<T>,
    files: FileReads,
}

/// A configuration in service, reloaded when its files change; see the module's documentation.
pub struct Reloadable<L: Loader>(Arc<Inner<L>>);

impl<L: Loader> Clone for Reloadable<L> {
    fn clone(&self) -> Self {
        Reloadable(self.0.clone())
    }
}

struct Inner<L: Loader> {
    loader: L,
    version: ArcSwap<Version<L::Value>>,
    /// Held while the files are looked at and loaded by one caller, across its blocking task.
    reloading: Arc<tokio::sync::Mutex<()>>,
    telemetry: Arc<Telemetry>,
}

impl<L: Loader> Reloadable<L> {
    /// Loads the first version; an error refuses start-up.
    pub fn start(loader: L, telemetry: Arc<Telemetry>) -> Result<Self, L::Error> {
        let mut files = FileReads::default();
        let value = loader.load(&mut files)?;
        loader.in_service(&value, &telemetry);
        L::REPORT.loaded(&telemetry);
        Ok(Reloadable(Arc::new(Inner {
            loader,
            version: ArcSwap::from_pointee(Version {
                value: Arc::new(value),
                files,
            }),
            reloading: Arc::default(),
            telemetry,
        })))
    }

    /// The version in service as last loaded, without looking at the files: for callers that
    /// ran [`Reloadable::current`] for the same request before.
    pub fn loaded(&self) -> Arc<L::Value> {
        self.0.version.load().value.clone()
    }

    /// The version in service, after looking at its files (and loading them if they changed).
    pub async fn current(&self) -> Arc<L::Value> {
        self.current_after(Scope::All).await
    }

    /// The version in service, after looking at the loader's own file only: for callers that
    /// use only what that file itself holds, not what was read from the files it names (one
    /// `stat` instead of one per file). Whatever changed is loaded, as by
    /// [`Reloadable::current`], once the own file changed.
    pub async fn current_own(&self) -> Arc<L::Value> {
        self.current_after(Scope::Own).await
    }

    async fn current_after(&self, scope: Scope) -> Arc<L::Value> {
        if let Some(value) = self.0.unchanged(scope) {
            return value;
        }
        let lock = self.0.reloading.clone().lock_owned().await;
        // Whoever held the lock may have loaded the change already.
        if let Some(value) = self.0.unchanged(scope) {
            return value;
        }
        let inner = self.0.clone();
        // The lock goes with the task, so that a caller that stops waiting (its request was
        // dropped) does not let a second load start beside this one.
        let refreshed = tokio::task::spawn_blocking(move || {
            let _lock = lock;
            inner.refresh()
        })
        .await;
        refreshed.unwrap_or_else(|_| self.loaded())
    }

    /// Looks at the files every [`CHECK_INTERVAL`] until the task is dropped.
    pub async fn watch(self) {
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.current().await;
        }
    }
}

impl<L: Loader> Inner<L> {
    /// The version in service if none of the files in `scope` changed.
    fn unchanged(&self, scope: Scope) -> Option<Arc<L::Value>> {
        let version = self.version.load();
        let only = match scope {
            Scope::All => None,
            Scope::Own => Some(self.loader.path()),
        };
        matches!(version.files.look_at(SystemTime::now(), only), Look::Same)
            .then(|| version.value.clone())
    }

    /// Loads if a file changed, or keeps records that settled. Runs on a blocking thread with
    /// the `reloading` lock held.
    fn refresh(&self) -> Arc<L::Value> {
        let version = self.version.load_full();
        match version.files.look() {
            Look::Same => return version.value.clone(),
            Look::Settled(files) => {
                self.version.store(Arc::new(Version {
                    value: version.value.clone(),
                    files,
                }));
                return version.value.clone();
            }
            Look::Changed => {}
        }
        let mut files = FileReads::default();
        let loaded = self.loader.load(&mut files).and_then(|new| {
            self.loader.check_reload(&version.value, &new)?;
            Ok(new)
        });
        let path = self.loader.path();
        match loaded {
            Ok(new) => {
                self.loader.in_service(&new, &self.telemetry);
                let value = Arc::new(new);
                self.version.store(Arc::new(Version {
                    value: value.clone(),
                    files,
                }));
                L::REPORT.reloaded(&self.telemetry, path);
                value
            }
            Err(err) => {
                self.version.store(Arc::new(Version {
                    value: version.value.clone(),
                    files,
                }));
                L::REPORT.refused(&self.telemetry, path, &err);
                version.value.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(paths: &[&Path]) -> FileReads {
        let mut reads = FileReads::default();
        for path in paths {
            let _ = reads.read(path);
        }
        reads
    }

    fn changed(reads: &FileReads) -> bool {
        matches!(reads.look(), Look::Changed)
    }

    #[test]
    fn notices_writes_replacements_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yml");
        std::fs::write(&file, "one").unwrap();
        let set = reads(&[&file]);
        assert!(!changed(&set));
        std::fs::write(&file, "three").unwrap();
        assert!(changed(&set));
        let set = reads(&[&file]);
        let replacement = dir.path().join("b.yml");
        std::fs::write(&replacement, "three").unwrap();
        std::fs::rename(&replacement, &file).unwrap();
        assert!(changed(&set), "a rename over the file is a change");
        let set = reads(&[&file]);
        std::fs::remove_file(&file).unwrap();
        assert!(changed(&set));
        let set = reads(&[&file]);
        assert!(!changed(&set), "a missing file stays missing");
        std::fs::write(&file, "back").unwrap();
        assert!(changed(&set), "a file that appears is a change");
    }

    #[test]
    fn a_rewrite_the_metadata_cannot_show_is_found_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yml");
        std::fs::write(&file, "aaaa").unwrap();
        let set = reads(&[&file]);
        assert!(set.0[0].racy, "a file written a moment ago is racy");
        std::fs::write(&file, "bbbb").unwrap();
        // As if the rewrite had landed in the same timestamp tick: same metadata.
        let mut same_tick = set.clone();
        same_tick.0[0].meta = Meta::of(&file);
        assert!(changed(&same_tick));
        // Content as read, metadata as now: nothing changed.
        let mut unchanged = reads(&[&file]);
        unchanged.0[0].meta = Meta::of(&file);
        assert!(matches!(unchanged.look(), Look::Same));
    }

    #[test]
    fn records_settle_once_the_window_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yml");
        std::fs::write(&file, "aaaa").unwrap();
        let set = reads(&[&file]);
        assert!(set.0[0].racy);
        assert!(matches!(set.look(), Look::Same));
        let later = SystemTime::now() + RACY_WINDOW + Duration::from_secs(1);
        let Look::Settled(settled) = set.look_at(later, None) else {
            panic!("a racy record whose window has passed settles");
        };
        assert!(!settled.0[0].racy);
        assert!(matches!(settled.look(), Look::Same));
        std::fs::write(&file, "bbbbb").unwrap();
        assert!(changed(&settled));
        // A rewrite found while settling is a change, not a settled record.
        let set = reads(&[&file]);
        std::fs::write(&file, "ccccc").unwrap();
        let mut same_tick = set.clone();
        same_tick.0[0].meta = Meta::of(&file);
        assert!(matches!(same_tick.look_at(later, None), Look::Changed));
    }

    /// A file holding a number; its parity is fixed at start-up.
    struct Number {
        path: PathBuf,
        loads: std::sync::atomic::AtomicUsize,
    }

    impl Loader for Number {
        type Value = u32;
        type Error = String;

        const REPORT: ReloadReport = ReloadReport {
            what: "number",
            reloads_total: "test_reloads_total",
            last_reload_successful: "test_last_reload_successful",
            last_reload_success_time: "test_last_reload_success_time",
        };

        fn path(&self) -> &Path {
            &self.path
        }

        fn load(&self, files: &mut FileReads) -> Result<u32, String> {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Slow enough for the other callers to come while it runs.
            std::thread::sleep(Duration::from_millis(20));
            let text = files
                .read_to_string(&self.path)
                .map_err(|e| e.to_string())?;
            text.trim()
                .parse()
                .map_err(|_| format!("not a number: {text:?}"))
        }

        fn check_reload(&self, current: &u32, new: &u32) -> Result<(), String> {
            if current % 2 == new % 2 {
                Ok(())
            } else {
                Err("the parity is fixed at start-up".into())
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_access_loads_a_change_once_and_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("number");
        std::fs::write(&path, "2").unwrap();
        let telemetry = Arc::new(Telemetry::new(crate::telemetry::BuildInfo::current()));
        let number = Reloadable::start(
            Number {
                path: path.clone(),
                loads: Default::default(),
            },
            telemetry,
        )
        .unwrap();
        let loads = || {
            number
                .0
                .loader
                .loads
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        assert_eq!((*number.current().await, loads()), (2, 1));

        // Many callers at once after a change: every one sees it, and it is loaded once.
        std::fs::write(&path, "4").unwrap();
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let number = number.clone();
                tokio::spawn(async move { *number.current().await })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), 4);
        }
        assert_eq!(loads(), 2);

        // A broken version and one that changes what is fixed: refused once each, and the last
        // good version stays.
        for broken in ["x", "5"] {
            let before = loads();
            std::fs::write(&path, broken).unwrap();
            assert_eq!(*number.current().await, 4);
            assert_eq!(*number.current().await, 4);
            assert_eq!(loads(), before + 1, "{broken}");
        }
        std::fs::write(&path, "6").unwrap();
        assert_eq!(*number.current().await, 6);
        assert_eq!(*number.loaded(), 6);
    }

    /// A file that names another; the value is both contents.
    struct Pair(PathBuf);

    impl Loader for Pair {
        type Value = (String, String);
        type Error = String;

        const REPORT: ReloadReport = Number::REPORT;

        fn path(&self) -> &Path {
            &self.0
        }

        fn load(&self, files: &mut FileReads) -> Result<(String, String), String> {
            let own = files.read_to_string(&self.0).map_err(|e| e.to_string())?;
            let named = self.0.with_file_name(own.trim());
            let other = files.read_to_string(&named).map_err(|e| e.to_string())?;
            Ok((own, other))
        }

        fn check_reload(&self, _: &Self::Value, _: &Self::Value) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_access_to_the_own_file_looks_at_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        std::fs::write(&own, "a").unwrap();
        std::fs::write(dir.path().join("a"), "one").unwrap();
        std::fs::write(dir.path().join("b"), "two").unwrap();
        let telemetry = Arc::new(Telemetry::new(crate::telemetry::BuildInfo::current()));
        let pair = Reloadable::start(Pair(own.clone()), telemetry).unwrap();
        let value = |v: Arc<(String, String)>| (v.0.clone(), v.1.clone());
        let expect = |own: &str, other: &str| (own.to_string(), other.to_string());

        std::fs::write(dir.path().join("a"), "uno").unwrap();
        assert_eq!(value(pair.current_own().await), expect("a", "one"));
        assert_eq!(value(pair.current().await), expect("a", "uno"));
        // The own file changed: everything is loaded.
        std::fs::write(&own, "b").unwrap();
        assert_eq!(value(pair.current_own().await), expect("b", "two"));
        std::fs::write(dir.path().join("b"), "dos").unwrap();
        std::fs::write(&own, "a").unwrap();
        assert_eq!(value(pair.current_own().await), expect("a", "uno"));
        assert_eq!(value(pair.current().await), expect("a", "uno"));
    }

    #[test]
    fn change_times_decide_what_is_racy() {
        let meta = |seconds: i64| Meta {
            device: 1,
            inode: 1,
            size: 1,
            modified: (seconds, 0),
            changed: (seconds, 0),
        };
        let now = SystemTime::now();
        let seconds = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!(meta(seconds).racy(now));
        assert!(meta(seconds + 60).racy(now), "a change time in the future");
        assert!(!meta(seconds - 60).racy(now));
        assert!(!meta(-5).racy(now));
    }
}
