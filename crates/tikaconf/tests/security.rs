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
    let before = r.stats();
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
        let mut now = r.stats();
        while now.ignored != expected && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            now = r.stats();
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
    wait_for_head(&r, next).await.unwrap();
    assert_eq!(r.document()["mod"], "tika");
    let stats = r.stats();
    assert_eq!(stats.ignored.get("unsigned"), Some(&4), "{stats:?}");
    assert_eq!(stats.ignored.get("untrusted_key"), Some(&2), "{stats:?}");
    node.shutdown().await;
}

/// Storage and writer keys for the signature tests, each trusted for its role.
struct Keys {
    storage: tikaconf::SigningKey,
    writer: tikaconf::SigningKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            storage: tikaconf::SigningKey::from_seed([1; 32]),
            writer: tikaconf::SigningKey::from_seed([2; 32]),
        }
    }

    fn trust(&self) -> tikaconf::TrustSet {
        tikaconf::TrustSet::with_roles([self.writer.public_key()], [self.storage.public_key()])
    }
}

/// A storage node in `namespace` over the redb store in `dir`, signing with
/// `key` (if any) and trusting `trust`.
async fn signed_storage(
    redis: &RedisServer,
    dir: &std::path::Path,
    namespace: Option<&str>,
    trust: tikaconf::TrustSet,
    key: Option<tikaconf::SigningKey>,
) -> StorageNode {
    let bus = BusHandle::redis(&redis.url()).await.unwrap();
    let options = StorageOptions {
        namespace: namespace.map(str::to_owned),
        trust,
        signing_key: key,
        ..StorageOptions::default()
    };
    let node = StorageNode::spawn(bus, RedbStore::open(dir).unwrap(), options);
    node.ready().await;
    node
}

/// A client in `namespace` trusting `trust`, signing its writes with `key`.
/// A storage node without a namespace that trusts `keys` and signs with their
/// storage key: the set-up most signature tests start from.
async fn storage_with(redis: &RedisServer, dir: &std::path::Path, keys: &Keys) -> StorageNode {
    signed_storage(redis, dir, None, keys.trust(), Some(keys.storage.clone())).await
}

async fn signed_client(
    redis: &RedisServer,
    namespace: Option<&str>,
    trust: tikaconf::TrustSet,
    key: Option<tikaconf::SigningKey>,
) -> Client {
    let options = ClientOptions {
        namespace: namespace.map(str::to_owned),
        trust,
        signing_key: key,
        ..fast_options()
    };
    Client::connect_with(&redis.url(), options).await.unwrap()
}

/// The next message heard by `listener` whose payload contains `needle`, as
/// (channel, payload).
async fn next_containing(
    messages: &mut (impl futures_util::Stream<Item = redis::Msg> + Unpin),
    needle: &str,
) -> (String, Vec<u8>) {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("no message containing {needle:?} within 10 s"))
            .expect("listener open");
        let payload: Vec<u8> = message.get_payload().unwrap();
        if String::from_utf8_lossy(&payload).contains(needle) {
            return (message.get_channel_name().to_owned(), payload);
        }
    }
}

