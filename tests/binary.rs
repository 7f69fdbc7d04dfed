//! The real binary: flags, exit statuses, start-up errors, graceful shutdown.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::process::{BINARY, GatewayProcess};

fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .output()
        .expect("binary runs")
}

/// Starts the binary on a free port and waits until it logs that it listens.
fn start(args: &[&str]) -> GatewayProcess {
    GatewayProcess::launch(
        Command::new(BINARY)
            .arg("--web.listen-address=127.0.0.1:0")
            .args(args),
    )
}

fn http(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn help_and_version_go_to_stdout() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--web.listen-address",
        "--web.systemd-socket",
        "--web.config.file",
        "--web.telemetry-path",
        "--web.external-url",
        "--web.route-prefix",
        "--web.enable-lifecycle",
        "--web.enable-admin-api",
        "--persistence.file",
        "--persistence.interval",
        "--push.disable-consistency-check",
        "--push.enable-utf8-names",
        "--push.max-body-size",
        "--log.level",
        "--log.format",
        "--version",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    assert!(
        text.contains("also try --help-long and --help-man"),
        "{text}"
    );
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("pushgateway, version "));
}

/// kingpin's hidden help flags, which scripts and packaging call: `--help-long` prints the whole
/// help, `--help-man` a man page (Debian's packaging runs `--help-man > pushgateway.1`); both to
/// stdout, exit 0, and the gateway does not start.
#[test]
fn help_long_and_help_man() {
    let long = run(&["--help-long"]);
    assert_eq!(long.status.code(), Some(0));
    let text = String::from_utf8_lossy(&long.stdout);
    assert!(text.contains("--web.systemd-socket"), "{text}");
    let short = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    for flag in short
        .split_whitespace()
        .filter(|word| word.starts_with("--"))
    {
        assert!(text.contains(flag), "--help-long lacks {flag}");
    }
    assert!(long.stderr.is_empty());

    let man = run(&["--help-man", "--web.listen-address=127.0.0.1:0"]);
    assert_eq!(man.status.code(), Some(0));
    assert!(
        man.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&man.stderr)
    );
    let page = String::from_utf8(man.stdout).expect("UTF-8");
    assert!(page.contains(".TH pushgateway 1"), "{page}");
    for expected in [
        ".SH NAME",
        ".SH OPTIONS",
        "\\-\\-web.systemd\\-socket",
        "\\-\\-persistence.file",
    ] {
        assert!(page.contains(expected), "{expected} missing: {page}");
    }
    // Hidden, as kingpin hides them.
    assert!(!page.contains("\\fB\\-\\-help\\-man"));

    // The page must be valid roff: groff (which man uses) renders it without a warning.
    match Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut groff) => {
            groff
                .stdin
                .take()
                .unwrap()
                .write_all(page.as_bytes())
                .unwrap();
            let rendered = groff.wait_with_output().unwrap();
            assert!(rendered.status.success(), "{rendered:?}");
            assert!(
                rendered.stderr.is_empty(),
                "groff warns: {}",
                String::from_utf8_lossy(&rendered.stderr)
            );
        }
        Err(err) => eprintln!("skipping the roff check: groff cannot run ({err})"),
    }

    // As kingpin: the first of --version, --help-long and --help-man acts.
    let first = run(&["--help-man", "--version"]);
    assert!(String::from_utf8_lossy(&first.stdout).starts_with(".ie"));
    let first = run(&["--version", "--help-long"]);
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("pushgateway, version "));
    // They are flags without a value, and an unknown flag before them is still an error.
    assert_eq!(run(&["--bogus", "--help-man"]).status.code(), Some(1));
}

