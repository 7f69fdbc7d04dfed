//! The command line: upstream's flag names, defaults and value syntax (Go durations, kingpin's
//! `--no-<flag>` booleans), plus the few flags of our own.

use std::time::Duration;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::go;
use crate::model::NameValidation;

/// Default body limit: large enough for any sane push, small enough that one client cannot
/// exhaust memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "pushgateway",
    about = "The Pushgateway: a metrics cache for batch and short-lived jobs that Prometheus scrapes.",
    disable_version_flag = true,
    disable_help_flag = true
)]
pub struct Cli {
    /// Show context-sensitive help (also try --help-long and --help-man).
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,

    /// Show the help with every detail (kingpin's flag; there are no subcommands to add).
    #[arg(long = "help-long", hide = true, action = ArgAction::SetTrue)]
    help_long: bool,

    /// Print a man page (roff) to standard output, as Debian's packaging uses it.
    #[arg(long = "help-man", hide = true, action = ArgAction::SetTrue)]
    help_man: bool,

    /// Addresses on which to expose metrics and the web interface. Repeatable to listen on
    /// several addresses.
    #[arg(long = "web.listen-address", value_name = "ADDRESS", default_value = ":9091", action = ArgAction::Append)]
    pub listen_addresses: Vec<String>,

    /// Use systemd socket activation listeners instead of port listeners (Linux only).
    #[arg(long = "web.systemd-socket", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_systemd_socket")]
    systemd_socket: bool,
    #[arg(
        long = "no-web.systemd-socket",
        hide = true,
        overrides_with = "systemd_socket"
    )]
    no_systemd_socket: bool,

    /// Path to a configuration file that can enable TLS or authentication (exporter-toolkit
    /// format).
    #[arg(long = "web.config.file", value_name = "FILE", default_value = "")]
    pub web_config_file: String,

    /// Path to an authorization file: which client certificates and users may push to which
    /// groups, scrape, read the UI and API, or use admin endpoints. Reloaded on change.
    #[arg(long = "web.authz-file", value_name = "FILE", default_value = "")]
    pub authz_file: String,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// The URL under which the Pushgateway is externally reachable.
    #[arg(long = "web.external-url", value_name = "URL", default_value = "", value_parser = parse_external_url)]
    pub external_url: ExternalUrl,

    /// Prefix for the internal routes of web endpoints. Defaults to the path of
    /// --web.external-url.
    #[arg(long = "web.route-prefix", value_name = "PREFIX", default_value = "")]
    pub route_prefix: String,

    /// Enable shutdown via HTTP request.
    #[arg(long = "web.enable-lifecycle", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_lifecycle")]
    pub enable_lifecycle: bool,
    #[arg(
        long = "no-web.enable-lifecycle",
        hide = true,
        overrides_with = "enable_lifecycle"
    )]
    no_lifecycle: bool,

    /// Enable API endpoints for admin control actions.
    #[arg(long = "web.enable-admin-api", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_admin_api")]
    pub enable_admin_api: bool,
    #[arg(
        long = "no-web.enable-admin-api",
        hide = true,
        overrides_with = "enable_admin_api"
    )]
    no_admin_api: bool,

    /// File to persist metrics. If empty, metrics are only kept in memory.
    #[arg(long = "persistence.file", value_name = "FILE", default_value = "")]
    pub persistence_file: String,

    /// The minimum interval at which to write out the persistence file (Go duration: 5m, 90s,
    /// 1h30m).
    #[arg(long = "persistence.interval", value_name = "DURATION", default_value = "5m", value_parser = go::parse_duration)]
    pub persistence_interval: Duration,

    /// Log every change and fsync it before answering, so that nothing acknowledged is lost in
    /// a crash (the default). With --no-persistence.log only the periodic snapshots are
    /// written, as upstream does. Ours; not an upstream flag.
    #[arg(long = "persistence.log", value_name = "BOOL", num_args = 0..=1, default_value = "true", default_missing_value = "true", overrides_with = "no_persistence_log")]
    persistence_log: bool,
    #[arg(
        long = "no-persistence.log",
        hide = true,
        overrides_with = "persistence_log"
    )]
    no_persistence_log: bool,

    /// Do not check consistency of pushed metrics. DANGEROUS.
    #[arg(long = "push.disable-consistency-check", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_disable_check")]
    pub disable_consistency_check: bool,
    #[arg(
        long = "no-push.disable-consistency-check",
        hide = true,
        overrides_with = "disable_consistency_check"
    )]
    no_disable_check: bool,

    /// Allow UTF-8 characters in metric and label names.
    #[arg(long = "push.enable-utf8-names", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_utf8_names")]
    pub enable_utf8_names: bool,
    #[arg(
        long = "no-push.enable-utf8-names",
        hide = true,
        overrides_with = "enable_utf8_names"
    )]
    no_utf8_names: bool,

    /// Largest accepted push body, after decompression (bytes, or with a KiB/MiB/GiB suffix).
    /// Not an upstream flag: upstream has no limit.
    #[arg(long = "push.max-body-size", value_name = "SIZE", default_value = "64MiB", value_parser = parse_byte_size)]
    pub max_body_bytes: u64,

    /// Total size of push bodies held in memory at once (as read, and decompressed); a push
    /// that would go beyond it is refused with 503 and Retry-After. Ours.
    #[arg(long = "push.max-buffered-size", value_name = "SIZE", default_value = "256MiB", value_parser = parse_byte_size)]
    pub max_buffered_bytes: u64,

    /// Delete a group once its last successful push is older than this (Go duration; 0:
    /// never). A push's Pushgateway-Expire-After header overrides it for its group. Ours.
    #[arg(long = "push.expire-after", value_name = "DURATION", default_value = "0s", value_parser = go::parse_duration)]
    pub expire_after: Duration,

    /// Most groups the store holds; a push that would add one more is refused (0:
    /// unlimited). Ours.
    #[arg(long = "push.max-groups", value_name = "COUNT", default_value = "0")]
    pub max_groups: usize,

    /// Most series the store holds in all groups (0: unlimited). Ours.
    #[arg(long = "push.max-series", value_name = "COUNT", default_value = "0")]
    pub max_series: usize,

    /// Most series one group holds (0: unlimited). Ours.
    #[arg(
        long = "push.max-series-per-group",
        value_name = "COUNT",
        default_value = "0"
    )]
    pub max_series_per_group: usize,

    /// NATS servers of a replicated store shared by several gateways (nats:// or tls:// URLs;
    /// repeatable or comma-separated). Without it, the store is this process's own. Ours.
    #[arg(long = "store.nats.url", value_name = "URL", action = ArgAction::Append, value_delimiter = ',')]
    pub nats_urls: Vec<String>,

    /// The JetStream key-value bucket of the replicated store. Ours.
    #[arg(
        long = "store.nats.bucket",
        value_name = "NAME",
        default_value = "pushgateway"
    )]
    pub nats_bucket: String,

    /// Replicas of the bucket when the gateway creates it (an existing bucket is used as it
    /// is). Ours.
    #[arg(
        long = "store.nats.replicas",
        value_name = "COUNT",
        default_value = "3"
    )]
    pub nats_replicas: usize,

    /// How long a change waits for the cluster store to acknowledge it before it gets 503
    /// (Go duration). Ours.
    #[arg(long = "store.nats.timeout", value_name = "DURATION", default_value = "5s", value_parser = go::parse_duration)]
    pub nats_timeout: Duration,

    /// CA certificates (PEM) to verify the NATS servers with (default: the system's). Ours.
    #[arg(
        long = "store.nats.tls.ca-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_ca_file: String,

    /// Client certificate (PEM) for NATS. Ours.
    #[arg(
        long = "store.nats.tls.cert-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_cert_file: String,

    /// Private key (PEM) of the client certificate for NATS. Ours.
    #[arg(
        long = "store.nats.tls.key-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_key_file: String,

    /// User name for NATS (the password comes from --store.nats.password-file). Ours.
    #[arg(long = "store.nats.user", value_name = "NAME", default_value = "")]
    pub nats_user: String,

    /// File holding the NATS password. Ours.
    #[arg(
        long = "store.nats.password-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_password_file: String,

    /// File holding a NATS token. Ours.
    #[arg(
        long = "store.nats.token-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_token_file: String,

    /// File holding a NATS nkey seed. Ours.
    #[arg(
        long = "store.nats.nkey-seed-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_nkey_seed_file: String,

    /// NATS credentials file (JWT and nkey seed). Ours.
    #[arg(
        long = "store.nats.creds-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_creds_file: String,

    /// A persistence file (this gateway's or upstream's) to import into the bucket when the
    /// bucket is empty. Ours.
    #[arg(
        long = "store.nats.import-file",
        value_name = "FILE",
        default_value = ""
    )]
    pub nats_import_file: String,

    /// Time a client has, from connecting or from the first byte of a request, to finish the
    /// TLS handshake and the request's head (Go duration). Ours; upstream has no limit.
    #[arg(long = "web.read-header-timeout", value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub read_header_timeout: Duration,

    /// Time a client has to send a request body once its head arrived; a slower body gets
    /// 408 (Go duration). Ours.
    #[arg(long = "web.read-body-timeout", value_name = "DURATION", default_value = "1m", value_parser = parse_timeout)]
    pub read_body_timeout: Duration,

    /// How long a connection may wait for its next request, or, with a request in flight,
    /// neither read nor write a byte, before it is closed (Go duration). Ours.
    #[arg(long = "web.idle-timeout", value_name = "DURATION", default_value = "2m", value_parser = parse_timeout)]
    pub idle_timeout: Duration,

    /// Most connections open at once over all listeners; at the limit the connection idle
    /// longest is closed to make room for a new one. Ours.
    #[arg(long = "web.max-connections", value_name = "COUNT", default_value = "4096", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Largest request head (request line and headers; on HTTP/2 the header list); larger
    /// ones get 431. Ours.
    #[arg(long = "web.max-header-size", value_name = "SIZE", default_value = "64KiB", value_parser = parse_header_size)]
    pub max_header_bytes: u64,

    /// Most HTTP/2 streams (requests) at once on one connection. Ours.
    #[arg(long = "web.http2-max-concurrent-streams", value_name = "COUNT", default_value = "100", value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,

    /// Leave out TLS key exchange groups with ML-KEM, whose FIPS validation is still pending
    /// in the AWS-LC module (post-quantum key exchange is then off). Ours; not an upstream flag.
    #[arg(long = "tls.fips-strict", value_name = "BOOL", num_args = 0..=1, default_value = "false", default_missing_value = "true", overrides_with = "no_fips_strict")]
    pub tls_fips_strict: bool,
    #[arg(
        long = "no-tls.fips-strict",
        hide = true,
        overrides_with = "tls_fips_strict"
    )]
    no_fips_strict: bool,

    /// Print a hash of the password read from standard input for `basic_auth_users`, and exit:
    /// pbkdf2-sha256, pbkdf2-sha512 (FIPS-approved) or bcrypt. Ours; not an upstream flag.
    #[arg(long = "hash-password", value_name = "ALGORITHM", value_parser = ["pbkdf2-sha256", "pbkdf2-sha512", "bcrypt"])]
    pub hash_password: Option<String>,

    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info", value_parser = parse_log_level)]
    pub log_level: LogLevel,

    /// Output format of log messages: logfmt, json.
    #[arg(long = "log.format", value_name = "FORMAT", default_value = "logfmt", value_parser = parse_log_format)]
    pub log_format: LogFormat,

    /// Show application version.
    #[arg(long = "version", action = ArgAction::SetTrue)]
    version: bool,

    /// The first of `--version`, `--help-long` and `--help-man` given, if any.
    #[arg(skip)]
    pub info: Option<Info>,
}

