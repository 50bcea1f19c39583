//! The `tikaconf` binary, run as users run it, against a real `redis-server` and a
//! real `tikaconf storage` child process.
//!
//! The exit codes are the command's contract with scripts, so each one is
//! asserted here by running the compiled binary, not by calling its functions.
//! Every test starts its own Redis on a free port (never 6379) through
//! `tikaconf_test::RedisServer`, and every child process is killed by a drop guard,
//! so a failing test leaves nothing running.

use std::io::Read;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use tempfile::TempDir;
use tikaconf_test::RedisServer;

mod common;
/// The same verbs over `--server`: a module of this test binary, not a
/// binary of its own (one link, one harness).
#[path = "cli/http.rs"]
mod http;

use common::*;

const TIKATOO: &str = "twitch:#tikatoo";
const TIKATOO_HASH: &str = "2632a3e913455afa23071cb9a767ab9b7aa3bfebbebcfb3bae67ef3d074df222";

/// A Redis and a storage node over a redb directory.
struct Deployment {
    // Dropped first: the storage node is killed before its Redis.
    storage: Guard,
    data: TempDir,
    redis: RedisServer,
}

impl Deployment {
    fn start() -> Deployment {
        let redis = RedisServer::start();
        let data = tempfile::tempdir().expect("temporary data directory");
        let storage = start_storage(&redis.url(), &data.path().join("data"), &[]);
        Deployment {
            storage,
            data,
            redis,
        }
    }

    fn url(&self) -> String {
        self.redis.url()
    }

    /// Runs `tikaconf --redis URL ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        run(&[&["--redis", &self.url()], args].concat())
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        run_with_stdin(&[&["--redis", &self.url()], args].concat(), input)
    }
}

#[test]
fn root_prints_the_hash_or_the_configuration() {
    assert_eq!(ok_line(&run(&["root", "twitch", "#tikatoo"])), TIKATOO_HASH);
    assert_eq!(ok_line(&run(&["root", "twitch", "TikaToo"])), TIKATOO_HASH);
    assert_eq!(
        ok_line(&run(&["root", "twitch", "#tikatoo", "--json"])),
        r##"{"connection":{"channel":"#tikatoo","platform":"twitch"}}"##
    );
    let discord = r#"{"platform":"discord","guild":"42"}"#;
    assert_eq!(
        ok_line(&run(&["root", "--json", "json", discord])),
        r#"{"connection":{"guild":"42","platform":"discord"}}"#
    );
    let hash = ok_line(&run(&["root", "json", discord]));
    assert_eq!(hash.len(), 64);
    assert_ne!(hash, TIKATOO_HASH);
    assert_code(&run(&["root", "twitch", "not a channel"]), 2);
    assert_code(&run(&["root", "json", "[1]"]), 2);
    assert_code(&run(&["root", "json", "{\"a\":1,\"a\":2}"]), 2);
}

