//! Least-privilege Redis ACL users for the three roles, as `docs/SECURITY.md`
//! writes them, checked against a real `redis-server`.
//!
//! A deployment should not hand every bot the power to rewrite every
//! configuration. Redis ACLs can confine each role to the commands, channels and
//! keys it needs: a follower subscribes to `updates:*` and its `replies:*`
//! channel and may publish only load requests; a writer may also publish
//! patches; storage listens to everything and answers, and with the Redis store
//! also owns the `tikaconf:*` keys. This test
//! starts a server with exactly the rules of SECURITY.md (the `rules` functions
//! of `tikaconf_test::acl` are the single source the document quotes), runs each role with its own
//! credentials, and checks that each can do its job and that a follower cannot
//! publish a patch: neither with a raw connection (`NOPERM`) nor through
//! `Config::submit` (the publish is refused by Redis, nothing is applied or
//! stored, and the write ends as `WriteError::Timeout`).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::store::RedbStore;
use tikaconf::{Client, ClientOptions, RootConfig, StorageNode, StorageOptions, WriteError};
use tikaconf_redis::RedisStore;
use tikaconf_test::acl::*;

/// `rules` as written before reply channels: without `&[NS:]replies:*`.
fn without_replies(rules: Vec<String>) -> Vec<String> {
    rules
        .into_iter()
        .filter(|w| !w.ends_with("replies:*"))
        .collect()
}

/// A server with the three roles under namespace `ns` (`""` or `"NS:"`) and key
/// prefix `prefix`, no anonymous access, and an `admin` user for the test to
/// inspect `ACL LOG` with; plus `redbstorage`, storage on the embedded store (no
/// key access), and `oldfollower` and `oldstorage`, a follower and a redb
/// storage node with the rules of before reply channels.
fn server(ns: &str, prefix: &str) -> RedisServer {
    let mut args: Vec<String> = Vec::new();
    let connect = connect_rules();
    for (name, rules) in [
        ("default", default_rules()),
        ("follower", follower_rules(ns, "fpass", connect)),
        ("writer", writer_rules(ns, "wpass", connect)),
        ("storage", storage_rules(ns, prefix, "spass", connect)),
        ("redbstorage", redb_storage_rules(ns, "rpass", connect)),
        ("admin", words("on >apass ~* &* +@all")),
        (
            "oldfollower",
            without_replies(follower_rules(ns, "ofpass", connect)),
        ),
        (
            "oldstorage",
            without_replies(redb_storage_rules(ns, "ospass", connect)),
        ),
    ] {
        args.push("--user".into());
        args.push(name.into());
        args.extend(rules);
    }
    RedisServer::builder().extra_args(args).start()
}

/// The permission failures Redis recorded, as `(username, object)` pairs: a role
/// doing its normal job must cause none.
async fn acl_denials(redis: &RedisServer) -> Vec<(String, String)> {
    let mut admin = raw_as(&url(redis, "admin", "apass")).await;
    let entries: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .expect("ACL LOG");
    let text = |e: &std::collections::HashMap<String, redis::Value>, k: &str| match e.get(k) {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s.clone(),
        other => format!("{other:?}"),
    };
    entries
        .iter()
        .map(|e| (text(e, "username"), text(e, "object")))
        .collect()
}

fn url(redis: &RedisServer, user: &str, password: &str) -> String {
    redis
        .url()
        .replacen("redis://", &format!("redis://{user}:{password}@"), 1)
}

async fn raw_as(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

async fn publish(
    conn: &mut redis::aio::MultiplexedConnection,
    channel: &str,
) -> redis::RedisResult<i64> {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg("x")
        .query_async(conn)
        .await
}

fn is_noperm(r: &redis::RedisResult<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(e) if e.code() == Some("NOPERM") || e.to_string().contains("NOPERM"))
}

/// A write Redis refused to publish fails as `Refused` (at once: waiting for
/// an outcome would end as `Timeout`), carrying Redis's `NOPERM` as its source.
fn assert_refused(result: &Result<tikaconf::Hash, WriteError>) {
    let Err(err @ WriteError::Refused { .. }) = result else {
        panic!("a refused publish must fail the write at once: {result:?}");
    };
    let source = std::error::Error::source(err).expect("the bus error is the source");
    assert!(
        matches!(
            source.downcast_ref::<tikaconf::bus::BusError>(),
            Some(tikaconf::bus::BusError::Refused(_))
        ),
        "the source is the bus's refusal: {source:?}"
    );
    assert!(
        source.to_string().to_lowercase().contains("noperm"),
        "Redis's reason is kept: {source}"
    );
}

fn options(namespace: Option<&str>) -> ClientOptions {
    ClientOptions {
        namespace: namespace.map(str::to_owned),
        ..fast_options()
    }
}

