//! `pushgateway healthcheck` through the real binary: against real gateways over HTTP, HTTPS and
//! mutual TLS, with the target taken from `--url`, from the gateway's flags given to the probe,
//! and from the gateway process beside it; exit status 0 or 1 and the one line it prints.
//!
//! The tests run one at a time: the probe looks for a gateway process of this same binary, so
//! one test's gateway must not be found by another's probe.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use common::process::{BINARY, GatewayProcess};
use common::tls::{Ca, CertAndKey};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the probe with `args` in `dir` and returns its output.
fn probe_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BINARY)
        .arg("healthcheck")
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("runs the probe")
}

fn probe(args: &[&str]) -> Output {
    probe_in(Path::new("."), args, &[])
}

/// Exit status 0 and the `ok:` line naming `url`.
#[track_caller]
fn assert_healthy(output: &Output, url: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout {stdout:?}, stderr {stderr:?}"
    );
    assert_eq!(stdout, format!("ok: GET {url}: 200 OK\n"));
    assert!(stderr.is_empty(), "{stderr}");
}

/// Exit status 1 (never 2, which Docker reserves) and one line on standard error that contains
/// each of `expected`.
#[track_caller]
fn assert_unhealthy(output: &Output, expected: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    assert!(output.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("pushgateway healthcheck: "), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} not in {stderr:?}");
    }
    stderr
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn port(gateway: &GatewayProcess) -> &str {
    gateway.address.rsplit_once(':').unwrap().1
}

#[test]
fn http_with_the_gateways_flags() {
    let _serial = serial();
    let gw = GatewayProcess::start(&["--web.route-prefix=/pg"]);
    let port = port(&gw);
    // `:port` listens everywhere, so the probe goes to loopback, as it would for the gateway.
    let listen = format!("--web.listen-address=:{port}");
    assert_healthy(
        &probe(&[&listen, "--web.route-prefix=/pg"]),
        &format!("http://127.0.0.1:{port}/pg/-/healthy"),
    );
    assert_healthy(
        &probe(&[&listen, "--web.route-prefix=/pg", "--ready"]),
        &format!("http://127.0.0.1:{port}/pg/-/ready"),
    );
    // The route prefix also comes from the external URL's path, as for the gateway.
    assert_healthy(
        &probe(&[&listen, "--web.external-url=http://example.org/pg/"]),
        &format!("http://127.0.0.1:{port}/pg/-/healthy"),
    );
    // Without the prefix, the path does not exist: the answer is named.
    assert_unhealthy(
        &probe(&[&listen]),
        &[
            &format!("GET http://127.0.0.1:{port}/-/healthy: answered 404 Not Found"),
            "404 page not found",
        ],
    );
    gw.stop();
}

#[test]
fn an_explicit_url() {
    let _serial = serial();
    let gw = GatewayProcess::start::<&str>(&[]);
    let url = format!("http://{}/-/ready", gw.address);
    assert_healthy(&probe(&["--url", &url]), &url);
    assert_unhealthy(
        &probe(&["--url", "ftp://127.0.0.1/"]),
        &["invalid --url \"ftp://127.0.0.1/\": the scheme must be http or https"],
    );
    gw.stop();
}

#[test]
fn nothing_listening_is_unhealthy_with_the_reason() {
    let _serial = serial();
    let port = free_port();
    assert_unhealthy(
        &probe(&[&format!("--web.listen-address=127.0.0.1:{port}")]),
        &[&format!(
            "GET http://127.0.0.1:{port}/-/healthy: cannot connect: "
        )],
    );
}

#[test]
fn a_server_that_does_not_answer_is_unhealthy_after_the_timeout() {
    let _serial = serial();
    // Accepts connections (the kernel does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    assert_unhealthy(
        &probe(&[
            &format!("--url=http://{address}/-/healthy"),
            "--timeout=300ms",
        ]),
        &[&format!(
            "GET http://{address}/-/healthy: no answer within 300ms"
        )],
    );
}

