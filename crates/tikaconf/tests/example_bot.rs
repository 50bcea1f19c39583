//! The example bot (`examples/bot.rs`) run as a process of its own against a
//! real `redis-server` and a storage node, driven through its stdin and read
//! through its stdout (issue 12): it follows two channels, answers from its
//! live views, reports a change of `/commands` and not one of `/timers`, keeps
//! answering while Redis is stopped, reconnects when Redis is back, and, when
//! it is restarted while Redis is down, starts and answers from its cache.
//!
//! Nothing here asserts a duration: every wait is for a line or a state, with
//! a generous deadline that only a failing run reaches, and every absence is
//! checked after something later shows that the bot got past that point.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{Value, json};
use tikaconf::{Client, Config, Hash, RootConfig, StorageNode};
use tikaconf_test::wait_until;

/// How long a wait for something that must happen may take: far more than a
/// reconnect or a follower's periodic re-sync (30 s by default, which the bot
/// keeps, being an example of a real deployment) ever takes.
const PATIENCE: Duration = Duration::from_secs(90);

const A: &str = "#example_a";
const B: &str = "#example_b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_bot_follows_two_channels_and_rides_out_redis_restarts() {
    let bot_exe = example_binary("bot");
    let mut redis = RedisServer::start();
    let store = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let node = storage(&redis, store.path()).await;

    // The channels' configurations, as an operator's tool would write them.
    let writer = client(&redis).await;
    let a = writer.follow(RootConfig::twitch(A).unwrap()).await.unwrap();
    let b = writer.follow(RootConfig::twitch(B).unwrap()).await.unwrap();
    set(
        &a,
        "/commands",
        json!({"!hi": "hello from a", "!lurk": "enjoy"}),
    )
    .await;
    set(&b, "/commands", json!({"!hi": "hello from b"})).await;
    set(&b, "/timers", json!({"ad": 600})).await;

    // The bot starts with Redis up: both channels from storage.
    let mut bot = Bot::start("bot1", &bot_exe, &redis.url(), cache.path());
    bot.wait_for_line("ready").await;
    bot.wait_for_line("connection: Connected").await;
    bot.assert_has(&format!("follow {A}: 2 commands (from storage)"));
    bot.assert_has(&format!("follow {B}: 1 commands (from storage)"));

    // Chat: replies come from each channel's own commands.
    assert_eq!(
        bot.ask(&format!("{A} !hi")).await,
        format!("reply {A} !hi hello from a")
    );
    assert_eq!(
        bot.ask("#EXAMPLE_B !hi there").await,
        format!("reply {B} !hi hello from b"),
        "a channel is named as Twitch does, whatever its case"
    );
    assert_eq!(
        bot.ask(&format!("{B} !lurk")).await,
        format!("unknown {B} !lurk")
    );
    for bad in [
        "",
        "hello",
        "#example_c !hi",
        "#example_a hi",
        "#bad-name! !hi",
    ] {
        let answer = bot.ask(bad).await;
        assert!(answer.starts_with("ignored: "), "{bad:?} gave {answer:?}");
    }

    // A change of A's commands: A's line, and the reply follows.
    set(&a, "/commands/!new", json!("brand new")).await;
    bot.wait_for_line(&format!("commands {A} changed: 3 commands"))
        .await;
    assert_eq!(
        bot.ask(&format!("{A} !new")).await,
        format!("reply {A} !new brand new")
    );

    // A change of B's timers reaches the bot (its cache holds that head), and
    // then one of B's commands does: only the latter is reported, so the
    // commands lines are exactly A's and this one.
    let timers = set(&b, "/timers/ad", json!(900)).await;
    let cached = wait_until(PATIENCE, || {
        cached_head(cache.path(), b.root()) == Some(timers)
    })
    .await;
    assert!(cached, "the bot never reached the head of the timer change");
    set(&b, "/commands/!bye", json!("bye from b")).await;
    bot.wait_for_line(&format!("commands {B} changed: 2 commands"))
        .await;
    assert_eq!(
        bot.lines_starting("commands "),
        [
            format!("commands {A} changed: 3 commands"),
            format!("commands {B} changed: 2 commands"),
        ],
        "the timer change woke the commands view"
    );

    // Redis stops (the storage node keeps running, as it would, and
    // reconnects by itself): the bot says so and keeps answering.
    redis.stop();
    let down = bot.wait_for_line("connection: Disconnected").await;
    assert_eq!(
        bot.ask(&format!("{B} !bye")).await,
        format!("reply {B} !bye bye from b")
    );
    assert_eq!(
        bot.ask(&format!("{A} !new")).await,
        format!("reply {A} !new brand new")
    );

    // Redis comes back on the same port: the bot reconnects, and a change
    // made after the restart reaches it.
    redis.restart();
    let up = bot.wait_for_after(down, "connection: Connected").await;
    back_up(&node, &writer).await;
    let hi_again = set(&a, "/commands/!hi", json!("hello again")).await;
    bot.wait_for_after(down, &format!("commands {A} changed: 3 commands"))
        .await;
    assert_eq!(
        bot.ask(&format!("{A} !hi")).await,
        format!("reply {A} !hi hello again")
    );

    // Redis stops again and the bot is restarted meanwhile, on the same
    // cache: it starts at once and answers with what it last knew.
    let latest = [(a.root(), hi_again), (b.root(), b.head())];
    let cached = wait_until(PATIENCE, || {
        latest
            .iter()
            .all(|&(root, head)| cached_head(cache.path(), root) == Some(head))
    })
    .await;
    assert!(cached, "the bot's cache never caught up with both heads");
    redis.stop();
    bot.wait_for_after(up, "connection: Disconnected").await;
    drop(bot);
    let mut bot = Bot::start("bot2", &bot_exe, &redis.url(), cache.path());
    bot.wait_for_line("ready").await;
    bot.assert_has(&format!("follow {A}: 3 commands (from cache)"));
    bot.assert_has(&format!("follow {B}: 2 commands (from cache)"));
    assert_eq!(
        bot.ask(&format!("{A} !hi")).await,
        format!("reply {A} !hi hello again")
    );
    assert_eq!(
        bot.ask(&format!("{B} !bye")).await,
        format!("reply {B} !bye bye from b")
    );
    assert!(
        !bot.lines_starting("connection: ")
            .iter()
            .any(|l| l == "connection: Connected"),
        "Redis is down: {:?}",
        bot.lines()
    );

    // Redis comes back: the restarted bot connects for the first time, and
    // a change made now reaches it.
    redis.restart();
    bot.wait_for_line("connection: Connected").await;
    back_up(&node, &writer).await;
    set(&b, "/commands/!bye", json!("bye again")).await;
    bot.wait_for_line(&format!("commands {B} changed: 2 commands"))
        .await;
    assert_eq!(
        bot.ask(&format!("{B} !bye")).await,
        format!("reply {B} !bye bye again")
    );

    // The end of stdin ends the bot cleanly.
    let status = bot.close().await;
    assert!(status.success(), "the bot exited with {status}");
}