#[test]
fn vectors_are_stable() {
    let expected = format!(
        "\
twitch_channel: #tikatoo
root_config: {{\"connection\":{{\"channel\":\"#tikatoo\",\"platform\":\"twitch\"}}}}
root_hash: {TIKATOO_HASH}
patch1_ops: [{{\"op\":\"add\",\"path\":\"/commands\",\"value\":{{\"!hello\":\"Hello, chat!\"}}}}]
patch1: {{\"height\":1,\"ops\":[{{\"op\":\"add\",\"path\":\"/commands\",\"value\":{{\"!hello\":\"Hello, chat!\"}}}}],\"parent\":\"{TIKATOO_HASH}\",\"root\":\"{TIKATOO_HASH}\",\"type\":\"patch\"}}
patch1_hash: 89163d3e3e8234e5251271b2ca87330e0b02745ab4ad40a35318a4a1f3b73720
document1: {{\"commands\":{{\"!hello\":\"Hello, chat!\"}},\"connection\":{{\"channel\":\"#tikatoo\",\"platform\":\"twitch\"}}}}
"
    );
    let first = run(&["vectors"]);
    assert_code(&first, 0);
    assert_eq!(stdout(&first), expected);
    assert_eq!(stdout(&run(&["vectors"])), expected);
}

#[test]
fn set_get_and_patch_round_trip_and_survive_a_restart() {
    let mut d = Deployment::start();
    let head1 = ok_line(&d.run(&["set", TIKATOO, "/commands", r#"{"!hello":"Hello, chat!"}"#]));
    // The protocol vectors' first patch, plus the `meta` (author, time) every
    // write of the CLI carries: so not the vectors' hash.
    assert_eq!(head1.len(), 64);
    assert_ne!(
        head1,
        "89163d3e3e8234e5251271b2ca87330e0b02745ab4ad40a35318a4a1f3b73720"
    );

    let pretty = d.run(&["get", TIKATOO]);
    assert_code(&pretty, 0);
    let doc: Value = serde_json::from_slice(&pretty.stdout).expect("get prints JSON");
    assert_eq!(doc["commands"], json!({"!hello": "Hello, chat!"}));

    let patch = r#"[{"op":"add","path":"/commands/!bye","value":"Bye!"},
                    {"op":"add","path":"/volume","value":11}]"#;
    let head2 = ok_line(&d.run_with_stdin(&["patch", TIKATOO, "-"], patch));
    assert_eq!(head2.len(), 64);
    assert_ne!(head2, head1);

    // By root hash, compact: the canonical bytes.
    let compact = r##"{"commands":{"!bye":"Bye!","!hello":"Hello, chat!"},"connection":{"channel":"#tikatoo","platform":"twitch"},"volume":11}"##;
    assert_eq!(
        ok_line(&d.run(&["get", "--compact", TIKATOO_HASH])),
        compact
    );

    // SIGTERM stops the node gracefully; a new node on the same data has it all.
    let pid = d.storage.0.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(term.expect("run kill").success());
    let status = d.storage.0.wait().expect("wait for storage");
    assert!(status.success(), "storage exited with {status}");
    d.storage = start_storage(&d.url(), &d.data.path().join("data"), &[]);
    assert_eq!(
        ok_line(&d.run(&["get", "--compact", TIKATOO_HASH])),
        compact
    );
}

#[test]
fn bad_input_exits_2() {
    let d = Deployment::start();
    let cases: &[(&[&str], &str)] = &[
        (&["set", TIKATOO, "/x", "{bad json"], "JSON"),
        (&["set", TIKATOO, "/x", "hello"], "JSON"),
        (&["set", TIKATOO, "no-slash", "1"], "Pointer"),
        (&["set", TIKATOO, "/a/b", "1"], "does not apply"),
        (&["set", "nonsense", "/x", "1"], "ROOT"),
        (&["get", "twitch:"], "ROOT"),
        (&["get"], "Usage"),
        (&["frobnicate"], "Usage"),
        (&["--timeout", "0", "get", TIKATOO], "timeout"),
    ];
    for (args, says) in cases {
        let out = d.run(args);
        assert_code(&out, 2);
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let not_ops = d.run_with_stdin(&["patch", TIKATOO, "-"], r#"{"op":"add"}"#);
    assert_code(&not_ops, 2);
    let test_fails = r#"[{"op":"test","path":"/connection/platform","value":"discord"}]"#;
    assert_code(&d.run_with_stdin(&["patch", TIKATOO, "-"], test_fails), 2);
    assert_code(&d.run(&["patch", TIKATOO, "/nonexistent/patch.json"]), 2);
    // Nothing was written by any of them.
    let compact = ok_line(&d.run(&["get", "--compact", TIKATOO]));
    assert_eq!(
        compact,
        r##"{"connection":{"channel":"#tikatoo","platform":"twitch"}}"##
    );
}

#[test]
fn unknown_root_by_hash_exits_3() {
    let d = Deployment::start();
    let unknown = "0".repeat(64);
    let out = d.run(&["get", &unknown]);
    assert_code(&out, 3);
    assert!(stderr(&out).contains(&unknown), "{}", stderr(&out));
    assert_code(&d.run(&["set", &unknown, "/x", "1"]), 3);
}

/// By default a change is its ops; the first line, which has none, carries the
/// document instead, so that a reader has something to apply the ops to.
#[test]
fn watch_prints_ops_by_default() {
    let d = Deployment::start();
    let url = d.url();
    let (_watch, lines, first) = spawn(&["--redis", &url, "watch", TIKATOO]);
    let first: Value = serde_json::from_str(&first).expect("watch prints JSON lines");
    assert_eq!(first["head"], TIKATOO_HASH);
    assert_eq!(first["height"], 0);
    assert_eq!(first["ops"], Value::Null);
    assert_eq!(
        first["document"],
        json!({"connection": {"channel": "#tikatoo", "platform": "twitch"}})
    );

    let head = ok_line(&d.run(&["set", TIKATOO, "/greeting", r#""hi""#]));
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "raw", TIKATOO, "/greeting"])),
        "hi",
        "the write is stored"
    );
    let line = lines.next("change");
    let change: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(change["head"], head.as_str());
    assert_eq!(change["height"], 1);
    assert_eq!(
        change["ops"],
        json!([{"op": "add", "path": "/greeting", "value": "hi"}])
    );
    assert_eq!(change["dropped"], false);
    assert_eq!(change.get("document"), None, "ops only: {line}");
    // Canonical JSON: sorted keys, no spaces.
    assert_eq!(
        line,
        format!(
            r#"{{"dropped":false,"head":"{head}","height":1,"ops":[{{"op":"add","path":"/greeting","value":"hi"}}]}}"#
        )
    );
}

/// `--document` puts the document on every line (the lines `watch` printed before
/// ops became the default), and `-o pretty` indents each of them.
#[test]
fn watch_document_prints_the_document_on_every_line() {
    let d = Deployment::start();
    let url = d.url();
    let (_watch, lines, first) = spawn(&["--redis", &url, "watch", "--document", TIKATOO]);
    let first: Value = serde_json::from_str(&first).expect("watch prints JSON lines");
    assert_eq!(first["head"], TIKATOO_HASH);
    assert_eq!(first["ops"], Value::Null);
    let (_pretty, pretty_lines, pretty_first) = spawn(&[
        "--redis",
        &url,
        "watch",
        "--document",
        "-o",
        "pretty",
        TIKATOO,
    ]);
    assert_eq!(pretty_first, "{", "an indented object");
    let pretty_first = pretty_block(&pretty_lines, pretty_first);
    assert_eq!(pretty_first, first, "the same record, indented");

    let head = ok_line(&d.run(&["set", TIKATOO, "/greeting", r#""hi""#]));
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "raw", TIKATOO, "/greeting"])),
        "hi",
        "the write is stored"
    );
    let change: Value = serde_json::from_str(&lines.next("change")).expect("a JSON line");
    assert_eq!(change["head"], head.as_str());
    assert_eq!(change["height"], 1);
    assert_eq!(
        change["ops"],
        json!([{"op": "add", "path": "/greeting", "value": "hi"}])
    );
    assert_eq!(change["document"]["greeting"], "hi");
    assert_eq!(
        change["document"]["connection"]["channel"], "#tikatoo",
        "the whole document"
    );
    let first_line = pretty_lines.next("pretty change");
    assert_eq!(pretty_block(&pretty_lines, first_line), change);
}

/// A watch whose reader stops reading falls behind; when it reads again, stderr
/// says how many changes were skipped and the first line after the gap carries
/// the whole document, so that the ops after it apply to something the reader
/// has. The writes come from the library in this process: the command would
/// take a process per write, and a lag needs more than 1,024 of them.
#[test]
fn watch_reports_a_lag_on_stderr_and_sends_the_document_after_it() {
    const WRITES: u64 = 1_300;
    let d = Deployment::start();
    let url = d.url();
    let mut child = tikaconf(&["--redis", &url, "watch", TIKATOO])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tikaconf watch");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let mut watch = Guard(child);
    // Nobody reads stdout yet: once the pipe is full, the command's next line
    // waits and the changes pile up behind it. Lines of ~4 KB fill it quickly.
    let big = "x".repeat(4_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let last = runtime.block_on(async {
        let client = tikaconf::Client::connect(&url).await.expect("client");
        let config = client
            .follow(tikaconf::RootConfig::twitch("#tikatoo").expect("root"))
            .await
            .expect("follow");
        let mut head = config.head();
        for i in 0..WRITES {
            let ops = json!([{"op": "add", "path": "/big", "value": format!("{i}{big}")}]);
            head = config.submit(ops).await.expect("stored");
        }
        assert_eq!(config.height(), WRITES, "every write is stored");
        head
    });

    let lines = Lines::new(stdout);
    let mut previous = 0;
    let mut after_gap = None;
    loop {
        let line: Value = serde_json::from_str(&lines.next("change")).expect("a JSON line");
        let height = line["height"].as_u64().expect("a height");
        if height > previous + 1 && previous > 0 {
            after_gap = Some(line.clone());
        }
        previous = height;
        if height == WRITES {
            assert_eq!(line["head"], last.to_hex());
            break;
        }
    }
    let _ = watch.0.kill();
    let _ = watch.0.wait();
    let mut err = String::new();
    stderr_pipe.read_to_string(&mut err).expect("read stderr");
    assert!(err.contains("changes skipped"), "{err}");
    // The oldest change still buffered: a patch's (its ops) or a re-sync's
    // (ops null); the document either way.
    let after_gap = after_gap.expect("the watch skipped changes");
    assert!(
        after_gap["document"]["big"].is_string(),
        "the document after the gap: {err}"
    );
}

/// Reads the lines of one indented JSON object, starting with `first` (`{`),
/// up to its closing `}`, and parses them.
fn pretty_block(lines: &Lines, first: String) -> Value {
    let mut block = first;
    loop {
        let line = lines.next("indented JSON");
        block.push('\n');
        block.push_str(&line);
        if line == "}" {
            return serde_json::from_str(&block).expect("indented JSON");
        }
    }
}

/// `get ROOT POINTER` prints the part of the document at POINTER; one that does
/// not resolve exits 8 with nothing on stdout, unlike a `null` value, and one
/// that is not a JSON Pointer at all is bad input (2).
#[test]
fn get_with_a_pointer_prints_that_part_or_exits_8() {
    let d = Deployment::start();
    let value = r#"{"!hello":"Hello, chat!","a/b":[1,null]}"#;
    let head = ok_line(&d.run(&["set", TIKATOO, "/commands", value]));
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "json", TIKATOO, "/commands"])),
        value,
        "the write is stored"
    );

    assert_eq!(
        ok_line(&d.run(&["get", TIKATOO, "/commands/!hello"])),
        r#""Hello, chat!""#
    );
    // RFC 6901 escapes and array indexes.
    assert_eq!(ok_line(&d.run(&["get", TIKATOO, "/commands/a~1b/0"])), "1");
    assert_eq!(
        ok_line(&d.run(&["get", TIKATOO, "/commands/a~1b/1"])),
        "null"
    );
    // The empty pointer is the whole document.
    let whole = d.run(&["get", "-o", "json", TIKATOO, ""]);
    assert_eq!(
        ok_line(&whole),
        ok_line(&d.run(&["get", "-o", "json", TIKATOO]))
    );

    for missing in ["/commands/!bye", "/commands/a~1b/2", "/nothing/below"] {
        let out = d.run(&["get", TIKATOO, missing]);
        assert_code(&out, 8);
        assert_eq!(stdout(&out), "", "{missing}: nothing on stdout");
        let err = stderr(&out);
        assert!(err.contains(missing), "{missing}: {err}");
        assert!(err.contains(&head), "names the head looked in: {err}");
    }
    let out = d.run(&["get", TIKATOO, "commands"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("Pointer"), "{}", stderr(&out));
}

/// `-o json` is canonical on one line, `-o pretty` (the default) indented, `-o
/// raw` a string without quotes and anything else as `json`; `--compact` stays
/// `-o json`.
#[test]
fn get_output_formats() {
    let d = Deployment::start();
    ok_line(&d.run(&["set", TIKATOO, "/motd", r#""say \"hi\"""#]));
    let compact =
        r##"{"connection":{"channel":"#tikatoo","platform":"twitch"},"motd":"say \"hi\""}"##;
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "json", TIKATOO])),
        compact,
        "the write is stored"
    );

    assert_eq!(ok_line(&d.run(&["get", "--compact", TIKATOO])), compact);
    assert_eq!(ok_line(&d.run(&["get", "--output=json", TIKATOO])), compact);
    let pretty = d.run(&["get", "-o", "pretty", TIKATOO]);
    assert_code(&pretty, 0);
    let text = stdout(&pretty);
    assert!(text.lines().count() > 1, "indented: {text}");
    assert!(text.contains("\n  \"motd\": "), "indented: {text}");
    let parsed: Value = serde_json::from_str(&text).expect("pretty is JSON");
    assert_eq!(parsed["motd"], "say \"hi\"");
    assert_eq!(stdout(&d.run(&["get", TIKATOO])), text, "pretty by default");

    assert_eq!(
        ok_line(&d.run(&["get", "-o", "raw", TIKATOO, "/motd"])),
        r#"say "hi""#
    );
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "json", TIKATOO, "/motd"])),
        r#""say \"hi\"""#
    );
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "raw", TIKATOO, "/connection"])),
        r##"{"channel":"#tikatoo","platform":"twitch"}"##
    );
    assert_eq!(ok_line(&d.run(&["get", "-o", "raw", TIKATOO])), compact);

    for bad in [
        &["get", "-o", "yaml", TIKATOO][..],
        &["get", "-o", "json", "--compact", TIKATOO],
        &["watch", "-o", "raw", TIKATOO],
    ] {
        let out = d.run(bad);
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("--output"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
}

/// `--if-head HASH` writes only on that head: on the current one it commits;
/// on a stale one nothing is written and the command exits 4 naming the
/// current head. Both write verbs take it.
#[test]
fn if_head_writes_only_on_that_head() {
    let d = Deployment::start();
    let head1 = ok_line(&d.run(&["set", TIKATOO, "/a", "1"]));
    let head2 = ok_line(&d.run(&["set", "--if-head", &head1, TIKATOO, "/b", "2"]));
    assert_ne!(head2, head1);
    assert_eq!(ok_line(&d.run(&["get", TIKATOO, "/b"])), "2", "committed");

    let stale = d.run(&["set", "--if-head", &head1, TIKATOO, "/c", "3"]);
    assert_code(&stale, 4);
    assert_eq!(stdout(&stale), "");
    let err = stderr(&stale);
    assert!(err.contains(&format!("current head is {head2}")), "{err}");
    assert!(err.contains(&format!("--if-head {head1}")), "{err}");
    assert_code(&d.run(&["get", TIKATOO, "/c"]), 8);

    let patch = r#"[{"op":"add","path":"/d","value":4}]"#;
    let stale = d.run_with_stdin(&["patch", "--if-head", &head1, TIKATOO, "-"], patch);
    assert_code(&stale, 4);
    assert!(stderr(&stale).contains(&head2), "{}", stderr(&stale));
    assert_code(&d.run(&["get", TIKATOO, "/d"]), 8);
    // A script's read-modify-write: the value with the head it was read at.
    let read = ok_line(&d.run(&["get", "--with-head", "-o", "json", TIKATOO, "/b"]));
    assert_eq!(
        read,
        format!(r#"{{"head":"{head2}","height":2,"value":2}}"#)
    );
    let head3 = ok_line(&d.run_with_stdin(&["patch", "--if-head", &head2, TIKATOO, "-"], patch));
    assert_eq!(ok_line(&d.run(&["get", TIKATOO, "/d"])), "4", "committed");
    assert_eq!(
        ok_line(&d.run(&["set", "--if-head", &head3, TIKATOO, "/e", "5"])).len(),
        64
    );

    // Not a hash: bad input, before connecting.
    let out = d.run(&["set", "--if-head", "HEAD", TIKATOO, "/x", "1"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("64 lowercase hex"),
        "{}",
        stderr(&out)
    );
}

/// `--schema FILE`: a write whose result does not match is refused (exit 2,
/// nothing published); one that matches is committed; a bad schema file is bad
/// input before anything is published.
#[test]
fn schema_refuses_a_write_that_would_break_readers() {
    let d = Deployment::start();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("bot.schema.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","properties":{"commands":{"type":"object","additionalProperties":{"type":"string"}}}}"#,
    )
    .unwrap();
    let schema = schema.to_str().unwrap();

    let head = ok_line(&d.run(&[
        "--schema",
        schema,
        "set",
        TIKATOO,
        "/commands",
        r#"{"!hi":"hello"}"#,
    ]));
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "raw", TIKATOO, "/commands/!hi"])),
        "hello",
        "committed"
    );

    let refused = d.run(&["--schema", schema, "set", TIKATOO, "/commands/!n", "5"]);
    assert_code(&refused, 2);
    let err = stderr(&refused);
    assert!(
        err.contains("/commands/!n") && err.contains("schema"),
        "{err}"
    );
    let now = ok_line(&d.run(&["get", "--with-head", "-o", "json", TIKATOO, "/commands"]));
    assert!(now.contains(&head), "nothing was published: {now}");

    // Without the flag the same write goes through: nodes do not enforce it.
    ok_line(&d.run(&["set", TIKATOO, "/commands/!n", "5"]));
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "json", TIKATOO, "/commands/!n"])),
        "5"
    );

    std::fs::write(dir.path().join("bad.json"), r#"{"type": 5}"#).unwrap();
    let bad = dir.path().join("bad.json");
    let out = d.run(&["--schema", bad.to_str().unwrap(), "set", TIKATOO, "/x", "1"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--schema"), "{}", stderr(&out));
}

/// `rm ROOT POINTER` removes what is there (committed: `get` then exits 8),
/// refuses what is not (exit 2, nothing published) and the document itself.
#[test]
fn rm_removes_a_value_and_only_one_that_is_there() {
    let d = Deployment::start();
    let head = ok_line(&d.run(&[
        "set",
        TIKATOO,
        "/commands",
        r#"{"!hi":"hello","!bye":"bye"}"#,
    ]));
    let removed = ok_line(&d.run(&["rm", TIKATOO, "/commands/!hi"]));
    assert_ne!(removed, head, "a patch was committed");
    assert_code(&d.run(&["get", TIKATOO, "/commands/!hi"]), 8);
    assert_eq!(
        ok_line(&d.run(&["get", "-o", "raw", TIKATOO, "/commands/!bye"])),
        "bye"
    );

    let absent = d.run(&["rm", TIKATOO, "/commands/!hi"]);
    assert_code(&absent, 2);
    let now = ok_line(&d.run(&["get", "--with-head", "-o", "json", TIKATOO, "/commands"]));
    assert!(now.contains(&removed), "nothing was published: {now}");
    assert_code(&d.run(&["rm", TIKATOO, ""]), 2);
    let stale = d.run(&["rm", "--if-head", &head, TIKATOO, "/commands/!bye"]);
    assert_code(&stale, 4);
}

/// `completions SHELL` prints a script that knows the binary's verbs.
#[test]
fn completions_cover_every_verb() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_code(&out, 0);
        let script = stdout(&out);
        for verb in ["serve", "get", "set", "rm", "patch", "watch", "completions"] {
            assert!(script.contains(verb), "{shell} script lacks {verb}");
        }
    }
    assert_code(&run(&["completions", "tcsh"]), 2);
}

