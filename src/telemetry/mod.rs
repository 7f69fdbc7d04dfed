//! The gateway's own metrics: build information, HTTP request counts, push latency and size,
//! and the standard process metrics. They are merged into every scrape, and pushed families
//! must not contradict them.
//!
//! prometheus-client is not used here. Its text 0.0.4 and protobuf encoders (0.26) are not
//! byte-compatible with upstream's output (they write `2.0` where Go writes `2`, and add a `.`
//! to every help text), it has no summary (upstream's push duration and size are summaries),
//! and its families cannot be read back: these families must be merged with pushed ones into
//! one sorted exposition, rendered by the same encoders, and take part in the same consistency
//! rules. A map of values under a lock does the job.

pub mod process;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::proto::{
    Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};
use crate::store::OwnFamily;

pub const AUTHZ_DENIED: &str = "pushgateway_authz_denied_total";
pub const AUTHZ_LAST_RELOAD_OK: &str = "pushgateway_authz_last_reload_successful";
pub const AUTHZ_LAST_RELOAD_TIME: &str = "pushgateway_authz_last_reload_success_timestamp_seconds";
pub const AUTHZ_RELOADS: &str = "pushgateway_authz_reloads_total";
pub const BUILD_INFO: &str = "pushgateway_build_info";
pub const HTTP_CONNECTIONS: &str = "pushgateway_http_connections";
pub const HTTP_CONNECTIONS_CLOSED: &str = "pushgateway_http_connections_closed_total";
pub const HTTP_REQUESTS: &str = "pushgateway_http_requests_total";
pub const HTTP_REJECTED: &str = "pushgateway_http_requests_rejected_total";
pub const PUSH_DURATION: &str = "pushgateway_http_push_duration_seconds";
pub const PUSH_REFUSED: &str = "pushgateway_push_refused_total";
pub const PUSH_BUFFERED_BYTES: &str = "pushgateway_push_buffered_bytes";
pub const GROUPS_EXPIRED: &str = "pushgateway_groups_expired_total";
pub const STORE_GROUPS: &str = "pushgateway_store_groups";
pub const STORE_SERIES: &str = "pushgateway_store_series";
pub const PUSH_SIZE: &str = "pushgateway_http_push_size_bytes";
pub const TLS_CONNECTIONS: &str = "pushgateway_tls_connections_total";
pub const TLS_HANDSHAKE_ERRORS: &str = "pushgateway_tls_handshake_errors_total";
pub const TLS_FIPS_MODE: &str = "pushgateway_tls_fips_mode";
pub const WEB_CONFIG_RELOADS: &str = "pushgateway_web_config_reloads_total";
pub const PERSISTENCE_ERRORS: &str = "pushgateway_persistence_errors_total";
pub const CLUSTER_APPLIED_REVISION: &str = "pushgateway_cluster_applied_revision";
pub const CLUSTER_CAS_RETRIES: &str = "pushgateway_cluster_cas_retries_total";
pub const CLUSTER_CONFLICTS_TOTAL: &str = "pushgateway_cluster_conflicts_total";
pub const CLUSTER_CONNECTED: &str = "pushgateway_cluster_connected";
pub const CLUSTER_LEFT_OUT: &str = "pushgateway_cluster_families_left_out";
pub const CLUSTER_READY: &str = "pushgateway_cluster_ready";
pub const CLUSTER_REVISION_LAG: &str = "pushgateway_cluster_revision_lag";
pub const CLUSTER_TIME_TO_READY: &str = "pushgateway_cluster_time_to_ready_seconds";
pub const CLUSTER_VIEW_AGE: &str = "pushgateway_cluster_view_age_seconds";
pub const PERSISTENCE_FAILING_SINCE: &str =
    "pushgateway_persistence_failing_since_timestamp_seconds";
