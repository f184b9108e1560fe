//! Catalog: parent → children.

use ferry_mock::{Faults, FileSpec, ProductSpec};
use ferry_sync::{Field, Rules};
use ferry_testkit::TestDb;
use serde_json::Value;

use crate::{Net, PARENT, same};

async fn connecting_links_by_sku_and_copies_what_is_missing(db: TestDb) {
    let net = Net::unconnected(db, 2, 12, Rules::default()).await;
    // child-2 lacks the last 4 products; child-1 has an extra product of its own.
    let p = net.platform();
    for sku_n in 9..=12 {
        let id = net.product_of("child-2", &format!("SKU-{sku_n:06}-1"));
        p.merchant_delete_product("child-2", id).unwrap();
    }
    net.connect_all().await;
    net.assert_in_sync(same);
    for c in &net.children {
        for n in 1..=12 {
            let sku = format!("SKU-{n:06}-1");
            assert_eq!(net.count_sku(c, &sku), 1, "{c}: one copy of {sku}");
        }
    }
    let creates = net
        .audit("child-2")
        .await
        .into_iter()
        .filter(|e| e.action == "create")
        .count();
    assert_eq!(creates, 4, "child-2 got the 4 products it lacked");
    assert!(net.dead_jobs().await.is_empty());
}

async fn edits_creates_and_deletes_in_the_parent_reach_every_child(db: TestDb) {
    let net = Net::start(db, 2, 6, Rules::default()).await;
    let p = net.platform();
    let edited = net.product_of(PARENT, "SKU-000001-1");
    p.merchant_edit_product(PARENT, edited, ProductSpec::titled("Renamed in the parent"))
        .unwrap();
    let (variant, _) = net.variant(PARENT, "SKU-000002-2");
    p.merchant_edit_variant(PARENT, variant, Some("99.50".into()), None)
        .unwrap();
    net.create_in_parent("Brand new", &["NEW-1", "NEW-2"]).await;
    let gone = net.product_of(PARENT, "SKU-000003-1");
    p.merchant_delete_product(PARENT, gone).unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    for c in &net.children {
        let got = net.by_sku(c);
        assert_eq!(got["SKU-000001-1"].0, "Renamed in the parent");
        assert_eq!(got["SKU-000002-2"].1, "99.50");
        assert_eq!(got["NEW-2"].0, "Brand new");
        assert_eq!(
            got["SKU-000003-1"].3, "ARCHIVED",
            "a deletion archives the copy"
        );
    }
    assert!(net.dead_jobs().await.is_empty());
}

async fn price_rules_and_fields_the_child_owns(db: TestDb) {
    let net = Net::unconnected(db, 2, 5, Rules::default()).await;
    let marked_up = Rules::marked_up(10.0, ".99");
    let own_titles = Rules::all_but(Field::Title);
    let engine = &net.stack.engine;
    engine
        .network()
        .set_rules("child-1", &marked_up)
        .await
        .unwrap();
    engine
        .network()
        .set_rules("child-2", &own_titles)
        .await
        .unwrap();
    let titles_before = net.by_sku("child-2");
    net.connect_all().await;
    let parent = net.by_sku(PARENT);
    let rule = marked_up.price.clone().unwrap();
    for (sku, (title, price, stock, _)) in &parent {
        let c1 = &net.by_sku("child-1")[sku];
        assert_eq!(c1.1, rule.apply(price), "{sku}: +10%, ending .99");
        assert_eq!(&c1.0, title);
        let c2 = &net.by_sku("child-2")[sku];
        assert_eq!(c2.0, titles_before[sku].0, "child-2 keeps its own title");
        assert_ne!(&c2.0, title, "(seeded titles differ)");
        assert_eq!(&c2.1, price);
        assert_eq!((&c1.2, &c2.2), (stock, stock));
    }
    // A later parent edit of the title still leaves child-2's alone.
    let id = net.product_of(PARENT, "SKU-000001-1");
    net.platform()
        .merchant_edit_product(
            PARENT,
            id,
            ProductSpec {
                title: Some("Parent title".into()),
                vendor: Some("New vendor".into()),
                ..ProductSpec::default()
            },
        )
        .unwrap();
    net.quiet().await;
    assert_eq!(net.by_sku("child-1")["SKU-000001-1"].0, "Parent title");
    assert_eq!(
        net.by_sku("child-2")["SKU-000001-1"].0,
        titles_before["SKU-000001-1"].0
    );
}

