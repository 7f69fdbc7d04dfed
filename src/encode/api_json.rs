//! The store as upstream's `/api/v1/metrics` shows it: one object per group with its grouping
//! labels, whether the last push succeeded, and every family by name, all numbers as strings
//! in Go's formatting. The web UI reads the same document.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::json::Json;
use crate::go::float_string;
use crate::model::Timestamp;
use crate::model::proto::{BucketSpan, Histogram, Metric, MetricType};
use crate::store::{Group, PUSH_FAILURE_TIME, PUSH_TIME, Snapshot, StoredFamily};

const LABELS_KEY: &str = "labels";
const LAST_PUSH_KEY: &str = "last_push_successful";
const EXPIRY_KEY: &str = "expiry";
const LEFT_OUT_KEY: &str = "left_out";

/// The last `/api/v1/metrics` answer and the store generation it shows, so that a UI polling an
/// unchanged store costs a copy.
#[derive(Default)]
pub struct MetricsCache(Mutex<Option<(u64, Bytes)>>);

impl MetricsCache {
    /// The answer for this snapshot, if it is the one rendered last.
    pub fn get(&self, snapshot: &Snapshot) -> Option<Bytes> {
        match &*self.lock() {
            Some((generation, body)) if *generation == snapshot.generation() => Some(body.clone()),
            _ => None,
        }
    }

