//! Push body parsing and scrape exposition, and the Go formatting conventions both follow.

pub mod go;
