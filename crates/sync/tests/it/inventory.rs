//! Inventory: a sale anywhere moves stock everywhere, once; stock counts win by time.

use ferry_mock::{Faults, OrderLine};
use ferry_sync::Rules;
use ferry_testkit::TestDb;

use crate::{Net, PARENT, same};

fn line(sku: &str, quantity: i64) -> OrderLine {
    OrderLine {
        variant_id: None,
        sku: Some(sku.into()),
        quantity,
    }
}

async fn a_sale_in_a_child_moves_stock_in_the_parent_and_every_other_child(db: TestDb) {
    let net = Net::start(db, 3, 4, Rules::default()).await;
    let sku = "SKU-000001-1";
    let before = net.by_sku(PARENT)[sku].2;
    assert!(before >= 3, "seeded stock {before}");
    net.platform()
        .place_order("child-2", &[line(sku, 2), line("SKU-000002-2", 1)])
        .unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(net.by_sku(PARENT)[sku].2, before - 2);
    // Each other store got exactly one adjustment for the order; no echo came back as a
    // stock count.
    for store in [PARENT, "child-1", "child-3"] {
        let audit = net.audit(store).await;
        let adjusts = audit.iter().filter(|e| e.action == "adjust_stock").count();
        assert_eq!(adjusts, 2, "{store}: one delta per line");
        assert!(
            audit
                .iter()
                .all(|e| e.action != "set_stock" || e.cause.starts_with("connect")),
            "{store}: no set after the sale: {audit:?}"
        );
    }
    assert!(
        net.audit("child-2")
            .await
            .iter()
            .all(|e| e.action != "adjust_stock")
    );
}

async fn sales_in_two_children_at_once_on_one_sku(db: TestDb) {
    let net = Net::start(db, 2, 2, Rules::default()).await;
    let sku = "SKU-000002-2";
    let before = net.by_sku(PARENT)[sku].2;
    let p = net.platform();
    let stock = |s: &str| net.by_sku(s)[sku].2;
    // Enough stock for a burst on both sides.
    let (_, item) = net.variant(PARENT, sku);
    if before < 20 {
        p.merchant_set_stock(PARENT, item, None, 40).unwrap();
        net.quiet().await;
    }
    let start = stock(PARENT);
    assert_eq!((stock("child-1"), stock("child-2")), (start, start));
    for _ in 0..5 {
        p.place_order("child-1", &[line(sku, 1)]).unwrap();
        p.place_order("child-2", &[line(sku, 2)]).unwrap();
    }
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(stock(PARENT), start - 15, "5 × 1 + 5 × 2 sold");
}

async fn a_redelivered_order_moves_stock_once(db: TestDb) {
    let net = Net::start(db, 2, 2, Rules::default()).await;
    net.platform()
        .set_faults(
            "child-1",
            Faults {
                webhook_duplicate: 1.0,
                webhook_hold: 0.5,
                webhook_hold_ms: 200,
                ..Faults::default()
            },
        )
        .unwrap();
    let sku = "SKU-000001-2";
    let before = net.by_sku(PARENT)[sku].2;
    net.platform()
        .place_order("child-1", &[line(sku, 1)])
        .unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(net.by_sku(PARENT)[sku].2, before - 1);
    assert!(net.platform().webhook_counters("child-1").duplicated > 0);
}

async fn late_webhooks_from_a_child_converge(db: TestDb) {
    let net = Net::start(db, 2, 2, Rules::default()).await;
    let sku = "SKU-000002-1";
    let before = net.by_sku(PARENT)[sku].2;
    // Every child-2 delivery is held back; the orders behind a level change are read from
    // the store, whichever arrives first.
    net.platform()
        .set_faults(
            "child-2",
            Faults {
                webhook_hold: 1.0,
                webhook_hold_ms: 400,
                ..Faults::default()
            },
        )
        .unwrap();
    net.platform()
        .place_order("child-2", &[line(sku, 3)])
        .unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(net.by_sku(PARENT)[sku].2, before - 3);
}

async fn a_dropped_order_is_counted_by_reconciliation(db: TestDb) {
    let net = Net::start(db, 2, 2, Rules::default()).await;
    let sku = "SKU-000001-2";
    let before = net.by_sku(PARENT)[sku].2;
    let p = net.platform();
    p.set_faults("child-1", Faults::with(|f| f.webhook_drop = 1.0))
        .unwrap();
    p.place_order("child-1", &[line(sku, 2)]).unwrap();
    net.quiet().await;
    assert_eq!(
        net.by_sku(PARENT)[sku].2,
        before,
        "nobody heard of the sale"
    );
    p.set_faults("child-1", Faults::default()).unwrap();
    net.stack.engine.start_reconcile(None, true).await.unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(net.by_sku(PARENT)[sku].2, before - 2);
}

async fn a_stock_count_wins_by_its_time_and_reaches_every_store(db: TestDb) {
    let net = Net::start(db, 2, 2, Rules::default()).await;
    let sku = "SKU-000001-1";
    let (_, item) = net.variant("child-1", sku);
    net.platform()
        .merchant_set_stock("child-1", item, None, 77)
        .unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(net.by_sku(PARENT)[sku].2, 77);
    // A sale after the count moves from the counted value.
    net.platform()
        .place_order("child-2", &[line(sku, 7)])
        .unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(net.by_sku("child-1")[sku].2, 70);
    // Then a count in the parent: the newest count wins everywhere.
    let (_, pitem) = net.variant(PARENT, sku);
    net.platform()
        .merchant_set_stock(PARENT, pitem, None, 12)
        .unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(net.by_sku("child-2")[sku].2, 12);
}

ferry_testkit::conformance! {
    a_sale_in_a_child_moves_stock_in_the_parent_and_every_other_child,
    sales_in_two_children_at_once_on_one_sku, a_redelivered_order_moves_stock_once,
    late_webhooks_from_a_child_converge, a_dropped_order_is_counted_by_reconciliation,
    a_stock_count_wins_by_its_time_and_reaches_every_store,
}
