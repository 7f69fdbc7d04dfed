//! The request guard: HTTP middleware every route runs behind when a web configuration is
//! given. In order: the rate limit (429), the client certificate the handshake could not demand
//! (403), basic auth (401); then the configured headers go on the answer. Each request is
//! judged by the configuration in service when it arrives (see [`crate::reload`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, Request, StatusCode, header};

use super::WebSecurity;
use super::acceptor::ClientCertificateInfo;
use super::auth;
use super::identity::Identity;
use crate::telemetry;

/// The configured headers go on every answer that passed the rate limit, 401s included. The
/// request's `Identity` is attached for the handlers. Open paths skip authentication; when the
/// handshake could not demand a client certificate because of them, every other request
/// without one is refused here (403).
pub async fn guard(
    State(security): State<Arc<WebSecurity>>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(limiter) = &security.limiter {
        let allowed = limiter.lock().unwrap_or_else(|p| p.into_inner()).try_take();
        if !allowed {
            security
                .telemetry
                .increment(telemetry::HTTP_REJECTED, &[("reason", "rate_limited")]);
            return plain_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        }
    }
    // The guard uses only what the file itself says (users, headers, whether a certificate is
    // required), so it looks at that file alone; the certificate, key and CA files count for
    // handshakes, where the acceptor looks at every file.
    let config = security.config.current_own().await;
    let client_certificate = request
        .extensions()
        .get::<ClientCertificateInfo>()
        .and_then(|info| info.0.clone());
    let open = (request.method() == http::Method::GET || request.method() == http::Method::HEAD)
        && security
            .open_paths
            .iter()
            .any(|p| p == request.uri().path());
    let certificate_missing = !open
        && client_certificate.is_none()
        && !security.open_paths.is_empty()
        && config.tls.as_ref().is_some_and(|t| t.certificate_required);
    let mut identity = Identity {
        client_certificate,
        user: None,
    };
    let mut response = if certificate_missing {
        security.telemetry.increment(
            telemetry::HTTP_REJECTED,
            &[("reason", "client_certificate_required")],
        );
        plain_error(StatusCode::FORBIDDEN, "client certificate required\n")
    } else if open || config.users.is_empty() {
        request.extensions_mut().insert(identity);
        next.run(request).await
    } else {
        let credentials = auth::basic_credentials(request.headers());
        let authenticated = match &credentials {
            Some((user, password)) => {
                security
                    .authenticator
                    .check(&config.users, user, password)
                    .await
            }
            None => false,
        };
        if authenticated {
            identity.user = credentials.map(|(user, _)| user);
            request.extensions_mut().insert(identity);
            next.run(request).await
        } else {
            security
                .telemetry
                .increment(telemetry::HTTP_REJECTED, &[("reason", "unauthorized")]);
            let mut response = plain_error(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            response
        }
    };
    for (name, value) in &config.headers {
        response
            .headers_mut()
            .entry(name)
            .or_insert_with(|| value.clone());
    }
    response
}

fn plain_error(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A global token bucket: `burst` tokens, one more every `interval`. With `burst` 0 nothing
/// passes, as upstream's limiter does.
pub(super) struct TokenBucket {
    interval: Duration,
    burst: u32,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(super) fn new(interval: Duration, burst: u32) -> Self {
        TokenBucket {
            interval,
            burst,
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() / self.interval.as_secs_f64();
        self.tokens = (self.tokens + refill).min(f64::from(self.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket() {
        let mut blocked = TokenBucket::new(Duration::from_secs(1), 0);
        assert!(!blocked.try_take());
        let mut bucket = TokenBucket::new(Duration::from_secs(3600), 2);
        assert!(bucket.try_take());
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
    }
}
