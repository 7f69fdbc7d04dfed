//! The runner: starts both gateways, runs the scenarios interleaved (ours, upstream, ours,
//! upstream, ...), and writes the table and the raw numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use http::header::ACCEPT_ENCODING;
use serde::Serialize;
use serde_json::json;

use crate::load::{self, ConnMode, LoadReport, LoadSpec, RequestSpec, Target};
use crate::process::{Binary, Gateway, Kind, Memory};
use crate::report::{Better, Metric, Results};
use crate::tls::{self, CertFiles, WebConfig};
use crate::workload::{self, SERIES_PER_GROUP};

mod cluster;
mod fips;
mod limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Push,
    Latency,
    Scrape,
    Memory,
    Startup,
    Tls,
    Persistence,
    Fips,
    Limits,
    Cluster,
}

impl Scenario {
    pub const ALL: [Scenario; 10] = [
        Scenario::Push,
        Scenario::Latency,
        Scenario::Scrape,
        Scenario::Memory,
        Scenario::Startup,
        Scenario::Tls,
        Scenario::Persistence,
        Scenario::Fips,
        Scenario::Limits,
        Scenario::Cluster,
    ];

    pub fn parse(s: &str) -> Result<Scenario, String> {
        let s = s.trim().to_ascii_lowercase();
        for (i, sc) in Scenario::ALL.iter().enumerate() {
            if s == (i + 1).to_string() || s == sc.name() {
                return Ok(*sc);
            }
        }
        Err(format!(
            "unknown scenario {s:?}; use 1-10 or push, latency, scrape, memory, startup, tls, persistence, fips, limits, cluster"
        ))
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Push => "push",
            Scenario::Latency => "latency",
            Scenario::Scrape => "scrape",
            Scenario::Memory => "memory",
            Scenario::Startup => "startup",
            Scenario::Tls => "tls",
            Scenario::Persistence => "persistence",
            Scenario::Fips => "fips",
            Scenario::Limits => "limits",
            Scenario::Cluster => "cluster",
        }
    }
}

/// How much to measure.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub smoke: bool,
    /// Rounds of the throughput scenarios (1, 6, 7).
    pub rounds: usize,
    /// Rounds of the scenarios on stored data (2, 3) and of the restore measurement.
    pub stored_rounds: usize,
    pub startup_rounds: usize,
    pub clients: usize,
    pub push_duration_s: f64,
    pub short_duration_s: f64,
    pub warmup_s: f64,
    pub latency_requests: u64,
    pub latency_duration_s: f64,
    pub scrape_repeats: u64,
    pub scrape_budget_s: f64,
    /// Group counts (× 20 series) of each scenario.
    pub latency_groups: Vec<u64>,
    pub scrape_groups: Vec<u64>,
    pub memory_groups: Vec<u64>,
    pub restore_groups: u64,
    /// 8: groups (× 20 series) of the scrape over mTLS.
    pub fips_scrape_groups: u64,
    /// 9: groups (× 20 series) stored while pushes with and without limits are measured, and
    /// groups (of 3 series) that expire in one sweep.
    pub limits_groups: u64,
    pub expiry_groups: u64,
    /// 10: groups (× 20 series) in the bucket a new cluster replica catches up with.
    pub cluster_groups: u64,
    pub request_timeout_s: f64,
}

impl Settings {
    pub fn new(quick: bool, smoke: bool, rounds: Option<usize>) -> Settings {
        let mut s = if smoke {
            Settings {
                quick,
                smoke,
                rounds: 1,
                stored_rounds: 1,
                startup_rounds: 1,
                clients: 8,
                push_duration_s: 0.3,
                short_duration_s: 0.3,
                warmup_s: 0.1,
                latency_requests: 50,
                latency_duration_s: 0.5,
                scrape_repeats: 2,
                scrape_budget_s: 1.0,
                latency_groups: vec![0, 50],
                scrape_groups: vec![50],
                memory_groups: vec![50],
                restore_groups: 50,
                fips_scrape_groups: 50,
                limits_groups: 50,
                expiry_groups: 200,
                cluster_groups: 50,
                request_timeout_s: 60.0,
            }
        } else if quick {
            Settings {
                quick,
                smoke,
                rounds: 1,
                stored_rounds: 1,
                startup_rounds: 3,
                clients: 32,
                push_duration_s: 2.0,
                short_duration_s: 1.5,
                warmup_s: 0.3,
                latency_requests: 300,
                latency_duration_s: 2.0,
                scrape_repeats: 3,
                scrape_budget_s: 5.0,
                latency_groups: vec![0, 1_000, 5_000],
                scrape_groups: vec![100, 1_000, 5_000],
                memory_groups: vec![500, 5_000],
                restore_groups: 5_000,
                fips_scrape_groups: 1_000,
                limits_groups: 5_000,
                expiry_groups: 10_000,
                cluster_groups: 5_000,
                request_timeout_s: 120.0,
            }
        } else {
            Settings {
                quick,
                smoke,
                rounds: 3,
                stored_rounds: 3,
                startup_rounds: 10,
                clients: 32,
                push_duration_s: 10.0,
                short_duration_s: 5.0,
                warmup_s: 1.0,
                latency_requests: 5_000,
                latency_duration_s: 10.0,
                scrape_repeats: 5,
                scrape_budget_s: 15.0,
                latency_groups: vec![0, 10_000, 50_000],
                scrape_groups: vec![1_000, 10_000, 50_000],
                memory_groups: vec![5_000, 50_000],
                restore_groups: 50_000,
                fips_scrape_groups: 10_000,
                limits_groups: 50_000,
                expiry_groups: 100_000,
                cluster_groups: 50_000,
                request_timeout_s: 300.0,
            }
        };
        if let Some(r) = rounds {
            s.rounds = r.max(1);
            s.stored_rounds = r.max(1);
            s.startup_rounds = s.startup_rounds.max(r);
        }
        s
    }
}

pub struct Runner {
    rt: tokio::runtime::Runtime,
    ours: Binary,
    upstream: Binary,
    /// Our FIPS build (scenario 8).
    fips: Option<Binary>,
    s: Settings,
    work: PathBuf,
    logs: PathBuf,
    out: PathBuf,
    pub res: Results,
    certs: Option<CertFiles>,
    bcrypt_hash: Option<String>,
    /// Upstream persistence files by group count, made once.
    upstream_files: BTreeMap<u64, PathBuf>,
    /// Upstream's VmRSS with an empty store (for bytes per series above empty).
    upstream_idle: Option<Memory>,
    started: Instant,
    label_seq: usize,
}

/// How long [`Runner::settle`] watches the gateways' CPU time at a time, and how much of it
/// they may use meanwhile to count as idle (the kernel counts in 10 ms ticks).
const SETTLE_PROBE: Duration = Duration::from_millis(200);
const SETTLE_IDLE_CPU: Duration = Duration::from_millis(10);
const SETTLE_MAX: Duration = Duration::from_secs(30);

const USER: &str = "pgbench";
const PASSWORD: &str = "pgbench-secret-password";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn series_label(groups: u64) -> String {
    let series = groups * SERIES_PER_GROUP;
    if series >= 1_000_000 && series.is_multiple_of(1_000_000) {
        format!("{}M", series / 1_000_000)
    } else if series >= 1_000 && series.is_multiple_of(1_000) {
        format!("{}k", series / 1_000)
    } else {
        series.to_string()
    }
}

