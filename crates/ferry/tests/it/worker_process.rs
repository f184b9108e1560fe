//! A worker killed with SIGKILL mid-job loses its job to another process within 10 s; a worker
//! sent SIGTERM finishes its job before it exits.

use std::time::Duration;

use ferry_queue::{JobState, NewJob, Queue};
use ferry_testkit::{TestDb, eventually};
use serde_json::json;
use tokio::process::Child;

use crate::process::{NO_ENV, ferry, spawn_quiet};

ferry_testkit::conformance!(
    killed_worker_job_runs_elsewhere_within_10s,
    sigterm_finishes_running_job
);

fn spawn_worker(url: &str) -> Child {
    let args = ["worker", "--database-url", url, "--concurrency", "1"];
    spawn_quiet(&mut ferry(&args, NO_ENV))
}

/// Waits until job `id` is in `state`.
async fn until(q: &Queue, id: uuid::Uuid, state: JobState, what: &str) {
    eventually(what, || async {
        q.get(id).await.expect("get").map(|j| j.state) == Some(state)
    })
    .await;
}

async fn killed_worker_job_runs_elsewhere_within_10s(db: TestDb) {
    let q = db.real_queue().await;
    let mut a = spawn_worker(&db.url);
    let job = q
        .enqueue(
            NewJob::new("ferry.sleep", &json!({"ms": 2_000}))
                .unwrap()
                .max_attempts(3),
        )
        .await
        .unwrap();
    until(&q, job.id, JobState::Running, "worker A runs the job").await;
    let owner_a = q.get(job.id).await.unwrap().unwrap().lease_owner.unwrap();

    a.start_kill().expect("SIGKILL worker A");
    a.wait().await.expect("reap worker A");
    let killed_at = q.now_ms();
    let _b = spawn_worker(&db.url);

    until(
        &q,
        job.id,
        JobState::Completed,
        "another worker completes the job",
    )
    .await;
    let rec = q.get(job.id).await.unwrap().unwrap();
    assert_ne!(
        rec.lease_owner.as_deref(),
        Some(owner_a.as_str()),
        "finished by another process"
    );
    assert_eq!(rec.attempt, 2, "the killed run counts as an attempt");
    let restarted_after = rec.started_at.unwrap() - killed_at;
    assert!(
        restarted_after < 10_000,
        "job ran again {restarted_after} ms after the kill"
    );
}

async fn sigterm_finishes_running_job(db: TestDb) {
    let q = db.real_queue().await;
    let mut w = spawn_worker(&db.url);
    let job = q
        .enqueue(NewJob::new("ferry.sleep", &json!({"ms": 500})).unwrap())
        .await
        .unwrap();
    until(&q, job.id, JobState::Running, "worker runs the job").await;
    let pid = w.id().expect("worker pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), w.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "graceful exit, got {exit:?}");
    let rec = q.get(job.id).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempt), (JobState::Completed, 1));
}
