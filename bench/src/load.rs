//! The load generator: concurrent clients over HTTP/1.1 (plain or TLS), with keep-alive
//! connections or a new connection per request, bounded by a request count and/or a duration.
//!
//! Every request ends in exactly one of three ways, and they are counted apart: a 2xx answer
//! (its latency goes into the histogram), another status (counted by status code), or a
//! transport error (connect, TLS, HTTP, body or timeout; counted by kind). Nothing panics on a
//! misbehaving server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_ENCODING, HOST, HeaderValue};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where to send requests.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Option<TlsTarget>,
}

/// TLS client settings for a target.
#[derive(Clone)]
pub struct TlsTarget {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl Target {
    pub fn plain(addr: SocketAddr) -> Target {
        Target { addr, tls: None }
    }

    fn host_header(&self) -> HeaderValue {
        let host = match &self.tls {
            Some(TlsTarget {
                server_name: ServerName::DnsName(name),
                ..
            }) => format!("{}:{}", name.as_ref(), self.addr.port()),
            _ => self.addr.to_string(),
        };
        HeaderValue::from_str(&host).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
    }
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub method: Method,
    /// Path and query, e.g. `/metrics/job/x`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RequestSpec {
    pub fn get(path: impl Into<String>) -> RequestSpec {
        RequestSpec {
            method: Method::GET,
            path: path.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn put(path: impl Into<String>, body: Bytes) -> RequestSpec {
        RequestSpec {
            method: Method::PUT,
            path: path.into(),
            headers: HeaderMap::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: http::HeaderName, value: &'static str) -> RequestSpec {
        self.headers.insert(name, HeaderValue::from_static(value));
        self
    }
}

/// Makes the request for (client index, sequence number). Sequence numbers are unique across
/// the clients of one run and start at 0.
pub type RequestFn = Arc<dyn Fn(usize, u64) -> RequestSpec + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ConnMode {
    /// One connection per client, reused for all its requests.
    KeepAlive,
    /// A new connection (and TLS handshake) for every request.
    PerRequest,
}

#[derive(Clone)]
pub struct LoadSpec {
    pub target: Target,
    pub clients: usize,
    pub conn: ConnMode,
    /// Stop after this many requests (all clients together).
    pub max_requests: Option<u64>,
    /// Stop starting requests after this long.
    pub duration: Option<Duration>,
    /// A request that takes longer is abandoned and counted as a `timeout` error.
    pub timeout: Duration,
    /// The value of the `Authorization` header, if any.
    pub authorization: Option<HeaderValue>,
    /// Keep the body of the first 2xx answer (for checks).
    pub capture_first_body: bool,
    pub requests: RequestFn,
}

impl LoadSpec {
    pub fn new(target: Target, clients: usize, requests: RequestFn) -> LoadSpec {
        LoadSpec {
            target,
            clients,
            conn: ConnMode::KeepAlive,
            max_requests: None,
            duration: None,
            timeout: Duration::from_secs(120),
            authorization: None,
            capture_first_body: false,
            requests,
        }
    }
}

/// Latency statistics of the 2xx answers, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// (upper bound in ms, count) for buckets doubling from 0.016 ms; empty buckets left out.
    pub histogram: Vec<(f64, u64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TlsInfo {
    pub version: String,
    pub cipher_suite: String,
    pub kx_group: String,
}

/// What a load run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Requests that got an answer (any status).
    pub answered: u64,
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Answers with another status, by status code.
    pub non_2xx: BTreeMap<u16, u64>,
    /// Requests without an answer, by kind of failure.
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    /// 2xx answers per second.
    pub ok_per_s: f64,
    pub latency: Latency,
    /// Body bytes received with 2xx answers (as sent on the wire: compressed if gzip).
    pub ok_body_bytes: u64,
    pub connections: u64,
    pub tls: Option<TlsInfo>,
    /// `Content-Encoding` of the first 2xx answer.
    pub content_encoding: Option<String>,
    #[serde(skip)]
    pub first_body: Option<Bytes>,
}

impl LoadReport {
    /// Non-2xx answers plus transport errors.
    pub fn failures(&self) -> u64 {
        self.non_2xx.values().sum::<u64>() + self.errors.values().sum::<u64>()
    }

    pub fn mean_body_bytes(&self) -> f64 {
        if self.ok == 0 {
            0.0
        } else {
            self.ok_body_bytes as f64 / self.ok as f64
        }
    }

    /// A one-line summary.
    pub fn line(&self) -> String {
        let l = &self.latency;
        let mut s = format!(
            "{} ok in {:.2}s = {:.0}/s; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            self.ok, self.elapsed_s, self.ok_per_s, l.p50_ms, l.p99_ms, l.max_ms
        );
        if !self.non_2xx.is_empty() {
            s.push_str(&format!("; non-2xx {:?}", self.non_2xx));
        }
        if !self.errors.is_empty() {
            s.push_str(&format!("; errors {:?}", self.errors));
        }
        s
    }
}

struct Shared {
    spec: LoadSpec,
    host: HeaderValue,
    next: AtomicU64,
    deadline: Option<Instant>,
}

struct ClientStats {
    hist: Histogram<u64>,
    answered: u64,
    ok: u64,
    non_2xx: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    ok_body_bytes: u64,
    connections: u64,
    tls: Option<TlsInfo>,
    content_encoding: Option<String>,
    first_body: Option<Bytes>,
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds from 1 µs to 1 h, 3 significant digits.
    Histogram::new_with_bounds(1_000, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

impl ClientStats {
    fn new() -> ClientStats {
        ClientStats {
            hist: new_histogram(),
            answered: 0,
            ok: 0,
            non_2xx: BTreeMap::new(),
            errors: BTreeMap::new(),
            ok_body_bytes: 0,
            connections: 0,
            tls: None,
            content_encoding: None,
            first_body: None,
        }
    }

    fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
    }
}

/// Runs the load and reports. Needs a multi-threaded tokio runtime.
pub async fn run(spec: LoadSpec) -> LoadReport {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        host: spec.target.host_header(),
        deadline: spec.duration.map(|d| started + d),
        next: AtomicU64::new(0),
        spec,
    });
    let mut tasks = Vec::new();
    for idx in 0..shared.spec.clients.max(1) {
        tasks.push(tokio::spawn(client(idx, shared.clone())));
    }
    let mut total = ClientStats::new();
    for task in tasks {
        match task.await {
            Ok(stats) => merge(&mut total, stats),
            Err(_) => total.error("client task failed"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    LoadReport {
        answered: total.answered,
        ok: total.ok,
        non_2xx: total.non_2xx,
        errors: total.errors,
        elapsed_s: elapsed,
        ok_per_s: if elapsed > 0.0 {
            total.ok as f64 / elapsed
        } else {
            0.0
        },
        latency: summarize(&total.hist),
        ok_body_bytes: total.ok_body_bytes,
        connections: total.connections,
        tls: total.tls,
        content_encoding: total.content_encoding,
        first_body: total.first_body,
    }
}

fn merge(total: &mut ClientStats, stats: ClientStats) {
    if total.hist.add(&stats.hist).is_err() {
        total.error("histogram merge");
    }
    total.answered += stats.answered;
    total.ok += stats.ok;
    for (k, v) in stats.non_2xx {
        *total.non_2xx.entry(k).or_insert(0) += v;
    }
    for (k, v) in stats.errors {
        *total.errors.entry(k).or_insert(0) += v;
    }
    total.ok_body_bytes += stats.ok_body_bytes;
    total.connections += stats.connections;
    if total.tls.is_none() {
        total.tls = stats.tls;
    }
    if total.content_encoding.is_none() {
        total.content_encoding = stats.content_encoding;
    }
    if total.first_body.is_none() {
        total.first_body = stats.first_body;
    }
}

fn summarize(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut histogram = Vec::new();
    let mut upper = 16_000u64; // 16 µs
    let mut below = 0u64;
    while below < h.len() {
        let upto = h.count_between(0, upper);
        if upto > below {
            histogram.push((ms(upper), upto - below));
        }
        below = upto;
        upper = upper.saturating_mul(2);
    }
    Latency {
        count: h.len(),
        min_ms: ms(h.min()),
        mean_ms: h.mean() / 1e6,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        histogram,
    }
}

enum Failure {
    Error(&'static str),
}

async fn connect(
    target: &Target,
    stats: &mut ClientStats,
) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|_| Failure::Error("connect"))?;
    let _ = tcp.set_nodelay(true);
    let sender = match &target.tls {
        None => {
            let (sender, conn) = http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|_| Failure::Error("http handshake"))?;
            tokio::spawn(conn);
            sender
        }
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|_| Failure::Error("tls handshake"))?;
            if stats.tls.is_none() {
                let c = stream.get_ref().1;
                stats.tls = Some(TlsInfo {
                    version: c
                        .protocol_version()
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default(),
                    cipher_suite: c
                        .negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default(),
                    kx_group: c
                        .negotiated_key_exchange_group()
                        .map(|g| format!("{:?}", g.name()))
                        .unwrap_or_default(),
                });
            }
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| Failure::Error("http handshake"))?;
            tokio::spawn(conn);
            sender
        }
    };
    stats.connections += 1;
    Ok(sender)
}

async fn client(idx: usize, shared: Arc<Shared>) -> ClientStats {
    let spec = &shared.spec;
    let mut stats = ClientStats::new();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        if shared.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let seq = shared.next.fetch_add(1, Ordering::Relaxed);
        if spec.max_requests.is_some_and(|max| seq >= max) {
            break;
        }
        let req = (spec.requests)(idx, seq);
        if spec.conn == ConnMode::KeepAlive {
            if conn.as_ref().is_some_and(|c| c.is_closed()) {
                conn = None;
            }
            // With keep-alive, setting up the connection is not part of a request's latency.
            if conn.is_none() {
                match tokio::time::timeout(spec.timeout, connect(&spec.target, &mut stats)).await {
                    Ok(Ok(c)) => conn = Some(c),
                    Ok(Err(Failure::Error(kind))) => {
                        stats.error(kind);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    Err(_) => {
                        stats.error("timeout");
                        continue;
                    }
                }
            }
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            spec.timeout,
            one_request(&shared, &mut conn, &mut stats, req),
        )
        .await;
        let result = match outcome {
            Ok(r) => r,
            Err(_) => Err(Failure::Error("timeout")),
        };
        match result {
            Ok((status, bytes)) => {
                stats.answered += 1;
                if (200..300).contains(&status) {
                    stats.ok += 1;
                    stats.ok_body_bytes += bytes;
                    let ns = started.elapsed().as_nanos().min(u64::MAX as u128) as u64;
                    stats.hist.saturating_record(ns.max(1_000));
                } else {
                    *stats.non_2xx.entry(status).or_insert(0) += 1;
                }
            }
            Err(Failure::Error(kind)) => {
                stats.error(kind);
                conn = None;
                if kind == "connect" {
                    // The server may be gone: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        if spec.conn == ConnMode::PerRequest {
            conn = None;
        }
    }
    stats
}

async fn one_request(
    shared: &Shared,
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    stats: &mut ClientStats,
    req: RequestSpec,
) -> Result<(u16, u64), Failure> {
    let spec = &shared.spec;
    if conn.is_none() {
        *conn = Some(connect(&spec.target, stats).await?);
    }
    let Some(sender) = conn.as_mut() else {
        return Err(Failure::Error("connect"));
    };
    sender
        .ready()
        .await
        .map_err(|_| Failure::Error("connection closed"))?;
    let mut builder = Request::builder()
        .method(req.method)
        .uri(req.path)
        .header(HOST, shared.host.clone());
    if let Some(auth) = &spec.authorization {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    if spec.conn == ConnMode::PerRequest {
        // The server closes first, so TIME_WAIT stays on its side, not on our ports.
        builder = builder.header(CONNECTION, HeaderValue::from_static("close"));
    }
    let mut request = builder
        .body(Full::new(req.body))
        .map_err(|_| Failure::Error("bad request"))?;
    request.headers_mut().extend(req.headers);
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| Failure::Error("send"))?;
    let status = response.status().as_u16();
    let ok = (200..300).contains(&status);
    if ok && stats.content_encoding.is_none() {
        stats.content_encoding = Some(
            response
                .headers()
                .get(CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .to_string(),
        );
    }
    let capture = ok && spec.capture_first_body && stats.first_body.is_none();
    let mut kept = Vec::new();
    let mut bytes = 0u64;
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Failure::Error("body"))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            if capture {
                kept.extend_from_slice(data);
            }
        }
    }
    if capture {
        stats.first_body = Some(Bytes::from(kept));
    }
    Ok((status, bytes))
}

/// Sends one request on a new connection and returns the body of its 2xx answer; for set-up
/// and checks, not for measurement.
pub async fn fetch(
    target: &Target,
    authorization: Option<HeaderValue>,
    req: RequestSpec,
    timeout: Duration,
) -> Result<Bytes, String> {
    let request = Arc::new(req);
    let mut spec = LoadSpec::new(
        target.clone(),
        1,
        Arc::new(move |_, _| request.as_ref().clone()),
    );
    spec.authorization = authorization;
    spec.max_requests = Some(1);
    spec.timeout = timeout;
    spec.capture_first_body = true;
    let report = run(spec).await;
    if let Some((status, _)) = report.non_2xx.iter().next() {
        return Err(format!("status {status}"));
    }
    if let Some((kind, _)) = report.errors.iter().next() {
        return Err(kind.clone());
    }
    Ok(report.first_body.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    /// A loopback server that answers every request with 200 and the request body's length,
    /// except paths containing "fail", which get 400.
    async fn server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let fail = req.uri().path().contains("fail");
                        let body = req.into_body().collect().await?.to_bytes();
                        let mut response =
                            Response::new(Full::new(Bytes::from(body.len().to_string())));
                        if fail {
                            *response.status_mut() = http::StatusCode::BAD_REQUEST;
                        }
                        Ok::<_, hyper::Error>(response)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        addr
    }

    fn spec(addr: SocketAddr, conn: ConnMode, path: &'static str) -> LoadSpec {
        let mut spec = LoadSpec::new(
            Target::plain(addr),
            4,
            Arc::new(move |client, seq| {
                RequestSpec::put(
                    format!("{path}/{client}/{seq}"),
                    Bytes::from_static(b"x 1\n"),
                )
            }),
        );
        spec.conn = conn;
        spec.max_requests = Some(40);
        spec.duration = Some(Duration::from_secs(10));
        spec.timeout = Duration::from_secs(10);
        spec
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_answers_connections_and_latency() {
        let addr = server().await;
        let keep = run(spec(addr, ConnMode::KeepAlive, "/ok")).await;
        assert_eq!((keep.ok, keep.answered, keep.failures()), (40, 40, 0));
        // One connection per client at most: a client that starts late may find no request left.
        assert!((1..=4).contains(&keep.connections), "{}", keep.connections);
        assert_eq!(keep.latency.count, 40);
        assert!(keep.latency.p50_ms > 0.0 && keep.latency.p50_ms <= keep.latency.max_ms);
        assert_eq!(
            keep.ok_body_bytes, 40,
            "each answer is the body length, \"4\""
        );

        let fresh = run(spec(addr, ConnMode::PerRequest, "/ok")).await;
        assert_eq!((fresh.ok, fresh.connections), (40, 40));

        let refused = run(spec(addr, ConnMode::KeepAlive, "/fail")).await;
        assert_eq!(refused.ok, 0);
        assert_eq!(refused.non_2xx.get(&400), Some(&40));
        assert_eq!(refused.latency.count, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_port_is_counted_as_connect_errors_and_stops_by_time() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let mut spec = spec(port, ConnMode::KeepAlive, "/ok");
        spec.max_requests = None;
        spec.duration = Some(Duration::from_millis(100));
        let report = run(spec).await;
        assert_eq!(report.ok, 0);
        assert!(report.errors.get("connect").is_some_and(|n| *n > 0));
    }
}
