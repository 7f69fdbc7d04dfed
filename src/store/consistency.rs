//! The consistency index: what upstream finds out by re-gathering the whole store on every push,
//! kept incrementally so that checking a push costs what the push contains.
//!
//! It knows, per family name, the type and how many groups hold it (for type conflicts and the
//! `_count`/`_sum`/`_bucket` suffix rules), and per series identity the group that holds it (for
//! duplicates across groups). The gateway's own families take part with their fixed types.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::errors::{Inconsistencies, Inconsistency};
use super::group::{Group, GroupChange, GroupId, Interner};
use super::prepare::PreparedFamily;
use super::series::{SeriesId, SeriesIdHasher};
use crate::model::proto::MetricType;
use crate::model::{HelpText, MetricName};

/// A family of the gateway's own metrics: pushed families must not contradict it.
#[derive(Debug, Clone, Copy)]
pub struct OwnFamily {
    pub name: &'static str,
    pub kind: MetricType,
    pub help: &'static str,
}

#[derive(Debug)]
struct FamilyEntry {
    name: MetricName,
    kind: MetricType,
    groups: u32,
    /// The first help text seen, shared with groups that push the same text.
    help: Option<HelpText>,
}

pub struct Index {
    own: HashMap<&'static str, OwnFamily>,
    families: HashMap<MetricName, FamilyEntry>,
    /// Series owners; not kept when the consistency check is off (duplicates are allowed then).
    series: Option<HashMap<SeriesId, GroupId, SeriesIdHasher>>,
}

impl Index {
    pub fn new(own: &[OwnFamily], track_series: bool) -> Self {
        Index {
            own: own.iter().map(|f| (f.name, *f)).collect(),
            families: HashMap::new(),
            series: track_series.then(|| HashMap::with_hasher(SeriesIdHasher)),
        }
    }

    /// The type of the family `name` next to the `done` families written first: one of them,
    /// the gateway's own, or another group's. Families written later are not looked at; they
    /// meet this one when their turn comes, so that a clash inside one push is reported once.
    fn kind_next_to(
        &self,
        name: &str,
        change: &GroupChange<'_>,
        done: usize,
    ) -> Option<MetricType> {
        if let Some(family) = change.families[..done].iter().find(|f| f.name == name) {
            return Some(family.kind);
        }
        if let Some(own) = self.own.get(name) {
            return Some(own.kind);
        }
        let entry = self.families.get(name)?;
        let remaining = entry.groups - u32::from(change.drops_current(name));
        (remaining > 0).then_some(entry.kind)
    }

    /// Everything that would make the store inconsistent if `change` were applied, in the order
    /// upstream's gatherer reports it: per family, a clash of type (with other groups or the
    /// gateway's own families) or of name suffixes, which hides the family's metrics; otherwise
    /// the problems of single metrics and series that another group already holds.
    pub fn check(&self, change: &GroupChange<'_>) -> Inconsistencies {
        let mut problems = Inconsistencies::default();
        let group_id = change.current.map(Group::id);
        for (position, family) in change.families.iter().enumerate() {
            let family_problems = self.family_problems(family, change, position);
            if !family_problems.is_empty() {
                problems.0.extend(family_problems);
                continue;
            }
            problems
                .0
                .extend(family.problems.iter().map(|(_, p)| p.clone()));
            let Some(series) = &self.series else {
                continue;
            };
            let mut metrics = None;
            for (i, id) in family.series.iter().enumerate() {
                let has_problem = family.problems.iter().any(|(at, _)| *at == i);
                let held_elsewhere = series.get(id).is_some_and(|owner| Some(*owner) != group_id);
                if held_elsewhere && !has_problem {
                    let metrics = metrics.get_or_insert_with(|| family.metrics_for_messages());
                    problems.push(Inconsistency::DuplicateSeries {
                        family: family.name.clone(),
                        metric: super::errors::metric_text(&metrics[i]),
                    });
                }
            }
        }
        problems
    }