#[test]
fn usage_errors_exit_1_not_2() {
    let _serial = serial();
    let output = probe(&["--bogus"]);
    assert_unhealthy(&output, &["unexpected argument '--bogus'"]);
    let output = probe(&["--cert-file=x.crt"]);
    assert_unhealthy(&output, &["--key-file"]);
    let help = probe(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: pushgateway healthcheck"), "{help}");
    // The gateway's flags are accepted but not listed.
    assert!(!help.contains("--persistence.file"), "{help}");
}

/// A directory with a CA, the server's certificate and a web configuration.
struct TlsSetup {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl TlsSetup {
    fn new(server: impl FnOnce(&Ca) -> CertAndKey) -> TlsSetup {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Probe test CA");
        server(&ca).write(dir.path(), "server");
        std::fs::write(dir.path().join("ca.crt"), &ca.pem).unwrap();
        TlsSetup { dir, ca }
    }

    /// Writes `name` with TLS and `extra` lines under `tls_server_config`, and returns its path.
    fn web_config(&self, name: &str, extra: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(
            &path,
            format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// A gateway serving `web.yml` (TLS with `extra`), and that file's path.
    fn start(&self, extra: &str) -> (GatewayProcess, String) {
        let config = self.web_config("web.yml", extra);
        let gw = GatewayProcess::start(&[format!("--web.config.file={config}")]);
        (gw, config)
    }
}

fn server_only(ca: &Ca) -> CertAndKey {
    ca.server(&rcgen::PKCS_ECDSA_P256_SHA256)
}

#[test]
fn https_trusts_the_certificate_its_web_config_names() {
    let _serial = serial();
    let setup = TlsSetup::new(server_only);
    let (gw, config) = setup.start("");
    let listen = format!("--web.listen-address={}", gw.address);
    let url = format!("https://{}/-/healthy", gw.address);
    // The same web configuration: no CA needed, the certificate is the one in the file.
    assert_healthy(
        &probe(&[&listen, &format!("--web.config.file={config}")]),
        &url,
    );
    // Relative to where the probe runs, as for the gateway.
    assert_healthy(
        &probe_in(
            setup.dir.path(),
            &[&listen, "--web.config.file=web.yml"],
            &[],
        ),
        &url,
    );

    // A configuration naming another certificate: the server does not present it.
    let other = tempfile::tempdir().unwrap();
    server_only(&setup.ca).write(other.path(), "server");
    let other_config = other.path().join("web.yml");
    std::fs::write(
        &other_config,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    assert_unhealthy(
        &probe(&[
            &listen,
            &format!("--web.config.file={}", other_config.display()),
        ]),
        &[
            &format!("GET {url}: TLS handshake failed"),
            "the server does not present the certificate its web configuration names",
        ],
    );
    // Plain HTTP to the TLS port is answered with 400: not healthy.
    assert_unhealthy(
        &probe(&[&listen]),
        &["answered 400 Bad Request: Client sent an HTTP request to an HTTPS server."],
    );
    gw.stop();
}

#[test]
fn https_url_with_a_ca_or_the_system_trust_store() {
    let _serial = serial();
    let setup = TlsSetup::new(server_only);
    let (gw, _) = setup.start("");
    let port = port(&gw);
    let url = format!("https://localhost:{port}/-/healthy");
    let ca = setup.path("ca.crt");
    assert_healthy(&probe(&["--url", &url, "--ca-file", &ca]), &url);
    // The name is checked: 127.0.0.1 is in the certificate, example.org is not.
    let by_address = format!("https://127.0.0.1:{port}/-/healthy");
    assert_healthy(
        &probe(&["--url", &by_address, "--ca-file", &ca]),
        &by_address,
    );
    assert_unhealthy(
        &probe(&[
            "--url",
            &by_address,
            "--ca-file",
            &ca,
            "--server-name=example.org",
        ]),
        &["TLS handshake failed", "not trusted"],
    );
    // Without --ca-file the system's trust store decides, which does not know this CA...
    let other = Ca::new("Some other CA");
    let other_path = setup.path("other-ca.crt");
    std::fs::write(&other_path, &other.pem).unwrap();
    assert_unhealthy(
        &probe_in(
            Path::new("."),
            &["--url", &url],
            &[
                ("SSL_CERT_FILE", &other_path),
                ("SSL_CERT_DIR", "/nonexistent"),
            ],
        ),
        &["TLS handshake failed", "give the CA with --ca-file"],
    );
    // ...and trusts it once it is in the store the system's settings point to.
    assert_healthy(
        &probe_in(
            Path::new("."),
            &["--url", &url],
            &[("SSL_CERT_FILE", &ca), ("SSL_CERT_DIR", "/nonexistent")],
        ),
        &url,
    );
    gw.stop();
}

#[test]
fn mutual_tls_with_the_gateways_own_certificate_or_a_client_certificate() {
    let _serial = serial();
    let mtls = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n";

    // A server certificate for server use only cannot be shown as a client certificate.
    let setup = TlsSetup::new(server_only);
    let (gw, config) = setup.start(mtls);
    let flags = [
        format!("--web.listen-address={}", gw.address),
        format!("--web.config.file={config}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    assert_unhealthy(
        &probe(&flags),
        &[
            "--cert-file and --key-file",
            "unauthenticated_health_checks",
        ],
    );
    let client = setup.ca.client("probe", vec![], false);
    let (cert, key) = client.write(setup.dir.path(), "probe");
    let mut with_client = flags.clone();
    let cert_flag = format!("--cert-file={}", cert.display());
    let key_flag = format!("--key-file={}", key.display());
    with_client.extend([cert_flag.as_str(), key_flag.as_str()]);
    assert_healthy(
        &probe(&with_client),
        &format!("https://{}/-/healthy", gw.address),
    );
    gw.stop();

    // A certificate issued for both uses: the probe shows the gateway's own, needing nothing.
    let setup = TlsSetup::new(Ca::server_and_client);
    let (gw, config) = setup.start(mtls);
    assert_healthy(
        &probe(&[
            &format!("--web.listen-address={}", gw.address),
            &format!("--web.config.file={config}"),
        ]),
        &format!("https://{}/-/healthy", gw.address),
    );
    gw.stop();
}

#[test]
fn a_password_protected_gateway_needs_its_health_checks_opened() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // PBKDF2, which FIPS builds accept too (they refuse bcrypt).
    let hash = pushgateway::web_config::hash_password("pbkdf2-sha256", "secret").unwrap();
    let config = dir.path().join("web.yml");
    std::fs::write(&config, format!("basic_auth_users:\n  admin: {hash}\n")).unwrap();
    let authz = dir.path().join("authz.yml");
    std::fs::write(
        &authz,
        "unauthenticated_health_checks: true\nrules:\n  - name: admin\n    identities:\n      user: [admin]\n    scrape: true\n",
    )
    .unwrap();
    let config_flag = format!("--web.config.file={}", config.display());
    let gw = GatewayProcess::start(&[config_flag.as_str()]);
    let listen = format!("--web.listen-address={}", gw.address);
    assert_unhealthy(
        &probe(&[&listen, &config_flag]),
        &["answered 401 Unauthorized", "unauthenticated_health_checks"],
    );
    gw.stop();
    let authz_flag = format!("--web.authz-file={}", authz.display());
    let gw = GatewayProcess::start(&[config_flag.as_str(), authz_flag.as_str()]);
    assert_healthy(
        &probe(&[
            &format!("--web.listen-address={}", gw.address),
            &config_flag,
        ]),
        &format!("http://{}/-/healthy", gw.address),
    );
    gw.stop();
}

#[test]
fn without_flags_it_probes_the_gateway_process_beside_it() {
    let _serial = serial();
    let setup = TlsSetup::new(server_only);
    setup.web_config("web.yml", "");
    let port = free_port();
    // Started in the certificates' directory with a relative --web.config.file: the probe,
    // started elsewhere, reads it relative to the gateway's working directory.
    let gw = GatewayProcess::launch(
        Command::new(BINARY)
            .current_dir(setup.dir.path())
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.config.file=web.yml")
            .arg("--web.route-prefix=/pg")
            .stdout(Stdio::null()),
    );
    assert_healthy(
        &probe(&[]),
        &format!("https://127.0.0.1:{port}/pg/-/healthy"),
    );
    assert_healthy(
        &probe(&["--ready"]),
        &format!("https://127.0.0.1:{port}/pg/-/ready"),
    );
    gw.stop();
    // Gone: the probe falls back to the defaults (127.0.0.1:9091, where this machine may run
    // anything), not to the gateway that was there.
    let output = probe(&[]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("http://127.0.0.1:9091/-/healthy"), "{said}");
}
