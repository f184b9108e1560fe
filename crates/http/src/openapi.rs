//! The admin API's OpenAPI 3.1 document, served at `/api/openapi.json`. Written by hand next
//! to the code (`openapi.json` in this crate); a test holds it to the routers' route lists and
//! calls every operation it names, so it cannot drift from what the server does.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