/// Kingpin's flags that print something and exit instead of serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Info {
    Version,
    HelpLong,
    HelpMan,
}

impl Cli {
    /// Parses a command line as the binary does. Of `--version`, `--help-long` and `--help-man`,
    /// the first given wins (`Cli::info`), as kingpin runs their actions in command-line order.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut matches = Cli::command().try_get_matches_from(args)?;
        let info = [
            ("version", Info::Version),
            ("help_long", Info::HelpLong),
            ("help_man", Info::HelpMan),
        ]
        .into_iter()
        .filter(|(id, _)| matches.get_flag(id))
        .min_by_key(|(id, _)| matches.index_of(id))
        .map(|(_, info)| info);
        let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
        cli.info = info;
        Ok(cli)
    }

    /// `--web.systemd-socket`: serve on the sockets systemd passes instead of binding
    /// `--web.listen-address`.
    pub fn systemd_socket(&self) -> bool {
        self.systemd_socket && !self.no_systemd_socket
    }

    /// The prefix every route lives under: `--web.route-prefix`, or else the path of
    /// `--web.external-url`; `/` means none; one leading `/` is ensured and one trailing `/`
    /// dropped, as upstream 1.11 does.
    pub fn route_prefix(&self) -> String {
        let prefix = if self.route_prefix.is_empty() {
            self.external_url.path.as_str()
        } else {
            self.route_prefix.as_str()
        };
        if prefix == "/" || prefix.is_empty() {
            return String::new();
        }
        let mut prefix = if prefix.starts_with('/') {
            prefix.to_string()
        } else {
            format!("/{prefix}")
        };
        if prefix.ends_with('/') {
            prefix.pop();
        }
        prefix
    }

    /// `--persistence.log`, which defaults to true, so `--no-persistence.log` must win over the
    /// default.
    pub fn persistence_log(&self) -> bool {
        self.persistence_log && !self.no_persistence_log
    }

    /// The replicated store's settings, with `--store.nats.url`.
    pub fn cluster_options(&self) -> Result<Option<crate::cluster::ClusterOptions>, String> {
        use crate::cluster::{Auth, ClusterOptions, TlsFiles};
        if self.nats_urls.is_empty() {
            return Ok(None);
        }
        if !self.persistence_file.is_empty() {
            return Err("--persistence.file and --store.nats.url exclude each other: the cluster store keeps the data; import a persistence file with --store.nats.import-file".into());
        }
        let file = |value: &str| (!value.is_empty()).then(|| std::path::PathBuf::from(value));
        let mut auths = Vec::new();
        if !self.nats_user.is_empty() || !self.nats_password_file.is_empty() {
            if self.nats_user.is_empty() || self.nats_password_file.is_empty() {
                return Err("--store.nats.user and --store.nats.password-file go together".into());
            }
            auths.push(Auth::UserPassword {
                user: self.nats_user.clone(),
                password_file: self.nats_password_file.clone().into(),
            });
        }
        auths.extend(file(&self.nats_token_file).map(Auth::Token));
        auths.extend(file(&self.nats_nkey_seed_file).map(Auth::NkeySeed));
        auths.extend(file(&self.nats_creds_file).map(Auth::Creds));
        if auths.len() > 1 {
            return Err("give one way of authenticating to NATS: a user and password, a token, an nkey seed or a creds file".into());
        }
        if self.nats_replicas == 0 {
            return Err("--store.nats.replicas must be at least 1".into());
        }
        Ok(Some(ClusterOptions {
            urls: self.nats_urls.clone(),
            bucket: self.nats_bucket.clone(),
            replicas: self.nats_replicas,
            timeout: self.nats_timeout,
            tls: TlsFiles {
                ca: file(&self.nats_ca_file),
                cert: file(&self.nats_cert_file),
                key: file(&self.nats_key_file),
            },
            auth: auths.pop().unwrap_or_default(),
            import: file(&self.nats_import_file),
        }))
    }

    /// What the store enforces: expiry and limits.
    pub fn store_policy(&self) -> crate::store::Policy {
        crate::store::Policy {
            expire_after: self.expire_after,
            max_groups: self.max_groups,
            max_series: self.max_series,
            max_series_per_group: self.max_series_per_group,
        }
    }

    /// The bounds of every connection.
    pub fn connection_limits(&self) -> crate::connections::Limits {
        crate::connections::Limits {
            read_header_timeout: self.read_header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections as usize,
            max_header_bytes: usize::try_from(self.max_header_bytes).unwrap_or(usize::MAX),
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
        }
    }

    pub fn name_validation(&self) -> NameValidation {
        if self.enable_utf8_names {
            NameValidation::Utf8
        } else {
            NameValidation::Legacy
        }
    }

    /// The flags as upstream's status API and UI list them: every flag by name, values as
    /// strings, durations in Go's format.
    pub fn flag_values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("log.format", self.log_format.as_str().to_string()),
            ("log.level", self.log_level.as_str().to_string()),
            ("persistence.file", self.persistence_file.clone()),
            (
                "persistence.interval",
                go::format_duration(self.persistence_interval),
            ),
            ("persistence.log", self.persistence_log().to_string()),
            (
                "push.disable-consistency-check",
                self.disable_consistency_check.to_string(),
            ),
            ("push.enable-utf8-names", self.enable_utf8_names.to_string()),
            ("push.expire-after", go::format_duration(self.expire_after)),
            ("push.max-body-size", self.max_body_bytes.to_string()),
            (
                "push.max-buffered-size",
                self.max_buffered_bytes.to_string(),
            ),
            ("push.max-groups", self.max_groups.to_string()),
            ("push.max-series", self.max_series.to_string()),
            (
                "push.max-series-per-group",
                self.max_series_per_group.to_string(),
            ),
            ("store.nats.bucket", self.nats_bucket.clone()),
            ("store.nats.creds-file", self.nats_creds_file.clone()),
            ("store.nats.import-file", self.nats_import_file.clone()),
            (
                "store.nats.nkey-seed-file",
                self.nats_nkey_seed_file.clone(),
            ),
            ("store.nats.password-file", self.nats_password_file.clone()),
            ("store.nats.replicas", self.nats_replicas.to_string()),
            ("store.nats.timeout", go::format_duration(self.nats_timeout)),
            ("store.nats.tls.ca-file", self.nats_ca_file.clone()),
            ("store.nats.tls.cert-file", self.nats_cert_file.clone()),
            ("store.nats.tls.key-file", self.nats_key_file.clone()),
            ("store.nats.token-file", self.nats_token_file.clone()),
            ("store.nats.url", self.nats_urls.join(",")),
            ("store.nats.user", self.nats_user.clone()),
            ("tls.fips-strict", self.tls_fips_strict.to_string()),
            ("web.authz-file", self.authz_file.clone()),
            ("web.config.file", self.web_config_file.clone()),
            ("web.enable-admin-api", self.enable_admin_api.to_string()),
            ("web.enable-lifecycle", self.enable_lifecycle.to_string()),
            ("web.external-url", self.external_url.raw.clone()),
            (
                "web.http2-max-concurrent-streams",
                self.http2_max_concurrent_streams.to_string(),
            ),
            ("web.idle-timeout", go::format_duration(self.idle_timeout)),
            ("web.listen-address", self.listen_addresses.join(",")),
            ("web.max-connections", self.max_connections.to_string()),
            ("web.max-header-size", self.max_header_bytes.to_string()),
            (
                "web.read-body-timeout",
                go::format_duration(self.read_body_timeout),
            ),
            (
                "web.read-header-timeout",
                go::format_duration(self.read_header_timeout),
            ),
            ("web.route-prefix", self.route_prefix()),
            ("web.systemd-socket", self.systemd_socket().to_string()),
            ("web.telemetry-path", self.telemetry_path.clone()),
        ]
    }
}

