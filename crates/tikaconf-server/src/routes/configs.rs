//! `GET`, `PATCH` and `PUT /v1/configs/{root}`: read a configuration, change
//! it with a patch, or replace it, conditionally on its head.
//!
//! A write answers only once it is Committed (a storage node stored it), so a
//! 200 means durable, as a `Config::submit` that returned does. Every write
//! is published on a known parent (`Config::submit_on`): with `If-Match`, the
//! head it names; without, the head the server reads when the request
//! arrives, retried on a newer one if the server's own view moved before
//! publishing (nothing was published then). A patch that was published and
//! lost to another is never retried: that is a 409 naming the winner.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tikaconf::{Config, Hash, Limits, WriteError};
use utoipa::{IntoParams, ToSchema};

use crate::Api;
use crate::etag::{self, Condition, HEIGHT_HEADER};
use crate::openapi::schemas::{PatchOp, ProtocolJson};
use crate::problem::{ApiError, Problem};
use crate::routes::history::request_meta;
use crate::routes::{current, root_segment};

/// Media type of an RFC 6902 JSON Patch body.
pub const JSON_PATCH: &str = "application/json-patch+json";
/// Media type of an RFC 7386 JSON Merge Patch body.
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// How many times a write without `If-Match` re-reads the head when the
/// server's view moved under it before publishing.
const REBASES: usize = 16;

/// `?pointer=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetQuery {
    /// An RFC 6901 JSON Pointer: answer with the part of the document there.
    #[param(pattern = "^(/.*)?$")]
    pointer: Option<String>,
}

/// A write's result: the configuration's new head.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Written {
    /// The root hash.
    root: String,
    /// The new head (also the `ETag`).
    head: String,
    /// The new head's height.
    height: u64,
}

/// The document of a configuration, or the part at `?pointer=`.
#[utoipa::path(
    get,
    path = "/v1/configs/{root}",
    tag = "configs",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        GetQuery,
        ("If-None-Match" = Option<String>, Header, nullable = false, pattern = r#"^[ \t,]*(\*|(W/)?"[!#-~]*"([ \t]*,[ \t,]*(W/)?"[!#-~]*")*)?[ \t,]*$"#, description = "Answer 304 if the head is one of these"),
    ),
    responses(
        (status = 200, description = "The document (or the part at the pointer)", body = Value,
         headers(("ETag" = String, description = "The head hash, quoted"),
                 ("Tikaconf-Height" = u64, description = "The head's height"))),
        (status = 304, description = "The head is the one named by If-None-Match"),
        (status = 400, description = "A bad root or pointer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root, or the pointer does not resolve", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let root = root_segment(root)?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let config = api.inner.follows.get(root).await?;
    let now = current(&config).await?;
    if let Some(pointer) = &query.pointer
        && !pointer.is_empty()
        && !pointer.starts_with('/')
    {
        return Err(ApiError::BadRequest(format!(
            "{pointer:?} is not an RFC 6901 JSON Pointer (it starts with `/`, or is empty)"
        )));
    }
    let fresh = etag::condition(&headers, header::IF_NONE_MATCH, true)?
        .is_some_and(|c| c.matches(now.head));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let value = match query.pointer.as_deref() {
            None | Some("") => &*now.document,
            Some(pointer) => now
                .document
                .pointer(pointer)
                .ok_or_else(|| ApiError::PointerNotFound(pointer.to_owned()))?,
        };
        Json(value).into_response()
    };
    version_headers(response.headers_mut(), now.head, now.height);
    Ok(response)
}

