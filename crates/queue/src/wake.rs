//! Wake-ups. In one process a worker is woken directly; across processes on PostgreSQL a
//! debounced NOTIFY sent by the application (never by a trigger) wakes the others, and every
//! worker also polls, so nothing depends on LISTEN working (PgBouncer in transaction mode).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;
use uuid::Uuid;

use crate::postgres::PgEngine;

/// Per-queue wake-up signals inside this process, and cancellations of running jobs.
#[derive(Debug)]
pub(crate) struct Wakers {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
    pub(crate) cancels: broadcast::Sender<Uuid>,
}

impl Default for Wakers {
    fn default() -> Self {
        Wakers {
            queues: Mutex::default(),
            cancels: broadcast::channel(1024).0,
        }
    }
}

impl Wakers {
    pub(crate) fn get(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(queue.to_owned()).or_default().clone()
    }

    pub(crate) fn wake(&self, queue: &str) {
        let notify = {
            let map = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            map.get(queue).cloned()
        };
        if let Some(n) = notify {
            // Wake every idle loop; the stored permit covers a loop that is between claims.
            n.notify_waiters();
            n.notify_one();
        }
    }
}

/// At most one `NOTIFY ferry_jobs, '<queue>'` per queue per window. The first insert of a
/// window notifies at once, inside its own statement (delivered at its commit: no extra round
/// trip on the pickup path); later inserts in the window are folded into one trailing NOTIFY
/// sent by a background task when the window ends.
#[derive(Debug)]
pub(crate) struct NotifyDebouncer {
    window: Duration,
    last: Mutex<HashMap<String, Instant>>,
    trailing: mpsc::UnboundedSender<String>,
}

impl NotifyDebouncer {
    pub(crate) fn spawn(pg: PgEngine, window: Duration) -> Arc<NotifyDebouncer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let n = Arc::new(NotifyDebouncer {
            window,
            last: Mutex::default(),
            trailing: tx,
        });
        tokio::spawn(trail_loop(pg, Arc::downgrade(&n), rx));
        n
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Of `queues`, those an insert about to run should notify itself (the window's first).
    pub(crate) fn lead(&self, queues: &[String]) -> Vec<String> {
        let now = Instant::now();
        let mut last = self.lock();
        let led: Vec<String> = queues
            .iter()
            .filter(|q| {
                last.get(*q)
                    .is_none_or(|t| now.duration_since(*t) >= self.window)
            })
            .cloned()
            .collect();
        for q in &led {
            last.insert(q.clone(), now);
        }
        if last.len() > 10_000 {
            last.retain(|_, t| now.duration_since(*t) < self.window);
        }
        led
    }

    /// After a commit that did not notify `queue` itself: a trailing NOTIFY at the window's end.
    pub(crate) fn trail(&self, queue: &str) {
        let _ = self.trailing.send(queue.to_owned());
    }
}

async fn trail_loop(
    pg: PgEngine,
    debouncer: std::sync::Weak<NotifyDebouncer>,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    let mut pending: HashMap<String, Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().copied();
        tokio::select! {
            msg = rx.recv() => {
                let Some(queue) = msg else { return };
                let Some(n) = debouncer.upgrade() else { return };
                let due = n.lock().get(&queue).map(|t| *t + n.window).unwrap_or_else(Instant::now);
                pending.entry(queue).or_insert(due);
            }
            _ = async { tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)).await },
                if next_due.is_some() => {
                let now = Instant::now();
                let due: Vec<String> =
                    pending.iter().filter(|(_, t)| **t <= now).map(|(q, _)| q.clone()).collect();
                let Some(n) = debouncer.upgrade() else { return };
                for queue in due {
                    pending.remove(&queue);
                    n.lock().insert(queue.clone(), now);
                    if let Err(e) = pg.notify(&queue).await {
                        // Polling picks the job up anyway; a lost NOTIFY only costs latency.
                        tracing::warn!(error = %e, queue, "NOTIFY failed; workers will find the job by polling");
                    }
                }
            }
        }
    }
}
