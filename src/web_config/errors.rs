//! Why a web configuration cannot be used, in exporter-toolkit's words where it has them.

/// Why a web configuration cannot be used. The texts are exporter-toolkit's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebConfigError {
    #[error("{0}")]
    Io(String),
    #[error("yaml: {0}")]
    Yaml(String),
    #[error("unknown TLS version: {0}")]
    UnknownTlsVersion(String),
    #[error("unknown cipher: {0}")]
    UnknownCipher(String),
    #[error("unknown curve: {0}")]
    UnknownCurve(String),
    #[error("HTTP header {0:?} can not be configured")]
    HeaderNotAllowed(String),
    #[error("invalid value for {name}. Expected one of: {allowed}, but got: {got:?}")]
    HeaderValue {
        name: String,
        allowed: String,
        got: String,
    },
    #[error("{reason}")]
    PasswordHash { user: String, reason: String },
    #[error("missing one of cert or cert_file")]
    MissingCert,
    #[error("missing one of key or key_file")]
    MissingKey,
    #[error("failed to read cert_file ({0}): {1}")]
    ReadCertFile(String, String),
    #[error("failed to read key_file ({0}): {1}")]
    ReadKeyFile(String, String),
    #[error("failed to load X509KeyPair: {0}")]
    KeyPair(String),
    #[error("invalid ClientAuth: {0}")]
    InvalidClientAuth(String),
    #[error("client CA's have been configured without a Client Auth Policy")]
    CaWithoutPolicy,
    #[error(
        "no TLS version between min_version and max_version can be offered (this build offers TLS 1.2 and 1.3)"
    )]
    NoUsableVersion,
    #[error("none of the cipher_suites can be offered for the allowed TLS versions: {0}")]
    NoUsableCipherSuite(String),
    #[error("none of the curve_preferences can be offered: {0}")]
    NoUsableCurve(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("{0} cannot change while the gateway runs; restart it to apply the change")]
    FixedAtStartUp(&'static str),
    #[error("{setting}: {name} is not FIPS-approved, and this is a FIPS build")]
    NotFipsApproved { setting: &'static str, name: String },
    #[error("the TLS configuration does not run in FIPS mode, and this is a FIPS build")]
    NotFips,
    #[error(transparent)]
    Trust(#[from] super::TrustError),
}

/// `open <path>: <reason>`, as Go's `os.ReadFile` fails.
pub(super) fn open_error(path: &std::path::Path, err: &std::io::Error) -> String {
    format!("open {}: {}", path.display(), go_io_error(err))
}

/// Go's wording of common file errors (`no such file or directory`), without Rust's
/// `(os error N)` suffix.
fn go_io_error(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::NotFound => "no such file or directory".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::IsADirectory => "is a directory".into(),
        _ => {
            let text = err.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}
