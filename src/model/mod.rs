//! The data model: metric and label names, grouping keys, and the `io.prometheus.client` messages
//! that both push formats decode into.

mod grouping;
mod names;
pub mod proto;
mod selector;
mod time;

pub use grouping::GroupingKey;
pub use names::{
    EscapingScheme, HelpText, MetricName, NameValidation, is_legacy_label_name,
    is_legacy_metric_name, unescape_value_encoding,
};
pub use proto::MetricType;
pub use selector::{Selector, SelectorError};
pub use time::Timestamp;

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