async fn a_create_applied_then_refused_is_not_made_twice(db: TestDb) {
    let net = Net::start(db, 1, 2, Rules::default()).await;
    // Every other write to the child is applied and then answered 500.
    net.platform()
        .set_faults("child-1", Faults::with(|f| f.applied_then_5xx = 0.5))
        .unwrap();
    for n in 0..5 {
        net.create_in_parent(&format!("Faulty {n}"), &[&format!("F-{n}")])
            .await;
    }
    net.quiet().await;
    net.platform()
        .set_faults("child-1", Faults::default())
        .unwrap();
    assert!(net.platform().faults_injected("child-1").unwrap() > 0);
    for n in 0..5 {
        assert_eq!(
            net.count_sku("child-1", &format!("F-{n}")),
            1,
            "F-{n}: one copy"
        );
    }
    net.assert_in_sync(same);
}

async fn a_step_failing_for_good_undoes_the_create(db: TestDb) {
    let net = Net::start(db, 1, 1, Rules::default()).await;
    // The child's location is gone: setting the stock of a new copy can never succeed.
    net.stack
        .engine
        .network()
        .set_connected("child-1", "gid://shopify/Location/999999")
        .await
        .unwrap();
    net.stack.queue.pause(ferry_sync::SYNC_QUEUE).await.unwrap();
    let id = net.create_in_parent("Doomed", &["DOOM-1"]).await;
    let (_, item) = net.variant(PARENT, "DOOM-1");
    net.platform()
        .merchant_set_stock(PARENT, item, None, 7)
        .unwrap();
    net.stack
        .queue
        .resume(ferry_sync::SYNC_QUEUE)
        .await
        .unwrap();
    net.quiet().await;
    let copy = &net.by_sku("child-1")["DOOM-1"];
    assert_eq!(copy.3, "ARCHIVED", "the created copy was archived again");
    let dead = net.dead_jobs().await;
    assert_eq!(dead.len(), 1, "the failure is visible: {dead:?}");
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("undone"),
        "{:?}",
        dead[0].last_error
    );
    let audit = net.audit("child-1").await;
    assert!(audit.iter().any(|e| e.action == "compensate"));
    let link = net
        .stack
        .engine
        .network()
        .link("child-1", &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.state, "failed");
}

async fn duplicated_reordered_and_dropped_webhooks_converge(db: TestDb) {
    let net = Net::start(db, 2, 8, Rules::default()).await;
    net.platform()
        .set_faults(
            PARENT,
            Faults {
                webhook_duplicate: 0.4,
                webhook_hold: 0.3,
                webhook_hold_ms: 300,
                webhook_drop: 0.2,
                ..Faults::default()
            },
        )
        .unwrap();
    let p = net.platform();
    for round in 0..3 {
        for n in 1..=8 {
            let id = net.product_of(PARENT, &format!("SKU-{n:06}-1"));
            p.merchant_edit_product(
                PARENT,
                id,
                ProductSpec::titled(format!("Round {round} product {n}")),
            )
            .unwrap();
        }
    }
    net.quiet().await;
    // Dropped deliveries are what reconciliation is for.
    net.stack.engine.start_reconcile(None, true).await.unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    for c in &net.children {
        assert_eq!(net.by_sku(c)["SKU-000004-1"].0, "Round 2 product 4");
    }
    assert!(net.dead_jobs().await.is_empty());
}

