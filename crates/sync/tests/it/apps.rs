//! Stores reached through a Dev Dashboard app (the 2026 way): a child on the client
//! credentials grant joins the network, syncs, and keeps syncing while its tokens expire.

use ferry_mock::{DEFAULT_ORGANIZATION, OrderLine};
use ferry_sync::Rules;
use ferry_sync::credentials::{AppRef, Kind, NEEDED_SCOPES};
use ferry_sync::network::Role;
use ferry_testkit::TestDb;

use ferry_testkit::Answered;

use crate::{Net, PARENT, same};

ferry_testkit::conformance! {
    a_store_missing_a_scope_is_not_connected,
    a_child_on_client_credentials_syncs_across_token_lifetimes,
    a_child_installed_through_the_install_flow_syncs,
    a_legacy_token_missing_a_scope_is_not_connected,
}

async fn a_child_on_client_credentials_syncs_across_token_lifetimes(db: TestDb) {
    let mut net = Net::unconnected(db, 1, 4, Rules::default()).await;
    let p = net.platform().clone();
    let app = p.create_app("ferry", DEFAULT_ORGANIZATION, &NEEDED_SCOPES);
    p.create_store(Some("app-child")).unwrap();
    let engine = net.stack.engine.clone();
    engine
        .network()
        .put_app(
            "ferry",
            &app.client_id,
            &app.client_secret,
            &NEEDED_SCOPES.join(","),
        )
        .await
        .unwrap();
    engine
        .add_app_store(
            "app-child",
            Role::Child,
            "app-child.myshopify.com",
            Kind::ClientCredentials,
            &AppRef::Named("ferry".into()),
            &Rules::default(),
        )
        .await
        .unwrap();
    net.children.push("app-child".into());
    net.connect_all().await;
    net.assert_in_sync(same);
    let view = engine.access_view("app-child").await.unwrap();
    assert_eq!(view.credentials, Kind::ClientCredentials);
    assert_eq!(view.app, "ferry");
    let token = view.token.expect("a token was obtained");
    assert_eq!(token.state, "ok");
    assert!(view.missing_scopes.is_empty(), "{:?}", view.missing_scopes);

    // Sales in the app's store, its tokens expiring at the platform in between: every call
    // refused for an expired token is renewed and replayed; the webhooks, signed with the
    // app's client secret, are accepted.
    let sku = "SKU-000001-1";
    let before = net.by_sku(PARENT)[sku].2;
    for _ in 0..3 {
        p.expire_app_tokens(&app.client_id);
        p.place_order(
            "app-child",
            &[OrderLine {
                variant_id: None,
                sku: Some(sku.into()),
                quantity: 1,
            }],
        )
        .unwrap();
        net.quiet().await;
    }
    net.assert_in_sync(same);
    assert_eq!(net.by_sku(PARENT)[sku].2, before - 3, "each sale once");
    let c = p.app_counters(&app.client_id);
    assert!(c.client_credentials >= 2, "renewed: {c:?}");
    assert!(
        net.dead_jobs().await.is_empty(),
        "{:?}",
        net.dead_jobs().await
    );
}

