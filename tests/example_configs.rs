//! The example files in web-config/ with the certificates of certs/make-certs.sh, against the
//! real binary, driven by real clients: curl and openssl s_client.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_pushgateway");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Copies the examples and makes fresh throwaway certificates next to them, in the layout the
/// examples expect (`web-config/` beside `certs/generated/`).
fn examples() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let web_config = dir.path().join("web-config");
    std::fs::create_dir(&web_config).unwrap();
    for entry in std::fs::read_dir(Path::new(ROOT).join("web-config")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), web_config.join(entry.file_name())).unwrap();
    }
    let certs = dir.path().join("certs/generated");
    let status = Command::new(Path::new(ROOT).join("certs/make-certs.sh"))
        .arg(&certs)
        .stdout(Stdio::null())
        .status()
        .expect("certs/make-certs.sh runs (needs openssl)");
    assert!(status.success());
    (dir, certs)
}

struct Running(Child, String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path) -> Running {
    start_with(config, &[])
}

fn start_with(config: &Path, extra: &[String]) -> Running {
    let mut child = Command::new(BINARY)
        .args([
            "--web.listen-address=127.0.0.1:0",
            &format!("--web.config.file={}", config.display()),
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("log line").unwrap();
        if let Some(rest) = line.split("address=127.0.0.1:").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Running(child, port)
}

fn curl(port: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
        ])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn s_client(port: &str, args: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-quiet",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /-/healthy HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn mtls_example_with_curl_and_openssl() {
    let (dir, certs) = examples();
    let gateway = start(&dir.path().join("web-config/mtls.yml"));
    let port = gateway.1.as_str();
    let file = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let url = format!("https://localhost:{port}");

    // Pushing with a client certificate, then reading it back.
    let (ok, text) = curl(
        port,
        &[
            "--cacert",
            &file("ca.crt"),
            "--cert",
            &file("team-a.crt"),
            "--key",
            &file("team-a.key"),
            "--data-binary",
            "some_metric 3.14\n",
            &format!("{url}/metrics/job/team-a"),
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = curl(
        port,
        &[
            "--cacert",
            &file("ca.crt"),
            "--cert",
            &file("team-a.crt"),
            "--key",
            &file("team-a.key"),
            &format!("{url}/metrics"),
        ],
    );
    assert!(
        ok && text.contains("some_metric{instance=\"\",job=\"team-a\"} 3.14"),
        "{text}"
    );
    // Without a client certificate: refused.
    let (ok, text) = curl(
        port,
        &["--cacert", &file("ca.crt"), &format!("{url}/-/healthy")],
    );
    assert!(!ok, "curl without a client certificate must fail: {text}");

    let with_cert = s_client(
        port,
        &[
            "-CAfile",
            &file("ca.crt"),
            "-cert",
            &file("team-b.crt"),
            "-key",
            &file("team-b.key"),
        ],
    );
    assert!(with_cert.contains("HTTP/1.0 200 OK"), "{with_cert}");
    let without = s_client(port, &["-CAfile", &file("ca.crt")]);
    assert!(!without.contains("200 OK"), "{without}");
}

#[test]
fn team_per_job_authorization_example_with_curl() {
    let (dir, certs) = examples();
    let authz = dir.path().join("web-config/authz-teams.yml");
    let gateway = start_with(
        &dir.path().join("web-config/mtls.yml"),
        &[format!("--web.authz-file={}", authz.display())],
    );
    let port = gateway.1.as_str();
    let file = |name: &str| certs.join(name).to_string_lossy().into_owned();
    let url = format!("https://localhost:{port}");
    let as_client = |who: &str, extra: &[&str]| {
        let mut args = vec![
            "--cacert".to_string(),
            file("ca.crt"),
            "-w".into(),
            "\n%{http_code}".into(),
        ];
        if !who.is_empty() {
            args.extend(["--cert".into(), file(&format!("{who}.crt"))]);
            args.extend(["--key".into(), file(&format!("{who}.key"))]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = curl(port, &args);
        assert!(ok, "{text}");
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    };
    let own = format!("{url}/metrics/job/team-a-backup/instance/team-a.pushers.example");
    let push =
        |who: &str, target: &str| as_client(who, &["--data-binary", "last_success 1\n", target]).0;
    assert_eq!(push("team-a", &own), "200");
    assert_eq!(
        push(
            "team-a",
            &format!("{url}/metrics/job/team-a/instance/team-a.pushers.example")
        ),
        "200"
    );
    // Another team's job, another host's instance, no instance at all, and a label beyond
    // those the rule names (`exact_labels`).
    for target in [
        format!("{url}/metrics/job/team-b-backup/instance/team-a.pushers.example"),
        format!("{url}/metrics/job/team-a-backup/instance/team-b.pushers.example"),
        format!("{url}/metrics/job/team-a-backup"),
        format!("{url}/metrics/job/team-a-backup/instance/team-a.pushers.example/shard/1"),
    ] {
        assert_eq!(push("team-a", &target), "403", "{target}");
    }
    let (code, body) = as_client("team-b", &["-X", "DELETE", &own]);
    assert_eq!(code, "403");
    assert!(
        body.contains("uri_san=\"spiffe://example.org/team-b\""),
        "{body}"
    );
    assert_eq!(push("prometheus", &own), "403");
    let (code, scraped) = as_client("prometheus", &[&format!("{url}/metrics")]);
    assert_eq!(code, "200");
    assert!(
        scraped
            .contains("last_success{instance=\"team-a.pushers.example\",job=\"team-a-backup\"} 1")
    );
    assert_eq!(as_client("team-a", &[&format!("{url}/metrics")]).0, "403");
    // Load balancers: health checks without a certificate, nothing else.
    assert_eq!(
        as_client("", &[&format!("{url}/-/healthy")]),
        ("200".into(), "OK".into())
    );
    assert_eq!(as_client("", &[&format!("{url}/metrics")]).0, "403");
}

#[test]
fn every_example_starts() {
    let (dir, certs) = examples();
    // A FIPS build refuses the bcrypt hashes of basic-auth.yml (all.yml has PBKDF2 ones).
    let names: &[&str] = if cfg!(feature = "fips") {
        &["tls.yml", "mtls.yml", "all.yml"]
    } else {
        &["tls.yml", "mtls.yml", "basic-auth.yml", "all.yml"]
    };
    for name in names {
        let gateway = start(&dir.path().join("web-config").join(name));
        let port = gateway.1.as_str();
        let ca = certs.join("ca.crt").to_string_lossy().into_owned();
        let cert = certs.join("prometheus.crt").to_string_lossy().into_owned();
        let key = certs.join("prometheus.key").to_string_lossy().into_owned();
        let scheme = if *name == "basic-auth.yml" {
            "http"
        } else {
            "https"
        };
        let (ok, text) = curl(
            port,
            &[
                "--cacert",
                &ca,
                "--cert",
                &cert,
                "--key",
                &key,
                "-u",
                "prometheus:prometheus-password",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{scheme}://localhost:{port}/-/healthy"),
            ],
        );
        assert!(ok && text == "200", "{name}: {text}");
    }
}
