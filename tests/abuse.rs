//! Abusive connections against the real binary on loopback: slow heads (slowloris), slow
//! bodies, floods of idle connections, TLS handshakes that never finish, oversized heads,
//! HTTP/2 rapid reset (CVE-2023-44487) and CONTINUATION floods, and a flood of maximum-size
//! bodies. While each runs, a client of its own checks health and pushes, and every one of its
//! requests must be answered within `PROBE_BOUND`; the numbers measured are printed
//! (`cargo test --test abuse -- --nocapture | grep ABUSE`) and published in
//! docs/hostile-input.md. Each test also checks that the bound meant to stop the abuse did.
//!
//! The tests run one at a time (they measure latency, and would disturb each other).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::abuse::{Probe, TlsGateway, h2, most, usage};
use common::process::GatewayProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One abuse test at a time; also lets this process hold thousands of sockets.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().await;
    raise_descriptor_limit();
    guard
}

fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn addr(gateway: &GatewayProcess) -> SocketAddr {
    gateway.address.parse().expect("address")
}

/// Waits until the server closes `stream` (EOF or an error), writing `trickle` every
/// `interval` meanwhile; how long that took.
async fn until_closed(stream: &mut TcpStream, trickle: &[u8], interval: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            },
            () = tokio::time::sleep(interval) => {
                if !trickle.is_empty() && stream.write_all(trickle).await.is_err() {
                    return started.elapsed();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_cut_at_the_header_timeout() {
    let _serial = serial().await;
    let gateway = GatewayProcess::start(&["--web.read-header-timeout=2s"]);
    let addr = addr(&gateway);
    const CLIENTS: usize = 300;
    let mut attackers = JoinSet::new();
    for i in 0..CLIENTS {
        attackers.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            match i % 3 {
                // Connects and says nothing.
                0 => until_closed(&mut stream, b"", Duration::from_millis(250)).await,
                // A request line, then a header byte every 250 ms.
                1 => {
                    stream
                        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n")
                        .await
                        .expect("writes");
                    until_closed(&mut stream, b"X", Duration::from_millis(250)).await
                }
                // One good request, then the next head a byte at a time.
                _ => {
                    stream
                        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                        .await
                        .expect("writes");
                    let mut answer = [0u8; 12];
                    stream.read_exact(&mut answer).await.expect("answer");
                    assert_eq!(&answer, b"HTTP/1.1 200");
                    stream.write_all(b"G").await.expect("writes");
                    until_closed(&mut stream, b"E", Duration::from_millis(250)).await
                }
            }
        });
    }
    let probe = Probe::plain(addr);
    let latencies = probe.measure(Duration::from_secs(4)).await;
    latencies.report(&format!("slowloris ({CLIENTS} connections)"));
    let mut longest = Duration::ZERO;
    while let Some(held) = attackers.join_next().await {
        let held = held.expect("attacker");
        assert!(held >= Duration::from_millis(1500), "closed after {held:?}");
        longest = longest.max(held);
    }
    println!("ABUSE slowloris: longest connection held {longest:?} (timeout 2s)");
    assert!(longest < Duration::from_secs(5), "held for {longest:?}");
    assert!(
        probe
            .metric("pushgateway_http_connections_closed_total{reason=\"header_timeout\"}")
            .await
            >= CLIENTS as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_at_the_body_timeout() {
    let _serial = serial().await;
    let gateway = GatewayProcess::start(&["--web.read-body-timeout=2s"]);
    let addr = addr(&gateway);
    const CLIENTS: usize = 200;
    let mut attackers = JoinSet::new();
    for i in 0..CLIENTS {
        attackers.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            stream
                .write_all(
                    format!(
                        "PUT /metrics/job/slow/instance/{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n# "
                    )
                    .as_bytes(),
                )
                .await
                .expect("writes");
            let started = Instant::now();
            let mut answer = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                    },
                    () = tokio::time::sleep(Duration::from_millis(250)) => {
                        if stream.write_all(b"a").await.is_err() {
                            break;
                        }
                    }
                }
            }
            (started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        });
    }
    let probe = Probe::plain(addr);
    let latencies = probe.measure(Duration::from_secs(4)).await;
    latencies.report(&format!("slow bodies ({CLIENTS} connections)"));
    while let Some(result) = attackers.join_next().await {
        let (took, answer) = result.expect("attacker");
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "after {took:?}: {answer}"
        );
        assert!(answer.contains("--web.read-body-timeout"), "{answer}");
        assert!(
            (Duration::from_millis(1500)..Duration::from_secs(6)).contains(&took),
            "{took:?}"
        );
    }
    assert!(!probe.metrics().await.contains("job=\"slow\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_floods_make_room_and_time_out() {
    let _serial = serial().await;
    const MAX: usize = 300;
    const CLIENTS: usize = 1500;
    let gateway = GatewayProcess::start(&[
        &format!("--web.max-connections={MAX}"),
        "--web.idle-timeout=3s",
    ]);
    let addr = addr(&gateway);
    let pid = gateway.id();
    let baseline = usage(pid);
    // Each attacker makes one request and keeps its connection open, idle.
    let attack = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..CLIENTS {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                continue;
            };
            let mut answer = [0u8; 12];
            if stream
                .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .is_ok()
                && stream.read_exact(&mut answer).await.is_ok()
            {
                held.push(stream);
            }
            tokio::task::yield_now().await;
        }
        held
    });
    let sampler = most(pid, 60, |u| u.fds);
    let probe = Probe::plain(addr);
    let latencies = probe.measure(Duration::from_secs(3)).await;
    latencies.report(&format!(
        "idle connections ({CLIENTS} opened, --web.max-connections={MAX})"
    ));
    let most_fds = sampler.await.expect("sampler");
    let held = attack.await.expect("attack");
    println!(
        "ABUSE idle connections: gateway descriptors at most {most_fds} (baseline {}), {} attacker connections answered",
        baseline.fds,
        held.len()
    );
    assert!(
        most_fds <= baseline.fds + MAX as u64 + 5,
        "{most_fds} descriptors with a limit of {MAX}"
    );
    let evicted = probe
        .metric("pushgateway_http_connections_closed_total{reason=\"evicted\"}")
        .await;
    assert!(evicted >= (CLIENTS - MAX) as f64, "evicted {evicted}");
    // What is still open is closed once idle for --web.idle-timeout.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut still_open = 0;
    for mut stream in held {
        // The rest of the answer, then the end.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read_to_end(&mut rest));
        if read.await.is_err() {
            still_open += 1;
        }
    }
    let open = probe.metric("pushgateway_http_connections").await;
    assert_eq!(still_open, 0, "{open} connections open");
    assert!(
        probe
            .metric("pushgateway_http_connections_closed_total{reason=\"idle_timeout\"}")
            .await
            > 0.0
    );
    // The one that asks.
    assert_eq!(open, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_that_never_finish_are_bounded() {
    let _serial = serial().await;
    const MAX: usize = 300;
    const CLIENTS: usize = 600;
    let gateway = TlsGateway::start(&[
        &format!("--web.max-connections={MAX}"),
        "--web.read-header-timeout=2s",
    ]);
    let addr = gateway.addr;
    let pid = gateway.process.id();
    let baseline = usage(pid);
    let mut attackers = JoinSet::new();
    for i in 0..CLIENTS {
        attackers.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            if i % 2 == 0 {
                // The head of a ClientHello record that promises 512 bytes, and 3 of them.
                stream
                    .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
                    .await
                    .ok()?;
            }
            Some(until_closed(&mut stream, b"", Duration::from_millis(250)).await)
        });
    }
    let sampler = most(pid, 60, |u| u.fds);
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let probe = Probe::tls(addr, gateway.client(&[alpn]));
        let latencies = probe.measure(Duration::from_secs(2)).await;
        latencies.report(&format!(
            "unfinished TLS handshakes ({CLIENTS}, --web.max-connections={MAX}), probe over {}",
            String::from_utf8_lossy(alpn)
        ));
    }
    let most_fds = sampler.await.expect("sampler");
    assert!(
        most_fds <= baseline.fds + MAX as u64 + 5,
        "{most_fds} descriptors with a limit of {MAX}"
    );
    let mut longest = Duration::ZERO;
    while let Some(held) = attackers.join_next().await {
        if let Some(held) = held.expect("attacker") {
            longest = longest.max(held);
        }
    }
    println!(
        "ABUSE unfinished TLS handshakes: descriptors at most {most_fds} (baseline {}), longest held {longest:?}",
        baseline.fds
    );
    assert!(longest < Duration::from_secs(5), "held for {longest:?}");
    let probe = Probe::tls(addr, gateway.client(&[b"http/1.1"]));
    assert!(probe.metric("pushgateway_tls_handshake_errors_total").await > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431() {
    let _serial = serial().await;
    let gateway = GatewayProcess::start(&["--web.max-header-size=64KiB"]);
    let addr = addr(&gateway);
    let pid = gateway.id();
    let baseline = usage(pid);
    // Just below the limit is fine.
    let fits = format!(
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(60 * 1024)
    );
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(fits.as_bytes()).await.expect("writes");
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).await.expect("answer");
    assert_eq!(&answer, b"HTTP/1.1 200");

    let stop = Instant::now() + Duration::from_secs(4);
    let mut attackers = JoinSet::new();
    for _ in 0..20 {
        attackers.spawn(async move {
            let header = Bytes::from(format!("X-Big: {}\r\n", "a".repeat(1 << 20)));
            let mut refused = 0;
            while Instant::now() < stop {
                let Ok(mut stream) = TcpStream::connect(addr).await else {
                    continue;
                };
                let _ = stream
                    .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n")
                    .await;
                let _ = stream.write_all(&header).await;
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer).await;
                if answer.starts_with(b"HTTP/1.1 431") {
                    refused += 1;
                }
            }
            refused
        });
    }
    let sampler = most(pid, 70, |u| u.rss_bytes);
    let latencies = Probe::plain(addr).measure(Duration::from_secs(3)).await;
    latencies.report("oversized heads (20 clients sending 1 MiB headers in a loop)");
    let mut refused = 0;
    while let Some(count) = attackers.join_next().await {
        refused += count.expect("attacker");
    }
    let most_rss = sampler.await.expect("sampler");
    println!(
        "ABUSE oversized heads: {refused} refused with 431; resident memory at most {} MiB (baseline {} MiB)",
        most_rss >> 20,
        baseline.rss_bytes >> 20
    );
    assert!(refused > 20, "{refused}");
    assert!(most_rss < baseline.rss_bytes + (64 << 20), "{most_rss}");
}

