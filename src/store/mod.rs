//! The metric store: groups keyed by grouping key, the consistency index, and cheap snapshots
//! for scrapes.
//!
//! Writers take one short lock: the expensive parts of a push (sanitising, validating, encoding)
//! happen before it, and inside it the work is proportional to the push and the group it
//! replaces, never to the whole store. Groups sit in a persistent map, so a snapshot is a
//! constant-time clone that later writes do not disturb.

mod consistency;
mod errors;
mod group;
mod prepare;
mod snapshot;

use std::sync::{Arc, Mutex, MutexGuard};

use imbl::OrdMap;

pub use consistency::OwnFamily;
pub use errors::{Inconsistencies, Inconsistency, Rejection};
pub use group::{CorruptMetrics, Group, GroupId, MAX_GROUP_BYTES, MetricIter, StoredFamily};
pub use prepare::{PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP};
pub use snapshot::{MergedFamily, Snapshot};

use consistency::{GroupChange, Index};
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

pub struct Store {
    state: Mutex<State>,
    own: Arc<[OwnFamily]>,
    check: bool,
}

struct State {
    groups: OrdMap<GroupingKey, Arc<Group>>,
    index: Index,
    /// Incremented by every change, so that scrapes can tell whether cached output is current.
    generation: u64,
    next_group_id: u64,
}

/// A write the store is about to apply to one group.
struct Write {
    families: Vec<PreparedFamily>,
    replace_all: bool,
}

/// PUT keeps only this family of the old group (the push time is always written anew).
const KEPT_ON_REPLACE: &[&str] = &[PUSH_FAILURE_TIME];

impl Store {
    /// A store that rejects inconsistent pushes when `check` is set, as upstream does unless
    /// `--push.disable-consistency-check` is given. `own` lists the gateway's own families,
    /// which pushes must not contradict.
    pub fn new(own: &[OwnFamily], check: bool) -> Self {
        Store {
            state: Mutex::new(State {
                groups: OrdMap::new(),
                index: Index::new(own, check),
                generation: 0,
                next_group_id: 1,
            }),
            own: own.into(),
            check,
        }
    }

    pub fn checks_consistency(&self) -> bool {
        self.check
    }

    /// Applies a push, or refuses it. A refused push still changes the group, as upstream's
    /// does: `push_failure_time_seconds` is set to the push time, and a group that did not exist
    /// is created with `push_time_seconds 0`, so that failed pushes can be alerted on.
    pub fn push(&self, push: Push) -> Result<(), Rejection> {
        let prepared = prepare(&push.key, push.families, self.check);
        let mut state = self.lock();
        let families = match prepared {
            Ok(families) => families,
            Err(rejection) => {
                state.record_failure(&push.key, push.time, self.check);
                return Err(rejection);
            }
        };
        let current = state.groups.get(&push.key).cloned();
        let mut write = Write {
            families,
            replace_all: push.mode == PushMode::Replace,
        };
        write.add_timestamp(&push.key, PUSH_TIME, push.time, self.check);
        if current.is_none() {
            write.add_timestamp(&push.key, PUSH_FAILURE_TIME, Timestamp::ZERO, self.check);
        }
        let change = write.change(current.as_deref());
        let rejection = if Group::size_after(&change) > MAX_GROUP_BYTES {
            Some(Rejection::GroupTooLarge)
        } else if self.check {
            let problems = state.index.check(&change);
            (!problems.is_empty()).then(|| problems.into())
        } else {
            None
        };
        if let Some(rejection) = rejection {
            state.record_failure(&push.key, push.time, self.check);
            return Err(rejection);
        }
        state.apply(&push.key, current, write, push.time);
        Ok(())
    }

    /// Deletes exactly the group with this key; returns whether it existed.
    pub fn delete(&self, key: &GroupingKey) -> bool {
        let mut state = self.lock();
        state.remove(key)
    }

    /// A consistent view of every group as of now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot::new(state.generation, state.groups.clone())
    }

    /// Checks a whole snapshot the way upstream checks at every scrape. Only needed when pushes
    /// are not checked, because then the store may hold anything.
    pub fn validate(&self, snapshot: &Snapshot) -> Inconsistencies {
        snapshot::validate(snapshot, &self.own)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: every change is
        // computed first and then swapped in. So a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Write {
    fn add_timestamp(
        &mut self,
        key: &GroupingKey,
        name: &'static str,
        time: Timestamp,
        series: bool,
    ) {
        let gauge = PreparedFamily::timestamp_gauge(name, key, time.as_seconds_f64(), series);
        let at = self
            .families
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .unwrap_or_else(|i| i);
        self.families.insert(at, gauge);
    }

    fn change<'a>(&'a self, current: Option<&'a Group>) -> GroupChange<'a> {
        GroupChange {
            current,
            families: &self.families,
            replace_all: self.replace_all,
            kept_on_replace: KEPT_ON_REPLACE,
        }
    }
}

impl State {
    fn new_group_id(&mut self) -> GroupId {
        let id = GroupId(self.next_group_id);
        self.next_group_id += 1;
        id
    }

    /// Swaps in the group that results from `write`, keeping the index in step.
    fn apply(
        &mut self,
        key: &GroupingKey,
        current: Option<Arc<Group>>,
        write: Write,
        time: Timestamp,
    ) {
        let id = match &current {
            Some(group) => group.id(),
            None => self.new_group_id(),
        };
        if let Some(group) = &current {
            let change = write.change(Some(group));
            for family in group.families() {
                if change.drops_current(&family.name) {
                    let series: Vec<_> = if self.index.tracks_series() {
                        group.series_ids(family).collect()
                    } else {
                        Vec::new()
                    };
                    self.index.remove_family(id, &family.name, series);
                }
            }
        }
        let group = Group::build(
            key,
            id,
            &write.change(current.as_deref()),
            time,
            &self.index,
        );
        for written in &write.families {
            if let Some(stored) = group.family(&written.name) {
                self.index.add_family(
                    id,
                    &stored.name,
                    stored.kind,
                    stored.help.as_ref(),
                    &written.series,
                );
            }
        }
        self.groups.insert(key.clone(), Arc::new(group));
        self.generation += 1;
    }

    fn record_failure(&mut self, key: &GroupingKey, time: Timestamp, check: bool) {
        let current = self.groups.get(key).cloned();
        let mut write = Write {
            families: Vec::new(),
            replace_all: false,
        };
        write.add_timestamp(key, PUSH_FAILURE_TIME, time, check);
        if current.is_none() {
            write.add_timestamp(key, PUSH_TIME, Timestamp::ZERO, check);
            // Upstream creates the group even when its timestamp gauges clash with another
            // group's (`{job="a"}` next to `{job="a",instance=""}`), which breaks every later
            // scrape. The failure is reported to the pusher either way; we do not store it.
            if check && !self.index.check(&write.change(None)).is_empty() {
                return;
            }
        }
        self.apply(key, current, write, time);
    }

    fn remove(&mut self, key: &GroupingKey) -> bool {
        let Some(group) = self.groups.remove(key) else {
            return false;
        };
        for family in group.families() {
            let series: Vec<_> = if self.index.tracks_series() {
                group.series_ids(family).collect()
            } else {
                Vec::new()
            };
            self.index.remove_family(group.id(), &family.name, series);
        }
        self.generation += 1;
        true
    }
}
