//! A Prometheus Pushgateway: a drop-in replacement for the upstream Go binary.

pub mod format;
pub mod model;
