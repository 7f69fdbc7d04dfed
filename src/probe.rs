//! `pushgateway healthcheck`: a health probe for images without a shell or `curl`, for Docker's
//! `HEALTHCHECK`, Compose's `healthcheck` and Kubernetes' exec probes.
//!
//! It sends one `GET /-/healthy` (or `/-/ready`) and exits 0 on a 2xx answer, 1 on anything else
//! (Docker reserves 2), with one line that says what happened. Everything it does is bounded by
//! `--timeout`.
//!
//! Upstream takes no positional arguments, so the word `healthcheck` in first place cannot mean
//! anything to upstream's command line: the gateway's own flags keep their meaning, and the
//! probe is a separate entry point that never starts a server.
//!
//! Where it probes, first that applies:
//! 1. `--url`, verified against `--ca-file` or else the system's trust store;
//! 2. the gateway's flags given to the probe itself (`--web.listen-address`,
//!    `--web.config.file`, `--web.route-prefix`, ...), read exactly as the gateway reads them;
//! 3. the flags of the gateway process beside it: the oldest process of this same program that
//!    is not a probe (in a container, PID 1), with relative paths taken from its working
//!    directory;
//! 4. the defaults (`http://127.0.0.1:9091/-/healthy`).
//!
//! In cases 2 to 4, a web configuration with TLS makes it HTTPS, and the server must present
//! exactly the certificate the configuration names (the probe reads the same files as the
//! gateway, so it needs no CA, and the listen address need not match the certificate's names).
//! When the configuration demands a client certificate, the probe shows the gateway's own
//! certificate and key, the only credentials a probe beside it can count on; that works when the
//! client CA issued them for client use too, otherwise give `--cert-file` and `--key-file`, or
//! open the health checks with `unauthenticated_health_checks` in the authorization file.
//!
//! TLS goes through the same crypto provider as the server: the FIPS module in a FIPS build,
//! where the probe, like the server, refuses to run outside FIPS mode.

use std::error::Error as StdError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, CommandFactory, FromArgMatches};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use tokio::net::TcpStream;

use crate::cli::Cli;
use crate::go::{format_duration, parse_duration};
use crate::web_config::{self, ServerIdentity, WebConfigFile};

/// The word that selects the probe: `pushgateway healthcheck [flags]`.
pub const SUBCOMMAND: &str = "healthcheck";

/// Why the probe failed: the one line it prints before exiting with 1.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    FipsModule(#[from] crate::fips::NotInFipsMode),
    #[error("cannot tell where the gateway listens: {0}")]
    Target(String),
    #[error("invalid --url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot read the web configuration {path}: {reason}")]
    WebConfig { path: String, reason: String },
    #[error("cannot read {what} {path}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("GET {url}: cannot connect: {reason}")]
    Connect { url: String, reason: String },
    #[error("GET {url}: TLS handshake failed: {reason}")]
    Handshake { url: String, reason: String },
    #[error("GET {url}: {reason}")]
    Request { url: String, reason: String },
    #[error("GET {url}: answered {status}{detail}")]
    Status {
        url: String,
        status: String,
        detail: String,
    },
    #[error("GET {url}: no answer within {timeout}")]
    Timeout { url: String, timeout: String },
}

/// The probe's own options; the gateway's flags, if any were given, are in `gateway`.
struct Options {
    url: Option<String>,
    ready: bool,
    timeout: Duration,
    ca_file: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
    server_name: Option<String>,
    gateway: Option<Cli>,
}

/// What to request, and how to trust the server.
struct Target {
    https: bool,
    host: String,
    port: u16,
    path: String,
    /// The certificate the gateway's web configuration names, which the server must present.
    pinned: Option<CertificateDer<'static>>,
    /// The gateway's own certificate and key, shown when its configuration demands one.
    own_identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// `--server-name`.
    server_name: Option<String>,
}

impl Target {
    /// The URL as the output names it; an IPv6 host in brackets.
    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Runs the probe for `args` (the program name first, `healthcheck` already taken out) and
/// prints its one line: on standard output when healthy, on standard error otherwise.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let options = match parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(err) => return fail(&err),
    };
    if let Err(err) = crate::fips::check_module() {
        return fail(&err.into());
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&ProbeError::Usage(format!("cannot start a runtime: {err}"))),
    };
    match runtime.block_on(probe(&options)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => fail(&err),
    }
}

fn fail(err: &ProbeError) -> ExitCode {
    eprintln!("pushgateway healthcheck: {err}");
    ExitCode::FAILURE
}

