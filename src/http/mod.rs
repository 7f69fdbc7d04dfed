//! The HTTP interface: upstream's routes and their answers. `dispatch` routes every request;
//! each endpoint family has its own file, and every error answer is made in `error`.

mod api;
pub mod body;
mod error;
pub mod grouping;
mod lifecycle;
mod push;
pub mod router;
mod scrape;
mod ui;
mod unread_body;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, Request, StatusCode, header};

pub use api::StatusInfo;
pub use body::BodyBudget;
pub use error::HttpError;
pub use ui::PageSettings;

use crate::authz::{Access, Authorizer};
use crate::encode::api_json::MetricsCache;
use crate::encode::exposition::ExpositionCache;
use crate::model::NameValidation;
use crate::store::{OwnFamily, Store};
use crate::telemetry::Telemetry;
use crate::web_config::{Identity, WebSecurity};
use router::{Endpoint, Router, Routing};

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct Options {
    pub validation: NameValidation,
    pub max_body_bytes: u64,
    /// How long a push body may take to arrive (`--web.read-body-timeout`).
    pub read_body_timeout: std::time::Duration,
    pub enable_lifecycle: bool,
}

/// Everything a request can reach.
pub struct AppState {
    /// With `--web.authz-file`, who may do what.
    pub authz: Option<Arc<Authorizer>>,
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    pub router: Router,
    pub exposition: ExpositionCache,
    /// The gateway's own families, sorted by name.
    pub own_families: Vec<OwnFamily>,
    pub options: Options,
    /// What all push bodies in memory at once may take (`--push.max-buffered-size`).
    pub body_budget: Arc<BodyBudget>,
    /// Set to `true` to shut the gateway down gracefully (by `/-/quit`).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub status: StatusInfo,
    pub api_metrics: MetricsCache,
    pub page: PageSettings,
}

/// The service every listener serves; behind the web configuration's guard (rate limit,
/// basic auth, headers) when one is given, and with the authorization rules brought up to
/// date for each request that passed it.
pub fn service(state: Arc<AppState>, security: Option<Arc<WebSecurity>>) -> axum::Router {
    let authz = state.authz.clone();
    let router = axum::Router::new().fallback(dispatch).with_state(state);
    let router = match authz {
        Some(authz) => router.layer(axum::middleware::from_fn_with_state(authz, refresh_authz)),
        None => router,
    };
    let router = match security {
        Some(security) => router.layer(axum::middleware::from_fn_with_state(
            security,
            crate::web_config::guard,
        )),
        None => router,
    };
    router.layer(axum::middleware::from_fn(unread_body::drain_unread_body))
}

/// Brings the authorization rules up to date before the request is routed and checked.
async fn refresh_authz(
    State(authz): State<Arc<Authorizer>>,
    request: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    authz.refresh().await;
    next.run(request).await
}

async fn dispatch(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let Some(path) = decode_path(request.uri().path()) else {
        return HttpError::BadPath.into_response();
    };
    let method = request.method().clone();
    match state.router.route(&method, &path) {
        Routing::Matched(endpoint, params) => {
            if let Some(access) = endpoint_access(&endpoint)
                && let Err(denial) = authorize(&state, &request, access)
            {
                return denial.into_response();
            }
            serve(state, request, endpoint, params).await
        }
        Routing::MuxRedirect(target) => redirect(
            &method,
            StatusCode::MOVED_PERMANENTLY,
            &target,
            request.uri().query(),
        ),
        Routing::Redirect(target) => {
            let status = if method == Method::GET {
                StatusCode::MOVED_PERMANENTLY
            } else {
                StatusCode::TEMPORARY_REDIRECT
            };
            redirect(&method, status, &target, request.uri().query())
        }
        Routing::Options(allow) => {
            let mut response = StatusCode::OK.into_response();
            if let Ok(allow) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            response
        }
        Routing::MethodNotAllowed(allow) => HttpError::MethodNotAllowed { allow }.into_response(),
        Routing::NotFound => HttpError::NotFound.into_response(),
    }
}

