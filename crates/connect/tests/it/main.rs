//! The client stack and connectors against `ferry mock` over real HTTP, with a real database.

#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is what it should do

mod apps;
mod bulk;
mod client;
mod metrics_out;
mod oauth;
mod shopify;
mod sync_api;

use std::sync::Arc;
use std::time::Duration;

use ferry_connect::rest::RestConnector;
use ferry_connect::{ClientOptions, Db, StaticToken};
use ferry_mock::{MockConfig, MockServer, StoreInfo};
use ferry_testkit::TestDb;

pub struct Env {
    pub mock: MockServer,
    pub db: Db,
    pub queue: ferry_queue::Queue,
    _test_db: TestDb,
}

/// Fast retries, so that tests of retry paths take milliseconds.
pub fn quick() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        max_wait: Duration::from_secs(3),
        outbound: ferry_connect::Outbound::insecure(),
        ..ClientOptions::default()
    }
}

impl Env {
    pub async fn start(test_db: TestDb) -> Env {
        let queue = test_db.real_queue().await;
        Env::on(test_db, queue).await
    }

    /// On the test's fake clock: breakers' cooldowns and tokens' lifetimes pass when the test
    /// moves the clock (`test_db.clock`), not by sleeping.
    pub async fn start_fake(test_db: TestDb) -> (Env, ferry_core::FakeClock) {
        let queue = test_db.queue().await;
        let clock = test_db.clock.clone();
        (Env::on(test_db, queue).await, clock)
    }

    /// With the simulated platform on `mock_clock`: what it stamps on records (`updated_at`)
    /// moves when the test moves that clock.
    pub async fn start_mock_clock(test_db: TestDb, mock_clock: ferry_core::FakeClock) -> Env {
        let queue = test_db.real_queue().await;
        let cfg = MockConfig {
            clock: Arc::new(mock_clock),
            ..MockConfig::default()
        };
        Env::with(test_db, queue, cfg).await
    }

    /// Ferry and the simulated platform on one fake clock: tokens expire for both when the
    /// test moves it.
    pub async fn start_shared_clock(test_db: TestDb) -> (Env, ferry_core::FakeClock) {
        let queue = test_db.queue().await;
        let clock = test_db.clock.clone();
        let cfg = MockConfig {
            clock: Arc::new(clock.clone()),
            ..MockConfig::default()
        };
        (Env::with(test_db, queue, cfg).await, clock)
    }

    async fn on(test_db: TestDb, queue: ferry_queue::Queue) -> Env {
        Env::with(test_db, queue, MockConfig::default()).await
    }

    async fn with(test_db: TestDb, queue: ferry_queue::Queue, cfg: MockConfig) -> Env {
        let mock = MockServer::start(cfg).await.unwrap();
        let db = ferry_connect::db::open(&queue).await.unwrap();
        Env {
            mock,
            db,
            queue,
            _test_db: test_db,
        }
    }

    /// A simulated store named `shop` with `products` × `variants` in its catalog.
    pub fn shop(&self, products: usize, variants: usize) -> StoreInfo {
        let p = self.mock.platform();
        let s = p.create_store(Some("shop")).unwrap();
        p.seed_catalog("shop", products, variants).unwrap();
        s
    }

    pub fn client(&self, opts: ClientOptions) -> ferry_connect::Client {
        ferry_connect::Client::new(self.db.clone(), self.queue.clock(), "rest", opts)
    }

    pub fn shopify(
        &self,
        store: &StoreInfo,
        opts: ClientOptions,
    ) -> ferry_connect::shopify::ShopifyConnector {
        let token = StaticToken(ferry_connect::Secret::new(store.access_token.clone()));
        let client =
            ferry_connect::Client::new(self.db.clone(), self.queue.clock(), "shopify", opts);
        ferry_connect::shopify::ShopifyConnector::new(
            client,
            &self.mock.graphql_url(&store.name),
            Arc::new(token),
        )
    }

    pub fn rest(&self, store: &StoreInfo, opts: ClientOptions) -> RestConnector {
        self.rest_at(&self.mock.rest_url(&store.name), &store.access_token, opts)
    }

    /// A REST connector to `base` presenting `token`.
    pub fn rest_at(&self, base: &str, token: &str, opts: ClientOptions) -> RestConnector {
        let token = StaticToken(ferry_connect::Secret::new(token.to_owned()));
        RestConnector::new(self.client(opts), base, Arc::new(token))
    }

    /// Serves `app` on a free loopback port: a REST connector to its `/api`.
    pub async fn serve_api(&self, app: axum::Router) -> RestConnector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        self.rest_at(&base, "t", quick())
    }
}
