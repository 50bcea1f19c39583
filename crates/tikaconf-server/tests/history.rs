//! A configuration's past over the API: the history with each write's
//! author, time and message, the document at an old version, diffs, and
//! rollback (a new patch on the head, conditional like every write), against
//! a whole in-process deployment.

mod common;

use common::{TestServer, call, get, register, write};
use serde_json::{Value, json};
use tikaconf::proto::{Patch, PersistCommit, Snapshot, StoredHead};
use tikaconf::store::{MemoryStore, Retention, Store};
use tikaconf::testing::{PATIENCE, fast_options};
use tikaconf::{Hash, RootConfig};
use tikaconf_server::{ApiOptions, JSON_PATCH};

/// Registers `#channel`; returns the config URL.
async fn twitch(server: &TestServer, channel: &str) -> String {
    register(
        server,
        json!({"platform": "twitch", "channel": format!("#{channel}")}),
    )
    .await
    .expect(201);
    server.url(&format!("/v1/configs/twitch:%23{channel}"))
}

/// A PATCH with author and message headers; returns the new head.
async fn patch(url: &str, ops: Value, author: Option<&str>, message: &str) -> String {
    let mut headers = vec![("content-type", JSON_PATCH), ("tikaconf-message", message)];
    if let Some(author) = author {
        headers.push(("tikaconf-author", author));
    }
    call("PATCH", url, &headers, Some(ops.to_string().into_bytes()))
        .await
        .expect(200)
        .etag()
}

async fn rollback(url: &str, if_match: Option<&str>, body: Value) -> common::Reply {
    write(
        "POST",
        &format!("{url}/rollback"),
        "application/json",
        if_match,
        &body,
    )
    .await
}

/// Whether `text` is an RFC 3339 UTC time as the API writes it.
fn parse_time(text: &str) -> bool {
    let b = text.as_bytes();
    text.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && text[..4].parse::<u32>().is_ok_and(|y| y >= 2024)
        && text[5..7]
            .parse::<u32>()
            .is_ok_and(|m| (1..=12).contains(&m))
        && text[8..10]
            .parse::<u32>()
            .is_ok_and(|d| (1..=31).contains(&d))
}

#[tokio::test]
async fn history_pages_newest_first_with_author_time_and_message() {
    let server = TestServer::start().await;
    let url = twitch(&server, "hist").await;
    let mut heads = Vec::new();
    for i in 0..5 {
        let author = (i % 2 == 0).then_some("ana%20%C3%A9");
        heads.push(
            patch(
                &url,
                json!([{"op": "add", "path": format!("/k{i}"), "value": i}]),
                author,
                &format!("write {i}"),
            )
            .await,
        );
    }
    let page = get(&format!("{url}/history?limit=2"))
        .await
        .expect(200)
        .json();
    assert_eq!(page["retention"], "1000");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["hash"], heads[4].as_str());
    assert_eq!(entries[0]["height"], 5);
    assert_eq!(entries[0]["parent"], heads[3].as_str());
    assert_eq!(entries[0]["author"], "ana é", "percent-decoded UTF-8");
    assert_eq!(entries[0]["message"], "write 4");
    assert_eq!(entries[1]["author"], "api", "the server's default author");
    assert_eq!(
        entries[0]["ops"],
        json!([{"op": "add", "path": "/k4", "value": 4}])
    );
    for entry in entries {
        let time = entry["time"].as_str().unwrap();
        assert!(parse_time(time), "{time} is not RFC 3339 UTC");
        assert_eq!(entry["meta"]["time"], time);
        assert!(entry["error"].is_null());
    }
    assert_eq!(page["next"], 4);
    // The cursor walks back to height 1, each entry once.
    let mut seen: Vec<u64> = entries
        .iter()
        .map(|e| e["height"].as_u64().unwrap())
        .collect();
    let mut next = page["next"].clone();
    while let Some(before) = next.as_u64() {
        let page = get(&format!("{url}/history?limit=2&before={before}"))
            .await
            .expect(200)
            .json();
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["height"].as_u64().unwrap()),
        );
        next = page["next"].clone();
    }
    assert_eq!(seen, [5, 4, 3, 2, 1]);
    get(&format!("{url}/history?limit=0")).await.expect(400);
    get(&format!("{url}/history?before=9007199254740993"))
        .await
        .expect(400);
    // Meta headers are printable ASCII (percent-encoded UTF-8): raw bytes
    // beyond it are 400, and nothing is published.
    call(
        "PATCH",
        &url,
        &[("content-type", JSON_PATCH), ("tikaconf-message", "café")],
        Some(b"[{\"op\":\"add\",\"path\":\"/x\",\"value\":1}]".to_vec()),
    )
    .await
    .expect(400);
    assert_eq!(get(&url).await.etag(), heads[4]);
    let unknown = "0".repeat(64);
    get(&server.url(&format!("/v1/configs/{unknown}/history")))
        .await
        .expect(404);
}

