//! `tikaconf completions SHELL`: a completion script for the shell, generated
//! from the same clap definition as `--help`, so it cannot drift from the
//! binary's verbs and flags.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::failure::Failure;

/// Writes the script for `shell` to stdout.
pub fn run(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tikaconf", &mut script);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::other(e).context("cannot write the completion script"))
}
