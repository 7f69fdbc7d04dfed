//! Groups: the metrics pushed under one grouping key, stored compactly and never changed in
//! place. A push builds a new group from the old one, so a scrape that holds the old one keeps
//! a consistent view without any lock.

use std::sync::Arc;
use std::time::Duration;

use super::encoding::MetricIter;
use super::prepare::{PUSH_TIME, PreparedFamily, is_timestamp_gauge};
use super::series::{SeriesId, series_id};
use crate::model::proto::MetricType;
use crate::model::{GroupingKey, HelpText, MetricName, Timestamp};

/// Identifies one incarnation of a group: a group deleted and pushed again gets a new id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId(pub u64);

/// One family as a group holds it. Its metrics live in the group's shared buffer.
#[derive(Debug, Clone)]
pub struct StoredFamily {
    pub name: MetricName,
    pub help: Option<HelpText>,
    pub kind: MetricType,
    /// When the push that last wrote this family arrived.
    pub pushed_at: Timestamp,
    /// Whether all label names are legacy-valid (then no escaping scheme changes the metrics).
    pub legacy_label_names: bool,
    /// How many metrics (series) the family holds.
    pub count: u32,
    start: u32,
    len: u32,
}

/// Who holds a group, for per-requester quotas: the requester that last pushed it, as the
/// authorization rules name it.
pub type Holder = Arc<str>;

/// What the store keeps about a group besides its metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMeta {
    /// The `Pushgateway-Expire-After` of the push that set it, kept until a later push
    /// changes it (zero: never); `None`: the `--push.expire-after` default applies.
    pub expire_after: Option<Duration>,
    /// The requester that last pushed the group successfully, when quotas apply.
    pub holder: Option<Holder>,
}

/// The largest amount of encoded metrics one group may hold (offsets are 32-bit).
pub const MAX_GROUP_BYTES: usize = u32::MAX as usize;

#[derive(Debug)]
pub struct Group {
    key: GroupingKey,
    id: GroupId,
    /// Sorted by name; includes the two timestamp gauges.
    families: Box<[StoredFamily]>,
    /// The metrics of all families, each family's part encoded as repeated
    /// `MetricFamily.metric` fields.
    data: Box<[u8]>,
    meta: GroupMeta,
    /// The series pushed (the two timestamp gauges not counted), for limits.
    series: u32,
}

impl Group {
    pub fn key(&self) -> &GroupingKey {
        &self.key
    }

    pub fn id(&self) -> GroupId {
        self.id
    }

    pub fn families(&self) -> &[StoredFamily] {
        &self.families
    }

    pub fn meta(&self) -> &GroupMeta {
        &self.meta
    }

    /// The series pushed into the group (the two timestamp gauges not counted).
    pub fn series(&self) -> usize {
        self.series as usize
    }

    /// When the group was last pushed successfully, or, if never, when a push first failed:
    /// when its `push_time_seconds` was written.
    pub fn last_push(&self) -> Option<Timestamp> {
        self.family(PUSH_TIME).map(|f| f.pushed_at)
    }

    /// When the group expires, with `default` as the expiry where the group has none of its
    /// own; `None`: never.
    pub fn deadline(&self, default: Duration) -> Option<Timestamp> {
        let after = self.meta.expire_after.unwrap_or(default);
        if after.is_zero() {
            return None;
        }
        Some(self.last_push()?.saturating_add(after))
    }

    pub fn family(&self, name: &str) -> Option<&StoredFamily> {
        self.families
            .binary_search_by(|f| (*f.name).cmp(name))
            .ok()
            .map(|i| &self.families[i])
    }

    /// The encoded metrics of one of this group's families.
    pub fn metric_bytes(&self, family: &StoredFamily) -> &[u8] {
        let start = family.start as usize;
        &self.data[start..start + family.len as usize]
    }