fn report_json(r: &LoadReport) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

/// Server CPU time per 2xx answer, in µs.
fn cpu_per_ok(r: &LoadReport, cpu: Option<f64>) -> Option<f64> {
    cpu.filter(|_| r.ok > 0).map(|c| c * 1e6 / r.ok as f64)
}

fn measured_json(r: &LoadReport, cpu: Option<f64>) -> serde_json::Value {
    json!({ "load": r, "server_cpu_s": cpu, "server_cpu_us_per_ok": cpu_per_ok(r, cpu) })
}

impl Runner {
    pub fn new(
        rt: tokio::runtime::Runtime,
        ours: Binary,
        upstream: Binary,
        s: Settings,
        work: PathBuf,
        out: PathBuf,
        res: Results,
    ) -> Result<Runner, String> {
        let logs = out.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
        Ok(Runner {
            rt,
            ours,
            upstream,
            fips: None,
            s,
            work,
            logs,
            out,
            res,
            certs: None,
            bcrypt_hash: None,
            upstream_files: BTreeMap::new(),
            upstream_idle: None,
            started: Instant::now(),
            label_seq: 0,
        })
    }

    /// Our FIPS build, for scenario 8.
    pub fn with_fips(mut self, fips: Option<Binary>) -> Runner {
        self.fips = fips;
        self
    }

