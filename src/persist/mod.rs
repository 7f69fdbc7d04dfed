//! `--persistence.file`: keeping the store across restarts and crashes.
//!
//! By default every change goes to an append-only log before it is acknowledged (one fsync per
//! batch of concurrent changes), and the store is compacted into a snapshot every
//! `--persistence.interval` and at shutdown; after `kill -9` or a power loss, start-up replays
//! the log on top of the last snapshot, so no acknowledged push is lost. With
//! `--no-persistence.log`, only the periodic snapshots are written, as upstream does (a crash
//! loses the changes since the last one), but still fsynced, checksummed and renamed into place.
//!
//! Files, next to each other: `<file>` (the snapshot), `<file>.wal-<n>` (log segments; the
//! snapshot names the first segment it does not include) and, briefly, `<file>.tmp-*` (a
//! snapshot being written; removed at start-up if a crash left one). A damaged file is never
//! overwritten: it is moved to `<file>.corrupt-<time>` and whatever could be read is used. A
//! file in upstream's format is imported and kept as `<file>.upstream-backup`.

mod codec;
mod journal;
pub mod upstream;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use journal::Journal;

use bytes::Bytes;

use crate::model::{GroupingKey, Timestamp};
use crate::store::{Group, PersistedFamily, Store};
use crate::telemetry::{self, Telemetry};
use codec::{Damage, HEADER_LEN, LOG_MAGIC, Record, Records, SNAPSHOT_MAGIC};

/// Compact the log into a snapshot early once it grows past this, so that restarts stay fast.
const LOG_COMPACTION_BYTES: u64 = 256 * 1024 * 1024;
/// How often the periodic task looks whether a snapshot is due.
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
    path: PathBuf,
    interval: Duration,
    journal: Option<Arc<Journal>>,
    /// The log segment in use (log mode).
    segment: Mutex<u64>,
    telemetry: Arc<Telemetry>,
}

/// The groups found at start-up.
pub type Groups = Vec<(GroupingKey, Vec<PersistedFamily>)>;

impl Persistence {
    /// Checks the path, cleans up after a crash, and reads back what was persisted.
    pub fn open(
        path: &Path,
        durability: Durability,
        interval: Duration,
        telemetry: Arc<Telemetry>,
    ) -> Result<(Arc<Persistence>, Groups, Outcome), PersistError> {
        check_usable(path)?;
        remove_leftovers(path);
        let segments = segments(path);
        let mut recovery = Recovery::default();
        let first_segment = recovery.read_snapshot(path)?;
        for (number, segment) in &segments {
            if *number < first_segment {
                // Already in the snapshot: left over by a crash between snapshot and cleanup.
                let _ = fs::remove_file(segment);
            }
        }
        let newest = segments.last().map(|(n, _)| *n);
        for (number, segment) in segments.iter().filter(|(n, _)| *n >= first_segment) {
            recovery.replay_segment(segment, Some(*number) == newest)?;
        }
        let outcome = recovery.outcome();
        telemetry.set(
            telemetry::PERSISTENCE_RECOVERY,
            &[("outcome", outcome.as_str())],
            1.0,
        );
        let next_segment = newest.map_or(first_segment, |n| n + 1).max(first_segment);
        let journal = match durability {
            Durability::Log => Some(Journal::start(path, next_segment, telemetry.clone())?),
            Durability::Snapshots => None,
        };
        let persistence = Arc::new(Persistence {
            path: path.to_path_buf(),
            interval,
            journal,
            segment: Mutex::new(next_segment),
            telemetry,
        });
        Ok((persistence, recovery.groups.into_iter().collect(), outcome))
    }

    /// The log, in log mode.
    pub fn journal(&self) -> Option<Arc<Journal>> {
        self.journal.clone()
    }

