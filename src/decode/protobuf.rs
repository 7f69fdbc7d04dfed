//! Delimited protobuf push bodies: varint-length-prefixed `MetricFamily` messages until the
//! end of the body.

use prost::Message;

use crate::model::proto::{MetricFamily, MetricType};

/// Why a protobuf body was refused, worded like Go's protobuf errors where they exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoParseError {
    /// The body ends inside a length prefix or a message.
    #[error("unexpected EOF")]
    UnexpectedEof,
    #[error("proto: variable length integer overflow")]
    InvalidLength,
    #[error("proto: cannot parse invalid wire-format data")]
    Invalid,
    /// Upstream stores such a family and then fails every scrape; refusing it is kinder.
    #[error("proto: metric family without a name")]
    MissingName,
    /// Likewise for a type the text format cannot show.
    #[error(
        "proto: unknown metric type {kind} for family {}",
        crate::go::quote(family)
    )]
    UnknownType { family: String, kind: i32 },
}

/// Parses a push body. A family name given twice keeps its last family, as upstream's map does;
/// families without metrics are kept (the API shows them, scrapes skip them).
pub fn parse_delimited(mut input: &[u8]) -> Result<Vec<MetricFamily>, ProtoParseError> {
    let mut families: Vec<MetricFamily> = Vec::new();
    while !input.is_empty() {
        let len = prost::encoding::decode_varint(&mut input).map_err(|_| {
            // A varint cut off by the end of the body, or one longer than a varint can be.
            let truncated = input.len() < 10 && input.iter().all(|b| b & 0x80 != 0);
            if truncated {
                ProtoParseError::UnexpectedEof
            } else {
                ProtoParseError::InvalidLength
            }
        })?;
        let len = usize::try_from(len).map_err(|_| ProtoParseError::InvalidLength)?;
        if len > input.len() {
            return Err(ProtoParseError::UnexpectedEof);
        }
        let (message, rest) = input.split_at(len);
        input = rest;
        let family = MetricFamily::decode(message).map_err(|_| ProtoParseError::Invalid)?;
        if family.name().is_empty() {
            return Err(ProtoParseError::MissingName);
        }
        if let Some(kind) = family.r#type.filter(|t| MetricType::try_from(*t).is_err()) {
            return Err(ProtoParseError::UnknownType {
                family: family.name().to_string(),
                kind,
            });
        }
        match families.iter_mut().find(|f| f.name == family.name) {
            Some(existing) => *existing = family,
            None => families.push(family),
        }
    }
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::proto::{Gauge, Metric};

    fn family(name: &str, value: f64) -> MetricFamily {
        MetricFamily {
            name: Some(name.into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![Metric {
                gauge: Some(Gauge { value: Some(value) }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn encode(families: &[MetricFamily]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in families {
            f.encode_length_delimited(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn families_and_last_duplicate_wins() {
        let body = encode(&[family("a", 1.0), family("b", 2.0), family("a", 3.0)]);
        let parsed = parse_delimited(&body).unwrap();
        assert_eq!(parsed, vec![family("a", 3.0), family("b", 2.0)]);
        assert_eq!(parse_delimited(&[]).unwrap(), vec![]);
    }

    #[test]
    fn truncation_and_garbage() {
        let body = encode(&[family("a", 1.0)]);
        for cut in 1..body.len() {
            assert_eq!(
                parse_delimited(&body[..cut]),
                Err(ProtoParseError::UnexpectedEof),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse_delimited(&[3, 0xff, 0xff, 0xff]),
            Err(ProtoParseError::Invalid)
        );
        assert_eq!(
            parse_delimited(&[0xff, 0xff]),
            Err(ProtoParseError::UnexpectedEof)
        );
        assert_eq!(
            parse_delimited(&[0xff; 11]),
            Err(ProtoParseError::InvalidLength)
        );
        // A string field that runs past the end of its message.
        assert_eq!(
            parse_delimited(&[2, 0x0a, 5]),
            Err(ProtoParseError::Invalid)
        );
        let unnamed = encode(&[MetricFamily::default()]);
        assert_eq!(parse_delimited(&unnamed), Err(ProtoParseError::MissingName));
        let mut odd_type = family("ut", 1.0);
        odd_type.r#type = Some(9);
        assert_eq!(
            parse_delimited(&encode(&[odd_type])),
            Err(ProtoParseError::UnknownType {
                family: "ut".into(),
                kind: 9
            })
        );
    }
}
