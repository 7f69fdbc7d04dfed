//! `--web.config.file`: exporter-toolkit's web configuration (TLS and client certificates,
//! basic auth, response headers, rate limit), served with rustls.
//!
//! Upstream re-reads the file on every request and rebuilds TLS on every handshake. We load it
//! once, watch the file and the certificates it names, and swap in a new version when one
//! changes, so a rotated certificate, a new CA, user or header takes effect for the next
//! connection or request. A broken new version is logged and counted, and the last good one
//! stays in service (upstream would answer 500). As upstream, whether TLS is on, HTTP/2 and
//! the rate limit are fixed at start-up.

mod acceptor;
mod auth;
mod file;
mod identity;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::State;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, Request, StatusCode, header};

pub use acceptor::{Acceptor, ClientCertificateInfo};
pub use auth::hash_password;
pub(crate) use file::unique_keys;
pub use file::{TlsServerConfig, WebConfigFile};
pub use identity::{CertificateIdentity, ClientCertificate, Identity};
pub use tls::{TlsPolicy, crypto_provider, is_enabled, key_pair};

use crate::reload::{FileSet, ReloadReport};
use crate::telemetry::{self, Telemetry};
use auth::{Authenticator, Users};

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

/// The response headers the file may set, with the values each may have (`None`: any).
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// One loaded and checked version of the file.
pub struct WebConfig {
    tls: Option<TlsState>,
    users: Users,
    headers: Vec<(HeaderName, HeaderValue)>,
    http2: bool,
    rate_limit: Option<(Duration, u32)>,
    /// The file and the certificate files it names, for change detection.
    watched: Vec<PathBuf>,
}

/// The TLS side of a loaded configuration.
pub struct TlsState {
    pub server: Arc<rustls::ServerConfig>,
    /// Whether client certificates are verified against CAs (so their names can be trusted).
    pub verifies_clients: bool,
    /// Whether the file demands a client certificate (a `Require*` policy, or allowed SANs).
    pub certificate_required: bool,
}

impl WebConfig {
    /// Reads and checks the file, in upstream's order: YAML and the names in it, headers, user
    /// hashes, then TLS. Returns warnings about settings that cannot take effect.
    pub fn load(
        path: &Path,
        policy: TlsPolicy,
    ) -> Result<(WebConfig, Vec<String>), WebConfigError> {
        let content = std::fs::read_to_string(path).map_err(|e| {
            WebConfigError::Io(format!("open {}: {}", path.display(), go_io_error(&e)))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let file = WebConfigFile::parse(&content, dir)?;
        let tls_file = file.tls_server_config.unwrap_or_default();
        tls::check_names(&tls_file)?;
        let http = file.http_server_config.unwrap_or_default();
        let headers = check_headers(http.headers.as_ref())?;
        let users = Users::parse(&file.basic_auth_users.unwrap_or_default())?;
        let rate_limit = match file.rate_limit {
            Some(limit) => {
                let interval = match &limit.interval {
                    Some(value) => value.to_duration()?,
                    None => Duration::ZERO,
                };
                (!interval.is_zero()).then_some((interval, limit.burst.unwrap_or(0)))
            }
            None => None,
        };
        let http2 = http.http2.unwrap_or(true);
        let mut warnings = Vec::new();
        let tls = if tls::is_enabled(&tls_file) {
            let (server, tls_warnings) = tls::server_config(&tls_file, http2, policy)?;
            warnings.extend(tls_warnings);
            let verifies_clients = matches!(
                tls_file.client_auth_type.as_deref(),
                Some("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert")
            );
            Some(TlsState {
                server: Arc::new(server),
                verifies_clients,
                certificate_required: tls_file.requires_client_certificate(),
            })
        } else {
            None
        };
        let mut watched = vec![path.to_path_buf()];
        watched.extend(
            [
                &tls_file.cert_file,
                &tls_file.key_file,
                &tls_file.client_ca_file,
            ]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        );
        Ok((
            WebConfig {
                tls,
                users,
                headers,
                http2,
                rate_limit,
                watched,
            },
            warnings,
        ))
    }
}

impl WebConfig {
    /// 1 when TLS is served in FIPS mode (a FIPS build, and rustls reports the configuration
    /// as FIPS), else 0.
    fn fips_gauge(&self) -> f64 {
        let fips = crate::fips::BUILD && self.tls.as_ref().is_some_and(|t| t.server.fips());
        f64::from(u8::from(fips))
    }
}

fn check_headers(
    headers: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut checked = Vec::new();
    for (name, value) in headers.into_iter().flatten() {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| n == name) else {
            return Err(WebConfigError::HeaderNotAllowed(name.clone()));
        };
        if let Some(allowed) = allowed.filter(|allowed| !allowed.contains(&value.as_str())) {
            let list: Vec<String> = allowed.iter().map(|v| format!("{v:?}")).collect();
            return Err(WebConfigError::HeaderValue {
                name: name.clone(),
                allowed: format!("[{}]", list.join(" ")),
                got: value.clone(),
            });
        }
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| WebConfigError::HeaderNotAllowed(name.clone()))?;
        let header_value =
            HeaderValue::from_str(value).map_err(|_| WebConfigError::HeaderValue {
                name: name.clone(),
                allowed: "a value without control characters".into(),
                got: value.clone(),
            })?;
        checked.push((header_name, header_value));
    }
    Ok(checked)
}

