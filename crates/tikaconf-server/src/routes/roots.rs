//! `GET /v1/roots` (a page of the roots the server's store holds) and
//! `POST /v1/roots` (register a root from its connection info).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tikaconf::proto::root::RootError;
use tikaconf::store::MAX_LIST_ROOTS;
use tikaconf::{Error, Hash, Root, RootConfig};
use utoipa::{IntoParams, ToSchema};

use crate::Api;
use crate::openapi::schemas::ConnectionInfo;
use crate::problem::{ApiError, Problem};
use crate::routes::configs::{parse_json, read_body, version_headers};
use crate::routes::current;

/// Roots per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// With a `platform` filter, how many store pages one request reads at most
/// before it answers with what it found (and a cursor to go on): a filter
/// that matches nothing must not make one request read 100,000 roots.
const PAGES_PER_REQUEST: usize = 10;

/// The listing's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Roots per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    #[param(pattern = "^([0-9a-f]{64})?$")]
    cursor: Option<String>,
    /// Only roots whose connection info has this `platform` (e.g. `twitch`).
    platform: Option<String>,
}

/// One root in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RootEntry {
    /// The root hash.
    root: String,
    /// Its latest head.
    head: String,
    /// The head's height.
    height: u64,
    /// Its connection info (`{"platform":"twitch","channel":"#..."}`), or
    /// null when the store does not have it (a root registered before stores
    /// kept it).
    #[schema(value_type = Option<Object>)]
    connection: Option<Value>,
}

/// A page of roots.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RootPage {
    /// Roots in ascending order of hash.
    roots: Vec<RootEntry>,
    /// The cursor of the next page; null on the last one. A page may hold
    /// fewer than `limit` roots (with a filter) and still have a next one.
    next: Option<String>,
}

/// A root's state after registration.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Registered {
    /// The root hash.
    root: String,
    /// Its latest head.
    head: String,
    /// The head's height.
    height: u64,
}

/// List roots with their heads, by cursor, optionally by platform.
#[utoipa::path(
    get,
    path = "/v1/roots",
    tag = "roots",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of roots", body = RootPage),
        (status = 400, description = "A bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server runs without a store (--no-storage)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list(
    State(api): State<Api>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<RootPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let catalog = api.inner.catalog.as_ref().ok_or(ApiError::NotImplemented(
        "listing roots needs a store, and this server runs without one (--no-storage): \
         ask a server that runs a storage node",
    ))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIST_ROOTS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit is 1 to {MAX_LIST_ROOTS}, not {limit}"
        )));
    }
    let mut after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(cursor.parse::<Hash>().map_err(|_| {
            ApiError::BadRequest(format!("{cursor:?} is not a cursor (a root hash)"))
        })?),
    };
    let mut roots = Vec::new();
    let mut more = true;
    for _ in 0..PAGES_PER_REQUEST {
        let want = limit - roots.len();
        let page = catalog
            .list(after, want)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        more = page.len() == want;
        for listed in &page {
            after = Some(listed.root);
            let connection = listed
                .registration
                .as_deref()
                .and_then(|r| serde_json::from_slice::<Value>(r).ok())
                .and_then(|mut snapshot| {
                    snapshot
                        .get_mut("config")?
                        .get_mut("connection")
                        .map(Value::take)
                });
            if let Some(platform) = &query.platform {
                let theirs = connection
                    .as_ref()
                    .and_then(|c| c.get("platform")?.as_str());
                if theirs != Some(platform.as_str()) {
                    continue;
                }
            }
            roots.push(RootEntry {
                root: listed.root.to_string(),
                head: listed.head.head.to_string(),
                height: listed.head.height,
                connection,
            });
        }
        if !more || roots.len() == limit {
            break;
        }
    }
    Ok(Json(RootPage {
        roots,
        next: after.filter(|_| more).map(|h| h.to_string()),
    }))
}

/// Register a root from its connection info (`{"platform":"twitch","channel":"#name"}`
/// follows the Twitch rule: case and `#` do not matter).
#[utoipa::path(
    post,
    path = "/v1/roots",
    tag = "roots",
    request_body(content = ConnectionInfo, description = "Connection info", content_type = "application/json"),
    responses(
        (status = 201, description = "Registered now", body = Registered),
        (status = 200, description = "Already registered", body = Registered),
        (status = 400, description = "Not connection info", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body or connection info too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn register(
    State(api): State<Api>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    let connection = parse_json(&body)?;
    let root = root_config(connection)?;
    let hash = root.hash();
    // Known already? A load by hash answers without registering anything.
    let (config, status) = match api.inner.follows.get(hash).await {
        Ok(config) => (config, StatusCode::OK),
        Err(Error::UnknownRoot(_)) => (
            api.inner.follows.get(Root::Config(root)).await?,
            StatusCode::CREATED,
        ),
        Err(e) => return Err(e.into()),
    };
    let now = current(&config).await?;
    let mut response = (
        status,
        Json(Registered {
            root: hash.to_string(),
            head: now.head.to_string(),
            height: now.height,
        }),
    )
        .into_response();
    version_headers(response.headers_mut(), now.head, now.height);
    Ok(response)
}

/// Connection info as a root configuration; Twitch's `{platform, channel}`
/// by the Twitch rule, so that the API and `twitch:<channel>` agree.
fn root_config(connection: Value) -> Result<RootConfig, ApiError> {
    // Too large is 413, as for every other body; anything else is malformed.
    let bad = |e: RootError| match e {
        RootError::TooLong { .. } | RootError::TooLarge => {
            ApiError::TooLarge(format!("connection info: {e}"))
        }
        e => ApiError::BadRequest(format!("not connection info: {e}")),
    };
    if let Value::Object(map) = &connection
        && map.len() == 2
        && map.get("platform").and_then(Value::as_str) == Some("twitch")
        && let Some(channel) = map.get("channel").and_then(Value::as_str)
    {
        return RootConfig::twitch(channel).map_err(bad);
    }
    RootConfig::from_connection(connection).map_err(bad)
}
