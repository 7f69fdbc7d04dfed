//! `GET <telemetry path>`: everything pushed, merged with the gateway's own metrics.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body::Frame;

use super::AppState;
use super::error::HttpError;
use crate::encode::exposition::{assemble, render_pushed};
use crate::encode::negotiate::{negotiate, wants_gzip};
use crate::telemetry;

pub async fn scrape(state: Arc<AppState>, headers: HeaderMap) -> Response {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let negotiated = negotiate(header_str(header::ACCEPT));
    let gzip = wants_gzip(header_str(header::ACCEPT_ENCODING));
    let snapshot = state.store.snapshot();
    let work_state = state.clone();
    // Rendering after a change and compressing are CPU work; keep them off the executor.
    let result = tokio::task::spawn_blocking(move || {
        let state = work_state;
        let pushed = state.exposition.get_or_render(&snapshot, negotiated, || {
            state
                .store
                .exposable(&snapshot)
                .map_err(|problems| problems.to_string())?;
            Ok(Arc::new(render_pushed(
                &snapshot,
                negotiated,
                &state.own_families,
            )))
        })?;
        let totals = state.store.totals();
        state
            .telemetry
            .set(telemetry::STORE_GROUPS, &[], totals.groups as f64);
        state
            .telemetry
            .set(telemetry::STORE_SERIES, &[], totals.series as f64);
        let own = state.telemetry.collect();
        Ok(assemble(
            &pushed,
            &state.own_families,
            &own,
            negotiated,
            gzip,
        ))
    })
    .await
    .unwrap_or_else(|err| Err(err.to_string().into()));
    match result {
        Ok(pieces) => {
            let mut response = Response::new(Body::new(Pieces::new(pieces)));
            let headers = response.headers_mut();
            if let Ok(content_type) = HeaderValue::from_str(&negotiated.content_type()) {
                headers.insert(header::CONTENT_TYPE, content_type);
            }
            if gzip {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Err(reason) => {
            tracing::error!(err = %reason, "error gathering metrics");
            HttpError::Scrape(reason).into_response()
        }
    }
}

/// A body sent as the pieces it was assembled from, with its exact length announced.
struct Pieces {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl Pieces {
    fn new(pieces: Vec<Bytes>) -> Self {
        let remaining = pieces.iter().map(|p| p.len() as u64).sum();
        Pieces {
            pieces: pieces.into_iter().filter(|p| !p.is_empty()).collect(),
            remaining,
        }
    }
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.pieces.pop_front();
        if let Some(piece) = &next {
            self.remaining -= piece.len() as u64;
        }
        Poll::Ready(next.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}
