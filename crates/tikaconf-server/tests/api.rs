//! The HTTP API against a whole in-process deployment: every status code of
//! reads and writes, ETag / If-Match / If-None-Match, merge patches, PUT, the
//! roots listing and registration, SSE with resume, the token rule, probes.

mod common;

use std::collections::HashSet;

use common::{EventStream, TestServer, call, get, register, write};
use serde_json::{Value, json};
use tikaconf::store::Store;
use tikaconf::testing::{self, PATIENCE};
use tikaconf::{Hash, RootConfig};
use tikaconf_server::{ApiOptions, JSON_PATCH, MERGE_PATCH};

/// Registers `#channel` and returns the config URL (`twitch:%23channel`).
async fn twitch(server: &TestServer, channel: &str) -> String {
    register(
        server,
        json!({"platform": "twitch", "channel": format!("#{channel}")}),
    )
    .await
    .expect(201);
    server.url(&format!("/v1/configs/twitch:%23{channel}"))
}

#[tokio::test]
async fn register_then_get_with_etag_height_pointer_and_304() {
    let server = TestServer::start().await;
    let root = RootConfig::twitch("#getter").unwrap().hash();
    // 201 new, 200 when it exists (the Twitch rule: case and `#` do not matter).
    let created = register(&server, json!({"platform": "twitch", "channel": "#Getter"}))
        .await
        .expect(201);
    assert_eq!(created.json()["root"], root.to_string());
    assert_eq!(created.json()["height"], 0);
    let again = register(&server, json!({"platform": "twitch", "channel": "getter"}))
        .await
        .expect(200);
    assert_eq!(again.json(), created.json());
    register(&server, json!(["not", "an", "object"]))
        .await
        .expect(400);
    call("POST", &server.url("/v1/roots"), &[], Some(b"{".to_vec()))
        .await
        .expect(400);

    // By name and by hash: the same document, ETag = the head, quoted.
    let by_name = get(&server.url("/v1/configs/twitch:%23getter"))
        .await
        .expect(200);
    let by_hash = get(&server.url(&format!("/v1/configs/{root}")))
        .await
        .expect(200);
    assert_eq!(by_name.body, by_hash.body);
    assert_eq!(by_name.etag(), root.to_string());
    assert_eq!(by_name.header("etag"), Some(format!("\"{root}\"").as_str()));
    assert_eq!(by_name.height(), 0);
    assert_eq!(by_name.json()["connection"]["channel"], "#getter");

    // If-None-Match: 304 on the current head (also in a list, also weak).
    let url = server.url("/v1/configs/twitch:%23getter");
    let tag = format!("\"{root}\"");
    let not_modified = call("GET", &url, &[("if-none-match", &tag)], None)
        .await
        .expect(304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.etag(), root.to_string());
    let listed = format!("\"{}\", W/{tag}", Hash::from_bytes([1; 32]));
    call("GET", &url, &[("if-none-match", &listed)], None)
        .await
        .expect(304);
    let other = format!("\"{}\"", Hash::from_bytes([1; 32]));
    call("GET", &url, &[("if-none-match", &other)], None)
        .await
        .expect(200);

    // A part by JSON Pointer; one that does not resolve is 404, a bad one 400.
    let part = get(&format!("{url}?pointer=/connection/platform"))
        .await
        .expect(200);
    assert_eq!(part.json(), "twitch");
    assert_eq!(part.etag(), root.to_string());
    get(&format!("{url}?pointer=/nope")).await.expect(404);
    get(&format!("{url}?pointer=nope")).await.expect(400);

    // Unknown roots are 404 (nothing registered by a GET); bad ones 400.
    let unknown = get(&server.url("/v1/configs/twitch:%23nobody"))
        .await
        .expect(404);
    assert_eq!(unknown.json()["code"], "unknown_root");
    get(&server.url("/v1/configs/nonsense")).await.expect(400);
    get(&server.url("/v2/nothing")).await.expect(404);
    call("DELETE", &url, &[], None).await.expect(405);
    get(&server.url("/v1/configs/%FF%FE")).await.expect(400);
    get(&format!("{url}?pointer=%FF")).await.expect(400);
}