async fn reconciliation_repairs_drift_and_records_the_run(db: TestDb) {
    let net = Net::start(db, 1, 4, Rules::default()).await;
    let p = net.platform();
    // Someone edits the copy in the child, and sets its stock, with nobody listening.
    p.set_faults("child-1", Faults::with(|f| f.webhook_drop = 1.0))
        .unwrap();
    let copy = net.product_of("child-1", "SKU-000002-1");
    p.merchant_edit_product("child-1", copy, ProductSpec::titled("Drifted"))
        .unwrap();
    let (_, item) = net.variant("child-1", "SKU-000003-2");
    p.merchant_set_stock("child-1", item, None, 555).unwrap();
    net.quiet().await;
    assert_eq!(net.by_sku("child-1")["SKU-000002-1"].0, "Drifted");
    p.set_faults("child-1", Faults::default()).unwrap();
    let child = net.stack.engine.network().store("child-1").await.unwrap();
    let engine = &net.stack.engine;
    let run = engine.reconcile_child(&child, true, &mut |_| {}).await;
    let run = run.unwrap();
    net.quiet().await;
    net.assert_in_sync(same);
    assert_eq!(
        (run.checked, run.updated, run.stock_fixed),
        (4, 1, 1),
        "{run:?}"
    );
    let runs = net.stack.engine.runs(10).await.unwrap();
    assert_eq!(runs[0].state, "done");
    // An incremental pass after it starts from where the last one ended.
    let edited = net.product_of(PARENT, "SKU-000001-1");
    p.merchant_edit_product(
        PARENT,
        edited,
        ProductSpec {
            vendor: Some("Later".into()),
            ..ProductSpec::default()
        },
    )
    .unwrap();
    net.quiet().await;
    let again = engine.reconcile_child(&child, false, &mut |_| {}).await;
    let again = again.unwrap();
    assert_eq!(again.full_pass, 0);
    assert!(again.cursor_ms > run.cursor_ms, "{again:?} after {run:?}");
    assert!(
        again.checked >= 1 && again.checked <= run.checked,
        "{again:?}"
    );
    assert_eq!(
        (again.updated, again.stock_fixed),
        (0, 0),
        "nothing drifted since"
    );
}

async fn collections_follow_the_parent(db: TestDb) {
    let net = Net::start(db, 2, 3, Rules::default()).await;
    let merchant = net.shop(PARENT).await;
    let summer = merchant
        .create_collection("Summer", "summer")
        .await
        .unwrap();
    let sale = merchant.create_collection("Sale", "sale").await.unwrap();
    let id = |sku: &str| format!("gid://shopify/Product/{}", net.product_of(PARENT, sku));
    merchant
        .set_collections(&id("SKU-000001-1"), &[summer.id.clone(), sale.id.clone()])
        .await
        .unwrap();
    merchant
        .set_collections(&id("SKU-000002-1"), std::slice::from_ref(&summer.id))
        .await
        .unwrap();
    net.quiet().await;
    let members = |store: &str| -> Vec<(String, Vec<u64>)> {
        let snap = net.platform().snapshot(store).unwrap();
        let mut out: Vec<(String, Vec<u64>)> = snap["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut ps: Vec<u64> = c["products"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| p.as_u64())
                    .collect();
                ps.sort();
                (c["handle"].as_str().unwrap().to_owned(), ps)
            })
            .collect();
        out.sort();
        out
    };
    for c in &net.children {
        let got = members(c);
        let want = vec![
            ("sale".to_owned(), vec![net.product_of(c, "SKU-000001-1")]),
            ("summer".to_owned(), {
                let mut v = vec![
                    net.product_of(c, "SKU-000001-1"),
                    net.product_of(c, "SKU-000002-1"),
                ];
                v.sort();
                v
            }),
        ];
        assert_eq!(
            got, want,
            "{c}: collections made by handle, membership copied"
        );
    }
    // Out of a collection in the parent: out of it in every child.
    merchant
        .set_collections(&id("SKU-000001-1"), std::slice::from_ref(&sale.id))
        .await
        .unwrap();
    net.quiet().await;
    for c in &net.children {
        let got = members(c);
        assert_eq!(
            got[1],
            ("summer".to_owned(), vec![net.product_of(c, "SKU-000002-1")])
        );
    }
    net.assert_in_sync(same);
    assert!(
        net.dead_jobs().await.is_empty(),
        "{:?}",
        net.dead_jobs().await
    );
}

