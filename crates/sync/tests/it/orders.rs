//! The orders API over real HTTP: an order reserves stock in the parent, charges the
//! simulated payment provider once, and the sale reaches every store; keys, validation,
//! failures that hold nothing, duplicates at once, a server that dies mid-order, rate limits
//! shared by two servers.

use ferry_sync::Rules;
use ferry_sync::orders::{Limits, OrdersOptions};
use ferry_testkit::Answered;
use ferry_testkit::{Backend, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, Net, PARENT};

struct Reply {
    status: StatusCode,
    replay: bool,
    retry_after: Option<String>,
    body: Value,
}

async fn post_order(url: &str, key: Option<&str>, body: &Value) -> Reply {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/api/orders"))
        .bearer_auth(ADMIN_TOKEN)
        .json(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    reply(req.answer().await).await
}

async fn get(url: &str, path: &str) -> Reply {
    let r = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .answer()
        .await;
    reply(r).await
}

async fn reply(r: reqwest::Response) -> Reply {
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let replay = header("idempotent-replay").as_deref() == Some("true");
    let retry_after = header("retry-after");
    Reply {
        status: r.status(),
        replay,
        retry_after,
        body: r.json().await.unwrap_or_default(),
    }
}

/// The parent's current price of a SKU, in cents (1 € for a SKU it does not have).
fn price(net: &Net, sku: &str) -> i64 {
    net.platform().price_cents(PARENT, sku).unwrap_or(100)
}

/// An order of one line at the parent's price.
fn order(net: &Net, sku: &str, quantity: i64) -> Value {
    let amount = price(net, sku) * quantity;
    json!({"items": [{"sku": sku, "quantity": quantity}], "amount_cents": amount, "currency": "EUR", "payment_method": "pm_card_visa"})
}

/// Every store's available stock of a SKU.
fn stock(net: &Net, sku: &str) -> Vec<i64> {
    std::iter::once(PARENT.to_owned())
        .chain(net.children.iter().cloned())
        .map(|s| net.by_sku(&s)[sku].2)
        .collect()
}

/// Sets the parent's stock of SKUs as a merchant would, and waits for the network to follow.
async fn restock(net: &Net, skus: &[&str], available: i64) {
    for sku in skus {
        let (_, item) = net.variant(PARENT, sku);
        net.platform()
            .merchant_set_stock(PARENT, item, None, available)
            .unwrap();
    }
    net.quiet().await;
    for sku in skus {
        assert!(
            stock(net, sku).iter().all(|s| *s == available),
            "{sku} restocked"
        );
    }
}

fn charges(net: &Net) -> Vec<Value> {
    net.platform().payment_intents()
}

async fn an_order_reserves_charges_and_reaches_every_store(db: TestDb) {
    let net = Net::start(db, 2, 3, Rules::default()).await;
    let url = net.stack.server.url();
    restock(&net, &["SKU-000001-1", "SKU-000002-2"], 20).await;
    let before = (stock(&net, "SKU-000001-1"), stock(&net, "SKU-000002-2"));
    let amount = price(&net, "SKU-000001-1") * 2 + price(&net, "SKU-000002-2");
    let body = json!({
        "items": [{"sku": "SKU-000001-1", "quantity": 2}, {"sku": "SKU-000002-2", "quantity": 1}],
        "amount_cents": amount, "currency": "EUR", "payment_method": "pm_card_visa"
    });
    let r = post_order(&url, Some("order-1"), &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "confirmed");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let txn = r.body["transaction_id"].as_str().unwrap().to_owned();
    assert!(!r.replay);
    net.quiet().await;
    assert_eq!(
        stock(&net, "SKU-000001-1"),
        before.0.iter().map(|s| s - 2).collect::<Vec<_>>(),
        "the parent and every child, once"
    );
    assert_eq!(
        stock(&net, "SKU-000002-2"),
        before.1.iter().map(|s| s - 1).collect::<Vec<_>>()
    );
    let paid = charges(&net);
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["id"], json!(txn));
    assert_eq!(
        (paid[0]["amount"].as_i64(), paid[0]["status"].as_str()),
        (Some(amount), Some("succeeded"))
    );

    // The same key and body: the stored answer again, nothing new.
    let again = post_order(&url, Some("order-1"), &body).await;
    assert_eq!((again.status.as_u16(), again.replay), (201, true));
    assert_eq!(again.body, r.body);
    // The key with another body: refused.
    let other = post_order(&url, Some("order-1"), &order(&net, "SKU-000001-1", 1)).await;
    assert_eq!(other.status, 422);
    assert_eq!(other.body["error"]["code"], "idempotency_key_reused");
    net.quiet().await;
    assert_eq!(charges(&net).len(), 1, "one charge");
    assert_eq!(stock(&net, "SKU-000001-1")[0], before.0[0] - 2);

    let detail = get(&url, &format!("/api/orders/{id}")).await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.body["status"], "confirmed");
    assert_eq!(detail.body["transaction_id"], json!(txn));
    let missing = get(&url, "/api/orders/ord_nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "not_found");
    let over = get(&url, "/api/orders?page=1&page_size=500").await;
    assert_eq!(
        (over.status.as_u16(), over.body["error"]["field"].as_str()),
        (400, Some("page_size")),
        "range-checked, not silently capped"
    );
    let list = get(&url, "/api/orders?page=1&page_size=100").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["count"], 1);
    assert_eq!(list.body["page_size"], 100);
    assert_eq!(list.body["results"][0]["id"], json!(id));
    let audit = net.audit("child-1").await;
    assert!(
        audit.iter().any(|e| e.cause.contains(&id)),
        "the writes name the order"
    );
}