    /// Decodes the metrics of one of this group's families.
    pub fn metrics(&self, family: &StoredFamily) -> MetricIter<'_> {
        MetricIter::over(self.metric_bytes(family))
    }

    /// The series identities of one of this group's families, recomputed from the metrics.
    pub fn series_ids<'a>(
        &'a self,
        family: &'a StoredFamily,
    ) -> impl Iterator<Item = SeriesId> + 'a {
        self.metrics(family)
            .flatten()
            .map(move |m| series_id(&family.name, &m.label))
    }

    /// The value of one of the timestamp gauges (0 if the group lacks it).
    pub fn gauge_value(&self, name: &str) -> f64 {
        self.family(name)
            .and_then(|f| self.metrics(f).flatten().next())
            .and_then(|m| m.gauge.and_then(|g| g.value))
            .unwrap_or(0.0)
    }

    /// How many bytes of metrics the group will hold after `change`.
    pub fn size_after(change: &GroupChange<'_>) -> usize {
        let kept: usize = change
            .current
            .map(|g| {
                g.families
                    .iter()
                    .filter(|f| !change.drops_current(&f.name))
                    .map(|f| f.len as usize)
                    .sum()
            })
            .unwrap_or(0);
        kept + change
            .families
            .iter()
            .map(|f| f.encoded.len())
            .sum::<usize>()
    }

    /// How many series (the timestamp gauges not counted) the group will hold after `change`.
    pub fn series_after(change: &GroupChange<'_>) -> usize {
        let kept: usize = change
            .current
            .map(|g| {
                g.families
                    .iter()
                    .filter(|f| !change.drops_current(&f.name) && !is_timestamp_gauge(&f.name))
                    .map(|f| f.count as usize)
                    .sum()
            })
            .unwrap_or(0);
        kept + change
            .families
            .iter()
            .filter(|f| !is_timestamp_gauge(&f.name))
            .map(|f| f.count)
            .sum::<usize>()
    }

    /// Builds the group that results from `change` (a new group with `key` and `id` when
    /// there is no current one), stamping written families with `now`.
    pub fn build(
        key: &GroupingKey,
        id: GroupId,
        change: &GroupChange<'_>,
        now: Timestamp,
        interner: &impl Interner,
        meta: GroupMeta,
    ) -> Group {
        let kept: Vec<&StoredFamily> = change
            .current
            .map(|g| {
                g.families
                    .iter()
                    .filter(|f| !change.drops_current(&f.name))
                    .collect()
            })
            .unwrap_or_default();
        let written = change.families;
        let size = Self::size_after(change);
        let mut data = Vec::with_capacity(size);
        let mut families = Vec::with_capacity(kept.len() + written.len());
        if let Some(current) = change.current {
            for family in kept {
                let start = data.len();
                data.extend_from_slice(current.metric_bytes(family));
                families.push(StoredFamily {
                    start: start as u32,
                    ..family.clone()
                });
            }
        }
        for family in written {
            let start = data.len();
            data.extend_from_slice(&family.encoded);
            families.push(StoredFamily {
                name: interner.name(&family.name),
                help: family
                    .help
                    .as_deref()
                    .map(|h| interner.help(&family.name, h)),
                kind: family.kind,
                pushed_at: family.pushed_at.unwrap_or(now),
                legacy_label_names: family.legacy_label_names,
                count: family.count as u32,
                start: start as u32,
                len: family.encoded.len() as u32,
            });
        }
        families.sort_by(|a, b| a.name.cmp(&b.name));
        let series = families
            .iter()
            .filter(|f| !is_timestamp_gauge(&f.name))
            .map(|f| f.count)
            .sum();
        Group {
            key: key.clone(),
            id,
            families: families.into_boxed_slice(),
            data: data.into_boxed_slice(),
            meta,
            series,
        }
    }

    /// Approximate heap bytes this group holds (for tests and capacity metrics).
    pub fn encoded_len(&self) -> usize {
        self.data.len()
    }
}

/// Shares the allocations of family names and help texts between groups (the consistency
/// index knows every name in the store).
pub trait Interner {
    /// The shared name for a family name, so that all groups holding a family share one
    /// allocation.
    fn name(&self, name: &str) -> MetricName;
    /// The shared help text, if it equals the one already kept for this family.
    fn help(&self, name: &str, help: &str) -> HelpText;
}

/// What a write will do to one group, as the index needs to know it.
pub struct GroupChange<'a> {
    /// The group as it is now, if it exists.
    pub current: Option<&'a Group>,
    /// The families the write stores (the timestamp gauges included), sorted by name.
    pub families: &'a [PreparedFamily],
    /// Whether the current group's families go (PUT), except `kept_on_replace`, or only those
    /// written anew (POST).
    pub replace_all: bool,
    pub kept_on_replace: &'a [&'a str],
}

impl GroupChange<'_> {
    pub fn writes(&self, name: &str) -> Option<&PreparedFamily> {
        self.families
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.families[i])
    }

    /// Whether the current group's family `name` disappears or is replaced by this write.
    pub fn drops_current(&self, name: &str) -> bool {
        let held = self.current.is_some_and(|g| g.family(name).is_some());
        held && (self.writes(name).is_some()
            || (self.replace_all && !self.kept_on_replace.contains(&name)))
    }
}
