//! A rate budget per key (one store's API), kept in the database so that every worker of every
//! process on it draws from the same bucket. It mirrors the platform's leaky bucket: a call
//! reserves its cost before it is sent and waits while the bucket is too full, so requests are
//! paced before the server would refuse them, not after. What the server reports (GraphQL
//! `throttleStatus`, the REST call-limit header, `Retry-After`) corrects the mirror.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::Clock;

use crate::error::ConnectError;
use ferry_db::Db;

/// What the mirror keeps free of a bucket: a tenth of it, or what restores in 100 ms if that
/// is more, at most half. A request is counted when it is reserved but by the server when it
/// arrives; one delayed in flight (a busy machine, a slow network) arrives after the server's
/// bucket has leaked less than the mirror assumed, so a mirror filled to the brim overflows
/// the server's. The margin lowers only the burst, never the sustained rate, which is the
/// restore rate either way.
fn room(capacity: f64, restore_per_s: f64) -> f64 {
    capacity
        - (capacity * 0.1)
            .max(restore_per_s * 0.1)
            .min(capacity * 0.5)
}

/// [`room`] in SQL, over the row's columns.
fn room_sql(db: &Db) -> String {
    let (g, l) = (db.dialect().greatest(), db.dialect().least());
    format!("(capacity - {l}({g}(capacity * 0.1, restore_per_s * 0.1), capacity * 0.5))")
}

/// Where a bucket starts before the server has told us its size.
#[derive(Debug, Clone, Copy)]
pub struct BucketShape {
    pub capacity: f64,
    pub restore_per_s: f64,
}

/// What a response said about the server's bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerBucket {
    /// How full the server's bucket is (capacity − available).
    pub level: Option<f64>,
    pub capacity: Option<f64>,
    pub restore_per_s: Option<f64>,
}

#[derive(Clone)]
pub struct Budget {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").finish_non_exhaustive()
    }
}

/// The state of one bucket, as read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetState {
    pub level: f64,
    pub capacity: f64,
    pub restore_per_s: f64,
    pub blocked_until_ms: i64,
    pub at_ms: i64,
}

impl Budget {
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Budget {
        Budget { db, clock }
    }

