//! Turning a decoded push into what the store keeps: grouping labels forced onto every metric,
//! per-metric validity checks, a stable metric order, the protobuf encoding, and series
//! identities. All of it happens before the store's lock is taken, so it costs the pusher, not
//! everybody.

use std::borrow::Cow;
use std::collections::HashSet;

use prost::Message;

use super::encoding::MetricIter;
use super::errors::{Inconsistency, Rejection, is_allowed_label_name, metric_text};
use super::series::{SeriesId, series_id};
use crate::model::proto::{LabelPair, Metric, MetricFamily, MetricType};
use crate::model::{GroupingKey, label};

/// Names of the two gauges the store maintains per group. Pushed families with these names are
/// dropped: the store's values always win, so alerts on them can be trusted.
pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// Whether a family is one of the two gauges the store maintains per group.
pub fn is_timestamp_gauge(name: &str) -> bool {
    name == PUSH_TIME || name == PUSH_FAILURE_TIME
}

/// A family ready to be stored.
#[derive(Debug, Clone)]
pub struct PreparedFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    /// Sanitised and sorted; kept for error messages until the push is decided. Empty for a
    /// family restored without decoding (see `metrics_for_messages`).
    pub metrics: Vec<Metric>,
    /// How many metrics the family holds.
    pub count: usize,
    /// The metrics encoded as repeated `MetricFamily.metric` fields.
    pub encoded: bytes::Bytes,
    /// One identity per metric, in the same order; empty when the check is off.
    pub series: Vec<SeriesId>,
    /// Problems of single metrics (by position), found without looking at the store; empty when
    /// the check is off.
    pub problems: Vec<(usize, Inconsistency)>,
    /// Whether every label name is legacy-valid, so that no escaping scheme changes them and
    /// the encoding can be served as it is.
    pub legacy_label_names: bool,
    /// When the family was pushed, if not by the write that stores it (a restored family).
    pub pushed_at: Option<crate::model::Timestamp>,
}

impl PreparedFamily {
    /// Builds a family from metrics that already carry their final labels. With `checked`, also
    /// computes series identities and the problems of single metrics.
    pub fn new(
        name: &str,
        help: Option<String>,
        kind: MetricType,
        mut metrics: Vec<Metric>,
        checked: bool,
    ) -> Self {
        metrics.sort_by(compare_metrics);
        let mut encoded = Vec::with_capacity(metrics.iter().map(|m| m.encoded_len() + 6).sum());
        for metric in &metrics {
            prost::encoding::message::encode(
                crate::model::proto::METRIC_FAMILY_METRIC_TAG,
                metric,
                &mut encoded,
            );
        }
        let legacy_label_names = metrics
            .iter()
            .flat_map(|m| &m.label)
            .all(|l| crate::model::is_legacy_metric_name(l.name()));
        let mut series = Vec::new();
        let mut problems = Vec::new();
        if checked {
            series = metrics.iter().map(|m| series_id(name, &m.label)).collect();
            let mut seen = HashSet::with_capacity(metrics.len());
            for (i, (metric, id)) in metrics.iter().zip(&series).enumerate() {
                let problem = metric_problem(name, kind, metric).or_else(|| {
                    (!seen.insert(*id)).then(|| Inconsistency::DuplicateSeries {
                        family: name.to_string(),
                        metric: metric_text(metric),
                    })
                });
                if let Some(problem) = problem {
                    problems.push((i, problem));
                }
            }
        }
        PreparedFamily {
            name: name.to_string(),
            help,
            kind,
            count: metrics.len(),
            metrics,
            encoded: encoded.into(),
            series,
            problems,
            legacy_label_names,
            pushed_at: None,
        }
    }

    /// The metrics, decoded from the encoding if the family was restored without decoding them.
    /// Only needed for the texts of problems.
    pub fn metrics_for_messages(&self) -> Cow<'_, [Metric]> {
        if self.metrics.len() == self.count {
            Cow::Borrowed(&self.metrics)
        } else {
            Cow::Owned(MetricIter::over(&self.encoded).flatten().collect())
        }
    }

    /// One of the two per-group timestamp gauges.
    pub fn timestamp_gauge(
        name: &'static str,
        key: &GroupingKey,
        seconds: f64,
        with_series: bool,
    ) -> Self {
        let help = if name == PUSH_TIME {
            PUSH_TIME_HELP
        } else {
            PUSH_FAILURE_TIME_HELP
        };
        let metric = Metric {
            label: sanitized_labels(&[], key),
            gauge: Some(crate::model::proto::Gauge {
                value: Some(seconds),
            }),
            ..Default::default()
        };
        PreparedFamily::new(
            name,
            Some(help.to_string()),
            MetricType::Gauge,
            vec![metric],
            with_series,
        )
    }
}

