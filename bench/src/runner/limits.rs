//! Scenario 9, limits and expiry (ours; upstream has neither): what a push costs with a large store and
//! the limits on, against the same store without limits; and whether a sweep that deletes a
//! great many expired groups at once stalls pushes.

use std::time::{Duration, Instant};

use http::HeaderValue;
use serde_json::json;

use super::{Runner, measured_json, report_json, series_label};
use crate::load::{self, ConnMode, LoadSpec, RequestSpec, Target};
use crate::process::Gateway;
use crate::report::{Better, Metric};
use crate::workload;

const SC: &str = "9. Limits and expiry (ours)";

/// Path of the groups that expire together.
fn expiry_path(seq: u64) -> String {
    format!("/metrics/job/bench_expiry/instance/e{seq}")
}

impl Runner {
    pub(super) fn limits(&mut self) -> Result<(), String> {
        self.limits_cost()?;
        self.save();
        self.expiry_sweep()
    }

    /// Pushes into `g` groups of 20 series, with and without every limit set (high enough
    /// that nothing is refused, so that each push is checked against all of them).
    fn limits_cost(&mut self) -> Result<(), String> {
        let g = self.s.limits_groups;
        let n = series_label(g);
        self.say(format!(
            "9. limits: pushes with {n} series stored, limits off and on"
        ));
        let series = g * workload::SERIES_PER_GROUP;
        let mut on_args = Self::no_persistence();
        on_args.extend([
            format!("--push.max-groups={}", 2 * g + 1_000),
            format!("--push.max-series={}", 2 * series + 100_000),
            "--push.max-series-per-group=1000".to_string(),
        ]);
        let mut off = self.start(
            crate::process::Kind::Ours,
            "limits-off",
            &Self::no_persistence(),
        )?;
        let mut on = self.start(crate::process::Kind::Ours, "limits-on", &on_args)?;
        for gw in [&off, &on] {
            self.fill(gw, g)?;
        }
        let metric = |mode: &str, key: &str, label: &str, unit: &str, better: Better| {
            Metric::new(
                SC,
                &format!("limits.{mode}.{key}"),
                &format!("{n} series stored, limits {mode}: {label}"),
                unit,
                better,
            )
        };
        for round in 0..self.s.stored_rounds {
            for mode in if round % 2 == 0 {
                ["off", "on"]
            } else {
                ["on", "off"]
            } {
                self.settle(&[&off, &on]);
                let gw = if mode == "off" { &mut off } else { &mut on };
                let r = self.latency_run(gw, round == 0);
                gw.check_alive()?;
                self.say(format!(
                    "  latency, limits {mode}, round {round}: {}",
                    r.line()
                ));
                let d = report_json(&r);
                for (key, label, v) in [
                    ("p50", "small PUT, 1 client, p50", r.latency.p50_ms),
                    ("p99", "small PUT, 1 client, p99", r.latency.p99_ms),
                ] {
                    let m = metric(mode, key, label, "ms", Better::Lower);
                    self.res
                        .record(&m, gw.kind, round, v, r.failures(), d.clone());
                }
                let spec = self.push_spec(
                    Target::plain(gw.addr),
                    ConnMode::KeepAlive,
                    self.s.short_duration_s,
                );
                let (r, cpu) = self.measure(gw, spec);
                self.say(format!(
                    "  throughput, limits {mode}, round {round}: {}",
                    r.line()
                ));
                let m = metric(
                    mode,
                    "push_per_s",
                    "32 clients, 60-line PUTs",
                    "pushes/s",
                    Better::Higher,
                );
                self.res.record(
                    &m,
                    gw.kind,
                    round,
                    r.ok_per_s,
                    r.failures(),
                    measured_json(&r, cpu),
                );
            }
        }
        off.stop(Duration::from_secs(60))?;
        on.stop(Duration::from_secs(60))?;
        self.note(format!(
            "Limits (9): two instances of ours hold the same {n} series, one without limits and one with \
             `--push.max-groups`, `--push.max-series` (both twice what is stored) and \
             `--push.max-series-per-group=1000`, so that every push is checked against every limit and none \
             is refused; they take turns going first."
        ));
        Ok(())
    }

