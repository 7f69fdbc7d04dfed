//! A NATS cluster for tests: Debian's `nats-server` (2.9), clustered on loopback ports with
//! JetStream in temporary directories, each server started, killed, stopped and continued on
//! its own. Without `nats-server` the cluster tests skip with a message, unless
//! `PUSHGATEWAY_CLUSTER_TESTS=required` (as `scripts/test` sets it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub struct NatsCluster {
    dir: tempfile::TempDir,
    servers: Vec<NatsServer>,
    /// TLS settings added to every server's configuration.
    tls: String,
    /// What a gateway needs to connect beyond `--store.nats.url` (the CA in FIPS builds).
    client_args: Vec<String>,
    /// The certificates of FIPS builds' servers, kept while the cluster runs.
    _certificates: Option<super::tls::Setup>,
}

struct NatsServer {
    config: PathBuf,
    client_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// A port for a NATS server to listen on. NATS needs a number in its configuration, so the
/// port is chosen here and bound by the server later: taken below the kernel's ephemeral range
/// (32768 and up on Linux), so that no outgoing connection can be given it in between, and
/// from a counter, so that the tests of one run never pick the same one; the process id
/// spreads runs of different test binaries apart.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 60) as u16 * 200;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 200;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl NatsCluster {
    /// Three clustered servers with JetStream, or `None` (with a message) without
    /// `nats-server`.
    /// A FIPS build connects to NATS only over TLS, so there the servers serve TLS (with a
    /// certificate from a test CA, no client certificates) and [`NatsCluster::client_args`]
    /// names the CA.
    pub fn start() -> Option<NatsCluster> {
        if !cfg!(feature = "fips") {
            return Self::start_with_tls("");
        }
        let setup = super::tls::Setup::new();
        let tls = format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
            setup.path("server.crt"),
            setup.path("server.key")
        );
        let mut cluster = Self::start_with_tls(&tls)?;
        cluster.client_args = vec![format!("--store.nats.tls.ca-file={}", setup.path("ca.crt"))];
        cluster._certificates = Some(setup);
        Some(cluster)
    }

    /// Flags a gateway needs beside `--store.nats.url` to connect to this cluster.
    pub fn client_args(&self) -> &[String] {
        &self.client_args
    }

    /// As [`NatsCluster::start`], with a `tls { ... }` block for the client port.
    pub fn start_with_tls(tls: &str) -> Option<NatsCluster> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            let message = "nats-server not found: the cluster tests need Debian's nats-server (apt-get install nats-server); scripts/test installs it";
            if std::env::var("PUSHGATEWAY_CLUSTER_TESTS").as_deref() == Ok("required") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        // A name of its own for each cluster: tests run side by side and a killed server's
        // port may be handed to another test's server, whose routes would otherwise join the
        // two clusters into one (same cluster and server names, two buckets).
        static CLUSTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "pg-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let mut servers = Vec::new();
        for (i, cluster_port) in cluster_ports.iter().enumerate() {
            let client_port = free_port();
            let monitor_port = free_port();
            let config = dir.path().join(format!("n{i}.conf"));
            let store = dir.path().join(format!("js{i}"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}-n{i}\nlisten: 127.0.0.1:{client_port}\nhttp: 127.0.0.1:{monitor_port}\n{tls}\njetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 1GB }}\ncluster {{ name: {name}, listen: 127.0.0.1:{cluster_port}, routes: [{}] }}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .expect("writes config");
            servers.push(NatsServer {
                config,
                client_port,
                monitor_port,
                child: None,
            });
        }
        let mut cluster = NatsCluster {
            dir,
            servers,
            tls: tls.to_string(),
            client_args: Vec::new(),
            _certificates: None,
        };
        for i in 0..3 {
            cluster.launch(i);
        }
        for i in 0..3 {
            cluster.wait_healthy(i);
        }
        Some(cluster)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client URLs of all servers, comma-separated (`tls://` with TLS).
    pub fn urls(&self) -> String {
        let scheme = if self.tls.is_empty() { "nats" } else { "tls" };
        self.servers
            .iter()
            .map(|s| format!("{scheme}://127.0.0.1:{}", s.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn launch(&mut self, i: usize) {
        let server = &mut self.servers[i];
        let log = std::fs::File::create(server.config.with_extension("log")).expect("log file");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&server.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        server.child = Some(child);
    }

    /// Waits until server `i` answers its health check with JetStream up.
    pub fn wait_healthy(&self, i: usize) {
        let port = self.servers[i].monitor_port;
        let started = Instant::now();
        loop {
            let healthy = super::process::http(&format!("127.0.0.1:{port}"), "GET", "/healthz", "")
                .is_some_and(|(status, _)| status == 200);
            if healthy {
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "nats-server {i} did not become healthy within 30 s; its log ends:\n{}",
                    self.log_tail(i, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of server `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let log = std::fs::read_to_string(self.servers[i].config.with_extension("log"))
            .unwrap_or_default();
        super::last_lines(&log, lines)
    }

    /// SIGKILL for server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again (after [`NatsCluster::kill`]) and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.restart_all(&[i]);
    }

    /// Starts these servers again together (a cluster that lost its quorum needs them up at
    /// once to elect leaders) and waits until they are healthy.
    pub fn restart_all(&mut self, servers: &[usize]) {
        for &i in servers {
            self.launch(i);
        }
        for &i in servers {
            self.wait_healthy(i);
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) for server `i`: a server cut off from everyone,
    /// as a network partition looks from outside.
    pub fn pause(&self, i: usize, paused: bool) {
        if let Some(child) = &self.servers[i].child {
            let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.pause(i, false);
            self.kill(i);
        }
    }
}