/// A storage node on the embedded store in `dir`, connected as `user`, ready.
async fn redb_storage_as(
    redis: &RedisServer,
    user: &str,
    password: &str,
    dir: &std::path::Path,
) -> StorageNode {
    let bus = BusHandle::redis(&url(redis, user, password))
        .await
        .expect("storage connects with its credentials");
    let node = StorageNode::spawn(
        bus,
        RedbStore::open(dir).unwrap(),
        StorageOptions::default(),
    );
    node.ready().await;
    node
}

/// The three roles, each with its own credentials, over the embedded store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_can_do_its_job_and_no_more() {
    let redis = server("", "tikaconf:");
    let dir = tempfile::tempdir().unwrap();
    // Storage on the embedded store, with SECURITY.md's rules for it: no keys.
    let node = redb_storage_as(&redis, "redbstorage", "rpass", dir.path()).await;

    // The writer registers the root and writes.
    let root = RootConfig::twitch("#acl").unwrap();
    let writer = Client::connect_with(&url(&redis, "writer", "wpass"), options(None))
        .await
        .expect("writer connects");
    let w = writer.follow(root.clone()).await.expect("writer loads");
    let head = w
        .submit(json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]))
        .await
        .expect("the writer can write");

    // The follower loads, and follows the writer's changes.
    let follower = Client::connect_with(&url(&redis, "follower", "fpass"), options(None))
        .await
        .expect("follower connects");
    let f = follower.follow(root.clone()).await.expect("follower loads");
    assert_eq!(f.head(), head);
    assert_eq!(f.document()["commands"]["!hi"], "hello");
    let head2 = w
        .submit(json!([{"op": "add", "path": "/timers", "value": []}]))
        .await
        .unwrap();
    wait_for_head(&f, head2).await.unwrap();
    assert_eq!(
        acl_denials(&redis).await,
        [],
        "the roles' normal work needs nothing more"
    );

    // A raw connection with the follower's credentials: load requests yes,
    // patches, other channels and keys no.
    let mut raw = raw_as(&url(&redis, "follower", "fpass")).await;
    assert!(publish(&mut raw, "update_requests").await.is_ok());
    let patch = publish(&mut raw, &format!("updates:{head2}")).await;
    assert!(
        is_noperm(&patch),
        "follower PUBLISH updates:<head>: {patch:?}"
    );
    let root_channel = publish(&mut raw, &format!("updates:{}", root.hash())).await;
    assert!(is_noperm(&root_channel), "{root_channel:?}");
    let elsewhere = publish(&mut raw, "other").await;
    assert!(is_noperm(&elsewhere), "{elsewhere:?}");
    // Through the bus, that refusal is told apart from a lost connection (the
    // node warns about it: a reconnect would not change Redis's answer).
    let (follower_bus, _events) = tikaconf_redis::bus::RedisBus::connect(
        &url(&redis, "follower", "fpass"),
        tikaconf_redis::bus::Backoff::default(),
    )
    .await
    .expect("the follower's bus connects");
    let refused = follower_bus
        .publish(&[(format!("updates:{head2}"), bytes::Bytes::from_static(b"{}"))])
        .await;
    assert!(
        matches!(&refused, Err(e) if e.is_refusal()),
        "a NOPERM publish through the bus: {refused:?}"
    );
    let key: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("tikaconf:anything")
        .query_async(&mut raw)
        .await;
    assert!(is_noperm(&key), "follower GET: {key:?}");
    let mut sub = redis::Client::open(url(&redis, "follower", "fpass"))
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    assert!(sub.subscribe(format!("updates:{head2}")).await.is_ok());
    let requests = sub.subscribe("update_requests").await;
    assert!(
        is_noperm(&requests),
        "follower SUBSCRIBE update_requests: {requests:?}"
    );
    let pattern = sub.psubscribe("updates:*").await;
    assert!(is_noperm(&pattern), "follower PSUBSCRIBE: {pattern:?}");
    let denials = acl_denials(&redis).await;
    assert!(
        denials.contains(&("follower".into(), format!("updates:{head2}"))),
        "Redis logs the refused PUBLISH: {denials:?}"
    );

    // The writer may publish patches, but not read keys or listen to requests.
    let mut wraw = raw_as(&url(&redis, "writer", "wpass")).await;
    assert!(
        publish(&mut wraw, &format!("updates:{}", root.hash()))
            .await
            .is_ok()
    );
    let wkey: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("tikaconf:anything")
        .query_async(&mut wraw)
        .await;
    assert!(is_noperm(&wkey), "writer GET: {wkey:?}");

    // Storage on the embedded store did its job above (the writer's commits, the
    // follower's load, no ACL LOG entry) without any key access, and has none.
    let mut sraw = raw_as(&url(&redis, "redbstorage", "rpass")).await;
    let skey: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("tikaconf:anything")
        .query_async(&mut sraw)
        .await;
    assert!(is_noperm(&skey), "redb storage GET: {skey:?}");
    let script: redis::RedisResult<String> = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 1")
        .query_async(&mut sraw)
        .await;
    assert!(is_noperm(&script), "redb storage SCRIPT LOAD: {script:?}");
    let scan: redis::RedisResult<redis::Value> =
        redis::cmd("SCAN").arg(0).query_async(&mut sraw).await;
    assert!(is_noperm(&scan), "redb storage SCAN: {scan:?}");

    // Config::submit with follower credentials: Redis refuses the PUBLISH and the
    // write fails with that reason (not as a timeout after write_timeout).
    // Nothing is applied anywhere, and storage still holds head2.
    let stats_before = f.stats();
    let refused = f
        .submit(json!([{"op": "add", "path": "/hacked", "value": true}]))
        .await;
    assert_refused(&refused);
    assert_eq!(f.head(), head2);
    assert_eq!(w.head(), head2);
    assert!(f.document().get("hacked").is_none());
    assert_eq!(f.stats().applied, stats_before.applied);
    let check = Client::connect_with(&url(&redis, "follower", "fpass"), options(None))
        .await
        .unwrap();
    assert_eq!(check.follow(root.hash()).await.unwrap().head(), head2);

    // No anonymous access.
    let anonymous = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    let anon_publish = match anonymous {
        Ok(mut c) => publish(&mut c, "update_requests").await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(anon_publish.is_err(), "anonymous PUBLISH must fail");
    node.shutdown().await;
}

