//! What keeps one pusher from exhausting the gateway: limits on groups and series for the whole
//! store and per group, and quotas per requester from the authorization file. A push over a
//! limit is refused whole and changes nothing; a push that does not make a count grow is never
//! refused, so that replacing a group with one of the same size always works.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::group::{Group, Holder};

/// What the store enforces (0 is unlimited, a zero duration is never).
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `--push.expire-after`: groups not pushed for this long are deleted.
    pub expire_after: Duration,
    /// `--push.max-groups`.
    pub max_groups: usize,
    /// `--push.max-series`.
    pub max_series: usize,
    /// `--push.max-series-per-group`.
    pub max_series_per_group: usize,
}

/// What a requester may hold in total, from the rules of the authorization file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub groups: Option<QuotaLimit>,
    pub series: Option<QuotaLimit>,
}

/// One limit of a quota, and the rule that sets it (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaLimit {
    pub max: usize,
    pub rule: Arc<str>,
}

/// Which limit a push would exceed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    MaxGroups,
    MaxSeries,
    MaxSeriesPerGroup,
    QuotaGroups { rule: Arc<str>, holder: Holder },
    QuotaSeries { rule: Arc<str>, holder: Holder },
}

/// A push refused by a limit: which, its value, the count now and the count the push asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct LimitExceeded {
    pub limit: Limit,
    pub max: usize,
    pub current: usize,
    pub asked: usize,
}

impl LimitExceeded {
    /// The `reason` label of `pushgateway_push_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self.limit {
            Limit::MaxGroups => "max_groups",
            Limit::MaxSeries => "max_series",
            Limit::MaxSeriesPerGroup => "max_series_per_group",
            Limit::QuotaGroups { .. } => "quota_groups",
            Limit::QuotaSeries { .. } => "quota_series",
        }
    }

    fn describe(&self) -> String {
        let (max, current, asked) = (self.max, self.current, self.asked);
        match &self.limit {
            Limit::MaxSeriesPerGroup => format!(
                "push refused: the group would hold {asked} series, and --push.max-series-per-group is {max} (it holds {current} now)"
            ),
            Limit::MaxGroups => format!(
                "push refused: --push.max-groups is {max} and the store holds {current} groups; this push would make it {asked}"
            ),
            Limit::MaxSeries => format!(
                "push refused: --push.max-series is {max} and the store holds {current} series; this push would make it {asked}"
            ),
            Limit::QuotaGroups { rule, holder } => format!(
                "push refused: rule {rule:?} allows {holder} {max} groups, and it holds {current}; this push would make it {asked}"
            ),
            Limit::QuotaSeries { rule, holder } => format!(
                "push refused: rule {rule:?} allows {holder} {max} series, and it holds {current}; this push would make it {asked}"
            ),
        }
    }
}

/// How much of the store a holder holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    pub groups: usize,
    pub series: usize,
}

/// The store's counts, kept in step with every change.
#[derive(Debug, Default)]
pub struct Counts {
    pub groups: usize,
    pub series: usize,
    holdings: HashMap<Holder, Holding>,
}

impl Counts {
    pub fn add(&mut self, group: &Group) {
        self.groups += 1;
        self.series += group.series();
        if let Some(holder) = &group.meta().holder {
            let holding = self.holdings.entry(holder.clone()).or_default();
            holding.groups += 1;
            holding.series += group.series();
        }
    }

    pub fn remove(&mut self, group: &Group) {
        self.groups -= 1;
        self.series -= group.series();
        if let Some(holder) = &group.meta().holder
            && let Some(holding) = self.holdings.get_mut(holder)
        {
            holding.groups -= 1;
            holding.series -= group.series();
            if holding.groups == 0 {
                self.holdings.remove(holder);
            }
        }
    }

    pub fn holding(&self, holder: &Holder) -> Holding {
        self.holdings.get(holder).copied().unwrap_or_default()
    }
}

/// A push about to replace `current` with a group of `series` series, held by `holder` under
/// `quota`: the first limit it exceeds, if any.
pub fn check(
    policy: &Policy,
    counts: &Counts,
    current: Option<&Group>,
    series: usize,
    holder: Option<&Holder>,
    quota: Option<&Quota>,
) -> Result<(), LimitExceeded> {
    let current_series = current.map_or(0, Group::series);
    let exceeded = |limit, max, current, asked| {
        Err(LimitExceeded {
            limit,
            max,
            current,
            asked,
        })
    };
    if policy.max_series_per_group > 0
        && series > policy.max_series_per_group
        && series > current_series
    {
        return exceeded(
            Limit::MaxSeriesPerGroup,
            policy.max_series_per_group,
            current_series,
            series,
        );
    }
    if policy.max_groups > 0 && current.is_none() && counts.groups >= policy.max_groups {
        return exceeded(
            Limit::MaxGroups,
            policy.max_groups,
            counts.groups,
            counts.groups + 1,
        );
    }
    let total = counts.series - current_series + series;
    if policy.max_series > 0 && total > policy.max_series && series > current_series {
        return exceeded(Limit::MaxSeries, policy.max_series, counts.series, total);
    }
    let (Some(holder), Some(quota)) = (holder, quota) else {
        return Ok(());
    };
    let holding = counts.holding(holder);
    let held = current.filter(|g| g.meta().holder.as_ref() == Some(holder));
    let groups = holding.groups + usize::from(held.is_none());
    if let Some(QuotaLimit { max, rule }) = &quota.groups
        && groups > *max
        && held.is_none()
    {
        return exceeded(
            Limit::QuotaGroups {
                rule: rule.clone(),
                holder: holder.clone(),
            },
            *max,
            holding.groups,
            groups,
        );
    }
    let held_series = held.map_or(0, Group::series);
    let series_after = holding.series - held_series + series;
    if let Some(QuotaLimit { max, rule }) = &quota.series
        && series_after > *max
        && series > held_series
    {
        return exceeded(
            Limit::QuotaSeries {
                rule: rule.clone(),
                holder: holder.clone(),
            },
            *max,
            holding.series,
            series_after,
        );
    }
    Ok(())
}
