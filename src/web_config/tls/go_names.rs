//! Go's names for TLS versions, cipher suites and curves, and what they mean with rustls.
//!
//! Go offers things rustls does not (TLS 1.0 and 1.1, CBC and RSA key exchange suites, P-521).
//! Such names are accepted with a warning and left out; when nothing usable remains, the
//! configuration is refused with a message that says so. Names Go does not know are refused
//! with Go's messages, and a FIPS build refuses names of algorithms outside FIPS 140.

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::crypto_provider;
use crate::web_config::errors::WebConfigError;
use crate::web_config::file::TlsServerConfig;

/// Names that name algorithms outside FIPS 140; a FIPS build refuses them.
const NOT_FIPS_APPROVED: &[&str] = &[
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "X25519",
];

/// What a cipher suite name of Go's means here.
enum Suite {
    /// A TLS 1.2 suite rustls offers.
    Tls12(SupportedCipherSuite),
    /// A TLS 1.3 suite: Go accepts the names but never lets them restrict anything.
    Tls13,
    /// Known to Go, not offered by rustls.
    Unavailable(&'static str),
}

fn suite_by_go_name(name: &str, provider: &CryptoProvider) -> Option<Suite> {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let rustls_suite = match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Some(Suite::Tls13);
        }
        "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384" => {
            return Some(Suite::Unavailable("RSA key exchange is not offered"));
        }
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => {
            return Some(Suite::Unavailable("CBC suites are not offered"));
        }
        _ => return None,
    };
    // A suite the provider leaves out (ChaCha20 in a FIPS build) is unavailable, not unknown.
    if provider
        .cipher_suites
        .iter()
        .any(|s| s.suite() == rustls_suite.suite())
    {
        Some(Suite::Tls12(rustls_suite))
    } else {
        Some(Suite::Unavailable(
            "not offered by this build's cryptographic module",
        ))
    }
}

/// Go's curve names; `None` for a name Go does not know.
fn group_by_go_name(name: &str) -> Option<Result<&'static dyn SupportedKxGroup, &'static str>> {
    use rustls::crypto::aws_lc_rs::kx_group;
    match name {
        "CurveP256" => Some(Ok(kx_group::SECP256R1)),
        "CurveP384" => Some(Ok(kx_group::SECP384R1)),
        "X25519" => Some(Ok(kx_group::X25519)),
        "CurveP521" => Some(Err("P-521 is not offered")),
        _ => None,
    }
}

/// Go's TLS version names, as a number for ordering.
fn version_by_go_name(name: &str) -> Option<u8> {
    match name {
        "TLS10" => Some(10),
        "TLS11" => Some(11),
        "TLS12" => Some(12),
        "TLS13" => Some(13),
        _ => None,
    }
}

/// Checks the names that Go checks while reading the file (versions, suites, curves), with its
/// messages, so that such errors come first as they do upstream.
pub fn check_names(tls: &TlsServerConfig) -> Result<(), WebConfigError> {
    for version in [&tls.min_version, &tls.max_version].into_iter().flatten() {
        if version_by_go_name(version).is_none() {
            return Err(WebConfigError::UnknownTlsVersion(version.clone()));
        }
    }
    let provider = crypto_provider();
    for suite in tls.cipher_suites.iter().flatten() {
        if suite_by_go_name(suite, &provider).is_none() {
            return Err(WebConfigError::UnknownCipher(suite.clone()));
        }
        check_fips_approved("cipher_suites", suite)?;
    }
    for curve in tls.curve_preferences.iter().flatten() {
        if group_by_go_name(curve).is_none() {
            return Err(WebConfigError::UnknownCurve(curve.clone()));
        }
        check_fips_approved("curve_preferences", curve)?;
    }
    Ok(())
}

fn check_fips_approved(setting: &'static str, name: &str) -> Result<(), WebConfigError> {
    if crate::fips::BUILD && NOT_FIPS_APPROVED.contains(&name) {
        return Err(WebConfigError::NotFipsApproved {
            setting,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// The versions from `min_version` to `max_version` (default TLS 1.2 to 1.3) that rustls
/// offers.
pub(super) fn versions(
    tls: &TlsServerConfig,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    let min = tls
        .min_version
        .as_deref()
        .and_then(version_by_go_name)
        .unwrap_or(12);
    let max = tls
        .max_version
        .as_deref()
        .and_then(version_by_go_name)
        .unwrap_or(13);
    if min < 12 {
        warnings.push("TLS 1.0 and 1.1 are not offered; the minimum version is TLS 1.2".into());
    }
    let mut versions = Vec::new();
    if min <= 12 && max >= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if min <= 13 && max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(WebConfigError::NoUsableVersion);
    }
    Ok(versions)
}

/// The provider with the configured TLS 1.2 suites and key exchange groups only.
pub(super) fn restrict_provider(
    mut provider: CryptoProvider,
    tls: &TlsServerConfig,
    versions: &[&'static SupportedProtocolVersion],
    warnings: &mut Vec<String>,
) -> Result<CryptoProvider, WebConfigError> {
    let tls12_allowed = versions.contains(&&rustls::version::TLS12);
    let tls13_allowed = versions.contains(&&rustls::version::TLS13);
    if let Some(names) = tls.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        let mut tls12 = Vec::new();
        for name in names {
            match suite_by_go_name(name, &provider) {
                Some(Suite::Tls12(suite)) => tls12.push(suite),
                Some(Suite::Tls13) => {}
                Some(Suite::Unavailable(why)) => {
                    warnings.push(format!("cipher suite {name} skipped: {why}"))
                }
                None => return Err(WebConfigError::UnknownCipher(name.clone())),
            }
        }
        if tls12.is_empty() && tls12_allowed {
            if !tls13_allowed {
                return Err(WebConfigError::NoUsableCipherSuite(names.join(", ")));
            }
            warnings.push(
                "none of the cipher_suites can be used with TLS 1.2; only TLS 1.3 is offered"
                    .into(),
            );
        }
        provider
            .cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13);
        provider.cipher_suites.extend(tls12);
    }
    if let Some(names) = tls.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        for name in names {
            match group_by_go_name(name) {
                Some(Ok(group)) => {
                    if provider.kx_groups.iter().any(|g| g.name() == group.name()) {
                        groups.push(group);
                    } else {
                        warnings.push(format!(
                            "curve {name} skipped: not offered by this build's cryptographic module"
                        ));
                    }
                }
                Some(Err(why)) => warnings.push(format!("curve {name} skipped: {why}")),
                None => return Err(WebConfigError::UnknownCurve(name.clone())),
            }
        }
        if groups.is_empty() {
            return Err(WebConfigError::NoUsableCurve(names.join(", ")));
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}