async fn duplicates_at_once_make_one_order_and_one_charge(db: TestDb) {
    let net = Net::start(db, 1, 2, Rules::default()).await;
    let url = net.stack.server.url();
    restock(&net, &["SKU-000001-1"], 20).await;
    let before = stock(&net, "SKU-000001-1");
    // The provider holds the charge, so every duplicate arrives while the first is running.
    net.platform().hold_writes();
    let body = order(&net, "SKU-000001-1", 3);
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move { post_order(&url, Some("same-key"), &body).await })
        })
        .collect();
    ferry_testkit::eventually("the charge is in flight", || async {
        net.platform().payments_in_flight() == 1
    })
    .await;
    // Everything but the first answers while the first is held at the provider.
    ferry_testkit::eventually("the seven others answered", || async {
        sends.iter().filter(|h| h.is_finished()).count() == 7
    })
    .await;
    net.platform().release_writes();
    let mut statuses = Vec::new();
    for s in sends {
        statuses.push(s.await.unwrap().status.as_u16());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    net.quiet().await;
    assert_eq!(charges(&net).len(), 1, "one charge");
    assert_eq!(
        stock(&net, "SKU-000001-1"),
        before.iter().map(|s| s - 3).collect::<Vec<_>>()
    );
    let replay = post_order(&url, Some("same-key"), &body).await;
    assert_eq!((replay.status.as_u16(), replay.replay), (201, true));
    assert_eq!(get(&url, "/api/orders").await.body["count"], 1);
}

async fn a_server_that_dies_mid_order_leaves_it_finished(db: TestDb) {
    let mut net = Net::start(db, 1, 2, Rules::default()).await;
    let url = net.stack.server.url();
    restock(&net, &["SKU-000002-1"], 20).await;
    let before = stock(&net, "SKU-000002-1");
    net.platform().hold_writes();
    let sent = {
        let (url, body) = (url.clone(), order(&net, "SKU-000002-1", 2));
        tokio::spawn(async move { post_order(&url, Some("dies"), &body).await })
    };
    ferry_testkit::eventually("the charge is in flight", || async {
        net.platform().payments_in_flight() == 1
    })
    .await;
    // The server and its worker go away with the request half done.
    let orders = net.orders.clone();
    let fresh = net.another_stack(&orders).await;
    let dead = std::mem::replace(&mut net.stack, fresh);
    drop(dead);
    sent.abort();
    net.platform().release_writes();
    // The new process's worker finds the order by its recovery job and finishes it: the
    // charge under the order's key is the one the provider already made.
    let url = net.stack.server.url();
    ferry_testkit::eventually("the order is finished", || async {
        get(&url, "/api/orders").await.body["results"][0]["status"] == "confirmed"
    })
    .await;
    net.quiet().await;
    assert_eq!(charges(&net).len(), 1, "one charge: {:?}", charges(&net));
    assert_eq!(
        stock(&net, "SKU-000002-1"),
        before.iter().map(|s| s - 2).collect::<Vec<_>>()
    );
    let retry = post_order(&url, Some("dies"), &order(&net, "SKU-000002-1", 2)).await;
    assert_eq!(
        (retry.status.as_u16(), retry.replay),
        (201, true),
        "{}",
        retry.body
    );
}

