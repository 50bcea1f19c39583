//! The bearer token: with one configured, every request must carry
//! `Authorization: Bearer <token>`, compared in constant time.
//!
//! Why constant time: a comparison that stops at the first differing byte
//! tells a remote attacker, through response times, how much of a guess was
//! right, and lets them find the token a byte at a time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::problem::ApiError;

/// The token every request must present.
#[derive(Clone)]
pub(crate) struct Token(pub(crate) Arc<[u8]>);

impl Token {
    /// Whether an `Authorization` header value presents this token.
    pub(crate) fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        // The scheme is case-insensitive (RFC 9110); the token is not.
        let Some(presented) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| &value[7..])
        else {
            return false;
        };
        // `ct_eq` on slices of different lengths is false without looking
        // at the bytes: the length of the token is not a secret worth hiding.
        presented.ct_eq(&self.0).into()
    }
}

/// The middleware: 401 problem unless the request presents the token.
pub(crate) async fn require(State(token): State<Token>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if token.admits(presented) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_the_bearer_token() {
        let token = Token(Arc::from(&b"s3cret"[..]));
        assert!(token.admits(Some(b"Bearer s3cret")));
        assert!(token.admits(Some(b"bearer s3cret")));
        assert!(!token.admits(Some(b"Bearer s3cre")));
        assert!(!token.admits(Some(b"Bearer s3cret2")));
        assert!(!token.admits(Some(b"Basic s3cret")));
        assert!(!token.admits(Some(b"Bearer")));
        assert!(!token.admits(Some(b"")));
        assert!(!token.admits(None));
    }
}
