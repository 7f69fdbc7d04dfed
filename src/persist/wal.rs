//! The write-ahead log: every change to the store, appended in the order the view applied
//! them, made durable by one writer thread that fsyncs once for everything that arrived since
//! its last fsync (group commit), so that many concurrent pushes share one disk flush.
//!
//! Invariants:
//! - A change is acknowledged only after the fsync that covers its record succeeded, and the
//!   files holding acknowledged data were all still in place after it.
//! - After any failed write or fsync, the segment is abandoned: it is cut back to the last
//!   durable record (best effort) and never written or fsynced again. A failed fsync is never
//!   retried: the kernel may have dropped the pages it could not write, and a later fsync
//!   would report success for data that is gone.
//! - Every change not yet durable at that moment is withdrawn from the view (its pusher gets
//!   an error: nothing was changed), and the log refuses changes until it has written the
//!   view, which then holds exactly the acknowledged changes, as a fresh snapshot followed by
//!   a fresh segment. It tries again every [`RETRY`] until the disk allows.
//! - A segment is created only after the snapshot that makes every older segment redundant is
//!   in place, or after everything before it is durable, so that a damaged tail is always in
//!   the newest segment, where start-up recognises it as cut short.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::fault::{Fault, Health, Operation};
use super::files::{FileId, Files, segment_path, sync_directory};
use crate::model::Timestamp;
use crate::store::codec::{self, LOG_MAGIC, header};
use crate::store::{self, Group, Record, Snapshot, StoreError, View, Withdrawal};
use crate::telemetry::{self, Telemetry};

/// How often a failing log tries to write everything anew.
pub const RETRY: Duration = Duration::from_secs(1);

/// What a change learns once its record is durable, or why it never will be.
type Done = oneshot::Sender<Result<(), Arc<str>>>;

enum Entry {
    /// The records of one change, framed (as a batch record if there are several), and how to
    /// undo them, oldest first.
    Change {
        bytes: Vec<u8>,
        undo: Vec<Withdrawal>,
        done: Done,
    },
    /// Start a new segment after everything before: a snapshot taken at this entry covers
    /// exactly the older segments. Answered with the new segment's number once everything
    /// before it is durable.
    Rotate(oneshot::Sender<Result<u64, Arc<str>>>),
}

#[derive(Default)]
struct Shared {
    entries: Vec<Entry>,
    /// Set while the log cannot keep changes: the answer to a change refused meanwhile.
    broken: Option<Arc<str>>,
    check_files: bool,
    stop: bool,
}

pub struct Wal {
    view: Arc<View>,
    files: Arc<Files>,
    health: Arc<Health>,
    telemetry: Arc<Telemetry>,
    shared: Mutex<Shared>,
    wake: Condvar,
    /// The number the next new segment gets.
    next_segment: AtomicU64,
    /// The size of the segment in use.
    bytes: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The segment being appended to.
struct Segment {
    file: File,
    number: u64,
    path: PathBuf,
    /// The length up to the last record known durable.
    durable_len: u64,
    len: u64,
}

impl Wal {
    /// Starts a log in a new segment `number` and the thread that writes it.
    pub fn start(
        view: Arc<View>,
        files: Arc<Files>,
        number: u64,
        health: Arc<Health>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<Wal>, Fault> {
        let wal = Arc::new(Wal {
            view,
            files,
            health,
            telemetry,
            shared: Mutex::default(),
            wake: Condvar::new(),
            next_segment: AtomicU64::new(number),
            bytes: AtomicU64::new(0),
            writer: Mutex::new(None),
        });
        let segment = wal.create_segment(wal.next_segment.fetch_add(1, Ordering::Relaxed))?;
        let writer = wal.clone();
        let handle = std::thread::Builder::new()
            .name("pushgateway-log".into())
            .spawn(move || writer.write_loop(Some(segment)))
            .map_err(|e| {
                Fault::io(
                    Operation::SegmentCreate,
                    wal.files.path(),
                    std::io::Error::other(format!("cannot start the log writer: {e}")),
                )
            })?;
        *wal.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(wal)
    }

    /// The sink that appends a change's records (used under the view's lock).
    pub fn sink(&self) -> LogSink<'_> {
        LogSink {
            wal: self,
            records: Vec::new(),
            count: 0,
            undo: Vec::new(),
            answer: None,
        }
    }

