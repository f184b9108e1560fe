//! What can go wrong talking to a platform, in the classes that decide what happens next.

use std::time::Duration;

/// The class of an error decides retry or not, and how the job is handed back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 5xx, timeouts, connection errors: retried.
    Transient,
    /// 429, GraphQL `THROTTLED`: retried after the server's delay.
    RateLimited,
    /// 4xx other than 401/429: the request is wrong; never retried.
    Client,
    /// 401: the credentials; refreshed once, then given up.
    Auth,
    /// A response of an unexpected shape: a changed partner API, reported at once.
    Data,
    /// The store's circuit breaker is open: wait, do not spend attempts.
    Open,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `message` is ferry's own words; `upstream` what the platform answered (a snippet of
    /// its body, or empty), kept in the job's record and never logged.
    #[error("transient failure calling {endpoint}: {message}{}", said(upstream))]
    Transient {
        endpoint: String,
        message: String,
        upstream: String,
        retry_after: Option<Duration>,
    },
    #[error("rate limited on {endpoint}; retry after {retry_after:?}")]
    RateLimited {
        endpoint: String,
        retry_after: Duration,
    },
    #[error(
        "{endpoint} refused the request ({status}){}{}",
        said(message),
        said(upstream)
    )]
    Client {
        endpoint: String,
        status: u16,
        message: String,
        upstream: String,
    },
    #[error("{endpoint} rejected the input: {}", errors.iter().map(|e| format!("{} ({})", e.message, e.code.as_deref().unwrap_or("-"))).collect::<Vec<_>>().join("; "))]
    UserErrors {
        endpoint: String,
        errors: Vec<UserError>,
    },
    #[error("{endpoint} refused the credentials (401)")]
    Auth { endpoint: String },
    /// A token endpoint refused the grant (`invalid_grant`, `invalid_client`,
    /// `shop_not_permitted`…): only its error code is kept.
    #[error("{endpoint} refused the grant: {code}")]
    Refused { endpoint: String, code: String },
    /// The store must be installed again (its refresh tokens were refused): calls wait.
    #[error("{key} needs to be installed again: {reason}")]
    Reauthorize {
        key: String,
        reason: String,
        retry_after: Duration,
    },
    #[error("unexpected response from {endpoint} at {path}: {message}")]
    Data {
        endpoint: String,
        path: String,
        message: String,
    },
    #[error("circuit breaker for {key} is open for {retry_after:?}")]
    BreakerOpen { key: String, retry_after: Duration },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Config(String),
    /// The outbound policy refused the URL: the call was never sent.
    #[error("not sent: {0}")]
    Outbound(String),
}

fn said(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// A platform's `userErrors` entry: the input it refused and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct UserError {
    #[serde(default)]
    pub field: Option<Vec<String>>,
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

impl ConnectError {
    /// Whether the platform refused the input with this `userErrors` code.
    pub fn has_code(&self, code: &str) -> bool {
        matches!(self, ConnectError::UserErrors { errors, .. } if errors.iter().any(|e| e.code.as_deref() == Some(code)))
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectError::Transient { .. } | ConnectError::Db(_) | ConnectError::Migrate(_) => {
                ErrorClass::Transient
            }
            ConnectError::RateLimited { .. } => ErrorClass::RateLimited,
            ConnectError::Client { .. }
            | ConnectError::UserErrors { .. }
            | ConnectError::Config(_)
            | ConnectError::Outbound(_) => ErrorClass::Client,
            ConnectError::Auth { .. } | ConnectError::Refused { .. } => ErrorClass::Auth,
            ConnectError::Reauthorize { .. } => ErrorClass::Open,
            ConnectError::Data { .. } => ErrorClass::Data,
            ConnectError::BreakerOpen { .. } => ErrorClass::Open,
        }
    }

    /// How long the server (or the breaker) asked to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectError::Transient { retry_after, .. } => *retry_after,
            ConnectError::RateLimited { retry_after, .. }
            | ConnectError::BreakerOpen { retry_after, .. }
            | ConnectError::Reauthorize { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::Transient | ErrorClass::RateLimited | ErrorClass::Open
        )
    }

    /// The error without what the platform wrote: for logs, metrics and run records. The
    /// whole text goes only to the job's own record (`last_error`), read with a token.
    pub fn brief(&self) -> String {
        match self {
            ConnectError::Transient {
                endpoint, message, ..
            } => format!("transient failure calling {endpoint}: {message}"),
            ConnectError::Client {
                endpoint,
                status,
                message,
                ..
            } => format!("{endpoint} refused the request ({status}){}", said(message)),
            ConnectError::UserErrors { endpoint, errors } => format!(
                "{endpoint} rejected the input: {}",
                errors
                    .iter()
                    .map(|e| e.code.as_deref().unwrap_or("-"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.to_string(),
        }
    }

    pub(crate) fn transient(endpoint: &str, message: impl Into<String>) -> ConnectError {
        ConnectError::Transient {
            endpoint: endpoint.to_owned(),
            message: message.into(),
            upstream: String::new(),
            retry_after: None,
        }
    }

    pub(crate) fn data(endpoint: &str, path: &str, message: impl Into<String>) -> ConnectError {
        ConnectError::Data {
            endpoint: endpoint.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl ConnectError {
    /// How a job hands a connector error back to the queue: an open breaker or a rate limit
    /// snoozes (no attempt spent), a transient failure retries with backoff, the rest are
    /// fatal (retrying a request the server refused can not help).
    pub fn into_job_error(self) -> ferry_queue::JobError {
        match self.class() {
            ErrorClass::Open | ErrorClass::RateLimited => {
                ferry_queue::JobError::snooze(self.retry_after().unwrap_or(Duration::from_secs(1)))
            }
            ErrorClass::Transient => match self.retry_after() {
                Some(d) => ferry_queue::JobError::retry_after(&self, d),
                None => ferry_queue::JobError::retry(&self),
            },
            ErrorClass::Auth | ErrorClass::Client | ErrorClass::Data => {
                ferry_queue::JobError::fatal(&self)
            }
        }
    }
}
