//! How to reach the NATS servers of the replicated store: URLs, the bucket, TLS with its own
//! CA and client certificate, and credentials, every secret read from a file so that none is on
//! the command line. TLS goes through the same cryptographic provider as the listeners, so a
//! FIPS build keeps the NATS connection inside the validated module, or refuses to start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ClusterError;

/// What `--store.nats.*` configures.
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    pub urls: Vec<String>,
    pub bucket: String,
    /// Replicas of the bucket when the gateway creates it.
    pub replicas: usize,
    /// How long a change waits for the cluster to acknowledge it.
    pub timeout: Duration,
    pub tls: TlsFiles,
    pub auth: Auth,
    /// A persistence file to import into the bucket when it is empty.
    pub import: Option<PathBuf>,
}

#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// How the gateway authenticates to NATS.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    UserPassword {
        user: String,
        password_file: PathBuf,
    },
    Token(PathBuf),
    NkeySeed(PathBuf),
    Creds(PathBuf),
}

impl ClusterOptions {
    /// Whether the connection is TLS (a `tls://` URL, or TLS files given).
    pub fn wants_tls(&self) -> bool {
        self.tls.ca.is_some()
            || self.tls.cert.is_some()
            || self.urls.iter().any(|u| u.starts_with("tls://"))
    }

    /// The client's connect options, with TLS and credentials read from their files.
    pub fn connect_options(&self) -> Result<async_nats::ConnectOptions, ClusterError> {
        if crate::fips::BUILD && matches!(self.auth, Auth::NkeySeed(_) | Auth::Creds(_)) {
            // nkeys sign with Ed25519 in the nkeys crate, outside the validated module.
            return Err(ClusterError::NotFips(
                "nkey and creds authentication sign with Ed25519 outside the FIPS-validated module; use a user and password or a token over TLS with a client certificate".into(),
            ));
        }
        let mut options = match &self.auth {
            Auth::None => async_nats::ConnectOptions::new(),
            Auth::UserPassword {
                user,
                password_file,
            } => async_nats::ConnectOptions::with_user_and_password(
                user.clone(),
                secret(password_file)?,
            ),
            Auth::Token(file) => async_nats::ConnectOptions::with_token(secret(file)?),
            Auth::NkeySeed(file) => async_nats::ConnectOptions::with_nkey(secret(file)?),
            Auth::Creds(file) => async_nats::ConnectOptions::with_credentials(&secret(file)?)
                .map_err(|e| config(file, e))?,
        };
        if self.wants_tls() {
            options = options
                .require_tls(true)
                .tls_client_config(self.tls_config()?);
        } else if crate::fips::BUILD {
            return Err(ClusterError::NotFips(
                "a FIPS build connects to NATS only over TLS: give tls:// URLs or --store.nats.tls.ca-file".into(),
            ));
        }
        Ok(options
            .name("pushgateway")
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .retry_on_initial_connect()
            .max_reconnects(None)
            // A server that stops answering (a partition) is noticed within seconds, not the
            // client's default two minutes, so the client moves to another server.
            .ping_interval(Duration::from_secs(1)))
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, ClusterError> {
        let provider = Arc::new(crate::web_config::crypto_provider());
        let mut roots = RootCertStore::empty();
        match &self.tls.ca {
            Some(ca) => {
                for cert in CertificateDer::pem_file_iter(ca).map_err(|e| config(ca, e))? {
                    roots
                        .add(cert.map_err(|e| config(ca, e))?)
                        .map_err(|e| config(ca, e))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClusterError::Config(format!("TLS to NATS: {e}")))?
            .with_root_certificates(roots);
        let config = match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| config(cert, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| config(cert, e))?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| config(key, e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| ClusterError::Config(format!("TLS to NATS: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(ClusterError::Config(
                    "--store.nats.tls.cert-file and --store.nats.tls.key-file go together".into(),
                ));
            }
        };
        if crate::fips::BUILD && !config.fips() {
            return Err(ClusterError::NotFips(
                "the TLS configuration for NATS does not run in FIPS mode".into(),
            ));
        }
        Ok(config)
    }
}

/// A secret from a file, without the trailing newline editors add.
fn secret(path: &Path) -> Result<String, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|e| config(path, e))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn config(path: &Path, err: impl std::fmt::Display) -> ClusterError {
    ClusterError::Config(format!("{}: {err}", path.display()))
}
