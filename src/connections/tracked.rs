//! What a connection's task watches: its bytes (every read and write is noted in its
//! [`Activity`]) and its requests (each one counts as in flight from the moment it is handed to
//! the application until its answer is sent, or until it is dropped unanswered).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::ServiceExt;

use super::registry::Activity;
use crate::web_config::{ClientCertificateInfo, Connection};

/// The connection's stream, noting its traffic.
pub struct TrackedIo {
    inner: Connection,
    activity: Arc<Activity>,
}

impl TrackedIo {
    pub fn new(inner: Connection, activity: Arc<Activity>) -> Self {
        TrackedIo { inner, activity }
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.io(true);
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.io(false);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.io(false);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The application as one connection serves it: every request gets the client's address and
/// certificate, and is counted in flight until it is done.
#[derive(Clone)]
pub struct TrackedService {
    pub app: axum::Router,
    pub activity: Arc<Activity>,
    pub peer: SocketAddr,
    pub certificate: ClientCertificateInfo,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: Request<Incoming>) -> ResponseFuture {
        self.activity.request_started();
        let mut in_flight = InFlight {
            activity: self.activity.clone(),
            answered: false,
        };
        request.extensions_mut().insert(ConnectInfo(self.peer));
        request.extensions_mut().insert(self.certificate.clone());
        let answer = self.app.clone().oneshot(request.map(Body::new));
        Box::pin(async move {
            let response = answer.await?;
            in_flight.answered = true;
            Ok(response.map(|body| {
                Body::new(Answer {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A request in flight; done when dropped.
struct InFlight {
    activity: Arc<Activity>,
    answered: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.request_done(self.answered);
    }
}

/// An answer's body, which keeps its request in flight until it is sent (or dropped).
struct Answer {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