pub const PERSISTENCE_FAULT: &str = "pushgateway_persistence_fault";
pub const PERSISTENCE_HEALTHY: &str = "pushgateway_persistence_healthy";
pub const PERSISTENCE_WITHDRAWN: &str = "pushgateway_persistence_withdrawn_changes_total";
pub const PERSISTENCE_FSYNC_DURATION: &str = "pushgateway_persistence_fsync_duration_seconds";
pub const PERSISTENCE_LAST_SNAPSHOT: &str =
    "pushgateway_persistence_last_snapshot_timestamp_seconds";
pub const PERSISTENCE_LOG_BYTES: &str = "pushgateway_persistence_log_bytes";
pub const PERSISTENCE_RECOVERY: &str = "pushgateway_persistence_recovery_outcome";
pub const PERSISTENCE_SNAPSHOT_DURATION: &str = "pushgateway_persistence_snapshot_duration_seconds";
pub const WEB_CONFIG_LAST_RELOAD_OK: &str = "pushgateway_web_config_last_reload_successful";
pub const WEB_CONFIG_LAST_RELOAD_TIME: &str =
    "pushgateway_web_config_last_reload_success_timestamp_seconds";

const GATEWAY_FAMILIES: &[(&str, MetricType, &str)] = &[
    (
        CLUSTER_APPLIED_REVISION,
        MetricType::Gauge,
        "The last revision of the cluster store's bucket this replica's view has applied.",
    ),
    (
        CLUSTER_CAS_RETRIES,
        MetricType::Counter,
        "Changes planned again because a group changed in the cluster store since the plan (compare-and-set conflicts).",
    ),
    (
        CLUSTER_CONFLICTS_TOTAL,
        MetricType::Counter,
        "Metric families left out of the scrape because they clash with a group written earlier through another replica.",
    ),
    (
        CLUSTER_CONNECTED,
        MetricType::Gauge,
        "1 while the replica is connected to NATS, else 0.",
    ),
    (
        CLUSTER_LEFT_OUT,
        MetricType::Gauge,
        "Metric families left out of the scrape now because they clash with a group written earlier.",
    ),
    (
        CLUSTER_READY,
        MetricType::Gauge,
        "1 while the replica's view has caught up with the cluster store (/-/ready answers 200), else 0.",
    ),
    (
        CLUSTER_REVISION_LAG,
        MetricType::Gauge,
        "How many revisions the bucket is ahead of this replica's view, at the last look.",
    ),
    (
        CLUSTER_TIME_TO_READY,
        MetricType::Gauge,
        "How long the replica took to catch up with the cluster store after its start or last reconnect.",
    ),
    (
        CLUSTER_VIEW_AGE,
        MetricType::Gauge,
        "Seconds since this replica's view was last seen to match the cluster store.",
    ),
    (
        AUTHZ_DENIED,
        MetricType::Counter,
        "Requests refused by the authorization rules (--web.authz-file), by action (push, scrape, read, admin).",
    ),
    (
        AUTHZ_LAST_RELOAD_OK,
        MetricType::Gauge,
        "Whether the last reload of the authorization file succeeded (1) or was refused (0).",
    ),
    (
        AUTHZ_LAST_RELOAD_TIME,
        MetricType::Gauge,
        "Time of the last successful load of the authorization file.",
    ),
    (
        AUTHZ_RELOADS,
        MetricType::Counter,
        "Reloads of the authorization file after it changed, by result.",
    ),
    (
        PERSISTENCE_ERRORS,
        MetricType::Counter,
        "Failures to write, fsync or find the persistence files, by operation and kind of fault.",
    ),
    (
        PERSISTENCE_FAILING_SINCE,
        MetricType::Gauge,
        "When the current persistence fault began (0 while persistence works).",
    ),
    (
        PERSISTENCE_FAULT,
        MetricType::Gauge,
        "1 for the kind of the current persistence fault (disk_full, read_only, permission_denied, fsync_failed, file_vanished, io_error), else 0.",
    ),
    (
        PERSISTENCE_HEALTHY,
        MetricType::Gauge,
        "1 while changes can be kept on disk; 0 while persistence fails (then changes are refused in log mode, and snapshots are missing in snapshot mode).",
    ),
    (
        PERSISTENCE_FSYNC_DURATION,
        MetricType::Summary,
        "Time fsync took, by file (log, snapshot).",
    ),
    (
        PERSISTENCE_LAST_SNAPSHOT,
        MetricType::Gauge,
        "Time of the last successful snapshot of the store.",
    ),
    (
        PERSISTENCE_LOG_BYTES,
        MetricType::Gauge,
        "Size of the persistence log segment in use.",
    ),
    (
        PERSISTENCE_RECOVERY,
        MetricType::Gauge,
        "How start-up found the persisted state (empty, clean, torn_tail, corrupt, imported): 1 for the outcome.",
    ),
    (
        PERSISTENCE_SNAPSHOT_DURATION,
        MetricType::Gauge,
        "How long the last snapshot of the store took to write.",
    ),
    (
        PERSISTENCE_WITHDRAWN,
        MetricType::Counter,
        "Changes applied in memory and withdrawn again because the log could not keep them (their pushers got an error).",
    ),
    (
        BUILD_INFO,
        MetricType::Gauge,
        "A metric with a constant '1' value labeled by version, revision, branch, rustversion and target from which pushgateway was built, whether it is a FIPS build, the cryptographic module it links and that module's CMVP certificate (or none).",
    ),
    (
        PUSH_DURATION,
        MetricType::Summary,
        "HTTP request duration for pushes to the Pushgateway.",
    ),
    (
        PUSH_SIZE,
        MetricType::Summary,
        "HTTP request size for pushes to the Pushgateway.",
    ),
    (
        PUSH_REFUSED,
        MetricType::Counter,
        "Pushes refused by a limit or quota, by reason (max_groups, max_series, max_series_per_group, quota_groups, quota_series, max_buffered_size).",
    ),
    (
        PUSH_BUFFERED_BYTES,
        MetricType::Gauge,
        "Bytes of push bodies held in memory now (as read, and decompressed); at most --push.max-buffered-size.",
    ),
    (
        GROUPS_EXPIRED,
        MetricType::Counter,
        "Groups deleted because their last successful push was older than their expiry.",
    ),
    (STORE_GROUPS, MetricType::Gauge, "Groups the store holds."),
    (
        STORE_SERIES,
        MetricType::Gauge,
        "Series the store holds (pushed metrics; the push_time_seconds and push_failure_time_seconds gauges not counted).",
    ),
    (
        HTTP_REJECTED,
        MetricType::Counter,
        "HTTP requests refused before reaching a handler, by reason (rate_limited, unauthorized, client_certificate_required).",
    ),
    (
        HTTP_CONNECTIONS,
        MetricType::Gauge,
        "HTTP connections open (TLS handshakes included); at most --web.max-connections.",
    ),
    (
        HTTP_CONNECTIONS_CLOSED,
        MetricType::Counter,
        "Connections the gateway closed, by reason (header_timeout, idle_timeout, stalled, evicted to make room at --web.max-connections, cancelled_requests).",
    ),
    (
        HTTP_REQUESTS,
        MetricType::Counter,
        "Total HTTP requests processed by the Pushgateway, excluding scrapes.",
    ),
    (
        TLS_CONNECTIONS,
        MetricType::Counter,
        "TLS connections established, by negotiated protocol version, cipher suite and key exchange group.",
    ),
    (
        TLS_FIPS_MODE,
        MetricType::Gauge,
        "1 when every listener serves TLS through the FIPS-validated module in FIPS mode, else 0.",
    ),
    (
        TLS_HANDSHAKE_ERRORS,
        MetricType::Counter,
        "TLS handshakes that failed, including plain HTTP sent to a TLS listener.",
    ),
    (
        WEB_CONFIG_LAST_RELOAD_OK,
        MetricType::Gauge,
        "Whether the last reload of the web configuration file succeeded (1) or was refused (0).",
    ),
    (
        WEB_CONFIG_LAST_RELOAD_TIME,
        MetricType::Gauge,
        "Time of the last successful load of the web configuration file.",
    ),
    (
        WEB_CONFIG_RELOADS,
        MetricType::Counter,
        "Reloads of the web configuration file after it or a file it names changed, by result.",
    ),
];