    /// The size of the segment in use.
    pub fn segment_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Has the writer look whether the files holding acknowledged data are still there.
    pub fn check_files(&self) {
        self.lock().check_files = true;
        self.wake.notify_one();
    }

    /// Takes a snapshot of the view and switches to a new segment at the same moment. Returns
    /// the snapshot and the number of the segment that continues it, once every change the
    /// snapshot holds is durable; an error if the log is failing (it then writes a snapshot of
    /// its own when it recovers).
    pub fn rotate(&self) -> Result<(Snapshot, u64), Arc<str>> {
        let (sender, receiver) = oneshot::channel();
        let mut refused = None;
        let snapshot = self.view.snapshot_with(|| {
            let mut shared = self.lock();
            match &shared.broken {
                Some(reason) => refused = Some(reason.clone()),
                None => {
                    shared.entries.push(Entry::Rotate(sender));
                    self.wake.notify_one();
                }
            }
        });
        if let Some(reason) = refused {
            return Err(reason);
        }
        let number = receiver
            .blocking_recv()
            .unwrap_or_else(|_| Err("the log writer stopped".into()))?;
        Ok((snapshot, number))
    }

    /// Writes what is pending and stops the writer (if persistence is failing, it tries once
    /// more to write everything anew first).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_one();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_loop(self: Arc<Self>, mut segment: Option<Segment>) {
        loop {
            let (entries, check, stop, broken) = {
                let mut shared = self.lock();
                while shared.entries.is_empty() && !shared.check_files && !shared.stop {
                    if shared.broken.is_some() {
                        let (guard, _) = self
                            .wake
                            .wait_timeout(shared, RETRY)
                            .unwrap_or_else(|p| p.into_inner());
                        shared = guard;
                        break;
                    }
                    shared = self.wake.wait(shared).unwrap_or_else(|p| p.into_inner());
                }
                (
                    std::mem::take(&mut shared.entries),
                    std::mem::take(&mut shared.check_files),
                    shared.stop,
                    shared.broken.clone(),
                )
            };
            match (broken, segment.as_mut()) {
                (None, Some(current)) => {
                    if let Err(Failed {
                        fault,
                        written,
                        rest,
                    }) = self.write_batch(current, entries, check)
                    {
                        self.fail(&fault, written, rest, segment.take());
                        segment = self.recover();
                    }
                }
                // Nothing is pending while the log is broken: changes and rotations are
                // refused under the same lock that sets it.
                _ => segment = self.recover(),
            }
            if stop {
                return;
            }
        }
    }

    /// Writes a batch, fsyncs it, checks the files and answers every change in it.
    fn write_batch(
        &self,
        current: &mut Segment,
        entries: Vec<Entry>,
        check: bool,
    ) -> Result<(), Failed> {
        let mut written: Vec<Written> = Vec::with_capacity(entries.len());
        let mut entries = entries.into_iter();
        while let Some(entry) = entries.next() {
            let result = match entry {
                Entry::Change { bytes, undo, done } => match current.append(&bytes) {
                    Ok(()) => {
                        written.push(Written { undo, done });
                        Ok(())
                    }
                    Err(fault) => Err((fault, Entry::Change { bytes, undo, done })),
                },
                Entry::Rotate(done) => match self.sync_and_check(current) {
                    Ok(()) => {
                        settle(std::mem::take(&mut written));
                        match self.create_segment(self.next_segment.fetch_add(1, Ordering::Relaxed))
                        {
                            Ok(next) => {
                                *current = next;
                                let _ = done.send(Ok(current.number));
                                Ok(())
                            }
                            Err(fault) => Err((fault, Entry::Rotate(done))),
                        }
                    }
                    Err(fault) => Err((fault, Entry::Rotate(done))),
                },
            };
            if let Err((fault, failed)) = result {
                let mut rest = vec![failed];
                rest.extend(entries);
                return Err(Failed {
                    fault,
                    written,
                    rest,
                });
            }
        }
        if (!written.is_empty() || check)
            && let Err(fault) = self.sync_and_check(current)
        {
            return Err(Failed {
                fault,
                written,
                rest: Vec::new(),
            });
        }
        settle(written);
        self.bytes.store(current.len, Ordering::Relaxed);
        self.telemetry
            .set(telemetry::PERSISTENCE_LOG_BYTES, &[], current.len as f64);
        Ok(())
    }

