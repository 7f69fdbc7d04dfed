//! Building the rustls server configuration from `tls_server_config`: certificate and key,
//! client CAs and policy, versions, suites and groups, ALPN, and the FIPS check.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::crypto_provider;
use super::go_names::{restrict_provider, versions};
use super::verifiers::{ClientAuth, client_verifier};
use crate::reload::FileReads;
use crate::web_config::errors::{WebConfigError, open_error};
use crate::web_config::file::TlsServerConfig;

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

/// The TLS side of a loaded configuration.
pub struct TlsState {
    pub server: Arc<ServerConfig>,
    /// What client certificates' names are worth: verified against CAs, or not.
    pub verification: crate::web_config::Verification,
    /// Whether the file demands a client certificate (a `Require*` policy, or allowed SANs).
    pub certificate_required: bool,
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
    .into_iter()
    .any(|field| non_empty(field).is_some())
}

/// Builds the server configuration, checking in upstream's order: certificate and key present,
/// then loadable, then the client CA file, the client auth policy, and a CA without a policy.
/// Files are read through `files`; warnings about settings that cannot take effect are added
/// to `warnings`.
pub fn server_config(
    tls: &TlsServerConfig,
    http2: bool,
    policy: TlsPolicy,
    files: &mut FileReads,
    warnings: &mut Vec<String>,
) -> Result<TlsState, WebConfigError> {
    let provider = crypto_provider();
    let (chain, key) = own_key_pair(tls, files)?;
    let client_cas = Pem::of(&tls.client_ca_file, &tls.client_ca)
        .map(|ca| ca.read(files, |_, message| WebConfigError::Io(message)))
        .transpose()?;
    let client_auth = ClientAuth::parse(tls.client_auth_type.as_deref().unwrap_or_default())?;
    if client_cas.is_some() && client_auth == ClientAuth::None {
        return Err(WebConfigError::CaWithoutPolicy);
    }

    let versions = versions(tls, warnings)?;
    let mut provider = restrict_provider(provider, tls, &versions, warnings)?;
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
    Ok(TlsState {
        server: Arc::new(config),
        verification: client_auth.verification(),
        certificate_required: demands_certificate(client_auth, tls),
    })
}

/// Whether the file demands a client certificate: a `Require*` policy, or allowed SANs (which
/// can only be checked on a certificate).
fn demands_certificate(client_auth: ClientAuth, tls: &TlsServerConfig) -> bool {
    client_auth.requires() || tls.client_allowed_sans.is_some()
}

/// The server's own certificate and key as the file names them, and whether the file demands a
/// client certificate: what the health probe beside the gateway needs to reach it (it pins the
/// certificate, and shows it as its own when one is demanded). Read exactly as the server reads
/// them.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub certificate_required: bool,
}

impl ServerIdentity {
    pub fn load(tls: &TlsServerConfig) -> Result<ServerIdentity, WebConfigError> {
        let (chain, key) = own_key_pair(tls, &mut FileReads::default())?;
        let client_auth = ClientAuth::parse(tls.client_auth_type.as_deref().unwrap_or_default())?;
        Ok(ServerIdentity {
            chain,
            key,
            certificate_required: demands_certificate(client_auth, tls),
        })
    }
}

fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|v| !v.is_empty())
}

/// Where a PEM setting comes from: its `*_file` field, or else its inline field.
enum Pem<'a> {
    File(&'a str),
    Inline(&'a str),
}

impl<'a> Pem<'a> {
    /// `None` when neither field is set.
    fn of(file: &'a Option<String>, inline: &'a Option<String>) -> Option<Pem<'a>> {
        non_empty(file)
            .map(Pem::File)
            .or(non_empty(inline).map(Pem::Inline))
    }

    /// `unreadable`: the error for a file that cannot be read, from its path and Go's message.
    fn read(
        self,
        files: &mut FileReads,
        unreadable: fn(String, String) -> WebConfigError,
    ) -> Result<Vec<u8>, WebConfigError> {
        match self {
            Pem::File(path) => files
                .read(Path::new(path))
                .map_err(|e| unreadable(path.to_string(), open_error(Path::new(path), &e))),
            Pem::Inline(pem) => Ok(pem.as_bytes().to_vec()),
        }
    }
}

/// The server's certificate chain and key, from `cert_file`/`key_file` or inline `cert`/`key`,
/// in upstream's order of checks.
fn own_key_pair(
    tls: &TlsServerConfig,
    files: &mut FileReads,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), WebConfigError> {
    let cert = Pem::of(&tls.cert_file, &tls.cert).ok_or(WebConfigError::MissingCert)?;
    let key = Pem::of(&tls.key_file, &tls.key).ok_or(WebConfigError::MissingKey)?;
    let cert = cert.read(files, WebConfigError::ReadCertFile)?;
    let key = key.read(files, WebConfigError::ReadKeyFile)?;
    key_pair(&cert, &key)
}

/// The certificate chain and its key, checked to belong together.
fn key_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), WebConfigError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| WebConfigError::KeyPair(format!("tls: {e}")))?;
    if chain.is_empty() {
        return Err(WebConfigError::KeyPair(
            "tls: failed to find any PEM data in certificate input".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
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