/// Label pairs of one series of the gateway's own metrics.
type Labels = Vec<(&'static str, String)>;

/// Quantiles of the push summaries, as upstream's objectives.
const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];
/// Summaries describe the last ten minutes, as upstream's do.
const SUMMARY_MAX_AGE: Duration = Duration::from_secs(600);
/// Observations kept per summary, so that a burst of pushes cannot grow memory.
const SUMMARY_MAX_SAMPLES: usize = 2048;

/// What the binary was built from.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub branch: &'static str,
    pub build_user: &'static str,
    pub build_date: &'static str,
    pub rust_version: &'static str,
    pub target: &'static str,
    pub fips: bool,
    /// The cryptographic module linked, e.g. `AWS-LC FIPS module 3 (AWS-LC 3.6.0)`.
    pub crypto_module: String,
    /// The module's NIST CMVP certificate, `CMVP #5314`, or `none` (see `fips::certificate`).
    pub crypto_certificate: String,
}

impl BuildInfo {
    pub fn current() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("PUSHGATEWAY_REVISION"),
            branch: env!("PUSHGATEWAY_BRANCH"),
            build_user: env!("PUSHGATEWAY_BUILD_USER"),
            build_date: env!("PUSHGATEWAY_BUILD_DATE"),
            rust_version: env!("PUSHGATEWAY_RUSTC_VERSION"),
            target: env!("PUSHGATEWAY_TARGET"),
            fips: crate::fips::BUILD,
            crypto_module: crate::fips::module(),
            crypto_certificate: crate::fips::certificate(),
        }
    }

    /// The build information as the status API and page show it: upstream's keys where they
    /// apply (`goVersion` becomes `rustVersion`), plus the target and the FIPS facts.
    pub fn status_entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("branch", self.branch.to_string()),
            ("buildDate", self.build_date.to_string()),
            ("buildUser", self.build_user.to_string()),
            ("cryptoCertificate", self.crypto_certificate.clone()),
            ("cryptoModule", self.crypto_module.clone()),
            ("fips", self.fips.to_string()),
            ("revision", self.revision.to_string()),
            ("rustVersion", self.rust_version.to_string()),
            ("target", self.target.to_string()),
            ("version", self.version.to_string()),
        ]
    }

    /// The `--version` text, shaped like upstream's.
    pub fn version_text(&self) -> String {
        let rows = [
            ("build user", self.build_user.to_string()),
            ("build date", self.build_date.to_string()),
            ("rust version", self.rust_version.to_string()),
            ("platform", self.target.to_string()),
            ("fips", self.fips.to_string()),
            ("crypto module", self.crypto_module.clone()),
            ("certificate", self.crypto_certificate.clone()),
        ];
        let mut text = format!(
            "pushgateway, version {} (branch: {}, revision: {})\n",
            self.version, self.branch, self.revision
        );
        for (name, value) in rows {
            text.push_str(&format!("  {:<18}{value}\n", format!("{name}:")));
        }
        text
    }
}