/// A store's images of the product holding `sku`: (id, alt, file name).
fn images(net: &Net, store: &str, sku: &str) -> Vec<(u64, String, String)> {
    let snap = net.platform().snapshot(store).unwrap();
    let id = net.product_of(store, sku);
    let p = snap["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_u64() == Some(id))
        .unwrap();
    p["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i: &Value| {
            (
                i["id"].as_u64().unwrap(),
                i["alt"].as_str().unwrap().to_owned(),
                i["filename"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A child's images match the parent's: the same alts in the same order, each a copy ferry
/// uploaded of the parent's file (`ferry-{parent image}-{name}`).
fn assert_copies(net: &Net, child: &str, sku: &str, when: &str) {
    let want = images(net, PARENT, sku);
    let got = images(net, child, sku);
    assert_eq!(
        got.len(),
        want.len(),
        "{when}: {child} {sku}: {got:?} vs {want:?}"
    );
    for ((_, alt, file), (pid, palt, pfile)) in got.iter().zip(&want) {
        assert_eq!(alt, palt, "{when}: {child} {sku}");
        // The platform appends to a name already taken (a copy uploaded again).
        let stem = pfile.rsplit_once('.').map_or(pfile.as_str(), |(s, _)| s);
        assert!(
            file.starts_with(&format!("ferry-{pid}-{stem}")),
            "{when}: {child} {sku}: {got:?}"
        );
    }
}

async fn images_follow_the_parent(db: TestDb) {
    let net = Net::unconnected(db, 2, 4, Rules::default()).await;
    let own_images = Rules::all_but(Field::Images);
    net.stack
        .engine
        .network()
        .set_rules("child-2", &own_images)
        .await
        .unwrap();
    let skus = [
        "SKU-000001-1",
        "SKU-000002-1",
        "SKU-000003-1",
        "SKU-000004-1",
    ];
    let child2_before: Vec<_> = skus.iter().map(|s| images(&net, "child-2", s)).collect();
    assert!(
        child2_before.iter().any(|i| !i.is_empty()),
        "(seeded products have images)"
    );
    net.connect_all().await;
    for sku in skus {
        assert_copies(&net, "child-1", sku, "connected");
    }
    let child2_after: Vec<_> = skus.iter().map(|s| images(&net, "child-2", s)).collect();
    assert_eq!(child2_after, child2_before, "child-2 owns its images");

    // The merchant reorders the parent's images of a product, drops one and adds one.
    let sku = "SKU-000003-1";
    let parent_images = images(&net, PARENT, sku);
    assert_eq!(parent_images.len(), 2, "(the third seeded product has 2)");
    let kept_copy = images(&net, "child-1", sku)[1].0;
    net.platform()
        .merchant_edit_product(
            PARENT,
            net.product_of(PARENT, sku),
            ProductSpec {
                files: Some(vec![
                    FileSpec {
                        id: Some(parent_images[1].0),
                        alt: Some("Back, close up".into()),
                        ..FileSpec::default()
                    },
                    FileSpec {
                        source: Some("https://img.example/cap-side.png?v=3".into()),
                        alt: Some("Side".into()),
                        ..FileSpec::default()
                    },
                ]),
                ..ProductSpec::default()
            },
        )
        .unwrap();
    net.quiet().await;
    assert_copies(&net, "child-1", sku, "edited");
    let now = images(&net, "child-1", sku);
    assert_eq!(
        now[0].0, kept_copy,
        "a copy the child has is kept, not uploaded again"
    );
    assert_eq!(now[0].1, "Back, close up");
    assert_eq!(images(&net, "child-2", sku), child2_before[2]);

    // Images edited away in a child are put back by a full reconciliation.
    net.platform()
        .merchant_edit_product(
            "child-1",
            net.product_of("child-1", sku),
            ProductSpec {
                files: Some(Vec::new()),
                ..ProductSpec::default()
            },
        )
        .unwrap();
    net.stack.engine.start_reconcile(None, true).await.unwrap();
    net.quiet().await;
    assert_copies(&net, "child-1", sku, "reconciled");
    let audit = net.audit("child-1").await;
    assert!(
        audit.iter().any(|e| e.fields.get("images").is_some()),
        "the audit log shows image writes"
    );
    net.assert_in_sync(same);
    assert!(net.dead_jobs().await.is_empty());
}

ferry_testkit::conformance! {
    images_follow_the_parent, collections_follow_the_parent,
    connecting_links_by_sku_and_copies_what_is_missing,
    edits_creates_and_deletes_in_the_parent_reach_every_child,
    price_rules_and_fields_the_child_owns, a_create_applied_then_refused_is_not_made_twice,
    a_step_failing_for_good_undoes_the_create, duplicated_reordered_and_dropped_webhooks_converge,
    reconciliation_repairs_drift_and_records_the_run,
    a_sale_never_sees_a_copy_without_its_links, a_push_waits_while_another_push_of_the_product_runs,
}

/// A child's copy is relinked (its variant links replaced) whenever the parent's product is
/// pushed again, while sales in other stores read the links to find every store that holds
/// the item. The replacement is one transaction: a reader sees the old links or the new ones,
/// never none (with none, that child's share of a sale was silently dropped).
async fn a_sale_never_sees_a_copy_without_its_links(db: TestDb) {
    use ferry_sync::network::{Network, VariantLink};
    let queue = db.queue().await;
    let cipher = ferry_core::Cipher::from_base64(&ferry_core::Cipher::generate_key()).unwrap();
    let net = Network::new(
        ferry_sync::db::open(&queue).await.unwrap(),
        cipher,
        queue.clock(),
    );
    let links: Vec<VariantLink> = (1..=2)
        .map(|i| VariantLink {
            child: "child-1".into(),
            parent_variant: format!("pv-{i}"),
            parent_item: format!("pi-{i}"),
            child_variant: format!("cv-{i}"),
            child_item: format!("ci-{i}"),
            sku: Some(format!("SKU-{i}")),
            parent_product: "pp".into(),
        })
        .collect();
    net.replace_variant_links("child-1", "pp", &links)
        .await
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let relink = async {
        for _ in 0..300 {
            net.replace_variant_links("child-1", "pp", &links)
                .await
                .unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let read = async {
        let (mut reads, mut empty) = (0u32, 0u32);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            reads += 1;
            if net.copies_of("pv-1").await.unwrap().is_empty() {
                empty += 1;
            }
            tokio::task::yield_now().await;
        }
        (reads, empty)
    };
    let ((), (reads, empty)) = tokio::join!(relink, read);
    assert!(reads > 10, "the reader ran alongside ({reads} reads)");
    assert_eq!(
        empty, 0,
        "{empty} of {reads} reads found the copy without links"
    );
}

/// The queue can start a newer push of a product while an older one still runs; two pushes
/// writing one copy at once could leave the older snapshot last. A push finds the product's
/// lock held, waits without spending an attempt, and goes on once it is let go.
async fn a_push_waits_while_another_push_of_the_product_runs(db: TestDb) {
    let net = Net::start(db, 1, 3, Rules::default()).await;
    let engine = &net.stack.engine;
    let product = net.product_of(PARENT, "SKU-000001-1");
    let gid = format!("gid://shopify/Product/{product}");
    let links = engine.network().links("child-1", "", 10).await.unwrap();
    assert!(
        links.iter().any(|l| l.parent_product == gid),
        "the product is linked as {gid}"
    );
    // Another push holds the product's lock.
    let far = engine.network().now_ms() + 3_600_000;
    let take = |holder: &'static str| engine.network().lock_push("child-1", &gid, holder, far);
    let release = |holder: &'static str| engine.network().unlock_push("child-1", &gid, holder);
    assert!(take("another push").await.unwrap());
    net.platform()
        .merchant_edit_product(PARENT, product, ProductSpec::titled("Edited while locked"))
        .unwrap();
    let queue = net.stack.queue.clone();
    ferry_testkit::eventually("the push ran and is waiting for the lock", || {
        let queue = queue.clone();
        let gid = gid.clone();
        async move {
            let filter = ferry_queue::JobFilter {
                kind: Some("sync.push".into()),
                limit: 100,
                ..Default::default()
            };
            queue.list(&filter).await.unwrap().iter().any(|j| {
                j.payload["product"] == gid.as_str()
                    && j.state == ferry_queue::JobState::Queued
                    && j.started_at.is_some()
                    && j.attempt == 0
            })
        }
    })
    .await;
    assert_ne!(
        net.by_sku("child-1")["SKU-000001-1"].0,
        "Edited while locked",
        "nothing written while another push holds the lock"
    );
    // A holder that is not the owner can not take or let go of it.
    assert!(!take("a third").await.unwrap());
    release("a third").await.unwrap();
    assert!(!take("a third").await.unwrap());
    release("another push").await.unwrap();
    net.quiet().await;
    assert_eq!(
        net.by_sku("child-1")["SKU-000001-1"].0,
        "Edited while locked"
    );
    net.assert_in_sync(same);
    assert!(net.dead_jobs().await.is_empty());
}
