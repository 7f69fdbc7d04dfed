//! Support for the abuse tests: a probe that measures how quickly a health check and a push
//! are answered from a client of their own while an abuse runs, what the gateway process holds
//! (resident memory, descriptors, threads), a TLS gateway to abuse, and HTTP/2 frames written
//! by hand (the abuses are what no well-behaved client library sends).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::process::GatewayProcess;
use super::tls::{Ca, ClientOptions};

/// No probe may take longer than this while an abuse runs: far above what is measured (a few
/// milliseconds), so that a loaded machine does not fail the test, far below what an abuse
/// that worked would cause (a timeout or a refused connection).
pub const PROBE_BOUND: Duration = Duration::from_secs(1);

/// What one probe request may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a probe reaches the gateway.
#[derive(Clone)]
pub struct Probe {
    pub addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Latencies of the probe's health checks and pushes.
#[derive(Default, Debug)]
pub struct Latencies {
    pub health: Vec<Duration>,
    pub push: Vec<Duration>,
}

impl Probe {
    pub fn plain(addr: SocketAddr) -> Probe {
        Probe { addr, tls: None }
    }

    pub fn tls(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Probe {
        Probe {
            addr,
            tls: Some(config),
        }
    }

    /// One request on a fresh connection (as a load balancer's health check makes it): its
    /// status and how long it took, connecting included.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, Duration), String> {
        let started = Instant::now();
        let answer = tokio::time::timeout(PROBE_TIMEOUT, self.send(method, path, body)).await;
        match answer {
            Ok(Ok(status)) => Ok((status, started.elapsed())),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    }

    async fn send(&self, method: &str, path: &str, body: &str) -> Result<u16, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        match &self.tls {
            None => http1(stream, request).await,
            Some(config) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(ServerName::try_from("localhost").expect("name"), stream)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    let (mut sender, connection) = hyper::client::conn::http2::handshake(
                        TokioExecutor::new(),
                        TokioIo::new(tls),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    tokio::spawn(connection);
                    let (mut parts, body) = request.into_parts();
                    parts.uri = format!("https://localhost{}", parts.uri)
                        .parse()
                        .expect("uri");
                    parts.headers.remove("host");
                    status_of(sender.send_request(Request::from_parts(parts, body)).await).await
                } else {
                    http1(tls, request).await
                }
            }
        }
    }

    /// Alternates health checks and pushes (each to a group of its own, replaced every time)
    /// for `duration`; every one must succeed. The probe runs on a thread and runtime of its
    /// own, so that the abuse's tasks in this process cannot hold it up.
    pub async fn measure(&self, duration: Duration) -> Latencies {
        let probe = self.clone();
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(probe.measure_here(duration))
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    async fn measure_here(&self, duration: Duration) -> Latencies {
        let mut latencies = Latencies::default();
        let until = Instant::now() + duration;
        let mut n = 0;
        while Instant::now() < until {
            let (status, took) = self
                .request("GET", "/-/healthy", "")
                .await
                .unwrap_or_else(|err| panic!("health check failed while the abuse ran: {err}"));
            assert_eq!(status, 200, "health check");
            latencies.health.push(took);
            let (status, took) = self
                .request(
                    "PUT",
                    &format!("/metrics/job/probe/instance/{}", n % 4),
                    &format!("probe_value {n}\n"),
                )
                .await
                .unwrap_or_else(|err| panic!("push failed while the abuse ran: {err}"));
            assert_eq!(status, 200, "push");
            latencies.push.push(took);
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        latencies
    }

    /// The gateway's metrics (its own and what was pushed), as text.
    pub async fn metrics(&self) -> String {
        let stream = TcpStream::connect(self.addr).await.expect("connects");
        let request = Request::builder()
            .uri("/metrics")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let body = match &self.tls {
            None => fetch(stream, request).await,
            Some(config) => {
                let mut config = (**config).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(ServerName::try_from("localhost").expect("name"), stream)
                    .await
                    .expect("handshake");
                fetch(tls, request).await
            }
        };
        String::from_utf8(body.to_vec()).expect("UTF-8")
    }

    /// The value of a series in the gateway's own metrics (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        super::series_value(&self.metrics().await, series).unwrap_or(0.0)
    }
}

async fn fetch<S>(stream: S, request: Request<Full<Bytes>>) -> Bytes
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

async fn http1<S>(stream: S, request: Request<Full<Bytes>>) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    status_of(sender.send_request(request).await).await
}

/// The status of an answer, once its body is read.
async fn status_of(
    response: hyper::Result<hyper::Response<hyper::body::Incoming>>,
) -> Result<u16, String> {
    let response = response.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

impl Latencies {
    /// Prints the numbers (the published ones come from here) and asserts the bound.
    pub fn report(&self, abuse: &str) {
        assert!(
            !self.health.is_empty() && !self.push.is_empty(),
            "{abuse}: nothing measured"
        );
        let line = |what: &str, samples: &[Duration]| {
            let mut sorted = samples.to_vec();
            sorted.sort();
            let p50 = sorted[sorted.len() / 2];
            let max = *sorted.last().expect("samples");
            format!(
                "{what} p50 {:.1} ms, max {:.1} ms",
                p50.as_secs_f64() * 1000.0,
                max.as_secs_f64() * 1000.0
            )
        };
        println!(
            "ABUSE {abuse}: {}; {} ({} probes)",
            line("health", &self.health),
            line("push", &self.push),
            self.health.len()
        );
        for (what, samples) in [("health check", &self.health), ("push", &self.push)] {
            let max = samples.iter().max().expect("samples");
            assert!(
                *max < PROBE_BOUND,
                "{abuse}: a {what} took {max:?} (bound {PROBE_BOUND:?})"
            );
        }
    }
}

/// What the gateway process holds, read from /proc.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub rss_bytes: u64,
    pub fds: u64,
    pub threads: u64,
}

