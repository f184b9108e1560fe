//! The migration runner on a real SQLite file: a shared migration adopts a database that
//! applied an earlier text of it only when that text is one it names.

use ferry_db::Db;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

fn migrator(sql: &'static str) -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        7001,
        "table".into(),
        MigrationType::Simple,
        sqlx::SqlStr::from_static(sql),
        false,
    )])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn sqlite(dir: &tempfile::TempDir) -> Db {
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("db.sqlite"))
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .expect("open sqlite");
    Db::Sqlite(pool)
}

const BEFORE: &str = "CREATE TABLE t (n INTEGER NOT NULL)";
const NOW: &str = "CREATE TABLE t (n BIGINT NOT NULL)";

#[tokio::test]
async fn a_named_earlier_text_is_adopted_and_an_unnamed_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite(&dir).await;
    db.migrate_shared(migrator(BEFORE), "")
        .await
        .expect("first text");

    let unnamed = db.migrate_shared(migrator(NOW), "").await;
    assert!(
        matches!(unnamed, Err(MigrateError::VersionMismatch(7001))),
        "{unnamed:?}"
    );

    let other = format!("7001 {}", hex(&[0u8; 48]));
    let wrong = db.migrate_shared(migrator(NOW), &other).await;
    assert!(
        matches!(wrong, Err(MigrateError::VersionMismatch(7001))),
        "{wrong:?}"
    );

    let named = format!(
        "7001 {}",
        hex(&migrator(BEFORE).iter().next().expect("one").checksum)
    );
    db.migrate_shared(migrator(NOW), &named)
        .await
        .expect("adopted");
    db.migrate_shared(migrator(NOW), "")
        .await
        .expect("recorded as today's text");
}

#[tokio::test]
async fn a_fresh_database_runs_shared_migrations_with_earlier_texts_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sqlite(&dir).await;
    let named = format!("7001 {}", hex(&[1u8; 48]));
    db.migrate_shared(migrator(NOW), &named)
        .await
        .expect("fresh");
    let n = ferry_db::exec!(&db, "INSERT INTO t (n) VALUES (1)").expect("table made");
    assert_eq!(n, 1);
}
