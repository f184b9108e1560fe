//! Group commit of webhook deliveries: requests that arrive together share one transaction, so
//! ingress is not capped at one commit (one fsync) per webhook. Each request waits for the
//! commit that holds its delivery before it is answered 202; a failed commit fails every
//! request in it (senders retry). Per batch: one multi-row insert of the deliveries (the unique
//! key decides which are new, also against other servers), one enqueue of their jobs, one
//! update that links each delivery to its job.

use std::collections::HashSet;

use ferry_queue::{NewJob, Queue};
use sqlx::{Postgres, QueryBuilder, Sqlite};
use tokio::sync::{mpsc, oneshot};

/// The most deliveries one transaction takes.
pub const MAX_BATCH: usize = 256;

/// A verified delivery and the job it becomes.
pub struct Delivery {
    pub store: String,
    pub delivery_id: String,
    pub platform: &'static str,
    pub topic: String,
    pub job: NewJob,
}

/// One delivery waiting for a commit.
struct Pending {
    d: Delivery,
    reply: oneshot::Sender<Result<CommitOutcome, String>>,
}

impl std::ops::Deref for Pending {
    type Target = Delivery;
    fn deref(&self) -> &Delivery {
        &self.d
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    Accepted { job_id: String },
    Duplicate,
}

#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Pending>,
}

impl Committer {
    /// Starts the committing task on `queue`'s database.
    pub fn start(queue: Queue) -> Committer {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
        tokio::spawn(run(queue, rx));
        Committer { tx }
    }

    /// Hands a delivery to the next commit; its outcome once committed.
    pub async fn submit(&self, d: Delivery) -> Result<CommitOutcome, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { d, reply })
            .await
            .map_err(|_| "the committer stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the committer stopped".to_owned())?
    }
}

async fn run(queue: Queue, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Whatever arrived while the previous commit ran goes into the next one.
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let items = std::mem::take(&mut batch);
        metrics::histogram!("ferry_webhook_commit_batch").record(items.len() as f64);
        match commit(&queue, &items).await {
            Ok(outcomes) => {
                for (p, o) in items.into_iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(o));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, deliveries = items.len(), "webhook commit failed");
                for p in items {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn commit(queue: &Queue, items: &[Pending]) -> Result<Vec<CommitOutcome>, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    // The first of a delivery within the batch; later copies are duplicates of it.
    let mut seen = HashSet::new();
    let first: Vec<bool> = items
        .iter()
        .map(|p| seen.insert((p.store.as_str(), p.delivery_id.as_str())))
        .collect();
    let candidates: Vec<&Delivery> = items
        .iter()
        .zip(&first)
        .filter(|(_, f)| **f)
        .map(|(p, _)| &p.d)
        .collect();
    // Every server inserts in (store, delivery id) order: two commits holding the same new
    // deliveries then wait on each other in one direction only, never in a deadlock.
    let mut candidates = candidates;
    candidates.sort_by(|a, b| (&a.store, &a.delivery_id).cmp(&(&b.store, &b.delivery_id)));
    let now = queue.now_ms();
    let mut tx = queue.begin().await.map_err(|e| err(&e))?;
    let insert =
        "INSERT INTO ferry_deliveries (store, delivery_id, platform, topic, job_id, received_ms) ";
    let conflict = " ON CONFLICT (store, delivery_id) DO NOTHING RETURNING store, delivery_id";
    // One multi-row INSERT, built for the transaction's engine.
    macro_rules! insert_all {
        ($db:ty, $conn:expr) => {{
            let mut qb = QueryBuilder::<$db>::new(insert);
            qb.push_values(&candidates, |mut b, p| {
                b.push_bind(&p.store)
                    .push_bind(&p.delivery_id)
                    .push_bind(p.platform)
                    .push_bind(&p.topic)
                    .push_bind("")
                    .push_bind(now);
            });
            qb.push(conflict);
            qb.build_query_as()
                .fetch_all(&mut *$conn)
                .await
                .map_err(|e| err(&e))?
        }};
    }
    let inserted: Vec<(String, String)> = if let Some(c) = tx.postgres() {
        insert_all!(Postgres, c)
    } else if let Some(c) = tx.sqlite() {
        insert_all!(Sqlite, c)
    } else {
        Vec::new()
    };
    let new: HashSet<(&str, &str)> = inserted
        .iter()
        .map(|(s, d)| (s.as_str(), d.as_str()))
        .collect();
    let fresh: Vec<&Delivery> = candidates
        .into_iter()
        .filter(|p| new.contains(&(p.store.as_str(), p.delivery_id.as_str())))
        .collect();
    let jobs = tx
        .enqueue_batch(fresh.iter().map(|p| p.job.clone()).collect())
        .await
        .map_err(|e| err(&e))?;
    let links: Vec<(&Delivery, String)> = fresh
        .into_iter()
        .zip(jobs.iter().map(|j| j.id.to_string()))
        .collect();
    if !links.is_empty() {
        let head = "UPDATE ferry_deliveries SET job_id = v.job FROM (";
        let tail = ") AS v(store, delivery, job) WHERE ferry_deliveries.store = v.store AND ferry_deliveries.delivery_id = v.delivery";
        if let Some(c) = tx.postgres() {
            let mut qb = QueryBuilder::<Postgres>::new(head);
            qb.push_values(&links, |mut b, (p, job)| {
                b.push_bind(&p.store)
                    .push_bind(&p.delivery_id)
                    .push_bind(job);
            });
            qb.push(tail);
            qb.build().execute(&mut *c).await.map_err(|e| err(&e))?;
        } else if let Some(c) = tx.sqlite() {
            // SQLite names the columns of a VALUES list column1, column2, …
            let mut qb = QueryBuilder::<Sqlite>::new(
                "UPDATE ferry_deliveries SET job_id = v.column3 FROM (",
            );
            qb.push_values(&links, |mut b, (p, job)| {
                b.push_bind(&p.store)
                    .push_bind(&p.delivery_id)
                    .push_bind(job);
            });
            qb.push(") AS v WHERE ferry_deliveries.store = v.column1 AND ferry_deliveries.delivery_id = v.column2");
            qb.build().execute(&mut *c).await.map_err(|e| err(&e))?;
        }
    }
    tx.commit().await.map_err(|e| err(&e))?;
    let job_of: std::collections::HashMap<(&str, &str), &str> = links
        .iter()
        .map(|(p, j)| ((p.store.as_str(), p.delivery_id.as_str()), j.as_str()))
        .collect();
    Ok(items
        .iter()
        .zip(&first)
        .map(
            |(p, f)| match (f, job_of.get(&(p.store.as_str(), p.delivery_id.as_str()))) {
                (true, Some(j)) => CommitOutcome::Accepted {
                    job_id: (*j).to_owned(),
                },
                _ => CommitOutcome::Duplicate,
            },
        )
        .collect())
}
