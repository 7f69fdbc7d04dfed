//! Socket activation through the real binary: `--web.systemd-socket` with listening sockets
//! passed the way systemd passes them (descriptors 3.., `LISTEN_FDS`, `LISTEN_PID` = the
//! gateway's own pid); TLS and the web config on those sockets; the errors when they are missing
//! or unusable; systemd's own `systemd-socket-activate`; and the units in examples/systemd/,
//! checked and run.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use common::process::{BINARY, GatewayProcess};
use common::tls::{Setup, https};
use common::{Response, basic_auth, password_hash, send};

/// A command that runs `program` (the binary, with `args`) with `sockets` as descriptors 3..
/// and `LISTEN_FDS=listen_fds`. `LISTEN_PID` must be the gateway's own pid, which exists only
/// after the fork: a shell sets it to its own pid (`$$`) and execs the program, which keeps
/// that pid.
fn activated(program: &[&str], sockets: &[&dyn AsRawFd], listen_fds: usize) -> Command {
    // Copies numbered above any target first, so that moving one into place in the child can
    // never overwrite another still to be moved.
    let high: Vec<OwnedFd> = sockets
        .iter()
        .map(|socket| {
            // SAFETY: F_DUPFD_CLOEXEC duplicates an open descriptor; the copy is owned here.
            let fd = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
            assert!(fd >= 100, "dup: {}", std::io::Error::last_os_error());
            // SAFETY: `fd` was just created and nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect();
    let mut command = Command::new("sh");
    command
        .args(["-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\""])
        .args(program)
        .env("LISTEN_FDS", listen_fds.to_string())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES");
    // SAFETY: between fork and exec the closure only calls dup2, which is async-signal-safe,
    // and allocates nothing; the descriptors it reads stay open as long as the Command (the
    // closure owns them).
    unsafe {
        command.pre_exec(move || {
            for (index, fd) in high.iter().enumerate() {
                // dup2 clears close-on-exec on the target: the gateway inherits it.
                if libc::dup2(fd.as_raw_fd(), 3 + index as RawFd) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command
}

fn gateway(args: &[&str]) -> Vec<String> {
    let mut all = vec![BINARY.to_string()];
    all.extend(args.iter().map(ToString::to_string));
    all
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("binds")
}

fn addr(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().unwrap()
}

async fn put(addr: SocketAddr, path: &str, body: &'static str) -> Response {
    send(addr, "PUT", path, &[], Bytes::from_static(body.as_bytes())).await
}

async fn get(addr: SocketAddr, path: &str) -> Response {
    send(addr, "GET", path, &[], Bytes::new()).await
}

fn failure(command: &mut Command) -> String {
    let output: Output = command.output().expect("runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Two sockets passed, both served; `--web.listen-address` is not bound (its port is taken, so
/// binding it would fail); the status API says `web.systemd-socket` is on.
#[tokio::test]
async fn serves_on_the_sockets_systemd_passes() {
    let (first, second) = (listener(), listener());
    let taken = listener();
    let listen_address = format!("--web.listen-address={}", addr(&taken));
    let program = gateway(&["--web.systemd-socket", &listen_address]);
    let program: Vec<&str> = program.iter().map(String::as_str).collect();
    let mut child = GatewayProcess::launch(&mut activated(&program, &[&first, &second], 2));
    assert_eq!(child.address, addr(&first).to_string());

    let pushed = put(addr(&first), "/metrics/job/activated", "a 1\n").await;
    assert_eq!(pushed.status, 200, "{}", pushed.text());
    let scrape = get(addr(&second), "/metrics").await;
    assert!(
        scrape
            .text()
            .contains("a{instance=\"\",job=\"activated\"} 1"),
        "{}",
        scrape.text()
    );
    let status: serde_json::Value =
        serde_json::from_slice(&get(addr(&second), "/api/v1/status").await.body).unwrap();
    let flags = &status["data"]["flags"];
    assert_eq!(flags["web.systemd-socket"], "true");
    assert_eq!(flags["web.listen-address"], addr(&taken).to_string());

    // The test's own copies close; the gateway still owns the sockets and answers on them.
    drop((first, second));
    child.signal(libc::SIGTERM);
    let status = child
        .wait_for_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// TLS and basic auth from `--web.config.file` apply to an inherited socket as to a bound one.
#[tokio::test]
async fn tls_and_auth_apply_to_inherited_sockets() {
    let setup = Setup::new();
    let config = setup.write(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: {}\n",
            password_hash("secret")
        ),
    );
    let socket = listener();
    let address = addr(&socket);
    let program = gateway(&[
        "--web.systemd-socket",
        &format!("--web.config.file={config}"),
    ]);
    let program: Vec<&str> = program.iter().map(String::as_str).collect();
    let _child = GatewayProcess::launch(&mut activated(&program, &[&socket], 1));

    let tls = setup.client().config();
    let authorization = basic_auth("alice", "secret");
    let pushed = https(
        address,
        tls.clone(),
        "PUT",
        "/metrics/job/tls",
        &[("authorization", &authorization)],
        "t 1\n",
    )
    .await
    .expect("TLS handshake on the inherited socket");
    assert_eq!(pushed.response.status, 200, "{}", pushed.response.text());
    let anonymous = https(address, tls, "GET", "/metrics", &[], "")
        .await
        .expect("TLS");
    assert_eq!(anonymous.response.status, 401);

    // Plain HTTP on the TLS socket gets Go's answer, as on a bound one.
    let plain = get(address, "/metrics").await;
    assert_eq!(plain.status, 400);
    assert_eq!(
        plain.text(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
}

/// Without sockets, or with sockets that cannot serve HTTP, the gateway refuses to start with
/// upstream's message and the reason, and exit status 1.
#[test]
fn refuses_to_start_without_usable_sockets() {
    let program = gateway(&["--web.systemd-socket"]);
    let program: Vec<&str> = program.iter().map(String::as_str).collect();

    let stderr = failure(
        Command::new(BINARY)
            .arg("--web.systemd-socket")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS"),
    );
    assert!(
        stderr.contains("no socket activation file descriptors found: LISTEN_PID is not set"),
        "{stderr}"
    );

    // Sockets meant for another process (the shell's parent, here) are not taken.
    let socket = listener();
    let stderr = failure(
        Command::new(BINARY)
            .arg("--web.systemd-socket")
            .env("LISTEN_PID", std::process::id().to_string())
            .env("LISTEN_FDS", "1"),
    );
    assert!(
        stderr.contains(&format!(
            "no socket activation file descriptors found: LISTEN_PID={} is not this process",
            std::process::id()
        )),
        "{stderr}"
    );

    let stderr = failure(&mut activated(&program, &[&socket], 0));
    assert!(
        stderr.contains("LISTEN_FDS=0 does not name any"),
        "{stderr}"
    );

    // One socket passed, two announced: descriptor 4 is not open, or is one the gateway opened
    // itself by then (its runtime's); either way it is refused, and never taken over.
    let stderr = failure(&mut activated(&program, &[&socket], 2));
    assert!(
        stderr.contains("socket activation file descriptor 4: Bad file descriptor")
            || stderr.contains("socket activation file descriptor 4: not a socket"),
        "{stderr}"
    );

    let datagram = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let stderr = failure(&mut activated(&program, &[&socket, &datagram], 2));
    assert!(
        stderr.contains("socket activation file descriptor 4: not a stream socket"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let unix = std::os::unix::net::UnixListener::bind(dir.path().join("socket")).unwrap();
    let stderr = failure(&mut activated(&program, &[&unix], 1));
    assert!(
        stderr.contains("socket activation file descriptor 3: not a TCP socket"),
        "{stderr}"
    );

    // What a socket unit with Accept=yes passes: a connection, not a listener.
    let connection = TcpStream::connect(addr(&socket)).unwrap();
    let stderr = failure(&mut activated(&program, &[&connection], 1));
    assert!(
        stderr.contains("socket activation file descriptor 3: not listening"),
        "{stderr}"
    );
}

/// Whether one of systemd's tools can run; if not, the caller skips what needs it, saying so.
fn installed(tool: &str) -> bool {
    let runs = Command::new(tool).arg("--version").output().is_ok();
    if !runs {
        eprintln!("skipping the {tool} checks: not installed (Debian package `systemd`)");
    }
    runs
}

/// A port that is free now, for tools that cannot bind port 0 themselves.
fn free_port() -> u16 {
    addr(&listener()).port()
}

/// systemd's own tool: it binds, waits for the first connection, then execs the gateway with
/// the socket, as a socket unit does.
#[tokio::test]
async fn systemd_socket_activate_starts_the_gateway() {
    if !installed("systemd-socket-activate") {
        return;
    }
    for attempt in 0.. {
        let port = free_port();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut command = Command::new("systemd-socket-activate");
        command
            .args(["-l", &address.to_string(), BINARY, "--web.systemd-socket"])
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS");
        let mut child = GatewayProcess::adopt(
            command
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starts"),
        );
        // The tool says where it listens, then waits for a connection before it starts us.
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().expect("piped")));
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        if !first.starts_with("Listening on ") {
            assert!(attempt < 3, "systemd-socket-activate: {first}");
            continue; // the port was taken in between
        }
        std::thread::spawn(move || for _ in lines {});
        let pushed = put(address, "/metrics/job/activate", "b 2\n").await;
        assert_eq!(pushed.status, 200, "{}", pushed.text());
        let scrape = get(address, "/metrics").await;
        assert!(
            scrape
                .text()
                .contains("b{instance=\"\",job=\"activate\"} 2"),
            "{}",
            scrape.text()
        );
        child.signal(libc::SIGTERM);
        let status = child
            .wait_for_exit(Duration::from_secs(10))
            .expect("exits after SIGTERM");
        assert!(status.success(), "{status:?}");
        return;
    }
}

/// A systemd unit file: section -> key -> values in order (keys may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(path: &Path) -> Unit {
    let text = std::fs::read_to_string(path).expect("unit file");
    let mut unit = Unit::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        unit.entry(section.clone())
            .or_default()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    unit
}

fn values<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a [String] {
    unit.get(section)
        .and_then(|s| s.get(key))
        .map_or(&[], Vec::as_slice)
}

fn value<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    match values(unit, section, key) {
        [.., last] => last,
        [] => panic!("[{section}] {key}= missing"),
    }
}

/// The example units: hardened as promised (and as `systemd-analyze` rates them), and their
/// `ExecStart=` runs: the gateway serves on the socket the socket unit describes, with TLS,
/// and persists into the state directory across a restart.
#[tokio::test]
async fn example_units_are_hardened_and_run() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd");
    let service = parse_unit(&examples.join("pushgateway.service"));
    let socket = parse_unit(&examples.join("pushgateway.socket"));

    for (key, expected) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "pushgateway"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("NoNewPrivileges", "yes"),
        ("PrivateNetwork", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("ProtectHome", "yes"),
        ("PrivateDevices", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(value(&service, "Service", key), expected, "{key}=");
    }
    assert_eq!(value(&service, "Unit", "Requires"), "pushgateway.socket");
    assert_eq!(value(&socket, "Socket", "Accept"), "no");
    let listen = values(&socket, "Socket", "ListenStream");
    assert!(!listen.is_empty(), "the socket unit listens");
    for port in listen {
        let port = port.rsplit(':').next().unwrap();
        assert!(port.parse::<u16>().is_ok(), "TCP ListenStream= {port}");
    }

    // ExecStart= as systemd runs it: %S is the state directory root, $PUSHGATEWAY_ARGS (from
    // /etc/default/pushgateway) splits into words.
    let exec = value(&service, "Service", "ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/pushgateway");
    assert!(words.contains(&"--web.systemd-socket"), "{exec}");
    let state_directory = format!("%S/{}/", value(&service, "Service", "StateDirectory"));
    assert!(
        words
            .iter()
            .any(|w| w.starts_with(&format!("--persistence.file={state_directory}"))),
        "{exec} persists into the StateDirectory="
    );

    let setup = Setup::new();
    let root = &setup.dir;
    std::fs::create_dir(root.path().join("pushgateway")).unwrap();
    let config = setup.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let args = format!("--web.config.file={config}");
    let program: Vec<String> = words
        .iter()
        .flat_map(|word| match *word {
            "/usr/local/bin/pushgateway" => vec![BINARY.to_string()],
            "$PUSHGATEWAY_ARGS" => args.split_whitespace().map(String::from).collect(),
            word => vec![word.replace("%S", &root.path().to_string_lossy())],
        })
        .collect();
    let program: Vec<&str> = program.iter().map(String::as_str).collect();

    let socket = listener();
    let address = addr(&socket);
    let tls = setup.client().config();
    let mut child = GatewayProcess::launch(&mut activated(&program, &[&socket], 1));
    let pushed = https(
        address,
        tls.clone(),
        "PUT",
        "/metrics/job/unit",
        &[],
        "u 3\n",
    )
    .await
    .expect("TLS");
    assert_eq!(pushed.response.status, 200, "{}", pushed.response.text());
    child.signal(libc::SIGTERM);
    assert!(
        child
            .wait_for_exit(Duration::from_secs(10))
            .expect("stops")
            .success()
    );
    assert!(root.path().join("pushgateway/pushgateway.data").exists());

    // Started again on the same socket (systemd keeps it open): the push is still there.
    let _child = GatewayProcess::launch(&mut activated(&program, &[&socket], 1));
    let scrape = https(address, tls, "GET", "/metrics", &[], "")
        .await
        .expect("TLS");
    assert!(
        scrape
            .response
            .text()
            .contains("u{instance=\"\",job=\"unit\"} 3"),
        "{}",
        scrape.response.text()
    );

    verify_with_systemd_analyze(&examples);
}

/// `systemd-analyze verify` (syntax, known directives, the executable exists) and its offline
/// security rating, where systemd's tools are installed.
fn verify_with_systemd_analyze(examples: &Path) {
    if !installed("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(examples.join("pushgateway.service"))
        .unwrap()
        .replace("/usr/local/bin/pushgateway", BINARY);
    std::fs::write(dir.path().join("pushgateway.service"), service).unwrap();
    std::fs::copy(
        examples.join("pushgateway.socket"),
        dir.path().join("pushgateway.socket"),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "pushgateway.socket",
            "pushgateway.service",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // Exposure on systemd's 0-10 scale, times ten: at most 1.0 ("SAFE" is below 2.0).
    let security = Command::new("systemd-analyze")
        .args([
            "security",
            "--offline=yes",
            "--threshold=10",
            "--no-pager",
            "pushgateway.service",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure above 1.0: {report}{}",
        String::from_utf8_lossy(&security.stderr)
    );
    assert!(report.contains("Overall exposure level"), "{report}");
}
