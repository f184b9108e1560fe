use ferry_testkit::Answered;
use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::Harness;

async fn body(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_unknown_store_404() {
    let h = Harness::start().await;
    let s = h.store("shop", 1);
    let url = format!("{}/items", h.server.rest_url("shop"));
    let r = h
        .http
        .get(&url)
        .header("X-Shopify-Access-Token", "shpat_wrong")
        .answer()
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body(r).await["code"], "UNAUTHORIZED");
    assert_eq!(
        h.http.get(&url).answer().await.status(),
        StatusCode::UNAUTHORIZED
    );
    let bearer = h.http.get(&url).bearer_auth(&s.access_token).answer().await;
    assert_eq!(bearer.status(), StatusCode::OK);
    let other = format!("{}/items", h.server.rest_url("nope"));
    assert_eq!(
        h.http.get(other).answer().await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn pages_cover_every_item_even_when_items_change_between_pages() {
    let h = Harness::start().await;
    let s = h.store("shop", 120);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = h.rest(Method::GET, &s, "/items").query(&[("limit", "50")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page = body(req.answer().await).await;
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        if pages == 1 {
            // A merchant edits an item already seen and one not yet reached.
            h.clock.advance(Duration::from_millis(5));
            let patch = |t: &str| json!({ "title": t }).as_object().unwrap().clone();
            h.server
                .platform()
                .edit_item("shop", &seen[0], patch("edited early"))
                .unwrap();
            // Ties on updated_at order by id as strings: "item-99" comes last, unseen so far.
            assert!(!seen.iter().any(|id| id == "item-99"));
            h.server
                .platform()
                .edit_item("shop", "item-99", patch("edited late"))
                .unwrap();
        }
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 120, "no item skipped");
    assert_eq!(
        seen.len(),
        121,
        "the item edited after it was seen comes again, once"
    );
    assert_eq!(
        seen.last().unwrap(),
        "item-99",
        "edited items move to the end"
    );
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn updated_since_returns_changes_at_or_after() {
    let h = Harness::start().await;
    let s = h.store("shop", 10);
    h.clock.advance(Duration::from_secs(60));
    let since = h.clock_ms();
    let patch = json!({ "price": "1.00" }).as_object().unwrap().clone();
    h.server
        .platform()
        .edit_item("shop", "item-3", patch)
        .unwrap();
    let page = body(
        h.rest(Method::GET, &s, "/items")
            .query(&[("updated_since", since.to_string())])
            .answer()
            .await,
    )
    .await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["item-3"]);
}

#[tokio::test]
async fn put_is_idempotent() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    let put = |b: Value| h.rest(Method::PUT, &s, "/items/p-1").json(&b).send();
    let first = put(json!({"title": "Mug", "price": "9.00"})).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = body(first).await;
    h.clock.advance(Duration::from_secs(1));
    let again = put(json!({"price": "9.00", "title": "Mug"})).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        body(again).await["updated_at"],
        first["updated_at"],
        "no change, no new updated_at"
    );
    let changed = body(
        put(json!({"title": "Mug", "price": "10.00"}))
            .await
            .unwrap(),
    )
    .await;
    assert!(changed["updated_at"].as_i64() > first["updated_at"].as_i64());
    assert_eq!(h.item_count("shop"), 1);
}

#[tokio::test]
async fn post_honours_idempotency_keys() {
    let h = Harness::start().await;
    let s = h.store("shop", 0);
    let post = |key: Option<&str>, b: Value| {
        let mut r = h.rest(Method::POST, &s, "/items").json(&b);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send()
    };
    let a = post(Some("k1"), json!({"title": "A"})).await.unwrap();
    assert_eq!(a.status(), StatusCode::CREATED);
    let a = body(a).await;
    let replay = post(Some("k1"), json!({"title": "A"})).await.unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(body(replay).await["id"], a["id"]);
    let mismatch = post(Some("k1"), json!({"title": "B"})).await.unwrap();
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(h.item_count("shop"), 1, "one create for one key");
    post(None, json!({"title": "C"})).await.unwrap();
    post(None, json!({"title": "C"})).await.unwrap();
    assert_eq!(h.item_count("shop"), 3, "no key, no deduplication");
}

#[tokio::test]
async fn request_bucket_throttles_with_retry_after() {
    let h = Harness::start().await;
    let s = h.store("shop", 1);
    h.server
        .platform()
        .set_rest_bucket("shop", 3.0, 1.0)
        .unwrap();
    for n in 1..=3 {
        let r = h.rest(Method::GET, &s, "/items/item-1").answer().await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["x-shopify-shop-api-call-limit"],
            format!("{n}/3").as_str()
        );
    }
    let r = h.rest(Method::GET, &s, "/items/item-1").answer().await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(
        h.rest(Method::GET, &s, "/items/item-1")
            .answer()
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_input_is_400_and_changes_nothing() {
    let h = Harness::start().await;
    let s = h.store("shop", 2);
    for q in [
        [("limit", "0")],
        [("limit", "251")],
        [("cursor", "garbage")],
    ] {
        let r = h.rest(Method::GET, &s, "/items").query(&q).answer().await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q:?}");
        assert_eq!(body(r).await["code"], "BAD_REQUEST");
    }
    for (method, path, bad) in [
        (Method::PUT, "/items/x", "[1,2]"),
        (Method::POST, "/items", "{not json"),
    ] {
        let r = h.rest(method, &s, path).body(bad).answer().await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(h.item_count("shop"), 2);
}

#[tokio::test]
async fn control_api_creates_and_reads_stores() {
    let h = Harness::start().await;
    let url = format!("{}/control/stores", h.server.url());
    let created = body(
        h.http
            .post(&url)
            .json(&json!({"name": "acme", "items": 5}))
            .answer()
            .await,
    )
    .await;
    assert_eq!(created["name"], "acme");
    assert!(
        created["access_token"]
            .as_str()
            .unwrap()
            .starts_with("shpat_")
    );
    let state = body(h.http.get(format!("{url}/acme")).answer().await).await;
    assert_eq!(state["items"].as_array().unwrap().len(), 5);
    let dup = h
        .http
        .post(&url)
        .json(&json!({"name": "acme"}))
        .answer()
        .await;
    assert_eq!(dup.status(), StatusCode::BAD_REQUEST);
}
