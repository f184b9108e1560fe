//! ferry-sync's tables (the network, links, the ledger, the audit log, orders, webhook stores
//! and deliveries) in the queue's database.

use ferry_db::Db;
use ferry_queue::Queue;

use crate::error::SyncError;

/// Until the migrations became one directory for both engines, SQLite's copies spelled
/// `BIGINT` as `INTEGER` (the same type to SQLite); databases that applied them are adopted.
const EARLIER_SQLITE: &str = "\
2001 d3b3f4bc42b0a9f3e77da0702488f5eca1433c9d7cdc856e1491233741902441d4bf1a97b3edf3be8bca4e5345e8cc78
3001 05eb0e8a8c3e77c29f1cbb7e1a1cc9aeeac1427b49f76718cd5df207dda9ff0047ce2d29515949e1f2a739664525fb55
3004 b9ad857db04c9a3b88da38220153ef0bad833f9de8a53aab0336b25ddccdb5318122cd0b579ef879b210a9e18b516e5e
";

/// The queue's database with ferry-sync's tables migrated in.
pub async fn open(queue: &Queue) -> Result<Db, SyncError> {
    queue
        .migrate_shared(sqlx::migrate!("./migrations"), EARLIER_SQLITE)
        .await?;
    Ok(queue.db())
}
