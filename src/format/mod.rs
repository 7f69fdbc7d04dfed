//! Push body parsing and scrape exposition, and the Go formatting conventions both follow.

pub mod api_json;
pub mod exposition;
pub mod go;
pub mod gzip;
pub mod json;
pub mod negotiate;
pub mod proto_parse;
pub mod proto_write;
pub mod text_parse;
pub mod text_write;
