//! A chat bot that follows the configuration of two (or more) Twitch channels:
//! the shape of a real bot built on tikaconf, with chat simulated on stdin.
//!
//! What it shows:
//!
//! - **Starting with or without Redis.** The client connects with
//!   [`ClientOptions::retry_on_initial_connect`] and a
//!   [`ClientOptions::cache_dir`]: if Redis (or storage) is down when the bot
//!   starts, it starts anyway on the last configuration this machine cached,
//!   and catches up by itself when they come back.
//! - **The hot path.** Each channel's `/commands` is a [`Live`] view; answering
//!   a chat message is one [`Live::load`] (lock-free, no JSON parsing) and a
//!   map lookup, whatever happens on the network meanwhile.
//! - **Reacting to one part of the document.** A task per channel waits on
//!   [`Live::changed`], which wakes only when `/commands` itself differs: a
//!   change of `/timers` (or of anything else) does not wake it.
//! - **Connection health.** [`Client::connection_state`] never waits; the bot
//!   samples it every 100 ms and prints each change, as a readiness probe
//!   would (a loss shorter than that may go unprinted; the bot does not care).
//!
//! # Running it
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run -p tikaconf-cli -- storage --redis redis://127.0.0.1:6379 --data ./tikaconf-data &
//! cargo run -p tikaconf-cli -- set twitch:#a /commands '{"!hi": "hello from #a"}'
//! cargo run -p tikaconf --example bot -- --redis redis://127.0.0.1:6379 \
//!     --channel '#a' --channel '#b' --cache-dir ./bot-cache
//! ```
//!
//! Then type chat lines such as `#a !hi`, and change the configuration from
//! another terminal (`tikaconf set twitch:#a /commands/!bye '"see you"'`, or
//! `/timers/ad 600` to see that the bot does not react). Stop Redis: the bot
//! keeps answering; restart the bot while Redis is down: it starts from its
//! cache. `--redis` defaults to `$TIKACONF_REDIS`, then
//! `redis://127.0.0.1:6379`; `--cache-dir` to `tikaconf-example-bot` in the
//! system's temporary directory. Logs go to stderr (`RUST_LOG`, default
//! `warn`).
//!
//! # Output
//!
//! One event per line on stdout, so that a script (or this crate's
//! `tests/example_bot.rs`) can follow it:
//!
//! ```text
//! connection: Connecting|Connected|Disconnected   the client's state, on each change
//! follow #a: 2 commands (from storage|from cache) a channel is followed
//! ready                                           every channel is followed; stdin is read
//! reply #a !hi hello from #a                      the answer to a chat line `#a !hi`
//! unknown #a !nope                                a command the channel does not have
//! ignored: <why>                                  a stdin line that is not `#channel !command`
//! commands #a changed: 3 commands                 #a's /commands changed (and nothing else did)
//! ```
//!
//! Each stdin line gets exactly one `reply`, `unknown` or `ignored` line. The
//! bot exits 0 at the end of stdin or on Ctrl-C, 2 on bad arguments, 1 when
//! it cannot start.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tikaconf::{Client, ClientOptions, Config, ConnectionState, Error, Live, RootConfig};
use tokio::sync::mpsc;

const USAGE: &str =
    "usage: bot [--redis URL] --channel '#name' [--channel '#name' ...] [--cache-dir DIR]";

/// A channel's commands: `/commands` of its configuration, `{"!hi": "hello"}`.
///
/// Read from an `Option` so that a channel with no `/commands` yet (a new
/// channel, whose document is `{}`) has no commands rather than a
/// configuration that does not deserialize.
#[derive(Debug, Default, Deserialize)]
#[serde(from = "Option<BTreeMap<String, String>>")]
struct Commands(BTreeMap<String, String>);

impl From<Option<BTreeMap<String, String>>> for Commands {
    fn from(commands: Option<BTreeMap<String, String>>) -> Self {
        Commands(commands.unwrap_or_default())
    }
}

/// The command line, parsed by hand: three flags do not need a parser crate.
#[derive(Debug)]
struct Args {
    redis: String,
    channels: Vec<String>,
    cache_dir: PathBuf,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut redis = None;
        let mut channels = Vec::new();
        let mut cache_dir = None;
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--redis" => redis = Some(value()?),
                "--channel" => {
                    let name = channel_name(&value()?)?;
                    if !channels.contains(&name) {
                        channels.push(name);
                    }
                }
                "--cache-dir" => cache_dir = Some(PathBuf::from(value()?)),
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if channels.is_empty() {
            return Err("at least one --channel is needed".into());
        }
        Ok(Args {
            redis: redis
                .or_else(|| std::env::var("TIKACONF_REDIS").ok())
                .unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            channels,
            cache_dir: cache_dir
                .unwrap_or_else(|| std::env::temp_dir().join("tikaconf-example-bot")),
        })
    }
}

