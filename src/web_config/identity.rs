//! Who is on the other end of a request: the names in a client certificate, and the user a
//! request authenticated as. Handlers find an `Identity` in every request's extensions.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names a client certificate carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateIdentity {
    pub subject_common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub email_addresses: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
}

impl CertificateIdentity {
    pub fn from_der(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let mut identity = CertificateIdentity {
            subject_common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            ..Default::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => identity.dns_names.push((*dns).to_string()),
                    GeneralName::RFC822Name(email) => {
                        identity.email_addresses.push((*email).to_string())
                    }
                    GeneralName::URI(uri) => identity.uris.push((*uri).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            identity.ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(identity)
    }

    /// Every subject alternative name as a string, in the order upstream's SAN check collects
    /// them: DNS names, e-mail addresses, IP addresses, URIs.
    pub fn san_strings(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .chain(&self.email_addresses)
            .cloned()
            .chain(self.ip_addresses.iter().map(ToString::to_string))
            .chain(self.uris.iter().cloned())
            .collect()
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(|b| {
            let v6 = std::net::Ipv6Addr::from(b);
            // Go shows IPv4-mapped addresses in dotted form.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }),
        _ => None,
    }
}

/// The client certificate of a TLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    pub identity: CertificateIdentity,
    /// Whether the certificate was verified against the configured CAs. With
    /// `RequestClientCert` and `RequireAnyClientCert` it is not, and its names prove nothing.
    pub verified: bool,
}

/// Who sent a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub client_certificate: Option<Arc<ClientCertificate>>,
    /// The basic-auth user the request authenticated as.
    pub user: Option<String>,
}

impl Identity {
    /// The verified client certificate, if any.
    pub fn verified_certificate(&self) -> Option<&CertificateIdentity> {
        self.client_certificate
            .as_deref()
            .filter(|c| c.verified)
            .map(|c| &c.identity)
    }
}