ferry_testkit::conformance! {
    an_order_reserves_charges_and_reaches_every_store,
    duplicates_at_once_make_one_order_and_one_charge,
    a_server_that_dies_mid_order_leaves_it_finished,
    the_limit_slides_across_a_minute_boundary,
}

/// An orders token for a client: (the token, the API's answer).
async fn orders_token(url: &str, name: &str, set_prices: bool) -> String {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": name, "role": "orders", "set_prices": set_prices}))
        .answer()
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["set_prices"], set_prices);
    body["token"].as_str().unwrap().to_owned()
}

async fn post_as(url: &str, token: &str, key: &str, body: &Value) -> Reply {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .answer()
        .await;
    reply(r).await
}

#[tokio::test]
async fn amounts_are_checked_against_the_parents_prices() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let net = Net::start(db, 1, 2, Rules::default()).await;
    let url = net.stack.server.url();
    restock(&net, &["SKU-000001-1", "SKU-000002-1"], 50).await;
    let before = stock(&net, "SKU-000001-1");
    let portal = orders_token(&url, "portal", false).await;
    let p1 = price(&net, "SKU-000001-1");
    let p2 = price(&net, "SKU-000002-1");

    // A cent for ten units: refused with the expected amount, nothing held or charged.
    let mut cheap = order(&net, "SKU-000001-1", 10);
    cheap["amount_cents"] = json!(1);
    let r = post_as(&url, &portal, "cheap", &cheap).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "AMOUNT_MISMATCH");
    assert_eq!(r.body["error"]["field"], "amount_cents");
    assert_eq!(r.body["error"]["expected_amount_cents"], json!(p1 * 10));
    assert_eq!(r.body["error"]["expected_currency"], "EUR");
    // The parent's currency, not another one.
    let mut dollars = order(&net, "SKU-000001-1", 1);
    dollars["currency"] = json!("USD");
    let r = post_as(&url, &portal, "usd", &dollars).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (422, Some("currency")),
        "{}",
        r.body
    );

    // Two lines, the sum of both at the parent's prices: accepted.
    let two = json!({
        "items": [{"sku": "SKU-000001-1", "quantity": 2}, {"sku": "SKU-000002-1", "quantity": 3}],
        "amount_cents": p1 * 2 + p2 * 3, "currency": "EUR", "payment_method": "pm_card_visa"
    });
    let r = post_as(&url, &portal, "two", &two).await;
    assert_eq!(r.status, 201, "{}", r.body);

    // The same SKU twice, spelled differently: 400 naming both lines.
    let twice = json!({
        "items": [{"sku": "SKU-000001-1", "quantity": 1}, {"sku": "sku-000001-1", "quantity": 1}],
        "amount_cents": p1 * 2, "currency": "EUR", "payment_method": "pm_card_visa"
    });
    let r = post_as(&url, &portal, "twice", &twice).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "items[1].sku");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("items[0].sku") && message.contains("items[1].sku"),
        "{message}"
    );

    // At most 100 lines; 100 unknown SKUs cost the parent one call, not one a line.
    let lines = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"sku": format!("NOPE-{i}"), "quantity": 1}))
            .collect()
    };
    let many = json!({"items": lines(101), "amount_cents": 101, "currency": "EUR", "payment_method": "pm_card_visa"});
    let r = post_as(&url, &portal, "many", &many).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("items"))
    );
    let calls = net.platform().counters(PARENT).unwrap().graphql_requests;
    let unknown = json!({"items": lines(100), "amount_cents": 100, "currency": "EUR", "payment_method": "pm_card_visa"});
    let r = post_as(&url, &portal, "unknown", &unknown).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("items[0].sku"))
    );
    assert_eq!(
        net.platform().counters(PARENT).unwrap().graphql_requests,
        calls + 1
    );

    // A price of the client's own: refused for a token without set_prices, taken from one
    // with it (and charged at that price).
    let mut own = order(&net, "SKU-000001-1", 4);
    own["items"][0]["price_cents"] = json!(250);
    own["amount_cents"] = json!(1000);
    let r = post_as(&url, &portal, "own", &own).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("items[0].price_cents")),
        "{}",
        r.body
    );
    let wholesale = orders_token(&url, "wholesale", true).await;
    let r = post_as(&url, &wholesale, "own", &own).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        charges(&net)
            .iter()
            .any(|c| c["amount"] == json!(1000) && c["status"] == "succeeded"),
        "{:?}",
        charges(&net)
    );
    // Totals that do not fit are refused, not wrapped.
    let mut huge = order(&net, "SKU-000001-1", 1_000_000);
    huge["items"][0]["price_cents"] = json!(i64::MAX / 2);
    let r = post_as(&url, &wholesale, "huge", &huge).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post_as(
        &url,
        &wholesale,
        "lots",
        &order(&net, "SKU-000001-1", 1_000_001),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("items[0].quantity"))
    );

    net.quiet().await;
    assert_eq!(
        stock(&net, "SKU-000001-1"),
        before.iter().map(|s| s - 2 - 4).collect::<Vec<_>>(),
        "only the two accepted orders moved stock"
    );
    assert_eq!(charges(&net).len(), 2, "refused orders charged nothing");
}

