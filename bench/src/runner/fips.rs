//! Scenario 8: the FIPS build beside the default build, both over HTTPS with client certificates:
//! pushes/s on kept-alive connections, pushes/s with a new connection (full handshake) per
//! request, and scrapes of a stored data set. Both are ours; upstream has no FIPS build.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::{Runner, measured_json, series_label};
use crate::load::{ConnMode, Target};
use crate::report::{Better, Metric};
use crate::tls::{self, WebConfig};

/// The builds, in the order of the table.
const BUILDS: [&str; 2] = ["default", "fips"];

impl Runner {
    pub(super) fn fips(&mut self) -> Result<(), String> {
        let fips = self
            .fips
            .clone()
            .ok_or("no FIPS build (pass --fips or let pgbench build it)")?;
        let g = self.s.fips_scrape_groups;
        let n = series_label(g);
        self.say(format!(
            "8. FIPS build vs default build over mTLS ({n} series for the scrapes)"
        ));
        let sc = "8. FIPS build vs default build (ours; HTTPS with client certificates)";
        let certs = self.certs()?;
        let web = WebConfig {
            tls: true,
            client_certs: true,
            ..Default::default()
        };
        let file = self.work.join("web-fips-mtls.yml");
        std::fs::write(&file, web.yaml(&certs))
            .map_err(|e| format!("writing {}: {e}", file.display()))?;
        let mut args = Self::no_persistence();
        args.push(format!("--web.config.file={}", file.display()));
        let client = Some((certs.client_cert.as_path(), certs.client_key.as_path()));
        let probe = Target {
            addr: "127.0.0.1:1".parse().map_err(|e| format!("{e}"))?,
            tls: Some(tls::tls_target(
                tls::client_config(&certs.ca_cert, client, false, tls::Kx::Default)?,
                "localhost",
            )?),
        };
        // Offering only P-256, which the FIPS build picks anyway, isolates what the module
        // itself costs per handshake from the choice of curve.
        let p256 = Target {
            tls: Some(tls::tls_target(
                tls::client_config(&certs.ca_cert, client, false, tls::Kx::P256)?,
                "localhost",
            )?),
            ..probe.clone()
        };
        let metric = |build: &str, key: &str, label: &str, unit: &str, better: Better| {
            Metric::new(
                sc,
                &format!("fips.{build}.{key}"),
                &format!("{build} build: {label}"),
                unit,
                better,
            )
        };
        let mut negotiated = BTreeMap::new();
        for round in 0..self.s.rounds {
            // The builds take turns going first.
            let mut order = BUILDS;
            if round % 2 == 1 {
                order.reverse();
            }
            for build in order {
                let bin = if build == "fips" {
                    fips.clone()
                } else {
                    self.ours.clone()
                };
                let (gw, target) =
                    self.start_secure_bin(&bin, build, "fips-mtls", &args, &probe, None)?;
                for (key, label, conn, p256_only) in [
                    (
                        "mtls_keepalive",
                        "mTLS, keep-alive, 32 clients, 60-line PUTs",
                        ConnMode::KeepAlive,
                        false,
                    ),
                    (
                        "mtls_newconn",
                        "mTLS, new connection (full handshake) per request",
                        ConnMode::PerRequest,
                        false,
                    ),
                    (
                        "mtls_newconn_p256",
                        "mTLS, new connection per request, client offers P-256 only",
                        ConnMode::PerRequest,
                        true,
                    ),
                ] {
                    let to = Target {
                        addr: target.addr,
                        tls: if p256_only {
                            p256.tls.clone()
                        } else {
                            target.tls.clone()
                        },
                    };
                    let spec = self.push_spec(to, conn, self.s.short_duration_s);
                    let (r, cpu) = self.measure(&gw, spec);
                    self.say(format!("  {build} {key} round {round}: {}", r.line()));
                    if let Some(t) = &r.tls {
                        negotiated.insert(
                            format!("{build} ({key})"),
                            format!("{} {} {}", t.version, t.cipher_suite, t.kx_group),
                        );
                    }
                    let d = measured_json(&r, cpu);
                    let m = metric(build, key, label, "pushes/s", Better::Higher);
                    self.res
                        .record(&m, gw.kind, round, r.ok_per_s, r.failures(), d.clone());
                    if let Some(c) = super::cpu_per_ok(&r, cpu) {
                        let m = metric(
                            build,
                            &format!("{key}_cpu"),
                            "server CPU per push (user + system), same load",
                            "µs",
                            Better::Lower,
                        );
                        self.res.record(&m, gw.kind, round, c, r.failures(), d);
                    }
                }
                self.fill_target(&gw, &target, g)?;
                let before = gw.cpu_time().ok();
                let (first, repeated, change) = self.scrape_pair(&target, false, round as u64);
                // Server CPU per scrape over the change push, the first and the repeated scrapes.
                let scrape_cpu = match (before, gw.cpu_time().ok()) {
                    (Some(a), Some(b)) if first.ok + repeated.ok > 0 => Some(
                        b.saturating_sub(a).as_secs_f64() * 1e3 / (first.ok + repeated.ok) as f64,
                    ),
                    _ => None,
                };
                if let Err(e) = change {
                    self.error(format!("change push to {} failed: {e}", gw.label));
                }
                self.say(format!(
                    "  {build} scrape {n} round {round}: first {:.1} ms, repeated p50 {:.1} ms, {:.0} KiB",
                    first.latency.max_ms,
                    repeated.latency.p50_ms,
                    first.mean_body_bytes() / 1024.0
                ));
                let d = json!({ "first": first, "repeated": repeated });
                for (key, label, value, failures) in [
                    (
                        "first",
                        "after a change",
                        first.latency.max_ms,
                        first.failures(),
                    ),
                    (
                        "repeated",
                        "unchanged store (p50)",
                        repeated.latency.p50_ms,
                        repeated.failures(),
                    ),
                ] {
                    let m = metric(
                        build,
                        &format!("scrape_g{g}_{key}"),
                        &format!("mTLS scrape of {n} series, plain, {label}"),
                        "ms",
                        Better::Lower,
                    );
                    self.res
                        .record(&m, gw.kind, round, value, failures, d.clone());
                }
                if let Some(c) = scrape_cpu {
                    let m = metric(
                        build,
                        &format!("scrape_g{g}_cpu"),
                        &format!("server CPU per mTLS scrape of {n} series, plain"),
                        "ms",
                        Better::Lower,
                    );
                    self.res.record(&m, gw.kind, round, c, 0, d);
                }
                gw.stop(Duration::from_secs(60))?;
            }
        }
        let list: Vec<String> = negotiated
            .iter()
            .map(|(build, what)| format!("{build}: {what}"))
            .collect();
        self.note(format!(
            "FIPS (8): both builds are ours, started alike (no persistence, the same web config with \
             `client_auth_type: RequireAndVerifyClientCert`, ECDSA P-256 certificates), taking turns \
             going first; upstream has no FIPS build, so its column is empty. The FIPS build is \
             `cargo build --release --features fips`: rustls's FIPS provider, AWS-LC's FIPS module. \
             Negotiated: {}.",
            list.join("; ")
        ));
        Ok(())
    }

