//! The web configuration file as written: exporter-toolkit's YAML schema, parsed strictly (an
//! unknown key, a repeated key or a document that is not a mapping is an error; an empty file
//! is valid), with relative paths resolved against the file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::WebConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    pub tls_server_config: Option<TlsServerConfig>,
    pub http_server_config: Option<HttpServerConfig>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub basic_auth_users: Option<BTreeMap<String, String>>,
    pub rate_limit: Option<RateLimitConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<String>,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub curve_preferences: Option<Vec<String>>,
    /// Accepted and ignored, as Go has ignored it since 1.18.
    #[serde(rename = "prefer_server_cipher_suites")]
    _prefer_server_cipher_suites: Option<bool>,
}

impl TlsServerConfig {
    /// Whether the file demands a client certificate in every connection: a `Require*`
    /// policy, or allowed SANs (which need a certificate to check).
    pub fn requires_client_certificate(&self) -> bool {
        self.client_allowed_sans.is_some()
            || matches!(
                self.client_auth_type.as_deref(),
                Some("RequireAnyClientCert" | "RequireClientCert" | "RequireAndVerifyClientCert")
            )
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    pub http2: Option<bool>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub headers: Option<BTreeMap<String, String>>,
}

/// A string map in which a key may appear only once, as Go's strict YAML reading demands.
pub(crate) fn unique_keys<'de, D>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a mapping of strings")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                }
                out.insert(key, value);
            }
            Ok(Some(out))
        }
    }
    deserializer.deserialize_option(Visitor)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub interval: Option<DurationValue>,
    pub burst: Option<u32>,
}

/// A Go duration in YAML: a string like `1s`, or a bare integer of nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Nanoseconds(u64),
    Text(String),
}

impl DurationValue {
    pub fn to_duration(&self) -> Result<Duration, WebConfigError> {
        match self {
            DurationValue::Nanoseconds(n) => Ok(Duration::from_nanos(*n)),
            DurationValue::Text(text) => {
                crate::cli::parse_go_duration(text).map_err(WebConfigError::Yaml)
            }
        }
    }
}

impl WebConfigFile {
    /// Parses the file's content. Paths in it are made absolute against `dir`.
    pub fn parse(content: &str, dir: &Path) -> Result<Self, WebConfigError> {
        let is_empty = content
            .lines()
            .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'));
        let mut file: WebConfigFile = if is_empty {
            WebConfigFile::default()
        } else {
            serde_yaml::from_str(content).map_err(|e| WebConfigError::Yaml(e.to_string()))?
        };
        if let Some(tls) = &mut file.tls_server_config {
            for path in [
                &mut tls.cert_file,
                &mut tls.key_file,
                &mut tls.client_ca_file,
            ] {
                if let Some(p) = path.as_mut() {
                    *p = join_dir(dir, p);
                }
            }
        }
        Ok(file)
    }
}

/// `config.JoinDir`: empty and absolute paths stay as they are, relative ones are taken from
/// `dir`.
fn join_dir(dir: &Path, path: &str) -> String {
    if path.is_empty() || Path::new(path).is_absolute() {
        return path.to_string();
    }
    let joined: PathBuf = dir.join(path);
    joined.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<WebConfigFile, String> {
        WebConfigFile::parse(yaml, Path::new("/etc/pg")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_and_comment_only_files_are_valid() {
        assert!(parse("").is_ok());
        assert!(parse("# nothing\n\n").is_ok());
        let file = parse("tls_server_config:\n").unwrap();
        assert!(file.tls_server_config.is_none());
    }

    #[test]
    fn strictness() {
        let err = parse("tls_server_config:\n  cert_filse: x\n").unwrap_err();
        assert!(
            err.starts_with("yaml: ") && err.contains("cert_filse"),
            "{err}"
        );
        let err = parse("hWkNKCp some junk\n").unwrap_err();
        assert!(err.starts_with("yaml: "), "{err}");
        let err = parse("basic_auth_users:\n  a: x\n  a: y\n").unwrap_err();
        assert!(err.contains("duplicate"), "{err}");
        let err = parse("tls_server_config:\n  cert_file: a\n  cert_file: b\n").unwrap_err();
        assert!(err.contains("duplicate"), "{err}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let file = parse("tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n  client_ca_file: ''\n").unwrap();
        let tls = file.tls_server_config.unwrap();
        assert_eq!(tls.cert_file.as_deref(), Some("/etc/pg/server.crt"));
        assert_eq!(tls.key_file.as_deref(), Some("/abs/server.key"));
        assert_eq!(tls.client_ca_file.as_deref(), Some(""));
    }

    #[test]
    fn rate_limit_intervals() {
        let file = parse("rate_limit:\n  interval: 1s\n  burst: 2\n").unwrap();
        let limit = file.rate_limit.unwrap();
        assert_eq!(
            limit.interval.unwrap().to_duration().unwrap(),
            Duration::from_secs(1)
        );
        let file = parse("rate_limit:\n  interval: 1000\n").unwrap();
        assert_eq!(
            file.rate_limit
                .unwrap()
                .interval
                .unwrap()
                .to_duration()
                .unwrap(),
            Duration::from_micros(1)
        );
    }
}