/// The storage role with the shared Redis store and a namespace: keys under its
/// prefix, scripts, and namespaced channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_with_redis_store_and_namespace() {
    let redis = server("prod:", "tikaconf:prod:");
    let storage_url = url(&redis, "storage", "spass");
    let store = RedisStore::connect(&storage_url, "tikaconf:prod:")
        .await
        .expect("the Redis store connects with storage credentials");
    let bus = BusHandle::redis(&storage_url).await.unwrap();
    let node = StorageNode::spawn(
        bus,
        store,
        StorageOptions {
            namespace: Some("prod".into()),
            ..StorageOptions::default()
        },
    );
    node.ready().await;

    let root = RootConfig::twitch("#acl_ns").unwrap();
    let writer = Client::connect_with(&url(&redis, "writer", "wpass"), options(Some("prod")))
        .await
        .unwrap();
    let w = writer.follow(root.clone()).await.expect("writer loads");
    let head = w
        .submit(json!([{"op": "add", "path": "/ok", "value": true}]))
        .await
        .expect("stored through the Redis store's scripts");
    let follower = Client::connect_with(&url(&redis, "follower", "fpass"), options(Some("prod")))
        .await
        .unwrap();
    let f = follower.follow(root.hash()).await.expect("follower loads");
    assert_eq!(f.head(), head);
    assert_eq!(
        acl_denials(&redis).await,
        [],
        "the roles' normal work needs nothing more"
    );

    // The namespace confines every role: nothing outside `prod:`.
    let mut wraw = raw_as(&url(&redis, "writer", "wpass")).await;
    let outside = publish(&mut wraw, &format!("updates:{head}")).await;
    assert!(
        is_noperm(&outside),
        "writer outside its namespace: {outside:?}"
    );
    assert!(
        publish(&mut wraw, &format!("prod:updates:{head}"))
            .await
            .is_ok()
    );
    let mut sraw = raw_as(&storage_url).await;
    let other_keys: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("tikaconf:staging:head:x")
        .query_async(&mut sraw)
        .await;
    assert!(
        is_noperm(&other_keys),
        "storage outside its prefix: {other_keys:?}"
    );
    let flush: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut sraw).await;
    assert!(is_noperm(&flush), "storage FLUSHALL: {flush:?}");
    node.shutdown().await;
}

