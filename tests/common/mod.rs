//! Shared test support: a real gateway on 127.0.0.1:0 inside the test's runtime, and an HTTP
//! client that sends paths exactly as written (no normalisation), so that URL edge cases reach
//! the server untouched.

#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use pushgateway::cli::Cli;
use pushgateway::model::proto::MetricFamily;
use pushgateway::server::{Gateway, StartError};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

pub struct TestGateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// Reads a whole answer.
    pub async fn read(
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Response, hyper::Error> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A gateway set up with these flags (a listen address on 127.0.0.1:0 is added), not yet
/// serving; or why it does not start.
pub fn new_gateway(flags: &[&str]) -> Result<Gateway, StartError> {
    let mut args = vec!["pushgateway", "--web.listen-address=127.0.0.1:0"];
    args.extend_from_slice(flags);
    let cli = Cli::try_parse_from(args).expect("valid flags");
    Gateway::new(&cli)
}

impl TestGateway {
    /// Starts a gateway with these flags (the listen address is added).
    pub async fn start(flags: &[&str]) -> TestGateway {
        let gateway = new_gateway(flags).expect("gateway starts");
        let addr = gateway.local_addrs()[0];
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gateway
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
        });
        TestGateway {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends cleanly");
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Response {
        send(self.addr, method, path, headers, body.into()).await
    }

    pub async fn put(&self, path: &str, body: &str) -> Response {
        self.request("PUT", path, &[], body.to_string()).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Response {
        self.request("POST", path, &[], body.to_string()).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path, &[], Bytes::new()).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], Bytes::new()).await
    }

    /// The text exposition without the gateway's own families.
    pub async fn pushed_metrics(&self) -> String {
        let response = self.get("/metrics").await;
        assert_eq!(response.status, 200, "scrape failed: {}", response.text());
        strip_own_families(&response.text())
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Sends one request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Response {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("valid request");
    let response = sender.send_request(request).await.expect("response");
    Response::read(response).await.expect("body")
}

/// The value of one series (`name{labels}` exactly as exposed) in a text exposition.
pub fn series_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

/// An `Authorization` header value for basic auth.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A `basic_auth_users` hash of `password`: bcrypt (cost 4) as upstream's files have them, or
/// PBKDF2 in a FIPS build (which refuses bcrypt). Every hash of a scheme has the same length.
pub fn password_hash(password: &str) -> String {
    if cfg!(feature = "fips") {
        pushgateway::web_config::hash_password("pbkdf2-sha256", password).expect("hash")
    } else {
        bcrypt::hash(password, 4).expect("hash")
    }
}

/// Drops the families the gateway exposes about itself (`process_*`, `pushgateway_*`).
pub fn strip_own_families(exposition: &str) -> String {
    let mut out = String::new();
    for line in exposition.lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        if name.starts_with("process_") || name.starts_with("pushgateway_") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Replaces the values of `push_time_seconds` and `push_failure_time_seconds` that are not 0
/// by `<time>`, so that expositions can be compared exactly.
pub fn mask_times(exposition: &str) -> String {
    exposition
        .lines()
        .map(|line| {
            let is_time = line.starts_with("push_time_seconds")
                || line.starts_with("push_failure_time_seconds");
            match line.rsplit_once(' ') {
                Some((series, value)) if is_time && value != "0" => format!("{series} <time>\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect()
}

/// Encodes families as a delimited protobuf body.
pub fn protobuf_body(families: &[MetricFamily]) -> Bytes {
    use prost::Message;
    let mut out = Vec::new();
    for family in families {
        family.encode_length_delimited(&mut out).expect("encodes");
    }
    out.into()
}

/// Decodes a delimited protobuf scrape.
pub fn decode_protobuf(mut body: &[u8]) -> Vec<MetricFamily> {
    use prost::Message;
    let mut families = Vec::new();
    while !body.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut body).expect("valid protobuf"));
    }
    families
}
/// `promtool check metrics` on an exposition: it must parse (naming-convention lints, exit 3,
/// are fine).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {promtool} (install Debian's prometheus package; scripts/test does): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(1) && !report.contains("error while linting"),
        "promtool rejected the exposition: {report}\n{text}"
    );
}

/// The last `n` lines of `text`, for failure reports that quote a log.
pub fn last_lines(text: &str, n: usize) -> String {
    let tail: Vec<&str> = text.lines().rev().take(n).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Polls `done` until it holds; fails the test, naming `what`, after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The `value` sample of every group in a scrape (`value{instance="",job="<job>"} <n>`), by
/// job: the tests that push many groups push one such sample each.
pub fn job_values(scrape: &str) -> std::collections::BTreeMap<String, u64> {
    scrape
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("value{instance=\"\",job=\"")?;
            let (job, value) = rest.split_once("\"} ")?;
            Some((job.to_string(), value.parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// The acknowledged pushes (job → value) that are not `found` (as [`job_values`] reads a
/// scrape) with their value.
pub fn lost_pushes<'a>(
    acknowledged: &'a std::collections::BTreeMap<String, u64>,
    found: &std::collections::BTreeMap<String, u64>,
) -> Vec<&'a String> {
    acknowledged
        .iter()
        .filter(|(job, value)| found.get(*job) != Some(value))
        .map(|(job, _)| job)
        .collect()
}

pub mod abuse;
pub mod faults;
pub mod nats;
pub mod process;
pub mod tls;