pub struct Telemetry {
    build: BuildInfo,
    /// Counters and gauges by family name and labels.
    values: Mutex<BTreeMap<(&'static str, Labels), f64>>,
    /// Summaries by family name and labels.
    summaries: Mutex<BTreeMap<(&'static str, Labels), WindowedSummary>>,
}

impl Telemetry {
    pub fn new(build: BuildInfo) -> Self {
        Telemetry {
            build,
            values: Mutex::default(),
            summaries: Mutex::default(),
        }
    }

    pub fn build(&self) -> &BuildInfo {
        &self.build
    }

    /// Adds one to a counter series.
    pub fn increment(&self, family: &'static str, labels: &[(&'static str, &str)]) {
        self.add(family, labels, 1.0);
    }

    /// Adds to a counter series.
    pub fn add(&self, family: &'static str, labels: &[(&'static str, &str)], amount: f64) {
        let key = (
            family,
            labels.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        );
        *self.lock_values().entry(key).or_default() += amount;
    }

    /// Sets a gauge series.
    pub fn set(&self, family: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (
            family,
            labels.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        );
        self.lock_values().insert(key, value);
    }

    fn lock_values(&self) -> std::sync::MutexGuard<'_, BTreeMap<(&'static str, Labels), f64>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every family the gateway exposes about itself, whether or not it has values yet.
    pub fn own_families() -> Vec<OwnFamily> {
        GATEWAY_FAMILIES
            .iter()
            .chain(process::FAMILIES)
            .map(|&(name, kind, help)| OwnFamily { name, kind, help })
            .collect()
    }

    /// Counts one answered request; `method` is lower-case as upstream labels it.
    pub fn count_request(&self, handler: &'static str, method: &'static str, code: u16) {
        let code = code.to_string();
        self.increment(
            HTTP_REQUESTS,
            &[("code", &code), ("handler", handler), ("method", method)],
        );
    }

    /// Records one push (`put` or `post`), successful or not.
    pub fn observe_push(&self, method: &'static str, seconds: f64, size_bytes: f64) {
        self.observe(PUSH_DURATION, &[("method", method)], seconds);
        self.observe(PUSH_SIZE, &[("method", method)], size_bytes);
    }

    /// Adds an observation to a summary series.
    pub fn observe(&self, family: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (
            family,
            labels.iter().map(|(n, v)| (*n, v.to_string())).collect(),
        );
        let mut summaries = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        summaries
            .entry(key)
            .or_default()
            .observe(Instant::now(), value);
    }

    /// The current values, families sorted by name; families without values are left out.
    pub fn collect(&self) -> Vec<MetricFamily> {
        let mut families = vec![self.build_info()];
        let mut by_family: BTreeMap<&'static str, Vec<Metric>> = BTreeMap::new();
        for ((name, labels), value) in self.lock_values().iter() {
            let kind = GATEWAY_FAMILIES
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or(MetricType::Untyped, |(_, kind, _)| *kind);
            let mut metric = Metric {
                label: labels
                    .iter()
                    .map(|(n, v)| LabelPair::new(*n, v.clone()))
                    .collect(),
                ..Default::default()
            };
            match kind {
                MetricType::Counter => {
                    metric.counter = Some(Counter {
                        value: Some(*value),
                        ..Default::default()
                    })
                }
                _ => {
                    metric.gauge = Some(Gauge {
                        value: Some(*value),
                    })
                }
            }
            by_family.entry(name).or_default().push(metric);
        }
        families.extend(
            by_family
                .into_iter()
                .map(|(name, metrics)| family(name, metrics)),
        );
        let now = Instant::now();
        let mut summaries_by_family: BTreeMap<&'static str, Vec<Metric>> = BTreeMap::new();
        let mut summaries = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        for ((name, labels), summary) in summaries.iter_mut() {
            summaries_by_family.entry(name).or_default().push(Metric {
                label: labels
                    .iter()
                    .map(|(n, v)| LabelPair::new(*n, v.clone()))
                    .collect(),
                summary: Some(summary.snapshot(now)),
                ..Default::default()
            });
        }
        drop(summaries);
        families.extend(
            summaries_by_family
                .into_iter()
                .map(|(name, metrics)| family(name, metrics)),
        );
        families.extend(process::collect());
        families.retain(|f| !f.metric.is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        families
    }

    fn build_info(&self) -> MetricFamily {
        let b = &self.build;
        let labels = [
            ("branch", b.branch),
            ("crypto_certificate", b.crypto_certificate.as_str()),
            ("crypto_module", b.crypto_module.as_str()),
            ("fips", if b.fips { "true" } else { "false" }),
            ("revision", b.revision),
            ("rustversion", b.rust_version),
            ("target", b.target),
            ("version", b.version),
        ];
        family(
            BUILD_INFO,
            vec![Metric {
                label: labels.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect(),
                gauge: Some(Gauge { value: Some(1.0) }),
                ..Default::default()
            }],
        )
    }
}