/// `GET url` without following a redirect: the status and where it points.
async fn hop(url: &str) -> (u16, String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(url).answer().await;
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

/// The merchant presses Install on the consent page at `url`: where the platform sends them.
async fn press_install(url: &str, page: &str) -> String {
    let (action, fields) = ferry_mock::consent_form(page).expect("an Install form");
    let mut target = reqwest::Url::parse(url).unwrap();
    target.set_query(None);
    target.set_path(&action);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.post(target).form(&fields).answer().await;
    assert_eq!(r.status(), 303);
    r.headers()["location"].to_str().unwrap().to_owned()
}

async fn a_child_installed_through_the_install_flow_syncs(db: TestDb) {
    let mut net = Net::unconnected(db, 1, 4, Rules::default()).await;
    let p = net.platform().clone();
    // Another organization's app: only the install flow reaches this store.
    let app = p.create_app("partner", "org-9", &NEEDED_SCOPES);
    p.create_store(Some("installed")).unwrap();
    let engine = net.stack.engine.clone();
    engine
        .add_app_store(
            "installed",
            Role::Child,
            "installed.myshopify.com",
            Kind::AuthorizationCode,
            &AppRef::Own {
                client_id: app.client_id.clone(),
                client_secret: app.client_secret.clone(),
            },
            &Rules::default(),
        )
        .await
        .unwrap();
    let server = net.stack.server.url();

    // An unknown shop is refused before anything is made.
    let (status, _, _) = hop(&format!(
        "{server}/oauth/shopify/install?shop=nope.myshopify.com"
    ))
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = hop(&format!(
        "{server}/oauth/shopify/install?shop=https://evil.example"
    ))
    .await;
    assert_eq!(status, 400);

    // The merchant's browser: ferry → the store's consent → ferry's callback.
    let (status, consent, _) = hop(&format!(
        "{server}/oauth/shopify/install?shop=installed.myshopify.com"
    ))
    .await;
    assert_eq!(status, 303);
    assert!(
        consent.contains("/stores/installed/admin/oauth/authorize?"),
        "{consent}"
    );
    let (status, _, page) = hop(&consent).await;
    assert_eq!(status, 200);
    assert!(page.contains("Install partner on installed?"), "{page}");
    let callback = press_install(&consent, &page).await;
    assert!(
        callback.starts_with(&format!("{server}/oauth/shopify/callback?")),
        "{callback}"
    );

    // A forged signature is refused and does not use up the state.
    let forged = callback.replace("hmac=", "hmac=0");
    let (status, _, body) = hop(&forged).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("hmac"), "{body}");
    let (status, _, page) = hop(&callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("installed is connected"), "{page}");
    // The same callback again: the state was single-use.
    let (status, _, body) = hop(&callback).await;
    assert_eq!(status, 400);
    assert!(body.contains("state"), "{body}");

    let view = engine.access_view("installed").await.unwrap();
    assert_eq!(view.credentials, Kind::AuthorizationCode);
    assert_eq!(view.token.unwrap().state, "ok");
    net.children.push("installed".into());
    net.connect_all().await;
    net.assert_in_sync(same);
    // Beside it, a child of the merchant's own organization on the client credentials grant.
    let own = p.create_app("ferry", DEFAULT_ORGANIZATION, &NEEDED_SCOPES);
    p.create_store(Some("cc-child")).unwrap();
    p.seed_catalog("cc-child", 4, 2).unwrap();
    engine
        .add_app_store(
            "cc-child",
            Role::Child,
            "cc-child.myshopify.com",
            Kind::ClientCredentials,
            &AppRef::Own {
                client_id: own.client_id.clone(),
                client_secret: own.client_secret.clone(),
            },
            &Rules::default(),
        )
        .await
        .unwrap();
    net.children.push("cc-child".into());
    net.connect_all().await;
    net.assert_in_sync(same);

    // Three token lifetimes end while the parent is edited and both children sell: the
    // refresh token rotates, the client credentials are granted again, every call refused for
    // an expired token is renewed and replayed, and the network converges.
    let sku = "SKU-000002-1";
    let before = net.by_sku(PARENT)[sku].2;
    let parent_product = p.snapshot(PARENT).unwrap()["products"][0]["id"]
        .as_u64()
        .unwrap();
    for round in 0..3 {
        p.expire_app_tokens(&app.client_id);
        p.expire_app_tokens(&own.client_id);
        p.merchant_edit_product(
            PARENT,
            parent_product,
            ferry_mock::ProductSpec::titled(format!("Lifetime {round}")),
        )
        .unwrap();
        for child in ["installed", "cc-child"] {
            p.place_order(
                child,
                &[OrderLine {
                    variant_id: None,
                    sku: Some(sku.into()),
                    quantity: 1,
                }],
            )
            .unwrap();
        }
        net.quiet().await;
    }
    net.assert_in_sync(same);
    assert_eq!(net.by_sku(PARENT)[sku].2, before - 6, "each sale once");
    let (installed, granted) = (
        p.app_counters(&app.client_id),
        p.app_counters(&own.client_id),
    );
    assert!(installed.refreshes >= 3, "{installed:?}");
    assert!(granted.client_credentials >= 4, "{granted:?}");
    assert!(
        installed.expired_calls > 0 && granted.expired_calls > 0,
        "expired tokens were met: {installed:?} {granted:?}"
    );
    assert_eq!(installed.refresh_refused, 0, "{installed:?}");
    // Every 401 was answered by a renewal and a replay: nothing failed for good.
    assert!(
        net.dead_jobs().await.is_empty(),
        "{:?}",
        net.dead_jobs().await
    );
}

async fn a_store_missing_a_scope_is_not_connected(db: TestDb) {
    let net = Net::unconnected(db, 1, 2, Rules::default()).await;
    let p = net.platform().clone();
    // An app configured without write_files and read_orders.
    let scopes: Vec<&str> = NEEDED_SCOPES
        .into_iter()
        .filter(|s| *s != "write_files" && *s != "read_orders")
        .collect();
    let app = p.create_app("narrow", DEFAULT_ORGANIZATION, &scopes);
    p.create_store(Some("narrow")).unwrap();
    let engine = net.stack.engine.clone();
    engine
        .add_app_store(
            "narrow",
            Role::Child,
            "narrow.myshopify.com",
            Kind::ClientCredentials,
            &AppRef::Own {
                client_id: app.client_id.clone(),
                client_secret: app.client_secret.clone(),
            },
            &Rules::default(),
        )
        .await
        .unwrap();
    net.connect_all().await;
    engine.connect_store("narrow").await.unwrap();
    net.quiet().await;
    let dead = net.dead_jobs().await;
    let error = dead
        .iter()
        .find_map(|j| j.last_error.clone())
        .expect("the connect job failed");
    assert!(
        error.contains("read_orders") && error.contains("write_files"),
        "{error}"
    );
    let store = engine.network().store("narrow").await.unwrap();
    assert_ne!(
        store.state,
        ferry_sync::network::StoreState::Connected,
        "not connected"
    );
    let view = engine.access_view("narrow").await.unwrap();
    assert_eq!(view.missing_scopes, vec!["read_orders", "write_files"]);
}

async fn a_legacy_token_missing_a_scope_is_not_connected(db: TestDb) {
    let net = Net::unconnected(db, 1, 2, Rules::default()).await;
    // A legacy custom app configured without read_locations (write_products implies the read).
    net.platform()
        .set_static_scopes(
            "child-1",
            &[
                "write_products",
                "write_inventory",
                "read_orders",
                "write_files",
            ],
        )
        .unwrap();
    net.connect_all().await;
    let error = net
        .dead_jobs()
        .await
        .iter()
        .find_map(|j| j.last_error.clone())
        .expect("the connect job failed");
    assert!(
        error.contains("child-1 did not grant the scopes ferry needs: read_locations"),
        "{error}"
    );
    let child = net.stack.engine.network().store("child-1").await.unwrap();
    assert_ne!(child.state, ferry_sync::network::StoreState::Connected);
    let parent = net.stack.engine.network().store(PARENT).await.unwrap();
    assert_eq!(
        parent.state,
        ferry_sync::network::StoreState::Connected,
        "the parent's token holds them all"
    );
}
