//! `--web.config.file`: TLS, client certificates, basic auth, headers, rate limit and reloads,
//! through the real server with certificates made at test time. Numbers in comments refer to
//! exporter-toolkit's test cases as listed in the spec.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tls::{Ca, CertAndKey, Setup, dns, email, https, self_signed_client, uri};
use common::{TestGateway, basic_auth as basic, new_gateway, password_hash, series_value};
use pushgateway::server::StartError;
use rustls::crypto::aws_lc_rs::{cipher_suite, kx_group};

/// What these tests add to the TLS set-up: the web config, `web.yml`.
impl Setup {
    /// Writes `web.yml` (paths in it are relative to the temporary directory).
    fn write_config(&self, yaml: &str) -> String {
        self.write("web.yml", yaml)
    }

    async fn start(&self, yaml: &str) -> TestGateway {
        let path = self.write_config(yaml);
        TestGateway::start(&[&format!("--web.config.file={path}")]).await
    }
}

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

fn start_error(yaml: &str, dir: &Path) -> String {
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    match new_gateway(&[&format!("--web.config.file={}", path.display())]) {
        Err(StartError::WebConfig { source, .. }) => source.to_string(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => "started".to_string(),
    }
}

#[test]
fn invalid_files_refuse_start_up_with_exporter_toolkits_messages() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let tls_with = |extra: &str| format!("{TLS}{extra}");
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "started"),                                 // 2
        ("hWkNKCp some junk\nmore junk: [\n".into(), "yaml: "), // 3
        (
            "tls_server_config:\n  cert_filse: server.crt\n".into(),
            "yaml: ",
        ), // 4
        (
            "tls_server_config:\n  cert_file: \"\"\n  key_file: server.key\n".into(),
            "missing one of cert or cert_file",
        ), // 5
        (
            "tls_server_config:\n  cert: \"\"\n  key_file: server.key\n".into(),
            "missing one of cert or cert_file",
        ), // 6
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: \"\"\n".into(),
            "missing one of key or key_file",
        ), // 7
        (
            "tls_server_config:\n  cert_file: server.crt\n  key: \"\"\n".into(),
            "missing one of key or key_file",
        ), // 8
        (
            "tls_server_config:\n  cert_file: \"\"\n  key_file: \"\"\n  client_auth_type: x\n"
                .into(),
            "missing one of cert or cert_file",
        ), // 9
        (
            "tls_server_config:\n  cert_file: somefile\n  key_file: server.key\n".into(),
            "no such file",
        ), // 10
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: somefile\n".into(),
            "no such file",
        ), // 11
        (
            tls_with("  client_ca_file: /dev/null\n"),
            "client CA's have been configured without a Client Auth Policy",
        ), // 13
        (
            tls_with(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: somefile\n",
            ),
            "no such file",
        ), // 14
        (
            tls_with("basic_auth_users:\n  john: doe\n"),
            "hashedSecret too short to be a bcrypted password",
        ), // 15
        (
            tls_with("  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n"),
            "unknown cipher: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048",
        ), // 16
        (
            tls_with("  curve_preferences: [CurveP257]\n"),
            "unknown curve: CurveP257",
        ), // 17
        (
            tls_with("  min_version: TLS111\n"),
            "unknown TLS version: TLS111",
        ), // 18
        (
            tls_with("  client_auth_type: Sometimes\n"),
            "invalid ClientAuth: Sometimes",
        ),
        (
            "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n".into(),
            "invalid value for X-Content-Type-Options",
        ), // 36
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: foo\n".into(),
            "invalid value for X-Frame-Options",
        ), // 37
        (
            "http_server_config:\n  headers:\n    Content-Type: foo\n".into(),
            "HTTP header \"Content-Type\" can not be configured",
        ), // 38
        (tls_with("  max_version: TLS11\n"), "no TLS version"),
        (
            tls_with(
                "  min_version: TLS12\n  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n",
            ),
            "none of the cipher_suites can be offered",
        ),
        (
            tls_with("  curve_preferences: [CurveP521]\n"),
            "none of the curve_preferences can be offered",
        ),
        (
            "tls_server_config:\n  cert: not a certificate\n  key: not a key\n".into(),
            "failed to load X509KeyPair",
        ),
    ];
    for (yaml, expected) in cases {
        let error = start_error(&yaml, dir);
        assert!(
            error.contains(expected),
            "for\n{yaml}\nexpected {expected:?}, got {error:?}"
        );
    }
    // 1: no such file.
    let Err(StartError::WebConfig { source, .. }) =
        new_gateway(&["--web.config.file=/nonexistent/web.yml"])
    else {
        panic!("a missing file must refuse start-up");
    };
    assert_eq!(
        source.to_string(),
        "open /nonexistent/web.yml: no such file or directory"
    );
}

