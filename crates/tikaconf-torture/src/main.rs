//! `tikaconf-torture`: runs the torture suite, one schedule, the load test, or (as
//! a hidden subcommand it re-executes itself with) a storage node to be SIGKILLed.
//!
//! Exit code 0 when every invariant held, 1 otherwise; a failure prints the seed
//! and schedule that reproduce it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tikaconf_torture::node::StoreKind;
use tikaconf_torture::{load, schedules, suite};

#[derive(Debug, Parser)]
#[command(
    name = "tikaconf-torture",
    about = "tikaconf's torture suite (issue 3)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every schedule, then the load test; writes the report.
    Suite {
        /// A few seconds per schedule and one short load step (for CI).
        #[arg(long)]
        quick: bool,
        /// Base seed (schedule i runs with seed + i); default: from the clock.
        #[arg(long)]
        seed: Option<u64>,
        /// Where to write the report.
        #[arg(long, default_value = "docs/RELIABILITY.md")]
        out: PathBuf,
        /// Skip the load test.
        #[arg(long)]
        no_load: bool,
    },
    /// One schedule with one seed.
    Run {
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        schedule: String,
        /// Seconds of writing under faults.
        #[arg(long, default_value_t = 30)]
        duration: u64,
    },
    /// The load test alone.
    Load {
        /// Target committed rates (updates/s, all roots together), tried in order.
        #[arg(long, value_delimiter = ',', default_value = "500")]
        rates: Vec<u64>,
        /// Seconds per rate.
        #[arg(long, default_value_t = 60)]
        duration: u64,
    },
    /// Lists the schedules.
    List,
    /// Runs a storage node until killed or until stdin closes (used by the suite).
    #[command(hide = true)]
    StorageNode {
        #[arg(long)]
        redis: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "redb")]
        store: StoreKind,
    },
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    tikaconf_torture::install_panic_counter();
    let cli = Cli::parse();
    // A storage node runs as it is deployed: on one thread (see
    // `StorageNode::runtime`); the suite on the default runtime.
    let runtime = if matches!(cli.command, Cmd::StorageNode { .. }) {
        tikaconf::StorageNode::runtime()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tikaconf-torture: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tikaconf-torture: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when an invariant failed.
async fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Cmd::StorageNode { redis, data, store } => {
            tikaconf_torture::node::serve(&redis, &data, store).await?;
            Ok(true)
        }
        Cmd::List => {
            for s in schedules::all() {
                println!("{:16} {}", s.name, s.about);
            }
            Ok(true)
        }
        Cmd::Run {
            seed,
            schedule,
            duration,
        } => {
            let schedule = schedules::find(&schedule)?;
            eprintln!(
                "running seed={seed} schedule={} for {duration} s",
                schedule.name
            );
            let r = schedules::run(&schedule, seed, Duration::from_secs(duration)).await?;
            suite::print_run(&r);
            if !r.passed() {
                suite::print_failure(&r);
            }
            Ok(r.passed())
        }
        Cmd::Load { rates, duration } => {
            let r = load::run(
                load::LoadShape::default(),
                &rates,
                Duration::from_secs(duration),
            )
            .await?;
            for s in &r.steps {
                println!("{s:?}");
            }
            for (rate, failure) in r.failures() {
                eprintln!("tikaconf-torture: load at {rate}/s FAILED: {failure}");
            }
            Ok(r.highest_held().is_some() && r.failures().next().is_none())
        }
        Cmd::Suite {
            quick,
            seed,
            out,
            no_load,
        } => {
            let seed = seed.unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(1)
            });
            let mut command = format!(
                "cargo run --release -p tikaconf-torture -- suite --seed {seed} --out {}",
                out.display()
            );
            if quick {
                command.push_str(" --quick");
            }
            if no_load {
                command.push_str(" --no-load");
            }
            let report = suite::run(seed, quick, command, !no_load).await?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&out, report.markdown())
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("report written to {}", out.display());
            if report.failed() {
                eprintln!(
                    "tikaconf-torture: the suite FAILED; failures above (seed=... schedule=...)"
                );
                for r in report.runs.iter().filter(|r| !r.passed()) {
                    suite::print_failure(r);
                }
            }
            Ok(!report.failed())
        }
    }
}
