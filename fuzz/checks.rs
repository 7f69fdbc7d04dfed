//! What each fuzz target does with its input, and what must hold for any input: a panic (an
//! assertion, an overflow, an index out of bounds) is a finding. Shared by the fuzz targets
//! (`fuzz_targets/*.rs`, one line each) and by `tests/fuzz_regressions.rs`, which replays the
//! seed corpora and every input that once found a bug as an ordinary test.

#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use prost::Message;
use pushgateway::authz::{Access, Policy, Requester};
use pushgateway::decode::protobuf::parse_delimited;
use pushgateway::decode::text::parse_text;
use pushgateway::encode::text::{write_header, write_metric};
use pushgateway::http::body::{self, BodyBudget, BodyError};
use pushgateway::http::grouping::grouping_key;
use pushgateway::http::router::{Endpoint, Router, Routing};
use pushgateway::model::proto::MetricFamily;
use pushgateway::model::{EscapingScheme, GroupingKey, NameValidation, Timestamp};
use pushgateway::persist::gob;
use pushgateway::store::codec::{self, Damage, Record, Records};
use pushgateway::store::{self, MetricIter, Push, PushMode, Store, View};
use pushgateway::telemetry::{BuildInfo, Telemetry};
use pushgateway::web_config::{CertificateIdentity, ClientCertificate, Identity, WebConfig};

/// Bodies are decompressed up to this much here (the gateway's limit is a flag).
const LIMIT: u64 = 1 << 20;

const VALIDATIONS: [NameValidation; 2] = [NameValidation::Legacy, NameValidation::Utf8];

/// A push body in the text format. Whatever parses (and the store would take) is written back
/// as the exposition writes it, and that must read back to the same families.
pub fn text(data: &[u8]) {
    for validation in VALIDATIONS {
        let Ok(families) = parse_text(data, validation) else {
            continue;
        };
        // Only what the store takes is ever exposed. (As upstream's parser, ours lets a line
        // that starts with `{` and names no metric add its labels to the metric before, and
        // leaves the refusal to the store; and a family named like another's `_sum` would
        // read back as that series.)
        if !stored(families.clone()) || !counts_exact_in_text(&families) {
            continue;
        }
        let escaping = match validation {
            NameValidation::Legacy => EscapingScheme::Underscores,
            NameValidation::Utf8 => EscapingScheme::AllowUtf8,
        };
        let written = exposition(&families, escaping);
        let again = parse_text(&written, validation).unwrap_or_else(|err| {
            panic!(
                "the exposition of what was read does not read back: {err}\n{}",
                String::from_utf8_lossy(&written)
            )
        });
        assert_eq!(
            String::from_utf8_lossy(&exposition(&again, escaping)),
            String::from_utf8_lossy(&written),
            "what was read back differs"
        );
    }
}

/// Whether every count (kept as an integer) has an exact text form: the text format writes
/// counts as floats, as Go's does, so one above 2^53 (a negative count read as Go converts it,
/// say) reads back rounded.
fn counts_exact_in_text(families: &[MetricFamily]) -> bool {
    const EXACT: u64 = 1 << 53;
    families.iter().flat_map(|f| &f.metric).all(|metric| {
        let summary = metric
            .summary
            .as_ref()
            .is_none_or(|s| s.sample_count() <= EXACT);
        let histogram = metric.histogram.as_ref().is_none_or(|h| {
            h.sample_count() <= EXACT && h.bucket.iter().all(|b| b.cumulative_count() <= EXACT)
        });
        summary && histogram
    })
}

/// Whether an empty store takes these families as a push.
fn stored(families: Vec<MetricFamily>) -> bool {
    let mut own = Telemetry::own_families();
    own.sort_by_key(|f| f.name);
    let store = Store::in_memory(Arc::new(View::new(&own, true, store::Policy::default())));
    let push = Push {
        key: GroupingKey::from_labels([("job", "fuzz")]),
        families,
        mode: PushMode::Replace,
        time: Timestamp::from_nanos(1_700_000_000_000_000_000),
        expire_after: None,
        holder: None,
        quota: None,
    };
    // The in-memory store answers at once.
    let committing = store.push(store.prepare(push));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(committing).poll(&mut context) {
        std::task::Poll::Ready(result) => result.is_ok(),
        std::task::Poll::Pending => panic!("the in-memory store did not answer at once"),
    }
}

