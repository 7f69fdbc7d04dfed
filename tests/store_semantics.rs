//! What pushes do to the store: upstream's storage test cases and black-box observations,
//! checked through the real server's scrape output.

mod common;

use common::{TestGateway, mask_times};

async fn metrics(gw: &TestGateway) -> String {
    mask_times(&gw.pushed_metrics().await)
}

const TIMES_J1: &str = "# HELP push_failure_time_seconds Last Unix time when changing this group in the Pushgateway failed.
# TYPE push_failure_time_seconds gauge
push_failure_time_seconds{instance=\"\",job=\"j1\"} 0
# HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.
# TYPE push_time_seconds gauge
push_time_seconds{instance=\"\",job=\"j1\"} <time>
";

#[tokio::test]
async fn put_replaces_post_merges_by_family_name() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(gw.post("/metrics/job/j1", "m1 1\nm2 2\n").await.status, 200);
    assert_eq!(gw.post("/metrics/job/j1", "m2 3\nm3 3\n").await.status, 200);
    assert_eq!(
        metrics(&gw).await,
        format!(
            "# TYPE m1 untyped\nm1{{instance=\"\",job=\"j1\"}} 1\n# TYPE m2 untyped\nm2{{instance=\"\",job=\"j1\"}} 3\n# TYPE m3 untyped\nm3{{instance=\"\",job=\"j1\"}} 3\n{TIMES_J1}"
        )
    );
    assert_eq!(gw.put("/metrics/job/j1", "m3 4\n").await.status, 200);
    assert_eq!(
        metrics(&gw).await,
        format!("# TYPE m3 untyped\nm3{{instance=\"\",job=\"j1\"}} 4\n{TIMES_J1}")
    );
    // An empty POST only touches the push time; an empty PUT leaves just the two gauges.
    assert_eq!(gw.post("/metrics/job/j1", "").await.status, 200);
    assert!(metrics(&gw).await.contains("m3{"));
    assert_eq!(gw.put("/metrics/job/j1", "").await.status, 200);
    assert_eq!(metrics(&gw).await, TIMES_J1);
    // DELETE removes exactly that group.
    assert_eq!(
        gw.put("/metrics/job/j1/instance/i", "x 1\n").await.status,
        200
    );
    assert_eq!(gw.delete("/metrics/job/j1").await.status, 202);
    let after = metrics(&gw).await;
    assert!(!after.contains("instance=\"\",job=\"j1\"}"), "{after}");
    assert!(after.contains("x{instance=\"i\",job=\"j1\"} 1"), "{after}");
    assert_eq!(gw.delete("/metrics/job/j1/instance/i").await.status, 202);
    assert_eq!(metrics(&gw).await, "");
    gw.stop().await;
}

#[tokio::test]
async fn grouping_labels_override_body_labels() {
    let gw = TestGateway::start(&[]).await;
    let r = gw
        .put(
            "/metrics/job/urljob",
            "x{job=\"bodyjob\",instance=\"bodyinst\",other=\"o\"} 1\n",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        metrics(&gw)
            .await
            .contains("x{instance=\"bodyinst\",job=\"urljob\",other=\"o\"} 1\n")
    );
    // TestSanitizeLabels: labels of the body are rewritten to the grouping key's.
    let r = gw
        .put(
            "/metrics/job/job1/instance/instance2",
            "mf1{instance=\"instance1\",job=\"job2\"} 1\nmf2{job=\"job1\"} 2\n",
        )
        .await;
    assert_eq!(r.status, 200);
    let m = metrics(&gw).await;
    assert!(
        m.contains("mf1{instance=\"instance2\",job=\"job1\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("mf2{instance=\"instance2\",job=\"job1\"} 2\n"),
        "{m}"
    );
    // Two series that differ only in a grouping label become duplicates.
    let r = gw
        .put("/metrics/job/dup", "y{job=\"a\"} 1\ny{job=\"b\"} 2\n")
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("was collected before with the same name and label values"),
        "{}",
        r.text()
    );
    gw.stop().await;
}

#[tokio::test]
async fn rejected_pushes_record_the_failure() {
    let gw = TestGateway::start(&[]).await;
    // TestRejectTimestamps: a new group is created with push_time 0 and a failure time.
    let r = gw.put("/metrics/job/job1", "a 1\nb 1 1000\n").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "pushed metrics are invalid or inconsistent with existing metrics: pushed metrics must not have timestamps\n"
    );
    let m = metrics(&gw).await;
    assert_eq!(
        m,
        "# HELP push_failure_time_seconds Last Unix time when changing this group in the Pushgateway failed.
# TYPE push_failure_time_seconds gauge
push_failure_time_seconds{instance=\"\",job=\"job1\"} <time>
# HELP push_time_seconds Last Unix time when changing this group in the Pushgateway succeeded.
# TYPE push_time_seconds gauge
push_time_seconds{instance=\"\",job=\"job1\"} 0
"
    );
    // TestRejectInconsistentPush (b): a good push afterwards keeps the failure time.
    assert_eq!(
        gw.put("/metrics/job/job1", "mf1{instance=\"instance2\"} 1\n")
            .await
            .status,
        200
    );
    let m = metrics(&gw).await;
    assert!(
        m.contains("push_failure_time_seconds{instance=\"\",job=\"job1\"} <time>"),
        "{m}"
    );
    assert!(
        m.contains("push_time_seconds{instance=\"\",job=\"job1\"} <time>"),
        "{m}"
    );
    // (c) a push duplicating that series from another group is refused, its group created.
    let r = gw
        .put("/metrics/job/job1/instance/instance2", "mf1 1\n")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("collected metric \"mf1\" { label:{name:\"instance\" value:\"instance2\"} label:{name:\"job\" value:\"job1\"} untyped:{value:1}} was collected before with the same name and label values"), "{}", r.text());
    let m = metrics(&gw).await;
    assert!(
        m.contains("push_time_seconds{instance=\"instance2\",job=\"job1\"} 0"),
        "{m}"
    );
    assert_eq!(m.matches("mf1{").count(), 1, "{m}");
    // A parse error is not the store's business: no group, no failure time.
    assert_eq!(gw.put("/metrics/job/parse", "a 1").await.status, 400);
    assert!(!metrics(&gw).await.contains("parse"));
    gw.stop().await;
}

#[tokio::test]
async fn consistency_across_groups() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(
        gw.put("/metrics/job/t1", "# TYPE a counter\na 1\n")
            .await
            .status,
        200
    );
    let r = gw.put("/metrics/job/t2", "# TYPE a gauge\na 1\n").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "pushed metrics are invalid or inconsistent with existing metrics: collected metric \"a\" { label:{name:\"instance\" value:\"\"} label:{name:\"job\" value:\"t2\"} gauge:{value:1}} is not a COUNTER\n"
    );
    // The same type with another help is fine.
    assert_eq!(
        gw.put(
            "/metrics/job/t3",
            "# HELP a other help\n# TYPE a counter\na 2\n"
        )
        .await
        .status,
        200
    );
    // Replacing the only holder of a family may change its type.
    assert_eq!(
        gw.put("/metrics/job/solo", "# TYPE s counter\ns 1\n")
            .await
            .status,
        200
    );
    assert_eq!(
        gw.put("/metrics/job/solo", "# TYPE s gauge\ns 1\n")
            .await
            .status,
        200
    );
    // Suffix collisions, both orders; a summary may have a _bucket neighbour.
    assert_eq!(
        gw.put(
            "/metrics/job/h",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"
        )
        .await
        .status,
        200
    );
    let r = gw.put("/metrics/job/hc", "h_count 5\n").await;
    assert_eq!(r.status, 400);
    assert!(r.text().ends_with("collected metric named \"h_count\" collides with previously collected histogram named \"h\"\n"), "{}", r.text());
    assert_eq!(gw.put("/metrics/job/q", "q_sum 5\n").await.status, 200);
    let r = gw
        .put("/metrics/job/q2", "# TYPE q summary\nq_count 1\n")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().ends_with("collected histogram or summary named \"q\" collides with previously collected metric named \"q_sum\"\n"), "{}", r.text());
    assert_eq!(
        gw.put("/metrics/job/s", "# TYPE sm summary\nsm_count 1\n")
            .await
            .status,
        200
    );
    assert_eq!(gw.put("/metrics/job/s2", "sm_bucket 1\n").await.status, 200);
    // Within one push too.
    let r = gw
        .put(
            "/metrics/job/both",
            "# TYPE z histogram\nz_count 1\nz_bucket{le=\"1\"} 1\n# TYPE z_sum gauge\nz_sum 3\n",
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Label names in the reserved namespace, explicit quantiles.
    let r = gw.put("/metrics/job/res", "m{__x=\"1\"} 1\n").await;
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .ends_with("has a label with an invalid name: __x\n"),
        "{}",
        r.text()
    );
    assert_eq!(gw.put("/metrics/job/nm", "__name__x 1\n").await.status, 200);
    let store = metrics(&gw).await;
    assert!(
        !store.contains("a{instance=\"\",job=\"t2\"}"),
        "rejected pushes store no metrics: {store}"
    );
    assert!(
        store.contains("push_time_seconds{instance=\"\",job=\"t2\"} 0"),
        "but record the failure: {store}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn own_metric_families_are_protected() {
    let gw = TestGateway::start(&[]).await;
    let r = gw
        .put(
            "/metrics/job/own",
            "# TYPE pushgateway_build_info counter\npushgateway_build_info 1\n",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().ends_with(
            "gathered metric family pushgateway_build_info has type COUNTER but should have GAUGE\n"
        ),
        "{}",
        r.text()
    );
    let r = gw.put("/metrics/job/own", "# TYPE pushgateway_http_push_duration_seconds_count gauge\npushgateway_http_push_duration_seconds_count 1\n").await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Same type, other help: accepted, shown with the gateway's help and merged into its family.
    let r = gw
        .put("/metrics/job/own", "# HELP process_open_fds wrong help\n# TYPE process_open_fds gauge\nprocess_open_fds 7\n")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let all = gw.get("/metrics").await.text();
    let family: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("process_open_fds"))
        .collect();
    assert_eq!(
        family[0],
        "# HELP process_open_fds Number of open file descriptors."
    );
    assert_eq!(family[1], "# TYPE process_open_fds gauge");
    assert!(family[2].starts_with("process_open_fds "));
    assert_eq!(family[3], "process_open_fds{instance=\"\",job=\"own\"} 7");
    assert_eq!(all.matches("# TYPE process_open_fds").count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn help_conflicts_pick_the_first_group_with_help() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(
        gw.put("/metrics/job/b", "# HELP mf_help help 2\nmf_help 2\n")
            .await
            .status,
        200
    );
    assert_eq!(gw.put("/metrics/job/a", "mf_help 1\n").await.status, 200);
    assert_eq!(
        gw.put("/metrics/job/c", "# HELP mf_help help 3\nmf_help 3\n")
            .await
            .status,
        200
    );
    let m = metrics(&gw).await;
    assert!(
        m.starts_with("# HELP mf_help help 2\n# TYPE mf_help untyped\nmf_help{instance=\"\",job=\"a\"} 1\nmf_help{instance=\"\",job=\"b\"} 2\nmf_help{instance=\"\",job=\"c\"} 3\n"),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn disabled_check_stores_anything_and_scrapes_fail_until_repaired() {
    let gw = TestGateway::start(&["--push.disable-consistency-check"]).await;
    assert_eq!(
        gw.put("/metrics/job/t1", "# TYPE a counter\na 1\n")
            .await
            .status,
        202
    );
    assert_eq!(
        gw.put("/metrics/job/t2", "# TYPE a gauge\na 1\n")
            .await
            .status,
        202
    );
    let r = gw.get("/metrics").await;
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .starts_with("An error has occurred while serving metrics:\n\n"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("is not a COUNTER"), "{}", r.text());
    assert_eq!(gw.delete("/metrics/job/t2").await.status, 202);
    assert_eq!(gw.get("/metrics").await.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn timestamp_gauges_cannot_be_forged() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(
        gw.put(
            "/metrics/job/f",
            "push_time_seconds 42\npush_failure_time_seconds 43\nok 1\n"
        )
        .await
        .status,
        200
    );
    assert_eq!(
        gw.put("/metrics/job/f", "push_failure_time_seconds 44\n")
            .await
            .status,
        200
    );
    let m = metrics(&gw).await;
    assert!(
        m.contains("push_time_seconds{instance=\"\",job=\"f\"} <time>"),
        "{m}"
    );
    assert!(
        m.contains("push_failure_time_seconds{instance=\"\",job=\"f\"} 0"),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn groups_whose_gauges_would_clash_are_refused_without_breaking_scrapes() {
    let gw = TestGateway::start(&[]).await;
    assert_eq!(gw.put("/metrics/job/a", "x 1\n").await.status, 200);
    // {job="a",instance=""} would expose the same push_time_seconds series as {job="a"}.
    let r = gw.put("/metrics/job/a/instance@base64/=", "y 1\n").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("push_time_seconds"), "{}", r.text());
    assert_eq!(gw.get("/metrics").await.status, 200);
    gw.stop().await;
}
