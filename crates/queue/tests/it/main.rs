//! The queue's conformance suite: each behaviour once, run on SQLite and on PostgreSQL.

mod db;
mod enqueue_claim;
mod failures;
mod fairness;
mod leases;
mod operations;
mod worker;

use std::time::Duration;

use ferry_queue::{ClaimedJob, JobState, Queue};

pub const LEASE: Duration = Duration::from_secs(5);

pub async fn claim(q: &Queue, n: usize) -> Vec<ClaimedJob> {
    q.claim("default", "tester", n, LEASE).await.expect("claim")
}

pub async fn state(q: &Queue, id: uuid::Uuid) -> JobState {
    q.get(id).await.expect("get").expect("job exists").state
}

/// Waits (up to 20 s of real time) until `f` holds, checking every 10 ms: for outcomes that
/// happen in other tasks or processes.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
