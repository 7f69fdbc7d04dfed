//! Preparing persisted families for the store without decoding them, when their encoding is
//! exactly what the store itself would write.
//!
//! A restore of a million series spent most of its time decoding every metric into owned
//! strings, re-encoding it, and dropping it again. The files are written by the store, so almost
//! always every metric is already in canonical form (labels first, each as name then value,
//! minimal lengths, the value fields as prost writes them) and the metrics are already sorted.
//! Then the bytes are kept as they are, and series identities and per-metric problems are
//! computed from borrowed label strings. Anything else (a file imported from upstream, unsorted
//! metrics, an unknown field, damage) takes the decoding path, so the result never differs
//! from what decoding would give.

use std::collections::{HashSet, VecDeque};
use std::sync::{Condvar, Mutex};

use prost::Message;
use prost::encoding::{decode_varint, encoded_len_varint};

use super::backend::{PersistedFamily, PersistedGroup};
use super::encoding::{CorruptMetrics, MetricIter};
use super::errors::{Inconsistency, metric_text};
use super::group::GroupMeta;
use super::prepare::{PreparedFamily, ValuePresence, metric_problem, problem_kind};
use super::series::{SeriesId, SeriesIdHasher, series_id_of};
use crate::model::GroupingKey;
use crate::model::proto::{
    Counter, Gauge, Histogram, METRIC_FAMILY_METRIC_TAG, Metric, Summary, Untyped,
};

/// Groups with their families prepared, in the order given.
struct PreparedGroups {
    groups: Vec<(GroupingKey, GroupMeta, Vec<PreparedFamily>)>,
    /// Metrics that did not decode, in the order met.
    unreadable: Vec<Inconsistency>,
}

/// Groups prepared at a time by one thread: small enough that applying can start early and
/// the threads finish together, large enough that handing work over costs nothing.
const GROUPS_PER_RUN: usize = 256;

/// Prepares every group's families (sorted by name, as the store keeps them) and hands the
/// groups to `apply` in the order given, on this thread. Other cores prepare the groups ahead
/// of the one being applied; this thread prepares too when it would otherwise wait. Returns
/// the metrics that did not decode, in order.
pub(super) fn prepare_in_order(
    groups: Vec<PersistedGroup>,
    checked: bool,
    mut apply: impl FnMut(GroupingKey, GroupMeta, Vec<PreparedFamily>),
) -> Vec<Inconsistency> {
    let mut runs = VecDeque::new();
    let mut rest = groups.into_iter();
    loop {
        let run: Vec<_> = rest.by_ref().take(GROUPS_PER_RUN).collect();
        if run.is_empty() {
            break;
        }
        runs.push_back((runs.len(), run));
    }
    let count = runs.len();
    let helpers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count)
        .saturating_sub(1);
    let queue = Mutex::new(runs);
    let done: Mutex<Vec<Option<PreparedGroups>>> = Mutex::new((0..count).map(|_| None).collect());
    let finished = Condvar::new();
    let prepare_next = || {
        let next = lock(&queue).pop_front();
        let Some((at, run)) = next else {
            return false;
        };
        let prepared = prepare_run(run, checked);
        lock(&done)[at] = Some(prepared);
        finished.notify_all();
        true
    };
    let mut unreadable = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            // A thread that cannot be had leaves its share to the others and this one.
            let _ = std::thread::Builder::new()
                .name("restore".into())
                .spawn_scoped(scope, || while prepare_next() {});
        }
        for at in 0..count {
            let prepared = loop {
                let mut slots = lock(&done);
                if let Some(prepared) = slots[at].take() {
                    break prepared;
                }
                drop(slots);
                if prepare_next() {
                    continue;
                }
                // Everything is taken; the run needed is being prepared elsewhere.
                let mut slots = lock(&done);
                while slots[at].is_none() {
                    slots = finished.wait(slots).unwrap_or_else(|p| p.into_inner());
                }
            };
            unreadable.extend(prepared.unreadable);
            for (key, meta, families) in prepared.groups {
                apply(key, meta, families);
            }
        }
    });
    unreadable
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// About how many series `groups` hold, from the framing of their metrics alone: enough to
/// size the index once instead of growing it step by step, rehashing everything each time.
pub(super) fn series_estimate(groups: &[PersistedGroup]) -> usize {
    groups
        .iter()
        .flat_map(|group| &group.families)
        .map(|family| {
            let mut rest: &[u8] = &family.metrics;
            let mut count = 0;
            while take_key(&mut rest, METRIC_KEY).is_some() && take_len(&mut rest).is_some() {
                count += 1;
            }
            count
        })
        .sum()
}