#[tokio::test]
async fn patch_with_if_match_commits_and_a_stale_one_is_412() {
    let server = TestServer::start().await;
    let url = twitch(&server, "patcher").await;
    let head0 = get(&url).await.expect(200).etag();

    let ops = json!([{"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]);
    let done = write("PATCH", &url, JSON_PATCH, Some(&head0), &ops)
        .await
        .expect(200);
    let head1 = done.etag();
    assert_ne!(head1, head0);
    assert_eq!(done.height(), 1);
    assert_eq!(done.json()["head"], head1);
    assert_eq!(done.json()["height"], 1);
    // Committed means stored: the store has it.
    let stored = server
        .store
        .load(head0.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.head.to_string(), head1);
    let now = get(&url).await.expect(200);
    assert_eq!(now.etag(), head1);
    assert_eq!(now.json()["commands"]["!hi"], "hello");

    // If-Match on the old head: 412, naming the current one; nothing written.
    let stale = write("PATCH", &url, JSON_PATCH, Some(&head0), &ops)
        .await
        .expect(412);
    assert_eq!(stale.json()["current"], head1);
    assert_eq!(stale.json()["code"], "stale_if_match");
    assert_eq!(get(&url).await.etag(), head1);
    // `If-Match: *` and no If-Match: on the current head.
    let ops2 = json!([{"op": "add", "path": "/volume", "value": 11}]);
    let star = call(
        "PATCH",
        &url,
        &[("content-type", JSON_PATCH), ("if-match", "*")],
        Some(ops2.to_string().into_bytes()),
    )
    .await
    .expect(200);
    assert_eq!(star.height(), 2);
    let plain = write(
        "PATCH",
        &url,
        JSON_PATCH,
        None,
        &json!([{"op": "replace", "path": "/volume", "value": 3}]),
    )
    .await
    .expect(200);
    assert_eq!(plain.height(), 3);
    assert_eq!(get(&url).await.json()["volume"], 3);
}

#[tokio::test]
async fn bad_writes_are_400_413_415_and_422_and_change_nothing() {
    let server = TestServer::start_with(ApiOptions {
        max_body_bytes: 4096,
        ..ApiOptions::default()
    })
    .await;
    let url = twitch(&server, "badwriter").await;
    let head = get(&url).await.etag();

    // 422: ops that do not apply (a missing path, a failed test).
    let missing = json!([{"op": "replace", "path": "/nope", "value": 1}]);
    let failed = write("PATCH", &url, JSON_PATCH, None, &missing)
        .await
        .expect(422);
    assert_eq!(failed.json()["code"], "ops_failed");
    let test = json!([{"op": "test", "path": "/connection/platform", "value": "discord"}]);
    write("PATCH", &url, JSON_PATCH, None, &test)
        .await
        .expect(422);
    // 400: not JSON, not an array, not RFC 6902 ops.
    call(
        "PATCH",
        &url,
        &[("content-type", JSON_PATCH)],
        Some(b"[{".to_vec()),
    )
    .await
    .expect(400);
    write("PATCH", &url, JSON_PATCH, None, &json!({"op": "add"}))
        .await
        .expect(400);
    write(
        "PATCH",
        &url,
        JSON_PATCH,
        None,
        &json!([{"op": "frobnicate", "path": "/a"}]),
    )
    .await
    .expect(400);
    call(
        "PATCH",
        &url,
        &[("content-type", JSON_PATCH), ("if-match", "unquoted")],
        Some(b"[]".to_vec()),
    )
    .await
    .expect(400);
    // 415: neither patch type; PUT takes JSON only.
    write("PATCH", &url, "application/json", None, &json!([]))
        .await
        .expect(415);
    call("PATCH", &url, &[], Some(b"[]".to_vec()))
        .await
        .expect(415);
    write("PUT", &url, JSON_PATCH, None, &json!({}))
        .await
        .expect(415);
    // 413: a body past the limit.
    let big = json!([{"op": "add", "path": "/big", "value": "x".repeat(5000)}]);
    let too_large = write("PATCH", &url, JSON_PATCH, None, &big)
        .await
        .expect(413);
    assert_eq!(too_large.json()["code"], "too_large");
    // Writes to an unknown root: 404.
    write(
        "PATCH",
        &server.url("/v1/configs/twitch:%23nobody"),
        JSON_PATCH,
        None,
        &missing,
    )
    .await
    .expect(404);

    assert_eq!(get(&url).await.etag(), head, "nothing was written");
}

#[tokio::test]
async fn merge_patch_and_put_become_rfc6902_ops() {
    let server = TestServer::start().await;
    let url = twitch(&server, "merger").await;
    let head0 = get(&url).await.etag();
    let doc = json!({"connection": {"platform": "twitch", "channel": "#merger"},
                     "commands": {"!hi": "hello", "!bye": "bye"}, "volume": 5});
    let put = write("PUT", &url, "application/json", Some(&head0), &doc)
        .await
        .expect(200);
    assert_eq!(put.height(), 1);
    assert_eq!(get(&url).await.json(), doc);

    // RFC 7386: null removes, objects merge, the rest replaces.
    let merge = json!({"commands": {"!bye": null, "!new": "new"}, "volume": 7});
    let merged = write("PATCH", &url, MERGE_PATCH, Some(&put.etag()), &merge)
        .await
        .expect(200);
    assert_eq!(merged.height(), 2);
    let now = get(&url).await.json();
    assert_eq!(now["commands"], json!({"!hi": "hello", "!new": "new"}));
    assert_eq!(now["volume"], 7);

    // What went over the wire is RFC 6902 ops: a follower's change has them.
    let follower = server
        .connect()
        .follow(RootConfig::twitch("#merger").unwrap())
        .await
        .unwrap();
    let mut changes = follower.changes();
    let again = write("PATCH", &url, MERGE_PATCH, None, &json!({"volume": 8}))
        .await
        .expect(200);
    let change = tokio::time::timeout(PATIENCE, changes.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.head.to_string(), again.etag());
    let ops = change.patch.expect("a patch").ops.to_value();
    assert_eq!(
        ops,
        json!([{"op": "replace", "path": "/volume", "value": 8}])
    );

    // A merge, PUT or empty patch that changes nothing writes nothing: the same head.
    let same = write("PATCH", &url, MERGE_PATCH, None, &json!({"volume": 8}))
        .await
        .expect(200);
    assert_eq!(same.etag(), again.etag());
    let current = get(&url).await;
    let unchanged = write("PUT", &url, "application/json", None, &current.json())
        .await
        .expect(200);
    assert_eq!(unchanged.etag(), current.etag());
    let empty = write("PATCH", &url, JSON_PATCH, None, &json!([]))
        .await
        .expect(200);
    assert_eq!(empty.etag(), current.etag());
    // A stale If-Match on PUT: 412.
    write("PUT", &url, "application/json", Some(&head0), &doc)
        .await
        .expect(412);
}

/// A write that loses the race to another writer's patch on the same parent
/// is 409, naming the winner. The race is made on purpose: the API's node is
/// held from hearing the other patch until its own is published.
#[tokio::test]
async fn a_write_that_loses_a_race_is_409_naming_the_winner() {
    let server = TestServer::start().await;
    let url = twitch(&server, "racer").await;
    let bot = server
        .connect()
        .follow(RootConfig::twitch("#racer").unwrap())
        .await
        .unwrap();
    get(&url).await.expect(200); // the API follows the root
    server.api_gate.hold();
    let winner = bot
        .submit(json!([{"op": "add", "path": "/winner", "value": true}]))
        .await
        .unwrap();
    let stale_before = server.storage_stats().stale;
    let request = tokio::spawn({
        let url = url.clone();
        async move {
            write(
                "PATCH",
                &url,
                JSON_PATCH,
                None,
                &json!([{"op": "add", "path": "/loser", "value": true}]),
            )
            .await
        }
    });
    // Storage has heard the API's patch (on a parent it no longer has).
    assert!(
        tikaconf_test::wait_until(PATIENCE, || server.storage_stats().stale > stale_before).await,
        "the API's patch never reached storage"
    );
    server.api_gate.release();
    let conflict = request.await.unwrap().expect(409);
    assert_eq!(conflict.json()["winner"], winner.to_string());
    assert_eq!(conflict.json()["code"], "conflict");
    assert!(conflict.json()["attempted"].is_string());
    testing::wait_for_head(&bot, winner).await.unwrap();
    let now = get(&url).await.json();
    assert_eq!(now["winner"], true);
    assert!(now.get("loser").is_none());
}

/// No storage node answering: 503 with Retry-After, for a read of a root
/// the API does not follow yet and for a write's unknown outcome.
#[tokio::test]
async fn no_storage_is_503_with_retry_after() {
    // Short waits, so that the test does not wait the default 10 s.
    let mut client = tikaconf::testing::fast_options();
    client.load_timeout = std::time::Duration::from_secs(2);
    client.follower = tikaconf::proto::FollowerConfig {
        jitter_seed: 7,
        ..tikaconf::proto::FollowerConfig::quick(std::time::Duration::from_secs(2))
    };
    let server = TestServer::start_full(ApiOptions::default(), client).await;
    let url = twitch(&server, "outage").await;
    get(&url).await.expect(200);
    // Storage goes away: the API's node still has the document, but a write
    // gets no outcome, and a root it does not follow cannot load.
    server.stop_storage().await;
    let write = write(
        "PATCH",
        &url,
        JSON_PATCH,
        None,
        &json!([{"op": "add", "path": "/a", "value": 1}]),
    )
    .await
    .expect(503);
    assert!(write.header("retry-after").is_some());
    assert_eq!(write.json()["code"], "outcome_unknown");
    assert!(write.json()["attempted"].is_string());
    let load = get(&server.url("/v1/configs/twitch:%23neverfollowed"))
        .await
        .expect(503);
    assert!(load.header("retry-after").is_some());
    let ready = get(&server.url("/readyz")).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["ready"], false);
}

#[tokio::test]
async fn sse_sends_a_snapshot_then_changes_and_resumes() {
    let server = TestServer::start().await;
    let url = twitch(&server, "watcher").await;
    let events = format!("{url}/events");
    let mut stream = EventStream::open(&events, &[]).await;
    let first = stream.next().await;
    assert_eq!(first.event, "snapshot");
    let head0 = get(&url).await.etag();
    assert_eq!(first.id, head0);
    assert_eq!(first.data["head"], head0);
    assert_eq!(first.data["height"], 0);
    assert_eq!(first.data["document"]["connection"]["channel"], "#watcher");

    let ops = json!([{"op": "add", "path": "/a", "value": 1}]);
    let head1 = write("PATCH", &url, JSON_PATCH, None, &ops)
        .await
        .expect(200)
        .etag();
    let change = stream.next().await;
    assert_eq!(change.event, "change");
    assert_eq!(change.id, head1);
    assert_eq!(change.data, json!({"head": head1, "height": 1, "ops": ops}));

    // A change by another node shows up too.
    let bot = server
        .connect()
        .follow(RootConfig::twitch("#watcher").unwrap())
        .await
        .unwrap();
    testing::wait_for_head(&bot, head1.parse().unwrap())
        .await
        .unwrap();
    let head2 = bot
        .submit(json!([{"op": "add", "path": "/b", "value": 2}]))
        .await
        .unwrap();
    let change = stream.next().await;
    assert_eq!(change.id, head2.to_string());
    assert_eq!(change.data["height"], 2);

    // Resume from the current head: no snapshot, only what comes next.
    let mut resumed = EventStream::open(&events, &[("last-event-id", &head2.to_string())]).await;
    // Resume from an old head: a snapshot first, at the current head.
    let mut behind = EventStream::open(&events, &[("last-event-id", &head0)]).await;
    let snapshot = behind.next().await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(snapshot.id, head2.to_string());
    assert_eq!(snapshot.data["document"]["b"], 2);
    let head3 = write(
        "PATCH",
        &url,
        JSON_PATCH,
        None,
        &json!([{"op": "add", "path": "/c", "value": 3}]),
    )
    .await
    .expect(200)
    .etag();
    let next = resumed.next().await;
    assert_eq!(
        (next.event.as_str(), next.id.as_str()),
        ("change", head3.as_str())
    );
    let next = behind.next().await;
    assert_eq!(
        (next.event.as_str(), next.id.as_str()),
        ("change", head3.as_str())
    );
    assert_eq!(stream.next().await.id, head3);

    // Unknown and bad roots are answered before any stream starts.
    get(&server.url("/v1/configs/twitch:%23nobody/events"))
        .await
        .expect(404);
}

#[tokio::test]
async fn heartbeats_keep_an_idle_stream_open() {
    let server = TestServer::start_with(ApiOptions {
        heartbeat: std::time::Duration::from_millis(50),
        ..ApiOptions::default()
    })
    .await;
    let url = twitch(&server, "idle").await;
    let mut stream = EventStream::open(&format!("{url}/events"), &[]).await;
    assert_eq!(stream.next().await.event, "snapshot");
    assert!(stream.next_raw_contains("\n: heartbeat\n").await);
}

#[tokio::test]
async fn roots_are_listed_by_cursor_each_once_and_filtered_by_platform() {
    let server = TestServer::start().await;
    // 2,500 roots through the store, a few through the API.
    let mut expected = HashSet::new();
    for i in 0..2500 {
        let platform = if i % 5 == 0 { "discord" } else { "testing" };
        let root = RootConfig::from_connection(json!({"platform": platform, "n": i})).unwrap();
        let snapshot = tikaconf::proto::Snapshot::of_root(&root);
        server
            .store
            .register(tikaconf::proto::StoredHead {
                root: root.hash(),
                head: root.hash(),
                height: 0,
                snapshot: snapshot.encoded.clone(),
            })
            .await
            .unwrap();
        expected.insert(root.hash().to_string());
    }
    for channel in ["lister_a", "lister_b"] {
        twitch(&server, channel).await;
        expected.insert(RootConfig::twitch(channel).unwrap().hash().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/v1/roots?limit=1000&cursor={c}"),
            None => "/v1/roots?limit=1000".to_owned(),
        };
        let page = get(&server.url(&query)).await.expect(200).json();
        let roots = page["roots"].as_array().unwrap();
        assert!(roots.len() <= 1000);
        for r in roots {
            assert!(r["head"].is_string() && r["height"].is_u64());
            seen.push(r["root"].as_str().unwrap().to_owned());
        }
        match &page["next"] {
            Value::Null => break,
            next => cursor = Some(next.as_str().unwrap().to_owned()),
        }
    }
    assert_eq!(seen.len(), expected.len(), "every root exactly once");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);

    // Filtered: only twitch roots, with their connection info.
    let twitch_page = get(&server.url("/v1/roots?platform=twitch"))
        .await
        .expect(200)
        .json();
    let mut names: Vec<_> = collect_all(&server, "platform=twitch&limit=7").await;
    names.sort();
    assert_eq!(names.len(), 2, "{twitch_page}");
    let discord = collect_all(&server, "platform=discord&limit=100").await;
    assert_eq!(discord.len(), 500);

    get(&server.url("/v1/roots?limit=0")).await.expect(400);
    get(&server.url("/v1/roots?limit=1001")).await.expect(400);
    get(&server.url("/v1/roots?limit=ten")).await.expect(400);
    get(&server.url("/v1/roots?cursor=nothash"))
        .await
        .expect(400);
}

/// Every root of a filtered listing, following `next` to the end.
async fn collect_all(server: &TestServer, query: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => server.url(&format!("/v1/roots?{query}&cursor={c}")),
            None => server.url(&format!("/v1/roots?{query}")),
        };
        let page = get(&url).await.expect(200).json();
        for r in page["roots"].as_array().unwrap() {
            assert!(r["connection"].is_object());
            all.push(r["root"].as_str().unwrap().to_owned());
        }
        match &page["next"] {
            Value::Null => return all,
            next => cursor = Some(next.as_str().unwrap().to_owned()),
        }
    }
}

