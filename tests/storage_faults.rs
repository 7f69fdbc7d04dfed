//! Storage faults through the real binary: a full disk (a real tmpfs), a failed fsync, EIO,
//! a read-only file system (a fault-injecting file layer), and files deleted under the
//! gateway. For each: pushes that cannot be kept get 503 and change nothing, scrapes keep
//! working, pushes succeed again by themselves once the disk allows, the metrics say what is
//! wrong, and after `kill -9` every acknowledged push is there and no refused one.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::faults::{Faults, Tmpfs};
use common::process::{GatewayProcess, http};
use common::{job_values, lost_pushes, series_value, wait_until};

/// What the pushers were told, by group.
#[derive(Default)]
struct Outcomes {
    acknowledged: BTreeMap<String, u64>,
    refused: BTreeMap<String, u64>,
}

/// Pushers that each create new groups (`job=<name>_<n>`, value n) as fast as they are
/// answered, with bodies of `series` series so that a push needs real disk space.
struct Pushers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    outcomes: Arc<Mutex<Outcomes>>,
    answered: Arc<AtomicU64>,
}

impl Pushers {
    fn start(address: &str, names: &[&str], series: usize, first: u64) -> Pushers {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let answered = Arc::new(AtomicU64::new(0));
        let threads = names
            .iter()
            .map(|name| {
                let (stop, outcomes, answered) = (stop.clone(), outcomes.clone(), answered.clone());
                let (address, name) = (address.to_string(), name.to_string());
                std::thread::spawn(move || {
                    let mut n = first;
                    while !stop.load(Ordering::Relaxed) {
                        let job = format!("{name}_{n}");
                        let mut body: String = (0..series)
                            .map(|i| format!("filler_metric{{series=\"{i:05}\"}} {n}\n"))
                            .collect();
                        body.push_str(&format!("value {n}\n"));
                        match http(&address, "PUT", &format!("/metrics/job/{job}"), &body) {
                            Some((200, _)) => {
                                outcomes.lock().unwrap().acknowledged.insert(job, n);
                            }
                            Some((503, text)) => {
                                assert!(
                                    text.contains("nothing was changed"),
                                    "a 503 says what happened: {text}"
                                );
                                outcomes.lock().unwrap().refused.insert(job, n);
                            }
                            Some((status, text)) => panic!("unexpected answer {status}: {text}"),
                            // A connection cut by kill -9: neither acknowledged nor refused.
                            None => {}
                        }
                        answered.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                })
            })
            .collect();
        Pushers {
            stop,
            threads,
            outcomes,
            answered,
        }
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    fn acknowledged(&self) -> usize {
        self.outcomes.lock().unwrap().acknowledged.len()
    }

    fn refused(&self) -> usize {
        self.outcomes.lock().unwrap().refused.len()
    }

    fn finish(self) -> Outcomes {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        Arc::try_unwrap(self.outcomes)
            .ok()
            .expect("pushers are done")
            .into_inner()
            .unwrap()
    }
}

/// Every acknowledged push is in the scrape with its value; no refused one is.
fn check_outcomes(exposition: &str, outcomes: &Outcomes, context: &str) -> (usize, usize) {
    let found = job_values(exposition);
    let lost = lost_pushes(&outcomes.acknowledged, &found);
    assert!(
        lost.is_empty(),
        "{context}: {} acknowledged pushes lost: {lost:?}",
        lost.len()
    );
    let present: Vec<&String> = outcomes
        .refused
        .keys()
        .filter(|job| found.contains_key(*job))
        .collect();
    assert!(
        present.is_empty(),
        "{context}: pushes answered 503 were applied: {present:?}"
    );
    (outcomes.acknowledged.len(), outcomes.refused.len())
}

fn gauge(gateway: &GatewayProcess, series: &str) -> Option<f64> {
    series_value(&gateway.metrics(), series)
}

/// The metrics and the refusal while a fault lasts: scrapes work, the fault is named.
fn check_failing(gateway: &GatewayProcess, kind: &str) {
    let metrics = gateway.metrics();
    assert_eq!(
        series_value(&metrics, "pushgateway_persistence_healthy"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        series_value(
            &metrics,
            &format!("pushgateway_persistence_fault{{kind=\"{kind}\"}}")
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        series_value(
            &metrics,
            "pushgateway_persistence_failing_since_timestamp_seconds"
        )
        .is_some_and(|t| t > 1.0e9)
    );
    let (status, text) = gateway
        .request("PUT", "/metrics/job/during_fault", "value 1\n")
        .unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains(kind), "the refusal names the fault: {text}");
    assert!(
        !gateway.metrics().contains("job=\"during_fault\""),
        "a refused push changes nothing"
    );
}

fn healthy(gateway: &GatewayProcess) -> bool {
    gauge(gateway, "pushgateway_persistence_healthy") == Some(1.0)
}

/// A disk that fills up under concurrent pushers and frees up again, three times; then
/// `kill -9`. Every acknowledged push survives, no refused one appears.
#[test]
fn a_full_disk_refuses_pushes_and_loses_none() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let file = disk.path().join("pg.data");
    let args = [
        format!("--persistence.file={}", file.display()),
        "--persistence.interval=1h".to_string(),
    ];
    let gateway = GatewayProcess::start(&args);
    let pushers = Pushers::start(&gateway.address, &["a", "b", "c", "d"], 40, 0);
    let mut cycles = 0;
    for _ in 0..3 {
        let before = pushers.acknowledged();
        wait_until(
            "some pushes are acknowledged",
            Duration::from_secs(10),
            || pushers.acknowledged() >= before + 20,
        );
        let filler = disk.fill();
        let refused = pushers.refused();
        wait_until("pushes are refused", Duration::from_secs(10), || {
            pushers.refused() > refused + 10
        });
        check_failing(&gateway, "disk_full");
        assert!(
            gateway.log().contains("persistence failed"),
            "{}",
            gateway.log()
        );
        std::fs::remove_file(&filler).unwrap();
        let acknowledged = pushers.acknowledged();
        wait_until(
            "pushes succeed again once there is space",
            Duration::from_secs(10),
            || pushers.acknowledged() > acknowledged + 5,
        );
        assert!(healthy(&gateway));
        cycles += 1;
    }
    // Fill once more and die while the disk is full.
    disk.fill();
    let refused = pushers.refused();
    wait_until("pushes are refused", Duration::from_secs(10), || {
        pushers.refused() > refused
    });
    let answered = pushers.answered();
    gateway.kill9();
    let outcomes = pushers.finish();
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let restarted = GatewayProcess::start(&args);
    let (acknowledged, refused) = check_outcomes(&restarted.metrics(), &outcomes, "after kill -9");
    eprintln!(
        "disk full: {cycles} fault cycles and a kill -9 while full, {answered} pushes answered: {acknowledged} acknowledged (0 lost), {refused} refused (none applied)"
    );
    assert!(refused > 0 && acknowledged > 0);
}

/// With snapshots only (`--no-persistence.log`), a snapshot that cannot be written leaves the
/// last good one in place; the gateway writes one again by itself once there is space.
#[test]
fn a_snapshot_that_cannot_be_written_leaves_the_last_good_one() {
    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    let file = disk.path().join("pg.data");
    let args = [
        format!("--persistence.file={}", file.display()),
        "--persistence.interval=100ms".to_string(),
        "--no-persistence.log".to_string(),
    ];
    let gateway = GatewayProcess::start(&args);
    let big: String = (0..20_000)
        .map(|i| format!("big{{i=\"{i}\"}} 1\n"))
        .chain(["value 1\n".to_string()])
        .collect();
    assert_eq!(
        gateway
            .request("PUT", "/metrics/job/first", "value 1\n")
            .unwrap()
            .0,
        200
    );
    wait_until(
        "a snapshot holds the first push",
        Duration::from_secs(5),
        || std::fs::read(&file).is_ok_and(|b| b.windows(5).any(|w| w == b"first")),
    );
    let good = std::fs::read(&file).unwrap();
    let filler = disk.fill();
    // As upstream in this mode, pushes are answered from memory.
    assert_eq!(
        gateway
            .request("PUT", "/metrics/job/second", &big)
            .unwrap()
            .0,
        200
    );
    wait_until("the snapshot fails", Duration::from_secs(5), || {
        gauge(&gateway, "pushgateway_persistence_healthy") == Some(0.0)
    });
    assert_eq!(
        gauge(
            &gateway,
            "pushgateway_persistence_fault{kind=\"disk_full\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        good,
        "the last good snapshot stays"
    );
    assert!(
        std::fs::read_dir(disk.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")),
        "no half-written snapshot is left behind"
    );
    assert!(
        job_values(&gateway.metrics()).contains_key("second"),
        "scrapes work"
    );
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "a snapshot is written again",
        Duration::from_secs(5),
        || healthy(&gateway),
    );
    gateway.kill9();
    let restarted = GatewayProcess::start(&args);
    let found = job_values(&restarted.metrics());
    assert!(found.contains_key("first") && found.contains_key("second"));
    // A crash while the disk is full: the restart finds the last good snapshot, intact.
    let filler = disk.fill();
    assert_eq!(
        restarted
            .request("PUT", "/metrics/job/third", &big)
            .unwrap()
            .0,
        200
    );
    wait_until("the snapshot fails", Duration::from_secs(5), || {
        gauge(&restarted, "pushgateway_persistence_healthy") == Some(0.0)
    });
    restarted.kill9();
    std::fs::remove_file(&filler).unwrap();
    let again = GatewayProcess::start(&args);
    let found = job_values(&again.metrics());
    assert!(found.contains_key("first") && found.contains_key("second"));
    assert!(!found.contains_key("third"));
    assert!(
        again
            .metrics()
            .contains("pushgateway_persistence_recovery_outcome{outcome=\"clean\"} 1")
    );
}

/// Faults the layer injects: a failed fsync, EIO on a write, ENOSPC, and a read-only file
/// system, each under concurrent pushers, each gone after a while, then `kill -9`.
#[test]
fn injected_faults_never_cost_an_acknowledged_push() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let file = data.join("pg.data");
    let faults = Faults::new(dir.path(), "pg.data");
    let env = faults.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        format!("--persistence.file={}", file.display()),
        "--persistence.interval=1h".to_string(),
    ];
    let cases = [
        // One failed fsync: the data may be gone from the page cache; the segment is
        // abandoned and everything is written anew, never fsynced again.
        ("fsync EIO 1", "fsync_failed"),
        ("write EIO 1", "io_error"),
        // A full disk that lasts a few attempts (recovering needs writes too).
        ("write ENOSPC 5\nopen ENOSPC 2", "disk_full"),
        (
            "open EROFS -1\nwrite EROFS -1\nrename EROFS -1\nfsync EROFS -1\nftruncate EROFS -1",
            "read_only",
        ),
    ];
    let mut total = Outcomes::default();
    let mut answered = 0;
    let mut first = 0;
    for round in 0..2 {
        let gateway = GatewayProcess::start_with_env(&args, &env);
        let pushers = Pushers::start(&gateway.address, &["p", "q", "r"], 5, first);
        for (rules, kind) in cases {
            let before = pushers.acknowledged();
            wait_until("pushes are acknowledged", Duration::from_secs(10), || {
                pushers.acknowledged() >= before + 20
            });
            let refused = pushers.refused();
            faults.set(rules);
            wait_until(
                &format!("pushes are refused ({kind})"),
                Duration::from_secs(10),
                || pushers.refused() > refused,
            );
            if rules.contains("-1") {
                // A fault that lasts: the gauges and the answer name it.
                check_failing(&gateway, kind);
            }
            faults.clear();
            let acknowledged = pushers.acknowledged();
            wait_until(
                &format!("pushes succeed again after {kind}"),
                Duration::from_secs(10),
                || pushers.acknowledged() > acknowledged + 5,
            );
            assert!(
                gateway.metrics().contains(&format!("kind=\"{kind}\"")),
                "the errors are counted by kind"
            );
        }
        answered += pushers.answered();
        gateway.kill9();
        let outcomes = pushers.finish();
        first += 1_000_000;
        total.acknowledged.extend(outcomes.acknowledged);
        total.refused.extend(outcomes.refused);
        faults.clear();
        let restarted = GatewayProcess::start(&args);
        check_outcomes(&restarted.metrics(), &total, &format!("round {round}"));
        restarted.kill9();
    }
    eprintln!(
        "injected faults: {} faults in 2 rounds, {answered} pushes answered: {} acknowledged (0 lost), {} refused (none applied)",
        cases.len() * 2,
        total.acknowledged.len(),
        total.refused.len()
    );
}

/// A log segment or the snapshot deleted under the running gateway: it notices, writes
/// everything anew, and nothing acknowledged is lost across `kill -9`.
#[test]
fn vanished_files_are_written_anew() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let args = [
        format!("--persistence.file={}", file.display()),
        "--persistence.interval=1h".to_string(),
    ];
    let gateway = GatewayProcess::start(&args);
    let mut acknowledged = Outcomes::default();
    let mut push = |gateway: &GatewayProcess, job: &str, value: u64| {
        let (status, text) = gateway
            .request(
                "PUT",
                &format!("/metrics/job/{job}"),
                &format!("value {value}\n"),
            )
            .unwrap();
        match status {
            200 => acknowledged.acknowledged.insert(job.to_string(), value),
            503 => acknowledged.refused.insert(job.to_string(), value),
            _ => panic!("{status}: {text}"),
        };
        status
    };
    for i in 0..10 {
        assert_eq!(push(&gateway, &format!("before_{i}"), i), 200);
    }
    // The segment holding those pushes is deleted.
    for segment in segments(dir.path()) {
        std::fs::remove_file(segment).unwrap();
    }
    assert_eq!(push(&gateway, "noticed", 1), 503, "{}", gateway.log());
    assert!(gateway.metrics().contains("kind=\"file_vanished\""));
    let mut attempt = 0;
    wait_until("pushes succeed again", Duration::from_secs(5), || {
        attempt += 1;
        push(&gateway, &format!("after_segment_{attempt}"), 2) == 200
    });
    // Now the snapshot (written anew just now) is deleted; the once-a-second check notices
    // even without pushes.
    assert!(file.exists());
    std::fs::remove_file(&file).unwrap();
    wait_until(
        "the snapshot is written again",
        Duration::from_secs(5),
        || {
            gauge(
                &gateway,
                "pushgateway_persistence_errors_total{kind=\"file_vanished\",operation=\"file_check\"}",
            ) == Some(2.0)
                && healthy(&gateway)
        },
    );
    assert!(file.exists());
    assert_eq!(
        push(&gateway, "after_snapshot", 3),
        200,
        "{}",
        gateway.log()
    );
    gateway.kill9();
    let restarted = GatewayProcess::start(&args);
    check_outcomes(&restarted.metrics(), &acknowledged, "after kill -9");
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".wal-"))
        .collect()
}
