//! `tikaconf storage --metrics ADDR`: a real storage process, a real
//! `redis-server`, a write through the CLI, and a scrape of `/metrics` over
//! plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tikaconf_test::{RedisServer, free_port};

mod common;

use common::*;

/// `GET /metrics` over HTTP/1.0 (no chunked encoding to undo): the body.
fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics listener");
    stream
        .set_read_timeout(Some(LINE_WAIT))
        .expect("read timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    assert!(head.starts_with("HTTP/1."), "{head}");
    assert!(head.contains(" 200 "), "{head}");
    body.to_owned()
}

/// The value of the sample line `series value` in Prometheus text, if any.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

#[test]
fn storage_serves_its_metrics_in_prometheus_text() {
    let redis = RedisServer::start();
    let url = redis.url();
    let data = tempfile::tempdir().expect("temporary data directory");
    let addr = format!("127.0.0.1:{}", free_port());
    let _storage = start_storage(&url, &data.path().join("data"), &["--metrics", &addr]);

    // The work: one write, which `set` reports only once storage committed it.
    let head = ok_line(&run(&[
        "--redis",
        &url,
        "set",
        "twitch:#metrics",
        "/volume",
        "11",
    ]));
    assert_eq!(head.len(), 64, "{head}");

    // Counted by the node before it announced the commit; polled all the same,
    // so that a slow machine does not fail a correct node.
    let applied = r#"tikaconf_patches_applied_total{role="storage"}"#;
    let deadline = Instant::now() + LINE_WAIT;
    let text = loop {
        let text = scrape(&addr);
        if value(&text, applied).is_some_and(|n| n >= 1.0) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(value(&text, applied), Some(1.0), "{text}");
    let received = value(&text, r#"tikaconf_messages_received_total{role="storage"}"#);
    assert!(received.is_some_and(|n| n >= 2.0), "{text}"); // the load request, the patch
    assert!(
        value(&text, r#"tikaconf_load_requests_total{role="storage"}"#).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // The commit latency, as a histogram with buckets (not a summary).
    assert!(
        text.contains("# TYPE tikaconf_store_commit_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(r#"tikaconf_store_commit_seconds_bucket{le="0.001"}"#),
        "{text}"
    );
    let commits = value(&text, "tikaconf_store_commit_seconds_count");
    assert!(commits.is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        value(&text, r#"tikaconf_store_commit_seconds_bucket{le="+Inf"}"#),
        commits,
        "{text}"
    );
    assert_eq!(
        value(&text, "tikaconf_storage_roots_cached"),
        Some(1.0),
        "{text}"
    );
    // Described: help text for the series.
    assert!(
        text.contains("# HELP tikaconf_patches_applied_total"),
        "{text}"
    );
}

#[test]
fn a_metrics_address_that_cannot_be_bound_fails_the_command() {
    let redis = RedisServer::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let data = tempfile::tempdir().expect("temporary data directory");
    let data = data.path().join("data");
    let out = run(&[
        "storage",
        "--redis",
        &redis.url(),
        "--data",
        data.to_str().expect("UTF-8 path"),
        "--metrics",
        &addr,
    ]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("cannot serve metrics"),
        "{}",
        stderr(&out)
    );
}
