//! API v1 under `<prefix>/api/v1/`: `status`, `metrics`, `OPTIONS` on any path (all with
//! upstream's CORS and cache headers), and the admin API's `wipe`.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use std::collections::BTreeSet;

use super::{AppState, HttpError};
use crate::authz::Access;
use crate::encode::json::Json;
use crate::model::Timestamp;
use crate::model::{Selector, SelectorError};
use crate::web_config::Identity;

/// What `/api/v1/status` reports, fixed at start-up.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    pub build_information: Vec<(&'static str, String)>,
    pub flags: Vec<(&'static str, String)>,
    pub start_time: Timestamp,
}

const CORS_HEADERS: [(&str, &str); 5] = [
    (
        "access-control-allow-headers",
        "Accept, Authorization, Content-Type, Origin",
    ),
    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", "Date"),
    ("cache-control", "no-cache, no-store, must-revalidate"),
];

pub fn status(state: &AppState) -> Response {
    let info = &state.status;
    let data = Json::object([
        (
            "build_information",
            Json::object(
                info.build_information
                    .iter()
                    .map(|(k, v)| (*k, Json::str(v))),
            ),
        ),
        (
            "flags",
            Json::object(info.flags.iter().map(|(k, v)| (*k, Json::str(v)))),
        ),
        ("start_time", Json::Str(info.start_time.rfc3339_nanos())),
    ]);
    let mut body = br#"{"status":"success","data":"#.to_vec();
    data.write(&mut body);
    body.push(b'}');
    state.telemetry.count_request("api/v1/status", "get", 200);
    json_response(body.into())
}

pub async fn metrics(state: Arc<AppState>) -> Response {
    let snapshot = state.store.snapshot();
    let body = match state.api_metrics.get(&snapshot) {
        Some(body) => body,
        None => {
            // Proportional to the store: off the executor, as a large push is.
            let cache = state.clone();
            let render = move || cache.api_metrics.render(&snapshot);
            match tokio::task::spawn_blocking(render).await {
                Ok(body) => body,
                Err(err) => {
                    tracing::error!(err = %err, "rendering the metrics API answer failed");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            }
        }
    };
    state.telemetry.count_request("api/v1/metrics", "get", 200);
    json_response(body)
}

pub fn options(state: &AppState) -> Response {
    state
        .telemetry
        .count_request("api/v1/options", "options", 200);
    with_cors(StatusCode::OK.into_response())
}

/// Deletes every group. Upstream answers 202 and queues the deletions; here they are done (and
/// persisted) first, so a client that reads after the 202 sees an empty store.
pub async fn wipe(state: Arc<AppState>) -> Response {
    tracing::debug!("start wiping metric store");
    let response = match state.store.wipe().await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(err) => HttpError::from(err).into_response(),
    };
    state
        .telemetry
        .count_request("wipe", "put", response.status().as_u16());
    response
}

/// Deletes every group the `match` selector matches, in one step, and answers with how many.
/// With an authorization file, the requester must be allowed to delete each of them (as with a
/// push-API DELETE); if one is not, nothing is deleted.
pub async fn delete_groups(
    state: Arc<AppState>,
    identity: &Identity,
    query: Option<&str>,
) -> Response {
    let result = async {
        let selector = selector_of(query)?;
        let only = match &state.authz {
            Some(authz) => {
                let snapshot = state.store.snapshot();
                let mut allowed = BTreeSet::new();
                for group in snapshot.groups().filter(|g| selector.matches(g.key())) {
                    authz.check(identity, Access::Delete(group.key()))?;
                    allowed.insert(group.key().clone());
                }
                // Groups that match but appear after this check were not allowed: they stay.
                Some(allowed)
            }
            None => None,
        };
        let deleted = state.store.delete_matching(selector.clone(), only).await?;
        tracing::info!(selector = %selector, deleted = deleted.len(), "groups deleted");
        Ok::<usize, HttpError>(deleted.len())
    }
    .await;
    let response = match result {
        Ok(deleted) => {
            let data = Json::object([("deleted", Json::Uint(deleted as u64))]);
            let mut body = br#"{"status":"success","data":"#.to_vec();
            data.write(&mut body);
            body.push(b'}');
            json_response(body.into())
        }
        Err(err) => with_cors(err.into_response()),
    };
    state
        .telemetry
        .count_request("api/v1/groups", "delete", response.status().as_u16());
    response
}

/// The selector in the `match` query parameter (given once).
fn selector_of(query: Option<&str>) -> Result<Selector, HttpError> {
    // As Go's url.ParseQuery: pairs split on `&`, `+` a space, percent-escapes decoded.
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| HttpError::Selector("the query is not valid UTF-8".into()))
    };
    let mut values = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(name)? == "match" {
            values.push(decode(value)?);
        }
    }
    let mut values = values.into_iter();
    let selector = match (values.next(), values.next()) {
        (Some(selector), None) => selector,
        (None, _) => return Err(HttpError::Selector("missing the match parameter".into())),
        (Some(_), Some(_)) => {
            return Err(HttpError::Selector("give the match parameter once".into()));
        }
    };
    selector
        .parse()
        .map_err(|err: SelectorError| HttpError::Selector(err.to_string()))
}

fn json_response(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_cors(response)
}

fn with_cors(mut response: Response) -> Response {
    for (name, value) in CORS_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}
