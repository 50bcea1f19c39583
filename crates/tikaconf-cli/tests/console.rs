//! The web console end to end, in real headless Chromium driven over
//! WebDriver (chromedriver, through fantoccini): `tikaconf serve --redis`
//! beside a real `redis-server`, and the `tikaconf` CLI writing over Redis as
//! another member of the fleet would.
//!
//! One test walks what a person does: add a root, set a value and see it
//! committed; watch a change made by the CLI arrive without a reload, its path
//! highlighted; edit the whole document while the CLI changes it, commit, see
//! the conflict and re-apply on top. Another reads the History tab of changes
//! written through the API (who, when, why, each diff), rolls back through
//! the confirmation (cancelled once, then confirmed), meets a head moved
//! behind the page's back between the diff and the confirmation, pages with
//! "Load more", and sees what a short or no retention leaves. Each step
//! asserts that its work happened (the server's answer, the CLI's exit)
//! before asserting what the page shows, and waits by polling with a
//! deadline, never by sleeping.
//!
//! Chromium missing is a failure, not a skip: `scripts/test` installs
//! Debian's `chromium` and `chromium-driver`.
//!
//! Screenshots: with `TIKACONF_SCREENSHOTS=DIR` the test saves PNGs of the
//! roots list, a value edited in place, a highlighted change, the conflict
//! panel, a narrow window, the history, a rollback's confirmation and its
//! conflict in DIR; `docs/console/` holds the committed ones:
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
    request(addr, method, path, &[], body)
}

/// [`http`] with more headers (`content-type` is `application/json` unless
/// given).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to serve");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("content-type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(stream, "{head}content-length: {}\r\n\r\n{body}", body.len()).unwrap();
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

/// What the history tab shows: one object per entry, newest first, and the
/// rollback dialog.
const HISTORY_STATE: &str = r#"
    const q = (s) => document.querySelector(s);
    const dialog = q('#rollback-dialog');
    return {
        head: q('#config-head')?.dataset.head ?? null,
        notice: q('#notice').hidden ? '' : q('#notice').textContent,
        status: q('#history-status').textContent,
        more: !q('#history-more').hidden,
        entries: [...document.querySelectorAll('#history > li')].map((li) => ({
            height: Number(li.dataset.height),
            hash: li.dataset.hash,
            author: li.querySelector('.hist-author')?.textContent ?? null,
            time: li.querySelector('time')?.dateTime ?? null,
            title: li.querySelector('time')?.title ?? null,
            message: li.querySelector('.hist-message')?.textContent ?? null,
            restores: li.querySelector('.hist-restores code')?.title ?? null,
            current: !!li.querySelector('.badge.current'),
            rollback: !!li.querySelector('button.rollback'),
            diff: li.querySelector('.hist-diff')?.innerText ?? null,
            unfolded: li.querySelector('.hist-diff')?.open ?? false,
        })),
        dialog: !dialog.open ? null : {
            title: q('#rollback-title').textContent,
            summary: q('#rollback-summary').textContent,
            status: q('#rollback-status').textContent,
            ops: q('#rollback-ops').innerText,
            count: q('#rollback-ops').children.length,
            confirm: !q('#rollback-confirm').disabled,
            error: q('#rollback-error').hidden ? null : q('#rollback-error').textContent,
            review: !q('#rollback-review').hidden,
        },
        focused: document.activeElement?.id || document.activeElement?.dataset?.part || null,
    };
"#;

/// A write through the API as a person would make it: with who and why
/// (`Tikaconf-Author`, `Tikaconf-Message`); returns the new head.
fn api_write(
    addr: &str,
    root: &str,
    method: &str,
    body: &Value,
    author: &str,
    message: &str,
) -> String {
    let content_type = if method == "PATCH" {
        "application/json-patch+json"
    } else {
        "application/json"
    };
    let (status, head, answer) = request(
        addr,
        method,
        &format!("/v1/configs/{root}"),
        &[
            ("content-type", content_type),
            ("tikaconf-author", author),
            ("tikaconf-message", message),
        ],
        Some(body),
    );
    assert_eq!(status, 200, "{method} {body}: {answer}");
    head
}

