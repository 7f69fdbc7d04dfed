//! Accepting connections: plain TCP, or TLS with the configuration in service when the client's
//! handshake begins (the files are looked at first, see [`crate::reload`]).
//! A plain HTTP request on a TLS listener gets a 400 answer (as Go's server gives it) instead
//! of a hanging handshake, and the client certificate of a TLS connection is handed back with
//! the connection, for every request on it. The caller says by when the handshake must be done
//! (see [`crate::connections`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::WebSecurity;
use super::identity::{CertificateIdentity, ClientCertificate};
use crate::telemetry::{self, Telemetry};

/// Go's answer to an HTTP request on an HTTPS port, byte for byte.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The client certificate of the connection a request came on, as a request extension.
#[derive(Clone, Debug, Default)]
pub struct ClientCertificateInfo(pub Option<Arc<ClientCertificate>>);

#[derive(Clone)]
pub struct Acceptor {
    security: Option<Arc<WebSecurity>>,
    telemetry: Arc<Telemetry>,
}

impl Acceptor {
    pub fn new(security: Option<Arc<WebSecurity>>, telemetry: Arc<Telemetry>) -> Self {
        Acceptor {
            security,
            telemetry,
        }
    }

    /// The connection, with TLS done if the listener speaks it; a handshake not done by
    /// `deadline` fails (and counts as a failed handshake).
    pub async fn accept(
        &self,
        stream: TcpStream,
        deadline: tokio::time::Instant,
    ) -> io::Result<(Connection, ClientCertificateInfo)> {
        // Go sets TCP_NODELAY on every connection; small answers must not wait for ACKs.
        stream.set_nodelay(true)?;
        match &self.security {
            Some(security) if security.tls_enabled() => {
                self.accept_tls(stream, security, deadline).await
            }
            _ => Ok((Connection::Plain(stream), ClientCertificateInfo::default())),
        }
    }

    async fn accept_tls(
        &self,
        stream: TcpStream,
        security: &WebSecurity,
        deadline: tokio::time::Instant,
    ) -> io::Result<(Connection, ClientCertificateInfo)> {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no data from client"))??;
        if peeked == 1 && first[0] != TLS_HANDSHAKE_RECORD {
            self.telemetry
                .increment(telemetry::TLS_HANDSHAKE_ERRORS, &[]);
            let mut stream = stream;
            let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = stream.shutdown().await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "plain HTTP request on a TLS listener",
            ));
        }
        // The configuration as the files are now, once the client has begun its handshake:
        // a certificate or CA rotated a moment ago counts for this connection.
        let Some((config, verifies_clients)) = security.tls().await else {
            // Cannot happen: a reload that switches TLS off is refused.
            return Err(io::Error::other(
                "TLS is on, but no TLS configuration is in service",
            ));
        };
        let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
        let tls = match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                self.telemetry
                    .increment(telemetry::TLS_HANDSHAKE_ERRORS, &[]);
                tracing::debug!(err = %err, "TLS handshake failed");
                return Err(err);
            }
            Err(_) => {
                self.telemetry
                    .increment(telemetry::TLS_HANDSHAKE_ERRORS, &[]);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ));
            }
        };
        let (_, session) = tls.get_ref();
        let version = session
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("unknown");
        let suite = session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown");
        let group = session
            .negotiated_key_exchange_group()
            .and_then(|g| g.name().as_str())
            .unwrap_or("none");
        self.telemetry.increment(
            telemetry::TLS_CONNECTIONS,
            &[
                ("cipher_suite", suite),
                ("group", group),
                ("version", version),
            ],
        );
        let certificate = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(CertificateIdentity::from_der)
            .map(|identity| {
                Arc::new(ClientCertificate {
                    identity,
                    verified: verifies_clients,
                })
            });
        Ok((
            Connection::Tls(Box::new(tls)),
            ClientCertificateInfo(certificate),
        ))
    }
}

/// A connection as the HTTP server sees it.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// Whether the client and the gateway agreed on HTTP/2 by ALPN: as Go's server, HTTP/2 is
    /// served only then (never in clear text, nor by prior knowledge over TLS).
    pub fn is_h2(&self) -> bool {
        match self {
            Connection::Plain(_) => false,
            Connection::Tls(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            Connection::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