/// The probe's command line: its own options plus every flag of the gateway, hidden from its
/// help, so that the gateway's flags are read by the gateway's own parser. `None` after help.
fn parse(args: Vec<OsString>) -> Result<Option<Options>, ProbeError> {
    let mut matches = match command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(err) if err.use_stderr() => return Err(ProbeError::Usage(one_line(&err))),
        Err(help) => {
            let _ = help.print();
            return Ok(None);
        }
    };
    let gateway_flags_given = Cli::command()
        .get_arguments()
        .any(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine));
    let gateway =
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| ProbeError::Usage(one_line(&e)))?;
    Ok(Some(Options {
        url: matches.remove_one("url"),
        ready: matches.get_flag("ready"),
        timeout: matches
            .remove_one("timeout")
            .unwrap_or(Duration::from_secs(5)),
        ca_file: matches.remove_one("ca_file"),
        identity: matches
            .remove_one("cert_file")
            .zip(matches.remove_one("key_file")),
        server_name: matches.remove_one("server_name"),
        gateway: gateway_flags_given.then_some(gateway),
    }))
}

/// clap's message without its usage and help lines, on one line (Docker keeps the output).
fn one_line(err: &clap::Error) -> String {
    err.render()
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty() && !line.starts_with("Usage:") && !line.starts_with("For more")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn command() -> clap::Command {
    Cli::command()
        .name("pushgateway healthcheck")
        .bin_name("pushgateway healthcheck")
        .about(
            "Checks that a Pushgateway answers GET /-/healthy (or /-/ready) with 200 and exits 0, \
             else 1, with one line that says why. Without --url, it probes the gateway whose \
             flags it is given, or else the gateway process beside it (in a container, PID 1), \
             with that gateway's listen address, route prefix and web configuration.",
        )
        .mut_args(|arg| arg.hide(true))
        .arg(
            Arg::new("url")
                .long("url")
                .value_name("URL")
                .help("Probe this http:// or https:// URL instead (e.g. https://pgw.example:9091/-/ready)."),
        )
        .arg(
            Arg::new("ready")
                .long("ready")
                .action(ArgAction::SetTrue)
                .help("Probe /-/ready instead of /-/healthy."),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("DURATION")
                .default_value("5s")
                .value_parser(parse_duration)
                .help("Give up after this long: connecting, TLS and the answer together."),
        )
        .arg(
            Arg::new("ca_file")
                .long("ca-file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Verify the server against these CA certificates (PEM) and its name, instead of the certificate in the gateway's web configuration or, for --url, the system's trust store."),
        )
        .arg(
            Arg::new("cert_file")
                .long("cert-file")
                .value_name("FILE")
                .requires("key_file")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Client certificate (PEM) to show, with --key-file."),
        )
        .arg(
            Arg::new("key_file")
                .long("key-file")
                .value_name("FILE")
                .requires("cert_file")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Private key (PEM) of --cert-file."),
        )
        .arg(
            Arg::new("server_name")
                .long("server-name")
                .value_name("NAME")
                .help("Server name for TLS (SNI and, with --ca-file or --url, verification) instead of the host probed."),
        )
        .after_help(
            "The gateway's own flags (--web.listen-address, --web.config.file, \
             --web.route-prefix, --web.external-url, ...) are accepted too, and tell the probe \
             where that gateway listens.",
        )
}

/// One probe: where, then one request, all within the timeout.
async fn probe(options: &Options) -> Result<String, ProbeError> {
    let mut target = target(options)?;
    target.server_name = options.server_name.clone();
    let url = target.url();
    let tls = match target.https {
        true => Some(client_config(options, &target)?),
        false => None,
    };
    match tokio::time::timeout(options.timeout, request(&target, tls, &url)).await {
        Ok(Ok(status)) => Ok(format!(
            "ok: GET {url}: {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        )),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(ProbeError::Timeout {
            url,
            timeout: format_duration(options.timeout),
        }),
    }
}

fn target(options: &Options) -> Result<Target, ProbeError> {
    if let Some(url) = &options.url {
        return target_from_url(url);
    }
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let (gateway, dir) = match &options.gateway {
        Some(cli) => (cli.clone(), here),
        None => match gateway_beside() {
            Some(process) => {
                let cli = Cli::parse_args(&process.args).map_err(|e| {
                    ProbeError::Target(format!(
                        "the command line of the gateway (pid {}) does not parse: {}",
                        process.pid,
                        crate::cli::usage_error(&e)
                    ))
                })?;
                (cli, process.cwd.unwrap_or(here))
            }
            None => (
                Cli::parse_args(["pushgateway"]).map_err(|e| ProbeError::Usage(e.to_string()))?,
                here,
            ),
        },
    };
    target_from_gateway(&gateway, &dir, options.ready)
}

fn target_from_url(url: &str) -> Result<Target, ProbeError> {
    let invalid = |reason: &str| ProbeError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("the scheme must be http or https")),
    };
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), ToString::to_string);
    Ok(Target {
        https,
        host,
        port,
        path,
        pinned: None,
        own_identity: None,
        server_name: None,
    })
}