const REPORT: ReloadReport = ReloadReport {
    what: "web configuration",
    reloads_total: telemetry::WEB_CONFIG_RELOADS,
    last_reload_successful: telemetry::WEB_CONFIG_LAST_RELOAD_OK,
    last_reload_success_time: telemetry::WEB_CONFIG_LAST_RELOAD_TIME,
};

/// The web configuration in service, shared by the listeners and the request guard.
pub struct WebSecurity {
    path: PathBuf,
    policy: TlsPolicy,
    current: ArcSwap<WebConfig>,
    files: Mutex<FileSet>,
    tls_enabled: bool,
    http2: bool,
    limiter: Option<Mutex<TokenBucket>>,
    authenticator: Authenticator,
    telemetry: Arc<Telemetry>,
    /// Paths answered to GET and HEAD without client certificate or password (the health
    /// checks, when the authorization file opens them).
    open_paths: Vec<String>,
}

impl WebSecurity {
    /// Loads the file for start-up; any error refuses start-up. `open_paths` are served
    /// without authentication (and client certificates become optional in the handshake).
    pub fn start(
        path: &Path,
        mut policy: TlsPolicy,
        open_paths: Vec<String>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<WebSecurity>, WebConfigError> {
        policy.certificate_optional_in_handshake = !open_paths.is_empty();
        let (config, warnings) = WebConfig::load(path, policy)?;
        for warning in &warnings {
            tracing::warn!(file = %path.display(), "{warning}");
        }
        let files = FileSet::new(config.watched.clone());
        let limiter = config
            .rate_limit
            .map(|(interval, burst)| Mutex::new(TokenBucket::new(interval, burst)));
        REPORT.loaded(&telemetry);
        telemetry.set(telemetry::TLS_FIPS_MODE, &[], config.fips_gauge());
        Ok(Arc::new(WebSecurity {
            path: path.to_path_buf(),
            policy,
            tls_enabled: config.tls.is_some(),
            http2: config.http2,
            current: ArcSwap::from_pointee(config),
            files: Mutex::new(files),
            limiter,
            authenticator: Authenticator::default(),
            telemetry,
            open_paths,
        }))
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls_enabled
    }

    pub fn http2(&self) -> bool {
        self.http2
    }

    /// The TLS configuration for a new connection.
    pub fn tls(&self) -> Option<(Arc<rustls::ServerConfig>, bool)> {
        let config = self.current.load();
        config
            .tls
            .as_ref()
            .map(|t| (t.server.clone(), t.verifies_clients))
    }

    /// Watches the files until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        crate::reload::poll(Arc::new(move || {
            self.reload_if_changed();
        }))
        .await;
    }

    /// Loads the file again if it or a file it names changed. Returns whether a reload was
    /// attempted.
    pub fn reload_if_changed(&self) -> bool {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if !files.changed() {
            return false;
        }
        let result = WebConfig::load(&self.path, self.policy).and_then(|(config, warnings)| {
            if config.tls.is_some() != self.tls_enabled {
                return Err(WebConfigError::FixedAtStartUp("Switching TLS on or off"));
            }
            if config.http2 != self.http2 {
                return Err(WebConfigError::FixedAtStartUp("http_server_config.http2"));
            }
            Ok((config, warnings))
        });
        // Whatever the outcome, remember what was seen, so that a broken file is reported once
        // and retried only after the next change.
        let watched = match &result {
            Ok((config, _)) => config.watched.clone(),
            Err(_) => files.paths().cloned().collect(),
        };
        *files = FileSet::new(watched);
        match result {
            Ok((config, warnings)) => {
                for warning in &warnings {
                    tracing::warn!(file = %self.path.display(), "{warning}");
                }
                self.telemetry
                    .set(telemetry::TLS_FIPS_MODE, &[], config.fips_gauge());
                self.current.store(Arc::new(config));
                REPORT.reloaded(&self.telemetry, &self.path);
            }
            Err(err) => REPORT.refused(&self.telemetry, &self.path, &err),
        }
        true
    }
}

