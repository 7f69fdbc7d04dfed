//! `--web.authz-file`: rules for who may push where, scrape, read and administer, through the
//! real server with client certificates made at test time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::tls::{CertAndKey, Setup, dns, email, https};
use common::{TestGateway, basic_auth, new_gateway, password_hash, series_value};
use pushgateway::server::StartError;

const BODY: &str =
    "# TYPE backup_last_success_seconds gauge\nbackup_last_success_seconds 1700000000\n";

/// What these tests add to the TLS set-up: a web config and an authorization file.
impl Setup {
    async fn start(&self, web: &str, authz: &str, extra: &[&str]) -> TestGateway {
        let web = self.write("web.yml", web);
        let authz = self.write("authz.yml", authz);
        let mut flags = vec![
            format!("--web.config.file={web}"),
            format!("--web.authz-file={authz}"),
        ];
        flags.extend(extra.iter().map(|f| f.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        TestGateway::start(&flags).await
    }

    /// A client with a certificate for `pusher.example.com`.
    fn pusher(&self) -> Arc<rustls::ClientConfig> {
        self.client_as(Some(&self.ca.client(
            "p",
            vec![dns("pusher.example.com")],
            false,
        )))
    }

    /// A client showing this certificate, or none.
    fn client_as(&self, identity: Option<&CertAndKey>) -> Arc<rustls::ClientConfig> {
        let options = self.client();
        match identity {
            Some(identity) => options.with_identity(identity).config(),
            None => options.config(),
        }
    }
}

const MTLS: &str = "tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
";

const TEAMS: &str = r#"
rules:
  - name: team-a
    identities:
      dns_san: ["*.team-a.example.com"]
    push:
      - job: "team-a-*"
        labels:
          instance: "{dns_san}"
  - name: team-b
    identities:
      dns_san: ["*.team-b.example.com"]
    push:
      - job: "team-b-*"
        labels:
          instance: "{dns_san}"
  - name: prometheus
    identities:
      dns_san: [prometheus.example.com]
    scrape: true
    read: true
  - name: ops
    identities:
      email_san: ["*@ops.example.com"]
    admin: true
    read: true
"#;

/// One request with a client (certificate or none), returning status and body.
async fn call(
    gateway: &TestGateway,
    client: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let response = https(
        gateway.addr,
        client.clone(),
        method,
        path,
        headers,
        body.to_string(),
    )
    .await
    .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
    (response.response.status, response.response.text())
}

#[tokio::test]
async fn team_pushers_are_confined_to_their_own_jobs() {
    let setup = Setup::new();
    let gateway = setup
        .start(
            MTLS,
            TEAMS,
            &["--web.enable-admin-api", "--web.enable-lifecycle"],
        )
        .await;
    let cert = |cn: &str, sans| setup.ca.client(cn, sans, false);
    let team_a = setup.client_as(Some(&cert("team-a", vec![dns("h1.team-a.example.com")])));
    let team_b = setup.client_as(Some(&cert("team-b", vec![dns("h1.team-b.example.com")])));
    let prometheus = setup.client_as(Some(&cert("prom", vec![dns("prometheus.example.com")])));
    let ops = setup.client_as(Some(&cert("ops", vec![email("alice@ops.example.com")])));
    let a_group = "/metrics/job/team-a-backup/instance/h1.team-a.example.com";
    let b_group = "/metrics/job/team-b-backup/instance/h1.team-b.example.com";

    assert_eq!(
        call(&gateway, &team_a, "PUT", a_group, &[], BODY).await.0,
        200
    );
    assert_eq!(
        call(&gateway, &team_b, "POST", b_group, &[], BODY).await.0,
        200
    );

    // Another team's job, with the pusher's own instance label.
    let (status, body) = call(
        &gateway,
        &team_a,
        "PUT",
        "/metrics/job/team-b-backup/instance/h1.team-a.example.com",
        &[],
        BODY,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        "forbidden: dns_san=\"h1.team-a.example.com\" common_name=\"team-a\" may not push to \
         group {instance=\"h1.team-a.example.com\", job=\"team-b-backup\"}: the rules for this \
         requester (\"team-a\") do not grant a push grant matching this group\n"
    );
    // The own job, but another host's instance, or none.
    for path in [
        "/metrics/job/team-a-backup/instance/h2.team-a.example.com",
        "/metrics/job/team-a-backup",
    ] {
        assert_eq!(
            call(&gateway, &team_a, "PUT", path, &[], BODY).await.0,
            403,
            "{path}"
        );
    }
    // Deleting the other team's group, also when the job is written in base64.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("team-b-backup");
    for path in [
        b_group.to_string(),
        format!("/metrics/job@base64/{b64}/instance/h1.team-b.example.com"),
    ] {
        let (status, body) = call(&gateway, &team_a, "DELETE", &path, &[], "").await;
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("may not delete group"), "{body}");
    }
    // Pushers neither scrape, nor read, nor wipe or quit.
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/api/v1/metrics"),
        ("GET", "/"),
        ("PUT", "/api/v1/admin/wipe"),
        ("PUT", "/-/quit"),
    ] {
        assert_eq!(
            call(&gateway, &team_b, method, path, &[], "").await.0,
            403,
            "{method} {path}"
        );
    }
    // Health checks stay open to every authenticated client.
    assert_eq!(
        call(&gateway, &team_a, "GET", "/-/healthy", &[], "").await,
        (200, "OK".into())
    );