fn prepare_run(groups: Vec<PersistedGroup>, checked: bool) -> PreparedGroups {
    let mut unreadable = Vec::new();
    let groups = groups
        .into_iter()
        .map(|group| {
            let mut prepared: Vec<PreparedFamily> = group
                .families
                .into_iter()
                .map(|family| prepare_restored(family, checked, &mut unreadable))
                .collect();
            prepared.sort_by(|a, b| a.name.cmp(&b.name));
            (group.key, group.meta, prepared)
        })
        .collect();
    PreparedGroups { groups, unreadable }
}

/// `Metric` without its labels, so that the value fields are decoded (and checked) by prost
/// exactly as in a full decode. Same tags as `Metric`, so prost writes them in the same order.
#[derive(Clone, PartialEq, prost::Message)]
struct MetricValues {
    #[prost(message, optional, tag = "2")]
    gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    counter: Option<Counter>,
    #[prost(message, optional, tag = "4")]
    summary: Option<Summary>,
    #[prost(message, optional, tag = "5")]
    untyped: Option<Untyped>,
    #[prost(message, optional, tag = "7")]
    histogram: Option<Histogram>,
    #[prost(int64, optional, tag = "6")]
    timestamp_ms: Option<i64>,
}

/// One metric seen through its encoding.
struct View<'a> {
    /// The `Metric` message, without the field key and length in front of it.
    message: &'a [u8],
    /// Its labels in `Scan::labels`.
    labels: std::ops::Range<usize>,
    values: ValuePresence,
}

struct Scan<'a> {
    views: Vec<View<'a>>,
    labels: Vec<(&'a str, &'a str)>,
}

impl<'a> Scan<'a> {
    fn labels(&self, view: &View<'a>) -> &[(&'a str, &'a str)] {
        &self.labels[view.labels.clone()]
    }
}

/// Key byte of a length-delimited field with a number below 16.
const fn len_key(field: u32) -> u8 {
    ((field << 3) | 2) as u8
}

const METRIC_KEY: u8 = len_key(METRIC_FAMILY_METRIC_TAG);
const LABEL_KEY: u8 = len_key(1);
const NAME_KEY: u8 = len_key(1);
const VALUE_KEY: u8 = len_key(2);

/// A length as prost writes it: a varint of minimal size, within what is left.
fn take_len<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = match buf.split_first() {
        // Nearly every length is below 128: one byte, minimal by construction. Decoding it as
        // a general varint was a fifth of the scan.
        Some((&byte, rest)) if byte < 0x80 => {
            *buf = rest;
            usize::from(byte)
        }
        _ => {
            let before = buf.len();
            let len = decode_varint(buf).ok()?;
            if before - buf.len() != encoded_len_varint(len) {
                return None;
            }
            usize::try_from(len).ok()?
        }
    };
    if len > buf.len() {
        return None;
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Some(field)
}

fn take_key(buf: &mut &[u8], key: u8) -> Option<()> {
    let (&first, rest) = buf.split_first()?;
    (first == key).then(|| *buf = rest)
}

fn take_str<'a>(buf: &mut &'a [u8], key: u8) -> Option<&'a str> {
    take_key(buf, key)?;
    utf8(take_len(buf)?)
}

/// `str::from_utf8` with a fast path for ASCII, which nearly every label is: the general check
/// cost about 80 instructions per short string, a quarter of the scan.
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// Views of every metric, or `None` unless the encoding is canonical: what decoding the
/// metrics and encoding them again would give, byte for byte.
fn scan(encoded: &[u8]) -> Option<Scan<'_>> {
    // Room for metrics of about 64 bytes with three labels each, so that the vectors rarely
    // grow (growing them step by step was a tenth of the scan).
    let mut scan = Scan {
        views: Vec::with_capacity(encoded.len() / 64 + 1),
        labels: Vec::with_capacity(encoded.len() / 20 + 1),
    };
    let mut rest = encoded;
    let mut scratch = Vec::new();
    while !rest.is_empty() {
        take_key(&mut rest, METRIC_KEY)?;
        let message = take_len(&mut rest)?;
        let mut fields = message;
        let first_label = scan.labels.len();
        while fields.first() == Some(&LABEL_KEY) {
            fields = &fields[1..];
            let mut pair = take_len(&mut fields)?;
            let name = take_str(&mut pair, NAME_KEY)?;
            let value = take_str(&mut pair, VALUE_KEY)?;
            if !pair.is_empty() {
                return None;
            }
            scan.labels.push((name, value));
        }
        let values = MetricValues::decode(fields).ok()?;
        scratch.clear();
        values.encode_raw(&mut scratch);
        if scratch != fields {
            return None;
        }
        scan.views.push(View {
            message,
            labels: first_label..scan.labels.len(),
            values: ValuePresence {
                counter: values.counter.is_some(),
                gauge: values.gauge.is_some(),
                summary: values.summary.is_some(),
                untyped: values.untyped.is_some(),
                histogram: values.histogram.is_some(),
            },
        });
    }
    Some(scan)
}

