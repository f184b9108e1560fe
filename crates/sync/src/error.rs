//! What can go wrong in the sync engine.

use ferry_connect::ConnectError;
use ferry_queue::JobError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("queue: {0}")]
    Queue(#[from] ferry_queue::QueueError),
    #[error("{0}")]
    Invalid(String),
    #[error("unknown store {0:?}")]
    UnknownStore(String),
    /// The request clashes with what exists (a name taken by something else).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but what it names is refused (a store URL outside the outbound policy).
    #[error("{0}")]
    Refused(String),
    #[error("the network has no parent store")]
    NoParent,
    #[error("a stored credential could not be opened: {0}")]
    Crypto(String),
    /// Not yet: run again after this without spending an attempt (a write of ferry's own
    /// is still landing).
    #[error("waiting {0:?} for writes in flight")]
    Wait(std::time::Duration),
    /// A later step of a multi-step write failed for good; the earlier ones were undone.
    #[error("{0} (earlier steps undone)")]
    Compensated(String),
}

impl SyncError {
    /// How a job hands the error back to the queue: connector errors by their class, a
    /// refused input or a compensated saga for good, the database and the queue retried.
    pub fn into_job_error(self) -> JobError {
        match self {
            SyncError::Connect(e) => e.into_job_error(),
            SyncError::Wait(d) => JobError::snooze(d),
            SyncError::Db(_) | SyncError::Queue(_) | SyncError::Migrate(_) => JobError::retry(self),
            SyncError::Invalid(_)
            | SyncError::UnknownStore(_)
            | SyncError::Conflict(_)
            | SyncError::Refused(_)
            | SyncError::NoParent
            | SyncError::Crypto(_)
            | SyncError::Compensated(_) => JobError::fatal(self),
        }
    }

    /// The error without what a platform wrote (see [`ConnectError::brief`]): for logs and
    /// run records.
    pub fn brief(&self) -> String {
        match self {
            SyncError::Connect(e) => e.brief(),
            SyncError::Compensated(_) => {
                "a later step failed for good (earlier steps undone)".into()
            }
            other => other.to_string(),
        }
    }

    /// Whether retrying can help (a refused write can not).
    pub fn is_permanent(&self) -> bool {
        match self {
            SyncError::Connect(e) => !e.is_retryable(),
            SyncError::Db(_) | SyncError::Queue(_) | SyncError::Migrate(_) | SyncError::Wait(_) => {
                false
            }
            _ => true,
        }
    }
}
