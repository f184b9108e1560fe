use std::collections::HashMap;

use ferry_queue::NewJob;
use serde_json::json;

use crate::{claim, new_job};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    small_groups_are_not_starved_by_a_backlog, group_cap_bounds_running_jobs,
    queue_default_group_cap_applies_to_every_group,
}

async fn small_groups_are_not_starved_by_a_backlog(db: TestDb) {
    let q = db.queue().await;
    // The big merchant's backlog arrives first.
    let big: Vec<NewJob> = (0..10_000)
        .map(|i| new_job("sync", json!({ "i": i })).group("big"))
        .collect();
    q.enqueue_batch(big).await.unwrap();
    for g in 0..20 {
        let small: Vec<NewJob> = (0..5)
            .map(|i| new_job("sync", json!({ "i": i })).group(&format!("small-{g}")))
            .collect();
        q.enqueue_batch(small).await.unwrap();
    }
    let mut claimed = 0;
    let mut small_seen = 0;
    let mut last_small_at = 0;
    while small_seen < 100 {
        let batch = claim(&q, 10).await;
        assert!(!batch.is_empty());
        for j in &batch {
            claimed += 1;
            if j.group_key.starts_with("small-") {
                small_seen += 1;
                last_small_at = claimed;
            }
        }
        assert!(claimed <= 1_000, "small groups starved");
    }
    assert!(
        last_small_at <= 150,
        "last small job claimed at position {last_small_at}"
    );
}

async fn group_cap_bounds_running_jobs(db: TestDb) {
    let q = db.queue().await;
    q.set_group_cap("default", "store-a", Some(2))
        .await
        .unwrap();
    let jobs: Vec<NewJob> = (0..10)
        .map(|_| new_job("sync", json!({})).group("store-a"))
        .chain((0..3).map(|_| new_job("sync", json!({})).group("store-b")))
        .collect();
    q.enqueue_batch(jobs).await.unwrap();
    let first = claim(&q, 10).await;
    let per_group = count_groups(&first);
    assert_eq!(per_group.get("store-a"), Some(&2), "{per_group:?}");
    assert_eq!(per_group.get("store-b"), Some(&3));
    assert!(claim(&q, 10).await.is_empty(), "store-a is at its cap");
    // One finishes: exactly one more slot.
    let a = first.iter().find(|j| j.group_key == "store-a").unwrap();
    q.complete("tester", &[(a.id, a.attempt)], false)
        .await
        .unwrap();
    let next = claim(&q, 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].group_key, "store-a");
    // Removing the cap frees the rest.
    q.set_group_cap("default", "store-a", None).await.unwrap();
    assert_eq!(claim(&q, 10).await.len(), 7);
}

async fn queue_default_group_cap_applies_to_every_group(db: TestDb) {
    let q = db.queue().await;
    q.set_default_group_cap("default", Some(1)).await.unwrap();
    q.set_group_cap("default", "vip", Some(3)).await.unwrap();
    let jobs: Vec<NewJob> = ["a", "b", "vip"]
        .iter()
        .flat_map(|g| (0..5).map(move |_| new_job("sync", json!({})).group(g)))
        .collect();
    q.enqueue_batch(jobs).await.unwrap();
    let got = count_groups(&claim(&q, 50).await);
    assert_eq!(
        got,
        HashMap::from([("a".into(), 1), ("b".into(), 1), ("vip".into(), 3)])
    );
}

fn count_groups(jobs: &[ferry_queue::ClaimedJob]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for j in jobs {
        *m.entry(j.group_key.clone()).or_default() += 1;
    }
    m
}