/// One HTTP/2 connection an attacker fed until the server closed it.
#[derive(Debug)]
struct Attacked {
    /// Writes of the attack that went into the socket (the server read fewer: the socket
    /// buffers take megabytes on loopback).
    writes: u64,
    /// The server's GOAWAY, if it sent one.
    goaway: Option<h2::GoAway>,
}

/// Opens HTTP/2 connections one after another for `duration`, feeding each with `attack`
/// until the server closes it. The connection open when the time is up is left out.
async fn h2_attacker(
    gateway: &TlsGateway,
    duration: Duration,
    attack: fn(u32) -> Vec<u8>,
) -> Vec<Attacked> {
    let stop = Instant::now() + duration;
    let mut connections = Vec::new();
    while Instant::now() < stop {
        let Ok(tls) = gateway.h2_connection().await else {
            continue;
        };
        let (reader, mut writer) = tokio::io::split(tls);
        let reading = tokio::spawn(h2::read_until_closed(reader));
        let mut writes = 0u64;
        let mut closed_by_server = writer.write_all(&h2::start()).await.is_err();
        while !closed_by_server && Instant::now() < stop {
            closed_by_server = writer.write_all(&attack(writes as u32)).await.is_err();
            writes += 1;
        }
        if !closed_by_server {
            break;
        }
        let goaway = tokio::time::timeout(Duration::from_secs(5), reading)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        connections.push(Attacked { writes, goaway });
    }
    connections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_is_cut_off() {
    let _serial = serial().await;
    let gateway = TlsGateway::start(&[]);
    let attack_for = Duration::from_secs(5);
    // Each round opens 50 streams and cancels each at once: scrapes, and pushes whose body
    // never comes.
    fn rapid_reset(round: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..50 {
            let stream = 1 + 2 * (round * 50 + i);
            let (method, flags) = if i % 2 == 0 {
                ("GET", h2::END_HEADERS | h2::END_STREAM)
            } else {
                ("POST", h2::END_HEADERS)
            };
            let path = if method == "GET" {
                "/metrics"
            } else {
                "/metrics/job/reset"
            };
            out.extend(h2::frame(
                h2::HEADERS,
                flags,
                stream,
                &h2::request_block(method, path),
            ));
            out.extend(h2::frame(
                h2::RST_STREAM,
                0,
                stream,
                &h2::CANCEL.to_be_bytes(),
            ));
        }
        out
    }
    let probe = Probe::tls(gateway.addr, gateway.client(&[b"h2"]));
    let (first, second, latencies) = tokio::join!(
        h2_attacker(&gateway, attack_for, rapid_reset),
        h2_attacker(&gateway, attack_for, rapid_reset),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            probe.measure(Duration::from_secs(4)).await
        }
    );
    latencies.report("HTTP/2 rapid reset (2 clients, 50 streams opened and reset per write)");
    let connections: Vec<_> = first.into_iter().chain(second).collect();
    // Streams the server took on before it closed the connection (its GOAWAY says).
    let served: Vec<u32> = connections
        .iter()
        .map(|c| c.goaway.map_or(u32::MAX, |g| g.last_stream.div_ceil(2)))
        .collect();
    let most = served.iter().max().copied().unwrap_or(0);
    println!(
        "ABUSE rapid reset: {} connections closed by the gateway, each after at most {most} streams; GOAWAY codes {:?}",
        connections.len(),
        connections
            .iter()
            .map(|c| c.goaway.map(|g| g.code))
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(connections.len() >= 2, "{connections:?}");
    // h2 sends ENHANCE_YOUR_CALM once 20 streams were reset before they were served; the
    // gateway closes after 100 more cancelled requests than answered ones.
    assert!(
        most <= 1000,
        "{most} streams on one connection: {connections:?}"
    );
    assert!(!probe.metrics().await.contains("job=\"reset\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_continuation_floods_are_cut_off() {
    let _serial = serial().await;
    let gateway = TlsGateway::start(&[]);
    let pid = gateway.process.id();
    let baseline = usage(pid);
    // A HEADERS frame without END_HEADERS, then CONTINUATION frames of 16 KiB without end.
    fn continuation_flood(round: u32) -> Vec<u8> {
        let mut block = Vec::new();
        while block.len() < 16_000 {
            let name = format!("x-flood-{}", block.len());
            h2::header(&mut block, name.as_bytes(), &[b'v'; 100]);
        }
        if round == 0 {
            h2::frame(h2::HEADERS, 0, 1, &h2::request_block("GET", "/-/healthy"))
        } else {
            h2::frame(h2::CONTINUATION, 0, 1, &block)
        }
    }
    let probe = Probe::tls(gateway.addr, gateway.client(&[b"h2"]));
    let sampler = most(pid, 100, |u| u.rss_bytes);
    let (first, second, latencies) = tokio::join!(
        h2_attacker(&gateway, Duration::from_secs(5), continuation_flood),
        h2_attacker(&gateway, Duration::from_secs(5), continuation_flood),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            probe.measure(Duration::from_secs(4)).await
        }
    );
    latencies.report("HTTP/2 CONTINUATION flood (2 clients)");
    let connections: Vec<_> = first.into_iter().chain(second).collect();
    let most = connections.iter().map(|c| c.writes).max().unwrap_or(0);
    let most_rss = sampler.await.expect("sampler");
    println!(
        "ABUSE CONTINUATION flood: {} connections closed by the gateway, at most {most} frames of 16 KiB written to one (socket buffers included); GOAWAY codes {:?}; resident memory at most {} MiB (baseline {} MiB)",
        connections.len(),
        connections
            .iter()
            .map(|c| c.goaway.map(|g| g.code))
            .collect::<std::collections::BTreeSet<_>>(),
        most_rss >> 20,
        baseline.rss_bytes >> 20
    );
    assert!(connections.len() >= 2);
    // ENHANCE_YOUR_CALM (11) once the header block passes what 64 KiB of headers needs.
    assert!(
        connections
            .iter()
            .all(|c| c.goaway.is_some_and(|g| g.code == 11)),
        "{connections:?}"
    );
    assert!(most_rss < baseline.rss_bytes + (64 << 20), "{most_rss}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_floods_stay_within_the_buffered_size() {
    let _serial = serial().await;
    const CLIENTS: usize = 24;
    let gateway = GatewayProcess::start(&[
        "--push.max-body-size=64MiB",
        "--push.max-buffered-size=256MiB",
    ]);
    let addr = addr(&gateway);
    let pid = gateway.id();
    let baseline = usage(pid);
    // Maximum-size bodies that parse at once (a comment), and a compressed one that expands to
    // the maximum.
    let mut plain = b"# ".to_vec();
    plain.resize((64 << 20) - 1, b'x');
    plain.push(b'\n');
    let plain = Bytes::from(plain);
    let compressed = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&plain).expect("compresses");
        Bytes::from(encoder.finish().expect("compresses"))
    };
    let stop = Instant::now() + Duration::from_secs(6);
    let mut attackers = JoinSet::new();
    for i in 0..CLIENTS {
        let body = if i % 8 == 0 {
            compressed.clone()
        } else {
            plain.clone()
        };
        attackers.spawn(async move {
            let (mut ok, mut busy, mut other) = (0, 0, 0);
            while Instant::now() < stop {
                let mut headers = vec![];
                if i % 8 == 0 {
                    headers.push(("content-encoding", "gzip"));
                }
                match flood_push(
                    addr,
                    &format!("/metrics/job/flood/instance/{i}"),
                    &headers,
                    body.clone(),
                )
                .await
                {
                    Some((200, _)) => ok += 1,
                    // As Retry-After asks (an attacker would not wait, but would not
                    // get further either).
                    Some((503, retry)) => {
                        assert_eq!(retry.as_deref(), Some("1"));
                        busy += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    _ => other += 1,
                }
            }
            (ok, busy, other)
        });
    }
    let sampler = most(pid, 140, |u| u.rss_bytes);
    let probe = Probe::plain(addr);
    let latencies = probe.measure(Duration::from_secs(5)).await;
    latencies.report(&format!(
        "body flood ({CLIENTS} clients sending 64 MiB bodies)"
    ));
    let (mut ok, mut busy, mut other) = (0, 0, 0);
    while let Some(counts) = attackers.join_next().await {
        let (o, b, x) = counts.expect("attacker");
        ok += o;
        busy += b;
        other += x;
    }
    let most_rss = sampler.await.expect("sampler");
    println!(
        "ABUSE body flood: {ok} accepted, {busy} refused with 503, {other} cut off; resident memory at most {} MiB (baseline {} MiB, --push.max-buffered-size=256MiB)",
        most_rss >> 20,
        baseline.rss_bytes >> 20
    );
    assert!(ok > 0 && busy > 0, "{ok} accepted, {busy} refused");
    assert!(
        most_rss < baseline.rss_bytes + (256 << 20) + (128 << 20),
        "resident memory reached {} MiB",
        most_rss >> 20
    );
    assert!(
        probe
            .metric("pushgateway_push_refused_total{reason=\"max_buffered_size\"}")
            .await
            > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_dense_bodies_are_parsed_in_turn() {
    let _serial = serial().await;
    const CLIENTS: usize = 12;
    let gateway =
        GatewayProcess::start(&["--push.max-body-size=1MiB", "--push.max-buffered-size=8MiB"]);
    let addr = addr(&gateway);
    let pid = gateway.id();
    let baseline = usage(pid);
    // 1 MiB of series, about 19,000: parsing such a body takes many times its size. (Larger
    // bodies make the store apply a large group on an async worker, which a loaded machine
    // turns into probe latency; see docs/hostile-input.md.)
    let mut dense = String::from("# TYPE dense gauge\n");
    let mut i = 0;
    loop {
        let line = format!(
            "dense{{instance=\"host-{i:07}\",path=\"/var/lib/{}\"}} {i}\n",
            i % 100
        );
        if dense.len() + line.len() > 1 << 20 {
            break;
        }
        dense.push_str(&line);
        i += 1;
    }
    let dense = Bytes::from(dense);
    // What one client pushing such bodies in turn leaves resident: the stored group, and what
    // the allocator keeps of the parses it freed (about 40 MiB over the baseline here).
    for _ in 0..3 {
        let answer = flood_push(addr, "/metrics/job/dense", &[], dense.clone()).await;
        assert_eq!(answer.map(|(status, _)| status), Some(200));
    }
    let one_at_a_time = usage(pid).rss_bytes;
    let stop = Instant::now() + Duration::from_secs(8);
    let mut attackers = JoinSet::new();
    for _ in 0..CLIENTS {
        let body = dense.clone();
        attackers.spawn(async move {
            let (mut ok, mut busy) = (0, 0);
            while Instant::now() < stop {
                match flood_push(addr, "/metrics/job/dense", &[], body.clone()).await {
                    Some((200, _)) => ok += 1,
                    // Refused before the body was read (the connection may close under it).
                    Some((503, _)) | None => {
                        busy += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    other => panic!("{other:?}"),
                }
            }
            (ok, busy)
        });
    }
    let sampler = most(pid, 180, |u| u.rss_bytes);
    let probe = Probe::plain(addr);
    let latencies = probe.measure(Duration::from_secs(6)).await;
    latencies.report(&format!(
        "dense body flood ({CLIENTS} clients sending 1 MiB of series)"
    ));
    let (mut ok, mut busy) = (0, 0);
    while let Some(counts) = attackers.join_next().await {
        let (o, b) = counts.expect("attacker");
        ok += o;
        busy += b;
    }
    let most_rss = sampler.await.expect("sampler");
    println!(
        "ABUSE dense body flood: {i} series per push, {ok} accepted, {busy} refused with 503; resident memory at most {} MiB (baseline {} MiB, {} MiB after pushes one at a time, --push.max-buffered-size=8MiB, --push.max-body-size=1MiB)",
        most_rss >> 20,
        baseline.rss_bytes >> 20,
        one_at_a_time >> 20
    );
    assert!(ok > 0, "nothing accepted");
    // Over pushes one at a time: the buffered bodies, and at most one more parse under way
    // (about 25 times the body). Twelve bodies parsed side by side would take over 200 MiB more.
    // (An absolute budget over the baseline failed by a MiB on a CI machine: the allocator's
    // retained memory varies with the machine, so the reference is measured here.)
    assert!(
        most_rss < one_at_a_time + (8 << 20) + 25 * (1 << 20),
        "resident memory reached {} MiB",
        most_rss >> 20
    );
}

/// One push on a fresh connection: status and `Retry-After`, `None` if the connection broke
/// before an answer.
async fn flood_push(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Option<(u16, Option<String>)> {
    use http_body_util::{BodyExt, Full};
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method("PUT")
        .uri(path)
        .header("host", "x");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body)).ok()?)
        .await
        .ok()?;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = response.into_body().collect().await;
    Some((status, retry))
}
