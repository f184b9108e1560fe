//! The network's admin routes over real HTTP: behind the bearer token, secrets write-only,
//! bad input refused with a JSON error and nothing stored.

use ferry_testkit::Answered;
use std::collections::BTreeSet;

use ferry_sync::Rules;
use ferry_testkit::{Backend, TestDb};
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
    let r = req.answer().await;
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
            409,
        ),
        (
            json!({"name": "child-1", "role": "child", "graphql_url": "http://a", "token": "t", "webhook_secret": "0123456789"}),
            409,
        ),
        // Where a store token may not go: cloud metadata, private ranges, plain http beyond
        // loopback, the unspecified address.
        (
            json!({"name": "new", "role": "child", "graphql_url": "https://169.254.169.254/latest/meta-data", "token": "t", "webhook_secret": "0123456789"}),
            422,
        ),
        (
            json!({"name": "new", "role": "child", "graphql_url": "https://10.0.0.7/admin/api/graphql.json", "token": "t", "webhook_secret": "0123456789"}),
            422,
        ),
        (
            json!({"name": "new", "role": "child", "graphql_url": "http://shop.example.com/graphql", "token": "t", "webhook_secret": "0123456789"}),
            422,
        ),
        (
            json!({"name": "new", "role": "child", "graphql_url": "https://0.0.0.0/graphql", "token": "t", "webhook_secret": "0123456789"}),
            422,
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
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (s, e) = call(
        &net,
        Method::POST,
        "/api/network/stores",
        Some(
            json!({"name": "new", "role": "child", "graphql_url": "https://[fd00::1]/graphql", "token": "t", "webhook_secret": "0123456789"}),
        ),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("unprocessable"))
    );
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("allowed_store_hosts"), "{message}");

    // A network store may not take the name of a webhook store outside the network: its
    // secrets would be replaced.
    let (s, e) = call(
        &net,
        Method::POST,
        "/api/stores",
        Some(json!({"name": "legacy", "platform": "standard", "secret": "whsec_legacy_secret"})),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    let url = net.mock.graphql_url("child-1");
    let (s, e) = call(
        &net,
        Method::POST,
        "/api/network/stores",
        Some(
            json!({"name": "legacy", "role": "child", "graphql_url": url, "token": "t", "webhook_secret": "0123456789"}),
        ),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{e}"
    );
    let (_, legacy) = call(&net, Method::GET, "/api/stores/legacy", None).await;
    assert_eq!(legacy["platform"], "standard", "{legacy}");

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

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_what_the_server_routes() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let net = Net::start(db, 1, 2, Rules::default()).await;
    let url = net.stack.server.url();
    assert_eq!(
        reqwest::get(format!("{url}/api/openapi.json"))
            .await
            .unwrap()
            .status(),
        401,
        "the document is behind the token, like the rest of /api"
    );
    let (s, doc) = call(&net, Method::GET, "/api/openapi.json", None).await;
    assert_eq!(s, 200);
    let committed: Value = serde_json::from_str(ferry_http::openapi::DOCUMENT).unwrap();
    assert_eq!(doc, committed);
    assert_eq!(doc["openapi"], "3.1.0");

    // The document names exactly the routes the server has, method by method.
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ferry_http::admin::operations()
        .iter()
        .chain(ferry_http::app::operations())
        .chain(ferry_http::network_api::operations())
        .chain(ferry_http::orders_api::operations())
        .chain(ferry_http::install::operations())
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routed, "document vs routers");

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }

    // Every operation, called with placeholders, answers one of the statuses it documents,
    // and an error answer is the documented error shape.
    let http = reqwest::Client::new();
    for (method, path) in &documented {
        let op = &paths[path][method.to_lowercase()];
        let concrete = path
            .replace("{platform}", "shopify")
            .replace("{name}", "child-1")
            .replace("{store}", "child-1")
            .replace("{delivery}", "no-such-delivery")
            .replace("{queue}", "sync")
            .replace("{id}", &uuid::Uuid::new_v4().to_string());
        let mut req = http.request(method.parse().unwrap(), format!("{url}{concrete}"));
        if op["security"] != json!([]) {
            req = req.bearer_auth(crate::ADMIN_TOKEN);
        }
        if op["requestBody"]["required"] == true {
            req = req.json(&json!({}));
        }
        let r = req.answer().await;
        let status = r.status().as_u16().to_string();
        let body = r.text().await.unwrap();
        assert!(
            op["responses"].get(&status).is_some(),
            "{method} {concrete} answered {status}, not documented: {body}"
        );
        if !status.starts_with('2') {
            let e: Value = serde_json::from_str(&body).unwrap();
            assert!(
                e["error"]["code"].is_string(),
                "{method} {concrete}: {body}"
            );
        }
    }
}
