//! Request bodies and paths of the scenarios. No HELP lines (help strings must agree across
//! groups for upstream's consistency check); values vary with a variant number.

use std::fmt::Write;

use bytes::Bytes;

/// Series pushed per group by [`load_body`].
pub const SERIES_PER_GROUP: u64 = 20;

/// The push of the throughput scenarios: 60 lines, 20 families, one of them a histogram
/// (7 buckets, sum, count) and 19 gauges and counters with one or two series.
pub fn push_body(variant: u64) -> Bytes {
    let mut s = String::with_capacity(3_000);
    let v = variant % 1000;
    s.push_str("# TYPE bench_push_duration_seconds histogram\n");
    let mut cumulative = 0;
    for (i, le) in ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "+Inf"]
        .iter()
        .enumerate()
    {
        cumulative += v + i as u64;
        let _ = writeln!(
            s,
            "bench_push_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(s, "bench_push_duration_seconds_sum {}.25", v * 3);
    let _ = writeln!(s, "bench_push_duration_seconds_count {cumulative}");
    for f in 0..19u64 {
        let kind = if f % 3 == 0 { "counter" } else { "gauge" };
        let name = format!("bench_push_family_{f:02}_{}", kind_suffix(kind));
        let _ = writeln!(s, "# TYPE {name} {kind}");
        if f < 12 {
            for shard in ["a", "b"] {
                let _ = writeln!(s, "{name}{{shard=\"{shard}\"}} {}.5", v * (f + 1));
            }
        } else {
            let _ = writeln!(s, "{name} {}", v + f);
        }
    }
    Bytes::from(s)
}

fn kind_suffix(kind: &str) -> &'static str {
    if kind == "counter" { "total" } else { "value" }
}

/// The body that fills a group of the stored data sets: 20 series in 4 families.
pub fn load_body(group: u64) -> Bytes {
    let mut s = String::with_capacity(1_200);
    for (name, kind) in [
        ("bench_load_processed_total", "counter"),
        ("bench_load_duration_seconds", "gauge"),
        ("bench_load_last_success_timestamp_seconds", "gauge"),
        ("bench_load_queue_length", "gauge"),
    ] {
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for shard in 0..5 {
            let _ = writeln!(s, "{name}{{shard=\"{shard}\"}} {}", group * 7 + shard);
        }
    }
    Bytes::from(s)
}

/// A small push (3 series) for the latency and change pushes.
pub fn small_body(variant: u64) -> Bytes {
    Bytes::from(format!(
        "# TYPE bench_small_duration_seconds gauge\nbench_small_duration_seconds {}.5\n\
         # TYPE bench_small_records_total counter\nbench_small_records_total{{kind=\"in\"}} {variant}\n\
         bench_small_records_total{{kind=\"out\"}} {}\n",
        variant % 97,
        variant / 2
    ))
}

pub fn push_path(client: usize) -> String {
    format!("/metrics/job/bench_push/instance/c{client}")
}

pub fn load_path(group: u64) -> String {
    format!("/metrics/job/bench_load/instance/g{group}")
}

/// 100 groups written in turn by the latency scenario.
pub fn latency_path(seq: u64) -> String {
    format!("/metrics/job/bench_latency/instance/l{}", seq % 100)
}

pub const CHANGE_PATH: &str = "/metrics/job/bench_change";

/// Series of the stored data sets in a scrape (lines of `bench_load_*` samples).
pub fn count_load_series(body: &[u8]) -> u64 {
    body.split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"bench_load_"))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_body_has_60_lines_and_20_families() {
        let body = push_body(7);
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(text.lines().count(), 60);
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 20);
        assert!(text.contains("histogram"));
    }

    #[test]
    fn load_body_has_20_series() {
        let body = load_body(3);
        assert_eq!(count_load_series(&body), SERIES_PER_GROUP);
    }
}
