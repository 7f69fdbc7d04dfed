//! Every error answer of the HTTP interface, in one place: which status each error gets, and
//! the body and headers Go's `http.Error` would write.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::body::BodyError;
use super::grouping::UrlError;
use crate::decode::protobuf::ProtoParseError;
use crate::decode::text::TextParseError;
use crate::store::{Limit, LimitExceeded, Rejection, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Text(#[from] TextParseError),
    #[error(transparent)]
    Proto(#[from] ProtoParseError),
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Rejected(#[from] Rejection),
    /// A limit or quota would be exceeded; nothing was changed.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    #[error("invalid Pushgateway-Expire-After header {value:?}: {reason}")]
    ExpireAfter { value: String, reason: String },
    #[error("bad selector: {0}")]
    Selector(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("not ready: this replica's view has not caught up with the cluster store yet")]
    NotReady,
    /// The store's backend could not keep the change, so it is not acknowledged (the message
    /// says what happened to the change).
    #[error("{0}")]
    NotKept(Arc<str>),
    /// The store cannot be exposed (only when pushes are not checked).
    #[error("An error has occurred while serving metrics:\n\n{0}")]
    Scrape(Arc<str>),
    /// A path that is not valid percent-encoding, which Go's server refuses before routing
    /// (with its own short answer, not `http.Error`'s).
    #[error("400 Bad Request")]
    BadPath,
    #[error("404 page not found")]
    NotFound,
    #[error("Method Not Allowed")]
    MethodNotAllowed { allow: String },
    #[error(transparent)]
    Forbidden(#[from] crate::authz::Denial),
}

impl From<StoreError> for HttpError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Rejected(rejection) => HttpError::Rejected(rejection),
            StoreError::NotKept(reason) => HttpError::NotKept(reason),
            StoreError::Limit(exceeded) => HttpError::Limit(exceeded),
            err @ StoreError::TooLarge { .. } => HttpError::TooLarge(err.to_string()),
        }
    }
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Body(BodyError::TooLarge { .. }) | HttpError::TooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            HttpError::Body(BodyError::Timeout(_)) => StatusCode::REQUEST_TIMEOUT,
            HttpError::Body(BodyError::Busy { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Scrape(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::NotKept(_) | HttpError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            // 413: the push alone exceeds the per-group limit, no state of the store could take
            // it; 507: the store is full; 429: the requester's quota is used up.
            HttpError::Limit(exceeded) => match exceeded.limit {
                Limit::MaxSeriesPerGroup => StatusCode::PAYLOAD_TOO_LARGE,
                Limit::MaxGroups | Limit::MaxSeries => StatusCode::INSUFFICIENT_STORAGE,
                Limit::QuotaGroups { .. } | Limit::QuotaSeries { .. } => {
                    StatusCode::TOO_MANY_REQUESTS
                }
            },
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let HttpError::BadPath = self {
            let mut response = text_response(status, self.to_string());
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        let allow = match &self {
            HttpError::MethodNotAllowed { allow } => HeaderValue::from_str(allow).ok(),
            _ => None,
        };
        let retry = matches!(
            self,
            HttpError::NotKept(_) | HttpError::Body(BodyError::Busy { .. })
        );
        // The rest of a body that did not come in time is not waited for.
        let close = matches!(self, HttpError::Body(BodyError::Timeout(_)));
        let mut response = text_response(status, format!("{self}\n"));
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        if close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if retry {
            // The store tries to keep changes again every second; bodies in memory are parsed
            // within moments.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A plain-text answer, typed as Go's content sniffing types short texts.
pub fn text_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
