//! This host's capacity and load, read from `/proc` (Linux).

use wh_wsproto::messages::{Capacity, HostStats};

fn meminfo_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// CPUs and memory of this host.
pub fn capacity() -> Capacity {
    Capacity {
        cpus: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
        memory_mb: meminfo_kib("MemTotal:").unwrap_or(0) / 1024,
        disk_mb: 0,
        disk_quota: String::new(),
    }
}

/// Load (1-minute average over the core count, capped at 1) and memory use.
pub fn stats() -> HostStats {
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .unwrap_or(0.0);
    let total = meminfo_kib("MemTotal:").unwrap_or(0);
    let available = meminfo_kib("MemAvailable:").unwrap_or(total);
    HostStats {
        cpu: (load / cores).clamp(0.0, 1.0),
        memory_used_mb: total.saturating_sub(available) / 1024,
        memory_total_mb: total / 1024,
        disk_used_mb: 0,
        disk_total_mb: 0,
    }
}