#[tokio::test]
async fn the_document_at_a_version_and_diffs_between_versions() {
    let server = TestServer::start().await;
    let url = twitch(&server, "versions").await;
    let root = RootConfig::twitch("#versions").unwrap().hash().to_hex();
    let first = patch(
        &url,
        json!([{"op": "add", "path": "/volume", "value": 1}]),
        None,
        "a",
    )
    .await;
    let second = patch(
        &url,
        json!([{"op": "replace", "path": "/volume", "value": 2},
               {"op": "add", "path": "/commands", "value": {"!hi": "hello"}}]),
        None,
        "b",
    )
    .await;
    let third = patch(
        &url,
        json!([{"op": "remove", "path": "/volume"}]),
        None,
        "c",
    )
    .await;
    let now = get(&url).await.expect(200).json();

    let at = get(&format!("{url}/at/{first}")).await.expect(200).json();
    assert_eq!(at["height"], 1);
    assert_eq!(at["hash"], first.as_str());
    assert_eq!(at["patch"]["message"], "a");
    assert_eq!(
        at["patch"]["ops"],
        json!([{"op": "add", "path": "/volume", "value": 1}])
    );
    let mut expected = now.clone();
    expected.as_object_mut().unwrap().remove("commands");
    expected["volume"] = json!(1);
    assert_eq!(at["document"], expected);
    let at = get(&format!("{url}/at/{third}")).await.expect(200).json();
    assert_eq!(
        (at["height"].clone(), at["document"].clone()),
        (json!(3), now.clone())
    );
    // Height 0: the root configuration.
    let at = get(&format!("{url}/at/{root}")).await.expect(200).json();
    assert_eq!(at["height"], 0);
    assert!(at["patch"].is_null());
    assert_eq!(
        at["document"],
        json!({"connection": {"platform": "twitch", "channel": "#versions"}})
    );
    // Not a version of this root (its history reaches back to the root).
    let problem = get(&format!("{url}/at/{}", "ab".repeat(32)))
        .await
        .expect(404)
        .json();
    assert_eq!(problem["code"], "unknown_version");
    get(&format!("{url}/at/nothex")).await.expect(400);

    let diff = get(&format!("{url}/diff?from={first}&to={second}"))
        .await
        .expect(200)
        .json();
    assert_eq!(diff["from"], first.as_str());
    assert_eq!(diff["to"], second.as_str());
    let mut doc = get(&format!("{url}/at/{first}")).await.json()["document"].clone();
    json_apply(&mut doc, &diff["ops"]);
    assert_eq!(
        doc,
        get(&format!("{url}/at/{second}")).await.json()["document"]
    );
    let back = get(&format!("{url}/diff?from={third}&to={first}"))
        .await
        .expect(200)
        .json();
    assert!(!back["ops"].as_array().unwrap().is_empty());
    let same = get(&format!("{url}/diff?from={second}&to={second}"))
        .await
        .expect(200)
        .json();
    assert_eq!(same["ops"], json!([]));
    get(&format!("{url}/diff?from={first}")).await.expect(400);
}

