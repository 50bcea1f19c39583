//! The suite: every schedule once, then the load test, then the report.
//!
//! One command runs everything issue 3 asks of the torture suite and writes
//! docs/RELIABILITY.md from what it measured. `--quick` runs the same schedules
//! for a few seconds each and one short load step, for CI: a failing invariant
//! there fails the build with the seed and the command that reproduce it.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::load::{self, LoadShape};
use crate::report::SuiteReport;
use crate::schedules::{self, RunResult};

/// How long each schedule writes under faults.
pub fn schedule_duration(quick: bool) -> Duration {
    Duration::from_secs(if quick { 6 } else { 45 })
}

/// The load steps: (rates tried in order, duration of each).
pub fn load_plan(quick: bool) -> (Vec<u64>, Duration) {
    if quick {
        (vec![500], Duration::from_secs(10))
    } else {
        (
            vec![500, 1000, 2000, 3000, 4000, 6000],
            Duration::from_secs(60),
        )
    }
}

/// Prints how to reproduce a failed run.
pub fn print_failure(r: &RunResult) {
    eprintln!(
        "FAILED seed={} schedule={}: {} violation(s)",
        r.seed,
        r.schedule,
        r.violations.len()
    );
    for v in &r.violations {
        eprintln!("  {v}");
    }
    eprintln!(
        "  reproduce: cargo run --release -p tikaconf-torture -- run --seed {} --schedule {} --duration {}",
        r.seed,
        r.schedule,
        r.duration.as_secs()
    );
}

/// Prints one run's summary line.
pub fn print_run(r: &RunResult) {
    use crate::history::Outcome::*;
    let n = |o| r.tally.outcomes.get(&o).copied().unwrap_or(0);
    let faults: u64 = r.injected.by_kind.values().sum();
    let conv = crate::report::convergence_cell(r);
    eprintln!(
        "{} seed={} schedule={}: {faults} faults, committed {} conflict {} indeterminate {} refused {} (unexplained {}) lost {}, dropped {}, followers' convergence p50/p99/max (of n; already); all agreed after: {conv}, rss {} -> {} MiB, {:.0} s",
        if r.passed() { "ok" } else { "FAILED" },
        r.seed,
        r.schedule,
        n(Committed),
        n(Conflict),
        n(Indeterminate),
        r.tally.refused_expected + r.tally.refused_unexpected,
        r.tally.refused_unexpected,
        r.tally.lost,
        r.tally.dropped_changes,
        r.rss_start >> 20,
        r.rss_end >> 20,
        r.wall.as_secs_f64()
    );
    if r.partition_kills > 0 || r.probes > 0 {
        let answered = r.probe_latencies.len();
        let max = r.probe_latencies.iter().max().copied().unwrap_or_default();
        eprintln!(
            "  partition-then-kill passes {} ({} black hole, {} quiet), probe loads answered {answered}/{} (slowest {max:?})",
            r.partition_kills, r.partition_kills_blackhole, r.partition_kills_quiet, r.probes
        );
    }
    if let Some(f) = &r.flood {
        let s = &f.sent;
        eprintln!(
            "  flood over {:.0} s: random loads {}, real loads {}, registrations {}, worst-case patches {} (failed {}); refused as too costly {}, large root intact {}, rights confined {}",
            f.seconds,
            s.random_loads,
            s.real_loads,
            s.registrations,
            s.hostile_patches,
            s.errors,
            f.refused_as_costly,
            f.large_root_intact,
            f.rights_confined
        );
        for series in &f.series {
            eprintln!(
                "  {}: {} readings, rss {} -> max {} MiB (bound {:?} MiB), cpu mean {:.2} max {:.2} s/s (bound {:?})",
                series.name,
                series.samples.len(),
                series.rss_start() >> 20,
                series.rss_max() >> 20,
                series.rss_limit.map(|l| l >> 20),
                series.cpu_mean().unwrap_or(0.0),
                series.cpu_max(),
                series.cpu_limit
            );
        }
    }
}

/// Runs the suite with schedule seeds `seed`, `seed + 1`, ...
pub async fn run(seed: u64, quick: bool, command: String, with_load: bool) -> Result<SuiteReport> {
    let started = SystemTime::now();
    let wall = std::time::Instant::now();
    eprintln!(
        "tikaconf-torture suite: seed={seed}{}",
        if quick { " (quick)" } else { "" }
    );
    let duration = schedule_duration(quick);
    let mut runs = Vec::new();
    for (i, schedule) in schedules::all().iter().enumerate() {
        let seed = seed.wrapping_add(i as u64);
        eprintln!(
            "running seed={seed} schedule={} for {duration:?}",
            schedule.name
        );
        let r = schedules::run(schedule, seed, duration).await?;
        print_run(&r);
        if !r.passed() {
            print_failure(&r);
        }
        runs.push(r);
    }
    let (mut load, mut load_error) = (None, None);
    if with_load {
        let (rates, step) = load_plan(quick);
        eprintln!("load: 1,000 followers across 100 roots, rates {rates:?}, {step:?} each");
        match load::run(LoadShape::default(), &rates, step).await {
            Ok(l) => {
                for s in &l.steps {
                    eprintln!(
                        "load {}/s: committed {:.0}/s, lag p50 {:?} p99 {:?} max {:?}, missed {}, rss {:?}, storage rss {:?}: {}",
                        s.target,
                        s.achieved,
                        s.lag_p50,
                        s.lag_p99,
                        s.lag_max,
                        s.missed,
                        s.rss,
                        s.storage_rss,
                        if s.holds {
                            "holds".to_owned()
                        } else if !s.failures.is_empty() {
                            format!("FAILED: {}", s.failures.join("; "))
                        } else {
                            s.why_not.join("; ")
                        }
                    );
                }
                load = Some(l);
            }
            Err(e) => load_error = Some(format!("{e:#}")),
        }
    }
    eprintln!("bad inputs: the reject corpus against a live follower and storage node");
    let (bad_input, bad_input_error) = match crate::bad_input::run().await {
        Ok(b) => {
            eprintln!(
                "bad inputs: {} records, {} published; follower counted {}/{}, storage {}/{}; unchanged {}, next write {}: {}",
                b.records,
                b.published,
                b.follower_counted,
                b.follower_expected,
                b.storage_counted,
                b.storage_expected,
                b.unchanged,
                b.next_write_ok,
                if b.passed() { "ok" } else { "FAILED" }
            );
            (Some(b), None)
        }
        Err(e) => {
            eprintln!("bad inputs: FAILED: {e:#}");
            (None, Some(format!("{e:#}")))
        }
    };
    Ok(SuiteReport {
        command,
        started,
        wall: wall.elapsed(),
        quick,
        runs,
        load,
        load_error,
        bad_input,
        bad_input_error,
    })
}