/// Checks that `encoded` (repeated `MetricFamily.metric` fields) decodes, as decoding every
/// metric would check it, without decoding where the encoding is canonical (for files imported
/// from upstream, whose metrics are kept as upstream encoded them).
pub fn check_metrics(encoded: &[u8]) -> Result<(), CorruptMetrics> {
    if scan(encoded).is_some() {
        return Ok(());
    }
    MetricIter::over(encoded).try_for_each(|metric| metric.map(drop))
}

/// The store's order of metrics (see `prepare::compare_metrics`), on views.
fn sorted(scan: &Scan<'_>) -> bool {
    scan.views.windows(2).all(|pair| {
        let (a, b) = (scan.labels(&pair[0]), scan.labels(&pair[1]));
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().map(|l| l.1).cmp(b.iter().map(|l| l.1)))
            .is_le()
    })
}

/// The decoded metric behind a view, for a message. The view's bytes decoded once already, as
/// parts; as a whole they decode too.
fn decoded(view: &View<'_>) -> Metric {
    Metric::decode(view.message).unwrap_or_default()
}

/// A persisted family ready for the store, as `PreparedFamily::new` would make it from its
/// decoded metrics. Metrics that do not decode are left out and reported in `unreadable`.
pub(super) fn prepare_restored(
    family: PersistedFamily,
    checked: bool,
    unreadable: &mut Vec<Inconsistency>,
) -> PreparedFamily {
    let fast = scan(&family.metrics)
        .filter(sorted)
        .map(|scan| FastParts::of(&family, &scan, checked));
    let Some(parts) = fast else {
        return prepare_decoded(family, checked, unreadable);
    };
    PreparedFamily {
        name: family.name,
        help: family.help,
        kind: family.kind,
        metrics: Vec::new(),
        count: parts.count,
        encoded: family.metrics,
        series: parts.series,
        problems: parts.problems,
        legacy_label_names: parts.legacy_label_names,
        pushed_at: Some(family.pushed_at),
    }
}

/// What the fast path computes from the views before the encoding moves into the family.
struct FastParts {
    count: usize,
    series: Vec<SeriesId>,
    problems: Vec<(usize, Inconsistency)>,
    legacy_label_names: bool,
}

impl FastParts {
    fn of(family: &PersistedFamily, scan: &Scan<'_>, checked: bool) -> FastParts {
        let name = family.name.as_str();
        let legacy_label_names = scan
            .labels
            .iter()
            .all(|l| crate::model::is_legacy_metric_name(l.0));
        let mut series = Vec::new();
        let mut problems = Vec::new();
        if checked {
            series = scan
                .views
                .iter()
                .map(|v| series_id_of(name, scan.labels(v).iter().copied()))
                .collect();
            let mut seen = HashSet::with_capacity_and_hasher(series.len(), SeriesIdHasher);
            for (i, (view, id)) in scan.views.iter().zip(&series).enumerate() {
                let names = scan.labels(view).iter().map(|l| l.0);
                let problem = if problem_kind(family.kind, view.values, names).is_some() {
                    metric_problem(name, family.kind, &decoded(view))
                } else if !seen.insert(*id) {
                    Some(Inconsistency::DuplicateSeries {
                        family: name.to_string(),
                        metric: metric_text(&decoded(view)),
                    })
                } else {
                    None
                };
                if let Some(problem) = problem {
                    problems.push((i, problem));
                }
            }
        }
        FastParts {
            count: scan.views.len(),
            series,
            problems,
            legacy_label_names,
        }
    }
}

