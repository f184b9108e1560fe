//! Dev Dashboard apps: the token endpoint's three grants, the install redirect, expiry,
//! rotation with its grace rule, and webhooks signed with the app's secret.

use std::time::Duration;

use ferry_mock::{AppInfo, DEFAULT_ORGANIZATION, StoreInfo, consent_form, sign_query};
use ferry_testkit::Answered;
use serde_json::{Value, json};

use crate::Harness;

const SCOPES: &[&str] = &["read_products", "write_products", "read_inventory"];

async fn token_form(h: &Harness, store: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = h
        .http
        .post(format!(
            "{}/admin/oauth/access_token",
            h.server.shop_url(store)
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
        .answer()
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn token_json(h: &Harness, store: &str, body: Value) -> (u16, Value) {
    let r = h
        .http
        .post(format!(
            "{}/admin/oauth/access_token",
            h.server.shop_url(store)
        ))
        .json(&body)
        .answer()
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The status of a products query made with `token`.
async fn call_with(h: &Harness, store: &str, token: &str) -> u16 {
    h.http
        .post(h.server.graphql_url(store))
        .header("X-Shopify-Access-Token", token)
        .json(&json!({"query": "{ shop { name } }"}))
        .answer()
        .await
        .status()
        .as_u16()
}

fn app(h: &Harness) -> AppInfo {
    h.server
        .platform()
        .create_app("ferry", DEFAULT_ORGANIZATION, SCOPES)
}

#[tokio::test]
async fn client_credentials_give_a_day_long_token_to_the_organizations_stores() {
    let h = Harness::start().await;
    h.shop("own", 1, 1);
    h.shop("other", 1, 1);
    h.server
        .platform()
        .set_organization("other", "org-2")
        .unwrap();
    let a = app(&h);
    let (status, t) = token_form(
        &h,
        "own",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &a.client_id),
            ("client_secret", &a.client_secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_in"], 86399);
    assert_eq!(t["scope"], "read_products,write_products,read_inventory");
    assert!(t.get("refresh_token").is_none(), "no refresh token");
    let token = t["access_token"].as_str().unwrap();
    assert_eq!(call_with(&h, "own", token).await, 200);
    assert_eq!(
        call_with(&h, "other", token).await,
        401,
        "one store's token"
    );

    // A JSON body works the same; another organization's store is refused.
    let (status, t) = token_json(
        &h,
        "other",
        json!({"grant_type": "client_credentials", "client_id": a.client_id, "client_secret": a.client_secret}),
    )
    .await;
    assert_eq!(
        (status, t["error"].as_str()),
        (400, Some("shop_not_permitted"))
    );
    let (status, t) = token_form(
        &h,
        "own",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &a.client_id),
            ("client_secret", "shpss_wrong"),
        ],
    )
    .await;
    assert_eq!((status, t["error"].as_str()), (401, Some("invalid_client")));

    // A day later the token is refused like Shopify refuses it.
    h.clock.advance(Duration::from_secs(86_400));
    assert_eq!(call_with(&h, "own", token).await, 401);
    assert_eq!(
        h.server.platform().app_counters(&a.client_id).expired_calls,
        1
    );
}

#[tokio::test]
async fn a_token_asked_for_while_the_last_one_is_young_counts_as_a_race() {
    let h = Harness::start().await;
    h.shop("own", 1, 1);
    h.shop("second", 1, 1);
    let a = app(&h);
    let grant = |store: &'static str| {
        let a = a.clone();
        let h = &h;
        async move {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", a.client_id.as_str()),
                ("client_secret", a.client_secret.as_str()),
            ];
            assert_eq!(token_form(h, store, &form).await.0, 200);
        }
    };
    let races = || h.server.platform().app_counters(&a.client_id).early_grants;
    grant("own").await;
    grant("second").await;
    assert_eq!(races(), 0, "a first token per store");
    // Renewed in the last tenth of its day: no race.
    h.clock.advance(Duration::from_secs(86_400 * 9 / 10));
    grant("own").await;
    assert_eq!(races(), 0);
    // Asked again at once, as a second process renewing the same store would.
    grant("own").await;
    assert_eq!(races(), 1);
}

/// The install redirect's query, with its signature checked as an app checks it.
async fn install(h: &Harness, a: &AppInfo, store: &str) -> Vec<(String, String)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(format!(
            "{}/admin/oauth/authorize",
            h.server.shop_url(store)
        ))
        .query(&[
            ("client_id", a.client_id.as_str()),
            ("scope", "read_products,write_products,read_orders"),
            (
                "redirect_uri",
                "https://ferry.example.com/oauth/shopify/callback",
            ),
            ("state", "nonce-1"),
            ("grant_options[]", ""),
        ])
        .answer()
        .await;
    assert_eq!(r.status(), 200, "the consent page");
    let page = r.text().await.unwrap();
    assert!(page.contains("Install ferry on "), "{page}");
    assert!(
        page.contains("<li>read_products</li>") && !page.contains("<li>read_orders</li>"),
        "it lists what the app may be granted: {page}"
    );
    // The merchant presses Install.
    let (action, fields) = consent_form(&page).expect("an Install form");
    let r = http
        .post(format!("{}{action}", h.server.url()))
        .form(&fields)
        .answer()
        .await;
    assert_eq!(r.status(), 303, "redirected back");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    assert_eq!(url.path(), "/oauth/shopify/callback");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("shop").as_deref(),
        Some(&*format!("{store}.myshopify.com"))
    );
    assert_eq!(get("state").as_deref(), Some("nonce-1"));
    let signed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        get("hmac").unwrap(),
        sign_query(&a.client_secret, &signed),
        "the query is signed with the client secret"
    );
    pairs
}

