//! The push API's URL grammar and status codes, through the real server (upstream's handler
//! tests and the black-box cases observed on upstream).

mod common;

use common::{TestGateway, mask_times};

/// Pushes `a 1` to `path` and returns the status, the error text, and the grouping labels of
/// the stored series (as rendered on the `push_time_seconds` line).
async fn push_to(gw: &TestGateway, path: &str) -> (u16, String) {
    let r = gw.put(path, "a 1\n").await;
    (r.status, r.text())
}

async fn series_of_a(gw: &TestGateway) -> Vec<String> {
    gw.pushed_metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("a{"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn grouping_keys_from_urls() {
    let cases: &[(&str, &str)] = &[
        ("/metrics/job/j1", r#"a{instance="",job="j1"} 1"#),
        (
            "/metrics/job/j2/instance/i",
            r#"a{instance="i",job="j2"} 1"#,
        ),
        ("/metrics/job/j3/", r#"a{instance="",job="j3"} 1"#),
        (
            "/metrics/job/trail/a/",
            r#"a{a="",instance="",job="trail"} 1"#,
        ),
        (
            "/metrics/job/emptyval/x@base64/=/b/x",
            r#"a{b="x",instance="",job="emptyval",x=""} 1"#,
        ),
        (
            "/metrics/job/pad/x@base64/===",
            r#"a{instance="",job="pad",x=""} 1"#,
        ),
        (
            "/metrics/job/pct/name/%CE%A0%CF%81",
            r#"a{instance="",job="pct",name="Πρ"} 1"#,
        ),
        (
            "/metrics/job/plus/v/a+b",
            r#"a{instance="",job="plus",v="a+b"} 1"#,
        ),
        (
            "/metrics/job/b64/x@base64/YR",
            r#"a{instance="",job="b64",x="a"} 1"#,
        ),
        (
            "/metrics/job@base64/dGVzdC9qb2I",
            r#"a{instance="",job="test/job"} 1"#,
        ),
        (
            "/metrics/job@base64/dGVzdC9qb2I=/instance@base64/dGVzdGluc3RhbmNl",
            r#"a{instance="testinstance",job="test/job"} 1"#,
        ),
        (
            "/metrics/job/dup/instance/i/instance/k",
            r#"a{instance="k",job="dup"} 1"#,
        ),
        ("/metrics/job/jj/job/other", r#"a{instance="",job="jj"} 1"#),
        (
            "/metrics/job/go/foobar@base64/YnUvbXM",
            r#"a{foobar="bu/ms",instance="",job="go"} 1"#,
        ),
        (
            "/metrics/job/lit/U__label_2e_name2/v",
            r#"a{U__label_2e_name2="v",instance="",job="lit"} 1"#,
        ),
    ];
    let gw = TestGateway::start(&[]).await;
    for (path, expected) in cases {
        let (status, body) = push_to(&gw, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let series = series_of_a(&gw).await;
        assert!(
            series.contains(&expected.to_string()),
            "{path}: want {expected} in {series:?}"
        );
    }
    assert_eq!(series_of_a(&gw).await.len(), cases.len());
    gw.stop().await;
}

#[tokio::test]
async fn label_order_in_the_url_does_not_matter() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(gw.put("/metrics/job/j/a/1/b/2", "a 1\n").await.status, 200);
    assert_eq!(gw.put("/metrics/job/j/b/2/a/1", "a 2\n").await.status, 200);
    assert_eq!(
        series_of_a(&gw).await,
        vec![r#"a{a="1",b="2",instance="",job="j"} 2"#]
    );
    // The same labels in another order name the same group, so DELETE removes it.
    assert_eq!(gw.delete("/metrics/job/j/b/2/a/1").await.status, 202);
    assert!(series_of_a(&gw).await.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn bad_urls_get_upstreams_messages_and_change_nothing() {
    let cases: &[(&str, u16, &str)] = &[
        (
            "/metrics/job/foo/odd",
            400,
            "odd number of components in label string \"/odd\"\n",
        ),
        (
            "/metrics/job/foo/__a/x",
            400,
            "improper label name \"__a\"\n",
        ),
        (
            "/metrics/job/foo/a-b/x",
            400,
            "improper label name \"a-b\"\n",
        ),
        ("/metrics/job/foo/1a/x", 400, "improper label name \"1a\"\n"),
        (
            "/metrics/job/foo/@base64/YQ",
            400,
            "improper label name \"\"\n",
        ),
        (
            "/metrics/job/foo/a@base64@base64/YQ",
            400,
            "improper label name \"a@base64\"\n",
        ),
        (
            "/metrics/job/foo/a@base64/a+b",
            400,
            "invalid base64 encoding for label a=\"a+b\": illegal base64 data at input byte 1\n",
        ),
        ("/metrics/job@base64/=", 400, "job name is required\n"),
        (
            "/metrics/job@base64/a.b",
            400,
            "invalid base64 encoding in job name \"\": illegal base64 data at input byte 1\n",
        ),
        (
            "/metrics/job/pct/name/a%2Fb",
            400,
            "odd number of components in label string \"/name/a/b\"\n",
        ),
        ("/metrics/job/", 307, ""),
        ("/metrics/job", 404, "404 page not found\n"),
        ("/metrics/", 404, "404 page not found\n"),
        ("/metrics/job@base64/", 404, "404 page not found\n"),
        ("/metrics/job/x/%zz", 400, "400 Bad Request"),
    ];
    let gw = TestGateway::start(&[]).await;
    for (path, status, body) in cases {
        for method in ["PUT", "POST", "DELETE"] {
            let r = gw.request(method, path, &[], "a 1\n").await;
            assert_eq!(r.status, *status, "{method} {path}: {}", r.text());
            if r.status >= 400 {
                assert_eq!(r.text(), *body, "{method} {path}");
                assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            }
        }
    }
    assert_eq!(gw.pushed_metrics().await, "", "nothing may be stored");
    gw.stop().await;
}

#[tokio::test]
async fn routing_answers_like_upstream() {
    let gw = TestGateway::start(&[]).await;
    let r = gw.get("/metrics/job/foo").await;
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("DELETE, OPTIONS, POST, PUT"))
    );
    assert_eq!(r.text(), "Method Not Allowed\n");
    let r = gw.request("HEAD", "/metrics", &[], "").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, OPTIONS")));
    let r = gw.request("OPTIONS", "/metrics/job/foo", &[], "").await;
    assert_eq!(
        (r.status, r.header("allow"), r.text().as_str()),
        (200, Some("DELETE, OPTIONS, POST, PUT"), "")
    );
    let r = gw.request("PATCH", "/metrics/job/foo", &[], "").await;
    assert_eq!(r.status, 405);
    let r = gw.request("POST", "/-/healthy", &[], "").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, OPTIONS")));
    let r = gw.put("/metrics/job/foo/a//b/c", "a 1\n").await;
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/metrics/job/foo/a/b/c"))
    );
    let r = gw.put("/metrics/job/foo/../b/c", "a 1\n").await;
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/metrics/job/b/c"))
    );
    let r = gw.put("/metrics/job/", "a 1\n").await;
    assert_eq!(
        (r.status, r.header("location")),
        (307, Some("/metrics/job"))
    );
    let r = gw.get("/METRICS").await;
    assert_eq!((r.status, r.header("location")), (301, Some("/metrics")));
    assert_eq!(r.text(), "<a href=\"/metrics\">Moved Permanently</a>.\n\n");
    let r = gw.put("/METRICS/JOB/x", "a 1\n").await;
    assert_eq!(
        (r.status, r.header("location")),
        (307, Some("/metrics/job/x"))
    );
    let r = gw.get("/-/healthy/").await;
    assert_eq!((r.status, r.header("location")), (301, Some("/-/healthy")));
    let r = gw.get("/nothing/here").await;
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
    assert_eq!(
        gw.pushed_metrics().await,
        "",
        "redirects and errors store nothing"
    );
    gw.stop().await;
}

#[tokio::test]
async fn health_readiness_and_quit() {
    let gw = TestGateway::start(&[]).await;
    for path in ["/-/healthy", "/-/ready"] {
        let r = gw.get(path).await;
        assert_eq!((r.status, r.text().as_str()), (200, "OK"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    let r = gw.get("/-/quit").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (405, "Only POST or PUT requests allowed.")
    );
    assert_eq!(r.header("allow"), None);
    for method in ["PUT", "POST"] {
        let r = gw.request(method, "/-/quit", &[], "").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (403, "Lifecycle API is not enabled.")
        );
    }
    // Still serving.
    assert_eq!(gw.get("/-/healthy").await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn status_codes_for_methods_and_check_mode() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(gw.put("/metrics/job/a", "m1 1\nm2 2\n").await.status, 200);
    assert_eq!(gw.post("/metrics/job/a", "m2 3\nm3 3\n").await.status, 200);
    assert_eq!(gw.put("/metrics/job/a", "m3 4\n").await.status, 200);
    assert_eq!(gw.post("/metrics/job/a", "").await.status, 200);
    assert_eq!(gw.put("/metrics/job/a", "").await.status, 200);
    assert_eq!(
        gw.request("DELETE", "/metrics/job/a", &[], "garbage")
            .await
            .status,
        202
    );
    assert_eq!(gw.delete("/metrics/job/never-pushed").await.status, 202);
    gw.stop().await;

    let gw = TestGateway::start(&["--push.disable-consistency-check"]).await;
    assert_eq!(gw.put("/metrics/job/a", "m1 1\n").await.status, 202);
    assert_eq!(gw.post("/metrics/job/a", "m1 1\n").await.status, 202);
    // Parse errors are still errors.
    assert_eq!(gw.put("/metrics/job/a", "m1 1").await.status, 400);
    // Timestamps are refused silently: 202, and the group records the failure.
    assert_eq!(gw.put("/metrics/job/ts", "m1 1 1000\n").await.status, 202);
    let metrics = mask_times(&gw.pushed_metrics().await);
    assert!(
        metrics.contains("push_failure_time_seconds{instance=\"\",job=\"ts\"} <time>"),
        "{metrics}"
    );
    assert!(
        metrics.contains("push_time_seconds{instance=\"\",job=\"ts\"} 0"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn utf8_names_in_urls_when_enabled() {
    let gw = TestGateway::start(&["--push.enable-utf8-names"]).await;
    let r = gw
        .put(
            "/metrics/job/testjob/instance/testinstance/U__dotted_2e_label_2e_name/mylabelvalue",
            "a 1\n",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw
        .request(
            "GET",
            "/metrics",
            &[("accept", "text/plain; version=0.0.4; escaping=allow-utf-8")],
            "",
        )
        .await;
    assert!(
        r.text().contains(
            r#"a{"dotted.label.name"="mylabelvalue",instance="testinstance",job="testjob"} 1"#
        ),
        "{}",
        r.text()
    );
    // Escaped to underscores by default.
    let metrics = gw.pushed_metrics().await;
    assert!(
        metrics.contains(
            r#"a{dotted_label_name="mylabelvalue",instance="testinstance",job="testjob"} 1"#
        ),
        "{metrics}"
    );
    let r = gw.delete("/metrics/job@base64/dGVzdGpvYg/instance@base64/dGVzdGluc3RhbmNl/U__dotted_2e_label_2e_name@base64/bXlsYWJlbHZhbHVl").await;
    assert_eq!(r.status, 202);
    assert_eq!(gw.pushed_metrics().await, "");
    gw.stop().await;
}
