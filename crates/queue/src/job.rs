//! What a job is: the row, what is enqueued, what a worker claims, and the listing types.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::error::{QueueError, Result};

pub const DEFAULT_QUEUE: &str = "default";
pub const DEFAULT_MAX_ATTEMPTS: i32 = 20;

/// The lifecycle: `queued → running → completed`, or `running → retrying → running …`, then
/// `dead` once attempts are spent; `cancelled` and `expired` end a job that must not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Retrying,
    Completed,
    Dead,
    Cancelled,
    Expired,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Retrying,
        JobState::Completed,
        JobState::Dead,
        JobState::Cancelled,
        JobState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
            JobState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Waiting to run: what the claim, singleton and fairness indexes cover.
    pub fn is_waiting(self) -> bool {
        matches!(self, JobState::Queued | JobState::Retrying)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do when a job's singleton key already has a waiting job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Keep the waiting job as it is and return it.
    #[default]
    Keep,
    /// Replace the waiting job's payload, run_at, priority and deadline (debounce).
    Replace,
}

/// When a new job should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunAt {
    Now,
    In(Duration),
    At(i64),
}

/// A job to enqueue. Built with [`NewJob::new`] and the chained setters.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) payload: String,
    pub(crate) priority: i16,
    pub(crate) run_at: RunAt,
    pub(crate) max_attempts: i32,
    pub(crate) singleton_key: Option<String>,
    pub(crate) on_conflict: OnConflict,
    pub(crate) group: String,
    pub(crate) expires_in: Option<Duration>,
}

impl NewJob {
    /// A job of `kind` whose payload is `payload` serialized as JSON.
    pub fn new<P: Serialize + ?Sized>(kind: &str, payload: &P) -> Result<NewJob> {
        Ok(NewJob::raw(kind, serde_json::to_string(payload)?))
    }

    /// A job of a typed [`Job`].
    pub fn of<J: Job>(job: &J) -> Result<NewJob> {
        Ok(NewJob::new(J::KIND, job)?.queue(J::QUEUE))
    }

    /// A job whose payload is already JSON text; it must parse as JSON.
    pub fn from_json(kind: &str, payload: String) -> Result<NewJob> {
        serde_json::from_str::<serde::de::IgnoredAny>(&payload)?;
        Ok(NewJob::raw(kind, payload))
    }

    fn raw(kind: &str, payload: String) -> NewJob {
        NewJob {
            queue: DEFAULT_QUEUE.to_owned(),
            kind: kind.to_owned(),
            payload,
            priority: 0,
            run_at: RunAt::Now,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            singleton_key: None,
            on_conflict: OnConflict::Keep,
            group: String::new(),
            expires_in: None,
        }
    }

    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = queue.to_owned();
        self
    }
    /// Higher runs first; the default is 0.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.run_at = RunAt::In(delay);
        self
    }
    pub fn run_at_ms(mut self, at: i64) -> Self {
        self.run_at = RunAt::At(at);
        self
    }
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n;
        self
    }
    /// At most one waiting job per key.
    pub fn singleton(mut self, key: &str) -> Self {
        self.singleton_key = Some(key.to_owned());
        self
    }
    /// With a singleton key: replace the waiting job's payload and run_at instead of keeping it.
    pub fn replace(mut self) -> Self {
        self.on_conflict = OnConflict::Replace;
        self
    }
    /// The fairness group (a merchant, a store): claims rotate between groups.
    pub fn group(mut self, group: &str) -> Self {
        self.group = group.to_owned();
        self
    }
    /// A job still waiting this long after it was enqueued is marked expired and never runs.
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(QueueError::InvalidJob(m.to_owned()));
        if self.queue.is_empty() || self.queue.len() > 128 {
            return bad("queue must be 1 to 128 bytes");
        }
        if self.kind.is_empty() || self.kind.len() > 256 {
            return bad("kind must be 1 to 256 bytes");
        }
        if self.max_attempts < 1 {
            return bad("max_attempts must be at least 1");
        }
        if self.singleton_key.as_deref() == Some("") {
            return bad("singleton key must not be empty");
        }
        Ok(())
    }

    /// The row values, with times resolved against `now`.
    pub(crate) fn resolve(&self, now: i64) -> (i64, Option<i64>) {
        let run_at = match self.run_at {
            RunAt::Now => now,
            RunAt::In(d) => now.saturating_add(ferry_core::ms(d)),
            RunAt::At(t) => t,
        };
        let expires_at = self
            .expires_in
            .map(|d| now.saturating_add(ferry_core::ms(d)));
        (run_at, expires_at)
    }
}

/// A typed job: its payload type names its kind and queue.
pub trait Job: Serialize + serde::de::DeserializeOwned + Send + 'static {
    const KIND: &'static str;
    const QUEUE: &'static str = DEFAULT_QUEUE;
}

/// The outcome of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: Uuid,
    /// False when the singleton key already had a waiting job and `id` is that job.
    pub inserted: bool,
}

/// A job handed to a worker.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub group_key: String,
    pub singleton_key: Option<String>,
    pub created_at: i64,
    pub(crate) fair_round: i64,
}

/// A job row as stored, for listings and inspection.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub priority: i16,
    pub run_at: i64,
    pub attempt: i32,
    pub max_attempts: i32,
    pub singleton_key: Option<String>,
    pub group_key: String,
    pub expires_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Every failed attempt, oldest first (kept across replays).
    pub errors: Vec<AttemptError>,
}

/// One failed attempt of a job: which, when (epoch ms) and why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AttemptError {
    pub attempt: i32,
    pub at: i64,
    pub error: String,
}

impl AttemptError {
    /// The stored history: a JSON object per line (a line that does not decode is skipped,
    /// so one bad line never hides the others).
    pub(crate) fn parse_lines(text: &str) -> Vec<AttemptError> {
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Filters for [`crate::Queue::list`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub queue: Option<String>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub group: Option<String>,
    /// Keyset pagination: only jobs with an id greater than this.
    pub after: Option<Uuid>,
    pub limit: u32,
}

impl JobFilter {
    /// The first `limit` jobs in `state`, of every queue.
    pub fn in_state(state: JobState, limit: u32) -> JobFilter {
        JobFilter {
            state: Some(state),
            limit,
            ..JobFilter::default()
        }
    }
}

/// Depth and age of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub ready: i64,
    pub scheduled: i64,
    pub running: i64,
    pub dead: i64,
    /// Milliseconds since the oldest ready job became ready; 0 when none is ready.
    pub oldest_ready_age_ms: i64,
    pub paused: bool,
}

/// Dead jobs alike: same queue, store (group) and error (its first 120 characters).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadGroup {
    pub queue: String,
    pub group: String,
    pub error: String,
    pub jobs: i64,
    /// When the first and the last of them died.
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Which dead jobs to act on: `None` matches any; the time window is when they died.
#[derive(Debug, Clone, Default)]
pub struct DeadMatch {
    pub queue: Option<String>,
    pub group: Option<String>,
    /// The first 120 characters of the error, as [`DeadGroup::error`].
    pub error: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// How a claimed job ended, as reported back to the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    /// Failed: retried after the backoff (or `retry_in`), dead once attempts are spent.
    Failed {
        error: String,
        retry_in: Option<Duration>,
    },
    /// Dead at once, whatever the attempts left (a payload that can never succeed).
    Fatal {
        error: String,
    },
    /// Run again after `delay` without spending an attempt.
    Snoozed {
        delay: Duration,
    },
    /// The handler saw its cancellation and stopped.
    Cancelled,
}
