//! A configuration's past: `GET /v1/configs/{root}/history` (its patches,
//! newest first), `GET .../at/{hash}` (the document at a version), `GET
//! .../diff?from=&to=` (the RFC 6902 ops between two versions) and `POST
//! .../rollback` (a new patch, on the head `If-Match` names, whose result is
//! an older version's document).
//!
//! All of it reads the store of the server's own storage node (501 without
//! one): the patches it keeps within its retention window (`--retention`).
//! A document at a version is rebuilt by replaying, from the registration
//! snapshot (height 0, the root configuration), every patch up to it, each
//! applied as a follower applies it (`Patch::apply_to`, under the same
//! limits); so a version is readable only while every patch back to the root
//! is retained, and otherwise is 410 Gone. The chain never moves back: a
//! rollback is an ordinary patch on the current head, in the log like any
//! other, whose `meta.rollback_of` names the version it restores.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tikaconf::proto::chain::{self, Walk};
use tikaconf::proto::{Limits, Message, Patch};
use tikaconf::store::{MAX_CHAIN, MAX_HISTORY, StoreError};
use tikaconf::{Hash, WriteError};
use utoipa::{IntoParams, ToSchema};

use crate::Api;
use crate::catalog::Catalog;
use crate::etag;
use crate::meta::{AUTHOR_HEADER, MAX_META_TEXT, MESSAGE_HEADER, decode_header};
use crate::openapi::schemas::{PatchOp, ProtocolJson};
use crate::problem::{ApiError, Problem};
use crate::routes::configs::{Written, media_type, parse_json, read_body, written};
use crate::routes::{current, parse_root, root_segment};

/// The largest height the protocol carries (2^53).
const MAX_HEIGHT: u64 = 1 << 53;

/// Entries per history page when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

/// Most patches one request replays to rebuild a document (ten pages of the
/// store's history): a bounded amount of work per request, whatever the
/// retention. Versions further from the root are answered 410.
const MAX_REPLAY: usize = MAX_CHAIN;

/// The history's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Only patches below this height (the `next` of the previous page).
    #[param(minimum = 1, maximum = 9_007_199_254_740_992_u64)]
    before: Option<u64>,
    /// Entries per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// One patch of a configuration's history.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryEntry {
    /// The patch's hash: the head it made (null if the entry is damaged).
    hash: Option<String>,
    /// The height it made.
    height: u64,
    /// The head it was applied to.
    parent: Option<String>,
    /// `meta.time`: when it was written (RFC 3339), if the writer said.
    time: Option<String>,
    /// `meta.author`: who wrote it, if the writer said.
    author: Option<String>,
    /// `meta.message`: why, if the writer said.
    message: Option<String>,
    /// `meta.rollback_of`: the version a rollback restored.
    rollback_of: Option<String>,
    /// The whole `meta` object, as written (free-form).
    #[schema(value_type = Option<Object>)]
    meta: Option<Map<String, Value>>,
    /// The RFC 6902 ops.
    #[schema(value_type = Option<Vec<PatchOp>>)]
    ops: Option<Value>,
    /// Why the stored entry could not be read (a damaged store); the other
    /// members but `height` are null then.
    error: Option<String>,
}

/// A page of history.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryPage {
    /// Patches, newest first.
    entries: Vec<HistoryEntry>,
    /// The `before` of the next (older) page; null on the last one.
    next: Option<u64>,
    /// How much history the store keeps: `all`, `none`, or a number of
    /// patches per root.
    retention: String,
}

/// The document at one version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Version {
    /// The version (a head hash; the root hash for height 0).
    hash: String,
    /// Its height.
    height: u64,
    /// The document as it was then.
    #[schema(value_type = ProtocolJson)]
    document: Value,
    /// The patch that made this version (who, when, why, its ops); null at
    /// height 0, and when the store no longer keeps it.
    patch: Option<HistoryEntry>,
}

