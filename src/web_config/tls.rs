//! Turning `tls_server_config` into a rustls server configuration: certificates and keys,
//! client certificate policies, TLS versions, cipher suites and key exchange groups named as
//! Go names them, and ALPN.
//!
//! Go offers things rustls does not (TLS 1.0 and 1.1, CBC and RSA key exchange suites, P-521).
//! Such names are accepted with a warning and left out; when nothing usable remains, the
//! configuration is refused with a message that says so. Names Go does not know are refused
//! with Go's messages.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

use super::file::TlsServerConfig;
use super::{WebConfigError, go_io_error};

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

/// Choices about TLS that come from the command line rather than the file.
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsPolicy {
    /// `--tls.fips-strict`: leave out key exchange groups with ML-KEM, whose FIPS validation
    /// is still pending in the AWS-LC module (rustls counts the hybrids as FIPS because their
    /// first component is approved).
    pub fips_strict: bool,
    /// The authorization file leaves health checks open to clients without a certificate, so
    /// the handshake cannot demand one; a certificate the file requires is then demanded per
    /// request instead (see `guard`).
    pub certificate_optional_in_handshake: bool,
}

/// Names that name algorithms outside FIPS 140; a FIPS build refuses them.
const NOT_FIPS_APPROVED: &[&str] = &[
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "X25519",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

/// A warning about a setting that was accepted but cannot take effect.
pub type Warning = String;

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

/// Whether the file asks for TLS at all: only these fields switch it on, as upstream.
pub fn is_enabled(tls: &TlsServerConfig) -> bool {
    [
        &tls.cert_file,
        &tls.cert,
        &tls.key_file,
        &tls.key,
        &tls.client_ca_file,
        &tls.client_ca,
        &tls.client_auth_type,
    ]
    .iter()
    .any(|field| field.as_deref().is_some_and(|v| !v.is_empty()))
}

fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|v| !v.is_empty())
}

/// Builds the server configuration, checking in upstream's order: certificate and key present,
/// then loadable, then the client CA file, the client auth policy, and a CA without a policy.
/// Returns warnings about settings that cannot take effect.
pub fn server_config(
    tls: &TlsServerConfig,
    http2: bool,
    policy: TlsPolicy,
) -> Result<(ServerConfig, Vec<Warning>), WebConfigError> {
    let provider = crypto_provider();
    let (chain, key) = key_pair(tls)?;

    let client_cas = match (non_empty(&tls.client_ca_file), non_empty(&tls.client_ca)) {
        (Some(path), _) => Some(
            std::fs::read(path)
                .map_err(|e| WebConfigError::Io(format!("open {path}: {}", go_io_error(&e))))?,
        ),
        (None, Some(inline)) => Some(inline.as_bytes().to_vec()),
        (None, None) => None,
    };
    let client_auth = match tls.client_auth_type.as_deref().unwrap_or_default() {
        "" | "NoClientCert" => ClientAuth::None,
        "RequestClientCert" => ClientAuth::Request,
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
        other => return Err(WebConfigError::InvalidClientAuth(other.to_string())),
    };
    if client_cas.is_some() && client_auth == ClientAuth::None {
        return Err(WebConfigError::CaWithoutPolicy);
    }

    let mut warnings = Vec::new();
    let versions = versions(tls, &mut warnings)?;
    let mut provider = restrict_provider(provider, tls, &versions, &mut warnings)?;
    if policy.fips_strict {
        provider
            .kx_groups
            .retain(|g| !format!("{:?}", g.name()).contains("MLKEM"));
    }
    let provider = Arc::new(provider);
    let verifier = client_verifier(
        client_auth,
        client_cas.as_deref(),
        tls.client_allowed_sans.clone(),
        !policy.certificate_optional_in_handshake,
        &provider,
    )?;

    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| WebConfigError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| WebConfigError::KeyPair(e.to_string()))?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    // rustls' own judgement (FIPS provider, extended master secret required) is the proof.
    if crate::fips::BUILD && !config.fips() {
        return Err(WebConfigError::NotFips);
    }
    Ok((config, warnings))
}

/// The server's certificate chain and key, from `cert_file`/`key_file` or inline `cert`/`key`,
/// checked to belong together. The health probe presents them as its own when the gateway
/// demands a client certificate.
pub fn key_pair(
    tls: &TlsServerConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), WebConfigError> {
    let cert_source = non_empty(&tls.cert_file)
        .map(Source::File)
        .or(non_empty(&tls.cert).map(Source::Inline));
    let key_source = non_empty(&tls.key_file)
        .map(Source::File)
        .or(non_empty(&tls.key).map(Source::Inline));
    let cert_source = cert_source.ok_or(WebConfigError::MissingCert)?;
    let key_source = key_source.ok_or(WebConfigError::MissingKey)?;
    load_key_pair(cert_source, key_source)
}