#[test]
fn no_storage_means_timeout_exit_5() {
    let redis = RedisServer::start();
    let out = run(&["--redis", &redis.url(), "--timeout", "0.5", "get", TIKATOO]);
    assert_code(&out, 5);
    assert!(stderr(&out).contains("storage"), "{}", stderr(&out));
}

#[test]
fn a_closed_port_exits_6() {
    let url = format!("redis://127.0.0.1:{}", tikaconf_test::free_port());
    for args in [
        &["get", TIKATOO][..],
        &["set", TIKATOO, "/x", "1"],
        &["watch", TIKATOO],
        &["storage", "--store", "redis"],
    ] {
        let out = run(&[&["--redis", url.as_str()], args].concat());
        assert_code(&out, 6);
        assert!(stderr(&out).contains(&url), "{args:?}: {}", stderr(&out));
    }
    let data = tempfile::tempdir().expect("temporary data directory");
    let data = data.path().to_str().expect("UTF-8 path");
    assert_code(&run(&["storage", "--redis", &url, "--data", data]), 6);
}

#[test]
fn redis_store_keeps_namespaces_apart() {
    // With the durable settings the Redis store requires (appendonly yes,
    // appendfsync always); see `storage_refuses_a_redis_that_can_lose_writes`.
    let redis = RedisServer::builder().persistence(true).start();
    let url = redis.url();
    let unused = tempfile::tempdir().expect("temporary directory");
    let _storage = start_storage(
        &url,
        unused.path(),
        &["--store", "redis", "--namespace", "blue"],
    );
    let blue =
        |args: &[&str]| run(&[&["--redis", url.as_str(), "--namespace", "blue"], args].concat());
    ok_line(&blue(&["set", TIKATOO, "/color", r#""blue""#]));
    assert_eq!(
        ok_line(&blue(&["get", "--compact", TIKATOO])),
        r##"{"color":"blue","connection":{"channel":"#tikatoo","platform":"twitch"}}"##
    );
    // No storage node serves the default namespace.
    let out = run(&["--redis", &url, "--timeout", "0.5", "get", TIKATOO]);
    assert_code(&out, 5);
    // The redb directory was not used.
    assert_eq!(
        std::fs::read_dir(unused.path()).expect("read dir").count(),
        0
    );
}

/// `storage --store redis` reads Redis's persistence settings before it
/// acknowledges anything: on settings that can lose acknowledged writes it exits
/// non-zero saying what to change, unless `--accept-redis-durability` accepts
/// the loss; on `appendfsync always` it starts without the flag.
#[test]
fn storage_refuses_a_redis_that_can_lose_writes() {
    let unused = tempfile::tempdir().expect("temporary directory");
    let data = unused.path().to_str().expect("UTF-8 path");
    let storage = |url: &str, extra: &[&str]| {
        run(&[
            &[
                "--redis", url, "storage", "--store", "redis", "--data", data,
            ],
            extra,
        ]
        .concat())
    };
    // No append-only file (the harness's default server).
    let lossy = RedisServer::start();
    let out = storage(&lossy.url(), &[]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("appendonly no"), "{err}");
    assert!(
        err.contains("`appendonly yes` and `appendfsync always`"),
        "{err}"
    );
    assert!(err.contains("--accept-redis-durability none"), "{err}");
    // Accepting only a second of loss is not enough for it.
    let out = storage(&lossy.url(), &["--accept-redis-durability", "everysec"]);
    assert_code(&out, 1);
    // appendfsync everysec: refused, then accepted with the flag, and it works.
    let everysec = RedisServer::builder()
        .persistence(true)
        .extra_args(["--appendfsync", "everysec"])
        .start();
    let out = storage(&everysec.url(), &[]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("appendfsync everysec"), "{err}");
    assert!(err.contains("--accept-redis-durability everysec"), "{err}");
    let _node = start_storage(
        &everysec.url(),
        unused.path(),
        &["--store", "redis", "--accept-redis-durability", "everysec"],
    );
    let url = everysec.url();
    ok_line(&run(&["--redis", &url, "set", TIKATOO, "/x", "1"]));
    // appendfsync always: starts as is.
    let durable = RedisServer::builder().persistence(true).start();
    let _node = start_storage(&durable.url(), unused.path(), &["--store", "redis"]);
    let url = durable.url();
    ok_line(&run(&["--redis", &url, "set", TIKATOO, "/x", "1"]));
    // The refused starts wrote nothing anywhere.
    assert_eq!(
        std::fs::read_dir(unused.path()).expect("read dir").count(),
        0
    );
}

/// `keygen`, then a deployment that requires signatures: a writer with a trusted
/// key writes, one without a key cannot (its write is never stored: exit 5).
#[test]
fn signed_deployment_accepts_only_trusted_writers() {
    let keys = tempfile::tempdir().expect("key directory");
    let keygen = |name: &str| -> (String, String) {
        let out = run(&["keygen"]);
        assert_code(&out, 0);
        let text = stdout(&out);
        let field = |label: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(label))
                .unwrap_or_else(|| panic!("no {label} in {text}"))
                .trim()
                .to_owned()
        };
        let path = keys.path().join(name);
        std::fs::write(&path, field("secret:")).expect("write key");
        (path.to_str().unwrap().to_owned(), field("public:"))
    };
    let (storage_key, storage_pub) = keygen("storage.key");
    let (writer_key, writer_pub) = keygen("writer.key");
    // The storage node trusts both keys for both roles; the clients trust each
    // key for its role only.
    let trust = format!("{storage_pub},{writer_pub}");

    let redis = RedisServer::start();
    let data = tempfile::tempdir().expect("data directory");
    let _storage = start_storage(
        &redis.url(),
        &data.path().join("data"),
        &["--trust-key", &trust, "--signing-key", &storage_key],
    );
    let url = redis.url();
    let base = [
        "--redis",
        &url,
        "--trust-writer-key",
        &writer_pub,
        "--trust-storage-key",
        &storage_pub,
    ];
    let signed = run(&[
        &base[..],
        &[
            "--signing-key",
            &writer_key,
            "set",
            TIKATOO,
            "/mod",
            "\"tika\"",
        ],
    ]
    .concat());
    assert_code(&signed, 0);
    let unsigned = run(&[
        &base[..],
        &["--timeout", "2", "set", TIKATOO, "/mod", "\"evil\""],
    ]
    .concat());
    assert_code(&unsigned, 5);
    let got = run(&[&base[..], &["get", "--compact", TIKATOO]].concat());
    assert_code(&got, 0);
    assert!(stdout(&got).contains(r#""mod":"tika""#), "{}", stdout(&got));
}

/// The backticked words of the first line of `doc` that starts with `prefix`,
/// up to the first `.` after it.
fn backticked_after(doc: &str, prefix: &str) -> Vec<String> {
    let at = doc
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in the document"));
    let rest = &doc[at + prefix.len()..];
    let sentence = &rest[..rest
        .find(". ")
        .or_else(|| rest.find(".\n"))
        .unwrap_or(rest.len())];
    sentence
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// docs/ARCHITECTURE.md names the binary's verbs; they must be the ones `--help`
/// lists (it said `write` for years after the verbs became `set` and `patch`).
#[test]
fn architecture_md_names_every_verb() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/ARCHITECTURE.md"),
    )
    .expect("read docs/ARCHITECTURE.md");
    let mut documented = backticked_after(&doc, "The `tikaconf` binary:");
    let help = run(&["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).expect("utf-8 help");
    let mut verbs: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(str::to_owned)
        .collect();
    assert!(
        verbs.len() >= 5,
        "the verbs were not found in --help:\n{help}"
    );
    documented.sort();
    verbs.sort();
    assert_eq!(
        documented, verbs,
        "docs/ARCHITECTURE.md vs `tikaconf --help`"
    );
}

/// A user whose ACL may not publish on `updates:*` (a follower's rules): `set`
/// fails at once with code 7, saying Redis refused it, instead of code 5 after
/// `--timeout` (60 s here, so that a timeout would not pass for a refusal).
#[test]
fn a_write_redis_refuses_exits_with_code_7() {
    let mut user = vec!["--user".to_owned(), "reader".to_owned()];
    user.extend(tikaconf_test::acl::follower_rules(
        "",
        "rpass",
        tikaconf_test::acl::connect_rules(),
    ));
    let redis = RedisServer::builder().extra_args(user).start();
    let data = tempfile::tempdir().expect("temporary data directory");
    let _storage = start_storage(&redis.url(), &data.path().join("data"), &[]);
    let reader = redis.url().replacen("redis://", "redis://reader:rpass@", 1);
    let out = run(&[
        "--redis",
        &reader,
        "--timeout",
        "60",
        "set",
        TIKATOO,
        "/x",
        "1",
    ]);
    assert_code(&out, 7);
    assert!(
        stderr(&out).to_lowercase().contains("refused"),
        "says why: {}",
        stderr(&out)
    );
}

/// `edit`, `import` and `export` are written once for both transports: over
/// Redis they commit on the head they read, and `--json` has the same shapes.
#[test]
fn edit_import_and_export_work_over_redis_too() {
    let d = Deployment::start();
    let head1 = ok_line(&d.run(&["set", TIKATOO, "/volume", "1"]));
    let url = d.url();
    let edited = tikaconf(&["--redis", &url, "--json", "edit", TIKATOO])
        .env("EDITOR", r#"sed -i 's/"volume": 1/"volume": 2/'"#)
        .output()
        .expect("run edit");
    let edited: Value = serde_json::from_str(&ok_line(&edited)).expect("JSON");
    assert_eq!(edited["changed"], true);
    assert_eq!(edited["height"], 2);
    assert_ne!(edited["head"], head1.as_str());
    assert_eq!(ok_line(&d.run(&["get", TIKATOO, "/volume"])), "2");

    let yaml = d.run(&["export", "--format", "yaml", TIKATOO]);
    assert_code(&yaml, 0);
    assert!(stdout(&yaml).contains("volume: 2"), "{}", stdout(&yaml));
    let changed = stdout(&yaml).replace("volume: 2", "volume: 3");
    let head3 = ok_line(&d.run_with_stdin(&["import", TIKATOO, "-", "--format", "yaml"], &changed));
    let exported = ok_line(&d.run(&["--json", "export", TIKATOO]));
    let exported: Value = serde_json::from_str(&exported).expect("JSON");
    assert_eq!(exported["head"], head3.as_str());
    assert_eq!(exported["document"]["volume"], 3);
    // The same file again: nothing to change, nothing published.
    let again = d.run_with_stdin(&["import", TIKATOO, "-", "--format", "yaml"], &changed);
    assert_eq!(ok_line(&again), head3);
    assert!(stderr(&again).contains("nothing was published"));
    // ls is an HTTP verb.
    assert_code(&d.run(&["ls"]), 2);
}
