use std::time::Duration;

use ferry_queue::{JobState, NewJob};
use serde_json::json;

use crate::{LEASE, claim, new_job, put, state};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    enqueue_one_and_batch, transactional_enqueue_commits_and_rolls_back_with_caller_rows,
    claims_by_priority_then_order, future_jobs_are_not_claimed_early, claim_takes_a_batch,
    singleton_returns_the_waiting_job, singleton_batch_and_replace,
    running_singleton_does_not_block_a_new_waiting_one, invalid_jobs_are_refused,
}

async fn enqueue_one_and_batch(db: TestDb) {
    let q = db.queue().await;
    let one = put(&q, new_job("email", json!({"to": "a@b.c"}))).await;
    assert!(one.inserted);
    let batch: Vec<NewJob> = (0..250)
        .map(|i| new_job("sync", json!({ "i": i })))
        .collect();
    let out = q.enqueue_batch(batch).await.unwrap();
    assert_eq!(out.len(), 250);
    assert!(out.iter().all(|e| e.inserted));
    let job = q.get(one.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.kind, "email");
    assert_eq!(job.payload, json!({"to": "a@b.c"}));
    assert_eq!(job.attempt, 0);
    assert_eq!(q.stats("default").await.unwrap().ready, 251);
}

async fn transactional_enqueue_commits_and_rolls_back_with_caller_rows(db: TestDb) {
    let q = db.queue().await;
    let ddl = "CREATE TABLE deliveries (id TEXT PRIMARY KEY)";
    let insert = "INSERT INTO deliveries (id) VALUES ('d1')";
    let count = "SELECT count(*) FROM deliveries";
    if let Some(p) = q.pg_pool() {
        sqlx::query(ddl).execute(p).await.unwrap();
    } else if let Some(p) = q.sqlite_pool() {
        sqlx::query(ddl).execute(p).await.unwrap();
    }
    async fn caller_row(tx: &mut ferry_queue::Tx, sql: &'static str) {
        if let Some(c) = tx.postgres() {
            sqlx::query(sql).execute(c).await.unwrap();
        } else if let Some(c) = tx.sqlite() {
            sqlx::query(sql).execute(c).await.unwrap();
        }
    }
    async fn rows(q: &ferry_queue::Queue, sql: &'static str) -> i64 {
        match (q.pg_pool(), q.sqlite_pool()) {
            (Some(p), _) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            (_, Some(p)) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            _ => unreachable!(),
        }
    }

    let mut tx = q.begin().await.unwrap();
    caller_row(&mut tx, insert).await;
    let rolled = tx.enqueue(new_job("webhook", json!({}))).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(
        q.get(rolled.id).await.unwrap().is_none(),
        "rolled back job must not exist"
    );
    assert_eq!(rows(&q, count).await, 0);

    let mut tx = q.begin().await.unwrap();
    caller_row(&mut tx, insert).await;
    let kept = tx.enqueue(new_job("webhook", json!({}))).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(state(&q, kept.id).await, JobState::Queued);
    assert_eq!(rows(&q, count).await, 1);
}

