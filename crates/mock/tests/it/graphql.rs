//! The Admin GraphQL API: validation, paging, productSet, inventory with idempotency and
//! compare-and-set, cost accounting, webhooks fired by writes.

use ferry_testkit::Answered;
use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Harness;

const PRODUCTS_PAGE: &str = r#"
query Page($after: String, $q: String, $sort: ProductSortKeys) {
  products(first: 10, after: $after, query: $q, sortKey: $sort) {
    edges { cursor node { id title updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}"#;

const ADJUST: &str = r#"
mutation Adjust($input: InventoryAdjustQuantitiesInput!, $key: String!) {
  inventoryAdjustQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange } }
    userErrors { field message code }
  }
}"#;

fn num(gid: &Value) -> u64 {
    gid.as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every product id, paging with the given sort while `between` runs after each page.
async fn page_all(
    h: &Harness,
    store: &ferry_mock::StoreInfo,
    q: Option<&str>,
    sort: &str,
    mut between: impl FnMut(usize),
) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut after = Value::Null;
    for page in 0.. {
        let r = h
            .gql(
                store,
                PRODUCTS_PAGE,
                json!({"after": after, "q": q, "sort": sort}),
            )
            .await;
        let conn = &r["data"]["products"];
        for e in conn["edges"].as_array().unwrap() {
            ids.push(num(&e["node"]["id"]));
        }
        between(page);
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    ids
}

#[tokio::test]
async fn wrong_token_is_401_and_invalid_queries_get_graphql_errors() {
    let h = Harness::start().await;
    let s = h.shop("shop", 1, 1);
    let resp = h
        .http
        .post(h.server.graphql_url("shop"))
        .header("X-Shopify-Access-Token", "shpat_wrong")
        .json(&json!({"query": "{ shop { name } }"}))
        .answer()
        .await;
    assert_eq!(resp.status(), 401);

    let r = h.gql(&s, "{ shop { name nonsense } }", json!({})).await;
    assert!(
        r.get("data").is_none(),
        "a query that fails validation does not run: {r}"
    );
    let e = &r["errors"][0];
    assert!(e["message"].as_str().unwrap().contains("nonsense"), "{r}");
    assert_eq!(e["locations"][0]["line"], 1);
    assert!(r["extensions"]["cost"]["throttleStatus"]["maximumAvailable"].is_number());

    let r = h.gql(&s, "{ shop { name ", json!({})).await;
    assert!(r["errors"][0]["message"].is_string(), "a syntax error: {r}");

    let r = h
        .gql(&s, "query($id: ID!) { product(id: $id) { id } }", json!({}))
        .await;
    assert!(
        r["errors"][0]["message"].as_str().unwrap().contains("id"),
        "{r}"
    );

    let r = h
        .gql(&s, "{ shop { name myshopifyDomain } }", json!({}))
        .await;
    assert_eq!(r["data"]["shop"]["myshopifyDomain"], "shop.myshopify.com");
}

#[tokio::test]
async fn products_page_by_cursor_and_filter_on_updated_at() {
    let h = Harness::start().await;
    let s = h.shop("shop", 35, 1);
    let p = h.server.platform();

    let by_id = page_all(&h, &s, None, "ID", |_| {}).await;
    assert_eq!(by_id.len(), 35);
    assert!(
        by_id.windows(2).all(|w| w[0] < w[1]),
        "ID order, no repeats"
    );

    h.clock.advance(Duration::from_secs(60));
    let mark = h.clock_ms();
    h.clock.advance(Duration::from_secs(1));
    let edited: BTreeSet<u64> = [by_id[3], by_id[17], by_id[30]].into();
    for id in &edited {
        let spec = ferry_mock::ProductSpec {
            title: Some(format!("Edited {id}")),
            ..Default::default()
        };
        p.merchant_edit_product("shop", *id, spec).unwrap();
    }
    let since = jiff::Timestamp::from_millisecond(mark).unwrap().to_string();
    let q = format!("updated_at:>'{since}'");
    let changed = page_all(&h, &s, Some(&q), "UPDATED_AT", |_| {}).await;
    assert_eq!(changed.iter().copied().collect::<BTreeSet<_>>(), edited);

    let r = h
        .gql(&s, PRODUCTS_PAGE, json!({"after": "bm90LWEtY3Vyc29y"}))
        .await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid cursor"),
        "{r}"
    );
    let r = h.gql(&s, "{ products { nodes { id } } }", json!({})).await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("first"),
        "a page size is required: {r}"
    );
}