    /// Makes everything written durable, then checks that no file holding acknowledged data
    /// has vanished: data in a deleted file is gone at the next restart.
    fn sync_and_check(&self, segment: &mut Segment) -> Result<(), Fault> {
        let started = Instant::now();
        segment
            .file
            .sync_data()
            .map_err(|e| Fault::io(Operation::LogFsync, &segment.path, e))?;
        self.telemetry.observe(
            telemetry::PERSISTENCE_FSYNC_DURATION,
            &[("file", "log")],
            started.elapsed().as_secs_f64(),
        );
        if let Some(path) = self.files.vanished() {
            return Err(Fault::vanished(&path));
        }
        segment.durable_len = segment.len;
        Ok(())
    }

    /// After a fault: cuts the abandoned segment back to what was durable, withdraws every
    /// change that was not (newest first), answers their pushers, and refuses changes from
    /// now on.
    fn fail(
        &self,
        fault: &Fault,
        written: Vec<Written>,
        rest: Vec<Entry>,
        segment: Option<Segment>,
    ) {
        if let Some(segment) = segment {
            // So that a restart does not replay changes that were answered with an error.
            // Best effort: on a read-only or failing disk this fails too (see the docs).
            let _ = segment.file.set_len(segment.durable_len);
        }
        let refusal = self.health.failed(
            fault,
            "changes that were not on disk are withdrawn, and changes are refused until the gateway has written everything anew",
        );
        let answer: Arc<str> =
            format!("the change could not be persisted ({fault}); nothing was changed").into();
        let withdrawn = self.view.withdraw(|| {
            let mut shared = self.lock();
            shared.broken = Some(refusal);
            let pending = std::mem::take(&mut shared.entries);
            let mut undo = Vec::new();
            for entry in rest.into_iter().chain(pending).rev() {
                match entry {
                    Entry::Change { undo: u, done, .. } => {
                        let _ = done.send(Err(answer.clone()));
                        undo.extend(u.into_iter().rev());
                    }
                    Entry::Rotate(done) => {
                        let _ = done.send(Err(answer.clone()));
                    }
                }
            }
            for Written { undo: u, done } in written.into_iter().rev() {
                let _ = done.send(Err(answer.clone()));
                undo.extend(u.into_iter().rev());
            }
            undo
        });
        self.telemetry
            .add(telemetry::PERSISTENCE_WITHDRAWN, &[], withdrawn as f64);
    }

    /// Writes the view (exactly the acknowledged changes: nothing can change while the log
    /// is broken) as a fresh snapshot and starts a fresh segment after it. Returns the new
    /// segment, or `None` if the disk does not allow it yet.
    fn recover(&self) -> Option<Segment> {
        let number = self.next_segment.fetch_add(1, Ordering::Relaxed);
        let snapshot = self.view.snapshot();
        let result = self
            .files
            .write_snapshot(number, snapshot.groups().map(|g| &**g))
            .and_then(|_| self.create_segment(number));
        match result {
            Ok(segment) => {
                self.lock().broken = None;
                self.telemetry.set(
                    telemetry::PERSISTENCE_LAST_SNAPSHOT,
                    &[],
                    Timestamp::now().as_seconds_f64(),
                );
                self.health.recovered(&format!(
                    "wrote a snapshot of {} groups and a new log segment",
                    snapshot.len()
                ));
                Some(segment)
            }
            Err(fault) => {
                let refusal = self.health.failed(
                    &fault,
                    "changes are refused until the gateway has written everything anew",
                );
                self.lock().broken = Some(refusal);
                None
            }
        }
    }

