//! Starting, probing and stopping gateway processes.
//!
//! Every process started here is registered until it has been reaped, and is stopped on every
//! path out: [`Gateway::stop`], `Drop` (errors, panics), and the Ctrl-C/SIGTERM handler
//! ([`install_signal_handler`]). Children also get `PR_SET_PDEATHSIG = SIGKILL`, so even a
//! `kill -9` of the harness does not leave servers running. Children run in their own process
//! group, so a Ctrl-C in the terminal reaches only the harness, which then stops them itself.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static CLEANUP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ours,
    Upstream,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Upstream => "upstream",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Binary {
    pub kind: Kind,
    pub path: PathBuf,
    pub version: String,
}

impl Binary {
    pub fn new(kind: Kind, path: PathBuf) -> Result<Binary, String> {
        if !path.is_file() {
            return Err(format!(
                "{} binary not found: {}",
                kind.name(),
                path.display()
            ));
        }
        let out = Command::new(&path)
            .arg("--version")
            .output()
            .map_err(|e| format!("running {} --version: {e}", path.display()))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let version = text.lines().next().unwrap_or("").trim().to_string();
        Ok(Binary {
            kind,
            path,
            version,
        })
    }
}

/// Removes `dir` on Ctrl-C/SIGTERM too.
pub fn register_cleanup_dir(dir: &Path) {
    if let Ok(mut dirs) = CLEANUP_DIRS.lock() {
        dirs.push(dir.to_path_buf());
    }
}

fn register(pid: u32) {
    if let Ok(mut children) = CHILDREN.lock() {
        children.push(pid);
    }
}

fn unregister(pid: u32) {
    if let Ok(mut children) = CHILDREN.lock() {
        children.retain(|p| *p != pid);
    }
}

/// On SIGINT, SIGTERM or SIGHUP: stops every registered child (SIGTERM, then SIGKILL after
/// 3 s), removes the registered directories and exits with status 130.
pub fn install_signal_handler(rt: &tokio::runtime::Runtime) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let _guard = rt.enter();
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    rt.spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        eprintln!("\npgbench: interrupted; stopping the servers it started");
        tokio::task::spawn_blocking(abort_all).await.ok();
        std::process::exit(130);
    });
    Ok(())
}