async fn claims_by_priority_then_order(db: TestDb) {
    let q = db.queue().await;
    let mk = |name: &str, prio: i16| new_job("k", json!({ "n": name })).priority(prio);
    put(&q, mk("low-1", 0)).await;
    db.clock.advance(Duration::from_millis(1));
    put(&q, mk("high", 5)).await;
    db.clock.advance(Duration::from_millis(1));
    put(&q, mk("low-2", 0)).await;
    put(&q, mk("urgent", 9)).await;
    let jobs = claim(&q, 10).await;
    let names: Vec<String> = jobs
        .iter()
        .map(|j| {
            serde_json::from_str::<serde_json::Value>(&j.payload).unwrap()["n"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["urgent", "high", "low-1", "low-2"]);
    assert!(jobs.iter().all(|j| j.attempt == 1));
}

async fn future_jobs_are_not_claimed_early(db: TestDb) {
    let q = db.queue().await;
    let later = put(&q, new_job("k", json!({})).run_in(Duration::from_secs(60))).await;
    assert!(claim(&q, 10).await.is_empty());
    let s = q.stats("default").await.unwrap();
    assert_eq!((s.ready, s.scheduled), (0, 1));
    db.clock.advance(Duration::from_secs(59));
    assert!(claim(&q, 10).await.is_empty());
    db.clock.advance(Duration::from_secs(1));
    let got = claim(&q, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, later.id);
}

async fn claim_takes_a_batch(db: TestDb) {
    let q = db.queue().await;
    let jobs: Vec<NewJob> = (0..5).map(|_| new_job("k", json!({}))).collect();
    q.enqueue_batch(jobs).await.unwrap();
    let first = claim(&q, 3).await;
    assert_eq!(first.len(), 3);
    let second = claim(&q, 3).await;
    assert_eq!(second.len(), 2);
    assert!(claim(&q, 3).await.is_empty());
    let s = q.stats("default").await.unwrap();
    assert_eq!((s.ready, s.running), (0, 5));
    // Another queue is untouched by claims of "default".
    put(&q, new_job("k", json!({})).queue("other")).await;
    assert!(claim(&q, 3).await.is_empty());
    assert_eq!(q.claim("other", "t", 3, LEASE).await.unwrap().len(), 1);
}

async fn singleton_returns_the_waiting_job(db: TestDb) {
    let q = db.queue().await;
    let a = put(&q, new_job("sync", json!({"v": 1})).singleton("product:1")).await;
    let b = put(&q, new_job("sync", json!({"v": 2})).singleton("product:1")).await;
    assert!(a.inserted);
    assert!(!b.inserted);
    assert_eq!(a.id, b.id);
    // Keep mode leaves the waiting job as it was.
    assert_eq!(q.get(a.id).await.unwrap().unwrap().payload, json!({"v": 1}));
    assert_eq!(q.stats("default").await.unwrap().ready, 1);
}

async fn singleton_batch_and_replace(db: TestDb) {
    let q = db.queue().await;
    let first = put(&q, new_job("sync", json!({"v": 0})).singleton("p:1")).await;
    // A burst in one batch: duplicates inside the batch and against the table collapse.
    let burst: Vec<NewJob> = (1..=50)
        .map(|v| new_job("sync", json!({ "v": v })).singleton(&format!("p:{}", v % 3)))
        .collect();
    let out = q.enqueue_batch(burst).await.unwrap();
    assert_eq!(out.len(), 50);
    let distinct: std::collections::HashSet<_> = out.iter().map(|e| e.id).collect();
    assert_eq!(distinct.len(), 3, "keys p:0, p:1, p:2");
    assert_eq!(out[0].id, first.id, "p:1 was already waiting");
    assert!(!out[0].inserted);
    assert_eq!(q.stats("default").await.unwrap().ready, 3);

    // Replace: debounce moves the waiting job's run_at and payload.
    let now = q.now_ms();
    let r = put(
        &q,
        new_job("sync", json!({"v": "new"}))
            .singleton("p:1")
            .replace()
            .run_in(Duration::from_secs(30)),
    )
    .await;
    assert_eq!(r.id, first.id);
    assert!(!r.inserted);
    let job = q.get(first.id).await.unwrap().unwrap();
    assert_eq!(job.payload, json!({"v": "new"}));
    assert_eq!(job.run_at, now + 30_000);
}

async fn running_singleton_does_not_block_a_new_waiting_one(db: TestDb) {
    let q = db.queue().await;
    let a = put(&q, new_job("sync", json!({})).singleton("p:9")).await;
    let running = claim(&q, 1).await;
    assert_eq!(running[0].id, a.id);
    let b = put(&q, new_job("sync", json!({})).singleton("p:9")).await;
    assert!(b.inserted);
    assert_ne!(a.id, b.id);
    let c = put(&q, new_job("sync", json!({})).singleton("p:9")).await;
    assert_eq!(c.id, b.id, "but only one may wait");
}

async fn invalid_jobs_are_refused(db: TestDb) {
    let q = db.queue().await;
    assert!(NewJob::from_json("k", "{not json".into()).is_err());
    let bad = new_job("k", json!({})).max_attempts(0);
    assert!(q.enqueue(bad).await.is_err());
    let empty = new_job("", json!({}));
    assert!(
        q.enqueue_batch(vec![new_job("ok", json!({})), empty])
            .await
            .is_err()
    );
    assert_eq!(
        q.stats("default").await.unwrap().ready,
        0,
        "a bad batch stores nothing"
    );
}

ferry_testkit::postgres_only!(a_claim_connection_the_server_ended_is_not_reused);

/// The worker's claims keep their connections beside the pool, with no ping before use: one
/// that the server ended while it sat idle fails at most one claim, and is closed, not reused.
async fn a_claim_connection_the_server_ended_is_not_reused(db: TestDb) {
    use sqlx::Connection;
    let q = db.queue().await;
    for i in 0..3 {
        put(&q, new_job("k", json!({ "i": i }))).await;
    }
    assert_eq!(q.claim("default", "w", 1, LEASE).await.unwrap().len(), 1);
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let ended: Vec<i32> = sqlx::query_scalar(
        "WITH o AS MATERIALIZED (SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) \
         SELECT pid FROM o WHERE pg_terminate_backend(pid)",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty());
    ferry_testkit::eventually("the ended sessions gone", || {
        let (url, ended) = (db.url.clone(), ended.clone());
        async move {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let left: i64 =
                sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                    .bind(&ended)
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
            left == 0
        }
    })
    .await;
    let first = q.claim("default", "w", 1, LEASE).await;
    let second = q.claim("default", "w", 1, LEASE).await;
    assert_eq!(second.expect("a claim on a fresh connection").len(), 1);
    if let Ok(jobs) = first {
        assert_eq!(jobs.len(), 1, "a claim that worked took its job");
    }
}
