//! ferry-sync's tables (the network, links, the ledger, the audit log, orders, webhook stores
//! and deliveries) in the queue's database.

use ferry_db::Db;
use ferry_queue::Queue;

use crate::error::SyncError;

/// The queue's database with ferry-sync's tables migrated in.
pub async fn open(queue: &Queue) -> Result<Db, SyncError> {
    let db = queue.db();
    db.migrate(
        sqlx::migrate!("./migrations/postgres"),
        sqlx::migrate!("./migrations/sqlite"),
    )
    .await?;
    Ok(db)
}
