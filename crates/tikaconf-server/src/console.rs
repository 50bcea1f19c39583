//! The web console's files: `/` (its page) and `/assets/...` (its script,
//! styles, icon and the vendored editor), compiled into the binary with
//! `include_bytes!` so that `serve` needs no files beside it and the browser
//! loads nothing from anywhere else (no CDN).
//!
//! The console is plain ES modules with no build step (the editor,
//! CodeMirror 6, is one prebuilt bundle in `assets/vendor/`, rebuilt by
//! `scripts/vendor-editor`); it talks to the server through the public HTTP
//! API only, like any other client. Its files hold no data, so they are
//! served without the token: the page asks for the token when an API call
//! answers 401 (`docs/SECURITY.md`).
//!
//! Caching: file names are not hashed (the page imports its modules by plain
//! relative names, which keeps the sources readable as they are), so every
//! file is `Cache-Control: no-cache` with a strong `ETag` (a digest of its
//! bytes): the browser revalidates each load and gets a body-less 304 while
//! the binary is the same, and the new file after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// One embedded file.
struct Asset {
    /// Its path under `/assets/` (the page is the one with `""`).
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Every file of the console.
const ASSETS: &[Asset] = &[
    Asset {
        path: "",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../assets/index.html"),
    },
    Asset {
        path: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/console.js"),
    },
    Asset {
        path: "json.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/json.js"),
    },
    Asset {
        path: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/console.css"),
    },
    Asset {
        path: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../assets/icon.svg"),
    },
    Asset {
        path: "vendor/codemirror.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/vendor/codemirror.min.js"),
    },
];

/// Each asset's strong entity tag, computed once: the first 16 bytes of the
/// SHA-256 of its bytes, hex, quoted.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::try_from(format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// What the page may load and where it may connect: only this server. The
/// editor injects its styles at run time, hence `'unsafe-inline'` for styles
/// only; scripts are this origin's files, never inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

/// `/`: the console's page.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `/assets/{*path}`: the console's other files; 404 for any other name.
pub(crate) async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS
        .iter()
        .position(|a| !a.path.is_empty() && a.path == path)
    {
        Some(index) => serve(index, &headers),
        None => ApiError::NotFound.into_response(),
    }
}

/// The asset at `index`, or 304 when `If-None-Match` names its tag.
fn serve(index: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let tag = &ETAGS[index];
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t.as_bytes() == tag.as_bytes());
    let common = [
        (header::ETAG, tag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_strong_tag() {
        assert_eq!(ETAGS.len(), ASSETS.len());
        for (i, tag) in ETAGS.iter().enumerate() {
            let text = tag.to_str().unwrap();
            assert!(text.starts_with('"') && text.len() == 34, "{text}");
            assert!(!ETAGS[..i].contains(tag), "{}", ASSETS[i].path);
        }
    }
}
