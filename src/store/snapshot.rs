//! Snapshots: what a scrape or an API call sees, frozen at one moment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use imbl::OrdMap;

use super::consistency::{Index, OwnFamily};
use super::errors::{Inconsistencies, Inconsistency};
use super::group::{Group, GroupChange, GroupId, Interner, StoredFamily};
use super::prepare::PreparedFamily;
use crate::model::{GroupingKey, HelpText, MetricName, MetricType, Timestamp};

/// Families of one group left out of the scrape because they clash, each with why.
pub type LeftOut = BTreeMap<String, Arc<str>>;

#[derive(Clone)]
pub struct Snapshot {
    generation: u64,
    groups: OrdMap<GroupingKey, Arc<Group>>,
    /// `--push.expire-after`, for groups without an expiry of their own.
    expire_after: Duration,
    /// Families left out of the scrape because they clash (replicated store only).
    left_out: OrdMap<GroupingKey, Arc<LeftOut>>,
}

/// All groups' families of one name, as a scrape shows them: one family, its metrics taken
/// group by group in grouping-key order.
pub struct MergedFamily<'a> {
    pub name: &'a MetricName,
    pub kind: MetricType,
    /// The first help text in grouping-key order. Upstream takes whichever group its map
    /// iteration happens to visit first; this rule gives the same answer on every scrape.
    pub help: Option<&'a HelpText>,
    pub parts: Vec<(&'a Arc<Group>, &'a StoredFamily)>,
}

impl Snapshot {
    pub(super) fn new(
        generation: u64,
        groups: OrdMap<GroupingKey, Arc<Group>>,
        expire_after: Duration,
        left_out: OrdMap<GroupingKey, Arc<LeftOut>>,
    ) -> Self {
        Snapshot {
            generation,
            groups,
            expire_after,
            left_out,
        }
    }

    /// A group's families left out of the scrape, each with why.
    pub fn left_out(&self, group: &Group) -> Option<&LeftOut> {
        self.left_out.get(group.key()).map(|l| &**l)
    }

    /// When a group expires; `None`: never.
    pub fn deadline(&self, group: &Group) -> Option<Timestamp> {
        group.deadline(self.expire_after)
    }

    /// The expiry a group has: its own, or the default.
    pub fn expire_after(&self, group: &Group) -> Duration {
        group.meta().expire_after.unwrap_or(self.expire_after)
    }

    /// Changes whenever the store changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Groups in grouping-key order.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<Group>> {
        self.groups.values()
    }

    pub fn group(&self, key: &GroupingKey) -> Option<&Arc<Group>> {
        self.groups.get(key)
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Families merged across groups, sorted by name. Families without metrics are stored (the
    /// API shows them) but not part of a scrape.
    pub fn merged_families(&self) -> Vec<MergedFamily<'_>> {
        let mut slots: BTreeMap<&str, usize> = BTreeMap::new();
        let mut merged: Vec<MergedFamily<'_>> = Vec::new();
        // Groups mostly hold the same families as the group before them: look there first,
        // position by position, and only then up the name (a third of a scrape's time at a
        // million series went into those look-ups).
        let mut previous: Vec<(&str, usize)> = Vec::new();
        let mut current: Vec<(&str, usize)> = Vec::new();
        for group in self.groups.values() {
            current.clear();
            let left_out = self.left_out.get(group.key());
            for family in group.families() {
                if group.metric_bytes(family).is_empty()
                    || left_out.is_some_and(|l| l.contains_key(&*family.name))
                {
                    continue;
                }
                let name: &str = &family.name;
                let slot = match previous.get(current.len()) {
                    Some(&(seen, slot)) if seen == name => slot,
                    _ => *slots.entry(name).or_insert_with(|| {
                        merged.push(MergedFamily {
                            name: &family.name,
                            kind: family.kind,
                            help: None,
                            parts: Vec::new(),
                        });
                        merged.len() - 1
                    }),
                };
                let entry = &mut merged[slot];
                if entry.help.is_none() {
                    entry.help = family.help.as_ref();
                }
                entry.parts.push((group, family));
                current.push((name, slot));
            }
            std::mem::swap(&mut previous, &mut current);
        }
        let mut merged: Vec<Option<MergedFamily<'_>>> = merged.into_iter().map(Some).collect();
        slots
            .into_values()
            .filter_map(|slot| merged[slot].take())
            .collect()
    }
}

/// Checks every group of a snapshot as if they were pushed one after the other into an empty
/// store, with the same rules a checked push meets.
pub(super) fn validate(snapshot: &Snapshot, own: &[OwnFamily]) -> Inconsistencies {
    let mut index = Index::new(own, true);
    let mut problems = Inconsistencies::default();
    for (n, group) in snapshot.groups().enumerate() {
        let mut families = Vec::with_capacity(group.families().len());
        for family in group.families() {
            let mut metrics = Vec::new();
            for metric in group.metrics(family) {
                match metric {
                    Ok(metric) => metrics.push(metric),
                    Err(err) => problems.push(Inconsistency::Corrupt {
                        family: family.name.to_string(),
                        reason: err.to_string(),
                    }),
                }
            }
            let prepared = PreparedFamily::new(
                &family.name,
                family.help.as_deref().map(str::to_string),
                family.kind,
                metrics,
                true,
            );
            families.push(prepared);
        }
        let change = GroupChange {
            current: None,
            families: &families,
            replace_all: true,
            kept_on_replace: &[],
        };
        problems.0.extend(index.check(&change).0);
        let id = GroupId(n as u64 + 1);
        for family in &families {
            let name = index.name(&family.name);
            index.add_family(id, &name, family.kind, None, &family.series);
        }
    }
    problems
}
