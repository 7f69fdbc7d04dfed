//! `/-/healthy`, `/-/ready` and `/-/quit`.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;

use axum::response::IntoResponse;

use super::AppState;
use super::error::{HttpError, text_response};

/// `/-/healthy`: the store answers (its lock is not stuck). As upstream, `/-/ready` means the
/// same with a local store.
pub fn healthy(state: &AppState, handler: &'static str) -> Response {
    drop(state.store.snapshot());
    state.telemetry.count_request(handler, "get", 200);
    text_response(StatusCode::OK, "OK")
}

/// `/-/ready`: as `/-/healthy`, except while the store is not ready (a replica whose view has
/// not caught up with the cluster store yet): then 503.
pub fn ready(state: &AppState) -> Response {
    if state.store.ready() {
        return healthy(state, "ready");
    }
    state.telemetry.count_request("ready", "get", 503);
    HttpError::NotReady.into_response()
}

/// With `--web.enable-lifecycle`, answers and then starts the same graceful shutdown as
/// SIGTERM; without it, 403. Upstream's texts, without a final newline.
pub fn quit(state: &Arc<AppState>) -> Response {
    if !state.options.enable_lifecycle {
        return text_response(StatusCode::FORBIDDEN, "Lifecycle API is not enabled.");
    }
    tracing::warn!("received termination request via web service, exiting gracefully...");
    state.shutdown.send_replace(true);
    text_response(StatusCode::OK, "Requesting termination... Goodbye!")
}

/// `GET /-/quit`, which upstream answers itself, without an `Allow` header.
pub fn quit_wrong_method() -> Response {
    text_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "Only POST or PUT requests allowed.",
    )
}
