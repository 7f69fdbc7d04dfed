//! Where the store's changes are kept, and when a change counts as done.
//!
//! The HTTP layer asks the [`Store`](super::Store) for a change and gets its answer only when the
//! backend says the change is done; it never learns which backend runs. A backend chooses one
//! of two orders:
//!
//! - **Apply, then keep** (no persistence, and the single-node store with its write-ahead log):
//!   the [`View`](super::View) checks and applies the change under its lock and hands every
//!   resulting [`Record`] to the backend's [`Sink`] inside the same critical section, so the
//!   backend receives records in exactly the view's order. The change is done when the backend
//!   has its records durable.
//! - **Propose, then apply** (a replicated log): the view plans the change against what it has
//!   seen, the backend proposes the resulting records to the log on condition that the groups
//!   are still at the revisions they were planned against, and the view applies what the log
//!   delivers. The change is done when the log holds it and this view has applied it.
//!
//! Either way the unit of keeping is one [`Record`]: a group's whole new content, or its
//! deletion; replaying records in order rebuilds the store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::Rejection;
use super::group::{Group, GroupMeta};
use super::limits::LimitExceeded;
use crate::model::{GroupingKey, MetricType, Timestamp};

/// A change's outcome, as the backend reports it once the change is done (or cannot be).
pub type Commit<'a> = Pin<Box<dyn Future<Output = Result<Applied, StoreError>> + Send + 'a>>;

/// What a change did, as far as its caller needs to know.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The groups a deletion, an expiry or a bulk deletion removed.
    pub deleted: Vec<GroupingKey>,
}

/// Keeps the store's changes.
pub trait Backend: Send + Sync {
    /// Makes `change` happen, and resolves once it counts as done: `Ok` only when the change
    /// would survive whatever the backend promises to survive.
    fn commit(&self, change: super::Change) -> Commit<'_>;

    /// Whether the backend is ready to serve (`/-/ready`): a replicated backend is once its
    /// view has caught up with the log.
    fn ready(&self) -> bool {
        true
    }
}

/// Receives, under the view's lock, every record a change makes.
pub trait Sink {
    /// Asked under the view's lock before a change touches anything: whether the backend can
    /// keep changes now. A refusal leaves the view exactly as it was.
    fn admit(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The view has just made `record`; `previous` is what the group held before (`None`: it
    /// did not exist), for a backend that may have to withdraw the change.
    fn record(&mut self, record: Record<'_>, previous: Option<&Arc<Group>>);
    /// The change is complete (still under the view's lock): a backend that keeps the records
    /// of one change as one unit closes it here.
    fn finish(&mut self) {}
}

/// A sink for records nobody keeps (restoring, and backends that keep nothing).
pub struct Discard;

impl Sink for Discard {
    fn record(&mut self, _record: Record<'_>, _previous: Option<&Arc<Group>>) {}
}

/// A change that a backend could not keep, to be undone: the group goes back to `previous`.
#[derive(Debug)]
pub struct Withdrawal {
    pub key: GroupingKey,
    pub previous: Option<Arc<Group>>,
}

/// One change to one group, as backends keep it.
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    /// The group now holds exactly what this group holds.
    Written(&'a Arc<Group>),
    /// The group with this key is gone.
    Deleted(&'a GroupingKey),
}

/// Why a change did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The change itself is not acceptable (invalid or inconsistent metrics).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A limit or quota would be exceeded; nothing changed.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The group would be larger than the backend can keep.
    #[error(
        "the group would take {bytes} bytes, more than {what} ({limit} bytes); nothing was changed"
    )]
    TooLarge {
        bytes: usize,
        limit: usize,
        what: &'static str,
    },
    /// The backend cannot keep the change.
    #[error("{0}")]
    NotKept(Arc<str>),
}

/// A group read back by a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedGroup {
    pub key: GroupingKey,
    pub meta: GroupMeta,
    pub families: Vec<PersistedFamily>,
}

/// A family read back by a backend.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub pushed_at: Timestamp,
    /// The metrics, encoded as repeated `MetricFamily.metric` fields (often a slice of the
    /// file they were read from).
    pub metrics: bytes::Bytes,
}