    // Prometheus scrapes and reads, but cannot push.
    let (status, scraped) = call(&gateway, &prometheus, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    assert!(scraped.contains(
        "backup_last_success_seconds{instance=\"h1.team-a.example.com\",job=\"team-a-backup\"} 1.7e+09"
    ));
    assert!(scraped.contains(
        "backup_last_success_seconds{instance=\"h1.team-b.example.com\",job=\"team-b-backup\"} 1.7e+09"
    ));
    // Nothing of the refused pushes was stored: no group for them, not even a failure time.
    assert!(!scraped.contains("job=\"team-b-backup\",instance=\"h1.team-a"));
    assert!(!scraped.contains("h2.team-a.example.com"));
    assert_eq!(scraped.matches("push_failure_time_seconds{").count(), 2);
    assert_eq!(
        series_value(&scraped, "pushgateway_authz_denied_total{action=\"push\"}"),
        Some(5.0)
    );
    assert_eq!(
        series_value(
            &scraped,
            "pushgateway_authz_denied_total{action=\"scrape\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series_value(&scraped, "pushgateway_authz_denied_total{action=\"read\"}"),
        Some(2.0)
    );
    assert_eq!(
        series_value(&scraped, "pushgateway_authz_denied_total{action=\"admin\"}"),
        Some(2.0)
    );
    assert_eq!(
        call(&gateway, &prometheus, "GET", "/api/v1/status", &[], "")
            .await
            .0,
        200
    );
    assert_eq!(
        call(&gateway, &prometheus, "PUT", a_group, &[], BODY)
            .await
            .0,
        403
    );

    // Each team deletes its own group.
    assert_eq!(
        call(&gateway, &team_a, "DELETE", a_group, &[], "").await.0,
        202
    );
    let (_, scraped) = call(&gateway, &prometheus, "GET", "/metrics", &[], "").await;
    assert!(!scraped.contains("team-a-backup"));
    assert!(scraped.contains("team-b-backup"));

    // Ops wipes.
    assert_eq!(
        call(&gateway, &ops, "PUT", "/api/v1/admin/wipe", &[], "")
            .await
            .0,
        202
    );
    let (_, scraped) = call(&gateway, &prometheus, "GET", "/metrics", &[], "").await;
    assert!(!scraped.contains("team-b-backup"));
    gateway.stop().await;
}

#[tokio::test]
async fn basic_auth_users_get_their_own_rules() {
    let setup = Setup::new();
    let hash = password_hash("secret");
    let web = format!("basic_auth_users:\n  alice: {hash}\n  prom: {hash}\n");
    let authz = r#"
rules:
  - name: users-push-their-own-jobs
    identities: {user: ["*"]}
    push:
      - job: "{user}-*"
  - name: prometheus
    identities: {user: [prom]}
    scrape: true
"#;
    let gateway = setup.start(&web, authz, &[]).await;
    let alice = basic_auth("alice", "secret");
    let prom = basic_auth("prom", "secret");
    let as_user = |auth: &str| vec![("authorization", auth.to_string())];
    let send = |method: &'static str, path: &'static str, auth: &str| {
        let headers = as_user(auth);
        let gateway = &gateway;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            gateway.request(method, path, &headers, BODY).await
        }
    };
    assert_eq!(
        send("PUT", "/metrics/job/alice-nightly", &alice)
            .await
            .status,
        200
    );
    let denied = send("PUT", "/metrics/job/bob-nightly", &alice).await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.text(),
        "forbidden: user=\"alice\" may not push to group {job=\"bob-nightly\"}: the rules for \
         this requester (\"users-push-their-own-jobs\") do not grant a push grant matching this \
         group\n"
    );
    assert_eq!(send("GET", "/metrics", &alice).await.status, 403);
    // A wrong password is refused by basic auth before any rule is asked.
    assert_eq!(
        send("GET", "/metrics", &basic_auth("prom", "wrong"))
            .await
            .status,
        401
    );
    let scraped = send("GET", "/metrics", &prom).await;
    assert_eq!(scraped.status, 200);
    assert!(scraped.text().contains("job=\"alice-nightly\""));
    assert!(!scraped.text().contains("bob-nightly"));
    // `prom` matches the first rule too, so it may push to prom-* only.
    assert_eq!(send("PUT", "/metrics/job/prom-x", &prom).await.status, 200);
    assert_eq!(send("PUT", "/metrics/job/alice-x", &prom).await.status, 403);
    gateway.stop().await;
}

