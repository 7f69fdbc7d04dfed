//! Client certificates: how each `client_auth_type` judges what a client sends, and
//! `client_allowed_sans`.
//!
//! `NoClientCert` asks for no certificate (rustls' own verifier that offers none). Every other
//! policy is one [`ClientVerifier`]; the policies differ only in how the chain is judged
//! ([`Chain`]). Invariants:
//! - Handshake signatures are verified with the algorithms of the provider the configuration
//!   is built from (in a FIPS build, the FIPS module's), whatever the policy: the handshake
//!   proves that the client holds the key of the certificate it sent, even when nobody vouches
//!   for the certificate.
//! - A certificate is taken only if its chain passes and, with `client_allowed_sans`, it
//!   carries one of the allowed names.
//! - Whether the handshake demands a certificate is decided in one place
//!   ([`client_verifier`]): a `Require*` policy or `client_allowed_sans` demands one, unless
//!   the authorization file leaves health checks open; the request guard then demands it per
//!   request.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{Error, SignatureScheme};

use crate::web_config::errors::WebConfigError;
use crate::web_config::identity::CertificateIdentity;

/// `client_auth_type`, as Go names its policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

impl ClientAuth {
    pub(super) fn parse(name: &str) -> Result<ClientAuth, WebConfigError> {
        Ok(match name {
            "" | "NoClientCert" => ClientAuth::None,
            "RequestClientCert" => ClientAuth::Request,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            other => return Err(WebConfigError::InvalidClientAuth(other.to_string())),
        })
    }

    /// Whether the policy demands a certificate.
    /// What the policy makes of a client certificate's names.
    pub(super) fn verification(self) -> crate::web_config::Verification {
        use crate::web_config::Verification;
        match self {
            ClientAuth::None => Verification::NotAsked("client_auth_type is NoClientCert"),
            ClientAuth::Request => Verification::Unverified("RequestClientCert"),
            ClientAuth::RequireAny => Verification::Unverified("RequireAnyClientCert"),
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => Verification::Verified,
        }
    }

    pub(super) fn requires(self) -> bool {
        matches!(self, ClientAuth::RequireAny | ClientAuth::RequireAndVerify)
    }
}

/// The verifier for a policy. `client_cas`: the PEM of the client CAs, if given.
/// `enforce_in_handshake`: whether a certificate the policy demands is demanded in the
/// handshake (else the request guard demands it).
pub(super) fn client_verifier(
    client_auth: ClientAuth,
    client_cas: Option<&[u8]>,
    allowed_sans: Option<Vec<String>>,
    enforce_in_handshake: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let chain = match client_auth {
        ClientAuth::None => return Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::Request | ClientAuth::RequireAny => Chain::Unchecked,
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let roots = trust_anchors(client_cas);
            if roots.is_empty() {
                Chain::NoTrustAnchors
            } else {
                // Whether a certificate is demanded is the ClientVerifier's to say.
                let webpki =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| WebConfigError::Tls(e.to_string()))?;
                Chain::Verified(webpki)
            }
        }
    };
    // Allowed names can only be checked on a certificate, so they demand one.
    let mandatory = enforce_in_handshake && (client_auth.requires() || allowed_sans.is_some());
    Ok(Arc::new(ClientVerifier {
        chain,
        allowed_sans,
        mandatory,
        algorithms: provider.signature_verification_algorithms,
    }))
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

/// How a policy judges the certificate chain a client sends.
#[derive(Debug)]
enum Chain {
    /// `RequestClientCert` and `RequireAnyClientCert`: taken without asking who issued it.
    Unchecked,
    /// Verification asked for, but nothing to verify against: every certificate is refused (a
    /// client without one passes when the policy allows that).
    NoTrustAnchors,
    /// Verified against the client CAs.
    Verified(Arc<dyn ClientCertVerifier>),
}

/// The verifier of every policy but `NoClientCert`; see the module's documentation.
#[derive(Debug)]
struct ClientVerifier {
    chain: Chain,
    /// `client_allowed_sans`: the certificate must carry one of these names (DNS, e-mail, IP
    /// address or URI, compared exactly). A client without a certificate does not pass
    /// (upstream's check crashes that connection), in the handshake or, with open health
    /// checks, at the request guard.
    allowed_sans: Option<Vec<String>>,
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.chain {
            Chain::Verified(webpki) => webpki.root_hint_subjects(),
            Chain::Unchecked | Chain::NoTrustAnchors => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = match &self.chain {
            Chain::Unchecked => ClientCertVerified::assertion(),
            Chain::NoTrustAnchors => {
                return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
            }
            Chain::Verified(webpki) => webpki.verify_client_cert(end_entity, intermediates, now)?,
        };
        let Some(allowed) = &self.allowed_sans else {
            return Ok(verified);
        };
        let names = CertificateIdentity::from_der(end_entity)
            .map(|id| id.san_strings())
            .unwrap_or_default();
        if names.iter().any(|name| allowed.contains(name)) {
            Ok(verified)
        } else {
            tracing::debug!(
                allowed = ?allowed,
                found = ?names,
                "could not find allowed SANs in client cert"
            );
            Err(Error::InvalidCertificate(CertificateError::NotValidForName))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
