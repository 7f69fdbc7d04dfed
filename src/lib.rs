//! A Prometheus Pushgateway: a drop-in replacement for the upstream Go binary, with the same
//! flags, HTTP API and behaviour.
//!
//! Data flows one way. A push: `http` reads the request, `decode` parses the body, `store`
//! checks it and hands it to its backend (`persist` for `--persistence.file`), which says when
//! it is done. A scrape: `http` takes a snapshot of the store, and `encode` renders it (the
//! exposition, or the JSON API and the web UI). `go` (Go's text conventions) and `model` are
//! leaves every layer uses.

pub mod alloc;
pub mod authz;
pub mod cli;
pub mod cluster;
pub mod connections;
pub mod decode;
pub mod encode;
pub mod expiry;
pub mod fips;
pub mod go;
pub mod http;
pub mod listen;
pub mod logging;
pub mod model;
pub mod persist;
pub mod probe;
pub mod reload;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod web_config;

/// Runs the gateway for a parsed command line until it is told to stop.
pub async fn run(cli: cli::Cli) -> Result<(), Box<dyn std::error::Error>> {
    let stop = server::termination_signal();
    let build = telemetry::BuildInfo::current();
    let gateway = server::Gateway::new(&cli)?;
    let addresses: Vec<String> = gateway
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(
        version = build.version,
        revision = build.revision,
        listen = %addresses.join(","),
        tls = gateway.tls(),
        fips = build.fips,
        crypto_module = %build.crypto_module,
        crypto_certificate = %build.crypto_certificate,
        persistence_file = %cli.persistence_file,
        "starting pushgateway"
    );
    gateway.serve(stop).await?;
    Ok(())
}
