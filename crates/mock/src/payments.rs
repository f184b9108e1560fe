//! A payments API in the style of Stripe, per store: create a payment (authorize, and capture
//! unless `capture: false`), capture it later. Every POST may carry an `Idempotency-Key`: the
//! same key and body answer the stored response again; another body is 422; the same key while
//! the first request is still being processed is 409. The card `pm_card_chargeDeclined` is
//! declined with 402. A payment can be cancelled: an authorization is voided, a captured one
//! refunded in full.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::MockError;
use crate::platform::Platform;

pub const DECLINED_CARD: &str = "pm_card_chargeDeclined";

pub(crate) fn routes() -> Router<Arc<Platform>> {
    Router::new()
        .route("/stores/{store}/payments/v1/payment_intents", post(create))
        .route(
            "/stores/{store}/payments/v1/payment_intents/{id}/capture",
            post(capture),
        )
        .route(
            "/stores/{store}/payments/v1/payment_intents/{id}/cancel",
            post(cancel),
        )
}

/// A key's state: being processed, or done with the response to repeat.
#[derive(Debug, Clone)]
pub(crate) enum KeyState {
    InFlight,
    Done {
        request: Value,
        status: u16,
        body: Value,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Payments {
    pub keys: HashMap<String, KeyState>,
    pub intents: HashMap<String, Value>,
    pub next_id: u64,
}

#[derive(Deserialize)]
struct NewPayment {
    amount: i64,
    currency: String,
    payment_method: String,
    #[serde(default = "yes")]
    capture: bool,
}

fn yes() -> bool {
    true
}

/// Outcome of the idempotency check for a request.
enum Gate {
    /// Process it; `Some(key)` to record the response under.
    Run(Option<String>),
    /// Answer this at once.
    Answer(Response),
}

fn key_scope(store: &str, route: &str, key: &str) -> String {
    format!("{store}\u{1f}{route}\u{1f}{key}")
}

fn gate(p: &Platform, store: &str, route: &str, headers: &HeaderMap, request: &Value) -> Gate {
    let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) else {
        return Gate::Run(None);
    };
    let scoped = key_scope(store, route, key);
    let mut pay = p.payments();
    match pay.keys.get(&scoped) {
        Some(KeyState::InFlight) => Gate::Answer(stripe_error(
            StatusCode::CONFLICT,
            "idempotency_error",
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still being processed.",
        )),
        Some(KeyState::Done {
            request: first,
            status,
            body,
        }) if first == request => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            let mut resp = (status, Json(body.clone())).into_response();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Gate::Answer(resp)
        }
        Some(KeyState::Done { .. }) => Gate::Answer(stripe_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_error",
            "idempotency_key_reused",
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
        )),
        None => {
            pay.keys.insert(scoped.clone(), KeyState::InFlight);
            Gate::Run(Some(scoped))
        }
    }
}

fn finish(
    p: &Platform,
    key: Option<String>,
    request: Value,
    status: StatusCode,
    body: Value,
) -> Response {
    if let Some(k) = key {
        p.payments().keys.insert(
            k,
            KeyState::Done {
                request,
                status: status.as_u16(),
                body: body.clone(),
            },
        );
    }
    (status, Json(body)).into_response()
}

fn no_such_intent() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({ "error": { "type": "invalid_request_error", "code": "resource_missing", "message": "No such payment_intent." } }),
    )
}

fn stripe_error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": kind, "code": code, "message": message } })),
    )
        .into_response()
}

fn parse(body: &[u8]) -> Result<Value, MockError> {
    serde_json::from_slice(body)
        .map_err(|e| MockError::BadRequest(format!("the body is not JSON: {e}")))
}

