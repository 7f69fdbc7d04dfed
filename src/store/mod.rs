//! The metric store: groups keyed by grouping key, the consistency index, and cheap snapshots
//! for scrapes.
//!
//! Writers take one short lock: the expensive parts of a push (sanitising, validating, encoding)
//! happen before it, and inside it the work is proportional to the push and the group it
//! replaces, never to the whole store. Groups sit in a persistent map, so a snapshot is a
//! constant-time clone that later writes do not disturb. Every change is handed to the journal
//! (when persistence is on) under the same lock, so the log's order is the store's order.

mod consistency;
mod errors;
mod group;
mod prepare;
mod restore;
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

/// Receives every change to the store, in order, and returns a sequence number the caller can
/// wait on for durability.
pub trait Journal: Send + Sync {
    /// The group now holds exactly what `group` holds.
    fn group_written(&self, group: &Group) -> u64;
    /// The group with this key is gone.
    fn group_deleted(&self, key: &GroupingKey) -> u64;
}

/// A family read back from persistence.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: crate::model::MetricType,
    pub pushed_at: Timestamp,
    /// The metrics, encoded as repeated `MetricFamily.metric` fields (often a slice of the
    /// file they were read from).
    pub metrics: bytes::Bytes,
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
    journal: Option<Arc<dyn Journal>>,
    /// Set when restored data is inconsistent (written with the check off, or by upstream):
    /// then, as upstream, every push is refused and scrapes fail until deletes repair it.
    inconsistent: Option<Inconsistencies>,
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
                journal: None,
                inconsistent: None,
            }),
            own: own.into(),
            check,
        }
    }

    pub fn checks_consistency(&self) -> bool {
        self.check
    }

    /// Hands every later change to `journal`.
    pub fn set_journal(&self, journal: Arc<dyn Journal>) {
        self.lock().journal = Some(journal);
    }

    /// Loads persisted groups into an empty store (before it serves). Restored data is not
    /// refused: it is checked as a whole, and if it is inconsistent the store says so until
    /// deletes repair it. Returns the problems found.
    ///
    /// Groups are checked one after the other in grouping-key order, each against the index of
    /// those before it, which is what pushing them one by one into an empty store would find;
    /// the index is then the store's own. Preparing the families (decoding, identities) runs
    /// on the other cores ahead of applying.
    pub fn restore(&self, groups: Vec<(GroupingKey, Vec<PersistedFamily>)>) -> Inconsistencies {
        let groups = in_key_order(groups);
        let mut state = self.lock();
        if self.check {
            state
                .index
                .reserve_series(restore::series_estimate(&groups));
        }
        let mut problems = Inconsistencies::default();
        let unreadable = restore::prepare_in_order(groups, self.check, |key, families| {
            let write = Write {
                families,
                replace_all: true,
            };
            let current = state.groups.get(&key).cloned();
            if self.check && current.is_none() {
                problems.0.extend(state.apply_new_checked(&key, write).0);
                return;
            }
            if self.check {
                problems
                    .0
                    .extend(state.index.check(&write.change(current.as_deref())).0);
            }
            state.apply(&key, current, write, Timestamp::ZERO);
        });
        problems.0.extend(unreadable);
        if self.check && !problems.is_empty() {
            state.inconsistent = Some(problems.clone());
        }
        problems
    }

    /// Applies a push, or refuses it. A refused push still changes the group, as upstream's
    /// does: `push_failure_time_seconds` is set to the push time, and a group that did not exist
    /// is created with `push_time_seconds 0`, so that failed pushes can be alerted on.
    ///
    /// On success, returns the journal's sequence number of the change (to wait for before
    /// acknowledging), if there is a journal.
    pub fn push(&self, push: Push) -> Result<Option<u64>, Rejection> {
        let prepared = prepare(&push.key, push.families, self.check);
        let mut state = self.lock();
        if let Some(problems) = state.inconsistent.clone() {
            state.record_failure(&push.key, push.time, self.check);
            return Err(problems.into());
        }
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
        Ok(state.apply(&push.key, current, write, push.time))
    }

    /// Deletes exactly the group with this key. Returns the journal's sequence number of the
    /// deletion, if the group existed and there is a journal.
    pub fn delete(&self, key: &GroupingKey) -> Option<u64> {
        let mut state = self.lock();
        let sequence = state.remove(key);
        if state.inconsistent.is_some() {
            // Maybe this was the culprit: look again (only ever in this rare state).
            state.revalidate(&self.own, self.check);
        }
        sequence
    }

    /// Deletes every group at once (the admin API's wipe); a push racing with it lands either
    /// before (and is wiped) or after. Returns the journal's sequence number of the last
    /// deletion, if anything was deleted and there is a journal.
    pub fn wipe(&self) -> Option<u64> {
        let mut state = self.lock();
        let keys: Vec<GroupingKey> = state.groups.keys().cloned().collect();
        let mut last = None;
        for key in &keys {
            last = state.remove(key).or(last);
        }
        if state.inconsistent.is_some() {
            state.revalidate(&self.own, self.check);
        }
        last
    }

    /// A consistent view of every group as of now.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(|| ())
    }

    /// A snapshot, with `at_the_same_moment` run while no change can happen (so that, for
    /// example, a log segment switch falls exactly between the changes the snapshot holds and
    /// those it does not).
    pub fn snapshot_with(&self, at_the_same_moment: impl FnOnce()) -> Snapshot {
        let state = self.lock();
        at_the_same_moment();
        Snapshot::new(state.generation, state.groups.clone())
    }

    /// Whether a snapshot can be exposed, as upstream decides at every scrape: with the check
    /// off, the whole snapshot is checked; with it on, only restored inconsistent data stands
    /// in the way.
    pub fn exposable(&self, snapshot: &Snapshot) -> Result<(), Inconsistencies> {
        let problems = if self.check {
            self.lock().inconsistent.clone().unwrap_or_default()
        } else {
            snapshot::validate(snapshot, &self.own)
        };
        problems.into_result()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: every change is
        // computed first and then swapped in. So a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The groups sorted by key, the last one winning where a key repeats (as applying them in
/// turn would leave it). Persistence hands them over sorted and unique already.
fn in_key_order(
    groups: Vec<(GroupingKey, Vec<PersistedFamily>)>,
) -> Vec<(GroupingKey, Vec<PersistedFamily>)> {
    if groups.is_sorted_by(|a, b| a.0 < b.0) {
        return groups;
    }
    let unique: std::collections::BTreeMap<_, _> = groups.into_iter().collect();
    unique.into_iter().collect()
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

    /// Swaps in the group that results from `write`, keeping the index in step, and journals
    /// it.
    fn apply(
        &mut self,
        key: &GroupingKey,
        current: Option<Arc<Group>>,
        write: Write,
        time: Timestamp,
    ) -> Option<u64> {
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
        let sequence = self.journal.as_ref().map(|j| j.group_written(&group));
        self.groups.insert(key.clone(), Arc::new(group));
        self.generation += 1;
        sequence
    }

    /// What `index.check` and then `apply` do for a group that does not exist yet (restoring),
    /// in one pass over the index. Returns what the check found; the group is stored either way.
    fn apply_new_checked(&mut self, key: &GroupingKey, write: Write) -> Inconsistencies {
        let id = self.new_group_id();
        let change = write.change(None);
        let group = Group::build(key, id, &change, Timestamp::ZERO, &self.index);
        let problems = self.index.check_and_add_new(id, &change, &group);
        if let Some(journal) = &self.journal {
            journal.group_written(&group);
        }
        self.groups.insert(key.clone(), Arc::new(group));
        self.generation += 1;
        problems
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

    fn remove(&mut self, key: &GroupingKey) -> Option<u64> {
        let group = self.groups.remove(key)?;
        for family in group.families() {
            let series: Vec<_> = if self.index.tracks_series() {
                group.series_ids(family).collect()
            } else {
                Vec::new()
            };
            self.index.remove_family(group.id(), &family.name, series);
        }
        self.generation += 1;
        self.journal.as_ref().map(|j| j.group_deleted(key))
    }

    /// Checks the whole store again; when it is consistent, rebuilds the index from scratch
    /// (its counts may be off after inconsistent data) and leaves the inconsistent state.
    fn revalidate(&mut self, own: &[OwnFamily], check: bool) {
        let snapshot = Snapshot::new(self.generation, self.groups.clone());
        let problems = snapshot::validate(&snapshot, own);
        if !problems.is_empty() {
            self.inconsistent = Some(problems);
            return;
        }
        let mut index = Index::new(own, check);
        for group in self.groups.values() {
            for family in group.families() {
                let series: Vec<_> = group.series_ids(family).collect();
                index.add_family(
                    group.id(),
                    &family.name,
                    family.kind,
                    family.help.as_ref(),
                    &series,
                );
            }
        }
        self.index = index;
        self.inconsistent = None;
        tracing::info!("the store is consistent again");
    }
}
