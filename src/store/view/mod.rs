//! The view: every group in memory, the consistency index, what limits and expiry need to
//! know, and cheap snapshots for scrapes.
//!
//! Writers take one short lock: the expensive parts of a push (sanitising, validating,
//! encoding) happen before it, and inside it the work is proportional to the push and the
//! group it replaces, never to the whole store. Groups sit in a persistent map, so a snapshot
//! is a constant-time clone that later writes do not disturb.
//!
//! Invariants:
//! - Every change the view makes is handed to the backend's [`Sink`] inside the same critical
//!   section, so the backend sees changes in exactly the view's order.
//! - Every change of the group map goes through [`State::insert_group`] and
//!   [`State::remove_group`], which keep the counts (for limits) and the deadlines (for
//!   expiry) in step with it.

mod replicated;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use imbl::OrdMap;

use super::backend::{Applied, Discard, PersistedGroup, Record, Sink, StoreError, Withdrawal};
use super::consistency::{Index, OwnFamily};
use super::errors::Inconsistencies;
use super::group::{Group, GroupChange, GroupId, GroupMeta, MAX_GROUP_BYTES, StoredFamily};
use super::limits::{self, Counts, Policy};
use super::prepare::{PUSH_FAILURE_TIME, PUSH_TIME, PreparedFamily};
use super::series::SeriesId;
use super::snapshot::{self, LeftOut, Snapshot};
use super::{Change, PreparedPush, PushMode, Rejection, restore};
use crate::model::{GroupingKey, Timestamp};
pub use replicated::{Exclusion, Plan, Proposal};

pub struct View {
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
    /// Set when restored data is inconsistent (written with the check off, or by upstream):
    /// then, as upstream, every push is refused and scrapes fail until deletes repair it.
    inconsistent: Option<Inconsistencies>,
    policy: Policy,
    counts: Counts,
    /// When each group that expires does so, soonest first.
    deadlines: BTreeSet<(Timestamp, GroupingKey)>,
    /// With a replicated backend: each key's revision in the log (of its last write or
    /// deletion), the last revision applied, and the families left out of the scrape because
    /// they clash (see [`replicated`]).
    revisions: HashMap<GroupingKey, u64>,
    applied: u64,
    left_out: OrdMap<GroupingKey, Arc<LeftOut>>,
}

/// The store's totals, for the gateway's own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub groups: usize,
    pub series: usize,
}

/// A write the view is about to apply to one group.
struct Write {
    families: Vec<PreparedFamily>,
    replace_all: bool,
    meta: GroupMeta,
}

/// A write decided for one group: what it holds now, and what the write puts there.
struct Planned {
    key: GroupingKey,
    current: Option<Arc<Group>>,
    write: Write,
    time: Timestamp,
}

/// What a push does.
enum Decision {
    Write(Planned),
    /// Refused: the error for the pusher, and the failure to record in the group, if any.
    Refuse {
        error: StoreError,
        failure: Option<Planned>,
    },
}

/// PUT keeps only this family of the old group (the push time is always written anew).
const KEPT_ON_REPLACE: &[&str] = &[PUSH_FAILURE_TIME];

impl View {
    /// A view that rejects inconsistent pushes when `check` is set, as upstream does unless
    /// `--push.disable-consistency-check` is given, and enforces `policy`. `own` lists the
    /// gateway's own families, which pushes must not contradict.
    pub fn new(own: &[OwnFamily], check: bool, policy: Policy) -> Self {
        View {
            state: Mutex::new(State {
                groups: OrdMap::new(),
                index: Index::new(own, check),
                generation: 0,
                next_group_id: 1,
                inconsistent: None,
                policy,
                counts: Counts::default(),
                deadlines: BTreeSet::new(),
                revisions: HashMap::new(),
                applied: 0,
                left_out: OrdMap::new(),
            }),
            own: own.into(),
            check,
        }
    }

    pub fn checks_consistency(&self) -> bool {
        self.check
    }

