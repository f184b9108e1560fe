//! Bulk operations: a catalog export as JSONL with `__parentId`, Shopify's validation and
//! limits, cancel, a failure with partial data, expiring result URLs, bulk mutations from a
//! staged upload, and the `bulk_operations/finish` webhook.

use std::time::Duration;

use ferry_mock::{BulkSettings, StoreInfo};
use serde_json::{Value, json};

use crate::Harness;

const EXPORT: &str = r#"{ products { edges { node { id title variants { edges { node { id sku inventoryItem { id } } } } collections { edges { node { id handle } } } } } } }"#;

async fn run(h: &Harness, s: &StoreInfo, query: &str) -> Value {
    let r = h
        .gql(
            s,
            "mutation Run($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id status } userErrors { field message code } } }",
            json!({ "q": query }),
        )
        .await;
    r["data"]["bulkOperationRunQuery"].clone()
}

async fn status(h: &Harness, s: &StoreInfo, id: &str) -> Value {
    let r = h
        .gql(
            s,
            "query Op($id: ID!) { bulkOperation(id: $id) { id status errorCode objectCount rootObjectCount fileSize url partialDataUrl } }",
            json!({ "id": id }),
        )
        .await;
    r["data"]["bulkOperation"].clone()
}

/// Follows an operation until it is no longer running (the clock moved on each look, so the
/// rate lets it go on).
async fn finished(h: &Harness, s: &StoreInfo, id: &str) -> Value {
    for _ in 0..2_000 {
        let op = status(h, s, id).await;
        if !matches!(op["status"].as_str(), Some("CREATED" | "RUNNING")) {
            return op;
        }
        h.clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("operation {id} never finished");
}

async fn lines(h: &Harness, url: &str) -> Vec<Value> {
    let body = h.http.get(url).send().await.unwrap().text().await.unwrap();
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_catalog_export_is_jsonl_with_children_after_their_parent() {
    let h = Harness::start().await;
    let s = h.shop("shop", 600, 3);
    let started = run(&h, &s, EXPORT).await;
    assert_eq!(started["userErrors"], json!([]));
    assert_eq!(started["bulkOperation"]["status"], "CREATED");
    let id = started["bulkOperation"]["id"].as_str().unwrap().to_owned();
    let op = finished(&h, &s, &id).await;
    assert_eq!(op["status"], "COMPLETED", "{op}");
    assert_eq!(op["rootObjectCount"], "600");
    let all = lines(&h, op["url"].as_str().unwrap()).await;
    assert_eq!(op["objectCount"], all.len().to_string());
    let products: Vec<&Value> = all.iter().filter(|l| l["__parentId"].is_null()).collect();
    assert_eq!(products.len(), 600);
    let mut seen = std::collections::HashSet::new();
    let mut variants = 0;
    for l in &all {
        match l["__parentId"].as_str() {
            None => {
                assert!(
                    l.get("variants").is_none(),
                    "connections are lines of their own"
                );
                seen.insert(l["id"].as_str().unwrap().to_owned());
            }
            Some(p) => {
                assert!(seen.contains(p), "a child comes after its parent: {l}");
                if l["id"].as_str().unwrap().contains("ProductVariant") {
                    variants += 1;
                    assert!(l["inventoryItem"]["id"].is_string());
                }
            }
        }
    }
    assert_eq!(variants, 1800);
}

#[tokio::test]
async fn queries_are_validated_and_limited_as_shopify_does() {
    let h = Harness::start().await;
    // More products than one step reads: a first step runs at once, so a smaller shop's
    // operation could complete before the test cancels it.
    let s = h.shop("shop", 300, 1);
    let six = r#"{ products { nodes { id variants { nodes { id } } collections { nodes { id } } media { nodes { id } } } } collections { nodes { id products { nodes { id } } } } }"#;
    let r = run(&h, &s, six).await;
    assert_eq!(r["bulkOperation"], Value::Null);
    assert_eq!(r["userErrors"][0]["code"], "INVALID");
    let deep = r#"{ collections { nodes { id products { nodes { id variants { nodes { id inventoryItem { inventoryLevels { nodes { id } } } } } } } } } }"#;
    let r = run(&h, &s, deep).await;
    assert!(
        r["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nesting depth"),
        "{r}"
    );
    let r = run(&h, &s, "{ shop { name } }").await;
    assert_eq!(r["userErrors"][0]["code"], "INVALID");

    // At most 5 at once; a slow rate keeps them running.
    h.server
        .platform()
        .set_bulk(
            "shop",
            BulkSettings {
                rows_per_s: 0.001,
                ..BulkSettings::default()
            },
        )
        .unwrap();
    let q = "{ products { nodes { id } } }";
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = run(&h, &s, q).await;
        assert_eq!(r["userErrors"], json!([]), "{r}");
        ids.push(r["bulkOperation"]["id"].as_str().unwrap().to_owned());
    }
    let r = run(&h, &s, q).await;
    assert_eq!(r["userErrors"][0]["code"], "LIMIT_REACHED", "{r}");
    // Cancel frees a place.
    let c = h
        .gql(
            &s,
            "mutation C($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors { message } } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert_eq!(
        c["data"]["bulkOperationCancel"]["bulkOperation"]["status"],
        "CANCELED"
    );
    let last = run(&h, &s, q).await;
    assert_eq!(last["userErrors"], json!([]));
    // Before 2026 a shop ran one at a time.
    h.server
        .platform()
        .set_bulk(
            "shop",
            BulkSettings {
                rows_per_s: 0.001,
                max_running: 1,
                ..BulkSettings::default()
            },
        )
        .unwrap();
    assert_eq!(
        run(&h, &s, q).await["userErrors"][0]["code"],
        "OPERATION_IN_PROGRESS"
    );
    let current = h
        .gql(&s, "{ currentBulkOperation { id status } }", json!({}))
        .await;
    // The newest operation, not yet finished (the runner may not have picked it up yet).
    let current = &current["data"]["currentBulkOperation"];
    assert_eq!(current["id"], last["bulkOperation"]["id"], "{current}");
    let status = current["status"].as_str().unwrap_or_default();
    assert!(["CREATED", "RUNNING"].contains(&status), "{current}");
}

#[tokio::test]
async fn a_failure_keeps_partial_data_and_urls_expire() {
    let h = Harness::start().await;
    let s = h.shop("shop", 1_000, 1);
    h.server
        .platform()
        .set_bulk(
            "shop",
            BulkSettings {
                fail_after_objects: Some(500),
                ..BulkSettings::default()
            },
        )
        .unwrap();
    let rx = crate::webhooks::receiver(0).await;
    h.server
        .platform()
        .subscribe("shop", "bulk_operations/finish", &rx.url)
        .unwrap();
    let r = run(&h, &s, "{ products { nodes { id title } } }").await;
    let id = r["bulkOperation"]["id"].as_str().unwrap().to_owned();
    let op = finished(&h, &s, &id).await;
    assert_eq!(op["status"], "FAILED");
    assert_eq!(op["errorCode"], "INTERNAL_SERVER_ERROR");
    assert_eq!(op["url"], Value::Null);
    let partial = lines(&h, op["partialDataUrl"].as_str().unwrap()).await;
    assert!(
        partial.len() >= 500 && partial.len() < 1_000,
        "{}",
        partial.len()
    );
    for _ in 0..500 {
        if !rx.seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = rx.seen.lock().unwrap().clone();
    let (headers, body) = seen.first().expect("a finish webhook");
    assert_eq!(headers["x-shopify-topic"], "bulk_operations/finish");
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["admin_graphql_api_id"], id.as_str());
    assert_eq!(body["status"], "failed");

    // A completed one's URL expires (here after a minute).
    h.server
        .platform()
        .set_bulk(
            "shop",
            BulkSettings {
                url_ttl_ms: 60_000,
                ..BulkSettings::default()
            },
        )
        .unwrap();
    let r = run(&h, &s, "{ products { nodes { id } } }").await;
    let id = r["bulkOperation"]["id"].as_str().unwrap().to_owned();
    let op = finished(&h, &s, &id).await;
    assert_eq!(op["status"], "COMPLETED");
    let url = op["url"].as_str().unwrap().to_owned();
    assert_eq!(lines(&h, &url).await.len(), 1_000);
    h.clock.advance(Duration::from_secs(61));
    let op = status(&h, &s, &id).await;
    assert_eq!(op["status"], "EXPIRED");
    assert_eq!(op["url"], Value::Null);
    assert_eq!(h.http.get(&url).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn a_bulk_mutation_runs_each_line_of_a_staged_upload() {
    let h = Harness::start().await;
    let s = h.shop("shop", 0, 1);
    let staged = h
        .gql(
            &s,
            r#"mutation { stagedUploadsCreate(input: [{resource: BULK_MUTATION_VARIABLES, filename: "vars.jsonl", mimeType: "text/jsonl", httpMethod: PUT}]) { stagedTargets { url parameters { name value } } userErrors { message } } }"#,
            json!({}),
        )
        .await;
    let target = &staged["data"]["stagedUploadsCreate"]["stagedTargets"][0];
    let key = target["parameters"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut jsonl = String::new();
    for i in 0..30 {
        jsonl.push_str(
            &json!({"input": {"title": format!("Bulk {i}"), "variants": [{"optionValues": [{"optionName": "Size", "name": "M"}], "price": "1.00", "sku": format!("B-{i}")}]}})
                .to_string(),
        );
        jsonl.push('\n');
    }
    jsonl.push_str("not json\n");
    let put = h
        .http
        .put(target["url"].as_str().unwrap())
        .body(jsonl)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let run = h
        .gql(
            &s,
            "mutation R($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { bulkOperation { id } userErrors { code message } } }",
            json!({
                "m": "mutation Set($input: ProductSetInput!) { productSet(input: $input) { product { id title } userErrors { message } } }",
                "p": key,
            }),
        )
        .await;
    let r = &run["data"]["bulkOperationRunMutation"];
    assert_eq!(r["userErrors"], json!([]), "{run}");
    let id = r["bulkOperation"]["id"].as_str().unwrap().to_owned();
    let op = finished(&h, &s, &id).await;
    assert_eq!(op["status"], "COMPLETED", "{op}");
    let results = lines(&h, op["url"].as_str().unwrap()).await;
    assert_eq!(results.len(), 31);
    assert_eq!(
        results[3]["data"]["productSet"]["product"]["title"],
        "Bulk 3"
    );
    assert_eq!(results[30]["__lineNumber"], 30);
    assert!(results[30]["errors"].is_array());
    let count = h
        .gql(&s, "{ products(first: 250) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        count["data"]["products"]["nodes"].as_array().unwrap().len(),
        30
    );
    // A path nobody uploaded to.
    let missing = h
        .gql(
            &s,
            "mutation R($m: String!, $p: String!) { bulkOperationRunMutation(mutation: $m, stagedUploadPath: $p) { bulkOperation { id } userErrors { code } } }",
            json!({"m": "mutation Set($input: ProductSetInput!) { productSet(input: $input) { product { id } } }", "p": "tmp/none"}),
        )
        .await;
    assert_eq!(
        missing["data"]["bulkOperationRunMutation"]["userErrors"][0]["code"],
        "NO_SUCH_FILE"
    );
}
