//! The log: every change to the store, appended in the order the store applied them, made
//! durable by a writer thread that fsyncs once for everything that arrived since its last
//! fsync (group commit), so that many concurrent pushes share one disk flush.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::codec::{LOG_MAGIC, header};
use super::{PersistError, sync_directory};
use crate::telemetry::{self, Telemetry};

/// A position in the log: the number of records appended before and including one.
pub type Sequence = u64;

/// How far the log is on disk, or why it cannot get further.
#[derive(Clone, Debug, Default)]
struct Durable {
    sequence: Sequence,
    error: Option<Arc<str>>,
}

enum Entry {
    Bytes(Vec<u8>),
    /// Continue in a new segment file with this number.
    Rotate(u64),
}

#[derive(Default)]
struct Pending {
    entries: Vec<Entry>,
    appended: Sequence,
    stop: bool,
}

pub struct Journal {
    base: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
    telemetry: Arc<Telemetry>,
}

/// The file name of log segment `number` next to `base`.
pub fn segment_path(base: &Path, number: u64) -> PathBuf {
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".wal-{number}"));
    base.with_file_name(name)
}

impl Journal {
    /// Starts a log in a new segment `number` and the thread that writes it.
    pub fn start(
        base: &Path,
        number: u64,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<Journal>, PersistError> {
        let file = create_segment(base, number)?;
        let (durable, _) = watch::channel(Durable::default());
        let journal = Arc::new(Journal {
            base: base.to_path_buf(),
            pending: Mutex::default(),
            wake: Condvar::new(),
            durable,
            telemetry,
        });
        let writer = journal.clone();
        std::thread::Builder::new()
            .name("pushgateway-log".into())
            .spawn(move || writer.write_loop(file))
            .map_err(|e| PersistError::Io(format!("cannot start the log writer: {e}")))?;
        Ok(journal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an encoded record (called under the store's lock, so the log's order is the
    /// store's).
    pub fn append_encoded(&self, bytes: Vec<u8>) -> Sequence {
        let mut pending = self.lock();
        pending.entries.push(Entry::Bytes(bytes));
        pending.appended += 1;
        self.wake.notify_one();
        pending.appended
    }

    /// Switches to a new segment after everything appended so far (called under the store's
    /// lock, so that a snapshot taken at the same moment covers exactly the older segments).
    pub fn rotate(&self, number: u64) {
        let mut pending = self.lock();
        pending.entries.push(Entry::Rotate(number));
        self.wake.notify_one();
    }

    /// Waits until record `sequence` is on disk.
    pub async fn wait(&self, sequence: Sequence) -> Result<(), Arc<str>> {
        let mut durable = self.durable.subscribe();
        let state = durable
            .wait_for(|d| d.sequence >= sequence || d.error.is_some())
            .await
            .map_err(|_| Arc::<str>::from("the log writer stopped"))?;
        match &state.error {
            Some(error) if state.sequence < sequence => Err(error.clone()),
            _ => Ok(()),
        }
    }

    /// Writes what is pending and stops the writer.
    pub fn stop(&self) {
        let mut pending = self.lock();
        pending.stop = true;
        self.wake.notify_one();
    }

    fn write_loop(self: Arc<Self>, mut file: File) {
        loop {
            let (entries, sequence, stop) = {
                let mut pending = self.lock();
                while pending.entries.is_empty() && !pending.stop {
                    pending = self.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
                }
                (
                    std::mem::take(&mut pending.entries),
                    pending.appended,
                    pending.stop,
                )
            };
            if !entries.is_empty() {
                match self.write_batch(&mut file, entries) {
                    Ok(()) => {
                        self.durable.send_modify(|d| d.sequence = sequence);
                    }
                    Err(err) => {
                        tracing::error!(err = %err, "cannot write the persistence log; pushes are not acknowledged");
                        self.telemetry
                            .increment(telemetry::PERSISTENCE_ERRORS, &[("operation", "log")]);
                        self.durable
                            .send_modify(|d| d.error = Some(err.to_string().into()));
                    }
                }
            }
            if stop {
                return;
            }
        }
    }

    fn write_batch(&self, file: &mut File, entries: Vec<Entry>) -> Result<(), PersistError> {
        for entry in entries {
            match entry {
                Entry::Bytes(bytes) => file
                    .write_all(&bytes)
                    .map_err(|e| PersistError::Io(format!("write to the log: {e}")))?,
                Entry::Rotate(number) => {
                    self.sync(file)?;
                    *file = create_segment(&self.base, number)?;
                }
            }
        }
        self.sync(file)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.telemetry
            .set(telemetry::PERSISTENCE_LOG_BYTES, &[], size as f64);
        Ok(())
    }

    fn sync(&self, file: &File) -> Result<(), PersistError> {
        let started = Instant::now();
        file.sync_data()
            .map_err(|e| PersistError::Io(format!("fsync the log: {e}")))?;
        self.telemetry.observe(
            telemetry::PERSISTENCE_FSYNC_DURATION,
            &[("file", "log")],
            started.elapsed().as_secs_f64(),
        );
        Ok(())
    }
}

fn create_segment(base: &Path, number: u64) -> Result<File, PersistError> {
    let path = segment_path(base, number);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| PersistError::Io(format!("create {}: {e}", path.display())))?;
    file.write_all(&header(LOG_MAGIC, number))
        .and_then(|()| file.sync_all())
        .map_err(|e| PersistError::Io(format!("write {}: {e}", path.display())))?;
    sync_directory(&path)?;
    Ok(file)
}