#[tokio::test]
async fn bad_orders_and_failed_ones_hold_nothing() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let net = Net::start(db, 1, 2, Rules::default()).await;
    let url = net.stack.server.url();
    restock(&net, &["SKU-000001-1", "SKU-000001-2", "SKU-000002-1"], 10).await;
    let before = stock(&net, "SKU-000001-1");
    let before2 = stock(&net, "SKU-000001-2");
    let r = post_order(&url, None, &order(&net, "SKU-000001-1", 1)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "idempotency_key_missing");
    let mut bad = Vec::new();
    let mut b = order(&net, "NOPE", 1);
    bad.push((b.clone(), "items[0].sku"));
    b = order(&net, "SKU-000001-1", 0);
    b["amount_cents"] = json!(100);
    bad.push((b.clone(), "items[0].quantity"));
    b = order(&net, "SKU-000001-1", 1);
    b["currency"] = json!("EURO");
    bad.push((b.clone(), "currency"));
    b["currency"] = json!("ABC");
    bad.push((b.clone(), "currency"));
    b = order(&net, "SKU-000001-1", 1);
    b["amount_cents"] = json!(0);
    bad.push((b.clone(), "amount_cents"));
    b = order(&net, "SKU-000001-1", 1);
    b["items"] = json!([]);
    bad.push((b.clone(), "items"));
    b = order(&net, "SKU-000001-1", 1);
    b["payment_method"] = json!("pm_\u{0}visa");
    bad.push((b.clone(), "body"));
    for (i, (body, field)) in bad.iter().enumerate() {
        let r = post_order(&url, Some(&format!("bad-{i}")), body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.body["error"]["field"], json!(field), "{}", r.body);
        // Nothing was saved: the key is free for the corrected request.
    }
    // Too big, or not JSON: refused before anything is read.
    let big = json!({"items": [], "amount_cents": 1, "currency": "EUR", "payment_method": "x".repeat(2 << 20)});
    let r = post_order(&url, Some("big"), &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["error"]["code"], "payload_too_large");
    let r = reply(
        reqwest::Client::new()
            .post(format!("{url}/api/orders"))
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", "text")
            .header("content-type", "text/plain")
            .body("items=1")
            .answer()
            .await,
    )
    .await;
    assert_eq!(r.status, 415);
    let fixed = post_order(&url, Some("bad-0"), &order(&net, "SKU-000001-2", 1)).await;
    assert_eq!(fixed.status, 201, "{}", fixed.body);

    // More than the parent has: 422, nothing held.
    let r = post_order(
        &url,
        Some("too-many"),
        &order(&net, "SKU-000001-1", before[0] + 1),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["code"], "insufficient_stock");
    // A declined card: 402, the reservation let go.
    let mut declined = order(&net, "SKU-000001-1", before[0]);
    declined["payment_method"] = json!(ferry_mock::DECLINED_CARD);
    let r = post_order(&url, Some("declined"), &declined).await;
    assert_eq!(r.status, 402);
    assert_eq!(r.body["error"]["code"], "payment_failed");
    // So all of it can still be bought.
    let all = post_order(&url, Some("all"), &order(&net, "SKU-000001-1", before[0])).await;
    assert_eq!(all.status, 201, "{}", all.body);
    let failed = get(&url, "/api/orders?page=1&page_size=10").await;
    let states: Vec<&str> = failed.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["confirmed", "failed", "failed", "confirmed"]);
    net.quiet().await;
    assert_eq!(stock(&net, "SKU-000001-1"), vec![0, 0]);

    // The provider unreachable: 503, nothing held (a closed port: nothing was charged).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/payments/v1", closed.local_addr().unwrap());
    drop(closed);
    let down = net
        .another_stack(&OrdersOptions {
            payments_url: dead_url,
            ..net.orders.clone()
        })
        .await;
    let r = post_order(
        &down.server.url(),
        Some("down"),
        &order(&net, "SKU-000001-2", 1),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "upstream_unavailable");
    let r = post_order(&url, Some("after-down"), &order(&net, "SKU-000002-1", 1)).await;
    assert_eq!(r.status, 201);
    net.quiet().await;
    assert_eq!(
        stock(&net, "SKU-000001-2"),
        before2.iter().map(|s| s - 1).collect::<Vec<_>>(),
        "only the order that went through moved stock"
    );
    let paid = charges(&net);
    assert_eq!(paid.len(), 3, "bad-0, all, after-down: {paid:?}");
}

