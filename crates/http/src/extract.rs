//! What handlers take from a request, refused in the JSON error envelope: axum's own `Query`
//! and `Path` answer a malformed query string or path in plain text. And the page every list
//! is read by.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ServerError;

/// The most items a page of any list holds.
pub const MAX_PAGE: u32 = 500;
/// Items a page holds when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;

/// Why text with a NUL is refused: PostgreSQL's text can not hold one, and no name, key or
/// filter needs it. Refused the same on both engines, before anything reaches the database.
pub const NUL_REFUSED: &str = "text may not contain NUL (U+0000) characters";

/// Whether a URI part carries a NUL, raw or percent-encoded.
fn has_nul(s: &str) -> bool {
    s.contains('\0') || s.contains("%00")
}

/// The query string, deserialized; 400 `invalid_request` naming what was wrong.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServerError> {
        if parts.uri.query().is_some_and(has_nul) {
            return Err(ServerError::BadRequest(NUL_REFUSED.into()));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ServerError::BadRequest(e.body_text()))
    }
}

/// The path's parameters; 400 `invalid_request` when one does not decode.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServerError> {
        if has_nul(parts.uri.path()) {
            return Err(ServerError::BadRequest(NUL_REFUSED.into()));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ServerError::BadRequest(e.body_text()))
    }
}

/// A page of a keyset-paged list: `after` (the previous page's `next`), `limit`, and for
/// some lists a store to keep to.
#[derive(Debug, Deserialize)]
pub struct Page {
    pub after: Option<String>,
    pub limit: Option<i64>,
    pub store: Option<String>,
}

impl Page {
    /// `limit`, range-checked: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
    pub fn limit(&self) -> Result<u32, ServerError> {
        page_limit(self.limit)
    }
}

/// A page size as asked: 400 outside 1 to [`MAX_PAGE`] (never silently clamped, so a client
/// asking for more learns it gets less).
pub fn page_limit(limit: Option<i64>) -> Result<u32, ServerError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=i64::from(MAX_PAGE)).contains(&n) => Ok(n as u32),
        Some(n) => Err(ServerError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE} (got {n})"
        ))),
    }
}
