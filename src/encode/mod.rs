//! Encoding what is scraped: content negotiation, the text format and protobuf exposition (with
//! gzip made of precompressed pieces), and upstream's JSON API document, each with the cache
//! that spares re-rendering an unchanged store.

pub mod api_json;
pub mod exposition;
pub mod gzip;
pub mod json;
pub mod negotiate;
pub mod protobuf;
pub mod text;