/// Issue 11: signatures covered the message body only, so a patch signed by a
/// trusted writer in namespace `a` was accepted when replayed into namespace
/// `b` with the same keys. Now the namespace is part of what is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_patch_replayed_into_another_namespace_is_refused() {
    let redis = RedisServer::start();
    let keys = Keys::new();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = Some(keys.storage.clone());
    let node_a = signed_storage(&redis, dir_a.path(), Some("a"), keys.trust(), key.clone()).await;
    let node_b = signed_storage(&redis, dir_b.path(), Some("b"), keys.trust(), key).await;
    let root = RootConfig::twitch("#replayed").unwrap();

    // What namespace `a` publishes.
    let mut listener = redis::Client::open(redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    listener.psubscribe("a:updates:*").await.unwrap();
    let mut heard = listener.on_message();

    let writer_a = signed_client(&redis, Some("a"), keys.trust(), Some(keys.writer.clone())).await;
    let a = writer_a.follow(root.clone()).await.unwrap();
    a.submit(json!([{"op": "add", "path": "/from_a", "value": true}]))
        .await
        .expect("a trusted writer commits in a");
    let (_, patch) = next_containing(&mut heard, r#""type":"patch""#).await;

    // Namespace `b` holds the same root at height 0: the patch's parent.
    let writer_b = signed_client(&redis, Some("b"), keys.trust(), Some(keys.writer.clone())).await;
    let b = writer_b.follow(root.clone()).await.unwrap();
    let reader_b = signed_client(&redis, Some("b"), keys.trust(), None).await;
    let r = reader_b.follow(root.hash()).await.unwrap();
    assert_eq!((b.height(), r.height()), (0, 0));

    let mut raw = raw(&redis).await;
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(format!("b:updates:{}", root.hash()))
        .arg(&patch)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(receivers >= 3, "the replay reached {receivers} subscribers");
    let refused = tikaconf_test::wait_until_async(std::time::Duration::from_secs(5), || async {
        r.stats().ignored.get("bad_signature").copied() == Some(1)
    })
    .await;
    assert!(
        refused,
        "the patch signed in namespace a was not refused in b: b is at height {} with {}",
        r.height(),
        r.document()
    );

    // Namespace b goes on from its own head, without a's change.
    let head = b
        .submit(json!([{"op": "add", "path": "/from_b", "value": true}]))
        .await
        .expect("b's own writer commits");
    wait_for_head(&r, head).await.unwrap();
    assert_eq!(r.height(), 1);
    assert_eq!(doc_keys(&r.document()), ["connection", "from_b"]);
    assert_eq!(node_b.status().stats.applied, 1);
    node_a.shutdown().await;
    node_b.shutdown().await;
}

/// Issue 11: a storage-signed `unknown` for a root, replayed while a follower
/// that follows by root configuration waits for its answer, ended the follow as
/// `UnknownRoot`, although its request registers the root. Now the follower
/// ignores it and asks again until storage answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_unknown_does_not_end_a_follow_by_configuration() {
    let redis = RedisServer::start();
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let node = storage_with(&redis, dir.path(), &keys).await;
    let root = RootConfig::twitch("#unknown").unwrap();

    let mut listener = redis::Client::open(redis.url())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    listener.psubscribe("*").await.unwrap();
    let mut heard = listener.on_message();

    // Storage's signed `unknown` for the root, as anyone listening hears it: a
    // request by hash before the root was registered.
    let mut raw = raw(&redis).await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg("update_requests")
        .arg(root.hash().to_hex())
        .query_async(&mut raw)
        .await
        .unwrap();
    let (channel, unknown) = next_containing(&mut heard, r#""type":"unknown""#).await;
    assert_eq!(channel, format!("updates:{}", root.hash()));
    assert!(String::from_utf8_lossy(&unknown).contains(r#""sig":"#));

    // Storage goes away; a follower by configuration asks, and the replay comes
    // before any answer can (on the root's channel and on its reply channel).
    node.shutdown().await;
    let follower = signed_client(&redis, None, keys.trust(), None).await;
    let follow = tokio::spawn({
        let root = root.clone();
        async move { follower.follow(root).await }
    });
    let (_, request) = next_containing(&mut heard, r#""connection""#).await;
    let request = String::from_utf8(request).unwrap();
    let token = request
        .strip_prefix('@')
        .and_then(|r| r.split_once(' '))
        .map(|(token, _)| token.to_owned())
        .expect("an addressed request");
    for channel in [
        format!("updates:{}", root.hash()),
        format!("replies:{token}"),
    ] {
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&unknown)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(receivers >= 2, "{channel}: heard by {receivers}");
    }

    // Storage comes back: the follower's retry registers the root.
    let node = storage_with(&redis, dir.path(), &keys).await;
    let config = follow
        .await
        .unwrap()
        .expect("the follow by configuration outlives the replayed unknown");
    assert_eq!(config.height(), 0);
    let stats = config.stats();
    assert_eq!(stats.unknown_ignored, 1, "{stats:?}");
    assert_eq!(stats.ignored.get("bad_signature"), Some(&1), "{stats:?}");
    node.shutdown().await;
}

/// Issue 11: a stored snapshot kept the signature it was stored with, so after
/// the storage key was rotated (the old one revoked) every root not written
/// since was unloadable. Now storage signs such a snapshot again with its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_roots_stay_loadable_after_the_storage_key_is_rotated() {
    let redis = RedisServer::start();
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let node = storage_with(&redis, dir.path(), &keys).await;
    let root = RootConfig::twitch("#rotated").unwrap();
    let writer = signed_client(&redis, None, keys.trust(), Some(keys.writer.clone())).await;
    let w = writer.follow(root.clone()).await.unwrap();
    let head = w
        .submit(json!([{"op": "add", "path": "/before", "value": 1}]))
        .await
        .unwrap();
    drop(w);
    drop(writer);
    node.shutdown().await;

    // A new storage key; the old one is no longer trusted by anyone.
    let rotated = tikaconf::SigningKey::from_seed([3; 32]);
    let trust = tikaconf::TrustSet::with_roles([keys.writer.public_key()], [rotated.public_key()]);
    let node = signed_storage(&redis, dir.path(), None, trust.clone(), Some(rotated)).await;
    assert_loads_and_writes(&redis, &node, trust, &root, head, Some(keys.writer)).await;
    node.shutdown().await;
}

/// Issue 11: roots stored while signatures were off stayed unsigned once they
/// were switched on, and every follower requiring signatures refused them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_roots_stay_loadable_when_signatures_are_switched_on() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = storage(&redis, dir.path()).await;
    let root = RootConfig::twitch("#latesigned").unwrap();
    let writer = client(&redis).await;
    let w = writer.follow(root.clone()).await.unwrap();
    let head = w
        .submit(json!([{"op": "add", "path": "/before", "value": 1}]))
        .await
        .unwrap();
    drop(w);
    drop(writer);
    node.shutdown().await;

    let keys = Keys::new();
    let node = storage_with(&redis, dir.path(), &keys).await;
    assert_loads_and_writes(&redis, &node, keys.trust(), &root, head, Some(keys.writer)).await;
    node.shutdown().await;
}

/// A client trusting `trust` loads `root` at `head` from `node`, which had to
/// sign its stored snapshot again, and a writer with `key` goes on from there.
async fn assert_loads_and_writes(
    redis: &RedisServer,
    node: &StorageNode,
    trust: tikaconf::TrustSet,
    root: &RootConfig,
    head: tikaconf::Hash,
    key: Option<tikaconf::SigningKey>,
) {
    let reader = signed_client(redis, None, trust.clone(), None).await;
    let r = reader
        .follow(root.hash())
        .await
        .expect("the stored root loads under the new trust set");
    assert_eq!((r.head(), r.document()["before"].clone()), (head, json!(1)));
    assert_eq!(node.status().stats.resigned, 1);
    let writer = signed_client(redis, None, trust, key).await;
    let w = writer.follow(root.clone()).await.unwrap();
    let next = w
        .submit(json!([{"op": "add", "path": "/after", "value": 2}]))
        .await
        .expect("a trusted writer commits on the old head");
    wait_for_head(&r, next).await.unwrap();
}
