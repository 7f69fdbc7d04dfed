//! `--persistence.file`: acknowledged pushes survive `kill -9`, damaged files are handled as
//! promised, upstream's file is imported. All through the real binary.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{BINARY, GatewayProcess, http};

/// A gateway persisting to `file`, with further flags.
fn start(file: &Path, extra: &[&str]) -> GatewayProcess {
    let mut args = vec![format!("--persistence.file={}", file.display())];
    args.extend(extra.iter().map(ToString::to_string));
    GatewayProcess::start(&args)
}

/// `name{...job="<job>"...} value` lines of a scrape, by job and name.
fn values(metrics: &str) -> BTreeMap<(String, String), String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{')?;
            let job = labels.split("job=\"").nth(1)?.split('"').next()?;
            Some(((job.to_string(), name.to_string()), value.to_string()))
        })
        .collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Deterministic pseudo-random numbers (xorshift), so that failures can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Pushers write increasing values to their own groups, each push three families of the same
/// value; `kill -9` comes at a random moment; after a restart every group must hold at least the
/// last value acknowledged for it, and its three families must agree (no half-applied push).
#[test]
fn acknowledged_pushes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pushers = 4;
    let mut acknowledged: BTreeMap<String, u64> = BTreeMap::new();
    let mut deleted_group_present = false;
    let iterations = 200;
    for iteration in 0..iterations {
        let gateway = start(&file, &["--persistence.interval=300ms"]);
        // What the previous incarnations acknowledged must all be there.
        let found = values(&gateway.metrics());
        for (job, value) in &acknowledged {
            let got: Vec<u64> = ["a", "b", "c"]
                .iter()
                .map(|name| {
                    found
                        .get(&(job.clone(), name.to_string()))
                        .unwrap_or_else(|| panic!("iteration {iteration}: {job}/{name} lost; acknowledged {value}\n{}", gateway.log()))
                        .parse::<f64>()
                        .unwrap() as u64
                })
                .collect();
            assert!(
                got.iter().all(|v| *v == got[0]),
                "iteration {iteration}: torn group {job}: {got:?}"
            );
            assert!(
                got[0] >= *value,
                "iteration {iteration}: {job} has {} but {value} was acknowledged",
                got[0]
            );
        }
        assert!(
            !deleted_group_present || found.keys().all(|(job, _)| job != "deleted"),
            "iteration {iteration}: an acknowledged DELETE was undone"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for pusher in 0..pushers {
            let (stop, results, address) = (stop.clone(), results.clone(), gateway.address.clone());
            let start = acknowledged
                .get(&format!("w{pusher}"))
                .copied()
                .unwrap_or(0)
                + 1_000_000 * (iteration as u64 + 1);
            threads.push(std::thread::spawn(move || {
                let mut value = start;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!("a {value}\nb {value}\nc {value}\n");
                    if let Some((200, _)) =
                        http(&address, "PUT", &format!("/metrics/job/w{pusher}"), &body)
                    {
                        results.lock().unwrap().push((format!("w{pusher}"), value));
                    }
                    value += 1;
                }
            }));
        }
        // A group that is pushed and then deleted: once the DELETE is acknowledged, it must
        // stay gone.
        if iteration % 10 == 0 {
            assert_eq!(
                gateway
                    .request("PUT", "/metrics/job/deleted", "a 1\nb 1\nc 1\n")
                    .map(|r| r.0),
                Some(200)
            );
            assert_eq!(
                gateway
                    .request("DELETE", "/metrics/job/deleted", "")
                    .map(|r| r.0),
                Some(202)
            );
            deleted_group_present = true;
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 150));
        gateway.kill9();
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().unwrap();
        }
        for (job, value) in results.lock().unwrap().iter() {
            let entry = acknowledged.entry(job.clone()).or_default();
            *entry = (*entry).max(*value);
        }
    }
    assert_eq!(
        acknowledged.len(),
        pushers,
        "every pusher got acknowledgements"
    );
    let leftovers: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.contains(".tmp-") || f.contains("corrupt"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn run_and_stop(file: &Path, pushes: &[(&str, &str)], extra: &[&str]) {
    let gateway = start(file, extra);
    for (path, body) in pushes {
        assert_eq!(gateway.request("PUT", path, body).map(|r| r.0), Some(200));
    }
    gateway.stop();
}

#[test]
fn a_torn_last_record_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let gateway = start(&file, &[]);
    assert_eq!(
        gateway
            .request("PUT", "/metrics/job/a", "x 1\n")
            .map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        gateway
            .request("PUT", "/metrics/job/b", "x 2\n")
            .map(|r| r.0),
        Some(200)
    );
    gateway.kill9();
    let segment = files(dir.path())
        .into_iter()
        .find(|f| f.contains(".wal-"))
        .expect("a log segment");
    let segment = dir.path().join(segment);
    let bytes = std::fs::read(&segment).unwrap();
    // Cut the last record in half, as a crash in the middle of a write would.
    std::fs::write(&segment, &bytes[..bytes.len() - 20]).unwrap();
    let gateway = start(&file, &[]);
    let metrics = gateway.metrics();
    assert!(
        metrics.contains("x{instance=\"\",job=\"a\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("job=\"b\""), "{metrics}");
    assert!(
        metrics.contains("pushgateway_persistence_recovery_outcome{outcome=\"torn_tail\"} 1"),
        "{metrics}"
    );
    gateway.stop();
    assert!(
        !files(dir.path()).iter().any(|f| f.contains("corrupt")),
        "a torn tail is not corruption"
    );
}

