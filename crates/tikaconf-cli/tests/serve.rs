//! `tikaconf serve`, run as users run it: alone (no Redis), with a token, and
//! joining a fleet over a real `redis-server` beside a plain `tikaconf storage`
//! node and a library follower.
//!
//! The HTTP API's every status is tested in `tikaconf-server`; these tests
//! check the command's wiring, over a minimal HTTP/1.1 client on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};
use tikaconf::testing::{self, PATIENCE};
use tikaconf::{Client, RootConfig};
use tikaconf_test::RedisServer;

mod common;

use common::*;

/// An HTTP answer: status, headers (lower-case names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn etag(&self) -> String {
        self.header("etag")
            .expect("an ETag")
            .trim_matches('"')
            .to_owned()
    }
}

/// Writes one request with `Connection: close`, returns the open stream.
fn send(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect to serve");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    stream
}

fn call(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = send(addr, method, path, headers, body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    let body = if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// SSE events (`event`, `id`, `data`) read line by line from an open stream.
struct Events(BufReader<TcpStream>);

impl Events {
    fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> Events {
        let mut reader = BufReader::new(send(addr, "GET", path, headers, ""));
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        Events(reader)
    }

    /// The next event's (name, id, data); chunk sizes and comments skipped.
    fn next(&mut self) -> (String, String, Value) {
        let (mut event, mut id) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            assert!(self.0.read_line(&mut line).unwrap() > 0, "the stream ended");
            let line = line.trim_end();
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                return (event, id, serde_json::from_str(v).unwrap());
            }
        }
    }
}

#[test]
fn serve_refuses_a_non_loopback_address_without_a_token() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let out = run(&["serve", "--listen", "0.0.0.0:0", "--data", data]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("without a token"), "{}", stderr(&out));
    // --no-storage needs a fleet.
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--no-storage"]);
    assert_code(&out, 2);
}

/// No Redis anywhere: register, write with If-Match, read back, and the
/// write survives a restart (the redb store in --data).
#[test]
fn serve_alone_needs_no_redis_and_keeps_its_writes() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let dir = dir.to_str().unwrap();
    let path = "/v1/configs/twitch:%23tikatoo";
    let head = {
        let (_serve, addr, first) = start_serve(&["--data", dir]);
        assert!(first.contains("redb"), "{first}");
        let json = [("content-type", "application/json")];
        let created = call(
            &addr,
            "POST",
            "/v1/roots",
            &json,
            r##"{"platform":"twitch","channel":"#tikatoo"}"##,
        );
        assert_eq!(created.status, 201, "{}", created.body);
        let head0 = call(&addr, "GET", path, &[], "").etag();
        let tag = format!("\"{head0}\"");
        let patched = call(
            &addr,
            "PATCH",
            path,
            &[
                ("content-type", "application/json-patch+json"),
                ("if-match", &tag),
            ],
            r#"[{"op":"add","path":"/volume","value":11}]"#,
        );
        assert_eq!(patched.status, 200, "{}", patched.body);
        assert_eq!(patched.header("tikaconf-height"), Some("1"));
        let ready = call(&addr, "GET", "/readyz", &[], "");
        assert_eq!(ready.status, 200, "{}", ready.body);
        patched.etag()
    };
    let (_serve, addr, _) = start_serve(&["--data", dir]);
    let got = call(&addr, "GET", path, &[], "");
    assert_eq!(got.status, 200);
    assert_eq!(got.etag(), head);
    assert_eq!(got.json()["volume"], 11);
    // Listed with its new head. (The platform filter would skip it: redb
    // keeps a root's registration only while it is at height 0.)
    let listed = call(&addr, "GET", "/v1/roots", &[], "").json();
    assert_eq!(listed["roots"][0]["head"], head);
}

