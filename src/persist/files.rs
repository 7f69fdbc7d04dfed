//! The files next to `--persistence.file`: their names, which of them hold acknowledged data
//! right now, and writing a snapshot so that a crash at any moment leaves either the old one or
//! the new one in place.
//!
//! Names: `<file>` (the snapshot), `<file>.wal-<n>` (log segments), `<file>.tmp-*` (a snapshot
//! being written), `<file>.corrupt-<time>` and `<file>.upstream-backup` (kept as evidence).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::PersistError;
use super::fault::{Fault, Operation};
use crate::store::Group;
use crate::store::codec::{self, Record, SNAPSHOT_MAGIC};

/// A file's identity: the same path may come to name another file (deleted and created
/// again), and that must not pass for the file written earlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub fn of_path(path: &Path) -> Option<FileId> {
        fs::metadata(path).ok().map(|m| FileId::from(&m))
    }

    pub fn of_file(file: &File) -> std::io::Result<FileId> {
        file.metadata().map(|m| FileId::from(&m))
    }
}

impl From<&fs::Metadata> for FileId {
    fn from(m: &fs::Metadata) -> Self {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// The files that hold acknowledged data right now: the snapshot (once there is one) and
/// every log segment from the first one the snapshot does not include. If any of them
/// disappears or is replaced while the gateway runs, a restart would miss data, so the
/// persistence must write everything anew.
#[derive(Debug, Default)]
pub struct LiveFiles {
    snapshot: Option<(PathBuf, FileId)>,
    segments: BTreeMap<u64, (PathBuf, FileId)>,
}

impl LiveFiles {
    pub fn set_snapshot(&mut self, path: &Path, first_segment: u64) {
        self.snapshot = FileId::of_path(path).map(|id| (path.to_path_buf(), id));
        self.segments.retain(|number, _| *number >= first_segment);
    }

    pub fn add_segment(&mut self, number: u64, path: &Path, id: FileId) {
        self.segments.insert(number, (path.to_path_buf(), id));
    }

    /// The first file that is no longer where it was written.
    pub fn vanished(&self) -> Option<&Path> {
        self.snapshot
            .iter()
            .chain(self.segments.values())
            .find(|(path, id)| FileId::of_path(path) != Some(*id))
            .map(|(path, _)| path.as_path())
    }
}

/// The directory must exist and be writable, and an existing file readable.
pub fn check_usable(path: &Path) -> Result<(), PersistError> {
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

pub fn unusable(path: &Path, err: std::io::Error) -> PersistError {
    PersistError::Unusable {
        path: path.display().to_string(),
        reason: err.to_string(),
    }
}

pub fn directory(path: &Path) -> PathBuf {
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

/// The file name of log segment `number` next to `base`.
pub fn segment_path(base: &Path, number: u64) -> PathBuf {
    base.with_file_name(format!("{}.wal-{number}", file_name(base)))
}

/// `<file>.<suffix>`, or with a number added if that exists already.
pub fn available_name(path: &Path, suffix: &str) -> PathBuf {
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
pub fn remove_leftovers(path: &Path) {
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
pub fn segments(path: &Path) -> Vec<(u64, PathBuf)> {
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

/// Removes the log segments older than `first`, which a snapshot now includes. A segment that
/// cannot be removed is harmless: start-up skips (and removes) segments the snapshot includes.
fn remove_segments_before(path: &Path, first: u64) {
    for (number, old) in segments(path) {
        if number < first {
            let _ = fs::remove_file(old);
        }
    }
}

/// The files as the running gateway keeps them: which hold acknowledged data, and the one
/// way to write a snapshot.
pub struct Files {
    path: PathBuf,
    live: Mutex<LiveFiles>,
    /// The first log segment the newest snapshot on disk does not include. Held while a
    /// snapshot is written, so that snapshots are written one at a time and an older one (a
    /// checkpoint that took long) never replaces a newer one (written to recover from a fault).
    newest: Mutex<u64>,
}

impl Files {
    pub fn new(path: &Path, live: LiveFiles, newest: u64) -> Files {
        Files {
            path: path.to_path_buf(),
            live: Mutex::new(live),
            newest: Mutex::new(newest),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn add_segment(&self, number: u64, id: FileId) {
        let path = segment_path(&self.path, number);
        lock(&self.live).add_segment(number, &path, id);
    }

    /// The first file holding acknowledged data that is no longer where it was written.
    pub fn vanished(&self) -> Option<PathBuf> {
        lock(&self.live).vanished().map(Path::to_path_buf)
    }

    /// Writes a snapshot of `groups` that log segments from `first_segment` on continue, and
    /// removes the segments it makes redundant. Returns `false` when a newer snapshot is on
    /// disk already (then nothing is written).
    ///
    /// Written atomically: a temporary file, fsync, rename over the old one, fsync of the
    /// directory. On failure the old snapshot stays as it was and the temporary file is
    /// removed.
    pub fn write_snapshot<'a>(
        &self,
        first_segment: u64,
        groups: impl Iterator<Item = &'a Group>,
    ) -> Result<bool, Fault> {
        let mut newest = lock(&self.newest);
        if first_segment < *newest {
            return Ok(false);
        }
        let temp = temp_path(&self.path, "snapshot");
        let result = (|| -> Result<(), Fault> {
            write_temp_snapshot(&temp, first_segment, groups)?;
            // The rename and the change of live files happen together, so that a check in
            // between never takes the new snapshot for a vanished one.
            let mut live = lock(&self.live);
            fs::rename(&temp, &self.path)
                .map_err(|e| Fault::io(Operation::SnapshotRename, &self.path, e))?;
            sync_directory(&self.path)?;
            live.set_snapshot(&self.path, first_segment);
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result?;
        *newest = first_segment;
        remove_segments_before(&self.path, first_segment);
        Ok(true)
    }
}

fn write_temp_snapshot<'a>(
    temp: &Path,
    first_segment: u64,
    groups: impl Iterator<Item = &'a Group>,
) -> Result<(), Fault> {
    let write = |e| Fault::io(Operation::SnapshotWrite, temp, e);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)
        .map_err(write)?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    writer
        .write_all(&codec::header(SNAPSHOT_MAGIC, first_segment))
        .map_err(write)?;
    let mut record = Vec::new();
    let mut count = 0u64;
    for group in groups {
        record.clear();
        codec::encode_group(group, &mut record);
        writer.write_all(&record).map_err(write)?;
        count += 1;
    }
    record.clear();
    Record::End { groups: count }.encode(&mut record);
    writer.write_all(&record).map_err(write)?;
    let file = writer.into_inner().map_err(|e| write(e.into_error()))?;
    file.sync_all()
        .map_err(|e| Fault::io(Operation::SnapshotFsync, temp, e))
}

/// Makes a new or renamed directory entry durable.
pub fn sync_directory(path: &Path) -> Result<(), Fault> {
    let dir = directory(path);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Fault::io(Operation::DirectoryFsync, &dir, e))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
