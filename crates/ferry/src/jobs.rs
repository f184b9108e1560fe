//! `ferry jobs …` and `ferry queues …`: operate the queue from a shell. Output is JSON lines.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ferry_queue::{JobFilter, JobState, NewJob, Queue, QueueOptions};
use uuid::Uuid;

use crate::DbArgs;

pub async fn open(db: &DbArgs) -> Result<Queue> {
    let url = db.url();
    let opened = match direct_url() {
        None => Queue::connect(&url).await,
        Some(direct) => {
            // `url` leads through a transaction pooler (PgBouncer): what needs a session of its
            // own (the migrator's advisory lock, LISTEN) goes to the direct connection.
            migrate(&direct).await?;
            let opts = QueueOptions {
                migrate: false,
                listen_url: Some(direct),
                ..QueueOptions::default()
            };
            Queue::connect_with(&url, opts).await
        }
    };
    opened.with_context(|| format!("opening {}", ferry_queue::redact_url(&url)))
}

/// The configured `direct_database_url`, when set: `database_url` then leads through a
/// pooler, and migrations and LISTEN use this one.
pub fn direct_url() -> Option<String> {
    Some(crate::config::get().direct_database_url.clone()).filter(|d| !d.is_empty())
}

/// Applies every table's migrations (queue, connectors, sync) on `url`; the backend's name.
pub async fn migrate(url: &str) -> Result<&'static str> {
    let q = Queue::connect(url)
        .await
        .with_context(|| format!("migrating {}", ferry_queue::redact_url(url)))?;
    ferry_connect::db::open(&q).await?;
    ferry_sync::db::open(&q).await?;
    ferry_http::access::Access::migrate(&q).await?;
    Ok(q.backend())
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// List jobs, oldest first; page with --after.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        filter: ListArgs,
    },
    /// Show one job.
    Get {
        #[command(flatten)]
        db: DbArgs,
        id: Uuid,
    },
    /// Enqueue a job.
    Enqueue {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        job: EnqueueArgs,
    },
    /// Cancel a job (a running job's handler is asked to stop).
    Cancel {
        #[command(flatten)]
        db: DbArgs,
        id: Uuid,
    },
    /// Put a dead, cancelled or expired job back in line with fresh attempts.
    Replay {
        #[command(flatten)]
        db: DbArgs,
        id: Uuid,
    },
    /// Replay every dead job of a queue.
    ReplayDead {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        queue: String,
    },
}

#[derive(Subcommand)]
pub enum QueuesCommand {
    /// Ready, scheduled, running and dead jobs and the oldest ready age, per queue.
    Stats {
        #[command(flatten)]
        db: DbArgs,
    },
    Pause {
        #[command(flatten)]
        db: DbArgs,
        queue: String,
    },
    Resume {
        #[command(flatten)]
        db: DbArgs,
        queue: String,
    },
}

fn print<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    queue: Option<String>,
    /// queued, running, retrying, completed, dead, cancelled or expired.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// Only jobs after this id (the last id of the previous page).
    #[arg(long)]
    after: Option<Uuid>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

impl ListArgs {
    fn filter(self) -> Result<JobFilter> {
        let state = match self.state {
            Some(s) => Some(JobState::parse(&s).with_context(|| format!("unknown state {s:?}"))?),
            None => None,
        };
        Ok(JobFilter {
            queue: self.queue,
            state,
            kind: self.kind,
            group: self.group,
            after: self.after,
            limit: self.limit,
        })
    }
}

#[derive(clap::Args)]
pub struct EnqueueArgs {
    kind: String,
    /// The payload, as JSON.
    #[arg(default_value = "{}")]
    payload: String,
    #[arg(long, default_value = "default")]
    queue: String,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    singleton: Option<String>,
    #[arg(long, default_value_t = 0)]
    priority: i16,
    /// Run no earlier than this many seconds from now.
    #[arg(long)]
    delay_s: Option<u64>,
    #[arg(long)]
    max_attempts: Option<i32>,
}

impl EnqueueArgs {
    fn job(self) -> Result<NewJob> {
        let mut job = NewJob::from_json(&self.kind, self.payload)
            .context("the payload must be JSON")?
            .queue(&self.queue)
            .priority(self.priority);
        if let Some(g) = self.group {
            job = job.group(&g);
        }
        if let Some(k) = self.singleton {
            job = job.singleton(&k);
        }
        if let Some(s) = self.delay_s {
            job = job.run_in(Duration::from_secs(s));
        }
        if let Some(n) = self.max_attempts {
            job = job.max_attempts(n);
        }
        Ok(job)
    }
}

pub async fn run_jobs(cmd: JobsCommand) -> Result<()> {
    match cmd {
        JobsCommand::List { db, filter } => {
            let filter = filter.filter()?;
            let q = open(&db).await?;
            for job in q.list(&filter).await? {
                print(&job)?;
            }
        }
        JobsCommand::Get { db, id } => match open(&db).await?.get(id).await? {
            Some(job) => print(&job)?,
            None => bail!("job {id} not found"),
        },
        JobsCommand::Enqueue { db, job } => {
            let job = job.job()?;
            let out = open(&db).await?.enqueue(job).await?;
            print(&serde_json::json!({ "id": out.id, "inserted": out.inserted }))?;
        }
        JobsCommand::Cancel { db, id } => {
            let r = open(&db).await?.cancel(id).await?;
            print(&serde_json::json!({ "id": id, "result": format!("{r:?}") }))?;
        }
        JobsCommand::Replay { db, id } => {
            let out = open(&db).await?.replay(id).await?;
            print(&serde_json::json!({ "id": out.id, "replayed": out.inserted }))?;
        }
        JobsCommand::ReplayDead { db, queue } => {
            let q = open(&db).await?;
            let (mut replayed, mut after) = (0u64, None);
            loop {
                let filter = JobFilter {
                    queue: Some(queue.clone()),
                    state: Some(JobState::Dead),
                    after,
                    limit: 500,
                    ..JobFilter::default()
                };
                let page = q.list(&filter).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for job in page {
                    // Not replayed when its singleton key already has a waiting job.
                    if q.replay(job.id).await?.inserted {
                        replayed += 1;
                    }
                }
            }
            print(&serde_json::json!({ "queue": queue, "replayed": replayed }))?;
        }
    }
    Ok(())
}

pub async fn run_queues(cmd: QueuesCommand) -> Result<()> {
    match cmd {
        QueuesCommand::Stats { db } => {
            for s in open(&db).await?.stats_all().await? {
                print(&s)?;
            }
        }
        QueuesCommand::Pause { db, queue } => {
            open(&db).await?.pause(&queue).await?;
            print(&serde_json::json!({ "queue": queue, "paused": true }))?;
        }
        QueuesCommand::Resume { db, queue } => {
            open(&db).await?.resume(&queue).await?;
            print(&serde_json::json!({ "queue": queue, "paused": false }))?;
        }
    }
    Ok(())
}
