//! `--web.config.file`: exporter-toolkit's web configuration (TLS and client certificates,
//! basic auth, response headers, rate limit), served with rustls.
//!
//! Upstream re-reads the file on every request and rebuilds TLS on every handshake. We load it
//! once; every TLS handshake first looks at the file and the certificate, key and CA files it
//! names, and every request at the file (their metadata; see [`crate::reload`]). When one
//! changed, they are loaded again before the handshake or request goes on, so a rotated
//! certificate or CA, a new user, password or header counts from the very next connection or
//! request, and the file is parsed only when it changed. A broken new version is logged and counted, and the last good
//! one stays in service (upstream would answer 500). As upstream, whether TLS is on, HTTP/2 and
//! the rate limit are fixed at start-up.
//!
//! This file holds one loaded version ([`WebConfig`]) and the configuration in service
//! ([`WebSecurity`]); the request guard, the connection acceptor, the schema, password checks,
//! TLS and identities have a file each.

mod acceptor;
mod auth;
mod errors;
mod file;
mod guard;
mod identity;
mod tls;
mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

pub use acceptor::{Acceptor, ClientCertificateInfo, Connection};
pub use auth::hash_password;
pub use errors::WebConfigError;
pub(crate) use file::unique_keys;
pub use file::{TlsServerConfig, WebConfigFile};
pub use guard::guard;
pub use identity::{CertificateIdentity, ClientCertificate, Identity};
pub use tls::{ServerIdentity, TlsPolicy, TlsState, crypto_provider, is_enabled};
pub use trust::{CertificateTrust, TrustError, Verification};

use crate::reload::{FileReads, Loader, ReloadReport, Reloadable};
use crate::telemetry::{self, Telemetry};
use auth::{Authenticator, Users};
use guard::TokenBucket;

/// One loaded and checked version of the file.
pub struct WebConfig {
    tls: Option<TlsState>,
    users: Users,
    headers: Vec<(HeaderName, HeaderValue)>,
    http2: bool,
    rate_limit: Option<(Duration, u32)>,
    /// About settings that were accepted but cannot take effect.
    warnings: Vec<String>,
}

/// What a file's text says, checked: everything but TLS, whose files are read apart.
struct Text {
    tls: file::TlsServerConfig,
    users: Users,
    headers: Vec<(HeaderName, HeaderValue)>,
    http2: bool,
    rate_limit: Option<(Duration, u32)>,
}

impl Text {
    /// In upstream's order: YAML and the names in it, headers, user hashes.
    fn check(content: &str, dir: &Path) -> Result<Text, WebConfigError> {
        let file = WebConfigFile::parse(content, dir)?;
        let tls = file.tls_server_config.unwrap_or_default();
        tls::check_names(&tls)?;
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
        Ok(Text {
            tls,
            users,
            headers,
            http2: http.http2.unwrap_or(true),
            rate_limit,
        })
    }
}

impl WebConfig {
    /// Checks a file's text as start-up does, without reading the files it names
    /// (certificates, keys, CAs): what the fuzzer feeds.
    pub fn check_text(content: &str) -> Result<(), WebConfigError> {
        Text::check(content, Path::new(".")).map(drop)
    }

    /// Reads and checks the file, in upstream's order: its text, then TLS. Every file is read
    /// through `files`.
    fn load(
        path: &Path,
        policy: TlsPolicy,
        files: &mut FileReads,
    ) -> Result<WebConfig, WebConfigError> {
        let content = files
            .read_to_string(path)
            .map_err(|e| WebConfigError::Io(errors::open_error(path, &e)))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let text = Text::check(&content, dir)?;
        let mut warnings = Vec::new();
        let tls = if tls::is_enabled(&text.tls) {
            Some(tls::server_config(
                &text.tls,
                text.http2,
                policy,
                files,
                &mut warnings,
            )?)
        } else {
            None
        };
        Ok(WebConfig {
            tls,
            users: text.users,
            headers: text.headers,
            http2: text.http2,
            rate_limit: text.rate_limit,
            warnings,
        })
    }

