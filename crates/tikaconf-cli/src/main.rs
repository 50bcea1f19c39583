//! The `tikaconf` command: root hashes, a storage node, the HTTP API server, and
//! get/set/patch/rm/watch/ls/edit/import/export/log/show/diff/rollback/verify on a running deployment, over
//! its Redis or over the HTTP API (`--server`; see `remote`).
//!
//! Operators and scripts need to touch a fleet's configuration without writing a
//! bot: read it, change one value, apply a patch file, watch changes go by, and
//! run the storage node that makes writes durable. Every failure ends with a
//! message on stderr and a distinct exit code, so that scripts can react without
//! parsing messages:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | anything else (an internal or storage failure) |
//! | 2 | bad input: usage, bad JSON, bad JSON Pointer, a patch that does not apply |
//! | 3 | unknown root: storage does not know this root hash |
//! | 4 | conflict: another write was stored first (the message names the winner), or `--if-head` names a head that is no longer current (the message names the current one) |
//! | 5 | timeout: no answer in time; a write may or may not be stored |
//! | 6 | cannot connect (to Redis or to `--server`), or Redis failed |
//! | 7 | refused: Redis denied the write (the user's ACL may not publish on `updates:*`), or the server refused the token (401/403) |
//! | 8 | not found: `get`'s JSON Pointer does not resolve in the document, or a version (`show`, `diff`, `rollback`) is unknown or no longer kept |
//! | 9 | broken: `verify` found a broken link in the stored chain |
//!
//! This file only wires the parsed command line to `commands`; the mapping from
//! library errors to codes lives in `failure`.

mod cli;
mod commands;
mod credentials;
mod exporter;
mod failure;
mod formats;
mod input;
mod output;
mod pointer;
mod remote;
mod session;
mod shutdown;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(&cli.command);
    // `serve` runs on its own bus unless a Redis was named (on the command
    // line or in TIKACONF_REDIS): the global option's default does not count.
    let redis_given = redis_named(&matches);
    match run(&cli, redis_given) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("tikaconf: {:#}", failure.error);
            failure.exit_code()
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG`. The storage node logs at `info` by
/// default; the one-shot commands only at `warn`, so that stderr stays quiet
/// unless something is wrong.
fn init_logging(command: &Command) {
    let default = match command {
        Command::Storage(_) | Command::Serve(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Whether `--redis` (a global option) was given, or set in the environment,
/// at any level of the command line.
fn redis_named(matches: &clap::ArgMatches) -> bool {
    let named = |m: &clap::ArgMatches| {
        matches!(
            m.value_source("redis"),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    named(matches) || matches.subcommand().is_some_and(|(_, sub)| named(sub))
}

fn run(cli: &Cli, redis_given: bool) -> Result<(), Failure> {
    // The storage node on one thread, where it is fastest (see
    // `StorageNode::runtime`); the other commands on the default runtime.
    let runtime = match cli.command {
        Command::Storage(_) => tikaconf::StorageNode::runtime(),
        _ => tokio::runtime::Runtime::new(),
    }
    .map_err(|e| Failure::other(e).context("cannot start the async runtime"))?;
    runtime.block_on(dispatch(cli, redis_given))
}

async fn dispatch(cli: &Cli, redis_given: bool) -> Result<(), Failure> {
    let global = &cli.global;
    match &cli.command {
        Command::Root(args) => commands::root::run(global, args),
        Command::Vectors => commands::vectors::run(),
        Command::Keygen => commands::keygen::run(global),
        Command::Storage(args) => commands::storage::run(global, args).await,
        Command::Serve(args) => commands::serve::run(global, args, redis_given).await,
        Command::Get(args) => commands::get::run(global, args).await,
        Command::Set {
            root,
            pointer,
            value,
            precondition,
        } => commands::write::set(global, root, pointer, value, precondition.if_head).await,
        Command::Patch {
            root,
            file,
            precondition,
        } => commands::write::patch(global, root, file, precondition.if_head).await,
        Command::Rm {
            root,
            pointer,
            precondition,
        } => commands::write::rm(global, root, pointer, precondition.if_head).await,
        Command::Completions { shell } => commands::completions::run(*shell),
        Command::Watch(args) => commands::watch::run(global, args).await,
        Command::Ls(args) => commands::ls::run(global, args).await,
        Command::Edit { root } => commands::edit::run(global, root).await,
        Command::Import {
            root,
            file,
            format,
            precondition,
        } => commands::import::run(global, root, file, *format, precondition.if_head).await,
        Command::Export { root, format } => commands::export::run(global, root, *format).await,
        Command::Log(args) => commands::history::log(global, args).await,
        Command::Show { root, version } => commands::history::show(global, root, *version).await,
        Command::Diff { root, from, to } => commands::history::diff(global, root, *from, *to).await,
        Command::Rollback { root, version } => {
            commands::history::rollback(global, root, *version).await
        }
        Command::Verify { root } => commands::verify::run(global, root).await,
    }
}