    fn say(&self, msg: impl AsRef<str>) {
        eprintln!(
            "[{:>6.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }

    fn bin(&self, kind: Kind) -> &Binary {
        match kind {
            Kind::Ours => &self.ours,
            Kind::Upstream => &self.upstream,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.s.request_timeout_s)
    }

    /// Starts a gateway and waits until `/-/ready` answers 200 over plain HTTP.
    fn start(&mut self, kind: Kind, what: &str, args: &[String]) -> Result<Gateway, String> {
        self.label_seq += 1;
        let label = format!("{:03}-{what}-{}", self.label_seq, kind.name());
        let mut gw = Gateway::spawn(self.bin(kind), &label, args, &self.logs)?;
        gw.wait_ready_plain(Duration::from_secs(900))?;
        Ok(gw)
    }

    /// Starts a gateway whose web config asks for TLS and/or authentication; waits until
    /// `/-/ready` answers 200 through `target`.
    fn start_secure(
        &mut self,
        kind: Kind,
        what: &str,
        args: &[String],
        target: &Target,
        auth: Option<HeaderValue>,
    ) -> Result<(Gateway, Target), String> {
        let bin = self.bin(kind).clone();
        self.start_secure_bin(&bin, kind.name(), what, args, target, auth)
    }

    /// [`Runner::start_secure`] for a given binary (`name` tells it apart in the logs).
    fn start_secure_bin(
        &mut self,
        bin: &Binary,
        name: &str,
        what: &str,
        args: &[String],
        target: &Target,
        auth: Option<HeaderValue>,
    ) -> Result<(Gateway, Target), String> {
        self.label_seq += 1;
        let label = format!("{:03}-{what}-{name}", self.label_seq);
        let mut gw = Gateway::spawn(bin, &label, args, &self.logs)?;
        let target = Target {
            addr: gw.addr,
            tls: target.tls.clone(),
        };
        loop {
            let probe = self.rt.block_on(load::fetch(
                &target,
                auth.clone(),
                RequestSpec::get("/-/ready"),
                Duration::from_secs(5),
            ));
            if probe.is_ok() {
                return Ok((gw, target));
            }
            gw.check_alive()?;
            if gw.since_spawn() > Duration::from_secs(60) {
                return Err(format!(
                    "{label} not ready after 60 s ({}){}",
                    probe.err().unwrap_or_default(),
                    gw.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn no_persistence() -> Vec<String> {
        vec!["--persistence.file=".to_string()]
    }

    fn run_load(&self, spec: LoadSpec) -> LoadReport {
        self.rt.block_on(load::run(spec))
    }

    /// The push load of scenarios 1, 6 and 7: each client PUTs 60-line bodies to its own group.
    fn push_spec(&self, target: Target, conn: ConnMode, duration: f64) -> LoadSpec {
        self.push_spec_from(target, conn, duration, self.s.clients, 0)
    }

    /// [`Runner::push_spec`] with `clients` clients, writing the groups of clients `first`,
    /// `first + 1`, ...
    fn push_spec_from(
        &self,
        target: Target,
        conn: ConnMode,
        duration: f64,
        clients: usize,
        first: usize,
    ) -> LoadSpec {
        let bodies: Arc<Vec<Bytes>> = Arc::new((0..16).map(workload::push_body).collect());
        let paths: Arc<Vec<String>> =
            Arc::new((first..first + clients).map(workload::push_path).collect());
        let mut spec = LoadSpec::new(
            target,
            clients,
            Arc::new(move |client, seq| {
                RequestSpec::put(
                    paths[client % paths.len()].clone(),
                    bodies[(seq % 16) as usize].clone(),
                )
            }),
        );
        spec.conn = conn;
        spec.duration = Some(Duration::from_secs_f64(duration));
        spec.timeout = self.timeout();
        spec
    }

    /// Starts a gateway with `args`, measures the push load on it for `duration` seconds
    /// (see [`Runner::measure`]) and stops it.
    fn push_once(
        &mut self,
        kind: Kind,
        what: &str,
        args: &[String],
        duration: f64,
    ) -> Result<(LoadReport, Option<f64>), String> {
        let gw = self.start(kind, what, args)?;
        let spec = self.push_spec(Target::plain(gw.addr), ConnMode::KeepAlive, duration);
        let measured = self.measure(&gw, spec);
        gw.stop(Duration::from_secs(60))?;
        Ok(measured)
    }

    /// Warm-up (discarded), then the measured run; also returns the server's CPU time during
    /// the measured run.
    fn measure(&self, gw: &Gateway, spec: LoadSpec) -> (LoadReport, Option<f64>) {
        if self.s.warmup_s > 0.0 {
            let mut warm = spec.clone();
            warm.duration = Some(Duration::from_secs_f64(self.s.warmup_s));
            warm.max_requests = None;
            let _ = self.run_load(warm);
        }
        let before = gw.cpu_time().ok();
        let r = self.run_load(spec);
        let cpu = match (before, gw.cpu_time().ok()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
            _ => None,
        };
        (r, cpu)
    }

    /// Waits until none of `gateways` uses CPU (at most [`SETTLE_MAX`]). After a push into a
    /// large store, upstream keeps collecting garbage for seconds; measured right then, the
    /// other gateway would be measured against it.
    fn settle(&self, gateways: &[&Gateway]) {
        let started = Instant::now();
        loop {
            let before: Vec<_> = gateways.iter().map(|g| g.cpu_time().ok()).collect();
            std::thread::sleep(SETTLE_PROBE);
            let busy =
                gateways
                    .iter()
                    .zip(before)
                    .any(|(g, before)| match (before, g.cpu_time().ok()) {
                        (Some(a), Some(b)) => b.saturating_sub(a) > SETTLE_IDLE_CPU,
                        _ => false,
                    });
            if !busy || started.elapsed() >= SETTLE_MAX {
                return;
            }
        }
    }

    /// Pushes `groups` groups of 20 series, 32 clients; every push must succeed.
    fn fill(&self, gw: &Gateway, groups: u64) -> Result<LoadReport, String> {
        self.fill_target(gw, &Target::plain(gw.addr), groups)
    }

    /// [`Runner::fill`] through `target` (TLS, or another gateway sharing the store).
    fn fill_target(
        &self,
        gw: &Gateway,
        target: &Target,
        groups: u64,
    ) -> Result<LoadReport, String> {
        if groups == 0 {
            return Ok(LoadReport::default());
        }
        let mut spec = LoadSpec::new(
            target.clone(),
            self.s.clients,
            Arc::new(|_, seq| RequestSpec::put(workload::load_path(seq), workload::load_body(seq))),
        );
        spec.max_requests = Some(groups);
        spec.timeout = self.timeout();
        let r = self.run_load(spec);
        if r.ok != groups || r.failures() > 0 {
            return Err(format!(
                "loading {groups} groups into {}: {}",
                gw.label,
                r.line()
            ));
        }
        self.say(format!(
            "  loaded {} series into {} in {:.1}s ({:.0} pushes/s)",
            groups * SERIES_PER_GROUP,
            gw.label,
            r.elapsed_s,
            r.ok_per_s
        ));
        Ok(r)
    }

    /// Scrapes once and checks that all `groups` × 20 series are there.
    fn validate(&self, gw: &Gateway, groups: u64) -> Result<f64, String> {
        let started = Instant::now();
        let body = self
            .rt
            .block_on(load::fetch(
                &Target::plain(gw.addr),
                None,
                RequestSpec::get("/metrics"),
                Duration::from_secs(900),
            ))
            .map_err(|e| format!("check scrape of {}: {e}", gw.label))?;
        let took = started.elapsed();
        let found = workload::count_load_series(&body);
        let want = groups * SERIES_PER_GROUP;
        if found != want {
            return Err(format!(
                "{} holds {found} bench_load series, expected {want}",
                gw.label
            ));
        }
        Ok(ms(took))
    }

    pub fn error(&mut self, msg: String) {
        self.say(format!("ERROR: {msg}"));
        self.res.errors.push(msg);
    }

    pub fn note(&mut self, msg: String) {
        if !self.res.notes.contains(&msg) {
            self.res.notes.push(msg);
        }
    }

    pub fn save(&mut self) {
        self.res.summarize();
        if let Err(e) = self.res.write(&self.out) {
            self.say(format!("ERROR: {e}"));
        }
    }

    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    pub fn run(&mut self, selected: &BTreeSet<Scenario>) {
        let stored: BTreeSet<Scenario> = selected
            .iter()
            .copied()
            .filter(|s| matches!(s, Scenario::Latency | Scenario::Scrape | Scenario::Memory))
            .collect();
        let mut stored_done = false;
        for sc in selected {
            if !(stored_done && stored.contains(sc)) {
                self.res
                    .load_average
                    .push((sc.name().to_string(), crate::report::load_average()));
            }
            let result = match sc {
                Scenario::Push => self.push(),
                Scenario::Latency | Scenario::Scrape | Scenario::Memory => {
                    if stored_done {
                        continue;
                    }
                    stored_done = true;
                    self.stored(&stored)
                }
                Scenario::Startup => self.startup(),
                Scenario::Tls => self.tls(),
                Scenario::Persistence => self.persistence(),
                Scenario::Fips => self.fips(),
                Scenario::Limits => self.limits(),
                Scenario::Cluster => self.cluster(),
            };
            if let Err(e) = result {
                self.error(format!("scenario {}: {e}", sc.name()));
            }
            self.save();
        }
        self.res
            .load_average
            .push(("end".to_string(), crate::report::load_average()));
        self.targets();
        self.res.finished_utc = Some(crate::report::utc_now());
        self.save();
    }

    // ---- 1. Push throughput ----

    fn push(&mut self) -> Result<(), String> {
        self.say("1. push throughput");
        let sc = "1. Push throughput";
        let rate = Metric::new(
            sc,
            "push.ok_per_s",
            "32 clients, keep-alive, PUT of 60 lines (20 families) to a group per client",
            "pushes/s",
            Better::Higher,
        );
        let p99 = Metric::new(
            sc,
            "push.p99_ms",
            "p99 latency at that load",
            "ms",
            Better::Lower,
        );
        let cpu_row = Metric::new(
            sc,
            "push.server_cpu_us",
            "server CPU time per push (user + system)",
            "µs",
            Better::Lower,
        );
        for round in 0..self.s.rounds {
            for kind in [Kind::Ours, Kind::Upstream] {
                let (r, cpu) = self.push_once(
                    kind,
                    "push",
                    &Self::no_persistence(),
                    self.s.push_duration_s,
                )?;
                self.say(format!("  round {round} {}: {}", kind.name(), r.line()));
                let d = measured_json(&r, cpu);
                self.res
                    .record(&rate, kind, round, r.ok_per_s, r.failures(), d.clone());
                self.res
                    .record(&p99, kind, round, r.latency.p99_ms, r.failures(), d.clone());
                if let Some(c) = cpu_per_ok(&r, cpu) {
                    self.res.record(&cpu_row, kind, round, c, r.failures(), d);
                }
            }
        }
        Ok(())
    }

    // ---- 2, 3, 4. Stored data: push latency, scrapes, memory ----

    fn stored(&mut self, selected: &BTreeSet<Scenario>) -> Result<(), String> {
        let lat = selected.contains(&Scenario::Latency);
        let scrape = selected.contains(&Scenario::Scrape);
        let mem = selected.contains(&Scenario::Memory);
        let mut sizes = BTreeSet::new();
        if lat {
            sizes.extend(self.s.latency_groups.iter().copied());
        }
        if scrape {
            sizes.extend(self.s.scrape_groups.iter().copied());
        }
        if mem {
            sizes.extend(self.s.memory_groups.iter().copied());
            self.say("4. memory: idle upstream for the baseline");
            let gw = self.start(Kind::Upstream, "idle", &Self::no_persistence())?;
            std::thread::sleep(Duration::from_secs(1));
            self.upstream_idle = Some(gw.memory()?);
            gw.stop(Duration::from_secs(30))?;
        }
        for g in sizes {
            let need_lat = lat && self.s.latency_groups.contains(&g);
            let need_scrape = scrape && self.s.scrape_groups.contains(&g);
            let need_mem = mem && self.s.memory_groups.contains(&g);
            if let Err(e) = self.stored_size(g, need_lat, need_scrape, need_mem) {
                self.error(format!("{} series: {e}", series_label(g)));
            }
            self.save();
        }
        Ok(())
    }

    fn stored_size(
        &mut self,
        g: u64,
        need_lat: bool,
        need_scrape: bool,
        need_mem: bool,
    ) -> Result<(), String> {
        let n = series_label(g);
        self.say(format!("stored data: {n} series ({g} groups × 20)"));
        // Upstream's file: loaded by pushes with the check off, persisted at shutdown.
        let upstream_file = if g > 0 && (need_lat || need_scrape || need_mem) {
            Some(self.upstream_fixture(g, need_mem)?)
        } else {
            None
        };
        // Ours: plain pushes, memory only.
        let mut ours = self.start(Kind::Ours, &format!("stored-{n}"), &Self::no_persistence())?;
        let empty = ours.memory()?;
        self.fill(&ours, g)?;
        if need_mem {
            std::thread::sleep(Duration::from_secs(1));
            let m = ours.memory()?;
            self.record_memory(g, Kind::Ours, m, empty, "after load");
        }
        let check_ms = self.validate(&ours, g)?;
        if need_mem {
            let m = ours.memory()?;
            self.record_memory_after_scrape(g, Kind::Ours, m);
        }
        self.say(format!(
            "  ours: all {n} series present (scrape {check_ms:.1} ms)"
        ));
        if !(need_lat || need_scrape) {
            ours.stop(Duration::from_secs(60))?;
            return Ok(());
        }
        // Upstream: restart from its file, normally (consistency check on).
        let mut args = Self::no_persistence();
        let mut copy = None;
        if let Some(file) = &upstream_file {
            let c = self.work.join(format!("upstream-{g}-run.db"));
            std::fs::copy(file, &c).map_err(|e| format!("copying {}: {e}", file.display()))?;
            args = vec![
                format!("--persistence.file={}", c.display()),
                "--persistence.interval=24h".to_string(),
            ];
            copy = Some(c);
        }
        let mut up = self.start(Kind::Upstream, &format!("stored-{n}"), &args)?;
        let restore = up.ready_after;
        let check_ms = self.validate(&up, g)?;
        self.say(format!(
            "  upstream: restarted from its file in {:.0} ms, all {n} series present (scrape {check_ms:.0} ms)",
            ms(restore)
        ));
        if need_lat {
            self.latency(g, &mut ours, &mut up)?;
        }
        if need_scrape {
            self.scrapes(g, &mut ours, &mut up)?;
        }
        ours.stop(Duration::from_secs(60))?;
        up.stop(Duration::from_secs(600))?;
        if let Some(c) = copy {
            let _ = std::fs::remove_file(c);
        }
        Ok(())
    }

    /// Upstream's persistence file with `g` groups, made once: pushes with
    /// `--push.disable-consistency-check` (with the check, loading 1M series takes hours),
    /// then SIGTERM, which writes the file.
    fn upstream_fixture(&mut self, g: u64, measure_memory: bool) -> Result<PathBuf, String> {
        if let Some(p) = self.upstream_files.get(&g) {
            return Ok(p.clone());
        }
        let n = series_label(g);
        let file = self.work.join(format!("upstream-{g}.db"));
        let args = vec![
            format!("--persistence.file={}", file.display()),
            "--persistence.interval=24h".to_string(),
            "--push.disable-consistency-check".to_string(),
        ];
        let gw = self.start(Kind::Upstream, &format!("fixture-{n}"), &args)?;
        self.fill(&gw, g)?;
        if measure_memory {
            std::thread::sleep(Duration::from_secs(1));
            let m = gw.memory()?;
            let idle = self.upstream_idle.unwrap_or_default();
            self.record_memory(g, Kind::Upstream, m, idle, "after load");
            self.validate(&gw, g)?;
            let m = gw.memory()?;
            self.record_memory_after_scrape(g, Kind::Upstream, m);
            self.note(
                "Memory (4): upstream is loaded by pushes with `--push.disable-consistency-check` \
                 (with the check, loading takes hours); its consistency check would add garbage \
                 and so RSS. Ours is loaded by normal pushes (check on)."
                    .into(),
            );
        }
        let took = gw.stop(Duration::from_secs(900))?;
        let size = std::fs::metadata(&file)
            .map_err(|e| format!("upstream wrote no file {}: {e}", file.display()))?
            .len();
        self.say(format!(
            "  upstream file with {n} series: {:.1} MB, written at shutdown in {:.1}s",
            size as f64 / 1e6,
            took.as_secs_f64()
        ));
        self.upstream_files.insert(g, file.clone());
        Ok(file)
    }

    fn record_memory(&mut self, g: u64, kind: Kind, m: Memory, empty: Memory, when: &str) {
        let n = series_label(g);
        let sc = "4. Memory";
        let series = (g * SERIES_PER_GROUP) as f64;
        let d = json!({ "memory": m, "empty": empty, "when": when, "series": series });
        let rss = Metric::new(
            sc,
            &format!("memory.g{g}.rss"),
            &format!("VmRSS after loading {n} series by pushes"),
            "MiB",
            Better::Lower,
        );
        let hwm = Metric::new(
            sc,
            &format!("memory.g{g}.hwm"),
            &format!("VmHWM after loading {n} series"),
            "MiB",
            Better::Lower,
        );
        let per = Metric::new(
            sc,
            &format!("memory.g{g}.bytes_per_series"),
            &format!("VmRSS / series at {n} series"),
            "bytes",
            Better::Lower,
        );
        let above = Metric::new(
            sc,
            &format!("memory.g{g}.bytes_per_series_above_empty"),
            &format!("(VmRSS − empty VmRSS) / series at {n} series"),
            "bytes",
            Better::Lower,
        );
        self.res.record(&rss, kind, 0, m.rss_mib(), 0, d.clone());
        self.res.record(&hwm, kind, 0, m.hwm_mib(), 0, d.clone());
        self.res.record(
            &per,
            kind,
            0,
            m.rss_kib as f64 * 1024.0 / series,
            0,
            d.clone(),
        );
        self.res.record(
            &above,
            kind,
            0,
            m.rss_kib.saturating_sub(empty.rss_kib) as f64 * 1024.0 / series,
            0,
            d,
        );
        self.say(format!(
            "  {} memory with {n} series: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            kind.name(),
            m.rss_mib(),
            m.hwm_mib()
        ));
    }

    fn record_memory_after_scrape(&mut self, g: u64, kind: Kind, m: Memory) {
        let n = series_label(g);
        let metric = Metric::new(
            "4. Memory",
            &format!("memory.g{g}.rss_after_scrape"),
            &format!("VmRSS after one scrape of {n} series"),
            "MiB",
            Better::Lower,
        );
        self.res
            .record(&metric, kind, 0, m.rss_mib(), 0, json!({ "memory": m }));
    }

    /// One latency measurement: small PUTs, one after the other, into 100 groups in turn.
    fn latency_run(&self, gw: &Gateway, warm_up: bool) -> LoadReport {
        let mut spec = LoadSpec::new(
            Target::plain(gw.addr),
            1,
            Arc::new(|_, seq| {
                RequestSpec::put(workload::latency_path(seq), workload::small_body(seq))
            }),
        );
        spec.timeout = self.timeout();
        if warm_up {
            let mut warm = spec.clone();
            warm.max_requests = Some(3);
            let _ = self.run_load(warm);
        }
        spec.max_requests = Some(self.s.latency_requests);
        spec.duration = Some(Duration::from_secs_f64(self.s.latency_duration_s));
        self.run_load(spec)
    }

    /// 2. Sequential small PUTs (one client, keep-alive) into a store of `g` groups.
    fn latency(&mut self, g: u64, ours: &mut Gateway, up: &mut Gateway) -> Result<(), String> {
        let n = series_label(g);
        let sc = "2. Push latency (small PUT, 1 client, keep-alive) vs stored series";
        let store = if g == 0 {
            "empty store".to_string()
        } else {
            format!("{n} series stored")
        };
        let metrics = [
            Metric::new(
                sc,
                &format!("latency.g{g}.p50"),
                &format!("p50, {store}"),
                "ms",
                Better::Lower,
            ),
            Metric::new(
                sc,
                &format!("latency.g{g}.p99"),
                &format!("p99, {store}"),
                "ms",
                Better::Lower,
            ),
            Metric::new(
                sc,
                &format!("latency.g{g}.max"),
                &format!("max, {store}"),
                "ms",
                Better::Lower,
            ),
        ];
        // Machine speed drifts over minutes (other work, the host): the empty-store figure the
        // target compares with is measured at the same moments, on a second instance of ours.
        let mut reference = if g > 0 {
            Some(self.start(Kind::Ours, "latency-reference", &Self::no_persistence())?)
        } else {
            None
        };
        let ref_p99 = Metric::new(
            sc,
            &format!("latency.g{g}.ref_p99"),
            &format!("p99, empty store, measured alongside the {n} runs (ours only)"),
            "ms",
            Better::Lower,
        );
        for round in 0..self.s.stored_rounds {
            // (kind, whether it is the empty reference); the reference goes before ours in
            // even rounds and after it in odd ones.
            let mut order = vec![(Kind::Ours, false), (Kind::Upstream, false)];
            if reference.is_some() {
                order.insert(round % 2, (Kind::Ours, true));
            }
            for (kind, is_reference) in order {
                match &reference {
                    Some(r) => self.settle(&[&*ours, &*up, r]),
                    None => self.settle(&[&*ours, &*up]),
                }
                let gw = match (kind, &mut reference) {
                    (Kind::Ours, Some(r)) if is_reference => r,
                    (Kind::Ours, _) => &mut *ours,
                    (Kind::Upstream, _) => &mut *up,
                };
                let r = self.latency_run(gw, round == 0);
                gw.check_alive()?;
                let who = if is_reference {
                    "ours (empty reference)"
                } else {
                    gw.kind.name()
                };
                self.say(format!("  latency {n} round {round} {who}: {}", r.line()));
                let d = report_json(&r);
                let l = &r.latency;
                if is_reference {
                    self.res
                        .record(&ref_p99, Kind::Ours, round, l.p99_ms, r.failures(), d);
                    continue;
                }
                for (m, v) in metrics.iter().zip([l.p50_ms, l.p99_ms, l.max_ms]) {
                    self.res
                        .record(m, gw.kind, round, v, r.failures(), d.clone());
                }
            }
        }
        if let Some(r) = reference {
            r.stop(Duration::from_secs(30))?;
        }
        self.note(
            "Stored data (2, 3): both gateways run side by side, so before each measurement the harness waits \
             (up to 30 s) until neither uses CPU: after a push into a large store upstream collects garbage for \
             seconds, which would otherwise slow down whichever gateway is measured next."
                .into(),
        );
        if self.s.latency_duration_s > 0.0 {
            self.note(format!(
                "Push latency (2): each measurement is at most {} PUTs or {} s, whichever comes first; \
                 where upstream's pushes take seconds, its p99 and max rest on few samples (see `latency.count` in the JSON).",
                self.s.latency_requests, self.s.latency_duration_s
            ));
        }
        Ok(())
    }

    /// 3. Scrapes: after a change (first) and of an unchanged store (repeated), plain and gzip.
    fn scrapes(&mut self, g: u64, ours: &mut Gateway, up: &mut Gateway) -> Result<(), String> {
        let n = series_label(g);
        let sc = "3. Scrape";
        for round in 0..self.s.stored_rounds {
            for kind in [Kind::Ours, Kind::Upstream] {
                for gzip in [false, true] {
                    self.settle(&[&*ours, &*up]);
                    let gw = if kind == Kind::Ours {
                        &mut *ours
                    } else {
                        &mut *up
                    };
                    let target = Target::plain(gw.addr);
                    let enc = if gzip { "gzip" } else { "plain" };
                    let (first, repeated, change) = self.scrape_pair(&target, gzip, round as u64);
                    let mut failures = u64::from(change.is_err());
                    if let Err(e) = change {
                        self.error(format!("change push to {} failed: {e}", gw.label));
                    }
                    gw.check_alive()?;
                    let want = if gzip { "gzip" } else { "identity" };
                    for r in [&first, &repeated] {
                        if r.ok > 0 && r.content_encoding.as_deref() != Some(want) {
                            self.error(format!(
                                "{} answered a {enc} scrape with Content-Encoding {:?}",
                                gw.label, r.content_encoding
                            ));
                            failures += 1;
                        }
                    }
                    self.say(format!(
                        "  scrape {n} {enc} round {round} {}: first {:.1} ms, repeated p50 {:.1} ms ({} scrapes), {:.0} KiB",
                        gw.kind.name(),
                        first.latency.max_ms,
                        repeated.latency.p50_ms,
                        repeated.ok,
                        first.mean_body_bytes() / 1024.0
                    ));
                    let m_first = Metric::new(
                        sc,
                        &format!("scrape.g{g}.{enc}.first"),
                        &format!("{n} series, {enc}: first scrape after a change"),
                        "ms",
                        Better::Lower,
                    );
                    let m_rep = Metric::new(
                        sc,
                        &format!("scrape.g{g}.{enc}.repeated"),
                        &format!("{n} series, {enc}: repeated scrape, unchanged store (p50)"),
                        "ms",
                        Better::Lower,
                    );
                    let m_size = Metric::new(
                        sc,
                        &format!("scrape.g{g}.{enc}.size"),
                        &format!("{n} series, {enc}: response size"),
                        "KiB",
                        Better::Lower,
                    );
                    let d = json!({ "first": first, "repeated": repeated });
                    self.res.record(
                        &m_first,
                        gw.kind,
                        round,
                        first.latency.max_ms,
                        failures + first.failures(),
                        d.clone(),
                    );
                    self.res.record(
                        &m_rep,
                        gw.kind,
                        round,
                        repeated.latency.p50_ms,
                        repeated.failures(),
                        d.clone(),
                    );
                    self.res.record(
                        &m_size,
                        gw.kind,
                        round,
                        first.mean_body_bytes() / 1024.0,
                        0,
                        d,
                    );
                }
            }
        }
        self.note(
            "Scrape (3): `GET /metrics` without `Accept` (text format 0.0.4), on one keep-alive connection \
             (set-up not timed); the full body is read. \"First\" follows a small PUT to another group; \
             \"repeated\" are the following scrapes with nothing pushed in between. Sizes are as sent (compressed for gzip)."
                .into(),
        );
        Ok(())
    }

    /// A change (a small PUT, so that the next scrape cannot be served from a cache), the
    /// first scrape after it, and repeated scrapes of the unchanged store, through `target`.
    fn scrape_pair(
        &self,
        target: &Target,
        gzip: bool,
        variant: u64,
    ) -> (LoadReport, LoadReport, Result<Bytes, String>) {
        let timeout = self.timeout();
        let change = self.rt.block_on(load::fetch(
            target,
            None,
            RequestSpec::put(workload::CHANGE_PATH, workload::small_body(variant)),
            timeout,
        ));
        let scrape = move |_: usize, _: u64| {
            let r = RequestSpec::get("/metrics");
            if gzip {
                r.with_header(ACCEPT_ENCODING, "gzip")
            } else {
                r
            }
        };
        let mut spec = LoadSpec::new(target.clone(), 1, Arc::new(scrape));
        spec.timeout = timeout;
        spec.max_requests = Some(1);
        let first = self.run_load(spec.clone());
        spec.max_requests = Some(self.s.scrape_repeats);
        spec.duration = Some(Duration::from_secs_f64(self.s.scrape_budget_s));
        let repeated = self.run_load(spec);
        (first, repeated, change)
    }

    // ---- 5. Start-up ----

    fn startup(&mut self) -> Result<(), String> {
        self.say("5. start-up time and idle memory");
        let sc = "5. Start-up and idle memory (no persistence)";
        let ready = Metric::new(
            sc,
            "startup.ready_ms",
            "start to first 200 from `/-/ready`",
            "ms",
            Better::Lower,
        );
        let rss = Metric::new(
            sc,
            "startup.idle_rss",
            "idle VmRSS, 1 s after ready",
            "MiB",
            Better::Lower,
        );
        let hwm = Metric::new(sc, "startup.idle_hwm", "idle VmHWM", "MiB", Better::Lower);
        for round in 0..self.s.startup_rounds {
            for kind in [Kind::Ours, Kind::Upstream] {
                self.label_seq += 1;
                let label = format!("{:03}-startup-{}", self.label_seq, kind.name());
                let mut gw =
                    Gateway::spawn(self.bin(kind), &label, &Self::no_persistence(), &self.logs)?;
                let t = gw.wait_ready_plain(Duration::from_secs(60))?;
                std::thread::sleep(Duration::from_secs(1));
                let m = gw.memory()?;
                let stop = gw.stop(Duration::from_secs(30))?;
                let d = json!({ "ready_ms": ms(t), "memory": m, "stop_ms": ms(stop) });
                self.res.record(&ready, kind, round, ms(t), 0, d.clone());
                self.res
                    .record(&rss, kind, round, m.rss_mib(), 0, d.clone());
                self.res.record(&hwm, kind, round, m.hwm_mib(), 0, d);
            }
        }
        self.note(
            "Start-up (5): from spawning the process to the first 200 answer of `GET /-/ready` \
             (polled every 0.25 ms on new connections), so process creation is included."
                .into(),
        );
        Ok(())
    }

    // ---- 6. TLS and basic auth ----

    fn certs(&mut self) -> Result<CertFiles, String> {
        if let Some(c) = &self.certs {
            return Ok(c.clone());
        }
        let dir = self.work.join("certs");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let c = tls::make_certs(&dir)?;
        self.certs = Some(c.clone());
        Ok(c)
    }

    fn bcrypt(&mut self) -> Result<String, String> {
        if let Some(h) = &self.bcrypt_hash {
            return Ok(h.clone());
        }
        let h = bcrypt::hash(PASSWORD, 10).map_err(|e| format!("bcrypt: {e}"))?;
        self.bcrypt_hash = Some(h.clone());
        Ok(h)
    }

    fn tls(&mut self) -> Result<(), String> {
        self.say("6. TLS and basic auth");
        let sc = "6. TLS and basic auth (32 clients, 60-line PUTs)";
        let certs = self.certs()?;
        let hash = self.bcrypt()?;
        let auth_value = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        ))
        .map_err(|e| e.to_string())?;
        struct Variant {
            key: &'static str,
            label: &'static str,
            web: WebConfig,
            conn: ConnMode,
            kx: tls::Kx,
        }
        let tls_only = WebConfig {
            tls: true,
            ..Default::default()
        };
        let mtls = WebConfig {
            tls: true,
            client_certs: true,
            ..Default::default()
        };
        let basic = WebConfig {
            basic_auth: Some((USER.to_string(), hash)),
            ..Default::default()
        };
        let variants = [
            Variant {
                key: "http_keepalive",
                label: "HTTP, keep-alive (baseline)",
                web: WebConfig::default(),
                conn: ConnMode::KeepAlive,
                kx: tls::Kx::Default,
            },
            Variant {
                key: "https_keepalive",
                label: "HTTPS, keep-alive",
                web: tls_only.clone(),
                conn: ConnMode::KeepAlive,
                kx: tls::Kx::Default,
            },
            Variant {
                key: "https_newconn",
                label: "HTTPS, new connection per request (full handshake)",
                web: tls_only.clone(),
                conn: ConnMode::PerRequest,
                kx: tls::Kx::Default,
            },
            Variant {
                key: "https_newconn_x25519",
                label: "HTTPS, new connection per request, client offers X25519 only",
                web: tls_only,
                conn: ConnMode::PerRequest,
                kx: tls::Kx::X25519,
            },
            Variant {
                key: "mtls_keepalive",
                label: "mTLS, keep-alive",
                web: mtls.clone(),
                conn: ConnMode::KeepAlive,
                kx: tls::Kx::Default,
            },
            Variant {
                key: "mtls_newconn",
                label: "mTLS, new connection per request",
                web: mtls,
                conn: ConnMode::PerRequest,
                kx: tls::Kx::Default,
            },
            Variant {
                key: "basic_keepalive",
                label: "HTTP + basic auth (bcrypt cost 10), keep-alive",
                web: basic,
                conn: ConnMode::KeepAlive,
                kx: tls::Kx::Default,
            },
        ];
        let mut negotiated: BTreeMap<(String, &'static str), String> = BTreeMap::new();
        for round in 0..self.s.rounds {
            for v in &variants {
                let metric = Metric::new(
                    sc,
                    &format!("tls.{}", v.key),
                    v.label,
                    "pushes/s",
                    Better::Higher,
                );
                let mut args = Self::no_persistence();
                let mut target_tls = None;
                if v.web.tls || v.web.basic_auth.is_some() {
                    let file = self.work.join(format!("web-{}.yml", v.key));
                    std::fs::write(&file, v.web.yaml(&certs))
                        .map_err(|e| format!("writing {}: {e}", file.display()))?;
                    args.push(format!("--web.config.file={}", file.display()));
                }
                if v.web.tls {
                    let client = v
                        .web
                        .client_certs
                        .then_some((certs.client_cert.as_path(), certs.client_key.as_path()));
                    let config = tls::client_config(&certs.ca_cert, client, false, v.kx)?;
                    target_tls = Some(tls::tls_target(config, "localhost")?);
                }
                let auth = v.web.basic_auth.as_ref().map(|_| auth_value.clone());
                for kind in [Kind::Ours, Kind::Upstream] {
                    let probe_target = Target {
                        addr: "127.0.0.1:1".parse().map_err(|e| format!("{e}"))?,
                        tls: target_tls.clone(),
                    };
                    let (gw, target) =
                        self.start_secure(kind, v.key, &args, &probe_target, auth.clone())?;
                    let mut spec = self.push_spec(target, v.conn, self.s.short_duration_s);
                    spec.authorization = auth.clone();
                    let (r, cpu) = self.measure(&gw, spec);
                    gw.stop(Duration::from_secs(30))?;
                    self.say(format!(
                        "  {} round {round} {}: {}",
                        v.key,
                        kind.name(),
                        r.line()
                    ));
                    if let Some(t) = &r.tls {
                        negotiated.insert(
                            (kind.name().to_string(), v.key),
                            format!("{} {} {}", t.version, t.cipher_suite, t.kx_group),
                        );
                    }
                    self.res.record(
                        &metric,
                        kind,
                        round,
                        r.ok_per_s,
                        r.failures(),
                        measured_json(&r, cpu),
                    );
                }
            }
        }
        let mut seen = BTreeMap::new();
        for ((gw, key), what) in &negotiated {
            if key.starts_with("https_newconn") || *key == "https_keepalive" {
                seen.insert(format!("{gw} ({key})"), what.clone());
            }
        }
        let list: Vec<String> = seen.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        self.note(format!(
            "TLS (6): HTTP/1.1 (no ALPN), ECDSA P-256 certificates made at run time, session resumption off \
             (a new connection is a full handshake, as for a batch job that runs once). Negotiated: {}.",
            list.join("; ")
        ));
        Ok(())
    }

    // ---- 7. Persistence ----

    fn persistence(&mut self) -> Result<(), String> {
        self.say("7. persistence");
        let sc = "7. Persistence";
        let off = Metric::new(
            sc,
            "persist.off",
            "pushes/s, persistence off",
            "pushes/s",
            Better::Higher,
        );
        let on = Metric::new(
            sc,
            "persist.on",
            "pushes/s, persistence on (ours: log fsynced before each answer; upstream: periodic file)",
            "pushes/s",
            Better::Higher,
        );
        let nolog = Metric::new(
            sc,
            "persist.nolog",
            "pushes/s, ours `--no-persistence.log` (periodic snapshots, as upstream) vs upstream on",
            "pushes/s",
            Better::Higher,
        );
        for round in 0..self.s.rounds {
            let runs: [(Kind, &str, Vec<&Metric>); 5] = [
                (Kind::Ours, "off", vec![&off]),
                (Kind::Upstream, "off", vec![&off]),
                (Kind::Ours, "log", vec![&on]),
                (Kind::Upstream, "on", vec![&on, &nolog]),
                (Kind::Ours, "nolog", vec![&nolog]),
            ];
            for (kind, mode, metrics) in runs {
                let file = self
                    .work
                    .join(format!("persist-{}-{mode}-{round}.db", kind.name()));
                let mut args = match mode {
                    "off" => Self::no_persistence(),
                    _ => vec![format!("--persistence.file={}", file.display())],
                };
                if mode == "nolog" {
                    args.push("--no-persistence.log".to_string());
                }
                let (r, cpu) = self.push_once(
                    kind,
                    &format!("persist-{mode}"),
                    &args,
                    self.s.short_duration_s,
                )?;
                self.say(format!(
                    "  {mode} round {round} {}: {}",
                    kind.name(),
                    r.line()
                ));
                for m in metrics {
                    self.res.record(
                        m,
                        kind,
                        round,
                        r.ok_per_s,
                        r.failures(),
                        measured_json(&r, cpu),
                    );
                }
                remove_persistence_files(&self.work, &file);
            }
        }
        self.restore()
    }

    fn restore(&mut self) -> Result<(), String> {
        let g = self.s.restore_groups;
        let n = series_label(g);
        let sc = "7. Persistence";
        self.say(format!("7. restore of {n} series"));
        let upstream_file = self.upstream_fixture(g, false)?;
        // Ours: loaded by pushes, the snapshot written at shutdown.
        let ours_file = self.work.join(format!("ours-{g}.db"));
        let args = vec![
            format!("--persistence.file={}", ours_file.display()),
            "--no-persistence.log".to_string(),
        ];
        let gw = self.start(Kind::Ours, &format!("fixture-{n}"), &args)?;
        self.fill(&gw, g)?;
        let took = gw.stop(Duration::from_secs(300))?;
        let size = std::fs::metadata(&ours_file)
            .map_err(|e| format!("ours wrote no file {}: {e}", ours_file.display()))?
            .len();
        self.say(format!(
            "  ours: snapshot of {n} series, {:.1} MB, written at shutdown in {:.2}s",
            size as f64 / 1e6,
            took.as_secs_f64()
        ));
        let own = Metric::new(
            sc,
            &format!("restore.g{g}.own"),
            &format!("restore of {n} series from its own file: start to ready"),
            "ms",
            Better::Lower,
        );
        let import = Metric::new(
            sc,
            &format!("restore.g{g}.import"),
            &format!("ours importing upstream's file of {n} series vs upstream restoring it"),
            "ms",
            Better::Lower,
        );
        let cpu_metric = Metric::new(
            sc,
            &format!("restore.g{g}.cpu"),
            &format!(
                "CPU time (user + system, all threads) from start to ready, restoring {n} series"
            ),
            "ms",
            Better::Lower,
        );
        let rss = Metric::new(
            sc,
            &format!("restore.g{g}.rss"),
            &format!("VmRSS after restoring {n} series from its own file"),
            "MiB",
            Better::Lower,
        );
        let import_hwm = Metric::new(
            sc,
            &format!("restore.g{g}.import_hwm"),
            &format!(
                "peak memory (VmHWM) of ours importing upstream's file of {n} series vs upstream restoring it"
            ),
            "MiB",
            Better::Lower,
        );
        for round in 0..self.s.stored_rounds {
            let runs: [(Kind, &str, &Path, Vec<&Metric>); 3] = [
                (Kind::Ours, "own", &ours_file, vec![&own]),
                (Kind::Upstream, "own", &upstream_file, vec![&own, &import]),
                (Kind::Ours, "import", &upstream_file, vec![&import]),
            ];
            for (kind, mode, source, metrics) in runs {
                let copy = self.work.join(format!("restore-{}-{mode}.db", kind.name()));
                std::fs::copy(source, &copy)
                    .map_err(|e| format!("copying {}: {e}", source.display()))?;
                let args = vec![
                    format!("--persistence.file={}", copy.display()),
                    "--persistence.interval=24h".to_string(),
                ];
                let gw = self.start(kind, &format!("restore-{mode}"), &args)?;
                let t = gw.ready_after;
                let cpu = gw.cpu_time()?;
                let m = gw.memory()?;
                if round == 0 {
                    let check = self.validate(&gw, g)?;
                    self.say(format!(
                        "  {} ({mode}): all {n} series present (scrape {check:.0} ms)",
                        gw.label
                    ));
                }
                // Ours answers `/-/ready` a moment before its SIGTERM handler is in place
                // (it is set up when serving starts); a stop within that moment kills it.
                std::thread::sleep(Duration::from_millis(250));
                let stop = gw.stop(Duration::from_secs(600))?;
                self.say(format!(
                    "  restore {mode} round {round} {}: ready after {:.0} ms (CPU {:.0} ms), VmRSS {:.0} MiB",
                    kind.name(),
                    ms(t),
                    ms(cpu),
                    m.rss_mib()
                ));
                let d = json!({ "ready_ms": ms(t), "cpu_ms": ms(cpu), "memory": m, "stop_ms": ms(stop), "file": source });
                for metric in metrics {
                    self.res.record(metric, kind, round, ms(t), 0, d.clone());
                }
                if mode == "own" {
                    self.res
                        .record(&cpu_metric, kind, round, ms(cpu), 0, d.clone());
                }
                if kind == Kind::Upstream || mode == "import" {
                    self.res
                        .record(&import_hwm, kind, round, m.hwm_mib(), 0, d.clone());
                }
                if mode == "own" {
                    self.res.record(&rss, kind, round, m.rss_mib(), 0, d);
                }
                remove_persistence_files(&self.work, &copy);
            }
        }
        remove_persistence_files(&self.work, &ours_file);
        self.note(
            "Persistence (7): files in the work directory (on the machine's disk, not tmpfs). Restore time is start to first 200 \
             from `/-/ready`; ours binds its port before restoring, so the probe's answer waits for the restore. \
             The ready time is read just before the memory; upstream runs with `--persistence.interval=24h` so that no \
             periodic write falls into a measurement. The CPU row adds up the CPU time of all threads until ready: \
             less sensitive than the wall time to other work on the machine."
                .into(),
        );
        Ok(())
    }

    // ---- Targets ----

    fn targets(&mut self) {
        use crate::report::Target as T;
        let mut out = Vec::new();
        let med = |key: &str, k: Kind| self.res.median_of(key, k);
        let o = |key: &str| med(key, Kind::Ours);
        let u = |key: &str| med(key, Kind::Upstream);
        let fx = |x: f64| crate::report::fmt_num(x);
        let big = *self.s.latency_groups.iter().max().unwrap_or(&0);
        let reference = o(&format!("latency.g{big}.ref_p99"));
        if let (Some(full), Some(empty)) = (
            o(&format!("latency.g{big}.p99")),
            reference.or_else(|| o("latency.g0.p99")),
        ) {
            let r = full / empty;
            let against = if reference.is_some() {
                "an empty store measured alongside"
            } else {
                "an empty store"
            };
            out.push(T {
                goal: format!(
                    "push p99 with {} series ≤ 1.5× the p99 with an empty store",
                    series_label(big)
                ),
                measured: format!(
                    "{} ms vs {} ms ({against}) = {:.2}×",
                    fx(full),
                    fx(empty),
                    r
                ),
                met: Some(r <= 1.5),
            });
        }
        if let (Some(a), Some(b)) = (o("push.ok_per_s"), u("push.ok_per_s")) {
            out.push(T {
                goal: "push throughput ≥ 10× upstream".into(),
                measured: format!("{} vs {} pushes/s = {:.1}×", fx(a), fx(b), a / b),
                met: Some(a / b >= 10.0),
            });
        }
        if let (Some(a), Some(b)) = (o("tls.https_keepalive"), o("tls.http_keepalive")) {
            out.push(T {
                goal: "HTTPS keep-alive ≥ 80% of plain HTTP".into(),
                measured: format!("{} vs {} pushes/s = {:.0}%", fx(a), fx(b), 100.0 * a / b),
                met: Some(a / b >= 0.8),
            });
        }
        if let (Some(a), Some(b)) = (o("tls.basic_keepalive"), o("tls.http_keepalive")) {
            out.push(T {
                goal: "basic auth (cached) ≥ 90% of no auth".into(),
                measured: format!("{} vs {} pushes/s = {:.0}%", fx(a), fx(b), 100.0 * a / b),
                met: Some(a / b >= 0.9),
            });
        }
        if let (Some(a), Some(b)) = (o("tls.https_newconn"), u("tls.https_newconn")) {
            out.push(T {
                goal: "new TLS connection per request ≥ 2× upstream".into(),
                measured: format!("{} vs {} pushes/s = {:.2}×", fx(a), fx(b), a / b),
                met: Some(a / b >= 2.0),
            });
        }
        let mut scrape_sizes = self.s.scrape_groups.clone();
        scrape_sizes.sort_unstable();
        for g in scrape_sizes.iter().rev().take(2).rev() {
            for enc in ["plain", "gzip"] {
                for (which, factor) in [("first", 10.0), ("repeated", 50.0)] {
                    let key = format!("scrape.g{g}.{enc}.{which}");
                    if let (Some(a), Some(b)) = (o(&key), u(&key)) {
                        let what = if which == "first" {
                            "scrape after a change"
                        } else {
                            "repeated scrape of an unchanged store"
                        };
                        out.push(T {
                            goal: format!(
                                "{what}, {} series, {enc}: ≥ {factor:.0}× faster than upstream",
                                series_label(*g)
                            ),
                            measured: format!("{} vs {} ms = {:.1}×", fx(a), fx(b), b / a),
                            met: Some(b / a >= factor),
                        });
                    }
                }
            }
            let key = format!("scrape.g{g}.gzip.size");
            if let (Some(a), Some(b)) = (o(&key), u(&key)) {
                out.push(T {
                    goal: format!(
                        "gzip scrape of {} series ≤ 1.1× upstream's bytes",
                        series_label(*g)
                    ),
                    measured: format!("{} vs {} KiB = {:.2}×", fx(a), fx(b), a / b),
                    met: Some(a / b <= 1.1),
                });
            }
        }
        let gm = *self.s.memory_groups.iter().max().unwrap_or(&0);
        if let Some(b) = o(&format!("memory.g{gm}.bytes_per_series")) {
            out.push(T {
                goal: format!(
                    "memory ≤ 150 bytes per series at {} series (VmRSS / series)",
                    series_label(gm)
                ),
                measured: format!("{} bytes", fx(b)),
                met: Some(b <= 150.0),
            });
        }
        if let Some(t) = o("startup.ready_ms") {
            out.push(T {
                goal: "start-up < 20 ms without persistence".into(),
                measured: format!("{} ms", fx(t)),
                met: Some(t < 20.0),
            });
        }
        let gr = self.s.restore_groups;
        if let Some(t) = o(&format!("restore.g{gr}.own")) {
            out.push(T {
                goal: format!("restore of {} series ≤ 1 s", series_label(gr)),
                measured: format!("{} ms", fx(t)),
                met: Some(t <= 1000.0),
            });
        }
        if let (Some(a), Some(b)) = (
            o(&format!("restore.g{gr}.rss")),
            o(&format!("memory.g{gr}.rss")),
        ) {
            out.push(T {
                goal: format!(
                    "VmRSS after restoring {} series ≤ after pushing them live",
                    series_label(gr)
                ),
                measured: format!("{} vs {} MiB", fx(a), fx(b)),
                met: Some(a <= b),
            });
        }
        if let (Some(a), Some(b)) = (
            o(&format!("restore.g{gr}.import")),
            u(&format!("restore.g{gr}.import")),
        ) {
            out.push(T {
                goal: format!(
                    "import of upstream's file of {} series faster than upstream's own restore of it",
                    series_label(gr)
                ),
                measured: format!("{} vs {} ms = {:.2}×", fx(a), fx(b), a / b),
                met: Some(a < b),
            });
        }
        if let (Some(a), Some(b)) = (
            o(&format!("restore.g{gr}.import_hwm")),
            u(&format!("restore.g{gr}.import_hwm")),
        ) {
            out.push(T {
                goal: "peak memory (VmHWM) of that import ≤ half of upstream's restore".into(),
                measured: format!("{} vs {} MiB = {:.2}×", fx(a), fx(b), a / b),
                met: Some(a <= b / 2.0),
            });
        }
        self.fips_targets(&mut out);
        self.limits_targets(&mut out);
        self.res.targets = out;
    }
}

/// Removes a persistence file and what the gateways write next to it.
fn remove_persistence_files(dir: &Path, file: &Path) {
    let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with(name)) {
                let p = e.path();
                if p.is_dir() {
                    let _ = std::fs::remove_dir_all(p);
                } else {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
}