#[tokio::test]
async fn health_checks_can_be_left_open_without_opening_anything_else() {
    let setup = Setup::new();
    let hash = password_hash("secret");
    let web = format!("{MTLS}basic_auth_users:\n  prom: {hash}\n");
    let authz = r#"
unauthenticated_health_checks: true
rules:
  - name: prometheus
    identities: {user: [prom]}
    scrape: true
"#;
    let gateway = setup.start(&web, authz, &["--web.enable-lifecycle"]).await;
    let anonymous = setup.client_as(None);
    let prom_cert = setup
        .ca
        .client("prom", vec![dns("prometheus.example.com")], false);
    let with_cert = setup.client_as(Some(&prom_cert));
    let auth = basic_auth("prom", "secret");
    let auth = [("authorization", auth.as_str())];

    // No certificate and no password: health and readiness only.
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(
            call(&gateway, &anonymous, "GET", path, &[], "").await,
            (200, "OK".into())
        );
    }
    for (method, path) in [
        ("GET", "/metrics"),
        ("PUT", "/metrics/job/x"),
        ("GET", "/"),
        ("PUT", "/-/quit"),
        ("POST", "/-/healthy"),
    ] {
        assert_eq!(
            call(&gateway, &anonymous, method, path, &auth, BODY).await,
            (403, "client certificate required\n".into()),
            "{method} {path}"
        );
    }
    // A certificate without a password: health checks, and 401 elsewhere.
    assert_eq!(
        call(&gateway, &with_cert, "GET", "/-/healthy", &[], "")
            .await
            .0,
        200
    );
    assert_eq!(
        call(&gateway, &with_cert, "GET", "/metrics", &[], "")
            .await
            .0,
        401
    );
    // Both: what the rules grant.
    let (status, scraped) = call(&gateway, &with_cert, "GET", "/metrics", &auth, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        series_value(
            &scraped,
            "pushgateway_http_requests_rejected_total{reason=\"client_certificate_required\"}"
        ),
        Some(5.0)
    );
    assert!(scraped.contains("pushgateway_http_requests_total{code=\"200\",handler=\"healthy\""));
    assert_eq!(
        call(&gateway, &with_cert, "PUT", "/metrics/job/x", &auth, BODY)
            .await
            .0,
        403
    );
    // A certificate no CA vouches for still fails the handshake, health check or not.
    let stranger = common::tls::self_signed_client("stranger");
    let result = https(
        gateway.addr,
        setup.client_as(Some(&stranger)),
        "GET",
        "/-/healthy",
        &[],
        "",
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    gateway.stop().await;

    // Without the setting, the handshake demands a certificate, as upstream's does.
    let closed = setup
        .start(
            &web,
            "rules: [{name: p, identities: {user: [prom]}, scrape: true}]",
            &[],
        )
        .await;
    let result = https(closed.addr, anonymous.clone(), "GET", "/-/healthy", &[], "").await;
    assert!(result.is_err(), "{result:?}");
    closed.stop().await;
}

