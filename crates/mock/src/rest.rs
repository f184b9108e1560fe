//! The REST API of a store, for the generic JSON connector: items paged by an `updated_at`
//! cursor, idempotent PUT, POST deduplicated by `Idempotency-Key`. Every request is metered by a
//! request-count leaky bucket reported in `X-Shopify-Shop-Api-Call-Limit`.

use std::ops::Bound;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::MockError;
use crate::faults::Fault;
use crate::platform::{IdempotentResponse, Platform};

const MAX_LIMIT: usize = 250;

pub(crate) fn routes() -> Router<Arc<Platform>> {
    Router::new()
        .route("/stores/{store}/rest/items", get(list).post(create))
        .route("/stores/{store}/rest/items/{id}", get(get_one).put(put_one))
}

/// Authenticates, then charges one request to the store's bucket. Returns the call-limit header.
fn admit(p: &Platform, store: &str, headers: &HeaderMap) -> Result<HeaderValue, MockError> {
    p.authorize(store, crate::platform::presented_token(headers))?;
    let now = p.now_ms();
    let mut stores = p.lock();
    let s = crate::platform::store_mut(&mut stores, store)?;
    s.counters.requests += 1;
    s.counters.rest_requests += 1;
    let taken = s.rest_bucket.take(1.0, now);
    if taken.is_err() {
        s.counters.http_429 += 1;
    }
    match taken {
        Ok(()) => {
            let level = s.rest_bucket.level(now).ceil() as u64;
            let limit = format!("{level}/{}", s.rest_bucket.size as u64);
            HeaderValue::from_str(&limit).map_err(|e| MockError::BadRequest(e.to_string()))
        }
        Err(wait_ms) => Err(MockError::Throttled {
            retry_after_s: ((wait_ms + 999) / 1000).max(1) as u64,
        }),
    }
}

/// Applies the store's injected faults to a request: its latency, then the drawn fault. Ok(true)
/// means: apply the write, then answer 500.
async fn faults(p: &Platform, store: &str, write: bool) -> Result<bool, MockError> {
    let (latency, fault) = p.draw_fault(store, write)?;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Fault::None => Ok(false),
        Fault::Error5xx => Err(MockError::Unavailable),
        Fault::Throttle { retry_after_s } => {
            p.count(store, |c| c.http_429 += 1);
            Err(MockError::Throttled { retry_after_s })
        }
        Fault::Hang => std::future::pending().await,
        Fault::AppliedThen5xx => Ok(true),
    }
}

fn with_limit(limit: HeaderValue, resp: impl IntoResponse) -> Response {
    let mut resp = resp.into_response();
    resp.headers_mut()
        .insert("x-shopify-shop-api-call-limit", limit);
    resp
}

#[derive(Deserialize)]
struct ListQuery {
    /// Epoch milliseconds: items updated at or after.
    updated_since: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    limit: Option<usize>,
}

fn parse_cursor(c: &str) -> Result<(i64, String), MockError> {
    let bad = || MockError::BadRequest(format!("invalid cursor {c:?}"));
    let (t, id) = c.split_once(':').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, id.to_owned()))
}

/// A page of items in `(updated_at, id)` order. An item changed while a client pages moves to
/// the end, so it is seen again later, never skipped.
async fn list(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, MockError> {
    let limit = admit(&p, &store, &headers)?;
    faults(&p, &store, false).await?;
    let page = q.limit.unwrap_or(50);
    if page == 0 || page > MAX_LIMIT {
        return Err(MockError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let start = match (&q.cursor, q.updated_since) {
        (Some(c), _) => Bound::Excluded(parse_cursor(c)?),
        (None, Some(since)) => Bound::Included((since, String::new())),
        (None, None) => Bound::Unbounded,
    };
    let stores = p.lock();
    let s = crate::platform::store_ref(&stores, &store)?;
    let mut keys = s.by_update.range((start, Bound::Unbounded)).take(page + 1);
    let chosen: Vec<&(i64, String)> = keys.by_ref().take(page).collect();
    let has_more = keys.next().is_some();
    let items: Vec<Value> = chosen.iter().filter_map(|(_, id)| s.render(id)).collect();
    let next_cursor = chosen.last().map(|(t, id)| format!("{t}:{id}"));
    Ok(with_limit(
        limit,
        Json(json!({ "items": items, "next_cursor": next_cursor, "has_more": has_more })),
    ))
}

async fn get_one(
    State(p): State<Arc<Platform>>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, MockError> {
    let limit = admit(&p, &store, &headers)?;
    faults(&p, &store, false).await?;
    let stores = p.lock();
    let s = crate::platform::store_ref(&stores, &store)?;
    let item = s.render(&id).ok_or(MockError::NotFound(id))?;
    Ok(with_limit(limit, Json(item)))
}

fn object(body: &[u8]) -> Result<Map<String, Value>, MockError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut m)) => {
            // The platform owns these.
            m.remove("id");
            m.remove("updated_at");
            Ok(m)
        }
        Ok(_) => Err(MockError::BadRequest(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(MockError::BadRequest(format!("the body is not JSON: {e}"))),
    }
}

/// Creates or replaces an item. Idempotent: the same body again changes nothing, not even
/// `updated_at`.
async fn put_one(
    State(p): State<Arc<Platform>>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MockError> {
    let limit = admit(&p, &store, &headers)?;
    let fail_after = faults(&p, &store, true).await?;
    let fields = object(&body)?;
    let now = p.now_ms();
    let mut stores = p.lock();
    let s = crate::platform::store_mut(&mut stores, &store)?;
    let status = match s.items.get(&id) {
        Some(existing) if existing.fields == fields => StatusCode::OK,
        Some(_) => {
            s.upsert(&id, fields, now);
            StatusCode::OK
        }
        None => {
            s.upsert(&id, fields, now);
            StatusCode::CREATED
        }
    };
    let item = s.render(&id).ok_or(MockError::NotFound(id))?;
    if fail_after {
        return Err(MockError::Internal);
    }
    Ok(with_limit(limit, (status, Json(item))))
}

/// Creates an item with a new id. With an `Idempotency-Key`: the same key and body answer the
/// first response again (`Idempotent-Replayed: true`) without creating anything; the same key
/// with another body is refused with 422.
async fn create(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MockError> {
    let limit = admit(&p, &store, &headers)?;
    let fail_after = faults(&p, &store, true).await?;
    let fields = object(&body)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let now = p.now_ms();
    let mut stores = p.lock();
    let s = crate::platform::store_mut(&mut stores, &store)?;
    if let Some(k) = &key
        && let Some(prev) = s.idempotency.get(k)
    {
        let same = serde_json::from_slice::<Value>(&prev.request_body).ok()
            == serde_json::from_slice::<Value>(&body).ok();
        if !same {
            return Err(MockError::IdempotencyMismatch);
        }
        let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
        let mut resp = with_limit(limit, (status, Json(prev.body.clone())));
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(resp);
    }
    let id = format!("item-{}", s.next_id);
    s.next_id += 1;
    s.upsert(&id, fields, now);
    let item = s
        .render(&id)
        .ok_or_else(|| MockError::NotFound(id.clone()))?;
    if let Some(k) = key {
        s.idempotency.insert(
            k,
            IdempotentResponse {
                request_body: body.to_vec(),
                status: 201,
                body: item.clone(),
            },
        );
    }
    if fail_after {
        return Err(MockError::Internal);
    }
    Ok(with_limit(limit, (StatusCode::CREATED, Json(item))))
}
