//! The worker's local buffer: many jobs claimed per round trip must not undo fairness between
//! groups, and jobs held but never started go back in line, without spending an attempt, when
//! the queue is paused or the worker stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_queue::{JobState, NewJob, Queue, Worker, WorkerOptions};
use serde_json::json;

use crate::{eventually, new_job, start};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    a_buffered_backlog_does_not_starve_small_groups,
    a_new_groups_job_waits_at_most_one_refill,
    jobs_held_in_the_buffer_go_back_on_pause_and_on_shutdown,
}

/// A worker at `concurrency` (buffer on, the default) that records the group of every job it
/// starts, in order.
fn recording(q: &Queue, concurrency: usize) -> (Worker, Arc<Mutex<Vec<String>>>) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let w = Worker::builder(q.clone())
        .options(WorkerOptions {
            concurrency,
            poll_interval: Duration::from_millis(50),
            ..WorkerOptions::default()
        })
        .handle("sync", move |_: serde_json::Value, ctx| {
            let o = o.clone();
            async move {
                o.lock().unwrap().push(ctx.group);
                Ok(())
            }
        })
        .build();
    assert!(WorkerOptions::default().buffer >= 100, "the buffer is on");
    (w, order)
}

async fn backlog(q: &Queue, group: &str, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| new_job("sync", json!({ "i": i })).group(group))
        .collect();
    q.enqueue_batch(jobs).await.unwrap();
}

async fn a_buffered_backlog_does_not_starve_small_groups(db: TestDb) {
    let q = db.queue().await;
    // The queue's own fairness case, through a worker that claims hundreds at a time.
    backlog(&q, "big", 10_000).await;
    for g in 0..20 {
        backlog(&q, &format!("small-{g}"), 5).await;
    }
    let (w, order) = recording(&q, 10);
    let (stop, run) = start(&w);
    let small_started = || {
        order
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.starts_with("small-"))
            .count()
    };
    eventually("every small group's jobs started", || async {
        small_started() == 100
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    let order = order.lock().unwrap();
    let last_small = order.iter().rposition(|g| g.starts_with("small-")).unwrap();
    assert!(
        last_small < 150,
        "the last small job started at position {last_small}"
    );
}

async fn a_new_groups_job_waits_at_most_one_refill(db: TestDb) {
    let q = db.queue().await;
    backlog(&q, "big", 5_000).await;
    let (w, order) = recording(&q, 10);
    let (stop, run) = start(&w);
    // The buffer has filled with the big group's jobs.
    eventually("the backlog is under way", || async {
        order.lock().unwrap().len() >= 1_000
    })
    .await;
    let before = order.lock().unwrap().len();
    backlog(&q, "late", 1).await;
    eventually("the late job started", || async {
        order.lock().unwrap().iter().any(|g| g == "late")
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    let order = order.lock().unwrap();
    let at = order.iter().position(|g| g == "late").unwrap();
    let waited = at - before;
    // At most what the buffer held when it arrived and the refill already under way (the
    // first claim after it takes it, and it starts next): never the rest of the backlog.
    let bound = WorkerOptions::default().buffer * 3 / 2 + 10;
    assert!(
        waited <= bound,
        "{waited} jobs started before the late one (bound {bound})"
    );
}

async fn jobs_held_in_the_buffer_go_back_on_pause_and_on_shutdown(db: TestDb) {
    let q = db.queue().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (release.clone(), started.clone());
    let w = Worker::builder(q.clone())
        .options(WorkerOptions {
            concurrency: 1,
            heartbeat: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(5),
            ..WorkerOptions::default()
        })
        .handle("slow", move |_: serde_json::Value, ctx| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                s.lock().unwrap().push(ctx.id);
                r.notified().await;
                Ok(())
            }
        })
        .build();
    let jobs: Vec<NewJob> = (0..5).map(|i| new_job("slow", json!({ "i": i }))).collect();
    let ids: Vec<uuid::Uuid> = q
        .enqueue_batch(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let (stop, run) = start(&w);
    // One job runs; the buffer holds at least one more, leased.
    eventually("one running, one held", || async {
        let s = q.stats("default").await.unwrap();
        started.lock().unwrap().len() == 1 && s.running >= 2
    })
    .await;
    // Paused: the held jobs go back (the running one finishes its work).
    q.pause("default").await.unwrap();
    eventually("the held jobs handed back", || async {
        q.stats("default").await.unwrap().running == 1
    })
    .await;
    let running = started.lock().unwrap()[0];
    for id in ids.iter().filter(|id| **id != running) {
        let j = q.get(*id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.attempt, 0, "no attempt spent by waiting in a buffer");
    }
    // Resumed, then stopped while one runs and one is held: the held one goes back as well.
    q.resume("default").await.unwrap();
    release.notify_one();
    eventually("the next one running and one held", || async {
        let s = q.stats("default").await.unwrap();
        started.lock().unwrap().len() == 2 && s.running >= 2
    })
    .await;
    stop.cancel();
    release.notify_one();
    run.await.unwrap().unwrap();
    let s = q.stats("default").await.unwrap();
    assert_eq!(s.running, 0, "nothing left leased");
    assert_eq!(s.ready, 3);
    let started = started.lock().unwrap().clone();
    for id in ids.iter().filter(|id| !started.contains(id)) {
        let j = q.get(*id).await.unwrap().unwrap();
        assert_eq!((j.state, j.attempt), (JobState::Queued, 0));
    }
}
