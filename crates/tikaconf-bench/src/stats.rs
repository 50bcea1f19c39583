//! Latency samples and what the table shows of them.
//!
//! Every workload times individual operations and the wall clock of the whole
//! run; percentiles come from sorting the samples (the counts are bounded, so
//! no histogram is needed), throughput from operations over wall time. Keeping
//! this in one place makes every row of every table computed the same way.

use std::time::Duration;

/// Timed operations of one system in one case.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    latencies: Vec<Duration>,
    /// Operations completed (may exceed `latencies.len()` when not every
    /// operation is timed, as with fan-out where one operation has many receipts).
    ops: u64,
    wall: Duration,
}

impl Samples {
    pub fn new() -> Samples {
        Samples::default()
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> usize {
        self.latencies.len()
    }

    pub fn push(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    /// Counts `n` completed operations (for throughput).
    pub fn add_ops(&mut self, n: u64) {
        self.ops += n;
    }

    pub fn set_wall(&mut self, wall: Duration) {
        self.wall = wall;
    }

    /// For operations run one after another: the wall time is their sum.
    pub fn wall_from_latencies(&mut self) {
        self.wall = self.latencies.iter().sum();
    }

    pub fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.ops += other.ops;
        self.wall = self.wall.max(other.wall);
    }

    pub fn summarize(mut self) -> Measurement {
        self.latencies.sort_unstable();
        let pick = |q: f64| -> Duration {
            if self.latencies.is_empty() {
                return Duration::ZERO;
            }
            let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies[i]
        };
        let per_sec = if self.wall.is_zero() {
            0.0
        } else {
            self.ops as f64 / self.wall.as_secs_f64()
        };
        Measurement {
            n: self.latencies.len(),
            p50: pick(0.50),
            p99: pick(0.99),
            max: self.latencies.last().copied().unwrap_or_default(),
            per_sec,
        }
    }
}

/// One row's figures.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Operations per second over the run's wall time.
    pub per_sec: f64,
}

/// `d` in microseconds, for ratios.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A duration as the table shows it: µs below 10 ms, ms above.
pub fn fmt_duration(d: Duration) -> String {
    let us = micros(d);
    if us < 10_000.0 {
        format!("{us:.0} us")
    } else if us < 10_000_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

pub fn fmt_rate(per_sec: f64) -> String {
    if per_sec >= 10_000.0 {
        format!("{:.1}k/s", per_sec / 1000.0)
    } else {
        format!("{per_sec:.0}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_hundred() {
        let mut s = Samples::new();
        for i in 1..=100 {
            s.push(Duration::from_micros(i));
        }
        s.add_ops(100);
        s.set_wall(Duration::from_secs(1));
        let m = s.summarize();
        assert_eq!(m.n, 100);
        assert_eq!(m.p50, Duration::from_micros(51));
        assert_eq!(m.p99, Duration::from_micros(99));
        assert_eq!(m.max, Duration::from_micros(100));
        assert!((m.per_sec - 100.0).abs() < 1e-9);
    }
}