    /// Targets: the FIPS build within 10% of the default build on each row, by the server's
    /// CPU time per request: on a machine shared with other work, wall-clock rates of two
    /// processes measured a minute apart differ by more than 10% from the load alone.
    pub(super) fn fips_targets(&self, out: &mut Vec<crate::report::Target>) {
        let o = |key: &str| self.res.median_of(key, crate::process::Kind::Ours);
        let fx = crate::report::fmt_num;
        let g = self.s.fips_scrape_groups;
        let scrape_key = format!("scrape_g{g}_cpu");
        let scrape_what = format!("mTLS scrape of {} series", series_label(g));
        for (key, what, unit) in [
            ("mtls_keepalive_cpu", "mTLS keep-alive push", "µs"),
            (
                "mtls_newconn_cpu",
                "mTLS push on a new connection (full handshake)",
                "µs",
            ),
            (
                "mtls_newconn_p256_cpu",
                "the same, P-256 offered to both builds",
                "µs",
            ),
            (scrape_key.as_str(), scrape_what.as_str(), "ms"),
        ] {
            let (Some(d), Some(f)) = (
                o(&format!("fips.default.{key}")),
                o(&format!("fips.fips.{key}")),
            ) else {
                continue;
            };
            out.push(crate::report::Target {
                goal: format!(
                    "FIPS build within 10% of the default build, server CPU per request: {what}"
                ),
                measured: format!("{} vs {} {unit} = {:.2}×", fx(f), fx(d), f / d),
                met: Some(f <= d * 1.1),
            });
        }
    }
}
