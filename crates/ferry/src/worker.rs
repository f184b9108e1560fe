//! `ferry worker`: runs jobs. Until the sync engine lands it knows the diagnostic kinds that
//! operators use to check a deployment end to end.

use std::time::Duration;

use anyhow::Result;
use ferry_queue::{JobError, Queue, Worker, WorkerOptions};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::DbArgs;

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Queues to take jobs from.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub queues: Vec<String>,
    /// Handlers running at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Do not LISTEN for wake-ups (behind PgBouncer in transaction mode); poll only.
    #[arg(long)]
    pub no_listen: bool,
}

/// `ferry.sleep`: sleeps, or stops early when cancelled. For smoke and crash tests.
#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

/// `ferry.fail`: fails with the given message (retried like any failure).
#[derive(Deserialize)]
struct Fail {
    message: String,
}

/// Registers the diagnostic kinds: `ferry.noop`, `ferry.sleep`, `ferry.fail`.
pub fn diagnostics(b: ferry_queue::WorkerBuilder) -> ferry_queue::WorkerBuilder {
    b.handle("ferry.noop", |_: serde_json::Value, _| async { Ok(()) })
        .handle("ferry.sleep", |p: Sleep, ctx| async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(p.ms)) => Ok(()),
                _ = ctx.cancel.cancelled() => Err(JobError::retry("cancelled while sleeping")),
            }
        })
        .handle("ferry.fail", |p: Fail, _| async move {
            Err(JobError::retry(p.message))
        })
}

pub async fn run(args: WorkerArgs) -> Result<()> {
    let queue = Queue::connect(&args.db.database_url).await?;
    let queues: Vec<&str> = args.queues.iter().map(String::as_str).collect();
    let opts = WorkerOptions {
        listen: !args.no_listen,
        ..WorkerOptions::default()
    };
    let worker = diagnostics(Worker::builder(queue.clone()).options(opts))
        .queues(&queues)
        .concurrency(args.concurrency)
        .build();
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_on(shutdown.clone()));
    tracing::info!(worker = worker.id(), backend = queue.backend(), queues = ?args.queues, "worker started");
    worker.run(shutdown).await?;
    tracing::info!(worker = worker.id(), "worker stopped");
    Ok(())
}

/// Fires `token` on SIGINT or SIGTERM.
pub async fn signal_on(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    token.cancel();
}
