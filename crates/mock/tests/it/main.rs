//! The simulated platform, tested over real HTTP on loopback with a fake clock.

#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is what it should do

mod apps;
mod bulk;
mod control;
mod faults;
mod graphql;
mod payments;
mod rest;
mod webhooks;

use ferry_testkit::Answered;
use std::sync::Arc;

use ferry_core::FakeClock;
use ferry_mock::{MockConfig, MockServer, StoreInfo};

pub struct Harness {
    pub server: MockServer,
    pub clock: FakeClock,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        let clock = FakeClock::default();
        let cfg = MockConfig {
            clock: Arc::new(clock.clone()),
            ..MockConfig::default()
        };
        Harness {
            server: MockServer::start(cfg).await.unwrap(),
            clock,
            http: reqwest::Client::new(),
        }
    }

    /// How many REST items a store holds.
    pub fn item_count(&self, store: &str) -> usize {
        self.server.platform().items(store).unwrap().len()
    }

    pub fn clock_ms(&self) -> i64 {
        ferry_core::Clock::now_ms(&self.clock)
    }

    pub fn store(&self, name: &str, items: usize) -> StoreInfo {
        let info = self.server.platform().create_store(Some(name)).unwrap();
        self.server.platform().seed_items(name, items).unwrap();
        info
    }

    /// A store with `products` × `variants` in its catalog.
    pub fn shop(&self, name: &str, products: usize, variants: usize) -> StoreInfo {
        let info = self.server.platform().create_store(Some(name)).unwrap();
        self.server
            .platform()
            .seed_catalog(name, products, variants)
            .unwrap();
        info
    }

    /// A GraphQL request to the store's Admin API; the whole JSON response.
    pub async fn gql(
        &self,
        store: &StoreInfo,
        query: &str,
        variables: serde_json::Value,
    ) -> serde_json::Value {
        let resp = self
            .http
            .post(self.server.graphql_url(&store.name))
            .header("X-Shopify-Access-Token", &store.access_token)
            .json(&serde_json::json!({ "query": query, "variables": variables }))
            .answer()
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// A request to `path` under the store's REST API, with its token.
    pub fn rest(
        &self,
        method: reqwest::Method,
        store: &StoreInfo,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}{path}", self.server.rest_url(&store.name)),
            )
            .header("X-Shopify-Access-Token", &store.access_token)
    }
}
