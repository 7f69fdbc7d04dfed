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
pub mod codec;
mod consistency;
mod encoding;
mod errors;
mod group;
mod limits;
mod memory;
mod prepare;
mod restore;
mod series;
mod snapshot;
mod view;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use backend::{
    Applied, Backend, Commit, Discard, PersistedFamily, PersistedGroup, Record, Sink, StoreError,
    Withdrawal,
};
pub use consistency::OwnFamily;
pub use encoding::{CorruptMetrics, MetricIter};
pub use errors::{Inconsistencies, Inconsistency, Rejection};
pub use group::{Group, GroupId, GroupMeta, Holder, MAX_GROUP_BYTES, StoredFamily};
pub use limits::{Limit, LimitExceeded, Policy, Quota, QuotaLimit};
pub use memory::Memory;
pub use prepare::{PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP};
pub use restore::check_metrics;
pub use snapshot::{LeftOut, MergedFamily, Snapshot};
pub use view::{Exclusion, Plan, Proposal, Totals, View};

use prepare::{PreparedFamily, prepare};

use crate::model::proto::MetricFamily;
use crate::model::{GroupingKey, Selector, Timestamp};

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
    /// `Pushgateway-Expire-After`, if the push carries one (zero: never).
    pub expire_after: Option<Duration>,
    /// Who pushes, as the authorization rules name the requester (with an authorization
    /// file), and what the rules let it hold.
    pub holder: Option<Holder>,
    pub quota: Option<Quota>,
}

/// A push turned into what the store keeps, or the reason it cannot be kept (which the store
/// still records as a failed push of the group).
#[derive(Debug, Clone)]
pub struct PreparedPush {
    key: GroupingKey,
    mode: PushMode,
    time: Timestamp,
    expire_after: Option<Duration>,
    holder: Option<Holder>,
    quota: Option<Quota>,
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
    /// Deletes every group the selector matches (of those in `only`, when given), in one step.
    DeleteMatching {
        selector: Selector,
        only: Option<BTreeSet<GroupingKey>>,
    },
    /// Deletes the groups whose deadline is `now` or earlier, soonest first, at most `limit`
    /// of them.
    Expire {
        now: Timestamp,
        limit: usize,
    },
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
            expire_after: push.expire_after,
            holder: push.holder,
            quota: push.quota,
        }
    }

    /// Applies a push, or refuses it; answers once the backend has kept it.
    pub async fn push(&self, push: PreparedPush) -> Result<(), StoreError> {
        self.backend.commit(Change::Push(push)).await.map(drop)
    }

    /// Deletes exactly the group with this key; answers once the backend has kept that.
    pub async fn delete(&self, key: GroupingKey) -> Result<(), StoreError> {
        self.backend.commit(Change::Delete(key)).await.map(drop)
    }

    /// Deletes every group; answers once the backend has kept that.
    pub async fn wipe(&self) -> Result<(), StoreError> {
        self.backend.commit(Change::Wipe).await.map(drop)
    }

    /// Deletes every group the selector matches (of `only`, when given) in one step; answers
    /// with the groups deleted once the backend has kept that.
    pub async fn delete_matching(
        &self,
        selector: Selector,
        only: Option<BTreeSet<GroupingKey>>,
    ) -> Result<Vec<GroupingKey>, StoreError> {
        let change = Change::DeleteMatching { selector, only };
        Ok(self.backend.commit(change).await?.deleted)
    }

    /// Deletes the groups whose deadline has passed, soonest first, at most `limit` of them;
    /// answers with them once the backend has kept that.
    pub async fn expire(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<GroupingKey>, StoreError> {
        let change = Change::Expire { now, limit };
        Ok(self.backend.commit(change).await?.deleted)
    }

    /// The soonest time a group expires, if any does.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.view.next_deadline()
    }

    /// Whether the store is ready to serve (see [`Backend::ready`]).
    pub fn ready(&self) -> bool {
        self.backend.ready()
    }

    /// How many groups and series the store holds.
    pub fn totals(&self) -> Totals {
        self.view.totals()
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