/// The channel's name as Twitch spells it, `#` and lower case, which is also
/// how tikaconf names its root ([`RootConfig::twitch`]): `A`, `#A` and `#a`
/// are one channel.
fn channel_name(given: &str) -> Result<String, String> {
    RootConfig::twitch(given).map_err(|e| format!("bad channel {given:?}: {e}"))?;
    Ok(format!(
        "#{}",
        given
            .strip_prefix('#')
            .unwrap_or(given)
            .to_ascii_lowercase()
    ))
}

/// One followed channel: the [`Config`] keeps the root followed (a [`Live`]
/// alone does not), the [`Live`] is what chat messages read.
struct Channel {
    _config: Config,
    commands: Live<Commands>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        // `--help`.
        Err(why) if why.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(why) => {
            eprintln!("bot: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("bot: {why}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let options = ClientOptions {
        cache_dir: Some(args.cache_dir.clone()),
        // Start even if Redis is down: the cache has what we need.
        retry_on_initial_connect: true,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&args.redis, options)
        .await
        .map_err(|e| format!("cannot use Redis at {}: {e}", args.redis))?;
    tokio::spawn(report_connection(client.clone()));

    let mut channels = HashMap::new();
    for name in &args.channels {
        let config = follow(&client, name).await?;
        let commands = config
            .at::<Commands>("/commands")
            .map_err(|e| format!("{name}: {e}"))?;
        let source = if config.from_cache() {
            "from cache"
        } else {
            "from storage"
        };
        println!(
            "follow {name}: {} commands ({source})",
            commands.load().0.len()
        );
        // The task has a clone of its own: each clone tracks what it has seen.
        tokio::spawn(report_changes(name.clone(), commands.clone()));
        channels.insert(
            name.clone(),
            Channel {
                _config: config,
                commands,
            },
        );
    }
    println!("ready");

    let mut chat = chat_lines();
    loop {
        let line = tokio::select! {
            line = chat.recv() => line,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match line {
            Some(Ok(line)) => println!("{}", answer(&channels, &line)),
            None => return Ok(()),
            Some(Err(e)) => return Err(format!("reading stdin: {e}")),
        }
    }
}

/// The simulated chat: stdin's lines, read on a thread of their own (stdin
/// is blocking; `tokio::io::stdin` does the same, behind a feature this crate
/// does not enable). The channel closes at the end of stdin.
fn chat_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Follows a channel's configuration, waiting as long as it takes: without
/// a cached copy, the first follow needs storage to answer, and a bot that
/// starts before Redis or storage should wait for them rather than exit.
async fn follow(client: &Client, name: &str) -> Result<Config, String> {
    let root = RootConfig::twitch(name).map_err(|e| format!("{name}: {e}"))?;
    loop {
        match client.follow(root.clone()).await {
            Ok(config) => return Ok(config),
            Err(e @ Error::LoadTimeout(_)) => {
                eprintln!("bot: {name}: {e}; still waiting for storage");
            }
            Err(e) => return Err(format!("cannot follow {name}: {e}")),
        }
    }
}

/// The reply to one chat line, `#channel !command ...`: the hot path. One
/// lock-free load of the channel's commands and a lookup; nothing here waits
/// on the network or parses JSON.
fn answer(channels: &HashMap<String, Channel>, line: &str) -> String {
    let mut words = line.split_whitespace();
    let (Some(channel), Some(command)) = (words.next(), words.next()) else {
        return format!("ignored: expected \"#channel !command\", got {line:?}");
    };
    let Some((name, followed)) = channel_name(channel)
        .ok()
        .and_then(|name| channels.get_key_value(&name))
    else {
        return format!("ignored: not following {channel:?}");
    };
    if !command.starts_with('!') {
        return format!("ignored: {command:?} is not a command (commands start with '!')");
    }
    let commands: Arc<Commands> = followed.commands.load();
    match commands.0.get(command) {
        Some(reply) => format!("reply {name} {command} {reply}"),
        None => format!("unknown {name} {command}"),
    }
}

/// Prints a line each time a channel's `/commands` changes. A change of any
/// other part of the document does not wake [`Live::changed`] at all.
async fn report_changes(channel: String, mut commands: Live<Commands>) {
    // Ends when the channel is no longer followed (the bot is exiting).
    while commands.changed().await.is_ok() {
        let n = commands.load().0.len();
        println!("commands {channel} changed: {n} commands");
    }
}

/// Prints the client's connection state whenever it differs from the last
/// one printed, sampling it every 100 ms: reading it never waits (a watch
/// channel's value), so sampling costs nothing worth counting.
async fn report_connection(client: Client) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = "";
    loop {
        tick.tick().await;
        let now = match client.connection_state() {
            ConnectionState::Connecting => "Connecting",
            ConnectionState::Connected => "Connected",
            ConnectionState::Disconnected { .. } => "Disconnected",
            // A state added by a later tikaconf.
            _ => "Unknown",
        };
        if now != last {
            println!("connection: {now}");
            last = now;
        }
    }
}
