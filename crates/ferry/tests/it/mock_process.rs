//! `ferry mock` starts a usable platform and prints what a tester needs.

use crate::process::{NO_ENV, ferry, json_of, spawn_reading};

#[tokio::test]
async fn ferry_mock_prints_usable_stores() {
    let args = [
        "mock",
        "--addr",
        "127.0.0.1:0",
        "--stores",
        "3",
        "--products",
        "1000",
    ];
    let (_child, mut lines) = spawn_reading(&mut ferry(&args, NO_ENV));
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
        let page = json_of(
            http.get(format!("{rest}/items"))
                .query(&[("limit", "250")])
                .header("X-Shopify-Access-Token", token),
        )
        .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 250);
        assert_eq!(page["has_more"], true, "1,000 items per store");
        let query = "{ products(first: 100) { nodes { id variants(first: 3) { nodes { sku } } } pageInfo { hasNextPage } } }";
        let products = json_of(
            http.post(graphql)
                .header("X-Shopify-Access-Token", token)
                .json(&serde_json::json!({ "query": query })),
        )
        .await;
        let nodes = products["data"]["products"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 100, "{products}");
        assert_eq!(
            products["data"]["products"]["pageInfo"]["hasNextPage"],
            true
        );
        assert_eq!(nodes[0]["variants"]["nodes"].as_array().unwrap().len(), 3);
    }
}