fn exposition(families: &[MetricFamily], escaping: EscapingScheme) -> Vec<u8> {
    let mut out = Vec::new();
    for family in families {
        write_header(
            &mut out,
            family.name(),
            family.help.as_deref(),
            family.r#type(),
            escaping,
        );
        for metric in &family.metric {
            write_metric(&mut out, family.name(), family.r#type(), metric, escaping);
        }
    }
    out
}

/// A push body of length-delimited protobuf `MetricFamily` messages. What parses is encoded
/// again, and that must parse to the same encoding.
pub fn protobuf(data: &[u8]) {
    let Ok(families) = parse_delimited(data) else {
        return;
    };
    let encoded = delimited(&families);
    let again = parse_delimited(&encoded).expect("our own encoding parses");
    assert_eq!(delimited(&again), encoded);
}

fn delimited(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for family in families {
        family
            .encode_length_delimited(&mut out)
            .expect("a Vec grows");
    }
    out
}

/// A request path, as PUT and DELETE route it: percent-decoding, routing, and the grouping key
/// grammar (`@base64`, `U__` label names). A key that comes out has a job and survives the
/// store's encoding.
pub fn url(data: &[u8]) {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    let router = ROUTER.get_or_init(|| Router::new("", "/metrics", true));
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Some(path) = pushgateway::http::decode_path(path) else {
        return;
    };
    for method in [Method::PUT, Method::DELETE] {
        let Routing::Matched(
            Endpoint::Push { job_base64 } | Endpoint::Delete { job_base64 },
            params,
        ) = router.route(&method, &path)
        else {
            continue;
        };
        for validation in VALIDATIONS {
            if let Ok(key) = grouping_key(&params, job_base64, validation) {
                assert!(!key.job().is_empty(), "a key without a job: {key}");
                assert_eq!(
                    GroupingKey::from_encoded(key.as_bytes()).as_ref(),
                    Some(&key)
                );
            }
        }
    }
}

fn budget() -> &'static Arc<BodyBudget> {
    static BUDGET: OnceLock<Arc<BodyBudget>> = OnceLock::new();
    BUDGET.get_or_init(|| {
        BodyBudget::new(
            4 * LIMIT,
            LIMIT,
            Arc::new(Telemetry::new(BuildInfo::current())),
        )
    })
}

fn decompress(data: &[u8], encoding: &'static str) {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding),
    );
    let mut reservation = budget().reservation();
    match body::decode(
        Bytes::copy_from_slice(data),
        &headers,
        LIMIT,
        &mut reservation,
    ) {
        Ok(decoded) => assert!(decoded.len() as u64 <= LIMIT),
        Err(BodyError::Busy { .. }) => panic!("one body alone exceeded the budget"),
        Err(_) => {}
    }
}

/// A gzip-compressed push body (several members, a lying trailer, a bomb...).
pub fn gzip(data: &[u8]) {
    decompress(data, "gzip");
}

/// A push body in snappy's framing format.
pub fn snappy(data: &[u8]) {
    decompress(data, "snappy");
}

/// Upstream's persistence file (Go's gob encoding), as an import reads it.
pub fn gob(data: &[u8]) {
    if gob::looks_like_upstream(data) {
        let _ = gob::read_upstream(data);
    }
    let _ = gob::read_upstream(data);
}

/// Our snapshot and log segment files, as recovery reads them: the header, then the records as
/// far as they are intact, and the metrics in every group. The input is also read as the body
/// of one record whose checksum matched (which no torn write makes, but a bug or a file from
/// elsewhere could), so that the fuzzer does not have to find checksums to reach the decoder.
pub fn persisted(data: &[u8]) {
    let file = Bytes::copy_from_slice(data);
    let _ = codec::read_header(&file, codec::SNAPSHOT_MAGIC);
    let _ = codec::read_header(&file, codec::LOG_MAGIC);
    Records::shared(&file).for_each(visit);
    let mut framed = codec::header(codec::LOG_MAGIC, 1);
    framed.extend_from_slice(&(data.len() as u32).to_le_bytes());
    framed.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    framed.extend_from_slice(data);
    let framed = Bytes::from(framed);
    Records::shared(&framed).for_each(visit);
}

fn visit(record: Result<Record, Damage>) {
    match record {
        Ok(Record::Group { families, .. }) => {
            for family in families {
                MetricIter::over(&family.metrics).for_each(drop);
            }
        }
        Ok(Record::Batch(records)) => records.into_iter().map(Ok).for_each(visit),
        _ => {}
    }
}

/// The text of a `--web.config.file` (the files it names are not read).
pub fn web_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = WebConfig::check_text(text);
    }
}

/// The text of a `--web.authz-file`. What parses is asked about a requester with long names,
/// so that a pattern that matches slowly shows as a timeout.
pub fn authz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    let long = "a".repeat(200);
    let identity = Identity {
        client_certificate: Some(Arc::new(ClientCertificate {
            identity: CertificateIdentity {
                subject_common_name: Some(long.clone()),
                dns_names: vec![format!("{long}.example"), "a".into()],
                uris: vec![format!("spiffe://{long}")],
                ..Default::default()
            },
            verified: true,
        })),
        user: Some(long.clone()),
    };
    let requester = Requester::of(&identity);
    let key = GroupingKey::from_labels([("job", long.as_str()), ("instance", "a")]);
    for access in [
        Access::Push(&key),
        Access::Delete(&key),
        Access::Scrape,
        Access::Read,
        Access::Admin,
    ] {
        let _ = policy.decide(&requester, access);
    }
    let _ = policy.quota(&requester, &key);
    let _ = policy.certificate_rule();
}
