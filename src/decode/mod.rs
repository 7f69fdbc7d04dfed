//! Decoding what is pushed: push bodies in the text format 0.0.4 and as delimited protobuf,
//! into the `io.prometheus.client` model, with upstream's acceptance rules and error texts.

pub mod protobuf;
pub mod text;