/// Where a gateway started with `cli` (in `dir`, for relative paths) can be reached from the
/// same host or container.
fn target_from_gateway(cli: &Cli, dir: &Path, ready: bool) -> Result<Target, ProbeError> {
    if cli.systemd_socket() {
        return Err(ProbeError::Target(
            "the gateway takes its sockets from systemd (--web.systemd-socket); give the probe --url"
                .into(),
        ));
    }
    let address = cli
        .listen_addresses
        .first()
        .ok_or_else(|| ProbeError::Target("no --web.listen-address".into()))?;
    let (host, port) =
        crate::listen::host_and_port(address).map_err(|e| ProbeError::Target(e.to_string()))?;
    // A wildcard address listens on loopback too.
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        host => host,
    };
    let mut target = Target {
        https: false,
        host: host.to_string(),
        port,
        path: format!(
            "{}/-/{}",
            cli.route_prefix(),
            if ready { "ready" } else { "healthy" }
        ),
        pinned: None,
        own_identity: None,
        server_name: None,
    };
    if cli.web_config_file.is_empty() {
        return Ok(target);
    }
    let path = dir.join(&cli.web_config_file);
    let web_config_error = |reason: String| ProbeError::WebConfig {
        path: path.display().to_string(),
        reason,
    };
    let content = std::fs::read_to_string(&path).map_err(|e| web_config_error(e.to_string()))?;
    let file = WebConfigFile::parse(&content, path.parent().unwrap_or(dir))
        .map_err(|e| web_config_error(e.to_string()))?;
    if let Some(tls) = file.tls_server_config.filter(web_config::is_enabled) {
        let identity = ServerIdentity::load(&tls).map_err(|e| web_config_error(e.to_string()))?;
        target.https = true;
        target.pinned = identity.chain.first().cloned();
        if identity.certificate_required {
            target.own_identity = Some((identity.chain, identity.key));
        }
    }
    Ok(target)
}

/// A process of this same program that is not a probe.
struct GatewayProcess {
    pid: u32,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
}

/// The gateway beside the probe: the oldest (lowest-numbered) process of this same program that
/// is not itself a probe. In a container that is PID 1, or the child of an init process.
fn gateway_beside() -> Option<GatewayProcess> {
    let own_exe = std::env::current_exe().ok()?;
    let own_pid = std::process::id();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != own_pid)
        .collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
        let args: Vec<OsString> = cmdline
            .split(|&b| b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| OsString::from(String::from_utf8_lossy(arg).into_owned()))
            .collect();
        let program = PathBuf::from(args.first()?);
        let same_program = match std::fs::read_link(dir.join("exe")) {
            Ok(exe) => exe == own_exe,
            // Another user's process: its program is not ours to see, so go by its name.
            Err(_) => program.file_name() == own_exe.file_name(),
        };
        let is_probe = args.get(1).is_some_and(|arg| arg == SUBCOMMAND);
        (same_program && !is_probe).then(|| GatewayProcess {
            pid,
            args,
            cwd: std::fs::read_link(dir.join("cwd")).ok(),
        })
    })
}

