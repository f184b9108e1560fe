//! The orders API as deployed: `ferry serve` takes an order and is killed with SIGKILL while
//! the payment is in flight; a `ferry worker` finishes the order from the step it reached
//! (the provider answers the charge it already made under the order's key): one charge, the
//! sale in every store, and the client's retry gets the stored answer.

use ferry_mock::MockServer;
use ferry_testkit::Answered;
use ferry_testkit::{TestDb, eventually};
use tokio::process::Child;

use crate::process::{add_and_connect, ferry, get_json, simulated, spawn_quiet, spawn_serve};

const TOKEN: &str = "orders-process-admin-token-0123";

async fn serve(env: &[(String, String)]) -> (Child, String) {
    spawn_serve(&[], env).await
}

fn stock(mock: &MockServer, store: &str, sku: &str) -> i64 {
    let variants = mock.platform().variants(store).unwrap();
    variants
        .iter()
        .find(|v| v["sku"] == sku)
        .and_then(|v| v["inventory"][0]["available"].as_i64())
        .unwrap()
}

async fn post(url: &str, key: &str, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/api/orders"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", key)
        .json(body)
        .answer()
        .await
}

ferry_testkit::postgres_only!(a_server_killed_mid_order_leaves_it_to_a_worker);

async fn a_server_killed_mid_order_leaves_it_to_a_worker(db: TestDb) {
    let mock = simulated(&["parent", "child-1"], 3, 1).await;
    let p = mock.platform();
    let parent = p.store_info("parent").unwrap();
    let env: Vec<(String, String)> = [
        ("FERRY_DATABASE_URL", db.url.clone()),
        ("FERRY_ENCRYPTION_KEY", ferry_core::Cipher::generate_key()),
        ("FERRY_ADMIN_TOKENS", TOKEN.to_owned()),
        (
            "FERRY_PAYMENTS_URL",
            format!("{}/stores/parent/payments/v1", mock.url()),
        ),
        ("FERRY_PAYMENTS_TOKEN", parent.access_token.clone()),
        ("FERRY_ORDERS_RECOVER_AFTER_S", "1".to_owned()),
        ("FERRY_RECONCILE_CRON", "off".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (mut first, url) = serve(&env).await;
    let mut env_public = env.clone();
    env_public.push(("FERRY_PUBLIC_URL".into(), url.clone()));
    for s in ["parent", "child-1"] {
        add_and_connect(&mock, s, &[], &env_public).await;
    }
    let _worker = spawn_quiet(&mut ferry(&["worker", "--concurrency", "8"], &env_public));
    let sku = "SKU-000001-1";
    eventually("the child is connected and in line", || async {
        stock(&mock, "child-1", sku) == stock(&mock, "parent", sku)
            && get_json(&format!("{url}/api/network/stores/child-1"), TOKEN).await["state"]
                == "connected"
    })
    .await;
    let before = stock(&mock, "parent", sku);
    assert!(before >= 2, "(seeded stock {before})");

    // The provider holds the charge; the server dies with it in flight.
    p.hold_writes();
    // An admin token may set the unit price: the amount is checked against it.
    let body = serde_json::json!({"items": [{"sku": sku, "quantity": 2, "price_cents": 500}],
        "amount_cents": 1000, "currency": "EUR", "payment_method": "pm_card_visa"});
    let sent = {
        let (url, body) = (url.clone(), body.clone());
        tokio::spawn(async move { post(&url, "crash-1", &body).await.status() })
    };
    eventually("the charge is in flight", || async {
        p.payments_in_flight() == 1
    })
    .await;
    first.kill().await.unwrap();
    assert!(
        sent.await.unwrap_or(reqwest::StatusCode::BAD_GATEWAY) != 201,
        "no answer"
    );
    p.release_writes();

    // Another server, and the worker's recovery job finishes the order.
    let (_second, url) = serve(&env).await;
    eventually("the order is confirmed", || async {
        get_json(&format!("{url}/api/orders"), TOKEN).await["results"][0]["status"] == "confirmed"
    })
    .await;
    eventually("the sale reached every store", || async {
        stock(&mock, "parent", sku) == before - 2 && stock(&mock, "child-1", sku) == before - 2
    })
    .await;
    assert_eq!(
        p.payment_intents().len(),
        1,
        "one charge: {:?}",
        p.payment_intents()
    );
    let retry = post(&url, "crash-1", &body).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replay")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(p.payment_intents().len(), 1);
}
