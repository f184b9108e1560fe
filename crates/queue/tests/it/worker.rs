use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_queue::{
    Cancelled, Job, JobError, JobRecord, JobState, NewJob, Queue, Worker, WorkerBuilder,
    WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{eventually, new_job, put, start, state};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    worker_runs_typed_jobs_within_its_concurrency, running_job_sees_its_cancellation,
    shutdown_lets_running_jobs_finish, shutdown_releases_jobs_that_ignore_cancellation,
    shutdown_releases_jobs_that_stop_when_cancelled,
    one_job_per_transaction_runs_each_job_once,
    one_job_per_transaction_hands_back_the_job_claimed_ahead,
}

#[derive(Serialize, Deserialize)]
struct Resize {
    px: u32,
}
impl Job for Resize {
    const KIND: &'static str = "resize";
}

async fn worker_runs_typed_jobs_within_its_concurrency(db: TestDb) {
    let q = db.queue().await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let (r, p, t) = (running.clone(), peak.clone(), total.clone());
    let w = Worker::builder(q.clone())
        .concurrency(3)
        .register(move |job: Resize, _ctx| {
            let (r, p, t) = (r.clone(), p.clone(), t.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                t.fetch_add(job.px as usize, Ordering::SeqCst);
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build();
    let jobs: Vec<NewJob> = (1..=40)
        .map(|px| NewJob::of(&Resize { px }).unwrap())
        .collect();
    q.enqueue_batch(jobs).await.unwrap();
    let (stop, run) = start(&w);
    eventually("all 40 jobs completed", || {
        let q = q.clone();
        async move {
            let s = q.stats("default").await.unwrap();
            s.ready == 0 && s.running == 0
        }
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        total.load(Ordering::SeqCst),
        (1..=40).sum::<usize>(),
        "each ran exactly once"
    );
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(peak.load(Ordering::SeqCst) >= 2, "jobs ran concurrently");
}

async fn running_job_sees_its_cancellation(db: TestDb) {
    let q = db.queue().await;
    let w = Worker::builder(q.clone())
        .handle("long", |_: serde_json::Value, ctx| async move {
            ctx.cancel.cancelled().await;
            Err(JobError::retry("stopped"))
        })
        .build();
    let job = put(&q, new_job("long", json!({}))).await;
    let (stop, run) = start(&w);
    wait_for(&q, job.id, JobState::Running).await;
    assert_eq!(q.cancel(job.id).await.unwrap(), Cancelled::Requested);
    wait_for(&q, job.id, JobState::Cancelled).await;
    stop.cancel();
    run.await.unwrap().unwrap();
}

async fn shutdown_lets_running_jobs_finish(db: TestDb) {
    let q = db.queue().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let w = Worker::builder(q.clone())
        .handle("slow", move |_: serde_json::Value, _| {
            let r = r.clone();
            async move {
                r.notified().await;
                Ok(())
            }
        })
        .build();
    let job = put(&q, new_job("slow", json!({}))).await;
    let (stop, run) = start(&w);
    wait_for(&q, job.id, JobState::Running).await;
    stop.cancel();
    // A job enqueued after shutdown began is not claimed.
    let late = put(&q, new_job("slow", json!({}))).await;
    release.notify_one();
    run.await.unwrap().unwrap();
    assert_eq!(state(&q, job.id).await, JobState::Completed);
    assert_eq!(state(&q, late.id).await, JobState::Queued);
}

async fn shutdown_releases_jobs_that_ignore_cancellation(db: TestDb) {
    let q = db.queue().await;
    let w = impatient(&q)
        .handle("stubborn", |_: serde_json::Value, _| async {
            // Ignores its cancellation token entirely.
            std::future::pending::<()>().await;
            Ok(())
        })
        .build();
    let rec = stopped_while_running(&q, &w, "stubborn").await;
    assert_eq!(rec.state, JobState::Queued, "released back in line");
    assert_eq!(rec.attempt, 0, "without spending an attempt");
}

async fn shutdown_releases_jobs_that_stop_when_cancelled(db: TestDb) {
    let q = db.queue().await;
    let w = impatient(&q)
        .handle("cooperative", |_: serde_json::Value, ctx| async move {
            ctx.cancel.cancelled().await;
            Err(JobError::retry("interrupted"))
        })
        .build();
    let rec = stopped_while_running(&q, &w, "cooperative").await;
    assert_eq!(rec.state, JobState::Queued, "released, not cancelled");
    assert_eq!(rec.attempt, 0, "without spending an attempt");
}

/// A worker that waits only 50 ms for running jobs when it stops.
fn impatient(q: &Queue) -> WorkerBuilder {
    Worker::builder(q.clone()).options(WorkerOptions {
        shutdown_grace: Duration::from_millis(50),
        ..WorkerOptions::default()
    })
}

/// Enqueues a `kind` job, stops the worker `w` while the job runs: the job afterwards.
async fn stopped_while_running(q: &Queue, w: &Worker, kind: &str) -> JobRecord {
    let job = put(q, new_job(kind, json!({}))).await;
    let (stop, run) = start(w);
    wait_for(q, job.id, JobState::Running).await;
    stop.cancel();
    run.await.unwrap().unwrap();
    q.get(job.id).await.unwrap().unwrap()
}

async fn wait_for(q: &ferry_queue::Queue, id: uuid::Uuid, want: JobState) {
    eventually(&format!("job {want}"), || {
        let q = q.clone();
        async move { state(&q, id).await == want }
    })
    .await;
}

async fn one_job_per_transaction_runs_each_job_once(db: TestDb) {
    let q = db.queue().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let w = Worker::builder(q.clone())
        .options(WorkerOptions {
            concurrency: 4,
            batch: false,
            ..WorkerOptions::default()
        })
        .handle("one", move |p: serde_json::Value, _| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(p["i"].as_u64().unwrap());
                if p["i"] == 7 {
                    return Err(JobError::fatal("seven never works"));
                }
                Ok(())
            }
        })
        .build();
    let jobs: Vec<NewJob> = (0..60).map(|i| new_job("one", json!({ "i": i }))).collect();
    let ids: Vec<uuid::Uuid> = q
        .enqueue_batch(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let (stop, run) = start(&w);
    eventually("every job acknowledged", || {
        let q = q.clone();
        async move {
            let s = q.stats("default").await.unwrap();
            s.ready == 0 && s.running == 0
        }
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..60).collect::<Vec<u64>>(), "each ran exactly once");
    for (i, id) in ids.iter().enumerate() {
        let want = if i == 7 {
            JobState::Dead
        } else {
            JobState::Completed
        };
        assert_eq!(state(&q, *id).await, want, "job {i}");
    }
}

/// Without batching, a slot whose jobs are short claims its next job while one runs; stopped,
/// it hands that job back unstarted, without spending an attempt.
async fn one_job_per_transaction_hands_back_the_job_claimed_ahead(db: TestDb) {
    let q = db.queue().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, s) = (release.clone(), started.clone());
    let w = Worker::builder(q.clone())
        .options(WorkerOptions {
            concurrency: 1,
            fetchers: 1,
            batch: false,
            heartbeat: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
            ..WorkerOptions::default()
        })
        .handle("quick", |_: serde_json::Value, _| async { Ok(()) })
        .handle("slow", move |_: serde_json::Value, ctx| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                s.lock().unwrap().push(ctx.id);
                r.notified().await;
                Ok(())
            }
        })
        .build();
    let quick = put(&q, new_job("quick", json!({}))).await.id;
    let slow: Vec<uuid::Uuid> = q
        .enqueue_batch((0..2).map(|i| new_job("slow", json!({ "i": i }))).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let (stop, run) = start(&w);
    // The quick job ran; one slow job runs and the other is leased behind it.
    eventually("one slow job running and one claimed ahead", || async {
        let s = q.stats("default").await.unwrap();
        started.lock().unwrap().len() == 1 && s.running == 2
    })
    .await;
    assert_eq!(state(&q, quick).await, JobState::Completed);
    stop.cancel();
    release.notify_one();
    run.await.unwrap().unwrap();
    let ran = started.lock().unwrap().clone();
    assert_eq!(ran.len(), 1, "only the running slow job ran");
    assert_eq!(state(&q, ran[0]).await, JobState::Completed);
    let ahead = slow.iter().find(|id| **id != ran[0]).copied().unwrap();
    let j = q.get(ahead).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempt),
        (JobState::Queued, 0),
        "handed back unspent"
    );
}
