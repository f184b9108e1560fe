use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to a client, as JSON with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("[API] Invalid API key or access token (unrecognized login or wrong password)")]
    Unauthorized,
    #[error("store {0:?} not found")]
    UnknownStore(String),
    #[error("item {0:?} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
    )]
    Throttled { retry_after_s: u64 },
    #[error("Idempotency-Key was used with another request body")]
    IdempotencyMismatch,
    #[error("service unavailable (injected fault)")]
    Unavailable,
    #[error("internal error (injected fault)")]
    Internal,
}

impl MockError {
    fn status(&self) -> StatusCode {
        match self {
            MockError::Unauthorized => StatusCode::UNAUTHORIZED,
            MockError::UnknownStore(_) | MockError::NotFound(_) => StatusCode::NOT_FOUND,
            MockError::BadRequest(_) => StatusCode::BAD_REQUEST,
            MockError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            MockError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            MockError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            MockError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            MockError::Unauthorized => "UNAUTHORIZED",
            MockError::UnknownStore(_) => "UNKNOWN_STORE",
            MockError::NotFound(_) => "NOT_FOUND",
            MockError::BadRequest(_) => "BAD_REQUEST",
            MockError::Throttled { .. } => "THROTTLED",
            MockError::IdempotencyMismatch => "IDEMPOTENCY_KEY_MISMATCH",
            MockError::Unavailable => "SERVICE_UNAVAILABLE",
            MockError::Internal => "INTERNAL",
        }
    }
}

impl IntoResponse for MockError {
    fn into_response(self) -> Response {
        let body = json!({ "errors": self.to_string(), "code": self.code() });
        let mut resp = (self.status(), Json(body)).into_response();
        if let MockError::Throttled { retry_after_s } = self {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after_s));
        }
        resp
    }
}