#[tokio::test]
async fn plain_and_tls_clients() {
    let setup = Setup::new();
    // 19: no TLS in the file: plain HTTP works.
    let gw = setup.start("").await;
    assert_eq!(gw.get("/-/healthy").await.status, 200);
    // 20: a TLS client gets nowhere on a plain port.
    assert!(
        https(
            gw.addr,
            setup.client().config(),
            "GET",
            "/-/healthy",
            &[],
            ""
        )
        .await
        .is_err()
    );
    gw.stop().await;

    let gw = setup
        .start(&format!(
            "{TLS}  client_auth_type: VerifyClientCertIfGiven\n"
        ))
        .await;
    // 21: a plain HTTP request on the TLS port gets Go's 400 at once.
    let raw = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        stream
            .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        answer
    };
    assert_eq!(
        raw,
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
    // 22: a TLS client succeeds, and the push API works over TLS.
    let r = https(
        gw.addr,
        setup.client().config(),
        "PUT",
        "/metrics/job/tls",
        &[],
        "a 1\n",
    )
    .await
    .unwrap();
    assert_eq!(r.response.status, 200);
    let r = https(gw.addr, setup.client().config(), "GET", "/metrics", &[], "")
        .await
        .unwrap();
    assert!(r.response.text().contains("a{instance=\"\",job=\"tls\"} 1"));
    let metrics = r.response.text();
    assert!(
        metrics.contains("pushgateway_tls_connections_total{cipher_suite=\"TLS13_"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pushgateway_tls_handshake_errors_total 1"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn inline_certificates_and_key_types() {
    let setup = Setup::new();
    for algorithm in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let server = setup.ca.server(algorithm);
        let indent = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        // 23: inline cert and key.
        let yaml = format!(
            "tls_server_config:\n  cert: |\n{}  key: |\n{}",
            indent(&server.cert),
            indent(&server.key)
        );
        let gw = setup.start(&yaml).await;
        let r = https(
            gw.addr,
            setup.client().config(),
            "GET",
            "/-/healthy",
            &[],
            "",
        )
        .await;
        assert_eq!(r.map(|r| r.response.status), Ok(200), "{algorithm:?}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn protocol_versions_suites_and_groups() {
    let setup = Setup::new();
    let tls12 = &[&rustls::version::TLS12][..];
    let tls13 = &[&rustls::version::TLS13][..];

    let gw = setup.start(&format!("{TLS}  max_version: TLS12\n")).await;
    let mut client = setup.client();
    client.versions = tls13;
    assert!(
        https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
            .await
            .is_err(),
        "TLS 1.3 client vs TLS 1.2 server"
    );
    client.versions = tls12;
    let r = https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
        .await
        .unwrap();
    assert_eq!(r.version, rustls::ProtocolVersion::TLSv1_2);
    gw.stop().await;

    let gw = setup.start(&format!("{TLS}  min_version: TLS13\n")).await;
    let mut client = setup.client();
    client.versions = tls12;
    assert!(
        https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
            .await
            .is_err(),
        "TLS 1.2 client vs TLS 1.3 server"
    );
    client.versions = tls13;
    assert_eq!(
        https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
            .await
            .unwrap()
            .version,
        rustls::ProtocolVersion::TLSv1_3
    );
    gw.stop().await;

    // 26-29: restricted TLS 1.2 suites (ECDSA server key).
    let gw = setup
        .start(&format!("{TLS}  max_version: TLS12\n  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n"))
        .await;
    let mut client = setup.client();
    client.versions = tls12;
    client.suites = Some(vec![
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]);
    assert!(
        https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
            .await
            .is_err(),
        "27: no common suite"
    );
    client.suites = Some(vec![
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ]);
    let r = https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
        .await
        .unwrap();
    assert_eq!(
        r.suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "28"
    );
    gw.stop().await;

    // 30-32: curves.
    let gw = setup
        .start(&format!("{TLS}  curve_preferences: [CurveP384]\n"))
        .await;
    let mut client = setup.client();
    client.groups = Some(vec![kx_group::X25519]);
    assert!(
        https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
            .await
            .is_err(),
        "no common group"
    );
    client.groups = Some(vec![kx_group::SECP384R1]);
    assert_eq!(
        https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
            .await
            .unwrap()
            .response
            .status,
        200
    );
    gw.stop().await;

    // Names Go knows but rustls cannot offer are skipped while something usable remains.
    let gw = setup
        .start(&format!("{TLS}  min_version: TLS10\n  curve_preferences: [CurveP521, CurveP256]\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]\n"))
        .await;
    assert_eq!(
        https(
            gw.addr,
            setup.client().config(),
            "GET",
            "/-/healthy",
            &[],
            ""
        )
        .await
        .unwrap()
        .response
        .status,
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn http2_is_negotiated_unless_disabled() {
    let setup = Setup::new();
    let mut client = setup.client();
    client.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let gw = setup.start(TLS).await;
    let r = https(
        gw.addr,
        client.config(),
        "PUT",
        "/metrics/job/h2",
        &[],
        "a 1\n",
    )
    .await
    .unwrap();
    assert_eq!(r.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(r.response.status, 200);
    gw.stop().await;
    // 33: http2: false.
    let gw = setup
        .start(&format!("{TLS}http_server_config:\n  http2: false\n"))
        .await;
    let r = https(gw.addr, client.config(), "GET", "/-/healthy", &[], "")
        .await
        .unwrap();
    assert_eq!(r.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(r.response.status, 200);
    gw.stop().await;
}

#[tokio::test]
async fn client_certificate_policies() {
    let setup = Setup::new();
    let trusted = setup
        .ca
        .client("pusher", vec![dns("pusher.example")], false);
    let expired = setup.ca.client("old", vec![dns("old.example")], true);
    let other_ca = Ca::new("Other CA");
    let stranger = other_ca.client("stranger", vec![dns("pusher.example")], false);
    let selfsigned = self_signed_client("test");

    // (policy, with CA?) → outcome for [none, trusted, stranger, selfsigned, expired]
    let expectations: &[(&str, bool, [bool; 5])] = &[
        ("NoClientCert", false, [true, true, true, true, true]),
        ("RequestClientCert", false, [true, true, true, true, true]),
        (
            "RequireAnyClientCert",
            false,
            [false, true, true, true, true],
        ), // 39
        ("RequireClientCert", false, [false, true, true, true, true]),
        (
            "VerifyClientCertIfGiven",
            true,
            [true, true, false, false, false],
        ),
        (
            "RequireAndVerifyClientCert",
            true,
            [false, true, false, false, false],
        ), // 41
    ];
    for (policy, with_ca, outcomes) in expectations {
        let ca_line = if *with_ca {
            "  client_ca_file: ca.crt\n"
        } else {
            ""
        };
        let gw = setup
            .start(&format!("{TLS}  client_auth_type: {policy}\n{ca_line}"))
            .await;
        let clients: [Option<&CertAndKey>; 5] = [
            None,
            Some(&trusted),
            Some(&stranger),
            Some(&selfsigned),
            Some(&expired),
        ];
        for (client, expected) in clients.iter().zip(outcomes) {
            let mut options = setup.client();
            options.identity = *client;
            // A refused certificate may only show when the client reads the server's alert.
            let ok = matches!(https(gw.addr, options.config(), "GET", "/-/healthy", &[], "").await, Ok(r) if r.response.status == 200);
            let who = client.map_or("none".into(), |c| {
                c.cert.lines().nth(1).unwrap_or_default().to_string()
            });
            assert_eq!(ok, *expected, "{policy} with client {who}");
        }
        gw.stop().await;
    }
    // RequireAndVerify without any CA in the file verifies against the system's roots, which
    // our test CA is not part of: the "blocking" configuration of upstream's tests.
    let gw = setup
        .start(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n"
        ))
        .await;
    let options = setup.client().with_identity(&trusted);
    assert!(
        https(gw.addr, options.config(), "GET", "/-/healthy", &[], "")
            .await
            .map(|r| r.response.status)
            != Ok(200)
    );
    gw.stop().await;
}

#[tokio::test]
async fn client_allowed_sans() {
    let setup = Setup::new();
    let pusher = setup.ca.client("test3", vec![dns("test3")], false);
    let by_uri = setup
        .ca
        .client("svc", vec![uri("spiffe://example.org/pusher")], false);
    let by_mail = setup
        .ca
        .client("mail", vec![email("ops@example.org")], false);
    let yaml = |sans: &str| {
        format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: {sans}\n"
        )
    };
    let status = |gw: &TestGateway, client: &CertAndKey| {
        let config = setup.client().with_identity(client).config();
        let addr = gw.addr;
        async move {
            https(addr, config, "GET", "/-/healthy", &[], "")
                .await
                .map(|r| r.response.status)
        }
    };
    // 42
    let gw = setup
        .start(&yaml(
            "[one, test3, two, \"spiffe://example.org/pusher\", ops@example.org]",
        ))
        .await;
    assert_eq!(status(&gw, &pusher).await, Ok(200));
    assert_eq!(status(&gw, &by_uri).await, Ok(200));
    assert_eq!(status(&gw, &by_mail).await, Ok(200));
    gw.stop().await;
    // 43
    let gw = setup.start(&yaml("[bad]")).await;
    assert!(status(&gw, &pusher).await != Ok(200));
    gw.stop().await;
}

const USERS: &str = "basic_auth_users:\n  alice: {alice}\n  dave: {dave}\n";

fn users_yaml() -> String {
    USERS
        .replace("{alice}", &password_hash("alice123"))
        .replace("{dave}", &password_hash("dave123"))
}

#[tokio::test]
async fn basic_auth_and_headers() {
    let setup = Setup::new();
    let headers = "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000; includeSubDomains\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    X-XSS-Protection: \"1\"\n    Content-Security-Policy: default-src 'self'\n";
    let gw = setup.start(&format!("{}{headers}", users_yaml())).await;
    let get = |auth: Option<String>| {
        let addr = gw.addr;
        async move {
            let headers: Vec<(&str, &str)> = match &auth {
                Some(value) => vec![("authorization", value.as_str())],
                None => vec![],
            };
            common::send(addr, "GET", "/-/healthy", &headers, bytes::Bytes::new()).await
        }
    };
    // 47-53
    for (auth, status) in [
        (None, 401),
        (Some(basic("dave", "dave123")), 200),
        (Some(basic("alice", "alice123")), 200),
        (Some(basic("dave", "bad")), 401),
        (Some(basic("nonexistent", "nonexistent")), 401),
        (Some("Basic not-base64!".to_string()), 401),
        (Some("Bearer token".to_string()), 401),
        (Some(basic("fakeuser", "fakepassword")), 401),
    ] {
        let r = get(auth.clone()).await;
        assert_eq!(r.status, status, "{auth:?}");
        // 63: the configured headers, on 401s too.
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains")
        );
        assert_eq!(r.header("x-frame-options"), Some("deny"));
        assert_eq!(r.header("x-xss-protection"), Some("1"));
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'self'")
        );
        if status == 401 {
            assert_eq!(r.header("www-authenticate"), Some("Basic"));
            assert_eq!(r.text(), "Unauthorized\n");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        }
    }
    // Every route is behind it: pushes and scrapes too.
    assert_eq!(gw.put("/metrics/job/x", "a 1\n").await.status, 401);
    assert_eq!(gw.get("/metrics").await.status, 401);
    let auth = basic("alice", "alice123");
    let r = gw
        .request(
            "PUT",
            "/metrics/job/x",
            &[("authorization", &auth)],
            "a 1\n",
        )
        .await;
    assert_eq!(r.status, 200);
    // 60: many concurrent logins, right and wrong, all answered correctly.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            let good = i % 2 == 0;
            let auth = basic("alice", if good { "alice123" } else { "alice1234" });
            let r = common::send(
                addr,
                "GET",
                "/-/ready",
                &[("authorization", &auth)],
                bytes::Bytes::new(),
            )
            .await;
            (good, r.status)
        }));
    }
    for task in tasks {
        let (good, status) = task.await.unwrap();
        assert_eq!(status, if good { 200 } else { 401 });
    }
    let metrics = gw
        .request("GET", "/metrics", &[("authorization", &auth)], "")
        .await
        .text();
    assert!(
        metrics.contains("pushgateway_http_requests_rejected_total{reason=\"unauthorized\"}"),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn rate_limit() {
    let setup = Setup::new();
    // 44: interval 0 disables the limiter.
    let gw = setup
        .start("rate_limit:\n  interval: 0\n  burst: 0\n")
        .await;
    for _ in 0..11 {
        assert_eq!(gw.get("/-/healthy").await.status, 200);
    }
    gw.stop().await;
    // 45: burst 0 refuses everything, before authentication and without the headers.
    let gw = setup
        .start(&format!("{}rate_limit:\n  interval: 1s\n  burst: 0\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n", users_yaml()))
        .await;
    let r = gw.get("/-/healthy").await;
    assert_eq!((r.status, r.text().as_str()), (429, "Too Many Requests\n"));
    assert_eq!(r.header("x-frame-options"), None);
    gw.stop().await;
    // A burst of two per hour: the third request is refused.
    let gw = setup
        .start("rate_limit:\n  interval: 1h\n  burst: 2\n")
        .await;
    assert_eq!(gw.get("/-/healthy").await.status, 200);
    assert_eq!(gw.get("/-/healthy").await.status, 200);
    assert_eq!(gw.get("/-/healthy").await.status, 429);
    gw.stop().await;
}

/// Polls until `check` holds (reloads happen within a fraction of a second).
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached after reload");
}