#[tokio::test]
async fn a_token_is_required_on_every_request_when_set() {
    let server = TestServer::start_with(ApiOptions {
        token: Some("s3cret-token".into()),
        ..ApiOptions::default()
    })
    .await;
    for path in [
        "/v1/roots",
        "/healthz",
        "/openapi.json",
        "/v1/configs/twitch:%23x",
    ] {
        let denied = get(&server.url(path)).await.expect(401);
        assert!(denied.header("www-authenticate").is_some());
        call(
            "GET",
            &server.url(path),
            &[("authorization", "Bearer wrong")],
            None,
        )
        .await
        .expect(401);
    }
    let ok = call(
        "GET",
        &server.url("/v1/roots"),
        &[("authorization", "Bearer s3cret-token")],
        None,
    )
    .await
    .expect(200);
    assert!(ok.json()["roots"].is_array());
    // The document says so, for clients and for schemathesis's auth checks.
    let doc = call(
        "GET",
        &server.url("/openapi.json"),
        &[("authorization", "Bearer s3cret-token")],
        None,
    )
    .await
    .expect(200)
    .json();
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    assert!(doc["paths"]["/v1/roots"]["get"]["responses"]["401"].is_object());
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    use tikaconf_server::check_listen;
    let any = "0.0.0.0:7070".parse().unwrap();
    assert!(check_listen(any, None).is_err());
    assert!(check_listen(any, Some("")).is_err());
    assert!(check_listen(any, Some("t")).is_ok());
    assert!(check_listen("127.0.0.1:7070".parse().unwrap(), None).is_ok());
    assert!(check_listen("[::1]:7070".parse().unwrap(), None).is_ok());
}

