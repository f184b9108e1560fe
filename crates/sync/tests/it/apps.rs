//! Stores reached through a Dev Dashboard app (the 2026 way): a child on the client
//! credentials grant joins the network, syncs, and keeps syncing while its tokens expire.

use ferry_mock::{DEFAULT_ORGANIZATION, OrderLine};
use ferry_sync::Rules;
use ferry_sync::credentials::{AppRef, Kind, NEEDED_SCOPES};
use ferry_sync::network::Role;
use ferry_testkit::TestDb;

use crate::{Net, PARENT, same};

ferry_testkit::conformance! {
    a_child_on_client_credentials_syncs_across_token_lifetimes,
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
