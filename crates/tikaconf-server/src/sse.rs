//! `GET /v1/configs/{root}/events`: a configuration's changes as
//! Server-Sent Events, built on [`tikaconf::Config::watch`].
//!
//! Events:
//! - `snapshot`: `{"head","height","document"}`, the whole document. First,
//!   unless `Last-Event-ID` names the current head (then the client is
//!   current and gets only what comes next); again after the stream fell
//!   behind (`Lagged`) or the server re-synced from storage (a change without
//!   a patch), so a client always has a document to apply the next ops to.
//! - `change`: `{"head","height","ops"}`, one per patch, `ops` the RFC 6902
//!   ops applied.
//!
//! Every event's `id` is its head hash, so a reconnecting `EventSource` sends
//! it back as `Last-Event-ID`. A comment line goes out every heartbeat
//! interval (15 s by default) so that proxies do not close an idle stream.

use std::convert::Infallible;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tikaconf::{Change, Event, Hash};

use crate::Api;
use crate::problem::{ApiError, Problem};
use crate::routes::root_segment;

/// The stream of a configuration's changes.
#[utoipa::path(
    get,
    path = "/v1/configs/{root}/events",
    tag = "configs",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
        ("Last-Event-ID" = Option<String>, Header, nullable = false, description = "The last head received: resume after it"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `snapshot` events {head, height, document} and `change` events {head, height, ops}, id = head hash",
         content_type = "text/event-stream", body = String),
        (status = 400, description = "A bad root", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No storage node answered", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn events(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let root = root_segment(root)?;
    let config = api.inner.follows.get(root).await?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<Hash>().ok());
    let watch = config.watch();
    // The config rides along to keep the root followed while the stream
    // lives, and the guard to count the stream in the SSE clients gauge.
    let state = (watch, (config, OpenStream::counted()), last, true, false);
    let stream = futures_util::stream::unfold(
        state,
        |(mut watch, config, last, mut first, mut behind)| async move {
            loop {
                let change = match watch.next().await? {
                    Event::Change(change) => change,
                    Event::Lagged(_) => {
                        behind = true;
                        continue;
                    }
                    _ => continue,
                };
                let event = if first {
                    first = false;
                    if Some(change.head) == last {
                        continue;
                    }
                    snapshot(&change)
                } else if behind || change.patch.is_none() {
                    behind = false;
                    snapshot(&change)
                } else {
                    patched(&change)
                };
                return Some((Ok(event), (watch, config, last, first, behind)));
            }
        },
    );
    let closing = api.closing();
    let stream = stream.take_until(closing);
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(api.inner.options.heartbeat)
            .text("heartbeat"),
    ))
}

/// One open event stream, counted in `tikaconf_sse_clients` from its start
/// until it is dropped (the client went away, or the server closed it).
struct OpenStream(metrics::Gauge);

impl OpenStream {
    fn counted() -> OpenStream {
        let gauge = metrics::gauge!(tikaconf::metrics::SSE_CLIENTS);
        gauge.increment(1.0);
        OpenStream(gauge)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

fn snapshot(change: &Change) -> SseEvent {
    SseEvent::default()
        .event("snapshot")
        .id(change.head.to_string())
        .data(
            json!({
                "head": change.head.to_string(),
                "height": change.height,
                "document": &*change.document,
            })
            .to_string(),
        )
}

fn patched(change: &Change) -> SseEvent {
    let ops = change
        .patch
        .as_ref()
        .map(|p| p.ops.to_value())
        .unwrap_or_default();
    SseEvent::default()
        .event("change")
        .id(change.head.to_string())
        .data(
            json!({
                "head": change.head.to_string(),
                "height": change.height,
                "ops": ops,
            })
            .to_string(),
        )
}