/// `?from=&to=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiffQuery {
    /// The older version (a head hash, or the root hash for height 0).
    #[param(pattern = "^[0-9a-f]{64}$")]
    from: String,
    /// The newer version.
    #[param(pattern = "^[0-9a-f]{64}$")]
    to: String,
}

/// The difference between two versions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Diff {
    /// The version the ops apply to.
    from: String,
    /// The version they make.
    to: String,
    /// The RFC 6902 ops that turn `from`'s document into `to`'s.
    #[schema(value_type = Vec<PatchOp>)]
    ops: Value,
}

/// A rollback's request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackRequest {
    /// The version to restore (a head hash, or the root hash for height 0).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    to: String,
    /// The new patch's `meta.message` (default: `rollback to <the hash's
    /// first 12 hex digits>`).
    #[schema(max_length = 4096)]
    message: Option<String>,
}

/// A configuration's patches, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/configs/{root}/history",
    tag = "history",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        HistoryQuery,
    ),
    responses(
        (status = 200, description = "A page of patches, newest first", body = HistoryPage),
        (status = 400, description = "A bad root, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The store failed", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server runs without a store (--no-storage)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn history(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryPage>, ApiError> {
    let root = root_segment(root)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(before) = query.before
        && !(1..=MAX_HEIGHT).contains(&before)
    {
        return Err(ApiError::BadRequest(format!(
            "before is a height, 1 to 2^53, not {before}"
        )));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_HISTORY).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit is 1 to {MAX_HISTORY}, not {limit}"
        )));
    }
    let catalog = catalog(&api)?;
    known(catalog, root).await?;
    let page = catalog
        .history(root, query.before, limit)
        .await
        .map_err(store_failed)?;
    let next = match page.last() {
        Some(last) if page.len() == limit && last.height > 1 => Some(last.height),
        _ => None,
    };
    let limits = Limits::default();
    let entries = page
        .iter()
        .map(|logged| match decode(&logged.patch, &limits) {
            Ok(patch) => entry(&patch),
            Err(error) => HistoryEntry {
                hash: None,
                height: logged.height,
                parent: None,
                time: None,
                author: None,
                message: None,
                rollback_of: None,
                meta: None,
                ops: None,
                error: Some(error),
            },
        })
        .collect();
    Ok(Json(HistoryPage {
        entries,
        next,
        retention: catalog.retention().to_string(),
    }))
}

