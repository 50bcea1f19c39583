//! The handlers, one module per resource.

pub(crate) mod configs;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod roots;
pub(crate) mod verify;

use futures_util::StreamExt;
use tikaconf::{Change, Config, Event, Hash, Root};

use crate::problem::ApiError;

/// The `{root}` path segment, or 400 as a problem when it does not decode
/// (bad percent-encoding).
pub(crate) fn root_segment(
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Hash, ApiError> {
    let axum::extract::Path(text) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    parse_root(&text)
}

/// Reads `{root}` as users write it: a root hash or `twitch:<channel>` (or
/// connection info as a JSON object), URL-decoded by the router.
pub(crate) fn parse_root(text: &str) -> Result<Hash, ApiError> {
    text.parse::<Root>()
        .map(|root| root.hash())
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The head, height and document of `config` as one consistent reading (the
/// first item of a watch is read at once, under one borrow of the state).
pub(crate) async fn current(config: &Config) -> Result<Change, ApiError> {
    match config.watch().next().await {
        Some(Event::Change(change)) => Ok(change),
        _ => Err(ApiError::unavailable(
            "the configuration is no longer followed",
        )),
    }
}
