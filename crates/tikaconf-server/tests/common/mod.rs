//! The API's test harness: a whole deployment in the process (a bus, a storage
//! node over a memory store, the API's client) behind a server on a loopback
//! port, an HTTP client and an SSE reader. The API client's connection is
//! gated (`Broker::connect_gated`), so that a test can make a write lose a
//! race on purpose.

#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tikaconf::memory::{Broker, Gate};
use tikaconf::store::MemoryStore;
use tikaconf::testing::{PATIENCE, fast_options};
use tikaconf::{Client, ClientOptions, StorageNode, StorageOptions};
use tikaconf_server::{Api, ApiOptions, StorageHealth};

/// A server on a loopback port over an in-process deployment.
pub struct TestServer {
    pub url: String,
    pub bus: Broker,
    pub store: MemoryStore,
    storage: Arc<Mutex<Option<StorageNode>>>,
    /// The gate of the API client's own connection.
    pub api_gate: Gate,
    api: Api,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(ApiOptions::default()).await
    }

    pub async fn start_with(options: ApiOptions) -> TestServer {
        TestServer::start_full(options, fast_options()).await
    }

    /// With the API client's own options (shorter timeouts, say).
    pub async fn start_full(options: ApiOptions, client: ClientOptions) -> TestServer {
        TestServer::start_on(options, client, MemoryStore::new()).await
    }

    /// Over `store` (one with a given retention, say).
    pub async fn start_on(
        options: ApiOptions,
        client: ClientOptions,
        store: MemoryStore,
    ) -> TestServer {
        let bus = Broker::new();
        let handle = bus.connect();
        let node = StorageNode::spawn(handle, store.clone(), StorageOptions::default());
        node.ready().await;
        let storage = Arc::new(Mutex::new(Some(node)));
        let (handle, api_gate) = bus.connect_gated();
        let client = Client::with_bus(handle, client);
        let status = storage.clone();
        let api = Api::new(client, options)
            .with_store(store.clone())
            .with_storage_health(move || {
                let Some(node) = &*status.lock().unwrap() else {
                    return StorageHealth::Failed("stopped".into());
                };
                let s = node.status();
                match s.failed {
                    Some(f) => StorageHealth::Failed(f.to_string()),
                    None if s.listening => StorageHealth::Ready,
                    None => StorageHealth::Starting,
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = api.router();
        let served = api.clone();
        let task = tokio::spawn(async move {
            tikaconf_server::serve(listener, &served, router, std::future::pending()).await
        });
        TestServer {
            url,
            bus,
            store,
            storage,
            api_gate,
            api,
            task,
        }
    }

    /// The storage node's counters.
    pub fn storage_stats(&self) -> tikaconf::proto::storage::StorageStats {
        let node = self.storage.lock().unwrap();
        node.as_ref().expect("storage runs").status().stats
    }

    /// Stops the storage node: nothing answers loads or stores writes.
    pub async fn stop_storage(&self) {
        let node = self.storage.lock().unwrap().take();
        if let Some(node) = node {
            node.shutdown().await;
        }
    }

    /// Another node of the deployment (a bot): a client on the same bus.
    pub fn connect(&self) -> Client {
        Client::with_bus(self.bus.connect(), fast_options())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.api.close_streams();
        self.task.abort();
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ETag without its quotes.
    pub fn etag(&self) -> String {
        let tag = self.header("etag").expect("an ETag");
        tag.trim_matches('"').to_owned()
    }

    pub fn height(&self) -> u64 {
        self.header("tikaconf-height")
            .expect("a height header")
            .parse()
            .unwrap()
    }

    /// Asserts the status, and that errors are problem details with it.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        if status >= 400 {
            assert_eq!(
                self.header("content-type"),
                Some("application/problem+json")
            );
            let problem = self.json();
            assert_eq!(problem["status"], status);
            assert!(problem["title"].is_string() && problem["detail"].is_string());
        }
        self
    }
}

fn http() -> HttpClient<HttpConnector, Full<Bytes>> {
    HttpClient::builder(TokioExecutor::new()).build_http()
}

async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> hyper::Response<Incoming> {
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    tokio::time::timeout(PATIENCE, http().request(request))
        .await
        .expect("an answer in time")
        .expect("a response")
}

/// Sends a request and reads the whole answer.
pub async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    let response = send(method, url, headers, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await
        .expect("a body in time")
        .expect("a body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(url: &str) -> Reply {
    call("GET", url, &[], None).await
}

/// `POST /v1/roots` with `connection`; returns the answer.
pub async fn register(server: &TestServer, connection: Value) -> Reply {
    call(
        "POST",
        &server.url("/v1/roots"),
        &[("content-type", "application/json")],
        Some(connection.to_string().into_bytes()),
    )
    .await
}

/// Sends a JSON body with a content type and optional `If-Match` head.
pub async fn write(
    method: &str,
    url: &str,
    content_type: &str,
    if_match: Option<&str>,
    body: &Value,
) -> Reply {
    let tag = if_match.map(|h| format!("\"{h}\""));
    let mut headers = vec![("content-type", content_type)];
    if let Some(tag) = &tag {
        headers.push(("if-match", tag.as_str()));
    }
    call(method, url, &headers, Some(body.to_string().into_bytes())).await
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// An open event stream.
pub struct EventStream {
    body: Incoming,
    buffer: String,
    pub headers: HeaderMap,
}

impl EventStream {
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> EventStream {
        let response = send("GET", url, headers, None).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        EventStream {
            body: response.into_body(),
            buffer: String::new(),
            headers,
        }
    }

    /// Reads until `text` arrives (e.g. a heartbeat comment); true once it has.
    pub async fn next_raw_contains(&mut self, text: &str) -> bool {
        tokio::time::timeout(PATIENCE, async {
            while !self.buffer.contains(text) {
                let frame = self
                    .body
                    .frame()
                    .await
                    .expect("the stream goes on")
                    .expect("a frame");
                if let Ok(bytes) = frame.into_data() {
                    self.buffer.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        })
        .await
        .is_ok()
    }

    /// The next event (comment-only blocks, the heartbeats, are skipped).
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(PATIENCE, self.next_inner())
            .await
            .expect("an event in time")
    }

    async fn next_inner(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return SseEvent {
                    event,
                    id,
                    data: serde_json::from_str(&data).expect("JSON data"),
                };
            }
            let frame = self
                .body
                .frame()
                .await
                .expect("the stream goes on")
                .expect("a frame");
            if let Ok(bytes) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}