    /// What client certificates' names are worth under this version.
    fn verification(&self) -> Verification {
        self.tls.as_ref().map_or(
            Verification::NotAsked("tls_server_config is not set"),
            |t| t.verification,
        )
    }

    /// 1 when TLS is served in FIPS mode (a FIPS build, and rustls reports the configuration
    /// as FIPS), else 0.
    fn fips_gauge(&self) -> f64 {
        let fips = crate::fips::BUILD && self.tls.as_ref().is_some_and(|t| t.server.fips());
        f64::from(u8::from(fips))
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

fn check_headers(
    headers: Option<&BTreeMap<String, String>>,
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

/// How the file is loaded while the gateway runs.
struct WebConfigLoader {
    path: PathBuf,
    policy: TlsPolicy,
    trust: Arc<CertificateTrust>,
}

impl Loader for WebConfigLoader {
    type Value = WebConfig;
    type Error = WebConfigError;

    const REPORT: ReloadReport = ReloadReport {
        what: "web configuration",
        reloads_total: telemetry::WEB_CONFIG_RELOADS,
        last_reload_successful: telemetry::WEB_CONFIG_LAST_RELOAD_OK,
        last_reload_success_time: telemetry::WEB_CONFIG_LAST_RELOAD_TIME,
    };

    fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self, files: &mut FileReads) -> Result<WebConfig, WebConfigError> {
        WebConfig::load(&self.path, self.policy, files)
    }

    fn check_reload(&self, current: &WebConfig, new: &WebConfig) -> Result<(), WebConfigError> {
        if new.tls.is_some() != current.tls.is_some() {
            return Err(WebConfigError::FixedAtStartUp("Switching TLS on or off"));
        }
        if new.http2 != current.http2 {
            return Err(WebConfigError::FixedAtStartUp("http_server_config.http2"));
        }
        Ok(self.trust.reload_web_config(new.verification())?)
    }

    fn in_service(&self, config: &WebConfig, telemetry: &Telemetry) {
        for warning in &config.warnings {
            tracing::warn!(file = %self.path.display(), "{warning}");
        }
        telemetry.set(telemetry::TLS_FIPS_MODE, &[], config.fips_gauge());
    }
}

/// The web configuration in service, shared by the listeners and the request guard.
pub struct WebSecurity {
    config: Reloadable<WebConfigLoader>,
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
    /// What the file does with client certificates is told to `trust` now, and every reload is
    /// judged by it.
    pub fn start(
        path: &Path,
        mut policy: TlsPolicy,
        open_paths: Vec<String>,
        trust: Arc<CertificateTrust>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Arc<WebSecurity>, WebConfigError> {
        policy.certificate_optional_in_handshake = !open_paths.is_empty();
        let loader = WebConfigLoader {
            path: path.to_path_buf(),
            policy,
            trust: trust.clone(),
        };
        let config = Reloadable::start(loader, telemetry.clone())?;
        let first = config.loaded();
        trust.start_web_config(first.verification());
        Ok(Arc::new(WebSecurity {
            tls_enabled: first.tls.is_some(),
            http2: first.http2,
            limiter: first
                .rate_limit
                .map(|(interval, burst)| Mutex::new(TokenBucket::new(interval, burst))),
            config,
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

    /// The TLS configuration for a new connection, as the files are now.
    pub async fn tls(&self) -> Option<(Arc<rustls::ServerConfig>, bool)> {
        let config = self.config.current().await;
        config
            .tls
            .as_ref()
            .map(|t| (t.server.clone(), t.verification == Verification::Verified))
    }

    /// Looks at the files every [`crate::reload::CHECK_INTERVAL`] until the task is dropped,
    /// so that changes are loaded and reported while no request comes.
    pub async fn watch(self: Arc<Self>) {
        self.config.clone().watch().await;
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
}