#[tokio::test]
async fn paging_by_updated_at_loses_nothing_while_products_change() {
    let h = Harness::start().await;
    let s = h.shop("shop", 50, 1);
    let p = h.server.platform().clone();
    let all: BTreeSet<u64> = page_all(&h, &s, None, "ID", |_| {})
        .await
        .into_iter()
        .collect();
    let ids: Vec<u64> = all.iter().copied().collect();
    let clock = h.clock.clone();
    // After each page, edit one product already seen and one not seen yet (which moves it to
    // the end): every product must still be seen, and nothing twice but the edited ones.
    let seen = page_all(&h, &s, None, "UPDATED_AT", |page| {
        clock.advance(Duration::from_millis(10));
        for id in [ids[page], ids[49 - page]] {
            let spec = ferry_mock::ProductSpec {
                vendor: Some(format!("v{page}")),
                ..Default::default()
            };
            p.merchant_edit_product("shop", id, spec).unwrap();
        }
    })
    .await;
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct, all, "no product lost while paging");
    assert!(seen.len() <= 50 + 2 * 6, "repeats only for edited products");
}

#[tokio::test]
async fn product_with_variants_and_variants_by_sku() {
    let h = Harness::start().await;
    let s = h.shop("shop", 3, 4);
    let r = h
        .gql(
            &s,
            r#"{ productVariants(first: 5, query: "sku:sku-000002-3") {
                nodes { id sku price product { id title variants(first: 10) { nodes { sku selectedOptions { name value } } } }
                        inventoryItem { id sku inventoryLevels(first: 5) { nodes { quantities(names: ["available", "on_hand"]) { name quantity } } } } } } }"#,
            json!({}),
        )
        .await;
    let nodes = r["data"]["productVariants"]["nodes"].as_array().unwrap();
    assert_eq!(
        nodes.len(),
        1,
        "SKU search is exact and case-insensitive: {r}"
    );
    let v = &nodes[0];
    assert_eq!(v["sku"], "SKU-000002-3");
    assert_eq!(v["inventoryItem"]["sku"], "SKU-000002-3");
    let variants = v["product"]["variants"]["nodes"].as_array().unwrap();
    assert_eq!(variants.len(), 4);
    assert_eq!(variants[2]["sku"], "SKU-000002-3");
    assert_eq!(variants[0]["selectedOptions"][0]["name"], "Size");
    let q = &v["inventoryItem"]["inventoryLevels"]["nodes"][0]["quantities"];
    assert_eq!(q[0]["quantity"], q[1]["quantity"], "nothing committed yet");

    let pid = v["product"]["id"].clone();
    let r = h
        .gql(
            &s,
            "query($id: ID!) { product(id: $id) { title variants(first: 2) { pageInfo { hasNextPage endCursor } } } }",
            json!({"id": pid}),
        )
        .await;
    assert_eq!(
        r["data"]["product"]["variants"]["pageInfo"]["hasNextPage"],
        true
    );
    let r = h
        .gql(
            &s,
            r#"{ product(id: "gid://shopify/Product/1") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["product"], Value::Null, "an unknown id is null");
    let r = h
        .gql(&s, r#"{ product(id: "42") { id } }"#, json!({}))
        .await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid global id")
    );
}

const PRODUCT_SET: &str = r#"
mutation Set($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
  productSet(input: $input, identifier: $identifier) {
    product { id vendor title collections(first: 5) { nodes { id } }
              variants(first: 10) { nodes { id sku price inventoryItem { id } } } }
    userErrors { field message code }
  }
}"#;

fn variant(size: &str, sku: &str, price: &str) -> Value {
    json!({"optionValues": [{"optionName": "Size", "name": size}], "sku": sku, "price": price})
}

const WITH_MEDIA: &str = r#"
mutation Set($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
  productSet(input: $input, identifier: $identifier) {
    product { id media(first: 10) { nodes { id alt mediaContentType ... on MediaImage { image { url } } } } }
    userErrors { field message code }
  }
}"#;

