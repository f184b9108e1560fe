//! One database handle for every crate above the queue: the queue's pool on PostgreSQL or its
//! single writer on SQLite ([`Db`]), the few spellings that differ between them ([`Dialect`]),
//! one macro per kind of statement ([`exec!`], [`rows!`], [`row!`], and [`tx_exec!`] inside a
//! transaction) and the migration runner ([`Db::migrate`]).
//!
//! A sqlx query is typed by its engine, so a statement must be built once per engine; the
//! macros write the two arms from one SQL string and one list of binds, so callers never
//! match on the engine themselves.

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{PgPool, SqlitePool};

/// Re-exported for the macros: callers need not name sqlx's version.
pub use sqlx;

#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    /// The single writer: SQLite has one writer, and every crate writes.
    Sqlite(SqlitePool),
}

/// A transaction on a [`Db`]: [`tx_exec!`] and [`tx_row!`] run statements in it; nothing is
/// seen by others until [`DbTx::commit`], and dropping it rolls back.
pub enum DbTx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl DbTx {
    pub fn postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self {
            DbTx::Postgres(t) => Some(&mut **t),
            DbTx::Sqlite(_) => None,
        }
    }

    pub fn sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match self {
            DbTx::Sqlite(t) => Some(&mut **t),
            DbTx::Postgres(_) => None,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            DbTx::Postgres(t) => t.commit().await,
            DbTx::Sqlite(t) => t.commit().await,
        }
    }
}

/// The SQL dialect, for the few spellings that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The larger of its arguments (`GREATEST` on PostgreSQL, scalar `max` on SQLite).
    pub fn greatest(self) -> &'static str {
        match self {
            Dialect::Postgres => "GREATEST",
            Dialect::Sqlite => "max",
        }
    }

    /// The smaller of its arguments.
    pub fn least(self) -> &'static str {
        match self {
            Dialect::Postgres => "LEAST",
            Dialect::Sqlite => "min",
        }
    }

    /// A subquery of the strings in the JSON array bound at `param` (`$2`): `col IN (…)`
    /// over a list of any length with one bind, so a page is read by one statement.
    pub fn json_texts(self, param: &str) -> String {
        match self {
            Dialect::Postgres => format!("SELECT jsonb_array_elements_text({param}::jsonb)"),
            Dialect::Sqlite => format!("SELECT value FROM json_each({param})"),
        }
    }
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Opens a transaction (on SQLite, on the single writer).
    pub async fn begin(&self) -> Result<DbTx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(p) => DbTx::Postgres(p.begin().await?),
            Db::Sqlite(p) => DbTx::Sqlite(p.begin().await?),
        })
    }

    /// Runs migrations written separately for each engine: `postgres` and `sqlite` are a
    /// crate's two directories (the queue's, whose functions and types only PostgreSQL has).
    pub async fn migrate(&self, postgres: Migrator, sqlite: Migrator) -> Result<(), MigrateError> {
        match self {
            Db::Postgres(_) => self.run(postgres).await,
            Db::Sqlite(_) => self.run(sqlite).await,
        }
    }

    /// Runs one directory of migrations written for both engines (types both spell alike:
    /// `BIGINT`, `TEXT`, `DOUBLE PRECISION`). `earlier_sqlite` names texts a migration had on
    /// SQLite before it was shared, one `VERSION SHA384-HEX` a line: a database that applied
    /// such a text has the same schema, so its record is brought to today's checksum instead
    /// of failing the run.
    pub async fn migrate_shared(
        &self,
        migrator: Migrator,
        earlier_sqlite: &str,
    ) -> Result<(), MigrateError> {
        if self.dialect() == Dialect::Sqlite {
            for line in earlier_sqlite.lines() {
                let mut words = line.split_whitespace();
                let (Some(version), Some(sha384)) = (words.next(), words.next()) else {
                    continue;
                };
                let version: i64 = version.parse().unwrap_or(-1);
                let Some(now) = migrator.iter().find(|m| m.version == version) else {
                    continue;
                };
                adopt(crate::exec!(
                    self,
                    "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2 AND checksum = $3",
                    now.checksum.as_ref(),
                    version,
                    decode_hex(sha384),
                ))?;
            }
        }
        self.run(migrator).await
    }

    /// Every crate's migrations share one table, so each run ignores the versions it does not
    /// know.
    async fn run(&self, mut m: Migrator) -> Result<(), MigrateError> {
        m.set_ignore_missing(true);
        match self {
            Db::Postgres(pool) => m.run(pool).await,
            Db::Sqlite(pool) => m.run(pool).await,
        }
    }
}