#[tokio::test]
async fn reloads_take_effect_and_broken_files_keep_the_last_good_version() {
    let setup = Setup::new();
    // 46: blocking first (RequireAndVerify, no CA given), then swapped for VerifyIfGiven.
    let gw = setup
        .start(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n"
        ))
        .await;
    let addr = gw.addr;
    let client = setup.client().config();
    assert!(
        https(addr, client.clone(), "GET", "/-/healthy", &[], "")
            .await
            .map(|r| r.response.status)
            != Ok(200)
    );
    setup.write_config(&format!(
        "{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"
    ));
    eventually(|| {
        let client = client.clone();
        async move { matches!(https(addr, client, "GET", "/-/healthy", &[], "").await, Ok(r) if r.response.status == 200) }
    })
    .await;

    // Certificate rotation: new files, same paths, no restart.
    let before = https(addr, client.clone(), "GET", "/-/healthy", &[], "")
        .await
        .unwrap()
        .server_certificate;
    let rotated = setup.ca.server(&rcgen::PKCS_ECDSA_P384_SHA384);
    rotated.write(setup.dir.path(), "server");
    eventually(|| {
        let client = client.clone();
        let before = before.clone();
        async move {
            https(addr, client, "GET", "/-/healthy", &[], "")
                .await
                .is_ok_and(|r| r.server_certificate != before)
        }
    })
    .await;

    // A broken file: refused, counted, and the last good configuration stays in service.
    setup.write_config("tls_server_config:\n  cert_file: nowhere.crt\n  key_file: server.key\n");
    eventually(|| {
        let client = client.clone();
        async move {
            let metrics = https(addr, client, "GET", "/metrics", &[], "")
                .await
                .map(|r| r.response.text())
                .unwrap_or_default();
            metrics.contains("pushgateway_web_config_last_reload_successful 0")
                && metrics.contains("pushgateway_web_config_reloads_total{result=\"failure\"} 1")
        }
    })
    .await;
    assert_eq!(
        https(addr, client.clone(), "GET", "/-/healthy", &[], "")
            .await
            .unwrap()
            .response
            .status,
        200
    );
    // Switching TLS off is refused too: it needs a restart.
    setup.write_config("");
    eventually(|| {
        let client = client.clone();
        async move {
            let metrics = https(addr, client, "GET", "/metrics", &[], "")
                .await
                .map(|r| r.response.text())
                .unwrap_or_default();
            metrics.contains("pushgateway_web_config_reloads_total{result=\"failure\"} 2")
        }
    })
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn users_and_headers_change_on_reload() {
    let setup = Setup::new();
    let gw = setup.start("").await;
    assert_eq!(gw.get("/-/healthy").await.status, 200);
    setup.write_config(&users_yaml());
    eventually(|| async { gw.get("/-/healthy").await.status == 401 }).await;
    let auth = basic("dave", "dave123");
    assert_eq!(
        gw.request("GET", "/-/healthy", &[("authorization", &auth)], "")
            .await
            .status,
        200
    );
    setup.write_config(&format!(
        "{}http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n",
        users_yaml().replace("dave", "erin")
    ));
    eventually(|| async {
        gw.request("GET", "/-/healthy", &[("authorization", &auth)], "")
            .await
            .status
            == 401
    })
    .await;
    let r = gw
        .request(
            "GET",
            "/-/healthy",
            &[("authorization", &basic("erin", "dave123"))],
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.header("x-frame-options")),
        (200, Some("sameorigin"))
    );
    gw.stop().await;
}

