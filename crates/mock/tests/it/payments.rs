use ferry_testkit::Answered;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Harness;

fn payment(method: &str) -> Value {
    json!({ "amount": 1500, "currency": "EUR", "payment_method": method })
}

impl Harness {
    async fn pay(&self, token: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = self
            .http
            .post(format!(
                "{}/v1/payment_intents",
                self.server.payments_url("shop")
            ))
            .bearer_auth(token)
            .json(body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.answer().await
    }
}

#[tokio::test]
async fn same_key_same_body_answers_the_first_response_and_charges_once() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    let first = h
        .pay(&s.access_token, Some("order-1"), &payment("pm_card_visa"))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "succeeded");
    let again = h
        .pay(&s.access_token, Some("order-1"), &payment("pm_card_visa"))
        .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let other = h
        .pay(
            &s.access_token,
            Some("order-1"),
            &json!({"amount": 999, "currency": "EUR", "payment_method": "pm_card_visa"}),
        )
        .await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let fresh = h
        .pay(&s.access_token, Some("order-2"), &payment("pm_card_visa"))
        .await;
    assert_ne!(fresh.json::<Value>().await.unwrap()["id"], first["id"]);
}

#[tokio::test]
async fn same_key_while_in_flight_is_409() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    h.server.platform().hold_writes();
    let first = tokio::spawn({
        let (http, url, token) = (
            h.http.clone(),
            h.server.payments_url("shop"),
            s.access_token.clone(),
        );
        async move {
            http.post(format!("{url}/v1/payment_intents"))
                .bearer_auth(token)
                .header("Idempotency-Key", "k")
                .json(&payment("pm_card_visa"))
                .answer()
                .await
        }
    });
    ferry_testkit::eventually("first payment in flight", || async {
        h.server.platform().payments_in_flight() == 1
    })
    .await;
    let second = h
        .pay(&s.access_token, Some("k"), &payment("pm_card_visa"))
        .await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(
        second.json::<Value>().await.unwrap()["error"]["code"],
        "idempotency_key_in_use"
    );
    h.server.platform().release_writes();
    assert_eq!(first.await.unwrap().status(), StatusCode::OK);
    let after = h
        .pay(&s.access_token, Some("k"), &payment("pm_card_visa"))
        .await;
    assert_eq!(after.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn declined_card_is_402_and_replayed_as_402() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    let declined = payment(ferry_mock::DECLINED_CARD);
    let pay = || h.pay(&s.access_token, Some("d"), &declined);
    let r = pay().await;
    assert_eq!(r.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "card_declined"
    );
    assert_eq!(pay().await.status(), StatusCode::PAYMENT_REQUIRED);
}

/// A card payment authorized and left to capture: the payment intent.
async fn authorized(h: &Harness, s: &ferry_mock::StoreInfo) -> Value {
    let mut body = payment("pm_card_visa");
    body["capture"] = json!(false);
    let r = h.pay(&s.access_token, None, &body).await;
    r.json().await.unwrap()
}

#[tokio::test]
async fn authorize_then_capture_once() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    let pi = authorized(&h, &s).await;
    assert_eq!(pi["status"], "requires_capture");
    let url = format!(
        "{}/v1/payment_intents/{}/capture",
        h.server.payments_url("shop"),
        pi["id"].as_str().unwrap()
    );
    let capture = || h.http.post(&url).bearer_auth(&s.access_token).answer();
    let cap = capture().await;
    assert_eq!(cap.status(), StatusCode::OK);
    assert_eq!(cap.json::<Value>().await.unwrap()["amount_received"], 1500);
    let twice = capture().await;
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST, "already captured");
    let bad = h.pay("sk_wrong", None, &payment("pm_card_visa")).await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let invalid = h
        .pay(
            &s.access_token,
            None,
            &json!({"amount": -5, "currency": "EUR", "payment_method": "pm_card_visa"}),
        )
        .await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cancel_voids_an_authorization_and_refunds_a_capture_once() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    let cancel = |id: String, key: &'static str| {
        let url = format!(
            "{}/v1/payment_intents/{id}/cancel",
            h.server.payments_url("shop")
        );
        let req = h
            .http
            .post(url)
            .bearer_auth(&s.access_token)
            .header("Idempotency-Key", key);
        async move { req.answer().await }
    };
    let pi = authorized(&h, &s).await;
    let r = cancel(pi["id"].as_str().unwrap().to_owned(), "void-1").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "canceled");

    let paid: Value = h
        .pay(&s.access_token, Some("charge-2"), &payment("pm_card_visa"))
        .await
        .json()
        .await
        .unwrap();
    let id = paid["id"].as_str().unwrap().to_owned();
    let r = cancel(id.clone(), "refund-2").await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["status"].as_str(), v["amount_refunded"].as_i64()),
        (Some("refunded"), Some(1500))
    );
    let again = cancel(id, "refund-2").await;
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let missing = cancel("pi_nope".into(), "x").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let intents = h.server.platform().payment_intents();
    assert_eq!(intents.len(), 2, "cancelling charges nothing");
}
