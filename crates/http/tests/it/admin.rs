use ferry_sync::webhooks::WebhookScheme;
use ferry_testkit::Answered;
use ferry_testkit::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{Harness, b64, hmac_sha256};

ferry_testkit::conformance! {
    every_admin_route_needs_the_token, stores_are_managed_without_ever_showing_secrets,
    jobs_queues_and_deliveries_are_listed_paged_and_replayed,
    nul_in_any_text_is_refused_before_the_database,
}

/// PostgreSQL's text can not hold a NUL: a query, a path or a body with one is a 400 on both
/// engines, never a 500, and stores nothing.
async fn nul_in_any_text_is_refused_before_the_database(db: TestDb) {
    let h = Harness::start(db).await;
    for path in [
        "/api/deliveries?store=a%00b",
        "/api/jobs?kind=%00",
        "/api/audit?store=x%00",
        "/api/stores/a%00b",
        "/api/network/stores/a%00b/links",
    ] {
        let (status, body) = h.call(Method::GET, path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{path}: {body}"
        );
    }
    let r = h
        .post_json(
            "/api/stores",
            &json!({"name": "shop", "platform": "shopify", "secret": "whsec_ab\u{0}cdefgh"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = h
        .admin(Method::POST, "/api/stores")
        .header("content-type", "application/json")
        .body(r#"{"name": "shop", "platform": "shopify", "secret": "whsec_ab\u0000cdefgh"}"#)
        .answer()
        .await;
    assert_eq!(r.status(), 400, "an escaped NUL as well");
    let (status, _) = h.call(Method::GET, "/api/stores/shop").await;
    assert_eq!(status, 404, "nothing was stored");
}

/// Every admin route (from the router's own list, so a new one is covered at once), with
/// placeholders in its path.
fn routes() -> Vec<(&'static str, String)> {
    let all = ferry_http::admin::operations();
    assert!(all.len() >= 15, "{all:?}");
    all.iter()
        .map(|(m, p)| {
            let path = p
                .replace("{name}", "x")
                .replace("{id}", "01a20253-c9e3-7625-9d9b-7cde20c7fdc1")
                .replace("{queue}", "q")
                .replace("{store}", "s")
                .replace("{delivery}", "d");
            (*m, path)
        })
        .collect()
}

async fn every_admin_route_needs_the_token(db: TestDb) {
    let h = Harness::start(db).await;
    // The application's own setup (the sync queue's per-store cap) is there before any call.
    let before = format!("{:?}", h.queue.stats_all().await.unwrap());
    for (m, path) in routes() {
        let method: Method = m.parse().unwrap();
        for token in [None, Some("wrong-token-0123456789"), Some("")] {
            let mut req = h.http.request(method.clone(), h.url(&path)).body("{}");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.answer().await;
            assert_eq!(r.status(), 401, "{m} {path} with {token:?}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(
        format!("{:?}", h.queue.stats_all().await.unwrap()),
        before,
        "nothing done without a token"
    );
    for (m, path) in routes() {
        let r = h.admin(m.parse().unwrap(), &path).body("{}").answer().await;
        assert_ne!(r.status(), 401, "{m} {path} with the token");
    }
    assert!(
        h.queue
            .stats_all()
            .await
            .unwrap()
            .iter()
            .any(|s| s.queue == "q" && !s.paused),
        "with the token, the pause and then the resume reached queue q"
    );
}

async fn stores_are_managed_without_ever_showing_secrets(db: TestDb) {
    let h = Harness::start(db).await;
    let add = || {
        h.admin(Method::POST, "/api/stores")
            .json(&json!({"name": "shop-1", "platform": "shopify", "secret": "shpss_api_secret"}))
            .answer()
    };
    let r = add().await;
    assert_eq!(r.status(), 201);
    let body = r.text().await.unwrap();
    assert!(!body.contains("shpss_api_secret"), "{body}");
    assert_eq!(add().await.status(), 409, "the name is taken");
    for bad in [
        json!({"name": "x", "platform": "ebay", "secret": "12345678"}),
        json!({"name": "bad name", "platform": "shopify", "secret": "12345678"}),
        json!({"name": "y"}),
    ] {
        let r = h.post_json("/api/stores", &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Over the server's body limit (1 MiB here, not axum's 2 MB): 413 in the JSON envelope.
    let big = json!({"name": "big", "platform": "shopify", "secret": "s".repeat(1_100_000)});
    let r = h.post_json("/api/stores", &big).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    assert!(
        h.stores.get("big").await.unwrap().is_none(),
        "nothing stored"
    );
    let r = h
        .post_json(
            "/api/stores/shop-1/rotate",
            &json!({"secret": "shpss_api_secret_2"}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["active_secrets"], 2);
    for i in 2..5 {
        h.stores
            .put(
                &format!("shop-{i}"),
                WebhookScheme::Stripe,
                &["whsec_12345678".into()],
            )
            .await
            .unwrap();
    }
    let (_, page) = h.call(Method::GET, "/api/stores?limit=3").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let next = page["next"].as_str().unwrap();
    let (_, rest) = h
        .call(Method::GET, &format!("/api/stores?limit=3&after={next}"))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
}

async fn jobs_queues_and_deliveries_are_listed_paged_and_replayed(db: TestDb) {
    let h = Harness::start(db).await;
    h.stores
        .put("shop", WebhookScheme::Shopify, &["shpss_secret_1".into()])
        .await
        .unwrap();
    for i in 0..3 {
        let body = format!(r#"{{"id":{i}}}"#);
        let r = h
            .http
            .post(h.url("/webhooks/shopify/shop"))
            .header("content-type", "application/json")
            .header(
                "x-shopify-hmac-sha256",
                b64(&hmac_sha256(b"shpss_secret_1", &[body.as_bytes()])),
            )
            .header("x-shopify-webhook-id", format!("d{i}"))
            .header("x-shopify-topic", "products/update")
            .body(body)
            .answer()
            .await;
        assert_eq!(r.status(), 202);
    }
    let (_, page) = h
        .call(Method::GET, "/api/deliveries?store=shop&limit=2")
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["outcome"], "queued");
    let next = page["next"].as_str().unwrap();
    let rest: Value = h
        .admin(
            Method::GET,
            &format!("/api/deliveries?store=shop&limit=2&after={next}"),
        )
        .answer()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);

    let (_, jobs) = h
        .call(Method::GET, "/api/jobs?queue=webhooks&state=queued")
        .await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 3);
    let first = jobs["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, r) = h
        .call(Method::POST, &format!("/api/jobs/{first}/cancel"))
        .await;
    assert_eq!(r["outcome"], "cancelled");
    let r = h
        .admin(Method::POST, "/api/deliveries/shop/d0/replay")
        .answer()
        .await;
    assert_eq!(
        r.status(),
        200,
        "a delivery whose job was cancelled runs again"
    );
    assert_eq!(h.webhook_jobs().await, 3);
    assert_eq!(h.call(Method::GET, "/api/jobs?state=nonsense").await.0, 400);
    assert_eq!(h.call(Method::GET, "/api/jobs/not-a-uuid").await.0, 400);
    assert_eq!(
        h.call(Method::POST, "/api/deliveries/shop/nope/replay")
            .await
            .0,
        404
    );

    let (_, r) = h.call(Method::POST, "/api/queues/webhooks/pause").await;
    assert_eq!(r["paused"], true);
    let (_, queues) = h.call(Method::GET, "/api/queues").await;
    let wh = queues["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "webhooks")
        .unwrap()
        .clone();
    assert_eq!(
        (wh["paused"].clone(), wh["ready"].clone()),
        (json!(true), json!(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_are_shown() {
    let Some(db) = TestDb::new(ferry_testkit::Backend::Sqlite).await else {
        return;
    };
    let h = Harness::start(db).await;
    let b = ferry_connect::Breakers::new(
        ferry_connect::db::open(&h.queue).await.unwrap(),
        h.queue.clock(),
        ferry_connect::BreakerPolicy {
            threshold: 1,
            ..Default::default()
        },
    );
    b.failure("shopify:store-7").await.unwrap();
    let (status, v) = h.call(Method::GET, "/api/breakers").await;
    assert_eq!(status, 200);
    assert_eq!(v["items"][0]["key"], "shopify:store-7");
    assert_eq!(v["items"][0]["state"], "open");
}