    /// Renders the whole answer for this snapshot (proportional to the store: call it off the
    /// async executor) and keeps it.
    pub fn render(&self, snapshot: &Snapshot) -> Bytes {
        let mut body = br#"{"status":"success","data":["#.to_vec();
        for (i, group) in snapshot.groups().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            self::group(snapshot, group).write(&mut body);
        }
        body.extend_from_slice(b"]}");
        let body = Bytes::from(body);
        *self.lock() = Some((snapshot.generation(), body.clone()));
        body
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Bytes)>> {
        // The cache holds a complete value or none; a panic elsewhere cannot leave it
        // half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One group's object. A family named like one of the group's own keys (`labels`,
/// `last_push_successful`, and `expiry` or `left_out` when the group has them) is left out:
/// upstream lets it overwrite the key, which breaks every reader of the document.
///
/// Ours: `expiry` is the group's expiry and when it expires, for groups that do; `left_out`
/// names the families a replicated store leaves out of the scrape because they clash with
/// another group's, each with why.
pub fn group(snapshot: &Snapshot, group: &Group) -> Json {
    let mut object = BTreeMap::new();
    for family in group.families() {
        object.insert(family.name.to_string(), self::family(group, family));
    }
    if let Some(deadline) = snapshot.deadline(group) {
        let after = snapshot.expire_after(group);
        object.insert(
            EXPIRY_KEY.to_string(),
            Json::object([
                ("expire_after", Json::Str(crate::go::format_duration(after))),
                ("expires_at", Json::Str(deadline.rfc3339_nanos())),
            ]),
        );
    }
    if let Some(left_out) = snapshot.left_out(group) {
        object.insert(
            LEFT_OUT_KEY.to_string(),
            Json::object(
                left_out
                    .iter()
                    .map(|(name, why)| (name.as_str(), Json::str(&**why))),
            ),
        );
    }
    object.insert(
        LABELS_KEY.to_string(),
        Json::object(group.key().labels().map(|(n, v)| (n, Json::str(v)))),
    );
    object.insert(
        LAST_PUSH_KEY.to_string(),
        Json::Bool(last_push_successful(group)),
    );
    Json::Object(object)
}

/// False only when the last failed push is more recent than the last successful one.
pub fn last_push_successful(group: &Group) -> bool {
    if group.family(PUSH_TIME).is_none() || group.family(PUSH_FAILURE_TIME).is_none() {
        return true;
    }
    group.gauge_value(PUSH_FAILURE_TIME) <= group.gauge_value(PUSH_TIME)
}

fn family(group: &Group, family: &StoredFamily) -> Json {
    let metrics = group
        .metrics(family)
        .flatten()
        .map(|m| metric(&m, family.kind))
        .collect();
    let mut object = BTreeMap::from([
        (
            "time_stamp".to_string(),
            Json::Str(go_time(family.pushed_at)),
        ),
        ("type".to_string(), Json::str(family.kind.upper_name())),
        ("metrics".to_string(), Json::Array(metrics)),
    ]);
    if let Some(help) = family.help.as_deref().filter(|h| !h.is_empty()) {
        object.insert("help".to_string(), Json::str(help));
    }
    Json::Object(object)
}

/// Go's JSON form of a `time.Time`; a time never set is Go's zero time.
fn go_time(at: Timestamp) -> String {
    if at.is_zero() {
        "0001-01-01T00:00:00Z".to_string()
    } else {
        at.rfc3339_nanos()
    }
}

fn metric(metric: &Metric, kind: MetricType) -> Json {
    let mut object = BTreeMap::new();
    object.insert(
        "labels".to_string(),
        Json::object(
            metric
                .label
                .iter()
                .map(|l| (l.name(), Json::str(l.value()))),
        ),
    );
    match kind {
        MetricType::Summary => {
            let summary = metric.summary.clone().unwrap_or_default();
            let quantiles = summary
                .quantile
                .iter()
                .map(|q| {
                    (
                        float_string(q.quantile.unwrap_or(0.0)),
                        Json::Str(float_string(q.value.unwrap_or(0.0))),
                    )
                })
                .collect();
            object.insert("quantiles".to_string(), Json::Object(quantiles));
            object.insert(
                "count".to_string(),
                Json::Str(summary.sample_count.unwrap_or(0).to_string()),
            );
            object.insert(
                "sum".to_string(),
                Json::Str(float_string(summary.sample_sum.unwrap_or(0.0))),
            );
        }
        MetricType::Histogram => {
            let histogram = metric.histogram.clone().unwrap_or_default();
            object.insert(
                "sum".to_string(),
                Json::Str(float_string(histogram.sample_sum.unwrap_or(0.0))),
            );
            let (count, buckets) =
                if histogram.positive_span.is_empty() && histogram.negative_span.is_empty() {
                    classic_histogram(&histogram)
                } else {
                    native_histogram(&histogram)
                };
            object.insert("count".to_string(), Json::Str(count));
            object.insert("buckets".to_string(), buckets);
        }
        _ => {
            let value = metric
                .gauge
                .as_ref()
                .map(|g| g.value)
                .or(metric.counter.as_ref().map(|c| c.value))
                .or(metric.untyped.as_ref().map(|u| u.value))
                .flatten()
                .unwrap_or(0.0);
            object.insert("value".to_string(), Json::Str(float_string(value)));
        }
    }
    Json::Object(object)
}

/// Buckets keyed by upper bound; a non-zero float count wins over the integer one.
fn classic_histogram(histogram: &Histogram) -> (String, Json) {
    let buckets = histogram
        .bucket
        .iter()
        .map(|b| {
            let count = match b.cumulative_count_float {
                Some(c) if c > 0.0 => float_string(c),
                _ => b.cumulative_count.unwrap_or(0).to_string(),
            };
            (float_string(b.upper_bound.unwrap_or(0.0)), Json::Str(count))
        })
        .collect();
    let count = match histogram.sample_count_float {
        Some(c) if c > 0.0 => float_string(c),
        _ => histogram.sample_count.unwrap_or(0).to_string(),
    };
    (count, Json::Object(buckets))
}

/// Native buckets as `[boundary rule, lower, upper, count]`: negative buckets from the most
/// negative, then the zero bucket, then positive buckets; empty buckets left out. Rules: 0 is
/// `(l,u]`, 1 is `[l,u)`, 3 is `[l,u]`.
fn native_histogram(h: &Histogram) -> (String, Json) {
    let schema = h.schema.unwrap_or(0);
    let float =
        h.sample_count_float.unwrap_or(0.0) > 0.0 || h.zero_count_float.unwrap_or(0.0) > 0.0;
    let mut rows = Vec::new();
    let counts = |deltas: &[i64], absolute: &[f64]| -> Vec<String> {
        if float {
            absolute.iter().map(|&c| float_string(c)).collect()
        } else {
            // Deltas accumulate into an int64 that upstream shows as uint64 (a negative count
            // wraps around, as there).
            deltas
                .iter()
                .scan(0i64, |sum, d| {
                    *sum = sum.wrapping_add(*d);
                    Some((*sum as u64).to_string())
                })
                .collect()
        }
    };
    let negative = counts(&h.negative_delta, &h.negative_count);
    let mut negative_rows: Vec<Json> = bucket_indices(&h.negative_span, negative.len())
        .zip(negative)
        .filter(|(_, count)| count != "0")
        .map(|(index, count)| {
            bucket_row(
                1,
                -bound(index, schema),
                -bound(index.wrapping_sub(1), schema),
                count,
            )
        })
        .collect();
    negative_rows.reverse();
    rows.extend(negative_rows);
    let zero_count = if float {
        let count = h.zero_count_float.unwrap_or(0.0);
        (count != 0.0).then(|| float_string(count))
    } else {
        let count = h.zero_count.unwrap_or(0);
        (count != 0).then(|| count.to_string())
    };
    if let Some(count) = zero_count {
        let threshold = h.zero_threshold.unwrap_or(0.0);
        rows.push(bucket_row(3, -threshold, threshold, count));
    }
    let positive = counts(&h.positive_delta, &h.positive_count);
    rows.extend(
        bucket_indices(&h.positive_span, positive.len())
            .zip(positive)
            .filter(|(_, count)| count != "0")
            .map(|(index, count)| {
                bucket_row(
                    0,
                    bound(index.wrapping_sub(1), schema),
                    bound(index, schema),
                    count,
                )
            }),
    );
    let count = if float {
        float_string(h.sample_count_float.unwrap_or(0.0))
    } else {
        h.sample_count.unwrap_or(0).to_string()
    };
    (count, Json::Array(rows))
}

fn bucket_row(rule: u64, lower: f64, upper: f64, count: String) -> Json {
    Json::Array(vec![
        Json::Uint(rule),
        Json::Str(float_string(lower)),
        Json::Str(float_string(upper)),
        Json::Str(count),
    ])
}

/// The bucket index of each of the first `buckets` buckets the spans describe: every span's
/// offset is a gap after the previous span (the first one's counts from index 0). Stops where
/// the spans or the buckets end (upstream crashes the request when they disagree).
fn bucket_indices(spans: &[BucketSpan], buckets: usize) -> impl Iterator<Item = i32> + '_ {
    let mut next = 0i32;
    spans
        .iter()
        .flat_map(move |span| {
            let start = next.wrapping_add(span.offset.unwrap_or(0));
            let length = span.length.unwrap_or(0);
            next = start.wrapping_add(length as i32);
            (0..length).map(move |i| start.wrapping_add(i as i32))
        })
        .take(buckets)
}

