use std::time::Duration;

use ferry_queue::{Cancelled, JobState};
use serde_json::json;

use crate::{claim, new_job, put, state};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    deadline_expires_a_waiting_job, cron_fires_once_per_tick_across_processes, pause_and_resume,
    cancel_waiting_job_never_runs, retention_prunes_finished_and_keeps_dead_longer, stats_per_queue,
}

async fn deadline_expires_a_waiting_job(db: TestDb) {
    let q = db.queue().await;
    let job = put(
        &q,
        new_job("k", json!({}))
            .run_in(Duration::from_secs(20))
            .expires_in(Duration::from_secs(10)),
    )
    .await;
    let fresh = put(
        &q,
        new_job("k", json!({})).expires_in(Duration::from_secs(60)),
    )
    .await;
    db.clock.advance(Duration::from_secs(25));
    let got = claim(&q, 10).await;
    assert_eq!(got.len(), 1, "the expired job is never claimed");
    assert_eq!(got[0].id, fresh.id);
    assert_eq!(q.expire_deadlines().await.unwrap(), 1);
    assert_eq!(state(&q, job.id).await, JobState::Expired);
}

async fn cron_fires_once_per_tick_across_processes(db: TestDb) {
    // Two queue handles with their own pools stand for two worker processes.
    let a = db.queue().await;
    let b = db.queue().await;
    let job = new_job("reconcile", json!({"full": false})).queue("maintenance");
    a.register_cron("reconcile", "* * * * *", &job)
        .await
        .unwrap();
    b.register_cron("reconcile", "* * * * *", &job)
        .await
        .unwrap();
    assert!(a.cron_tick().await.unwrap().is_empty(), "not due yet");
    let mut total = 0;
    for minute in 1..=3 {
        db.clock.advance(Duration::from_secs(60));
        let (ra, rb) = tokio::join!(a.cron_tick(), b.cron_tick());
        let fired = ra.unwrap().len() + rb.unwrap().len();
        assert_eq!(fired, 1, "minute {minute}");
        total += fired;
        // The job is claimed and done, so the next tick's job is a new one.
        let got = a.claim("maintenance", "w", 10, crate::LEASE).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, "reconcile");
        a.complete("w", &[(got[0].id, got[0].attempt)], false)
            .await
            .unwrap();
    }
    assert_eq!(total, 3);
    assert!(a.register_cron("bad", "not a cron", &job).await.is_err());
}

async fn pause_and_resume(db: TestDb) {
    let q = db.queue().await;
    q.pause("default").await.unwrap();
    put(&q, new_job("k", json!({}))).await;
    assert!(claim(&q, 10).await.is_empty());
    let s = q.stats("default").await.unwrap();
    assert!(s.paused);
    assert_eq!(s.ready, 1);
    // Other queues are not affected.
    put(&q, new_job("k", json!({})).queue("other")).await;
    assert_eq!(
        q.claim("other", "t", 10, crate::LEASE).await.unwrap().len(),
        1
    );
    q.resume("default").await.unwrap();
    assert_eq!(claim(&q, 10).await.len(), 1);
}

async fn cancel_waiting_job_never_runs(db: TestDb) {
    let q = db.queue().await;
    let job = put(&q, new_job("k", json!({}))).await;
    assert_eq!(q.cancel(job.id).await.unwrap(), Cancelled::Cancelled);
    assert!(claim(&q, 10).await.is_empty());
    assert_eq!(state(&q, job.id).await, JobState::Cancelled);
    assert_eq!(
        q.cancel(job.id).await.unwrap(),
        Cancelled::AlreadyFinished(JobState::Cancelled)
    );
    assert!(q.cancel(uuid::Uuid::now_v7()).await.is_err());
}

