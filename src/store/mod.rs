//! The metric store: groups keyed by grouping key, checked for consistency as upstream checks
//! them, and kept by a backend that decides when a change counts as done.
//!
//! A push flows one way through here: [`Store::prepare`] turns decoded families into what the
//! store keeps (outside any lock, so it costs the pusher), [`Store::push`] hands the change to
//! the [`Backend`], which applies it to the [`View`] and keeps it, and answers only when the
//! change is done. Scrapes read [`Snapshot`]s of the view, which later writes do not disturb.
//!
//! The store knows no files and no network: persistence and replication plug in as backends.

mod backend;
mod consistency;
mod encoding;
mod errors;
mod group;
mod memory;
mod prepare;
mod restore;
mod series;
mod snapshot;
mod view;

use std::sync::Arc;

pub use backend::{
    Backend, Commit, Discard, PersistedFamily, Record, Sink, StoreError, Withdrawal,
};
pub use consistency::OwnFamily;
pub use encoding::{CorruptMetrics, MetricIter};
pub use errors::{Inconsistencies, Inconsistency, Rejection};
pub use group::{Group, GroupId, MAX_GROUP_BYTES, StoredFamily};
pub use memory::Memory;
pub use prepare::{PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP};
pub use snapshot::{MergedFamily, Snapshot};
pub use view::View;

use prepare::{PreparedFamily, prepare};

use crate::model::proto::MetricFamily;
use crate::model::{GroupingKey, Timestamp};

/// PUT replaces the whole group; POST replaces only the families it pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMode {
    Replace,
    Merge,
}

/// A decoded push.
#[derive(Debug, Clone)]
pub struct Push {
    pub key: GroupingKey,
    pub families: Vec<MetricFamily>,
    pub mode: PushMode,
    pub time: Timestamp,
}

/// A push turned into what the store keeps, or the reason it cannot be kept (which the store
/// still records as a failed push of the group).
#[derive(Debug)]
pub struct PreparedPush {
    key: GroupingKey,
    mode: PushMode,
    time: Timestamp,
    families: Result<Vec<PreparedFamily>, Rejection>,
}

/// One change to the store, as a backend carries it out.
#[derive(Debug)]
pub enum Change {
    Push(PreparedPush),
    /// Deletes exactly the group with this key.
    Delete(GroupingKey),
    /// Deletes every group (the admin API's wipe).
    Wipe,
}

/// The store the HTTP layer talks to.
pub struct Store {
    view: Arc<View>,
    backend: Arc<dyn Backend>,
}

impl Store {
    pub fn new(view: Arc<View>, backend: Arc<dyn Backend>) -> Self {
        Store { view, backend }
    }

    /// A store without persistence.
    pub fn in_memory(view: Arc<View>) -> Self {
        let backend = Arc::new(Memory::new(view.clone()));
        Store::new(view, backend)
    }

    pub fn checks_consistency(&self) -> bool {
        self.view.checks_consistency()
    }

    /// Sanitises, validates and encodes a push (the expensive part, done before any lock).
    pub fn prepare(&self, push: Push) -> PreparedPush {
        PreparedPush {
            families: prepare(&push.key, push.families, self.view.checks_consistency()),
            key: push.key,
            mode: push.mode,
            time: push.time,
        }
    }

    /// Applies a push, or refuses it; answers once the backend has kept it.
    pub async fn push(&self, push: PreparedPush) -> Result<(), StoreError> {
        self.backend.commit(Change::Push(push)).await
    }

    /// Deletes exactly the group with this key; answers once the backend has kept that.
    pub async fn delete(&self, key: GroupingKey) -> Result<(), StoreError> {
        self.backend.commit(Change::Delete(key)).await
    }

    /// Deletes every group; answers once the backend has kept that.
    pub async fn wipe(&self) -> Result<(), StoreError> {
        self.backend.commit(Change::Wipe).await
    }

    /// A consistent view of every group as of now.
    pub fn snapshot(&self) -> Snapshot {
        self.view.snapshot()
    }

    /// Whether a snapshot can be exposed (see [`View::exposable`]).
    pub fn exposable(&self, snapshot: &Snapshot) -> Result<(), Inconsistencies> {
        self.view.exposable(snapshot)
    }
}
