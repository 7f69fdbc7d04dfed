//! PUT, POST and DELETE under `/metrics/job/...`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};

use super::error::HttpError;
use super::grouping::grouping_key;
use super::router::Params;
use super::{AppState, body};
use crate::authz::Access;
use crate::decode::protobuf::parse_delimited;
use crate::decode::text::parse_text;
use crate::model::proto::MetricFamily;
use crate::model::{NameValidation, Timestamp};
use crate::store::{Push, PushMode, StoreError};
use crate::web_config::Identity;

/// Bodies above this size are decoded and stored on a blocking thread, so that one large push
/// does not hold up the executor that serves everybody else. Compressed bodies always are: a
/// small one may expand to `--push.max-body-size`.
const INLINE_BODY_BYTES: usize = 256 * 1024;

/// The request header that sets a group's expiry (ours; clients add it as any header).
pub const EXPIRE_AFTER: &str = "pushgateway-expire-after";

pub async fn push(
    state: Arc<AppState>,
    request: Request<Body>,
    params: Params,
    job_base64: bool,
    remote: Option<SocketAddr>,
) -> Response {
    let started = Instant::now();
    let method = if request.method() == Method::PUT {
        "put"
    } else {
        "post"
    };
    let size = approximate_request_size(&request);
    let response = match store_push(&state, request, &params, job_base64, remote).await {
        Ok(()) if state.store.checks_consistency() => StatusCode::OK.into_response(),
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(err) => err.into_response(),
    };
    state
        .telemetry
        .count_request("push", method, response.status().as_u16());
    state
        .telemetry
        .observe_push(method, started.elapsed().as_secs_f64(), size as f64);
    response
}

async fn store_push(
    state: &Arc<AppState>,
    request: Request<Body>,
    params: &Params,
    job_base64: bool,
    remote: Option<SocketAddr>,
) -> Result<(), HttpError> {
    let key = grouping_key(params, job_base64, state.options.validation).inspect_err(|err| {
        tracing::debug!(url = %params.rest, err = %err, "failed to parse URL");
    })?;
    super::authorize(state, &request, Access::Push(&key))?;
    let expire_after = expire_after(request.headers())?;
    let (holder, quota) = match &state.authz {
        Some(authz) => {
            let (holder, quota) = authz.push_quota(&super::identity_of(&request), &key);
            (Some(holder), Some(quota))
        }
        None => (None, None),
    };
    let mode = if request.method() == Method::PUT {
        PushMode::Replace
    } else {
        PushMode::Merge
    };
    let (parts, body) = request.into_parts();
    let mut reservation = state.body_budget.reservation();
    let raw = body::read(
        body,
        &parts.headers,
        state.options.max_body_bytes,
        state.options.read_body_timeout,
        &mut reservation,
    )
    .await
    .inspect_err(|err| refused_body(state, err))?;
    let time = Timestamp::now();
    let compressed = parts.headers.contains_key(http::header::CONTENT_ENCODING);
    let mut push = Push {
        key: key.clone(),
        families: Vec::new(),
        mode,
        time,
        expire_after,
        holder,
        quota,
    };
    let parse = {
        let headers = parts.headers.clone();
        let validation = state.options.validation;
        move |decoded: &Bytes| {
            parse_body(decoded, &headers, validation).inspect_err(|err| {
                tracing::debug!(source = %Source(remote), err = %err, "failed to parse push body");
            })
        }
    };
    // Parsing a body takes many times its size (about 14 times for dense series), and the
    // prepared push as much again until the store has it: bodies larger than the inline ones
    // take a turn that lasts until then, and at most --push.max-body-size of them are in turn
    // at once.
    let (prepared, _turn) = if raw.len() <= INLINE_BODY_BYTES && !compressed {
        let prepared = parse(&raw).map(|families| {
            push.families = families;
            state.store.prepare(push)
        });
        (prepared, None)
    } else {
        let failed =
            |err: tokio::task::JoinError| HttpError::Body(body::BodyError::Read(err.to_string()));
        let decoded = if compressed {
            let state = state.clone();
            let headers = parts.headers.clone();
            let (decoded, held) = tokio::task::spawn_blocking(move || {
                let decoded = body::decode(
                    raw,
                    &headers,
                    state.options.max_body_bytes,
                    &mut reservation,
                )
                .inspect_err(|err| refused_body(&state, err));
                (decoded, reservation)
            })
            .await
            .map_err(failed)?;
            reservation = held;
            decoded?
        } else {
            raw
        };
        let turn = state.body_budget.parse_turn(decoded.len()).await;
        let state = state.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let prepared = parse(&decoded).map(|families| {
                push.families = families;
                state.store.prepare(push)
            });
            drop((decoded, reservation));
            prepared
        })
        .await
        .map_err(failed)?;
        (prepared, Some(turn))
    };
    let result = match prepared {
        Ok(prepared) => match state.store.push(prepared).await {
            // With the check disabled, upstream answers before the store has looked at the
            // push, so a rejection (timestamps) is silent there too; it still shows in the
            // group's push_failure_time_seconds.
            Err(StoreError::Rejected(_)) if !state.store.checks_consistency() => Ok(()),
            result => result.map_err(HttpError::from),
        },
        Err(err) => Err(err),
    };
    result.inspect_err(|err| match err {
        HttpError::Rejected(reason) => tracing::error!(
            method = %parts.method,
            grouping_key = %key,
            source = %Source(remote),
            err = %reason,
            "pushed metrics are invalid or inconsistent with existing metrics"
        ),
        HttpError::Limit(exceeded) => {
            tracing::warn!(
                method = %parts.method,
                grouping_key = %key,
                source = %Source(remote),
                err = %exceeded,
                "push refused by a limit"
            );
            state.telemetry.increment(
                crate::telemetry::PUSH_REFUSED,
                &[("reason", exceeded.reason())],
            );
        }
        _ => {}
    })
}

