//! ferry's durable job queue: one API over PostgreSQL and SQLite.
//!
//! Jobs are enqueued singly, in batches or inside the caller's transaction; claimed in batches
//! by priority and rotating fairly between groups, with per-group caps; held under a lease that
//! a heartbeat extends, so a dead worker's jobs run again within seconds; retried with
//! backoff, snoozed, killed as dead and replayed; deduplicated by singleton keys; expired at a
//! deadline; scheduled by cron once per tick across processes. A worker holds a local buffer of
//! claimed jobs, so one round trip feeds many handlers, whatever its concurrency.

mod backoff;
mod buffer;
mod common;
mod cron;
mod direct;
mod error;
mod job;
mod postgres;
mod queue;
mod samples;
mod sql;
mod sqlite;
mod store;
mod wake;
mod worker;

pub use backoff::Backoff;
pub use error::{QueueError, Result};
pub use ferry_core::{Clock, FakeClock, SystemClock};
pub use job::{
    AttemptError, ClaimedJob, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, DeadGroup, DeadMatch, Enqueued,
    Job, JobFilter, JobRecord, JobState, NewJob, OnConflict, Outcome, QueueStats,
};
pub use queue::{Cancelled, Queue, QueueOptions, Tx, TxInner, redact_url};
pub use samples::{GroupActivity, Sample};
pub use worker::{JobContext, JobError, Maintenance, Worker, WorkerBuilder, WorkerOptions};
