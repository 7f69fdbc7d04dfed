//! The text exposition format 0.0.4, written as prometheus/common's encoder writes it (the
//! same line layout, escapes and number formatting), with names escaped per the negotiated
//! scheme.

use crate::go::push_float;
use crate::model::proto::{Metric, MetricType};
use crate::model::{EscapingScheme, is_legacy_label_name, is_legacy_metric_name, label};

/// `# HELP` (only when help is set) and `# TYPE` lines of a family.
pub fn write_header(
    out: &mut Vec<u8>,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
    escaping: EscapingScheme,
) {
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        write_name(out, name, escaping, false);
        out.push(b' ');
        for b in help.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b => out.push(b),
            }
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    write_name(out, name, escaping, false);
    out.push(b' ');
    out.extend_from_slice(kind.text_name().as_bytes());
    out.push(b'\n');
}

/// The sample lines of one metric. A metric without the value its family's type calls for
/// writes nothing: the store only holds such metrics when the consistency check is off, and
/// then a scrape is refused before it gets here.
pub fn write_metric(
    out: &mut Vec<u8>,
    name: &str,
    kind: MetricType,
    metric: &Metric,
    escaping: EscapingScheme,
) {
    let sample = |out: &mut Vec<u8>, suffix: &str, extra: Option<(&str, f64)>, value: f64| {
        write_series(out, name, suffix, metric, extra, escaping);
        out.push(b' ');
        push_sample_value(out, value);
        out.push(b'\n');
    };
    match kind {
        MetricType::Counter => {
            if let Some(c) = &metric.counter {
                sample(out, "", None, c.value());
            }
        }
        MetricType::Gauge => {
            if let Some(g) = &metric.gauge {
                sample(out, "", None, g.value());
            }
        }
        MetricType::Untyped => {
            if let Some(u) = &metric.untyped {
                sample(out, "", None, u.value());
            }
        }
        MetricType::Summary => {
            if let Some(s) = &metric.summary {
                for q in &s.quantile {
                    sample(out, "", Some((label::QUANTILE, q.quantile())), q.value());
                }
                sample(out, "_sum", None, s.sample_sum());
                sample(out, "_count", None, s.sample_count() as f64);
            }
        }
        MetricType::Histogram | MetricType::GaugeHistogram => {
            if let Some(h) = &metric.histogram {
                let mut saw_inf = false;
                for bucket in &h.bucket {
                    let upper = bucket.upper_bound();
                    saw_inf |= upper == f64::INFINITY;
                    sample(out, "_bucket", Some((label::BUCKET, upper)), bucket.count());
                }
                if !saw_inf {
                    sample(
                        out,
                        "_bucket",
                        Some((label::BUCKET, f64::INFINITY)),
                        h.count(),
                    );
                }
                sample(out, "_sum", None, h.sample_sum());
                sample(out, "_count", None, h.count());
            }
        }
    }
}

/// `name_suffix{label="value",...,extra="x"}`; the label set is omitted when empty.
fn write_series(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    metric: &Metric,
    extra: Option<(&str, f64)>,
    escaping: EscapingScheme,
) {
    let full_name;
    let name = if suffix.is_empty() {
        name
    } else {
        full_name = format!("{name}{suffix}");
        &full_name
    };
    let mut separator = b'{';
    let quoted_name = escaping == EscapingScheme::AllowUtf8 && !is_legacy_metric_name(name);
    if quoted_name {
        out.push(separator);
        separator = b',';
    }
    write_name(out, name, escaping, false);
    if metric.label.is_empty() && extra.is_none() {
        if quoted_name {
            out.push(b'}');
        }
        return;
    }
    for pair in &metric.label {
        out.push(separator);
        separator = b',';
        write_name(out, pair.name(), escaping, true);
        out.extend_from_slice(b"=\"");
        write_label_value(out, pair.value());
        out.push(b'"');
    }
    if let Some((extra_name, extra_value)) = extra {
        out.push(separator);
        out.extend_from_slice(extra_name.as_bytes());
        out.extend_from_slice(b"=\"");
        push_label_float(out, extra_value);
        out.push(b'"');
    }
    out.push(b'}');
}

/// `le` and `quantile` values go through the same short-cuts as sample values.
fn push_label_float(out: &mut Vec<u8>, value: f64) {
    if value == 0.0 {
        out.push(b'0');
    } else {
        push_float(out, value);
    }
}

/// A metric name, or a label name (`label`): as it is when legacy-valid (`:` is allowed in
/// metric names only), otherwise escaped per the scheme, or quoted when the scraper allows
/// UTF-8.
fn write_name(out: &mut Vec<u8>, name: &str, escaping: EscapingScheme, label: bool) {
    let legacy = if label {
        is_legacy_label_name(name)
    } else {
        is_legacy_metric_name(name)
    };
    if legacy {
        out.extend_from_slice(name.as_bytes());
    } else if escaping == EscapingScheme::AllowUtf8 {
        out.push(b'"');
        write_label_value(out, name);
        out.push(b'"');
    } else if label {
        out.extend_from_slice(escaping.escape_label(name).as_bytes());
    } else {
        out.extend_from_slice(escaping.escape(name).as_bytes());
    }
}