/// A GET of the API, answered 200, as JSON.
fn api_get(addr: &str, path: &str) -> Value {
    let (status, _, body) = http(addr, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The History tab: changes written through the API with authors and
/// messages are listed newest first with their diffs; a rollback shows the
/// diff it will apply, does nothing when cancelled, and writes a new head
/// naming the version it restored when confirmed; a head moved behind the
/// page's back between the diff and the confirmation is refused (nothing
/// applied) and said so in the dialog; "Load more" pages past 50 entries.
#[test]
fn the_console_shows_the_history_and_rolls_back() {
    let started = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let addr = format!("127.0.0.1:{}", tikaconf_test::free_port());
    let (_serve, _lines, first) = spawn(&["serve", "--listen", &addr, "--data", data]);
    assert!(first.contains(&format!("http://{addr}")), "{first}");
    let connection = json!({"platform": "twitch", "channel": "#history"});
    let (status, _, body) = http(&addr, "POST", "/v1/roots", Some(&connection));
    assert_eq!(status, 201, "{body}");
    let root = serde_json::from_str::<Value>(&body).unwrap()["root"]
        .as_str()
        .unwrap()
        .to_owned();

    // Three changes by two people, the third author's name in UTF-8
    // (percent-encoded in the header, as API.md says).
    let h1 = api_write(
        &addr,
        &root,
        "PUT",
        &json!({"connection": connection, "volume": 3, "greeting": "hi"}),
        "ana",
        "first settings",
    );
    let h2 = api_write(
        &addr,
        &root,
        "PATCH",
        &json!([{"op": "replace", "path": "/volume", "value": 7}]),
        "bo",
        "louder",
    );
    let h3 = api_write(
        &addr,
        &root,
        "PATCH",
        &json!([{"op": "add", "path": "/mode", "value": "party"}, {"op": "remove", "path": "/greeting"}]),
        "ana%20%C3%A9",
        "party%20mode",
    );
    let document1 = api_get(&addr, &format!("/v1/configs/{root}/at/{h1}"))["document"].clone();
    assert_eq!(
        document1,
        json!({"connection": connection, "volume": 3, "greeting": "hi"})
    );
    let written = api_get(&addr, &format!("/v1/configs/{root}/history"));
    assert_eq!(
        written["entries"].as_array().unwrap().len(),
        3,
        "three entries written: {written}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await;
        let b = &browser;
        b.client
            .goto(&format!("http://{addr}/#/r/{root}"))
            .await
            .unwrap();
        poll("the page at the third head", || async {
            (b.read(HISTORY_STATE).await["head"] == h3.as_str()).then_some(())
        })
        .await;
        b.click("#tab-history").await;
        let page = poll(
            "the history: three changes and the registration",
            || async {
                let page = b.read(HISTORY_STATE).await;
                (page["entries"].as_array()?.len() == 4).then_some(page)
            },
        )
        .await;
        let entries = page["entries"].as_array().unwrap();
        let heights: Vec<_> = entries
            .iter()
            .map(|e| e["height"].as_u64().unwrap())
            .collect();
        assert_eq!(
            heights,
            [3, 2, 1, 0],
            "newest first, down to the registration"
        );
        let hashes: Vec<_> = entries
            .iter()
            .map(|e| e["hash"].as_str().unwrap())
            .collect();
        assert_eq!(
            hashes,
            [h3.as_str(), h2.as_str(), h1.as_str(), root.as_str()]
        );
        let authors: Vec<_> = entries
            .iter()
            .map(|e| e["author"].as_str().unwrap())
            .collect();
        assert_eq!(authors, ["ana é", "bo", "ana", "registered"]);
        let messages: Vec<_> = entries[..3]
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(messages, ["party mode", "louder", "first settings"]);
        // The time: readable on the page, exact (the API's value) in the tooltip.
        for (shown, api) in entries.iter().zip(written["entries"].as_array().unwrap()) {
            let time = api["time"].as_str().unwrap();
            assert_eq!(shown["time"], time, "{shown}");
            assert!(
                shown["title"].as_str().unwrap().starts_with(time),
                "{shown}"
            );
        }
        // The head is marked and cannot be rolled back to; the others can.
        let current: Vec<_> = entries.iter().map(|e| e["current"] == true).collect();
        assert_eq!(current, [true, false, false, false]);
        let buttons: Vec<_> = entries.iter().map(|e| e["rollback"] == true).collect();
        assert_eq!(buttons, [false, true, true, true]);
        // Each diff is folded under a summary of its ops.
        let diff3 = entries[0]["diff"].as_str().unwrap();
        assert!(
            diff3.contains("2 changes")
                && diff3.contains("add /mode")
                && diff3.contains("remove /greeting"),
            "{diff3}"
        );
        assert!(
            entries[1]["diff"]
                .as_str()
                .unwrap()
                .contains("replace /volume")
        );
        // Unfolded, it shows each value before and after.
        b.click("#history li[data-height='2'] summary").await;
        poll(
            "the unfolded diff of height 2, with the value it replaced",
            || async {
                let page = b.read(HISTORY_STATE).await;
                let entry = &page["entries"][1];
                // "set" once the version before is read ("replace" until then);
                // the op's name is upper-cased by the style.
                let text = entry["diff"].as_str()?.to_lowercase();
                (entry["unfolded"] == true
                    && text.contains("set")
                    && text.contains("/volume")
                    && text.contains('3')
                    && text.contains('7'))
                .then_some(())
            },
        )
        .await;
        b.screenshot("history").await;

        // Roll back to height 1: the dialog shows the diff from the head.
        b.click("#history li[data-height='1'] button.rollback")
            .await;
        let diff = api_get(&addr, &format!("/v1/configs/{root}/diff?from={h3}&to={h1}"));
        let ops = diff["ops"].as_array().unwrap().len();
        let dialog = poll("the confirmation with its diff", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["dialog"]["confirm"] == true).then(|| page["dialog"].clone())
        })
        .await;
        assert_eq!(
            dialog["count"], ops,
            "one line per op of the API's diff: {dialog}"
        );
        let shown = dialog["ops"].as_str().unwrap();
        for part in [
            "/volume",
            "7",
            "3",
            "/greeting",
            "\"hi\"",
            "/mode",
            "\"party\"",
        ] {
            assert!(
                shown.contains(part),
                "the dialog's diff names {part}: {shown}"
            );
        }
        assert!(
            dialog["summary"].as_str().unwrap().contains(&h3[..10]),
            "{dialog}"
        );
        b.screenshot("rollback").await;
        // Cancel: nothing written.
        b.click("#rollback-cancel").await;
        poll("the dialog to close", || async {
            b.read(HISTORY_STATE).await["dialog"]
                .is_null()
                .then_some(())
        })
        .await;
        assert_eq!(
            server_config(&addr, &root).0,
            h3,
            "a cancelled rollback writes nothing"
        );

        // Again, with a message, and confirm.
        b.click("#history li[data-height='1'] button.rollback")
            .await;
        poll("the confirmation, ready", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["dialog"]["confirm"] == true && page["focused"] == "rollback-message")
                .then_some(())
        })
        .await;
        b.keys("back to the first settings").await;
        b.click("#rollback-confirm").await;
        let (h4, document4) = poll("the rollback to commit", || async {
            let (head, document) = server_config(&addr, &root);
            (head != h3).then_some((head, document))
        })
        .await;
        assert_eq!(
            document4, document1,
            "the document is the first version's again"
        );
        // The follower's head moves when the patch is on the bus, the
        // store's history when it is stored: wait for both.
        let top = poll("the rollback in the store's history", || async {
            let page = api_get(&addr, &format!("/v1/configs/{root}/history?limit=1"));
            (page["entries"][0]["hash"] == h4.as_str()).then(|| page["entries"][0].clone())
        })
        .await;
        assert_eq!(top["height"], 4, "the chain moved forward");
        assert_eq!(top["rollback_of"], h1.as_str(), "{top}");
        assert_eq!(top["message"], "back to the first settings", "{top}");
        let page = poll(
            "the new entry at the top, naming the version restored",
            || async {
                let page = b.read(HISTORY_STATE).await;
                (page["dialog"].is_null()
                    && page["head"] == h4.as_str()
                    && page["entries"][0]["hash"] == h4.as_str())
                .then_some(page)
            },
        )
        .await;
        let entry = &page["entries"][0];
        assert_eq!(
            entry["restores"],
            format!("Restored version {h1}"),
            "{entry}"
        );
        assert_eq!(entry["message"], "back to the first settings");
        assert_eq!(entry["current"], true);
        assert_eq!(page["entries"].as_array().unwrap().len(), 5);
        assert!(
            page["notice"].as_str().unwrap().contains("Rolled back"),
            "{page}"
        );

        // The conflict: the dialog computes its diff on h4; another writer
        // moves the head; confirming is refused and nothing is applied.
        b.click("#history li[data-height='2'] button.rollback")
            .await;
        poll("the confirmation on h4", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["dialog"]["confirm"] == true
                && page["dialog"]["summary"].as_str()?.contains(&h4[..10]))
            .then_some(())
        })
        .await;
        let h5 = api_write(
            &addr,
            &root,
            "PATCH",
            &json!([{"op": "add", "path": "/mode", "value": "calm"}]),
            "carol",
            "calm down",
        );
        let (_, document5) = server_config(&addr, &root);
        b.click("#rollback-confirm").await;
        let dialog = poll("the conflict in the dialog", || async {
            let page = b.read(HISTORY_STATE).await;
            page["dialog"]["error"]
                .is_string()
                .then(|| page["dialog"].clone())
        })
        .await;
        let error = dialog["error"].as_str().unwrap();
        assert!(
            error.contains("Not rolled back")
                && error.contains("nothing was applied")
                && error.contains(&h5[..10]),
            "{dialog}"
        );
        assert_eq!(dialog["review"], true, "{dialog}");
        assert_eq!(dialog["confirm"], false, "{dialog}");
        assert_eq!(
            server_config(&addr, &root),
            (h5.clone(), document5.clone()),
            "unchanged"
        );
        let top = api_get(&addr, &format!("/v1/configs/{root}/history?limit=1"));
        assert_eq!(
            top["entries"][0]["hash"],
            h5.as_str(),
            "no rollback written"
        );
        b.screenshot("rollback-conflict").await;
        // "Review the new diff" computes it again, on the new head.
        b.click("#rollback-review").await;
        poll("the diff again, on h5", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["dialog"]["confirm"] == true
                && page["dialog"]["error"].is_null()
                && page["dialog"]["summary"].as_str()?.contains(&h5[..10]))
            .then_some(())
        })
        .await;
        b.keys(&Key::Escape.to_string()).await;
        poll("Esc to close the dialog", || async {
            b.read(HISTORY_STATE).await["dialog"]
                .is_null()
                .then_some(())
        })
        .await;
        assert_eq!(server_config(&addr, &root).0, h5);

        // More than a page: 50 more changes; a fresh page lists the newest
        // 50 and "Load more" the rest, down to the registration.
        for i in 0..50 {
            api_write(
                &addr,
                &root,
                "PATCH",
                &json!([{"op": "add", "path": "/count", "value": i}]),
                "bulk",
                &format!("count%20{i}"),
            );
        }
        let head = server_config(&addr, &root).0;
        b.client.refresh().await.unwrap();
        poll("the page at the newest head", || async {
            (b.read(HISTORY_STATE).await["head"] == head.as_str()).then_some(())
        })
        .await;
        b.click("#tab-history").await;
        let page = poll("the first page", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["entries"].as_array()?.len() == 50).then_some(page)
        })
        .await;
        assert_eq!(page["more"], true);
        assert_eq!(page["entries"][0]["height"], 55);
        assert_eq!(page["entries"][49]["height"], 6);
        b.click("#history-more").await;
        let page = poll("the rest", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["entries"].as_array()?.len() == 56).then_some(page)
        })
        .await;
        let heights: Vec<_> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["height"].as_u64().unwrap())
            .collect();
        assert_eq!(
            heights,
            (0..=55).rev().collect::<Vec<_>>(),
            "no gap, no repeat"
        );
        assert_eq!(page["more"], false);

        // A server that keeps the last 2 patches: the list says where it
        // stops, and an older version cannot be rebuilt (410), which the
        // dialog says instead of offering to roll back.
        let short = tempfile::tempdir().unwrap();
        let short = short.path().to_str().unwrap();
        let addr2 = format!("127.0.0.1:{}", tikaconf_test::free_port());
        let (_serve2, _lines2, _) = spawn(&[
            "serve",
            "--listen",
            &addr2,
            "--data",
            short,
            "--retention",
            "2",
        ]);
        let (status, _, body) = http(&addr2, "POST", "/v1/roots", Some(&connection));
        assert_eq!(status, 201, "{body}");
        let mut head2 = String::new();
        for volume in 1..=3 {
            head2 = api_write(
                &addr2,
                &root,
                "PATCH",
                &json!([{"op": "add", "path": "/volume", "value": volume}]),
                "ana",
                "turn",
            );
        }
        let (status, _, body) = http(
            &addr2,
            "GET",
            &format!("/v1/configs/{root}/diff?from={root}&to={root}"),
            None,
        );
        assert_eq!(status, 410, "height 0 is no longer rebuilt: {body}");
        b.client
            .goto(&format!("http://{addr2}/#/r/{root}"))
            .await
            .unwrap();
        poll("the page at the head", || async {
            (b.read(HISTORY_STATE).await["head"] == head2.as_str()).then_some(())
        })
        .await;
        b.click("#tab-history").await;
        let page = poll("the two entries kept", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["entries"].as_array()?.len() == 2).then_some(page)
        })
        .await;
        assert_eq!(page["entries"][1]["height"], 2);
        let count = b
            .read("return document.getElementById('history-count').textContent")
            .await;
        assert!(
            count.as_str().unwrap().contains("the last 2 per root"),
            "{count}"
        );
        b.click("#history li[data-height='2'] button.rollback")
            .await;
        let dialog = poll("the dialog to say the version is gone", || async {
            let page = b.read(HISTORY_STATE).await;
            page["dialog"]["error"]
                .is_string()
                .then(|| page["dialog"].clone())
        })
        .await;
        assert!(
            dialog["error"]
                .as_str()
                .unwrap()
                .contains("can no longer be restored"),
            "{dialog}"
        );
        assert_eq!(dialog["confirm"], false, "{dialog}");
        b.click("#rollback-cancel").await;

        // A server that keeps none: the tab says so.
        let none = tempfile::tempdir().unwrap();
        let none = none.path().to_str().unwrap();
        let addr3 = format!("127.0.0.1:{}", tikaconf_test::free_port());
        let (_serve3, _lines3, _) = spawn(&[
            "serve",
            "--listen",
            &addr3,
            "--data",
            none,
            "--retention",
            "none",
        ]);
        let (status, _, body) = http(&addr3, "POST", "/v1/roots", Some(&connection));
        assert_eq!(status, 201, "{body}");
        let head3 = api_write(
            &addr3,
            &root,
            "PATCH",
            &json!([{"op": "add", "path": "/volume", "value": 1}]),
            "ana",
            "turn",
        );
        b.client
            .goto(&format!("http://{addr3}/#/r/{root}"))
            .await
            .unwrap();
        poll("the page at the head", || async {
            (b.read(HISTORY_STATE).await["head"] == head3.as_str()).then_some(())
        })
        .await;
        b.click("#tab-history").await;
        poll("the history tab to say none is kept", || async {
            let page = b.read(HISTORY_STATE).await;
            (page["status"].as_str()?.contains("keeps no history") && page["entries"] == json!([]))
                .then_some(())
        })
        .await;
        b.client.clone().close().await.unwrap();
    });
    eprintln!(
        "console history test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
