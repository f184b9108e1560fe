//! The queue's database, with ferry-sync's tables migrated in, and one macro per kind of
//! statement: a query is typed by its engine, so each arm builds its own from one list of
//! binds.

use ferry_queue::Queue;
use sqlx::{PgPool, SqlitePool};

use crate::error::SyncError;

#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs a statement; the rows it affected.
macro_rules! exec {
    ($db:expr, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::db::Db::Postgres(p) => sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
            $crate::db::Db::Sqlite(p) => sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
        }
    };
}

/// Every row, as `$t` (a `FromRow` type or a tuple).
macro_rules! rows {
    ($db:expr, $t:ty, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::db::Db::Postgres(p) => sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_all(p).await,
            $crate::db::Db::Sqlite(p) => sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_all(p).await,
        }
    };
}

/// One row or none.
macro_rules! row {
    ($db:expr, $t:ty, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::db::Db::Postgres(p) => sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_optional(p).await,
            $crate::db::Db::Sqlite(p) => sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_optional(p).await,
        }
    };
}

/// A statement inside a queue transaction (`ferry_queue::Tx`); the rows it affected.
macro_rules! tx_exec {
    ($tx:expr, $sql:expr $(, $b:expr)* $(,)?) => {
        if let Some(c) = $tx.postgres() {
            sqlx::query($sql)$(.bind($b))*.execute(&mut *c).await.map(|r| r.rows_affected())
        } else if let Some(c) = $tx.sqlite() {
            sqlx::query($sql)$(.bind($b))*.execute(&mut *c).await.map(|r| r.rows_affected())
        } else {
            Ok(0)
        }
    };
}

pub(crate) use {exec, row, rows, tx_exec};

impl Db {
    pub async fn of(queue: &Queue) -> Result<Db, SyncError> {
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
            (None, None) => Err(SyncError::Invalid("the queue has no database".into())),
        }
    }
}
