//! What v1.3's catch-up and cheap re-sync save (issue 14), over a real
//! `redis-server` and storage node (redb), both started here on free loopback
//! ports:
//!
//! 1. **Re-sync of current roots**: N roots (default 10,000) of a 10 KiB
//!    document each, every one asked for once by hash on one reply channel,
//!    naming the head the requester has (v1.3: each answer is a `stored`
//!    notice) or not (as v1.2 did: each answer is the snapshot). Bytes of the
//!    requests and of the answers, and the time until the last answer came.
//! 2. **Catch-up of k small patches on a 1 MiB document**, k = 1, 10, 100: the
//!    answer to a request naming the head from before the k patches (v1.3:
//!    the k patches) against one that names none (the snapshot): its bytes,
//!    the round trip, and the requester's time to take it (decode, and apply
//!    the patches).
//!
//! The two kinds of request alternate, round after round, so that both see the
//! same machine; medians and ranges over the rounds are printed side by side.
//!
//! ```sh
//! cargo run --release -p tikaconf --example resync_cost -- [ROOTS] [ROUNDS]
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tikaconf::bus::BusHandle;
use tikaconf::proto::limits::DocBound;
use tikaconf::proto::message::Have;
use tikaconf::proto::storage::PersistCommit;
use tikaconf::proto::{
    Hash, Limits, LoadRequest, Message, Patch, ReplyToken, RootConfig, Snapshot, StoredHead,
};
use tikaconf::store::{RedbStore, Store};
use tikaconf::{Client, StorageNode, StorageOptions};
use tikaconf_test::RedisServer;

const TOKEN: &str = "resync_cost";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let roots: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir()?;

    // The store filled before the node starts: N roots at height 1, 10 KiB each.
    let store = RedbStore::open(dir.path())?;
    let heads = fill(&store, roots).await?;
    drop(store);
    let bus = BusHandle::redis(&redis.url()).await?;
    let node = StorageNode::spawn(bus, RedbStore::open(dir.path())?, StorageOptions::default());
    node.ready().await;
    let mut requester = Requester::connect(&redis).await?;

    println!("## Re-sync of {roots} current roots of 10 KiB ({rounds} rounds, alternated)");
    // A first round reads every root into the node's memory; not counted.
    requester.resync(&heads, false).await?;
    let mut by_kind: HashMap<bool, Vec<Resync>> = HashMap::new();
    for round in 0..rounds {
        for have in [round % 2 == 0, round % 2 != 0] {
            let r = requester.resync(&heads, have).await?;
            by_kind.entry(have).or_default().push(r);
        }
    }
    for (have, label) in [(false, "snapshots (v1.2)"), (true, "head named (v1.3)")] {
        let runs = &by_kind[&have];
        let answers: Vec<f64> = runs.iter().map(|r| r.answer_bytes as f64).collect();
        let requests: Vec<f64> = runs.iter().map(|r| r.request_bytes as f64).collect();
        let times: Vec<f64> = runs.iter().map(|r| r.elapsed.as_secs_f64() * 1e3).collect();
        println!(
            "{label:<20} answers {:>12} B ({:.0} B each), requests {:>9} B, all answered in {} ms",
            median(&answers),
            median(&answers) / roots as f64,
            median(&requests),
            spread(&times),
        );
    }
    let stats = node.status().stats;
    println!(
        "storage: {} notices, {} snapshots sent",
        stats.current_answers, stats.snapshots_sent
    );

    println!("\n## Catch-up of k patches of ~200 B on a 1 MiB document ({rounds} rounds)");
    let client = Client::connect(&redis.url()).await?;
    let root = RootConfig::twitch("#resync_cost_big")?;
    let writer = client.follow(root.clone()).await?;
    writer
        .submit(json!([{"op": "add", "path": "/big", "value": "x".repeat(1_030_000)}]))
        .await?;
    let limits = Limits::default();
    for k in [1usize, 10, 100] {
        let mut rows: HashMap<bool, Vec<CatchUp>> = HashMap::new();
        for round in 0..rounds {
            let have = Have {
                head: writer.head(),
                height: writer.height(),
            };
            let base = Arc::clone(&writer.document());
            // What a follower keeps beside its document (measured once, when
            // it got it), so that applying a patch never measures it whole.
            let bound = DocBound::measure(&base);
            for j in 0..k {
                let value = format!("{round}-{j}-{}", "y".repeat(180));
                writer
                    .submit(json!([{"op": "add", "path": format!("/p{}", j % 50), "value": value}]))
                    .await?;
            }
            for named in [round % 2 == 0, round % 2 != 0] {
                let row = requester
                    .catch_up(root.hash(), named.then_some(have), (&base, bound), &limits)
                    .await?;
                assert_eq!(row.head, writer.head(), "the answer reaches the head");
                rows.entry(named).or_default().push(row);
            }
        }
        for (named, label) in [(false, "snapshot"), (true, "patches (v1.3)")] {
            let runs = &rows[&named];
            let bytes: Vec<f64> = runs.iter().map(|r| r.bytes as f64).collect();
            let rtt: Vec<f64> = runs
                .iter()
                .map(|r| r.round_trip.as_secs_f64() * 1e3)
                .collect();
            let take: Vec<f64> = runs.iter().map(|r| r.take.as_secs_f64() * 1e3).collect();
            println!(
                "k={k:<4} {label:<15} {:>9} B, round trip {} ms, taking it {} ms",
                median(&bytes),
                spread(&rtt),
                spread(&take),
            );
        }
    }
    node.shutdown().await;
    Ok(())
}

