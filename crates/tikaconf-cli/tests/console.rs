//! The web console end to end, in real headless Chromium driven over
//! WebDriver (chromedriver, through fantoccini): `tikaconf serve --redis`
//! beside a real `redis-server`, and the `tikaconf` CLI writing over Redis as
//! another member of the fleet would.
//!
//! One test walks what a person does: add a root, set a value and see it
//! committed; watch a change made by the CLI arrive without a reload, its path
//! highlighted; edit the whole document while the CLI changes it, commit, see
//! the conflict and re-apply on top. Each step asserts that its work happened
//! (the server's answer, the CLI's exit) before asserting what the page shows,
//! and waits by polling with a deadline, never by sleeping.
//!
//! Chromium missing is a failure, not a skip: `scripts/test` installs
//! Debian's `chromium` and `chromium-driver`.
//!
//! Screenshots: with `TIKACONF_SCREENSHOTS=DIR` the test saves PNGs of the
//! roots list, a value edited in place, a highlighted change, the conflict
//! panel and a narrow window in DIR; `docs/console/` holds the committed ones:
//!
//! ```text
//! TIKACONF_SCREENSHOTS=docs/console cargo test -p tikaconf-cli --test console
//! ```

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tikaconf_test::RedisServer;

mod common;

use common::*;

/// How long any one step may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// The desktop window of the screenshots.
const WIDE: (u32, u32) = (1280, 800);
/// A narrow window: the console must stay usable in one column.
const NARROW: (u32, u32) = (400, 800);
const INSTALL: &str = "install Debian's packages: sudo apt-get install -y chromium chromium-driver \
                       (scripts/test installs them when missing)";

/// The first of `names` found on `PATH`.
fn program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver on a free loopback port and one headless Chromium session
/// in a fresh profile. The driver is killed when this is dropped.
struct Browser {
    client: Client,
    _driver: Guard,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let driver = program(&["chromedriver"])
            .unwrap_or_else(|| panic!("no chromedriver on PATH: {INSTALL}"));
        let chromium = program(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("no chromium on PATH: {INSTALL}"));
        let port = tikaconf_test::free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", driver.display()));
        let guard = Guard(child);
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={},{}", WIDE.0, WIDE.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let client = poll("chromedriver to accept a session", || async {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
                .ok()
        })
        .await;
        Browser {
            client,
            _driver: guard,
            _profile: profile,
        }
    }

    /// Runs `script` (its `return` value comes back as JSON): reads the page.
    async fn read(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Clicks the element `css` selects.
    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into whatever has the focus, as a person at the keyboard.
    async fn keys(&self, text: &str) {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type {text:?}: {e}"));
    }

    /// Saves a screenshot as `DIR/name.png` when `TIKACONF_SCREENSHOTS=DIR`.
    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("TIKACONF_SCREENSHOTS") else {
            return;
        };
        // A relative directory is taken from the workspace root, where the
        // documented command runs (cargo runs tests in the crate's directory).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Polls `probe` every 50 ms until it gives a value; fails after [`DEADLINE`].
async fn poll<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "waited {DEADLINE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One HTTP/1.1 request to `serve`: (status, ETag without quotes, body).
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to serve");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a header block");
    let status = head[9..12].parse().expect("a status");
    let etag = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("etag:")
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_default();
    (status, etag, body.to_owned())
}

/// The configuration as the server has it: (head, document).
fn server_config(addr: &str, root: &str) -> (String, Value) {
    let (status, head, body) = http(addr, "GET", &format!("/v1/configs/{root}"), None);
    assert_eq!(status, 200, "{body}");
    (head, serde_json::from_str(&body).unwrap())
}

/// The CLI as another writer of the fleet: `tikaconf --redis URL set ...`;
/// returns the head it printed.
fn cli_set(redis: &str, pointer: &str, value: &str) -> String {
    let out = run(&["--redis", redis, "set", "twitch:#console", pointer, value]);
    ok_line(&out)
}