#[tokio::test]
async fn product_set_files_upload_images_keep_them_by_id_and_take_them_off() {
    let h = Harness::start().await;
    let s = h.shop("shop", 0, 0);
    let file =
        |src: &str, alt: &str| json!({"originalSource": src, "alt": alt, "contentType": "IMAGE"});
    let input = json!({
        "title": "Cap",
        "files": [file("https://img.example/a/cap.jpg?v=1", "front"), file("https://img.example/b/cap.jpg", "back")],
    });
    let r = h.gql(&s, WITH_MEDIA, json!({"input": input})).await;
    assert_eq!(r["data"]["productSet"]["userErrors"], json!([]), "{r}");
    let prod = &r["data"]["productSet"]["product"];
    let media = prod["media"]["nodes"].as_array().unwrap().clone();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0]["alt"], "front");
    assert_eq!(media[0]["mediaContentType"], "IMAGE");
    // Served from the platform's CDN; the second upload of one name gets a suffix.
    let url = |m: &Value| m["image"]["url"].as_str().unwrap().to_owned();
    assert!(url(&media[0]).ends_with("/cap.jpg"), "{}", url(&media[0]));
    assert!(!url(&media[1]).ends_with("/cap.jpg"), "{}", url(&media[1]));
    assert!(url(&media[1]).starts_with("https://cdn.mock.shop/"));

    // Keep the second by id (new alt) in first place; the first is taken off.
    let update = json!({"files": [{"id": media[1]["id"], "alt": "the back"}]});
    let r = h
        .gql(
            &s,
            WITH_MEDIA,
            json!({"input": update, "identifier": {"id": prod["id"]}}),
        )
        .await;
    let after = r["data"]["productSet"]["product"]["media"]["nodes"].clone();
    assert_eq!(after.as_array().unwrap().len(), 1, "{r}");
    assert_eq!(after[0]["id"], media[1]["id"]);
    assert_eq!(after[0]["alt"], "the back");

    // A file taken off stays in the library: its id attaches it again.
    let again = json!({"files": [{"id": media[0]["id"]}, {"id": media[1]["id"]}]});
    let r = h
        .gql(
            &s,
            WITH_MEDIA,
            json!({"input": again, "identifier": {"id": prod["id"]}}),
        )
        .await;
    let ids: Vec<&Value> = r["data"]["productSet"]["product"]["media"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, vec![&media[0]["id"], &media[1]["id"]]);

    // A bad URL or an unknown id is a user error, and nothing changes.
    for bad in [
        json!([file("ftp://img.example/x.jpg", "x")]),
        json!([{"id": "gid://shopify/MediaImage/999999"}]),
    ] {
        let r = h
            .gql(
                &s,
                WITH_MEDIA,
                json!({"input": {"files": bad}, "identifier": {"id": prod["id"]}}),
            )
            .await;
        let errors = r["data"]["productSet"]["userErrors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{r}");
        assert_eq!(errors[0]["field"][1], "files");
    }
    let snap = h.server.platform().snapshot("shop").unwrap();
    assert_eq!(snap["products"][0]["images"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn product_set_replaces_list_fields_and_keeps_omitted_scalars() {
    let h = Harness::start().await;
    let s = h.shop("shop", 0, 0);
    let mut cols = Vec::new();
    for t in ["Summer", "Sale"] {
        let r = h
            .gql(
                &s,
                "mutation($t: String!) { collectionCreate(input: {title: $t}) { collection { id } userErrors { message } } }",
                json!({"t": t}),
            )
            .await;
        cols.push(r["data"]["collectionCreate"]["collection"]["id"].clone());
    }
    let input = json!({
        "title": "Linen Shirt", "vendor": "Acme", "collections": cols,
        "productOptions": [{"name": "Size", "values": [{"name": "S"}, {"name": "M"}, {"name": "L"}]}],
        "variants": [variant("S", "LS-S", "10"), variant("M", "LS-M", "10"), variant("L", "LS-L", "12.5")],
    });
    let r = h.gql(&s, PRODUCT_SET, json!({"input": input})).await;
    let prod = &r["data"]["productSet"]["product"];
    assert_eq!(r["data"]["productSet"]["userErrors"], json!([]), "{r}");
    let variants = prod["variants"]["nodes"].as_array().unwrap().clone();
    assert_eq!(variants.len(), 3);
    assert_eq!(variants[2]["price"], "12.50");
    assert_eq!(prod["collections"]["nodes"].as_array().unwrap().len(), 2);

    // Keep S by id, drop M and L, add XL; keep only the second collection; no vendor given.
    let update = json!({
        "title": "Linen Shirt II",
        "collections": [cols[1]],
        "variants": [
            {"id": variants[0]["id"], "optionValues": [{"optionName": "Size", "name": "S"}], "price": "11"},
            variant("XL", "LS-XL", "13"),
        ],
    });
    let r = h
        .gql(
            &s,
            PRODUCT_SET,
            json!({"input": update, "identifier": {"id": prod["id"]}}),
        )
        .await;
    let after = &r["data"]["productSet"]["product"];
    assert_eq!(after["id"], prod["id"], "updated in place: {r}");
    assert_eq!(after["vendor"], "Acme", "an omitted scalar stays");
    assert_eq!(after["title"], "Linen Shirt II");
    let now: Vec<&Value> = after["variants"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(now.len(), 2, "variants left out are removed");
    assert_eq!(now[0]["id"], variants[0]["id"]);
    assert_eq!(now[0]["sku"], "LS-S", "the kept variant keeps its SKU");
    assert_eq!(now[0]["price"], "11.00");
    assert_eq!(now[1]["sku"], "LS-XL");
    assert_eq!(after["collections"]["nodes"], json!([{"id": cols[1]}]));

    // The removed variants' inventory items are gone; the first collection lost the product.
    let r = h
        .gql(
            &s,
            "query($i: ID!, $c: ID!) { inventoryItem(id: $i) { id } collection(id: $c) { productsCount { count } } }",
            json!({"i": variants[1]["inventoryItem"]["id"], "c": cols[0]}),
        )
        .await;
    assert_eq!(r["data"]["inventoryItem"], Value::Null);
    assert_eq!(r["data"]["collection"]["productsCount"]["count"], 0);
    let r = h
        .gql(
            &s,
            r#"{ productVariants(first: 5, query: "sku:LS-M") { nodes { id } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["productVariants"]["nodes"],
        json!([]),
        "the SKU index forgets removed variants"
    );

    // Upsert by handle finds the same product.
    let r = h
        .gql(
            &s,
            PRODUCT_SET,
            json!({"input": {"title": "By handle"}, "identifier": {"handle": "linen-shirt"}}),
        )
        .await;
    assert_eq!(r["data"]["productSet"]["product"]["id"], prod["id"], "{r}");
}

#[tokio::test]
async fn product_set_errors_change_nothing() {
    let h = Harness::start().await;
    let s = h.shop("shop", 2, 1);
    let p = h.server.platform();
    let before = p.snapshot("shop").unwrap()["products"].clone();
    let taken = before[0]["handle"].clone();
    let cases = [
        (json!({"title": "New", "handle": taken}), "TAKEN"),
        (json!({"vendor": "no title"}), "BLANK"),
        (
            json!({"title": "Dup", "variants": [variant("S", "A", "1"), variant("S", "B", "1")]}),
            "DUPLICATED_OPTION_VALUE",
        ),
        (
            json!({"title": "Bad col", "collections": ["gid://shopify/Collection/999"]}),
            "COLLECTION_DOES_NOT_EXIST",
        ),
    ];
    for (input, code) in cases {
        let r = h.gql(&s, PRODUCT_SET, json!({"input": input})).await;
        let errors = r["data"]["productSet"]["userErrors"].as_array().unwrap();
        assert!(errors.iter().any(|e| e["code"] == code), "{code}: {r}");
        assert_eq!(r["data"]["productSet"]["product"], Value::Null);
    }
    assert_eq!(p.snapshot("shop").unwrap()["products"], before);
}

#[tokio::test]
async fn archive_and_delete() {
    let h = Harness::start().await;
    let s = h.shop("shop", 2, 2);
    let snap = h.server.platform().snapshot("shop").unwrap();
    let (a, b) = (
        snap["products"][0]["id"].as_u64().unwrap(),
        snap["products"][1]["id"].as_u64().unwrap(),
    );
    let r = h
        .gql(
            &s,
            "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) { product { status } userErrors { message } } }",
            json!({"p": {"id": format!("gid://shopify/Product/{a}"), "status": "ARCHIVED"}}),
        )
        .await;
    assert_eq!(
        r["data"]["productUpdate"]["product"]["status"], "ARCHIVED",
        "{r}"
    );
    let delete = || {
        h.gql(
            &s,
            "mutation($id: ID!) { productDelete(input: {id: $id}) { deletedProductId userErrors { message } } }",
            json!({"id": format!("gid://shopify/Product/{b}")}),
        )
    };
    let r = delete().await;
    assert_eq!(
        r["data"]["productDelete"]["deletedProductId"],
        format!("gid://shopify/Product/{b}")
    );
    let again = delete().await;
    assert_eq!(
        again["data"]["productDelete"]["deletedProductId"],
        Value::Null
    );
    assert_eq!(
        again["data"]["productDelete"]["userErrors"][0]["message"],
        "Product does not exist"
    );
    let r = h
        .gql(
            &s,
            r#"{ products(first: 5, query: "status:archived") { nodes { id } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["products"]["nodes"],
        json!([{"id": format!("gid://shopify/Product/{a}")}])
    );
}

/// (inventory item gid, location gid, available) of the store's first variant.
async fn first_level(h: &Harness, s: &ferry_mock::StoreInfo) -> (String, String, i64) {
    let r = h
        .gql(
            s,
            r#"{ productVariants(first: 1) { nodes { inventoryItem { id inventoryLevels(first: 1) { nodes { location { id } quantities(names: ["available"]) { quantity } } } } } } }"#,
            json!({}),
        )
        .await;
    let item = &r["data"]["productVariants"]["nodes"][0]["inventoryItem"];
    let level = &item["inventoryLevels"]["nodes"][0];
    (
        item["id"].as_str().unwrap().to_owned(),
        level["location"]["id"].as_str().unwrap().to_owned(),
        level["quantities"][0]["quantity"].as_i64().unwrap(),
    )
}

fn adjust_input(item: &str, loc: &str, delta: i64, from: Option<Value>) -> Value {
    let mut change = json!({"delta": delta, "inventoryItemId": item, "locationId": loc});
    if let Some(f) = from {
        change["changeFromQuantity"] = f;
    }
    json!({"name": "available", "reason": "correction", "changes": [change]})
}

#[tokio::test]
async fn inventory_adjust_needs_a_key_and_change_from_and_replays_once() {
    let h = Harness::start().await;
    let s = h.shop("shop", 1, 1);
    let (item, loc, start) = first_level(&h, &s).await;
    let item_id: u64 = item.rsplit('/').next().unwrap().parse().unwrap();
    let available = || {
        h.server
            .platform()
            .available("shop", item_id, None)
            .unwrap()
    };

    // No @idempotent: an error at runtime, nothing applied.
    let r = h
        .gql(
            &s,
            "mutation($input: InventoryAdjustQuantitiesInput!) { inventoryAdjustQuantities(input: $input) { userErrors { code } } }",
            json!({"input": adjust_input(&item, &loc, 1, Some(Value::Null))}),
        )
        .await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("@idempotent"),
        "{r}"
    );
    assert_eq!(available(), start);

    // changeFromQuantity omitted: refused.
    let r = h
        .gql(
            &s,
            ADJUST,
            json!({"input": adjust_input(&item, &loc, 1, None), "key": "k0"}),
        )
        .await;
    assert_eq!(
        r["data"]["inventoryAdjustQuantities"]["userErrors"][0]["code"],
        "CHANGE_FROM_QUANTITY_REQUIRED",
        "{r}"
    );
    // Stale: refused with CHANGE_FROM_QUANTITY_STALE.
    let r = h
        .gql(
            &s,
            ADJUST,
            json!({"input": adjust_input(&item, &loc, 1, Some(json!(start + 7))), "key": "k1"}),
        )
        .await;
    let e = &r["data"]["inventoryAdjustQuantities"]["userErrors"][0];
    assert_eq!(e["code"], "CHANGE_FROM_QUANTITY_STALE", "{r}");
    assert_eq!(
        e["field"],
        json!(["input", "changes", "0", "changeFromQuantity"])
    );
    assert_eq!(available(), start);

    // Current value: applied. The same request again: the first result, applied once.
    let vars = json!({"input": adjust_input(&item, &loc, -2, Some(json!(start))), "key": "k2"});
    let first = h.gql(&s, ADJUST, vars.clone()).await;
    let group = &first["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"];
    assert_eq!(
        group["changes"][0]["quantityAfterChange"],
        start - 2,
        "{first}"
    );
    assert_eq!(available(), start - 2);
    let replay = h.gql(&s, ADJUST, vars).await;
    assert_eq!(
        replay["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"], *group,
        "a replay returns the first result"
    );
    assert_eq!(available(), start - 2, "and does not apply twice");

    // The same key with other variables: a mismatch, nothing applied.
    let other = json!({"input": adjust_input(&item, &loc, -3, Some(Value::Null)), "key": "k2"});
    let r = h.gql(&s, ADJUST, other).await;
    assert_eq!(
        r["data"]["inventoryAdjustQuantities"]["userErrors"][0]["code"],
        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    );
    assert_eq!(available(), start - 2);

    // Explicit null opts out of the check.
    let r = h
        .gql(
            &s,
            ADJUST,
            json!({"input": adjust_input(&item, &loc, 5, Some(Value::Null)), "key": "k3"}),
        )
        .await;
    assert_eq!(
        r["data"]["inventoryAdjustQuantities"]["userErrors"],
        json!([]),
        "{r}"
    );
    assert_eq!(available(), start + 3);

    // A key retained 24 hours: after that the same key is new again.
    h.clock.advance(Duration::from_secs(24 * 3600 + 1));
    let vars = json!({"input": adjust_input(&item, &loc, 1, Some(Value::Null)), "key": "k2"});
    let r = h.gql(&s, ADJUST, vars).await;
    assert_eq!(
        r["data"]["inventoryAdjustQuantities"]["userErrors"],
        json!([]),
        "{r}"
    );
    assert_eq!(available(), start + 4);
}

#[tokio::test]
async fn the_same_key_in_flight_is_refused_as_concurrent() {
    let h = Harness::start().await;
    let s = h.shop("shop", 1, 1);
    let (item, loc, start) = first_level(&h, &s).await;
    let p = h.server.platform().clone();
    p.hold_writes();
    let vars = json!({"input": adjust_input(&item, &loc, 1, Some(Value::Null)), "key": "same"});
    let first = {
        let (h2, s2, v2) = (h.http.clone(), s.clone(), vars.clone());
        let url = h.server.graphql_url("shop");
        tokio::spawn(async move {
            h2.post(url)
                .header("X-Shopify-Access-Token", &s2.access_token)
                .json(&json!({"query": ADJUST, "variables": v2}))
                .answer()
                .await
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    ferry_testkit::eventually("the first request holds its key", || async {
        p.graphql_in_flight() == 1
    })
    .await;
    let second = h.gql(&s, ADJUST, vars.clone()).await;
    assert_eq!(
        second["data"]["inventoryAdjustQuantities"]["userErrors"][0]["code"],
        "IDEMPOTENCY_CONCURRENT_REQUEST",
        "{second}"
    );
    p.release_writes();
    let first = first.await.unwrap();
    assert_eq!(
        first["data"]["inventoryAdjustQuantities"]["userErrors"],
        json!([]),
        "{first}"
    );
    let item_id: u64 = item.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(
        p.available("shop", item_id, None).unwrap(),
        start + 1,
        "applied once"
    );
    // The retry after the first finished gets its result.
    let retry = h.gql(&s, ADJUST, vars).await;
    assert_eq!(
        retry["data"]["inventoryAdjustQuantities"]["userErrors"],
        json!([])
    );
    assert_eq!(p.available("shop", item_id, None).unwrap(), start + 1);
}

#[tokio::test]
async fn inventory_set_is_compare_and_set() {
    let h = Harness::start().await;
    let s = h.shop("shop", 1, 1);
    let (item, loc, start) = first_level(&h, &s).await;
    let set = "mutation($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input) { inventoryAdjustmentGroup { changes { delta quantityAfterChange } } userErrors { code field } } }";
    let input = |q: i64, from: Value| {
        json!({"input": {"name": "available", "reason": "correction",
            "quantities": [{"inventoryItemId": item, "locationId": loc, "quantity": q, "changeFromQuantity": from}]}})
    };
    let r = h.gql(&s, set, input(50, json!(start + 1))).await;
    assert_eq!(
        r["data"]["inventorySetQuantities"]["userErrors"][0]["code"], "CHANGE_FROM_QUANTITY_STALE",
        "{r}"
    );
    let r = h.gql(&s, set, input(50, json!(start))).await;
    let change = &r["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"]["changes"][0];
    assert_eq!(change["quantityAfterChange"], 50, "{r}");
    assert_eq!(change["delta"], 50 - start);
    let r = h.gql(&s, set, input(2_000_000_000, Value::Null)).await;
    assert_eq!(
        r["data"]["inventorySetQuantities"]["userErrors"][0]["code"],
        "INVALID_QUANTITY_TOO_HIGH"
    );
    let (_, _, now) = first_level(&h, &s).await;
    assert_eq!(now, 50);
}

#[tokio::test]
async fn cost_is_charged_up_front_refunded_to_actual_and_throttled() {
    let h = Harness::start().await;
    let s = h.shop("shop", 5, 1);
    let p = h.server.platform();
    let q = "{ products(first: 50) { nodes { id title } } }";
    let r = h.gql(&s, q, json!({})).await;
    let cost = &r["extensions"]["cost"];
    assert_eq!(cost["requestedQueryCost"], 52, "2 + 50 × 1: {r}");
    assert_eq!(cost["actualQueryCost"], 7, "2 + the 5 products returned");
    assert_eq!(cost["throttleStatus"]["maximumAvailable"], 2000.0);
    assert_eq!(cost["throttleStatus"]["currentlyAvailable"], 1993.0);
    assert_eq!(cost["throttleStatus"]["restoreRate"], 100.0);
    let r = h
        .gql(&s, "mutation { collectionCreate(input: {title: \"X\"}) { collection { id } userErrors { message } } }", json!({}))
        .await;
    assert_eq!(
        r["extensions"]["cost"]["requestedQueryCost"], 10,
        "a mutation costs 10"
    );

    // Over 1,000 points in one query: refused whatever the bucket holds, nothing charged.
    let big = "{ products(first: 250) { nodes { id variants(first: 250) { nodes { id } } } } }";
    let r = h.gql(&s, big, json!({})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "MAX_COST_EXCEEDED",
        "{r}"
    );
    assert!(r.get("data").is_none());

    // A small bucket: the second query is throttled until enough has leaked back.
    p.set_graphql_bucket("shop", 60.0, 10.0).unwrap();
    let r = h.gql(&s, q, json!({})).await;
    assert_eq!(
        r["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"], 53.0,
        "52 charged, 45 refunded"
    );
    let r = h.gql(&s, q, json!({})).await;
    assert_eq!(
        r["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        46.0
    );
    let r = h.gql(&s, q, json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "THROTTLED", "{r}");
    assert_eq!(r["errors"][0]["message"], "Throttled");
    assert_eq!(r["extensions"]["cost"]["actualQueryCost"], Value::Null);
    assert_eq!(
        r["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"],
        46.0
    );
    assert!(r.get("data").is_none());
    h.clock.advance(Duration::from_millis(500));
    let r = h.gql(&s, q, json!({})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "THROTTLED",
        "5 points short still"
    );
    h.clock.advance(Duration::from_millis(100));
    let r = h.gql(&s, q, json!({})).await;
    assert!(
        r.get("errors").is_none(),
        "52 points free after 0.6 s at 10/s: {r}"
    );

    let c = p.counters("shop").unwrap();
    assert_eq!(c.throttled, 2);
    assert_eq!(c.max_cost_exceeded, 1);
    assert_eq!(c.points_spent, 7 + 10 + 7 + 7 + 7);
    assert_eq!(c.graphql_requests, 8);
}

#[tokio::test]
async fn writes_fire_webhooks_and_orders_move_stock() {
    let h = Harness::start().await;
    let s = h.shop("shop", 1, 2);
    let p = h.server.platform();
    let rx = crate::webhooks::receiver(0).await;
    for topic in [
        "PRODUCTS_CREATE",
        "INVENTORY_LEVELS_UPDATE",
        "ORDERS_CREATE",
    ] {
        let r = h
            .gql(
                &s,
                "mutation($t: WebhookSubscriptionTopic!, $u: String!) { webhookSubscriptionCreate(topic: $t, webhookSubscription: {uri: $u}) { webhookSubscription { id topic uri } userErrors { message } } }",
                json!({"t": topic, "u": rx.url}),
            )
            .await;
        assert_eq!(
            r["data"]["webhookSubscriptionCreate"]["webhookSubscription"]["topic"], topic,
            "{r}"
        );
    }
    let r = h
        .gql(
            &s,
            "{ webhookSubscriptions(first: 10) { nodes { topic } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["webhookSubscriptions"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    h.gql(&s, PRODUCT_SET, json!({"input": {"title": "Fresh"}}))
        .await;
    let snap = p.snapshot("shop").unwrap();
    let v = &snap["products"][0]["variants"][0];
    let before = v["inventory"][0]["available"].as_i64().unwrap();
    let order = p
        .place_order(
            "shop",
            &[ferry_mock::OrderLine {
                variant_id: v["id"].as_u64(),
                sku: None,
                quantity: 1,
            }],
        )
        .unwrap();
    let item = v["inventory_item_id"].as_u64().unwrap();
    assert_eq!(p.available("shop", item, None).unwrap(), before - 1);
    let short = p.place_order(
        "shop",
        &[ferry_mock::OrderLine {
            variant_id: v["id"].as_u64(),
            sku: None,
            quantity: 1_000,
        }],
    );
    assert!(
        short.is_err(),
        "an order for more than is available is refused"
    );

    ferry_testkit::eventually("three webhooks", || async {
        rx.seen.lock().unwrap().len() >= 3
    })
    .await;
    let seen = rx.seen.lock().unwrap().clone();
    let topics: BTreeSet<String> = seen
        .iter()
        .map(|(hd, _)| hd["x-shopify-topic"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        topics,
        [
            "inventory_levels/update",
            "orders/create",
            "products/create"
        ]
        .map(String::from)
        .into()
    );
    for (hd, body) in &seen {
        let sig = ferry_mock::shopify_hmac(&s.webhook_secret, body);
        assert_eq!(hd["x-shopify-hmac-sha256"].to_str().unwrap(), sig);
        let v: Value = serde_json::from_slice(body).unwrap();
        match hd["x-shopify-topic"].to_str().unwrap() {
            "orders/create" => assert_eq!(v["id"], order),
            "inventory_levels/update" => {
                assert_eq!(v["inventory_item_id"], item);
                assert_eq!(v["available"], before - 1);
            }
            _ => assert_eq!(v["title"], "Fresh"),
        }
    }
    let snap = p.snapshot("shop").unwrap();
    assert_eq!(snap["orders"][0]["line_items"][0]["quantity"], 1);
    assert_eq!(
        snap["products"][0]["variants"][0]["inventory"][0]["committed"],
        1
    );
}

#[tokio::test]
async fn a_hundred_thousand_products_per_store() {
    let h = Harness::start().await;
    let s = h.shop("big", 100_000, 1);
    let r = h
        .gql(&s, r#"{ productVariants(first: 1, query: "sku:SKU-099999-1") { nodes { product { title } } } }"#, json!({}))
        .await;
    assert_eq!(
        r["data"]["productVariants"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{r}"
    );
    let r = h
        .gql(&s, "{ products(first: 250, sortKey: UPDATED_AT, reverse: true) { nodes { id } pageInfo { hasNextPage } } }", json!({}))
        .await;
    assert_eq!(
        r["data"]["products"]["nodes"].as_array().unwrap().len(),
        250
    );
    assert_eq!(r["data"]["products"]["pageInfo"]["hasNextPage"], true);
}
