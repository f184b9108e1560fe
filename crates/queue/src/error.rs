use thiserror::Error;

/// Errors of the queue layer.
#[derive(Debug, Error)]
pub enum QueueError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url (expected postgres://, postgresql:// or sqlite:): {0}")]
    UnsupportedUrl(String),
    #[error("invalid job: {0}")]
    InvalidJob(String),
    #[error("payload could not be encoded or decoded: {0}")]
    Payload(#[from] serde_json::Error),
    #[error("invalid cron expression {expr:?}: {message}")]
    Cron { expr: String, message: String },
    #[error("job {0} not found")]
    NotFound(uuid::Uuid),
    #[error("job {id} is {state}; only dead, cancelled or expired jobs can be replayed")]
    NotReplayable { id: uuid::Uuid, state: String },
    #[error("transaction belongs to another engine than this queue")]
    EngineMismatch,
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;