#[tokio::test]
async fn probes_and_openapi() {
    let server = TestServer::start().await;
    assert_eq!(
        get(&server.url("/healthz")).await.expect(200).body.as_ref(),
        b"ok\n"
    );
    let ready = get(&server.url("/readyz")).await.expect(200).json();
    assert_eq!(
        ready,
        json!({"ready": true, "bus": "connected", "storage": "ready"})
    );
    let doc = get(&server.url("/openapi.json")).await.expect(200).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(
        doc.get("security").is_none(),
        "no token, no security requirement"
    );
    for path in [
        "/v1/roots",
        "/v1/configs/{root}",
        "/v1/configs/{root}/events",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

/// The console's files: embedded, typed, revalidated with a strong ETag
/// (304 while unchanged), and served without the token (they hold no data;
/// the API behind them still asks for it).
#[tokio::test]
async fn the_console_is_embedded_typed_cached_and_outside_the_token() {
    let server = TestServer::start_with(ApiOptions {
        token: Some("s3cret-token".into()),
        ..ApiOptions::default()
    })
    .await;
    for (path, content_type, holds) in [
        ("/", "text/html; charset=utf-8", "/assets/console.js"),
        (
            "/assets/console.js",
            "text/javascript; charset=utf-8",
            "EventStream",
        ),
        (
            "/assets/json.js",
            "text/javascript; charset=utf-8",
            "applyPatch",
        ),
        (
            "/assets/console.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
        ("/assets/icon.svg", "image/svg+xml", "<svg"),
        (
            "/assets/vendor/codemirror.min.js",
            "text/javascript; charset=utf-8",
            "jsonParseLinter",
        ),
    ] {
        let got = get(&server.url(path)).await.expect(200);
        assert_eq!(got.header("content-type"), Some(content_type), "{path}");
        assert_eq!(got.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
        assert!(got.header("content-security-policy").is_some());
        assert!(String::from_utf8_lossy(&got.body).contains(holds), "{path}");
        let tag = got.header("etag").expect("an ETag").to_owned();
        assert!(tag.starts_with('"'), "strong: {tag}");
        let again = call("GET", &server.url(path), &[("if-none-match", &tag)], None).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
    }
    get(&server.url("/assets/nothing.js")).await.expect(404);
    get(&server.url("/v1/roots")).await.expect(401);
    let doc = call(
        "GET",
        &server.url("/openapi.json"),
        &[("authorization", "Bearer s3cret-token")],
        None,
    )
    .await
    .expect(200)
    .json();
    assert!(doc["paths"]["/"].is_null() && doc["paths"]["/assets/{path}"].is_null());
}

/// What schemathesis found: a body no patch could carry is 400 before
/// `If-Match` is compared (it was 412 on a stale head), oversized connection
/// info is 413, an entity tag may hold a comma, and query parameters are
/// declared in the query.
#[tokio::test]
async fn malformed_bodies_are_400_before_if_match_and_the_document_is_precise() {
    let server = TestServer::start().await;
    let url = twitch(&server, "strict").await;
    let stale = format!("\"{}\"", Hash::from_bytes([1; 32]));
    for (media, body) in [
        (MERGE_PATCH, r#"{"x": -9007199254740994.0}"#),
        ("application/json", r#"{"x": 18014398509481984}"#),
        (JSON_PATCH, r#"[{"op": "copy", "from": ""}]"#),
        (
            JSON_PATCH,
            r#"[{"op": "add", "path": "/x", "value": 1e300}]"#,
        ),
    ] {
        let method = if media == "application/json" {
            "PUT"
        } else {
            "PATCH"
        };
        let answer = call(
            method,
            &url,
            &[("content-type", media), ("if-match", &stale)],
            Some(body.as_bytes().to_vec()),
        )
        .await
        .expect(400);
        assert_eq!(answer.json()["code"], "bad_request", "{body}");
    }
    // A well-formed body on a stale head is still 412.
    write(
        "PATCH",
        &url,
        MERGE_PATCH,
        Some(&Hash::from_bytes([1; 32]).to_string()),
        &json!({"x": 1}),
    )
    .await
    .expect(412);

    // Connection info past 4096 canonical bytes: too large, like any body.
    let big = json!({"platform": "elsewhere", "blob": "x".repeat(5000)});
    let too_large = register(&server, big).await.expect(413);
    assert_eq!(too_large.json()["code"], "too_large");

    // `If-None-Match` with a comma inside one tag, then the current head.
    let head = get(&url).await.expect(200).etag();
    let listed = format!("\"a,b\", \"{head}\"");
    call("GET", &url, &[("if-none-match", &listed)], None)
        .await
        .expect(304);

    let doc = get(&server.url("/openapi.json")).await.expect(200).json();
    let params = |path: &str, method: &str| -> Vec<(String, String)> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_owned();
                let place = p["in"].as_str().unwrap().to_owned();
                (name, place)
            })
            .collect()
    };
    for (name, place) in params("/v1/roots", "get") {
        assert_eq!(place, "query", "{name}");
    }
    assert!(params("/v1/configs/{root}", "get").contains(&("pointer".into(), "query".into())));
    let stream = &doc["paths"]["/v1/configs/{root}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    assert_eq!(
        stream["itemSchema"]["required"],
        json!(["event", "id", "data"])
    );
    for schema in ["ProtocolJson", "PatchOp", "ConnectionInfo"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
