use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry_queue::{Backoff, JobError, JobFilter, JobState, Queue, Worker, WorkerOptions};
use serde_json::json;

use crate::{claim, new_job, put, state};
use ferry_testkit::TestDb;

ferry_testkit::conformance! {
    failures_back_off_then_die_and_replay, snooze_does_not_spend_an_attempt,
    fatal_errors_and_bad_payloads_die_at_once, panics_are_failures,
    retry_of_a_superseded_singleton_is_dropped,
}

const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(10),
    cap: Duration::from_secs(25),
};

fn worker(q: &Queue, fail_until: u32, calls: Arc<AtomicU32>) -> Worker {
    Worker::builder(q.clone())
        .options(WorkerOptions {
            backoff: BACKOFF,
            ..WorkerOptions::default()
        })
        .handle("flaky", move |_: serde_json::Value, _ctx| {
            let calls = calls.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n <= fail_until {
                    Err(JobError::retry(format!("boom {n}")))
                } else {
                    Ok(())
                }
            }
        })
        .build()
}

async fn failures_back_off_then_die_and_replay(db: TestDb) {
    let q = db.queue().await;
    let calls = Arc::new(AtomicU32::new(0));
    let w = worker(&q, 3, calls.clone());
    let job = put(&q, new_job("flaky", json!({})).max_attempts(3)).await;

    let mut delays = Vec::new();
    for attempt in 1..=2 {
        let before = q.now_ms();
        assert_eq!(
            w.run_one().await.unwrap(),
            Some((job.id, JobState::Retrying))
        );
        let rec = q.get(job.id).await.unwrap().unwrap();
        assert_eq!(rec.attempt, attempt);
        assert_eq!(
            rec.last_error.as_deref(),
            Some(format!("boom {attempt}").as_str())
        );
        let delay = rec.run_at - before;
        let ceiling = BACKOFF.ceiling(attempt).as_millis() as i64;
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "attempt {attempt}: {delay} ms"
        );
        delays.push(delay);
        // Not before its time.
        assert_eq!(w.run_one().await.unwrap(), None);
        db.clock.advance(Duration::from_millis(delay as u64));
    }
    assert_eq!(w.run_one().await.unwrap(), Some((job.id, JobState::Dead)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let dead = q
        .list(&JobFilter::in_state(JobState::Dead, 10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, job.id);
    assert_eq!(q.stats("default").await.unwrap().dead, 1);
    // Every failed attempt is kept with its error, in order.
    let history = |rec: &ferry_queue::JobRecord| {
        rec.errors
            .iter()
            .map(|e| (e.attempt, e.error.clone()))
            .collect::<Vec<_>>()
    };
    let failed_three = vec![
        (1, "boom 1".to_owned()),
        (2, "boom 2".to_owned()),
        (3, "boom 3".to_owned()),
    ];
    assert_eq!(history(&dead[0]), failed_three);
    assert!(dead[0].errors.windows(2).all(|w| w[0].at < w[1].at));

    let replayed = q.replay(job.id).await.unwrap();
    assert_eq!(replayed.id, job.id);
    let rec = q.get(job.id).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.attempt), (JobState::Queued, 0));
    assert_eq!(
        w.run_one().await.unwrap(),
        Some((job.id, JobState::Completed))
    );
    // A completed job is not replayable.
    assert!(q.replay(job.id).await.is_err());
    // The replay kept the history; the success added nothing to it.
    let rec = q.get(job.id).await.unwrap().unwrap();
    assert_eq!(history(&rec), failed_three);
}

async fn snooze_does_not_spend_an_attempt(db: TestDb) {
    let q = db.queue().await;
    let w = Worker::builder(q.clone())
        .handle("breaker", |_: serde_json::Value, ctx| async move {
            if ctx.attempt == 1 {
                Err(JobError::snooze(Duration::from_secs(30)))
            } else {
                Ok(())
            }
        })
        .build();
    let job = put(&q, new_job("breaker", json!({})).max_attempts(1)).await;
    let t0 = q.now_ms();
    for _ in 0..3 {
        assert_eq!(w.run_one().await.unwrap(), Some((job.id, JobState::Queued)));
        let rec = q.get(job.id).await.unwrap().unwrap();
        assert_eq!(rec.attempt, 0, "a snooze gives the attempt back");
        assert_eq!(rec.run_at, q.now_ms() + 30_000);
        db.clock.advance(Duration::from_secs(30));
    }
    assert!(q.now_ms() > t0);
}

async fn fatal_errors_and_bad_payloads_die_at_once(db: TestDb) {
    let q = db.queue().await;
    #[derive(serde::Deserialize)]
    struct Typed {
        #[allow(dead_code)]
        sku: String,
    }
    let w = Worker::builder(q.clone())
        .handle("fatal", |_: serde_json::Value, _| async {
            Err(JobError::fatal("no such store"))
        })
        .handle("typed", |_: Typed, _| async { Ok(()) })
        .build();
    let a = put(&q, new_job("fatal", json!({}))).await;
    let b = put(&q, new_job("typed", json!({"nope": 1}))).await;
    w.drain().await.unwrap();
    assert_eq!(state(&q, a.id).await, JobState::Dead);
    let rb = q.get(b.id).await.unwrap().unwrap();
    assert_eq!(rb.state, JobState::Dead);
    assert!(rb.last_error.unwrap().contains("payload does not decode"));
}

async fn panics_are_failures(db: TestDb) {
    let q = db.queue().await;
    let w = Worker::builder(q.clone())
        .handle("panics", |_: serde_json::Value, _| async {
            panic!("handler bug")
        })
        .build();
    let a = put(&q, new_job("panics", json!({}))).await;
    assert_eq!(w.run_one().await.unwrap(), Some((a.id, JobState::Retrying)));
    let rec = q.get(a.id).await.unwrap().unwrap();
    assert!(rec.last_error.unwrap().contains("handler bug"));
}

async fn retry_of_a_superseded_singleton_is_dropped(db: TestDb) {
    let q = db.queue().await;
    let first = put(&q, new_job("k", json!({})).singleton("product:7")).await;
    let running = claim(&q, 1).await.remove(0);
    let newer = put(&q, new_job("k", json!({})).singleton("product:7")).await;
    let outcome = ferry_queue::Outcome::Failed {
        error: "502".into(),
        retry_in: None,
    };
    let st = q
        .finish("tester", running.id, running.attempt, &outcome, &BACKOFF)
        .await
        .unwrap();
    assert_eq!(
        st,
        Some(JobState::Cancelled),
        "the newer waiting job does the same work"
    );
    assert_eq!(state(&q, first.id).await, JobState::Cancelled);
    assert_eq!(state(&q, newer.id).await, JobState::Queued);
}
