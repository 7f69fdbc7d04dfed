//! TLS for the web configuration: `tls_server_config` turned into a rustls server
//! configuration.
//!
//! - `go_names`: Go's names for versions, cipher suites and curves, and what they mean here.
//! - `server_config`: certificate and key, client CAs and policy, ALPN; the FIPS check.
//! - `verifiers`: how each client certificate policy judges what a client sends.
//!
//! Invariants: every configuration is built from [`crypto_provider`] (in a FIPS build, the
//! FIPS module's, and a configuration rustls does not call FIPS is refused); every file is read
//! through the caller's [`crate::reload::FileReads`], so that a rotated certificate, key or CA
//! is noticed; nothing here holds state between loads.

mod go_names;
mod server_config;
mod verifiers;

use rustls::crypto::CryptoProvider;

pub use go_names::check_names;
pub use server_config::{ServerIdentity, TlsPolicy, TlsState, is_enabled, server_config};

/// The cryptography every TLS configuration is built from: the FIPS module's provider in a
/// FIPS build (no ChaCha20-Poly1305, no X25519), aws-lc-rs' default provider otherwise.
pub fn crypto_provider() -> CryptoProvider {
    #[cfg(feature = "fips")]
    {
        rustls::crypto::default_fips_provider()
    }
    #[cfg(not(feature = "fips"))]
    {
        rustls::crypto::aws_lc_rs::default_provider()
    }
}
