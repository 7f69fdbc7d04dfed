//! Certificates made at test time (rcgen) and an HTTPS client whose TLS settings each test
//! chooses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SignatureAlgorithm,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use super::Response;

/// What the TLS tests start from: a temporary directory holding a server certificate for
/// `localhost` (`server.crt`, `server.key`, ECDSA P-256) and the certificate of the CA that
/// signed it (`ca.crt`), so that web configs can name them by relative path.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = Ca::new("Test CA");
        ca.server(&rcgen::PKCS_ECDSA_P256_SHA256)
            .write(dir.path(), "server");
        std::fs::write(dir.path().join("ca.crt"), &ca.pem).expect("write ca.crt");
        Setup { dir, ca }
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// Writes `name` in the directory and returns its path.
    pub fn write(&self, name: &str, content: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write");
        path
    }

    /// Client options that trust the CA.
    pub fn client(&self) -> ClientOptions<'_> {
        ClientOptions::new(&self.ca.pem)
    }
}

/// A certificate authority that can sign server and client certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).expect("self-signed").pem();
        Ca { params, key, pem }
    }

    fn issue(&self, mut params: CertificateParams, key: &KeyPair) -> String {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let issuer = Issuer::from_params(&self.params, &self.key);
        params.signed_by(key, &issuer).expect("signed").pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1 with a key of the given algorithm.
    pub fn server(&self, algorithm: &'static SignatureAlgorithm) -> CertAndKey {
        self.localhost(algorithm, vec![ExtendedKeyUsagePurpose::ServerAuth])
    }

    /// A certificate for `localhost` and 127.0.0.1 that serves as server and as client
    /// certificate (both extended key usages), as internal CAs often issue them.
    pub fn server_and_client(&self) -> CertAndKey {
        self.localhost(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    fn localhost(
        &self,
        algorithm: &'static SignatureAlgorithm,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> CertAndKey {
        let key = KeyPair::generate_for(algorithm).expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = usages;
        CertAndKey {
            cert: self.issue(params, &key),
            key: key.serialize_pem(),
        }
    }

    /// A client certificate with this common name and these subject alternative names; with
    /// `expired`, its validity ended yesterday.
    pub fn client(&self, common_name: &str, sans: Vec<SanType>, expired: bool) -> CertAndKey {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        CertAndKey {
            cert: self.issue(params, &key),
            key: key.serialize_pem(),
        }
    }
}

pub fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().expect("DNS name"))
}

pub fn uri(value: &str) -> SanType {
    SanType::URI(value.try_into().expect("URI"))
}

pub fn email(value: &str) -> SanType {
    SanType::Rfc822Name(value.try_into().expect("e-mail"))
}

/// A self-signed client certificate that no CA vouches for.
pub fn self_signed_client(common_name: &str) -> CertAndKey {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    CertAndKey {
        cert: params.self_signed(&key).expect("self-signed").pem(),
        key: key.serialize_pem(),
    }
}

#[derive(Clone)]
pub struct CertAndKey {
    pub cert: String,
    pub key: String,
}

impl CertAndKey {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert).expect("write cert");
        std::fs::write(&key, &self.key).expect("write key");
        (cert, key)
    }
}

/// What a test client offers.
pub struct ClientOptions<'a> {
    pub ca: &'a str,
    pub identity: Option<&'a CertAndKey>,
    pub versions: &'a [&'static rustls::SupportedProtocolVersion],
    pub suites: Option<Vec<rustls::SupportedCipherSuite>>,
    pub groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
    pub alpn: Vec<Vec<u8>>,
}

impl<'a> ClientOptions<'a> {
    pub fn new(ca: &'a str) -> Self {
        ClientOptions {
            ca,
            identity: None,
            versions: rustls::ALL_VERSIONS,
            suites: None,
            groups: None,
            alpn: vec![b"http/1.1".to_vec()],
        }
    }

    pub fn with_identity(mut self, identity: &'a CertAndKey) -> Self {
        self.identity = Some(identity);
        self
    }

    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(suites) = &self.suites {
            provider.cipher_suites = suites.clone();
        }
        if let Some(groups) = &self.groups {
            provider.kx_groups = groups.clone();
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(self.versions)
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match self.identity {
            Some(identity) => {
                let chain: Vec<_> = CertificateDer::pem_slice_iter(identity.cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .expect("client chain");
                let key =
                    PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        Arc::new(config)
    }
}

/// What a TLS connection negotiated, and the answer to one request on it.
#[derive(Debug)]
pub struct TlsResponse {
    pub response: Response,
    pub version: rustls::ProtocolVersion,
    pub suite: rustls::CipherSuite,
    pub alpn: Option<Vec<u8>>,
    pub server_certificate: Vec<u8>,
}

/// One request over a new TLS connection; `Err` carries the handshake or transport error.
pub async fn https(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<TlsResponse, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    let version = session.protocol_version().expect("version");
    let suite = session.negotiated_cipher_suite().expect("suite").suite();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let server_certificate = session.peer_certificates().expect("server chain")[0].to_vec();
    let mut request = Request::builder().method(method).uri(path);
    if alpn.as_deref() != Some(b"h2") {
        request = request.header("host", "localhost");
    } else {
        request = request.uri(format!("https://localhost{path}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    let io = TokioIo::new(tls);
    let response = if alpn.as_deref() == Some(b"h2") {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| format!("{e:?}"))?
    };
    Ok(TlsResponse {
        response: Response::read(response).await.map_err(|e| e.to_string())?,
        version,
        suite,
        alpn,
        server_certificate,
    })
}