enum Source<'a> {
    File(&'a str),
    Inline(&'a str),
}

fn load_key_pair(
    cert: Source<'_>,
    key: Source<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), WebConfigError> {
    let cert_pem = match cert {
        Source::File(path) => std::fs::read(path).map_err(|e| {
            WebConfigError::ReadCertFile(
                path.to_string(),
                format!("open {path}: {}", go_io_error(&e)),
            )
        })?,
        Source::Inline(pem) => pem.as_bytes().to_vec(),
    };
    let key_pem = match key {
        Source::File(path) => std::fs::read(path).map_err(|e| {
            WebConfigError::ReadKeyFile(
                path.to_string(),
                format!("open {path}: {}", go_io_error(&e)),
            )
        })?,
        Source::Inline(pem) => pem.as_bytes().to_vec(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| WebConfigError::KeyPair(format!("tls: {e}")))?;
    if chain.is_empty() {
        return Err(WebConfigError::KeyPair(
            "tls: failed to find any PEM data in certificate input".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        WebConfigError::KeyPair("tls: failed to find any PEM data in key input".into())
    })?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| WebConfigError::KeyPair(format!("tls: {e}")))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing_key)
        .keys_match()
        .map_err(|_| {
            WebConfigError::KeyPair("tls: private key does not match public key".into())
        })?;
    Ok((chain, key))
}

fn versions(
    tls: &TlsServerConfig,
    warnings: &mut Vec<Warning>,
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
fn restrict_provider(
    mut provider: CryptoProvider,
    tls: &TlsServerConfig,
    versions: &[&'static SupportedProtocolVersion],
    warnings: &mut Vec<Warning>,
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

/// `enforce_in_handshake`: whether a certificate the policy requires is demanded in the
/// handshake (else the request guard demands it).
fn client_verifier(
    client_auth: ClientAuth,
    client_cas: Option<&[u8]>,
    allowed_sans: Option<Vec<String>>,
    enforce_in_handshake: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::None => return Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::Request | ClientAuth::RequireAny => Arc::new(AnyCertificate {
            mandatory: client_auth == ClientAuth::RequireAny && enforce_in_handshake,
            provider: provider.clone(),
        }),
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let roots = trust_anchors(client_cas);
            let mandatory = client_auth == ClientAuth::RequireAndVerify && enforce_in_handshake;
            if roots.is_empty() {
                Arc::new(NoTrustAnchors { mandatory })
            } else {
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let builder = if mandatory {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                builder
                    .build()
                    .map_err(|e| WebConfigError::Tls(e.to_string()))?
            }
        }
    };
    Ok(match allowed_sans {
        Some(allowed) => Arc::new(AllowedSans {
            inner: verifier,
            allowed,
            mandatory: enforce_in_handshake,
        }),
        None => verifier,
    })
}

/// The client CAs given (certificates that do not parse are skipped, as Go's pool does), or the
/// system's trust store when none are given, as Go verifies then.
fn trust_anchors(pem: Option<&[u8]>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    match pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem).flatten() {
                let _ = roots.add(cert);
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    roots
}

/// `RequestClientCert` and `RequireAnyClientCert`: any certificate is taken without checking
/// who issued it (only that the client holds its key, which the handshake proves).
#[derive(Debug)]
struct AnyCertificate {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Verification asked for, but nothing to verify against: every certificate is refused (a
/// client without one passes when the policy allows that).
#[derive(Debug)]
struct NoTrustAnchors {
    mandatory: bool,
}

impl ClientCertVerifier for NoTrustAnchors {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: after the policy's own checks, the client's certificate must carry one
/// of these names (DNS, e-mail, IP address or URI, compared exactly). A client without a
/// certificate does not pass (upstream's check crashes that connection), in the handshake or,
/// with open health checks, at the request guard.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
    mandatory: bool,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = super::identity::CertificateIdentity::from_der(end_entity)
            .map(|id| id.san_strings())
            .unwrap_or_default();
        if names.iter().any(|name| self.allowed.contains(name)) {
            Ok(verified)
        } else {
            tracing::debug!(
                allowed = ?self.allowed,
                found = ?names,
                "could not find allowed SANs in client cert"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