async fn create(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MockError> {
    p.authorize(&store, crate::platform::presented_token(&headers))?;
    let request = parse(&body)?;
    let new: NewPayment = serde_json::from_value(request.clone())
        .map_err(|e| MockError::BadRequest(format!("invalid payment: {e}")))?;
    if new.amount <= 0 || new.currency.len() != 3 {
        return Err(MockError::BadRequest(
            "amount must be positive and currency 3 letters".into(),
        ));
    }
    let key = match gate(&p, &store, "create", &headers, &request) {
        Gate::Answer(r) => return Ok(r),
        Gate::Run(k) => k,
    };
    // As on Stripe, a payment that began is finished even if the caller goes away (a caller
    // killed mid-request finds the result under its key later).
    let work = tokio::spawn(async move {
        p.hold_point().await;
        let (status, out) = charge(&p, &store, &new);
        finish(&p, key, request, status, out)
    });
    work.await
        .map_err(|e| MockError::BadRequest(format!("payment task failed: {e}")))
}

fn charge(p: &Platform, store: &str, new: &NewPayment) -> (StatusCode, Value) {
    if new.payment_method == DECLINED_CARD {
        (
            StatusCode::PAYMENT_REQUIRED,
            json!({ "error": { "type": "card_error", "code": "card_declined", "message": "Your card was declined." } }),
        )
    } else {
        let mut pay = p.payments();
        pay.next_id += 1;
        let id = format!("pi_{store}_{}", pay.next_id);
        let intent = json!({
            "id": id,
            "amount": new.amount,
            "currency": new.currency.to_lowercase(),
            "status": if new.capture { "succeeded" } else { "requires_capture" },
            "amount_received": if new.capture { new.amount } else { 0 },
        });
        pay.intents.insert(id, intent.clone());
        (StatusCode::OK, intent)
    }
}

/// The start of an action on a payment: the token, the body (may be empty), the idempotency
/// gate. `Err(answer)` when the gate answers at once (a replay, a key in use or reused).
#[allow(clippy::result_large_err)] // the inner Err is the answer itself, returned at once
fn open(
    p: &Platform,
    store: &str,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Result<(Value, Option<String>), Response>, MockError> {
    p.authorize(store, crate::platform::presented_token(headers))?;
    let request = if body.is_empty() {
        json!({})
    } else {
        parse(body)?
    };
    Ok(match gate(p, store, route, headers, &request) {
        Gate::Answer(r) => Err(r),
        Gate::Run(k) => Ok((request, k)),
    })
}

async fn capture(
    State(p): State<Arc<Platform>>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MockError> {
    let (request, key) = match open(&p, &store, &format!("capture:{id}"), &headers, &body)? {
        Ok(opened) => opened,
        Err(answer) => return Ok(answer),
    };
    p.hold_point().await;
    let (status, out) = {
        let mut pay = p.payments();
        match pay.intents.get_mut(&id) {
            None => no_such_intent(),
            Some(intent) if intent["status"] == "requires_capture" => {
                intent["status"] = json!("succeeded");
                intent["amount_received"] = intent["amount"].clone();
                (StatusCode::OK, intent.clone())
            }
            Some(intent) => (
                StatusCode::BAD_REQUEST,
                json!({ "error": { "type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                    "message": format!("This PaymentIntent is {}.", intent["status"]) } }),
            ),
        }
    };
    Ok(finish(&p, key, request, status, out))
}

async fn cancel(
    State(p): State<Arc<Platform>>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MockError> {
    let (request, key) = match open(&p, &store, &format!("cancel:{id}"), &headers, &body)? {
        Ok(opened) => opened,
        Err(answer) => return Ok(answer),
    };
    let (status, out) = {
        let mut pay = p.payments();
        match pay.intents.get_mut(&id) {
            None => no_such_intent(),
            Some(intent) if intent["status"] == "requires_capture" => {
                intent["status"] = json!("canceled");
                (StatusCode::OK, intent.clone())
            }
            Some(intent) if intent["status"] == "succeeded" => {
                intent["status"] = json!("refunded");
                intent["amount_refunded"] = intent["amount"].clone();
                (StatusCode::OK, intent.clone())
            }
            // Cancelling twice is the same cancellation.
            Some(intent) => (StatusCode::OK, intent.clone()),
        }
    };
    Ok(finish(&p, key, request, status, out))
}
