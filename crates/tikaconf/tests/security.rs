//! Connecting the way production does: `rediss://` against a `redis-server` started
//! with TLS, and an ACL user with a password.

mod common;

use common::*;
use serde_json::json;
use tikaconf::bus::BusHandle;
use tikaconf::store::RedbStore;
use tikaconf::{Client, ClientOptions, RootConfig, StorageNode, StorageOptions};
use tikaconf_test::TlsFiles;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_acl_user() {
    let certs = tempfile::tempdir().unwrap();
    let files = TlsFiles::generate(certs.path()).expect("openssl makes test certificates");
    let ca = files.ca_pem().unwrap();
    let redis = RedisServer::builder()
        .tls(files)
        .unwrap()
        .extra_args(["--user", "bot", "on", ">s3cret", "~*", "&*", "+@all"])
        .start();
    let url = redis.url().replacen("rediss://", "rediss://bot:s3cret@", 1);
    assert!(url.starts_with("rediss://bot:s3cret@127.0.0.1:"));

    let dir = tempfile::tempdir().unwrap();
    let bus = BusHandle::redis_with_ca(&url, Some(&ca))
        .await
        .expect("storage over TLS");
    let node = StorageNode::spawn(
        bus,
        RedbStore::open(dir.path()).unwrap(),
        StorageOptions::default(),
    );
    node.ready().await;

    let options = ClientOptions {
        tls_ca_pem: Some(ca.clone()),
        ..fast_options()
    };
    let client = Client::connect_with(&url, options.clone())
        .await
        .expect("client over TLS");
    let config = client
        .follow(RootConfig::twitch("#secure").unwrap())
        .await
        .unwrap();
    config
        .submit(json!([{"op": "add", "path": "/ok", "value": true}]))
        .await
        .unwrap();
    assert_eq!(config.document()["ok"], true);

    // A wrong password, or a server certificate nobody vouches for, is refused.
    let wrong = redis.url().replacen("rediss://", "rediss://bot:nope@", 1);
    assert!(Client::connect_with(&wrong, options).await.is_err());
    assert!(Client::connect_with(&url, fast_options()).await.is_err());
    node.shutdown().await;
}