#[tokio::test]
async fn the_install_flow_gives_an_expiring_offline_token_whose_refresh_token_rotates() {
    let h = Harness::start().await;
    let s: StoreInfo = h.shop("shop", 1, 1);
    let a = app(&h);
    let pairs = install(&h, &a, "shop").await;
    let code = pairs.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let (status, t) = token_json(
        &h,
        "shop",
        json!({"client_id": a.client_id, "client_secret": a.client_secret, "code": code, "expiring": 1}),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(
        t["scope"], "read_products,write_products",
        "only what the app may ask"
    );
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        call_with(&h, "shop", t["access_token"].as_str().unwrap()).await,
        200
    );
    // A code is used once.
    let (status, t) = token_json(
        &h,
        "shop",
        json!({"client_id": a.client_id, "client_secret": a.client_secret, "code": code}),
    )
    .await;
    assert_eq!((status, t["error"].as_str()), (400, Some("invalid_grant")));

    let refresh = |token: String| {
        let (id, secret) = (a.client_id.clone(), a.client_secret.clone());
        let h = &h;
        async move {
            token_form(
                h,
                "shop",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                    ("refresh_token", &token),
                ],
            )
            .await
        }
    };
    // R1 gives R2; R1 still works until R2 is first used (the grace rule), then it does not.
    let (status, t) = refresh(r1.clone()).await;
    assert_eq!(status, 200, "{t}");
    let r2 = t["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "rotated");
    let (status, t) = refresh(r1.clone()).await;
    assert_eq!(
        status, 200,
        "the previous one, before the new one is used: {t}"
    );
    let (status, _) = refresh(r2.clone()).await;
    assert_eq!(status, 200);
    let (status, t) = refresh(r1).await;
    assert_eq!((status, t["error"].as_str()), (400, Some("invalid_grant")));
    let c = h.server.platform().app_counters(&a.client_id);
    assert_eq!(
        (c.codes_exchanged, c.refreshes, c.refresh_refused),
        (1, 3, 1)
    );
    let _ = s;
}

#[tokio::test]
async fn webhooks_subscribed_by_an_app_are_signed_with_its_client_secret() {
    let h = Harness::start().await;
    h.shop("shop", 1, 1);
    let a = app(&h);
    h.server
        .platform()
        .set_token_ttl(Some(Duration::from_secs(5)));
    let (_, t) = token_form(
        &h,
        "shop",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &a.client_id),
            ("client_secret", &a.client_secret),
        ],
    )
    .await;
    assert_eq!(t["expires_in"], 5, "--token-ttl-s shortens it");
    let token = t["access_token"].as_str().unwrap();
    // A receiver that keeps what it is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let app_router = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let hmac = headers["x-shopify-hmac-sha256"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let _ = tx.send((hmac, body.to_vec()));
                    "ok"
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app_router).await });
    let created = h
        .http
        .post(h.server.graphql_url("shop"))
        .header("X-Shopify-Access-Token", token)
        .json(&json!({"query": format!(
            "mutation {{ webhookSubscriptionCreate(topic: PRODUCTS_UPDATE, webhookSubscription: {{uri: \"http://{addr}/hook\"}}) {{ userErrors {{ message }} }} }}"
        )}))
        .answer()
        .await;
    assert_eq!(created.status(), 200);
    let p = h.server.platform();
    assert_eq!(
        p.subscriptions("shop").len(),
        1,
        "{}",
        created.text().await.unwrap()
    );
    let product = p.snapshot("shop").unwrap()["products"][0]["id"]
        .as_u64()
        .unwrap();
    p.merchant_edit_product("shop", product, ferry_mock::ProductSpec::titled("Renamed"))
        .unwrap();
    let (hmac, body) = rx.recv().await.unwrap();
    assert_eq!(hmac, ferry_mock::shopify_hmac(&a.client_secret, &body));
}
