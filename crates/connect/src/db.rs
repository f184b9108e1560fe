//! ferry-connect's tables (rate budgets, breakers, credentials, sync cursors) in the queue's
//! database.

use ferry_db::Db;
use ferry_queue::Queue;

use crate::error::ConnectError;

/// The queue's database with ferry-connect's tables migrated in.
pub async fn open(queue: &Queue) -> Result<Db, ConnectError> {
    let db = queue.db();
    db.migrate(
        sqlx::migrate!("./migrations/postgres"),
        sqlx::migrate!("./migrations/sqlite"),
    )
    .await?;
    Ok(db)
}
