use std::time::Duration;

use ferry_queue::JobState;
use serde_json::json;

use crate::{LEASE, claim, new_job, put, state};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    lapsed_lease_requeues_with_attempt_counted, heartbeat_keeps_the_lease,
    lost_lease_makes_late_acks_harmless, lapsed_lease_on_last_attempt_is_dead,
    lapsed_leases_of_two_jobs_with_one_singleton_key,
}

async fn lapsed_lease_requeues_with_attempt_counted(db: TestDb) {
    let q = db.queue().await;
    let job = put(&q, new_job("k", json!({})).max_attempts(5)).await;
    claim(&q, 1).await;
    db.clock.advance(LEASE - Duration::from_millis(1));
    assert!(
        q.reap_expired_leases().await.unwrap().is_empty(),
        "lease still valid"
    );
    db.clock.advance(Duration::from_millis(2));
    let reaped = q.reap_expired_leases().await.unwrap();
    assert_eq!(reaped, vec![(job.id, JobState::Retrying)]);
    let rec = q.get(job.id).await.unwrap().unwrap();
    assert_eq!(rec.attempt, 1);
    assert!(rec.last_error.unwrap().contains("lease expired"));
    let again = claim(&q, 1).await;
    assert_eq!(again[0].id, job.id);
    assert_eq!(again[0].attempt, 2);
}

async fn heartbeat_keeps_the_lease(db: TestDb) {
    let q = db.queue().await;
    let job = put(&q, new_job("k", json!({}))).await;
    claim(&q, 1).await;
    for _ in 0..5 {
        db.clock.advance(Duration::from_secs(4));
        let held = q.heartbeat("tester", &[job.id], LEASE).await.unwrap();
        assert_eq!(held, vec![(job.id, false)]);
        assert!(q.reap_expired_leases().await.unwrap().is_empty());
    }
    // Someone else's heartbeat does not count.
    assert!(
        q.heartbeat("intruder", &[job.id], LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(state(&q, job.id).await, JobState::Running);
}

async fn lost_lease_makes_late_acks_harmless(db: TestDb) {
    let q = db.queue().await;
    let job = put(&q, new_job("k", json!({}))).await;
    let first = claim(&q, 1).await.remove(0);
    db.clock.advance(LEASE * 2);
    q.reap_expired_leases().await.unwrap();
    let second = q
        .claim("default", "other-worker", 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.attempt, 2);
    // The first worker wakes up late: its heartbeat and completion change nothing.
    assert!(
        q.heartbeat("tester", &[job.id], LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        q.complete("tester", &[(first.id, first.attempt)], false)
            .await
            .unwrap(),
        0
    );
    assert_eq!(state(&q, job.id).await, JobState::Running);
    assert_eq!(
        q.complete("other-worker", &[(second.id, second.attempt)], false)
            .await
            .unwrap(),
        1
    );
    assert_eq!(state(&q, job.id).await, JobState::Completed);
}

async fn lapsed_lease_on_last_attempt_is_dead(db: TestDb) {
    let q = db.queue().await;
    let job = put(&q, new_job("k", json!({})).max_attempts(1)).await;
    claim(&q, 1).await;
    db.clock.advance(LEASE * 2);
    assert_eq!(
        q.reap_expired_leases().await.unwrap(),
        vec![(job.id, JobState::Dead)]
    );
}

async fn lapsed_leases_of_two_jobs_with_one_singleton_key(db: TestDb) {
    let q = db.queue().await;
    // A running job does not block a new waiting one with its key, which can then run too.
    let a = put(&q, new_job("k", json!({})).singleton("p:1")).await;
    claim(&q, 1).await;
    let b = put(&q, new_job("k", json!({})).singleton("p:1")).await;
    claim(&q, 1).await;
    let other = put(&q, new_job("k", json!({}))).await;
    claim(&q, 1).await;
    // All three workers die; only one of the two may wait again, and the reaper must not fail.
    db.clock.advance(LEASE * 2);
    let reaped = q.reap_expired_leases().await.unwrap();
    let states: Vec<JobState> = [a.id, b.id]
        .iter()
        .map(|id| reaped.iter().find(|r| r.0 == *id).unwrap().1)
        .collect();
    assert!(
        states.contains(&JobState::Retrying) && states.contains(&JobState::Cancelled),
        "{states:?}"
    );
    assert_eq!(
        state(&q, other.id).await,
        JobState::Retrying,
        "the rest are recovered too"
    );
}