/// A fresh database has no migrations table yet: nothing to adopt.
fn adopt<T>(r: Result<T, sqlx::Error>) -> Result<(), MigrateError> {
    match r {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if is_missing_table(e.message()) => Ok(()),
        Err(e) => Err(MigrateError::Execute(e)),
    }
}

fn is_missing_table(message: &str) -> bool {
    message.contains("no such table") || message.contains("does not exist")
}

fn decode_hex(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .filter_map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
        })
        .collect()
}

/// Runs a statement on a [`Db`]; the rows it affected.
#[macro_export]
macro_rules! exec {
    ($db:expr, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::Db::Postgres(p) => $crate::sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
            $crate::Db::Sqlite(p) => $crate::sqlx::query($sql)$(.bind($b))*.execute(p).await.map(|r| r.rows_affected()),
        }
    };
}

/// Every row, as `$t` (a `FromRow` type or a tuple).
#[macro_export]
macro_rules! rows {
    ($db:expr, $t:ty, $sql:expr $(, $b:expr)* $(,)?) => {
        $crate::fetch!(fetch_all, $db, $t, $sql $(, $b)*)
    };
}

/// One row or none, as `$t`.
#[macro_export]
macro_rules! row {
    ($db:expr, $t:ty, $sql:expr $(, $b:expr)* $(,)?) => {
        $crate::fetch!(fetch_optional, $db, $t, $sql $(, $b)*)
    };
}

/// [`rows!`] and [`row!`]: a typed query on either engine, fetched by `$how`.
#[doc(hidden)]
#[macro_export]
macro_rules! fetch {
    ($how:ident, $db:expr, $t:ty, $sql:expr $(, $b:expr)*) => {
        match $db {
            $crate::Db::Postgres(p) => $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.$how(p).await,
            $crate::Db::Sqlite(p) => $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.$how(p).await,
        }
    };
}

/// A statement inside a transaction that offers `postgres()` and `sqlite()` connections (a
/// [`DbTx`], or the queue's `Tx`); the rows it affected.
#[macro_export]
macro_rules! tx_exec {
    ($tx:expr, $sql:expr $(, $b:expr)* $(,)?) => {
        if let Some(c) = $tx.postgres() {
            $crate::sqlx::query($sql)$(.bind($b))*.execute(&mut *c).await.map(|r| r.rows_affected())
        } else if let Some(c) = $tx.sqlite() {
            $crate::sqlx::query($sql)$(.bind($b))*.execute(&mut *c).await.map(|r| r.rows_affected())
        } else {
            Ok(0)
        }
    };
}

/// One row or none inside a transaction, as `$t`.
#[macro_export]
macro_rules! tx_row {
    ($tx:expr, $t:ty, $sql:expr $(, $b:expr)* $(,)?) => {
        if let Some(c) = $tx.postgres() {
            $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_optional(&mut *c).await
        } else if let Some(c) = $tx.sqlite() {
            $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_optional(&mut *c).await
        } else {
            Ok(None)
        }
    };
}

/// An enum stored as text: its variants, each with the word the database holds. Generates
/// `as_str`, `parse`, `ALL`, `Display`, and sqlx's `Type`, `Encode` and `Decode` on both engines
/// (a word the enum does not know is a decode error, never a silent default).
///
/// ```
/// ferry_db::text_enum! {
///     /// Where a run stands.
///     pub enum RunState { Running = "running", Done = "done", Failed = "failed" }
/// }
/// assert_eq!(RunState::parse("done"), Some(RunState::Done));
/// assert_eq!(RunState::Failed.as_str(), "failed");
/// ```
#[macro_export]
macro_rules! text_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word the database holds.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: $crate::sqlx::Database> $crate::sqlx::Type<DB> for $name
        where
            str: $crate::sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as $crate::sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as $crate::sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: $crate::sqlx::Database> $crate::sqlx::Encode<'q, DB> for $name
        where
            &'q str: $crate::sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as $crate::sqlx::Database>::ArgumentBuffer,
            ) -> Result<$crate::sqlx::encode::IsNull, $crate::sqlx::error::BoxDynError> {
                <&'q str as $crate::sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: $crate::sqlx::Database> $crate::sqlx::Decode<'r, DB> for $name
        where
            &'r str: $crate::sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as $crate::sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, $crate::sqlx::error::BoxDynError> {
                let s = <&'r str as $crate::sqlx::Decode<'r, DB>>::decode(value)?;
                $name::parse(s).ok_or_else(|| {
                    format!("{s:?} is not a {}", stringify!($name)).into()
                })
            }
        }
    };
}
