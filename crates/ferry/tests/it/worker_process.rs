//! A worker killed with SIGKILL mid-job loses its job to another process within 10 s; a worker
//! sent SIGTERM finishes its job before it exits.

use std::process::Stdio;
use std::time::Duration;

use ferry_queue::{JobState, NewJob, Queue};
use ferry_testkit::{TestDb, eventually};
use serde_json::json;
use tokio::process::{Child, Command};

ferry_testkit::conformance!(
    killed_worker_job_runs_elsewhere_within_10s,
    sigterm_finishes_running_job
);

fn spawn_worker(url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["worker", "--database-url", url, "--concurrency", "1"])
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ferry worker")
}

async fn job_state(q: &Queue, id: uuid::Uuid) -> Option<(JobState, Option<String>)> {
    q.get(id)
        .await
        .expect("get")
        .map(|j| (j.state, j.lease_owner))
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
    eventually("worker A runs the job", || {
        let q = q.clone();
        async move { matches!(job_state(&q, job.id).await, Some((JobState::Running, _))) }
    })
    .await;
    let owner_a = q.get(job.id).await.unwrap().unwrap().lease_owner.unwrap();

    a.start_kill().expect("SIGKILL worker A");
    a.wait().await.expect("reap worker A");
    let killed_at = q.now_ms();
    let _b = spawn_worker(&db.url);

    eventually("another worker completes the job", || {
        let q = q.clone();
        async move { matches!(job_state(&q, job.id).await, Some((JobState::Completed, _))) }
    })
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
    eventually("worker runs the job", || {
        let q = q.clone();
        async move { matches!(job_state(&q, job.id).await, Some((JobState::Running, _))) }
    })
    .await;
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
