//! The errors the server answers with: JSON `{"error": {"code", "message"}}`, a stable code per
//! case, never internals (those go to the log).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    InvalidSignature(&'static str),
    #[error("the delivery's timestamp is outside the 5-minute tolerance")]
    StaleTimestamp,
    #[error("unknown store {0:?}")]
    UnknownStore(String),
    #[error("unknown platform {0:?} (shopify, standard or stripe)")]
    UnknownPlatform(String),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("the content type must be application/json")]
    UnsupportedMediaType,
    #[error("the body is not JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but refused for what it names (a store URL outside the outbound policy).
    #[error("{0}")]
    Unprocessable(String),
    /// The token is valid but its role does not reach this call; the role that would.
    #[error("this call needs a token with the {0} role")]
    Forbidden(crate::access::Role),
    #[error("internal error")]
    Internal(String),
}

impl ServerError {
    pub fn code(&self) -> &'static str {
        match self {
            ServerError::InvalidSignature(_) => "invalid_signature",
            ServerError::StaleTimestamp => "stale_timestamp",
            ServerError::UnknownStore(_) => "unknown_store",
            ServerError::UnknownPlatform(_) => "unknown_platform",
            ServerError::TooLarge(_) => "payload_too_large",
            ServerError::HeadersTooLarge(_) => "headers_too_large",
            ServerError::UnsupportedMediaType => "unsupported_media_type",
            ServerError::InvalidJson(_) => "invalid_json",
            ServerError::BadRequest(_) => "invalid_request",
            ServerError::NotFound(_) => "not_found",
            ServerError::Conflict(_) => "conflict",
            ServerError::Unprocessable(_) => "unprocessable",
            ServerError::Forbidden(_) => "forbidden",
            ServerError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ServerError::InvalidSignature(_) | ServerError::StaleTimestamp => {
                StatusCode::UNAUTHORIZED
            }
            ServerError::UnknownStore(_) | ServerError::UnknownPlatform(_) => StatusCode::NOT_FOUND,
            ServerError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ServerError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServerError::InvalidJson(_) | ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::Conflict(_) => StatusCode::CONFLICT,
            ServerError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServerError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ServerError {
    fn from(e: sqlx::Error) -> Self {
        ServerError::Internal(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for ServerError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        ServerError::Internal(e.to_string())
    }
}

impl From<ferry_queue::QueueError> for ServerError {
    fn from(e: ferry_queue::QueueError) -> Self {
        match e {
            ferry_queue::QueueError::NotFound(id) => ServerError::NotFound(format!("job {id}")),
            e @ ferry_queue::QueueError::NotReplayable { .. } => {
                ServerError::Conflict(e.to_string())
            }
            e @ (ferry_queue::QueueError::InvalidJob(_) | ferry_queue::QueueError::Cron { .. }) => {
                ServerError::BadRequest(e.to_string())
            }
            other => ServerError::Internal(other.to_string()),
        }
    }
}

impl From<ferry_sync::SyncError> for ServerError {
    fn from(e: ferry_sync::SyncError) -> Self {
        use ferry_sync::SyncError;
        match e {
            SyncError::Invalid(m) => ServerError::BadRequest(m),
            SyncError::UnknownStore(s) => ServerError::UnknownStore(s),
            SyncError::NoParent => ServerError::Conflict("the network has no parent store".into()),
            SyncError::Conflict(m) => ServerError::Conflict(m),
            SyncError::Refused(m) => ServerError::Unprocessable(m),
            other => ServerError::Internal(other.brief()),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        if let ServerError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let mut body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        if let ServerError::Forbidden(role) = &self {
            body["error"]["needed_role"] = json!(role.as_str());
        }
        (self.status(), Json(body)).into_response()
    }
}

/// The server's body limit, put on every request by the application (see [`Body`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request body read whole, up to the server's body limit: over it, 413 in the JSON
/// envelope (axum's own extractors would answer its 2 MB default in plain text).
pub struct Body(pub axum::body::Bytes);

impl Body {
    /// The body as JSON of `T`; 400 `invalid_request` saying why not.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ServerError> {
        let v: serde_json::Value = serde_json::from_slice(&self.0)
            .map_err(|e| ServerError::BadRequest(format!("invalid body: {e}")))?;
        // Every body of this API is an object (serde would read a struct from an array).
        if !v.is_object() {
            return Err(ServerError::BadRequest(
                "invalid body: expected a JSON object".into(),
            ));
        }
        if ferry_sync::has_nul(&v) {
            return Err(ServerError::BadRequest(crate::extract::NUL_REFUSED.into()));
        }
        serde_json::from_value(v).map_err(|e| ServerError::BadRequest(format!("invalid body: {e}")))
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ServerError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, ServerError> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(crate::app::DEFAULT_BODY_LIMIT, |l| l.0);
        // A body that cannot be read whole within the limit (too large, or the client went
        // away while sending it) is refused as too large.
        axum::body::to_bytes(req.into_body(), limit)
            .await
            .map(Body)
            .map_err(|_| ServerError::TooLarge(limit))
    }
}
