use std::collections::BTreeSet;

use ferry_connect::ErrorClass;
use ferry_connect::shopify::model::{InventoryDelta, ProductInput, VariantInput};
use ferry_testkit::TestDb;

use crate::{Env, quick};

ferry_testkit::conformance! {
    reads_products_whole_and_streams_changes_page_by_page, upserts_replace_variants_and_archive,
    inventory_adjustments_apply_once_per_key_and_sets_retry_when_stale,
    graphql_throttling_is_paced_and_honoured,
    throttled_answers_are_honoured_and_applied_then_5xx_writes_apply_once,
}

fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

async fn reads_products_whole_and_streams_changes_page_by_page(db: TestDb) {
    let env = Env::start(db).await;
    let s = env.shop(25, 2);
    let p = env.mock.platform();
    // One product with more variants than one page holds.
    let big = ferry_mock::ProductSpec {
        title: Some("Many sizes".into()),
        variants: Some(
            (0..75)
                .map(|i| ferry_mock::VariantSpec {
                    options: vec![("Size".into(), format!("S{i}"))],
                    sku: Some(format!("BIG-{i}")),
                    price: Some("5".into()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let snap = p.snapshot("shop").unwrap();
    let first = snap["products"][0]["id"].as_u64().unwrap();
    p.merchant_edit_product("shop", first, big).unwrap();

    let shop = env.shopify(&s, quick());
    let prod = shop.product(&gid("Product", first)).await.unwrap().unwrap();
    assert_eq!(prod.variants.len(), 75, "all variants, over several pages");
    assert_eq!(prod.variants[74].sku.as_deref(), Some("BIG-74"));
    assert!(shop.product(&gid("Product", 1)).await.unwrap().is_none());

    let mut seen = BTreeSet::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (products, next) = shop
            .products_updated_since(None, after.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(products.len() <= 8);
        seen.extend(products.into_iter().map(|p| p.id));
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (25, 4), "pages of 8");

    let found = shop.variants_by_sku("sku-000007-2").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].sku.as_deref(), Some("SKU-000007-2"));
    assert!(
        shop.variants_by_sku("SKU-000007").await.unwrap().is_empty(),
        "exact matches only"
    );
}

fn input(title: &str, sizes: &[(&str, Option<String>)]) -> ProductInput {
    ProductInput {
        title: title.into(),
        vendor: Some("ferry".into()),
        tags: vec!["ferry".into()],
        variants: sizes
            .iter()
            .map(|(size, id)| VariantInput {
                id: id.clone(),
                sku: Some(format!("T-{size}")),
                price: "10.00".into(),
                options: vec![("Size".into(), (*size).into())],
            })
            .collect(),
        ..ProductInput::default()
    }
}

async fn upserts_replace_variants_and_archive(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();
    let shop = env.shopify(&s, quick());
    let created = shop
        .upsert(
            None,
            &input("Tee", &[("S", None), ("M", None), ("L", None)]),
        )
        .await
        .unwrap();
    assert_eq!(created.variants.len(), 3);
    let keep = created.variants[0].id.clone();
    let updated = shop
        .upsert(
            Some(&created.id),
            &input("Tee v2", &[("S", Some(keep.clone())), ("XL", None)]),
        )
        .await
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.title, "Tee v2");
    let ids: Vec<&str> = updated.variants.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "M and L removed");
    assert_eq!(ids[0], keep, "S kept by id");

    let e = shop
        .upsert(
            None,
            &ProductInput {
                title: String::new(),
                ..ProductInput::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Client);
    assert!(e.has_code("BLANK"), "{e}");

    shop.archive(&created.id).await.unwrap();
    let again = shop.product(&created.id).await.unwrap().unwrap();
    assert_eq!(again.status, "ARCHIVED");
}

async fn inventory_adjustments_apply_once_per_key_and_sets_retry_when_stale(db: TestDb) {
    let env = Env::start(db).await;
    let s = env.shop(1, 1);
    let shop = env.shopify(&s, quick());
    let locations = shop.locations().await.unwrap();
    let loc = locations[0].0.clone();
    let variant = &shop.variants_by_sku("SKU-000001-1").await.unwrap()[0];
    let item = variant.inventory_item_id.clone();
    let start = shop.available(&item, &loc).await.unwrap().unwrap();

    let sale = [InventoryDelta {
        inventory_item_id: item.clone(),
        location_id: loc.clone(),
        delta: -2,
        change_from: None,
    }];
    let after = shop
        .adjust_inventory("order-1001-line-1", "correction", &sale)
        .await
        .unwrap();
    assert_eq!(after, vec![start - 2]);
    // The same intent again (a retried job): applied once.
    shop.adjust_inventory("order-1001-line-1", "correction", &sale)
        .await
        .unwrap();
    assert_eq!(shop.available(&item, &loc).await.unwrap(), Some(start - 2));

    // A stale expectation: refused with its code.
    let stale = [InventoryDelta {
        change_from: Some(start + 100),
        ..sale[0].clone()
    }];
    let e = shop
        .adjust_inventory("order-1002", "correction", &stale)
        .await
        .unwrap_err();
    assert!(e.has_code("CHANGE_FROM_QUANTITY_STALE"), "{e}");

    // Set with a wrong belief: re-read, then set.
    shop.set_inventory(&item, &loc, 40, Some(start + 7))
        .await
        .unwrap();
    assert_eq!(shop.available(&item, &loc).await.unwrap(), Some(40));
}

async fn graphql_throttling_is_paced_and_honoured(db: TestDb) {
    let env = Env::start(db).await;
    let s = env.shop(30, 1);
    let p = env.mock.platform();
    // A small bucket: 200 points restoring 400/s. Each product read reserves 93.
    p.set_graphql_bucket("shop", 200.0, 400.0).unwrap();
    // Every caller waits in process for its turn (a short `max_wait` hands a long wait back to
    // the queue instead, which a loaded machine can reach with 30 callers on a 200-point
    // bucket); what is tested is that the server never has to refuse one.
    let shop = env.shopify(
        &s,
        ferry_connect::ClientOptions {
            max_wait: std::time::Duration::from_secs(120),
            ..quick()
        },
    );
    let ids: Vec<String> = p.snapshot("shop").unwrap()["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| gid("Product", x["id"].as_u64().unwrap()))
        .collect();
    // The first answer tells the budget the bucket's real size and rate.
    shop.product(&ids[0]).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let s = shop.clone();
        tasks.spawn(async move { s.product(&id).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().unwrap().is_some());
    }
    let c = p.counters("shop").unwrap();
    assert_eq!(c.throttled, 0, "paced by the budget, never refused: {c:?}");
}

async fn throttled_answers_are_honoured_and_applied_then_5xx_writes_apply_once(db: TestDb) {
    let env = Env::start(db).await;
    let s = env.shop(1, 1);
    let p = env.mock.platform();
    // A breaker that stays closed through the run of 500s below (its own test opens it).
    let opts = ferry_connect::ClientOptions {
        breaker: ferry_connect::BreakerPolicy {
            threshold: 1000,
            ..Default::default()
        },
        ..quick()
    };
    let paced = env.shopify(&s, opts);
    let loc = paced.locations().await.unwrap()[0].0.clone();
    let item = paced.variants_by_sku("SKU-000001-1").await.unwrap()[0]
        .inventory_item_id
        .clone();
    let start = paced.available(&item, &loc).await.unwrap().unwrap();
    let change = |delta| InventoryDelta {
        inventory_item_id: item.clone(),
        location_id: loc.clone(),
        delta,
        change_from: None,
    };

    // A client that does not pace: the second write finds the bucket short, is answered
    // THROTTLED inside a 200, waits as long as the answer says and goes through.
    p.set_graphql_bucket("shop", 15.0, 20.0).unwrap();
    let unpaced = env.shopify(
        &s,
        ferry_connect::ClientOptions {
            pace: false,
            ..quick()
        },
    );
    unpaced
        .adjust_inventory("w1", "correction", &[change(1)])
        .await
        .unwrap();
    unpaced
        .adjust_inventory("w2", "correction", &[change(1)])
        .await
        .unwrap();
    assert_eq!(p.counters("shop").unwrap().throttled, 1);
    assert_eq!(paced.available(&item, &loc).await.unwrap(), Some(start + 2));

    // Writes applied but answered 500: the client's retries reuse the key, applied once each.
    p.set_graphql_bucket("shop", 2000.0, 100.0).unwrap();
    p.set_faults(
        "shop",
        ferry_mock::Faults {
            applied_then_5xx: 0.5,
            ..Default::default()
        },
    )
    .unwrap();
    let mut applied = 0;
    for i in 0..10 {
        if paced
            .adjust_inventory(&format!("sale-{i}"), "correction", &[change(-1)])
            .await
            .is_ok()
        {
            applied += 1;
        }
    }
    assert!(
        applied >= 8,
        "retries got the first result back ({applied}/10)"
    );
    assert!(p.faults_injected("shop").unwrap() >= 3);
    p.set_faults("shop", ferry_mock::Faults::default()).unwrap();
    assert_eq!(
        paced.available(&item, &loc).await.unwrap(),
        Some(start + 2 - 10),
        "each sale once"
    );
}
