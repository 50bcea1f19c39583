//! `/healthz` (the process answers), `/readyz` (it can serve: bus
//! connected, its storage node, if any, subscribed and answering), and
//! `/metrics` (the process's metrics, when the binary gave a renderer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{ApiError, Problem};
use crate::{Api, StorageHealth};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers", body = String)))]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness, part by part.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// Whether everything below is ready.
    ready: bool,
    /// `connected`, `connecting` or `disconnected`.
    bus: &'static str,
    /// `ready`, `starting`, `failed: <reason>`, or `none` (API only).
    storage: String,
}

/// Whether the server can serve: its client is connected to the bus, and
/// its own storage node (when it runs one) has its store open, is subscribed
/// and answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready (which part says)", body = Readiness),
    ))]
pub(crate) async fn readyz(State(api): State<Api>) -> Response {
    let bus = match api.inner.follows.client().connection_state() {
        tikaconf::ConnectionState::Connected => "connected",
        tikaconf::ConnectionState::Connecting => "connecting",
        _ => "disconnected",
    };
    let storage = api.inner.storage.as_ref().map(|health| health());
    let (storage_ok, storage) = match storage {
        None => (true, "none".to_owned()),
        Some(StorageHealth::Ready) => (true, "ready".to_owned()),
        Some(StorageHealth::Starting) => (false, "starting".to_owned()),
        Some(StorageHealth::Failed(reason)) => (false, format!("failed: {reason}")),
    };
    let ready = bus == "connected" && storage_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            bus,
            storage,
        }),
    )
        .into_response()
}

/// The process's metrics in Prometheus text format (every series is listed in
/// docs/ARCHITECTURE.md, "Metrics").
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String,
         content_type = "text/plain"),
        (status = 404, description = "This server exports no metrics", body = Problem,
         content_type = "application/problem+json"),
    ))]
pub(crate) async fn metrics(State(api): State<Api>) -> Response {
    match &api.inner.metrics {
        Some(render) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render(),
        )
            .into_response(),
        None => ApiError::NotFound.into_response(),
    }
}