/// `vsock://` listen addresses (AF_VSOCK in upstream) are refused at start-up with a message
/// that says so, never taken for a TCP host name.
#[test]
fn vsock_listen_addresses_are_refused() {
    for address in ["vsock://:9091", "vsock://3:9091"] {
        let output = run(&[
            "--web.listen-address=127.0.0.1:0",
            &format!("--web.listen-address={address}"),
        ]);
        assert_eq!(output.status.code(), Some(1), "{address}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "invalid --web.listen-address \\\"{address}\\\": vsock (AF_VSOCK) listen addresses are not supported"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn bad_flags_exit_non_zero_with_a_message() {
    for (args, message) in [
        (
            &["--persistence.interval=abc"][..],
            "time: invalid duration \"abc\"",
        ),
        (&["--log.level=foo"], "unrecognized log level foo"),
        (&["--bogus"], "--bogus"),
        (
            &["--web.listen-address=nonsense"],
            "invalid --web.listen-address",
        ),
        (
            &[
                "--web.listen-address=127.0.0.1:0",
                "--web.telemetry-path=metrics",
            ],
            "--web.telemetry-path",
        ),
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn a_port_in_use_fails_start_up() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = run(&[&format!("--web.listen-address={address}")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on"));
}

#[test]
fn sigterm_stops_gracefully() {
    let mut child = start(&[]);
    let address = child.address.clone();
    let response = http(
        &address,
        "PUT /metrics/job/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    child.signal(libc::SIGTERM);
    let status = child
        .wait_for_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn quit_endpoint_with_lifecycle_enabled() {
    let mut child = start(&["--web.enable-lifecycle"]);
    let address = child.address.clone();
    let response = http(
        &address,
        "PUT /-/quit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with("Requesting termination... Goodbye!"),
        "{response}"
    );
    let status = child
        .wait_for_exit(Duration::from_secs(10))
        .expect("exits after quit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn json_logs() {
    let mut child = Command::new(BINARY)
        .args(["--web.listen-address=127.0.0.1:0", "--log.format=json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&first).expect("a JSON log line");
    assert_eq!(parsed["level"], "info");
    assert_eq!(parsed["msg"], "starting pushgateway");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `/-/quit` under a prefix shuts down like SIGTERM: a push in flight is finished and answered,
/// the final snapshot holds it, and the process exits 0. SIGINT does the same.
#[test]
fn quit_and_sigint_finish_requests_in_flight_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let persistence = format!("--persistence.file={}", file.display());
    let flags = [
        "--web.enable-lifecycle",
        "--web.route-prefix=/pg",
        "--no-persistence.log",
        persistence.as_str(),
    ];
    let mut child = start(&flags);
    let address = child.address.clone();
    let forbidden = http(
        &address,
        "PUT /-/quit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(forbidden.starts_with("HTTP/1.1 404"), "{forbidden}");

    // A push whose body is still on its way when the quit arrives.
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.write_all(
        b"PUT /pg/metrics/job/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\nslow",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let quit = http(
        &address,
        "POST /pg/-/quit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(quit.starts_with("HTTP/1.1 200"), "{quit}");
    std::thread::sleep(Duration::from_millis(200));
    slow.write_all(b" 42\n").unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the push in flight is answered: {answer}"
    );
    let status = child
        .wait_for_exit(Duration::from_secs(10))
        .expect("exits after quit");
    assert!(status.success(), "{status:?}");

    let mut child = start(&flags);
    let address = child.address.clone();
    let scrape = http(
        &address,
        "GET /pg/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        scrape.contains("slow{instance=\"\",job=\"slow\"} 42"),
        "{scrape}"
    );
    let pushed = http(
        &address,
        "PUT /pg/metrics/job/second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nb 2\n",
    );
    assert!(pushed.starts_with("HTTP/1.1 200"), "{pushed}");
    child.signal(libc::SIGINT);
    let status = child
        .wait_for_exit(Duration::from_secs(10))
        .expect("exits after SIGINT");
    assert!(status.success(), "{status:?}");

    let child = start(&flags);
    let address = child.address.clone();
    let scrape = http(
        &address,
        "GET /pg/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        scrape.contains("b{instance=\"\",job=\"second\"} 2"),
        "{scrape}"
    );
}
