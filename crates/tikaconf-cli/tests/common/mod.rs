//! What the binary's integration tests share: running `tikaconf` with a clean
//! environment, reading a child's stdout with a deadline, and killing children
//! when a test ends (pass or fail).

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tikaconf");
/// How long a test waits for a child's line before failing.
pub const LINE_WAIT: Duration = Duration::from_secs(10);

/// The binary with a clean environment: no deployment settings leak in from the
/// machine running the tests.
pub fn tikaconf(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TIKACONF_REDIS")
        .env_remove("TIKACONF_NAMESPACE")
        .env_remove("TIKACONF_TOKEN")
        .env_remove("TIKACONF_SERVER")
        .env_remove("VISUAL")
        .env_remove("EDITOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

pub fn run(args: &[&str]) -> Output {
    tikaconf(args).output().expect("run tikaconf")
}

pub fn run_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = tikaconf(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tikaconf");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait for tikaconf")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing the command's stderr when it differs.
#[track_caller]
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts success and returns stdout's only line.
#[track_caller]
pub fn ok_line(out: &Output) -> String {
    assert_code(out, 0);
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "one line expected: {text:?}");
    text.trim_end().to_owned()
}

/// A child's stdout lines, read on a thread so that a test can wait with a deadline.
pub struct Lines(pub mpsc::Receiver<String>);

impl Lines {
    pub fn new(stdout: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    #[track_caller]
    pub fn next(&self, what: &str) -> String {
        self.0
            .recv_timeout(LINE_WAIT)
            .unwrap_or_else(|e| panic!("no {what} line within {LINE_WAIT:?}: {e}"))
    }
}

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `tikaconf ARGS` and waits for its first stdout line.
pub fn spawn(args: &[&str]) -> (Guard, Lines, String) {
    let mut child = tikaconf(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env(
            "RUST_LOG",
            std::env::var("TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .spawn()
        .expect("spawn tikaconf");
    let lines = Lines::new(child.stdout.take().expect("piped stdout"));
    let guard = Guard(child);
    let first = lines.next(&format!("first {args:?}"));
    (guard, lines, first)
}

/// Starts `tikaconf storage` and returns once it says it is listening.
pub fn start_storage(url: &str, data: &Path, extra: &[&str]) -> Guard {
    let data = data.to_str().expect("UTF-8 temporary path");
    let args = [&["storage", "--redis", url, "--data", data], extra].concat();
    let (guard, _lines, first) = spawn(&args);
    assert!(first.contains("listening on"), "startup line: {first}");
    guard
}

/// Starts `tikaconf serve ARGS` on a free loopback port; returns the guard,
/// the address and the line it printed.
pub fn start_serve(args: &[&str]) -> (Guard, String, String) {
    let addr = format!("127.0.0.1:{}", tikaconf_test::free_port());
    let args = [&["serve", "--listen", addr.as_str()], args].concat();
    let (guard, _lines, first) = spawn(&args);
    assert!(
        first.contains(&format!("http://{addr}")),
        "startup line: {first}"
    );
    (guard, addr, first)
}