fn family(name: &str, metrics: Vec<Metric>) -> MetricFamily {
    let (kind, help) = GATEWAY_FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, kind, help)| (*kind, *help))
        .unwrap_or((MetricType::Untyped, ""));
    MetricFamily {
        name: Some(name.to_string()),
        help: Some(help.to_string()),
        r#type: Some(kind as i32),
        metric: metrics,
        unit: None,
    }
}

/// A summary over a sliding window: exact quantiles of the recent observations, and a count and
/// sum over all time.
#[derive(Default)]
struct WindowedSummary {
    recent: VecDeque<(Instant, f64)>,
    count: u64,
    sum: f64,
}

impl WindowedSummary {
    fn observe(&mut self, now: Instant, value: f64) {
        self.count += 1;
        self.sum += value;
        if self.recent.len() == SUMMARY_MAX_SAMPLES {
            self.recent.pop_front();
        }
        self.recent.push_back((now, value));
    }

    fn snapshot(&mut self, now: Instant) -> Summary {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > SUMMARY_MAX_AGE)
        {
            self.recent.pop_front();
        }
        let mut values: Vec<f64> = self.recent.iter().map(|(_, v)| *v).collect();
        values.sort_by(f64::total_cmp);
        let quantile = |q: f64| -> f64 {
            if values.is_empty() {
                return f64::NAN;
            }
            let rank = (q * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1]
        };
        Summary {
            sample_count: Some(self.count),
            sample_sum: Some(self.sum),
            quantile: QUANTILES
                .iter()
                .map(|&q| Quantile {
                    quantile: Some(q),
                    value: Some(quantile(q)),
                })
                .collect(),
            created_timestamp: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_sorted_families_with_values_only() {
        let telemetry = Telemetry::new(BuildInfo::current());
        let names: Vec<String> = telemetry
            .collect()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert!(names.contains(&BUILD_INFO.to_string()));
        assert!(
            !names.contains(&HTTP_REQUESTS.to_string()),
            "no requests yet"
        );
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);

        telemetry.count_request("push", "put", 200);
        telemetry.count_request("push", "put", 200);
        telemetry.observe_push("put", 0.002, 300.0);
        let families = telemetry.collect();
        let requests = families.iter().find(|f| f.name() == HTTP_REQUESTS).unwrap();
        assert_eq!(
            requests.metric[0].counter.as_ref().unwrap().value,
            Some(2.0)
        );
        let duration = families.iter().find(|f| f.name() == PUSH_DURATION).unwrap();
        let summary = duration.metric[0].summary.as_ref().unwrap();
        assert_eq!(summary.sample_count, Some(1));
        assert_eq!(summary.quantile[1].value, Some(0.002));
    }

    #[test]
    fn summary_window_forgets_old_observations_but_not_the_count() {
        let mut summary = WindowedSummary::default();
        let start = Instant::now();
        summary.observe(start, 10.0);
        let later = start + SUMMARY_MAX_AGE + Duration::from_secs(1);
        summary.observe(later, 1.0);
        let s = summary.snapshot(later);
        assert_eq!(s.sample_count, Some(2));
        assert_eq!(s.sample_sum, Some(11.0));
        assert!(s.quantile.iter().all(|q| q.value == Some(1.0)));
    }
}
