//! API-to-API sync on the REST connector: copies records changed in a source API to a
//! destination, incrementally. The cursor (the `updated_at` and id of the last record written)
//! is kept in the database and moves only once every record before it is written, so a crash
//! or a failed write never skips a record, and records sharing the cursor's `updated_at` are
//! neither lost nor written twice needlessly.

use std::sync::Arc;

use ferry_core::Clock;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::error::ConnectError;
use crate::rest::RestConnector;
use ferry_db::Db;

/// Counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub synced: u64,
    /// Records without an id (or an `updated_at`): warned about and passed over.
    pub skipped: u64,
    /// Records whose write failed after the client's retries; the cursor stops before the first.
    pub failed: u64,
    pub pages: u64,
}

pub struct SyncApi {
    pub source: RestConnector,
    pub dest: RestConnector,
    db: Db,
    clock: Arc<dyn Clock>,
    /// The cursor's name: one per (source, destination).
    pub name: String,
    pub page_size: usize,
    /// Writes in flight at once.
    pub concurrency: usize,
}

/// A record's id as a string (ids may be strings or numbers).
fn record_id(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `updated_at` as epoch ms (a number, or an RFC 3339 timestamp).
fn record_updated(v: &Value) -> Option<i64> {
    match v.get("updated_at")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond()),
        _ => None,
    }
}

impl SyncApi {
    pub fn new(
        source: RestConnector,
        dest: RestConnector,
        db: Db,
        clock: Arc<dyn Clock>,
    ) -> SyncApi {
        let name = format!("sync-api:{}->{}", source.key(), dest.key());
        SyncApi {
            source,
            dest,
            db,
            clock,
            name,
            page_size: 250,
            concurrency: 8,
        }
    }

    /// Where the last run stopped: (`updated_at` ms, id).
    pub async fn cursor(&self) -> Result<Option<(i64, String)>, ConnectError> {
        let sql = "SELECT cursor_ms, cursor_id FROM ferry_sync_cursors WHERE name = $1";
        Ok(ferry_db::row!(&self.db, (i64, String), sql, &self.name)?)
    }

    async fn save_cursor(&self, at: i64, id: &str) -> Result<(), ConnectError> {
        let sql = "INSERT INTO ferry_sync_cursors (name, cursor_ms, cursor_id, updated_ms) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (name) DO UPDATE SET cursor_ms = $2, cursor_id = $3, updated_ms = $4";
        ferry_db::exec!(&self.db, sql, &self.name, at, id, self.clock.now_ms())?;
        Ok(())
    }

    /// Copies everything changed since the cursor; `progress` sees the counts after each page.
    /// Stops at the first page with a failed write (the next run starts again there).
    pub async fn run_once(
        &self,
        progress: &dyn Fn(&SyncReport),
    ) -> Result<SyncReport, ConnectError> {
        let start = self.cursor().await?;
        let mut report = SyncReport::default();
        let mut page_cursor: Option<String> = None;
        loop {
            let page = self
                .source
                .list(
                    start.as_ref().map(|c| c.0),
                    page_cursor.as_deref(),
                    self.page_size,
                )
                .await?;
            report.pages += 1;
            // (position in the page, key, write) for every record to write.
            let mut positions: Vec<(i64, String)> = Vec::with_capacity(page.items.len());
            let mut writes = JoinSet::new();
            let gate = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
            for item in page.items {
                let (Some(id), Some(at)) = (record_id(&item), record_updated(&item)) else {
                    tracing::warn!(sync = %self.name, "skipping a record without an id or updated_at");
                    report.skipped += 1;
                    continue;
                };
                // Written by an earlier run: the source's `updated_since` is inclusive.
                if start
                    .as_ref()
                    .is_some_and(|(ms, sid)| (at, id.as_str()) <= (*ms, sid.as_str()))
                {
                    continue;
                }
                let mut fields = item;
                if let Value::Object(m) = &mut fields {
                    m.remove("id");
                    m.remove("updated_at");
                }
                let (dest, gate, n, wid) =
                    (self.dest.clone(), gate.clone(), positions.len(), id.clone());
                writes.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    (n, dest.put(&wid, &fields).await)
                });
                positions.push((at, id));
            }
            let mut ok = vec![false; positions.len()];
            while let Some(done) = writes.join_next().await {
                match done {
                    Ok((n, Ok(_))) => ok[n] = true,
                    Ok((n, Err(e))) => {
                        tracing::warn!(sync = %self.name, id = %positions[n].1, error = %e, "write failed");
                    }
                    Err(e) => tracing::error!(sync = %self.name, error = %e, "write task failed"),
                }
            }
            let written = ok.iter().take_while(|w| **w).count();
            report.synced += ok.iter().filter(|w| **w).count() as u64;
            report.failed += ok.iter().filter(|w| !**w).count() as u64;
            // The cursor covers the unbroken run of written records, nothing after a failure.
            if let Some((at, id)) = written.checked_sub(1).map(|i| &positions[i]) {
                self.save_cursor(*at, id).await?;
            }
            progress(&report);
            if written < positions.len() {
                return Ok(report);
            }
            match page.next_cursor {
                Some(c) => page_cursor = Some(c),
                None => return Ok(report),
            }
        }
    }
}
