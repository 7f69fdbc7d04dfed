//! Answers sent before the request body was read, on HTTP/2. Such an answer (a 401, or a 400
//! for a bad URL) is followed by a reset of the stream, which the protocol allows; but a client
//! still uploading then often loses the answer too (curl 7.88 reports "Stream error in the HTTP/2
//! framing layer" instead of the 401). So the rest of the body, up to a bound, is read and
//! dropped before such an answer goes out. HTTP/1.1 needs none of this: hyper reads or closes.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{Request, Version};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// At most this much of an unread body is waited for; a client that sends more gets its
/// answer with the reset, as from Go's server.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);

type Slot = Arc<Mutex<Option<Body>>>;

/// The request body, handed back to the middleware when the handler drops it.
struct ReturnedOnDrop {
    inner: Option<Body>,
    slot: Slot,
}

impl http_body::Body for ReturnedOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint)
    }
}

impl Drop for ReturnedOnDrop {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !http_body::Body::is_end_stream(&inner)
        {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(inner);
        }
    }
}

/// The middleware: on HTTP/2 requests that still have a body coming, reads what the handler
/// left unread (bounded in size and time) before the answer is sent.
pub async fn drain_unread_body(request: Request<Body>, next: Next) -> Response {
    if request.version() != Version::HTTP_2 || http_body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let slot: Slot = Arc::default();
    let (parts, body) = request.into_parts();
    let body = Body::new(ReturnedOnDrop {
        inner: Some(body),
        slot: slot.clone(),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    let unread = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(unread) = unread {
        let limited = http_body_util::Limited::new(unread, DRAIN_BYTES);
        let _ = tokio::time::timeout(DRAIN_TIME, limited.collect()).await;
    }
    response
}
