//! The HTTP transport: the API of `tikaconf serve` (`docs/API.md`).
//!
//! Versions travel as the API carries them: a read's `ETag` is the head hash
//! and `Tikaconf-Height` its height; `--if-head` is `If-Match`, whose 412
//! names the `current` head; a 409 names the `winner`. Errors are RFC 9457
//! problems whose stable `code` (not the English `detail`) picks the exit
//! code, in [`HttpError::code`], so that a script sees the same code over
//! HTTP as over Redis. `watch` reads the Server-Sent Events stream and, when
//! the connection drops, reconnects with `Last-Event-ID` (see [`HttpWatch`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value};
use tikaconf::proto::patch::Ops;
use tikaconf::proto::{Limits, json};
use tikaconf::{Hash, InvalidPatch, Root, Schema, WriteError};

use super::sse::{self, Parser};
use super::{ListQuery, RootPage, Snapshot, Update, WatchEvent, Written, stale};
use crate::cli::Global;
use crate::failure::{Code, Failure};
use crate::session;
use tikaconf_server::meta::{AUTHOR_HEADER, MESSAGE_HEADER, encode_header};

/// The media type of an RFC 6902 patch body.
const JSON_PATCH: &str = "application/json-patch+json";
/// The header of a head's height.
const HEIGHT: &str = "tikaconf-height";
/// How many times a write checked against `--schema` is re-checked on a
/// newer head, when the head moved between the check and the write.
const REBASES: usize = 16;
/// How long `watch` waits on a silent stream before it takes the connection
/// for dead: the server sends a heartbeat every 15 s.
const STREAM_SILENCE: Duration = Duration::from_secs(45);
/// The longest pause between two reconnection attempts of `watch`.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    /// The server's URL without a trailing `/`.
    base: String,
    token: Option<String>,
    /// `--timeout`, for each request but the event stream.
    timeout: Duration,
    /// `--schema`: checked here, since the server does not know it.
    schema: Option<Arc<Schema>>,
    /// `Tikaconf-Author` and `Tikaconf-Message` of this command's writes,
    /// percent-encoded.
    author: String,
    message: Option<String>,
}

