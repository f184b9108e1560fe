//! Shopify apps the 2026 way, against the simulated platform's token endpoint: client
//! credentials renewed before they expire and after a 401, once for many callers; expiring
//! offline tokens whose refresh token rotates, the previous one tried once, then the store
//! marked as needing a new installation.

use std::sync::Arc;
use std::time::Duration;

use ferry_connect::oauth::{Grant, OAuth};
use ferry_connect::shopify::ShopifyConnector;
use ferry_connect::{ConnectError, ErrorClass, Secret};
use ferry_mock::{AppInfo, DEFAULT_ORGANIZATION};
use ferry_testkit::{Answered, TestDb};
use serde_json::{Value, json};

use crate::{Env, quick};

ferry_testkit::conformance!(
    client_credentials_are_renewed_before_expiry_and_after_a_401,
    offline_tokens_rotate_fall_back_once_then_ask_for_a_new_installation,
);

const SCOPES: &[&str] = &[
    "read_products",
    "write_products",
    "read_inventory",
    "write_inventory",
];

fn cipher() -> ferry_core::Cipher {
    ferry_core::Cipher::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

fn credentials(env: &Env, store: &str, app: &AppInfo, grant: Grant) -> Arc<OAuth> {
    let o = OAuth::new(
        env.db.clone(),
        env.queue.clock(),
        cipher(),
        &ferry_connect::Outbound::insecure(),
        &format!("shopify:{store}"),
        &format!("{}/admin/oauth/access_token", env.mock.shop_url(store)),
    )
    .for_app(
        grant,
        &app.client_id,
        Secret::new(app.client_secret.clone()),
    );
    Arc::new(o)
}

fn connector(env: &Env, store: &str, creds: Arc<OAuth>) -> ShopifyConnector {
    let client = ferry_connect::Client::new(env.db.clone(), env.queue.clock(), "shopify", quick());
    ShopifyConnector::new(client, &env.mock.graphql_url(store), creds)
}

async fn read(shop: &ShopifyConnector) -> Result<Value, ConnectError> {
    shop.graphql("query Shop", "{ shop { name } }", json!({}), 2.0)
        .await
}

async fn client_credentials_are_renewed_before_expiry_and_after_a_401(db: TestDb) {
    let (env, clock) = Env::start_shared_clock(db).await;
    let p = env.mock.platform();
    p.create_store(Some("shop")).unwrap();
    p.create_store(Some("elsewhere")).unwrap();
    p.set_organization("elsewhere", "org-2").unwrap();
    let app = p.create_app("ferry", DEFAULT_ORGANIZATION, SCOPES);
    p.set_token_ttl(Some(Duration::from_secs(10)));
    let creds = credentials(&env, "shop", &app, Grant::ClientCredentials);
    let shop = connector(&env, "shop", creds.clone());

    // 20 callers with no token yet: one grant.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let s = shop.clone();
        tasks.spawn(async move { read(&s).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(p.app_counters(&app.client_id).client_credentials, 1);
    let status = creds.status().await.unwrap().unwrap();
    assert_eq!(status.state, "ok");
    assert!(status.scopes.contains("write_inventory"), "{status:?}");

    // Inside the last 10% of its life the token is renewed first: no call sees it expire.
    clock.advance(Duration::from_millis(9_500));
    read(&shop).await.unwrap();
    let c = p.app_counters(&app.client_id);
    assert_eq!((c.client_credentials, c.expired_calls), (2, 0));

    // Expired early at the platform: one 401, one renewal, the call replayed.
    p.expire_app_tokens(&app.client_id);
    read(&shop).await.unwrap();
    let c = p.app_counters(&app.client_id);
    assert_eq!((c.client_credentials, c.expired_calls), (3, 1));

    // A store outside the app's organization: the platform's refusal, by its code only.
    let other = connector(
        &env,
        "elsewhere",
        credentials(&env, "elsewhere", &app, Grant::ClientCredentials),
    );
    let e = read(&other).await.unwrap_err();
    assert!(
        matches!(&e, ConnectError::Refused { code, .. } if code == "shop_not_permitted"),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(
        !e.to_string().contains(&app.client_secret),
        "no secret in errors"
    );
}

/// Installs the app on `store` as a merchant would (consent, the signed redirect, the code
/// exchanged): the tokens, stored in `creds`.
async fn install(env: &Env, store: &str, app: &AppInfo, creds: &OAuth) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(format!(
            "{}/admin/oauth/authorize",
            env.mock.shop_url(store)
        ))
        .query(&[
            ("client_id", app.client_id.as_str()),
            ("scope", &SCOPES.join(",")),
            (
                "redirect_uri",
                "https://ferry.example.com/oauth/shopify/callback",
            ),
            ("state", "nonce"),
        ])
        .answer()
        .await;
    let page = r.text().await.unwrap();
    let (action, fields) = ferry_mock::consent_form(&page).expect("the consent page");
    let r = http
        .post(format!("{}{action}", env.mock.url()))
        .form(&fields)
        .answer()
        .await;
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let t: Value = http
        .post(format!(
            "{}/admin/oauth/access_token",
            env.mock.shop_url(store)
        ))
        .json(&json!({"client_id": app.client_id, "client_secret": app.client_secret, "code": code, "expiring": 1}))
        .answer()
        .await
        .json()
        .await
        .unwrap();
    creds
        .store_tokens(
            &Secret::new(t["access_token"].as_str().unwrap().to_owned()),
            t["expires_in"].as_i64().unwrap(),
            &Secret::new(t["refresh_token"].as_str().unwrap().to_owned()),
            t["scope"].as_str().unwrap(),
        )
        .await
        .unwrap();
}

async fn offline_tokens_rotate_fall_back_once_then_ask_for_a_new_installation(db: TestDb) {
    let (env, _clock) = Env::start_shared_clock(db).await;
    let p = env.mock.platform();
    p.create_store(Some("shop")).unwrap();
    let app = p.create_app("ferry", "org-9", SCOPES);
    let creds = credentials(&env, "shop", &app, Grant::Refresh);
    install(&env, "shop", &app, &creds).await;
    let shop = connector(&env, "shop", creds.clone());
    read(&shop).await.unwrap();

    // Expired: a 401, the refresh token used (and rotated), the call replayed.
    p.expire_app_tokens(&app.client_id);
    read(&shop).await.unwrap();
    assert_eq!(p.app_counters(&app.client_id).refreshes, 1);

    // The new refresh token is refused: the one before it (still valid, its successor never
    // used) is tried once and carries on.
    p.forget_unused_refresh_tokens(&app.client_id);
    p.expire_app_tokens(&app.client_id);
    read(&shop).await.unwrap();
    let c = p.app_counters(&app.client_id);
    assert_eq!((c.refreshes, c.refresh_refused), (2, 1));

    // Every refresh token revoked: the store needs a new installation, calls wait (snooze)
    // and do not ask the platform again.
    p.revoke_refresh_tokens(&app.client_id);
    p.expire_app_tokens(&app.client_id);
    let e = read(&shop).await.unwrap_err();
    assert!(matches!(e, ConnectError::Reauthorize { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Open);
    let status = creds.status().await.unwrap().unwrap();
    assert_eq!(status.state, "needs_reauthorization");
    assert!(status.reason.unwrap().contains("invalid_grant"));
    let refused = p.app_counters(&app.client_id).refresh_refused;
    let again = read(&shop).await.unwrap_err();
    assert!(matches!(again, ConnectError::Reauthorize { .. }), "{again}");
    assert_eq!(
        p.app_counters(&app.client_id).refresh_refused,
        refused,
        "not asked again"
    );

    // Installed again: back to work.
    install(&env, "shop", &app, &creds).await;
    read(&shop).await.unwrap();
    assert_eq!(creds.status().await.unwrap().unwrap().state, "ok");
}
