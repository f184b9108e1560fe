//! Large catalogs: connect and full reconciliation read both stores by bulk export above the
//! threshold (a low one here), find and repair every planted drift and touch nothing else; an
//! export that fails is paged instead and the run says so.

use std::collections::BTreeMap;

use ferry_mock::{BulkSettings, Faults, ProductSpec};
use ferry_sync::Rules;
use ferry_sync::bulk::RunProgress;
use ferry_testkit::TestDb;

use crate::{Net, same};

ferry_testkit::conformance! {
    large_catalogs_connect_and_reconcile_by_bulk_export,
    a_failed_export_is_paged_and_the_run_says_so,
}

const PRODUCTS: usize = 30;

async fn bulk_net(db: TestDb) -> Net {
    Net::start_with(db, 1, PRODUCTS, Rules::default(), |cfg| {
        cfg.app.engine.bulk_threshold_products = 10;
    })
    .await
}

/// Each child product's `updated_at`, by id.
fn stamps(net: &Net, store: &str) -> BTreeMap<u64, i64> {
    let snap = net.platform().snapshot(store).unwrap();
    snap["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_u64().unwrap(), p["updated_at"].as_i64().unwrap()))
        .collect()
}

async fn large_catalogs_connect_and_reconcile_by_bulk_export(db: TestDb) {
    let net = bulk_net(db).await;
    net.assert_in_sync(same);
    let engine = &net.stack.engine;
    let connect = engine.latest_run("child-1").await.unwrap().unwrap();
    assert_eq!(connect.mode, "bulk", "{connect:?}");
    assert_eq!(connect.checked, PRODUCTS as i64);
    assert_eq!(connect.state, "done");

    // Drift planted in the child with nobody listening: a title, a price, a stock level, a
    // deleted copy.
    let p = net.platform();
    p.set_faults("child-1", Faults::with(|f| f.webhook_drop = 1.0))
        .unwrap();
    let titled = net.product_of("child-1", "SKU-000002-1");
    p.merchant_edit_product("child-1", titled, ProductSpec::titled("Drifted"))
        .unwrap();
    let (priced, _) = net.variant("child-1", "SKU-000005-2");
    p.merchant_edit_variant("child-1", priced, Some("0.01".into()), None)
        .unwrap();
    let (_, item) = net.variant("child-1", "SKU-000007-1");
    p.merchant_set_stock("child-1", item, None, 999).unwrap();
    let deleted = net.product_of("child-1", "SKU-000009-1");
    p.merchant_delete_product("child-1", deleted).unwrap();
    net.quiet().await;
    p.set_faults("child-1", Faults::default()).unwrap();
    let before = stamps(&net, "child-1");

    // A copy held by an earlier run that ended without dropping it (a process that died
    // mid-run): the next full pass drops it.
    let db = ferry_sync::db::open(&net.db.real_queue().await)
        .await
        .unwrap();
    ferry_db::exec!(
        &db,
        "INSERT INTO ferry_bulk_copies (run, product, body) VALUES ($1, 'left', '{}')",
        connect.id.clone()
    )
    .unwrap();

    let child = engine.network().store("child-1").await.unwrap();
    let mut phases = Vec::new();
    let run = engine
        .reconcile_child(&child, true, &mut |p: &RunProgress| {
            if phases.last() != Some(&p.phase) {
                phases.push(p.phase.clone());
            }
        })
        .await
        .unwrap();
    assert_eq!(run.mode, "bulk", "{run:?}");
    assert!(
        phases
            .iter()
            .any(|p| p.starts_with("bulk export of child-1 (5 parts):")),
        "{phases:?}"
    );
    assert!(
        phases
            .iter()
            .any(|p| p.starts_with("bulk export of parent (5 parts):")),
        "{phases:?}"
    );
    assert_eq!(
        (run.checked, run.created, run.updated, run.stock_fixed),
        (PRODUCTS as i64, 1, 2, 1),
        "{run:?}"
    );
    net.quiet().await;
    net.assert_in_sync(same);
    // Nothing else was written: only the two drifted copies changed (the deleted one is new).
    let after = stamps(&net, "child-1");
    let changed: Vec<u64> = before
        .iter()
        .filter(|(id, at)| after.get(id) != Some(at))
        .map(|(id, _)| *id)
        .collect();
    let mut want = vec![titled, net.product_of("child-1", "SKU-000005-1")];
    want.sort();
    assert_eq!(changed, want);
    assert_eq!(after.len(), before.len() + 1);
    // The run's record shows how it read and where it ended; the held exports are gone.
    let runs = engine.runs(5).await.unwrap();
    assert_eq!(runs[0].id, run.id);
    assert_eq!(runs[0].mode, "bulk");
    assert_eq!(runs[0].phase, "comparing");
    let held: Option<(i64,)> =
        ferry_db::row!(&db, (i64,), "SELECT COUNT(*) FROM ferry_bulk_copies").unwrap();
    assert_eq!(held, Some((0,)));
    // An incremental pass stays on the cursor, paged.
    let again = engine
        .reconcile_child(&child, false, &mut |_: &RunProgress| {})
        .await
        .unwrap();
    assert_eq!(again.mode, "paged");
    assert_eq!((again.updated, again.created, again.stock_fixed), (0, 0, 0));
}

async fn a_failed_export_is_paged_and_the_run_says_so(db: TestDb) {
    let net = bulk_net(db).await;
    let p = net.platform();
    p.set_bulk(
        "child-1",
        BulkSettings {
            fail_after_objects: Some(5),
            ..BulkSettings::default()
        },
    )
    .unwrap();
    p.set_faults("child-1", Faults::with(|f| f.webhook_drop = 1.0))
        .unwrap();
    let copy = net.product_of("child-1", "SKU-000003-1");
    p.merchant_edit_product("child-1", copy, ProductSpec::titled("Drifted"))
        .unwrap();
    net.quiet().await;
    p.set_faults("child-1", Faults::default()).unwrap();
    let engine = &net.stack.engine;
    let child = engine.network().store("child-1").await.unwrap();
    let run = engine
        .reconcile_child(&child, true, &mut |_: &RunProgress| {})
        .await
        .unwrap();
    assert!(
        run.mode
            .contains("child-1: bulk export failed (INTERNAL_SERVER_ERROR)")
            && run.mode.contains("paged instead"),
        "{run:?}"
    );
    assert_eq!((run.checked, run.updated), (PRODUCTS as i64, 1));
    net.quiet().await;
    net.assert_in_sync(same);
}