/// Rules that let `pusher.example.com` push to `job` and scrape.
/// Quotas per requester over mutual TLS: each team's hosts may hold so many groups and series
/// in total, counted per requester (its certificate's names); at the boundary a push succeeds,
/// one over is refused with 429 and changes nothing; replacing a group of the same size works.
#[tokio::test]
async fn quotas_hold_each_requester_to_its_share() {
    let setup = Setup::new();
    let rules = r#"
rules:
  - name: teams
    identities:
      dns_san: ["*.example.com"]
    push:
      - job: "{dns_san}"
    scrape: true
    quota:
      groups: 2
      series: 5
"#;
    let gateway = setup.start(MTLS, rules, &[]).await;
    let host = |name: &str| setup.client_as(Some(&setup.ca.client(name, vec![dns(name)], false)));
    let (a, b) = (host("a.example.com"), host("b.example.com"));
    let series = |n: usize| -> String { (0..n).map(|i| format!("x{{i=\"{i}\"}} 1\n")).collect() };
    let push = |client, path: &str, body: String| {
        let path = path.to_string();
        let gateway = &gateway;
        async move { call(gateway, client, "PUT", &path, &[], &body).await }
    };
    // a: two groups, five series in all: exactly at both quotas.
    assert_eq!(
        push(&a, "/metrics/job/a.example.com/n/1", series(3))
            .await
            .0,
        200
    );
    assert_eq!(
        push(&a, "/metrics/job/a.example.com/n/2", series(2))
            .await
            .0,
        200
    );
    // A third group is one over.
    let (status, text) = push(&a, "/metrics/job/a.example.com/n/3", series(1)).await;
    assert_eq!(status, 429, "{text}");
    assert!(
        text.contains("rule \"teams\" allows dns_san=\"a.example.com\"")
            && text.contains("2 groups, and it holds 2; this push would make it 3"),
        "{text}"
    );
    // One series more in an existing group is one over too.
    let (status, text) = push(&a, "/metrics/job/a.example.com/n/2", series(3)).await;
    assert_eq!(status, 429, "{text}");
    assert!(
        text.contains("5 series, and it holds 5; this push would make it 6"),
        "{text}"
    );
    // Replacing a group with one of the same size works at the quota.
    assert_eq!(
        push(&a, "/metrics/job/a.example.com/n/2", series(2))
            .await
            .0,
        200
    );
    // b has a quota of its own.
    assert_eq!(
        push(&b, "/metrics/job/b.example.com/n/1", series(5))
            .await
            .0,
        200
    );
    let (_, scrape) = call(&gateway, &a, "GET", "/metrics", &[], "").await;
    assert!(!scrape.contains("n=\"3\""), "a refused push stores nothing");
    assert_eq!(
        series_value(
            &scrape,
            "pushgateway_push_refused_total{reason=\"quota_groups\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series_value(
            &scrape,
            "pushgateway_push_refused_total{reason=\"quota_series\"}"
        ),
        Some(1.0)
    );
    // Deleting a group frees its share.
    assert_eq!(
        call(
            &gateway,
            &a,
            "DELETE",
            "/metrics/job/a.example.com/n/1",
            &[],
            ""
        )
        .await
        .0,
        202
    );
    assert_eq!(
        push(&a, "/metrics/job/a.example.com/n/3", series(3))
            .await
            .0,
        200
    );
    gateway.stop().await;
}

fn pusher_rules(job: &str) -> String {
    format!(
        "rules:\n  - name: pusher\n    identities: {{dns_san: [pusher.example.com]}}\n    push: [{{job: {job}}}]\n    scrape: true\n"
    )
}

