//! The command line as clap sees it, kept apart from what the commands do so that
//! `--help` (including the exit codes scripts rely on) reads as one document.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tikaconf::Hash;
use tikaconf::store::Retention;

/// Shown at the end of `tikaconf --help`; the same table as in `main.rs`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  anything else (an internal or storage failure)
  2  bad input: usage, bad JSON, bad JSON Pointer, a patch that does not apply
  3  unknown root: storage does not know this root hash
  4  conflict: another write was stored first (the winner is printed), or
     --if-head names a head that is no longer current (the current one is printed)
  5  timeout: no answer in time (or the server's storage did not answer);
     a write may or may not be stored
  6  cannot connect (to Redis or to --server), or Redis failed
  7  refused: Redis denied the write (the user's ACL may not publish on
     updates:*), or the server refused the token (401/403)
  8  not found: `get`'s POINTER does not resolve in the document, or a
     version (show, diff, rollback) is unknown or no longer kept
  9  broken: `verify` found a broken link in the stored chain

ROOT is a root hash (64 lowercase hex digits), `twitch:#channel`, or connection
info as a JSON object such as '{\"platform\":\"discord\",\"guild\":\"42\"}'.
Following a root by its connection info registers it with storage if it is new
(over --server too: the CLI registers it with POST /v1/roots).

Transports: with --server URL (or TIKACONF_SERVER) get, set, patch, rm, watch,
ls, edit, import, export, log, show, diff, rollback and verify go to the HTTP
API of `tikaconf serve`; without it, to the fleet's Redis (ls, log, show, diff,
rollback and verify need --server). --namespace, --trust-*-key and
--signing-key are Redis-only: over --server the server's own settings apply.

