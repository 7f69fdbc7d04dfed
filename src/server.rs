//! Start-up and shutdown: builds the gateway from the command line, opens its listeners (bound
//! or inherited from systemd, see `listen`), serves until SIGTERM, SIGINT or `/-/quit`, then
//! stops gracefully.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::authz::Authorizer;
use crate::cli::Cli;
use crate::cluster::Cluster;
use crate::connections::{Connections, Limits};
use crate::encode::exposition::ExpositionCache;
use crate::http::router::Router;
use crate::http::{self, AppState, Options, PageSettings, StatusInfo};
use crate::listen::{self, ListenError};
use crate::model::Timestamp;
use crate::persist::{Durability, Outcome, Persistence};
use crate::store::{Store, View};
use crate::telemetry::{BuildInfo, Telemetry};
use crate::web_config::{Acceptor, CertificateTrust, TlsPolicy, TrustError, WebSecurity};

/// How long a graceful shutdown waits for requests in flight before it closes connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("invalid --web.telemetry-path {0:?}: it must start with '/' (after the route prefix)")]
    TelemetryPath(String),
    #[error(transparent)]
    Persistence(#[from] crate::persist::PersistError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("{0}")]
    Flags(String),
    #[error(transparent)]
    Fips(#[from] crate::fips::NotInFipsMode),
    #[error("invalid --web.config.file {path:?}: {source}")]
    WebConfig {
        path: String,
        source: crate::web_config::WebConfigError,
    },
    #[error(
        "--push.max-buffered-size={buffered} cannot hold one push of --push.max-body-size={body} besides the eighth it keeps for small pushes: give at least {needed}"
    )]
    BufferedSize {
        buffered: u64,
        body: u64,
        needed: u64,
    },
    #[error("invalid --web.authz-file {path:?}: {source}")]
    Authz {
        path: String,
        source: crate::authz::AuthzError,
    },
    #[error("--web.authz-file {authz:?} does not fit --web.config.file {web:?}: {source}")]
    CertificateTrust {
        authz: String,
        web: String,
        source: TrustError,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("HTTP server on {address} failed: {source}")]
pub struct ServeError {
    address: SocketAddr,
    source: std::io::Error,
}