    /// Writes a snapshot of `store` and drops the log segments it makes redundant.
    pub fn checkpoint(&self, store: &Store) -> Result<(), PersistError> {
        let started = Instant::now();
        let mut segment = self.segment.lock().unwrap_or_else(|p| p.into_inner());
        let next = match &self.journal {
            Some(_) => *segment + 1,
            None => 0,
        };
        let snapshot = store.snapshot_with(|| {
            if let Some(journal) = &self.journal {
                journal.rotate(next);
            }
        });
        let result = write_snapshot(&self.path, next, snapshot.groups().map(|g| &**g));
        if let Err(err) = &result {
            self.telemetry
                .increment(telemetry::PERSISTENCE_ERRORS, &[("operation", "snapshot")]);
            tracing::error!(err = %err, "error persisting metrics");
            return result;
        }
        if self.journal.is_some() {
            for (number, old) in segments(&self.path) {
                if number < next {
                    let _ = fs::remove_file(old);
                }
            }
            *segment = next;
        }
        let elapsed = started.elapsed().as_secs_f64();
        self.telemetry
            .set(telemetry::PERSISTENCE_SNAPSHOT_DURATION, &[], elapsed);
        self.telemetry.set(
            telemetry::PERSISTENCE_LAST_SNAPSHOT,
            &[],
            Timestamp::now().as_seconds_f64(),
        );
        tracing::info!(file = %self.path.display(), groups = snapshot.len(), seconds = elapsed, "metrics persisted");
        Ok(())
    }

