//! Raw samples, their medians, the markdown table and the JSON file.

use std::fmt::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::process::{Binary, Kind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// What a row of the table measures.
#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    /// Scenario number and name, e.g. "1. push throughput".
    pub scenario: String,
    /// Stable identifier, e.g. "push.keepalive.ok_per_s".
    pub key: String,
    /// What the row shows, e.g. "pushes/s, 32 clients, keep-alive".
    pub label: String,
    pub unit: String,
    pub better: Better,
}

impl Metric {
    pub fn new(scenario: &str, key: &str, label: &str, unit: &str, better: Better) -> Metric {
        Metric {
            scenario: scenario.to_string(),
            key: key.to_string(),
            label: label.to_string(),
            unit: unit.to_string(),
            better,
        }
    }
}

/// One measured value.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub key: String,
    pub gateway: Kind,
    pub round: usize,
    pub value: f64,
    /// Non-2xx answers plus transport errors in the measurement.
    pub failures: u64,
    /// The raw measurement (load report, memory, timings).
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub key: String,
    pub label: String,
    pub unit: String,
    pub better: Better,
    pub ours: Option<f64>,
    pub upstream: Option<f64>,
    pub ratio: Option<f64>,
    pub ours_samples: usize,
    pub upstream_samples: usize,
    pub ours_failures: u64,
    pub upstream_failures: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub kernel: String,
    pub os: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let ram_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default();
        Machine {
            cpu_model,
            cores,
            ram_gib: (ram_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{}, {} cores, {} GiB RAM, Linux {} ({})",
            self.cpu_model, self.cores, self.ram_gib, self.kernel, self.os
        )
    }
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub started_utc: String,
    pub finished_utc: Option<String>,
    pub command: String,
    pub machine: Machine,
    pub ours: Binary,
    pub ours_source: String,
    pub upstream: Binary,
    pub settings: serde_json::Value,
    pub metrics: Vec<Metric>,
    pub samples: Vec<Sample>,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
    /// /proc/loadavg (1, 5, 15 min) when each scenario started and at the end: other work
    /// on the machine shows here.
    pub load_average: Vec<(String, String)>,
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

impl Results {
    pub fn record(
        &mut self,
        metric: &Metric,
        gateway: Kind,
        round: usize,
        value: f64,
        failures: u64,
        detail: serde_json::Value,
    ) {
        if !self.metrics.iter().any(|m| m.key == metric.key) {
            self.metrics.push(metric.clone());
        }
        self.samples.push(Sample {
            key: metric.key.clone(),
            gateway,
            round,
            value,
            failures,
            detail,
        });
    }

