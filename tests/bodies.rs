//! Push bodies: formats, content encodings, size limits, and hostile input.

mod common;

use std::io::Write;

use bytes::Bytes;
use common::{PROTOBUF, TestGateway, protobuf_body};
use pushgateway::model::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Summary,
};

fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap().into()
}

fn snappy(data: &[u8]) -> Bytes {
    let mut encoder = snap::write::FrameEncoder::new(Vec::new());
    encoder.write_all(data).unwrap();
    encoder.into_inner().unwrap().into()
}

fn gauge(name: &str, value: f64) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: Some(format!("{name} help")),
        r#type: Some(MetricType::Gauge as i32),
        metric: vec![Metric {
            gauge: Some(Gauge { value: Some(value) }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn compressed_bodies() {
    let gw = TestGateway::start(&[]).await;
    for (encoding, body) in [
        ("gzip", gzip(b"gz 1\n")),
        ("GZIP", gzip(b"gz_upper 1\n")),
        ("snappy", snappy(b"sn 1\n")),
        ("deflate", Bytes::from_static(b"raw 1\n")),
    ] {
        let r = gw
            .request(
                "PUT",
                &format!("/metrics/job/{encoding}"),
                &[("content-encoding", encoding)],
                body,
            )
            .await;
        assert_eq!(r.status, 200, "{encoding}: {}", r.text());
    }
    let m = gw.pushed_metrics().await;
    for name in ["gz{", "gz_upper{", "sn{", "raw{"] {
        assert!(m.contains(name), "{name} missing in {m}");
    }
    let r = gw
        .request(
            "PUT",
            "/metrics/job/bad",
            &[("content-encoding", "gzip")],
            "definitely not gzip",
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "gzip: invalid header\n")
    );
    let whole = gzip(b"x 1\n");
    let r = gw
        .request(
            "PUT",
            "/metrics/job/bad",
            &[("content-encoding", "gzip")],
            whole.slice(..whole.len() - 3),
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (400, "unexpected EOF\n"));
    assert!(!gw.pushed_metrics().await.contains("job=\"bad\""));
    gw.stop().await;
}

#[tokio::test]
async fn size_limits_and_decompression_bombs() {
    let gw = TestGateway::start(&["--push.max-body-size=64KiB"]).await;
    let big: String = (0..10_000).map(|i| format!("m{i} 1\n")).collect();
    assert!(big.len() > 64 * 1024);
    let r = gw.put("/metrics/job/big", &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text().starts_with("request body too large"),
        "{}",
        r.text()
    );
    // A gzip bomb: tiny on the wire, huge inflated.
    let bomb = gzip(&vec![b'#'; 8 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let r = gw
        .request(
            "PUT",
            "/metrics/job/bomb",
            &[("content-encoding", "gzip")],
            bomb,
        )
        .await;
    assert_eq!(r.status, 413);
    let r = gw
        .request(
            "PUT",
            "/metrics/job/bomb",
            &[("content-encoding", "snappy")],
            snappy(&vec![b'#'; 1024 * 1024]),
        )
        .await;
    assert_eq!(r.status, 413);
    let m = gw.pushed_metrics().await;
    assert!(!m.contains("big") && !m.contains("bomb"), "{m}");
    // Below the limit all is well.
    assert_eq!(gw.put("/metrics/job/small", "x 1\n").await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn text_parse_errors_are_upstreams() {
    let gw = TestGateway::start(&[]).await;
    let cases = [
        (
            "a 1",
            "text format parsing error in line 1: unexpected end of input stream\n",
        ),
        (
            "a 1\r\n",
            "text format parsing error in line 1: expected float as value, got \"1\\r\"\n",
        ),
        (
            "blablabla\n",
            "text format parsing error in line 1: expected float as value, got \"\"\n",
        ),
        (
            "m.x 1\n",
            "text format parsing error in line 1: expected float as value, got \".x\"\n",
        ),
        (
            "# TYPE a counter\n# TYPE a gauge\na 1\n",
            "text format parsing error in line 2: second TYPE line for metric name \"a\", or TYPE reported after samples\n",
        ),
    ];
    for (body, message) in cases {
        let r = gw.put("/metrics/job/p", body).await;
        assert_eq!((r.status, r.text().as_str()), (400, message), "{body:?}");
    }
    assert_eq!(gw.pushed_metrics().await, "");
    // TYPE-only families vanish; a bare HELP keeps no help.
    assert_eq!(
        gw.put("/metrics/job/p", "# TYPE only counter\n# HELP x\nx 1\n")
            .await
            .status,
        200
    );
    let m = gw.pushed_metrics().await;
    assert!(
        !m.contains("only") && m.contains("# TYPE x untyped\nx{"),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn protobuf_bodies() {
    let gw = TestGateway::start(&[]).await;
    let pb = |families: &[MetricFamily]| protobuf_body(families);
    // Two families; the parameter order does not matter.
    let r = gw
        .request(
            "PUT",
            "/metrics/job/pb",
            &[("content-type", "application/vnd.google.protobuf; encoding=delimited; proto=io.prometheus.client.MetricFamily")],
            pb(&[gauge("pa", 1.0), gauge("pb", 2.0)]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = gw.pushed_metrics().await;
    assert!(
        m.contains("# HELP pa pa help\n# TYPE pa gauge\npa{instance=\"\",job=\"pb\"} 1\n"),
        "{m}"
    );
    // A repeated family name: the last one wins.
    let r = gw
        .request(
            "PUT",
            "/metrics/job/dup",
            &[("content-type", PROTOBUF)],
            pb(&[gauge("d", 1.0), gauge("d", 2.0)]),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        gw.pushed_metrics()
            .await
            .contains("d{instance=\"\",job=\"dup\"} 2\n")
    );
    // Timestamps are refused.
    let mut stamped = gauge("ts", 1.0);
    stamped.metric[0].timestamp_ms = Some(0);
    let r = gw
        .request(
            "PUT",
            "/metrics/job/ts",
            &[("content-type", PROTOBUF)],
            pb(&[stamped]),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .ends_with("pushed metrics must not have timestamps\n")
    );
    // Truncated.
    let whole = pb(&[gauge("t", 1.0)]);
    let r = gw
        .request(
            "PUT",
            "/metrics/job/trunc",
            &[("content-type", PROTOBUF)],
            whole.slice(..whole.len() - 2),
        )
        .await;
    assert_eq!((r.status, r.text().as_str()), (400, "unexpected EOF\n"));
    // A value that does not match the type.
    let mismatch = MetricFamily {
        name: Some("mm".into()),
        r#type: Some(MetricType::Counter as i32),
        metric: vec![Metric {
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = gw
        .request(
            "PUT",
            "/metrics/job/mm",
            &[("content-type", PROTOBUF)],
            pb(&[mismatch]),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().ends_with("} is not a COUNTER\n"), "{}", r.text());
    // An empty family is stored (not exposed); two label names alike are refused.
    let empty = MetricFamily {
        name: Some("pb_empty".into()),
        r#type: Some(MetricType::Counter as i32),
        ..Default::default()
    };
    assert_eq!(
        gw.request(
            "PUT",
            "/metrics/job/empty",
            &[("content-type", PROTOBUF)],
            pb(&[empty])
        )
        .await
        .status,
        200
    );
    assert!(!gw.pushed_metrics().await.contains("pb_empty"));
    let twice = MetricFamily {
        name: Some("tw".into()),
        r#type: Some(MetricType::Counter as i32),
        metric: vec![Metric {
            label: vec![LabelPair::new("a", "1"), LabelPair::new("a", "2")],
            counter: Some(Counter {
                value: Some(1.0),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = gw
        .request(
            "PUT",
            "/metrics/job/tw",
            &[("content-type", PROTOBUF)],
            pb(&[twice]),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .ends_with("has two or more labels with the same name: a\n"),
        "{}",
        r.text()
    );
    // Without proto=, the body is read as text.
    let r = gw
        .request(
            "PUT",
            "/metrics/job/np",
            &[(
                "content-type",
                "application/vnd.google.protobuf; encoding=delimited",
            )],
            pb(&[gauge("np", 1.0)]),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("text format parsing error in line 1"),
        "{}",
        r.text()
    );
    gw.stop().await;
}

/// A histogram or summary whose metric carries the label its buckets or quantiles are written
/// with (`le`, `quantile`): refused, as a scrape would carry the label twice on each line.
#[tokio::test]
async fn bucket_and_quantile_labels_of_their_own_are_refused() {
    let gw = TestGateway::start(&[]).await;
    let histogram = MetricFamily {
        name: Some("lat".into()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            label: vec![LabelPair::new("le", "7")],
            histogram: Some(Histogram {
                sample_count: Some(2),
                sample_sum: Some(1.5),
                bucket: vec![Bucket {
                    cumulative_count: Some(1),
                    upper_bound: Some(0.5),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let summary = MetricFamily {
        name: Some("req".into()),
        r#type: Some(MetricType::Summary as i32),
        metric: vec![Metric {
            label: vec![LabelPair::new("quantile", "0.5")],
            summary: Some(Summary {
                sample_count: Some(2),
                sample_sum: Some(1.5),
                quantile: vec![Quantile {
                    quantile: Some(0.9),
                    value: Some(1.0),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    for (family, label) in [(histogram, "le"), (summary, "quantile")] {
        let r = gw
            .request(
                "PUT",
                "/metrics/job/own-label",
                &[("content-type", PROTOBUF)],
                protobuf_body(&[gauge("beside", 1.0), family]),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.text()
                .ends_with(&format!("must not have an explicit \"{label}\" label\n")),
            "{}",
            r.text()
        );
    }
    // Nothing of either push is stored; the same histogram without the label is.
    let scraped = gw.pushed_metrics().await;
    assert!(!scraped.contains("beside"), "{scraped}");
    let plain = MetricFamily {
        name: Some("lat".into()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            histogram: Some(Histogram {
                sample_count: Some(2),
                bucket: vec![Bucket {
                    cumulative_count: Some(1),
                    upper_bound: Some(0.5),
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
            "/metrics/job/own-label",
            &[("content-type", PROTOBUF)],
            protobuf_body(&[plain]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        gw.pushed_metrics()
            .await
            .contains("lat_bucket{instance=\"\",job=\"own-label\",le=\"0.5\"} 1\n")
    );
    gw.stop().await;
}

/// Deterministic pseudo-random bytes (xorshift), so that a failure can be replayed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn hostile_bodies_never_take_the_server_down() {
    let gw = TestGateway::start(&[]).await;
    let valid = protobuf_body(&[gauge("v", 1.0), gauge("w", 2.0)]);
    let text =
        b"# HELP a b\n# TYPE a histogram\na_bucket{le=\"1\",x=\"y\"} 1\na_sum 1\na_count 1\n"
            .to_vec();
    for seed in 0..300u64 {
        let mut body = if seed % 2 == 0 {
            valid.to_vec()
        } else {
            text.clone()
        };
        // Flip a few bytes, truncate, or replace everything.
        match seed % 3 {
            0 => {
                for (i, b) in noise(seed, 4).into_iter().enumerate() {
                    let at = (b as usize * 7 + i) % body.len();
                    body[at] ^= b | 1;
                }
            }
            1 => body.truncate((seed as usize * 13) % body.len()),
            _ => body = noise(seed, 64),
        }
        for content_type in [PROTOBUF, "text/plain", ""] {
            for encoding in ["", "gzip", "snappy"] {
                let mut headers = vec![("content-type", content_type)];
                if !encoding.is_empty() {
                    headers.push(("content-encoding", encoding));
                }
                let r = gw
                    .request(
                        "PUT",
                        &format!("/metrics/job/fuzz{}", seed % 5),
                        &headers,
                        body.clone(),
                    )
                    .await;
                assert!(
                    [200, 400].contains(&r.status),
                    "seed {seed}: status {} {}",
                    r.status,
                    r.text()
                );
            }
        }
    }
    assert_eq!(gw.get("/-/healthy").await.status, 200);
    assert_eq!(gw.get("/metrics").await.status, 200);
    gw.stop().await;
}