async fn retention_prunes_finished_and_keeps_dead_longer(db: TestDb) {
    let q = db.queue().await;
    let done = put(&q, new_job("k", json!({}))).await;
    let dies = put(&q, new_job("k", json!({})).max_attempts(1)).await;
    let waits = put(
        &q,
        new_job("k", json!({})).run_in(Duration::from_secs(86_400 * 30)),
    )
    .await;
    let jobs = claim(&q, 10).await;
    for j in &jobs {
        if j.id == done.id {
            q.complete("tester", &[(j.id, j.attempt)], false)
                .await
                .unwrap();
        } else {
            let fatal = ferry_queue::Outcome::Fatal { error: "x".into() };
            q.finish(
                "tester",
                j.id,
                j.attempt,
                &fatal,
                &ferry_queue::Backoff::default(),
            )
            .await
            .unwrap();
        }
    }
    let keep_finished = Duration::from_secs(3600);
    let keep_dead = Duration::from_secs(7 * 86_400);
    assert_eq!(q.prune(keep_finished, keep_dead).await.unwrap(), 0);
    db.clock.advance(Duration::from_secs(3601));
    assert_eq!(q.prune(keep_finished, keep_dead).await.unwrap(), 1);
    assert!(q.get(done.id).await.unwrap().is_none());
    assert_eq!(state(&q, dies.id).await, JobState::Dead);
    db.clock.advance(keep_dead);
    assert_eq!(q.prune(keep_finished, keep_dead).await.unwrap(), 1);
    assert!(q.get(dies.id).await.unwrap().is_none());
    assert_eq!(
        state(&q, waits.id).await,
        JobState::Queued,
        "waiting jobs are never pruned"
    );
}

async fn stats_per_queue(db: TestDb) {
    let q = db.queue().await;
    put(&q, new_job("k", json!({}))).await;
    db.clock.advance(Duration::from_secs(5));
    q.enqueue_batch((0..3).map(|_| new_job("k", json!({}))).collect())
        .await
        .unwrap();
    put(&q, new_job("k", json!({})).run_in(Duration::from_secs(60))).await;
    put(&q, new_job("k", json!({})).queue("other")).await;
    db.clock.advance(Duration::from_secs(2));
    let running = claim(&q, 1).await;
    assert_eq!(running.len(), 1);
    let s = q.stats("default").await.unwrap();
    assert_eq!((s.ready, s.scheduled, s.running, s.dead), (3, 1, 1, 0));
    // The oldest ready job was enqueued 2 s ago (the 7 s old one is running).
    assert_eq!(s.oldest_ready_age_ms, 2_000);
    let all = q.stats_all().await.unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(names, ["default", "other"]);
}

ferry_testkit::postgres_only!(postgres_enqueue_notifies_other_processes);

/// Other processes learn of new jobs by NOTIFY: sent with a committed insert, never for a
/// rolled-back one, and debounced to one per queue per window.
async fn postgres_enqueue_notifies_other_processes(db: TestDb) {
    let q = db.queue().await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("ferry_jobs").await.unwrap();

    let mut tx = q.begin().await.unwrap();
    tx.enqueue(new_job("k", json!({})).queue("rolled"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    put(&q, new_job("k", json!({})).queue("first")).await;
    assert_eq!(
        next_notification(&mut listener, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("first"),
        "nothing for the rollback"
    );

    // A burst into one queue: the first insert notifies, the rest fold into one trailing NOTIFY.
    for _ in 0..20 {
        put(&q, new_job("k", json!({})).queue("burst")).await;
    }
    let mut got = Vec::new();
    while let Some(p) = next_notification(&mut listener, Duration::from_millis(300)).await {
        got.push(p);
    }
    assert!(got.iter().all(|p| p == "burst"), "{got:?}");
    assert!(
        !got.is_empty() && got.len() < 20,
        "debounced: {} NOTIFYs for 20 inserts",
        got.len()
    );

    let mut tx = q.begin().await.unwrap();
    tx.enqueue(new_job("k", json!({})).queue("in-tx"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        next_notification(&mut listener, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("in-tx")
    );
}

async fn next_notification(l: &mut sqlx::postgres::PgListener, within: Duration) -> Option<String> {
    tokio::time::timeout(within, l.recv())
        .await
        .ok()
        .map(|n| n.unwrap().payload().to_owned())
}
