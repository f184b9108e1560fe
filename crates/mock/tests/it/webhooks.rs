use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ferry_core::FakeClock;
use ferry_mock::{MockConfig, MockServer, shopify_hmac};
use serde_json::json;

/// Every request a receiver got: headers and raw body.
pub type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver on loopback that answers 500 to the first `fail` requests, then 200.
pub struct Receiver {
    pub url: String,
    pub seen: Seen,
}

pub async fn receiver(fail: usize) -> Receiver {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                move |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                    let mut s = seen.lock().unwrap();
                    s.push((headers, body));
                    if s.len() <= fail {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, seen }
}

#[tokio::test]
async fn deliveries_are_signed_and_retried_with_the_same_id_and_payload() {
    let cfg = MockConfig {
        clock: Arc::new(FakeClock::default()),
        webhook_backoff: Duration::from_millis(5),
        ..MockConfig::default()
    };
    let server = MockServer::start(cfg).await.unwrap();
    let p = server.platform();
    let store = p.create_store(Some("shop")).unwrap();
    let rx = receiver(2).await;
    p.subscribe("shop", "products/update", &rx.url).unwrap();
    p.subscribe("shop", "orders/create", &rx.url).unwrap();
    assert!(p.subscribe("shop", "nonsense/topic", &rx.url).is_err());

    let sent = p
        .emit("shop", "products/update", &json!({"id": 7, "title": "Mug"}))
        .unwrap();
    assert_eq!(sent, 1, "only the products/update subscription");
    ferry_testkit::eventually("delivered after two failures", || async {
        p.webhook_counters("shop").delivered == 1
    })
    .await;
    let c = p.webhook_counters("shop");
    assert_eq!((c.attempts, c.retries, c.abandoned), (3, 2, 0));

    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (headers, body) in &seen {
        assert_eq!(body, &seen[0].1, "retries carry the original payload");
        assert_eq!(
            headers["x-shopify-webhook-id"],
            seen[0].0["x-shopify-webhook-id"]
        );
        assert_eq!(headers["x-shopify-topic"], "products/update");
        assert_eq!(headers["x-shopify-shop-domain"], "shop.myshopify.com");
        assert_eq!(headers["x-shopify-api-version"], "2026-04");
        assert!(headers.contains_key("x-shopify-event-id"));
        assert!(
            headers["x-shopify-triggered-at"]
                .to_str()
                .unwrap()
                .starts_with("2026-01-01T00:00:00")
        );
        let expected = shopify_hmac(&store.webhook_secret, body);
        assert_eq!(headers["x-shopify-hmac-sha256"], expected.as_str());
    }
    let payload: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(payload, json!({"id": 7, "title": "Mug"}));
}

#[tokio::test]
async fn a_receiver_that_never_answers_2xx_is_abandoned_after_8_retries() {
    let cfg = MockConfig {
        webhook_backoff: Duration::from_millis(1),
        ..MockConfig::default()
    };
    let server = MockServer::start(cfg).await.unwrap();
    let p = server.platform();
    p.create_store(Some("shop")).unwrap();
    let rx = receiver(usize::MAX).await;
    p.subscribe("shop", "orders/create", &rx.url).unwrap();
    p.emit("shop", "orders/create", &json!({"id": 1})).unwrap();
    ferry_testkit::eventually("abandoned", || async {
        p.webhook_counters("shop").abandoned == 1
    })
    .await;
    let c = p.webhook_counters("shop");
    assert_eq!((c.attempts, c.retries, c.delivered), (9, 8, 0));
    assert_eq!(rx.seen.lock().unwrap().len(), 9);
}

async fn platform_with_receiver() -> (MockServer, Receiver) {
    let cfg = MockConfig {
        webhook_backoff: Duration::from_millis(5),
        ..MockConfig::default()
    };
    let server = MockServer::start(cfg).await.unwrap();
    server.platform().create_store(Some("shop")).unwrap();
    let rx = receiver(0).await;
    server
        .platform()
        .subscribe("shop", "products/update", &rx.url)
        .unwrap();
    (server, rx)
}

#[tokio::test]
async fn injected_webhook_faults_duplicate_drop_and_reorder() {
    let (server, rx) = platform_with_receiver().await;
    let p = server.platform();
    let set = |f: ferry_mock::Faults| p.set_faults("shop", f).unwrap();

    set(ferry_mock::Faults {
        webhook_drop: 1.0,
        ..Default::default()
    });
    assert_eq!(
        p.emit("shop", "products/update", &json!({"n": 0})).unwrap(),
        0,
        "dropped"
    );

    set(ferry_mock::Faults {
        webhook_duplicate: 1.0,
        ..Default::default()
    });
    assert_eq!(
        p.emit("shop", "products/update", &json!({"n": 1})).unwrap(),
        2
    );
    ferry_testkit::eventually("both copies", || async {
        rx.seen.lock().unwrap().len() == 2
    })
    .await;
    {
        let seen = rx.seen.lock().unwrap();
        assert_eq!(
            seen[0].0["x-shopify-webhook-id"],
            seen[1].0["x-shopify-webhook-id"]
        );
    }

    // Held back: the next event overtakes it.
    set(ferry_mock::Faults {
        webhook_hold: 1.0,
        webhook_hold_ms: 300,
        ..Default::default()
    });
    p.emit("shop", "products/update", &json!({"n": 2})).unwrap();
    set(ferry_mock::Faults::default());
    p.emit("shop", "products/update", &json!({"n": 3})).unwrap();
    ferry_testkit::eventually("all four", || async { rx.seen.lock().unwrap().len() == 4 }).await;
    let order: Vec<i64> = rx.seen.lock().unwrap()[2..]
        .iter()
        .map(|(_, b)| {
            serde_json::from_slice::<serde_json::Value>(b).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, [3, 2], "out of order");
    let c = p.webhook_counters("shop");
    assert_eq!((c.dropped, c.duplicated, c.held), (1, 1, 1));
}

#[tokio::test]
async fn duplicated_deliveries_go_up_to_three_times_and_count_once_as_acknowledged() {
    let (server, rx) = platform_with_receiver().await;
    let p = server.platform();
    let refused = ferry_mock::Faults {
        webhook_copies_max: 4,
        ..Default::default()
    };
    assert!(p.set_faults("shop", refused).is_err(), "at most 3 copies");
    p.set_faults(
        "shop",
        ferry_mock::Faults {
            webhook_duplicate: 1.0,
            webhook_copies_max: 3,
            webhook_hold_ms: 50,
            ..Default::default()
        },
    )
    .unwrap();
    let mut sent = 0;
    for n in 0..40 {
        sent += p
            .emit("shop", "products/update", &json!({ "n": n }))
            .unwrap();
    }
    assert!(
        sent > 80 && sent < 120,
        "2 or 3 copies each, both drawn: {sent}"
    );
    ferry_testkit::eventually("every copy", || async {
        rx.seen.lock().unwrap().len() == sent
    })
    .await;
    let ids: std::collections::HashSet<String> = rx
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["x-shopify-webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 40);
    let c = p.webhook_counters("shop");
    assert_eq!(
        (c.delivered, c.acknowledged, c.duplicated, c.in_flight),
        (sent as u64, 40, 40, 0)
    );
}
