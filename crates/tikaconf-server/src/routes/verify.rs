//! `GET /v1/configs/{root}/verify`: a root's stored chain checked link by
//! link, from its registration (or the oldest patch kept) through its log to
//! its head (`tikaconf::verify::verify_root`, the check a storage node makes
//! of its whole store when it starts).
//!
//! A broken chain is an answer, not an error: 200 with `ok: false` and the
//! first broken link, so that a tool reads one shape whatever it finds.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::Serialize;
use tikaconf::Hash;
use tikaconf::proto::Limits;
use tikaconf::proto::chain::{BrokenLink, Gap};
use tikaconf::verify::Verified;
use utoipa::ToSchema;

use crate::Api;
use crate::problem::{ApiError, Problem};
use crate::routes::history::{catalog, store_failed};
use crate::routes::root_segment;

/// What the check found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyReport {
    /// The root checked.
    root: String,
    /// Whether every link that could be checked holds.
    ok: bool,
    /// The stored head.
    head: String,
    /// Its height.
    height: u64,
    /// The lowest height of a patch kept (null: none is kept).
    oldest: Option<u64>,
    /// Patches whose links were checked (up to the break, if any).
    checked: u64,
    /// Of those, how many were also applied to the document before them.
    replayed: u64,
    /// Of those, how many could be checked for linkage only (the document
    /// before them is not known: the log does not reach the root, or they
    /// follow a gap).
    linkage_only: u64,
    /// Heights missing between the patches kept, or between the newest kept
    /// and the head (not breaks: a period without history), the first 16.
    gaps: Vec<VerifyGap>,
    /// How many gaps there are in all.
    gap_count: u64,
    /// Whether the chain was checked unbroken from the root to the head.
    anchored: bool,
    /// Whether the head's document was compared with the one replayed from
    /// the registration.
    document_checked: bool,
    /// Whether the store keeps older patches than were checked (10,000 at
    /// most are read).
    truncated: bool,
    /// The first broken link; null when `ok`.
    broken: Option<VerifyBreak>,
}

/// Heights missing from the log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyGap {
    /// The first height missing.
    from: u64,
    /// The last height missing.
    to: u64,
}

/// The first link that does not hold.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyBreak {
    /// Where: the stored patch's height (0: the registration; the head's
    /// height for the head and its document).
    height: u64,
    /// The hash of what is stored there (null when it does not decode).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    hash: Option<String>,
    /// Why, as a stable name: `bad_registration`, `undecodable`,
    /// `wrong_height`, `wrong_root`, `wrong_parent`, `altered`, `ops_fail`,
    /// `head_mismatch`, `bad_head_snapshot`, `beyond_head`,
    /// `document_mismatch`, `unloadable`.
    reason: String,
    /// Why, in words.
    detail: String,
}

impl VerifyReport {
    fn new(verified: &Verified) -> VerifyReport {
        let report = &verified.report;
        VerifyReport {
            root: report.root.to_hex(),
            ok: report.is_ok(),
            head: report.head.to_hex(),
            height: report.height,
            oldest: report.oldest,
            checked: report.checked,
            replayed: report.replayed,
            linkage_only: report.linkage_only,
            gaps: report
                .gaps
                .iter()
                .map(|&Gap { from, to }| VerifyGap { from, to })
                .collect(),
            gap_count: report.gap_count,
            anchored: report.anchored,
            document_checked: report.document_checked,
            truncated: verified.truncated,
            broken: report
                .broken
                .as_ref()
                .map(|broken: &BrokenLink| VerifyBreak {
                    height: broken.height,
                    hash: broken.hash.as_ref().map(Hash::to_hex),
                    reason: broken.reason.label().to_owned(),
                    detail: broken.reason.to_string(),
                }),
        }
    }
}

/// Check a configuration's stored chain: every hash recomputed from the
/// registration (or the oldest patch kept) through the log to the head.
#[utoipa::path(
    get,
    path = "/v1/configs/{root}/verify",
    tag = "history",
    params(
        ("root" = String, Path, pattern = r#"^([0-9a-f]{64}|twitch:#?[A-Za-z0-9_]{1,25}|\{.*\})$"#, description = "A root hash or `twitch:<channel>`, URL-encoded"),
    ),
    responses(
        (status = 200, description = "What the check found (`ok: false` and `broken` for a broken chain)", body = VerifyReport),
        (status = 400, description = "A bad root", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown root", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The store failed", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "This server runs without a store (--no-storage)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn verify(
    State(api): State<Api>,
    root: Result<Path<String>, PathRejection>,
) -> Result<Json<VerifyReport>, ApiError> {
    let root = root_segment(root)?;
    let catalog = catalog(&api)?;
    let listed = catalog
        .listed(root)
        .await
        .map_err(store_failed)?
        .ok_or(ApiError::UnknownRoot(root))?;
    let verified = catalog
        .verify(&listed, &Limits::default())
        .await
        .map_err(store_failed)?
        .ok_or(ApiError::UnknownRoot(root))?;
    Ok(Json(VerifyReport::new(&verified)))
}
