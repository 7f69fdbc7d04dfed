//! `--persistence.file`: keeping the store across restarts, crashes and storage faults.
//!
//! By default every change goes to an append-only log before it is acknowledged (one fsync per
//! batch of concurrent changes), and the store is compacted into a snapshot every
//! `--persistence.interval` and at shutdown; after `kill -9` or a power loss, start-up replays
//! the log on top of the last snapshot, so no acknowledged push is lost. With
//! `--no-persistence.log`, only the periodic snapshots are written, as upstream does (a crash
//! loses the changes since the last one), but still fsynced, checksummed and renamed into place.
//!
//! Storage faults (a full disk, a failed fsync, a read-only directory, a file deleted under the
//! gateway) never cost an acknowledged change: in log mode a change that could not be made
//! durable is withdrawn and its pusher gets an error, further changes are refused until the
//! gateway has written its whole state anew, and it tries that every second, so pushes succeed
//! again by themselves once the disk allows (see [`wal`]). Scrapes keep serving the store
//! throughout. [`fault`] reports which fault is happening and since when.
//!
//! Files: see [`files`]. A damaged file is never overwritten: it is moved to
//! `<file>.corrupt-<time>` and whatever could be read is used. A file in upstream's format
//! (Go's gob encoding, see [`gob`]) is imported and kept as `<file>.upstream-backup`.

mod fault;
mod files;
pub mod gob;
mod recovery;
mod wal;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::Timestamp;
use crate::store::{Backend, Change, Commit, Discard, View};
use crate::telemetry::{self, Telemetry};
use fault::Health;
use files::{Files, LiveFiles};
use recovery::Recovery;
use wal::Wal;

/// Compact the log into a snapshot early once it grows past this, so that restarts stay fast.
const LOG_COMPACTION_BYTES: u64 = 256 * 1024 * 1024;
/// How often the periodic task looks whether a snapshot is due and the files are in place.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistError {
    #[error("cannot use --persistence.file {path:?}: {reason}")]
    Unusable { path: String, reason: String },
    #[error("{0}")]
    Io(String),
}

/// Whether changes wait for the log (the default) or only periodic snapshots are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Log,
    Snapshots,
}

/// How start-up found the persisted state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No file yet.
    Empty,
    /// Everything read back intact.
    Clean,
    /// The last log record was cut off by a crash; it had not been acknowledged.
    TornTail,
    /// Damage elsewhere: the damaged file was moved aside and what could be read is used.
    Corrupt,
    /// Upstream's file was imported.
    Imported,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Empty => "empty",
            Outcome::Clean => "clean",
            Outcome::TornTail => "torn_tail",
            Outcome::Corrupt => "corrupt",
            Outcome::Imported => "imported",
        }
    }
}

pub struct Persistence {
    interval: Duration,
    view: Arc<View>,
    files: Arc<Files>,
    /// The write-ahead log (log mode).
    wal: Option<Arc<Wal>>,
    /// With snapshots only: the first log segment a snapshot leaves out, past every segment
    /// found at start-up (left by an earlier run in log mode), so that the snapshot makes
    /// them all redundant.
    snapshot_first_segment: u64,
    /// The view's generation as restored, which the files on disk hold: changes made before
    /// [`Persistence::run`] first looks are still changes to persist.
    restored_generation: u64,
    health: Arc<Health>,
    telemetry: Arc<Telemetry>,
}

impl Persistence {
    /// Checks the path, cleans up after a crash, and reads back what was persisted into
    /// `view` (which must be empty).
    pub fn open(
        path: &Path,
        durability: Durability,
        interval: Duration,
        telemetry: Arc<Telemetry>,
        view: Arc<View>,
    ) -> Result<(Arc<Persistence>, Outcome), PersistError> {
        files::check_usable(path)?;
        files::remove_leftovers(path);
        let segments = files::segments(path);
        let mut recovery = Recovery::default();
        let first_segment = recovery.read_snapshot(path)?;
        for (number, segment) in &segments {
            if *number < first_segment {
                // Already in the snapshot: left over by a crash between snapshot and cleanup.
                let _ = std::fs::remove_file(segment);
            }
        }
        let newest = segments.last().map(|(n, _)| *n);
        let mut live = LiveFiles::default();
        for (number, segment) in segments.iter().filter(|(n, _)| *n >= first_segment) {
            recovery.replay_segment(segment, Some(*number) == newest)?;
            if let Some(id) = files::FileId::of_path(segment) {
                live.add_segment(*number, segment, id);
            }
        }
        live.set_snapshot(path, first_segment);
        let outcome = recovery.outcome();
        telemetry.set(
            telemetry::PERSISTENCE_RECOVERY,
            &[("outcome", outcome.as_str())],
            1.0,
        );
        let next_segment = newest.map_or(first_segment, |n| n + 1).max(first_segment);
        let groups = recovery.into_groups();
        let count = groups.len();
        let problems = view.restore(groups);
        let restored_generation = view.snapshot().generation();
        crate::alloc::release_free_memory();
        if !problems.is_empty() {
            tracing::error!(err = %problems, "restored metrics are inconsistent; pushes are refused and scrapes fail until the groups at fault are deleted");
        }
        tracing::info!(file = %path.display(), groups = count, outcome = ?outcome, "restored persisted metrics");
        let files = Arc::new(Files::new(path, live, first_segment));
        let health = Arc::new(Health::new(telemetry.clone()));
        let wal = match durability {
            Durability::Log => Some(
                Wal::start(
                    view.clone(),
                    files.clone(),
                    next_segment,
                    health.clone(),
                    telemetry.clone(),
                )
                .map_err(|fault| PersistError::Unusable {
                    path: path.display().to_string(),
                    reason: fault.to_string(),
                })?,
            ),
            Durability::Snapshots => None,
        };
        let persistence = Arc::new(Persistence {
            interval,
            view,
            files,
            wal,
            snapshot_first_segment: next_segment,
            restored_generation,
            health,
            telemetry,
        });
        Ok((persistence, outcome))
    }