/// `/metrics` on the API: a committed write and an open event stream show in
/// the Prometheus text, and the stream's gauge goes back down when it closes.
#[test]
fn serve_exports_metrics_with_its_open_event_streams() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let (_serve, addr, _) = start_serve(&["--data", dir]);
    let path = "/v1/configs/twitch:%23metrics";
    let json = [("content-type", "application/json")];
    let created = call(
        &addr,
        "POST",
        "/v1/roots",
        &json,
        r##"{"platform":"twitch","channel":"#metrics"}"##,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let patched = call(
        &addr,
        "PATCH",
        path,
        &[("content-type", "application/json-patch+json")],
        r#"[{"op":"add","path":"/volume","value":11}]"#,
    );
    assert_eq!(patched.status, 200, "committed: {}", patched.body);
    let scrape = |want: &str| {
        let mut last = String::new();
        for _ in 0..100 {
            let got = call(&addr, "GET", "/metrics", &[], "");
            assert_eq!(got.status, 200);
            assert!(
                got.header("content-type")
                    .is_some_and(|t| t.starts_with("text/plain")),
                "{:?}",
                got.header("content-type")
            );
            if got.body.lines().any(|l| l == want) {
                return got.body;
            }
            last = got.body;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no line {want:?} in /metrics:\n{last}");
    };
    let text = scrape(r#"tikaconf_writes_total{outcome="committed"} 1"#);
    assert!(
        text.contains("tikaconf_store_commit_seconds_bucket"),
        "the commit latency histogram: {text}"
    );
    let mut events = Events::open(&addr, &format!("{path}/events"), &[]);
    let (event, _, _) = events.next();
    assert_eq!(event, "snapshot", "the stream is open");
    scrape("tikaconf_sse_clients 1");
    drop(events);
    scrape("tikaconf_sse_clients 0");
}

#[test]
fn serve_with_a_token_answers_401_without_it() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    let (_serve, addr, _) = start_serve(&["--data", data, "--token", "let-me-in"]);
    let denied = call(&addr, "GET", "/v1/roots", &[], "");
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("content-type"),
        Some("application/problem+json")
    );
    let wrong = call(
        &addr,
        "GET",
        "/v1/roots",
        &[("authorization", "Bearer let-me-out")],
        "",
    );
    assert_eq!(wrong.status, 401);
    let ok = call(
        &addr,
        "GET",
        "/v1/roots",
        &[("authorization", "Bearer let-me-in")],
        "",
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

/// `serve --redis` in a fleet: beside a plain `tikaconf storage --store
/// redis` (both storage nodes on the shared Redis store) and a library
/// follower. A write through the API reaches the follower; the follower's
/// write shows up in the API and on its event stream.
#[test]
fn serve_joins_a_fleet_over_redis_both_ways() {
    let redis = RedisServer::builder().persistence(true).start();
    let url = redis.url();
    let unused = tempfile::tempdir().unwrap();
    let _storage = start_storage(&url, unused.path(), &["--store", "redis"]);
    let (_serve, addr, first) = start_serve(&["--redis", &url]);
    assert!(first.contains("Redis keys tikaconf:*"), "{first}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let path = "/v1/configs/twitch:%23fleet";
    let created = call(
        &addr,
        "POST",
        "/v1/roots",
        &[("content-type", "application/json")],
        r##"{"platform":"twitch","channel":"#fleet"}"##,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let follower = runtime.block_on(async {
        let client = Client::connect_with(&url, testing::fast_options())
            .await
            .unwrap();
        client
            .follow(RootConfig::twitch("#fleet").unwrap())
            .await
            .unwrap()
    });

    // API -> follower.
    let patched = call(
        &addr,
        "PATCH",
        path,
        &[("content-type", "application/merge-patch+json")],
        r#"{"from":"api"}"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    let head = patched.etag().parse().unwrap();
    runtime
        .block_on(testing::wait_for_head(&follower, head))
        .expect("the follower sees the API's write");
    assert_eq!(follower.document()["from"], "api");

    // Follower -> API and its event stream.
    let mut events = Events::open(
        &addr,
        &format!("{path}/events"),
        &[("last-event-id", &patched.etag())],
    );
    let written = runtime
        .block_on(follower.submit(json!([{"op": "add", "path": "/by", "value": "bot"}])))
        .expect("the follower's write commits");
    let (event, id, data) = events.next();
    assert_eq!(
        (event.as_str(), id.as_str()),
        ("change", written.to_string().as_str())
    );
    assert_eq!(
        data["ops"],
        json!([{"op": "add", "path": "/by", "value": "bot"}])
    );
    let got = call(&addr, "GET", path, &[], "");
    assert_eq!(got.etag(), written.to_string());
    assert_eq!(got.json()["by"], "bot");
    // Both storage nodes share one store: the listing (from the Redis store)
    // shows the root at the follower's head.
    let listed = call(&addr, "GET", "/v1/roots?platform=twitch", &[], "").json();
    assert_eq!(listed["roots"][0]["head"], written.to_string());
}

/// `serve --redis --no-storage`: the API answers from the fleet's storage, and
/// listing roots says it needs a store (501).
#[test]
fn serve_without_storage_uses_the_fleets_and_cannot_list() {
    let redis = RedisServer::builder().persistence(true).start();
    let url = redis.url();
    let data = tempfile::tempdir().unwrap();
    let _storage = start_storage(&url, &data.path().join("data"), &[]);
    let (_serve, addr, first) = start_serve(&["--redis", &url, "--no-storage"]);
    assert!(first.contains("no storage node"), "{first}");
    let created = call(
        &addr,
        "POST",
        "/v1/roots",
        &[("content-type", "application/json")],
        r##"{"platform":"twitch","channel":"#nostore"}"##,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let listed = call(&addr, "GET", "/v1/roots", &[], "");
    assert_eq!(listed.status, 501, "{}", listed.body);
    assert_eq!(listed.json()["code"], "not_implemented");
}