/// The web configuration's reload counters (successes, failures) in a scrape.
fn reload_counts(metrics: &str) -> (Option<f64>, Option<f64>) {
    (
        series_value(
            metrics,
            "pushgateway_web_config_reloads_total{result=\"success\"}",
        ),
        series_value(
            metrics,
            "pushgateway_web_config_reloads_total{result=\"failure\"}",
        ),
    )
}

// The tests below change a file and send the very next request or handshake at once, without
// waiting: a change must count for it, not a moment later.

#[tokio::test]
async fn a_rotated_password_or_header_counts_for_the_very_next_request() {
    let setup = Setup::new();
    let config = |password: &str, hsts: &str| {
        format!(
            "basic_auth_users:\n  alice: {}\nhttp_server_config:\n  headers:\n    Strict-Transport-Security: {hsts}\n",
            password_hash(password)
        )
    };
    let gw = setup.start(&config("first-pw", "max-age=1")).await;
    let get = async |user: &str, password: &str| {
        gw.request(
            "GET",
            "/-/healthy",
            &[("authorization", &basic(user, password))],
            "",
        )
        .await
    };
    let r = get("alice", "first-pw").await;
    assert_eq!(
        (r.status, r.header("strict-transport-security")),
        (200, Some("max-age=1"))
    );

    // A new password hash: a file of the same size, rewritten in place at once.
    let before = std::fs::metadata(setup.path("web.yml")).unwrap().len();
    setup.write_config(&config("other-pw", "max-age=1"));
    assert_eq!(
        std::fs::metadata(setup.path("web.yml")).unwrap().len(),
        before
    );
    assert_eq!(get("alice", "first-pw").await.status, 401);
    assert_eq!(get("alice", "other-pw").await.status, 200);

    // A new header value, again of the same size.
    setup.write_config(&config("other-pw", "max-age=2"));
    let r = get("alice", "other-pw").await;
    assert_eq!(
        (r.status, r.header("strict-transport-security")),
        (200, Some("max-age=2"))
    );

    // A broken version: the very next request is served by the last good one, and the
    // refusal is already counted, once.
    let scrape = async || {
        let r = gw
            .request(
                "GET",
                "/metrics",
                &[("authorization", &basic("alice", "other-pw"))],
                "",
            )
            .await;
        assert_eq!(r.status, 200);
        r.text()
    };
    let (successes, failures) = reload_counts(&scrape().await);
    assert_eq!(failures, None);
    setup.write_config("basic_auth_users:\n  alice: not-a-hash\n");
    let r = get("alice", "other-pw").await;
    assert_eq!(
        (r.status, r.header("strict-transport-security")),
        (200, Some("max-age=2"))
    );
    let metrics = scrape().await;
    assert_eq!(reload_counts(&metrics), (successes, Some(1.0)));
    assert_eq!(
        series_value(&metrics, "pushgateway_web_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(reload_counts(&scrape().await), (successes, Some(1.0)));

    // Repaired: counts for the very next request.
    setup.write_config(&config("third-pw", "max-age=3"));
    let r = get("alice", "third-pw").await;
    assert_eq!(
        (r.status, r.header("strict-transport-security")),
        (200, Some("max-age=3"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_counts_for_the_very_next_handshake() {
    let setup = Setup::new();
    let gw = setup.start(TLS).await;
    let client = setup.client().config();
    let handshake = async || {
        https(gw.addr, client.clone(), "GET", "/metrics", &[], "")
            .await
            .expect("TLS request")
    };
    let first = handshake().await.server_certificate;
    for round in 0..3 {
        let rotated = setup.ca.server(&rcgen::PKCS_ECDSA_P256_SHA256);
        rotated.write(setup.dir.path(), "server");
        let served = handshake().await.server_certificate;
        assert_ne!(served, first, "round {round}");
        let expected = rustls::pki_types::pem::PemObject::from_pem_slice(rotated.cert.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer| c.to_vec())
            .unwrap();
        assert_eq!(served, expected, "round {round}: the new certificate");
    }
    let last = handshake().await;
    let (_, failures) = reload_counts(&last.response.text());
    // A broken certificate: the very next handshake gets the last good one, and the refusal
    // is already counted.
    std::fs::write(setup.path("server.crt"), "not a certificate\n").unwrap();
    let r = handshake().await;
    assert_eq!(r.server_certificate, last.server_certificate);
    assert_eq!(r.response.status, 200);
    let (_, now_failures) = reload_counts(&r.response.text());
    assert_eq!(now_failures, Some(failures.unwrap_or(0.0) + 1.0));
    gw.stop().await;
}

#[tokio::test]
async fn a_new_client_ca_counts_for_the_very_next_handshake() {
    let setup = Setup::new();
    let ca_file = setup.path("ca.crt");
    let gw = setup
        .start(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        ))
        .await;
    let new_ca = Ca::new("New client CA");
    let old_client = setup.ca.client("old", vec![dns("old.example")], false);
    let new_client = new_ca.client("new", vec![dns("new.example")], false);
    let status = async |identity: &CertAndKey| {
        https(
            gw.addr,
            setup.client().with_identity(identity).config(),
            "GET",
            "/-/healthy",
            &[],
            "",
        )
        .await
        .map(|r| r.response.status)
    };
    assert_eq!(status(&old_client).await, Ok(200));
    assert!(status(&new_client).await.is_err());

    std::fs::write(&ca_file, &new_ca.pem).unwrap();
    assert_eq!(status(&new_client).await, Ok(200));
    assert!(status(&old_client).await.is_err());

    // A CA file that cannot be read is refused, and the CA in service stays.
    std::fs::remove_file(&ca_file).unwrap();
    assert_eq!(status(&new_client).await, Ok(200));
    assert!(status(&old_client).await.is_err());
    gw.stop().await;
}

#[tokio::test]
async fn handlers_see_who_sent_the_request() {
    use axum::extract::Extension;
    use pushgateway::connections::{Connections, Limits};
    use pushgateway::telemetry::{BuildInfo, Telemetry};
    use pushgateway::web_config::{Acceptor, Identity, WebSecurity, guard};
    use std::sync::Arc;

    async fn who(Extension(identity): Extension<Identity>) -> String {
        let cert = identity.client_certificate.as_deref();
        format!(
            "cn={:?} dns={:?} uris={:?} verified={:?} user={:?}",
            cert.and_then(|c| c.identity.subject_common_name.clone()),
            cert.map(|c| c.identity.dns_names.clone()),
            cert.map(|c| c.identity.uris.clone()),
            cert.map(|c| c.verified),
            identity.user,
        )
    }

    let setup = Setup::new();
    let path = setup.write_config(&format!(
        "{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n{}",
        users_yaml()
    ));
    let telemetry = Arc::new(Telemetry::new(BuildInfo::current()));
    let security = WebSecurity::start(
        Path::new(&path),
        Default::default(),
        Vec::new(),
        Default::default(),
        telemetry.clone(),
    )
    .unwrap();
    let app = axum::Router::new()
        .route("/who", axum::routing::get(who))
        .layer(axum::middleware::from_fn_with_state(
            security.clone(),
            guard,
        ));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Connections::new(Limits::default(), telemetry.clone());
    let task = tokio::spawn(connections.clone().serve(
        listener,
        Acceptor::new(Some(security), telemetry),
        app,
    ));

    let pusher = setup.ca.client(
        "team-a",
        vec![dns("pusher-a.example"), uri("spiffe://example.org/a")],
        false,
    );
    let auth = basic("dave", "dave123");
    let r = https(
        addr,
        setup.client().with_identity(&pusher).config(),
        "GET",
        "/who",
        &[("authorization", &auth)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        r.response.text(),
        "cn=Some(\"team-a\") dns=Some([\"pusher-a.example\"]) uris=Some([\"spiffe://example.org/a\"]) verified=Some(true) user=Some(\"dave\")"
    );
    let r = https(
        addr,
        setup.client().config(),
        "GET",
        "/who",
        &[("authorization", &auth)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(
        r.response.text(),
        "cn=None dns=None uris=None verified=None user=Some(\"dave\")"
    );
    task.abort();
}
