//! FIPS 140 mode. Run in both builds: `cargo test` shows what the default build allows, and
//! `cargo test --features fips` shows that a FIPS build allows only approved algorithms, runs
//! every TLS configuration in FIPS mode, and says so.

mod common;

use common::tls::{ClientOptions, Setup, https};
use common::{TestGateway, basic_auth, new_gateway};
use pushgateway::server::StartError;
use rustls::crypto::aws_lc_rs::{cipher_suite, kx_group};

const FIPS: bool = cfg!(feature = "fips");
const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// What these tests add to the TLS set-up: a web config serving TLS, with more settings.
impl Setup {
    fn config(&self, extra: &str) -> String {
        self.write(
            "web.yml",
            &format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"
            ),
        )
    }

    async fn start(&self, extra: &str, flags: &[&str]) -> TestGateway {
        let path = self.config(extra);
        let mut all = vec![format!("--web.config.file={path}")];
        all.extend(flags.iter().map(|f| f.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        TestGateway::start(&all).await
    }

    fn start_error(&self, extra: &str) -> Option<String> {
        let path = self.config(extra);
        match new_gateway(&[&format!("--web.config.file={path}")]) {
            Ok(_) => None,
            Err(StartError::WebConfig { source, .. }) => Some(source.to_string()),
            Err(other) => Some(other.to_string()),
        }
    }
}

async fn handshake(
    gw: &TestGateway,
    options: ClientOptions<'_>,
) -> Result<(rustls::ProtocolVersion, rustls::CipherSuite), String> {
    https(gw.addr, options.config(), "GET", "/-/healthy", &[], "")
        .await
        .map(|r| (r.version, r.suite))
}

#[tokio::test]
async fn approved_suites_work_and_the_metrics_say_which_mode() {
    let setup = Setup::new();
    let gw = setup.start("", &[]).await;
    let mut client = ClientOptions::new(&setup.ca.pem);
    client.versions = TLS13_ONLY;
    client.suites = Some(vec![cipher_suite::TLS13_AES_256_GCM_SHA384]);
    assert_eq!(
        handshake(&gw, client).await,
        Ok((
            rustls::ProtocolVersion::TLSv1_3,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        ))
    );
    let mut client = ClientOptions::new(&setup.ca.pem);
    client.versions = TLS12_ONLY;
    client.suites = Some(vec![cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]);
    assert_eq!(
        handshake(&gw, client).await,
        Ok((
            rustls::ProtocolVersion::TLSv1_2,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        ))
    );
    let metrics = https(
        gw.addr,
        ClientOptions::new(&setup.ca.pem).config(),
        "GET",
        "/metrics",
        &[],
        "",
    )
    .await
    .unwrap()
    .response
    .text();
    let expected_mode = if FIPS { 1 } else { 0 };
    assert!(
        metrics.contains(&format!("\npushgateway_tls_fips_mode {expected_mode}\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("fips=\"{FIPS}\"")),
        "build info: {metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn chacha20_and_x25519_only_outside_fips_mode() {
    let setup = Setup::new();
    let gw = setup.start("", &[]).await;
    let mut chacha13 = ClientOptions::new(&setup.ca.pem);
    chacha13.versions = TLS13_ONLY;
    chacha13.suites = Some(vec![cipher_suite::TLS13_CHACHA20_POLY1305_SHA256]);
    let mut chacha12 = ClientOptions::new(&setup.ca.pem);
    chacha12.versions = TLS12_ONLY;
    chacha12.suites = Some(vec![
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]);
    let mut x25519 = ClientOptions::new(&setup.ca.pem);
    x25519.groups = Some(vec![kx_group::X25519]);
    for (name, client) in [
        ("ChaCha20 TLS 1.3", chacha13),
        ("ChaCha20 TLS 1.2", chacha12),
        ("X25519", x25519),
    ] {
        let result = handshake(&gw, client).await;
        assert_eq!(result.is_ok(), !FIPS, "{name}: {result:?}");
    }
    gw.stop().await;

    for (extra, setting) in [
        (
            "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n",
            "cipher_suites: TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
        (
            "  cipher_suites: [TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256]\n",
            "cipher_suites: TLS_CHACHA20_POLY1305_SHA256",
        ),
        (
            "  curve_preferences: [X25519, CurveP256]\n",
            "curve_preferences: X25519",
        ),
    ] {
        match setup.start_error(extra) {
            Some(error) if FIPS => assert!(
                error.contains(setting) && error.contains("not FIPS-approved"),
                "{error}"
            ),
            other => assert_eq!(other, None, "{extra}"),
        }
    }
}

#[tokio::test]
async fn strict_mode_drops_ml_kem_groups() {
    let setup = Setup::new();
    let mut hybrid = ClientOptions::new(&setup.ca.pem);
    hybrid.groups = Some(vec![kx_group::X25519MLKEM768, kx_group::SECP256R1MLKEM768]);
    hybrid.versions = TLS13_ONLY;
    let gw = setup.start("", &[]).await;
    assert!(
        handshake(&gw, hybrid).await.is_ok(),
        "hybrid groups are offered by default"
    );
    gw.stop().await;

    let mut hybrid = ClientOptions::new(&setup.ca.pem);
    hybrid.groups = Some(vec![kx_group::X25519MLKEM768, kx_group::SECP256R1MLKEM768]);
    hybrid.versions = TLS13_ONLY;
    let gw = setup.start("", &["--tls.fips-strict"]).await;
    assert!(
        handshake(&gw, hybrid).await.is_err(),
        "--tls.fips-strict leaves them out"
    );
    assert!(
        handshake(&gw, ClientOptions::new(&setup.ca.pem))
            .await
            .is_ok()
    );
    gw.stop().await;
}

#[tokio::test]
async fn password_hashes() {
    let setup = Setup::new();
    let bcrypt_user = format!(
        "basic_auth_users:\n  alice: {}\n",
        bcrypt::hash("alice123", 4).unwrap()
    );
    let pbkdf2 = pushgateway::web_config::hash_password("pbkdf2-sha512", "bob123").unwrap();
    let pbkdf2_user = format!("basic_auth_users:\n  bob: {pbkdf2}\n");
    match setup.start_error(&bcrypt_user) {
        Some(error) if FIPS => assert!(
            error.contains("bcrypt hashes are not FIPS-approved")
                && error.contains("--hash-password=pbkdf2-sha256"),
            "{error}"
        ),
        other => assert_eq!(other, None),
    }
    let gw = setup.start(&pbkdf2_user, &[]).await;
    let auth = basic_auth;
    let status = |authorization: String| {
        let config = ClientOptions::new(&setup.ca.pem).config();
        let addr = gw.addr;
        async move {
            https(
                addr,
                config,
                "GET",
                "/-/healthy",
                &[("authorization", &authorization)],
                "",
            )
            .await
            .unwrap()
            .response
            .status
        }
    };
    assert_eq!(status(auth("bob", "bob123")).await, 200);
    assert_eq!(status(auth("bob", "bob124")).await, 401);
    assert_eq!(status(auth("eve", "bob123")).await, 401);
    gw.stop().await;
}

#[test]
fn hash_password_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg("--hash-password=pbkdf2-sha256")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"s3cret\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap();
    assert!(hash.starts_with("$pbkdf2-sha256$600000$"), "{hash}");
    let users = format!("basic_auth_users:\n  carol: {}\n", hash.trim());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.yml"), users).unwrap();
    let web = format!("--web.config.file={}", dir.path().join("web.yml").display());
    assert!(new_gateway(&[&web]).is_ok(), "the printed hash is accepted");
}

/// The binary links the FIPS module only: no symbol of the non-FIPS AWS-LC build is in it.
#[cfg(feature = "fips")]
#[test]
fn only_the_fips_module_is_linked() {
    let output = std::process::Command::new("nm")
        .arg(env!("CARGO_BIN_EXE_pushgateway"))
        .output()
        .expect("nm (binutils) runs");
    let symbols = String::from_utf8_lossy(&output.stdout);
    let fips = symbols
        .lines()
        .filter(|l| l.contains("aws_lc_fips_"))
        .count();
    let non_fips: Vec<&str> = symbols
        .lines()
        .filter(|l| l.contains("aws_lc_0_") && !l.contains("aws_lc_fips_"))
        .take(5)
        .collect();
    assert!(fips > 1000, "the FIPS module's symbols are there ({fips})");
    assert!(
        non_fips.is_empty(),
        "non-FIPS AWS-LC symbols linked: {non_fips:?}"
    );
}

/// The module's CMVP certificate, the same in all four places a compliance check reads it:
/// `--version`, the start-up log line, `/api/v1/status` and `pushgateway_build_info`. A
/// default build links plain AWS-LC, which is not a validated module, and says `none`.
#[test]
fn every_output_states_the_modules_certificate() {
    use common::process::{BINARY, GatewayProcess};
    let certificate = if FIPS { "CMVP #5314" } else { "none" };

    let version = std::process::Command::new(BINARY)
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version
            .lines()
            .any(|line| line == format!("  certificate:      {certificate}")),
        "{version}"
    );

    let gw = GatewayProcess::start::<&str>(&[]);
    let log = gw.log();
    let start_line = log
        .lines()
        .find(|line| line.contains("msg=\"starting pushgateway\""))
        .unwrap_or_else(|| panic!("no start-up line in {log}"));
    let logged = if FIPS {
        format!("crypto_certificate=\"{certificate}\"")
    } else {
        format!("crypto_certificate={certificate}")
    };
    assert!(start_line.contains(&logged), "{start_line}");

    let (status, body) = gw.request("GET", "/api/v1/status", "").unwrap();
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        document["data"]["build_information"]["cryptoCertificate"],
        certificate
    );

    let metrics = gw.metrics();
    let build_info = metrics
        .lines()
        .find(|line| line.starts_with("pushgateway_build_info{"))
        .unwrap_or_else(|| panic!("no build info in {metrics}"));
    assert!(
        build_info.contains(&format!("crypto_certificate=\"{certificate}\"")),
        "{build_info}"
    );
    gw.stop();
}
