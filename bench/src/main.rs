//! pgbench: a load generator for Pushgateways and a runner that benchmarks this gateway and
//! upstream's side by side. See bench/README.md.

mod load;
mod process;
mod report;
mod runner;
mod tls;
mod workload;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::load::{ConnMode, LoadSpec, RequestSpec, Target};
use crate::process::{Binary, Kind};
use crate::report::{Machine, Results};
use crate::runner::{Runner, Scenario, Settings};

#[derive(Parser)]
#[command(
    name = "pgbench",
    about = "Benchmarks Pushgateways: load generator and side-by-side runner"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the scenarios against ours and upstream, interleaved, and writes the results.
    Run(RunArgs),
    /// Sends load to one gateway (loopback only) and prints what it measured.
    Load(LoadArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// A few minutes instead of ~25: one round, short runs, data sets a tenth of the size.
    #[arg(long)]
    quick: bool,
    /// Seconds instead of minutes: one round, tiny data sets and runs, for CI to check that
    /// the harness still works (its numbers mean nothing).
    #[arg(long, conflicts_with = "quick")]
    smoke: bool,
    /// Scenarios to run, by number or name (comma-separated): 1 push, 2 latency, 3 scrape,
    /// 4 memory, 5 startup, 6 tls, 7 persistence, 8 fips, 9 limits, 10 cluster. Default: all.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Rounds per measurement (default: 3, quick: 1; start-up: at least 10, quick: 3).
    #[arg(long)]
    rounds: Option<usize>,
    /// Our binary; default: build it with `cargo build --release` and use target/release/pushgateway.
    #[arg(long)]
    ours: Option<PathBuf>,
    /// Upstream's binary.
    #[arg(long, default_value = "/usr/bin/prometheus-pushgateway")]
    upstream: PathBuf,
    /// Our FIPS build, for scenario 8; default: build it with `cargo build --release
    /// --features fips` into target/fips (needs Go and CMake; a long build).
    #[arg(long)]
    fips: Option<PathBuf>,
    /// Where to write results.json, results.md and the servers' logs
    /// (default: target/pgbench/<date>-<time>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory for temporary files (persistence files, certificates); must be on a real
    /// disk for the fsync measurements. Default: the system's temporary directory.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum BodyPreset {
    /// 60 lines, 20 families with one histogram (the push throughput body).
    Push60,
    /// 20 series in 4 families (the stored data sets' body).
    Load20,
    /// 3 series (the latency scenario's body).
    Small,
}

#[derive(clap::Args)]
struct LoadArgs {
    /// http://127.0.0.1:9091/metrics/job/x or https://localhost:9091/...
    url: String,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Body from a file.
    #[arg(long, conflicts_with = "body")]
    body_file: Option<PathBuf>,
    /// A built-in body.
    #[arg(long, value_enum)]
    body: Option<BodyPreset>,
    /// Append `/instance/c<client>` to the path, so that each client pushes to its own group.
    #[arg(long, conflicts_with = "per_request_group")]
    per_client_group: bool,
    /// Append `/instance/g<n>` to the path, n counting requests from 0, so that every request
    /// writes a group of its own (with `--requests N`: fills N groups).
    #[arg(long)]
    per_request_group: bool,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    #[arg(long, value_enum, default_value = "keep-alive")]
    conn: ConnMode,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Stop after this long (e.g. 10s, 500ms, 2m). Default 10s when --requests is not given.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    timeout: Duration,
    /// CA certificate (PEM) for https URLs.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Allow TLS session resumption on new connections.
    #[arg(long)]
    tls_resumption: bool,
    /// Offer only X25519 (not the post-quantum hybrid) for the TLS key exchange.
    #[arg(long)]
    x25519_only: bool,
    /// Offer only P-256 (secp256r1) for the TLS key exchange.
    #[arg(long, conflicts_with = "x25519_only")]
    p256_only: bool,
    /// user:password
    #[arg(long)]
    basic_auth: Option<String>,
    /// Extra header, "Name: value" (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Print the full report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgbench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.cmd {
        Cmd::Run(args) => run(rt, args),
        Cmd::Load(args) => load_cmd(rt, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

fn build_ours(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("pgbench: cargo build --release -p pushgateway");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "pushgateway",
            "--bin",
            "pushgateway",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --release failed ({status})"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join("pushgateway"))
}

/// `cargo build --release --features fips` into its own target directory, so that the
/// default build's artifacts stay as they are.
fn build_fips(root: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("fips");
    eprintln!(
        "pgbench: cargo build --release --features fips (into {})",
        target.display()
    );
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--features",
            "fips",
            "-p",
            "pushgateway",
            "--bin",
            "pushgateway",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build --release --features fips failed ({status})"
        ));
    }
    Ok(target.join("release").join("pushgateway"))
}