/// `--help-long`: the help with every detail.
pub fn long_help() -> String {
    Cli::command().render_long_help().to_string()
}

/// `--help-man`: a man page in roff, made from the same flag definitions as `--help`.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let command = Cli::command().version(env!("CARGO_PKG_VERSION"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    Ok(page)
}

/// A command-line error worded as upstream's kingpin words it
/// (`pushgateway: error: unknown long flag '--bogus', try --help`), for operators and scripts
/// that know those messages.
pub fn usage_error(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let argument = context(ContextKind::InvalidArg);
    let flag = argument.split([' ', '=']).next().unwrap_or_default();
    let value = context(ContextKind::InvalidValue);
    let message = match err.kind() {
        ErrorKind::UnknownArgument if argument.starts_with("--") => {
            format!("unknown long flag '{flag}'")
        }
        ErrorKind::UnknownArgument if argument.starts_with('-') => {
            format!("unknown short flag '{flag}'")
        }
        ErrorKind::UnknownArgument => format!("unexpected {argument}"),
        ErrorKind::InvalidValue if value.is_empty() => {
            format!("expected argument for flag '{flag}'")
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            match std::error::Error::source(err) {
                Some(reason) => reason.to_string(),
                None => format!("unexpected {value}"),
            }
        }
        _ => err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string(),
    };
    format!("pushgateway: error: {message}, try --help")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
        }
    }
}

