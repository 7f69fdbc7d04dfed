//! Delimited protobuf push bodies: varint-length-prefixed `MetricFamily` messages until the
//! end of the body.

use prost::Message;

use crate::model::proto::MetricFamily;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoParseError {
    /// The body ends inside a length prefix or a message (upstream's wording).
    #[error("unexpected EOF")]
    UnexpectedEof,
    #[error("proto: {0}")]
    Invalid(String),
    /// Upstream stores such a family and then fails every scrape; refusing it is kinder.
    #[error("proto: metric family without a name")]
    MissingName,
}

/// Parses a push body. A family name given twice keeps its last family, as upstream's map does;
/// families without metrics are kept (the API shows them, scrapes skip them).
pub fn parse_delimited(mut input: &[u8]) -> Result<Vec<MetricFamily>, ProtoParseError> {
    let mut families: Vec<MetricFamily> = Vec::new();
    while !input.is_empty() {
        let len = prost::encoding::decode_varint(&mut input)
            .map_err(|_| ProtoParseError::UnexpectedEof)?;
        let len = usize::try_from(len).map_err(|_| ProtoParseError::UnexpectedEof)?;
        if len > input.len() {
            return Err(ProtoParseError::UnexpectedEof);
        }
        let (message, rest) = input.split_at(len);
        input = rest;
        let family =
            MetricFamily::decode(message).map_err(|e| ProtoParseError::Invalid(e.to_string()))?;
        if family.name().is_empty() {
            return Err(ProtoParseError::MissingName);
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
    use crate::model::proto::{Gauge, Metric, MetricType};

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
        assert!(matches!(
            parse_delimited(&[3, 0xff, 0xff, 0xff]),
            Err(ProtoParseError::Invalid(_))
        ));
        let unnamed = encode(&[MetricFamily::default()]);
        assert_eq!(parse_delimited(&unnamed), Err(ProtoParseError::MissingName));
    }
}
