//! Workload 9, the HTTP API (issue 13): what a script or a non-Rust service
//! gets from `tikaconf serve`, beside etcd's own client.
//!
//! - "PATCH If-Match -> 200": sequential conditional writes of 200 B, each timed
//!   until the API answers 200, which it does only once the change is durably
//!   stored (`Committed`); against etcd put (acknowledged after its WAL fsync).
//! - "change -> SSE event": one writer, and another client holding the
//!   configuration's event stream; each write timed until the `change` event
//!   reaches that client; against etcd put -> watch event at another client.
//!
//! The API runs in a process of its own (see [`crate::http_api`]) in front of
//! the run's Redis and storage node. etcd is driven through its gRPC client,
//! the way its users drive it, not through its JSON gateway.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::durable_write::{durable_submits, sequential};
use super::visibility::{etcd_put_watch, timed_puts};
use super::{Ctx, ETCD, Tasks, filler, filler_bytes, set_ops, value_len_for_patch};
use crate::baselines::etcd;
use crate::http_api::{Api, ApiChild};
use crate::report::{Kind, Metric, Section, TIKACONF};
use crate::stats::Samples;

const SIZE: usize = 200;
const WRITE: &str = "PATCH If-Match -> 200, 200 B";
const EVENT: &str = "change -> SSE event, 200 B";

/// The library's own durable write beside the API's, so that the table shows
/// what the HTTP hop adds.
const LIBRARY: &str = "tikaconf library (submit)";

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "9. HTTP API: conditional write and live event, over `tikaconf serve`'s API",
        Kind::Latency,
    );
    let iterations = ctx.pick(500, 50);
    let budget = ctx.budget();
    match &ctx.etcd {
        Ok(endpoint) => {
            let write = async {
                let client = etcd::connect(endpoint).await?;
                sequential(iterations, budget, |seq| {
                    let mut client = client.clone();
                    async move {
                        etcd::put(&mut client, "bench/http", &filler_bytes(SIZE, seq))
                            .await
                            .map(drop)
                    }
                })
                .await
            };
            section.record(WRITE, ETCD, write.await.map(Samples::summarize));
            let event = etcd_put_watch(endpoint, "bench/http-watch", iterations, budget);
            section.record(EVENT, ETCD, event.await.map(Samples::summarize));
        }
        Err(why) => {
            section.not_run(WRITE, ETCD, why.clone());
            section.not_run(EVENT, ETCD, why.clone());
        }
    }
    let library = durable_submits(ctx, "http", iterations, budget);
    section.record(WRITE, LIBRARY, library.await.map(Samples::summarize));
    let child = ApiChild::spawn(&ctx.redis_url).await?;
    let api = Api::new(child.addr);
    let write = patches(&api, "write", iterations, budget, None);
    section.record(WRITE, TIKACONF, write.await.map(Samples::summarize));
    let event = sse_changes(&api, iterations, budget);
    section.record(EVENT, TIKACONF, event.await.map(Samples::summarize));
    // The issue sets no figure; ours: the API's extra hop (client -> API
    // process -> Redis and back) costs at most half again etcd's durable put,
    // and a change reaches another HTTP client no later than etcd's watch.
    section.ratio_target(WRITE, ETCD, Metric::P50, 1.5);
    section.ratio_target(EVENT, ETCD, Metric::P50, 1.0);
    Ok(section)
}

/// Sequential `PATCH`es with `If-Match` on a root of this case's own, each
/// timed to its 200. With `receipts`, each also waits for the event stream's
/// receipt and is timed to it instead.
async fn patches(
    api: &Api,
    id: &str,
    iterations: usize,
    budget: Duration,
    receipts: Option<&mut mpsc::UnboundedReceiver<Instant>>,
) -> anyhow::Result<Samples> {
    let (root, head) = api.register(&connection(id)).await?;
    let value_len = value_len_for_patch(SIZE);
    let head = std::sync::Arc::new(tokio::sync::Mutex::new(head));
    let write = |seq: u64| {
        let (api, root, head) = (api.clone(), root.clone(), head.clone());
        async move {
            let mut head = head.lock().await;
            let op = if seq == 0 { "add" } else { "replace" };
            *head = api
                .patch(&root, &head, &set_ops(op, filler(value_len, seq)))
                .await?;
            anyhow::Ok(())
        }
    };
    match receipts {
        None => sequential(iterations, budget, write).await,
        Some(rx) => timed_puts(iterations, budget, rx, write).await,
    }
}

/// A writer and another client's event stream on one root.
async fn sse_changes(api: &Api, iterations: usize, budget: Duration) -> anyhow::Result<Samples> {
    let (root, _) = api.register(&connection("event")).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The pool never lends a connection that holds an open stream: the
    // writer's requests go over another one.
    let _tasks = Tasks(vec![api.watch(&root, tx).await?]);
    patches(api, "event", iterations, budget, Some(&mut rx)).await
}

fn connection(id: &str) -> serde_json::Value {
    json!({"platform": "tikaconf-bench", "workload": "http", "id": id})
}
