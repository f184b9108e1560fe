//! Bulk exports of a catalog against the simulated platform: the same products as paging,
//! a busy shop waited for, a failed operation reported, an expired result run again.

use std::time::Duration;

use ferry_connect::Pages;
use ferry_connect::shopify::bulk::{BulkOptions, BulkProgress, Export};
use ferry_connect::shopify::model::Product;
use ferry_mock::BulkSettings;
use ferry_testkit::TestDb;

use crate::{Env, quick};

ferry_testkit::conformance! {
    an_export_reads_the_same_catalog_as_paging,
    a_busy_shop_is_waited_for_and_failures_are_reported,
    a_part_whose_result_expired_while_others_were_read_runs_again,
}

fn fast() -> BulkOptions {
    BulkOptions {
        poll: Duration::from_millis(10),
        max_wait: Duration::from_secs(20),
        ..BulkOptions::default()
    }
}

async fn export_all(
    shop: &ferry_connect::shopify::ShopifyConnector,
    location: Option<&str>,
    parts: usize,
) -> Vec<Product> {
    let mut phases = Vec::new();
    let mut told_parts = 0;
    let opts = BulkOptions { parts, ..fast() };
    let export = shop
        .export_catalog(location, None, &opts, &mut |p: &BulkProgress| {
            phases.push(p.phase.clone());
            told_parts = p.parts;
        })
        .await
        .unwrap();
    assert_eq!(told_parts, parts, "the export is split as asked");
    let Export::Ready(mut stream) = export else {
        panic!("the export failed");
    };
    assert_eq!(phases.first().map(String::as_str), Some("created"));
    assert_eq!(phases.last().map(String::as_str), Some("downloading"));
    let mut out = Vec::new();
    while let Some(page) = stream.next_page(7).await.unwrap() {
        assert!(page.len() <= 7);
        out.extend(page);
    }
    out
}

async fn an_export_reads_the_same_catalog_as_paging(db: TestDb) {
    let env = Env::start(db).await;
    let s = env.shop(60, 3);
    let shop = env.shopify(&s, quick());
    let location = shop.locations().await.unwrap()[0].0.clone();
    // Two products in collections (the seed has none).
    let sale = shop.create_collection("Sale", "sale").await.unwrap();
    let new = shop.create_collection("New", "new").await.unwrap();
    let (first, _) = shop.products_updated_since(None, None).await.unwrap();
    shop.set_collections(&first[0].id, &[sale.id.clone(), new.id.clone()])
        .await
        .unwrap();
    shop.set_collections(&first[1].id, &[sale.id])
        .await
        .unwrap();
    let mut exported = export_all(&shop, Some(&location), 1).await;
    let mut paged = Vec::new();
    let shop_ref = &shop;
    let mut pages =
        Pages::new(|c| async move { shop_ref.products_updated_since(None, c.as_deref()).await });
    while let Some(page) = pages.next().await.unwrap() {
        paged.extend(page);
    }
    exported.sort_by(|a, b| a.id.cmp(&b.id));
    paged.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(exported.len(), 60);
    assert!(exported.iter().any(|p| !p.images.is_empty()));
    assert!(exported.iter().any(|p| !p.collections.is_empty()));
    assert!(
        exported
            .iter()
            .all(|p| p.variants.len() == 3 && p.variants.iter().all(|v| v.available.is_some()))
    );
    assert_eq!(exported, paged, "product for product, the same as paging");
    // Without a location: the sum over locations, the same here (one location).
    let mut summed = export_all(&shop, None, 1).await;
    summed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(summed, paged);
    // Split into 5 operations by id range, run at once: every product once, in id order.
    let split = export_all(&shop, Some(&location), 5).await;
    let ids: Vec<u64> = split.iter().map(|p| numeric(&p.id)).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "parts are read in id order"
    );
    let mut split = split;
    split.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        split, paged,
        "split, product for product the same as paging"
    );
}

/// An export that must be ready to read.
async fn ready(
    shop: &ferry_connect::shopify::ShopifyConnector,
    opts: &BulkOptions,
) -> Box<ferry_connect::shopify::bulk::CatalogStream> {
    let Export::Ready(stream) = shop
        .export_catalog(None, None, opts, &mut |_: &BulkProgress| {})
        .await
        .unwrap()
    else {
        panic!("the export failed");
    };
    stream
}

/// How long the shop's result URLs live (the platform's clock).
fn url_ttl(p: &ferry_mock::Platform, ms: i64) {
    p.set_bulk(
        "shop",
        BulkSettings {
            url_ttl_ms: ms,
            ..BulkSettings::default()
        },
    )
    .unwrap();
}

