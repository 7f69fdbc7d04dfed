//! The standard `process_*` metrics, read from `/proc` as client_golang's process collector
//! reads them.

use std::fs;

use crate::model::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};

/// The process families with their types and help texts, as client_golang names them.
pub const FAMILIES: &[(&str, MetricType, &str)] = &[
    (
        "process_cpu_seconds_total",
        MetricType::Counter,
        "Total user and system CPU time spent in seconds.",
    ),
    (
        "process_max_fds",
        MetricType::Gauge,
        "Maximum number of open file descriptors.",
    ),
    (
        "process_network_receive_bytes_total",
        MetricType::Counter,
        "Number of bytes received by the process over the network.",
    ),
    (
        "process_network_transmit_bytes_total",
        MetricType::Counter,
        "Number of bytes sent by the process over the network.",
    ),
    (
        "process_open_fds",
        MetricType::Gauge,
        "Number of open file descriptors.",
    ),
    (
        "process_resident_memory_bytes",
        MetricType::Gauge,
        "Resident memory size in bytes.",
    ),
    (
        "process_start_time_seconds",
        MetricType::Gauge,
        "Start time of the process since unix epoch in seconds.",
    ),
    (
        "process_virtual_memory_bytes",
        MetricType::Gauge,
        "Virtual memory size in bytes.",
    ),
    (
        "process_virtual_memory_max_bytes",
        MetricType::Gauge,
        "Maximum amount of virtual memory available in bytes.",
    ),
];

/// Reads the current values. A value that cannot be read (no `/proc`, say) is left out.
pub fn collect() -> Vec<MetricFamily> {
    let stat = read_stat();
    let limits = fs::read_to_string("/proc/self/limits").ok();
    let network = read_network();
    let value = |name: &str| -> Option<f64> {
        match name {
            "process_cpu_seconds_total" => stat.as_ref().map(|s| s.cpu_seconds),
            "process_max_fds" => limits.as_deref().and_then(|l| limit(l, "Max open files")),
            "process_network_receive_bytes_total" => network.map(|(rx, _)| rx),
            "process_network_transmit_bytes_total" => network.map(|(_, tx)| tx),
            "process_open_fds" => fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as f64),
            "process_resident_memory_bytes" => stat.as_ref().map(|s| s.resident_bytes),
            "process_start_time_seconds" => stat.as_ref().and_then(|s| s.start_time_seconds),
            "process_virtual_memory_bytes" => stat.as_ref().map(|s| s.virtual_bytes),
            "process_virtual_memory_max_bytes" => limits
                .as_deref()
                .and_then(|l| limit(l, "Max address space")),
            _ => None,
        }
    };
    FAMILIES
        .iter()
        .filter_map(|(name, kind, help)| {
            let v = value(name)?;
            let metric = match kind {
                MetricType::Counter => Metric {
                    counter: Some(Counter {
                        value: Some(v),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                _ => Metric {
                    gauge: Some(Gauge { value: Some(v) }),
                    ..Default::default()
                },
            };
            Some(MetricFamily {
                name: Some((*name).to_string()),
                help: Some((*help).to_string()),
                r#type: Some(*kind as i32),
                metric: vec![metric],
                unit: None,
            })
        })
        .collect()
}

struct Stat {
    cpu_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
    start_time_seconds: Option<f64>,
}

fn read_stat() -> Option<Stat> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may contain spaces; fields follow the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    // Field numbers in proc(5) count from 1 and include pid and comm, hence the offset of 3.
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    // SAFETY: sysconf has no preconditions; it only reads system configuration.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // SAFETY: as above.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let boot_time = fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
        start_time_seconds: boot_time
            .zip(field(22))
            .map(|(boot, start)| boot + start / ticks),
    })
}

/// The soft limit of a `/proc/self/limits` row; "unlimited" as the largest 64-bit value, as Go
/// reports it.
fn limit(limits: &str, row: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with(row))?;
    let soft = line[row.len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX as f64)
    } else {
        soft.parse().ok()
    }
}

/// Bytes received and sent, from the `IpExt` octet counters of `/proc/self/net/netstat`.
fn read_network() -> Option<(f64, f64)> {
    let netstat = fs::read_to_string("/proc/self/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|l| l.starts_with("IpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<f64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some((get("InOctets")?, get("OutOctets")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let families = super::collect();
        let value = |name: &str| {
            families
                .iter()
                .find(|f| f.name() == name)
                .and_then(|f| {
                    f.metric[0].gauge.or_else(|| {
                        f.metric[0]
                            .counter
                            .as_ref()
                            .map(|c| crate::model::proto::Gauge { value: c.value })
                    })
                })
                .and_then(|g| g.value)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let start = value("process_start_time_seconds");
        let now = crate::model::Timestamp::now().as_seconds_f64();
        assert!(
            start > now - 3600.0 && start <= now + 1.0,
            "start {start} now {now}"
        );
    }
}