    /// Writes a snapshot of the view and drops the log segments it makes redundant. In log
    /// mode the snapshot holds only durable changes, and is skipped while the log is failing
    /// (the log then writes one of its own as soon as the disk allows).
    pub fn checkpoint(&self) -> Result<(), String> {
        let started = Instant::now();
        let (snapshot, first_segment) = match &self.wal {
            Some(wal) => wal.rotate().map_err(|reason| reason.to_string())?,
            None => (self.view.snapshot(), self.snapshot_first_segment),
        };
        match self
            .files
            .write_snapshot(first_segment, snapshot.groups().map(|g| &**g))
        {
            Ok(true) => {
                if self.wal.is_none() {
                    self.health.recovered("a snapshot was written");
                }
            }
            Ok(false) => {
                // The log wrote a newer one while recovering from a fault.
                tracing::debug!("a newer snapshot is on disk already; this one is not written");
                return Ok(());
            }
            Err(fault) => {
                let consequence = match self.wal {
                    Some(_) => "the last good snapshot stays; the log keeps every change",
                    None => "the last good snapshot stays; changes since then are only in memory",
                };
                if self.wal.is_none() {
                    self.health.failed(&fault, consequence);
                } else {
                    self.health.count(&fault);
                    tracing::error!(err = %fault, "error persisting metrics; {consequence}");
                }
                return Err(fault.to_string());
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        self.telemetry
            .set(telemetry::PERSISTENCE_SNAPSHOT_DURATION, &[], elapsed);
        self.telemetry.set(
            telemetry::PERSISTENCE_LAST_SNAPSHOT,
            &[],
            Timestamp::now().as_seconds_f64(),
        );
        tracing::info!(file = %self.files.path().display(), groups = snapshot.len(), seconds = elapsed, "metrics persisted");
        Ok(())
    }

    /// Every second: has the log check its files, and writes a snapshot when one is due (every
    /// interval while there were changes, earlier when the log grows large, at once when the
    /// snapshot file vanished). Runs until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut last = Instant::now();
        let mut persisted_generation = self.restored_generation;
        let mut ticker =
            tokio::time::interval(TICK.min(self.interval.max(Duration::from_millis(10))));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let generation = self.view.snapshot().generation();
            let changed = generation != persisted_generation;
            let (log_large, vanished) = match &self.wal {
                Some(wal) => {
                    wal.check_files();
                    (wal.segment_bytes() > LOG_COMPACTION_BYTES, false)
                }
                None => (false, self.files.vanished().is_some()),
            };
            let due = changed && (last.elapsed() >= self.interval || log_large);
            if !(due || vanished) {
                continue;
            }
            let this = self.clone();
            let done = tokio::task::spawn_blocking(move || this.checkpoint()).await;
            if matches!(done, Ok(Ok(()))) {
                persisted_generation = generation;
            }
            last = Instant::now();
        }
    }

    /// At shutdown: a last snapshot (always, as upstream), then the log writer stops.
    pub fn shutdown(&self) {
        let _ = self.checkpoint();
        if let Some(wal) = &self.wal {
            wal.stop();
        }
    }
}

/// Reads a persistence file (ours with its log segments, or upstream's) without changing any
/// file, for importing it into another store. Damage is an error.
pub fn read_only(path: &Path) -> Result<Vec<crate::store::PersistedGroup>, PersistError> {
    let mut recovery = Recovery::read_only();
    let first_segment = recovery.read_snapshot(path)?;
    let segments = files::segments(path);
    let newest = segments.last().map(|(n, _)| *n);
    for (number, segment) in segments.iter().filter(|(n, _)| *n >= first_segment) {
        recovery.replay_segment(segment, Some(*number) == newest)?;
    }
    if recovery.outcome() == Outcome::Corrupt {
        return Err(PersistError::Unusable {
            path: path.display().to_string(),
            reason: "the file or its log is damaged (see the log above)".into(),
        });
    }
    Ok(recovery.into_groups())
}

impl Backend for Persistence {
    /// In log mode a change is done when the log has it on disk; with snapshots only, once it
    /// is applied (as upstream: a crash loses what the last snapshot lacks).
    fn commit(&self, change: Change) -> Commit<'_> {
        let Some(wal) = &self.wal else {
            return Box::pin(std::future::ready(self.view.apply(change, &mut Discard)));
        };
        let mut sink = wal.sink();
        let applied = self.view.apply(change, &mut sink);
        let done = sink.into_done();
        Box::pin(async move {
            let applied = applied?;
            done.await?;
            Ok(applied)
        })
    }
}
