//! The real binary as a child process: started, its log read until it listens, and killed when
//! the test ends, also when it fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_pushgateway");

/// A started gateway, killed when dropped.
pub struct Running(pub Child);

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

impl Running {
    /// Spawns `command` (the binary, or a wrapper that execs it) with its log piped, and waits
    /// until it logs that it listens. Returns the address of the first listener; the rest of
    /// the log is drained in the background so that the child never blocks on a full pipe.
    pub fn start(command: &mut Command) -> (Running, String) {
        let mut child = Running(command.stderr(Stdio::piped()).spawn().expect("starts"));
        let mut lines = BufReader::new(child.0.stderr.take().expect("piped")).lines();
        let mut log = Vec::new();
        let address = loop {
            let Some(line) = lines.next() else {
                panic!("exited before listening: {}", log.join("\n"));
            };
            let line = line.expect("readable log");
            if let Some(rest) = line.split("msg=\"Listening on\" address=").nth(1) {
                break rest.split_whitespace().next().expect("address").to_string();
            }
            log.push(line);
        };
        std::thread::spawn(move || for _ in lines {});
        (child, address)
    }

    /// Sends `signal` (SIGTERM, SIGINT) to the gateway.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: sending a signal to our own child process, which has not been reaped.
        unsafe { libc::kill(self.0.id() as i32, signal) };
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.0.try_wait().expect("waits") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}