/// The document of a configuration as it was at one version.
#[utoipa::path(
    get,
    path = "/v1/configs/{root}/at/{hash}",
    tag = "history",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        ("hash" = String, Path, pattern = "^[0-9a-f]{64}$", description = "The version: a head hash (the root hash for height 0)"),
    ),
    responses(
        (status = 200, description = "The document at that version", body = Version),
        (status = 400, description = "A bad root or hash", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root, or not one of its versions", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "That version, or a patch leading to it, is no longer kept (`not_retained`)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The store failed, or holds a patch that does not replay", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server runs without a store (--no-storage)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn at(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Version>, ApiError> {
    let Path((root, hash)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let root = parse_root(&root)?;
    let hash = parse_hash(&hash, "the version")?;
    let catalog = catalog(&api)?;
    let config = api.inner.follows.get(root).await?;
    let now = current(&config).await?;
    if hash == now.head {
        // The newest patch kept is the head's, if the store has caught up.
        let newest = catalog.history(root, None, 1).await.map_err(store_failed)?;
        let limits = Limits::default();
        let patch = newest
            .first()
            .and_then(|logged| decode(&logged.patch, &limits).ok())
            .filter(|patch| patch.hash == hash)
            .map(|patch| entry(&patch));
        return Ok(Json(Version {
            hash: hash.to_hex(),
            height: now.height,
            document: (*now.document).clone(),
            patch,
        }));
    }
    let chain = Chain::load(catalog, root).await?;
    let (height, document) = chain.document_at(hash)?;
    let patch = chain
        .patches
        .iter()
        .find(|p| p.hash == hash)
        .map(|p| entry(p));
    Ok(Json(Version {
        hash: hash.to_hex(),
        height,
        document,
        patch,
    }))
}

/// The RFC 6902 ops between two versions of a configuration.
#[utoipa::path(
    get,
    path = "/v1/configs/{root}/diff",
    tag = "history",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        DiffQuery,
    ),
    responses(
        (status = 200, description = "The ops that turn `from`'s document into `to`'s", body = Diff),
        (status = 400, description = "A bad root or hash", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root, or not one of its versions", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "A version, or a patch leading to it, is no longer kept (`not_retained`)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The store failed, or holds a patch that does not replay", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server runs without a store (--no-storage)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn diff(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<Diff>, ApiError> {
    let root = root_segment(root)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let from = parse_hash(&query.from, "from")?;
    let to = parse_hash(&query.to, "to")?;
    let catalog = catalog(&api)?;
    let config = api.inner.follows.get(root).await?;
    let now = current(&config).await?;
    let mut chain = None;
    let mut document = async |hash: Hash| -> Result<Value, ApiError> {
        if hash == now.head {
            return Ok((*now.document).clone());
        }
        if chain.is_none() {
            chain = Some(Chain::load(catalog, root).await?);
        }
        let chain = chain.as_ref().ok_or(ApiError::NotFound)?;
        Ok(chain.document_at(hash)?.1)
    };
    let before = document(from).await?;
    let after = document(to).await?;
    Ok(Json(Diff {
        from: from.to_hex(),
        to: to.to_hex(),
        ops: tikaconf::diff(&before, &after),
    }))
}

/// Restore an older version: publish, on the head `If-Match` names, the
/// patch that turns the current document into that version's.
#[utoipa::path(
    post,
    path = "/v1/configs/{root}/rollback",
    tag = "history",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        ("If-Match" = String, Header, pattern = r#"^[ \t,]*(\*|(W/)?"[!#-~]*"([ \t]*,[ \t,]*(W/)?"[!#-~]*")*)?[ \t,]*$"#, description = "Required: the current head (quoted hash)"),
        ("Tikaconf-Author" = Option<String>, Header, nullable = false, pattern = "^[ -~]*$", max_length = 4096, description = "Who rolls back (`meta.author`), percent-encoded UTF-8; default: the server's"),
    ),
    request_body(content = RollbackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Committed (or nothing to change: the current head)", body = Written,
         headers(("ETag" = String, description = "The new head, quoted"),
                 ("Tikaconf-Height" = u64, description = "The new head's height"))),
        (status = 400, description = "Malformed body, root or hash", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root, or not one of its versions", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another write was stored first (`winner`)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "That version is no longer kept (`not_retained`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is not the current head (`current`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or patch too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The patch does not apply (a limit)", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "No If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The store failed", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server runs without a store (--no-storage)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn rollback(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let root = root_segment(root)?;
    let body = read_body(body)?;
    let essence = media_type(&headers);
    if essence.as_deref() != Some("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            essence.unwrap_or_else(|| "(none)".to_owned()),
            "rollback takes application/json",
        ));
    }
    let request: RollbackRequest = serde_json::from_value(parse_json(&body)?)
        .map_err(|e| ApiError::BadRequest(format!("a rollback is {{\"to\":HASH}}: {e}")))?;
    let to = parse_hash(&request.to, "to")?;
    if request
        .message
        .as_ref()
        .is_some_and(|m| m.len() > MAX_META_TEXT)
    {
        return Err(ApiError::BadRequest(format!(
            "message is at most {MAX_META_TEXT} bytes"
        )));
    }
    let mut meta = request_meta(&api, &headers)?;
    let condition = etag::condition(&headers, header::IF_MATCH, false)?
        .ok_or(ApiError::PreconditionRequired("a rollback"))?;
    let catalog = catalog(&api)?;
    let config = api.inner.follows.get(root).await?;
    let base = current(&config).await?;
    if !condition.matches(base.head) {
        return Err(ApiError::StaleIfMatch { current: base.head });
    }
    let target = if to == base.head {
        (*base.document).clone()
    } else {
        Chain::load(catalog, root).await?.document_at(to)?.1
    };
    let ops = tikaconf::diff(&base.document, &target);
    if ops.as_array().is_some_and(Vec::is_empty) {
        return written(&config, (base.head, base.height));
    }
    let message = request
        .message
        .unwrap_or_else(|| format!("rollback to {}", short(to)));
    meta.insert("message".into(), Value::String(message));
    meta.insert("rollback_of".into(), Value::String(to.to_hex()));
    match config.submit_on_with_meta(base.head, ops, Some(meta)).await {
        Ok(head) => written(&config, (head, base.height + 1)),
        Err(WriteError::HeadMoved) => Err(ApiError::StaleIfMatch {
            current: config.head(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The `meta` of a write from its request: `Tikaconf-Author` (else the
/// server's [`crate::ApiOptions::author`]), `time` now, and
/// `Tikaconf-Message` if given. 400 for text beyond [`MAX_META_TEXT`].
pub(crate) fn request_meta(api: &Api, headers: &HeaderMap) -> Result<Map<String, Value>, ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        // Printable ASCII only, as the document says (`%XX` for the rest).
        if value.as_bytes().iter().any(|b| !(0x20..0x7f).contains(b)) {
            return Err(ApiError::BadRequest(format!(
                "{name} is printable ASCII: percent-encode other UTF-8 text"
            )));
        }
        let text = decode_header(value.as_bytes());
        if text.len() > MAX_META_TEXT {
            return Err(ApiError::BadRequest(format!(
                "{name} is at most {MAX_META_TEXT} bytes"
            )));
        }
        Ok(Some(text))
    };
    let author = text(AUTHOR_HEADER)?.unwrap_or_else(|| api.inner.options.author.clone());
    let message = text(MESSAGE_HEADER)?;
    Ok(crate::meta::meta(&author, message.as_deref()))
}

/// The store, or 501.
pub(crate) fn catalog(api: &Api) -> Result<&dyn Catalog, ApiError> {
    api.inner.catalog.as_deref().ok_or(ApiError::NotImplemented(
        "history needs a store, and this server runs without one (--no-storage): \
             ask a server that runs a storage node",
    ))
}

/// 404 unless the store knows `root` (its history of an unknown root is
/// merely empty).
async fn known(catalog: &dyn Catalog, root: Hash) -> Result<(), ApiError> {
    match catalog.listed(root).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::UnknownRoot(root)),
        Err(StoreError::Unsupported(_)) => Ok(()),
        Err(e) => Err(store_failed(e)),
    }
}

pub(crate) fn store_failed(e: StoreError) -> ApiError {
    match e {
        StoreError::Unsupported(what) => ApiError::NotImplemented(match what {
            "keep history" => "this server's store keeps no history",
            _ => "this server's store cannot do this",
        }),
        other => ApiError::Internal(other.to_string()),
    }
}

/// The first 12 hex digits of a hash, as people quote versions (`rollback_of`
/// keeps the whole one).
fn short(hash: Hash) -> String {
    let mut hex = hash.to_hex();
    hex.truncate(12);
    hex
}

fn parse_hash(text: &str, what: &str) -> Result<Hash, ApiError> {
    text.parse::<Hash>()
        .map_err(|_| ApiError::BadRequest(format!("{what} {text:?} is not a hash (64 hex digits)")))
}

/// A logged patch, decoded (a description of the damage if it does not).
fn decode(bytes: &[u8], limits: &Limits) -> Result<Arc<Patch>, String> {
    match Message::decode(bytes, limits) {
        Ok(Message::Patch(patch)) => Ok(patch),
        Ok(other) => Err(format!("a {} message, not a patch", other.type_name())),
        Err(e) => Err(format!("does not decode: {e}")),
    }
}

fn entry(patch: &Patch) -> HistoryEntry {
    let text = |key: &str| {
        patch
            .meta
            .as_ref()
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    HistoryEntry {
        hash: Some(patch.hash.to_hex()),
        height: patch.height,
        parent: Some(patch.parent.to_hex()),
        time: text("time"),
        author: text("author"),
        message: text("message"),
        rollback_of: text("rollback_of"),
        meta: patch.meta.clone(),
        ops: Some(patch.ops.to_value()),
        error: None,
    }
}

/// A root's retained chain: its registration and the patches after it that
/// the store still holds, oldest first, without gaps.
struct Chain {
    root: Hash,
    /// The document at height 0, if the store has the registration.
    registration: Option<Value>,
    /// Consecutive patches ending with the newest the store holds.
    patches: Vec<Arc<Patch>>,
    /// The stored head's height when the chain was read.
    head_height: u64,
}

impl Chain {
    async fn load(catalog: &dyn Catalog, root: Hash) -> Result<Chain, ApiError> {
        let listed = catalog
            .listed(root)
            .await
            .map_err(store_failed)?
            .ok_or(ApiError::UnknownRoot(root))?;
        let limits = Limits::default();
        let stored = catalog
            .chain(&listed, MAX_REPLAY)
            .await
            .map_err(store_failed)?
            .ok_or(ApiError::UnknownRoot(root))?;
        let registration = match &stored.registration {
            None => None,
            Some(bytes) => Some(chain::registration(root, bytes, &limits).map_err(|e| {
                ApiError::Internal(format!("the registration of {root} in the store: {e}"))
            })?),
        };
        // Back from the newest, as far as the patches link up.
        let mut patches: Vec<Arc<Patch>> = Vec::new();
        for logged in stored.patches.iter().rev() {
            // Stop at a gap or a damaged entry: nothing before it can be
            // replayed to.
            if let Some(newer) = patches.last()
                && logged.height + 1 != newer.height
            {
                break;
            }
            let Ok(patch) = decode(&logged.patch, &limits) else {
                break;
            };
            if patches
                .last()
                .is_some_and(|newer| newer.parent != patch.hash)
            {
                break;
            }
            patches.push(patch);
        }
        patches.reverse();
        Ok(Chain {
            root,
            registration,
            patches,
            head_height: stored.head.height,
        })
    }

    /// Whether the chain reaches back to the root (no patch kept is
    /// complete only for a root still at height 0).
    fn complete(&self) -> bool {
        match self.patches.first() {
            Some(first) => first.height == 1 && first.parent == self.root,
            None => self.head_height == 0,
        }
    }

    /// How far back history goes, for a 410's detail.
    fn reach(&self) -> String {
        match self.patches.first() {
            Some(p) => format!("the oldest version kept is at height {}", p.height),
            None => "no history is kept".to_owned(),
        }
    }

    /// The height and document at `hash`, replayed from the registration.
    fn document_at(&self, hash: Hash) -> Result<(u64, Value), ApiError> {
        let gone = |what: String| {
            ApiError::NotRetained(format!(
                "{what}: the store keeps a root's history only within its retention, \
                 and a version is rebuilt from the root through every patch after it; {}",
                self.reach()
            ))
        };
        let position = self.patches.iter().position(|p| p.hash == hash);
        if position.is_none() && hash != self.root {
            return Err(if self.complete() {
                ApiError::UnknownVersion(hash)
            } else {
                gone(format!("{hash} is not in the history kept"))
            });
        }
        if !self.complete() {
            return Err(gone(format!(
                "the patches from the root to {hash} are not all kept"
            )));
        }
        let registration = self
            .registration
            .clone()
            .ok_or_else(|| gone("the store no longer has the root's registration".to_owned()))?;
        let mut walk = Walk::from_root(self.root, Some(registration));
        let limits = Limits::default();
        for patch in &self.patches[..position.map_or(0, |p| p + 1)] {
            walk.step(patch, patch.height, &limits).map_err(|e| {
                ApiError::Internal(format!(
                    "the stored patch at height {} does not replay: {e}",
                    patch.height
                ))
            })?;
        }
        let height = walk.height();
        // Started from a document, the walk always has one.
        let document = walk
            .into_document()
            .ok_or_else(|| ApiError::Internal("the replay lost its document".to_owned()))?;
        Ok((height, document))
    }
}
