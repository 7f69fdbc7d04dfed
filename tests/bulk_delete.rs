//! `DELETE <prefix>/api/v1/groups?match=<selector>`: deleting many groups at once, with each
//! matcher kind, in one durable step, behind the admin API, and with authorization.

mod common;

use common::process::GatewayProcess;
use common::{TestGateway, basic_auth, password_hash};
use serde_json::{Value, json};

const GROUPS: [&str; 5] = [
    "/metrics/job/nightly/instance/db-1",
    "/metrics/job/nightly/instance/db-2",
    "/metrics/job/nightly/instance/web-1",
    "/metrics/job/hourly/instance/db-1",
    "/metrics/job/hourly",
];

async fn seeded(flags: &[&str]) -> TestGateway {
    let gateway = TestGateway::start(flags).await;
    for path in GROUPS {
        assert_eq!(gateway.put(path, "x 1\n").await.status, 200);
    }
    gateway
}

/// The remaining groups as `job/instance`.
async fn remaining(gateway: &TestGateway) -> Vec<String> {
    let document: Value =
        serde_json::from_slice(&gateway.get("/api/v1/metrics").await.body).unwrap();
    let mut groups: Vec<String> = document["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let labels = &g["labels"];
            format!(
                "{}/{}",
                labels["job"].as_str().unwrap(),
                labels["instance"].as_str().unwrap_or("")
            )
        })
        .collect();
    groups.sort();
    groups
}

