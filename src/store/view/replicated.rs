//! The view of a replicated store: changes are planned here against what the view has seen,
//! proposed by the backend to a replicated log on condition that each group is still at the
//! revision it was planned against, and applied here in the log's order.
//!
//! Two replicas can accept, at the same moment, pushes to different groups that disagree (on
//! a family's type, a name suffix, or a series), each checked against its own view. Every
//! replica then decides the same way which family is left out of the scrape: groups are
//! checked in revision order, each against the families of the groups before it, and a family
//! that clashes is left out of the group written later. That is a function of what the log
//! holds, not of the order a replica happened to see it in:
//! - a change the log delivers is the newest, so checking it against everything else is
//!   checking it in revision order;
//! - when a group is deleted or written anew (and so moves to the end of the order), the
//!   families left out elsewhere are checked again, in revision order, before the new version
//!   is checked.

use std::sync::Arc;

use super::super::backend::{PersistedGroup, StoreError};
use super::super::encoding::MetricIter;
use super::super::group::{Group, GroupChange, GroupId};
use super::super::prepare::PreparedFamily;
use super::super::restore::prepare_restored;
use super::super::snapshot::LeftOut;
use super::{Decision, Planned, State, View, Write};
use crate::model::{GroupingKey, Timestamp};

/// One write a replicated backend proposes: a group's new content, or its deletion, on
/// condition that the key is still at the revision the view had (its last write or deletion
/// in the log; `None`: never written).
#[derive(Debug)]
pub struct Proposal {
    pub key: GroupingKey,
    pub expected: Option<u64>,
    /// `None`: delete the group.
    pub group: Option<Arc<Group>>,
}

/// What a change would write, planned against the view.
#[derive(Debug, Default)]
pub struct Plan {
    pub proposals: Vec<Proposal>,
    /// The change is refused: why (its proposals then only record the failure of a push).
    pub refused: Option<StoreError>,
}

/// A family left out of (or back in) the scrape by a replicated change, to be logged and
/// counted by the backend.
#[derive(Debug, PartialEq, Eq)]
pub struct Exclusion {
    pub key: GroupingKey,
    pub family: String,
    /// Why it is left out; `None`: it is back in.
    pub reason: Option<Arc<str>>,
}

impl View {
    /// What `change` would write, decided against the view without changing it.
    pub fn plan(&self, change: &super::super::Change) -> Plan {
        use super::super::Change;
        let state = self.lock();
        let proposal = |planned: Planned| Proposal {
            expected: state.revisions.get(&planned.key).copied(),
            group: Some(Arc::new(state.build(&planned))),
            key: planned.key,
        };
        let deletions = |keys: Vec<&GroupingKey>| Plan {
            proposals: keys
                .into_iter()
                .map(|key| Proposal {
                    key: key.clone(),
                    expected: state.revisions.get(key).copied(),
                    group: None,
                })
                .collect(),
            refused: None,
        };
        match change {
            Change::Push(push) => match state.decide_push(push.clone(), self.check) {
                Decision::Write(planned) => Plan {
                    proposals: vec![proposal(planned)],
                    refused: None,
                },
                Decision::Refuse { error, failure } => Plan {
                    proposals: failure.into_iter().map(proposal).collect(),
                    refused: Some(error),
                },
            },
            Change::Delete(key) => deletions(
                state
                    .groups
                    .get_key_value(key)
                    .map(|(k, _)| k)
                    .into_iter()
                    .collect(),
            ),
            Change::Wipe => deletions(state.groups.keys().collect()),
            Change::DeleteMatching { selector, only } => deletions(
                state
                    .groups
                    .keys()
                    .filter(|key| selector.matches(key))
                    .filter(|key| only.as_ref().is_none_or(|only| only.contains(*key)))
                    .collect(),
            ),
            Change::Expire { now, limit } => deletions(
                state
                    .deadlines
                    .iter()
                    .take_while(|(deadline, _)| deadline <= now)
                    .take(*limit)
                    .map(|(_, key)| key)
                    .collect(),
            ),
        }
    }

    /// Applies what the replicated log holds for `key` at `revision` (`None`: deleted).
    /// Revisions at or below the last one applied are ignored (delivered twice). Returns the
    /// families this left out of the scrape or let back in.
    pub fn apply_replicated(
        &self,
        key: GroupingKey,
        revision: u64,
        value: Option<PersistedGroup>,
    ) -> Vec<Exclusion> {
        let mut state = self.lock();
        if revision <= state.applied {
            return Vec::new();
        }
        state.applied = revision;
        let mut exclusions = Vec::new();
        state.replicate(key, revision, value, self.check, &mut exclusions);
        exclusions
    }

    /// The revision of the last change applied from the replicated log.
    pub fn applied_revision(&self) -> u64 {
        self.lock().applied
    }

