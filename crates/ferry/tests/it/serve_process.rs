//! `ferry stores add` then `ferry serve`: a signed webhook becomes a job; a forged one does not.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

fn shopify_sig(secret: &str, body: &[u8]) -> String {
    ferry_mock::shopify_hmac(secret, body)
}

/// `ferry stores new-key`, then `ferry stores add shop` (Shopify) with `secret`: the key.
pub async fn add_shop(db: &str, secret: &str) -> String {
    let ferry = env!("CARGO_BIN_EXE_ferry");
    let key = tokio::process::Command::new(ferry)
        .args(["stores", "new-key"])
        .output()
        .await
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let add = tokio::process::Command::new(ferry)
        .args([
            "stores",
            "add",
            "shop",
            "--platform",
            "shopify",
            "--database-url",
            db,
        ])
        .env("FERRY_ENCRYPTION_KEY", &key)
        .env("FERRY_WEBHOOK_SECRET", secret)
        .output()
        .await
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    assert!(!String::from_utf8_lossy(&add.stdout).contains(secret));
    key
}

/// A `ferry serve` on any free port: the process and its URL.
pub async fn serve(db: &str, key: &str) -> (tokio::process::Child, String) {
    spawn_serve(
        &["--database-url", db],
        &[("FERRY_ENCRYPTION_KEY", key), ("FERRY_LOG", "warn")],
    )
    .await
}

/// `ferry serve --listen 127.0.0.1:0` with more arguments and variables: the process and the
/// URL it prints first.
pub async fn spawn_serve<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    args: &[&str],
    env: &[(K, V)],
) -> (tokio::process::Child, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .next_line()
        .await
        .unwrap()
        .expect("ferry serve printed its address");
    (child, line.rsplit(' ').next().unwrap().to_owned())
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
            .send()
    };
    assert_eq!(
        post(shopify_sig("forged", body)).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(shopify_sig("shpss_process_secret", body))
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        post(shopify_sig("shpss_process_secret", body))
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let q = ferry_queue::Queue::connect(&db).await.unwrap();
    assert_eq!(
        q.stats("webhooks").await.unwrap().ready,
        1,
        "one job for the one delivery"
    );
}