    /// Loads persisted groups into an empty view (before it serves). Restored data is not
    /// refused: it is checked as a whole, and if it is inconsistent the view says so until
    /// deletes repair it. Returns the problems found.
    ///
    /// Groups are checked one after the other in grouping-key order, each against the index of
    /// those before it, which is what pushing them one by one into an empty store would find;
    /// the index is then the view's own. Preparing the families (decoding, identities) runs
    /// on the other cores ahead of applying.
    pub fn restore(&self, groups: Vec<PersistedGroup>) -> Inconsistencies {
        let groups = in_key_order(groups);
        let mut state = self.lock();
        if self.check {
            state
                .index
                .reserve_series(restore::series_estimate(&groups));
        }
        let mut problems = Inconsistencies::default();
        let unreadable = restore::prepare_in_order(groups, self.check, |key, meta, families| {
            let write = Write {
                families,
                replace_all: true,
                meta,
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
            state.apply(&key, current, write, Timestamp::ZERO, &mut Discard);
        });
        problems.0.extend(unreadable);
        if self.check && !problems.is_empty() {
            state.inconsistent = Some(problems.clone());
        }
        problems
    }

    /// Checks `change` and applies it, handing every resulting record to `sink` before the
    /// lock is released.
    ///
    /// A push refused as invalid or inconsistent still changes the group, as upstream's does:
    /// `push_failure_time_seconds` is set to the push time, and a group that did not exist is
    /// created with `push_time_seconds 0`, so that failed pushes can be alerted on. A push
    /// refused by a limit changes nothing.
    pub fn apply(&self, change: Change, sink: &mut dyn Sink) -> Result<Applied, StoreError> {
        let mut state = self.lock();
        sink.admit()?;
        let result = match change {
            Change::Push(push) => state
                .push(push, self.check, sink)
                .map(|()| Applied::default()),
            Change::Delete(key) => {
                let deleted = state.remove(&key, sink).into_iter().collect();
                Ok(Applied { deleted })
            }
            Change::Wipe => {
                // A push racing with the wipe lands either before (and is wiped) or after.
                let keys: Vec<GroupingKey> = state.groups.keys().cloned().collect();
                Ok(state.remove_all(keys, sink))
            }
            Change::DeleteMatching { selector, only } => {
                let keys: Vec<GroupingKey> = state
                    .groups
                    .keys()
                    .filter(|key| selector.matches(key))
                    .filter(|key| only.as_ref().is_none_or(|only| only.contains(*key)))
                    .cloned()
                    .collect();
                Ok(state.remove_all(keys, sink))
            }
            Change::Expire { now, limit } => {
                let keys: Vec<GroupingKey> = state
                    .deadlines
                    .iter()
                    .take_while(|(deadline, _)| *deadline <= now)
                    .take(limit)
                    .map(|(_, key)| key.clone())
                    .collect();
                Ok(state.remove_all(keys, sink))
            }
        };
        sink.finish();
        if result
            .as_ref()
            .is_ok_and(|applied| !applied.deleted.is_empty())
        {
            state.revalidate_if_inconsistent(&self.own, self.check);
        }
        result
    }

    /// Undoes changes that the backend could not keep. `take` runs under the view's lock, so
    /// that no change can slip in between the backend deciding what to withdraw and the
    /// withdrawal; it returns the changes newest first, each group going back to what it held
    /// before.
    pub fn withdraw(&self, take: impl FnOnce() -> Vec<Withdrawal>) -> usize {
        let mut state = self.lock();
        let withdrawals = take();
        let count = withdrawals.len();
        for Withdrawal { key, previous } in withdrawals {
            state.set(&key, previous);
        }
        if count > 0 {
            state.revalidate_if_inconsistent(&self.own, self.check);
        }
        count
    }

    /// The soonest time a group expires, if any does.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.lock().deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// How many groups and series the store holds.
    pub fn totals(&self) -> Totals {
        let state = self.lock();
        Totals {
            groups: state.counts.groups,
            series: state.counts.series,
        }
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
        Snapshot::new(
            state.generation,
            state.groups.clone(),
            state.policy.expire_after,
            state.left_out.clone(),
        )
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
fn in_key_order(groups: Vec<PersistedGroup>) -> Vec<PersistedGroup> {
    if groups.is_sorted_by(|a, b| a.key < b.key) {
        return groups;
    }
    let unique: std::collections::BTreeMap<_, _> =
        groups.into_iter().map(|g| (g.key.clone(), g)).collect();
    unique.into_values().collect()
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

    /// Applies a push, or records its failure.
    fn push(
        &mut self,
        push: PreparedPush,
        check: bool,
        sink: &mut dyn Sink,
    ) -> Result<(), StoreError> {
        match self.decide_push(push, check) {
            Decision::Write(planned) => {
                let Planned {
                    key,
                    current,
                    write,
                    time,
                } = planned;
                self.apply(&key, current, write, time, sink);
                Ok(())
            }
            Decision::Refuse { error, failure } => {
                if let Some(Planned {
                    key,
                    current,
                    write,
                    time,
                }) = failure
                {
                    self.apply(&key, current, write, time, sink);
                }
                Err(error)
            }
        }
    }

    /// What a push would do to the store, decided without changing anything: the write, or
    /// why it is refused and the failure it records (if any).
    fn decide_push(&self, push: PreparedPush, check: bool) -> Decision {
        if let Some(problems) = self.inconsistent.clone() {
            return self.refuse(
                &push.key,
                push.time,
                Rejection::from(problems).into(),
                check,
            );
        }
        let families = match push.families {
            Ok(families) => families,
            Err(rejection) => return self.refuse(&push.key, push.time, rejection.into(), check),
        };
        let current = self.groups.get(&push.key).cloned();
        let meta = GroupMeta {
            expire_after: push
                .expire_after
                .or_else(|| current.as_ref().and_then(|g| g.meta().expire_after)),
            holder: push.holder.clone(),
        };
        let mut write = Write {
            families,
            replace_all: push.mode == PushMode::Replace,
            meta,
        };
        write.add_timestamp(&push.key, PUSH_TIME, push.time, check);
        if current.is_none() {
            write.add_timestamp(&push.key, PUSH_FAILURE_TIME, Timestamp::ZERO, check);
        }
        let change = write.change(current.as_deref());
        if let Err(exceeded) = limits::check(
            &self.policy,
            &self.counts,
            current.as_deref(),
            Group::series_after(&change),
            push.holder.as_ref(),
            push.quota.as_ref(),
        ) {
            // Nothing is recorded for a push over a limit.
            return Decision::Refuse {
                error: exceeded.into(),
                failure: None,
            };
        }
        let rejection = if Group::size_after(&change) > MAX_GROUP_BYTES {
            Some(Rejection::GroupTooLarge)
        } else if check {
            let problems = self.index.check(&change);
            (!problems.is_empty()).then(|| problems.into())
        } else {
            None
        };
        if let Some(rejection) = rejection {
            return self.refuse(&push.key, push.time, rejection.into(), check);
        }
        Decision::Write(Planned {
            key: push.key,
            current,
            write,
            time: push.time,
        })
    }

    fn refuse(
        &self,
        key: &GroupingKey,
        time: Timestamp,
        error: StoreError,
        check: bool,
    ) -> Decision {
        Decision::Refuse {
            error,
            failure: self.failure_write(key, time, check),
        }
    }

    /// Swaps in the group that results from `write`, keeping the index in step, and hands it
    /// to the sink.
    fn apply(
        &mut self,
        key: &GroupingKey,
        current: Option<Arc<Group>>,
        write: Write,
        time: Timestamp,
        sink: &mut dyn Sink,
    ) {
        let id = match &current {
            Some(group) => group.id(),
            None => self.new_group_id(),
        };
        if let Some(group) = &current {
            let change = write.change(Some(group));
            for family in group.families() {
                if change.drops_current(&family.name) {
                    let series = self.tracked_series(group, family);
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
            write.meta.clone(),
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
        let group = Arc::new(group);
        sink.record(Record::Written(&group), current.as_ref());
        self.insert_group(key, group);
        self.generation += 1;
    }

    /// What `index.check` and then `apply` do for a group that does not exist yet (restoring),
    /// in one pass over the index. Returns what the check found; the group is stored either way.
    fn apply_new_checked(&mut self, key: &GroupingKey, write: Write) -> Inconsistencies {
        let id = self.new_group_id();
        let change = write.change(None);
        let group = Group::build(
            key,
            id,
            &change,
            Timestamp::ZERO,
            &self.index,
            write.meta.clone(),
        );
        let problems = self.index.check_and_add_new(id, &change, &group);
        self.insert_group(key, Arc::new(group));
        self.generation += 1;
        problems
    }

    /// The write that records a failed push in the group (its holder and expiry stay as they
    /// were); `None` when it is not stored.
    fn failure_write(&self, key: &GroupingKey, time: Timestamp, check: bool) -> Option<Planned> {
        let current = self.groups.get(key).cloned();
        let mut write = Write {
            families: Vec::new(),
            replace_all: false,
            meta: current
                .as_ref()
                .map(|g| g.meta().clone())
                .unwrap_or_default(),
        };
        write.add_timestamp(key, PUSH_FAILURE_TIME, time, check);
        if current.is_none() {
            write.add_timestamp(key, PUSH_TIME, Timestamp::ZERO, check);
            // Upstream creates the group even when its timestamp gauges clash with another
            // group's (`{job="a"}` next to `{job="a",instance=""}`), which breaks every later
            // scrape. The failure is reported to the pusher either way; we do not store it.
            if check && !self.index.check(&write.change(None)).is_empty() {
                return None;
            }
        }
        Some(Planned {
            key: key.clone(),
            current,
            write,
            time,
        })
    }

    /// Removes a group, if it exists; returns its key then.
    fn remove(&mut self, key: &GroupingKey, sink: &mut dyn Sink) -> Option<GroupingKey> {
        let group = self.remove_group(key)?;
        self.unindex(&group);
        self.generation += 1;
        sink.record(Record::Deleted(key), Some(&group));
        Some(key.clone())
    }

    fn remove_all(&mut self, keys: Vec<GroupingKey>, sink: &mut dyn Sink) -> Applied {
        let deleted = keys
            .iter()
            .filter_map(|key| self.remove(key, sink))
            .collect();
        Applied { deleted }
    }

    /// Puts a group back as it was (or removes it), keeping the index in step.
    fn set(&mut self, key: &GroupingKey, group: Option<Arc<Group>>) {
        if let Some(current) = self.remove_group(key) {
            self.unindex(&current);
        }
        if let Some(group) = group {
            for family in group.families() {
                let series = self.tracked_series(&group, family);
                self.index.add_family(
                    group.id(),
                    &family.name,
                    family.kind,
                    family.help.as_ref(),
                    &series,
                );
            }
            self.insert_group(key, group);
        }
        self.generation += 1;
    }

    /// Puts `group` into the map in place of any group of that key, keeping counts and
    /// deadlines in step.
    fn insert_group(&mut self, key: &GroupingKey, group: Arc<Group>) {
        self.remove_group(key);
        self.counts.add(&group);
        if let Some(deadline) = group.deadline(self.policy.expire_after) {
            self.deadlines.insert((deadline, key.clone()));
        }
        self.groups.insert(key.clone(), group);
    }

    /// Takes a group out of the map, keeping counts and deadlines in step.
    fn remove_group(&mut self, key: &GroupingKey) -> Option<Arc<Group>> {
        let group = self.groups.remove(key)?;
        self.counts.remove(&group);
        // The deadline follows from the group and the policy, neither of which changes.
        if let Some(deadline) = group.deadline(self.policy.expire_after) {
            self.deadlines.remove(&(deadline, key.clone()));
        }
        Some(group)
    }

    fn unindex(&mut self, group: &Group) {
        for family in group.families() {
            let series = self.tracked_series(group, family);
            self.index.remove_family(group.id(), &family.name, series);
        }
    }

    /// The series of a stored family as the index tracks them (none with the check off).
    fn tracked_series(&self, group: &Group, family: &StoredFamily) -> Vec<SeriesId> {
        if self.index.tracks_series() {
            group.series_ids(family).collect()
        } else {
            Vec::new()
        }
    }

    /// After a deletion in the inconsistent state: maybe the group at fault is gone. Looks
    /// again (only ever in this rare state).
    fn revalidate_if_inconsistent(&mut self, own: &[OwnFamily], check: bool) {
        if self.inconsistent.is_some() {
            self.revalidate(own, check);
        }
    }

    /// Checks the whole store again; when it is consistent, rebuilds the index from scratch
    /// (its counts may be off after inconsistent data) and leaves the inconsistent state.
    fn revalidate(&mut self, own: &[OwnFamily], check: bool) {
        let snapshot = Snapshot::new(
            self.generation,
            self.groups.clone(),
            self.policy.expire_after,
            OrdMap::new(),
        );
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