    /// Fills `e` groups that expire together, then lets their deadlines pass while the gateway
    /// is stopped (SIGSTOP, as a paused machine), so that the first sweep after SIGCONT deletes
    /// all of them at once, and measures pushes during that sweep against pushes before it.
    fn expiry_sweep(&mut self) -> Result<(), String> {
        let e = self.s.expiry_groups;
        self.say(format!("9. expiry: {e} groups expiring in one sweep"));
        let mut gw = self.start(
            crate::process::Kind::Ours,
            "expiry",
            &Self::no_persistence(),
        )?;
        // Long enough for the fill to end before the first deadline.
        let expiry = Duration::from_secs(if self.s.smoke {
            5
        } else if self.s.quick {
            15
        } else {
            60
        });
        let header =
            HeaderValue::from_str(&format!("{}s", expiry.as_secs())).map_err(|e| e.to_string())?;
        let mut spec = LoadSpec::new(
            Target::plain(gw.addr),
            self.s.clients,
            std::sync::Arc::new(move |_, seq| {
                let mut r = RequestSpec::put(expiry_path(seq), workload::small_body(seq));
                r.headers.insert("pushgateway-expire-after", header.clone());
                r
            }),
        );
        spec.max_requests = Some(e);
        spec.timeout = self.timeout();
        let fill_started = Instant::now();
        let fill = self.run_load(spec);
        let fill_ended = Instant::now();
        if fill.ok != e || fill.failures() > 0 {
            return Err(format!("loading {e} expiring groups: {}", fill.line()));
        }
        let first_deadline = fill_started + expiry;
        let margin = Duration::from_secs(2);
        if fill_ended + margin + Duration::from_secs_f64(self.s.latency_duration_s) > first_deadline
        {
            return Err(format!(
                "loading {e} groups took {:.1} s, too close to their expiry of {expiry:?}",
                fill.elapsed_s
            ));
        }
        self.say(format!(
            "  loaded {e} groups in {:.1}s ({:.0} pushes/s)",
            fill.elapsed_s, fill.ok_per_s
        ));
        let metric = |key: &str, label: &str, unit: &str| {
            Metric::new(
                SC,
                &format!("expiry.g{e}.{key}"),
                &format!("{label}, {e} groups expiring in one sweep"),
                unit,
                Better::Lower,
            )
        };
        // Without a sweep: the same store, before any deadline.
        self.settle(&[&gw]);
        let before = self.latency_run(&gw, true);
        self.say(format!("  latency before the sweep: {}", before.line()));
        let wait = first_deadline.saturating_duration_since(Instant::now() + margin);
        std::thread::sleep(wait);
        gw.pause(true);
        // Every deadline passes while the gateway is stopped.
        let last_deadline = fill_ended + expiry + Duration::from_millis(500);
        std::thread::sleep(last_deadline.saturating_duration_since(Instant::now()));
        gw.pause(false);
        let woke = Instant::now();
        let during = self.latency_run(&gw, false);
        gw.check_alive()?;
        self.say(format!("  latency during the sweep: {}", during.line()));
        let gone = self.wait_expired(&gw, woke)?;
        self.say(format!(
            "  all {e} groups gone {:.0} ms after the wake-up",
            gone.as_secs_f64() * 1e3
        ));
        let d = json!({ "before": before, "during": during, "gone_ms": gone.as_secs_f64() * 1e3, "fill": fill });
        for (key, label, r) in [
            ("before", "small PUT, 1 client, without a sweep", &before),
            ("during", "small PUT, 1 client, during the sweep", &during),
        ] {
            for (stat, v) in [("p99", r.latency.p99_ms), ("max", r.latency.max_ms)] {
                let m = metric(&format!("{key}.{stat}"), &format!("{stat}, {label}"), "ms");
                self.res.record(&m, gw.kind, 0, v, r.failures(), d.clone());
            }
        }
        let m = metric(
            "gone_ms",
            "time from the wake-up until every expired group is gone",
            "ms",
        );
        self.res
            .record(&m, gw.kind, 0, gone.as_secs_f64() * 1e3, 0, d);
        gw.stop(Duration::from_secs(60))?;
        self.note(format!(
            "Expiry (9): {e} groups of 3 series are pushed with `Pushgateway-Expire-After: {}s`; the gateway \
             is then stopped (SIGSTOP) from just before the first deadline until after the last, so that the \
             first sweep after SIGCONT deletes them all at once (each logged at info, as in production). The \
             latency client starts right at SIGCONT; \"without a sweep\" is the same client on the same store \
             just before. Both are one run each.",
            expiry.as_secs()
        ));
        Ok(())
    }

    /// Waits until no `bench_expiry` group is left; returns the time since `since`.
    fn wait_expired(&self, gw: &Gateway, since: Instant) -> Result<Duration, String> {
        loop {
            let body = self.rt.block_on(load::fetch(
                &Target::plain(gw.addr),
                None,
                RequestSpec::get("/metrics"),
                self.timeout(),
            ))?;
            let left = body
                .split(|b| *b == b'\n')
                .any(|l| l.starts_with(b"bench_small") && contains(l, b"job=\"bench_expiry\""));
            if !left {
                return Ok(since.elapsed());
            }
            if since.elapsed() > Duration::from_secs(120) {
                return Err("expired groups still there after 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Runner {
    /// Targets of issue 16: limits cost nothing measurable; a large sweep does not stall pushes.
    pub(super) fn limits_targets(&self, out: &mut Vec<crate::report::Target>) {
        let o = |key: &str| self.res.median_of(key, crate::process::Kind::Ours);
        let fx = crate::report::fmt_num;
        let g = self.s.limits_groups;
        if let (Some(off), Some(on)) = (o("limits.off.p50"), o("limits.on.p50")) {
            out.push(crate::report::Target {
                goal: format!(
                    "push p50 with {} series and limits on within 10% of limits off",
                    series_label(g)
                ),
                measured: format!("{} vs {} ms = {:.2}×", fx(on), fx(off), on / off),
                met: Some(on <= off * 1.1),
            });
        }
        let e = self.s.expiry_groups;
        if let (Some(before), Some(during)) = (
            o(&format!("expiry.g{e}.before.p99")),
            o(&format!("expiry.g{e}.during.p99")),
        ) {
            out.push(crate::report::Target {
                goal: format!(
                    "push p99 while {e} groups expire at once ≤ 2× the p99 without a sweep"
                ),
                measured: format!(
                    "{} vs {} ms = {:.2}×",
                    fx(during),
                    fx(before),
                    during / before
                ),
                met: Some(during <= before * 2.0),
            });
        }
    }
}
