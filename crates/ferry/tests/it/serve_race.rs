//! Two `ferry serve` processes on one PostgreSQL receive the same deliveries at once: each is
//! accepted by exactly one of them and becomes exactly one job.

use ferry_testkit::Answered;
use ferry_testkit::TestDb;

use crate::process::serve;
use crate::serve_process::add_shop;

const N: usize = 200;

ferry_testkit::postgres_only!(two_servers_accept_each_delivery_once);

async fn two_servers_accept_each_delivery_once(db: TestDb) {
    let key = add_shop(&db.url, "shpss_race_secret").await;
    let (_a, url_a) = serve(&db.url, &key).await;
    let (_b, url_b) = serve(&db.url, &key).await;

    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Server B gets them in the opposite order, so the two servers' commits take the same
    // deliveries in opposite orders (the recipe for a deadlock).
    for n in 0..N {
        for (url, i) in [(&url_a, n), (&url_b, N - 1 - n)] {
            let body = format!(r#"{{"id":{i}}}"#);
            let sig = ferry_mock::shopify_hmac("shpss_race_secret", body.as_bytes());
            let req = http
                .post(format!("{url}/webhooks/shopify/shop"))
                .header("content-type", "application/json")
                .header("x-shopify-hmac-sha256", sig.clone())
                .header("x-shopify-webhook-id", format!("race-{i}"))
                .body(body.clone());
            tasks.spawn(async move { (i, req.answer().await.status().as_u16()) });
        }
    }
    let mut accepted = vec![0; N];
    while let Some(r) = tasks.join_next().await {
        let (i, status) = r.unwrap();
        match status {
            202 => accepted[i] += 1,
            200 => {}
            other => panic!("delivery {i}: {other}"),
        }
    }
    assert!(
        accepted.iter().all(|n| *n == 1),
        "each delivery accepted exactly once: {accepted:?}"
    );
    let q = ferry_queue::Queue::connect(&db.url).await.unwrap();
    assert_eq!(
        q.stats("webhooks").await.unwrap().ready,
        N as i64,
        "one job each"
    );
}
