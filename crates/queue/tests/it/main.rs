//! The queue's conformance suite: each behaviour once, run on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is what it should do

mod buffer;
mod enqueue_claim;
mod failures;
mod fairness;
mod leases;
mod operations;
mod samples;
mod worker;

use std::time::Duration;

use ferry_queue::{ClaimedJob, Enqueued, JobState, NewJob, Queue};

pub const LEASE: Duration = Duration::from_secs(5);

pub async fn claim(q: &Queue, n: usize) -> Vec<ClaimedJob> {
    q.claim("default", "tester", n, LEASE).await.expect("claim")
}

pub async fn state(q: &Queue, id: uuid::Uuid) -> JobState {
    q.get(id).await.expect("get").expect("job exists").state
}

pub use ferry_testkit::eventually;

/// A job of `kind` carrying `payload`.
pub fn new_job(kind: &str, payload: serde_json::Value) -> NewJob {
    NewJob::new(kind, &payload).unwrap()
}

/// Enqueues `job`: what the queue answered.
pub async fn put(q: &Queue, job: NewJob) -> Enqueued {
    q.enqueue(job).await.unwrap()
}

/// Runs the worker in the background until the returned token fires.
pub fn start(
    w: &ferry_queue::Worker,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<ferry_queue::Result<()>>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let (w, stop) = (w.clone(), stop.clone());
        async move { w.run(stop).await }
    });
    (stop, run)
}