fn parse_log_level(value: &str) -> Result<LogLevel, String> {
    match value.to_ascii_lowercase().as_str() {
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        _ => Err(format!("unrecognized log level {value}")),
    }
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "logfmt" => Ok(LogFormat::Logfmt),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unrecognized log format {value}")),
    }
}

/// `--web.external-url`: kept as given (for display) and with its path extracted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalUrl {
    pub raw: String,
    pub path: String,
}

fn parse_external_url(value: &str) -> Result<ExternalUrl, String> {
    if value.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "invalid URL {value:?}: contains a space or control character"
        ));
    }
    let without_scheme = match value.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            // The authority ends at the first '/', '?' or '#'.
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            &rest[end..]
        }
        _ => value,
    };
    let path_end = without_scheme
        .find(['?', '#'])
        .unwrap_or(without_scheme.len());
    let path = percent_encoding::percent_decode_str(&without_scheme[..path_end])
        .decode_utf8()
        .map_err(|_| format!("invalid URL {value:?}: path is not UTF-8"))?;
    Ok(ExternalUrl {
        raw: value.to_string(),
        path: path.into_owned(),
    })
}

/// Parses a byte count: a number, optionally followed by `B`, `KiB`/`KB`, `MiB`/`MB` or
/// `GiB`/`GB` (all powers of 1024, as Prometheus' own size flags read them).
fn parse_byte_size(value: &str) -> Result<u64, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {value:?}: expected a number of bytes such as 64MiB"))?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => return Err(format!("invalid size {value:?}: unknown unit {unit:?}")),
    };
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("invalid size {value:?}: too large"))?;
    if bytes == 0 {
        return Err(format!("invalid size {value:?}: must be positive"));
    }
    Ok(bytes)
}

