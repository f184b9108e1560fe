//! The network's admin routes over real HTTP: behind the bearer token, secrets write-only,
//! bad input refused with a JSON error and nothing stored.

use ferry_sync::Rules;
use ferry_testkit::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, Net};

async fn call(net: &Net, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", net.stack.server.url()))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn the_network_api_lists_links_audit_and_runs(db: TestDb) {
    let net = Net::start(db, 1, 3, Rules::default()).await;
    let url = net.stack.server.url();
    for path in ["/api/network/stores", "/api/audit", "/api/sync/runs"] {
        let r = reqwest::get(format!("{url}{path}")).await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} needs the token");
    }
    let (s, stores) = call(&net, Method::GET, "/api/network/stores", None).await;
    assert_eq!(s, 200);
    let items = stores["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["role"], "parent");
    let token = net.platform().store_info("child-1").unwrap().access_token;
    assert!(
        !stores.to_string().contains(&token),
        "tokens are write-only"
    );

    let (s, links) = call(
        &net,
        Method::GET,
        "/api/network/stores/child-1/links?limit=2",
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(links["items"].as_array().unwrap().len(), 2);
    let next = links["next"].as_str().unwrap().to_owned();
    let (_, rest) = call(
        &net,
        Method::GET,
        &format!(
            "/api/network/stores/child-1/links?limit=2&after={}",
            urlencode(&next)
        ),
        None,
    )
    .await;
    assert_eq!(
        rest["items"].as_array().unwrap().len(),
        1,
        "3 products, pages of 2"
    );
    assert!(rest["items"][0]["state"] == "linked");

    let (s, audit) = call(&net, Method::GET, "/api/audit?store=child-1", None).await;
    assert_eq!(s, 200);
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "update" && e["cause"] == "connect child-1")
    );

    let (s, r) = call(
        &net,
        Method::POST,
        "/api/sync/reconcile",
        Some(json!({"child": "child-1", "full": true})),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    net.quiet().await;
    let (_, runs) = call(&net, Method::GET, "/api/sync/runs", None).await;
    assert_eq!(runs["items"][0]["state"], "done");
    assert_eq!(runs["items"][0]["checked"], 3);
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

async fn bad_input_is_refused_and_changes_nothing(db: TestDb) {
    let net = Net::start(db, 1, 1, Rules::default()).await;
    let cases = [
        (json!({"name": "x"}), 400),
        (
            json!({"name": "new", "role": "uncle", "graphql_url": "http://a", "token": "t", "webhook_secret": "0123456789"}),
            400,
        ),
        (
            json!({"name": "new", "role": "child", "graphql_url": "ftp://a", "token": "t", "webhook_secret": "0123456789"}),
            400,
        ),
        (
            json!({"name": "new", "role": "parent", "graphql_url": "http://a", "token": "t", "webhook_secret": "0123456789"}),
            400,
        ),
        (
            json!({"name": "child-1", "role": "child", "graphql_url": "http://a", "token": "t", "webhook_secret": "0123456789"}),
            409,
        ),
    ];
    for (body, want) in cases {
        let (s, e) = call(
            &net,
            Method::POST,
            "/api/network/stores",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, want, "{body} → {e}");
        assert!(
            e["error"]["code"].is_string() && e["error"]["message"].is_string(),
            "{e}"
        );
    }
    let (_, stores) = call(&net, Method::GET, "/api/network/stores", None).await;
    assert_eq!(
        stores["items"].as_array().unwrap().len(),
        2,
        "nothing was added"
    );
    let (s, e) = call(
        &net,
        Method::PUT,
        "/api/network/stores/child-1/rules",
        Some(json!({"price": {"ending": "99"}})),
    )
    .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")));
    let (s, _) = call(&net, Method::GET, "/api/network/stores/nope", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&net, Method::POST, "/api/network/stores/nope/connect", None).await;
    assert_eq!(s, 404);
    let (s, e) = call(
        &net,
        Method::POST,
        "/api/sync/reconcile",
        Some(json!({"child": "parent"})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let rules = net
        .stack
        .engine
        .network()
        .store("child-1")
        .await
        .unwrap()
        .rules;
    assert_eq!(rules, Rules::default(), "the refused rules were not saved");
}

ferry_testkit::conformance!(
    the_network_api_lists_links_audit_and_runs,
    bad_input_is_refused_and_changes_nothing,
);
