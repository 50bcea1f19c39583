//! `tikaconf-bench`: how tikaconf compares with raw Redis, etcd and NATS on the
//! eight workloads of issue 4 and the HTTP API's (issue 13), measured in one run on one machine.
//!
//! Absolute figures from a shared two-core machine say little; ratios between
//! systems measured minutes apart on the same machine say much more. So the
//! benchmark starts every server itself (on free loopback ports, never touching
//! a server already running), runs tikaconf and its baselines back to back,
//! prints one table per workload with the ratios and the targets, and ends with
//! a count of targets met. `--quick` is the same run, reduced to fit in a
//! minute, for CI to check that the benchmark still works.
//!
//! The binary also has three hidden roles it runs itself as child processes: a
//! storage node, the HTTP API, and a process following many roots (so that their memory and
//! restart times are measured alone).

mod baselines;
mod cpu;
mod deploy;
mod http_api;
mod report;
mod servers;
mod stats;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::report::{Outcome, Section, TIKACONF};
use crate::servers::etcd::EtcdServer;
use crate::servers::nats::NatsServer;
use crate::workloads::{Ctx, Pids};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Benchmarks tikaconf against raw Redis, etcd and NATS"
)]
struct Cli {
    /// A reduced run (under a minute) for CI smoke tests: checks that every
    /// workload still works; its figures are not meant to be compared.
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (1-9), e.g. `--only 1,3`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Install a Prometheus recorder in the benchmark process (its clients
    /// then record every series of `tikaconf::metrics`), rendered as a scrape
    /// would every 15 s: compare with a run without it for what metrics cost.
    #[arg(long)]
    metrics: bool,
    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// (internal) A storage node, until stdin closes (see
    /// `tikaconf_test::storage_node`).
    #[command(hide = true)]
    StorageNode {
        #[arg(long)]
        redis: String,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "redb")]
        store: tikaconf_test::storage_node::StoreKind,
    },
    /// (internal) The HTTP API of `tikaconf serve` over a client of `redis`,
    /// until stdin closes (see `http_api`).
    #[command(hide = true)]
    HttpApi {
        #[arg(long)]
        redis: String,
    },
    /// (internal) Follows every root in a file and reports time and memory.
    #[command(hide = true)]
    FollowMany {
        #[arg(long)]
        redis: String,
        #[arg(long)]
        roots: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The library logs ignored messages and connection trouble at `warn`: a
    // benchmark that silently measured a misbehaving system would mislead.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let scraping = cli.metrics.then(scrape_metrics);
    // The storage node runs as it is deployed: on one thread (see
    // `StorageNode::runtime`); everything else on the default runtime.
    let runtime = if matches!(cli.role, Some(Role::StorageNode { .. })) {
        tikaconf::StorageNode::runtime()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tikaconf-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.role {
        Some(Role::StorageNode { redis, data, store }) => {
            runtime.block_on(tikaconf_test::storage_node::serve(&redis, &data, store))
        }
        Some(Role::HttpApi { redis }) => runtime.block_on(http_api::serve(&redis)),
        Some(Role::FollowMany { redis, roots }) => {
            runtime.block_on(workloads::scale::run_follow_many(&redis, &roots))
        }
        None => {
            let code = runtime.block_on(bench(cli.quick, &cli.only));
            if let Some(scraping) = scraping {
                scraping.stop();
            }
            return code;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tikaconf-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A thread that keeps a Prometheus recorder as a served `/metrics` would:
/// upkeep every 5 s (the exporter's default) and a render every 15 s (a
/// typical scrape interval).
struct Scraping {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Scraping {
    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Installs the recorder before any client is made (they register their
/// series when made) and starts the thread that tends it.
fn scrape_metrics() -> Scraping {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(tikaconf::metrics::SECONDS_BUCKETS)
        .and_then(|b| b.install_recorder())
        .expect("a Prometheus recorder installs in a fresh process");
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let mut ticks = 0u64;
        // Ends when `stop` is dropped.
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stopped.recv_timeout(std::time::Duration::from_secs(5))
        {
            handle.run_upkeep();
            ticks += 1;
            if ticks.is_multiple_of(3) {
                std::hint::black_box(handle.render());
            }
        }
    });
    Scraping { stop, thread }
}

async fn bench(quick: bool, only: &[u8]) -> ExitCode {
    match run(quick, only).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("tikaconf-bench: some tikaconf measurements failed (see the tables)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tikaconf-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected workloads; `Ok(false)` when any tikaconf row failed.
async fn run(quick: bool, only: &[u8]) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    println!("{}", environment(quick));

    let redis = servers::redis::start();
    let etcd = match EtcdServer::start() {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err("not run: etcd not installed".to_owned()),
        Err(e) => Err(format!("not run: etcd did not start: {e:#}")),
    };
    let nats = match NatsServer::start() {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err("not run: nats-server not installed".to_owned()),
        Err(e) => Err(format!("not run: nats-server did not start: {e:#}")),
    };
    let data = deploy::data_dir("tikaconf-bench-store-")?;
    let (storage, _) = deploy::Storage::spawn(&redis.url(), data.path()).await?;
    let ctx = Ctx {
        redis_url: redis.url(),
        pids: Pids {
            redis: redis.pid(),
            storage: storage.pid(),
            etcd: etcd.as_ref().ok().and_then(EtcdServer::pid),
        },
        etcd: etcd
            .as_ref()
            .map(EtcdServer::endpoint)
            .map_err(Clone::clone),
        nats: nats.as_ref().map(NatsServer::url).map_err(Clone::clone),
        quick,
    };

    let mut sections: Vec<Section> = Vec::new();
    let mut healthy = true;
    for number in 1..=9u8 {
        if !only.is_empty() && !only.contains(&number) {
            continue;
        }
        let result = match number {
            1 => workloads::propagation::run(&ctx).await,
            2 => workloads::visibility::run(&ctx).await,
            3 => workloads::durable_write::run(&ctx).await,
            4 => workloads::durable_throughput::run(&ctx).await,
            5 => workloads::chain::run(&ctx).await,
            6 => workloads::cold_load::run(&ctx).await,
            7 => workloads::scale::run(&ctx).await,
            8 => workloads::fanout::run(&ctx).await,
            _ => workloads::http::run(&ctx).await,
        };
        match result {
            Ok(section) => {
                print!("{}", section.render());
                healthy &= section
                    .rows
                    .iter()
                    .filter(|r| r.system == TIKACONF)
                    .all(|r| matches!(r.outcome, Outcome::Ran(_)));
                sections.push(section);
            }
            Err(e) => {
                println!("\n== workload {number} failed: {e:#} ==");
                healthy = false;
            }
        }
    }
    print!("{}", report::summary(&sections));
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    storage.kill().await;
    Ok(healthy)
}

/// The header of a report: what ran where, so a table can be reproduced.
fn environment(quick: bool) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let redis = servers::find_binary(&["redis-server"])
        .map(|b| servers::version_line(&b))
        .unwrap_or_else(|| "redis-server not found".into());
    let etcd = EtcdServer::version().unwrap_or_else(|| "not installed".into());
    let nats = NatsServer::version().unwrap_or_else(|| "not installed".into());
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let args: Vec<String> = std::env::args().collect();
    format!(
        "tikaconf-bench {}{} at {commit}\ndate: {date}\nmachine: {cores} cores, Linux {kernel}\nredis: {redis}\netcd: {etcd}\nnats: {nats}\ncommand: {}",
        env!("CARGO_PKG_VERSION"),
        if quick { " (quick)" } else { "" },
        args.join(" ")
    )
}
