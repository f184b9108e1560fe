//! `ferry stores add` then `ferry serve`: a signed webhook becomes a job; a forged one does not.

use crate::process::{NO_ENV, ferry, serve, succeed};
use ferry_testkit::Answered;

fn shopify_sig(secret: &str, body: &[u8]) -> String {
    ferry_mock::shopify_hmac(secret, body)
}

/// `ferry stores new-key`, then `ferry stores add shop` (Shopify) with `secret`: the key.
pub async fn add_shop(db: &str, secret: &str) -> String {
    let key = succeed(&mut ferry(&["stores", "new-key"], NO_ENV)).await;
    let key = key.trim().to_owned();
    let env = [
        ("FERRY_ENCRYPTION_KEY", &*key),
        ("FERRY_WEBHOOK_SECRET", secret),
    ];
    let add = [
        "stores",
        "add",
        "shop",
        "--platform",
        "shopify",
        "--database-url",
        db,
    ];
    let printed = succeed(&mut ferry(&add, &env)).await;
    assert!(!printed.contains(secret));
    key
}

#[tokio::test]
async fn serve_accepts_signed_webhooks_into_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("ferry.db").display());
    let key = add_shop(&db, "shpss_process_secret").await;
    let (_serve, url) = serve(&db, &key).await;

    let http = reqwest::Client::new();
    let body = br#"{"id":42,"title":"Mug"}"#;
    let post = |sig: String| {
        http.post(format!("{url}/webhooks/shopify/shop"))
            .header("content-type", "application/json")
            .header("x-shopify-hmac-sha256", sig)
            .header("x-shopify-webhook-id", "d-1")
            .body(body.to_vec())
            .answer()
    };
    let status = |sig: String| async { post(sig).await.status() };
    let signed = || shopify_sig("shpss_process_secret", body);
    assert_eq!(status(shopify_sig("forged", body)).await, 401);
    assert_eq!(status(signed()).await, 202, "accepted");
    assert_eq!(status(signed()).await, 200, "a duplicate");
    let ready = http.get(format!("{url}/readyz")).answer().await;
    assert_eq!(ready.status(), 200);

    let q = ferry_queue::Queue::connect(&db).await.unwrap();
    assert_eq!(
        q.stats("webhooks").await.unwrap().ready,
        1,
        "one job for the one delivery"
    );
}
