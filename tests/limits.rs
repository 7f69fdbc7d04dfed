//! Limits that keep a store from being flooded: `--push.max-groups`, `--push.max-series` and
//! `--push.max-series-per-group`, at the boundary (exactly at a limit succeeds, one over fails
//! and changes nothing), with their status codes, messages and counters.

mod common;

use common::{TestGateway, series_value};

/// A body of `n` series (plus nothing else).
fn series(name: &str, n: usize) -> String {
    (0..n).map(|i| format!("{name}{{i=\"{i}\"}} 1\n")).collect()
}

async fn metrics(gateway: &TestGateway) -> String {
    gateway.get("/metrics").await.text()
}

#[tokio::test]
async fn max_groups() {
    let gateway = TestGateway::start(&["--push.max-groups=3"]).await;
    for job in ["a", "b", "c"] {
        assert_eq!(
            gateway
                .put(&format!("/metrics/job/{job}"), "x 1\n")
                .await
                .status,
            200
        );
    }
    let before = gateway.pushed_metrics().await;
    let refused = gateway.put("/metrics/job/d", "x 1\n").await;
    assert_eq!(refused.status, 507, "{}", refused.text());
    assert_eq!(
        refused.text(),
        "push refused: --push.max-groups is 3 and the store holds 3 groups; this push would make it 4\n"
    );
    // Nothing stored, not even a failure time for the group.
    assert_eq!(gateway.pushed_metrics().await, before);
    // Groups that exist can still be replaced and merged into, and deleting one makes room.
    assert_eq!(gateway.put("/metrics/job/a", "x 2\n").await.status, 200);
    assert_eq!(gateway.post("/metrics/job/b", "y 2\n").await.status, 200);
    assert_eq!(gateway.delete("/metrics/job/c").await.status, 202);
    assert_eq!(gateway.put("/metrics/job/d", "x 1\n").await.status, 200);
    let metrics = metrics(&gateway).await;
    assert_eq!(
        series_value(
            &metrics,
            "pushgateway_push_refused_total{reason=\"max_groups\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series_value(&metrics, "pushgateway_store_groups"),
        Some(3.0)
    );
    gateway.stop().await;
}

#[tokio::test]
async fn max_series() {
    let gateway = TestGateway::start(&["--push.max-series=10"]).await;
    assert_eq!(
        gateway.put("/metrics/job/a", &series("m", 6)).await.status,
        200
    );
    // Exactly at the limit.
    assert_eq!(
        gateway.put("/metrics/job/b", &series("m", 4)).await.status,
        200
    );
    let before = gateway.pushed_metrics().await;
    let refused = gateway.put("/metrics/job/c", &series("m", 1)).await;
    assert_eq!(refused.status, 507);
    assert_eq!(
        refused.text(),
        "push refused: --push.max-series is 10 and the store holds 10 series; this push would make it 11\n"
    );
    let grow = gateway.post("/metrics/job/b", &series("n", 1)).await;
    assert_eq!(grow.status, 507, "a POST that adds a series is refused too");
    assert_eq!(gateway.pushed_metrics().await, before);
    // A store at its limit still takes a replacement of the same size, or a smaller one.
    assert_eq!(
        gateway
            .put("/metrics/job/a", &series("other", 6))
            .await
            .status,
        200
    );
    assert_eq!(
        gateway.put("/metrics/job/b", &series("m", 2)).await.status,
        200
    );
    assert_eq!(
        gateway.put("/metrics/job/c", &series("m", 2)).await.status,
        200
    );
    let metrics = metrics(&gateway).await;
    assert_eq!(
        series_value(&metrics, "pushgateway_store_series"),
        Some(10.0)
    );
    assert_eq!(
        series_value(
            &metrics,
            "pushgateway_push_refused_total{reason=\"max_series\"}"
        ),
        Some(2.0)
    );
    gateway.stop().await;
}

#[tokio::test]
async fn max_series_per_group() {
    let gateway = TestGateway::start(&["--push.max-series-per-group=5"]).await;
    assert_eq!(
        gateway.put("/metrics/job/a", &series("m", 5)).await.status,
        200
    );
    let refused = gateway.put("/metrics/job/b", &series("m", 6)).await;
    assert_eq!(refused.status, 413);
    assert_eq!(
        refused.text(),
        "push refused: the group would hold 6 series, and --push.max-series-per-group is 5 (it holds 0 now)\n"
    );
    let merged = gateway.post("/metrics/job/a", &series("n", 1)).await;
    assert_eq!(
        merged.status, 413,
        "a POST counts what the group holds after it"
    );
    assert!(!gateway.pushed_metrics().await.contains("job=\"b\""));
    assert!(!gateway.pushed_metrics().await.contains("n{"));
    // The timestamp gauges do not count: five pushed series fit in a group of five.
    assert_eq!(
        gateway.post("/metrics/job/a", &series("m", 5)).await.status,
        200
    );
    assert_eq!(
        series_value(
            &metrics(&gateway).await,
            "pushgateway_push_refused_total{reason=\"max_series_per_group\"}"
        ),
        Some(2.0)
    );
    gateway.stop().await;
}

/// Limits are checked before consistency: a refused push records no failure, so the group's
/// push_failure_time_seconds stays as it was.
#[tokio::test]
async fn a_refused_push_records_no_failure() {
    let gateway = TestGateway::start(&["--push.max-series-per-group=1"]).await;
    assert_eq!(gateway.put("/metrics/job/a", "x 1\n").await.status, 200);
    assert_eq!(
        gateway.put("/metrics/job/a", &series("x", 2)).await.status,
        413
    );
    let scrape = gateway.pushed_metrics().await;
    assert!(
        scrape.contains("push_failure_time_seconds{instance=\"\",job=\"a\"} 0\n"),
        "{scrape}"
    );
    gateway.stop().await;
}