impl Http {
    /// A client of the server at `url` (`http://` or `https://`). Nothing is
    /// sent yet.
    pub fn new(global: &Global, url: &str) -> Result<Http, Failure> {
        let bad = |why: String| {
            Failure::bad_input(anyhow::anyhow!(
                "bad --server {:?}: {why} (example: http://127.0.0.1:7070)",
                session::redact(url)
            ))
        };
        let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https".into()));
        }
        let timeout = session::timeout(global)?;
        // reqwest builds its TLS configuration with the process's default
        // provider; ring is the one compiled in (see the workspace manifest).
        // Installing it twice is harmless, so the error is ignored.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("tikaconf/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .read_timeout(STREAM_SILENCE.max(timeout + Duration::from_secs(5)));
        if let Some(path) = &global.tls_ca {
            let pem = std::fs::read(path).map_err(|e| {
                Failure::bad_input(e).context(format!("--tls-ca {}", path.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Failure::bad_input(e).context(format!("--tls-ca {}", path.display()))
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Failure::other(e).context("cannot make the HTTP client"))?;
        Ok(Http {
            client,
            base: url.trim_end_matches('/').to_owned(),
            token: global.token.clone().filter(|t| !t.is_empty()),
            timeout,
            schema: session::schema(global)?.map(Arc::new),
            author: encode_header(&session::author(global)),
            message: global.message.as_deref().map(encode_header),
        })
    }

    /// The server's URL for messages, without credentials.
    fn server(&self) -> String {
        session::redact(&self.base)
    }

    /// The headers from which the server makes a write's `meta`.
    fn meta(&self, request: RequestBuilder) -> RequestBuilder {
        let request = request.header(AUTHOR_HEADER, &self.author);
        match &self.message {
            Some(message) => request.header(MESSAGE_HEADER, message),
            None => request,
        }
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        let request = self.client.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request` and returns a successful answer, or the failure it is.
    async fn send(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(HttpError::Problem {
            server: self.server(),
            status,
            problem: Problem::parse(status, &body),
        })
    }

    fn transport(&self, e: reqwest::Error) -> HttpError {
        HttpError::Transport {
            server: self.server(),
            timeout: e.is_timeout(),
            source: e,
        }
    }

    /// The JSON body of a successful answer.
    async fn json(&self, response: Response) -> Result<Value, HttpError> {
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        json::parse_strict(&body, Limits::MAX_DEPTH_CEILING).map_err(|e| HttpError::Unexpected {
            server: self.server(),
            why: format!("the body is not JSON: {e}"),
        })
    }

    fn unexpected(&self, why: impl Into<String>) -> HttpError {
        HttpError::Unexpected {
            server: self.server(),
            why: why.into(),
        }
    }

    /// Resolves `root` to its hash. A root given as connection info is
    /// registered (`POST /v1/roots`, which answers 200 for a known one), as
    /// following it over Redis would: the verbs mean the same either way.
    pub async fn open(&self, root: Root) -> Result<HttpTarget, Failure> {
        let hash = match root {
            Root::Hash(hash) => hash,
            Root::Config(config) => {
                let connection = config.value().get("connection").cloned();
                let body = serde_json::to_vec(&connection).map_err(Failure::other)?;
                let request = self
                    .request(Method::POST, &format!("{}/v1/roots", self.base))
                    .timeout(self.timeout)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body);
                let answer = self.json(self.send(request).await?).await?;
                let registered = hash_member(&answer, "root")
                    .ok_or_else(|| self.unexpected("POST /v1/roots answered without a root"))?;
                if registered != config.hash() {
                    return Err(self
                        .unexpected(format!(
                            "it registered root {registered}, not {} (another protocol version?)",
                            config.hash()
                        ))
                        .into());
                }
                registered
            }
        };
        Ok(HttpTarget {
            http: self.clone(),
            root: hash,
        })
    }

    /// `GET /v1/roots`.
    pub async fn list(&self, query: &ListQuery) -> Result<RootPage, Failure> {
        let mut url = Url::parse(&format!("{}/v1/roots", self.base)).map_err(Failure::other)?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
            if let Some(cursor) = &query.cursor {
                pairs.append_pair("cursor", cursor);
            }
            if let Some(platform) = &query.platform {
                pairs.append_pair("platform", platform);
            }
        }
        let request = self
            .request(Method::GET, url.as_str())
            .timeout(self.timeout);
        let answer = self.json(self.send(request).await?).await?;
        Ok(serde_json::from_value(answer)
            .map_err(|e| self.unexpected(format!("not a page of roots: {e}")))?)
    }
}

/// One configuration on the server, by root hash.
#[derive(Debug)]
pub struct HttpTarget {
    http: Http,
    root: Hash,
}

impl HttpTarget {
    pub fn root(&self) -> Hash {
        self.root
    }

    fn url(&self) -> String {
        format!("{}/v1/configs/{}", self.http.base, self.root)
    }

    /// `GET /v1/configs/{root}`: the document with its `ETag` and height, of
    /// one moment.
    pub async fn read(&self) -> Result<Snapshot, Failure> {
        let http = &self.http;
        let request = http.request(Method::GET, &self.url()).timeout(http.timeout);
        let response = http.send(request).await?;
        let head = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok())
            .ok_or_else(|| http.unexpected("the answer has no ETag naming the head"))?;
        let height = response
            .headers()
            .get(HEIGHT)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or_else(|| http.unexpected("the answer has no Tikaconf-Height"))?;
        let document = Arc::new(http.json(response).await?);
        Ok(Snapshot {
            head,
            height,
            document,
        })
    }

    /// `PATCH` with the ops, `If-Match` the head they must apply to.
    pub async fn write(&self, ops: Value, if_head: Option<Hash>) -> Result<Written, Failure> {
        let Some(schema) = &self.http.schema else {
            return match self.patch(&ops, if_head).await? {
                Ok(written) => Ok(written),
                Err(current) => Err(self.stale(if_head, current).await?),
            };
        };
        // The server does not know the writer's schema: check the result
        // here, on the head the patch is then pinned to, so that the document
        // checked is the one the patch makes (as the library does).
        for _ in 0..REBASES {
            let base = self.read().await?;
            if let Some(expected) = if_head
                && expected != base.head
            {
                return Err(stale(expected, base.head, Some(base.height)));
            }
            // Ops that do not parse or apply are left to the server, which
            // refuses them with the precise reason.
            let result = Ops::from_value(&ops)
                .ok()
                .and_then(|parsed| parsed.apply_owned((*base.document).clone()).ok());
            if let Some(result) = result {
                schema.check(&result).map_err(|v| {
                    Failure::from(WriteError::Rejected(InvalidPatch::from(v)))
                        .context("the patch does not apply")
                })?;
            }
            match self.patch(&ops, Some(base.head)).await? {
                Ok(written) => return Ok(written),
                // Moved between the check and the write: check on the new head.
                Err(_) if if_head.is_none() => continue,
                Err(current) => return Err(self.stale(if_head, current).await?),
            }
        }
        Err(Failure::new(
            Code::Conflict,
            anyhow::anyhow!("the configuration kept changing while this write was prepared; retry"),
        ))
    }

    /// The failure of a write whose `If-Match` was stale: names the current
    /// head (the 412's `current`, or a fresh read's).
    async fn stale(
        &self,
        if_head: Option<Hash>,
        current: Option<Hash>,
    ) -> Result<Failure, Failure> {
        let (current, height) = match current {
            Some(current) => (current, None),
            None => {
                let now = self.read().await?;
                (now.head, Some(now.height))
            }
        };
        Ok(stale(if_head.unwrap_or(current), current, height))
    }

    /// One `PATCH`: the new head, or `Err(current)` when `If-Match` was
    /// stale (with the current head the 412 names).
    async fn patch(
        &self,
        ops: &Value,
        if_head: Option<Hash>,
    ) -> Result<Result<Written, Option<Hash>>, Failure> {
        let http = &self.http;
        let body = serde_json::to_vec(ops).map_err(Failure::other)?;
        let mut request = http
            .meta(http.request(Method::PATCH, &self.url()))
            .timeout(http.timeout)
            .header(CONTENT_TYPE, JSON_PATCH)
            .body(body);
        if let Some(head) = if_head {
            request = request.header(IF_MATCH, format!("\"{head}\""));
        }
        let response = match http.send(request).await {
            Ok(response) => response,
            Err(HttpError::Problem { problem, .. }) if problem.code == "stale_if_match" => {
                return Ok(Err(problem.hash("current")));
            }
            Err(e) => {
                let context = match &e {
                    HttpError::Problem { problem, .. } => match problem.code.as_str() {
                        "conflict" => match problem.hash("winner") {
                            Some(winner) => format!("another write won: {winner}"),
                            None => "another write won".to_owned(),
                        },
                        "ops_failed" | "bad_request" => "the patch does not apply".to_owned(),
                        "outcome_unknown" => "outcome unknown".to_owned(),
                        _ => "write failed".to_owned(),
                    },
                    _ => "write failed".to_owned(),
                };
                return Err(Failure::from(e).context(context));
            }
        };
        let answer = http.json(response).await?;
        let head = hash_member(&answer, "head")
            .ok_or_else(|| http.unexpected("the write's answer has no head"))?;
        let height = answer
            .get("height")
            .and_then(Value::as_u64)
            .ok_or_else(|| http.unexpected("the write's answer has no height"))?;
        Ok(Ok(Written { head, height }))
    }

    /// `GET` of a history resource under this configuration (`suffix`, such
    /// as `/history`), with `query`: its JSON answer.
    async fn get_json(&self, suffix: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        let http = &self.http;
        let mut url = Url::parse(&format!("{}{suffix}", self.url())).map_err(Failure::other)?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        let request = http
            .request(Method::GET, url.as_str())
            .timeout(http.timeout);
        Ok(http.json(http.send(request).await?).await?)
    }

    /// `GET .../history`: a page of patches, newest first.
    pub async fn history(&self, before: Option<u64>, limit: usize) -> Result<Value, Failure> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        self.get_json("/history", &query).await
    }

    /// `GET .../at/{hash}`: the document at a version, and the patch that
    /// made it.
    pub async fn at(&self, version: Hash) -> Result<Value, Failure> {
        self.get_json(&format!("/at/{version}"), &[]).await
    }

    /// `GET .../verify`: the stored chain, checked.
    pub async fn verify(&self) -> Result<Value, Failure> {
        self.get_json("/verify", &[]).await
    }

    /// `GET .../diff?from=&to=`.
    pub async fn diff(&self, from: Hash, to: Hash) -> Result<Value, Failure> {
        self.get_json("/diff", &[("from", from.to_hex()), ("to", to.to_hex())])
            .await
    }

    /// `POST .../rollback` on `head` (`If-Match`): the new head, or a
    /// conflict (exit 4) naming the current head or the winner.
    pub async fn rollback(&self, to: Hash, head: Hash) -> Result<Written, Failure> {
        let http = &self.http;
        let mut body = serde_json::json!({"to": to.to_hex()});
        if let Some(message) = &http.message {
            // The body carries the message as text (the header's encoding
            // is for headers).
            body["message"] =
                Value::String(tikaconf_server::meta::decode_header(message.as_bytes()));
        }
        let request = http
            .request(Method::POST, &format!("{}/rollback", self.url()))
            .header(AUTHOR_HEADER, &http.author)
            .timeout(http.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(IF_MATCH, format!("\"{head}\""))
            .body(serde_json::to_vec(&body).map_err(Failure::other)?);
        let response = match http.send(request).await {
            Ok(response) => response,
            Err(HttpError::Problem { problem, .. }) if problem.code == "stale_if_match" => {
                let current = problem.hash("current").unwrap_or(head);
                return Err(stale(head, current, None));
            }
            Err(e) => {
                let context = match &e {
                    HttpError::Problem { problem, .. } if problem.code == "conflict" => {
                        match problem.hash("winner") {
                            Some(winner) => format!("another write won: {winner}"),
                            None => "another write won".to_owned(),
                        }
                    }
                    _ => "rollback failed".to_owned(),
                };
                return Err(Failure::from(e).context(context));
            }
        };
        let answer = http.json(response).await?;
        let head = hash_member(&answer, "head")
            .ok_or_else(|| http.unexpected("the rollback's answer has no head"))?;
        let height = answer
            .get("height")
            .and_then(Value::as_u64)
            .ok_or_else(|| http.unexpected("the rollback's answer has no height"))?;
        Ok(Written { head, height })
    }

    /// Opens the event stream; fails as a read would if it cannot.
    pub async fn watch(&self) -> Result<HttpWatch, Failure> {
        let mut watch = HttpWatch {
            http: self.http.clone(),
            url: format!("{}/events", self.url()),
            response: None,
            parser: Parser::new(),
            pending: VecDeque::new(),
            document: None,
            last_id: None,
            backoff: Duration::ZERO,
        };
        watch.response = Some(watch.connect().await?);
        Ok(watch)
    }
}

/// `GET /v1/configs/{root}/events`, reconnected with `Last-Event-ID` when
/// the connection drops.
///
/// The server answers a reconnection with a `snapshot` unless the ID is its
/// current head, and every `change` carries only ops, so the watch keeps the
/// document and applies them: each [`Update`] has the document it makes, as
/// over Redis. A change that does not apply to it (which a correct server
/// never sends) is answered by reconnecting without an ID, for a snapshot.
#[derive(Debug)]
pub struct HttpWatch {
    http: Http,
    url: String,
    response: Option<Response>,
    parser: Parser,
    /// Events parsed but not yet handled.
    pending: VecDeque<sse::Event>,
    document: Option<Arc<Value>>,
    /// The last event's ID (its head), for `Last-Event-ID`.
    last_id: Option<String>,
    /// The pause before the next reconnection attempt.
    backoff: Duration,
}

impl HttpWatch {
    async fn connect(&self) -> Result<Response, HttpError> {
        let mut request = self
            .http
            .request(Method::GET, &self.url)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = &self.last_id {
            request = request.header("last-event-id", id);
        }
        self.http.send(request).await
    }

    /// The next event; `None` never (the watch runs until the caller stops),
    /// an error when the server refuses a reconnection for good (the root
    /// is gone, the token is wrong).
    pub async fn next(&mut self) -> Option<Result<WatchEvent, Failure>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                match self.event(event) {
                    Some(handled) => return Some(Ok(handled)),
                    None => continue,
                }
            }
            let Some(response) = &mut self.response else {
                tokio::time::sleep(self.backoff).await;
                match self.connect().await {
                    Ok(response) => {
                        self.response = Some(response);
                        self.parser = Parser::new();
                        self.backoff = Duration::ZERO;
                        continue;
                    }
                    Err(e) if e.is_transient() => {
                        self.backoff =
                            (self.backoff * 2).clamp(Duration::from_millis(250), MAX_BACKOFF);
                        return Some(Ok(WatchEvent::Note(format!(
                            "{e}; retrying in {:?}",
                            self.backoff
                        ))));
                    }
                    Err(e) => return Some(Err(e.into())),
                }
            };
            match response.chunk().await {
                Ok(Some(bytes)) => self.pending.extend(self.parser.feed(&bytes)),
                ended => {
                    self.response = None;
                    let why = match ended {
                        Err(e) => format!("the event stream failed ({e})"),
                        _ => "the server closed the event stream".to_owned(),
                    };
                    return Some(Ok(WatchEvent::Note(format!("{why}; reconnecting"))));
                }
            }
        }
    }

    /// An [`Update`] for a `snapshot` or `change` event; `None` for events
    /// this version does not know, and for a change it cannot apply (then
    /// the stream is reopened for a snapshot).
    fn event(&mut self, event: sse::Event) -> Option<WatchEvent> {
        let data = json::parse_strict(event.data.as_bytes(), Limits::MAX_DEPTH_CEILING).ok();
        let head = data.as_ref().and_then(|d| hash_member(d, "head"));
        let height = data.as_ref().and_then(|d| d.get("height")?.as_u64());
        let (Some(mut data), Some(head), Some(height)) = (data, head, height) else {
            return None;
        };
        let (document, ops) = match event.event.as_str() {
            "snapshot" => (Arc::new(data.get_mut("document")?.take()), None),
            "change" => {
                let ops = data.get_mut("ops")?.take();
                let applied = self.document.as_ref().and_then(|doc| {
                    Ops::from_value(&ops)
                        .ok()?
                        .apply_owned((**doc).clone())
                        .ok()
                });
                match applied {
                    Some(document) => (Arc::new(document), Some(ops)),
                    None => {
                        self.resync();
                        return Some(WatchEvent::Note(
                            "a change did not apply to the document; re-reading it".to_owned(),
                        ));
                    }
                }
            }
            _ => return None,
        };
        self.last_id = event.id;
        self.document = Some(document.clone());
        Some(WatchEvent::Update(Update {
            head,
            height,
            document,
            ops,
            dropped: false,
        }))
    }

    /// Drops the stream and what it still had; the next one starts with a
    /// snapshot.
    fn resync(&mut self) {
        self.response = None;
        self.pending.clear();
        self.last_id = None;
        self.document = None;
    }
}

/// The member `name` of `value` as a hash.
fn hash_member(value: &Value, name: &str) -> Option<Hash> {
    value.get(name)?.as_str()?.parse().ok()
}

/// An RFC 9457 problem, or what stands for one when the body is not (a
/// proxy's HTML page).
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub detail: String,
    #[serde(flatten)]
    pub members: Map<String, Value>,
}

impl Problem {
    fn parse(status: StatusCode, body: &[u8]) -> Problem {
        serde_json::from_slice::<Problem>(body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            Problem {
                code: String::new(),
                detail: if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_owned()
                } else {
                    text
                },
                members: Map::new(),
            }
        })
    }

    /// An extension member naming a hash (`current`, `winner`, ...).
    fn hash(&self, name: &str) -> Option<Hash> {
        self.members.get(name)?.as_str()?.parse().ok()
    }
}

/// How a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer: the connection failed, or timed out.
    #[error("{}the server at {server}", if *timeout { "no answer in time from " } else { "cannot reach " })]
    Transport {
        server: String,
        timeout: bool,
        #[source]
        source: reqwest::Error,
    },
    /// An answer with an error status.
    #[error("the server at {server} answered {status}: {}{}", problem.detail,
        if problem.code.is_empty() { String::new() } else { format!(" ({})", problem.code) })]
    Problem {
        server: String,
        status: StatusCode,
        problem: Problem,
    },
    /// A success the CLI cannot read.
    #[error("unexpected answer from the server at {server}: {why}")]
    Unexpected { server: String, why: String },
}

impl HttpError {
    /// The exit code: by the problem's stable `code` where the status alone
    /// is ambiguous (404: an unknown root, or an absent pointer).
    pub fn code(&self) -> Code {
        let (status, problem) = match self {
            HttpError::Transport { timeout: true, .. } => return Code::Timeout,
            HttpError::Transport { .. } => return Code::Connect,
            HttpError::Unexpected { .. } => return Code::Other,
            HttpError::Problem {
                status, problem, ..
            } => (status.as_u16(), problem.code.as_str()),
        };
        match (status, problem) {
            (401 | 403, _) => Code::Refused,
            (404, "unknown_root") => Code::UnknownRoot,
            (404, "pointer_not_found" | "unknown_version") | (410, _) => Code::NotFound,
            (428, _) => Code::BadInput,
            (400 | 413 | 415 | 422, _) => Code::BadInput,
            (409 | 412, _) => Code::Conflict,
            (502, "refused") => Code::Refused,
            // A proxy in front of the server that cannot reach it.
            (502, _) => Code::Connect,
            (503 | 504, _) => Code::Timeout,
            _ => Code::Other,
        }
    }

    /// Worth retrying later: no answer, or storage or the server not
    /// answering for now.
    fn is_transient(&self) -> bool {
        matches!(self.code(), Code::Connect | Code::Timeout)
    }
}

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Failure {
        Failure::new(e.code(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, body: &str) -> Code {
        let status = StatusCode::from_u16(status).unwrap();
        HttpError::Problem {
            server: "http://x".into(),
            status,
            problem: Problem::parse(status, body.as_bytes()),
        }
        .code()
    }

    #[test]
    fn problems_map_to_the_exit_codes_of_the_redis_route() {
        let p = |code: &str| format!(r#"{{"type":"about:blank","code":"{code}","detail":"d"}}"#);
        assert_eq!(problem(400, &p("bad_request")), Code::BadInput);
        assert_eq!(problem(401, &p("unauthorized")), Code::Refused);
        assert_eq!(problem(403, "forbidden"), Code::Refused);
        assert_eq!(problem(404, &p("unknown_root")), Code::UnknownRoot);
        assert_eq!(problem(404, &p("pointer_not_found")), Code::NotFound);
        assert_eq!(problem(404, &p("not_found")), Code::Other);
        assert_eq!(problem(409, &p("conflict")), Code::Conflict);
        assert_eq!(problem(412, &p("stale_if_match")), Code::Conflict);
        assert_eq!(problem(413, &p("too_large")), Code::BadInput);
        assert_eq!(problem(422, &p("ops_failed")), Code::BadInput);
        assert_eq!(problem(501, &p("not_implemented")), Code::Other);
        assert_eq!(problem(502, &p("refused")), Code::Refused);
        assert_eq!(problem(502, "<html>bad gateway</html>"), Code::Connect);
        assert_eq!(problem(503, &p("outcome_unknown")), Code::Timeout);
        assert_eq!(problem(500, ""), Code::Other);
    }

    #[test]
    fn a_problem_keeps_its_hashes() {
        let h = "2632a3e913455afa23071cb9a767ab9b7aa3bfebbebcfb3bae67ef3d074df222";
        let body = format!(r#"{{"code":"stale_if_match","detail":"d","current":"{h}"}}"#);
        let problem = Problem::parse(StatusCode::PRECONDITION_FAILED, body.as_bytes());
        assert_eq!(problem.hash("current").unwrap().to_string(), h);
        assert_eq!(problem.code, "stale_if_match");
    }
}
