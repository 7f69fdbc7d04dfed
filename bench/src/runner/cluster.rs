//! Scenario 10, cluster mode (ours; upstream has none): three NATS servers (Debian's `nats-server`)
//! clustered on loopback, three gateways with `--store.nats.url`. Pushes/s through the three
//! replicas beside the single-node store in the same run, the time a new replica takes to become
//! ready with a large bucket, and the largest group a push can store with the servers' default
//! `max_payload` (1 MiB).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::{Runner, measured_json, series_label};
use crate::load::{self, ConnMode, LoadReport, LoadSpec, RequestSpec, Target};
use crate::process::{Gateway, Kind, NatsServer, free_port};
use crate::report::{Better, Metric};
use crate::workload;

const SC: &str = "10. Cluster mode (ours; three NATS servers and three replicas on loopback)";

/// A group of `series` gauges of a typical line (`name{shard="12345"} 12345.5`).
fn big_body(series: u64) -> Bytes {
    let mut s = String::with_capacity(series as usize * 48 + 64);
    s.push_str("# TYPE bench_big_duration_seconds gauge\n");
    for i in 0..series {
        let _ = writeln!(s, "bench_big_duration_seconds{{shard=\"{i}\"}} {i}.5");
    }
    Bytes::from(s)
}

const BIG_PATH: &str = "/metrics/job/bench_big";

/// Three clustered NATS servers; stopped when dropped.
struct Nats {
    servers: Vec<NatsServer>,
}

