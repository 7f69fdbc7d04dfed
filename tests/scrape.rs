//! The scrape endpoint: exposition format, negotiation, compression, merging with the
//! gateway's own metrics, and consistency under concurrent pushes.

mod common;

use std::io::Read;

use common::{PROTOBUF, TestGateway, decode_protobuf, protobuf_body, strip_own_families};
use pushgateway::model::proto::{
    Bucket, BucketSpan, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

const RICH: &str = "# HELP job_duration_seconds Duration of the job.\n\
# TYPE job_duration_seconds gauge\n\
job_duration_seconds{stage=\"a\"} 0.272\n\
# TYPE lat histogram\n\
lat_bucket{le=\"0.5\"} 3\n\
lat_bucket{le=\"+Inf\"} 5\n\
lat_sum 2.5\n\
lat_count 5\n\
# TYPE req summary\n\
req{quantile=\"0.5\"} 0.1\n\
req{quantile=\"0.9\"} 0.3\n\
req_sum 4.2\n\
req_count 17\n\
# HELP esc Help with \\\\ and \\n.\n\
esc{v=\"q\\\"b\\\\n\\n\"} NaN\n\
big 1e6\n\
small 0.00001\n\
mid 123456.7\n\
neg -0\n\
inf +Inf\n\
ninf -Inf\n\
h2_bucket{le=\"1\"} 0.5\n\
# TYPE h2 histogram\n";

#[tokio::test]
async fn text_exposition_matches_upstreams_layout() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(
        gw.put("/metrics/job/batch/instance/host1", RICH)
            .await
            .status,
        200
    );
    let text = common::mask_times(&gw.pushed_metrics().await);
    let expected = "# TYPE big untyped
big{instance=\"host1\",job=\"batch\"} 1e+06
# HELP esc Help with \\\\ and \\n.
# TYPE esc untyped
esc{instance=\"host1\",job=\"batch\",v=\"q\\\"b\\\\n\\n\"} NaN
# TYPE h2_bucket untyped
h2_bucket{instance=\"host1\",job=\"batch\",le=\"1\"} 0.5
# TYPE inf untyped
inf{instance=\"host1\",job=\"batch\"} +Inf
# HELP job_duration_seconds Duration of the job.
# TYPE job_duration_seconds gauge
job_duration_seconds{instance=\"host1\",job=\"batch\",stage=\"a\"} 0.272
# TYPE lat histogram
lat_bucket{instance=\"host1\",job=\"batch\",le=\"0.5\"} 3
lat_bucket{instance=\"host1\",job=\"batch\",le=\"+Inf\"} 5
lat_sum{instance=\"host1\",job=\"batch\"} 2.5
lat_count{instance=\"host1\",job=\"batch\"} 5
# TYPE mid untyped
mid{instance=\"host1\",job=\"batch\"} 123456.7
# TYPE neg untyped
neg{instance=\"host1\",job=\"batch\"} 0
# TYPE ninf untyped
ninf{instance=\"host1\",job=\"batch\"} -Inf
# HELP push_failure_time_seconds Last Unix time when changing this group in the Pushgateway failed.
# TYPE push_failure_time_seconds gauge
push_failure_time_seconds{instance=\"host1\",job=\"batch\"} 0
# HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.
# TYPE push_time_seconds gauge
push_time_seconds{instance=\"host1\",job=\"batch\"} <time>
# TYPE req summary
req{instance=\"host1\",job=\"batch\",quantile=\"0.5\"} 0.1
req{instance=\"host1\",job=\"batch\",quantile=\"0.9\"} 0.3
req_sum{instance=\"host1\",job=\"batch\"} 4.2
req_count{instance=\"host1\",job=\"batch\"} 17
# TYPE small untyped
small{instance=\"host1\",job=\"batch\"} 1e-05
";
    assert_eq!(text, expected);
    let r = gw.get("/metrics").await;
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    assert!(
        r.text().contains("\npushgateway_build_info{"),
        "own metrics are merged in"
    );
    gw.stop().await;
}

#[tokio::test]
async fn series_order_is_stable_across_groups() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(
        gw.put(
            "/metrics/job/urljob",
            "x{job=\"bodyjob\",instance=\"bodyinst\",other=\"o\"} 1\n"
        )
        .await
        .status,
        200
    );
    assert_eq!(
        gw.put("/metrics/job/urljob2/instance/urlinst", "x 2\n")
            .await
            .status,
        200
    );
    let first = gw.pushed_metrics().await;
    for _ in 0..5 {
        assert_eq!(gw.pushed_metrics().await, first);
    }
    // Series group by group, in grouping-key order ("instance\xFFurlinst..." first).
    let x_lines: Vec<&str> = first.lines().filter(|l| l.starts_with("x{")).collect();
    assert_eq!(
        x_lines,
        vec![
            "x{instance=\"urlinst\",job=\"urljob2\"} 2",
            "x{instance=\"bodyinst\",job=\"urljob\",other=\"o\"} 1",
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn protobuf_scrape_carries_native_histograms() {
    let gw = TestGateway::start(&[]).await;
    let native = MetricFamily {
        name: Some("native".into()),
        help: Some("A native histogram.".into()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            label: vec![LabelPair::new("path", "/x")],
            histogram: Some(Histogram {
                sample_count: Some(4),
                sample_sum: Some(99.23),
                schema: Some(1),
                zero_threshold: Some(1e-128),
                positive_span: vec![BucketSpan {
                    offset: Some(0),
                    length: Some(2),
                }],
                positive_delta: vec![2, -1],
                bucket: vec![Bucket {
                    cumulative_count: Some(3),
                    upper_bound: Some(1.0),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = gw
        .request(
            "PUT",
            "/metrics/job/pb",
            &[("content-type", PROTOBUF)],
            protobuf_body(std::slice::from_ref(&native)),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw
        .request("GET", "/metrics", &[("accept", PROTOBUF)], "")
        .await;
    assert_eq!(
        r.header("content-type"),
        Some(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
        )
    );
    let families = decode_protobuf(&r.body);
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "families sorted by name");
    let got = families
        .iter()
        .find(|f| f.name() == "native")
        .expect("native family");
    assert_eq!(got.help.as_deref(), Some("A native histogram."));
    let metric = &got.metric[0];
    assert_eq!(
        metric.label,
        vec![
            LabelPair::new("instance", ""),
            LabelPair::new("job", "pb"),
            LabelPair::new("path", "/x")
        ]
    );
    assert_eq!(
        metric.histogram, native.metric[0].histogram,
        "buckets and spans arrive unchanged"
    );
    assert!(
        families
            .iter()
            .any(|f| f.name() == "pushgateway_build_info")
    );
    // The text format shows only the classic part.
    let text = gw.pushed_metrics().await;
    assert!(text.contains("native_bucket{instance=\"\",job=\"pb\",path=\"/x\",le=\"1\"} 3\nnative_bucket{instance=\"\",job=\"pb\",path=\"/x\",le=\"+Inf\"} 4\n"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn gzip_when_accepted() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(gw.put("/metrics/job/g", RICH).await.status, 200);
    let plain = gw.get("/metrics").await;
    for _ in 0..2 {
        let r = gw
            .request("GET", "/metrics", &[("accept-encoding", "gzip")], "")
            .await;
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_string(&mut text)
            .expect("valid gzip");
        assert_eq!(strip_own_families(&text), strip_own_families(&plain.text()));
    }
    let r = gw
        .request("GET", "/metrics", &[("accept-encoding", "br")], "")
        .await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(
        strip_own_families(&r.text()),
        strip_own_families(&plain.text())
    );
    // Protobuf, gzipped.
    let r = gw
        .request(
            "GET",
            "/metrics",
            &[("accept", PROTOBUF), ("accept-encoding", "gzip")],
            "",
        )
        .await;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut raw)
        .expect("valid gzip");
    assert!(decode_protobuf(&raw).iter().any(|f| f.name() == "lat"));
    gw.stop().await;
}

#[tokio::test]
async fn openmetrics_and_other_accept_headers_get_text() {
    let gw = TestGateway::start(&[]).await;
    for accept in [
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "*/*",
        "application/json",
        "text/plain;version=1.0.0",
    ] {
        let r = gw
            .request("GET", "/metrics", &[("accept", accept)], "")
            .await;
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
            "{accept}"
        );
        assert!(!r.text().contains("# EOF"), "no OpenMetrics for {accept}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn scrapes_see_whole_pushes_only() {
    let gw = std::sync::Arc::new(TestGateway::start(&[]).await);
    // Every push writes 50 series that all carry the same round number.
    let body = |round: usize| -> String {
        (0..50)
            .map(|i| format!("s{{i=\"{i}\"}} {round}\n"))
            .collect()
    };
    assert_eq!(gw.put("/metrics/job/atomic", &body(0)).await.status, 200);
    let pusher = {
        let gw = gw.clone();
        tokio::spawn(async move {
            for round in 1..=200 {
                assert_eq!(
                    gw.put("/metrics/job/atomic", &body(round)).await.status,
                    200
                );
            }
        })
    };
    let mut scrapes = 0;
    while !pusher.is_finished() {
        let text = gw.pushed_metrics().await;
        let values: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("s{"))
            .filter_map(|l| l.rsplit(' ').next())
            .collect();
        assert_eq!(
            values.len(),
            1,
            "a scrape saw parts of two pushes: {values:?}"
        );
        scrapes += 1;
    }
    pusher.await.expect("pusher");
    assert!(scrapes > 0);
}

#[tokio::test]
async fn promtool_accepts_the_output() {
    let gw = TestGateway::start(&["--push.enable-utf8-names"]).await;
    assert_eq!(
        gw.put("/metrics/job/batch/instance/host1", RICH)
            .await
            .status,
        200
    );
    let r = gw
        .put(
            "/metrics/job/utf8/U__dotted_2e_name/v",
            "{\"my.metric\",\"a.b\"=\"Πρ\"} 1\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    common::promtool_check(&gw.get("/metrics").await.text());
    gw.stop().await;
}
