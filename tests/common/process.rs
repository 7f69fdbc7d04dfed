//! The real binary as a child process: started on a free loopback port (or on sockets it is
//! handed), its log kept, spoken to over plain HTTP/1.1, stopped with a signal or killed, and
//! never left behind (also when a test fails).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_pushgateway");

/// A started gateway, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    /// The address of the first listener, as the gateway logged it.
    pub address: String,
    log: Arc<Mutex<String>>,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::ops::Deref for GatewayProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for GatewayProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl GatewayProcess {
    /// Starts the binary with these flags (a listen address on 127.0.0.1:0 is added) and waits
    /// until it listens; panics with its log if it exits first.
    pub fn start<S: AsRef<OsStr>>(args: &[S]) -> GatewayProcess {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> GatewayProcess {
        Self::try_start(args, env).unwrap_or_else(|log| panic!("gateway did not start: {log}"))
    }

    /// Starts the binary; its log as the error if it exits before it listens.
    pub fn try_start<S: AsRef<OsStr>>(
        args: &[S],
        env: &[(&str, &str)],
    ) -> Result<GatewayProcess, String> {
        Self::spawn(
            Command::new(BINARY)
                .arg("--web.listen-address=127.0.0.1:0")
                .args(args)
                .envs(env.iter().copied())
                .stdout(Stdio::null()),
        )
    }

    /// Spawns `command` (the binary, or a wrapper that execs it) and waits until it logs that
    /// it listens; panics with its log if it exits first.
    pub fn launch(command: &mut Command) -> GatewayProcess {
        Self::spawn(command).unwrap_or_else(|log| panic!("exited before listening: {log}"))
    }

    /// Spawns `command` with its log piped and waits until it logs that it listens. The rest
    /// of the log is collected in the background, so that the child never blocks on a full
    /// pipe.
    pub fn spawn(command: &mut Command) -> Result<GatewayProcess, String> {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let address = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    log.lock().unwrap().push_str(&format!("{line}\n"));
                    if let Some(rest) = line.split("msg=\"Listening on\" address=").nth(1) {
                        break rest.split_whitespace().next().unwrap().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(log.lock().unwrap().clone());
                }
            }
        };
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Ok(GatewayProcess {
            child,
            address,
            log,
        })
    }

    /// Takes charge of a child that is not (yet) a listening gateway (a wrapper that starts it
    /// later), so that it is killed when the test ends.
    pub fn adopt(child: Child) -> GatewayProcess {
        GatewayProcess {
            child,
            address: String::new(),
            log: Arc::default(),
        }
    }

    /// Sends `signal` (SIGTERM, SIGINT) to the gateway.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: sending a signal to our own child process, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        http(&self.address, method, path, body)
    }

    pub fn metrics(&self) -> String {
        self.request("GET", "/metrics", "").expect("scrape").1
    }
}

/// One request on a fresh connection: the status and body, `None` if the connection failed.
pub fn http(address: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((status, body))
}
