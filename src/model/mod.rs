//! The data model: metric and label names, grouping keys, and the `io.prometheus.client` messages
//! that both push formats decode into.

mod grouping;
mod names;
pub mod proto;

pub use grouping::GroupingKey;
pub use names::{
    is_legacy_label_name, is_legacy_metric_name, unescape_value_encoding, EscapingScheme,
    HelpText, MetricName, NameValidation,
};
pub use proto::MetricType;

/// Label names with a meaning of their own.
pub mod label {
    pub const JOB: &str = "job";
    pub const INSTANCE: &str = "instance";
    pub const QUANTILE: &str = "quantile";
    pub const BUCKET: &str = "le";
    pub const METRIC_NAME: &str = "__name__";
    /// Label names with this prefix are reserved for Prometheus' internal use.
    pub const RESERVED_PREFIX: &str = "__";
}