Output: people's output when stdout is a terminal; otherwise the output each
verb's help describes; --json gives one JSON value per command (one per line
for watch and log):
  get                     {\"head\",\"height\",\"root\",\"value\"}
  set, rm, patch, edit,   {\"changed\":BOOL,\"head\",\"height\",\"root\"}
  import, rollback
  ls                      [{\"connection\",\"head\",\"height\",\"root\"}, ...]
  export                  {\"document\",\"head\",\"height\",\"root\"}
  log                     {\"author\",\"hash\",\"height\",\"message\",\"meta\",
                          \"ops\",\"parent\",\"rollback_of\",\"time\"} per line
  show                    {\"document\",\"hash\",\"height\",\"patch\"}
  diff                    {\"from\",\"ops\",\"to\"}
  verify                  {\"anchored\",\"broken\",\"checked\",\"gaps\",\"head\",
                          \"height\",\"ok\",\"oldest\",\"root\",...} (API.md)
  watch                   {\"dropped\",\"head\",\"height\",\"ops\"[,\"document\"]} per line
  root                    the root configuration
  keygen                  {\"public\",\"secret\"}";

/// tikaconf: one JSON configuration cached by every node of a bot fleet, changed
/// by hash-chained RFC 6902 patches over Redis Pub/Sub (or over the HTTP API
/// of `tikaconf serve`, with --server).
#[derive(Debug, Parser)]
#[command(name = "tikaconf", version, after_long_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command that talks to a deployment shares.
#[derive(Debug, Args)]
pub struct Global {
    /// The HTTP API of `tikaconf serve` to talk to, such as
    /// http://127.0.0.1:7070, instead of Redis.
    #[arg(long, global = true, env = "TIKACONF_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The API's bearer token: sent as `Authorization: Bearer TOKEN` with
    /// --server; for `serve`, the token every request must present (compared
    /// in constant time), required to listen on a non-loopback address.
    #[arg(
        long,
        global = true,
        env = "TIKACONF_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Machine output: one JSON value per command, one per line for `watch`
    /// (the shapes are listed at the end of `tikaconf --help`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Redis URL (`redis://` or `rediss://`, `user:password@` as needed).
    #[arg(
        long,
        global = true,
        env = "TIKACONF_REDIS",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis: String,
    /// Channel namespace, for deployments sharing one Redis.
    #[arg(long, global = true, env = "TIKACONF_NAMESPACE")]
    pub namespace: Option<String>,
    /// Seconds to wait for storage to load a configuration, and for a write's outcome.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
    /// Accept only messages signed by these Ed25519 public keys (64 hex digits each,
    /// comma-separated); every node of a deployment needs the same set.
    #[arg(
        long = "trust-key",
        global = true,
        env = "TIKACONF_TRUST_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub trust_keys: Vec<String>,
    /// Like --trust-key, for writers' keys only: trusted to sign patches, never
    /// snapshots or notices.
    #[arg(
        long = "trust-writer-key",
        global = true,
        env = "TIKACONF_TRUST_WRITER_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub trust_writer_keys: Vec<String>,
    /// Like --trust-key, for storage nodes' keys only: trusted to sign snapshots and
    /// notices, never patches.
    #[arg(
        long = "trust-storage-key",
        global = true,
        env = "TIKACONF_TRUST_STORAGE_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub trust_storage_keys: Vec<String>,
    /// File holding the Ed25519 secret (64 hex digits) to sign writes, or a storage
    /// node's snapshots and notices, with (see `tikaconf keygen`).
    #[arg(long, global = true, env = "TIKACONF_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// PEM file of the CA that signed a `rediss://` or `https://` --server's
    /// certificate, when it is not one of the system's roots.
    #[arg(long, global = true, env = "TIKACONF_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// JSON Schema file every write is checked against before it is published:
    /// a write whose resulting document does not match exits with code 2 and
    /// publishes nothing. (A writer's check: nodes do not enforce it.)
    #[arg(long, global = true, env = "TIKACONF_SCHEMA", value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Who makes the writes, as the patches' `meta.author` records it
    /// [default: $USER@hostname]. For `serve`: the author of API writes
    /// whose request names none [default there: api].
    #[arg(long, global = true, env = "TIKACONF_AUTHOR", value_name = "NAME")]
    pub author: Option<String>,
    /// Why: the `meta.message` of the write this command makes (set, rm,
    /// patch, edit, import, rollback), shown by `tikaconf log`.
    #[arg(short = 'm', long, global = true, value_name = "TEXT")]
    pub message: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the root hash of a connection (computed locally, no Redis needed).
    ///
    /// With --json, the root configuration (canonical JSON) instead.
    Root(RootArgs),
    /// Run a storage node until Ctrl-C or SIGTERM.
    Storage(StorageArgs),
    /// Serve the HTTP API (and, later, the web console) until Ctrl-C or SIGTERM.
    ///
    /// Without --redis (or TIKACONF_REDIS) everything runs in this one process:
    /// an in-process bus, a storage node over the redb store in --data, and the
    /// API; nothing else is needed. With --redis it joins that fleet: its
    /// storage node shares the Redis store (`--store redis`, as `tikaconf
    /// storage --store redis` does) so that it works beside other storage
    /// nodes, or it runs none with --no-storage (the fleet's storage answers).
    /// Prints the URL once it serves.
    Serve(ServeArgs),
    /// Print the current document of ROOT, or the part of it at POINTER.
    ///
    /// A POINTER that does not resolve exits with code 8 and prints nothing on
    /// stdout, so that a script can tell "absent" (8) from "null" (0, `null`)
    /// and from a mistake (2) or an outage (5, 6) without parsing messages.
    Get(GetArgs),
    /// Set the value at a JSON Pointer (one RFC 6902 `add` op); prints the new head.
    Set {
        /// The configuration to change: a root hash, `twitch:#channel` or connection
        /// info as JSON (see `tikaconf --help`).
        root: String,
        /// RFC 6901 JSON Pointer, such as `/commands/!hello` (`""` is the whole document).
        pointer: String,
        /// The value, as strict JSON (a string needs its quotes: '"hi"').
        #[arg(value_name = "JSON")]
        value: String,
        #[command(flatten)]
        precondition: Precondition,
    },
    /// Remove the value at a JSON Pointer (one RFC 6902 `remove` op); prints the new head.
    ///
    /// A pointer that does not resolve exits with code 2 (the op does not
    /// apply) and publishes nothing.
    Rm {
        /// The configuration to change: a root hash, `twitch:#channel` or connection
        /// info as JSON (see `tikaconf --help`).
        root: String,
        /// RFC 6901 JSON Pointer of the value to remove, such as `/commands/!hello`
        /// (not `""`: the document itself cannot be removed).
        pointer: String,
        #[command(flatten)]
        precondition: Precondition,
    },
    /// Submit an RFC 6902 patch document from FILE, or `-` for stdin; prints the new head.
    Patch {
        /// The configuration to change: a root hash, `twitch:#channel` or connection
        /// info as JSON (see `tikaconf --help`).
        root: String,
        /// The patch document (a JSON array of ops), or `-` for stdin.
        file: PathBuf,
        #[command(flatten)]
        precondition: Precondition,
    },
    /// Print every change of ROOT as one JSON line until Ctrl-C
    ///
    /// The first line is the current state; then one line per change:
    /// {"dropped":BOOL,"head":HASH,"height":N,"ops":OPS}, in canonical JSON,
    /// OPS being the RFC 6902 ops of the patch applied.
    ///
    /// A line without a patch (the first line, a re-sync from a snapshot) has
    /// "ops":null and carries the whole document as "document":DOC, and so does
    /// the first line after the watch fell behind (which stderr reports with the
    /// number of changes skipped): a reader always has a document to apply the
    /// following ops to. "dropped" is true when patches storage never stored
    /// were dropped (over --server always false: the event stream does not
    /// say). --document puts the document on every line.
    ///
    /// On a terminal (without -o or --json) each change is a line of text
    /// instead: height, short head, the ops in a few words. Over --server the
    /// API's event stream is read, and reconnected with Last-Event-ID when it
    /// drops (stderr says so).
    #[command(verbatim_doc_comment)]
    Watch(WatchArgs),
    /// List the roots storage holds: root, head, height, connection info
    /// (needs --server).
    ///
    /// Follows the API's cursor through every page. Not a terminal: one line
    /// per root, `ROOT HEAD HEIGHT CONNECTION` separated by tabs (CONNECTION
    /// as compact JSON, `-` when the store no longer has it).
    Ls(LsArgs),
    /// Edit the document of ROOT in $VISUAL or $EDITOR; prints the new head
    ///
    /// The editor is $VISUAL, else $EDITOR, else `vi`. What changed is
    /// submitted only if nobody wrote since the document was opened.
    /// The document is written pretty-printed to a temporary file; the
    /// editor command is run by the shell as git runs it (`code --wait` or
    /// `emacs -nw` work). An unchanged document publishes nothing (and says
    /// so); a file that is no longer JSON exits 2 and keeps the file, naming
    /// it, so that the edit is not lost; a write that came first exits 4.
    #[command(verbatim_doc_comment)]
    Edit {
        /// The configuration to change: a root hash, `twitch:#channel` or
        /// connection info as JSON (see `tikaconf --help`).
        root: String,
    },
    /// Make FILE (JSON, TOML or YAML) the whole new document of ROOT; prints
    /// the new head.
    ///
    /// The change is published as the RFC 6902 difference from the current
    /// document, only on the head it was computed from (as --if-head). The
    /// format comes from the extension (.json, .toml, .yaml/.yml) or --format;
    /// `-` reads stdin (JSON unless --format says otherwise). A document
    /// equal to the current one publishes nothing.
    Import {
        /// The configuration to change: a root hash, `twitch:#channel` or
        /// connection info as JSON (see `tikaconf --help`).
        root: String,
        /// The new document, or `-` for stdin.
        file: PathBuf,
        /// The file's format, when its extension does not say.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<DocFormat>,
        #[command(flatten)]
        precondition: Precondition,
    },
    /// Print the document of ROOT as JSON, TOML or YAML.
    ///
    /// TOML cannot hold null, and a TOML document is a table: such documents
    /// exit 2 with `--format toml`, saying where.
    Export {
        /// The configuration to read: a root hash, `twitch:#channel` or
        /// connection info as JSON (see `tikaconf --help`).
        root: String,
        /// The format to print in [default: json, indented].
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<DocFormat>,
    },
    /// List ROOT's patches, newest first (needs --server)
    ///
    /// Each: version (hash), height, time, author, message, the ops in a few
    /// words. Not a terminal: one line per patch, `HASH HEIGHT TIME AUTHOR MESSAGE
    /// CHANGES` separated by tabs (`-` for what the writer did not say).
    /// --json: one object per line, {"author","hash","height","message",
    /// "meta","ops","parent","rollback_of","time"}. Only what the server's
    /// store keeps (its --retention) can be listed.
    #[command(verbatim_doc_comment)]
    Log(LogArgs),
    /// Print version HASH of ROOT: its patch and its document (needs --server).
    ///
    /// The patch that made it (who, when, why, its ops), then the document
    /// as it was then. Not a terminal: the document alone, as canonical JSON. --json:
    /// {"document","hash","height","patch"}. A version whose patches back to
    /// the root are no longer kept exits 8.
    Show {
        /// The configuration: a root hash, `twitch:#channel` or connection
        /// info as JSON (see `tikaconf --help`).
        root: String,
        /// The version: a head hash (as `log` prints it; the root hash for
        /// height 0).
        #[arg(value_name = "HASH")]
        version: Hash,
    },
    /// Print the RFC 6902 ops from version FROM of ROOT to TO (needs --server).
    ///
    /// On a terminal, a line per changed path: `- PATH: OLD` in red and
    /// `+ PATH: NEW` in green (NO_COLOR turns colour off). Not a terminal:
    /// the ops as canonical JSON. --json: {"from","ops","to"}.
    Diff {
        /// The configuration: a root hash, `twitch:#channel` or connection
        /// info as JSON (see `tikaconf --help`).
        root: String,
        /// The older version (a head hash).
        from: Hash,
        /// The newer version (a head hash).
        to: Hash,
    },
    /// Restore version HASH of ROOT as a new head; prints it (needs --server).
    ///
    /// Publishes a new patch, on the current head, whose result is the
    /// document at HASH. The chain only moves forward: the rollback is a patch like any other,
    /// in the log, its `meta.rollback_of` naming HASH (and -m its message).
    /// It is written only on the head read first: a write that comes in
    /// between exits 4 and nothing is overwritten. A document already equal
    /// to HASH's publishes nothing.
    Rollback {
        /// The configuration: a root hash, `twitch:#channel` or connection
        /// info as JSON (see `tikaconf --help`).
        root: String,
        /// The version to restore (a head hash, as `log` prints it).
        #[arg(value_name = "HASH")]
        version: Hash,
    },
    /// Check ROOT's stored chain: every hash from the root through the log to the head (needs --server).
    ///
    /// Recomputes, from the registration (or the oldest patch the server's
    /// store keeps) to the head, that each stored patch decodes, sits at its
    /// height, names the previous hash as its parent, and, where every patch
    /// back to the root is kept, that replaying the ops gives the stored
    /// document; and that the last hash is the head. Heights not kept (a
    /// period without history) are gaps, not breaks. Prints
    /// `ok: N patches from height A to B, ...`, or the first broken link
    /// (height, stored hash, why) and exits 9. --json: the server's report.
    Verify {
        /// The configuration: a root hash, `twitch:#channel` or connection
        /// info as JSON (see `tikaconf --help`).
        root: String,
    },
    /// Print the protocol test vectors of docs/PROTOCOL.md as `key: value` lines.
    Vectors,
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell)
    /// on stdout, e.g. `tikaconf completions bash > /etc/bash_completion.d/tikaconf`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Make a new Ed25519 key pair for signed updates: prints `secret: HEX` (keep it
    /// in a file for --signing-key) and `public: HEX` (for --trust-key).
    Keygen,
}

/// The arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The configuration to read: a root hash, `twitch:#channel` or connection info
    /// as JSON (see `tikaconf --help`).
    pub root: String,
    /// RFC 6901 JSON Pointer of the part to print, such as `/commands/!hello`;
    /// the whole document when omitted. Exits with code 8 if it does not resolve.
    pub pointer: Option<String>,
    /// How to print the value.
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t = ValueFormat::Pretty)]
    pub output: ValueFormat,
    /// The same as `-o json` (kept for the scripts that used it first).
    #[arg(long, conflicts_with = "output")]
    pub compact: bool,
    /// Print {"head":HASH,"height":N,"value":VALUE} instead of the value alone:
    /// the head the value was read at, for a later `--if-head` (read, change,
    /// write only if nobody wrote in between).
    #[arg(long)]
    pub with_head: bool,
}

impl GetArgs {
    /// The format asked for, `--compact` included.
    pub fn format(&self) -> ValueFormat {
        if self.compact {
            ValueFormat::Json
        } else {
            self.output
        }
    }
}

/// The arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The configuration to watch: a root hash, `twitch:#channel` or connection
    /// info as JSON (see `tikaconf --help`).
    pub root: String,
    /// Put the whole document on every line, not only on lines without ops.
    #[arg(long)]
    pub document: bool,
    /// How to print each line: `json` keeps one change per line (JSON Lines).
    /// Default: `json`, or a line of text per change when stdout is a
    /// terminal.
    #[arg(short, long, value_enum, value_name = "FORMAT")]
    pub output: Option<RecordFormat>,
}

/// The arguments of `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Roots per request (1 to 1000): `ls` still lists every root, a page
    /// at a time.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only the roots of this platform (`twitch`, ...), by their connection
    /// info.
    #[arg(long)]
    pub platform: Option<String>,
}

/// The arguments of `log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The configuration: a root hash, `twitch:#channel` or connection info
    /// as JSON (see `tikaconf --help`).
    pub root: String,
    /// At most N patches (default: every one the store keeps).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only patches below height H (to go on from an earlier listing).
    #[arg(long, value_name = "H")]
    pub before: Option<u64>,
}

/// The formats of `import` and `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    Json,
    Toml,
    Yaml,
}

/// The compare-and-set every write verb offers.
#[derive(Debug, Args)]
pub struct Precondition {
    /// Write only if the current head is HASH (as printed by a previous write or
    /// by `watch`): when another write came first, nothing is written and the
    /// command exits with code 4, naming the current head.
    #[arg(long, value_name = "HASH")]
    pub if_head: Option<Hash>,
}

/// How `get` prints a value (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValueFormat {
    /// Canonical compact JSON (RFC 8785) on one line: the bytes hashes are computed over.
    Json,
    /// A string's contents without quotes or escapes (like `jq -r`); any other value as `json`.
    Raw,
    /// Indented JSON, for people.
    Pretty,
}

/// How `watch` prints its lines (`-o`). No `raw`: a line is an object, never a
/// bare string, so `raw` would only ever mean `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    /// Canonical compact JSON (RFC 8785), one change per line.
    Json,
    /// Indented JSON, one change per block, for people.
    Pretty,
}

#[derive(Debug, Args)]
pub struct RootArgs {
    // `--json` (global) prints the root configuration (canonical JSON)
    // instead of its hash.
    #[command(subcommand)]
    pub connection: Connection,
}

#[derive(Debug, Subcommand)]
pub enum Connection {
    /// A Twitch channel, such as `#tikatoo` (case and the `#` do not matter).
    Twitch { channel: String },
    /// Connection info of any platform as a JSON object.
    Json { connection: String },
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory of the redb database (created if missing); with `--store redb`.
    #[arg(long, value_name = "DIR", default_value = "./tikaconf-data")]
    pub data: PathBuf,
    /// Where to keep heads: a local redb file, or keys in the same Redis.
    #[arg(long, value_enum, default_value_t = StoreKind::Redb)]
    pub store: StoreKind,
    /// With `--store redis`: start even though Redis can lose acknowledged writes
    /// on a crash of its host. Without it the node refuses to start unless Redis
    /// runs with `appendonly yes` and `appendfsync always`. `everysec` also accepts
    /// `appendfsync everysec` (up to ~1 s of acknowledged writes lost); `none`
    /// accepts anything, including no append-only file and settings that cannot be
    /// read (CONFIG forbidden or renamed).
    #[arg(long, value_enum, value_name = "LOSS")]
    pub accept_redis_durability: Option<AcceptedLossArg>,
    #[command(flatten)]
    pub history: HistoryArgs,
    /// Serve the node's metrics in Prometheus text format on
    /// http://ADDR/metrics, e.g. `--metrics 127.0.0.1:9464` (messages received,
    /// applied and ignored, store commit latency, ...). Off by default. The
    /// listener has no authentication: bind it to loopback or a private
    /// interface.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

/// The history setting of a process that runs a storage node (`storage`, and
/// `serve` with one).
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How much of each root's history (its patches, with their author, time
    /// and message) the store keeps beside the head: `all`, `none` (no history,
    /// the cost of a store without it), or the last N patches per root. A
    /// smaller setting than the store was written with hides the rest at once
    /// and prunes it as roots change.
    #[arg(
        long,
        env = "TIKACONF_RETENTION",
        value_name = "all|none|N",
        default_value_t = Retention::default()
    )]
    pub retention: Retention,
    /// How long the storage node checks the chains its store keeps when it
    /// starts (as `tikaconf verify` does, for every root, from a random one
    /// on), in the background while it serves: `10s`, `500ms`, `2m`; `0`
    /// turns the check off. Each broken link is logged and counted in
    /// `tikaconf_chain_breaks_total`.
    #[arg(
        long,
        env = "TIKACONF_VERIFY_FOR",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub verify_for: std::time::Duration,
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds (`0`).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("unknown unit {unit:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// The arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Any address but a loopback one needs --token
    /// (a global option: the token every request must present).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: std::net::SocketAddr,
    /// Directory of the redb database (created if missing); without --redis, or
    /// with `--store redb`.
    #[arg(long, value_name = "DIR", default_value = "./tikaconf-data")]
    pub data: PathBuf,
    /// With --redis: where the storage node keeps heads. `redis` (the default
    /// there) shares the store of the fleet's other storage nodes; `redb` is a
    /// file of its own, for a fleet whose only storage node this is. Without
    /// --redis the store is always redb.
    #[arg(long, value_enum)]
    pub store: Option<StoreKind>,
    /// With --redis: run no storage node, only the API (the fleet's storage
    /// nodes answer). Listing roots then needs a store, and answers 501.
    #[arg(long, conflicts_with_all = ["store", "accept_redis_durability"])]
    pub no_storage: bool,
    /// With `--store redis`: as for `tikaconf storage`.
    #[arg(long, value_enum, value_name = "LOSS")]
    pub accept_redis_durability: Option<AcceptedLossArg>,
    #[command(flatten)]
    pub history: HistoryArgs,
}

