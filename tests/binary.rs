//! The real binary: flags, exit statuses, start-up errors, graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_pushgateway");

fn run(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .output()
        .expect("binary runs")
}

/// A started gateway, killed when the test ends, also when it fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts the binary on a free port and waits until it logs that it listens.
fn start(args: &[&str]) -> (Running, String) {
    let mut all = vec!["--web.listen-address=127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut child = Command::new(BINARY)
        .args(&all)
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("log line before exit")
            .expect("readable log");
        if let Some(rest) = line.split("msg=\"Listening on\" address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining the log so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Running(child), address)
}

fn http(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn help_and_version_go_to_stdout() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--web.listen-address",
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
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("pushgateway, version "));
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
    let (mut child, address) = start(&[]);
    let response = http(
        &address,
        "PUT /metrics/job/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\na 1\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_for_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn quit_endpoint_with_lifecycle_enabled() {
    let (mut child, address) = start(&["--web.enable-lifecycle"]);
    let response = http(
        &address,
        "PUT /-/quit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.ends_with("Requesting termination... Goodbye!"),
        "{response}"
    );
    let status = wait_for_exit(&mut child, Duration::from_secs(10)).expect("exits after quit");
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
    let (mut child, address) = start(&flags);
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
    let status = wait_for_exit(&mut child, Duration::from_secs(10)).expect("exits after quit");
    assert!(status.success(), "{status:?}");

    let (mut child, address) = start(&flags);
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
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_for_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGINT");
    assert!(status.success(), "{status:?}");

    let (_child, address) = start(&flags);
    let scrape = http(
        &address,
        "GET /pg/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        scrape.contains("b{instance=\"\",job=\"second\"} 2"),
        "{scrape}"
    );
}
