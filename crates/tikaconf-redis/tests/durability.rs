//! The start-up check of Redis's persistence settings, against real redis-servers
//! started with each setting: only `appendonly yes` + `appendfsync always` passes
//! by default; anything that can lose an acknowledged write, or that cannot be
//! read, is refused unless the operator accepts it.

use tikaconf_redis::{AcceptedLoss, DurabilityError, Persistence, RedisStore};
use tikaconf_test::RedisServer;

async fn store(url: &str) -> RedisStore {
    RedisStore::connect(url, "durability:")
        .await
        .expect("connect")
}

/// What the check answers for each accepted level, in order Nothing, EverySec,
/// None: `Ok(found)` or the error's message.
async fn answers(store: &RedisStore) -> Vec<Result<Persistence, DurabilityError>> {
    let mut out = Vec::new();
    for level in [
        AcceptedLoss::Nothing,
        AcceptedLoss::EverySec,
        AcceptedLoss::None,
    ] {
        out.push(store.check_durability(level).await);
    }
    out
}

fn refused(answer: &Result<Persistence, DurabilityError>) -> String {
    match answer {
        Err(e) => e.to_string(),
        Ok(p) => panic!("accepted {p:?}"),
    }
}

#[tokio::test]
async fn appendfsync_always_passes() {
    let server = RedisServer::builder().persistence(true).start();
    let got = answers(&store(&server.url()).await).await;
    for answer in got {
        assert_eq!(answer.expect("accepted"), Persistence::Always);
    }
}

#[tokio::test]
async fn appendfsync_everysec_needs_everysec_accepted() {
    let server = RedisServer::builder()
        .persistence(true)
        .extra_args(["--appendfsync", "everysec"])
        .start();
    let got = answers(&store(&server.url()).await).await;
    let msg = refused(&got[0]);
    assert!(matches!(
        got[0],
        Err(DurabilityError::Lossy {
            found: Persistence::EverySec
        })
    ));
    assert!(msg.contains("appendfsync everysec"), "{msg}");
    assert!(
        msg.contains("`appendfsync always`"),
        "says what to change: {msg}"
    );
    assert!(msg.contains("--accept-redis-durability everysec"), "{msg}");
    assert_eq!(got[1].as_ref().expect("accepted"), &Persistence::EverySec);
    assert_eq!(got[2].as_ref().expect("accepted"), &Persistence::EverySec);
}

#[tokio::test]
async fn appendfsync_no_needs_none_accepted() {
    let server = RedisServer::builder()
        .persistence(true)
        .extra_args(["--appendfsync", "no"])
        .start();
    let got = answers(&store(&server.url()).await).await;
    for answer in &got[..2] {
        assert!(
            matches!(
                answer,
                Err(DurabilityError::Lossy {
                    found: Persistence::NoFsync
                })
            ),
            "{answer:?}"
        );
    }
    assert!(refused(&got[1]).contains("--accept-redis-durability none"));
    assert_eq!(got[2].as_ref().expect("accepted"), &Persistence::NoFsync);
}

#[tokio::test]
async fn no_append_only_file_needs_none_accepted() {
    // The harness's default: no AOF, no RDB snapshots.
    let server = RedisServer::start();
    let got = answers(&store(&server.url()).await).await;
    for answer in &got[..2] {
        assert!(
            matches!(
                answer,
                Err(DurabilityError::Lossy {
                    found: Persistence::NoAof
                })
            ),
            "{answer:?}"
        );
    }
    let msg = refused(&got[0]);
    assert!(msg.contains("appendonly no"), "{msg}");
    assert_eq!(got[2].as_ref().expect("accepted"), &Persistence::NoAof);
}

#[tokio::test]
async fn config_renamed_away_is_unknown() {
    let server = RedisServer::builder()
        .persistence(true)
        .extra_args(["--rename-command", "CONFIG", ""])
        .start();
    let got = answers(&store(&server.url()).await).await;
    for answer in &got[..2] {
        assert!(
            matches!(answer, Err(DurabilityError::Unknown { .. })),
            "{answer:?}"
        );
    }
    assert!(refused(&got[0]).contains("--accept-redis-durability none"));
    assert_eq!(got[2].as_ref().expect("accepted"), &Persistence::Unknown);
}

#[tokio::test]
async fn config_forbidden_by_acl_is_unknown() {
    let server = RedisServer::builder().persistence(true).start();
    let admin = redis::Client::open(server.url()).expect("client");
    let mut conn = admin
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER", "storage", "on", ">pw", "~*", "&*", "+@all", "-config",
            ][..],
        )
        .query_async(&mut conn)
        .await
        .expect("acl setuser");
    let url = format!("redis://storage:pw@127.0.0.1:{}", server.port());
    let store = store(&url).await;
    // The user can use the store, just not read the settings.
    tikaconf_store::Store::root_count(&store)
        .await
        .expect("the restricted user works");
    let got = answers(&store).await;
    match &got[0] {
        Err(DurabilityError::Unknown { source }) => {
            assert_eq!(source.code(), Some("NOPERM"), "{source}");
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
    assert_eq!(got[2].as_ref().expect("accepted"), &Persistence::Unknown);
}
