//! Test helpers shared by the crates' integration tests.
//!
//! A fresh database per test: a temporary SQLite file, or a new PostgreSQL database that is
//! dropped afterwards. Outside CI, when no PostgreSQL server answers at build time, the
//! PostgreSQL tests are compiled as ignored (the runner reports them skipped); under `CI=true`
//! a missing server fails them.

use std::sync::Arc;

use ferry_queue::{FakeClock, Queue, QueueOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub url: String,
    pub clock: FakeClock,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

pub fn admin_url() -> String {
    std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("ferry.db").display());
                Some(TestDb {
                    url,
                    clock: FakeClock::default(),
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let admin = admin_url();
                let name = format!("ferry_test_{}", uuid::Uuid::now_v7().simple());
                let created = async {
                    let mut conn =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&mut conn)
                        .await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                if let Err(e) = created {
                    if std::env::var("CI").is_ok_and(|v| v == "true") {
                        panic!("CI=true but PostgreSQL at {admin} is not usable: {e}");
                    }
                    eprintln!("SKIPPED: PostgreSQL test, no server at {admin}: {e}");
                    return None;
                }
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                let url = format!("{base}/{name}");
                Some(TestDb {
                    url,
                    clock: FakeClock::default(),
                    _dir: None,
                    pg: Some((admin, name)),
                })
            }
        }
    }

    /// A queue on the system clock, for tests that run real worker processes beside it.
    pub async fn real_queue(&self) -> Queue {
        Queue::connect(&self.url).await.expect("open queue")
    }

    /// A queue on this database driven by the test's fake clock.
    pub async fn queue(&self) -> Queue {
        let opts = QueueOptions {
            clock: Arc::new(self.clock.clone()),
            ..QueueOptions::default()
        };
        Queue::connect_with(&self.url, opts)
            .await
            .expect("open queue")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs outside async; a small runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await
                    {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                    }
                });
            }
        })
        .join();
    }
}

/// One PostgreSQL test: `$name` runs `super::$name(db)` on a fresh database. Compiled as
/// ignored (reported as skipped, never as passed) when the build found no server outside CI.
#[cfg(not(ferry_pg_absent))]
#[doc(hidden)]
#[macro_export]
macro_rules! __postgres_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(db) = $crate::TestDb::new($crate::Backend::Postgres).await {
                super::$name(db).await;
            }
        }
    };
}

#[cfg(ferry_pg_absent)]
#[doc(hidden)]
#[macro_export]
macro_rules! __postgres_test {
    ($name:ident) => {
        #[ignore = "no PostgreSQL answered when the tests were built (start one, or set FERRY_TEST_PG_URL, and build again)"]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(db) = $crate::TestDb::new($crate::Backend::Postgres).await {
                super::$name(db).await;
            }
        }
    };
}

/// Runs each listed `async fn case(db: TestDb)` on both engines, as `sqlite::case` and
/// `postgres::case`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::TestDb::new($crate::Backend::Sqlite).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
        mod postgres {
            $($crate::__postgres_test!($name);)*
        }
    };
}

/// Runs each listed `async fn case(db: TestDb)` on PostgreSQL only (several processes on one
/// database, which SQLite is not for), as `postgres_only::case`.
#[macro_export]
macro_rules! postgres_only {
    ($($name:ident),* $(,)?) => {
        mod postgres_only {
            $($crate::__postgres_test!($name);)*
        }
    };
}

/// Waits (up to 30 s of real time) until `f` holds, checking every 10 ms: for outcomes that
/// happen in other tasks or processes.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// `request.answer().await`: the response, or the test fails (a request a test makes to a
/// server it started is expected to be answered, whatever the status).
pub trait Answered {
    fn answer(self) -> impl std::future::Future<Output = reqwest::Response> + Send;
}

impl Answered for reqwest::RequestBuilder {
    async fn answer(self) -> reqwest::Response {
        match self.send().await {
            Ok(r) => r,
            Err(e) => panic!("the request was not answered: {e}"),
        }
    }
}