/// The upper bound of native bucket `index` at `schema`: 2^(index / 2^schema). The largest
/// finite bucket ends at `f64::MAX`, so that the one after it holds only infinities.
///
/// Upstream reads the fractional powers from a precomputed table whose entries are sometimes
/// one unit in the last place below the exact value; this computes them (the printed bound can
/// differ in its last digit, e.g. `1.4142135623730951` where upstream shows
/// `1.414213562373095`).
fn bound(index: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exponent = i64::from(index) << (-i64::from(schema)).min(62);
        if exponent == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exponent);
    }
    let schema = schema.min(30);
    let per_octave = 1i64 << schema;
    let fraction_index = i64::from(index).rem_euclid(per_octave);
    let exponent = (i64::from(index) >> schema) + 1;
    if fraction_index == 0 && exponent == 1025 {
        return f64::MAX;
    }
    let fraction = (fraction_index as f64 / per_octave as f64).exp2() / 2.0;
    ldexp(fraction, exponent)
}

/// `x · 2^exponent` without intermediate overflow or underflow where the result fits.
fn ldexp(x: f64, exponent: i64) -> f64 {
    let exponent = exponent.clamp(-2200, 2200) as i32;
    let half = exponent / 2;
    x * 2f64.powi(half) * 2f64.powi(exponent - half)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{Bucket, Summary};

    fn json(value: &Json) -> String {
        String::from_utf8(value.to_bytes()).unwrap()
    }

    fn span(offset: i32, length: u32) -> BucketSpan {
        BucketSpan {
            offset: Some(offset),
            length: Some(length),
        }
    }

    #[test]
    fn bounds() {
        assert_eq!(bound(0, 0), 1.0);
        assert_eq!(bound(1, 0), 2.0);
        assert_eq!(bound(-1, 0), 0.5);
        assert_eq!(bound(1, 1), std::f64::consts::SQRT_2);
        assert_eq!(bound(2, 1), 2.0);
        assert_eq!(bound(1, -1), 4.0);
        assert_eq!(bound(1024, 0), f64::MAX);
        assert_eq!(bound(1025, 0), f64::INFINITY);
        assert_eq!(bound(256, -2), f64::MAX);
        assert_eq!(bound(i32::MIN, 8), 0.0);
    }

    #[test]
    fn integer_native_histogram_as_upstream_test() {
        // From upstream's API test: deltas [0, 2, -2, 0] over one span, one negative bucket.
        let h = Histogram {
            sample_count: Some(4),
            sample_sum: Some(1.5),
            schema: Some(1),
            positive_span: vec![span(0, 4)],
            positive_delta: vec![0, 2, -2, 0],
            negative_span: vec![span(0, 1)],
            negative_delta: vec![2],
            ..Default::default()
        };
        let (count, buckets) = native_histogram(&h);
        assert_eq!(count, "4");
        assert_eq!(
            json(&buckets),
            r#"[[1,"-1","-0.7071067811865476","2"],[0,"1","1.4142135623730951","2"]]"#
        );
    }

    #[test]
    fn float_native_histogram_keeps_negative_counts_and_zero_bucket() {
        let h = Histogram {
            sample_count_float: Some(3.5),
            schema: Some(0),
            zero_threshold: Some(0.001),
            zero_count_float: Some(0.5),
            positive_span: vec![span(-1, 2), span(2, 1)],
            positive_count: vec![1.0, 0.0, -2.0],
            ..Default::default()
        };
        let (count, buckets) = native_histogram(&h);
        assert_eq!(count, "3.5");
        assert_eq!(
            json(&buckets),
            r#"[[3,"-0.001","0.001","0.5"],[0,"0.25","0.5","1"],[0,"4","8","-2"]]"#
        );
    }

    #[test]
    fn spans_longer_than_the_buckets_stop_early() {
        let h = Histogram {
            sample_count: Some(1),
            positive_span: vec![span(0, 10)],
            positive_delta: vec![1],
            ..Default::default()
        };
        assert_eq!(json(&native_histogram(&h).1), r#"[[0,"0.5","1","1"]]"#);
    }

    #[test]
    fn classic_histogram_and_summary_fields() {
        let histogram = Histogram {
            sample_count: Some(20),
            sample_sum: Some(99.23),
            bucket: vec![
                Bucket {
                    upper_bound: Some(250000.0),
                    cumulative_count: Some(3),
                    ..Default::default()
                },
                Bucket {
                    upper_bound: Some(500000.0),
                    cumulative_count_float: Some(17.0),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let m = Metric {
            histogram: Some(histogram),
            ..Default::default()
        };
        assert_eq!(
            json(&metric(&m, MetricType::Histogram)),
            r#"{"buckets":{"250000":"3","500000":"17"},"count":"20","labels":{},"sum":"99.23"}"#
        );
        let m = Metric {
            summary: Some(Summary::default()),
            ..Default::default()
        };
        assert_eq!(
            json(&metric(&m, MetricType::Summary)),
            r#"{"count":"0","labels":{},"quantiles":{},"sum":"0"}"#
        );
    }

    #[test]
    fn value_from_whichever_field_is_present() {
        let m = Metric {
            untyped: Some(crate::model::proto::Untyped { value: Some(1e6) }),
            ..Default::default()
        };
        assert_eq!(
            json(&metric(&m, MetricType::Gauge)),
            r#"{"labels":{},"value":"1e+06"}"#
        );
        assert_eq!(
            json(&metric(&Metric::default(), MetricType::GaugeHistogram)),
            r#"{"labels":{},"value":"0"}"#
        );
    }
}
