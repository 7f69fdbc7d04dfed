//! `/-/healthy`, `/-/ready` and `/-/quit`.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;

use super::AppState;
use super::error::text_response;

/// Healthy and ready mean the same, as upstream: the store answers (its lock is not stuck).
pub fn healthy(state: &AppState, handler: &'static str) -> Response {
    drop(state.store.snapshot());
    state.telemetry.count_request(handler, "get", 200);
    text_response(StatusCode::OK, "OK")
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
