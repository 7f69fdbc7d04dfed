//! Serving connections: the accept loop of every listener, and the bounds every connection
//! lives within, so that whoever can reach the port cannot exhaust the gateway by holding
//! connections open or feeding them slowly. Upstream (Go's `http.Server` with no timeouts
//! set) has none of these; `docs/hostile-input.md` describes them for operators.
//!
//! Invariants:
//! - At most `max_connections` connections are open at once, over all listeners. A new one at
//!   the limit makes the connection idle longest (no request in flight: a keep-alive
//!   connection, a TLS handshake, a request head still coming in) close, and waits until it is
//!   gone; when every connection has a request in flight, it waits until one is done.
//! - From accept to its first request a connection has `read_header_timeout`, TLS handshake
//!   included; every later HTTP/1 request head has it from its first byte. A connection
//!   without a request in flight is closed after `idle_timeout`; one with requests in flight
//!   that neither reads nor writes a byte for `idle_timeout` is closed too (a client that
//!   stopped reading its answer).
//! - Request bodies have their own deadline where they are read (`http::body`).
//! - HTTP/1 request heads are at most `max_header_bytes` (431 beyond). HTTP/2, only over TLS
//!   by ALPN as Go's server has it: at most `http2_max_concurrent_streams` streams per
//!   connection, header blocks up to `max_header_bytes` (h2 bounds CONTINUATION frames by it),
//!   GOAWAY for a client that resets many streams before they are accepted (h2's own rapid
//!   reset defence), and a connection whose client cancels far more requests than it lets
//!   finish is closed (rapid reset of streams already being served).
//! - Shutdown closes every connection: gracefully first, then, after the grace period, at once.

mod registry;
mod tracked;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use registry::CloseReason;
use registry::{Activity, Registry, Slot};
use tracked::{TrackedIo, TrackedService};

use crate::telemetry::Telemetry;
use crate::web_config::Acceptor;

/// How long a connection closed for being idle may take to say goodbye (HTTP/2 GOAWAY).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long the accept loop pauses after an error such as running out of file descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The bounds of every connection (flags `--web.read-header-timeout`, `--web.idle-timeout`,
/// `--web.max-connections`, `--web.max-header-bytes`, `--web.http2-max-concurrent-streams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub http2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 4096,
            max_header_bytes: 64 * 1024,
            http2_max_concurrent_streams: 100,
        }
    }
}

/// Descriptors the process needs besides its connections (listeners, persistence files, the
/// runtime's own).
const DESCRIPTOR_HEADROOM: u64 = 64;

/// Raises the soft limit on open files to the hard one, as Go's runtime does at start-up (so
/// upstream has it too), and warns when it is still too low for `max_connections`.
pub fn raise_descriptor_limit(limits: &Limits) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let needed = limits.max_connections as u64 + DESCRIPTOR_HEADROOM;
    if soft < needed {
        tracing::warn!(
            open_files_limit = soft,
            max_connections = limits.max_connections,
            "the open files limit is below --web.max-connections plus {DESCRIPTOR_HEADROOM}: connections beyond it are refused by the kernel; raise the limit (LimitNOFILE=, ulimit -n) or lower --web.max-connections"
        );
    }
}

