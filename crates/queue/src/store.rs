//! Plain rows passed between the queue API and the engines.

use uuid::Uuid;

/// How an insert treats an existing waiting job with the same singleton key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsertMode {
    /// No singleton key: nothing can conflict.
    Plain = 0,
    /// Keep the waiting job.
    Keep = 1,
    /// Replace its payload and schedule.
    Replace = 2,
}

/// One row to insert, times already resolved.
#[derive(Debug, Clone)]
pub(crate) struct InsertRow {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub priority: i16,
    pub run_at: i64,
    pub max_attempts: i32,
    pub singleton_key: Option<String>,
    pub group: String,
    pub expires_at: Option<i64>,
    /// Its place among the statement's rows of the same queue, group and priority: the
    /// statement gives it the round after the group's last plus this.
    pub rank: i64,
    pub mode: InsertMode,
}

ferry_db::text_enum! {
    /// Why a running job stops running other than by success; the transition's SQL
    /// (`sql::next_state`) decides its next state from this.
    pub(crate) enum Reason {
        /// Failed: waits for its backoff, or dead when its attempts are spent.
        Retry = "retry",
        /// Failed for good.
        Dead = "dead",
        /// Asked to run later without spending an attempt.
        Snooze = "snooze",
        /// Cancelled while running.
        Cancel = "cancel",
    }
}

/// A running job leaving the running state for another reason than success.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transition<'a> {
    pub now: i64,
    pub id: Uuid,
    pub attempt: i32,
    pub owner: &'a str,
    pub reason: Reason,
    pub requeue_at: i64,
    pub error: Option<&'a str>,
}

/// A cron schedule as stored.
#[derive(Debug, Clone)]
pub(crate) struct CronRow {
    pub name: String,
    pub expr: String,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub next_at: i64,
}
