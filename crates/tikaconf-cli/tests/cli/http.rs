//! The verbs over `--server`: a real `tikaconf serve` (in-process bus, redb in
//! a temporary directory, a free loopback port) and the CLI run against it as
//! separate processes. What a command claims is checked on the server itself
//! with a plain HTTP GET, not only through the CLI.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::*;
use crate::{TIKATOO, TIKATOO_HASH};

/// A `tikaconf serve` with nothing else.
struct Server {
    // Dropped first: the server is killed before its directory goes.
    guard: Guard,
    data: TempDir,
    addr: String,
    url: String,
    token: Option<String>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("temporary data directory");
        let dir = data.path().join("data");
        let (guard, addr, _) =
            start_serve(&[&["--data", dir.to_str().expect("UTF-8 path")], extra].concat());
        Server {
            guard,
            data,
            url: format!("http://{addr}"),
            addr,
            token: None,
        }
    }

    /// Kills the server and starts another on the same port and data.
    fn restart(&mut self) {
        let _ = self.guard.0.kill();
        let _ = self.guard.0.wait();
        let dir = self.data.path().join("data");
        let args = [
            "serve",
            "--listen",
            &self.addr,
            "--data",
            dir.to_str().unwrap(),
        ];
        let (guard, _lines, first) = spawn(&args);
        assert!(first.contains(&self.url), "{first}");
        self.guard = guard;
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--server", self.url.as_str()];
        if let Some(token) = &self.token {
            all.extend(["--token", token.as_str()]);
        }
        all.extend(args);
        all
    }

    /// Runs `tikaconf --server URL ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        run(&self.args(args))
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        run_with_stdin(&self.args(args), input)
    }

    /// `ARGS` with `--json`, parsed.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let line = ok_line(&self.run(&[&["--json"], args].concat()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// The server's own answer to `GET PATH`: status, ETag without quotes, body.
    fn get(&self, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect to serve");
        let auth = match &self.token {
            Some(t) => format!("authorization: Bearer {t}\r\n"),
            None => String::new(),
        };
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{auth}\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let etag = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("etag:")
                    .map(str::to_owned)
            })
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        (status, etag, body.to_owned())
    }

    /// The server's document of TIKATOO and its head.
    fn document(&self) -> (Value, String) {
        let (status, etag, body) = self.get(&format!("/v1/configs/{TIKATOO_HASH}"));
        assert_eq!(status, 200, "{body}");
        (serde_json::from_str(&body).unwrap(), etag)
    }
}

