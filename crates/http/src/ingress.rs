//! `POST /webhooks/{platform}/{store}`: the raw body is read (up to the limit), its signature
//! verified against the store's active secrets, then parsed. The delivery is recorded by a
//! unique insert on (store, delivery id) in the same transaction as the job it enqueues
//! (`commit`: concurrent deliveries share that transaction), so the first delivery wins and a duplicate (a retry, a second server receiving the same delivery
//! at once, a redelivery after a restart) is answered 200 and changes nothing. 202 only once
//! the delivery is committed.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;

use crate::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use ferry_sync::webhooks::{CommitOutcome, Delivery, WebhookJob, WebhookScheme};

use crate::app::AppState;
use crate::error::ServerError;
use crate::signature::{self, Rejection};

fn header<'a>(h: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()))
        .filter(|v| !v.is_empty())
}

/// The most header bytes (names and values) a delivery may carry: real senders use about 1 KB.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Counted by platform and outcome, both from fixed lists: a request can not add a series.
fn count(platform: Option<WebhookScheme>, outcome: &'static str) {
    let platform = platform.map_or("unknown", WebhookScheme::as_str);
    metrics::counter!("ferry_webhooks_total", "platform" => platform, "outcome" => outcome)
        .increment(1);
}

pub async fn receive(
    State(app): State<Arc<AppState>>,
    Path((platform, store)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let known = WebhookScheme::parse(&platform);
    match accept(&app, known, &platform, &store, &headers, body).await {
        Ok((status, outcome, body)) => {
            count(known, outcome);
            (status, Json(body)).into_response()
        }
        Err(e) => {
            count(known, e.code());
            e.into_response()
        }
    }
}

/// A secret no store has: an unknown store's delivery is checked against it, so that it costs
/// what a known store's does and is refused in the same words.
fn decoy_secrets() -> &'static [String] {
    static DECOY: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| vec![format!("whsec_{}", ferry_core::Cipher::generate_key())])
}

async fn accept(
    app: &AppState,
    platform: Option<WebhookScheme>,
    raw_platform: &str,
    store: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, &'static str, Value), ServerError> {
    // Everything checked before the store is looked up is the same for every store name, so a
    // refusal says nothing about which stores exist.
    let header_bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ServerError::HeadersTooLarge(MAX_HEADER_BYTES));
    }
    let platform = platform.ok_or_else(|| ServerError::UnknownPlatform(raw_platform.to_owned()))?;
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json_type {
        return Err(ServerError::UnsupportedMediaType);
    }
    let bytes = axum::body::to_bytes(body, app.body_limit)
        .await
        .map_err(|_| ServerError::TooLarge(app.body_limit))?;
    // An invalid name is never looked up; an unknown one is remembered briefly (WebhookStores).
    let st = app
        .stores
        .get(store)
        .await?
        .filter(|s| s.platform == platform);
    let secrets = st
        .as_ref()
        .map_or(decoy_secrets(), |s| s.secrets.as_slice());
    let now_s = app.queue.now_ms() / 1000;
    let verified = match platform {
        WebhookScheme::Shopify => signature::shopify(headers, &bytes, secrets),
        WebhookScheme::Standard => signature::standard(headers, &bytes, secrets, now_s),
        WebhookScheme::Stripe => signature::stripe(headers, &bytes, secrets, now_s),
    };
    // The decoy's refusal reads exactly like a known store's (same header, same words).
    match verified {
        Ok(()) if st.is_some() => {}
        Ok(()) => {
            return Err(ServerError::InvalidSignature(
                "the signature does not match",
            ));
        }
        Err(Rejection::BadSignature(why)) => return Err(ServerError::InvalidSignature(why)),
        Err(Rejection::StaleTimestamp) => return Err(ServerError::StaleTimestamp),
    }
    let mut doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| ServerError::InvalidJson(e.to_string()))?;
    ferry_sync::replace_nul(&mut doc);
    let (delivery, topic, event, triggered) = match platform {
        WebhookScheme::Shopify => (
            header(headers, &["x-shopify-webhook-id", "shopify-webhook-id"]),
            header(headers, &["x-shopify-topic", "shopify-topic"]).map(str::to_owned),
            header(headers, &["x-shopify-event-id", "shopify-event-id"]),
            header(headers, &["x-shopify-triggered-at", "shopify-triggered-at"]),
        ),
        WebhookScheme::Standard => (
            header(headers, &["webhook-id"]),
            doc["type"].as_str().map(str::to_owned),
            None,
            header(headers, &["webhook-timestamp"]),
        ),
        WebhookScheme::Stripe => (
            doc["id"].as_str(),
            doc["type"].as_str().map(str::to_owned),
            doc["id"].as_str(),
            None,
        ),
    };
    let delivery = delivery
        .ok_or_else(|| ServerError::BadRequest("the delivery has no id".into()))?
        .to_owned();
    if delivery.len() > 255 {
        return Err(ServerError::BadRequest(
            "the delivery id is longer than 255 characters".into(),
        ));
    }
    let topic = topic.unwrap_or_default();
    // The request id follows the delivery into its job (and from there into the job's logs).
    let job = WebhookJob {
        request_id: header(headers, &["x-request-id"]).map(str::to_owned),
        store: store.to_owned(),
        platform,
        topic: topic.clone(),
        delivery_id: delivery.clone(),
        event_id: event.map(str::to_owned),
        triggered_at: triggered.map(str::to_owned),
        body: doc,
    }
    .to_job()?;
    let outcome = app
        .committer
        .submit(Delivery {
            store: store.to_owned(),
            delivery_id: delivery.clone(),
            platform: platform.as_str(),
            topic,
            job,
        })
        .await
        .map_err(ServerError::Internal)?;
    let job_id = match outcome {
        CommitOutcome::Accepted { job_id } => job_id,
        CommitOutcome::Duplicate => {
            return Ok((
                StatusCode::OK,
                "duplicate",
                json!({"status": "duplicate", "delivery_id": delivery}),
            ));
        }
    };
    Ok((
        StatusCode::ACCEPTED,
        "accepted",
        json!({"status": "accepted", "delivery_id": delivery, "job_id": job_id}),
    ))
}
