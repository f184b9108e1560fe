//! The orders API as deployed: `ferry serve` takes an order and is killed with SIGKILL while
//! the payment is in flight; a `ferry worker` finishes the order from the step it reached
//! (the provider answers the charge it already made under the order's key): one charge, the
//! sale in every store, and the client's retry gets the stored answer.

use std::process::Stdio;

use ferry_mock::MockServer;
use ferry_testkit::{TestDb, eventually};
use tokio::process::{Child, Command};

const TOKEN: &str = "orders-process-admin-token-0123";

fn ferry(args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args).env("FERRY_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

async fn serve(env: &[(String, String)]) -> (Child, String) {
    let mut env = env.to_vec();
    env.push(("FERRY_LOG".into(), "warn".into()));
    crate::serve_process::spawn_serve(&[], &env).await
}

fn stock(mock: &MockServer, store: &str, sku: &str) -> i64 {
    let snap = mock.platform().snapshot(store).unwrap();
    snap["products"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["variants"].as_array().unwrap().iter())
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
        .send()
        .await
        .unwrap()
}

ferry_testkit::postgres_only!(a_server_killed_mid_order_leaves_it_to_a_worker);

async fn a_server_killed_mid_order_leaves_it_to_a_worker(db: TestDb) {
    let mock = crate::sync_process::simulated(&["parent", "child-1"], 3, 1).await;
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
        let info = p.store_info(s).unwrap();
        let role = if s == "parent" { "parent" } else { "child" };
        let mut e = env_public.clone();
        e.push(("FERRY_STORE_TOKEN".into(), info.access_token.clone()));
        e.push(("FERRY_WEBHOOK_SECRET".into(), info.webhook_secret.clone()));
        let graphql = mock.graphql_url(s);
        let out = ferry(
            &[
                "network",
                "add",
                s,
                "--role",
                role,
                "--graphql-url",
                &graphql,
            ],
            &e,
        )
        .output()
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ferry(&["network", "connect", s], &env_public)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _worker = ferry(&["worker", "--concurrency", "8"], &env_public)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sku = "SKU-000001-1";
    eventually("the child is connected and in line", || async {
        stock(&mock, "child-1", sku) == stock(&mock, "parent", sku)
            && reqwest::Client::new()
                .get(format!("{url}/api/network/stores/child-1"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("\"connected\"")
    })
    .await;
    let before = stock(&mock, "parent", sku);
    assert!(before >= 2, "(seeded stock {before})");

    // The provider holds the charge; the server dies with it in flight.
    p.hold_writes();
    let body = serde_json::json!({"items": [{"sku": sku, "quantity": 2}], "amount_cents": 999,
        "currency": "EUR", "payment_method": "pm_card_visa"});
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
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{url}/api/orders"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["results"][0]["status"] == "confirmed"
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
