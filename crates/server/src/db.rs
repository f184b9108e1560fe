//! The queue's database, with ferry-server's tables migrated in.

use ferry_queue::Queue;
use sqlx::{PgPool, SqlitePool};

/// Binds every argument to a query: a query is typed by its engine, so each engine's arm
/// builds its own, and this keeps the argument list written once per arm.
macro_rules! bound {
    ($sql:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query($sql)$(.bind($arg))*
    };
}
pub(crate) use bound;

#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Db {
    pub async fn of(queue: &Queue) -> Result<Db, sqlx::migrate::MigrateError> {
        // Each crate's migrations share the table; each side ignores the other's.
        match (queue.pg_pool(), queue.sqlite_pool()) {
            (Some(pool), _) => {
                let mut m = sqlx::migrate!("./migrations/postgres");
                m.set_ignore_missing(true);
                m.run(pool).await?;
                Ok(Db::Postgres(pool.clone()))
            }
            (None, Some(pool)) => {
                let mut m = sqlx::migrate!("./migrations/sqlite");
                m.set_ignore_missing(true);
                m.run(pool).await?;
                Ok(Db::Sqlite(pool.clone()))
            }
            (None, None) => Err(sqlx::migrate::MigrateError::Source(
                "the queue has no database".into(),
            )),
        }
    }
}