fn client_config(options: &Options, target: &Target) -> Result<Arc<ClientConfig>, ProbeError> {
    let provider = Arc::new(web_config::crypto_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Tls(e.to_string()))?;
    let builder = match (&options.ca_file, &target.pinned) {
        (Some(path), _) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates("--ca-file", path)? {
                roots
                    .add(cert)
                    .map_err(|e| ProbeError::Tls(format!("--ca-file {}: {e}", path.display())))?;
            }
            builder.with_root_certificates(roots)
        }
        (None, Some(pinned)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SameCertificate {
                expected: pinned.clone(),
                provider,
            })),
        (None, None) => {
            let mut roots = RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ProbeError::Tls(
                    "the system's trust store is empty or missing; give --ca-file".into(),
                ));
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut config = match (&options.identity, &target.own_identity) {
        (Some((cert_file, key_file)), _) => {
            let chain = read_certificates("--cert-file", cert_file)?;
            let key = std::fs::read(key_file)
                .map_err(|e| ProbeError::File {
                    what: "--key-file",
                    path: key_file.display().to_string(),
                    reason: e.to_string(),
                })
                .and_then(|pem| {
                    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ProbeError::File {
                        what: "--key-file",
                        path: key_file.display().to_string(),
                        reason: e.to_string(),
                    })
                })?;
            builder.with_client_auth_cert(chain, key)
        }
        (None, Some((chain, key))) => builder.with_client_auth_cert(chain.clone(), key.clone_key()),
        (None, None) => Ok(builder.with_no_client_auth()),
    }
    .map_err(|e| ProbeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if crate::fips::BUILD && !config.fips() {
        return Err(ProbeError::Tls(
            "the client configuration does not run in FIPS mode, and this is a FIPS build".into(),
        ));
    }
    Ok(Arc::new(config))
}

fn read_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ProbeError> {
    let error = |reason: String| ProbeError::File {
        what,
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Accepts the server when it presents exactly the certificate the gateway's web configuration
/// names (and proves it holds its key, which the handshake signature checks).
#[derive(Debug)]
struct SameCertificate {
    expected: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SameCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects, sends the GET and returns the status when it is a success; any other answer is an
/// error that names it.
async fn request(
    target: &Target,
    tls: Option<Arc<ClientConfig>>,
    url: &str,
) -> Result<StatusCode, ProbeError> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| ProbeError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    let request = Request::get(target.path.as_str())
        .header(header::HOST, target.authority())
        .header(
            header::USER_AGENT,
            concat!("pushgateway-healthcheck/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::Request {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let (status, body) = match tls {
        Some(config) => {
            let name = target_server_name(target, url)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| ProbeError::Handshake {
                    url: url.to_string(),
                    reason: explain(&e),
                })?;
            exchange(stream, request, url).await?
        }
        None => exchange(tcp, request, url).await?,
    };
    if status.is_success() {
        return Ok(status);
    }
    let mut detail = body.lines().next().unwrap_or_default().trim().to_string();
    if !detail.is_empty() {
        detail = format!(": {detail}");
    }
    if status == StatusCode::UNAUTHORIZED {
        detail.push_str(
            " (the web configuration asks for a password, which the probe does not have: open \
             the health checks with unauthenticated_health_checks in --web.authz-file)",
        );
    }
    Err(ProbeError::Status {
        url: url.to_string(),
        status: format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        ),
        detail,
    })
}

/// `--server-name`, or the host probed.
fn target_server_name(target: &Target, url: &str) -> Result<ServerName<'static>, ProbeError> {
    let name = target
        .server_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    ServerName::try_from(name.clone()).map_err(|e| ProbeError::Request {
        url: url.to_string(),
        reason: format!("invalid TLS server name {name:?}: {e}"),
    })
}

/// One HTTP/1.1 exchange on `io`: the status and the start of the body (for the message).
async fn exchange<S>(
    io: S,
    request: Request<Empty<Bytes>>,
    url: &str,
) -> Result<(StatusCode, String), ProbeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let failed = |err: &(dyn StdError + 'static)| ProbeError::Request {
        url: url.to_string(),
        reason: explain(err),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failed(&e))?;
    let connection = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), 1024)
        .collect()
        .await
        .map(|body| String::from_utf8_lossy(&body.to_bytes()).into_owned())
        .unwrap_or_default();
    connection.abort();
    Ok((status, body))
}

/// An error and its causes in one line, with a hint where rustls says what went wrong.
fn explain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    let mut line = parts.join(": ");
    if let Some(hint) = tls_error(err).and_then(hint) {
        line.push_str(&format!(" ({hint})"));
    }
    line
}

/// The rustls error behind an error, also when an `io::Error` carries it.
fn tls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

fn hint(err: &rustls::Error) -> Option<&'static str> {
    match err {
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => Some(
            "the gateway wants a client certificate it accepts: give the probe one with \
             --cert-file and --key-file, or open the health checks with \
             unauthenticated_health_checks in --web.authz-file",
        ),
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => {
            Some("the server does not present the certificate its web configuration names")
        }
        rustls::Error::InvalidCertificate(_) => {
            Some("the server's certificate is not trusted: give the CA with --ca-file")
        }
        _ => None,
    }
}
