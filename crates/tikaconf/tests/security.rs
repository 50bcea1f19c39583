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