/// A gateway whose listeners are bound, ready to serve.
pub struct Gateway {
    state: Arc<AppState>,
    listeners: Vec<TcpListener>,
    security: Option<Arc<WebSecurity>>,
    persistence: Option<Arc<Persistence>>,
    /// With `--store.nats.url`, the replicated store's backend, whose tasks `serve` runs.
    cluster: Option<Arc<Cluster>>,
    /// Whether the recovered state should be compacted into a snapshot right away.
    compact_now: bool,
    limits: Limits,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(cli: &Cli) -> Result<Gateway, StartError> {
        let prefix = cli.route_prefix();
        let telemetry_path = join_path(&prefix, &cli.telemetry_path);
        if !telemetry_path.starts_with('/') {
            return Err(StartError::TelemetryPath(cli.telemetry_path.clone()));
        }
        if http::BodyBudget::large_share(cli.max_buffered_bytes) < cli.max_body_bytes {
            return Err(StartError::BufferedSize {
                buffered: cli.max_buffered_bytes,
                body: cli.max_body_bytes,
                needed: cli.max_body_bytes.div_ceil(7) * 8,
            });
        }
        let started = Timestamp::now();
        crate::fips::check_module()?;
        let build = BuildInfo::current();
        let telemetry = Arc::new(Telemetry::new(build.clone()));
        telemetry.set(crate::telemetry::TLS_FIPS_MODE, &[], 0.0);
        let trust = Arc::new(CertificateTrust::default());
        let authz = if cli.authz_file.is_empty() {
            None
        } else {
            let path = std::path::Path::new(&cli.authz_file);
            let authz =
                Authorizer::start(path, trust.clone(), telemetry.clone()).map_err(|source| {
                    StartError::Authz {
                        path: cli.authz_file.clone(),
                        source,
                    }
                })?;
            if cli.web_config_file.is_empty() {
                tracing::warn!(
                    "--web.authz-file without --web.config.file: requesters have no client certificate or user, so only rules for anyone can apply"
                );
            }
            Some(authz)
        };
        let open_paths = if authz
            .as_ref()
            .is_some_and(|a| a.unauthenticated_health_checks())
        {
            vec![format!("{prefix}/-/healthy"), format!("{prefix}/-/ready")]
        } else {
            Vec::new()
        };
        let security = if cli.web_config_file.is_empty() {
            None
        } else {
            let path = std::path::Path::new(&cli.web_config_file);
            let policy = TlsPolicy {
                fips_strict: cli.tls_fips_strict,
                ..TlsPolicy::default()
            };
            let security =
                WebSecurity::start(path, policy, open_paths, trust.clone(), telemetry.clone())
                    .map_err(|source| StartError::WebConfig {
                        path: cli.web_config_file.clone(),
                        source,
                    })?;
            Some(security)
        };
        trust
            .check()
            .map_err(|source| StartError::CertificateTrust {
                authz: cli.authz_file.clone(),
                web: cli.web_config_file.clone(),
                source,
            })?;
        let listeners = if cli.systemd_socket() {
            tracing::info!("Listening on systemd activated listeners instead of port listeners.");
            listen::systemd_listeners()?
        } else {
            cli.listen_addresses
                .iter()
                .map(|address| listen::bind(address))
                .collect::<Result<_, _>>()?
        };
        let mut own_families = Telemetry::own_families();
        own_families.sort_by_key(|f| f.name);
        let view = Arc::new(View::new(
            &own_families,
            !cli.disable_consistency_check,
            cli.store_policy(),
        ));
        let cluster_options = cli.cluster_options().map_err(StartError::Flags)?;
        let mut cluster = None;
        let (store, persistence, compact_now) = if let Some(options) = cluster_options {
            let backend = Cluster::new(options, view.clone(), telemetry.clone())?;
            cluster = Some(backend.clone());
            (Store::new(view, backend), None, false)
        } else if cli.persistence_file.is_empty() {
            (Store::in_memory(view), None, false)
        } else {
            let durability = if cli.persistence_log() {
                Durability::Log
            } else {
                Durability::Snapshots
            };
            let (persistence, outcome) = Persistence::open(
                std::path::Path::new(&cli.persistence_file),
                durability,
                cli.persistence_interval,
                telemetry.clone(),
                view.clone(),
            )?;
            (
                Store::new(view, persistence.clone()),
                Some(persistence),
                outcome != Outcome::Clean && outcome != Outcome::Empty,
            )
        };
        let (shutdown_sender, shutdown) = tokio::sync::watch::channel(false);
        let body_budget = http::BodyBudget::new(
            cli.max_buffered_bytes,
            cli.max_body_bytes,
            telemetry.clone(),
        );
        let state = Arc::new(AppState {
            authz,
            store: Arc::new(store),
            telemetry,
            router: Router::new(&prefix, &telemetry_path, cli.enable_admin_api),
            exposition: ExpositionCache::default(),
            own_families,
            options: Options {
                validation: cli.name_validation(),
                max_body_bytes: cli.max_body_bytes,
                read_body_timeout: cli.read_body_timeout,
                enable_lifecycle: cli.enable_lifecycle,
            },
            body_budget,
            shutdown: shutdown_sender,
            status: StatusInfo {
                build_information: build.status_entries(),
                flags: cli.flag_values(),
                start_time: started,
            },
            api_metrics: Default::default(),
            page: PageSettings {
                base: page_base(&cli.external_url.path),
                cache_buster: format!("{}-{}", build.version, build.revision),
            },
        });
        Ok(Gateway {
            state,
            listeners,
            security,
            persistence,
            cluster,
            compact_now,
            limits: cli.connection_limits(),
            shutdown,
        })
    }

    /// The addresses actually bound (with the ports chosen for `:0`).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Whether the listeners speak TLS.
    pub fn tls(&self) -> bool {
        self.security.as_ref().is_some_and(|s| s.tls_enabled())
    }