/// Counts a push refused because the bodies in memory would exceed their budget.
fn refused_body(state: &AppState, err: &body::BodyError) {
    if let body::BodyError::Busy { .. } = err {
        tracing::warn!(err = %err, "push refused: too many push bodies in memory at once");
        state.telemetry.increment(
            crate::telemetry::PUSH_REFUSED,
            &[("reason", "max_buffered_size")],
        );
    }
}

/// The push's `Pushgateway-Expire-After` header, if it has one: a Go duration, `0` for never.
fn expire_after(headers: &HeaderMap) -> Result<Option<Duration>, HttpError> {
    let Some(value) = headers.get(EXPIRE_AFTER) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| HttpError::ExpireAfter {
        value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        reason: "not ASCII".into(),
    })?;
    crate::go::parse_duration(text.trim())
        .map(Some)
        .map_err(|reason| HttpError::ExpireAfter {
            value: text.to_string(),
            reason,
        })
}

pub async fn delete(
    state: Arc<AppState>,
    identity: &Identity,
    params: Params,
    job_base64: bool,
) -> Response {
    let response = match delete_group(&state, identity, &params, job_base64).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(err) => err.into_response(),
    };
    state
        .telemetry
        .count_request("delete", "delete", response.status().as_u16());
    response
}

async fn delete_group(
    state: &AppState,
    identity: &Identity,
    params: &Params,
    job_base64: bool,
) -> Result<(), HttpError> {
    let key = grouping_key(params, job_base64, state.options.validation).inspect_err(|err| {
        tracing::debug!(url = %params.rest, err = %err, "failed to parse URL");
    })?;
    if let Some(authz) = &state.authz {
        authz.check(identity, Access::Delete(&key))?;
    }
    // Upstream only queues the deletion and answers 202 at once; deleting (and persisting)
    // first keeps the same answer and spares clients the race of seeing the group after the
    // 202.
    Ok(state.store.delete(key).await?)
}

/// The client's address for log lines.
struct Source(Option<SocketAddr>);

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("unknown"),
        }
    }
}

/// Decodes a body as delimited protobuf when the `Content-Type` says so exactly, as text
/// otherwise (also when the header is missing or unparsable), as upstream does.
fn parse_body(
    body: &Bytes,
    headers: &HeaderMap,
    validation: NameValidation,
) -> Result<Vec<MetricFamily>, HttpError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if is_delimited_protobuf(content_type) {
        Ok(parse_delimited(body)?)
    } else {
        Ok(parse_text(body, validation)?)
    }
}

/// `application/vnd.google.protobuf` with `proto=io.prometheus.client.MetricFamily` and
/// `encoding=delimited`, in any order, parsed like Go's `mime.ParseMediaType` (type and
/// parameter names case-insensitive, values exact, quoted values allowed; any syntax error
/// means "not protobuf").
fn is_delimited_protobuf(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        return false;
    }
    let mut proto = None;
    let mut encoding = None;
    let mut seen: Vec<String> = Vec::new();
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let Some((name, value)) = param.split_once('=') else {
            return false;
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return false;
        }
        let value = match value.strip_prefix('"') {
            Some(quoted) => match quoted.strip_suffix('"') {
                Some(v) => v,
                None => return false,
            },
            None if !value.is_empty() && value.bytes().all(is_token_byte) => value,
            None => return false,
        };
        let name = name.to_ascii_lowercase();
        // Go refuses a media type that repeats a parameter.
        if seen.contains(&name) {
            return false;
        }
        match name.as_str() {
            "proto" => proto = Some(value),
            "encoding" => encoding = Some(value),
            _ => {}
        }
        seen.push(name);
    }
    proto == Some("io.prometheus.client.MetricFamily") && encoding == Some("delimited")
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// Upstream's `pushgateway_http_push_size_bytes` is client_golang's approximate request size:
/// URL, method, protocol, header names and values, host and the declared body length.
fn approximate_request_size(request: &Request<Body>) -> usize {
    let headers: usize = request
        .headers()
        .iter()
        .filter(|(name, _)| *name != http::header::HOST)
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let host = request
        .headers()
        .get(http::header::HOST)
        .map_or(0, |h| h.len());
    let content_length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    request.uri().to_string().len()
        + request.method().as_str().len()
        + "HTTP/1.1".len()
        + headers
        + host
        + content_length
}

#[cfg(test)]
mod tests {
    use super::is_delimited_protobuf;

    #[test]
    fn protobuf_content_type_detection() {
        for yes in [
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            "application/vnd.google.protobuf; encoding=delimited; proto=io.prometheus.client.MetricFamily",
            "Application/Vnd.Google.Protobuf;PROTO=io.prometheus.client.MetricFamily;Encoding=delimited;escaping=underscores",
            "application/vnd.google.protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=\"delimited\"",
        ] {
            assert!(is_delimited_protobuf(yes), "{yes}");
        }
        for no in [
            "",
            "text/plain; version=0.0.4",
            "application/vnd.google.protobuf; encoding=delimited",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text",
            "application/vnd.google.protobuf; proto=io.prometheus.client.metricfamily; encoding=delimited",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; broken",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; encoding=delimited",
        ] {
            assert!(!is_delimited_protobuf(no), "{no}");
        }
    }
}