#[test]
fn corruption_moves_the_file_aside_and_keeps_what_can_be_read() {
    // In the middle of the log.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let gateway = start(&file, &[]);
    for job in ["a", "b", "c"] {
        assert_eq!(
            gateway
                .request("PUT", &format!("/metrics/job/{job}"), "x 1\n")
                .map(|r| r.0),
            Some(200)
        );
    }
    gateway.kill9();
    let segment = dir.path().join(
        files(dir.path())
            .into_iter()
            .find(|f| f.contains(".wal-"))
            .unwrap(),
    );
    let mut bytes = std::fs::read(&segment).unwrap();
    let second_record = bytes
        .windows(5)
        .position(|w| w == b"job\xFFb")
        .expect("group b's record");
    bytes[second_record] ^= 0x55;
    std::fs::write(&segment, &bytes).unwrap();
    let gateway = start(&file, &[]);
    let metrics = gateway.metrics();
    assert!(
        metrics.contains("x{instance=\"\",job=\"a\"} 1"),
        "records before the damage are kept: {metrics}"
    );
    assert!(
        metrics.contains("pushgateway_persistence_recovery_outcome{outcome=\"corrupt\"} 1"),
        "{metrics}"
    );
    assert!(
        gateway.log().contains("persistence file is damaged"),
        "{}",
        gateway.log()
    );
    gateway.stop();
    let aside: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.contains(".corrupt-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the evidence is kept: {:?}",
        files(dir.path())
    );
    assert_eq!(std::fs::read(dir.path().join(&aside[0])).unwrap(), bytes);

    // In a snapshot.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    run_and_stop(
        &file,
        &[("/metrics/job/a", "x 1\n"), ("/metrics/job/z", "y 2\n")],
        &[],
    );
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(3)
        .rposition(|w| w == b"\xFFz\x00")
        .unwrap_or(bytes.len() - 30);
    bytes[at] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let gateway = start(&file, &[]);
    let metrics = gateway.metrics();
    assert!(
        metrics.contains("x{instance=\"\",job=\"a\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"corrupt\""), "{metrics}");
    gateway.stop();
    assert!(
        files(dir.path())
            .iter()
            .any(|f| f.starts_with("pg.data.corrupt-"))
    );

    // A snapshot that lost its end, and a file of another format.
    for damage in ["truncated", "foreign"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg.data");
        run_and_stop(&file, &[("/metrics/job/a", "x 1\n")], &[]);
        let bytes = std::fs::read(&file).unwrap();
        let damaged = if damage == "truncated" {
            bytes[..bytes.len() - 10].to_vec()
        } else {
            b"hello, this is not a snapshot\n".to_vec()
        };
        std::fs::write(&file, &damaged).unwrap();
        let gateway = start(&file, &[]);
        assert!(
            gateway.metrics().contains("outcome=\"corrupt\""),
            "{damage}"
        );
        gateway.stop();
        let aside = files(dir.path())
            .into_iter()
            .find(|f| f.starts_with("pg.data.corrupt-"))
            .expect(damage);
        assert_eq!(
            std::fs::read(dir.path().join(aside)).unwrap(),
            damaged,
            "{damage}: evidence kept as it was"
        );
    }
}

#[test]
fn crash_leftovers_are_cleaned_up_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    std::fs::write(
        dir.path().join("pg.data.tmp-snapshot-12345"),
        b"half a snapshot",
    )
    .unwrap();
    run_and_stop(&file, &[("/metrics/job/a", "x 1\n")], &[]);
    let names = files(dir.path());
    assert!(!names.iter().any(|f| f.contains(".tmp-")), "{names:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The log segments that the last snapshot covers are gone.
    assert_eq!(
        names.iter().filter(|f| f.contains(".wal-")).count(),
        1,
        "{names:?}"
    );
}

#[test]
fn unusable_paths_refuse_start_up() {
    for path in ["/nonexistent-directory/pg.data", "/proc/pg.data"] {
        let output = Command::new(BINARY)
            .args([
                "--web.listen-address=127.0.0.1:0",
                &format!("--persistence.file={path}"),
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{path}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("cannot use --persistence.file \\\"{path}\\\"")),
            "{path}: {stderr}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args([
            "--web.listen-address=127.0.0.1:0",
            &format!("--persistence.file={}", dir.path().display()),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "a directory is not a file");
}

/// Switching from log mode to `--no-persistence.log`: the snapshots of the new mode replace
/// what the log held, and a later restart (in either mode) finds every change.
#[test]
fn switching_from_log_mode_to_snapshots_only_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    run_and_stop(&file, &[("/metrics/job/a", "x 1\n")], &[]);
    run_and_stop(
        &file,
        &[("/metrics/job/b", "x 2\n")],
        &["--no-persistence.log"],
    );
    for mode in [&["--no-persistence.log"][..], &[]] {
        let gateway = start(&file, mode);
        let metrics = gateway.metrics();
        assert!(
            metrics.contains("x{instance=\"\",job=\"a\"} 1")
                && metrics.contains("x{instance=\"\",job=\"b\"} 2"),
            "{mode:?}: {metrics}"
        );
        gateway.stop();
    }
}