/// With a trust set configured, a client with full Redis rights but no trusted
/// key cannot change a configuration: not by writing, not by publishing a patch by
/// hand, not by forging storage's answers or notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_updates_keep_out_a_client_without_a_key() {
    use tikaconf::proto::{Patch, Snapshot, Stored};
    use tikaconf::{SigningKey, TrustSet, WriteError};

    let redis = RedisServer::start();
    let storage_key = SigningKey::from_seed([1; 32]);
    let writer_key = SigningKey::from_seed([2; 32]);
    // Each key trusted for its role only: a writer's key cannot speak for storage.
    let trust = TrustSet::with_roles([writer_key.public_key()], [storage_key.public_key()]);
    let writer_key_copy = writer_key.clone();

    let dir = tempfile::tempdir().unwrap();
    let bus = BusHandle::redis(&redis.url()).await.unwrap();
    let storage_options = StorageOptions {
        trust: trust.clone(),
        signing_key: Some(storage_key),
        ..StorageOptions::default()
    };
    let node = StorageNode::spawn(bus, RedbStore::open(dir.path()).unwrap(), storage_options);
    node.ready().await;

    let signed = |key: Option<SigningKey>| ClientOptions {
        trust: trust.clone(),
        signing_key: key,
        ..fast_options()
    };
    let root = RootConfig::twitch("#signed").unwrap();
    let writer = Client::connect_with(&redis.url(), signed(Some(writer_key)))
        .await
        .unwrap();
    let w = writer
        .follow(root.clone())
        .await
        .expect("storage's signed snapshot is accepted");
    let head = w
        .submit(json!([{"op": "add", "path": "/mod", "value": "tika"}]))
        .await
        .expect("a trusted writer commits");
    let reader = Client::connect_with(&redis.url(), signed(None))
        .await
        .unwrap();
    let r = reader.follow(root.hash()).await.unwrap();
    assert_eq!(r.head(), head);

    // A client with no key (and full Redis rights): its write is never stored.
    let intruder = Client::connect_with(&redis.url(), signed(None))
        .await
        .unwrap();
    let i = intruder.follow(root.hash()).await.unwrap();
    let attempt = i
        .submit(json!([{"op": "replace", "path": "/mod", "value": "evil"}]))
        .await;
    assert!(
        matches!(attempt, Err(WriteError::Timeout { .. })),
        "{attempt:?}"
    );

    // By hand: an unsigned patch, a patch signed by an unknown key, a forged
    // snapshot far ahead, a forged `stored` notice.
    let mut raw = raw(&redis).await;
    let forged_patch = Patch::build(
        root.hash(),
        head,
        1,
        json!([{"op": "replace", "path": "/mod", "value": "evil"}]),
        None,
    )
    .unwrap();
    let rogue = SigningKey::from_seed([9; 32]);
    let rogue_signed = tikaconf::proto::message::attach_signature(
        &forged_patch.encoded,
        &rogue.sign(&forged_patch.hash),
    );
    let forged_snapshot = Snapshot::new(root.hash(), forged_patch.hash, 50, json!({"mod": "evil"}));
    let forged_stored = Stored {
        root: root.hash(),
        head: forged_patch.hash,
        height: 2,
    };
    // A trusted writer's key forging storage's word: refused for its role.
    let writer_signed_stored = tikaconf::proto::message::attach_signature(
        &forged_stored.encode(),
        &writer_key_copy.sign(&tikaconf::Hash::of_canonical_bytes(&forged_stored.encode())),
    );
    let on_head = format!("updates:{head}");
    let on_root = format!("updates:{}", root.hash());
    // The intruder's own write reached the reader and was ignored as unsigned.
    let before = r.stats().await;
    let mut counted = before.ignored.clone();
    assert_eq!(
        (counted.get("unsigned"), counted.get("untrusted_key")),
        (Some(&1), None),
        "the intruder's patch: {counted:?}"
    );
    // Each forgery, one at a time: the reader must hear it and count it as
    // ignored under its own label before the next goes out, so that none can
    // pass unseen behind the others' counts.
    for (what, channel, payload, label) in [
        (
            "unsigned patch",
            &on_head,
            forged_patch.encoded.clone(),
            "unsigned",
        ),
        (
            "patch signed by an unknown key",
            &on_head,
            rogue_signed,
            "untrusted_key",
        ),
        (
            "unsigned snapshot",
            &on_root,
            forged_snapshot.encoded.clone(),
            "unsigned",
        ),
        (
            "unsigned stored notice",
            &on_root,
            forged_stored.encode(),
            "unsigned",
        ),
        (
            "stored notice signed by a writer's key",
            &on_root,
            writer_signed_stored,
            "untrusted_key",
        ),
    ] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload.as_ref())
            .query_async(&mut raw)
            .await
            .unwrap();
        let mut expected = counted.clone();
        *expected.entry(label).or_default() += 1;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut now = r.stats().await;
        while now.ignored != expected && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            now = r.stats().await;
        }
        assert_eq!(
            now.ignored, expected,
            "the {what} was not ignored as {label}"
        );
        assert_eq!(now.applied, before.applied, "the {what} applied: {now:?}");
        assert_eq!(r.head(), head, "the {what} moved the reader");
        counted = now.ignored;
    }
    // The trusted writer still writes, and everyone agrees on its document.
    let next = w
        .submit(json!([{"op": "add", "path": "/ok", "value": 1}]))
        .await
        .unwrap();
    wait_for_head(&r, next, std::time::Duration::from_secs(5)).await;
    assert_eq!(r.document()["mod"], "tika");
    let stats = r.stats().await;
    assert_eq!(stats.ignored.get("unsigned"), Some(&4), "{stats:?}");
    assert_eq!(stats.ignored.get("untrusted_key"), Some(&2), "{stats:?}");
    node.shutdown().await;
}