#[test]
fn http_set_get_patch_rm_round_trip() {
    let s = Server::start();
    // By connection info: registered as over Redis; the protocol vectors'
    // first patch with a `meta` (author, time), so not the vectors' hash.
    let head1 = ok_line(&s.run(&["set", TIKATOO, "/commands", r#"{"!hello":"Hello, chat!"}"#]));
    assert_eq!(head1.len(), 64);
    assert_eq!(s.document().1, head1, "the server has it");

    let patch = r#"[{"op":"add","path":"/commands/!bye","value":"Bye!"},
                    {"op":"add","path":"/volume","value":11}]"#;
    let head2 = ok_line(&s.run_with_stdin(&["patch", TIKATOO_HASH, "-"], patch));
    assert_ne!(head2, head1);
    let compact = r##"{"commands":{"!bye":"Bye!","!hello":"Hello, chat!"},"connection":{"channel":"#tikatoo","platform":"twitch"},"volume":11}"##;
    assert_eq!(ok_line(&s.run(&["get", "-o", "json", TIKATOO])), compact);
    assert_eq!(
        ok_line(&s.run(&["get", "-o", "raw", TIKATOO, "/commands/!bye"])),
        "Bye!"
    );

    let removed = s.json(&["rm", TIKATOO, "/commands/!bye"]);
    assert_eq!(removed["changed"], true);
    assert_eq!(removed["height"], 3);
    assert_eq!(removed["root"], TIKATOO_HASH);
    let (document, head3) = s.document();
    assert_eq!(removed["head"], head3.as_str());
    assert_eq!(document["commands"], json!({"!hello": "Hello, chat!"}));
    assert_code(&s.run(&["get", TIKATOO, "/commands/!bye"]), 8);
    // Removing what is not there does not apply: 2, nothing published.
    assert_code(&s.run(&["rm", TIKATOO, "/commands/!bye"]), 2);
    assert_eq!(s.document().1, head3);

    let got = s.json(&["get", TIKATOO, "/volume"]);
    assert_eq!(
        got,
        json!({"head": head3, "height": 3, "root": TIKATOO_HASH, "value": 11})
    );
    // An empty patch publishes nothing and says so.
    let empty = s.run_with_stdin(&["patch", TIKATOO, "-"], "[]");
    assert_eq!(ok_line(&empty), head3);
    assert!(stderr(&empty).contains("nothing was published"));
}

#[test]
fn http_stale_if_head_exits_4_naming_the_current_head() {
    let s = Server::start();
    let head1 = ok_line(&s.run(&["set", TIKATOO, "/a", "1"]));
    let head2 = ok_line(&s.run(&["set", "--if-head", &head1, TIKATOO, "/b", "2"]));
    assert_eq!(s.document().1, head2, "committed on the head named");

    for args in [
        &["set", "--if-head", &head1, TIKATOO, "/c", "3"][..],
        &["rm", "--if-head", &head1, TIKATOO, "/a"],
    ] {
        let stale = s.run(args);
        assert_code(&stale, 4);
        assert_eq!(stdout(&stale), "");
        let err = stderr(&stale);
        assert!(err.contains(&format!("current head is {head2}")), "{err}");
        assert!(err.contains(&format!("--if-head {head1}")), "{err}");
    }
    let patch = r#"[{"op":"add","path":"/d","value":4}]"#;
    let stale = s.run_with_stdin(&["patch", "--if-head", &head1, TIKATOO, "-"], patch);
    assert_code(&stale, 4);
    assert!(stderr(&stale).contains(&head2), "{}", stderr(&stale));
    let (document, head) = s.document();
    assert_eq!(head, head2, "nothing was published");
    assert_eq!(document.get("c"), None);
}

#[test]
fn http_unknown_root_bad_input_and_no_server_exit_codes() {
    let s = Server::start();
    let unknown = "0".repeat(64);
    for args in [
        &["get", unknown.as_str()][..],
        &["set", &unknown, "/x", "1"],
        &["watch", &unknown],
        &["export", &unknown],
    ] {
        let out = s.run(args);
        assert_code(&out, 3);
        assert!(
            stderr(&out).contains(&unknown),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_code(&s.run(&["set", TIKATOO, "/a/b", "1"]), 2);
    assert_code(&s.run(&["set", TIKATOO, "/x", "{bad"]), 2);
    assert_code(&s.run(&["--server", "ftp://x", "get", TIKATOO]), 2);

    let closed = format!("http://127.0.0.1:{}", tikaconf_test::free_port());
    for args in [&["get", TIKATOO][..], &["set", TIKATOO, "/x", "1"], &["ls"]] {
        let out = run(&[&["--server", closed.as_str()], args].concat());
        assert_code(&out, 6);
        assert!(stderr(&out).contains(&closed), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn http_token_required_exits_7_without_and_works_with() {
    let mut s = Server::start_with(&["--token", "s3cret"]);
    let out = s.run(&["set", TIKATOO, "/x", "1"]);
    assert_code(&out, 7);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert_code(&s.run(&["--token", "wrong", "get", TIKATOO]), 7);
    assert_code(&s.run(&["ls"]), 7);

    s.token = Some("s3cret".into());
    let head = ok_line(&s.run(&["set", TIKATOO, "/x", "1"]));
    assert_eq!(s.document().1, head);
    // From the environment, as `serve` reads it.
    let out = tikaconf(&["--server", &s.url, "get", "-o", "json", TIKATOO, "/x"])
        .env("TIKACONF_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert_eq!(ok_line(&out), "1");
}

#[test]
fn http_ls_pages_through_every_root() {
    let s = Server::start();
    let channels = ["#a1", "#b2", "#c3", "#d4", "#e5"];
    let mut roots = Vec::new();
    for channel in channels {
        // Reading a root by its connection info registers it (height 0: the
        // embedded store keeps the connection info of those, which the
        // platform filter reads).
        let out = s.json(&["get", &format!("twitch:{channel}")]);
        roots.push(out["root"].as_str().unwrap().to_owned());
    }
    let discord = r#"{"platform":"discord","guild":"42"}"#;
    ok_line(&s.run(&["set", discord, "/n", "1"]));
    roots.sort();

    // Two per request: three requests for five, and every one listed once.
    let listing = s.json(&["ls", "--limit", "2", "--platform", "twitch"]);
    let listed: Vec<&str> = listing
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["root"].as_str().unwrap())
        .collect();
    assert_eq!(listed, roots);
    for entry in listing.as_array().unwrap() {
        assert_eq!(entry["height"], 0);
        assert_eq!(entry["connection"]["platform"], "twitch");
        assert_eq!(entry["head"].as_str().unwrap().len(), 64);
    }

    let plain = s.run(&["ls", "--limit", "1"]);
    assert_code(&plain, 0);
    let text = stdout(&plain);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    for line in &lines {
        assert_eq!(line.split('\t').count(), 4, "{line}");
    }
    assert_code(&s.run(&["ls", "--limit", "0"]), 2);
    // Over Redis there is nothing to list with: said, not guessed.
    let out = run(&["ls"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--server"), "{}", stderr(&out));
}

/// Writes an executable shell script and returns its path.
fn script(dir: &TempDir, name: &str, body: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status();
    assert!(chmod.unwrap().success());
    path.to_str().unwrap().to_owned()
}

/// `tikaconf --server URL edit ROOT` with `EDITOR`.
fn edit(s: &Server, editor: &str) -> Output {
    tikaconf(&s.args(&["edit", TIKATOO]))
        .env("EDITOR", editor)
        .output()
        .unwrap()
}

#[test]
fn http_edit_commits_only_on_the_head_it_opened() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let head1 = ok_line(&s.run(&["set", TIKATOO, "/volume", "1"]));

    // The editor changes the file: committed, on the head opened.
    let turn_up = script(
        &dir,
        "turn-up",
        r#"sed -i 's/"volume": 1/"volume": 11/' "$1""#,
    );
    let head2 = ok_line(&edit(&s, &turn_up));
    assert_ne!(head2, head1);
    let (document, head) = s.document();
    assert_eq!(
        (document["volume"].clone(), head),
        (json!(11), head2.clone())
    );

    // An editor command with arguments runs through the shell, as git's does.
    let sed = r#"sed -i 's/"volume": 11/"volume": 12/'"#;
    let head3 = ok_line(&edit(&s, sed));
    assert_eq!(
        s.document(),
        (
            json!({"connection": document["connection"], "volume": 12}),
            head3.clone()
        )
    );

    // No change: nothing published, and it says so.
    let unchanged = edit(&s, "true");
    assert_eq!(ok_line(&unchanged), head3);
    assert!(stderr(&unchanged).contains("nothing was published"));
    assert_eq!(s.document().1, head3);

    // Someone writes while the editor is open: exit 4, the edit is not
    // published (the other write stays), and the file is kept.
    let bin = BIN;
    let racing = script(
        &dir,
        "racing",
        &format!(
            r#"{bin} --server {} set '{TIKATOO}' /other '"theirs"' >/dev/null
sed -i 's/"volume": 12/"volume": 99/' "$1""#,
            s.url
        ),
    );
    let raced = edit(&s, &racing);
    assert_code(&raced, 4);
    let err = stderr(&raced);
    assert!(err.contains("current head is"), "{err}");
    let (document, _) = s.document();
    assert_eq!(document["other"], "theirs");
    assert_eq!(document["volume"], 12, "the edit was not published");
    let kept = kept_file(&err);
    assert!(std::fs::read_to_string(&kept).unwrap().contains("99"));
    std::fs::remove_file(kept).unwrap();

    // Not JSON any more: exit 2, nothing published, the file kept and named.
    let before = s.document().1;
    let breaks = script(&dir, "breaks", r#"echo '{"volume": ' > "$1""#);
    let broken = edit(&s, &breaks);
    assert_code(&broken, 2);
    let err = stderr(&broken);
    assert!(err.contains("not valid JSON"), "{err}");
    let kept = kept_file(&err);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "{\"volume\": \n");
    std::fs::remove_file(kept).unwrap();
    assert_eq!(s.document().1, before);

    // --json: the write's object.
    let json_edit = tikaconf(&s.args(&["--json", "edit", TIKATOO]))
        .env("VISUAL", "true")
        .env("EDITOR", "false")
        .output()
        .unwrap();
    let out: Value = serde_json::from_str(&ok_line(&json_edit)).unwrap();
    assert_eq!(out["changed"], false);
    assert_eq!(out["head"], before.as_str());
}

/// The path in "your edit is kept in PATH: ...".
fn kept_file(err: &str) -> String {
    let at = err.find("kept in ").expect("the file is named") + "kept in ".len();
    err[at..].split(": ").next().unwrap().trim().to_owned()
}

#[test]
fn http_import_and_export_round_trip_in_every_format() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    ok_line(&s.run(&["set", TIKATOO, "/commands", r#"{"!hi":"hello"}"#]));
    let (_, head) = s.document();

    for format in ["json", "toml", "yaml"] {
        let out = s.run(&["export", "--format", format, TIKATOO]);
        assert_code(&out, 0);
        let file = dir.path().join(format!("doc.{format}"));
        std::fs::write(&file, stdout(&out)).unwrap();
        // Importing what was exported changes nothing.
        let same = s.json(&["import", TIKATOO, file.to_str().unwrap()]);
        assert_eq!(same["changed"], false, "{format}");
        assert_eq!(same["head"], head.as_str());
    }

    // A changed document in each format becomes the document.
    let connection = r##"channel = "#tikatoo"
platform = "twitch""##;
    let files = [
        (
            "new.json",
            r##"{"connection":{"channel":"#tikatoo","platform":"twitch"},"from":"json","list":[1,2]}"##.to_owned(),
        ),
        (
            "new.toml",
            format!("from = \"toml\"\nlist = [1, 2]\n\n[connection]\n{connection}\n"),
        ),
        (
            "new.yml",
            "from: yaml\nlist: [1, 2]\nconnection:\n  channel: '#tikatoo'\n  platform: twitch\n"
                .to_owned(),
        ),
    ];
    let mut last = head;
    for (name, text) in &files {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let written = s.json(&["import", TIKATOO, file.to_str().unwrap()]);
        assert_eq!(written["changed"], true, "{name}");
        let (document, now) = s.document();
        assert_ne!(now, last);
        assert_eq!(written["head"], now.as_str());
        assert_eq!(document["list"], json!([1, 2]));
        assert_eq!(document.get("commands"), None, "the whole document: {name}");
        assert_eq!(
            document["from"],
            name.rsplit('.').next().unwrap().replace("yml", "yaml")
        );
        last = now;
    }
    // Stdin, with --format; and a stale --if-head.
    let yaml = "connection: {channel: '#tikatoo', platform: twitch}\nn: null\n";
    let stale = s.run_with_stdin(
        &[
            "import",
            "--if-head",
            TIKATOO_HASH,
            TIKATOO,
            "-",
            "--format",
            "yaml",
        ],
        yaml,
    );
    assert_code(&stale, 4);
    ok_line(&s.run_with_stdin(&["import", TIKATOO, "-", "--format", "yaml"], yaml));
    assert_eq!(s.document().0["n"], Value::Null);
    // TOML has no null: a clear error, naming where.
    let out = s.run(&["export", "--format", "toml", TIKATOO]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("\"/n\""), "{}", stderr(&out));
    assert_eq!(s.json(&["export", TIKATOO])["document"], s.document().0);
    // Not what the extension says: bad input, nothing published.
    std::fs::write(dir.path().join("bad.toml"), "not = [toml").unwrap();
    let bad = dir.path().join("bad.toml");
    assert_code(&s.run(&["import", TIKATOO, bad.to_str().unwrap()]), 2);
    assert_code(&s.run(&["import", TIKATOO, "/no/such.txt"]), 2);
}

#[test]
fn http_watch_prints_the_snapshot_then_changes_and_survives_a_restart() {
    let mut s = Server::start();
    ok_line(&s.run(&["set", TIKATOO, "/a", "1"]));
    let args = s.args(&["--json", "watch", TIKATOO]);
    let (_watch, lines, first) = spawn(&args);
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["height"], 1);
    assert_eq!(first["ops"], Value::Null);
    assert_eq!(first["document"]["a"], 1);

    let head = ok_line(&s.run(&["set", TIKATOO, "/greeting", r#""hi""#]));
    let change: Value = serde_json::from_str(&lines.next("change")).unwrap();
    assert_eq!(
        change,
        json!({"dropped": false, "head": head, "height": 2,
               "ops": [{"op": "add", "path": "/greeting", "value": "hi"}]})
    );

    // The server goes away and comes back: the watch reconnects with
    // Last-Event-ID and goes on. Whether the next line is the change's ops
    // (reconnected before the write: its head was current) or a snapshot
    // (after it: the head it knew is not current) depends on timing; either
    // way it carries the new state.
    s.restart();
    let head = ok_line(&s.run(&["set", TIKATOO, "/greeting", r#""hello""#]));
    let next: Value = serde_json::from_str(&lines.next("line after restart")).unwrap();
    assert_eq!(next["head"], head.as_str());
    assert_eq!(next["height"], 3);
    match &next["ops"] {
        Value::Null => assert_eq!(next["document"]["greeting"], "hello"),
        // `set` publishes `add`, which replaces an existing member.
        ops => assert_eq!(
            ops,
            &json!([{"op": "add", "path": "/greeting", "value": "hello"}])
        ),
    }
}

/// `log`, `show`, `diff` and `rollback` over `--server`: three writes with
/// `-m` and `--author` are listed newest first with their meta and ops, an
/// old version's document and the diff between versions read back, and a
/// rollback restores a version as a new head that `log` names as such.
#[test]
fn http_log_show_diff_and_rollback_round_trip() {
    let s = Server::start();
    let write = |args: &[&str], message: &str| -> String {
        let head = ok_line(&s.run(&[&["--author", "ana", "-m", message], args].concat()));
        assert_eq!(head.len(), 64);
        head
    };
    let h1 = write(&["set", TIKATOO, "/volume", "1"], "first");
    let h2 = write(
        &["set", TIKATOO, "/commands", r#"{"!hi":"hello"}"#],
        "second",
    );
    let h3 = write(&["rm", TIKATOO, "/volume"], "third, ünïcode");
    let (doc_before, _) = s.document();

    let log = ok_lines(&s.run(&["--json", "log", TIKATOO]));
    assert_eq!(log.len(), 3, "{log:?}");
    let entries: Vec<Value> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hashes: Vec<&str> = entries
        .iter()
        .map(|e| e["hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes, [h3.as_str(), h2.as_str(), h1.as_str()]);
    assert_eq!(entries[0]["message"], "third, ünïcode");
    assert_eq!(entries[2]["message"], "first");
    assert_eq!(entries[0]["height"], 3);
    assert_eq!(entries[0]["parent"], h2.as_str());
    assert_eq!(
        entries[0]["ops"],
        json!([{"op": "remove", "path": "/volume"}])
    );
    for entry in &entries {
        assert_eq!(entry["author"], "ana");
        let time = entry["time"].as_str().unwrap();
        assert!(
            time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
    }
    // Plain: tab-separated, the ops in a few words; --limit.
    let plain = ok_lines(&s.run(&["log", "--limit", "1", TIKATOO]));
    assert_eq!(plain.len(), 1);
    let fields: Vec<&str> = plain[0].split('\t').collect();
    assert_eq!(fields[0], h3);
    assert_eq!(fields[1], "3");
    assert_eq!(fields[3], "ana");
    assert_eq!(fields[5], "remove /volume");
    assert_eq!(
        ok_lines(&s.run(&["log", "--before", "3", TIKATOO])).len(),
        2
    );
    // Without a server the history is out of reach: exit 2, saying why.
    let no_server = run(&["log", TIKATOO]);
    assert_code(&no_server, 2);
    assert!(stderr(&no_server).contains("needs --server"));

    // show: the patch and the document at that version.
    let shown = s.json(&["show", TIKATOO, &h1]);
    assert_eq!(shown["height"], 1);
    assert_eq!(shown["patch"]["message"], "first");
    assert_eq!(shown["document"]["volume"], 1);
    assert!(shown["document"].get("commands").is_none());
    let document = ok_line(&s.run(&["show", TIKATOO, &h2]));
    let document: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["volume"], 1);
    assert_eq!(document["commands"], json!({"!hi": "hello"}));
    assert_code(&s.run(&["show", TIKATOO, &"ab".repeat(32)]), 8);

    // diff: the ops between two versions, either way.
    let diff = s.json(&["diff", TIKATOO, &h1, &h3]);
    assert_eq!(
        (diff["from"].as_str(), diff["to"].as_str()),
        (Some(h1.as_str()), Some(h3.as_str()))
    );
    let mut ops: Vec<Value> = diff["ops"].as_array().unwrap().clone();
    ops.sort_by_key(|op| op["path"].as_str().unwrap().to_owned());
    assert_eq!(
        ops,
        [
            json!({"op": "add", "path": "/commands", "value": {"!hi": "hello"}}),
            json!({"op": "remove", "path": "/volume"}),
        ]
    );
    let plain = ok_line(&s.run(&["diff", TIKATOO, &h3, &h3]));
    assert_eq!(plain, "[]");

    // rollback to h1: a new head at height 4 whose document is h1's.
    let back = s.json(&["-m", "undo", "rollback", TIKATOO, &h1]);
    assert_eq!(back["changed"], true);
    assert_eq!(back["height"], 4);
    let (now, head) = s.document();
    assert_eq!(back["head"], head.as_str());
    assert_ne!(head, h1, "the chain moves forward");
    assert_eq!(now, shown["document"]);
    assert_ne!(now, doc_before);
    let newest: Value =
        serde_json::from_str(&ok_lines(&s.run(&["--json", "log", "--limit", "1", TIKATOO]))[0])
            .unwrap();
    assert_eq!(newest["hash"], head.as_str());
    assert_eq!(newest["rollback_of"], h1.as_str());
    assert_eq!(newest["message"], "undo");
    // Again: already that document, nothing published.
    let again = s.json(&["rollback", TIKATOO, &h1]);
    assert_eq!(
        (again["changed"].clone(), again["head"].clone()),
        (json!(false), json!(head))
    );
}

/// `verify` over `--server`, on a `serve` whose storage node keeps its
/// history in Redis: an untouched chain is `ok` (exit 0), and after one log
/// entry is rewritten in Redis with `LSET` behind the server's back, the
/// altered patch is named (height, hash, why) and the command exits 9.
#[test]
fn http_verify_is_ok_then_names_a_patch_rewritten_in_redis() {
    // With the durable settings the Redis store requires.
    let redis = tikaconf_test::RedisServer::builder()
        .persistence(true)
        .start();
    let url = redis.url();
    let data = tempfile::tempdir().expect("temporary directory");
    let (_serve, addr, _) = start_serve(&[
        "--redis",
        &url,
        "--store",
        "redis",
        "--data",
        data.path().to_str().expect("UTF-8 path"),
    ]);
    let server = format!("http://{addr}");
    let cli = |args: &[&str]| run(&[&["--server", server.as_str()], args].concat());
    let mut heads = Vec::new();
    for (i, value) in ["1", "2", "3"].into_iter().enumerate() {
        heads.push(ok_line(&cli(&["set", TIKATOO, &format!("/v{i}"), value])));
    }

    let ok = ok_line(&cli(&["verify", TIKATOO]));
    assert!(ok.starts_with("ok: 3 patches from height 1 to 3"), "{ok}");
    assert!(ok.contains("the document matches"), "{ok}");
    let report: Value =
        serde_json::from_str(&ok_line(&cli(&["--json", "verify", TIKATOO]))).expect("JSON");
    assert_eq!(
        (
            report["ok"].clone(),
            report["checked"].clone(),
            report["head"].clone()
        ),
        (json!(true), json!(3), json!(heads[2]))
    );

    // Height 2 rewritten in the log list: `"<height> <patch>"`, oldest first.
    let key = format!("tikaconf:log:{TIKATOO_HASH}");
    let mut redis_conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .expect("connect to Redis");
    let entry: String = redis::cmd("LINDEX")
        .arg(&key)
        .arg(1)
        .query(&mut redis_conn)
        .expect("LINDEX");
    assert!(entry.starts_with("2 "), "{entry}");
    let altered = entry.replace("\"value\":2", "\"value\":20");
    assert_ne!(altered, entry);
    let () = redis::cmd("LSET")
        .arg(&key)
        .arg(1)
        .arg(&altered)
        .query(&mut redis_conn)
        .expect("LSET");

    let out = cli(&["verify", TIKATOO]);
    assert_code(&out, 9);
    let err = stderr(&out);
    assert!(err.contains("broken at height 2"), "{err}");
    assert!(err.contains("was altered"), "{err}");
    assert!(err.contains("(altered)"), "{err}");
    let out = cli(&["--json", "verify", TIKATOO]);
    assert_code(&out, 9);
    let report: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(report["ok"], false);
    assert_eq!(report["broken"]["height"], 2);
    assert_eq!(report["broken"]["reason"], "altered");
    assert_ne!(report["broken"]["hash"], json!(heads[1]));
    assert_eq!(report["checked"], 2, "{report}");

    // Without a server: exit 2, as for `log`.
    assert_code(&run(&["verify", TIKATOO]), 2);
}

/// Asserts success and returns stdout's lines.
#[track_caller]
fn ok_lines(out: &Output) -> Vec<String> {
    assert_code(out, 0);
    stdout(out).lines().map(str::to_owned).collect()
}