#[test]
fn snapshot_only_mode_persists_on_shutdown_and_at_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    run_and_stop(
        &file,
        &[("/metrics/job/a", "x 1\n")],
        &["--no-persistence.log"],
    );
    assert!(
        !files(dir.path()).iter().any(|f| f.contains(".wal-")),
        "no log in this mode"
    );
    let gateway = start(
        &file,
        &["--no-persistence.log", "--persistence.interval=200ms"],
    );
    assert!(gateway.metrics().contains("x{instance=\"\",job=\"a\"} 1"));
    assert_eq!(
        gateway
            .request("PUT", "/metrics/job/b", "x 2\n")
            .map(|r| r.0),
        Some(200)
    );
    // Wait for the periodic snapshot, then crash: b was in it.
    let started = Instant::now();
    while !gateway
        .metrics()
        .contains("pushgateway_persistence_last_snapshot_timestamp_seconds")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no snapshot written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gateway.kill9();
    let gateway = start(&file, &["--no-persistence.log"]);
    assert!(gateway.metrics().contains("x{instance=\"\",job=\"b\"} 2"));
    gateway.stop();
}

#[test]
fn persistence_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let gateway = start(&file, &["--persistence.interval=100ms"]);
    assert_eq!(
        gateway
            .request("PUT", "/metrics/job/a", "x 1\n")
            .map(|r| r.0),
        Some(200)
    );
    let started = Instant::now();
    loop {
        let metrics = gateway.metrics();
        let all = [
            "pushgateway_persistence_last_snapshot_timestamp_seconds ",
            "pushgateway_persistence_snapshot_duration_seconds ",
            "pushgateway_persistence_log_bytes ",
            "pushgateway_persistence_fsync_duration_seconds_count{file=\"log\"} ",
            "pushgateway_persistence_recovery_outcome{outcome=\"empty\"} 1",
        ];
        if all.iter().all(|m| metrics.contains(m)) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
    gateway.stop();
}

/// A file written by upstream (Debian's 1.5.1) is imported, kept as a backup, and replaced by
/// ours.
#[test]
fn upstream_files_are_imported() {
    let upstream = std::env::var("UPSTREAM_PUSHGATEWAY")
        .unwrap_or_else(|_| "/usr/bin/prometheus-pushgateway".into());
    assert!(
        Path::new(&upstream).exists(),
        "this test needs upstream's binary (Debian package prometheus-pushgateway; scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pg.data");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let address = format!("127.0.0.1:{port}");
    let mut child = Command::new(&upstream)
        .arg(format!("--web.listen-address={address}"))
        .arg(format!("--persistence.file={}", file.display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http(&address, "GET", "/-/ready", "").map(|r| r.0) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "upstream did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = "# HELP job_duration_seconds Duration of the job.\n# TYPE job_duration_seconds gauge\njob_duration_seconds{stage=\"a\"} 0.272\n# TYPE lat histogram\nlat_bucket{le=\"0.5\"} 3\nlat_bucket{le=\"+Inf\"} 5\nlat_sum 2.5\nlat_count 5\n";
    assert_eq!(
        http(&address, "PUT", "/metrics/job/batch/instance/host1", body).map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        http(
            &address,
            "PUT",
            "/metrics/job@base64/L3Zhci90bXA/a@base64/=",
            "other 7\n"
        )
        .map(|r| r.0),
        Some(200)
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let original = std::fs::read(&file).unwrap();

    let gateway = start(&file, &[]);
    let metrics = gateway.metrics();
    for expected in [
        "# HELP job_duration_seconds Duration of the job.",
        "job_duration_seconds{instance=\"host1\",job=\"batch\",stage=\"a\"} 0.272",
        "lat_bucket{instance=\"host1\",job=\"batch\",le=\"0.5\"} 3",
        "lat_count{instance=\"host1\",job=\"batch\"} 5",
        "other{a=\"\",instance=\"\",job=\"/var/tmp\"} 7",
        "push_time_seconds{instance=\"host1\",job=\"batch\"} 1.",
        "pushgateway_persistence_recovery_outcome{outcome=\"imported\"} 1",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in\n{metrics}"
        );
    }
    gateway.stop();
    assert_eq!(
        std::fs::read(dir.path().join("pg.data.upstream-backup")).unwrap(),
        original,
        "the original is kept"
    );
    assert_eq!(
        &std::fs::read(&file).unwrap()[..8],
        b"PGWSNAP\0",
        "ours from then on"
    );
}
