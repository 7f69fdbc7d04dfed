//! The web UI's page (`<prefix>/`, `<prefix>/status`) and its files (`<prefix>/static/...`),
//! all embedded in the binary.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::{AppState, HttpError};

/// Where the page finds its files and the API: the path of `--web.external-url` (so links work
/// behind a proxy that strips a prefix), or `.` for links relative to the page, as upstream.
#[derive(Debug, Clone)]
pub struct PageSettings {
    pub base: String,
    /// Appended to asset links so that browsers fetch new files after an upgrade.
    pub cache_buster: String,
}

pub fn page(state: &AppState) -> Response {
    let html = crate::ui::page(&state.page.base, &state.page.cache_buster);
    state.telemetry.count_request("status", "get", 200);
    let mut response = Response::new(Body::from(html));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// One embedded file; `path` is what follows `static`, leading `/` included. Answers 304 to a
/// browser that already holds the same file.
pub fn asset(state: &AppState, path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = path.strip_prefix('/').and_then(crate::ui::asset) else {
        state.telemetry.count_request("static", "get", 404);
        return HttpError::NotFound.into_response();
    };
    let etag = format!("\"{:08x}\"", crc32c::crc32c(asset.body));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(asset.body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    state
        .telemetry
        .count_request("static", "get", response.status().as_u16());
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
