//! The configuration reaches the commands: a TOML file, overridden by FERRY_* variables,
//! overridden by flags; `ferry config` shows the result with its secrets masked.

use crate::process::{NO_ENV, ferry, spawn_serve, succeed};

const TOKEN: &str = "admin-token-from-the-file-123";

#[tokio::test]
async fn serve_runs_on_the_config_file_and_ferry_config_masks_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("ferry.db").display());
    let key = crate::serve_process::add_shop(&db, "shpss_config_secret").await;
    let file = dir.path().join("ferry.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = {db:?}\nencryption_key = {key:?}\nadmin_tokens = [{TOKEN:?}]\n\
             listen = \"127.0.0.1:1\"\nrequest_timeout_s = 12\nlog = \"warn\"\n"
        ),
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let shown = succeed(&mut ferry(
        &["config", "--config", config],
        &[("FERRY_REQUEST_TIMEOUT_S", "7")],
    ))
    .await;
    assert!(
        shown.contains("request_timeout_s = 7"),
        "the variable wins: {shown}"
    );
    assert!(shown.contains("listen = \"127.0.0.1:1\""), "{shown}");
    assert!(
        !shown.contains(TOKEN) && !shown.contains(&key),
        "masked: {shown}"
    );

    // The flag beats the file's unusable port; the file's database, key and token are used.
    let (_serve, url) = spawn_serve(&[], &[("FERRY_CONFIG", &file)]).await;
    let http = reqwest::Client::new();
    let stores = |token: &str| {
        http.get(format!("{url}/api/stores"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        stores(TOKEN).await.unwrap().status(),
        200,
        "the file's token"
    );
    assert_eq!(
        stores("another-token-0123456789").await.unwrap().status(),
        401
    );
    let listed = crate::process::get_json(&format!("{url}/api/stores"), TOKEN).await;
    assert!(
        listed.to_string().contains("shop"),
        "the file's database: {listed}"
    );

    // A bad value is refused before anything starts, naming the key.
    std::fs::write(&file, "concurrency = \"many\"\n").unwrap();
    let out = ferry(&["worker", "--config", config], NO_ENV)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("concurrency"), "{err}");
}