/// Prepares a push for the store: timestamps refuse it at once; otherwise every metric gets its
/// final labels and, with `check`, is checked on its own (the store adds what needs the
/// store). Without the check metrics are only sanitised, as upstream does.
pub fn prepare(
    key: &GroupingKey,
    families: Vec<MetricFamily>,
    check: bool,
) -> Result<Vec<PreparedFamily>, Rejection> {
    if families
        .iter()
        .any(|f| f.metric.iter().any(|m| m.timestamp_ms.is_some()))
    {
        return Err(Rejection::Timestamps);
    }
    let mut prepared: Vec<PreparedFamily> = families
        .into_iter()
        .filter(|f| f.name() != PUSH_TIME && f.name() != PUSH_FAILURE_TIME)
        .map(|family| {
            let kind = family.r#type();
            let name = family.name.unwrap_or_default();
            let metrics: Vec<Metric> = family
                .metric
                .into_iter()
                .map(|mut m| {
                    m.label = sanitized_labels(&m.label, key);
                    m
                })
                .collect();
            PreparedFamily::new(&name, family.help, kind, metrics, check)
        })
        .collect();
    prepared.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(prepared)
}

/// Forces the grouping labels onto a metric's labels, as upstream does: the first body label
/// with a grouping label's name takes the URL's value (a second one keeps its own and is caught
/// as a duplicate), missing grouping labels are added, `instance=""` is added when there is no
/// instance at all, and the result is sorted by name.
pub fn sanitized_labels(body: &[LabelPair], key: &GroupingKey) -> Vec<LabelPair> {
    let mut out: Vec<LabelPair> = Vec::with_capacity(body.len() + key.len() + 1);
    let mut done: Vec<&str> = Vec::with_capacity(key.len());
    for pair in body {
        let name = pair.name();
        match key.get(name) {
            Some(value) if !done.contains(&name) => {
                done.push(name);
                out.push(LabelPair::new(name, value));
            }
            _ => out.push(pair.clone()),
        }
    }
    for (name, value) in key.labels() {
        if !done.contains(&name) {
            out.push(LabelPair::new(name, value));
        }
    }
    if !out.iter().any(|l| l.name() == label::INSTANCE) {
        out.push(LabelPair::new(label::INSTANCE, ""));
    }
    out.sort_by(|a, b| a.name().cmp(b.name()));
    out
}

/// The first problem of one sanitised metric, as upstream's gatherer checks it: a value that
/// matches the family's type, then per label (sorted): no repeated name (an empty name counts
/// as a repeat, as upstream's check sees it), no reserved name, no explicit `quantile` on a
/// summary, and (ours) no explicit `le` on a histogram: upstream takes that label, and its
/// scrapes then carry `le` twice on every bucket, which no scraper reads.
pub fn metric_problem(family: &str, kind: MetricType, metric: &Metric) -> Option<Inconsistency> {
    let values = ValuePresence::of(metric);
    let problem = problem_kind(kind, values, metric.label.iter().map(LabelPair::name))?;
    let metric_text = metric_text(metric);
    let family = family.to_string();
    Some(match problem {
        ProblemKind::WrongValueType => Inconsistency::WrongValueType {
            family,
            metric: metric_text,
            expected: kind,
        },
        ProblemKind::DuplicateLabelName(label) => Inconsistency::DuplicateLabelName {
            family,
            metric: metric_text,
            label: label.to_string(),
        },
        ProblemKind::InvalidLabelName(label) => Inconsistency::InvalidLabelName {
            family,
            metric: metric_text,
            label: label.to_string(),
        },
        ProblemKind::ExplicitQuantileLabel => Inconsistency::ExplicitQuantileLabel {
            family,
            metric: metric_text,
        },
        ProblemKind::ExplicitBucketLabel => Inconsistency::ExplicitBucketLabel {
            family,
            metric: metric_text,
        },
    })
}

