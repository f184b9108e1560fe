//! Per-minute samples: what workers ran, per queue and per group, and the queues' depth.

use std::time::Duration;

use ferry_queue::{JobError, Worker};
use serde_json::json;

use crate::{new_job, put};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    samples_count_outcomes_per_queue_and_group_and_keep_depth,
}

async fn samples_count_outcomes_per_queue_and_group_and_keep_depth(db: TestDb) {
    let q = db.queue().await;
    let w = Worker::builder(q.clone())
        .handle("job", |p: serde_json::Value, _ctx| async move {
            if p["fail"].as_bool() == Some(true) {
                Err(JobError::fatal("refused"))
            } else {
                Ok(())
            }
        })
        .build();
    let t0 = q.now_ms();
    for (group, fail) in [
        ("shop-a", false),
        ("shop-a", true),
        ("shop-b", false),
        ("", false),
    ] {
        put(&q, new_job("job", json!({"fail": fail})).group(group)).await;
    }
    // One left waiting, so the depth has something to show.
    put(&q, new_job("job", json!({})).run_at_ms(t0 + 3_600_000)).await;
    for _ in 0..4 {
        w.run_one().await.unwrap();
    }
    w.sample().await.unwrap();
    // Nothing counted twice: a second sample in the same minute adds nothing.
    w.sample().await.unwrap();

    let chart = q.samples("default", t0 - 60_000, 60_000).await.unwrap();
    assert_eq!(chart.len(), 1, "{chart:?}");
    assert_eq!((chart[0].completed, chart[0].failed), (3, 1));
    assert_eq!(chart[0].ready, Some(0));

    let activity = |from| {
        let q = q.clone();
        async move { q.groups_activity(from).await.unwrap() }
    };
    let a = activity(t0 - 60_000).await["shop-a"].clone();
    assert_eq!((a.completed, a.failed), (1, 1));
    assert!(
        !a.failing_now,
        "one of its jobs completed in the latest minute"
    );
    assert!(a.last_success_ms.is_some_and(|m| m <= t0));
    let b = activity(t0 - 60_000).await["shop-b"].clone();
    assert_eq!((b.completed, b.failed), (1, 0));
    assert!(!activity(t0).await.contains_key("shop-c"));

    // A later minute is a new bucket; an hour's buckets fold minutes together. A minute in
    // which a group's jobs only failed says it is failing now.
    db.clock.advance(Duration::from_secs(60));
    put(&q, new_job("job", json!({"fail": true})).group("shop-b")).await;
    w.run_one().await.unwrap();
    w.sample().await.unwrap();
    let b = activity(t0 - 60_000).await["shop-b"].clone();
    assert_eq!((b.completed, b.failed, b.failing_now), (1, 1, true));
    put(&q, new_job("job", json!({})).group("shop-a")).await;
    w.run_one().await.unwrap();
    w.sample().await.unwrap();
    assert_eq!(
        q.samples("default", t0 - 60_000, 60_000)
            .await
            .unwrap()
            .len(),
        2
    );
    let hourly = q
        .samples("default", t0 - 3_600_000, 3_600_000)
        .await
        .unwrap();
    assert_eq!(hourly.iter().map(|s| s.completed).sum::<i64>(), 4);
    assert_eq!(hourly.iter().map(|s| s.failed).sum::<i64>(), 2);

    // Retention: a week later the old minutes are pruned.
    db.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let pruned = q
        .prune_samples(Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    assert!(pruned >= 2, "{pruned}");
    assert!(q.samples("default", 0, 60_000).await.unwrap().is_empty());
}