fn abort_all() {
    let pids: Vec<u32> = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for pid in &pids {
        signal_pid(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left = pids;
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|pid| !reaped(*pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in &left {
        signal_pid(*pid, libc::SIGKILL);
        let mut status = 0;
        // SAFETY: waitpid on our own child's pid with a valid status pointer.
        unsafe { libc::waitpid(*pid as libc::pid_t, &mut status, 0) };
    }
    let dirs: Vec<PathBuf> = CLEANUP_DIRS.lock().map(|d| d.clone()).unwrap_or_default();
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn signal_pid(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Whether the child has exited (reaping it).
fn reaped(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on our own child's pid and a valid status pointer.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    r != 0
}

/// A free port on 127.0.0.1 (bound and released; both gateways need the port up front).
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// A running gateway.
pub struct Gateway {
    pub kind: Kind,
    pub label: String,
    pub addr: SocketAddr,
    pub log: PathBuf,
    /// Time from spawn to the first 200 of `/-/ready` (set by [`Gateway::wait_ready_plain`]).
    pub ready_after: Duration,
    child: Option<Child>,
    pid: u32,
    spawned: Instant,
}

impl Gateway {
    /// Starts `bin` listening on 127.0.0.1 with `args` (the listen address is added). Must be
    /// called from the main thread: the parent-death signal follows the thread that forks.
    pub fn spawn(
        bin: &Binary,
        label: &str,
        args: &[String],
        log_dir: &Path,
    ) -> Result<Gateway, String> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = log_dir.join(format!("{label}.log"));
        let mut all = vec![format!("--web.listen-address={addr}")];
        all.extend_from_slice(args);
        let spawned = Instant::now();
        let child = spawn_child(&bin.path, &all, &log)?;
        let pid = child.id();
        Ok(Gateway {
            kind: bin.kind,
            label: label.to_string(),
            addr,
            log,
            ready_after: Duration::ZERO,
            child: Some(child),
            pid,
            spawned,
        })
    }

    /// Waits until `GET /-/ready` over plain HTTP answers 200; returns the time from spawn.
    pub fn wait_ready_plain(&mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = self.spawned + timeout;
        loop {
            if probe_ready(self.addr, deadline) {
                self.ready_after = self.spawned.elapsed();
                return Ok(self.ready_after);
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not ready after {timeout:?}{}",
                    self.label,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_micros(250));
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): time passes for the process all at once, as
    /// for a paused virtual machine.
    pub fn pause(&self, paused: bool) {
        if self.child.is_some() {
            signal_pid(self.pid, if paused { libc::SIGSTOP } else { libc::SIGCONT });
        }
    }

    /// Time since the process was spawned.
    pub fn since_spawn(&self) -> Duration {
        self.spawned.elapsed()
    }

    pub fn check_alive(&mut self) -> Result<(), String> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            unregister(self.pid);
            self.child = None;
            return Err(format!(
                "{} exited unexpectedly ({status}){}",
                self.label,
                self.log_tail()
            ));
        }
        if self.child.is_none() {
            return Err(format!("{} is not running", self.label));
        }
        Ok(())
    }

    pub fn memory(&self) -> Result<Memory, String> {
        let path = format!("/proc/{}/status", self.pid);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Ok(Memory {
            rss_kib: field("VmRSS:").ok_or("no VmRSS")?,
            hwm_kib: field("VmHWM:").ok_or("no VmHWM")?,
        })
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> Result<Duration, String> {
        let path = format!("/proc/{}/stat", self.pid);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
        // Fields after the command name (which may hold spaces) start with field 3 (state);
        // utime and stime are fields 14 and 15.
        let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
            return Err(format!("cannot parse {path}"));
        };
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(Duration::from_secs_f64((user + system) as f64 / hz))
    }

    /// The last lines of the process's log, for error messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        format!("; log {}:\n    {tail}", self.log.display())
    }

    /// SIGTERM, then SIGKILL after `grace`; returns how long the process took to exit.
    pub fn stop(mut self, grace: Duration) -> Result<Duration, String> {
        self.stop_inner(grace)
    }

    fn stop_inner(&mut self, grace: Duration) -> Result<Duration, String> {
        let Some(mut child) = self.child.take() else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        signal_pid(self.pid, libc::SIGTERM);
        let deadline = started + grace;
        let result = loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => break Ok(started.elapsed()),
                Ok(Some(status)) => {
                    break Err(format!(
                        "{} exited with {status} when stopped{}",
                        self.label,
                        self.log_tail()
                    ));
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!(
                        "{} did not stop within {grace:?} of SIGTERM; killed",
                        self.label
                    ));
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("waiting for {}: {e}", self.label));
                }
            }
        };
        unregister(self.pid);
        result
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(e) = self.stop_inner(Duration::from_secs(60))
        {
            eprintln!("pgbench: {e}");
        }
    }
}

/// Starts `program` with `args`, its output appended to `log`, in its own process group, killed
/// when the harness dies, and registered for [`abort_all`].
fn spawn_child(program: &Path, args: &[String], log: &Path) -> Result<Child, String> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("opening {}: {e}", log.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    if let Ok(mut f) = File::options().append(true).open(log) {
        let _ = writeln!(f, "### pgbench: {} {}", program.display(), args.join(" "));
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))?;
    register(child.id());
    Ok(child)
}

/// A NATS server of the cluster scenario (Debian's `nats-server`), stopped on every path out
/// like a gateway.
pub struct NatsServer {
    pub label: String,
    /// Client port.
    pub port: u16,
    monitor: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts `nats-server -c config`; `monitor` is its HTTP monitoring address.
    pub fn spawn(
        label: &str,
        config: &Path,
        port: u16,
        monitor: SocketAddr,
        log_dir: &Path,
    ) -> Result<NatsServer, String> {
        let log = log_dir.join(format!("{label}.log"));
        let args = vec!["-c".to_string(), config.display().to_string()];
        let child = spawn_child(Path::new("nats-server"), &args, &log)?;
        Ok(NatsServer {
            label: label.to_string(),
            port,
            monitor,
            log,
            child: Some(child),
        })
    }

    /// Waits until the server reports itself healthy with JetStream up.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if http_status(self.monitor, "/healthz?js-enabled-only=true", deadline) == Some(200) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                unregister(child.id());
                self.child = None;
                return Err(format!(
                    "{} exited ({status}); see {}",
                    self.label,
                    self.log.display()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not healthy after {timeout:?}; see {}",
                    self.label,
                    self.log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_pid(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            unregister(child.id());
        }
    }
}

/// The status code of one `GET path` on a new connection.
fn http_status(addr: SocketAddr, path: &str, deadline: Instant) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(10));
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.set_nodelay(true);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 12];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

/// One `GET /-/ready` on a new connection; true on a 200 answer. The answer may wait for a
/// restore that runs after the listener is bound.
fn probe_ready(addr: SocketAddr, deadline: Instant) -> bool {
    http_status(addr, "/-/ready", deadline) == Some(200)
}