/// Registers `n` roots and moves each to height 1 with a 10 KiB document, as a
/// storage node would have; returns each root's head (at height 1).
async fn fill(store: &RedbStore, n: usize) -> anyhow::Result<Vec<(Hash, Have)>> {
    let filler = "z".repeat(10 * 1024);
    let mut heads = Vec::with_capacity(n);
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(1000) {
        let mut commits = Vec::new();
        for &i in chunk {
            let root = RootConfig::twitch(&format!("#resync_{i}"))?;
            let r = root.hash();
            let genesis = Snapshot::of_root(&root);
            store
                .register(StoredHead {
                    root: r,
                    head: r,
                    height: 0,
                    snapshot: genesis.encoded.clone(),
                })
                .await?;
            let ops = json!([{"op": "add", "path": "/filler", "value": filler}]);
            let patch = Patch::build(r, r, 0, ops, None)?;
            let doc = patch.apply_to(r, 0, root.value(), &Limits::default())?;
            let snapshot = Snapshot::new(r, patch.hash, 1, doc);
            commits.push(PersistCommit {
                expected_head: r,
                new: StoredHead {
                    root: r,
                    head: patch.hash,
                    height: 1,
                    snapshot: snapshot.encoded,
                },
                patch: Some(patch.encoded.clone()),
            });
            heads.push((
                r,
                Have {
                    head: patch.hash,
                    height: 1,
                },
            ));
        }
        store.commit(commits).await?;
    }
    Ok(heads)
}

struct Resync {
    request_bytes: usize,
    answer_bytes: usize,
    elapsed: Duration,
}

struct CatchUp {
    bytes: usize,
    round_trip: Duration,
    /// Decoding the answer, and applying its patches to the document at the
    /// head named.
    take: Duration,
    head: Hash,
}

/// A client of v1.3 reduced to its requests: one reply channel, raw Redis.
struct Requester {
    token: ReplyToken,
    publisher: redis::aio::MultiplexedConnection,
    answers: futures_util::stream::BoxStream<'static, redis::Msg>,
}

impl Requester {
    async fn connect(redis: &RedisServer) -> anyhow::Result<Requester> {
        let client = redis::Client::open(redis.url())?;
        let mut listener = client.get_async_pubsub().await?;
        let token = ReplyToken::new(TOKEN)?;
        listener.subscribe(format!("replies:{TOKEN}")).await?;
        Ok(Requester {
            token,
            publisher: client.get_multiplexed_async_connection().await?,
            answers: listener.into_on_message().boxed(),
        })
    }

    async fn publish(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let _: () =
            redis::AsyncCommands::publish(&mut self.publisher, "update_requests", bytes).await?;
        Ok(())
    }

    async fn next(&mut self) -> anyhow::Result<Vec<u8>> {
        let message = tokio::time::timeout(Duration::from_secs(30), self.answers.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("reply channel closed"))?;
        Ok(message.get_payload()?)
    }

    /// Asks for every root once, naming its head or not; waits for every answer.
    async fn resync(&mut self, heads: &[(Hash, Have)], have: bool) -> anyhow::Result<Resync> {
        let started = Instant::now();
        let mut request_bytes = 0;
        let requests: Vec<Vec<u8>> = heads
            .iter()
            .map(|(root, head)| {
                LoadRequest::ByHash(*root)
                    .encode_addressed(Some(&self.token), have.then_some(*head))
                    .to_vec()
            })
            .collect();
        // Published from a task while the answers are read here, as a fleet's
        // requests and answers overlap.
        let mut publisher = self.publisher.clone();
        let sending = tokio::spawn(async move {
            for bytes in requests {
                let _: () =
                    redis::AsyncCommands::publish(&mut publisher, "update_requests", bytes).await?;
            }
            anyhow::Ok(())
        });
        request_bytes += heads
            .iter()
            .map(|(root, head)| {
                LoadRequest::ByHash(*root)
                    .encode_addressed(Some(&self.token), have.then_some(*head))
                    .len()
            })
            .sum::<usize>();
        let mut answer_bytes = 0;
        for _ in 0..heads.len() {
            let payload = self.next().await?;
            answer_bytes += payload.len();
        }
        sending.await??;
        Ok(Resync {
            request_bytes,
            answer_bytes,
            elapsed: started.elapsed(),
        })
    }

    /// One request for `root`, naming `have` or not, and its answer taken: for
    /// patches, applied to `base` (the document at `have`).
    async fn catch_up(
        &mut self,
        root: Hash,
        have: Option<Have>,
        (base, bound): (&Value, DocBound),
        limits: &Limits,
    ) -> anyhow::Result<CatchUp> {
        let started = Instant::now();
        let request = LoadRequest::ByHash(root).encode_addressed(Some(&self.token), have);
        self.publish(request.to_vec()).await?;
        let payload = self.next().await?;
        let round_trip = started.elapsed();
        let taking = Instant::now();
        let head = match Message::decode(&payload, limits)? {
            Message::Snapshot(snapshot) => snapshot.head,
            Message::Patches(batch) => {
                // As the follower does: each patch on the document before it,
                // with the running bound (see `Follower::on_patches`).
                let (mut doc, mut bound): (Option<Value>, _) = (None, bound);
                for patch in &batch.patches {
                    let on = doc.as_ref().unwrap_or(base);
                    let (next, next_bound) =
                        patch.apply_with_bound(root, patch.height - 1, on, bound, limits)?;
                    (doc, bound) = (Some(next), next_bound);
                }
                std::hint::black_box(&doc);
                batch.head
            }
            other => anyhow::bail!("unexpected answer: a {}", other.type_name()),
        };
        Ok(CatchUp {
            bytes: payload.len(),
            round_trip,
            take: taking.elapsed(),
            head,
        })
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// "median [min-max]".
fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{:.2} [{min:.2}-{max:.2}]", median(values))
}