    /// Clashes of a whole family: its type against the gateway's own family or other groups'
    /// family of that name, then the suffix rules.
    fn family_problems(
        &self,
        family: &PreparedFamily,
        change: &GroupChange<'_>,
        position: usize,
    ) -> Vec<Inconsistency> {
        let name = family.name.as_str();
        if let Some(own) = self.own.get(name).filter(|own| own.kind != family.kind) {
            return vec![Inconsistency::FamilyType {
                family: family.name.clone(),
                found: family.kind,
                expected: own.kind,
            }];
        }
        if let Some(entry) = self.families.get(name) {
            let others = entry.groups - u32::from(change.drops_current(name));
            if others > 0 && entry.kind != family.kind {
                if family.count == 0 {
                    return vec![Inconsistency::FamilyType {
                        family: family.name.clone(),
                        found: family.kind,
                        expected: entry.kind,
                    }];
                }
                return family
                    .metrics_for_messages()
                    .iter()
                    .map(|metric| Inconsistency::WrongValueType {
                        family: family.name.clone(),
                        metric: super::errors::metric_text(metric),
                        expected: entry.kind,
                    })
                    .collect();
            }
        }
        self.suffix_collision(family, change, position)
            .into_iter()
            .collect()
    }

    /// The `_count`, `_sum` and `_bucket` rules of client_golang: such a name must not sit next
    /// to a summary or histogram of the base name (a summary may have a `_bucket` neighbour), in
    /// either order. Gauge histograms follow the histogram rule, because the text format shows
    /// them as histograms.
    fn suffix_collision(
        &self,
        family: &PreparedFamily,
        change: &GroupChange<'_>,
        position: usize,
    ) -> Option<Inconsistency> {
        let name = family.name.as_str();
        let base = ["_count", "_sum", "_bucket"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).map(|base| (base, *suffix)));
        if let Some((base, suffix)) = base {
            match self.kind_next_to(base, change, position) {
                Some(MetricType::Summary) if suffix != "_bucket" => {
                    return Some(Inconsistency::CollidesWithSummary {
                        name: name.to_string(),
                        summary: base.to_string(),
                    });
                }
                Some(kind) if kind.is_histogram() => {
                    return Some(Inconsistency::CollidesWithHistogram {
                        name: name.to_string(),
                        histogram: base.to_string(),
                    });
                }
                _ => {}
            }
        }
        if family.kind == MetricType::Summary || family.kind.is_histogram() {
            for suffix in ["_count", "_sum"] {
                let other = format!("{name}{suffix}");
                if self.kind_next_to(&other, change, position).is_some() {
                    return Some(Inconsistency::SummaryOrHistogramCollides {
                        name: name.to_string(),
                        other,
                    });
                }
            }
        }
        if family.kind.is_histogram() {
            let other = format!("{name}_bucket");
            if self.kind_next_to(&other, change, position).is_some() {
                return Some(Inconsistency::HistogramCollides {
                    name: name.to_string(),
                    other,
                });
            }
        }
        None
    }

    /// For a group new to the index (`id` never used in it): finds what [`Index::check`] would
    /// find for `change`, then records `group`'s families as [`Index::add_family`] would for
    /// each family written, with one look-up per series instead of a look-up for the check
    /// and another to record it (at a million series, the two were a fifth of a restore).
    pub fn check_and_add_new(
        &mut self,
        id: GroupId,
        change: &GroupChange<'_>,
        group: &Group,
    ) -> Inconsistencies {
        // Family-level problems look at the index as it was before this group.
        let levels: Vec<Vec<Inconsistency>> = change
            .families
            .iter()
            .enumerate()
            .map(|(position, family)| self.family_problems(family, change, position))
            .collect();
        let mut problems = Inconsistencies::default();
        // Owners that this group's series replaced: where a series comes again in this group,
        // its owner before the group is the one that counts.
        let mut displaced: HashMap<SeriesId, GroupId, SeriesIdHasher> =
            HashMap::with_hasher(SeriesIdHasher);
        for (family, level) in change.families.iter().zip(levels) {
            let family_clash = !level.is_empty();
            if family_clash {
                problems.0.extend(level);
            } else {
                problems
                    .0
                    .extend(family.problems.iter().map(|(_, p)| p.clone()));
            }
            let Some(stored) = group.family(&family.name) else {
                continue;
            };
            let mut held_elsewhere = Vec::new();
            if let Some(owners) = &mut self.series {
                for (i, series) in family.series.iter().enumerate() {
                    let before = match owners.insert(*series, id) {
                        Some(owner) if owner == id => displaced.get(series).copied(),
                        Some(owner) => {
                            displaced.entry(*series).or_insert(owner);
                            Some(owner)
                        }
                        None => None,
                    };
                    let has_problem = family.problems.iter().any(|(at, _)| *at == i);
                    if !family_clash && before.is_some() && !has_problem {
                        held_elsewhere.push(i);
                    }
                }
            }
            if !held_elsewhere.is_empty() {
                let metrics = family.metrics_for_messages();
                for i in held_elsewhere {
                    problems.push(Inconsistency::DuplicateSeries {
                        family: family.name.clone(),
                        metric: super::errors::metric_text(&metrics[i]),
                    });
                }
            }
            self.add_family_entry(&stored.name, stored.kind, stored.help.as_ref());
        }
        problems
    }

    fn add_family_entry(&mut self, name: &MetricName, kind: MetricType, help: Option<&HelpText>) {
        match self.families.entry(name.clone()) {
            Entry::Occupied(mut e) => e.get_mut().groups += 1,
            Entry::Vacant(e) => {
                e.insert(FamilyEntry {
                    name: name.clone(),
                    kind,
                    groups: 1,
                    help: help.cloned(),
                });
            }
        }
    }

    /// Records that `group` holds a family (called for every family a change writes).
    pub fn add_family(
        &mut self,
        group: GroupId,
        name: &MetricName,
        kind: MetricType,
        help: Option<&HelpText>,
        series: &[SeriesId],
    ) {
        self.add_family_entry(name, kind, help);
        if let Some(owners) = &mut self.series {
            for id in series {
                owners.insert(*id, group);
            }
        }
    }

    /// Records that `group` no longer holds a family with these series.
    pub fn remove_family(
        &mut self,
        group: GroupId,
        name: &str,
        series: impl IntoIterator<Item = SeriesId>,
    ) {
        if let Some(entry) = self.families.get_mut(name) {
            entry.groups -= 1;
            if entry.groups == 0 {
                self.families.remove(name);
            }
        }
        if let Some(owners) = &mut self.series {
            for id in series {
                if owners.get(&id) == Some(&group) {
                    owners.remove(&id);
                }
            }
        }
    }

    /// Makes room for this many more series (before a restore), so that the table does not
    /// grow step by step, rehashing everything each time.
    pub fn reserve_series(&mut self, additional: usize) {
        if let Some(owners) = &mut self.series {
            owners.reserve(additional);
        }
    }

    pub fn tracks_series(&self) -> bool {
        self.series.is_some()
    }
}

impl Interner for Index {
    /// The shared name for a family name, so that all groups holding a family share one
    /// allocation.
    fn name(&self, name: &str) -> MetricName {
        match self.families.get(name) {
            Some(entry) => entry.name.clone(),
            None => MetricName::new(name),
        }
    }

    /// The shared help text, if it equals the first one seen for this family.
    fn help(&self, name: &str, help: &str) -> HelpText {
        match self.families.get(name).and_then(|e| e.help.as_ref()) {
            Some(shared) if &**shared == help => shared.clone(),
            _ => HelpText::from(help),
        }
    }
}