fn json_apply(doc: &mut Value, ops: &Value) {
    let patch: json_patch::Patch = serde_json::from_value(ops.clone()).unwrap();
    json_patch::patch(doc, &patch).unwrap();
}

#[tokio::test]
async fn rollback_publishes_a_new_head_whose_document_is_the_old_one() {
    let server = TestServer::start().await;
    let url = twitch(&server, "undo").await;
    let good = patch(
        &url,
        json!([{"op": "add", "path": "/volume", "value": 5}]),
        None,
        "good",
    )
    .await;
    let good_doc = get(&url).await.json();
    let bad = patch(
        &url,
        json!([{"op": "replace", "path": "/volume", "value": 11},
               {"op": "add", "path": "/oops", "value": [1, 2, 3]}]),
        None,
        "bad",
    )
    .await;

    // Unconditional: 428, nothing published.
    let problem = rollback(&url, None, json!({"to": good}))
        .await
        .expect(428)
        .json();
    assert_eq!(problem["code"], "precondition_required");
    // On a head that is no longer current: 412 naming it, nothing published.
    let stale = rollback(&url, Some(&good), json!({"to": good}))
        .await
        .expect(412)
        .json();
    assert_eq!(stale["current"], bad.as_str());
    assert_eq!(get(&url).await.etag(), bad);

    let done = call(
        "POST",
        &format!("{url}/rollback"),
        &[
            ("content-type", "application/json"),
            ("if-match", &format!("\"{bad}\"")),
            ("tikaconf-author", "ops"),
        ],
        Some(
            json!({"to": good, "message": "undo the bad one"})
                .to_string()
                .into_bytes(),
        ),
    )
    .await
    .expect(200);
    let head = done.etag();
    assert_ne!(head, good, "the chain only moves forward");
    assert_eq!(done.height(), 3);
    assert_eq!(done.json()["head"], head.as_str());
    let now = get(&url).await.expect(200);
    assert_eq!((now.etag(), now.json()), (head.clone(), good_doc.clone()));

    let log = get(&format!("{url}/history?limit=1"))
        .await
        .expect(200)
        .json();
    let entry = &log["entries"][0];
    assert_eq!(entry["hash"], head.as_str());
    assert_eq!(entry["rollback_of"], good.as_str());
    assert_eq!(entry["meta"]["rollback_of"], good.as_str());
    assert_eq!(entry["message"], "undo the bad one");
    assert_eq!(entry["author"], "ops");

    // Rolling back to what the document already is publishes nothing.
    let again = rollback(&url, Some(&head), json!({"to": good}))
        .await
        .expect(200);
    assert_eq!((again.etag(), again.height()), (head.clone(), 3));
    // A default message names the version.
    let to_bad = rollback(&url, Some(&head), json!({"to": bad}))
        .await
        .expect(200);
    let log = get(&format!("{url}/history?limit=1")).await.json();
    assert_eq!(log["entries"][0]["hash"], to_bad.etag().as_str());
    assert_eq!(
        log["entries"][0]["message"],
        format!("rollback to {}", &bad[..12])
    );
    assert_eq!(log["entries"][0]["author"], "api");

    rollback(&url, Some(&to_bad.etag()), json!({"to": "ab".repeat(32)}))
        .await
        .expect(404);
    rollback(&url, Some(&to_bad.etag()), json!({"to": good, "extra": 1}))
        .await
        .expect(400);
    write(
        "POST",
        &format!("{url}/rollback"),
        "text/plain",
        Some(&head),
        &json!({}),
    )
    .await
    .expect(415);
}