    /// How many families are left out of the scrape because they clash.
    pub fn left_out_count(&self) -> usize {
        self.lock().left_out.values().map(|l| l.len()).sum()
    }
}

impl State {
    /// The group a planned write produces (its id is the view's business, not the log's).
    fn build(&self, planned: &Planned) -> Group {
        let id = planned
            .current
            .as_ref()
            .map_or(GroupId(0), |group| group.id());
        Group::build(
            &planned.key,
            id,
            &planned.write.change(planned.current.as_deref()),
            planned.time,
            &self.index,
            planned.write.meta.clone(),
        )
    }

    fn replicate(
        &mut self,
        key: GroupingKey,
        revision: u64,
        value: Option<PersistedGroup>,
        check: bool,
        exclusions: &mut Vec<Exclusion>,
    ) {
        if let Some(current) = self.remove_group(&key) {
            let left_out = self.left_out.remove(&key).unwrap_or_default();
            for family in current.families() {
                if !left_out.contains_key(&*family.name) {
                    let series = self.tracked_series(&current, family);
                    self.index.remove_family(current.id(), &family.name, series);
                }
            }
            // It may have been what kept families of later groups out.
            if !self.left_out.is_empty() {
                self.readmit(check, exclusions);
            }
        }
        // Kept for deleted groups too: the next write of the key is planned against the
        // revision of its deletion, as the log has it.
        self.revisions.insert(key.clone(), revision);
        if let Some(group) = value {
            self.admit(key, group, check, exclusions);
        }
        self.generation += 1;
    }

    /// Adds a group delivered by the log, as the newest: families that clash with the groups
    /// before it are left out.
    fn admit(
        &mut self,
        key: GroupingKey,
        group: PersistedGroup,
        check: bool,
        exclusions: &mut Vec<Exclusion>,
    ) {
        let mut unreadable = Vec::new();
        let mut families: Vec<PreparedFamily> = group
            .families
            .into_iter()
            .map(|family| prepare_restored(family, check, &mut unreadable))
            .collect();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        let write = Write {
            families,
            replace_all: true,
            meta: group.meta,
        };
        let change = write.change(None);
        let mut left_out = LeftOut::new();
        if check {
            for problem in self.index.check(&change).0.into_iter().chain(unreadable) {
                left_out
                    .entry(problem.family().to_string())
                    .or_insert_with(|| problem.to_string().into());
            }
        }
        let id = self.new_group_id();
        let built = Group::build(
            &key,
            id,
            &change,
            Timestamp::ZERO,
            &self.index,
            write.meta.clone(),
        );
        for family in &write.families {
            if left_out.contains_key(&family.name) {
                continue;
            }
            if let Some(stored) = built.family(&family.name) {
                self.index.add_family(
                    id,
                    &stored.name,
                    stored.kind,
                    stored.help.as_ref(),
                    &family.series,
                );
            }
        }
        for (family, reason) in &left_out {
            exclusions.push(Exclusion {
                key: key.clone(),
                family: family.clone(),
                reason: Some(reason.clone()),
            });
        }
        if !left_out.is_empty() {
            self.left_out.insert(key.clone(), Arc::new(left_out));
        }
        self.insert_group(&key, Arc::new(built));
    }

