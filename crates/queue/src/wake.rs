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

/// Sends `NOTIFY ferry_jobs, '<queue>'` at most once per `window` per queue: the first insert
/// notifies at once (pickup latency), a burst after it is folded into one trailing notify.
pub(crate) fn spawn_notifier(pg: PgEngine, window: Duration) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut last_sent: HashMap<String, Instant> = HashMap::new();
        let mut pending: HashMap<String, Instant> = HashMap::new();
        loop {
            let next_due = pending.values().min().copied();
            tokio::select! {
                msg = rx.recv() => {
                    let Some(queue) = msg else { break };
                    let now = Instant::now();
                    match last_sent.get(&queue) {
                        Some(t) if now.duration_since(*t) < window => {
                            pending.entry(queue).or_insert(*t + window);
                        }
                        _ => {
                            send(&pg, &queue).await;
                            last_sent.insert(queue, now);
                        }
                    }
                }
                _ = async { tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)).await },
                    if next_due.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> =
                        pending.iter().filter(|(_, t)| **t <= now).map(|(q, _)| q.clone()).collect();
                    for queue in due {
                        pending.remove(&queue);
                        send(&pg, &queue).await;
                        last_sent.insert(queue, now);
                    }
                }
            }
            if last_sent.len() > 10_000 {
                let now = Instant::now();
                last_sent.retain(|_, t| now.duration_since(*t) < window);
            }
        }
    });
    tx
}

async fn send(pg: &PgEngine, queue: &str) {
    if let Err(e) = pg.notify(queue).await {
        // Polling picks the job up anyway; a lost NOTIFY only costs latency.
        tracing::warn!(error = %e, queue, "NOTIFY failed; workers will find the job by polling");
    }
}