/// A rollback that loses the race to another writer's patch on the same
/// head is 409 naming the winner, not a silent overwrite: the API's node is
/// held from hearing the other patch until the rollback is published.
#[tokio::test]
async fn a_rollback_that_loses_a_race_is_409_and_overwrites_nothing() {
    let server = TestServer::start().await;
    let url = twitch(&server, "raceback").await;
    let old = patch(
        &url,
        json!([{"op": "add", "path": "/v", "value": 1}]),
        None,
        "1",
    )
    .await;
    let head = patch(
        &url,
        json!([{"op": "replace", "path": "/v", "value": 2}]),
        None,
        "2",
    )
    .await;
    let bot = server
        .connect()
        .follow(RootConfig::twitch("#raceback").unwrap())
        .await
        .unwrap();
    tikaconf::testing::wait_for_head(&bot, head.parse().unwrap())
        .await
        .unwrap();
    server.api_gate.hold();
    let winner = bot
        .submit(json!([{"op": "add", "path": "/bot", "value": true}]))
        .await
        .unwrap();
    let stale_before = server.storage_stats().stale;
    let request = tokio::spawn({
        let (url, head, old) = (url.clone(), head.clone(), old.clone());
        async move { rollback(&url, Some(&head), json!({"to": old})).await }
    });
    assert!(
        tikaconf_test::wait_until(PATIENCE, || server.storage_stats().stale > stale_before).await,
        "the rollback never reached storage"
    );
    server.api_gate.release();
    let conflict = request.await.unwrap().expect(409).json();
    assert_eq!(conflict["winner"], winner.to_string());
    tikaconf::testing::wait_for_head(&bot, winner)
        .await
        .unwrap();
    let now = get(&url).await.json();
    assert_eq!(now["bot"], true);
    assert_eq!(now["v"], 2, "the bot's write stands");
}

#[tokio::test]
async fn versions_whose_patches_are_not_retained_are_gone() {
    let store = MemoryStore::new().with_retention(Retention::Last(2.try_into().unwrap()));
    let server = TestServer::start_on(ApiOptions::default(), fast_options(), store).await;
    let url = twitch(&server, "short").await;
    let mut heads = Vec::new();
    for i in 0..5 {
        heads.push(
            patch(
                &url,
                json!([{"op": "add", "path": "/n", "value": i}]),
                None,
                "n",
            )
            .await,
        );
    }
    let log = get(&format!("{url}/history")).await.expect(200).json();
    assert_eq!(log["retention"], "2");
    assert_eq!(log["entries"].as_array().unwrap().len(), 2);
    assert!(log["next"].is_null());
    // Height 1 is gone, and so is height 4 (kept, but not the patches before it).
    for old in [&heads[0], &heads[3]] {
        let problem = get(&format!("{url}/at/{old}")).await.expect(410).json();
        assert_eq!(problem["code"], "not_retained");
        assert!(
            problem["detail"].as_str().unwrap().contains("height 4"),
            "{problem}"
        );
        rollback(&url, Some(&heads[4]), json!({"to": old}))
            .await
            .expect(410);
    }
    // The current head is always readable.
    let at = get(&format!("{url}/at/{}", heads[4]))
        .await
        .expect(200)
        .json();
    assert_eq!(at["document"]["n"], 4);
    assert_eq!(get(&url).await.etag(), heads[4], "nothing was published");
}

