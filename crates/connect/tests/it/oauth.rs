use std::sync::Arc;
use std::time::Duration;

use ferry_connect::oauth::OAuth;
use ferry_connect::rest::RestConnector;
use ferry_connect::{Credentials, ErrorClass, Secret};
use ferry_testkit::TestDb;
use serde_json::json;

use crate::{Env, quick};

ferry_testkit::conformance!(
    tokens_refresh_ahead_of_expiry_once_for_all_callers,
    a_401_refreshes_once_and_rotated_tokens_survive_a_restart,
);

/// One key for every process of a test: a restarted process opens what the first sealed.
fn cipher() -> ferry_core::Cipher {
    ferry_core::Cipher::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

fn oauth(env: &Env, store: &str) -> Arc<OAuth> {
    let mut o = OAuth::new(
        env.db.clone(),
        env.queue.clock(),
        cipher(),
        &ferry_connect::Outbound::insecure(),
        &format!("oauth:{store}"),
        &env.mock.oauth_url(store),
    );
    // Half of the 3 s lifetime the first test gives.
    o.margin = 0.5;
    Arc::new(o)
}

/// The store's OAuth credentials holding `refresh`, and a REST connector using them.
async fn connected(env: &Env, refresh: String) -> (Arc<OAuth>, RestConnector) {
    let creds = oauth(env, "shop");
    creds
        .store_refresh_token(&Secret::new(refresh))
        .await
        .unwrap();
    let rest = RestConnector::new(
        env.client(quick()),
        &env.mock.rest_url("shop"),
        creds.clone(),
    );
    (creds, rest)
}

async fn tokens_refresh_ahead_of_expiry_once_for_all_callers(db: TestDb) {
    let (env, clock) = Env::start_fake(db).await;
    let p = env.mock.platform();
    p.create_store(Some("shop")).unwrap();
    let first = p.enable_oauth("shop", 3_000).unwrap();
    let (creds, rest) = connected(&env, first).await;

    // 20 callers at once with no token yet: one refresh.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let r = rest.clone();
        tasks.spawn(async move { r.put(&format!("i{i}"), &json!({})).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(
        p.oauth_counters("shop").unwrap().refreshes,
        1,
        "single flight"
    );

    // Within `skew` of the expiry, the next call refreshes first: no 401 on the way.
    let before = creds.token().await.unwrap();
    clock.advance(Duration::from_millis(1_600));
    rest.put("later", &json!({})).await.unwrap();
    assert_eq!(p.oauth_counters("shop").unwrap().refreshes, 2);
    assert_ne!(creds.token().await.unwrap(), before);
    assert_eq!(
        p.counters("shop").unwrap().rest_requests,
        21,
        "no request was refused"
    );
    assert!(
        !format!("{creds:?}").contains("shp"),
        "Debug never shows a token"
    );
}

async fn rest2_token(env: &Env) -> String {
    oauth(env, "shop")
        .token()
        .await
        .unwrap()
        .expose()
        .to_owned()
}

async fn a_401_refreshes_once_and_rotated_tokens_survive_a_restart(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    p.create_store(Some("shop")).unwrap();
    let first = p.enable_oauth("shop", 600_000).unwrap();
    let (_creds, rest) = connected(&env, first.clone()).await;
    rest.put("a", &json!({})).await.unwrap();

    // The platform revokes the access token: a 401, one refresh, the call goes through.
    p.revoke_access_tokens("shop").unwrap();
    rest.put("b", &json!({})).await.unwrap();
    assert_eq!(p.oauth_counters("shop").unwrap().refreshes, 2);

    // Another process (a fresh credential object on the same database) carries on with the
    // rotated refresh token; the first one no longer works at the platform.
    let restarted = oauth(&env, "shop");
    let rest2 = RestConnector::new(env.client(quick()), &env.mock.rest_url("shop"), restarted);
    p.revoke_access_tokens("shop").unwrap();
    rest2.put("c", &json!({})).await.unwrap();
    assert_eq!(p.oauth_counters("shop").unwrap().refused, 0);
    let stored: (String, String) = ferry_db::row!(
        &env.db,
        (String, String),
        "SELECT access_token, refresh_token FROM ferry_credentials WHERE key = $1",
        "oauth:shop"
    )
    .unwrap()
    .unwrap();
    let live = rest2_token(&env).await;
    assert!(
        stored.0.starts_with("v1:") && stored.1.starts_with("v1:") && !stored.0.contains(&live),
        "tokens are sealed at rest"
    );
    let stale = oauth(&env, "other");
    stale
        .store_refresh_token(&Secret::new(first))
        .await
        .unwrap();
    let e = stale.token().await.unwrap_err();
    assert!(
        matches!(e, ferry_connect::ConnectError::Reauthorize { .. }),
        "the first refresh token was rotated away: {e}"
    );
    assert_eq!(e.class(), ErrorClass::Open, "calls wait, no attempt spent");
    assert_eq!(
        stale.status().await.unwrap().unwrap().state,
        "needs_reauthorization"
    );
    assert_eq!(p.items("shop").unwrap().len(), 3);
}
