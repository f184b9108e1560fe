//! The dashboard in a real browser (headless Chromium through chromedriver) against a real
//! `ferry serve` and `ferry worker` syncing a simulated parent and child: sign in; a child's
//! tile turns red when its API fails and green when it is back; a job that died for a
//! missing permission is replayed from its page and completes; a queue is paused; a forged
//! post is refused; a read token sees no button. Screenshots go to `target/screenshots/`
//! (the ones in `docs/` were taken by this test).

use std::path::PathBuf;

use ferry_mock::{Faults, LEGACY_SCOPES, OrderLine, ProductSpec};
use ferry_queue::JobState;
use ferry_testkit::{TestDb, eventually};

use crate::browser::{self, Browser};
use crate::process::{add_and_connect, simulated, spawn_serve};
use crate::sync_process::{in_state, quiet, worker};

const ADMIN: &str = "browser-test-admin-token-0123456789";

ferry_testkit::postgres_only!(the_dashboard_in_a_real_browser);

fn shot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/screenshots")
        .join(format!("{name}.png"))
}

async fn the_dashboard_in_a_real_browser(db: TestDb) {
    let Some((driver, chromium)) = browser::installed() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs Chromium and chromedriver (.ci/run installs chromium and chromium-driver)"
        );
        eprintln!(
            "SKIPPED the dashboard's browser test: no chromium/chromedriver here \
             (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let stores = ["parent", "child-1"];
    let mock = simulated(&stores, 4, 1).await;
    let p = mock.platform();
    let key = ferry_core::Cipher::generate_key();
    let env = [
        ("FERRY_ENCRYPTION_KEY", key.as_str()),
        ("FERRY_ADMIN_TOKENS", ADMIN),
    ];
    let (_serve, public) = spawn_serve(&["--database-url", &db.url], &env).await;
    for s in stores {
        let args = ["--database-url", &db.url, "--public-url", &public];
        add_and_connect(&mock, s, &args, &[("FERRY_ENCRYPTION_KEY", &key)]).await;
    }
    let _worker = worker(&db.url, &key, &public);
    let queue = db.real_queue().await;
    quiet(&queue, &mock, &stores).await;

    let b = Browser::start(&driver, &chromium).await;
    let ui = format!("{public}/ui");

    // Signed out, the dashboard sends the browser to sign in.
    b.goto(&ui).await;
    assert!(b.url().await.ends_with("/ui/signin"), "{}", b.url().await);
    b.type_into("#token", ADMIN).await;
    b.click("button[type=submit]").await;
    b.until_at("/ui").await;
    b.until_page_has(
        &ui,
        r#"class="tile green" data-store="child-1""#,
        "child-1 healthy",
    )
    .await;
    b.screenshot(&shot_path("overview")).await;

    // child-1's API fails: a parent edit cannot reach it, its breaker opens, its tile is red.
    p.set_faults("child-1", Faults::with(|f| f.error_5xx = 1.0))
        .unwrap();
    let product = p.snapshot("parent").unwrap()["products"][0]["id"]
        .as_u64()
        .unwrap();
    p.merchant_edit_product("parent", product, ProductSpec::titled("Edited while down"))
        .unwrap();
    b.until_page_has(
        &ui,
        r#"class="tile red" data-store="child-1""#,
        "child-1 red",
    )
    .await;
    assert!(b.source().await.contains("API failing"));
    b.screenshot(&shot_path("overview-store-failing")).await;
    // Back: the breaker's probe succeeds and the tile turns green on the open page, without
    // a reload (the page's live stream brings it).
    p.set_faults("child-1", Faults::default()).unwrap();
    b.until_live(
        r#"class="tile green" data-store="child-1""#,
        "child-1 green again",
    )
    .await;

    // child-1's app loses write_inventory: a sale's stock change to it dies for good.
    let narrowed: Vec<&str> = LEGACY_SCOPES
        .iter()
        .copied()
        .filter(|s| *s != "write_inventory")
        .collect();
    p.set_static_scopes("child-1", &narrowed).unwrap();
    let sku = "SKU-000002-1";
    p.place_order(
        "parent",
        &[OrderLine {
            variant_id: None,
            sku: Some(sku.into()),
            quantity: 1,
        }],
    )
    .unwrap();
    eventually("the stock change to child-1 is dead", || async {
        !in_state(&queue, JobState::Dead).await.is_empty()
    })
    .await;
    let dead = in_state(&queue, JobState::Dead).await.remove(0);
    b.until_page_has(
        &format!("{ui}/jobs?state=dead"),
        &format!("/ui/jobs/{}", dead.id),
        "the dead letters list it",
    )
    .await;
    b.screenshot(&shot_path("dead-letters")).await;
    b.until_page_has(
        &format!("{ui}/stores/child-1"),
        "Writes to this store",
        "the store's page",
    )
    .await;
    // The child's products, each linked to its copy there.
    let store_page = b.source().await;
    assert!(
        store_page.contains("Linked products")
            && store_page.matches("<td>linked</td>").count() >= 4,
        "{store_page}"
    );
    b.screenshot(&shot_path("store")).await;

    // The permission is given back; the job is replayed from its page and completes.
    p.set_static_scopes("child-1", LEGACY_SCOPES).unwrap();
    let job_page = format!("{ui}/jobs/{}", dead.id);
    b.goto(&job_page).await;
    b.screenshot(&shot_path("job")).await;
    b.click_and_confirm(&format!(
        r#"form[action="/ui/jobs/{}/replay"] button"#,
        dead.id
    ))
    .await;
    b.until_page_has(&job_page, "completed", "the replayed job completes")
        .await;
    quiet(&queue, &mock, &stores).await;
    let stock = |s: &str| {
        let snap = p.snapshot(s).unwrap();
        snap["products"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|x| x["variants"].as_array().unwrap().clone())
            .find(|v| v["sku"] == sku)
            .and_then(|v| v["inventory"][0]["available"].as_i64())
            .unwrap()
    };
    assert_eq!(
        stock("child-1"),
        stock("parent"),
        "the sale reached child-1"
    );

    // A post without the form's CSRF token, from the signed-in page itself: refused.
    let status = b
        .run(
            "return fetch('/ui/queues/sync/pause', {method: 'POST', credentials: 'same-origin', \
              headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'csrf=forged'})\
              .then(r => r.status)",
        )
        .await;
    assert_eq!(status, 403);
    assert!(!queue.stats("sync").await.unwrap().paused);
    // The pause button (its question answered yes) pauses the queue; resume undoes it.
    b.goto(&ui).await;
    b.click_and_confirm(r#"form[action="/ui/queues/sync/pause"] button"#)
        .await;
    eventually("the sync queue is paused", || async {
        queue.stats("sync").await.unwrap().paused
    })
    .await;
    b.goto(&ui).await;
    b.click(r#"form[action="/ui/queues/sync/resume"] button"#)
        .await;
    eventually("the sync queue runs again", || async {
        !queue.stats("sync").await.unwrap().paused
    })
    .await;

    // The theme is chosen by hand, and kept: system, light, dark. (A fresh load first: the
    // resume click's navigation may still be under way.)
    b.goto(&ui).await;
    let theme = "return document.documentElement.dataset.theme || 'system'";
    assert_eq!(b.run(theme).await, "system");
    b.click("button.theme").await;
    assert_eq!(b.run(theme).await, "light");
    b.click("button.theme").await;
    b.goto(&ui).await;
    assert_eq!(b.run(theme).await, "dark", "kept across pages");
    b.click("button.theme").await;
    b.click("button.theme").await;
    assert_eq!(b.run(theme).await, "light");

    // A read token: every page, no button.
    let r = reqwest::Client::new()
        .post(format!("{public}/api/tokens"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "viewer", "role": "read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let read: serde_json::Value = r.json().await.unwrap();
    b.goto(&ui).await;
    b.click(r#"form[action="/ui/signout"] button"#).await;
    b.until_at("/ui/signin").await;
    b.type_into("#token", read["token"].as_str().unwrap()).await;
    b.click("button[type=submit]").await;
    b.until_at("/ui").await;
    for page in [ui.clone(), job_page.clone(), format!("{ui}/stores/child-1")] {
        b.goto(&page).await;
        let buttons = b
            .all(r#"form[method="post"]:not([action="/ui/signout"]) button"#)
            .await;
        assert!(buttons.is_empty(), "{page}: a read token sees no action");
        assert!(
            b.source().await.contains("viewer"),
            "{page}: signed in as viewer"
        );
    }
}
