//! The sync engine as it is deployed: `ferry serve` and two `ferry worker` processes on one
//! PostgreSQL, the network set up with `ferry network …`. A worker killed with SIGKILL in the
//! middle of a burst of edits and sales loses its jobs to the other; every store still ends
//! exactly in line with the parent.

use std::collections::BTreeMap;

use ferry_mock::{MockServer, OrderLine, ProductSpec};
use ferry_queue::JobState;
use ferry_testkit::{TestDb, eventually};
use tokio::process::Child;

use crate::process::{add_and_connect, ferry, serve, simulated, spawn_quiet};

pub(crate) fn worker(db: &str, key: &str, public: &str) -> Child {
    let args = [
        "worker",
        "--database-url",
        db,
        "--public-url",
        public,
        "--reconcile-cron",
        "off",
        "--concurrency",
        "8",
    ];
    spawn_quiet(&mut ferry(&args, &[("FERRY_ENCRYPTION_KEY", key)]))
}

/// Up to ten jobs in `state`.
pub(crate) async fn in_state(
    queue: &ferry_queue::Queue,
    state: JobState,
) -> Vec<ferry_queue::JobRecord> {
    let filter = ferry_queue::JobFilter::in_state(state, 10);
    queue.list(&filter).await.unwrap()
}

/// (title, stock) per SKU.
pub(crate) fn by_sku(mock: &MockServer, store: &str) -> BTreeMap<String, (String, i64)> {
    let snap = mock.platform().snapshot(store).unwrap();
    let mut out = BTreeMap::new();
    for p in snap["products"].as_array().unwrap() {
        for v in p["variants"].as_array().unwrap() {
            let stock = v["inventory"][0]["available"].as_i64().unwrap();
            out.insert(
                v["sku"].as_str().unwrap().to_owned(),
                (p["title"].as_str().unwrap().to_owned(), stock),
            );
        }
    }
    out
}

pub(crate) async fn quiet(queue: &ferry_queue::Queue, mock: &MockServer, stores: &[&str]) {
    let calm = std::sync::atomic::AtomicU32::new(0);
    eventually("the network is quiet", || {
        let calm = &calm;
        let in_flight: u64 = stores
            .iter()
            .map(|s| mock.platform().webhook_counters(s).in_flight)
            .sum();
        async move {
            let mut busy = in_flight > 0;
            for q in ["webhooks", "sync"] {
                let s = queue.stats(q).await.unwrap();
                busy |= s.ready + s.scheduled + s.running > 0;
            }
            if busy {
                calm.store(0, std::sync::atomic::Ordering::Relaxed);
                false
            } else {
                calm.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 30
            }
        }
    })
    .await;
}

ferry_testkit::postgres_only!(a_worker_killed_mid_sync_loses_nothing);

async fn a_worker_killed_mid_sync_loses_nothing(db: TestDb) {
    let stores = ["parent", "child-1", "child-2"];
    let mock = simulated(&stores, 10, 2).await;
    let key = ferry_core::Cipher::generate_key();
    let (_serve, public) = serve(&db.url, &key).await;
    for s in stores {
        let args = ["--database-url", &db.url, "--public-url", &public];
        add_and_connect(&mock, s, &args, &[("FERRY_ENCRYPTION_KEY", &key)]).await;
    }
    let mut a = worker(&db.url, &key, &public);
    let _b = worker(&db.url, &key, &public);
    let queue = db.real_queue().await;
    quiet(&queue, &mock, &stores).await;
    assert_eq!(
        by_sku(&mock, "child-1"),
        by_sku(&mock, "parent"),
        "connected"
    );

    // A burst of edits and sales, and worker A dies in the middle of it.
    let before = by_sku(&mock, "parent");
    burst(&mock, &["child-1", "child-2"]);
    eventually("worker A is running sync jobs", || async {
        !in_state(&queue, JobState::Running).await.is_empty()
    })
    .await;
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    quiet(&queue, &mock, &stores).await;

    converged(&queue, &mock, &before, &["child-1", "child-2"]).await;
}

/// Ten parent edits (`SKU-…-1` retitled) and ten sales (`SKU-…-2`, one each) in turn in
/// `children`.
pub(crate) fn burst(mock: &MockServer, children: &[&str]) {
    let p = mock.platform();
    for n in 1..=10u64 {
        let sku = format!("SKU-{n:06}-1");
        let snap = p.snapshot("parent").unwrap();
        let id = snap["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["variants"][0]["sku"] == sku.as_str())
            .and_then(|x| x["id"].as_u64())
            .unwrap();
        p.merchant_edit_product(
            "parent",
            id,
            ProductSpec::titled(format!("After the burst {n}")),
        )
        .unwrap();
        let line = OrderLine {
            variant_id: None,
            sku: Some(format!("SKU-{n:06}-2")),
            quantity: 1,
        };
        let _ = p.place_order(children[n as usize % children.len()], &[line]);
    }
}

/// After a [`burst`]: each sale counted once in the parent, no job dead, every child equal to
/// the parent (a child that is not has ferry's writes to it printed).
pub(crate) async fn converged(
    queue: &ferry_queue::Queue,
    mock: &MockServer,
    before: &BTreeMap<String, (String, i64)>,
    children: &[&str],
) {
    let parent = by_sku(mock, "parent");
    for n in 1..=10u64 {
        let sku = format!("SKU-{n:06}-2");
        let sold = i64::from(before[&sku].1 > 0);
        assert_eq!(parent[&sku].1, before[&sku].1 - sold, "{sku} sold once");
        assert_eq!(
            parent[&format!("SKU-{n:06}-1")].0,
            format!("After the burst {n}")
        );
    }
    let dead = in_state(queue, JobState::Dead).await;
    assert!(dead.is_empty(), "{dead:?}");
    for c in children {
        if by_sku(mock, c) != parent {
            // What ferry wrote to that store, for the failure's report.
            let db = queue.db();
            let rows: Vec<(i64, String, String, String, String)> = ferry_db::rows!(
                &db,
                (i64, String, String, String, String),
                "SELECT at_ms, entity, action, fields, cause FROM ferry_audit WHERE store = $1 ORDER BY at_ms",
                *c
            )
            .unwrap();
            for r in rows {
                eprintln!("audit of {c}: {r:?}");
            }
        }
        assert_eq!(by_sku(mock, c), parent, "{c} matches the parent");
    }
}
