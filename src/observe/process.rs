//! The `process_*` families every Prometheus dashboard and alert expects of a scrape target
//! (CPU, memory, file descriptors, start time), with the standard names and types, read on
//! each scrape from Linux's `/proc/self`. Elsewhere nothing is written: a family with no
//! honest value is better absent than zero.

use super::exposition::{Exposition, MetricFamilies};

/// Clock ticks per second in `/proc` times (`USER_HZ`): 100 on every Linux ABI, whatever
/// the kernel's internal tick rate.
const TICKS_PER_SECOND: f64 = 100.0;

/// The process's own figures, as Prometheus' client libraries name them.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self` now; a figure that cannot be read is left out.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
        // Fields after the command, counted from `state` (field 3 of proc(5)) as 0.
        let cpu_ticks = field(11).zip(field(12)).map(|(user, system)| user + system);
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let kib = |key| status.as_deref().and_then(|s| status_kib(s, key));
        Self {
            cpu_seconds: cpu_ticks.map(|t| t as f64 / TICKS_PER_SECOND),
            resident_bytes: kib("VmRSS:").map(|k| k * 1024),
            virtual_bytes: kib("VmSize:").map(|k| k * 1024),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| max_open_files(&s)),
            start_time_seconds: field(19)
                .zip(boot_time)
                .map(|(ticks, boot)| boot as f64 + ticks as f64 / TICKS_PER_SECOND),
        }
    }
}

/// The fields of `/proc/self/stat` after `(command)`, which may itself hold spaces and
/// parentheses: everything after the last `)`.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `Key:   1234 kB` line of `/proc/self/status`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits` (absent when unlimited).
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Writes the process families (registered once per gateway generation).
#[derive(Debug, Default)]
pub struct ProcessFamilies;

impl MetricFamilies for ProcessFamilies {
    fn write(&self, o: &mut Exposition) {
        let stats = ProcessStats::read();
        let mut one = |name: &str, kind: &str, help: &str, value: Option<f64>| {
            if let Some(value) = value {
                o.header(name, kind, help);
                o.line(name, &[], value);
            }
        };
        one(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stats.cpu_seconds,
        );
        one(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            stats.resident_bytes.map(|b| b as f64),
        );
        one(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stats.virtual_bytes.map(|b| b as f64),
        );
        one(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            stats.open_fds.map(|n| n as f64),
        );
        one(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            stats.max_fds.map(|n| n as f64),
        );
        one(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            stats.start_time_seconds,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now_seconds() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    #[test]
    fn proc_files_are_read_by_their_documented_layout() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 2200 0 0 0 \
                    150 50 0 0 20 0 9 0 123456 22000000 3000 18446744073709551615";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(
            (fields[11], fields[12], fields[19]),
            ("150", "50", "123456")
        );
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(
            status_kib("Name:\tx\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_plausibly() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.unwrap() > 1024 * 1024);
        assert!(stats.virtual_bytes.unwrap() >= stats.resident_bytes.unwrap());
        assert!(stats.open_fds.unwrap() > 0);
        let started = stats.start_time_seconds.unwrap();
        assert!(started <= now_seconds() + 1.0 && started > now_seconds() - 3600.0);
    }
}