    /// Writes a snapshot every interval while there were changes (or earlier when the log
    /// grows large). Runs until the task is dropped.
    pub async fn run(self: Arc<Self>, store: Arc<Store>) {
        let mut last = Instant::now();
        let mut persisted_generation = store.snapshot().generation();
        let mut ticker =
            tokio::time::interval(TICK.min(self.interval.max(Duration::from_millis(10))));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let generation = store.snapshot().generation();
            let changed = generation != persisted_generation;
            let log_large = self.journal.is_some() && self.log_bytes() > LOG_COMPACTION_BYTES;
            if !(changed && (last.elapsed() >= self.interval || log_large)) {
                continue;
            }
            let (this, store_for_task) = (self.clone(), store.clone());
            let done = tokio::task::spawn_blocking(move || this.checkpoint(&store_for_task)).await;
            if matches!(done, Ok(Ok(()))) {
                persisted_generation = generation;
            }
            last = Instant::now();
        }
    }

    /// At shutdown: a last snapshot (always, as upstream), then the log writer stops.
    pub fn shutdown(&self, store: &Store) {
        let _ = self.checkpoint(store);
        if let Some(journal) = &self.journal {
            journal.stop();
        }
    }

    fn log_bytes(&self) -> u64 {
        let segment = *self.segment.lock().unwrap_or_else(|p| p.into_inner());
        fs::metadata(journal::segment_path(&self.path, segment))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

impl crate::store::Journal for Journal {
    fn group_written(&self, group: &Group) -> u64 {
        let mut bytes = Vec::with_capacity(group.encoded_len() + 256);
        codec::encode_group(group, &mut bytes);
        self.append_encoded(bytes)
    }

    fn group_deleted(&self, key: &GroupingKey) -> u64 {
        let mut bytes = Vec::new();
        Record::Delete { key: key.clone() }.encode(&mut bytes);
        self.append_encoded(bytes)
    }
}

/// What start-up reads back, and what it met on the way.
#[derive(Default)]
struct Recovery {
    groups: BTreeMap<GroupingKey, Vec<PersistedFamily>>,
    found_anything: bool,
    torn: bool,
    corrupt: bool,
    imported: bool,
}

impl Recovery {
    fn outcome(&self) -> Outcome {
        if self.corrupt {
            Outcome::Corrupt
        } else if self.imported {
            Outcome::Imported
        } else if self.torn {
            Outcome::TornTail
        } else if self.found_anything {
            Outcome::Clean
        } else {
            Outcome::Empty
        }
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Group { key, families } => {
                self.groups.insert(key, families);
            }
            Record::Delete { key } => {
                self.groups.remove(&key);
            }
            Record::End { .. } => {}
        }
    }

    /// Reads the snapshot (ours, or upstream's to import). Returns the first log segment it
    /// does not include.
    fn read_snapshot(&mut self, path: &Path) -> Result<u64, PersistError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => Bytes::from(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(unusable(path, err)),
        };
        if bytes.is_empty() {
            // An empty file (made to set up permissions, say) holds no groups.
            return Ok(0);
        }
        self.found_anything = true;
        if let Ok(first_segment) = codec::read_header(&bytes, SNAPSHOT_MAGIC) {
            let mut complete = false;
            for record in Records::shared(&bytes) {
                match record {
                    Ok(Record::End { .. }) => complete = true,
                    Ok(record) => self.apply(record),
                    Err(damage) => {
                        self.set_aside(path, &damage.to_string());
                        return Ok(first_segment);
                    }
                }
            }
            if !complete {
                self.set_aside(path, "the snapshot has no end record");
            }
            return Ok(first_segment);
        }
        if upstream::looks_like_upstream(&bytes) {
            match upstream::read_upstream(&bytes) {
                Ok(groups) => {
                    self.import(groups);
                    let backup = available_name(path, "upstream-backup");
                    fs::rename(path, &backup).map_err(|e| unusable(path, e))?;
                    tracing::info!(file = %path.display(), backup = %backup.display(), groups = self.groups.len(), "imported upstream's persistence file");
                    self.imported = true;
                }
                Err(err) => {
                    self.set_aside(path, &format!("not readable as upstream's format: {err}"))
                }
            }
            return Ok(0);
        }
        self.set_aside(path, "neither this gateway's format nor upstream's");
        Ok(0)
    }

    fn import(&mut self, groups: Vec<upstream::UpstreamGroup>) {
        for group in groups {
            let key = GroupingKey::from_labels(
                group.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
            let families = group
                .families
                .into_iter()
                .map(|(pushed_at, family)| {
                    let mut metrics = Vec::new();
                    for metric in &family.metric {
                        prost::encoding::message::encode(
                            crate::model::proto::METRIC_FAMILY_METRIC_TAG,
                            metric,
                            &mut metrics,
                        );
                    }
                    PersistedFamily {
                        kind: family.r#type(),
                        name: family.name.unwrap_or_default(),
                        help: family.help,
                        pushed_at,
                        metrics: metrics.into(),
                    }
                })
                .collect();
            self.groups.insert(key, families);
        }
    }

    fn replay_segment(&mut self, segment: &Path, newest: bool) -> Result<(), PersistError> {
        let bytes = Bytes::from(fs::read(segment).map_err(|e| unusable(segment, e))?);
        if bytes.len() < HEADER_LEN {
            // The crash came while the segment was being created: nothing was logged in it.
            self.torn = true;
            return Ok(());
        }
        if codec::read_header(&bytes, LOG_MAGIC).is_err() {
            self.set_aside(segment, "not a log segment of this format");
            return Ok(());
        }
        self.found_anything = true;
        for record in Records::shared(&bytes) {
            match record {
                Ok(record) => self.apply(record),
                Err(damage) if newest && is_torn_tail(&bytes, &damage) => {
                    tracing::warn!(file = %segment.display(), "dropping the last log record, cut off by a crash (it was never acknowledged)");
                    self.torn = true;
                    return Ok(());
                }
                Err(damage) => {
                    self.set_aside(segment, &damage.to_string());
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Moves a damaged file out of the way, keeping it as evidence.
    fn set_aside(&mut self, path: &Path, reason: &str) {
        self.corrupt = true;
        let aside = available_name(
            path,
            &format!("corrupt-{}", Timestamp::now().as_nanos() / 1_000_000_000),
        );
        match fs::rename(path, &aside) {
            Ok(()) => {
                tracing::error!(file = %path.display(), moved_to = %aside.display(), reason, "persistence file is damaged; starting with what could be read")
            }
            Err(err) => {
                tracing::error!(file = %path.display(), reason, err = %err, "persistence file is damaged and could not be moved aside")
            }
        }
    }
}

/// Damage at the end of the newest segment is a write cut short by a crash: the record was
/// never acknowledged. That is: it runs past the end of the file, or it is the last record, or
/// only zeros follow (space the file system allocated but never wrote).
fn is_torn_tail(bytes: &[u8], damage: &Damage) -> bool {
    match damage {
        Damage::Truncated { .. } => true,
        Damage::Corrupt { offset, .. } => {
            let rest = &bytes[*offset..];
            let len = rest
                .get(0..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes) as usize;
            rest.len() == 8 + len || rest.iter().all(|&b| b == 0)
        }
    }
}

/// The directory must exist and be writable, and an existing file readable.
fn check_usable(path: &Path) -> Result<(), PersistError> {
    let dir = directory(path);
    if !dir.is_dir() {
        return Err(PersistError::Unusable {
            path: path.display().to_string(),
            reason: format!("directory {} does not exist", dir.display()),
        });
    }
    if path.exists() {
        File::open(path).map_err(|e| unusable(path, e))?;
    }
    let probe = temp_path(path, "probe");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .map_err(|e| PersistError::Unusable {
            path: path.display().to_string(),
            reason: format!("cannot write in {}: {e}", dir.display()),
        })?;
    let _ = fs::remove_file(probe);
    Ok(())
}

fn unusable(path: &Path, err: std::io::Error) -> PersistError {
    PersistError::Unusable {
        path: path.display().to_string(),
        reason: err.to_string(),
    }
}

fn directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn temp_path(path: &Path, what: &str) -> PathBuf {
    path.with_file_name(format!(
        "{}.tmp-{what}-{}",
        file_name(path),
        std::process::id()
    ))
}

/// `<file>.<suffix>`, or with a number added if that exists already.
fn available_name(path: &Path, suffix: &str) -> PathBuf {
    let base = path.with_file_name(format!("{}.{suffix}", file_name(path)));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{}.{suffix}.{n}", file_name(path)));
        n += 1;
    }
    candidate
}

/// Removes snapshots a crash left half-written.
fn remove_leftovers(path: &Path) {
    let prefix = format!("{}.tmp-", file_name(path));
    let Ok(entries) = fs::read_dir(directory(path)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(file = %entry.path().display(), "removing a temporary file left by a crash");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The log segments next to `path`, oldest first.
fn segments(path: &Path) -> Vec<(u64, PathBuf)> {
    let prefix = format!("{}.wal-", file_name(path));
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(directory(path))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let number = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Writes a snapshot atomically: a temporary file, fsync, rename over the old one, fsync of
/// the directory.
fn write_snapshot<'a>(
    path: &Path,
    first_segment: u64,
    groups: impl Iterator<Item = &'a Group>,
) -> Result<(), PersistError> {
    let temp = temp_path(path, "snapshot");
    let io =
        |what: &str, e: std::io::Error| PersistError::Io(format!("{what} {}: {e}", temp.display()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io("create", e))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let result = (|| -> Result<(), PersistError> {
        writer
            .write_all(&codec::header(SNAPSHOT_MAGIC, first_segment))
            .map_err(|e| io("write", e))?;
        let mut record = Vec::new();
        let mut count = 0u64;
        for group in groups {
            record.clear();
            codec::encode_group(group, &mut record);
            writer.write_all(&record).map_err(|e| io("write", e))?;
            count += 1;
        }
        record.clear();
        Record::End { groups: count }.encode(&mut record);
        writer.write_all(&record).map_err(|e| io("write", e))?;
        let file = writer
            .into_inner()
            .map_err(|e| io("write", e.into_error()))?;
        file.sync_all().map_err(|e| io("fsync", e))?;
        fs::rename(&temp, path).map_err(|e| io("rename", e))?;
        sync_directory(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Makes a new or renamed directory entry durable.
fn sync_directory(path: &Path) -> Result<(), PersistError> {
    let dir = directory(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PersistError::Io(format!("fsync directory {}: {e}", dir.display())))
}
