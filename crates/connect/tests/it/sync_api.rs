use std::time::Duration;

use ferry_connect::BucketShape;
use ferry_connect::sync_api::SyncApi;
use ferry_mock::Faults;
use ferry_testkit::TestDb;
use serde_json::{Value, json};

use crate::{Env, quick};

ferry_testkit::conformance! {
    records_sharing_the_cursor_time_are_not_lost, records_without_an_id_are_skipped,
    fifty_thousand_records_with_faults_end_equal,
}

const UNLIMITED: BucketShape = BucketShape {
    capacity: 1e9,
    restore_per_s: 1e9,
};

fn sync(env: &Env, src: &ferry_mock::StoreInfo, dst: &ferry_mock::StoreInfo) -> SyncApi {
    let p = env.mock.platform();
    for s in [src, dst] {
        p.set_rest_bucket(&s.name, 1e9, 1e9).unwrap();
    }
    // Quick retries, but a request timeout a loaded machine does not reach: a run that ends
    // early on a slow answer is not what the runs below count.
    let opts = || ferry_connect::ClientOptions {
        timeout: std::time::Duration::from_secs(15),
        ..quick()
    };
    SyncApi::new(
        env.rest(src, opts()).with_shape(UNLIMITED),
        env.rest(dst, opts()).with_shape(UNLIMITED),
        env.db.clone(),
        env.queue.clock(),
    )
}

/// The records of a store without the platform's own `updated_at`, by id.
fn fields(env: &Env, store: &str) -> Vec<Value> {
    let mut items = env.mock.platform().items(store).unwrap();
    for i in &mut items {
        if let Value::Object(m) = i {
            m.remove("updated_at");
        }
    }
    items
}

async fn records_sharing_the_cursor_time_are_not_lost(db: TestDb) {
    let mock_clock =
        ferry_core::FakeClock::new(ferry_core::Clock::now_ms(&ferry_core::SystemClock));
    let env = Env::start_mock_clock(db, mock_clock.clone()).await;
    let p = env.mock.platform();
    let src = p.create_store(Some("src")).unwrap();
    let dst = p.create_store(Some("dst")).unwrap();
    let mut s = sync(&env, &src, &dst);
    s.page_size = 3;
    // Seeded in one go: many records share one `updated_at` (a tie on the cursor).
    p.seed_items("src", 10).unwrap();
    let r = s.run_once(&|_| {}).await.unwrap();
    assert_eq!((r.synced, r.skipped, r.failed), (10, 0, 0));
    let (cursor_ms, _) = s.cursor().await.unwrap().unwrap();

    // Later: one edit and two new records; only they are written.
    mock_clock.advance(Duration::from_millis(5));
    p.edit_item(
        "src",
        "item-3",
        serde_json::Map::from_iter([("title".into(), json!("changed"))]),
    )
    .unwrap();
    p.seed_items("src", 2).unwrap();
    let r = s.run_once(&|_| {}).await.unwrap();
    assert_eq!(
        (r.synced, r.failed),
        (3, 0),
        "the edited one and the two new ones, nothing else"
    );
    assert!(s.cursor().await.unwrap().unwrap().0 > cursor_ms);
    assert_eq!(fields(&env, "dst"), fields(&env, "src"));
    let r = s.run_once(&|_| {}).await.unwrap();
    assert_eq!((r.synced, r.failed), (0, 0), "an idle run writes nothing");
}

async fn records_without_an_id_are_skipped(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let dst = p.create_store(Some("dst")).unwrap();
    let app = axum::Router::new().route(
        "/api/items",
        axum::routing::get(|| async {
            axum::Json(json!({"items": [
                {"title": "no id", "updated_at": 1},
                {"id": "a", "title": "A", "updated_at": 2},
                {"id": "b", "title": "no time"},
            ], "next_cursor": null, "has_more": false}))
        }),
    );
    let source = env.serve_api(app).await;
    let s = SyncApi::new(
        source,
        env.rest(&dst, quick()),
        env.db.clone(),
        env.queue.clock(),
    );
    let r = s.run_once(&|_| {}).await.unwrap();
    assert_eq!((r.synced, r.skipped, r.failed), (1, 2, 0));
    assert_eq!(p.items("dst").unwrap()[0]["title"], "A");
}

async fn fifty_thousand_records_with_faults_end_equal(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let src = p.create_store(Some("src")).unwrap();
    let dst = p.create_store(Some("dst")).unwrap();
    p.seed_items("src", 50_000).unwrap();
    let faults = Faults {
        // No 429s here: each one rightly holds the whole store back for its Retry-After (1 s at
        // least), which other tests cover.
        error_5xx: 0.03,
        applied_then_5xx: 0.03,
        ..Faults::default()
    };
    p.set_faults("src", faults.clone()).unwrap();
    p.set_faults("dst", faults).unwrap();
    let s = sync(&env, &src, &dst);
    let mut total = 0;
    // A run stops at a page whose writes failed for good (or at a source failure); the next
    // starts again at the cursor. Done when a run finds nothing left to write. How many runs
    // that takes depends on the dice and on how loaded the machine is (a retry gives up after
    // its wait), so what is asserted is that runs keep moving the cursor: never back, and
    // forward at least once in every few runs.
    let (mut last, mut stalled) = (None, 0);
    loop {
        match s.run_once(&|_| {}).await {
            Ok(r) if r.failed == 0 && r.synced == 0 => break,
            Ok(r) => total += r.synced,
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
        let now = s.cursor().await.unwrap();
        assert!(now >= last, "the cursor never goes back");
        stalled = if now > last { 0 } else { stalled + 1 };
        assert!(stalled < 5, "five runs in a row without progress");
        last = now;
    }
    assert!(total >= 50_000);
    assert!(p.faults_injected("dst").unwrap() > 1000, "faults were on");
    assert_eq!(fields(&env, "dst"), fields(&env, "src"));
}