fn write_label_value(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' => out.extend_from_slice(b"\\\""),
            b => out.push(b),
        }
    }
}

/// Appends `f` as prometheus/common's text encoder writes sample values: like [`push_float`], but
/// `-0` comes out as `0` because the encoder short-cuts values equal to 0, 1 and -1.
fn push_sample_value(out: &mut Vec<u8>, f: f64) {
    if f == 0.0 {
        out.push(b'0');
    } else {
        push_float(out, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{Bucket, Gauge, Histogram, LabelPair, Quantile, Summary};

    #[test]
    fn sample_values_print_negative_zero_as_zero() {
        let mut out = Vec::new();
        push_sample_value(&mut out, -0.0);
        assert_eq!(out, b"0");
    }

    fn render(name: &str, kind: MetricType, metric: Metric, escaping: EscapingScheme) -> String {
        let mut out = Vec::new();
        write_metric(&mut out, name, kind, &metric, escaping);
        String::from_utf8(out).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect()
    }

    #[test]
    fn header_escapes_help_and_skips_unset_help() {
        let mut out = Vec::new();
        write_header(
            &mut out,
            "a",
            Some("line\none \\ \"q\""),
            MetricType::Counter,
            EscapingScheme::Underscores,
        );
        write_header(
            &mut out,
            "b",
            None,
            MetricType::GaugeHistogram,
            EscapingScheme::Underscores,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP a line\\none \\\\ \"q\"\n# TYPE a counter\n# TYPE b histogram\n"
        );
    }

    #[test]
    fn gauge_with_escaped_label_values() {
        let metric = Metric {
            label: labels(&[("instance", ""), ("job", "a\"b\\c\nd")]),
            gauge: Some(Gauge { value: Some(1e6) }),
            ..Default::default()
        };
        assert_eq!(
            render("g", MetricType::Gauge, metric, EscapingScheme::Underscores),
            "g{instance=\"\",job=\"a\\\"b\\\\c\\nd\"} 1e+06\n"
        );
        let bare = Metric {
            gauge: Some(Gauge { value: Some(-0.0) }),
            ..Default::default()
        };
        assert_eq!(
            render("g", MetricType::Gauge, bare, EscapingScheme::Underscores),
            "g 0\n"
        );
    }

    #[test]
    fn histogram_gets_a_synthetic_inf_bucket() {
        let metric = Metric {
            label: labels(&[("job", "batch")]),
            histogram: Some(Histogram {
                sample_count: Some(5),
                sample_sum: Some(2.5),
                bucket: vec![Bucket {
                    cumulative_count: Some(3),
                    upper_bound: Some(0.5),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            render(
                "lat",
                MetricType::Histogram,
                metric,
                EscapingScheme::Underscores
            ),
            "lat_bucket{job=\"batch\",le=\"0.5\"} 3\n\
             lat_bucket{job=\"batch\",le=\"+Inf\"} 5\n\
             lat_sum{job=\"batch\"} 2.5\n\
             lat_count{job=\"batch\"} 5\n"
        );
    }

    #[test]
    fn summary_lines() {
        let metric = Metric {
            summary: Some(Summary {
                sample_count: Some(17),
                sample_sum: Some(4.2),
                quantile: vec![Quantile {
                    quantile: Some(0.5),
                    value: Some(f64::NAN),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            render(
                "req",
                MetricType::Summary,
                metric,
                EscapingScheme::Underscores
            ),
            "req{quantile=\"0.5\"} NaN\nreq_sum 4.2\nreq_count 17\n"
        );
    }

    #[test]
    fn utf8_names_are_escaped_or_quoted() {
        let metric = || Metric {
            label: labels(&[("a.b", "v")]),
            untyped: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            render(
                "my.metric",
                MetricType::Untyped,
                metric(),
                EscapingScheme::Underscores
            ),
            "my_metric{a_b=\"v\"} 0\n"
        );
        assert_eq!(
            render(
                "my.metric",
                MetricType::Untyped,
                metric(),
                EscapingScheme::AllowUtf8
            ),
            "{\"my.metric\",\"a.b\"=\"v\"} 0\n"
        );
        // A colon is fine in a metric name, not in a label name (found by fuzzing: the
        // exposition did not parse).
        let colon = || Metric {
            label: labels(&[(":x", "v")]),
            untyped: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            render(
                "a:b",
                MetricType::Untyped,
                colon(),
                EscapingScheme::AllowUtf8
            ),
            "a:b{\":x\"=\"v\"} 0\n"
        );
        assert_eq!(
            render(
                "a:b",
                MetricType::Untyped,
                colon(),
                EscapingScheme::Underscores
            ),
            "a:b{_x=\"v\"} 0\n"
        );
    }
}