    /// Reserves `cost`, or says how long until it would fit.
    pub async fn try_reserve(
        &self,
        key: &str,
        cost: f64,
        shape: BucketShape,
    ) -> Result<Result<(), Duration>, ConnectError> {
        let now = self.clock.now_ms();
        if self.take(key, now, cost).await? {
            return Ok(Ok(()));
        }
        let s = match self.state(key).await? {
            Some(s) => s,
            None => {
                // The key's first call: its bucket starts empty, in the shape given.
                ferry_db::exec!(
                    &self.db,
                    "INSERT INTO ferry_rate_budgets (key, level, at_ms, capacity, restore_per_s)
                     VALUES ($1, 0, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                    key,
                    now,
                    shape.capacity,
                    shape.restore_per_s,
                )?;
                if self.take(key, now, cost).await? {
                    return Ok(Ok(()));
                }
                self.state(key)
                    .await?
                    .ok_or_else(|| ConnectError::Config(format!("rate budget {key} vanished")))?
            }
        };
        let elapsed = (now - s.at_ms).max(0) as f64 / 1000.0;
        let level = (s.level - elapsed * s.restore_per_s).max(0.0);
        let room = room(s.capacity, s.restore_per_s);
        let excess = level + cost.min(room) - room;
        let wait_ms = (excess / s.restore_per_s.max(0.001) * 1000.0)
            .ceil()
            .max(1.0) as i64;
        let wait_ms = wait_ms.max(s.blocked_until_ms - now);
        Ok(Err(Duration::from_millis(wait_ms.max(1) as u64)))
    }

    /// Adds `cost` to the bucket if it fits now under the headroom (one conditional UPDATE). A
    /// single request over the whole room still goes once the bucket is empty.
    async fn take(&self, key: &str, now: i64, cost: f64) -> Result<bool, ConnectError> {
        let (g, l) = (self.db.dialect().greatest(), self.db.dialect().least());
        let room = room_sql(&self.db);
        let sql = format!(
            "UPDATE ferry_rate_budgets
             SET level = {g}(level - {g}($2 - at_ms, 0) / 1000.0 * restore_per_s, 0) + $3,
                 at_ms = {g}(at_ms, $2)
             WHERE key = $1 AND blocked_until_ms <= $2
               AND {g}(level - {g}($2 - at_ms, 0) / 1000.0 * restore_per_s, 0)
                   + {l}($3, {room}) <= {room}
             RETURNING level"
        );
        let taken = ferry_db::row!(
            &self.db,
            (f64,),
            sqlx::AssertSqlSafe(sql.as_str()),
            key,
            now,
            cost
        )?;
        Ok(taken.is_some())
    }

    /// Reserves `cost`, waiting in process up to `max_wait`; beyond that, says how long.
    pub async fn reserve(
        &self,
        key: &str,
        endpoint: &str,
        cost: f64,
        shape: BucketShape,
        max_wait: Duration,
    ) -> Result<(), ConnectError> {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_reserve(key, cost, shape).await? {
                Ok(()) => return Ok(()),
                Err(wait) if waited + wait <= max_wait => {
                    metrics::counter!("ferry_connector_paced_total", "key" => key.to_owned())
                        .increment(1);
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                Err(wait) => {
                    return Err(ConnectError::RateLimited {
                        endpoint: endpoint.to_owned(),
                        retry_after: wait,
                    });
                }
            }
        }
    }

    /// After a response: gives back what was reserved but not spent, and moves the mirror
    /// toward what the server reported (never below it).
    pub async fn settle(
        &self,
        key: &str,
        refund: f64,
        server: ServerBucket,
    ) -> Result<(), ConnectError> {
        let now = self.clock.now_ms();
        let g = self.db.dialect().greatest();
        let sql = format!(
            "UPDATE ferry_rate_budgets
             SET level = {g}({g}(level - {g}($2 - at_ms, 0) / 1000.0 * restore_per_s, 0) - $3,
                             COALESCE($4, 0)),
                 at_ms = {g}(at_ms, $2),
                 capacity = COALESCE($5, capacity),
                 restore_per_s = COALESCE($6, restore_per_s)
             WHERE key = $1"
        );
        ferry_db::exec!(
            &self.db,
            sqlx::AssertSqlSafe(sql.as_str()),
            key,
            now,
            refund.max(0.0),
            server.level,
            server.capacity,
            server.restore_per_s
        )?;
        Ok(())
    }

    /// The server refused for rate: nobody sends to this key before `retry_after` is over.
    pub async fn block(&self, key: &str, retry_after: Duration) -> Result<(), ConnectError> {
        let now = self.clock.now_ms();
        let until = now + retry_after.as_millis() as i64;
        let g = self.db.dialect().greatest();
        let sql = format!(
            "UPDATE ferry_rate_budgets SET blocked_until_ms = {g}(blocked_until_ms, $2),
             level = capacity, at_ms = {g}(at_ms, $3) WHERE key = $1"
        );
        ferry_db::exec!(&self.db, sqlx::AssertSqlSafe(sql.as_str()), key, until, now)?;
        Ok(())
    }

    /// Every bucket as stored, by key (one per store API: a small table), for the dashboard.
    pub async fn all(&self) -> Result<Vec<(String, BudgetState)>, ConnectError> {
        let sql = "SELECT key, level, capacity, restore_per_s, blocked_until_ms, at_ms
                   FROM ferry_rate_budgets ORDER BY key";
        let rows = ferry_db::rows!(&self.db, (String, f64, f64, f64, i64, i64), sql)?;
        Ok(rows
            .into_iter()
            .map(
                |(key, level, capacity, restore_per_s, blocked_until_ms, at_ms)| {
                    (
                        key,
                        BudgetState {
                            level,
                            capacity,
                            restore_per_s,
                            blocked_until_ms,
                            at_ms,
                        },
                    )
                },
            )
            .collect())
    }

    /// The bucket as stored (level as of its last update).
    pub async fn state(&self, key: &str) -> Result<Option<BudgetState>, ConnectError> {
        let sql = "SELECT level, capacity, restore_per_s, blocked_until_ms, at_ms
                   FROM ferry_rate_budgets WHERE key = $1";
        let row = ferry_db::row!(&self.db, (f64, f64, f64, i64, i64), sql, key)?;
        Ok(row.map(
            |(level, capacity, restore_per_s, blocked_until_ms, at_ms)| BudgetState {
                level,
                capacity,
                restore_per_s,
                blocked_until_ms,
                at_ms,
            },
        ))
    }
}