/// Rules written before reply channels existed: a client whose SUBSCRIBE to its
/// reply channel is refused asks again on the root channel at once, and a
/// storage node that may not publish on reply channels leaves its private
/// answers unheard, so the requester's retry (on the root channel, after
/// `request_timeout`) is answered. Either way every load completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_without_reply_channels_still_load() {
    let redis = server("", "tikaconf:");
    let dir = tempfile::tempdir().unwrap();
    let node = redb_storage_as(&redis, "oldstorage", "ospass", dir.path()).await;
    let root = RootConfig::twitch("#acl_old").unwrap();

    // The refused SUBSCRIBE is acted on, not waited out: with a request timeout
    // far beyond the load timeout, only the immediate public retry can load.
    let mut patient = options(None);
    patient.follower.request_timeout = Duration::from_secs(600);
    patient.load_timeout = Duration::from_secs(30);
    let old = Client::connect_with(&url(&redis, "oldfollower", "ofpass"), patient)
        .await
        .expect("old follower connects");
    let loaded = old.follow(root.clone()).await;
    assert!(loaded.is_ok(), "a refused reply channel: {loaded:?}");

    // Storage refused on reply channels: the retry after request_timeout loads.
    let new = Client::connect_with(&url(&redis, "follower", "fpass"), options(None))
        .await
        .expect("follower connects");
    let loaded = new.follow(root.clone()).await;
    assert!(loaded.is_ok(), "storage without reply channels: {loaded:?}");
    assert!(loaded.unwrap().stats().load_requests >= 2);

    let denials = acl_denials(&redis).await;
    let refused = |user: &str| {
        denials
            .iter()
            .any(|(u, object)| u == user && object.starts_with("replies:"))
    };
    assert!(refused("oldfollower"), "{denials:?}");
    assert!(refused("oldstorage"), "{denials:?}");
    node.shutdown().await;
}

/// The `user` lines of the `text` blocks of SECURITY.md's "ACL rules" section,
/// each as `(name, rules)` with the rules' whitespace normalized, in order.
fn documented_users() -> Vec<Vec<(String, String)>> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/SECURITY.md"),
    )
    .expect("read docs/SECURITY.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("ACL rules"))
        .expect("an \"ACL rules\" section");
    section
        .split("```text")
        .skip(1)
        .map(|block| {
            block
                .split("```")
                .next()
                .unwrap_or("")
                .lines()
                .filter_map(|l| l.strip_prefix("user "))
                .map(|l| {
                    let mut w = l.split_whitespace();
                    let name = w.next().unwrap_or("").to_owned();
                    (name, w.collect::<Vec<_>>().join(" "))
                })
                .collect()
        })
        .collect()
}

/// SECURITY.md's ACL lines are the ones this test runs: both blocks (without a
/// namespace, and with `prod`), user by user, word for word. The document
/// writes `+client|setinfo` (Redis 7.2 and later) and placeholder passwords.
#[test]
fn security_md_rules_are_the_tested_rules() {
    let connect = "+client|setinfo";
    let join = |w: Vec<String>| w.join(" ");
    let blocks = documented_users();
    assert_eq!(blocks.len(), 2, "two blocks of user lines: {blocks:#?}");
    let expected_plain = vec![
        ("default".to_owned(), join(default_rules())),
        (
            "follower".to_owned(),
            join(follower_rules("", "FOLLOWER_PASSWORD", connect)),
        ),
        (
            "writer".to_owned(),
            join(writer_rules("", "WRITER_PASSWORD", connect)),
        ),
        (
            "storage".to_owned(),
            join(storage_rules("", "tikaconf:", "STORAGE_PASSWORD", connect)),
        ),
    ];
    assert_eq!(blocks[0], expected_plain, "SECURITY.md without a namespace");
    let expected_prod = vec![
        (
            "follower".to_owned(),
            join(follower_rules("prod:", "FOLLOWER_PASSWORD", connect)),
        ),
        (
            "writer".to_owned(),
            join(writer_rules("prod:", "WRITER_PASSWORD", connect)),
        ),
        (
            "storage".to_owned(),
            join(storage_rules(
                "prod:",
                "tikaconf:prod:",
                "STORAGE_PASSWORD",
                connect,
            )),
        ),
    ];
    assert_eq!(blocks[1], expected_prod, "SECURITY.md with namespace prod");
}

/// SECURITY.md's rule for storage on the embedded redb store ("drop
/// `~tikaconf:*` and `+evalsha ...`") names exactly what the tested redb rules
/// leave out of the storage rules.
#[test]
fn security_md_redb_storage_rule_is_the_tested_rule() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/SECURITY.md"),
    )
    .expect("read docs/SECURITY.md");
    const BULLET: &str = "A storage node on the embedded redb store needs no key access: drop";
    let at = doc.find(BULLET).expect("the redb storage bullet");
    let rest = &doc[at + BULLET.len()..];
    let end = [". ", ".\n"]
        .iter()
        .filter_map(|e| rest.find(e))
        .min()
        .expect("the end of the sentence");
    let sentence = &rest[..end];
    let mut documented: Vec<&str> = sentence
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(str::split_whitespace)
        .collect();
    let connect = "+client|setinfo";
    let kept = redb_storage_rules("", "STORAGE_PASSWORD", connect);
    let mut dropped: Vec<String> = storage_rules("", "tikaconf:", "STORAGE_PASSWORD", connect)
        .into_iter()
        .filter(|w| !kept.contains(w))
        .collect();
    documented.sort_unstable();
    dropped.sort_unstable();
    assert_eq!(documented, dropped, "SECURITY.md vs redb_storage_rules");
}
