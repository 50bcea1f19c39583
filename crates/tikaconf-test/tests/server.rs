//! The harness tests itself: every integration test trusts that a `RedisServer`
//! really starts, really dies on `kill`, and really comes back on `restart` (with
//! or without its data), so those claims are checked here against a real process.

use std::time::Duration;

use redis::AsyncCommands;
use tikaconf_test::{RedisServer, TlsFiles, free_port, wait_until};

async fn ping(url: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut conn).await
}

#[tokio::test]
async fn start_ping_kill_restart() {
    let mut server = RedisServer::start();
    assert!(server.url().starts_with("redis://127.0.0.1:"));
    assert!(server.url().ends_with(&server.port().to_string()));
    assert_eq!(ping(&server.url()).await.expect("ping"), "PONG");

    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let () = conn.set("k", "v").await.expect("set");

    server.kill();
    assert!(!server.is_running());
    assert!(
        ping(&server.url()).await.is_err(),
        "a killed server must not answer"
    );

    server.restart();
    assert!(server.is_running());
    assert_eq!(
        ping(&server.url()).await.expect("ping after restart"),
        "PONG"
    );
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reconnect");
    let value: Option<String> = conn.get("k").await.expect("get");
    assert_eq!(
        value, None,
        "without persistence a restart comes back empty"
    );
}

#[tokio::test]
async fn persistence_survives_sigkill() {
    let mut server = RedisServer::builder().persistence(true).start();
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let () = conn.set("k", "v").await.expect("set");

    server.kill();
    server.restart();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reconnect");
    let value: Option<String> = conn.get("k").await.expect("get");
    assert_eq!(value.as_deref(), Some("v"));

    server.stop();
    assert!(!server.is_running());
    server.restart();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("reconnect");
    let value: Option<String> = conn.get("k").await.expect("get");
    assert_eq!(value.as_deref(), Some("v"));
}

#[tokio::test]
async fn extra_args_are_passed() {
    let server = RedisServer::builder()
        .extra_args(["--requirepass", "secret"])
        .start();
    assert!(ping(&server.url()).await.is_err(), "no password, no PONG");
    let url = format!("redis://:secret@127.0.0.1:{}", server.port());
    assert_eq!(ping(&url).await.expect("ping with password"), "PONG");
}

#[tokio::test]
async fn tls_server_verifies_against_its_ca() {
    let certs = tempfile::tempdir().expect("tempdir");
    let files = TlsFiles::generate(certs.path()).expect("openssl");
    let server = RedisServer::builder()
        .tls(files.clone())
        .expect("tls files")
        .start();
    assert!(server.url().starts_with("rediss://127.0.0.1:"));

    let client = redis::Client::build_with_tls(
        server.url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(files.ca_pem().expect("ca")),
        },
    )
    .expect("tls client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("tls connect");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("ping");
    assert_eq!(pong, "PONG");
    assert_eq!(ping(&server.plain_url()).await.expect("plain ping"), "PONG");
}

#[test]
fn tls_rejects_missing_files() {
    let missing = TlsFiles {
        cert: "/nonexistent/c.pem".into(),
        key: "/nonexistent/k.pem".into(),
        ca: "/nonexistent/ca.pem".into(),
    };
    assert!(RedisServer::builder().tls(missing).is_err());
}

#[tokio::test]
async fn helpers() {
    assert_ne!(free_port(), 0);
    let start = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || start.elapsed()
            > Duration::from_millis(30))
        .await
    );
    assert!(!wait_until(Duration::from_millis(50), || false).await);
}