ferry_testkit::postgres_only!(rate_limits_hold_across_two_servers);

async fn rate_limits_hold_across_two_servers(db: TestDb) {
    let mut net = Net::unconnected(db, 0, 1, Rules::default()).await;
    net.orders.limits = Limits {
        create: 3,
        list: 2,
        detail: 300,
    };
    let orders = net.orders.clone();
    let a = net.another_stack(&orders).await;
    let b = net.another_stack(&orders).await;
    net.stack.engine.connect_store(PARENT).await.unwrap();
    net.quiet().await;
    let (ua, ub) = (a.server.url(), b.server.url());
    let mut statuses = Vec::new();
    // The second request is the first again, on the other server: the key is one key for
    // every server (a replay), and it counts against the limit like any request.
    for (i, (url, key)) in [(&ua, "k0"), (&ub, "k0"), (&ua, "k2"), (&ub, "k3")]
        .into_iter()
        .enumerate()
    {
        let r = post_order(url, Some(key), &order(&net, "SKU-000001-1", 1)).await;
        assert_eq!(r.replay, i == 1, "{i}: {}", r.body);
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            let wait: u64 = r.retry_after.unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait));
            assert_eq!(r.body["error"]["code"], "rate_limited");
        }
    }
    assert!(statuses[..3].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(statuses[3], 429, "one limit for both servers: {statuses:?}");
    let lists: Vec<u16> = [
        get(&ua, "/api/orders").await,
        get(&ub, "/api/orders").await,
        get(&ua, "/api/orders").await,
    ]
    .iter()
    .map(|r| r.status.as_u16())
    .collect();
    assert_eq!(lists, vec![200, 200, 429], "each route has its own limit");

    assert_eq!(get(&ub, "/api/orders/ord_x").await.status, 404);
}

/// The limit is a sliding minute: a client that spent its limit at the end of one minute
/// cannot spend it again at the start of the next, and gets in again as the old minute's
/// share fades. On the fake clock, straight against the counter every server shares.
async fn the_limit_slides_across_a_minute_boundary(db: TestDb) {
    use ferry_sync::orders::Orders;
    let clock = db.clock.clone();
    let queue = db.queue().await;
    let key = ferry_core::Cipher::from_base64(&ferry_core::Cipher::generate_key()).unwrap();
    let connect_db = ferry_connect::db::open(&queue).await.unwrap();
    let client = ferry_connect::Client::new(
        connect_db,
        queue.clock(),
        "shopify",
        ferry_connect::ClientOptions::default(),
    );
    let stores = ferry_sync::webhooks::WebhookStores::new(queue.db(), key.clone(), queue.clock());
    let engine = ferry_sync::Engine::new(queue, key, client, stores, Default::default())
        .await
        .unwrap();
    let orders = Orders::new(engine, OrdersOptions::default());
    // Five seconds before a minute ends.
    clock.set(1_767_225_600_000 + 55_000);
    for _ in 0..4 {
        assert_eq!(orders.over_limit("c", "create", 4).await.unwrap(), None);
    }
    let wait = orders.over_limit("c", "create", 4).await.unwrap();
    assert_eq!(wait, Some(5), "over in the first minute: wait for the next");
    // One second into the next minute, last minute's five still count almost whole: with
    // this one, 1 + 5 × 59/60 > 4, and 1 + 5 × 36/60 = 4 is reached 24 s in.
    clock.advance(std::time::Duration::from_secs(6));
    let wait = orders.over_limit("c", "create", 4).await.unwrap();
    assert_eq!(wait, Some(23), "the boundary does not reset the count");
    // Another client and another route have their own counts.
    assert_eq!(orders.over_limit("d", "create", 4).await.unwrap(), None);
    assert_eq!(orders.over_limit("c", "list", 4).await.unwrap(), None);
    // Forty-five seconds in, a quarter of last minute's five is left: 2 + 1.25 ≤ 4.
    clock.advance(std::time::Duration::from_secs(44));
    assert_eq!(orders.over_limit("c", "create", 4).await.unwrap(), None);
}
