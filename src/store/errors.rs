//! Why the store refuses a push, worded as upstream words it (clients and operators match on
//! these texts).

use std::fmt;

use crate::go::{float_string, quote};
use crate::model::label;
use crate::model::proto::{Metric, MetricType};

/// A push the store refused. The group still records the failure (see `Store::push`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("pushed metrics must not have timestamps")]
    Timestamps,
    #[error("the group would hold more than 4 GiB of metrics")]
    GroupTooLarge,
    #[error(transparent)]
    Inconsistent(#[from] Inconsistencies),
}

/// One or more consistency problems, shown like client_golang's `MultiError`: a single problem
/// as itself, several as `N error(s) occurred:` and one `* problem` line each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inconsistencies(pub Vec<Inconsistency>);

impl Inconsistencies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, problem: Inconsistency) {
        self.0.push(problem);
    }

    pub fn into_result(self) -> Result<(), Inconsistencies> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Inconsistencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [single] => write!(f, "{single}"),
            problems => {
                write!(f, "{} error(s) occurred:", problems.len())?;
                for problem in problems {
                    write!(f, "\n* {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Inconsistencies {}

/// A single consistency problem. `metric` fields hold the offending metric in protobuf text
/// form, as upstream prints it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Inconsistency {
    #[error("collected metric {} {{ {metric}}} is not a {expected}", quote(family))]
    WrongValueType {
        family: String,
        metric: String,
        expected: MetricType,
    },
    #[error(
        "collected metric {} {{ {metric}}} has two or more labels with the same name: {label}",
        quote(family)
    )]
    DuplicateLabelName {
        family: String,
        metric: String,
        label: String,
    },
    #[error(
        "collected metric {} {{ {metric}}} has a label with an invalid name: {label}",
        quote(family)
    )]
    InvalidLabelName {
        family: String,
        metric: String,
        label: String,
    },
    #[error(
        "collected metric {} {{ {metric}}} must not have an explicit \"quantile\" label",
        quote(family)
    )]
    ExplicitQuantileLabel { family: String, metric: String },
    #[error(
        "collected metric {} {{ {metric}}} must not have an explicit \"le\" label",
        quote(family)
    )]
    ExplicitBucketLabel { family: String, metric: String },
    #[error(
        "collected metric {} {{ {metric}}} was collected before with the same name and label values",
        quote(family)
    )]
    DuplicateSeries { family: String, metric: String },
    #[error("stored metrics of family {} cannot be read: {reason}", quote(family))]
    Corrupt { family: String, reason: String },
    #[error("gathered metric family {family} has type {found} but should have {expected}")]
    FamilyType {
        family: String,
        found: MetricType,
        expected: MetricType,
    },
    #[error(
        "collected metric named {} collides with previously collected summary named {}",
        quote(name),
        quote(summary)
    )]
    CollidesWithSummary { name: String, summary: String },
    #[error(
        "collected metric named {} collides with previously collected histogram named {}",
        quote(name),
        quote(histogram)
    )]
    CollidesWithHistogram { name: String, histogram: String },
    #[error(
        "collected histogram or summary named {} collides with previously collected metric named {}",
        quote(name),
        quote(other)
    )]
    SummaryOrHistogramCollides { name: String, other: String },
    #[error(
        "collected histogram named {} collides with previously collected metric named {}",
        quote(name),
        quote(other)
    )]
    HistogramCollides { name: String, other: String },
}

impl Inconsistency {
    /// The family (of the change checked) that has the problem.
    pub fn family(&self) -> &str {
        match self {
            Inconsistency::WrongValueType { family, .. }
            | Inconsistency::DuplicateLabelName { family, .. }
            | Inconsistency::InvalidLabelName { family, .. }
            | Inconsistency::ExplicitQuantileLabel { family, .. }
            | Inconsistency::ExplicitBucketLabel { family, .. }
            | Inconsistency::DuplicateSeries { family, .. }
            | Inconsistency::Corrupt { family, .. }
            | Inconsistency::FamilyType { family, .. } => family,
            Inconsistency::CollidesWithSummary { name, .. }
            | Inconsistency::CollidesWithHistogram { name, .. }
            | Inconsistency::SummaryOrHistogramCollides { name, .. }
            | Inconsistency::HistogramCollides { name, .. } => name,
        }
    }
}