/// Runs the handler of a matched endpoint.
async fn serve(
    state: Arc<AppState>,
    request: Request<Body>,
    endpoint: Endpoint,
    params: router::Params,
) -> Response {
    match endpoint {
        Endpoint::Push { job_base64 } => {
            let remote = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| *addr);
            push::push(state, request, params, job_base64, remote).await
        }
        Endpoint::Delete { job_base64 } => {
            let identity = identity_of(&request);
            push::delete(state, &identity, params, job_base64).await
        }
        Endpoint::Scrape => scrape::scrape(state, request.headers().clone()).await,
        Endpoint::Healthy => lifecycle::healthy(&state, "healthy"),
        Endpoint::Ready => lifecycle::ready(&state),
        Endpoint::Quit => lifecycle::quit(&state),
        Endpoint::QuitWrongMethod => lifecycle::quit_wrong_method(),
        Endpoint::Page => ui::page(&state),
        Endpoint::Static => ui::asset(&state, &params.rest, request.headers()),
        Endpoint::ApiStatus => api::status(&state),
        Endpoint::ApiMetrics => api::metrics(state).await,
        Endpoint::ApiOptions => api::options(&state),
        Endpoint::Wipe => api::wipe(state).await,
        Endpoint::DeleteGroups => {
            let identity = identity_of(&request);
            api::delete_groups(state, &identity, request.uri().query()).await
        }
    }
}

/// What the authorization rules must allow for an endpoint, before its handler runs. Pushes
/// and deletions (also in bulk) are checked by their handlers, once the grouping keys are
/// known; health checks and answers that reveal nothing are always allowed.
fn endpoint_access(endpoint: &Endpoint) -> Option<Access<'static>> {
    match endpoint {
        Endpoint::Scrape => Some(Access::Scrape),
        Endpoint::Page | Endpoint::Static | Endpoint::ApiStatus | Endpoint::ApiMetrics => {
            Some(Access::Read)
        }
        Endpoint::Wipe | Endpoint::Quit => Some(Access::Admin),
        Endpoint::Push { .. }
        | Endpoint::Delete { .. }
        | Endpoint::DeleteGroups
        | Endpoint::Healthy
        | Endpoint::Ready
        | Endpoint::QuitWrongMethod
        // CORS preflights come without credentials and reveal nothing.
        | Endpoint::ApiOptions => None,
    }
}

/// Asks the authorization rules, when there are any, whether the request may have `access`.
pub(super) fn authorize(
    state: &AppState,
    request: &Request<Body>,
    access: Access<'_>,
) -> Result<(), HttpError> {
    match &state.authz {
        Some(authz) => authz
            .check(&identity_of(request), access)
            .map_err(HttpError::from),
        None => Ok(()),
    }
}

/// Who sent the request, as the web configuration's guard found out (nobody without one).
pub(super) fn identity_of(request: &Request<Body>) -> Identity {
    request
        .extensions()
        .get::<Identity>()
        .cloned()
        .unwrap_or_default()
}

/// Percent-decodes a request path strictly: a `%` must start a two-digit hex escape (Go's
/// server refuses the request otherwise), and the result must be UTF-8. `+` stays a `+`.
pub fn decode_path(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + offset;
        let valid = bytes
            .get(at + 1..at + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
        if !valid {
            return None;
        }
        i = at + 3;
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|path| path.into_owned())
}

/// Characters Go leaves unescaped in a URL path.
const PATH_KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// A redirect as Go's `http.Redirect` makes it: a tiny HTML body for GET and HEAD, nothing for
/// other methods.
fn redirect(method: &Method, status: StatusCode, path: &str, query: Option<&str>) -> Response {
    let mut location = percent_encoding::utf8_percent_encode(path, PATH_KEEP).to_string();
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    let body = if method == Method::GET || method == Method::HEAD {
        let escaped = location
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&#34;")
            .replace('\'', "&#39;");
        let reason = status.canonical_reason().unwrap_or_default();
        format!("<a href=\"{escaped}\">{reason}</a>.\n\n")
    } else {
        String::new()
    };
    let has_body = !body.is_empty();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if has_body {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_decoding_is_strict() {
        assert_eq!(
            decode_path("/metrics/job/a%2Fb").as_deref(),
            Some("/metrics/job/a/b")
        );
        assert_eq!(decode_path("/x/%CE%A0%CF%81").as_deref(), Some("/x/Πρ"));
        assert_eq!(decode_path("/x/a+b").as_deref(), Some("/x/a+b"));
        assert_eq!(decode_path("/x/%zz"), None);
        assert_eq!(decode_path("/x/%4"), None);
        assert_eq!(decode_path("/x/%ff"), None);
    }

    #[test]
    fn redirects_like_go() {
        let get = redirect(
            &Method::GET,
            StatusCode::MOVED_PERMANENTLY,
            "/metrics",
            None,
        );
        assert_eq!(get.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(get.headers()[header::LOCATION], "/metrics");
        let put = redirect(
            &Method::PUT,
            StatusCode::TEMPORARY_REDIRECT,
            "/metrics/job/Π x",
            Some("a=1"),
        );
        assert_eq!(put.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            put.headers()[header::LOCATION],
            "/metrics/job/%CE%A0%20x?a=1"
        );
        assert!(put.headers().get(header::CONTENT_TYPE).is_none());
    }
}
