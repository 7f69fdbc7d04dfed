//! The replicated store: three NATS servers clustered on loopback with JetStream, several
//! gateway replicas, clients spread over them. Each guarantee of the cluster brief is a test:
//! every replica serves every group, no acknowledged push is lost when a gateway or a NATS
//! server dies, a partitioned or a lost quorum never turns into a false 200, POST merges lose
//! no update, clashing pushes through different replicas are settled the same way everywhere,
//! a new replica is ready only once caught up, and expiry, limits and bulk deletion work on
//! the shared store.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::nats::NatsCluster;
use common::process::{GatewayProcess, http};
use common::{job_values, last_lines, lost_pushes, series_value, wait_until};
use serde_json::Value;

/// Gateway replicas on one NATS cluster.
struct Replicas {
    gateways: Vec<Option<GatewayProcess>>,
    args: Vec<String>,
}

impl Replicas {
    fn start(nats: &NatsCluster, count: usize, extra: &[&str]) -> Replicas {
        let mut args = vec![
            format!("--store.nats.url={}", nats.urls()),
            "--web.enable-admin-api".to_string(),
        ];
        args.extend(nats.client_args().iter().cloned());
        if !extra.iter().any(|a| a.starts_with("--store.nats.timeout")) {
            args.push("--store.nats.timeout=3s".to_string());
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut replicas = Replicas {
            gateways: Vec::new(),
            args,
        };
        for _ in 0..count {
            replicas.add();
        }
        replicas
    }

    /// Starts one more replica and waits until it is ready.
    fn add(&mut self) -> usize {
        let gateway = GatewayProcess::start(&self.args);
        wait_ready(&gateway, Duration::from_secs(30));
        self.gateways.push(Some(gateway));
        self.gateways.len() - 1
    }

    fn get(&self, i: usize) -> &GatewayProcess {
        self.gateways[i].as_ref().expect("a running replica")
    }

    fn address(&self, i: usize) -> String {
        self.get(i).address.clone()
    }

    fn kill(&mut self, i: usize) {
        if let Some(gateway) = self.gateways[i].take() {
            gateway.kill9();
        }
    }

    fn running(&self) -> impl Iterator<Item = &GatewayProcess> {
        self.gateways.iter().flatten()
    }
}

fn wait_ready(gateway: &GatewayProcess, limit: Duration) {
    let started = Instant::now();
    while gateway.request("GET", "/-/ready", "").map(|r| r.0) != Some(200) {
        assert!(started.elapsed() < limit, "not ready: {}", gateway.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pushed part of a scrape (the gateway's own families left out).
fn pushed(gateway: &GatewayProcess) -> String {
    common::strip_own_families(&gateway.metrics())
}

/// Waits until every running replica serves the same pushed metrics; returns them.
fn converged(replicas: &Replicas, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let scrapes: Vec<String> = replicas.running().map(pushed).collect();
        if scrapes.windows(2).all(|w| w[0] == w[1]) {
            return scrapes.into_iter().next().unwrap_or_default();
        }
        if started.elapsed() >= limit {
            // Each replica's lines that the first replica does not serve, and the reverse.
            let first: std::collections::BTreeSet<&str> = scrapes[0].lines().collect();
            let states: Vec<String> = replicas
                .running()
                .zip(&scrapes)
                .map(|(g, scrape)| {
                    let lines: std::collections::BTreeSet<&str> = scrape.lines().collect();
                    let only_here: Vec<&&str> = lines.difference(&first).take(10).collect();
                    let only_first: Vec<&&str> = first.difference(&lines).take(10).collect();
                    format!(
                        "{} lines; not in the first replica's scrape: {only_here:?}; missing: {only_first:?}\n{}",
                        scrape.lines().count(),
                        g.log()
                    )
                })
                .collect();
            panic!(
                "replicas did not converge within {limit:?}:\n{}",
                states.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pushers that write new groups (`job=<name>_<n>`, value n) through the given replicas,
/// round robin, recording what was acknowledged and what was refused.
struct Storm {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    acknowledged: Arc<Mutex<BTreeMap<String, u64>>>,
    refused: Arc<Mutex<Vec<(u16, String)>>>,
}

impl Storm {
    /// Six pushers over the first three replicas, once `acknowledged` pushes are.
    fn under_way(replicas: &Replicas, nats: &NatsCluster, acknowledged: usize) -> Storm {
        let storm = Storm::start((0..3).map(|i| replicas.address(i)).collect(), 6);
        let limit = Duration::from_secs(10);
        storm.wait_for_more(
            acknowledged,
            limit,
            "pushes are acknowledged",
            replicas,
            nats,
        );
        storm
    }

    fn start(addresses: Vec<String>, pushers: usize) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..pushers)
            .map(|p| {
                let (stop, acknowledged, refused, addresses) = (
                    stop.clone(),
                    acknowledged.clone(),
                    refused.clone(),
                    addresses.clone(),
                );
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let address = &addresses[(p + n as usize) % addresses.len()];
                        let job = format!("p{p}_{n}");
                        match http(
                            address,
                            "PUT",
                            &format!("/metrics/job/{job}"),
                            &format!("value {n}\n"),
                        ) {
                            Some((200, _)) => {
                                acknowledged.lock().unwrap().insert(job, n);
                            }
                            Some((status, text)) => {
                                assert_ne!(status, 400, "{text}");
                                refused.lock().unwrap().push((status, text));
                            }
                            None => {}
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        Storm {
            stop,
            threads,
            acknowledged,
            refused,
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Waits until `more` pushes beyond those acknowledged now are acknowledged. After
    /// `limit`, fails with what was refused meanwhile and the logs of the replicas and of
    /// the NATS servers, which tell where the pushes stopped.
    fn wait_for_more(
        &self,
        more: usize,
        limit: Duration,
        what: &str,
        replicas: &Replicas,
        nats: &NatsCluster,
    ) {
        let (before, refused_before) = (self.acknowledged(), self.refused.lock().unwrap().len());
        let started = Instant::now();
        while self.acknowledged() < before + more {
            if started.elapsed() >= limit {
                let refused = self.refused.lock().unwrap()[refused_before..].to_vec();
                let mut report = format!(
                    "timed out waiting until {what}: {} of {more} more pushes acknowledged in {limit:?}; {} refused meanwhile, the last: {:?}\n",
                    self.acknowledged() - before,
                    refused.len(),
                    refused.last()
                );
                for (i, gateway) in replicas.running().enumerate() {
                    report += &format!("--- replica {i}:\n{}\n", last_lines(&gateway.log(), 30));
                }
                for i in 0..3 {
                    report += &format!("--- nats-server {i}:\n{}\n", nats.log_tail(i, 30));
                }
                panic!("{report}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(self) -> (BTreeMap<String, u64>, Vec<(u16, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        let refused = self.refused.lock().unwrap().clone();
        (acknowledged, refused)
    }
}

/// Every acknowledged push is served by every running replica.
fn assert_all_present(replicas: &Replicas, acknowledged: &BTreeMap<String, u64>, context: &str) {
    let scrape = converged(replicas, Duration::from_secs(15));
    let lost = lost_pushes(acknowledged, &job_values(&scrape));
    assert!(
        lost.is_empty(),
        "{context}: acknowledged pushes lost: {lost:?}"
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Any replica accepts a change and every replica serves it; once pushes stop, the scrapes
/// are byte-identical. Measures how long a push takes to reach the other replicas.
#[test]
fn replicas_converge_and_serve_every_group() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(&nats, 3, &[]);
    let mut lags = Vec::new();
    for n in 0..200u64 {
        let from = (n % 3) as usize;
        let body = format!("# TYPE value gauge\nvalue {n}\n");
        let (status, text) = replicas
            .get(from)
            .request("PUT", &format!("/metrics/job/g{n}"), &body)
            .unwrap();
        assert_eq!(status, 200, "{text}");
        let pushed_at = Instant::now();
        // Read your writes on the replica that took the push.
        assert!(
            replicas
                .get(from)
                .metrics()
                .contains(&format!("job=\"g{n}\""))
        );
        let other = replicas.get((from + 1) % 3);
        wait_until(
            "the push reaches another replica",
            Duration::from_secs(5),
            || {
                other
                    .metrics()
                    .contains(&format!("value{{instance=\"\",job=\"g{n}\"}} {n}"))
            },
        );
        lags.push(pushed_at.elapsed());
    }
    // A POST, a DELETE and a wipe through different replicas.
    assert_eq!(
        replicas
            .get(1)
            .request("POST", "/metrics/job/g0", "other 1\n")
            .unwrap()
            .0,
        200
    );
    assert_eq!(
        replicas
            .get(2)
            .request("DELETE", "/metrics/job/g1", "")
            .unwrap()
            .0,
        202
    );
    let scrape = converged(&replicas, Duration::from_secs(5));
    assert!(scrape.contains("other{instance=\"\",job=\"g0\"} 1"));
    assert!(!scrape.contains("job=\"g1\""));
    assert_eq!(job_values(&scrape).len(), 199);
    lags.sort();
    eprintln!(
        "convergence lag over {} pushes: p50 {:?}, p99 {:?}, max {:?}",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().unwrap()
    );
    assert_eq!(
        replicas
            .get(0)
            .request("PUT", "/api/v1/admin/wipe", "")
            .unwrap()
            .0,
        202
    );
    assert_eq!(
        job_values(&converged(&replicas, Duration::from_secs(5))).len(),
        0
    );
}

/// Concurrent POSTs to one group through different replicas: each adds its own family, and
/// none is lost (compare-and-set on the group's revision).
#[test]
fn concurrent_posts_lose_no_update() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(&nats, 3, &[]);
    let per_thread = 25;
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let address = replicas.address(t);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let (status, text) = http(
                        &address,
                        "POST",
                        "/metrics/job/shared",
                        &format!("f_{t}_{i} {i}\n"),
                    )
                    .unwrap();
                    assert_eq!(status, 200, "{text}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let scrape = converged(&replicas, Duration::from_secs(5));
    for t in 0..3 {
        for i in 0..per_thread {
            assert!(
                scrape.contains(&format!("f_{t}_{i}{{instance=\"\",job=\"shared\"}} {i}")),
                "f_{t}_{i} lost\n{scrape}"
            );
        }
    }
    let retries: f64 = replicas
        .running()
        .filter_map(|g| series_value(&g.metrics(), "pushgateway_cluster_cas_retries_total"))
        .sum();
    eprintln!(
        "concurrent POSTs: {} families, {retries} compare-and-set retries",
        3 * per_thread
    );
}

/// Pushes that disagree on a family's type, accepted at the same moment through different
/// replicas: every replica leaves out the same family (the one written later), so every
/// scrape is valid and identical; the API says why.
#[test]
fn clashing_pushes_are_settled_the_same_everywhere() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(&nats, 2, &[]);
    let rounds = 30;
    let mut both_accepted = 0;
    for round in 0..rounds {
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = [("counter", 0), ("gauge", 1)]
            .into_iter()
            .map(|(kind, replica)| {
                let (address, barrier) = (replicas.address(replica), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    http(
                        &address,
                        "PUT",
                        &format!("/metrics/job/{kind}_{round}"),
                        &format!("# TYPE clash_{round} {kind}\nclash_{round} 1\n"),
                    )
                    .unwrap()
                    .0
                })
            })
            .collect();
        let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        if statuses == [200, 200] {
            both_accepted += 1;
        }
    }
    let scrape = converged(&replicas, Duration::from_secs(5));
    common::promtool_check(&replicas.get(0).metrics());
    // The gauge is refreshed every second.
    wait_until(
        "every replica counts what it left out",
        Duration::from_secs(5),
        || {
            replicas.running().all(|g| {
                series_value(&g.metrics(), "pushgateway_cluster_families_left_out")
                    == Some(both_accepted as f64)
            })
        },
    );
    for round in 0..rounds {
        let lines = scrape
            .lines()
            .filter(|l| l.starts_with(&format!("clash_{round}{{")))
            .count();
        assert_eq!(
            lines, 1,
            "round {round}: exactly one of the two is served\n{scrape}"
        );
    }
    // The API names what was left out, and why.
    if both_accepted > 0 {
        let document: Value = serde_json::from_str(
            &replicas
                .get(1)
                .request("GET", "/api/v1/metrics", "")
                .unwrap()
                .1,
        )
        .unwrap();
        let reasons: Vec<String> = document["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["left_out"].as_object())
            .flat_map(|o| o.values().map(|v| v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(reasons.len(), both_accepted);
        assert!(
            reasons[0].contains("has type") || reasons[0].contains("is not a"),
            "{reasons:?}"
        );
        assert!(
            replicas
                .running()
                .any(|g| g.log().contains("metric family left out of the scrape")),
            "logged"
        );
    }
    eprintln!("clashing pushes: {rounds} rounds, both accepted in {both_accepted}");
}

/// SIGKILL of a gateway replica under a push storm: every acknowledged push is served by the
/// others.
#[test]
fn a_killed_gateway_loses_nothing() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let mut replicas = Replicas::start(&nats, 3, &[]);
    let storm = Storm::under_way(&replicas, &nats, 101);
    replicas.kill(0);
    storm.wait_for_more(
        100,
        Duration::from_secs(10),
        "pushes go on through the others",
        &replicas,
        &nats,
    );
    let (acknowledged, _) = storm.finish();
    assert_all_present(&replicas, &acknowledged, "after SIGKILL of a replica");
    eprintln!(
        "killed gateway: {} pushes acknowledged, 0 lost",
        acknowledged.len()
    );
}

/// SIGKILL of a NATS server (one of three) under a push storm: pushes may wait for a new
/// leader, and every acknowledged one survives.
#[test]
fn a_killed_nats_server_loses_nothing() {
    let Some(mut nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(&nats, 3, &[]);
    let storm = Storm::under_way(&replicas, &nats, 101);
    nats.kill(0);
    storm.wait_for_more(
        100,
        Duration::from_secs(20),
        "pushes go on with two servers",
        &replicas,
        &nats,
    );
    nats.restart(0);
    let (acknowledged, refused) = storm.finish();
    assert!(
        refused.iter().all(|(status, _)| *status == 503),
        "{refused:?}"
    );
    assert_all_present(&replicas, &acknowledged, "after SIGKILL of a NATS server");
    eprintln!(
        "killed NATS server: {} pushes acknowledged, 0 lost, {} refused with 503 during the election",
        acknowledged.len(),
        refused.len()
    );
}

/// SIGSTOP of one NATS server (a partition, as it looks from outside): the other two keep a
/// quorum; after SIGCONT everything converges and nothing acknowledged is lost.
#[test]
fn a_partitioned_nats_server() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(&nats, 3, &[]);
    let storm = Storm::under_way(&replicas, &nats, 51);
    nats.pause(1, true);
    storm.wait_for_more(
        100,
        Duration::from_secs(20),
        "pushes go on during the partition",
        &replicas,
        &nats,
    );
    nats.pause(1, false);
    let (acknowledged, refused) = storm.finish();
    assert!(
        refused.iter().all(|(status, _)| *status == 503),
        "{refused:?}"
    );
    assert_all_present(&replicas, &acknowledged, "after a partition");
    eprintln!(
        "partition: {} pushes acknowledged, 0 lost",
        acknowledged.len()
    );
}

/// Two of three NATS servers down: no quorum, so pushes get 503 and never 200; scrapes keep
/// serving the last view; the replicas' metrics show the view aging. Once the servers are
/// back, pushes succeed again.
#[test]
fn without_a_quorum_pushes_get_503() {
    let Some(mut nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(&nats, 2, &["--store.nats.timeout=2s"]);
    assert_eq!(
        replicas
            .get(0)
            .request("PUT", "/metrics/job/kept", "value 1\n")
            .unwrap()
            .0,
        200
    );
    converged(&replicas, Duration::from_secs(5));
    nats.kill(1);
    nats.kill(2);
    for n in 0..3 {
        let started = Instant::now();
        let (status, text) = replicas
            .get(n % 2)
            .request("PUT", &format!("/metrics/job/lost{n}"), "value 2\n")
            .unwrap();
        assert_eq!(status, 503, "{text}");
        assert!(
            text.contains("did not acknowledge") || text.contains("nothing was changed"),
            "{text}"
        );
        assert!(started.elapsed() < Duration::from_secs(6), "bounded wait");
    }
    for gateway in replicas.running() {
        let scrape = pushed(gateway);
        assert!(
            scrape.contains("value{instance=\"\",job=\"kept\"} 1"),
            "{scrape}"
        );
    }
    // With the last server gone too, NATS is unreachable: the metrics say so, and how old the
    // view is.
    nats.kill(0);
    wait_until("the view ages", Duration::from_secs(10), || {
        series_value(
            &replicas.get(0).metrics(),
            "pushgateway_cluster_view_age_seconds",
        )
        .is_some_and(|age| age >= 1.0)
            && series_value(&replicas.get(0).metrics(), "pushgateway_cluster_connected")
                == Some(0.0)
    });
    assert_eq!(
        replicas.get(0).request("GET", "/-/ready", "").unwrap().0,
        503
    );
    nats.restart_all(&[0, 1, 2]);
    wait_until("pushes succeed again", Duration::from_secs(30), || {
        replicas
            .get(1)
            .request("PUT", "/metrics/job/back", "value 3\n")
            .is_some_and(|r| r.0 == 200)
    });
    let started = Instant::now();
    while !replicas
        .running()
        .all(|g| pushed(g).contains("job=\"back\""))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not every replica shows the acknowledged push:\n{}\n{}",
            replicas.get(0).log(),
            replicas.get(1).log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let scrape = converged(&replicas, Duration::from_secs(10));
    assert!(
        !scrape.contains("job=\"lost"),
        "a push answered 503 here was never acknowledged by a quorum, so it never applied"
    );
}

/// A replica started against a full bucket answers /-/ready only once its view has caught up.
#[test]
fn a_new_replica_is_ready_only_when_caught_up() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let mut replicas = Replicas::start(&nats, 1, &[]);
    let groups = 2000;
    let storm_address = replicas.address(0);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let address = storm_address.clone();
            std::thread::spawn(move || {
                for n in (t..groups).step_by(4) {
                    let body = format!("value {n}\n");
                    let status = http(&address, "PUT", &format!("/metrics/job/full{n}"), &body)
                        .unwrap()
                        .0;
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let gateway = GatewayProcess::start(&replicas.args);
    let started = Instant::now();
    let mut refused = 0;
    loop {
        match gateway.request("GET", "/-/ready", "").map(|r| r.0) {
            Some(200) => break,
            Some(503) => refused += 1,
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    let ready_after = started.elapsed();
    assert_eq!(
        job_values(&pushed(&gateway)).len(),
        groups,
        "ready means caught up"
    );
    eprintln!(
        "new replica: ready after {ready_after:?} with {groups} groups in the bucket ({refused} not-ready answers before)"
    );
    let _ = replicas.add();
}

/// A group larger than the NATS servers' max_payload (1 MiB by default) is refused with 413
/// that names the limit, and changes nothing.
#[test]
fn groups_larger_than_max_payload_are_refused() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(&nats, 1, &[]);
    // Few series with long label values: twice the limit, and quick to parse in a debug
    // build on a loaded machine (400,000 short series took over the client's 10 s there).
    let padding = "x".repeat(200);
    let body: String = (0..10_000)
        .map(|i| format!("big{{i=\"{i:08}\",pad=\"{padding}\"}} {i}\n"))
        .collect();
    assert!(body.len() >= 2 * 1024 * 1024, "a group of 2 MiB");
    let Some((status, text)) = replicas.get(0).request("PUT", "/metrics/job/big", &body) else {
        panic!(
            "no answer to the push; the gateway's log:\n{}",
            replicas.get(0).log()
        );
    };
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_payload (1048576 bytes)"), "{text}");
    assert!(!pushed(replicas.get(0)).contains("job=\"big\""));
}

/// Expiry is decided once per group, not once per replica; limits count the shared store;
/// a bulk deletion through one replica is seen by all.
#[test]
fn expiry_limits_and_bulk_deletion_on_the_shared_store() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let replicas = Replicas::start(
        &nats,
        3,
        &["--push.expire-after=1s", "--push.max-groups=10"],
    );
    for n in 0..10 {
        let (status, text) = replicas
            .get(n % 3)
            .request("PUT", &format!("/metrics/job/e{n}"), "value 1\n")
            .unwrap();
        assert_eq!(status, 200, "{text}");
    }
    converged(&replicas, Duration::from_secs(5));
    let (status, text) = replicas
        .get(1)
        .request("PUT", "/metrics/job/e10", "value 1\n")
        .unwrap();
    assert_eq!(status, 507, "the limit counts the shared store: {text}");
    wait_until("every group expired", Duration::from_secs(10), || {
        replicas
            .running()
            .all(|g| job_values(&pushed(g)).is_empty())
    });
    wait_until("the expiries are counted", Duration::from_secs(5), || {
        let expired: f64 = replicas
            .running()
            .filter_map(|g| series_value(&g.metrics(), "pushgateway_groups_expired_total"))
            .sum();
        expired == 10.0
    });
    // Bulk deletion.
    for n in 0..6 {
        let status = replicas
            .get(n % 3)
            .request(
                "PUT",
                &format!(
                    "/metrics/job/{}/instance/i{n}",
                    if n < 4 { "nightly" } else { "hourly" }
                ),
                "value 1\n",
            )
            .unwrap()
            .0;
        assert_eq!(status, 200);
    }
    converged(&replicas, Duration::from_secs(5));
    let (status, body) = replicas
        .get(2)
        .request(
            "DELETE",
            "/api/v1/groups?match=%7Bjob%3D%22nightly%22%7D",
            "",
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"deleted\":4"), "{body}");
    let scrape = converged(&replicas, Duration::from_secs(5));
    assert!(!scrape.contains("nightly") && scrape.contains("hourly"));
}

/// An existing persistence file is imported into an empty bucket once.
#[test]
fn a_persistence_file_is_imported_into_an_empty_bucket() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let file = nats.dir().join("pg.data");
    let single = GatewayProcess::start(&[format!("--persistence.file={}", file.display())]);
    for job in ["a", "b"] {
        assert_eq!(
            single
                .request("PUT", &format!("/metrics/job/{job}"), "value 7\n")
                .unwrap()
                .0,
            200
        );
    }
    single.stop();
    let import = format!("--store.nats.import-file={}", file.display());
    let replicas = Replicas::start(&nats, 1, &[&import]);
    wait_until("the groups are imported", Duration::from_secs(10), || {
        job_values(&pushed(replicas.get(0))).len() == 2
    });
    // A second replica with the same flag does not import again (the bucket is not empty).
    assert_eq!(
        replicas
            .get(0)
            .request("DELETE", "/metrics/job/a", "")
            .unwrap()
            .0,
        202
    );
    let mut replicas = replicas;
    let second = replicas.add();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(job_values(&pushed(replicas.get(second))).len(), 1);
    assert!(replicas.get(second).log().contains("not imported"));
}

/// Upstream's persistence file (Go gob, written by Debian's 1.5.1) is imported as well.
#[test]
fn upstreams_file_is_imported_into_an_empty_bucket() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let file = nats.dir().join("upstream.gob");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/upstream/three-groups.gob"
        ),
        &file,
    )
    .unwrap();
    let import = format!("--store.nats.import-file={}", file.display());
    let replicas = Replicas::start(&nats, 2, &[&import]);
    wait_until(
        "upstream's groups are imported",
        Duration::from_secs(10),
        || {
            let scrape = pushed(replicas.get(1));
            scrape.contains("proto_requests_total{code=\"200\",instance=\"\",job=\"proto\"} 42.5")
                && scrape.contains("batch_records_total{")
        },
    );
    assert!(file.exists(), "the file is read, not moved or changed");
}

/// TLS to NATS with the servers' own CA and a client certificate that the servers verify. A
/// FIPS build makes this connection through the validated module, and refuses a connection
/// without TLS.
#[test]
fn tls_and_client_certificates_to_nats() {
    let setup = common::tls::Setup::new();
    let client = setup.ca.client(
        "pushgateway",
        vec![common::tls::dns("gateway.example")],
        false,
    );
    client.write(setup.dir.path(), "nats-client");
    let tls = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}",
        setup.path("server.crt"),
        setup.path("server.key"),
        setup.path("ca.crt")
    );
    let Some(nats) = NatsCluster::start_with_tls(&tls) else {
        return;
    };
    let ca = format!("--store.nats.tls.ca-file={}", setup.path("ca.crt"));
    let cert = format!(
        "--store.nats.tls.cert-file={}",
        setup.path("nats-client.crt")
    );
    let key = format!(
        "--store.nats.tls.key-file={}",
        setup.path("nats-client.key")
    );
    let replicas = Replicas::start(&nats, 2, &[&ca, &cert, &key]);
    assert_eq!(
        replicas
            .get(0)
            .request("PUT", "/metrics/job/tls", "value 1\n")
            .unwrap()
            .0,
        200
    );
    assert!(job_values(&converged(&replicas, Duration::from_secs(5))).contains_key("tls"));

    // Without a client certificate the servers refuse the gateway: it never becomes ready and
    // changes get 503.
    let refused = GatewayProcess::start(&[
        format!("--store.nats.url={}", nats.urls()),
        "--store.nats.timeout=1s".to_string(),
        ca.clone(),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(refused.request("GET", "/-/ready", "").unwrap().0, 503);
    assert_eq!(
        refused
            .request("PUT", "/metrics/job/no", "value 1\n")
            .unwrap()
            .0,
        503
    );

    // A FIPS build connects to NATS only over TLS.
    let plain =
        GatewayProcess::try_start(&["--store.nats.url=nats://127.0.0.1:4222".to_string()], &[]);
    if pushgateway::fips::BUILD {
        let log = plain.err().expect("a FIPS build refuses NATS without TLS");
        assert!(
            log.contains("FIPS") && log.contains("only over TLS"),
            "{log}"
        );
    } else {
        assert!(plain.is_ok());
    }
}
