//! `tikaconf serve`'s HTTP API as the benchmark runs it: in a process of its
//! own (this binary's hidden `http-api` role), as a client of the run's Redis
//! with the run's storage node behind it, so that requests cross a process
//! boundary and a loopback socket as they would in production, like etcd's.
//!
//! The parent side is a plain HTTP/1.1 client (hyper) that writes with `PATCH`
//! and `If-Match` and reads a Server-Sent Events stream.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::deploy;

/// The body of the hidden role: the API over one client of `redis_url`, on a
/// free loopback port printed as `listening ADDR`, until stdin closes.
pub async fn serve(redis_url: &str) -> anyhow::Result<()> {
    let client = deploy::client(redis_url).await?;
    let api = tikaconf_server::Api::new(client, tikaconf_server::ApiOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    // The parent holds our stdin; when it goes away, so do we.
    let shutdown = tikaconf_test::storage_node::stdin_closed();
    tikaconf_server::serve(listener, &api, api.router(), shutdown).await?;
    Ok(())
}

/// The API process, killed when dropped.
#[derive(Debug)]
pub struct ApiChild {
    _child: Child,
    pub addr: SocketAddr,
}

impl ApiChild {
    pub async fn spawn(redis_url: &str) -> anyhow::Result<ApiChild> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["http-api", "--redis", redis_url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the HTTP API process")?;
        let stdout = child.stdout.take().context("the API's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the HTTP API process did not start in 30 s")??
            .context("the HTTP API process exited before listening")?;
        let addr = line
            .strip_prefix("listening ")
            .with_context(|| format!("unexpected first line from the API process: {line}"))?
            .parse()?;
        Ok(ApiChild {
            _child: child,
            addr,
        })
    }
}

/// An HTTP/1.1 client of the API (one pooled keep-alive connection per
/// concurrent request, as curl or a script's client would use).
#[derive(Debug, Clone)]
pub struct Api {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    /// Registers a root by its connection info; returns its hash and head.
    pub async fn register(&self, connection: &Value) -> anyhow::Result<(String, String)> {
        let request = Request::post(format!("{}/v1/roots", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(connection.to_string())))?;
        let response = self.http.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "registering a root: {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let body: Value = serde_json::from_slice(&body)?;
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("no {name} in {body}"))
        };
        Ok((field("root")?, field("head")?))
    }

    /// `PATCH` with `If-Match: "head"`; returns the new head once the API
    /// answers 200 (the change is durably stored).
    pub async fn patch(&self, root: &str, head: &str, ops: &Value) -> anyhow::Result<String> {
        let request = Request::builder()
            .method(Method::PATCH)
            .uri(format!("{}/v1/configs/{root}", self.base))
            .header(CONTENT_TYPE, tikaconf_server::JSON_PATCH)
            .header(IF_MATCH, format!("\"{head}\""))
            .body(Full::new(Bytes::from(ops.to_string())))?;
        let response = self.http.request(request).await?;
        let status = response.status();
        let etag = response.headers().get(ETAG).cloned();
        let body = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!(
                "PATCH answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let etag = etag.context("a 200 without an ETag")?;
        Ok(etag.to_str()?.trim_matches('"').to_owned())
    }

    /// Opens the root's event stream and sends the arrival time of every
    /// `change` event to `tx`. Returns once the stream's first event (the
    /// snapshot) has arrived, so that no change after that is missed.
    pub async fn watch(
        &self,
        root: &str,
        tx: mpsc::UnboundedSender<Instant>,
    ) -> anyhow::Result<JoinHandle<()>> {
        let request = Request::get(format!("{}/v1/configs/{root}/events", self.base))
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))?;
        let response = self.http.request(request).await?;
        if response.status() != StatusCode::OK {
            bail!("the event stream answered {}", response.status());
        }
        let mut body = response.into_body();
        let mut events = Events::default();
        // The snapshot first.
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .context("no snapshot event in 10 s")?
                .context("the event stream ended before its snapshot")??;
            if let Ok(data) = frame.into_data()
                && events.push(&data).any(|kind| kind == "snapshot")
            {
                break;
            }
        }
        Ok(tokio::spawn(async move {
            while let Some(Ok(frame)) = body.frame().await {
                let at = Instant::now();
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                for kind in events.push(&data) {
                    if kind == "change" && tx.send(at).is_err() {
                        return;
                    }
                }
            }
        }))
    }
}

/// Splits a Server-Sent Events byte stream into events, yielding each one's
/// type (`event:` field). Enough for the benchmark, which needs only to know
/// when each event ends; the data is not read.
#[derive(Debug, Default)]
struct Events {
    pending: Vec<u8>,
}

impl Events {
    fn push(&mut self, bytes: &[u8]) -> impl Iterator<Item = String> + use<> {
        self.pending.extend_from_slice(bytes);
        let mut kinds = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            if let Some(kind) = text.lines().find_map(|l| l.strip_prefix("event:")) {
                kinds.push(kind.trim().to_owned());
            }
        }
        kinds.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::Events;

    #[test]
    fn events_end_at_a_blank_line_even_across_frames() {
        let mut events = Events::default();
        assert_eq!(events.push(b": heartbeat\n\nevent: snap").count(), 0);
        let kinds: Vec<String> = events
            .push(b"shot\nid: a\ndata: {}\n\nevent: change\ndata: {}\n\n")
            .collect();
        assert_eq!(kinds, ["snapshot", "change"]);
    }
}