/// A store that keeps no history: the history is empty, an old version is
/// gone (not unknown), and the current one is still readable.
#[tokio::test]
async fn without_history_old_versions_are_gone_and_the_head_is_readable() {
    let store = MemoryStore::new().with_retention(Retention::None);
    let server = TestServer::start_on(ApiOptions::default(), fast_options(), store).await;
    let url = twitch(&server, "nohist").await;
    let first = patch(
        &url,
        json!([{"op": "add", "path": "/n", "value": 1}]),
        None,
        "1",
    )
    .await;
    let head = patch(
        &url,
        json!([{"op": "add", "path": "/n", "value": 2}]),
        None,
        "2",
    )
    .await;
    let log = get(&format!("{url}/history")).await.expect(200).json();
    assert_eq!(
        (log["entries"].clone(), log["retention"].clone()),
        (json!([]), json!("none"))
    );
    let problem = get(&format!("{url}/at/{first}")).await.expect(410).json();
    assert_eq!(problem["code"], "not_retained");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no history is kept")
    );
    let at = get(&format!("{url}/at/{head}")).await.expect(200).json();
    assert_eq!(
        (at["document"]["n"].clone(), at["patch"].clone()),
        (json!(2), Value::Null)
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_history_operations() {
    let server = TestServer::start().await;
    let doc = get(&server.url("/openapi.json")).await.expect(200).json();
    for (path, method) in [
        ("/v1/configs/{root}/history", "get"),
        ("/v1/configs/{root}/at/{hash}", "get"),
        ("/v1/configs/{root}/diff", "get"),
        ("/v1/configs/{root}/rollback", "post"),
        ("/v1/configs/{root}/verify", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    let rollback = &doc["paths"]["/v1/configs/{root}/rollback"]["post"]["responses"];
    for status in ["200", "409", "410", "412", "428"] {
        assert!(rollback[status].is_object(), "rollback {status} missing");
    }
}

/// `GET .../verify`: an intact chain is `ok`, replayed from the root; a head
/// that no stored patch hashes to (moved in the store by hand) is the first
/// broken link, named with the hash the patch at its height really has.
#[tokio::test]
async fn verify_passes_an_intact_chain_and_names_a_head_its_patches_do_not_reach() {
    let server = TestServer::start().await;
    let url = twitch(&server, "verified").await;
    let root = RootConfig::twitch("#verified").unwrap().hash();
    let h1 = patch(
        &url,
        json!([{"op": "add", "path": "/a", "value": 1}]),
        None,
        "1",
    )
    .await;
    let h2 = patch(
        &url,
        json!([{"op": "add", "path": "/b", "value": 2}]),
        None,
        "2",
    )
    .await;

    let report = get(&format!("{url}/verify")).await.expect(200).json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["root"], root.to_hex());
    assert_eq!(
        (report["head"].clone(), report["height"].clone()),
        (json!(h2), json!(2))
    );
    assert_eq!(
        (report["oldest"].clone(), report["checked"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        (report["replayed"].clone(), report["linkage_only"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(
        (
            report["anchored"].clone(),
            report["document_checked"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(
        (report["gaps"].clone(), report["broken"].clone()),
        (json!([]), Value::Null)
    );
    assert_ne!(h1, h2);

    let unknown = "ab".repeat(32);
    let problem = get(&server.url(&format!("/v1/configs/{unknown}/verify")))
        .await
        .expect(404)
        .json();
    assert_eq!(problem["code"], "unknown_root");

    // The next patch is stored, but the head is moved to a hash it does not have.
    let h2: Hash = h2.parse().unwrap();
    let next = Patch::build(
        root,
        h2,
        2,
        json!([{"op": "add", "path": "/c", "value": 3}]),
        None,
    )
    .unwrap();
    let forged = Hash::of_canonical_bytes(b"forged");
    let snapshot = Snapshot::new(root, forged, 3, json!({"c": 3})).encoded;
    server
        .store
        .commit(vec![PersistCommit {
            expected_head: h2,
            new: StoredHead {
                root,
                head: forged,
                height: 3,
                snapshot,
            },
            patch: Some(next.encoded.clone()),
        }])
        .await
        .unwrap();
    let report = get(&format!("{url}/verify")).await.expect(200).json();
    assert_eq!(report["ok"], false, "{report}");
    let broken = &report["broken"];
    assert_eq!(broken["height"], 3);
    assert_eq!(broken["reason"], "head_mismatch");
    assert_eq!(broken["hash"], next.hash.to_hex());
    let detail = broken["detail"].as_str().unwrap();
    assert!(detail.contains(&forged.to_hex()), "{detail}");
}