/// Sets the value at `pointer` (its parent must exist) and returns the head
/// once storage has stored it. Retried while a restart is still settling
/// (the writer not yet re-subscribed, a write whose outcome was lost with
/// the connection): setting a value twice is the same value.
async fn set(config: &Config, pointer: &str, value: Value) -> Hash {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ops = json!([{"op": "add", "path": pointer, "value": value}]);
        match config.submit(ops).await {
            Ok(head) => return head,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("writing {pointer}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writing {pointer} never succeeded: {e}"),
        }
    }
}

/// Waits until the storage node is listening again and the writer is
/// connected, after a Redis restart.
async fn back_up(node: &StorageNode, writer: &Client) {
    let up = wait_until(PATIENCE, || {
        node.status().listening && writer.connection_state().is_connected()
    })
    .await;
    assert!(
        up,
        "storage or the writer never came back after the restart"
    );
}

/// The example bot as a child process: its stdout lines collected as they
/// come, its stdin for chat lines. Killed when dropped, so that a failing
/// test leaves no process behind.
struct Bot {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    asked: usize,
}

impl Bot {
    fn start(name: &'static str, exe: &Path, redis: &str, cache: &Path) -> Bot {
        let mut child = Command::new(exe)
            .args([
                "--redis",
                redis,
                "--channel",
                A,
                "--channel",
                B,
                "--cache-dir",
            ])
            .arg(cache)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Shown with the test's output when it fails.
                eprintln!("{name} stdout: {line}");
                collected.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{name} stderr: {line}");
            }
        });
        Bot {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            asked: 0,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn lines_starting(&self, prefix: &str) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn assert_has(&self, line: &str) {
        assert!(
            self.lines().iter().any(|l| l == line),
            "{} never printed {line:?}: {:?}",
            self.name,
            self.lines()
        );
    }

    /// Waits for the first line from index `from` on that `wanted` accepts;
    /// returns its index.
    async fn wait_from(&self, from: usize, what: &str, wanted: impl Fn(&str) -> bool) -> usize {
        let mut found = None;
        let seen = wait_until(PATIENCE, || {
            let lines = self.lines.lock().unwrap();
            found = lines
                .iter()
                .skip(from)
                .position(|l| wanted(l))
                .map(|i| i + from);
            found.is_some()
        })
        .await;
        match found {
            Some(at) if seen => at,
            _ => panic!("{} never printed {what}: {:?}", self.name, self.lines()),
        }
    }

    async fn wait_for_line(&self, line: &str) -> usize {
        self.wait_from(0, &format!("{line:?}"), |l| l == line).await
    }

    /// Waits for `line` after the line at index `after`.
    async fn wait_for_after(&self, after: usize, line: &str) -> usize {
        self.wait_from(after + 1, &format!("{line:?} after line {after}"), |l| {
            l == line
        })
        .await
    }

    /// Sends one chat line and returns the bot's answer to it: each stdin
    /// line gets exactly one `reply`, `unknown` or `ignored` line, in order.
    async fn ask(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap();
        self.asked += 1;
        let nth = self.asked;
        let is_answer = |l: &str| {
            ["reply ", "unknown ", "ignored: "]
                .iter()
                .any(|p| l.starts_with(p))
        };
        let mut answer = None;
        let answered = wait_until(PATIENCE, || {
            let lines = self.lines.lock().unwrap();
            answer = lines.iter().filter(|l| is_answer(l)).nth(nth - 1).cloned();
            answer.is_some()
        })
        .await;
        match answer {
            Some(answer) if answered => answer,
            _ => panic!("{} never answered {line:?}: {:?}", self.name, self.lines()),
        }
    }

    /// Closes stdin (the end of the chat) and waits for the bot to exit.
    async fn close(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let mut status = None;
        let exited = wait_until(PATIENCE, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        })
        .await;
        match status {
            Some(status) if exited => status,
            _ => panic!("{} did not exit at the end of stdin", self.name),
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        // Killing an exited child fails harmlessly; wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example's executable, `target/<profile>/examples/<name>`.
///
/// Cargo gives integration tests the path of the package's binaries
/// (`CARGO_BIN_EXE_<name>`), not of its examples. It does build the examples
/// on `cargo test` (unless the run is narrowed, e.g. `--test example_bot`),
/// beside this test's own directory and with the same profile and features,
/// so that binary is used when it is there and not older than any source
/// file its dep-info lists (the check cargo itself makes). Otherwise it is
/// built with `cargo build --example`, and taken from the path cargo reports:
/// that build may differ from this test's in features (a `--workspace` run
/// unifies them across members), so it is the fallback, not the rule, since
/// switching would rebuild dependencies on every run.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/example_bot-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let built = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if is_fresh(&built) {
        return built;
    }
    build_example(name, profile_dir)
}

/// Whether `binary` exists and is not older than any file its dep-info
/// (`<binary>.d`, `binary: source source ...`) lists.
fn is_fresh(binary: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary) else {
        return false;
    };
    let Ok(dep_info) = std::fs::read_to_string(binary.with_extension("d")) else {
        return false;
    };
    let Some((_, sources)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return false;
    };
    // Spaces inside a path are escaped as `\ `.
    let sources = sources.replace("\\ ", "\u{0}");
    sources
        .split_whitespace()
        .map(|s| PathBuf::from(s.replace('\u{0}', " ")))
        .all(|source| modified(&source).is_some_and(|m: SystemTime| m <= built))
}

/// Builds the example with the cargo running this test, in the profile of
/// `profile_dir` (`debug` is the dev profile), and returns the executable
/// cargo reports.
fn build_example(name: &str, profile_dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--package",
            env!("CARGO_PKG_NAME"),
            "--example",
            name,
        ])
        .arg("--message-format=json-render-diagnostics");
    match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    eprintln!("building the example: {command:?}");
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo could not build the example:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the example's executable")
}