/// The general path: decode every metric and prepare the family from them.
fn prepare_decoded(
    family: PersistedFamily,
    checked: bool,
    unreadable: &mut Vec<Inconsistency>,
) -> PreparedFamily {
    let mut metrics = Vec::new();
    for metric in MetricIter::over(&family.metrics) {
        match metric {
            Ok(metric) => metrics.push(metric),
            Err(err) => unreadable.push(Inconsistency::Corrupt {
                family: family.name.clone(),
                reason: err.to_string(),
            }),
        }
    }
    let mut restored =
        PreparedFamily::new(&family.name, family.help, family.kind, metrics, checked);
    restored.pushed_at = Some(family.pushed_at);
    restored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;
    use crate::model::proto::{Bucket, Counter, LabelPair, MetricType};

    fn encode(metrics: &[Metric]) -> Vec<u8> {
        let mut out = Vec::new();
        for metric in metrics {
            prost::encoding::message::encode(METRIC_FAMILY_METRIC_TAG, metric, &mut out);
        }
        out
    }

    fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
        Metric {
            label: labels.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect(),
            gauge: Some(Gauge { value: Some(value) }),
            ..Default::default()
        }
    }

    fn persisted(kind: MetricType, metrics: Vec<u8>) -> PersistedFamily {
        PersistedFamily {
            name: "m".into(),
            help: Some("h".into()),
            kind,
            pushed_at: Timestamp::ZERO,
            metrics: metrics.into(),
        }
    }

    /// Both paths, compared on everything the store uses.
    fn assert_same(kind: MetricType, metrics: Vec<u8>, expect_fast: bool) {
        let family = persisted(kind, metrics);
        assert_eq!(
            scan(&family.metrics).filter(sorted).is_some(),
            expect_fast,
            "fast path taken"
        );
        for checked in [false, true] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let fast = prepare_restored(family.clone(), checked, &mut a);
            let slow = prepare_decoded(family.clone(), checked, &mut b);
            assert_eq!(a, b);
            assert_eq!(fast.encoded, slow.encoded);
            assert_eq!(fast.count, slow.count);
            assert_eq!(fast.series, slow.series);
            assert_eq!(fast.problems, slow.problems);
            assert_eq!(fast.legacy_label_names, slow.legacy_label_names);
            assert_eq!(fast.pushed_at, slow.pushed_at);
            assert_eq!(&*fast.metrics_for_messages(), &*slow.metrics_for_messages());
        }
    }

    #[test]
    fn canonical_sorted_metrics_take_the_fast_path_with_the_same_result() {
        let metrics = vec![
            gauge(&[("instance", ""), ("job", "j")], 1.0),
            gauge(&[("instance", ""), ("job", "j"), ("shard", "a")], 2.0),
            gauge(&[("instance", ""), ("job", "j"), ("shard", "b")], 3.0),
        ];
        assert_same(MetricType::Gauge, encode(&metrics), true);
        let histogram = Metric {
            label: vec![LabelPair::new("job", "j")],
            histogram: Some(Histogram {
                sample_count: Some(3),
                sample_sum: Some(1.5),
                bucket: vec![Bucket {
                    cumulative_count: Some(3),
                    upper_bound: Some(1.0),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_same(MetricType::Histogram, encode(&[histogram]), true);
        assert_same(MetricType::Gauge, Vec::new(), true);
    }

    #[test]
    fn problems_and_duplicates_match_the_decoding_path() {
        let mut metrics = vec![
            gauge(&[("job", "j")], 1.0),
            gauge(&[("job", "j")], 2.0),
            gauge(&[("__reserved", "x"), ("job", "j")], 3.0),
            gauge(&[("job", "j"), ("job", "k")], 4.0),
        ];
        metrics.sort_by(super::super::prepare::compare_metrics);
        assert_same(MetricType::Gauge, encode(&metrics), true);
        // A counter family holding gauges: every metric has the wrong value type.
        assert_same(MetricType::Counter, encode(&metrics), true);
        let summary = Metric {
            label: vec![LabelPair::new("quantile", "0.5")],
            summary: Some(Summary::default()),
            ..Default::default()
        };
        assert_same(MetricType::Summary, encode(&[summary]), true);
    }

    #[test]
    fn anything_unusual_takes_the_decoding_path() {
        // Unsorted.
        let unsorted = vec![
            gauge(&[("job", "j"), ("shard", "b")], 1.0),
            gauge(&[("job", "j"), ("shard", "a")], 2.0),
        ];
        assert_same(MetricType::Gauge, encode(&unsorted), false);
        // A label without a value field.
        let no_value = Metric {
            label: vec![LabelPair {
                name: Some("job".into()),
                value: None,
            }],
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        };
        assert_same(MetricType::Gauge, encode(&[no_value]), false);
        // An unknown field after the values (dropped by decoding).
        let mut unknown = encode(&[gauge(&[("job", "j")], 1.0)]);
        let extra = [0x48, 0x01]; // field 9, varint 1
        unknown[1] += extra.len() as u8;
        unknown.extend_from_slice(&extra);
        assert_same(MetricType::Gauge, unknown, false);
        // Damage: cut short, and invalid UTF-8 in a label.
        let mut cut = encode(&[gauge(&[("job", "j")], 1.0)]);
        cut.pop();
        assert_same(MetricType::Gauge, cut, false);
        let mut bad = encode(&[gauge(&[("job", "j")], 1.0)]);
        let at = bad.iter().position(|&b| b == b'j').unwrap();
        bad[at] = 0xFF;
        assert_same(MetricType::Gauge, bad, false);
        // A length written with more bytes than needed.
        let metric = gauge(&[("job", "j")], 1.0);
        let mut long = vec![METRIC_KEY, 0x80 | metric.encoded_len() as u8, 0x00];
        metric.encode_raw(&mut long);
        assert_same(MetricType::Gauge, long, false);
    }

    /// The restore checks groups in one pass while loading them; it must find exactly what
    /// checking the loaded store as a whole finds (what it did before).
    #[test]
    fn restoring_finds_what_validating_the_whole_store_finds() {
        use crate::store::OwnFamily;
        use crate::store::snapshot::validate;
        let own = [OwnFamily {
            name: "pushgateway_build_info",
            kind: MetricType::Gauge,
            help: "build",
        }];
        let family = |name: &str, kind: MetricType, metrics: Vec<Metric>| PersistedFamily {
            name: name.into(),
            help: None,
            kind,
            pushed_at: Timestamp::ZERO,
            metrics: encode(&metrics).into(),
        };
        let counter = |labels: &[(&str, &str)]| Metric {
            label: labels.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect(),
            counter: Some(Counter {
                value: Some(1.0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let histogram = Metric {
            histogram: Some(Histogram::default()),
            ..Default::default()
        };
        let key = |job: &str| GroupingKey::from_labels([("job", job)]);
        let groups = vec![
            (
                key("a"),
                vec![
                    family("m", MetricType::Gauge, vec![gauge(&[("x", "1")], 1.0)]),
                    family("h", MetricType::Histogram, vec![histogram.clone()]),
                ],
            ),
            // A type clash with a's "m".
            (
                key("b"),
                vec![family(
                    "m",
                    MetricType::Counter,
                    vec![counter(&[("x", "2")])],
                )],
            ),
            // The same series as a's, an in-family duplicate, and a metric with the wrong
            // value type that repeats a series held elsewhere.
            (
                key("c"),
                vec![family(
                    "m",
                    MetricType::Gauge,
                    vec![
                        counter(&[("x", "1")]),
                        gauge(&[("x", "1")], 2.0),
                        gauge(&[("x", "3")], 3.0),
                        gauge(&[("x", "3")], 4.0),
                    ],
                )],
            ),
            // A suffix collision with a's histogram, and a clash with an own family.
            (
                key("d"),
                vec![
                    family("h_count", MetricType::Gauge, vec![gauge(&[], 1.0)]),
                    family(
                        "pushgateway_build_info",
                        MetricType::Counter,
                        vec![counter(&[])],
                    ),
                ],
            ),
            // Two families of one name in one group, the second repeating the first's series.
            (
                key("e"),
                vec![
                    family("n", MetricType::Gauge, vec![gauge(&[("y", "1")], 1.0)]),
                    family("n", MetricType::Gauge, vec![gauge(&[("y", "1")], 2.0)]),
                ],
            ),
            // Clean.
            (
                key("f"),
                vec![family(
                    "m",
                    MetricType::Gauge,
                    vec![gauge(&[("x", "9")], 1.0)],
                )],
            ),
        ];
        let groups: Vec<PersistedGroup> = groups
            .into_iter()
            .map(|(key, families)| PersistedGroup {
                key,
                meta: GroupMeta::default(),
                families,
            })
            .collect();
        let store = crate::store::View::new(&own, true, Default::default());
        let found = store.restore(groups.clone());
        assert!(found.0.len() >= 6, "{found}");
        assert_eq!(found, validate(&store.snapshot(), &own));
        // The index the store ends with is the one pushes would have built: the same
        // problems for a group pushed again.
        let again = crate::store::View::new(&own, true, Default::default());
        let mut reversed = groups;
        reversed.reverse();
        assert_eq!(
            again.restore(reversed),
            found,
            "order of the input does not matter"
        );
    }
}
