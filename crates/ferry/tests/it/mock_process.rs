//! `ferry mock` starts a usable platform and prints what a tester needs.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn ferry_mock_prints_usable_stores() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "mock",
            "--addr",
            "127.0.0.1:0",
            "--stores",
            "3",
            "--products",
            "1000",
        ])
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stores = Vec::new();
    while stores.len() < 3 {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("ferry mock printed its stores");
        if line.starts_with("store ") {
            // store NAME: rest URL  access token TOKEN  webhook secret SECRET
            let words: Vec<&str> = line.split_whitespace().collect();
            stores.push((
                words[3].to_owned(),
                words[6].to_owned(),
                words[9].to_owned(),
            ));
        }
    }
    let http = reqwest::Client::new();
    for (rest, token, secret) in &stores {
        assert!(!secret.is_empty());
        let page: serde_json::Value = http
            .get(format!("{rest}/items"))
            .query(&[("limit", "250")])
            .header("X-Shopify-Access-Token", token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 250);
        assert_eq!(page["has_more"], true, "1,000 products per store");
    }
}