/// What the page shows of the open configuration.
const PAGE_STATE: &str = r#"
    const q = (s) => document.querySelector(s);
    const row = (p) => [...document.querySelectorAll('#tree li[data-pointer]')].find((li) => li.dataset.pointer === p);
    return {
        hash: location.hash,
        head: q('#config-head')?.dataset.head ?? null,
        notice: q('#notice').hidden ? '' : q('#notice').textContent,
        dirty: !q('#dirty').hidden,
        conflict: q('#conflict').hidden ? null : {
            theirs: q('#conflict-theirs').textContent,
            mine: q('#conflict-mine').textContent,
        },
        rows: Object.fromEntries([...document.querySelectorAll('#tree li[data-pointer]')].map((li) => [
            li.dataset.pointer,
            { value: li.querySelector(':scope > .row > .value').textContent, changed: li.classList.contains('changed') },
        ])),
        editor: q('#editor .cm-content')?.innerText ?? null,
        focused: document.activeElement?.dataset?.pointer ?? document.activeElement?.id ?? null,
    };
"#;

#[test]
fn the_console_adds_sets_shows_live_changes_and_resolves_a_conflict() {
    let started = Instant::now();
    let redis = RedisServer::builder().persistence(true).start();
    let url = redis.url();
    let addr = format!("127.0.0.1:{}", tikaconf_test::free_port());
    let (_serve, _lines, first) = spawn(&["serve", "--listen", &addr, "--redis", &url]);
    assert!(first.contains(&format!("http://{addr}")), "{first}");
    // Neighbours in the list, as a fleet would have them.
    for (channel, document) in [
        (
            "#lounge",
            json!({"volume": 4, "greeting": "Welcome to the lounge"}),
        ),
        (
            "#speedruns",
            json!({"timer": true, "splits": ["1-1", "1-2", "boss"]}),
        ),
        ("#music", json!({"queue": {"max": 20, "votes": true}})),
    ] {
        let connection = json!({"platform": "twitch", "channel": channel});
        let (status, _, body) = http(&addr, "POST", "/v1/roots", Some(&connection));
        assert_eq!(status, 201, "{body}");
        let path = format!("/v1/configs/twitch:{}", channel.replace('#', "%23"));
        let (status, _, body) = http(&addr, "PUT", &path, Some(&document));
        assert_eq!(status, 200, "{body}");
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        let b = &browser;
        b.client.goto(&format!("http://{addr}/")).await.unwrap();
        poll("the roots list", || async {
            let n = b.read("return document.querySelectorAll('#roots a.root-item').length").await;
            (n.as_u64() == Some(3)).then_some(())
        })
        .await;

        // Add a root, with the keyboard: `a` opens the form, Enter submits.
        b.keys("a").await;
        poll("the add form to take the focus", || async {
            (b.read("return document.activeElement.id").await == "add-channel").then_some(())
        })
        .await;
        b.keys(&format!("console{}", Key::Enter)).await;
        let root = poll("the server to list #console", || async {
            let (_, _, body) = http(&addr, "GET", "/v1/roots", None);
            let listed: Value = serde_json::from_str(&body).ok()?;
            listed["roots"].as_array()?.iter().find_map(|r| {
                (r["connection"]["channel"] == "#console").then(|| r["root"].as_str().unwrap().to_owned())
            })
        })
        .await;
        let (head0, document0) = server_config(&addr, &root);
        let connection = json!({"channel": "#console", "platform": "twitch"});
        assert_eq!(document0, json!({"connection": connection}), "a new root's document");
        poll("the page to open the new root at its head", || async {
            let page = b.read(PAGE_STATE).await;
            (page["hash"] == format!("#/r/{root}") && page["head"] == head0.as_str()).then_some(())
        })
        .await;

        // Set a value in the tree: `+` on the document, a key, Enter, the
        // value, Enter (a PATCH with If-Match on the head shown).
        poll("the tree to have the focus", || async {
            (b.read(PAGE_STATE).await["focused"] == "").then_some(())
        })
        .await;
        b.keys("+").await;
        b.keys(&format!("volume{}", Key::Enter)).await;
        b.keys("11").await;
        b.screenshot("edit-value").await;
        b.keys(&Key::Enter.to_string()).await;
        let (head1, document1) = poll("the server to commit /volume", || async {
            let (head, document) = server_config(&addr, &root);
            (head != head0).then_some((head, document))
        })
        .await;
        assert_eq!(document1, json!({"connection": connection, "volume": 11}));
        poll("the page to show the committed head and value", || async {
            let page = b.read(PAGE_STATE).await;
            (page["head"] == head1.as_str()
                && page["rows"]["/volume"]["value"] == "11"
                && page["notice"].as_str()?.contains("Committed"))
            .then_some(())
        })
        .await;
        b.screenshot("roots").await;

        // A change made by the CLI (over Redis, not through this server)
        // appears without a reload, its path highlighted.
        let head2 = cli_set(&url, "/greeting", r#""hello from the CLI""#);
        poll("the server to have the CLI's write", || async {
            (server_config(&addr, &root).0 == head2).then_some(())
        })
        .await;
        poll("the CLI's change to appear, highlighted", || async {
            let page = b.read(PAGE_STATE).await;
            (page["head"] == head2.as_str()
                && page["rows"]["/greeting"]["value"] == r#""hello from the CLI""#
                && page["rows"]["/greeting"]["changed"] == true
                && page["rows"]["/volume"]["changed"] == false)
            .then_some(())
        })
        .await;
        b.screenshot("live-change").await;

        // A conflicting edit: the whole document in the JSON editor, while
        // the CLI changes it; commit, see what the CLI did, re-apply on top.
        b.keys("j").await;
        poll("the editor to hold the document", || async {
            let page = b.read(PAGE_STATE).await;
            let text = page["editor"].as_str()?;
            (serde_json::from_str::<Value>(text).ok()?
                == json!({"connection": connection, "greeting": "hello from the CLI", "volume": 11})
                && b.read("return !!document.activeElement.closest('#editor')").await == true)
                .then_some(())
        })
        .await;
        // Select all, then type the new document (the editor closes brackets
        // and quotes as they are typed, and steps over the closing ones).
        b.keys(&format!("{}a{}", Key::Control, Key::Null)).await;
        b.keys(concat!(
            r##"{"connection": {"channel": "#console", "platform": "twitch"}, "##,
            r#""greeting": "hello from the CLI", "volume": 12}"#
        ))
        .await;
        poll("the page to hold the edit", || async {
            let page = b.read(PAGE_STATE).await;
            let edited: Value = serde_json::from_str(page["editor"].as_str()?).ok()?;
            (page["dirty"] == true
                && edited == json!({"connection": connection, "greeting": "hello from the CLI", "volume": 12}))
                .then_some(())
        })
        .await;
        let head3 = cli_set(&url, "/mode", r#""party""#);
        poll("the server to have the CLI's write", || async {
            (server_config(&addr, &root).0 == head3).then_some(())
        })
        .await;
        poll("the page to see the head move under the edit", || async {
            let page = b.read(PAGE_STATE).await;
            (page["head"] == head3.as_str() && page["notice"].as_str()?.contains("/mode"))
                .then_some(())
        })
        .await;
        b.keys(&format!("{}s{}", Key::Control, Key::Null)).await;
        let conflict = poll("the conflict panel", || async {
            let page = b.read(PAGE_STATE).await;
            page["conflict"].is_object().then(|| page["conflict"].clone())
        })
        .await;
        assert!(
            conflict["theirs"].as_str().unwrap().contains("/mode")
                && conflict["theirs"].as_str().unwrap().contains("party"),
            "the panel names what the CLI changed: {conflict}"
        );
        assert!(
            conflict["mine"].as_str().unwrap().contains("/volume"),
            "and the edit: {conflict}"
        );
        assert_eq!(server_config(&addr, &root).0, head3, "nothing written yet");
        b.screenshot("conflict").await;
        b.click("#reapply").await;
        let (head4, document4) = poll("the re-applied edit to commit", || async {
            let (head, document) = server_config(&addr, &root);
            (head != head3).then_some((head, document))
        })
        .await;
        assert_eq!(
            document4,
            json!({"connection": connection, "greeting": "hello from the CLI", "mode": "party", "volume": 12}),
            "both changes"
        );
        poll("the page to show the result", || async {
            let page = b.read(PAGE_STATE).await;
            let shown: Value = serde_json::from_str(page["editor"].as_str()?).ok()?;
            (page["head"] == head4.as_str()
                && page["conflict"].is_null()
                && page["dirty"] == false
                && shown == document4)
                .then_some(())
        })
        .await;

        // A narrow window: one column, the document with a way back.
        b.keys("t").await;
        b.client
            .set_window_size(NARROW.0, NARROW.1)
            .await
            .unwrap();
        poll("one column", || async {
            let layout = b
                .read(
                    "const shown = (id) => getComputedStyle(document.getElementById(id)).display !== 'none';
                     return [shown('roots-pane'), shown('config-pane'), shown('back'),
                             document.documentElement.scrollWidth <= window.innerWidth];",
                )
                .await;
            // The list hidden, the document shown with a way back, and
            // nothing wider than the window.
            (layout == json!([false, true, true, true])).then_some(())
        })
        .await;
        b.screenshot("narrow").await;
        b.click("#back").await;
        poll("the roots list in one column", || async {
            let layout = b
                .read(
                    "const shown = (id) => getComputedStyle(document.getElementById(id)).display !== 'none';
                     return [shown('roots-pane'), shown('config-pane')];",
                )
                .await;
            (layout == json!([true, false])).then_some(())
        })
        .await;
        // Back to the document with the keyboard: `/` to search, a few
        // letters, Down into the list, Enter.
        b.keys("/").await;
        b.keys("consol").await;
        poll("the search to leave one root", || async {
            let n = b.read("return document.querySelectorAll('#roots a.root-item').length").await;
            (n.as_u64() == Some(1)).then_some(())
        })
        .await;
        b.keys(&format!("{}{}", Key::Down, Key::Enter)).await;
        poll("the document to open again", || async {
            let page = b.read(PAGE_STATE).await;
            (page["hash"] == format!("#/r/{root}") && page["head"] == head4.as_str()).then_some(())
        })
        .await;
        b.client.clone().close().await.unwrap();
    });
    eprintln!("console test: {:.1} s", started.elapsed().as_secs_f64());
}

/// `serve --token`: the page loads without it (its files hold no data), asks
/// for it on the API's first 401, and lists the roots once it is given; the
/// event stream (read with `fetch`) carries it too.
#[test]
fn the_console_asks_for_the_token_and_sends_it() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let addr = format!("127.0.0.1:{}", tikaconf_test::free_port());
    let (_serve, _lines, first) = spawn(&[
        "serve",
        "--listen",
        &addr,
        "--data",
        data,
        "--token",
        "open-sesame",
    ]);
    assert!(first.contains(&format!("http://{addr}")), "{first}");
    let (status, _, _) = http(&addr, "GET", "/v1/roots", None);
    assert_eq!(status, 401, "the API needs the token");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        let b = &browser;
        b.client.goto(&format!("http://{addr}/")).await.unwrap();
        poll("the token prompt", || async {
            let asked = b
                .read("return document.getElementById('token-dialog').open && document.activeElement.id")
                .await;
            (asked == "token").then_some(())
        })
        .await;
        b.keys(&format!("open-sesame{}", Key::Enter)).await;
        poll("the page to list roots with the token", || async {
            let shown = b
                .read("return !document.getElementById('token-dialog').open && document.getElementById('roots-empty').textContent")
                .await;
            shown.as_str()?.contains("No roots yet").then_some(())
        })
        .await;
        // Add a root and open it: the read and the event stream carry the token.
        b.keys("a").await;
        b.keys(&format!("guarded{}", Key::Enter)).await;
        poll("the document, live", || async {
            let page = b.read(PAGE_STATE).await;
            let live = b.read("return document.getElementById('live').dataset.state").await;
            (page["head"].is_string() && live == "live").then_some(())
        })
        .await;
        b.client.clone().close().await.unwrap();
    });
}