impl Nats {
    fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Runner {
    fn start_nats(&mut self) -> Result<Nats, String> {
        let dir = self.work.join("nats");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let route_list: Vec<String> = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let mut servers = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let port = free_port()?;
            let monitor = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let config = dir.join(format!("n{i}.conf"));
            // max_payload stays at its default (1 MiB), as most deployments have it.
            let text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{port}\nhttp: {monitor}\n\
                 jetstream {{ store_dir: \"{}\", max_memory_store: 256MB, max_file_store: 8GB }}\n\
                 cluster {{ name: pgbench, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                dir.join(format!("js{i}")).display(),
                route_list.join(", ")
            );
            std::fs::write(&config, text)
                .map_err(|e| format!("writing {}: {e}", config.display()))?;
            self.label_seq += 1;
            let label = format!("{:03}-nats-n{i}", self.label_seq);
            servers.push(NatsServer::spawn(
                &label, &config, port, monitor, &self.logs,
            )?);
        }
        for s in &mut servers {
            s.wait_healthy(Duration::from_secs(60))?;
        }
        Ok(Nats { servers })
    }

    /// Runs the specs at the same time; their reports in the same order.
    fn run_together(&self, specs: Vec<LoadSpec>) -> Vec<LoadReport> {
        self.rt.block_on(async {
            let handles: Vec<_> = specs
                .into_iter()
                .map(|s| tokio::spawn(load::run(s)))
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap_or_default());
            }
            out
        })
    }

    /// The push load of scenario 1 spread over `targets`, each client on its own group.
    fn push_spread(&self, gateways: &[Gateway]) -> (f64, f64, u64, serde_json::Value) {
        let n = gateways.len();
        let specs = gateways
            .iter()
            .enumerate()
            .map(|(i, gw)| {
                let clients = self.s.clients / n + usize::from(i < self.s.clients % n);
                let first = (0..i)
                    .map(|j| self.s.clients / n + usize::from(j < self.s.clients % n))
                    .sum();
                self.push_spec_from(
                    Target::plain(gw.addr),
                    ConnMode::KeepAlive,
                    self.s.short_duration_s,
                    clients,
                    first,
                )
            })
            .collect::<Vec<_>>();
        let mut warm = specs.clone();
        for s in &mut warm {
            s.duration = Some(Duration::from_secs_f64(self.s.warmup_s));
        }
        let _ = self.run_together(warm);
        let reports = self.run_together(specs);
        let elapsed = reports.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
        let ok: u64 = reports.iter().map(|r| r.ok).sum();
        let failures = reports.iter().map(LoadReport::failures).sum();
        let p99 = reports.iter().map(|r| r.latency.p99_ms).fold(0.0, f64::max);
        let rate = if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        };
        (rate, p99, failures, json!({ "replicas": reports }))
    }

    pub(super) fn cluster(&mut self) -> Result<(), String> {
        self.say("10. cluster mode");
        let nats = self.start_nats()?;
        let mut args = Self::no_persistence();
        args.push(format!("--store.nats.url={}", nats.urls()));
        let mut replicas = Vec::new();
        for i in 0..3 {
            replicas.push(self.start(Kind::Ours, &format!("cluster-r{i}"), &args)?);
        }
        self.cluster_push(&replicas)?;
        self.save();
        self.largest_group(&replicas[0])?;
        self.save();
        self.new_replica(&replicas, &args)?;
        for gw in replicas {
            gw.stop(Duration::from_secs(60))?;
        }
        drop(nats);
        Ok(())
    }

    /// Pushes/s through the three replicas, and through a single-node gateway without and
    /// with its persistence log, taking turns.
    fn cluster_push(&mut self, replicas: &[Gateway]) -> Result<(), String> {
        let rate = |key: &str, label: &str| {
            Metric::new(
                SC,
                &format!("cluster.push.{key}"),
                &format!("{label}: 32 clients, keep-alive, 60-line PUTs"),
                "pushes/s",
                Better::Higher,
            )
        };
        let p99 = |key: &str, label: &str| {
            Metric::new(
                SC,
                &format!("cluster.push.{key}.p99"),
                &format!("{label}: p99 at that load"),
                "ms",
                Better::Lower,
            )
        };
        let three = "three replicas, clients spread over them (p99: the worst replica's)";
        for round in 0..self.s.rounds {
            let (r, worst, failures, d) = self.push_spread(replicas);
            self.say(format!(
                "  three replicas round {round}: {r:.0} pushes/s, worst p99 {worst:.2} ms, {failures} failures"
            ));
            self.res.record(
                &rate("three", three),
                Kind::Ours,
                round,
                r,
                failures,
                d.clone(),
            );
            self.res
                .record(&p99("three", three), Kind::Ours, round, worst, failures, d);
            for (key, label, log) in [
                ("single", "single node, no persistence", false),
                ("single_log", "single node, persistence log fsynced", true),
            ] {
                let file = self.work.join(format!("cluster-single-{round}.db"));
                let args = if log {
                    vec![format!("--persistence.file={}", file.display())]
                } else {
                    Self::no_persistence()
                };
                let (r, cpu) = self.push_once(
                    Kind::Ours,
                    &format!("cluster-{key}"),
                    &args,
                    self.s.short_duration_s,
                )?;
                super::remove_persistence_files(&self.work, &file);
                self.say(format!("  {label} round {round}: {}", r.line()));
                let d = measured_json(&r, cpu);
                self.res.record(
                    &rate(key, label),
                    Kind::Ours,
                    round,
                    r.ok_per_s,
                    r.failures(),
                    d.clone(),
                );
                self.res.record(
                    &p99(key, label),
                    Kind::Ours,
                    round,
                    r.latency.p99_ms,
                    r.failures(),
                    d,
                );
            }
        }
        Ok(())
    }

    /// The most series of a typical line one group can hold: doubling until a push is refused,
    /// then halving the interval to within 1%.
    fn largest_group(&mut self, gw: &Gateway) -> Result<(), String> {
        let target = Target::plain(gw.addr);
        let timeout = self.timeout();
        let try_push = |series: u64| {
            self.rt.block_on(load::fetch(
                &target,
                None,
                RequestSpec::put(BIG_PATH, big_body(series)),
                timeout,
            ))
        };
        let mut good = 0u64;
        let mut bad = None;
        let mut refusal = String::new();
        let mut n = 1_000u64;
        while bad.is_none() && n <= 4_000_000 {
            match try_push(n) {
                Ok(_) => good = n,
                Err(e) => {
                    bad = Some(n);
                    refusal = e;
                }
            }
            n *= 2;
        }
        let Some(mut bad) = bad else {
            return Err(format!(
                "a group of {good} series was still accepted; no limit found"
            ));
        };
        while bad - good > good / 100 + 1 {
            let mid = good + (bad - good) / 2;
            match try_push(mid) {
                Ok(_) => good = mid,
                Err(e) => {
                    bad = mid;
                    refusal = e;
                }
            }
        }
        let _ = self.rt.block_on(load::fetch(
            &target,
            None,
            RequestSpec {
                method: http::Method::DELETE,
                ..RequestSpec::get(BIG_PATH)
            },
            timeout,
        ));
        let bytes = big_body(good).len();
        self.say(format!(
            "  largest group: {good} series ({:.0} KiB of text); {bad} refused ({refusal})",
            bytes as f64 / 1024.0
        ));
        let d = json!({ "largest_series": good, "text_bytes": bytes, "refused_series": bad, "refusal": refusal });
        let m = Metric::new(
            SC,
            "cluster.largest_group",
            "largest group a push stores with NATS's default max_payload (1 MiB), in series of \
             `bench_big_duration_seconds{shard=\"12345\"} 12345.5`",
            "series",
            Better::Higher,
        );
        self.res
            .record(&m, Kind::Ours, 0, good as f64, 0, d.clone());
        let m = Metric::new(
            SC,
            "cluster.largest_group_kib",
            "that group's size as pushed (text)",
            "KiB",
            Better::Higher,
        );
        self.res
            .record(&m, Kind::Ours, 0, bytes as f64 / 1024.0, 0, d);
        self.note(format!(
            "Cluster (10): the largest group is found by pushing one group of n gauges (one family, a label \
             of up to 7 digits), doubling n from 1,000 until a push is refused, then bisecting to within 1%; \
             the first refusal was `{refusal}`."
        ));
        Ok(())
    }

    /// Fills the bucket through the three replicas, then starts a new replica and measures the
    /// time from spawning it to its first 200 from `/-/ready` (it is ready once caught up).
    fn new_replica(&mut self, replicas: &[Gateway], args: &[String]) -> Result<(), String> {
        let g = self.s.cluster_groups;
        let n = series_label(g);
        let k = replicas.len() as u64;
        let specs = replicas
            .iter()
            .enumerate()
            .map(|(i, gw)| {
                let i = i as u64;
                let mut spec = LoadSpec::new(
                    Target::plain(gw.addr),
                    self.s.clients / replicas.len(),
                    std::sync::Arc::new(move |_, seq| {
                        let group = seq * k + i;
                        RequestSpec::put(workload::load_path(group), workload::load_body(group))
                    }),
                );
                spec.max_requests = Some(g / k + u64::from(i < g % k));
                spec.timeout = self.timeout();
                spec
            })
            .collect();
        let reports = self.run_together(specs);
        let ok: u64 = reports.iter().map(|r| r.ok).sum();
        let failures: u64 = reports.iter().map(LoadReport::failures).sum();
        let elapsed = reports.iter().map(|r| r.elapsed_s).fold(0.0, f64::max);
        if ok != g || failures > 0 {
            return Err(format!(
                "loading {g} groups through the replicas: {ok} ok, {failures} failures"
            ));
        }
        self.say(format!(
            "  loaded {n} series through three replicas in {elapsed:.1}s ({:.0} pushes/s)",
            ok as f64 / elapsed
        ));
        let m_fill = Metric::new(
            SC,
            &format!("cluster.g{g}.fill_per_s"),
            &format!(
                "filling the bucket with {n} series (20 per group), 32 clients over three replicas"
            ),
            "pushes/s",
            Better::Higher,
        );
        self.res.record(
            &m_fill,
            Kind::Ours,
            0,
            ok as f64 / elapsed,
            failures,
            json!({ "replicas": reports }),
        );
        let ready = Metric::new(
            SC,
            &format!("cluster.g{g}.new_replica_ready"),
            &format!("a new replica with {n} series in the bucket: start to ready (caught up)"),
            "ms",
            Better::Lower,
        );
        let rss = Metric::new(
            SC,
            &format!("cluster.g{g}.new_replica_rss"),
            &format!("that replica's VmRSS when ready, {n} series"),
            "MiB",
            Better::Lower,
        );
        for round in 0..self.s.stored_rounds {
            let gw = self.start(Kind::Ours, "cluster-new", args)?;
            let t = gw.ready_after;
            let m = gw.memory()?;
            let cpu = gw.cpu_time()?;
            if round == 0 {
                let check = self.validate(&gw, g)?;
                self.say(format!(
                    "  new replica holds all {n} series (scrape {check:.0} ms)"
                ));
            }
            self.say(format!(
                "  new replica round {round}: ready after {:.0} ms (CPU {:.0} ms), VmRSS {:.0} MiB",
                t.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3,
                m.rss_mib()
            ));
            let d = json!({ "ready_ms": t.as_secs_f64() * 1e3, "cpu_ms": cpu.as_secs_f64() * 1e3, "memory": m });
            self.res.record(
                &ready,
                Kind::Ours,
                round,
                t.as_secs_f64() * 1e3,
                0,
                d.clone(),
            );
            self.res.record(&rss, Kind::Ours, round, m.rss_mib(), 0, d);
            gw.stop(Duration::from_secs(60))?;
        }
        self.note(format!(
            "Cluster (10): NATS servers with JetStream on file storage in the work directory, \
             `max_payload` at its default; the gateways create the bucket with 3 replicas. Pushes/s: the \
             three replicas take the 32 clients between them, each client its own group; the single-node \
             rows are measured in the same rounds. The new replica is a fourth gateway started against the \
             bucket filled with {n} series."
        ));
        Ok(())
    }
}