/// Which value fields a metric has.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValuePresence {
    pub counter: bool,
    pub gauge: bool,
    pub summary: bool,
    pub untyped: bool,
    pub histogram: bool,
}

impl ValuePresence {
    pub fn of(metric: &Metric) -> Self {
        ValuePresence {
            counter: metric.counter.is_some(),
            gauge: metric.gauge.is_some(),
            summary: metric.summary.is_some(),
            untyped: metric.untyped.is_some(),
            histogram: metric.histogram.is_some(),
        }
    }
}

/// What [`metric_problem`] finds, without the texts (which need the decoded metric). Shared
/// with the restore path, which looks at metrics without decoding them.
#[derive(Debug, PartialEq, Eq)]
pub enum ProblemKind<'a> {
    WrongValueType,
    DuplicateLabelName(&'a str),
    InvalidLabelName(&'a str),
    ExplicitQuantileLabel,
    ExplicitBucketLabel,
}

pub fn problem_kind<'a>(
    kind: MetricType,
    values: ValuePresence,
    label_names: impl Iterator<Item = &'a str>,
) -> Option<ProblemKind<'a>> {
    let has_value = match kind {
        MetricType::Counter => values.counter,
        MetricType::Gauge => values.gauge,
        MetricType::Summary => values.summary,
        MetricType::Untyped => values.untyped,
        MetricType::Histogram | MetricType::GaugeHistogram => values.histogram,
    };
    if !has_value {
        return Some(ProblemKind::WrongValueType);
    }
    let mut previous = "";
    for name in label_names {
        if name == previous {
            return Some(ProblemKind::DuplicateLabelName(name));
        }
        if !is_allowed_label_name(name) {
            return Some(ProblemKind::InvalidLabelName(name));
        }
        if values.summary && name == label::QUANTILE {
            return Some(ProblemKind::ExplicitQuantileLabel);
        }
        if values.histogram && name == label::BUCKET {
            return Some(ProblemKind::ExplicitBucketLabel);
        }
        previous = name;
    }
    None
}

/// Upstream's exposition order of metrics within a family: fewer labels first, then label values
/// in label-name order.
pub(super) fn compare_metrics(a: &Metric, b: &Metric) -> std::cmp::Ordering {
    a.label.len().cmp(&b.label.len()).then_with(|| {
        a.label
            .iter()
            .map(LabelPair::value)
            .cmp(b.label.iter().map(LabelPair::value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect()
    }

    #[test]
    fn url_labels_override_body_labels_and_instance_is_added() {
        let key = GroupingKey::from_labels([("job", "urljob")]);
        let body = labels(&[("job", "bodyjob"), ("instance", "bodyinst"), ("other", "o")]);
        assert_eq!(
            sanitized_labels(&body, &key),
            labels(&[("instance", "bodyinst"), ("job", "urljob"), ("other", "o")])
        );
        assert_eq!(
            sanitized_labels(&[], &key),
            labels(&[("instance", ""), ("job", "urljob")])
        );
        let key = GroupingKey::from_labels([("job", "j"), ("instance", "i")]);
        assert_eq!(
            sanitized_labels(&labels(&[("instance", "x")]), &key),
            labels(&[("instance", "i"), ("job", "j")])
        );
    }

    #[test]
    fn a_second_body_label_with_a_grouping_name_survives_and_is_a_duplicate() {
        let key = GroupingKey::from_labels([("job", "j")]);
        let sanitized = sanitized_labels(&labels(&[("job", "a"), ("job", "b")]), &key);
        let metric = Metric {
            label: sanitized,
            untyped: Some(Default::default()),
            ..Default::default()
        };
        let problem = metric_problem("m", MetricType::Untyped, &metric).unwrap();
        assert!(
            problem
                .to_string()
                .contains("has two or more labels with the same name: job")
        );
    }

    #[test]
    fn timestamps_reject_the_whole_push() {
        let key = GroupingKey::from_labels([("job", "j")]);
        let family = MetricFamily {
            name: Some("a".into()),
            r#type: Some(MetricType::Untyped as i32),
            metric: vec![Metric {
                untyped: Some(Default::default()),
                timestamp_ms: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            prepare(&key, vec![family], false).unwrap_err(),
            Rejection::Timestamps
        );
    }
}
