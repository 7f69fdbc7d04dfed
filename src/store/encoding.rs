//! The encoding groups keep their metrics in: each family's metrics as repeated
//! `MetricFamily.metric` fields, the bytes a scrape copies into protobuf output unchanged.

use prost::Message;

use crate::model::proto::Metric;

/// A group's buffer did not decode. The buffer is written by this process only, so this means a
/// bug, never bad input; readers skip what they cannot decode instead of failing a scrape.
#[derive(Debug, thiserror::Error)]
pub enum CorruptMetrics {
    #[error("unexpected field {0} in stored metrics")]
    UnexpectedField(u32),
    #[error("truncated stored metric")]
    Truncated,
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
}

/// Decodes a family's metrics one by one from their encoding.
pub struct MetricIter<'a> {
    rest: &'a [u8],
}

impl<'a> MetricIter<'a> {
    /// Iterates over metrics encoded as repeated `MetricFamily.metric` fields.
    pub fn over(encoded: &'a [u8]) -> Self {
        MetricIter { rest: encoded }
    }
}

impl Iterator for MetricIter<'_> {
    type Item = Result<Metric, CorruptMetrics>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = (|| {
            let (tag, _) = prost::encoding::decode_key(&mut self.rest)?;
            if tag != crate::model::proto::METRIC_FAMILY_METRIC_TAG {
                return Err(CorruptMetrics::UnexpectedField(tag));
            }
            let len = prost::encoding::decode_varint(&mut self.rest)? as usize;
            if len > self.rest.len() {
                return Err(CorruptMetrics::Truncated);
            }
            let (message, rest) = self.rest.split_at(len);
            self.rest = rest;
            Ok(Metric::decode(message)?)
        })();
        if result.is_err() {
            // The buffer is our own encoding; if it is ever damaged, stop rather than loop.
            self.rest = &[];
        }
        Some(result)
    }
}
