use ferry_testkit::Answered;
use std::time::Duration;

use ferry_mock::{Faults, MockConfig, MockServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::Harness;

impl Harness {
    fn faults(&self, f: Faults) {
        self.server.platform().set_faults("shop", f).unwrap();
    }
}

#[tokio::test]
async fn injected_5xx_and_429_apply_nothing() {
    let h = Harness::start().await;
    let s = h.store("shop", 1);
    h.faults(Faults::with(|f| f.error_5xx = 1.0));
    let r = h
        .rest(Method::PUT, &s, "/items/new")
        .json(&json!({"t": 1}))
        .answer()
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    h.faults(Faults {
        throttle_429: 1.0,
        retry_after_s: 7,
        ..Faults::default()
    });
    let r = h.rest(Method::GET, &s, "/items").answer().await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(h.item_count("shop"), 1, "nothing applied");
    assert_eq!(h.server.platform().faults_injected("shop").unwrap(), 2);
}

#[tokio::test]
async fn applied_then_5xx_duplicates_naive_retries_but_not_keyed_ones() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    h.faults(Faults::with(|f| f.applied_then_5xx = 1.0));
    let post = |key: Option<&'static str>| {
        let mut r = h
            .rest(Method::POST, &s, "/items")
            .json(&json!({"title": "Mug"}));
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send()
    };
    assert_eq!(
        post(None).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        post(None).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(h.item_count("shop"), 2, "a naive retry duplicates");
    assert_eq!(
        post(Some("k")).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    h.faults(Faults::default());
    let retry = post(Some("k")).await.unwrap();
    assert_eq!(
        retry.status(),
        StatusCode::CREATED,
        "the retry gets the stored answer"
    );
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(h.item_count("shop"), 3, "the keyed create happened once");
}

#[tokio::test]
async fn hung_requests_end_at_the_client_timeout_and_latency_is_added() {
    let h = Harness::start().await;
    let s = h.store("shop", 1);
    h.faults(Faults::with(|f| f.hang = 1.0));
    let err = h
        .rest(Method::GET, &s, "/items/item-1")
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    h.faults(Faults::with(|f| f.latency_ms = 50));
    let t = std::time::Instant::now();
    let r = h.rest(Method::GET, &s, "/items/item-1").answer().await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn the_same_seed_gives_the_same_faults() {
    async fn statuses(seed: u64, store: &str) -> Vec<u16> {
        let server = MockServer::start(MockConfig {
            seed,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let info = server.platform().create_store(Some(store)).unwrap();
        server.platform().seed_items(store, 1).unwrap();
        server
            .platform()
            .set_rest_bucket(store, 1000.0, 1.0)
            .unwrap();
        let f = Faults {
            error_5xx: 0.3,
            throttle_429: 0.2,
            ..Faults::default()
        };
        server.platform().set_faults(store, f).unwrap();
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        for _ in 0..40 {
            let r = http
                .get(format!("{}/items/item-1", server.rest_url(store)))
                .header("X-Shopify-Access-Token", &info.access_token)
                .answer()
                .await;
            out.push(r.status().as_u16());
        }
        out
    }
    let a = statuses(7, "shop").await;
    assert_eq!(a, statuses(7, "shop").await);
    assert_ne!(a, statuses(8, "shop").await);
    assert!(
        a.contains(&200) && a.contains(&503) && a.contains(&429),
        "{a:?}"
    );
}

#[tokio::test]
async fn faults_are_validated_and_set_by_the_control_api() {
    let h = Harness::start().await;
    h.store("shop", 0);
    let url = format!("{}/control/stores/shop/faults", h.server.url());
    for (faults, status) in [
        (json!({"error_5xx": 1.5}), StatusCode::BAD_REQUEST),
        (json!({"nonsense": 1}), StatusCode::BAD_REQUEST),
        (
            json!({"throttle_429": 1.0, "retry_after_s": 3}),
            StatusCode::OK,
        ),
    ] {
        let r = h.http.post(&url).json(&faults).answer().await;
        assert_eq!(r.status(), status, "{faults}");
    }
}

#[tokio::test]
async fn graphql_writes_applied_then_5xx_are_replayed_by_their_idempotency_key() {
    let h = Harness::start().await;
    let s = h.shop("shop", 1, 1);
    let p = h.server.platform();
    let (item, loc) = p.first_item("shop").unwrap();
    let start = p.available("shop", item, None).unwrap();
    h.faults(Faults::with(|f| f.applied_then_5xx = 1.0));
    let body = json!({
        "query": "mutation($i: InventoryAdjustQuantitiesInput!) { inventoryAdjustQuantities(input: $i) @idempotent(key: \"sale-1\") { userErrors { code } } }",
        "variables": {"i": {"name": "available", "reason": "correction", "changes": [{
            "delta": -1, "changeFromQuantity": null,
            "inventoryItemId": format!("gid://shopify/InventoryItem/{item}"),
            "locationId": format!("gid://shopify/Location/{loc}")}]}},
    });
    let send = || {
        h.http
            .post(h.server.graphql_url("shop"))
            .header("X-Shopify-Access-Token", &s.access_token)
            .json(&body)
            .send()
    };
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        p.available("shop", item, None).unwrap(),
        start - 1,
        "applied"
    );
    let r = send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        p.available("shop", item, None).unwrap(),
        start - 1,
        "the retry with the same key applied nothing"
    );

    h.faults(Faults {
        error_5xx: 0.5,
        throttle_429: 0.5,
        retry_after_s: 3,
        ..Faults::default()
    });
    let mut statuses = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers()["retry-after"], "3");
        }
        statuses.insert(r.status().as_u16());
    }
    assert_eq!(
        statuses,
        [429, 503].into(),
        "every request gets one of the two"
    );
    assert_eq!(p.available("shop", item, None).unwrap(), start - 1);
    let c = p.counters("shop").unwrap();
    assert_eq!(c.faults_injected, 22);
    assert!(c.http_429 > 0 && c.http_429 < 20);
}
