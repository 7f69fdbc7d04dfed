//! API v1 through the real server: the documents upstream's API answers (its own test cases
//! included), CORS and cache headers, the admin wipe, routing under a prefix, and counting.

mod common;

use common::{PROTOBUF, TestGateway, protobuf_body};
use pushgateway::model::proto::{
    Bucket, BucketSpan, Histogram, LabelPair, Metric, MetricFamily, MetricType, Summary,
};
use serde_json::{Value, json};

const CORS: [(&str, &str); 5] = [
    (
        "access-control-allow-headers",
        "Accept, Authorization, Content-Type, Origin",
    ),
    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", "Date"),
    ("cache-control", "no-cache, no-store, must-revalidate"),
];

fn assert_cors(response: &common::Response) {
    for (name, value) in CORS {
        assert_eq!(response.header(name), Some(value), "header {name}");
    }
}

/// The API document with push times and time stamps replaced, so it can be compared whole.
async fn metrics_document(gw: &TestGateway) -> Value {
    let response = gw.get("/api/v1/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_cors(&response);
    let mut document: Value = serde_json::from_slice(&response.body).expect("valid JSON");
    mask(&mut document, None);
    document
}

fn mask(value: &mut Value, family: Option<&str>) {
    match value {
        Value::Object(object) => {
            for (key, v) in object.iter_mut() {
                if key == "time_stamp" {
                    let text = v.as_str().expect("time stamps are strings");
                    assert!(
                        text.ends_with('Z') && text.len() >= 20,
                        "not RFC 3339 in UTC: {text}"
                    );
                    *v = json!("<TS>");
                } else if key == "value" && family == Some("push_time_seconds") {
                    let seconds: f64 = v.as_str().unwrap().parse().unwrap();
                    assert!(seconds > 1.7e9, "push time {seconds}");
                    *v = json!("<TIME>");
                } else {
                    let family = if key.starts_with("push_") {
                        Some(key.as_str())
                    } else {
                        family
                    };
                    mask(v, family);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, family)),
        _ => {}
    }
}

fn timestamp_families(labels: Value) -> Value {
    json!({
        "push_failure_time_seconds": {
            "help": "Last Unix time when changing this group in the Pushgateway failed.",
            "metrics": [{"labels": labels, "value": "0"}],
            "time_stamp": "<TS>",
            "type": "GAUGE"
        },
        "push_time_seconds": {
            "help": "Last Unix time when changing this group in the Pushgateway succeeded.",
            "metrics": [{"labels": labels, "value": "<TIME>"}],
            "time_stamp": "<TS>",
            "type": "GAUGE"
        }
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn label(name: &str, value: &str) -> LabelPair {
    LabelPair::new(name, value)
}

#[tokio::test]
async fn empty_store_is_an_empty_array() {
    let gw = TestGateway::start(&[]).await;
    let response = gw.get("/api/v1/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), r#"{"status":"success","data":[]}"#);
    gw.stop().await;
}

/// Upstream's `TestMetricsAPI`: a group with non-ASCII and quote-laden labels holding a summary
/// and four histograms (integer and float, classic and native).
#[tokio::test]
async fn metrics_document_as_upstreams_test() {
    let gw = TestGateway::start(&[]).await;
    let classic =
        |count: Option<u64>, count_float: Option<f64>, b1: Bucket, b2: Bucket| Histogram {
            sample_count: count,
            sample_count_float: count_float,
            sample_sum: Some(99.23),
            bucket: vec![b1, b2],
            ..Default::default()
        };
    let bucket = |upper: f64, count: u64| Bucket {
        upper_bound: Some(upper),
        cumulative_count: Some(count),
        ..Default::default()
    };
    let float_bucket = |upper: f64, count: f64| Bucket {
        upper_bound: Some(upper),
        cumulative_count_float: Some(count),
        ..Default::default()
    };
    let span = |offset, length| BucketSpan {
        offset: Some(offset),
        length: Some(length),
    };
    let histogram = |h: Histogram| Metric {
        histogram: Some(h),
        ..Default::default()
    };
    let families = vec![
        MetricFamily {
            name: Some("mf1".into()),
            r#type: Some(MetricType::Summary as i32),
            metric: vec![Metric {
                label: vec![label("instance", r#"inst'a"n\ce1"#), label("job", "Björn")],
                summary: Some(Summary {
                    sample_count: Some(0),
                    sample_sum: Some(0.0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        MetricFamily {
            name: Some("mfh".into()),
            r#type: Some(MetricType::Histogram as i32),
            metric: vec![
                histogram(classic(
                    Some(20),
                    None,
                    bucket(250000.0, 3),
                    bucket(500000.0, 17),
                )),
                Metric {
                    label: vec![label("kind", "float")],
                    ..histogram(classic(
                        None,
                        Some(20.0),
                        float_bucket(250000.0, 3.0),
                        float_bucket(500000.0, 17.0),
                    ))
                },
                Metric {
                    label: vec![label("kind", "native")],
                    ..histogram(Histogram {
                        sample_count: Some(4),
                        sample_sum: Some(99.23),
                        schema: Some(1),
                        zero_threshold: Some(0.001),
                        positive_span: vec![span(0, 4)],
                        positive_delta: vec![0, 2, -2, 0],
                        negative_span: vec![span(1, 1)],
                        negative_delta: vec![2],
                        ..Default::default()
                    })
                },
                Metric {
                    label: vec![label("kind", "native_float")],
                    ..histogram(Histogram {
                        sample_count_float: Some(4.5),
                        sample_sum: Some(99.23),
                        schema: Some(0),
                        zero_threshold: Some(0.001),
                        zero_count_float: Some(0.5),
                        positive_span: vec![span(0, 3)],
                        positive_count: vec![1.0, 0.0, -2.0],
                        ..Default::default()
                    })
                },
            ],
            ..Default::default()
        },
    ];
    let response = gw
        .request(
            "PUT",
            "/metrics/job@base64/QmrDtnJu/instance@base64/aW5zdCdhIm5cY2Ux",
            &[("content-type", PROTOBUF)],
            protobuf_body(&families),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());

    let raw = gw.get("/api/v1/metrics").await.text();
    // Go's encoding/json: compact, quotes and backslashes escaped, no trailing newline.
    assert!(
        raw.contains(r#""instance":"inst'a\"n\\ce1","job":"Björn""#),
        "{raw}"
    );
    assert!(!raw.ends_with('\n'));

    let group_labels = json!({"instance": "inst'a\"n\\ce1", "job": "Björn"});
    let labels_with = |name: &str, value: &str| {
        let mut labels = group_labels.clone();
        labels[name] = json!(value);
        labels
    };
    let expected_group = merge(
        json!({
            "labels": group_labels,
            "last_push_successful": true,
            "mf1": {
                "metrics": [{"count": "0", "labels": group_labels, "quantiles": {}, "sum": "0"}],
                "time_stamp": "<TS>",
                "type": "SUMMARY"
            },
            "mfh": {
                "metrics": [
                    {"buckets": {"250000": "3", "500000": "17"}, "count": "20",
                     "labels": group_labels, "sum": "99.23"},
                    {"buckets": {"250000": "3", "500000": "17"}, "count": "20",
                     "labels": labels_with("kind", "float"), "sum": "99.23"},
                    {"buckets": [[1, "-1.4142135623730951", "-1", "2"],
                                 [0, "1", "1.4142135623730951", "2"]],
                     "count": "4", "labels": labels_with("kind", "native"), "sum": "99.23"},
                    {"buckets": [[3, "-0.001", "0.001", "0.5"], [0, "0.5", "1", "1"],
                                 [0, "2", "4", "-2"]],
                     "count": "4.5", "labels": labels_with("kind", "native_float"),
                     "sum": "99.23"}
                ],
                "time_stamp": "<TS>",
                "type": "HISTOGRAM"
            }
        }),
        timestamp_families(group_labels.clone()),
    );
    assert_eq!(
        metrics_document(&gw).await,
        json!({"status": "success", "data": [expected_group]})
    );
    gw.stop().await;
}

#[tokio::test]
async fn groups_in_grouping_key_order_with_failure_marker_and_html_escaping() {
    let gw = TestGateway::start(&[]).await;
    for path in ["/metrics/job/b", "/metrics/job/a/x/2", "/metrics/job/a/x/1"] {
        assert_eq!(
            gw.put(path, "# HELP m <b>&</b>\n# TYPE m gauge\nm{v=\"<&>\"} 1\n")
                .await
                .status,
            200
        );
    }
    // A type conflict fails the push and marks the group.
    assert_eq!(
        gw.put("/metrics/job/b", "# TYPE m counter\nm 1\n")
            .await
            .status,
        400
    );
    let raw = gw.get("/api/v1/metrics").await.text();
    assert!(
        raw.contains(r#""help":"\u003cb\u003e\u0026\u003c/b\u003e""#),
        "{raw}"
    );
    assert!(raw.contains(r#""v":"\u003c\u0026\u003e""#), "{raw}");
    let document = metrics_document(&gw).await;
    let groups: Vec<(Value, bool)> = document["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["labels"].clone(),
                g["last_push_successful"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            (json!({"job": "a", "x": "1"}), true),
            (json!({"job": "a", "x": "2"}), true),
            (json!({"job": "b"}), false),
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_document_follows_every_change() {
    let gw = TestGateway::start(&["--web.enable-admin-api"]).await;
    let families = |document: &Value| -> Vec<String> {
        document["data"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g.as_object().unwrap().keys().cloned())
            .filter(|k| {
                !["labels", "last_push_successful"].contains(&k.as_str()) && !k.starts_with("push_")
            })
            .collect()
    };
    gw.put("/metrics/job/j", "first 1\n").await;
    assert_eq!(families(&metrics_document(&gw).await), ["first"]);
    gw.post("/metrics/job/j", "second 2\n").await;
    assert_eq!(families(&metrics_document(&gw).await), ["first", "second"]);
    gw.delete("/metrics/job/j").await;
    assert_eq!(families(&metrics_document(&gw).await), Vec::<String>::new());
    gw.put("/metrics/job/k", "third 3\n").await;
    assert_eq!(
        gw.request("PUT", "/api/v1/admin/wipe", &[], "")
            .await
            .status,
        202
    );
    assert_eq!(
        gw.get("/api/v1/metrics").await.text(),
        r#"{"status":"success","data":[]}"#
    );
    gw.stop().await;
}

#[tokio::test]
async fn status_document() {
    let gw = TestGateway::start(&["--persistence.interval=90s"]).await;
    let response = gw.get("/api/v1/status").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_cors(&response);
    let document: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(document["status"], "success");
    let data = &document["data"];
    let build = data["build_information"].as_object().unwrap();
    for key in [
        "branch",
        "buildDate",
        "buildUser",
        "revision",
        "rustVersion",
        "version",
        "fips",
        "cryptoModule",
        "cryptoCertificate",
    ] {
        assert!(
            build[key].is_string(),
            "build_information.{key} in {build:?}"
        );
    }
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        build["fips"],
        if cfg!(feature = "fips") {
            "true"
        } else {
            "false"
        }
    );
    let flags = data["flags"].as_object().unwrap();
    let expected = [
        ("log.format", "logfmt"),
        ("log.level", "info"),
        ("persistence.file", ""),
        ("persistence.interval", "1m30s"),
        ("push.disable-consistency-check", "false"),
        ("push.enable-utf8-names", "false"),
        ("web.authz-file", ""),
        ("web.config.file", ""),
        ("web.enable-admin-api", "false"),
        ("web.enable-lifecycle", "false"),
        ("web.external-url", ""),
        ("web.listen-address", "127.0.0.1:0"),
        ("web.route-prefix", ""),
        ("web.telemetry-path", "/metrics"),
    ];
    for (name, value) in expected {
        assert_eq!(flags[name], value, "flag {name}");
    }
    let start = data["start_time"].as_str().unwrap();
    assert!(start.ends_with('Z') && start.starts_with("20"), "{start}");
    gw.stop().await;
}

#[tokio::test]
async fn options_cors_and_router_answers() {
    let gw = TestGateway::start(&[]).await;
    let options = gw
        .request("OPTIONS", "/api/v1/whatever/deep", &[], "")
        .await;
    assert_eq!(options.status, 200);
    assert!(options.body.is_empty());
    assert_cors(&options);

    let root = gw.get("/api/v1").await;
    assert_eq!(
        (root.status, root.header("location")),
        (301, Some("/api/v1/"))
    );
    let slash = gw.get("/api/v1/").await;
    assert_eq!(
        (slash.status, slash.text().as_str()),
        (404, "404 page not found\n")
    );
    assert_eq!(slash.header("access-control-allow-origin"), None);
    let post = gw.post("/api/v1/status", "").await;
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, OPTIONS"))
    );
    // Upstream's redirect here loses the API's path; ours keeps it.
    let upper = gw.get("/api/v1/STATUS").await;
    assert_eq!(
        (upper.status, upper.header("location")),
        (301, Some("/api/v1/status"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn wipe_only_with_the_admin_api() {
    let off = TestGateway::start(&[]).await;
    off.put("/metrics/job/j", "a 1\n").await;
    let wipe = off.request("PUT", "/api/v1/admin/wipe", &[], "").await;
    assert_eq!(
        (wipe.status, wipe.text().as_str()),
        (404, "404 page not found\n")
    );
    assert!(
        off.pushed_metrics()
            .await
            .contains("a{instance=\"\",job=\"j\"} 1")
    );
    off.stop().await;

    let on = TestGateway::start(&["--web.enable-admin-api"]).await;
    on.put("/metrics/job/j", "a 1\n").await;
    on.put("/metrics/job/k/instance/i", "b 1\n").await;
    let get = on.get("/api/v1/admin/wipe").await;
    assert_eq!(
        (get.status, get.header("allow")),
        (405, Some("OPTIONS, PUT"))
    );
    let wipe = on.request("PUT", "/api/v1/admin/wipe", &[], "").await;
    assert_eq!(wipe.status, 202);
    assert!(wipe.body.is_empty());
    assert_eq!(on.pushed_metrics().await, "");
    // The store takes pushes again, with no trace of the wiped groups in the consistency check.
    assert_eq!(
        on.put("/metrics/job/j", "# TYPE a counter\na 2\n")
            .await
            .status,
        200
    );
    let scrape = on.get("/metrics").await.text();
    assert!(
        scrape.contains(
            "pushgateway_http_requests_total{code=\"202\",handler=\"wipe\",method=\"put\"} 1"
        ),
        "{scrape}"
    );
    on.stop().await;
}

#[tokio::test]
async fn wipe_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let flag = format!("--persistence.file={}", file.display());
    let gw = TestGateway::start(&[&flag, "--web.enable-admin-api"]).await;
    gw.put("/metrics/job/j", "a 1\n").await;
    gw.put("/metrics/job/k", "b 1\n").await;
    assert_eq!(
        gw.request("PUT", "/api/v1/admin/wipe", &[], "")
            .await
            .status,
        202
    );
    gw.put("/metrics/job/after", "c 1\n").await;
    gw.stop().await;
    let gw = TestGateway::start(&[&flag]).await;
    let document = metrics_document(&gw).await;
    let groups: Vec<&Value> = document["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["labels"])
        .collect();
    assert_eq!(groups, [&json!({"job": "after"})]);
    gw.stop().await;
}

#[tokio::test]
async fn everything_moves_under_the_external_url_path() {
    let gw = TestGateway::start(&[
        "--web.external-url=http://example.com/pg/",
        "--web.enable-admin-api",
    ])
    .await;
    assert_eq!(gw.put("/pg/metrics/job/x", "a 1\n").await.status, 200);
    assert_eq!(gw.get("/pg/api/v1/status").await.status, 200);
    assert_eq!(gw.get("/api/v1/status").await.status, 404);
    let document: Value = serde_json::from_slice(&gw.get("/pg/api/v1/metrics").await.body).unwrap();
    assert_eq!(document["data"][0]["labels"], json!({"job": "x"}));
    let root = gw.get("/pg/api/v1").await;
    assert_eq!(
        (root.status, root.header("location")),
        (301, Some("/pg/api/v1/"))
    );
    assert_eq!(
        gw.request("PUT", "/api/v1/admin/wipe", &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        gw.request("PUT", "/pg/api/v1/admin/wipe", &[], "")
            .await
            .status,
        202
    );
    assert_eq!(
        gw.request("OPTIONS", "/pg/api/v1/x", &[], "").await.status,
        200
    );

    // The page sits at the prefix and links its files under the external URL's path
    // (upstream's TestPathPrefixPresenceInPage).
    let bare = gw.get("/pg").await;
    assert_eq!((bare.status, bare.header("location")), (301, Some("/pg/")));
    for path in ["/pg/", "/pg/status"] {
        let page = gw.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(page.text().contains("/pg/static/"), "{}", page.text());
    }
    assert_eq!(gw.get("/").await.status, 404);
    assert_eq!(gw.get("/pg/static/no-such-file.js").await.status, 404);
    gw.stop().await;
}

#[tokio::test]
async fn page_links_are_relative_without_an_external_url() {
    let gw = TestGateway::start(&["--web.route-prefix=/rp"]).await;
    let page = gw.get("/rp/").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("./static/"), "{}", page.text());
    // Every file the page links to is served, typed, and revalidated cheaply.
    let html = page.text();
    let mut linked = 0;
    for piece in html.split("./static/").skip(1) {
        let name = piece.split(['"', '?']).next().unwrap();
        let asset = gw.get(&format!("/rp/static/{name}")).await;
        assert_eq!(asset.status, 200, "{name}");
        let content_type = asset.header("content-type").unwrap().to_string();
        assert!(!content_type.is_empty(), "{name}");
        let etag = asset.header("etag").expect("etag").to_string();
        let again = gw
            .request(
                "GET",
                &format!("/rp/static/{name}"),
                &[("if-none-match", &etag)],
                "",
            )
            .await;
        assert_eq!(again.status, 304, "{name}");
        linked += 1;
    }
    assert!(
        linked >= 2,
        "the page links its script and style sheet: {html}"
    );
    let listing = gw.get("/rp/static").await;
    assert_eq!(
        (listing.status, listing.header("location")),
        (301, Some("/rp/static/"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn api_requests_are_counted_as_upstream_counts_them() {
    let gw = TestGateway::start(&[]).await;
    gw.get("/api/v1/status").await;
    gw.get("/api/v1/metrics").await;
    gw.get("/api/v1/metrics").await;
    gw.request("OPTIONS", "/api/v1/metrics", &[], "").await;
    gw.get("/").await;
    gw.get("/api/v1/nope").await;
    let scrape = gw.get("/metrics").await.text();
    for line in [
        r#"pushgateway_http_requests_total{code="200",handler="api/v1/status",method="get"} 1"#,
        r#"pushgateway_http_requests_total{code="200",handler="api/v1/metrics",method="get"} 2"#,
        r#"pushgateway_http_requests_total{code="200",handler="api/v1/options",method="options"} 1"#,
        r#"pushgateway_http_requests_total{code="200",handler="status",method="get"} 1"#,
    ] {
        assert!(scrape.contains(line), "{line} missing in\n{scrape}");
    }
    assert!(
        !scrape.contains("code=\"404\""),
        "router 404s are not counted:\n{scrape}"
    );
    gw.stop().await;
}
