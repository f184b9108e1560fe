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
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a crate's migrations: `postgres` and `sqlite` are its two directories
    /// (`sqlx::migrate!("./migrations/postgres")` …). Every crate's migrations share one
    /// table, so each ignores the versions it does not know.
    pub async fn migrate(&self, postgres: Migrator, sqlite: Migrator) -> Result<(), MigrateError> {
        match self {
            Db::Postgres(pool) => {
                let mut m = postgres;
                m.set_ignore_missing(true);
                m.run(pool).await
            }
            Db::Sqlite(pool) => {
                let mut m = sqlite;
                m.set_ignore_missing(true);
                m.run(pool).await
            }
        }
    }
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
        match $db {
            $crate::Db::Postgres(p) => $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_all(p).await,
            $crate::Db::Sqlite(p) => $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_all(p).await,
        }
    };
}

/// One row or none, as `$t`.
#[macro_export]
macro_rules! row {
    ($db:expr, $t:ty, $sql:expr $(, $b:expr)* $(,)?) => {
        match $db {
            $crate::Db::Postgres(p) => $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_optional(p).await,
            $crate::Db::Sqlite(p) => $crate::sqlx::query_as::<_, $t>($sql)$(.bind($b))*.fetch_optional(p).await,
        }
    };
}

/// A statement inside a transaction that offers `postgres()` and `sqlite()` connections (the
/// queue's `Tx`); the rows it affected.
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