    /// The median of a metric's samples for one gateway.
    pub fn median_of(&self, key: &str, gateway: Kind) -> Option<f64> {
        let mut values: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.key == key && s.gateway == gateway)
            .map(|s| s.value)
            .collect();
        median(&mut values)
    }

    pub fn summarize(&mut self) {
        let mut rows = Vec::new();
        // By scenario number, then in the order first measured.
        let mut metrics: Vec<&Metric> = self.metrics.iter().collect();
        metrics.sort_by_key(|m| {
            m.scenario
                .split('.')
                .next()
                .and_then(|n| n.trim().parse::<u32>().ok())
                .unwrap_or(u32::MAX)
        });
        for m in metrics {
            let of = |g: Kind| {
                self.samples
                    .iter()
                    .filter(|s| s.key == m.key && s.gateway == g)
                    .collect::<Vec<_>>()
            };
            let (o, u) = (of(Kind::Ours), of(Kind::Upstream));
            let ours = self.median_of(&m.key, Kind::Ours);
            let upstream = self.median_of(&m.key, Kind::Upstream);
            let ratio = match (ours, upstream) {
                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                _ => None,
            };
            rows.push(Row {
                scenario: m.scenario.clone(),
                key: m.key.clone(),
                label: m.label.clone(),
                unit: m.unit.clone(),
                better: m.better,
                ours,
                upstream,
                ratio,
                ours_samples: o.len(),
                upstream_samples: u.len(),
                ours_failures: o.iter().map(|s| s.failures).sum(),
                upstream_failures: u.iter().map(|s| s.failures).sum(),
            });
        }
        self.rows = rows;
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Date: {} (UTC)  ", self.started_utc);
        let _ = writeln!(out, "Machine: {}  ", self.machine.line());
        let _ = writeln!(out, "Command: `{}`  ", self.command);
        let _ = writeln!(
            out,
            "Ours: `{}` ({}, {})  ",
            self.ours.path.display(),
            self.ours.version,
            self.ours_source
        );
        let _ = writeln!(
            out,
            "Upstream: `{}` ({})\n",
            self.upstream.path.display(),
            self.upstream.version
        );
        let _ = writeln!(
            out,
            "Medians over rounds; ours and upstream run interleaved. ↑ higher is better, ↓ lower is better. \
             Ratio is ours/upstream. Failures are non-2xx answers plus transport errors, summed over all rounds.\n"
        );
        let _ = writeln!(
            out,
            "| Scenario | Ours | Upstream | Ours/upstream | Failures (ours/upstream) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let mut last = String::new();
        for r in &self.rows {
            if r.scenario != last {
                let _ = writeln!(out, "| **{}** | | | | |", r.scenario);
                last = r.scenario.clone();
            }
            let arrow = match r.better {
                Better::Higher => "↑",
                Better::Lower => "↓",
            };
            let cell = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "—".into());
            let ratio = r
                .ratio
                .map(|x| format!("{}×", fmt_ratio(x)))
                .unwrap_or_else(|| "—".into());
            let failures = format!(
                "{}/{}",
                if r.ours_samples > 0 {
                    r.ours_failures.to_string()
                } else {
                    "—".into()
                },
                if r.upstream_samples > 0 {
                    r.upstream_failures.to_string()
                } else {
                    "—".into()
                }
            );
            let _ = writeln!(
                out,
                "| {} ({} {arrow}) | {} | {} | {} | {} |",
                r.label,
                r.unit,
                cell(r.ours),
                cell(r.upstream),
                ratio,
                failures
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\nTargets (ours):\n");
            let _ = writeln!(out, "| Target | Measured | Met |");
            let _ = writeln!(out, "|---|---|---|");
            for t in &self.targets {
                let met = match t.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "n/a",
                };
                let _ = writeln!(out, "| {} | {} | {met} |", t.goal, t.measured);
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        if !self.load_average.is_empty() {
            let list: Vec<String> = self
                .load_average
                .iter()
                .map(|(when, l)| format!("{when} {l}"))
                .collect();
            let _ = writeln!(
                out,
                "\nLoad average (1/5/15 min) at the start of each scenario: {}.",
                list.join("; ")
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nErrors:\n");
            for e in &self.errors {
                let _ = writeln!(out, "- {}", e.replace('\n', " "));
            }
        }
        out
    }

    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let p = dir.join("results.json");
        std::fs::write(&p, json).map_err(|e| format!("writing {}: {e}", p.display()))?;
        let p = dir.join("results.md");
        std::fs::write(&p, self.markdown()).map_err(|e| format!("writing {}: {e}", p.display()))
    }
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        group_thousands(v.round() as i64)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        // Three significant digits.
        let decimals = (-a.log10().floor()) as usize + 2;
        format!("{v:.decimals$}")
    }
}

fn fmt_ratio(v: f64) -> String {
    if v >= 100.0 {
        group_thousands(v.round() as i64)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn group_thousands(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Now as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn medians_and_numbers() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        assert_eq!(fmt_num(1234567.4), "1,234,567");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(0.01234), "0.0123");
        assert_eq!(fmt_num(0.5), "0.500");
    }
}