/// The most of `what` over `samples` samples 50 ms apart, sampled in the background.
pub fn most(pid: u32, samples: usize, what: fn(Usage) -> u64) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut most = 0;
        for _ in 0..samples {
            most = most.max(what(usage(pid)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        most
    })
}

pub fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Usage {
        rss_bytes: field("VmRSS:") * 1024,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd directory")
            .count() as u64,
        threads: field("Threads:"),
    }
}

/// A gateway that serves TLS (HTTP/2 offered by ALPN), and clients for it.
pub struct TlsGateway {
    pub process: GatewayProcess,
    pub addr: SocketAddr,
    ca: Ca,
    _dir: tempfile::TempDir,
}

impl TlsGateway {
    pub fn start(flags: &[&str]) -> TlsGateway {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = Ca::new("Abuse test CA");
        ca.server(&rcgen::PKCS_ECDSA_P256_SHA256)
            .write(dir.path(), "server");
        let web = dir.path().join("web.yml");
        std::fs::write(
            &web,
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        )
        .expect("web config");
        let mut args = vec![format!("--web.config.file={}", web.display())];
        args.extend(flags.iter().map(|f| f.to_string()));
        let process = GatewayProcess::start(&args);
        let addr = process.address.parse().expect("address");
        TlsGateway {
            process,
            addr,
            ca,
            _dir: dir,
        }
    }

    /// A client configuration offering these ALPN protocols.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut options = ClientOptions::new(&self.ca.pem);
        options.alpn = alpn.iter().map(|p| p.to_vec()).collect();
        options.config()
    }

    /// A TLS connection that negotiated HTTP/2.
    pub async fn h2_connection(
        &self,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(self.client(&[b"h2"]))
            .connect(ServerName::try_from("localhost").expect("name"), stream)
            .await?;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        Ok(tls)
    }
}

/// HTTP/2 frames, written by hand (RFC 9113; header blocks in HPACK, RFC 7541, without
/// Huffman coding or the dynamic table).
pub mod h2 {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const GOAWAY: u8 = 7;
    pub const CONTINUATION: u8 = 9;
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    /// RST_STREAM's CANCEL.
    pub const CANCEL: u32 = 0x8;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = payload.len() as u32;
        let mut out = Vec::with_capacity(9 + payload.len());
        out.extend_from_slice(&length.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The client's connection preface with empty SETTINGS, and the ACK of the server's.
    pub fn start() -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        out.extend(frame(SETTINGS, ACK, 0, &[]));
        out
    }

    fn integer(out: &mut Vec<u8>, first: u8, prefix_bits: u8, value: usize) {
        let max = (1usize << prefix_bits) - 1;
        if value < max {
            out.push(first | value as u8);
            return;
        }
        out.push(first | max as u8);
        let mut rest = value - max;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }

    fn string(out: &mut Vec<u8>, value: &[u8]) {
        integer(out, 0, 7, value.len());
        out.extend_from_slice(value);
    }

    /// A literal header field without indexing, with a new name.
    pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        out.push(0);
        string(out, name);
        string(out, value);
    }

    /// The header block of a request: `method` (`GET` or `POST`), `path`, scheme https.
    pub fn request_block(method: &str, path: &str) -> Vec<u8> {
        let mut out = vec![if method == "POST" { 0x83 } else { 0x82 }, 0x87];
        // :path, with the name from the static table (index 4).
        integer(&mut out, 0, 4, 4);
        string(&mut out, path.as_bytes());
        // :authority (index 1).
        integer(&mut out, 0, 4, 1);
        string(&mut out, b"localhost");
        out
    }

    /// A GOAWAY as the server sent it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GoAway {
        /// The last stream the server took on.
        pub last_stream: u32,
        pub code: u32,
    }

    /// Reads the server's frames until it closes the connection; its GOAWAY, if any.
    pub async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(
        mut reader: R,
    ) -> Option<GoAway> {
        use tokio::io::AsyncReadExt;
        let mut goaway = None;
        let mut head = [0u8; 9];
        loop {
            if reader.read_exact(&mut head).await.is_err() {
                return goaway;
            }
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; length];
            if reader.read_exact(&mut payload).await.is_err() {
                return goaway;
            }
            if head[3] == GOAWAY && payload.len() >= 8 {
                goaway = Some(GoAway {
                    last_stream: u32::from_be_bytes([
                        payload[0], payload[1], payload[2], payload[3],
                    ]) & 0x7fff_ffff,
                    code: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
                });
            }
        }
    }
}