/// Change a configuration with an RFC 6902 JSON Patch or an RFC 7386 JSON
/// Merge Patch (turned into RFC 6902 ops by difference).
#[utoipa::path(
    patch,
    path = "/v1/configs/{root}",
    tag = "configs",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^[ \t,]*(\*|(W/)?"[!#-~]*"([ \t]*,[ \t,]*(W/)?"[!#-~]*")*)?[ \t,]*$"#, description = "Write only if the head is this one (quoted hash)"),
        ("Tikaconf-Author" = Option<String>, Header, nullable = false, pattern = "^[ -~]*$", max_length = 4096, description = "Who writes (`meta.author`), percent-encoded UTF-8; default: the server's"),
        ("Tikaconf-Message" = Option<String>, Header, nullable = false, pattern = "^[ -~]*$", max_length = 4096, description = "Why (`meta.message`), percent-encoded UTF-8"),
    ),
    request_body(description = "`application/json-patch+json` (an array of RFC 6902 ops) or `application/merge-patch+json`",
        content(
            (Vec<PatchOp> = "application/json-patch+json"),
            (ProtocolJson = "application/merge-patch+json"),
        )),
    responses(
        (status = 200, description = "Committed: durably stored", body = Written,
         headers(("ETag" = String, description = "The new head, quoted"),
                 ("Tikaconf-Height" = u64, description = "The new head's height"))),
        (status = 400, description = "Malformed body or root", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another write was stored first (`winner`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is not the current head (`current`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body, patch or document too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither patch media type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The ops do not apply", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn patch(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let root = root_segment(root)?;
    let body = read_body(body)?;
    let edit = match media_type(&headers).as_deref() {
        Some(JSON_PATCH) => {
            let ops = parse_json(&body)?;
            // The ops' form is checked here, before `If-Match`: malformed
            // ops are 400 whatever the head is.
            if let Err(e) = serde_json::from_value::<json_patch::Patch>(ops.clone()) {
                return Err(ApiError::BadRequest(format!(
                    "an RFC 6902 patch is a JSON array of operations: {e}"
                )));
            }
            Edit::Ops(ops)
        }
        Some(MERGE_PATCH) => Edit::Merge(parse_json(&body)?),
        other => {
            return Err(ApiError::UnsupportedMediaType(
                other.unwrap_or("(none)").to_owned(),
                "PATCH takes application/json-patch+json or application/merge-patch+json",
            ));
        }
    };
    let meta = request_meta(&api, &headers)?;
    let condition = etag::condition(&headers, header::IF_MATCH, false)?;
    let config = api.inner.follows.get(root).await?;
    written(&config, write(&config, condition, edit, meta).await?)
}

/// Replace the whole document (published as the RFC 6902 ops of the difference).
#[utoipa::path(
    put,
    path = "/v1/configs/{root}",
    tag = "configs",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^[ \t,]*(\*|(W/)?"[!#-~]*"([ \t]*,[ \t,]*(W/)?"[!#-~]*")*)?[ \t,]*$"#, description = "Write only if the head is this one (quoted hash)"),
        ("Tikaconf-Author" = Option<String>, Header, nullable = false, pattern = "^[ -~]*$", max_length = 4096, description = "Who writes (`meta.author`), percent-encoded UTF-8; default: the server's"),
        ("Tikaconf-Message" = Option<String>, Header, nullable = false, pattern = "^[ -~]*$", max_length = 4096, description = "Why (`meta.message`), percent-encoded UTF-8"),
    ),
    request_body(content = ProtocolJson, description = "The new document: any JSON value", content_type = "application/json"),
    responses(
        (status = 200, description = "Committed: durably stored", body = Written,
         headers(("ETag" = String, description = "The new head, quoted"),
                 ("Tikaconf-Height" = u64, description = "The new head's height"))),
        (status = 400, description = "Malformed body or root", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another write was stored first (`winner`)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match is not the current head (`current`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or document too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The document breaks a limit or the schema", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered (`Retry-After`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn put(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let root = root_segment(root)?;
    let body = read_body(body)?;
    match media_type(&headers).as_deref() {
        Some("application/json") => {}
        other => {
            return Err(ApiError::UnsupportedMediaType(
                other.unwrap_or("(none)").to_owned(),
                "PUT takes application/json",
            ));
        }
    }
    let document = parse_json(&body)?;
    let meta = request_meta(&api, &headers)?;
    let condition = etag::condition(&headers, header::IF_MATCH, false)?;
    let config = api.inner.follows.get(root).await?;
    written(
        &config,
        write(&config, condition, Edit::Replace(document), meta).await?,
    )
}

/// What a write does to the document.
enum Edit {
    /// Apply these RFC 6902 ops.
    Ops(Value),
    /// Merge this RFC 7386 patch.
    Merge(Value),
    /// Replace the document.
    Replace(Value),
}

/// Publishes `edit` with `meta` on the head `condition` names (or the
/// current one) and waits for its outcome: the new head and height.
async fn write(
    config: &Config,
    condition: Option<Condition>,
    edit: Edit,
    meta: Map<String, Value>,
) -> Result<(Hash, u64), ApiError> {
    let pinned = matches!(condition, Some(Condition::Heads(_)));
    for _ in 0..REBASES {
        let base = current(config).await?;
        if let Some(condition) = &condition
            && !condition.matches(base.head)
        {
            return Err(ApiError::StaleIfMatch { current: base.head });
        }
        let ops = match &edit {
            Edit::Ops(ops) => ops.clone(),
            Edit::Merge(merge) => {
                let mut next = (*base.document).clone();
                json_patch::merge(&mut next, merge);
                tikaconf::diff(&base.document, &next)
            }
            Edit::Replace(document) => tikaconf::diff(&base.document, document),
        };
        if ops.as_array().is_some_and(Vec::is_empty) {
            // Nothing to change (no ops, or the document already is what was
            // asked): no new version for nothing.
            return Ok((base.head, base.height));
        }
        match config
            .submit_on_with_meta(base.head, ops, Some(meta.clone()))
            .await
        {
            Ok(head) => return Ok((head, base.height + 1)),
            Err(WriteError::HeadMoved) if pinned => {
                return Err(ApiError::StaleIfMatch {
                    current: config.head(),
                });
            }
            Err(WriteError::HeadMoved) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::unavailable(
        "the configuration kept changing while this write was prepared; retry",
    ))
}

pub(crate) fn written(config: &Config, (head, height): (Hash, u64)) -> Result<Response, ApiError> {
    let mut response = Json(Written {
        root: config.root().to_string(),
        head: head.to_string(),
        height,
    })
    .into_response();
    version_headers(response.headers_mut(), head, height);
    Ok(response)
}

/// `ETag` and the height header.
pub(crate) fn version_headers(headers: &mut HeaderMap, head: Hash, height: u64) {
    headers.insert(header::ETAG, etag::etag(head));
    headers.insert(HEIGHT_HEADER, HeaderValue::from(height));
}

/// The body, or 413 past the router's limit.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(rejection.body_text())
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })
}

/// The body as JSON under the protocol's rules (numbers within ±2^53, no
/// duplicate keys, nesting at most [`Limits::MAX_DEPTH_CEILING`] deep), or
/// 400: a body no patch could carry is malformed whatever its conditions say,
/// so it is refused before `If-Match` is compared.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    tikaconf::proto::json::parse_strict(body, Limits::MAX_DEPTH_CEILING)
        .map_err(|e| ApiError::BadRequest(format!("not protocol JSON: {e}")))
}

/// The media type of the body, lower case, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(essence)
}
