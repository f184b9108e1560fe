//! `ferry sync-api --once` copies one store's items to another and keeps its cursor.

use ferry_mock::{MockConfig, MockServer};

async fn sync_once(
    db: &str,
    server: &MockServer,
    src: &str,
    dst: &str,
    tokens: (&str, &str),
) -> serde_json::Value {
    let (source, dest) = (server.rest_url(src), server.rest_url(dst));
    let args = [
        "sync-api",
        "--once",
        "--database-url",
        db,
        "--source",
        &source,
        "--dest",
        &dest,
    ];
    let env = [
        ("FERRY_SOURCE_TOKEN", tokens.0),
        ("FERRY_DEST_TOKEN", tokens.1),
    ];
    let out = crate::process::ferry(&args, &env).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    assert!(!stdout.contains(tokens.0) && !String::from_utf8_lossy(&out.stderr).contains(tokens.0));
    serde_json::from_str(last).unwrap()
}

#[tokio::test]
async fn sync_api_once_copies_then_finds_nothing_new() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let p = server.platform();
    let a = p.create_store(Some("a")).unwrap();
    let b = p.create_store(Some("b")).unwrap();
    p.seed_items("a", 25).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("ferry.db").display());
    let tokens = (a.access_token.as_str(), b.access_token.as_str());
    let first = sync_once(&db, &server, "a", "b", tokens).await;
    assert_eq!(first["synced"], 25);
    assert_eq!(p.items("b").unwrap().len(), 25);
    let second = sync_once(&db, &server, "a", "b", tokens).await;
    assert_eq!(second["synced"], 0, "the cursor was kept in the database");

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "sync-api",
            "--once",
            "--database-url",
            &db,
            "--source",
            "ftp://x",
            "--dest",
            "http://y",
        ])
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an http(s) URL"));
}