fn query(selector: &str) -> String {
    let encoded: String =
        percent_encoding::utf8_percent_encode(selector, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    format!("/api/v1/groups?match={encoded}")
}

async fn delete(gateway: &TestGateway, selector: &str) -> common::Response {
    gateway.delete(&query(selector)).await
}

#[tokio::test]
async fn each_matcher_kind() {
    let cases: [(&str, &[&str]); 5] = [
        (r#"{job="nightly"}"#, &["hourly/", "hourly/db-1"]),
        (
            r#"{job!="nightly"}"#,
            &["nightly/db-1", "nightly/db-2", "nightly/web-1"],
        ),
        (
            r#"{job="nightly",instance=~"db-.*"}"#,
            &["hourly/", "hourly/db-1", "nightly/web-1"],
        ),
        (
            r#"{instance!~"db-.*"}"#,
            &["hourly/db-1", "nightly/db-1", "nightly/db-2"],
        ),
        (
            r#"{instance=""}"#,
            &[
                "hourly/db-1",
                "nightly/db-1",
                "nightly/db-2",
                "nightly/web-1",
            ],
        ),
    ];
    for (selector, left) in cases {
        let gateway = seeded(&["--web.enable-admin-api"]).await;
        let response = delete(&gateway, selector).await;
        assert_eq!(response.status, 200, "{selector}: {}", response.text());
        assert_eq!(response.header("content-type"), Some("application/json"));
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            answer,
            json!({"status": "success", "data": {"deleted": GROUPS.len() - left.len()}}),
            "{selector}"
        );
        assert_eq!(remaining(&gateway).await, left, "{selector}");
        gateway.stop().await;
    }
}

#[tokio::test]
async fn bad_selectors_delete_nothing() {
    let gateway = seeded(&["--web.enable-admin-api"]).await;
    for (path, message) in [
        (
            query("{}"),
            "bad selector: the selector has no matchers; to select every group, write it out, e.g. {job=~\".+\"}\n",
        ),
        (
            "/api/v1/groups".to_string(),
            "bad selector: missing the match parameter\n",
        ),
        (
            format!("{}&match=%7Bjob%3D%22a%22%7D", query(r#"{job="b"}"#)),
            "bad selector: give the match parameter once\n",
        ),
        (query(r#"{job=~"("}"#), ""),
        (query("job=nightly"), ""),
    ] {
        let response = gateway.delete(&path).await;
        assert_eq!(response.status, 400, "{path}");
        if !message.is_empty() {
            assert_eq!(response.text(), message, "{path}");
        }
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    }
    assert_eq!(remaining(&gateway).await.len(), GROUPS.len());
    // Everything, written out.
    let all = delete(&gateway, r#"{job=~".+"}"#).await;
    assert_eq!(all.status, 200);
    assert!(remaining(&gateway).await.is_empty());
    gateway.stop().await;
}

#[tokio::test]
async fn needs_the_admin_api() {
    let gateway = seeded(&[]).await;
    assert_eq!(delete(&gateway, r#"{job="nightly"}"#).await.status, 404);
    assert_eq!(remaining(&gateway).await.len(), GROUPS.len());
    gateway.stop().await;
}

#[tokio::test]
async fn under_a_route_prefix() {
    let gateway = TestGateway::start(&["--web.enable-admin-api", "--web.route-prefix=/pg"]).await;
    assert_eq!(gateway.put("/pg/metrics/job/a", "x 1\n").await.status, 200);
    let response = gateway
        .delete(&format!("/pg{}", query(r#"{job="a"}"#)))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    gateway.stop().await;
}

/// A requester may delete in bulk only groups it may push to; a selector that reaches further
/// deletes nothing and gets 403.
#[tokio::test]
async fn with_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = password_hash("secret");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  alice: {hash}\n  bob: {hash}\n"),
    )
    .unwrap();
    let authz = dir.path().join("authz.yml");
    std::fs::write(
        &authz,
        "rules:\n  - name: nightly-owner\n    identities: {user: [alice]}\n    push:\n      - job: nightly\n    read: true\n  - name: operator\n    identities: {user: [bob]}\n    push:\n      - job: '*'\n",
    )
    .unwrap();
    let gateway = TestGateway::start(&[
        "--web.enable-admin-api",
        &format!("--web.config.file={}", web.display()),
        &format!("--web.authz-file={}", authz.display()),
    ])
    .await;
    let basic = |user: &str| basic_auth(user, "secret");
    let (alice, bob) = (basic("alice"), basic("bob"));
    let as_alice = |method: &'static str, path: String| {
        let alice = alice.clone();
        let gateway = &gateway;
        async move {
            gateway
                .request(method, &path, &[("authorization", &alice)], "x 1\n")
                .await
        }
    };
    for path in GROUPS {
        let pushed = gateway
            .request("PUT", path, &[("authorization", &bob)], "x 1\n")
            .await;
        assert_eq!(pushed.status, 200);
    }
    let too_wide = as_alice("DELETE", query(r#"{instance=~"db-.*"}"#)).await;
    assert_eq!(too_wide.status, 403, "{}", too_wide.text());
    assert!(
        too_wide.text().starts_with(
            "forbidden: user=\"alice\" may not delete group {instance=\"db-1\", job=\"hourly\"}"
        ),
        "{}",
        too_wide.text()
    );
    let document = as_alice("GET", "/api/v1/metrics".into()).await;
    let count = serde_json::from_slice::<Value>(&document.body).unwrap()["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(count, GROUPS.len(), "a refused bulk delete deletes nothing");
    let own = as_alice("DELETE", query(r#"{job="nightly",instance=~"db-.*"}"#)).await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(
        serde_json::from_slice::<Value>(&own.body).unwrap()["data"]["deleted"],
        2
    );
    gateway.stop().await;
}

/// The deletions are one record in the log: after `kill -9` they are all there.
#[test]
fn one_durable_step() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        format!(
            "--persistence.file={}",
            dir.path().join("pg.data").display()
        ),
        "--web.enable-admin-api".to_string(),
    ];
    let gateway = GatewayProcess::start(&args);
    for path in GROUPS {
        assert_eq!(gateway.request("PUT", path, "x 1\n").unwrap().0, 200);
    }
    let (status, body) = gateway
        .request("DELETE", &query(r#"{job="nightly"}"#), "")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    gateway.kill9();
    let restarted = GatewayProcess::start(&args);
    let metrics = restarted.metrics();
    assert!(!metrics.contains("job=\"nightly\""), "{metrics}");
    assert!(metrics.contains("x{instance=\"db-1\",job=\"hourly\"} 1"));
}
