//! Errors as RFC 9457 problem details (`application/problem+json`), and the
//! one mapping from the library's errors to HTTP statuses.
//!
//! Why one module: a status must mean the same on every endpoint (a script
//! retries on 503, re-reads on 412, shows the winner on 409), so every handler
//! returns an [`ApiError`] and only this module decides its status, its
//! headers and its body.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use tikaconf::proto::{DecodeError, Rejection};
use tikaconf::{Error, Hash, InvalidPatch, WriteError};
use utoipa::ToSchema;

/// An RFC 9457 problem details object, the body of every error response.
///
/// `type` is always `about:blank` (the status says what happened); `code` is
/// a stable machine-readable name of the case (`stale_if_match`, `conflict`,
/// ...), and extension members carry the hashes a client needs to react
/// (`current`, `winner`, `attempted`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened, for people.
    pub detail: String,
    /// A stable name of the case, for scripts.
    pub code: String,
    /// Extension members (`current`, `winner`, `attempted`, ...).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Map<String, Value>,
}

/// Every way a request can fail, each with one status (see [`ApiError::status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed: bad JSON, a bad root, a bad pointer or cursor,
    /// ops that are not an RFC 6902 patch.
    #[error("{0}")]
    BadRequest(String),
    /// The request lacks the bearer token, or carries another one.
    #[error("this server needs `Authorization: Bearer <token>`")]
    Unauthorized,
    /// Storage does not know this root (register it with `POST /v1/roots`).
    #[error("storage does not know root {0}; register it with POST /v1/roots")]
    UnknownRoot(Hash),
    /// No such endpoint.
    #[error("no such endpoint")]
    NotFound,
    /// The endpoint exists, but not with this method.
    #[error("this endpoint does not take this method")]
    MethodNotAllowed,
    /// `?pointer=` does not resolve in the document.
    #[error("the pointer {0:?} does not resolve in the document")]
    PointerNotFound(String),
    /// A body of a media type this endpoint does not take.
    #[error("unsupported media type {0:?}; {1}")]
    UnsupportedMediaType(String, &'static str),
    /// `If-Match` names a head that is no longer current.
    #[error("If-Match does not name the current head {current}")]
    StaleIfMatch {
        /// The current head.
        current: Hash,
    },
    /// Another patch on the same parent was stored first.
    #[error("another write was stored first: {winner} instead of {attempted}")]
    Conflict {
        /// The patch this request published.
        attempted: Hash,
        /// The patch stored instead.
        winner: Hash,
    },
    /// The ops do not apply to the document (or the result breaks a limit
    /// other than size, or the schema).
    #[error("the change does not apply: {0}")]
    Unprocessable(String),
    /// The body, the patch or the resulting document is too large.
    #[error("too large: {0}")]
    TooLarge(String),
    /// No storage node answered in time, or the bus is down: retry later.
    #[error("{detail}")]
    Unavailable {
        /// Why.
        detail: String,
        /// When a patch was published and its outcome is unknown: its hash
        /// (it may or may not be stored).
        attempted: Option<Hash>,
        /// The `Retry-After` to send.
        retry_after: Duration,
    },
    /// Redis refused to publish (an ACL): retrying will not help.
    #[error("Redis refused to publish the patch: {0}")]
    Refused(String),
    /// A version (a head hash) that is not in the root's retained history,
    /// which reaches back to the root: it never was one of its versions.
    #[error("{0} is not a version of this configuration")]
    UnknownVersion(Hash),
    /// The version asked for, or the patches that lead to it from the root,
    /// are no longer kept (the store's retention): its document cannot be
    /// rebuilt. The detail says how far back history goes.
    #[error("{0}")]
    NotRetained(String),
    /// A write that must be conditional (rollback) came without `If-Match`.
    #[error("{0} needs If-Match: the head it was computed from")]
    PreconditionRequired(&'static str),
    /// The endpoint needs something this server was started without.
    #[error("{0}")]
    NotImplemented(&'static str),
    /// The store failed.
    #[error("storage failed: {0}")]
    Internal(String),
}

/// How long clients are told to wait before retrying a 503.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UnknownRoot(_)
            | ApiError::PointerNotFound(_)
            | ApiError::NotFound
            | ApiError::UnknownVersion(_) => StatusCode::NOT_FOUND,
            ApiError::NotRetained(_) => StatusCode::GONE,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(..) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::StaleIfMatch { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused(_) => StatusCode::BAD_GATEWAY,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable name of the case (the problem's `code`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::UnknownRoot(_) => "unknown_root",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PointerNotFound(_) => "pointer_not_found",
            ApiError::UnknownVersion(_) => "unknown_version",
            ApiError::NotRetained(_) => "not_retained",
            ApiError::PreconditionRequired(_) => "precondition_required",
            ApiError::UnsupportedMediaType(..) => "unsupported_media_type",
            ApiError::StaleIfMatch { .. } => "stale_if_match",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Unprocessable(_) => "ops_failed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Unavailable {
                attempted: Some(_), ..
            } => "outcome_unknown",
            ApiError::Unavailable { .. } => "storage_unavailable",
            ApiError::Refused(_) => "refused",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem details body.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let mut extensions = Map::new();
        let mut put = |k: &str, h: &Hash| {
            extensions.insert(k.into(), Value::String(h.to_string()));
        };
        match self {
            ApiError::UnknownRoot(root) => put("root", root),
            ApiError::UnknownVersion(hash) => put("version", hash),
            ApiError::StaleIfMatch { current } => put("current", current),
            ApiError::Conflict { attempted, winner } => {
                put("attempted", attempted);
                put("winner", winner);
            }
            ApiError::Unavailable {
                attempted: Some(attempted),
                ..
            } => put("attempted", attempted),
            _ => {}
        }
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().into(),
            extensions,
        }
    }

    /// 503 for storage that did not answer.
    pub(crate) fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::Unavailable {
            detail: detail.into(),
            attempted: None,
            retry_after: RETRY_AFTER,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unavailable { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            ApiError::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tikaconf\""),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::UnknownRoot(root) => ApiError::UnknownRoot(root),
            Error::LoadTimeout(waited) => ApiError::unavailable(format!(
                "no storage node answered within {waited:?} (is one running?)"
            )),
            Error::Closed => ApiError::unavailable("the server's client has shut down"),
            Error::Connect(e) => ApiError::unavailable(format!("cannot connect: {e}")),
            Error::Write(e) => e.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        match e {
            WriteError::Conflict { attempted, winner } => ApiError::Conflict { attempted, winner },
            WriteError::Timeout { attempted } => ApiError::Unavailable {
                detail: format!(
                    "no storage node acknowledged {attempted} in time: it may or may not be \
                     stored; read the configuration to find out"
                ),
                attempted: Some(attempted),
                retry_after: RETRY_AFTER,
            },
            WriteError::Rejected(invalid) => rejected(invalid),
            WriteError::Disconnected => {
                ApiError::unavailable("not connected to the bus; nothing was published")
            }
            WriteError::Closed => ApiError::unavailable("the server's client has shut down"),
            WriteError::Refused { source, .. } => ApiError::Refused(source.to_string()),
            // Handled by the write loop; reaching here means it gave up.
            WriteError::HeadMoved => ApiError::unavailable("the head kept moving; retry"),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A patch refused before anything was published: malformed (400), too
/// large (413), or not applicable (422).
fn rejected(invalid: InvalidPatch) -> ApiError {
    let detail = chain(&invalid);
    match &invalid {
        InvalidPatch::Decode(DecodeError::TooLarge { .. }) => ApiError::TooLarge(detail),
        InvalidPatch::Decode(_) => ApiError::BadRequest(format!("not an RFC 6902 patch: {detail}")),
        InvalidPatch::Apply(Rejection::DocumentTooLarge { .. }) => ApiError::TooLarge(detail),
        _ => ApiError::Unprocessable(detail),
    }
}

/// An error and its sources, one after the other.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
