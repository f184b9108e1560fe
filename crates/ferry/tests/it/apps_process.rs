//! Connecting stores the 2026 way from the command line: an app registered with
//! `ferry apps add` (its secret from FERRY_CLIENT_SECRET), stores added by their shop domain on
//! the client credentials grant, connected by a worker that obtains and renews their tokens.

use ferry_mock::DEFAULT_ORGANIZATION;
use ferry_testkit::{TestDb, eventually};

use crate::process::{ferry, serve, simulated, spawn_quiet, succeed};

ferry_testkit::conformance!(stores_on_an_apps_client_credentials_connect_and_sync);

async fn stores_on_an_apps_client_credentials_connect_and_sync(db: TestDb) {
    let stores = ["parent", "child-1"];
    let mock = simulated(&stores, 5, 2).await;
    let p = mock.platform();
    let app = p.create_app(
        "ferry",
        DEFAULT_ORGANIZATION,
        &ferry_sync::credentials::NEEDED_SCOPES,
    );
    p.set_token_ttl(Some(std::time::Duration::from_secs(60)));
    let key = ferry_core::Cipher::generate_key();
    let shop_url = format!("{}/stores/{{shop}}", mock.url());
    let env = [
        ("FERRY_ENCRYPTION_KEY", key.as_str()),
        ("FERRY_SHOP_URL", shop_url.as_str()),
        ("FERRY_DATABASE_URL", db.url.as_str()),
        ("FERRY_RECONCILE_CRON", "off"),
    ];
    let (_serve, public) = serve(&db.url, &key).await;

    // The secret is read from the environment and never printed.
    let added = succeed(
        ferry(
            &["apps", "add", "ferry", "--client-id", &app.client_id],
            &env,
        )
        .env("FERRY_CLIENT_SECRET", &app.client_secret),
    )
    .await;
    assert!(!added.contains(&app.client_secret), "{added}");
    let listed = succeed(&mut ferry(&["apps", "list"], &env)).await;
    assert!(listed.contains(&app.client_id) && !listed.contains(&app.client_secret));
    // Without the secret, a store's own app is refused with a clear error.
    let out = ferry(
        &[
            "network",
            "add",
            "x",
            "--role",
            "child",
            "--shop-domain",
            "x.myshopify.com",
            "--client-id",
            "abc",
        ],
        &env,
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FERRY_CLIENT_SECRET"));

    for s in stores {
        let role = if s == "parent" { "parent" } else { "child" };
        let domain = format!("{s}.myshopify.com");
        succeed(&mut ferry(
            &[
                "network",
                "add",
                s,
                "--role",
                role,
                "--shop-domain",
                &domain,
                "--app",
                "ferry",
                "--public-url",
                &public,
            ],
            &env,
        ))
        .await;
        succeed(&mut ferry(&["network", "connect", s], &env)).await;
    }
    let listed = succeed(&mut ferry(&["network", "list"], &env)).await;
    assert!(
        listed.contains("\"credentials\":\"client_credentials\""),
        "{listed}"
    );
    let _worker = spawn_quiet(&mut ferry(
        &["worker", "--public-url", &public, "--concurrency", "8"],
        &env,
    ));
    eventually("the child is connected and in line", || async {
        let parent = p.variants("parent").unwrap();
        let child = p.variants("child-1").unwrap();
        let sku_stock = |vs: &[serde_json::Value]| {
            let mut v: Vec<(String, i64)> = vs
                .iter()
                .map(|v| {
                    (
                        v["sku"].as_str().unwrap_or_default().to_owned(),
                        v["inventory"][0]["available"].as_i64().unwrap_or_default(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        sku_stock(&parent) == sku_stock(&child)
            && p.app_counters(&app.client_id).client_credentials >= 2
    })
    .await;
    assert_eq!(p.app_counters(&app.client_id).expired_calls, 0);
}