fn numeric(gid: &str) -> u64 {
    gid.rsplit('/').next().unwrap().parse().unwrap()
}

async fn a_part_whose_result_expired_while_others_were_read_runs_again(db: TestDb) {
    // The platform's clock stands still unless moved: an operation's first step (up to 250
    // products) runs at once, so each part completes; its URL lives a minute of that clock.
    let clock = ferry_core::FakeClock::new(1_800_000_000_000);
    let env = Env::start_mock_clock(db, clock.clone()).await;
    let s = env.shop(40, 2);
    let p = env.mock.platform().clone();
    url_ttl(&p, 60_000);
    let shop = env.shopify(&s, quick());
    let opts = BulkOptions { parts: 4, ..fast() };
    let mut stream = ready(&shop, &opts).await;
    let first = stream.next().await.unwrap().expect("a product");
    // The first part is open; the others' URLs expire before they are read.
    clock.advance(Duration::from_secs(120));
    let mut ids = vec![numeric(&first.id)];
    while let Some(p) = stream.next().await.unwrap() {
        ids.push(numeric(&p.id));
    }
    assert_eq!(ids.len(), 40, "every product, the expired parts run again");
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    // An export whose results keep expiring before they are read fails mid-stream as a
    // transient error (the run is retried), never as a shorter catalog.
    let mut stream = ready(&shop, &opts).await;
    stream.next().await.unwrap().expect("a product");
    url_ttl(&p, 0);
    let mut read = 1;
    let err = loop {
        match stream.next().await {
            Ok(Some(_)) => read += 1,
            Ok(None) => panic!("the catalog ended short at {read} products"),
            Err(e) => break e,
        }
    };
    assert!(read < 40);
    assert!(err.to_string().contains("expired"), "{err}");
}

async fn a_busy_shop_is_waited_for_and_failures_are_reported(db: TestDb) {
    let env = Env::start(db).await;
    let s = env.shop(300, 1);
    let p = env.mock.platform().clone();
    let shop = env.shopify(&s, quick());

    // One operation at a time, and one holding the place (its first step reads 250
    // products at once, then it writes a line an hour).
    p.set_bulk(
        "shop",
        BulkSettings {
            max_running: 1,
            rows_per_s: 1.0 / 3600.0,
            ..BulkSettings::default()
        },
    )
    .unwrap();
    let blocker = shop
        .bulk_run_query("{ products { nodes { id } } }")
        .await
        .unwrap()
        .expect("a place");
    assert!(
        shop.bulk_run_query("{ products { nodes { id } } }")
            .await
            .unwrap()
            .is_none(),
        "OPERATION_IN_PROGRESS is a wait, not an error"
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let waiting = {
        let shop = shop.clone();
        tokio::spawn(async move {
            let mut progress = |p: &BulkProgress| {
                let _ = tx.send(p.phase.clone());
            };
            shop.export_catalog(None, None, &fast(), &mut progress)
                .await
        })
    };
    assert_eq!(rx.recv().await.as_deref(), Some("waiting"));
    // Cancelled before the rate goes back up, so the blocker can not complete first.
    shop.bulk_cancel(&blocker.id).await.unwrap();
    p.set_bulk("shop", BulkSettings::default()).unwrap();
    let Export::Ready(mut stream) = waiting.await.unwrap().unwrap() else {
        panic!("the export failed after the wait");
    };
    let mut n = 0;
    while stream.next().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 300);
    let cancelled = shop.bulk_operation(&blocker.id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, "CANCELED");

    // A failure mid-way: reported with what it wrote, for the caller to page instead.
    p.set_bulk(
        "shop",
        BulkSettings {
            fail_after_objects: Some(10),
            ..BulkSettings::default()
        },
    )
    .unwrap();
    let Export::Failed { reason } = shop
        .export_catalog(None, None, &fast(), &mut |_: &BulkProgress| {})
        .await
        .unwrap()
    else {
        panic!("a failed operation is not ready");
    };
    assert!(
        reason.contains("failed (INTERNAL_SERVER_ERROR) after"),
        "{reason}"
    );

    // A result that expires before it is read: run again, up to the attempts, then reported.
    url_ttl(&p, 0);
    let mut created = 0;
    let one = BulkOptions { parts: 1, ..fast() };
    let outcome = shop
        .export_catalog(None, None, &one, &mut |p: &BulkProgress| {
            created += usize::from(p.phase == "created")
        })
        .await
        .unwrap();
    let Export::Failed { reason } = outcome else {
        panic!("an expired result is not ready");
    };
    assert_eq!(created, 3, "run again until the attempts are spent");
    assert!(reason.contains("expired"), "{reason}");
}