#[tokio::test]
async fn the_file_is_reloaded_and_a_broken_one_keeps_the_last_good_rules() {
    let setup = Setup::new();
    let gateway = setup.start(MTLS, &pusher_rules("first"), &[]).await;
    let pusher = setup.pusher();
    assert_eq!(
        call(&gateway, &pusher, "PUT", "/metrics/job/first", &[], BODY)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&gateway, &pusher, "PUT", "/metrics/job/second", &[], BODY)
            .await
            .0,
        403
    );

    setup.write("authz.yml", &pusher_rules("second"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&gateway, &pusher, "PUT", "/metrics/job/second", &[], BODY)
        .await
        .0
        != 200
    {
        assert!(Instant::now() < deadline, "the new rules never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        call(&gateway, &pusher, "PUT", "/metrics/job/first", &[], BODY)
            .await
            .0,
        403
    );

    // A broken file, then one that would change what is fixed at start-up: both refused.
    let scrape = async || call(&gateway, &pusher, "GET", "/metrics", &[], "").await.1;
    for (broken, failures) in [
        (
            "rules: [{name: pusher, identities: {dns_san: [pusher.example.com]}, push: [{job: '{nope}'}]}]\n",
            1.0,
        ),
        (
            &*format!(
                "unauthenticated_health_checks: true\n{}",
                pusher_rules("first")
            ),
            2.0,
        ),
    ] {
        setup.write("authz.yml", broken);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let scraped = scrape().await;
            if series_value(
                &scraped,
                "pushgateway_authz_reloads_total{result=\"failure\"}",
            ) == Some(failures)
            {
                assert_eq!(
                    series_value(&scraped, "pushgateway_authz_last_reload_successful"),
                    Some(0.0)
                );
                assert_eq!(
                    series_value(
                        &scraped,
                        "pushgateway_authz_reloads_total{result=\"success\"}"
                    ),
                    Some(1.0)
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the broken file was never noticed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            call(&gateway, &pusher, "PUT", "/metrics/job/second", &[], BODY)
                .await
                .0,
            200
        );
        assert_eq!(
            call(&gateway, &pusher, "PUT", "/metrics/job/first", &[], BODY)
                .await
                .0,
            403
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_changed_rule_counts_for_the_very_next_request() {
    let setup = Setup::new();
    let gateway = setup.start(MTLS, &pusher_rules("first"), &[]).await;
    let pusher = setup.pusher();
    let push = async |job: &str| {
        call(
            &gateway,
            &pusher,
            "PUT",
            &format!("/metrics/job/{job}"),
            &[],
            BODY,
        )
        .await
        .0
    };
    assert_eq!(push("first").await, 200);
    // Each change is written in place, the same size as before, and the very next request
    // is judged by it.
    for (allowed, denied) in [("third", "first"), ("fifth", "third"), ("first", "fifth")] {
        setup.write("authz.yml", &pusher_rules(allowed));
        assert_eq!(push(allowed).await, 200, "{allowed} allowed at once");
        assert_eq!(push(denied).await, 403, "{denied} denied at once");
    }
    // A broken file: the very next request is judged by the last good rules, and the refusal
    // is already counted.
    setup.write("authz.yml", "rules: [{name: pusher}]\n");
    assert_eq!(push("first").await, 200);
    assert_eq!(push("fifth").await, 403);
    let scraped = call(&gateway, &pusher, "GET", "/metrics", &[], "").await.1;
    assert_eq!(
        series_value(
            &scraped,
            "pushgateway_authz_reloads_total{result=\"failure\"}"
        ),
        Some(1.0)
    );
    gateway.stop().await;
}

#[test]
fn a_broken_file_refuses_start_up() {
    let setup = Setup::new();
    let cases = [
        (
            "rules: [{name: a, identities: {user: [b]}}]\n",
            "invalid --web.authz-file",
        ),
        ("rules: {}\n", "yaml: "),
        (
            "rules: [{name: a, identities: {usr: [b]}, scrape: true}]\n",
            "unknown field `usr`",
        ),
    ];
    for (content, expected) in cases {
        let path = setup.write("authz.yml", content);
        match new_gateway(&[&format!("--web.authz-file={path}")]) {
            Err(err @ StartError::Authz { .. }) => {
                assert!(err.to_string().contains(expected), "{content}: {err}")
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("{content}: started"),
        }
    }
    assert!(matches!(
        new_gateway(&["--web.authz-file=/nonexistent/authz.yml"]),
        Err(StartError::Authz { .. })
    ));
}

/// The web configuration with a client certificate policy (the CA is given either way).
fn web_with_client_auth(client_auth_type: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {client_auth_type}\n  client_ca_file: ca.crt\n"
    )
}

#[test]
fn certificate_rules_need_a_web_config_that_verifies_certificates() {
    let setup = Setup::new();
    let certificate_rules = setup.write("authz.yml", &pusher_rules("batch"));
    let start = |web: Option<&str>, authz: &str| {
        let mut flags = vec![format!("--web.authz-file={authz}")];
        if let Some(web) = web {
            flags.push(format!("--web.config.file={}", setup.write("web.yml", web)));
        }
        new_gateway(&flags.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let tls_only = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    for (web, reason) in [
        (
            None,
            "no client certificate is asked for (there is no --web.config.file)",
        ),
        (
            Some(web_with_client_auth("RequestClientCert")),
            "client_auth_type RequestClientCert takes client certificates without verifying them",
        ),
        (
            Some(web_with_client_auth("RequireAnyClientCert")),
            "client_auth_type RequireAnyClientCert takes client certificates without verifying them",
        ),
        (
            Some(tls_only.to_string()),
            "no client certificate is asked for (client_auth_type is NoClientCert)",
        ),
    ] {
        match start(web.as_deref(), &certificate_rules) {
            Err(err @ StartError::CertificateTrust { .. }) => {
                let err = err.to_string();
                assert!(
                    err.contains("rule \"pusher\" of the authorization file names requesters by their client certificate")
                        && err.contains(reason)
                        && err.contains("RequireAndVerifyClientCert"),
                    "{err}"
                );
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("{web:?}: started"),
        }
    }
    // Verified certificates, or rules that name users only, are fine.
    assert!(
        start(
            Some(&web_with_client_auth("VerifyClientCertIfGiven")),
            &certificate_rules
        )
        .is_ok()
    );
    let users = setup.write(
        "users.yml",
        "rules: [{name: prometheus, identities: {user: [prom]}, scrape: true}]\n",
    );
    assert!(start(Some(&web_with_client_auth("RequestClientCert")), &users).is_ok());
}

/// The number in `series` of a scrape by `client`, once it is `expected` (the change the test
/// made is noticed by the very next request, so this is quick).
async fn wait_for_series(
    gateway: &TestGateway,
    client: &Arc<rustls::ClientConfig>,
    series: &str,
    expected: f64,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scraped = call(gateway, client, "GET", "/metrics", &[], "").await.1;
        if series_value(&scraped, series) == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn reloads_that_would_leave_certificate_rules_matching_nobody_are_refused() {
    let setup = Setup::new();
    let gateway = setup.start(MTLS, &pusher_rules("batch"), &[]).await;
    let pusher = setup.pusher();
    let stranger = setup.client_as(Some(&common::tls::self_signed_client("stranger")));
    assert_eq!(
        call(&gateway, &pusher, "PUT", "/metrics/job/batch", &[], BODY)
            .await
            .0,
        200
    );

    // A web configuration that would take any certificate: refused, the verifying one stays
    // (a self-made certificate still fails the handshake).
    setup.write("web.yml", &web_with_client_auth("RequestClientCert"));
    wait_for_series(
        &gateway,
        &pusher,
        "pushgateway_web_config_reloads_total{result=\"failure\"}",
        1.0,
    )
    .await;
    let result = https(gateway.addr, stranger.clone(), "GET", "/-/healthy", &[], "").await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        call(&gateway, &pusher, "PUT", "/metrics/job/batch", &[], BODY)
            .await
            .0,
        200
    );

    // Once the rules no longer name certificates, the same web configuration is taken...
    let anyone_scrapes = "rules: [{name: anyone, identities: {anyone: true}, scrape: true}]\n";
    setup.write("authz.yml", anyone_scrapes);
    wait_for_series(
        &gateway,
        &pusher,
        "pushgateway_authz_reloads_total{result=\"success\"}",
        1.0,
    )
    .await;
    setup.write("web.yml", &web_with_client_auth("RequestClientCert"));
    wait_for_series(
        &gateway,
        &stranger,
        "pushgateway_web_config_reloads_total{result=\"success\"}",
        1.0,
    )
    .await;
    // ...and rules that name certificates are refused while it is in service.
    setup.write("authz.yml", &pusher_rules("batch"));
    wait_for_series(
        &gateway,
        &stranger,
        "pushgateway_authz_reloads_total{result=\"failure\"}",
        1.0,
    )
    .await;
    assert_eq!(
        call(&gateway, &pusher, "PUT", "/metrics/job/batch", &[], BODY)
            .await
            .0,
        403
    );
    gateway.stop().await;
}

#[tokio::test]
async fn exact_labels_confine_a_pusher_to_its_grouping_labels() {
    let setup = Setup::new();
    let rules = "rules:
  - name: pusher
    identities: {dns_san: [pusher.example.com]}
    push:
      - job: batch
        labels: {instance: '{dns_san}'}
        exact_labels: true
    scrape: true
";
    let gateway = setup.start(MTLS, rules, &[]).await;
    let pusher = setup.pusher();
    let own = "/metrics/job/batch/instance/pusher.example.com";
    assert_eq!(call(&gateway, &pusher, "PUT", own, &[], BODY).await.0, 200);
    let (status, body) = call(
        &gateway,
        &pusher,
        "PUT",
        &format!("{own}/shard/7"),
        &[],
        BODY,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("shard=\"7\""), "{body}");
    let scraped = call(&gateway, &pusher, "GET", "/metrics", &[], "").await.1;
    assert!(!scraped.contains("shard="), "{scraped}");
    gateway.stop().await;
}
