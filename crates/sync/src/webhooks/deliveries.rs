//! The record of accepted deliveries (`ferry_deliveries`, written by the [`Committer`]): read
//! back page by page, and the job a delivery became.
//!
//! [`Committer`]: super::Committer

use ferry_db::Db;

use crate::error::SyncError;

/// One accepted delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub store: String,
    pub delivery_id: String,
    pub platform: String,
    pub topic: String,
    pub job_id: String,
    pub received_ms: i64,
}

impl DeliveryRecord {
    /// The keyset cursor of the page that ends with this record.
    pub fn cursor(&self) -> String {
        format!("{}:{}:{}", self.received_ms, self.store, self.delivery_id)
    }
}

/// Where a page starts: after `(received_ms, "store:delivery_id")`.
pub fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (ms, key) = c.split_once(':')?;
    Some((ms.parse().ok()?, key.to_owned()))
}

#[derive(Clone)]
pub struct Deliveries {
    db: Db,
}

impl Deliveries {
    pub fn new(db: Db) -> Deliveries {
        Deliveries { db }
    }

    /// Deliveries in the order received, of one store or all, after a cursor.
    pub async fn page(
        &self,
        store: Option<&str>,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, SyncError> {
        let (after_ms, after_key) = after.unwrap_or((i64::MIN, String::new()));
        let sql =
            "SELECT store, delivery_id, platform, topic, job_id, received_ms FROM ferry_deliveries
             WHERE ($1 IS NULL OR store = $1)
               AND (received_ms > $2 OR (received_ms = $2 AND store || ':' || delivery_id > $3))
             ORDER BY received_ms, store, delivery_id LIMIT $4";
        Ok(ferry_db::rows!(
            &self.db,
            DeliveryRecord,
            sql,
            store,
            after_ms,
            &after_key,
            i64::from(limit)
        )?)
    }

    /// Deliveries newest first, of one store or all, before the record `before` names
    /// (`(received_ms, store, delivery_id)`; none: from the newest).
    pub async fn recent(
        &self,
        store: Option<&str>,
        before: Option<(i64, String, String)>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, SyncError> {
        let (ms, st, id) = before.unwrap_or((i64::MAX, String::new(), String::new()));
        // Row comparison: one index range in both engines, ties broken by store and id.
        let sql =
            "SELECT store, delivery_id, platform, topic, job_id, received_ms FROM ferry_deliveries
             WHERE ($1 IS NULL OR store = $1) AND (received_ms, store, delivery_id) < ($2, $3, $4)
             ORDER BY received_ms DESC, store DESC, delivery_id DESC LIMIT $5";
        Ok(ferry_db::rows!(
            &self.db,
            DeliveryRecord,
            sql,
            store,
            ms,
            &st,
            &id,
            i64::from(limit)
        )?)
    }

    /// The id of the job a delivery became.
    pub async fn job_of(&self, store: &str, delivery: &str) -> Result<Option<String>, SyncError> {
        let sql = "SELECT job_id FROM ferry_deliveries WHERE store = $1 AND delivery_id = $2";
        let row = ferry_db::row!(&self.db, (String,), sql, store, delivery)?;
        Ok(row.map(|(j,)| j))
    }
}
