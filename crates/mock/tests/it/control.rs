//! The control API: stores with a catalog, acting as a merchant and a shopper, reading back
//! a store's state and counters; bad input is refused with a JSON error and changes nothing.

use ferry_testkit::Answered;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Harness;

async fn call(
    h: &Harness,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = h
        .http
        .request(method, format!("{}/control{path}", h.server.url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.answer().await;
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn merchant_and_shopper_through_the_control_api() {
    use reqwest::Method;
    let h = Harness::start().await;
    let (st, info) = call(
        &h,
        Method::POST,
        "/stores",
        Some(json!({"name": "shop", "products": 3, "variants": 2})),
    )
    .await;
    assert_eq!(st, 200, "{info}");
    assert!(info["access_token"].as_str().unwrap().starts_with("shpat_"));

    let (_, state) = call(&h, Method::GET, "/stores/shop", None).await;
    let products = state["products"].as_array().unwrap();
    assert_eq!(products.len(), 3);
    assert_eq!(products[0]["variants"].as_array().unwrap().len(), 2);
    let pid = products[0]["id"].as_u64().unwrap();
    let variant = &products[0]["variants"][0];
    let vid = variant["id"].as_u64().unwrap();
    let item = variant["inventory_item_id"].as_u64().unwrap();

    for (path, edit) in [
        (
            format!("/stores/shop/products/{pid}"),
            json!({"title": "Renamed"}),
        ),
        (
            format!("/stores/shop/variants/{vid}"),
            json!({"price": "9.5"}),
        ),
        (
            "/stores/shop/inventory".to_owned(),
            json!({"inventory_item_id": item, "available": 5}),
        ),
    ] {
        let (st, _) = call(&h, Method::POST, &path, Some(edit)).await;
        assert_eq!(st, 200, "{path}");
    }
    let (st, order) = call(
        &h,
        Method::POST,
        "/stores/shop/orders",
        Some(json!({"lines": [{"sku": variant["sku"], "quantity": 2}]})),
    )
    .await;
    assert_eq!(st, 200, "{order}");

    let (_, state) = call(&h, Method::GET, "/stores/shop", None).await;
    let p0 = &state["products"][0];
    assert_eq!(p0["title"], "Renamed");
    assert_eq!(p0["variants"][0]["price"], "9.50");
    let level = &p0["variants"][0]["inventory"][0];
    assert_eq!(
        (
            level["available"].as_i64(),
            level["committed"].as_i64(),
            level["on_hand"].as_i64()
        ),
        (Some(3), Some(2), Some(5))
    );
    assert_eq!(state["orders"][0]["id"], order["id"]);

    // Refused, with a JSON error, nothing changed.
    let cases = [
        (
            Method::POST,
            "/stores/shop/orders".to_owned(),
            json!({"lines": [{"variant_id": vid, "quantity": 99}]}),
            400,
        ),
        (
            Method::POST,
            "/stores/shop/orders".to_owned(),
            json!({"lines": [{"quantity": 1}]}),
            400,
        ),
        (
            Method::POST,
            format!("/stores/shop/products/{pid}"),
            json!({"status": "GONE"}),
            400,
        ),
        (
            Method::POST,
            format!("/stores/shop/products/{pid}"),
            json!({"colour": "red"}),
            400,
        ),
        (
            Method::POST,
            "/stores/shop/variants/1".to_owned(),
            json!({"price": "1"}),
            400,
        ),
        (
            Method::POST,
            "/stores/shop/limits".to_owned(),
            json!({"graphql_bucket": -1}),
            400,
        ),
        (
            Method::POST,
            "/stores/nope/orders".to_owned(),
            json!({"lines": []}),
            404,
        ),
    ];
    for (m, path, body, want) in cases {
        let (st, err) = call(&h, m, &path, Some(body)).await;
        assert_eq!(st.as_u16(), want, "{path}: {err}");
        assert!(
            err["code"].is_string() && err["errors"].is_string(),
            "{err}"
        );
    }
    let (_, after) = call(&h, Method::GET, "/stores/shop", None).await;
    assert_eq!(after["products"], state["products"]);
    assert_eq!(after["orders"], state["orders"]);

    let (st, _) = call(
        &h,
        Method::DELETE,
        &format!("/stores/shop/products/{pid}"),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (_, counters) = call(&h, Method::GET, "/stores/shop/counters", None).await;
    assert_eq!(
        counters["api"]["requests"], 0,
        "the control API is not the store's API"
    );
    assert!(counters["webhooks"]["attempts"].is_number());
    let (_, state) = call(&h, Method::GET, "/stores/shop", None).await;
    assert_eq!(state["products"].as_array().unwrap().len(), 2);
}