fn git_description(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&[
                "status",
                "--porcelain",
                "--",
                "src",
                "Cargo.toml",
                "Cargo.lock",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("git {rev} with uncommitted changes")
            } else {
                format!("git {rev}")
            }
        }
        None => "unknown revision".into(),
    }
}

fn run(rt: tokio::runtime::Runtime, args: RunArgs) -> Result<ExitCode, String> {
    let mut selected = BTreeSet::new();
    for s in &args.scenarios {
        selected.insert(Scenario::parse(s)?);
    }
    if selected.is_empty() {
        selected.extend(Scenario::ALL);
    }
    process::install_signal_handler(&rt)?;
    let root = workspace_root();
    let (ours_path, ours_source) = match &args.ours {
        Some(p) => (
            p.clone(),
            format!("given with --ours; work tree at {}", git_description(&root)),
        ),
        None => (build_ours(&root)?, git_description(&root)),
    };
    let ours = Binary::new(Kind::Ours, ours_path)?;
    let upstream = Binary::new(Kind::Upstream, args.upstream.clone())?;
    let fips = if selected.contains(&Scenario::Fips) {
        let path = match &args.fips {
            Some(p) => p.clone(),
            None => build_fips(&root)?,
        };
        Some(Binary::new(Kind::Ours, path)?)
    } else {
        None
    };
    let work_parent = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("pgbench-")
        .tempdir_in(&work_parent)
        .map_err(|e| format!("creating a directory in {}: {e}", work_parent.display()))?;
    process::register_cleanup_dir(work.path());
    let started = report::utc_now();
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp: String = started
            .chars()
            .map(|c| if c == ' ' { '-' } else { c })
            .filter(|c| *c != ':')
            .collect();
        root.join("target").join("pgbench").join(stamp)
    });
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let settings = Settings::new(args.quick, args.smoke, args.rounds);
    let command = format!(
        "pgbench {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    let machine = Machine::detect();
    eprintln!("pgbench: {}", machine.line());
    eprintln!(
        "pgbench: ours {} ({}), {}",
        ours.path.display(),
        ours.version,
        ours_source
    );
    eprintln!(
        "pgbench: upstream {} ({})",
        upstream.path.display(),
        upstream.version
    );
    eprintln!("pgbench: results in {}", out.display());
    let res = Results {
        started_utc: started,
        finished_utc: None,
        command,
        machine,
        ours: ours.clone(),
        ours_source,
        upstream: upstream.clone(),
        settings: serde_json::to_value(&settings).unwrap_or_default(),
        metrics: Vec::new(),
        samples: Vec::new(),
        rows: Vec::new(),
        targets: Vec::new(),
        notes: Vec::new(),
        errors: Vec::new(),
        load_average: Vec::new(),
    };
    if let Some(f) = &fips {
        eprintln!("pgbench: FIPS build {} ({})", f.path.display(), f.version);
    }
    let mut runner = Runner::new(
        rt,
        ours,
        upstream,
        settings,
        work.path().to_path_buf(),
        out,
        res,
    )?
    .with_fips(fips);
    runner.run(&selected);
    println!("{}", runner.res.markdown());
    eprintln!(
        "pgbench: wrote {0}/results.json and {0}/results.md",
        runner.out_dir().display()
    );
    let failed = !runner.res.errors.is_empty();
    drop(runner);
    drop(work);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn load_cmd(rt: tokio::runtime::Runtime, args: LoadArgs) -> Result<ExitCode, String> {
    let (https, rest) = if let Some(r) = args.url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = args.url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "URL must start with http:// or https://: {}",
            args.url
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>()
                .map_err(|_| format!("bad port in {}", args.url))?,
        ),
        None => (authority, if https { 443 } else { 80 }),
    };
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("host must be localhost or an IP address: {host}"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "pgbench only sends load to loopback addresses, not {ip}"
        ));
    }
    let mut target = Target::plain(SocketAddr::new(ip, port));
    if https {
        let ca = args
            .cacert
            .as_deref()
            .ok_or("an https URL needs --cacert")?;
        let client = match (&args.cert, &args.key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        let kx = if args.x25519_only {
            tls::Kx::X25519
        } else if args.p256_only {
            tls::Kx::P256
        } else {
            tls::Kx::Default
        };
        let config = tls::client_config(ca, client, args.tls_resumption, kx)?;
        target.tls = Some(tls::tls_target(config, host)?);
    }
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("bad method {}", args.method))?;
    let body = match (&args.body_file, args.body) {
        (Some(f), _) => {
            Bytes::from(std::fs::read(f).map_err(|e| format!("reading {}: {e}", f.display()))?)
        }
        (None, Some(BodyPreset::Push60)) => workload::push_body(1),
        (None, Some(BodyPreset::Load20)) => workload::load_body(1),
        (None, Some(BodyPreset::Small)) => workload::small_body(1),
        (None, None) => Bytes::new(),
    };
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header must be \"Name: value\": {h}"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("bad header name in {h}"))?;
        let value =
            HeaderValue::from_str(value.trim()).map_err(|_| format!("bad header value in {h}"))?;
        headers.append(name, value);
    }
    let path = path.trim_end_matches('/').to_string();
    let per_client = args.per_client_group;
    let per_request = args.per_request_group;
    let body_preset = args.body;
    let template = RequestSpec {
        method,
        path: if path.is_empty() { "/".into() } else { path },
        headers,
        body,
    };
    let mut spec = LoadSpec::new(
        target,
        args.clients,
        Arc::new(move |client, seq| {
            let mut r = template.clone();
            if per_client {
                r.path = format!("{}/instance/c{client}", r.path);
            } else if per_request {
                r.path = format!("{}/instance/g{seq}", r.path);
                // Built-in bodies vary with the group, as the runner's data sets do.
                r.body = match body_preset {
                    Some(BodyPreset::Push60) => workload::push_body(seq),
                    Some(BodyPreset::Load20) => workload::load_body(seq),
                    Some(BodyPreset::Small) => workload::small_body(seq),
                    None => r.body,
                };
            }
            r
        }),
    );
    spec.conn = args.conn;
    spec.max_requests = args.requests;
    spec.duration = args.duration.or(if args.requests.is_none() {
        Some(Duration::from_secs(10))
    } else {
        None
    });
    spec.timeout = args.timeout;
    if let Some(ua) = &args.basic_auth {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(ua)
        );
        spec.authorization = Some(HeaderValue::from_str(&v).map_err(|e| e.to_string())?);
    }
    let report = rt.block_on(load::run(spec));
    let mut text = String::new();
    if args.json {
        text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    } else {
        text.push_str(&report.line());
        if let Some(t) = &report.tls {
            text.push_str(&format!(
                "\nTLS: {} {} {}",
                t.version, t.cipher_suite, t.kx_group
            ));
        }
        text.push_str(&format!(
            "\nconnections: {}, 2xx body bytes: {}",
            report.connections, report.ok_body_bytes
        ));
    }
    // A reader that went away (`| head -1`) is no reason to fail.
    let _ = writeln!(std::io::stdout(), "{text}");
    Ok(if report.failures() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