/// Every connection of every listener.
pub struct Connections {
    limits: Limits,
    registry: Arc<Registry>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Connections {
    pub fn new(limits: Limits, telemetry: Arc<Telemetry>) -> Arc<Connections> {
        let mut http1 = http1::Builder::new();
        // Our own clocks bound heads and idle time (see the module's documentation); hyper's
        // header timeout would also cut keep-alive connections after that long.
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(limits.max_header_bytes)
            // The read buffer: a head must fit, and bodies are read in pieces of this size.
            .max_buf_size(limits.max_header_bytes.max(64 * 1024));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        let (shutdown, _) = tokio::sync::watch::channel(false);
        Arc::new(Connections {
            registry: Arc::new(Registry::new(limits.max_connections, telemetry)),
            limits,
            http1,
            http2,
            shutdown,
        })
    }

    /// Serves `listener` with `app` until [`Connections::shutdown`].
    pub async fn serve(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        acceptor: Acceptor,
        app: axum::Router,
    ) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut shutdown = self.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // A connection reset before it was accepted is no news; running out of
                    // descriptors or memory is, and accepting again at once would spin.
                    if !matches!(
                        err.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tracing::warn!(err = %err, "cannot accept a connection");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            };
            let slot = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                slot = self.registry.admit() => slot,
            };
            tokio::spawn(self.clone().connection(
                stream,
                peer,
                slot,
                acceptor.clone(),
                app.clone(),
            ));
        }
    }

    /// Stops accepting, lets requests in flight finish for up to `grace`, then closes every
    /// connection.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.send_replace(true);
        if tokio::time::timeout(grace, self.registry.all_gone())
            .await
            .is_err()
        {
            self.registry.close_all();
            self.registry.all_gone().await;
        }
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.registry.len()
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Slot,
        acceptor: Acceptor,
        app: axum::Router,
    ) {
        let activity = slot.activity().clone();
        let mut shutdown = self.shutdown.subscribe();
        let handshake_deadline = activity.accepted_at() + self.limits.read_header_timeout;
        let accepted = tokio::select! {
            accepted = acceptor.accept(stream, handshake_deadline) => accepted,
            () = activity.closed() => return,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (connection, certificate) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                if err.kind() == io::ErrorKind::TimedOut {
                    self.registry.closed(CloseReason::HeaderTimeout);
                }
                return;
            }
        };
        let h2 = connection.is_h2();
        if h2 {
            activity.set_h2();
        }
        let io = TokioIo::new(TrackedIo::new(connection, activity.clone()));
        let service = TrackedService {
            app,
            activity: activity.clone(),
            peer,
            certificate,
        };
        if h2 {
            self.drive(self.http2.serve_connection(io, service), &activity)
                .await;
        } else {
            self.drive(self.http1.serve_connection(io, service), &activity)
                .await;
        }
        drop(slot);
    }

    /// Serves one connection until it ends or one of its bounds closes it.
    async fn drive<C: Served>(&self, connection: C, activity: &Activity) {
        let mut shutdown = self.shutdown.subscribe();
        tokio::pin!(connection);
        let mut graceful = false;
        let mut closing_by: Option<Instant> = None;
        loop {
            let deadline = closing_by.unwrap_or_else(|| activity.deadline(&self.limits).0);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(err = %err, "connection ended with an error");
                    }
                    return;
                }
                () = activity.closed() => {
                    if activity.too_many_cancelled() {
                        self.registry.closed(CloseReason::CancelledRequests);
                        tracing::warn!("closed a connection whose client cancelled far more requests than it let finish");
                    }
                    return;
                }
                // Recomputes the deadline.
                () = activity.changed(), if closing_by.is_none() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if closing_by.is_some() {
                        return;
                    }
                    let (deadline, reason) = activity.deadline(&self.limits);
                    if Instant::now() < deadline {
                        continue;
                    }
                    self.registry.closed(reason);
                    if reason != CloseReason::IdleTimeout {
                        return;
                    }
                    // Idle: a polite close (GOAWAY on HTTP/2), briefly waited for.
                    connection.as_mut().graceful_shutdown();
                    closing_by = Some(Instant::now() + CLOSE_GRACE);
                }
                _ = shutdown.wait_for(|stop| *stop), if !graceful => {
                    graceful = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A connection hyper serves, HTTP/1 or HTTP/2.
trait Served: Future<Output = hyper::Result<()>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

type Io = TokioIo<TrackedIo>;

impl Served for http1::Connection<Io, TrackedService> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::Connection::graceful_shutdown(self);
    }
}

impl Served for http2::Connection<Io, TrackedService, TokioExecutor> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}
