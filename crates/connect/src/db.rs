//! The database ferry-connect keeps its state in: the queue's, on either engine.

use ferry_queue::Queue;
use sqlx::{PgPool, SqlitePool};

use crate::error::ConnectError;

/// Runs one statement on either engine (a query is typed by its engine, so it is built in each
/// arm); the rows it affected.
macro_rules! execute {
    ($db:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match $db {
            $crate::db::Db::Postgres(p) => sqlx::query($sql)$(.bind($bind))*.execute(p).await.map(|r| r.rows_affected()),
            $crate::db::Db::Sqlite(p) => sqlx::query($sql)$(.bind($bind))*.execute(p).await.map(|r| r.rows_affected()),
        }
    };
}
pub(crate) use execute;

#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    /// The queue's single writer connection: SQLite has one writer.
    Sqlite(SqlitePool),
}

impl Db {
    /// The queue's database, with ferry-connect's tables migrated in.
    pub async fn of(queue: &Queue) -> Result<Db, ConnectError> {
        let db = match (queue.pg_pool(), queue.sqlite_pool()) {
            (Some(pg), _) => Db::Postgres(pg.clone()),
            (None, Some(lite)) => Db::Sqlite(lite.clone()),
            (None, None) => return Err(ConnectError::Config("the queue has no database".into())),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), ConnectError> {
        // The queue's migrations live in the same table; each side ignores the other's.
        match self {
            Db::Postgres(pool) => {
                let mut m = sqlx::migrate!("./migrations/postgres");
                m.set_ignore_missing(true);
                m.run(pool).await?;
            }
            Db::Sqlite(pool) => {
                let mut m = sqlx::migrate!("./migrations/sqlite");
                m.set_ignore_missing(true);
                m.run(pool).await?;
            }
        }
        Ok(())
    }
}
