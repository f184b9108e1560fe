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
            // store NAME: graphql URL  rest URL  access token TOKEN  webhook secret SECRET
            let words: Vec<&str> = line.split_whitespace().collect();
            stores.push((
                words[3].to_owned(),
                words[5].to_owned(),
                words[8].to_owned(),
                words[11].to_owned(),
            ));
        }
    }
    let http = reqwest::Client::new();
    for (graphql, rest, token, secret) in &stores {
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
        assert_eq!(page["has_more"], true, "1,000 items per store");
        let products: serde_json::Value = http
            .post(graphql)
            .header("X-Shopify-Access-Token", token)
            .json(&serde_json::json!({
                "query": "{ products(first: 100) { nodes { id variants(first: 3) { nodes { sku } } } pageInfo { hasNextPage } } }"
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let nodes = products["data"]["products"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 100, "{products}");
        assert_eq!(
            products["data"]["products"]["pageInfo"]["hasNextPage"],
            true
        );
        assert_eq!(nodes[0]["variants"]["nodes"].as_array().unwrap().len(), 3);
    }
}
