//! The delimited protobuf exposition: one length-prefixed `MetricFamily` message per family,
//! assembled from the stored metric encodings without decoding them.

use crate::model::proto::{LabelPair, METRIC_FAMILY_METRIC_TAG, Metric, MetricType};
use crate::model::{EscapingScheme, is_legacy_metric_name};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// Writes the length prefix and header fields of a family whose metric fields, `metrics_len`
/// bytes of them, the caller appends next. Splitting it this way lets stored encodings be sent
/// as they are, without copying them into the message.
pub fn write_family_header(
    out: &mut Vec<u8>,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
    metrics_len: usize,
) {
    let header_len = string_field_len(1, name)
        + help.map_or(0, |h| string_field_len(2, h))
        + 1
        + encoded_len_varint(kind as u64);
    encode_varint((header_len + metrics_len) as u64, out);
    write_string_field(out, 1, name);
    if let Some(help) = help {
        write_string_field(out, 2, help);
    }
    encode_key(3, WireType::Varint, out);
    encode_varint(kind as u64, out);
}

/// Encodes metrics as `MetricFamily.metric` fields, escaping label names that are not
/// legacy-valid unless the scraper allows UTF-8.
pub fn encode_metrics<'a>(
    out: &mut Vec<u8>,
    metrics: impl Iterator<Item = &'a Metric>,
    escaping: EscapingScheme,
) {
    for metric in metrics {
        let needs_escaping = escaping != EscapingScheme::AllowUtf8
            && metric
                .label
                .iter()
                .any(|l| !is_legacy_metric_name(l.name()));
        if needs_escaping {
            let mut escaped = metric.clone();
            for pair in &mut escaped.label {
                *pair = LabelPair::new(escaping.escape_label(pair.name()), pair.value());
            }
            prost::encoding::message::encode(METRIC_FAMILY_METRIC_TAG, &escaped, out);
        } else {
            prost::encoding::message::encode(METRIC_FAMILY_METRIC_TAG, metric, out);
        }
    }
}

fn string_field_len(tag: u32, value: &str) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(value.len() as u64) + value.len()
}

fn write_string_field(out: &mut Vec<u8>, tag: u32, value: &str) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{Counter, MetricFamily};
    use prost::Message;

    #[test]
    fn assembled_family_decodes_as_one_message() {
        let metric = Metric {
            label: vec![LabelPair::new("job", "a")],
            counter: Some(Counter {
                value: Some(3.0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut chunk = Vec::new();
        encode_metrics(
            &mut chunk,
            [&metric, &metric].into_iter(),
            EscapingScheme::Underscores,
        );
        let mut out = Vec::new();
        write_family_header(
            &mut out,
            "c_total",
            Some("help"),
            MetricType::Counter,
            chunk.len(),
        );
        out.extend_from_slice(&chunk);
        write_family_header(&mut out, "d", None, MetricType::Gauge, 0);
        let mut input = out.as_slice();
        let first = MetricFamily::decode_length_delimited(&mut input).unwrap();
        assert_eq!(
            first,
            MetricFamily {
                name: Some("c_total".into()),
                help: Some("help".into()),
                r#type: Some(MetricType::Counter as i32),
                metric: vec![metric.clone(), metric],
                unit: None,
            }
        );
        let second = MetricFamily::decode_length_delimited(&mut input).unwrap();
        assert_eq!(second.name(), "d");
        assert_eq!(second.help, None);
        assert!(input.is_empty());
    }
}
