//! CPU time of the processes a workload runs on, to tell what a system costs
//! apart from how long its operations waited.
//!
//! On a 2-vCPU machine a closed-loop benchmark is CPU-bound well before any
//! server is, so a throughput or fan-out figure is "2 CPU-seconds per second
//! divided by the CPU one operation costs, summed over every process". Reading
//! that cost per process (the benchmark's own clients, the storage node, Redis,
//! etcd) says where a target's missing factor would have to come from. The
//! figures are user plus system time from `/proc/<pid>/stat`, which counts
//! threads that have ended too (tokio's blocking threads come and go), in
//! clock ticks of 10 ms: metered spans are seconds long, so that is a percent
//! or less.

use std::time::Duration;

use crate::stats::fmt_duration;

/// The processes to meter, each by a label, and their CPU time at the start.
#[derive(Debug)]
pub struct CpuMeter {
    processes: Vec<(&'static str, Option<u32>, Option<Duration>)>,
}

impl CpuMeter {
    /// Starts metering `processes`: a label and a pid each, `None` for this
    /// process (the benchmark's clients).
    pub fn start(processes: &[(&'static str, Option<u32>)]) -> CpuMeter {
        CpuMeter {
            processes: processes
                .iter()
                .map(|&(label, pid)| (label, pid, cpu_of(pid)))
                .collect(),
        }
    }

    /// `"<system>: CPU per <unit>: 31 us (clients 20 us + storage 6 us + ...)"`:
    /// each process's CPU since [`CpuMeter::start`], divided by `ops`.
    pub fn per_op(&self, system: &str, unit: &str, ops: u64) -> String {
        let ops = u32::try_from(ops.max(1)).unwrap_or(u32::MAX);
        let mut total = Duration::ZERO;
        let mut parts = Vec::new();
        for &(label, pid, before) in &self.processes {
            match (before, cpu_of(pid)) {
                (Some(before), Some(after)) => {
                    let per = after.saturating_sub(before) / ops;
                    total += per;
                    parts.push(format!("{label} {}", fmt_duration(per)));
                }
                _ => parts.push(format!("{label} not readable")),
            }
        }
        format!(
            "{system}: CPU per {unit} {} ({})",
            fmt_duration(total),
            parts.join(" + ")
        )
    }
}

/// User plus system CPU time of this process so far.
pub fn this_process() -> Option<Duration> {
    cpu_of(None)
}

/// Clock ticks per second of `/proc`'s times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of process `pid` (this process for `None`).
fn cpu_of(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // `pid (comm) state ...`: the name may hold spaces and parentheses, so the
    // fields are counted from the last ')'; utime and stime are fields 14 and
    // 15, the 12th and 13th after it.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_metered() {
        let meter = CpuMeter::start(&[("me", None), ("nobody", Some(u32::MAX))]);
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {}
        let note = meter.per_op("test", "op", 1);
        assert!(note.starts_with("test: CPU per op "), "{note}");
        assert!(note.contains("nobody not readable"), "{note}");
        assert!(cpu_of(None).is_some_and(|t| t > Duration::ZERO));
    }
}