/// The values of `--accept-redis-durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AcceptedLossArg {
    Everysec,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Redb,
    Redis,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--retention` takes `all`, `none` or a count, defaults to 1,000, and
    /// refuses anything else before the node starts.
    #[test]
    fn retention_is_parsed_for_storage_and_serve() {
        let storage = |extra: &[&str]| {
            let args = [&["tikaconf", "storage"][..], extra].concat();
            match Cli::try_parse_from(args).map(|cli| cli.command) {
                Ok(Command::Storage(a)) => Ok(a.history.retention),
                Ok(other) => panic!("parsed as {other:?}"),
                Err(e) => Err(e),
            }
        };
        assert_eq!(storage(&[]).unwrap(), Retention::default());
        assert_eq!(storage(&["--retention", "all"]).unwrap(), Retention::All);
        assert_eq!(storage(&["--retention", "none"]).unwrap(), Retention::None);
        assert_eq!(
            storage(&["--retention", "5"]).unwrap(),
            "5".parse::<Retention>().unwrap()
        );
        assert!(storage(&["--retention", "0"]).is_err());
        assert!(storage(&["--retention", "some"]).is_err());
        match Cli::try_parse_from(["tikaconf", "serve", "--retention", "all"]).map(|c| c.command) {
            Ok(Command::Serve(a)) => assert_eq!(a.history.retention, Retention::All),
            other => panic!("{other:?}"),
        }
    }

    /// `--verify-for` defaults to 10 s, reads people's durations, and `0`
    /// turns the check off.
    #[test]
    fn verify_for_is_a_duration() {
        use std::time::Duration;
        let parsed = |extra: &[&str]| {
            let args = [&["tikaconf", "storage"][..], extra].concat();
            match Cli::try_parse_from(args).map(|cli| cli.command) {
                Ok(Command::Storage(a)) => Ok(a.history.verify_for),
                Ok(other) => panic!("parsed as {other:?}"),
                Err(e) => Err(e),
            }
        };
        assert_eq!(parsed(&[]).unwrap(), Duration::from_secs(10));
        assert_eq!(parsed(&["--verify-for", "0"]).unwrap(), Duration::ZERO);
        assert_eq!(
            parsed(&["--verify-for", "500ms"]).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parsed(&["--verify-for", "2m"]).unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(
            parsed(&["--verify-for", "1.5s"]).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parsed(&["--verify-for", "ten"]).is_err());
        assert!(parsed(&["--verify-for", "10d"]).is_err());
        assert!(parsed(&["--verify-for", "-1s"]).is_err());
    }
}