    /// Checks the families left out again, group by group in revision order, and lets back
    /// in those that no longer clash.
    fn readmit(&mut self, check: bool, exclusions: &mut Vec<Exclusion>) {
        let mut waiting: Vec<(u64, GroupingKey)> = self
            .left_out
            .keys()
            .map(|key| (self.revisions.get(key).copied().unwrap_or(0), key.clone()))
            .collect();
        waiting.sort();
        for (_, key) in waiting {
            let (Some(group), Some(left_out)) = (
                self.groups.get(&key).cloned(),
                self.left_out.get(&key).cloned(),
            ) else {
                continue;
            };
            let mut still = LeftOut::new();
            for name in left_out.keys() {
                let Some(family) = group.family(name) else {
                    continue;
                };
                let metrics: Vec<_> = MetricIter::over(group.metric_bytes(family))
                    .flatten()
                    .collect();
                let prepared = PreparedFamily::new(
                    name,
                    family.help.as_deref().map(str::to_string),
                    family.kind,
                    metrics,
                    check,
                );
                let single = [prepared];
                let change = GroupChange {
                    current: None,
                    families: &single,
                    replace_all: false,
                    kept_on_replace: &[],
                };
                let problems = self.index.check(&change);
                match problems.0.first() {
                    Some(problem) => {
                        still.insert(name.clone(), problem.to_string().into());
                    }
                    None => {
                        self.index.add_family(
                            group.id(),
                            &family.name,
                            family.kind,
                            family.help.as_ref(),
                            &single[0].series,
                        );
                        exclusions.push(Exclusion {
                            key: key.clone(),
                            family: name.clone(),
                            reason: None,
                        });
                    }
                }
            }
            if still.is_empty() {
                self.left_out.remove(&key);
            } else {
                self.left_out.insert(key, Arc::new(still));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricType;
    use crate::model::proto::{Counter, Gauge, METRIC_FAMILY_METRIC_TAG, Metric};
    use crate::store::{GroupMeta, PersistedFamily};

    fn group(job: &str, kind: MetricType) -> PersistedGroup {
        let metric = Metric {
            counter: (kind == MetricType::Counter).then(|| Counter {
                value: Some(1.0),
                ..Default::default()
            }),
            gauge: (kind == MetricType::Gauge).then_some(Gauge { value: Some(1.0) }),
            label: crate::store::prepare::sanitized_labels(&[], &key(job)),
            ..Default::default()
        };
        let mut metrics = Vec::new();
        prost::encoding::message::encode(METRIC_FAMILY_METRIC_TAG, &metric, &mut metrics);
        PersistedGroup {
            key: key(job),
            meta: GroupMeta::default(),
            families: vec![PersistedFamily {
                name: "m".into(),
                help: None,
                kind,
                pushed_at: Timestamp::ZERO,
                metrics: metrics.into(),
            }],
        }
    }

    fn key(job: &str) -> GroupingKey {
        GroupingKey::from_labels([("job", job)])
    }

    /// Which groups' `m` is left out, by job.
    fn left_out(view: &View) -> Vec<String> {
        let snapshot = view.snapshot();
        snapshot
            .groups()
            .filter(|g| snapshot.left_out(g).is_some_and(|l| l.contains_key("m")))
            .map(|g| g.key().job().to_string())
            .collect()
    }

    fn view() -> View {
        View::new(&[], true, Default::default())
    }

    /// The family written later (by revision) is left out, and every view agrees whatever
    /// history it saw: one that saw every change, one that only saw what the log holds now.
    #[test]
    fn clashes_are_settled_by_revision_whatever_the_history() {
        let full = view();
        full.apply_replicated(key("a"), 1, Some(group("a", MetricType::Counter)));
        let events = full.apply_replicated(key("b"), 2, Some(group("b", MetricType::Gauge)));
        assert_eq!(events.len(), 1);
        assert!(events[0].reason.as_deref().is_some_and(|r| r.contains("m")));
        assert_eq!(left_out(&full), ["b"]);
        // `a` is written again: now it is the later one.
        let events = full.apply_replicated(key("a"), 3, Some(group("a", MetricType::Counter)));
        assert_eq!(left_out(&full), ["a"]);
        assert!(
            events
                .iter()
                .any(|e| e.key == key("b") && e.reason.is_none())
        );
        // What a replica started now sees: the latest value of each key, in revision order.
        let fresh = view();
        fresh.apply_replicated(key("b"), 2, Some(group("b", MetricType::Gauge)));
        fresh.apply_replicated(key("a"), 3, Some(group("a", MetricType::Counter)));
        assert_eq!(left_out(&fresh), left_out(&full));
        // Deleting the earlier group lets the later one back in, in both.
        for view in [&full, &fresh] {
            view.apply_replicated(key("b"), 4, None);
            assert!(left_out(view).is_empty());
            assert_eq!(view.left_out_count(), 0);
        }
        // Revisions already applied are ignored.
        assert!(
            full.apply_replicated(key("b"), 4, Some(group("b", MetricType::Gauge)))
                .is_empty()
        );
        assert!(full.snapshot().group(&key("b")).is_none());
    }

    /// A plan is made against the view and changes nothing; it carries the revision each
    /// write is conditioned on (that of a deletion, for a key deleted before).
    #[test]
    fn plans_carry_the_revisions_they_were_made_against() {
        let view = view();
        view.apply_replicated(key("a"), 5, Some(group("a", MetricType::Counter)));
        view.apply_replicated(key("gone"), 6, Some(group("gone", MetricType::Counter)));
        view.apply_replicated(key("gone"), 7, None);
        let generation = view.snapshot().generation();
        let plan = view.plan(&crate::store::Change::Wipe);
        assert_eq!(plan.proposals.len(), 1);
        assert_eq!(plan.proposals[0].expected, Some(5));
        assert!(plan.proposals[0].group.is_none());
        assert_eq!(
            view.snapshot().generation(),
            generation,
            "planning changes nothing"
        );
        let plan = view.plan(&crate::store::Change::Delete(key("gone")));
        assert!(plan.proposals.is_empty(), "nothing to delete");
        assert_eq!(view.applied_revision(), 7);
    }
}
