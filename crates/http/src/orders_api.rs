//! The orders API (mounted by the web tier behind its bearer tokens): `POST /api/orders` with
//! an idempotency key, `GET /api/orders`, `GET /api/orders/{id}`; each route limited per API
//! client and minute, on the database (so every server counts together).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;

use crate::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::access::Role;
use ferry_sync::orders::{OrderReply, Orders, client_of, error_body, internal_body, parse_key};

/// The most orders a page holds.
pub const MAX_PAGE_SIZE: i64 = 100;

/// The highest page number (and page size) a listing accepts before `page_size` is capped.
const MAX_PAGE: i64 = 100_000;

type Table = (Router<Orders>, &'static [(&'static str, &'static str)]);

fn table() -> Table {
    crate::api_routes! {
        POST "/api/orders" => create,
        GET "/api/orders" => list,
        GET "/api/orders/{id}" => detail,
    }
}

pub fn routes<S: Clone + Send + Sync + 'static>(orders: Orders) -> Router<S> {
    table().0.with_state(orders)
}

/// The orders routes' (method, path) pairs.
pub fn operations() -> &'static [(&'static str, &'static str)] {
    table().1
}

fn json(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

fn client(headers: &HeaderMap) -> String {
    // The token was checked by the admin layer before the handler runs.
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    client_of(token)
}

/// `Some(429 answer)` when the client is over its limit for the route.
async fn limited(o: &Orders, client: &str, route: &str, limit: i64) -> Option<Response> {
    match o.over_limit(client, route, limit).await {
        Ok(None) => None,
        Ok(Some(wait_s)) => {
            let mut r = json(
                429,
                error_body(
                    "rate_limited",
                    &format!(
                        "at most {limit} requests a minute to this route; retry in {wait_s} s"
                    ),
                    None,
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&wait_s.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            Some(r)
        }
        Err(e) => Some(json(500, internal_body(&e))),
    }
}

async fn create(State(o): State<Orders>, who: Client, headers: HeaderMap, body: Body) -> Response {
    let client = who.id.clone();
    if let Some(r) = limited(&o, &client, "create", o.options().limits.create).await {
        return r;
    }
    if headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| !c.starts_with("application/json"))
    {
        return json(
            415,
            error_body("unsupported_media_type", "send application/json", None),
        );
    }
    let bytes = match axum::body::to_bytes(body, o.options().body_limit).await {
        Ok(b) => b,
        Err(_) => {
            return json(
                413,
                error_body(
                    "payload_too_large",
                    &format!("the body is over {} bytes", o.options().body_limit),
                    None,
                ),
            );
        }
    };
    let key = headers
        .get(o.options().key_header.as_str())
        .and_then(|v| v.to_str().ok())
        .and_then(parse_key);
    let OrderReply {
        status,
        body,
        replay,
    } = o
        .create(&client, who.set_prices, key.as_deref(), &bytes)
        .await;
    let mut r = json(status, body);
    if replay {
        r.headers_mut()
            .insert("idempotent-replay", HeaderValue::from_static("true"));
    }
    r
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
    page_size: Option<String>,
}

/// The API client a request comes from, and whose orders it may see: its own for an
/// `orders` token, every client's for the others (`read`, `admin`).
struct Client {
    id: String,
    sees_all: bool,
    /// May give a line's unit price.
    set_prices: bool,
}

impl Client {
    fn scope(&self) -> Option<&str> {
        (!self.sees_all).then_some(self.id.as_str())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let caller = crate::admin::caller(&parts.extensions);
        Ok(Client {
            id: client(&parts.headers),
            sees_all: caller.is_some_and(|c| c.role != Role::Orders),
            set_prices: caller.is_some_and(|c| c.set_prices),
        })
    }
}

async fn list(State(o): State<Orders>, who: Client, Query(q): Query<PageQuery>) -> Response {
    let client = who.id.clone();
    if let Some(r) = limited(&o, &client, "list", o.options().limits.list).await {
        return r;
    }
    // Which parameter is bad, if one is.
    let number = |v: &Option<String>, default: i64, max: i64| -> Option<i64> {
        match v {
            None => Some(default),
            Some(s) => s.parse::<i64>().ok().filter(|n| (1..=max).contains(n)),
        }
    };
    let bad = |field: &str, max: i64| {
        json(
            400,
            error_body(
                "invalid_request",
                &format!("must be a whole number from 1 to {max}"),
                Some(field),
            ),
        )
    };
    let Some(page) = number(&q.page, 1, MAX_PAGE) else {
        return bad("page", MAX_PAGE);
    };
    let Some(size) = number(&q.page_size, 20, MAX_PAGE_SIZE) else {
        return bad("page_size", MAX_PAGE_SIZE);
    };
    match o.list(who.scope(), page, size).await {
        Ok(v) => json(200, v),
        Err(e) => json(500, internal_body(&e)),
    }
}

async fn detail(State(o): State<Orders>, who: Client, Path(id): Path<String>) -> Response {
    let client = who.id.clone();
    if let Some(r) = limited(&o, &client, "detail", o.options().limits.detail).await {
        return r;
    }
    // Another client's order is as unknown as one that does not exist.
    if let Some(own) = who.scope() {
        match o.placed_by(&id, own).await {
            Ok(true) => {}
            Ok(false) => {
                return json(
                    404,
                    error_body("not_found", &format!("no order {id}"), None),
                );
            }
            Err(e) => return json(500, internal_body(&e)),
        }
    }
    match o.get(&id).await {
        Ok(Some(v)) => json(200, v),
        Ok(None) => json(
            404,
            error_body("not_found", &format!("no order {id}"), None),
        ),
        Err(e) => json(500, internal_body(&e)),
    }
}
