//! ferry-connect's tables (rate budgets, breakers, credentials, sync cursors) in the queue's
//! database.

use ferry_db::Db;
use ferry_queue::Queue;

use crate::error::ConnectError;

/// Until the migrations became one directory for both engines, SQLite's copies spelled
/// `BIGINT` as `INTEGER` and `DOUBLE PRECISION` as `REAL` (the same types to SQLite);
/// databases that applied them are adopted.
const EARLIER_SQLITE: &str = "\
1001 616be3de508666523bcbe8876f4819b9cd9bfc1f8b9efc702b32fdac4dc87266f41aa51fd8110a80fee4e7c34fd7a318
1002 7d86e78e30013283f2b6010d9d322b8496f7808ef72a846cff036e64a7204fa096e294d6421878a76bf5ab602f9a002d
";

/// The queue's database with ferry-connect's tables migrated in.
pub async fn open(queue: &Queue) -> Result<Db, ConnectError> {
    queue
        .migrate_shared(sqlx::migrate!("./migrations"), EARLIER_SQLITE)
        .await?;
    Ok(queue.db())
}
