//! Throwaway certificates made at run time (rcgen), web configuration files, and TLS client
//! configurations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::load::TlsTarget;

/// Paths of the files written by [`make_certs`].
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Makes a CA, a server certificate for `localhost`/`127.0.0.1` and a client certificate
/// (all ECDSA P-256), in `dir`.
pub fn make_certs(dir: &Path) -> Result<CertFiles, String> {
    let err = |e: rcgen::Error| format!("making certificates: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgbench throwaway CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?).map_err(err)?;

    let issue = |sans: Vec<String>, cn: &str, eku: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(sans).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &ca).map_err(err)?;
        Ok::<_, String>((cert.pem(), key.serialize_pem()))
    };
    let (server_cert, server_key) = issue(
        vec!["localhost".into(), "127.0.0.1".into()],
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client_cert, client_key) = issue(
        vec!["pgbench.example".into()],
        "pgbench",
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let files = CertFiles {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    for (path, contents) in [
        (&files.ca_cert, ca.pem()),
        (&files.server_cert, server_cert),
        (&files.server_key, server_key),
        (&files.client_cert, client_cert),
        (&files.client_key, client_key),
    ] {
        std::fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(files)
}

/// What a web configuration file (exporter-toolkit's format, read by both gateways) sets up.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    pub tls: bool,
    pub client_certs: bool,
    /// (user, bcrypt hash)
    pub basic_auth: Option<(String, String)>,
}

impl WebConfig {
    pub fn yaml(&self, certs: &CertFiles) -> String {
        let mut out = String::new();
        if self.tls {
            out.push_str("tls_server_config:\n");
            out.push_str(&format!("  cert_file: {}\n", certs.server_cert.display()));
            out.push_str(&format!("  key_file: {}\n", certs.server_key.display()));
            if self.client_certs {
                out.push_str("  client_auth_type: RequireAndVerifyClientCert\n");
                out.push_str(&format!("  client_ca_file: {}\n", certs.ca_cert.display()));
            }
        }
        if let Some((user, hash)) = &self.basic_auth {
            out.push_str("basic_auth_users:\n");
            out.push_str(&format!("  {user}: '{hash}'\n"));
        }
        out
    }
}

/// The key exchange groups a client offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kx {
    /// rustls's defaults: the post-quantum hybrid X25519MLKEM768 first, then X25519, P-256, P-384.
    Default,
    /// Only the classic X25519.
    X25519,
    /// Only P-256 (secp256r1), what a FIPS server picks: the same curve on both builds.
    P256,
}

/// A TLS client trusting `ca_file`, with an optional client certificate. Session resumption
/// is off unless asked for, so a new connection costs a full handshake (as for a batch job
/// that runs once). `kx` chooses the key exchange groups offered.
pub fn client_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
    resumption: bool,
    kx: Kx,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("reading {}: {e}", ca_file.display()))?
    {
        let cert = cert.map_err(|e| format!("reading {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate {}: {e}", ca_file.display()))?;
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    match kx {
        Kx::Default => {}
        Kx::X25519 => provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        Kx::P256 => provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::SECP256R1],
    }
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client: {e}"))?
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .map_err(|e| format!("reading {}: {e}", cert_file.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("reading {}: {e}", cert_file.display()))?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| format!("reading {}: {e}", key_file.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
    };
    if !resumption {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

pub fn tls_target(config: Arc<ClientConfig>, server_name: &str) -> Result<TlsTarget, String> {
    let server_name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("server name {server_name}: {e}"))?;
    Ok(TlsTarget {
        connector: TlsConnector::from(config),
        server_name,
    })
}