    /// Serves until `stop` completes or `/-/quit` is called, then shuts down gracefully:
    /// listeners close, requests in flight finish (up to a grace period).
    pub async fn serve(self, stop: impl Future<Output = ()>) -> Result<(), ServeError> {
        let app = http::service(self.state.clone(), self.security.clone());
        let acceptor = Acceptor::new(self.security.clone(), self.state.telemetry.clone());
        let tls = self.tls();
        let http2 = tls && self.security.as_ref().is_some_and(|s| s.http2());
        let watcher = self.security.clone().map(|s| tokio::spawn(s.watch()));
        let authz_watcher = self.state.authz.clone().map(|a| tokio::spawn(a.watch()));
        let persister = self.persistence.clone().map(|p| {
            if self.compact_now {
                let p = p.clone();
                tokio::task::spawn_blocking(move || p.checkpoint());
            }
            tokio::spawn(p.run())
        });
        let replicator = self.cluster.clone().map(|c| tokio::spawn(c.run()));
        // Before the first request: a group past its deadline is never served.
        crate::expiry::sweep(&self.state.store, &self.state.telemetry).await;
        let expirer = tokio::spawn(crate::expiry::run(
            self.state.store.clone(),
            self.state.telemetry.clone(),
        ));
        crate::connections::raise_descriptor_limit(&self.limits);
        let connections = Connections::new(self.limits, self.state.telemetry.clone());
        let mut servers = tokio::task::JoinSet::new();
        for listener in self.listeners {
            let address = listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            tracing::info!(address = %address, tls, http2, "Listening on");
            let serving = connections
                .clone()
                .serve(listener, acceptor.clone(), app.clone());
            servers.spawn(async move {
                serving
                    .await
                    .map_err(|source| ServeError { address, source })
            });
        }
        let mut quit = self.shutdown.clone();
        let failure = tokio::select! {
            () = stop => None,
            _ = quit.wait_for(|quit| *quit) => None,
            Some(result) = servers.join_next() => result.ok().and_then(Result::err),
        };
        connections.shutdown(SHUTDOWN_GRACE).await;
        while let Some(result) = servers.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::error!(err = %err, "HTTP server failed while stopping");
            }
        }
        for task in [watcher, authz_watcher, Some(expirer), replicator]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        if let Some(persister) = persister {
            persister.abort();
        }
        if let Some(persistence) = self.persistence {
            let _ = tokio::task::spawn_blocking(move || persistence.shutdown()).await;
        }
        tracing::info!("HTTP server stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// The web UI's base for links: the path of `--web.external-url` as a route prefix is
/// normalised, or `.` (links relative to the page) when it has none, as upstream.
fn page_base(external_path: &str) -> String {
    let trimmed = external_path.trim_end_matches('/');
    if trimmed.is_empty() {
        ".".to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// `path.Join(prefix, path)` as Go computes it: joined with `/`, cleaned, trailing `/` dropped.
fn join_path(prefix: &str, path: &str) -> String {
    let joined = match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{path}"),
    };
    if joined.is_empty() {
        return String::new();
    }
    let absolute = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let body = parts.join("/");
    if absolute { format!("/{body}") } else { body }
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not when the future is
/// first polled, so that a signal arriving while the gateway starts up (after it already
/// answers `/-/ready`) still stops it gracefully, with the final snapshot.
pub fn termination_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn received(signal: std::io::Result<Signal>, name: &str) {
        match signal {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(err = %err, "cannot listen for {name}");
                std::future::pending::<()>().await;
            }
        }
    }
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        tokio::select! {
            () = received(interrupt, "SIGINT") => {}
            () = received(terminate, "SIGTERM") => {}
        }
        tracing::info!("received SIGINT/SIGTERM; exiting gracefully...");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_join() {
        assert_eq!(join_path("", "/metrics"), "/metrics");
        assert_eq!(join_path("", "/foo/"), "/foo");
        assert_eq!(join_path("/pg", "/metrics"), "/pg/metrics");
        assert_eq!(join_path("/pg", "metrics"), "/pg/metrics");
        assert_eq!(join_path("", "metrics"), "metrics");
    }
}
