//! Groups that expire: `--push.expire-after`, the `Pushgateway-Expire-After` header, expiry as a
//! durable, logged and counted deletion, across a restart, and in the API.

mod common;

use std::time::{Duration, Instant};

use common::process::GatewayProcess;
use common::{TestGateway, series_value};
use serde_json::Value;

const EXPIRE: &str = "Pushgateway-Expire-After";

async fn push_with(gateway: &TestGateway, path: &str, body: &str, expire: Option<&str>) -> u16 {
    let headers: Vec<(&str, &str)> = expire.map(|e| (EXPIRE, e)).into_iter().collect();
    gateway
        .request("PUT", path, &headers, body.to_string())
        .await
        .status
}

async fn groups(gateway: &TestGateway) -> Vec<String> {
    let scrape = gateway.pushed_metrics().await;
    let mut jobs: Vec<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("value{instance=\"\",job=\""))
        .filter_map(|l| l.split('"').next())
        .map(String::from)
        .collect();
    jobs.sort();
    jobs
}

async fn wait_until_gone(gateway: &TestGateway, job: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    while groups(gateway).await.iter().any(|j| j == job) {
        assert!(
            started.elapsed() < limit,
            "{job} did not expire within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// The default expiry deletes a group once its last successful push is older than it, at most
/// one scan interval (1 s) late; a refused push does not refresh the group.
#[tokio::test]
async fn groups_expire_after_the_flag() {
    let gateway = TestGateway::start(&["--push.expire-after=1500ms"]).await;
    assert_eq!(
        push_with(&gateway, "/metrics/job/a", "value 1\n", None).await,
        200
    );
    let pushed = Instant::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Refused (a type conflict with itself): records a failure, but does not refresh.
    assert_eq!(
        push_with(
            &gateway,
            "/metrics/job/a",
            "# TYPE value counter\nvalue 1\n# TYPE value gauge\nvalue 2\n",
            None
        )
        .await,
        400
    );
    assert_eq!(groups(&gateway).await, ["a"]);
    wait_until_gone(&gateway, "a", Duration::from_secs(5)).await;
    let expired_after = pushed.elapsed();
    assert!(
        expired_after >= Duration::from_millis(1500) && expired_after < Duration::from_millis(2700),
        "expired {expired_after:?} after the push (expiry 1.5 s, at most 1 s late)"
    );
    let metrics = gateway.get("/metrics").await.text();
    assert_eq!(
        series_value(&metrics, "pushgateway_groups_expired_total"),
        Some(1.0),
        "{metrics}"
    );
    gateway.stop().await;
}

/// Pushing again before the deadline moves it.
#[tokio::test]
async fn a_push_refreshes_the_group() {
    let gateway = TestGateway::start(&["--push.expire-after=1s"]).await;
    for _ in 0..4 {
        assert_eq!(
            push_with(&gateway, "/metrics/job/kept", "value 1\n", None).await,
            200
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(groups(&gateway).await, ["kept"]);
    gateway.stop().await;
}

/// The header overrides the flag for its group and stays with it until a later push changes
/// it; `0` means never; a header that does not parse is refused and changes nothing.
#[tokio::test]
async fn the_header_overrides_the_default() {
    let gateway = TestGateway::start(&["--push.expire-after=2500ms"]).await;
    assert_eq!(
        push_with(&gateway, "/metrics/job/never", "value 1\n", Some("0")).await,
        200
    );
    assert_eq!(
        push_with(&gateway, "/metrics/job/short", "value 1\n", Some("300ms")).await,
        200
    );
    assert_eq!(
        push_with(&gateway, "/metrics/job/default", "value 1\n", None).await,
        200
    );
    // A later push without the header keeps the group's own expiry.
    assert_eq!(
        push_with(&gateway, "/metrics/job/never", "value 2\n", None).await,
        200
    );
    let bad = gateway
        .request("PUT", "/metrics/job/bad", &[(EXPIRE, "soon")], "value 1\n")
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.text(),
        "invalid Pushgateway-Expire-After header \"soon\": time: invalid duration \"soon\"\n"
    );
    let negative = gateway
        .request("PUT", "/metrics/job/bad", &[(EXPIRE, "-1s")], "value 1\n")
        .await;
    assert_eq!(negative.status, 400);

    let short = wait_until_gone(&gateway, "short", Duration::from_secs(3)).await;
    assert!(short < Duration::from_millis(1300), "{short:?}");
    assert_eq!(groups(&gateway).await, ["default", "never"]);
    wait_until_gone(&gateway, "default", Duration::from_secs(4)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        groups(&gateway).await,
        ["never"],
        "0 means never; bad pushes stored nothing"
    );

    // A push with a header changes the group's expiry again.
    assert_eq!(
        push_with(&gateway, "/metrics/job/never", "value 3\n", Some("200ms")).await,
        200
    );
    wait_until_gone(&gateway, "never", Duration::from_secs(3)).await;
    gateway.stop().await;
}

/// The JSON API carries each expiring group's expiry and deadline; groups that never expire
/// have no `expiry` key (upstream's document is unchanged for them).
#[tokio::test]
async fn the_api_shows_when_groups_expire() {
    let gateway = TestGateway::start(&["--push.expire-after=1h"]).await;
    assert_eq!(
        push_with(&gateway, "/metrics/job/hourly", "value 1\n", None).await,
        200
    );
    assert_eq!(
        push_with(&gateway, "/metrics/job/forever", "value 1\n", Some("0")).await,
        200
    );
    let document: Value =
        serde_json::from_slice(&gateway.get("/api/v1/metrics").await.body).unwrap();
    let groups = document["data"].as_array().unwrap();
    let hourly = groups
        .iter()
        .find(|g| g["labels"]["job"] == "hourly")
        .unwrap();
    assert_eq!(hourly["expiry"]["expire_after"], "1h0m0s");
    let expires_at = hourly["expiry"]["expires_at"].as_str().unwrap();
    let push_time = hourly["push_time_seconds"]["metrics"][0]["value"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    let deadline =
        time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let expected = push_time + 3600.0;
    assert!(
        (deadline.unix_timestamp_nanos() as f64 / 1e9 - expected).abs() < 0.01,
        "{expires_at} vs {expected}"
    );
    let forever = groups
        .iter()
        .find(|g| g["labels"]["job"] == "forever")
        .unwrap();
    assert!(forever.get("expiry").is_none(), "{forever}");
    gateway.stop().await;
}

/// Expiry is a deletion like DELETE: in the log, so a restart does not bring the group back;
/// and a gateway restarted after a deadline never serves the expired group.
#[test]
fn expiry_is_durable_and_holds_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let args = [
        format!("--persistence.file={}", file.display()),
        "--push.expire-after=1s".to_string(),
    ];
    let gateway = GatewayProcess::start(&args);
    assert_eq!(
        gateway
            .request("PUT", "/metrics/job/gone", "value 1\n")
            .unwrap()
            .0,
        200
    );
    let started = Instant::now();
    let logged = r#"msg="group expired" grouping_key="{job=\"gone\"}""#;
    while gateway.metrics().contains("job=\"gone\"") || !gateway.log().contains(logged) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            gateway.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // kill -9: only the log has the deletion.
    gateway.kill9();
    let restarted = GatewayProcess::start(&args);
    assert!(!restarted.metrics().contains("job=\"gone\""));

    // A group whose deadline passes while the gateway is down is not served after the
    // restart, not even by the first request.
    assert_eq!(
        restarted
            .request("PUT", "/metrics/job/stale", "value 1\n")
            .unwrap()
            .0,
        200
    );
    restarted.kill9();
    std::thread::sleep(Duration::from_millis(1200));
    let again = GatewayProcess::start(&args);
    let first = again.metrics();
    assert!(!first.contains("job=\"stale\""), "{first}");
    assert_eq!(
        series_value(&first, "pushgateway_groups_expired_total"),
        Some(1.0)
    );
}
