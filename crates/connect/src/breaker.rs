//! A circuit breaker per key (one store), kept in the database so that every process sees the
//! same state and the admin API can show it: closed; after `threshold` transient failures in a
//! row, open until a time (doubling each time it reopens, up to a cap); then half-open, where
//! one caller probes while the others keep waiting; the probe's success closes it.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::Clock;

use crate::error::ConnectError;
use ferry_db::Db;

#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Transient failures in a row that open it.
    pub threshold: u32,
    /// How long it stays open the first time; doubled each time it reopens.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    /// How long a half-open probe may take before another caller may probe.
    pub probe_timeout: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            threshold: 5,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
            probe_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerState {
    pub key: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    pub failures: i32,
    pub open_until_ms: i64,
}

/// What `allow` found, for the calls that report back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed, no failures on record: a success needs no write.
    Clean,
    /// Closed with failures on record, or this caller is the half-open probe.
    Recovering,
}

#[derive(Clone)]
pub struct Breakers {
    db: Db,
    clock: Arc<dyn Clock>,
    pub policy: BreakerPolicy,
}

impl std::fmt::Debug for Breakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breakers")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Breakers {
    pub fn new(db: Db, clock: Arc<dyn Clock>, policy: BreakerPolicy) -> Breakers {
        Breakers { db, clock, policy }
    }

    pub async fn get(&self, key: &str) -> Result<Option<BreakerState>, ConnectError> {
        let sql = "SELECT state, failures, open_until_ms FROM ferry_breakers WHERE key = $1";
        let row = ferry_db::row!(&self.db, (String, i32, i64), sql, key)?;
        Ok(row.map(|(state, failures, open_until_ms)| BreakerState {
            key: key.to_owned(),
            state,
            failures,
            open_until_ms,
        }))
    }

    /// Every breaker, for metrics and the admin API.
    pub async fn all(&self) -> Result<Vec<BreakerState>, ConnectError> {
        let sql = "SELECT key, state, failures, open_until_ms FROM ferry_breakers ORDER BY key";
        let rows = ferry_db::rows!(&self.db, (String, String, i32, i64), sql)?;
        Ok(rows
            .into_iter()
            .map(|(key, state, failures, open_until_ms)| BreakerState {
                key,
                state,
                failures,
                open_until_ms,
            })
            .collect())
    }

    /// May a call go to `key` now? Open: no, with how long to wait. Open and due: this caller
    /// becomes the one half-open probe.
    pub async fn allow(&self, key: &str) -> Result<Admission, ConnectError> {
        let now = self.clock.now_ms();
        let Some(s) = self.get(key).await? else {
            return Ok(Admission::Clean);
        };
        match s.state.as_str() {
            "closed" if s.failures == 0 => Ok(Admission::Clean),
            "closed" => Ok(Admission::Recovering),
            _ if now < s.open_until_ms => Err(ConnectError::BreakerOpen {
                key: key.to_owned(),
                retry_after: Duration::from_millis((s.open_until_ms - now) as u64),
            }),
            _ => {
                // Due: exactly one caller wins the probe (the update is conditional).
                let probe_until = now + self.policy.probe_timeout.as_millis() as i64;
                let won = ferry_db::exec!(
                    &self.db,
                    "UPDATE ferry_breakers SET state = 'half_open', open_until_ms = $2, updated_ms = $3
                     WHERE key = $1 AND state <> 'closed' AND open_until_ms <= $3",
                    key,
                    probe_until,
                    now
                )?;
                if won == 1 {
                    metrics::gauge!("ferry_connector_breaker_state", "key" => key.to_owned())
                        .set(2.0);
                    Ok(Admission::Recovering)
                } else {
                    Err(ConnectError::BreakerOpen {
                        key: key.to_owned(),
                        retry_after: self.policy.probe_timeout.min(Duration::from_secs(1)),
                    })
                }
            }
        }
    }

    /// A call succeeded: the breaker closes and forgets its failures.
    pub async fn success(&self, key: &str, admission: Admission) -> Result<(), ConnectError> {
        if admission == Admission::Clean {
            return Ok(());
        }
        let now = self.clock.now_ms();
        ferry_db::exec!(
            &self.db,
            "UPDATE ferry_breakers SET state = 'closed', failures = 0, opened_count = 0,
             open_until_ms = 0, updated_ms = $2 WHERE key = $1",
            key,
            now
        )?;
        metrics::gauge!("ferry_connector_breaker_state", "key" => key.to_owned()).set(0.0);
        Ok(())
    }

    /// A transient failure: counted; at the threshold (or from half-open) the breaker opens.
    pub async fn failure(&self, key: &str) -> Result<(), ConnectError> {
        let now = self.clock.now_ms();
        ferry_db::exec!(
            &self.db,
            "INSERT INTO ferry_breakers (key, state, failures, updated_ms) VALUES ($1, 'closed', 1, $2)
             ON CONFLICT (key) DO UPDATE SET failures = ferry_breakers.failures + 1, updated_ms = $2",
            key,
            now
        )?;
        let Some(s) = self.get(key).await? else {
            return Ok(());
        };
        let trips = s.state == "half_open" || s.failures >= self.policy.threshold as i32;
        if trips {
            let sql = "SELECT opened_count FROM ferry_breakers WHERE key = $1";
            let opened = ferry_db::row!(&self.db, (i32,), sql, key)?.map(|(n,)| n);
            let doublings = opened.unwrap_or(0).clamp(0, 16) as u32;
            let cooldown = self
                .policy
                .cooldown
                .saturating_mul(2u32.saturating_pow(doublings))
                .min(self.policy.max_cooldown);
            ferry_db::exec!(
            &self.db,
            "UPDATE ferry_breakers SET state = 'open', failures = 0, opened_count = opened_count + 1,
                 open_until_ms = $2, updated_ms = $3 WHERE key = $1",
            key,
            now + cooldown.as_millis() as i64, now
        )?;
            metrics::gauge!("ferry_connector_breaker_state", "key" => key.to_owned()).set(1.0);
            tracing::warn!(
                key,
                cooldown_ms = cooldown.as_millis() as u64,
                "circuit breaker opened"
            );
        }
        Ok(())
    }
}
