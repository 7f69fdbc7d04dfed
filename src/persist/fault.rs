//! Storage faults: what went wrong with the files (a full disk, a read-only or vanished file, a
//! failed fsync), and the health that the gateway's own metrics and log lines report, so that
//! an operator sees which fault is happening and since when.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::Timestamp;
use crate::telemetry::{self, Telemetry};

/// While persistence keeps failing, a reminder is logged this often (each attempt is counted).
const REMINDER: Duration = Duration::from_secs(60);

/// What kind of fault, as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No space left (or quota exceeded).
    DiskFull,
    /// The file system is mounted read-only.
    ReadOnly,
    /// Permissions forbid writing.
    PermissionDenied,
    /// An fsync failed: the kernel may have dropped the data it could not write, so nothing
    /// written since the last good fsync may be trusted, even if a later fsync succeeds.
    FsyncFailed,
    /// A file holding acknowledged data was deleted or replaced while the gateway ran.
    FileVanished,
    /// Any other I/O error (EIO and the like).
    IoError,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::DiskFull,
        FaultKind::ReadOnly,
        FaultKind::PermissionDenied,
        FaultKind::FsyncFailed,
        FaultKind::FileVanished,
        FaultKind::IoError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::DiskFull => "disk_full",
            FaultKind::ReadOnly => "read_only",
            FaultKind::PermissionDenied => "permission_denied",
            FaultKind::FsyncFailed => "fsync_failed",
            FaultKind::FileVanished => "file_vanished",
            FaultKind::IoError => "io_error",
        }
    }

    fn of(err: &std::io::Error) -> FaultKind {
        match err.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => FaultKind::DiskFull,
            Some(libc::EROFS) => FaultKind::ReadOnly,
            Some(libc::EACCES | libc::EPERM) => FaultKind::PermissionDenied,
            _ => FaultKind::IoError,
        }
    }
}

/// What the gateway was doing when the fault happened (the `operation` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    LogWrite,
    LogFsync,
    SegmentCreate,
    SnapshotWrite,
    SnapshotFsync,
    SnapshotRename,
    DirectoryFsync,
    FileCheck,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::LogWrite => "log_write",
            Operation::LogFsync => "log_fsync",
            Operation::SegmentCreate => "segment_create",
            Operation::SnapshotWrite => "snapshot_write",
            Operation::SnapshotFsync => "snapshot_fsync",
            Operation::SnapshotRename => "snapshot_rename",
            Operation::DirectoryFsync => "directory_fsync",
            Operation::FileCheck => "file_check",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Operation::LogWrite => "write to the log",
            Operation::LogFsync => "fsync the log",
            Operation::SegmentCreate => "create a log segment",
            Operation::SnapshotWrite => "write a snapshot",
            Operation::SnapshotFsync => "fsync a snapshot",
            Operation::SnapshotRename => "rename a snapshot into place",
            Operation::DirectoryFsync => "fsync the directory",
            Operation::FileCheck => "find a persistence file",
        }
    }

    fn is_fsync(self) -> bool {
        matches!(
            self,
            Operation::LogFsync | Operation::SnapshotFsync | Operation::DirectoryFsync
        )
    }
}

/// A storage fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: cannot {} {path}: {detail}", operation.describe(), kind = kind.as_str())]
pub struct Fault {
    pub kind: FaultKind,
    pub operation: Operation,
    path: String,
    detail: String,
}

impl Fault {
    pub fn io(operation: Operation, path: &Path, err: std::io::Error) -> Fault {
        let mut kind = FaultKind::of(&err);
        if operation.is_fsync() && kind != FaultKind::DiskFull {
            kind = FaultKind::FsyncFailed;
        }
        Fault {
            kind,
            operation,
            path: path.display().to_string(),
            detail: err.to_string(),
        }
    }

    pub fn vanished(path: &Path) -> Fault {
        Fault {
            kind: FaultKind::FileVanished,
            operation: Operation::FileCheck,
            path: path.display().to_string(),
            detail: "it was deleted or replaced while the gateway ran".to_string(),
        }
    }
}

/// Whether persistence can keep changes, reported through metrics and log lines.
pub struct Health {
    telemetry: Arc<Telemetry>,
    failing: Mutex<Option<Failing>>,
}

struct Failing {
    since: Timestamp,
    started: Instant,
    fault: Fault,
    reminded: Instant,
}

impl Health {
    pub fn new(telemetry: Arc<Telemetry>) -> Health {
        telemetry.set(telemetry::PERSISTENCE_HEALTHY, &[], 1.0);
        telemetry.set(telemetry::PERSISTENCE_FAILING_SINCE, &[], 0.0);
        for kind in FaultKind::ALL {
            telemetry.set(
                telemetry::PERSISTENCE_FAULT,
                &[("kind", kind.as_str())],
                0.0,
            );
        }
        Health {
            telemetry,
            failing: Mutex::new(None),
        }
    }

    /// Counts a fault. The first of a run is logged as an error with what the gateway does
    /// about it; while faults go on, a reminder follows every minute. Returns the answer for
    /// changes refused while it lasts.
    pub fn failed(&self, fault: &Fault, consequence: &str) -> Arc<str> {
        self.count(fault);
        let mut failing = self.lock();
        let since = match &mut *failing {
            None => {
                tracing::error!(err = %fault, "persistence failed; {consequence}");
                let since = Timestamp::now();
                *failing = Some(Failing {
                    since,
                    started: Instant::now(),
                    fault: fault.clone(),
                    reminded: Instant::now(),
                });
                self.telemetry.set(telemetry::PERSISTENCE_HEALTHY, &[], 0.0);
                self.telemetry.set(
                    telemetry::PERSISTENCE_FAILING_SINCE,
                    &[],
                    since.as_seconds_f64(),
                );
                since
            }
            Some(current) => {
                if current.reminded.elapsed() >= REMINDER {
                    tracing::warn!(err = %fault, since = %current.since.rfc3339_millis(), "persistence still failing; {consequence}");
                    current.reminded = Instant::now();
                }
                current.fault = fault.clone();
                current.since
            }
        };
        for kind in FaultKind::ALL {
            let value = if kind == fault.kind { 1.0 } else { 0.0 };
            self.telemetry.set(
                telemetry::PERSISTENCE_FAULT,
                &[("kind", kind.as_str())],
                value,
            );
        }
        format!(
            "persistence has been failing since {} ({fault}); nothing was changed, and changes are accepted again once the files can be written",
            since.rfc3339_millis()
        )
        .into()
    }

    /// Counts a fault that does not stop changes from being kept (a snapshot that failed
    /// while the log keeps every change).
    pub fn count(&self, fault: &Fault) {
        self.telemetry.increment(
            telemetry::PERSISTENCE_ERRORS,
            &[
                ("kind", fault.kind.as_str()),
                ("operation", fault.operation.as_str()),
            ],
        );
    }

    /// Persistence works again.
    pub fn recovered(&self, how: &str) {
        let Some(failing) = self.lock().take() else {
            return;
        };
        tracing::info!(
            failing_since = %failing.since.rfc3339_millis(),
            seconds = failing.started.elapsed().as_secs_f64(),
            last_err = %failing.fault,
            "persistence works again; {how}"
        );
        self.telemetry.set(telemetry::PERSISTENCE_HEALTHY, &[], 1.0);
        self.telemetry
            .set(telemetry::PERSISTENCE_FAILING_SINCE, &[], 0.0);
        self.telemetry.set(
            telemetry::PERSISTENCE_FAULT,
            &[("kind", failing.fault.kind.as_str())],
            0.0,
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }
}