/// A timeout flag: a Go duration above zero (there is no "no timeout").
fn parse_timeout(value: &str) -> Result<Duration, String> {
    let duration = go::parse_duration(value)?;
    if duration.is_zero() {
        return Err(format!("invalid timeout {value:?}: must be above zero"));
    }
    Ok(duration)
}

/// `--web.max-header-size`: a size of at least 1KiB (no real request head is smaller), at
/// most 16MiB (HTTP/2's header list size is a 32-bit number, and more is no head).
fn parse_header_size(value: &str) -> Result<u64, String> {
    let bytes = parse_byte_size(value)?;
    if !(1 << 10..=16 << 20).contains(&bytes) {
        return Err(format!(
            "invalid size {value:?}: a request head limit must be between 1KiB and 16MiB"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut full = vec!["pushgateway"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).expect("valid arguments")
    }

    #[test]
    fn defaults_are_upstreams() {
        let cli = parse(&[]);
        assert_eq!(cli.listen_addresses, vec![":9091"]);
        assert_eq!(cli.telemetry_path, "/metrics");
        assert_eq!(cli.persistence_interval, Duration::from_secs(300));
        assert_eq!(cli.route_prefix(), "");
        assert!(!cli.enable_lifecycle && !cli.enable_admin_api);
        assert!(!cli.disable_consistency_check && !cli.enable_utf8_names);
        assert_eq!(cli.log_level, LogLevel::Info);
        assert_eq!(cli.log_format, LogFormat::Logfmt);
        assert_eq!(cli.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(
            cli.connection_limits(),
            crate::connections::Limits::default()
        );
        assert_eq!(cli.read_body_timeout, Duration::from_secs(60));
    }

    #[test]
    fn repeatable_listen_address_and_booleans() {
        let cli = parse(&[
            "--web.listen-address=127.0.0.1:1",
            "--web.listen-address",
            "[::1]:2",
            "--web.enable-lifecycle",
            "--web.enable-admin-api=true",
            "--push.disable-consistency-check",
            "--no-push.disable-consistency-check",
            "--no-persistence.log",
        ]);
        assert!(!cli.persistence_log());
        assert!(parse(&[]).persistence_log());
        assert!(parse(&["--no-persistence.log", "--persistence.log"]).persistence_log());
        assert_eq!(cli.listen_addresses, vec!["127.0.0.1:1", "[::1]:2"]);
        assert!(cli.enable_lifecycle);
        assert!(cli.enable_admin_api);
        assert!(!cli.disable_consistency_check);
    }

    #[test]
    fn systemd_socket_flag() {
        let flag = |cli: &Cli| {
            cli.flag_values()
                .into_iter()
                .find(|(name, _)| *name == "web.systemd-socket")
                .map(|(_, value)| value)
        };
        assert!(!parse(&[]).systemd_socket());
        assert_eq!(flag(&parse(&[])).as_deref(), Some("false"));
        let on = parse(&["--web.systemd-socket"]);
        assert!(on.systemd_socket());
        assert_eq!(flag(&on).as_deref(), Some("true"));
        assert!(!parse(&["--web.systemd-socket", "--no-web.systemd-socket"]).systemd_socket());
        assert!(parse(&["--no-web.systemd-socket", "--web.systemd-socket=true"]).systemd_socket());
    }

    #[test]
    fn informational_flags_act_in_command_line_order() {
        let info = |args: &[&str]| {
            let mut full = vec!["pushgateway"];
            full.extend_from_slice(args);
            Cli::parse_args(full).expect("valid arguments").info
        };
        assert_eq!(info(&[]), None);
        assert_eq!(info(&["--web.enable-lifecycle"]), None);
        assert_eq!(info(&["--version"]), Some(Info::Version));
        assert_eq!(info(&["--help-long"]), Some(Info::HelpLong));
        assert_eq!(info(&["--help-man"]), Some(Info::HelpMan));
        assert_eq!(info(&["--help-man", "--version"]), Some(Info::HelpMan));
        assert_eq!(info(&["--version", "--help-man"]), Some(Info::Version));
        assert_eq!(
            info(&["--log.level=debug", "--help-long", "--help-man"]),
            Some(Info::HelpLong)
        );
    }

    #[test]
    fn man_page_lists_every_visible_flag() {
        let page = String::from_utf8(man_page().expect("renders")).expect("UTF-8");
        assert!(page.contains(".TH pushgateway 1"), "{page}");
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS"] {
            assert!(page.contains(section), "{section} missing");
        }
        for argument in Cli::command().get_arguments() {
            let Some(long) = argument.get_long() else {
                continue;
            };
            // roff escapes '-' as '\-'.
            let escaped = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
            assert_eq!(
                page.contains(&escaped),
                !argument.is_hide_set(),
                "--{long} (hidden: {})",
                argument.is_hide_set()
            );
        }
        assert!(long_help().contains("--web.systemd-socket"));
    }

    #[test]
    fn route_prefix_normalisation() {
        assert_eq!(parse(&["--web.route-prefix=/"]).route_prefix(), "");
        assert_eq!(parse(&["--web.route-prefix=pg"]).route_prefix(), "/pg");
        assert_eq!(parse(&["--web.route-prefix=/pg/"]).route_prefix(), "/pg");
        assert_eq!(parse(&["--web.route-prefix=//pg"]).route_prefix(), "//pg");
        assert_eq!(
            parse(&["--web.external-url=http://example.com/pg/"]).route_prefix(),
            "/pg"
        );
        assert_eq!(
            parse(&[
                "--web.external-url=http://example.com/pg/",
                "--web.route-prefix=/other"
            ])
            .route_prefix(),
            "/other"
        );
        assert_eq!(
            parse(&["--web.external-url=http://example.com"]).route_prefix(),
            ""
        );
    }

    #[test]
    fn errors_read_like_kingpins() {
        let error = |args: &[&str]| {
            let mut full = vec!["pushgateway"];
            full.extend_from_slice(args);
            usage_error(&Cli::try_parse_from(full).unwrap_err())
        };
        assert_eq!(
            error(&["--bogus"]),
            "pushgateway: error: unknown long flag '--bogus', try --help"
        );
        assert_eq!(
            error(&["--bogus=1"]),
            "pushgateway: error: unknown long flag '--bogus', try --help"
        );
        assert_eq!(
            error(&["foo"]),
            "pushgateway: error: unexpected foo, try --help"
        );
        assert_eq!(
            error(&["--log.level=foo"]),
            "pushgateway: error: unrecognized log level foo, try --help"
        );
        assert_eq!(
            error(&["--persistence.interval=abc"]),
            "pushgateway: error: time: invalid duration \"abc\", try --help"
        );
        assert_eq!(
            error(&["--log.level"]),
            "pushgateway: error: expected argument for flag '--log.level', try --help"
        );
        assert_eq!(
            error(&["--web.enable-lifecycle=maybe"]),
            "pushgateway: error: unexpected maybe, try --help"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--persistence.interval=abc"][..],
            &["--log.level=foo"],
            &["--log.format=JSON"],
            &["--push.max-body-size=12XB"],
            &["--push.max-body-size=0"],
            &["--web.read-header-timeout=0s"],
            &["--web.idle-timeout=-1s"],
            &["--web.max-connections=0"],
            &["--web.max-header-size=100"],
            &["--web.max-header-size=1GiB"],
            &["--web.http2-max-concurrent-streams=0"],
            &["--push.max-buffered-size=0"],
            &["--web.external-url=http://a b"],
            &["--bogus"],
        ] {
            let mut full = vec!["pushgateway"];
            full.extend_from_slice(args);
            assert!(Cli::try_parse_from(full).is_err(), "{args:?} should fail");
        }
        assert_eq!(parse(&["--log.level=DEBUG"]).log_level, LogLevel::Debug);
        assert_eq!(parse(&["--push.max-body-size=1KiB"]).max_body_bytes, 1024);
    }
}