    /// Creates segment `number`, durably, and counts it among the live files.
    fn create_segment(&self, number: u64) -> Result<Segment, Fault> {
        let path = segment_path(self.files.path(), number);
        let io = |e| Fault::io(Operation::SegmentCreate, &path, e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.write_all(&header(LOG_MAGIC, number)).map_err(io)?;
        file.sync_all()
            .map_err(|e| Fault::io(Operation::LogFsync, &path, e))?;
        sync_directory(&path)?;
        self.files
            .add_segment(number, FileId::of_file(&file).map_err(io)?);
        let len = codec::HEADER_LEN as u64;
        Ok(Segment {
            file,
            number,
            path,
            durable_len: len,
            len,
        })
    }
}

impl Segment {
    fn append(&mut self, bytes: &[u8]) -> Result<(), Fault> {
        // A record that only partly fits leaves a torn tail, which `fail` cuts off.
        self.file
            .write_all(bytes)
            .map_err(|e| Fault::io(Operation::LogWrite, &self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// A change written to the segment and waiting for its fsync.
struct Written {
    undo: Vec<Withdrawal>,
    done: Done,
}

/// A batch that hit a fault: the fault, what was written before it, and what was not.
struct Failed {
    fault: Fault,
    written: Vec<Written>,
    rest: Vec<Entry>,
}

/// Answers the changes whose records are durable, and forgets how to undo them.
fn settle(written: Vec<Written>) {
    for Written { done, .. } in written {
        let _ = done.send(Ok(()));
    }
}

/// Collects the records of a change, with how to undo each, and appends them to the log as
/// one entry when the change is complete (as one batch record if there are several, so that a
/// crash keeps all of them or none). Hands back the answer for that entry.
pub struct LogSink<'a> {
    wal: &'a Wal,
    /// The change's framed records, one after the other.
    records: Vec<u8>,
    count: usize,
    undo: Vec<Withdrawal>,
    answer: Option<oneshot::Receiver<Result<(), Arc<str>>>>,
}

impl LogSink<'_> {
    /// Waits until the change's records are durable.
    pub fn into_done(self) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let answer = self.answer;
        async move {
            match answer {
                Some(receiver) => receiver
                    .await
                    .unwrap_or_else(|_| Err("the log writer stopped".into()))
                    .map_err(StoreError::NotKept),
                None => Ok(()),
            }
        }
    }
}

impl store::Sink for LogSink<'_> {
    fn admit(&mut self) -> Result<(), StoreError> {
        match &self.wal.lock().broken {
            Some(reason) => Err(StoreError::NotKept(reason.clone())),
            None => Ok(()),
        }
    }

    fn record(&mut self, record: Record<'_>, previous: Option<&Arc<Group>>) {
        let key = match record {
            Record::Written(group) => {
                self.records.reserve(group.encoded_len() + 256);
                codec::encode_group(group, &mut self.records);
                group.key().clone()
            }
            Record::Deleted(key) => {
                codec::Record::Delete { key: key.clone() }.encode(&mut self.records);
                key.clone()
            }
        };
        self.count += 1;
        self.undo.push(Withdrawal {
            key,
            previous: previous.cloned(),
        });
    }

    fn finish(&mut self) {
        if self.count == 0 {
            return;
        }
        let bytes = if self.count == 1 {
            std::mem::take(&mut self.records)
        } else {
            let mut batch = Vec::with_capacity(self.records.len() + 16);
            codec::encode_batch(&self.records, &mut batch);
            batch
        };
        let (done, answer) = oneshot::channel();
        self.wal.lock().entries.push(Entry::Change {
            bytes,
            undo: std::mem::take(&mut self.undo),
            done,
        });
        self.wal.wake.notify_one();
        self.answer = Some(answer);
    }
}