/// The compact protobuf text form of a metric that upstream's messages embed, for example
/// `label:{name:"job" value:"a"} gauge:{value:1}`.
pub fn metric_text(metric: &Metric) -> String {
    let mut parts: Vec<String> = metric
        .label
        .iter()
        .map(|l| {
            format!(
                "label:{{name:{} value:{}}}",
                quote(l.name()),
                quote(l.value())
            )
        })
        .collect();
    let num = |f: f64| {
        if f.is_nan() {
            "nan".to_string()
        } else if f.is_infinite() {
            if f > 0.0 { "inf" } else { "-inf" }.to_string()
        } else {
            float_string(f)
        }
    };
    let value_part = |kind: &str, value: Option<f64>| match value {
        Some(v) => format!("{kind}:{{value:{}}}", num(v)),
        None => format!("{kind}:{{}}"),
    };
    if let Some(g) = &metric.gauge {
        parts.push(value_part("gauge", g.value));
    }
    if let Some(c) = &metric.counter {
        parts.push(value_part("counter", c.value));
    }
    if let Some(s) = &metric.summary {
        let mut fields = Vec::new();
        if let Some(c) = s.sample_count {
            fields.push(format!("sample_count:{c}"));
        }
        if let Some(sum) = s.sample_sum {
            fields.push(format!("sample_sum:{}", num(sum)));
        }
        for q in &s.quantile {
            fields.push(format!(
                "quantile:{{quantile:{} value:{}}}",
                num(q.quantile()),
                num(q.value())
            ));
        }
        parts.push(format!("summary:{{{}}}", fields.join(" ")));
    }
    if let Some(u) = &metric.untyped {
        parts.push(value_part("untyped", u.value));
    }
    if let Some(h) = &metric.histogram {
        let mut fields = Vec::new();
        if let Some(c) = h.sample_count {
            fields.push(format!("sample_count:{c}"));
        }
        if let Some(c) = h.sample_count_float {
            fields.push(format!("sample_count_float:{}", num(c)));
        }
        if let Some(sum) = h.sample_sum {
            fields.push(format!("sample_sum:{}", num(sum)));
        }
        for b in &h.bucket {
            let count = match b.cumulative_count_float {
                Some(c) => format!("cumulative_count_float:{}", num(c)),
                None => format!("cumulative_count:{}", b.cumulative_count()),
            };
            fields.push(format!(
                "bucket:{{{count} upper_bound:{}}}",
                num(b.upper_bound())
            ));
        }
        if let Some(schema) = h.schema {
            fields.push(format!("schema:{schema}"));
        }
        parts.push(format!("histogram:{{{}}}", fields.join(" ")));
    }
    if let Some(ts) = metric.timestamp_ms {
        parts.push(format!("timestamp_ms:{ts}"));
    }
    parts.join(" ")
}

/// Whether a label name may appear on a pushed metric: any non-empty name outside the reserved
/// `__` namespace. Upstream checks stored metrics with UTF-8 validation whatever
/// `--push.enable-utf8-names` says (the flag governs the text parser and URLs).
pub fn is_allowed_label_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with(label::RESERVED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{Gauge, LabelPair};

    #[test]
    fn messages_read_like_upstreams() {
        let metric = Metric {
            label: vec![LabelPair::new("instance", ""), LabelPair::new("job", "t2")],
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        };
        let problem = Inconsistency::WrongValueType {
            family: "a".into(),
            metric: metric_text(&metric),
            expected: MetricType::Counter,
        };
        assert_eq!(
            problem.to_string(),
            r#"collected metric "a" { label:{name:"instance" value:""} label:{name:"job" value:"t2"} gauge:{value:1}} is not a COUNTER"#
        );
        let two = Inconsistencies(vec![problem.clone(), problem]);
        assert!(
            two.to_string()
                .starts_with("2 error(s) occurred:\n* collected metric \"a\"")
        );
        assert_eq!(
            Rejection::Timestamps.to_string(),
            "pushed metrics must not have timestamps"
        );
        assert_eq!(
            Inconsistency::FamilyType {
                family: "go_goroutines".into(),
                found: MetricType::Counter,
                expected: MetricType::Gauge
            }
            .to_string(),
            "gathered metric family go_goroutines has type COUNTER but should have GAUGE"
        );
    }
}