/// The request guard every route runs behind when a web configuration is given: the rate
/// limit (429), then basic auth (401); the configured headers go on every answer that passed
/// the rate limit, 401s included. The request's `Identity` is attached for the handlers.
/// Open paths skip authentication; when the handshake could not demand a client certificate
/// because of them, every other request without one is refused here (403).
pub async fn guard(
    State(security): State<Arc<WebSecurity>>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(limiter) = &security.limiter {
        let allowed = limiter.lock().unwrap_or_else(|p| p.into_inner()).try_take();
        if !allowed {
            security
                .telemetry
                .increment(telemetry::HTTP_REJECTED, &[("reason", "rate_limited")]);
            return plain_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        }
    }
    let config = security.current.load_full();
    let client_certificate = request
        .extensions()
        .get::<ClientCertificateInfo>()
        .and_then(|info| info.0.clone());
    let open = (request.method() == http::Method::GET || request.method() == http::Method::HEAD)
        && security
            .open_paths
            .iter()
            .any(|p| p == request.uri().path());
    let certificate_missing = !open
        && client_certificate.is_none()
        && !security.open_paths.is_empty()
        && config.tls.as_ref().is_some_and(|t| t.certificate_required);
    let mut identity = Identity {
        client_certificate,
        user: None,
    };
    let mut response = if certificate_missing {
        security.telemetry.increment(
            telemetry::HTTP_REJECTED,
            &[("reason", "client_certificate_required")],
        );
        plain_error(StatusCode::FORBIDDEN, "client certificate required\n")
    } else if open || config.users.is_empty() {
        request.extensions_mut().insert(identity);
        next.run(request).await
    } else {
        let credentials = auth::basic_credentials(request.headers());
        let authenticated = match &credentials {
            Some((user, password)) => {
                security
                    .authenticator
                    .check(&config.users, user, password)
                    .await
            }
            None => false,
        };
        if authenticated {
            identity.user = credentials.map(|(user, _)| user);
            request.extensions_mut().insert(identity);
            next.run(request).await
        } else {
            security
                .telemetry
                .increment(telemetry::HTTP_REJECTED, &[("reason", "unauthorized")]);
            let mut response = plain_error(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            response
        }
    };
    for (name, value) in &config.headers {
        response
            .headers_mut()
            .entry(name)
            .or_insert_with(|| value.clone());
    }
    response
}

fn plain_error(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A global token bucket: `burst` tokens, one more every `interval`. With `burst` 0 nothing
/// passes, as upstream's limiter does.
struct TokenBucket {
    interval: Duration,
    burst: u32,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(interval: Duration, burst: u32) -> Self {
        TokenBucket {
            interval,
            burst,
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() / self.interval.as_secs_f64();
        self.tokens = (self.tokens + refill).min(f64::from(self.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules_are_exporter_toolkits() {
        let headers = |pairs: &[(&str, &str)]| {
            let map = pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            check_headers(Some(&map))
                .map(|h| h.len())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            headers(&[
                (
                    "Strict-Transport-Security",
                    "max-age=31536000; includeSubDomains"
                ),
                ("X-Frame-Options", "deny"),
                ("X-Content-Type-Options", "nosniff"),
                ("X-XSS-Protection", "1"),
                ("Content-Security-Policy", "default-src 'self'"),
            ]),
            Ok(5)
        );
        assert_eq!(
            headers(&[("X-Content-Type-Options", "sniff")]),
            Err("invalid value for X-Content-Type-Options. Expected one of: [\"nosniff\"], but got: \"sniff\"".into())
        );
        assert_eq!(
            headers(&[("X-Frame-Options", "foo")]),
            Err("invalid value for X-Frame-Options. Expected one of: [\"deny\" \"sameorigin\"], but got: \"foo\"".into())
        );
        assert_eq!(
            headers(&[("Content-Type", "foo")]),
            Err("HTTP header \"Content-Type\" can not be configured".into())
        );
    }

    #[test]
    fn token_bucket() {
        let mut blocked = TokenBucket::new(Duration::from_secs(1), 0);
        assert!(!blocked.try_take());
        let mut bucket = TokenBucket::new(Duration::from_secs(3600), 2);
        assert!(bucket.try_take());
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
    }
}
