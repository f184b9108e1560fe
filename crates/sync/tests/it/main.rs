//! The sync engine end to end: the simulated platform (a real HTTP server), the web tier and
//! a worker on a real database (both engines), stores connected through webhooks. Every test
//! asserts the final state of every store.

#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is what it should do

mod api;
mod apps;
mod bulk;
mod catalog;
mod inventory;
mod orders;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::Cipher;
use ferry_http::stack::{Stack, StackConfig};
use ferry_mock::{MockConfig, MockServer, Platform};
use ferry_queue::{Backoff, SystemClock, WorkerOptions};
use ferry_sync::{Role, Rules};
use ferry_testkit::TestDb;

pub const PARENT: &str = "parent";
pub const ADMIN_TOKEN: &str = "sync-test-admin-token-0123456789";

pub struct Net {
    pub mock: MockServer,
    pub stack: Stack,
    pub children: Vec<String>,
    /// The key the stores' tokens are sealed with (a restarted stack needs the same).
    key: String,
    pub orders: ferry_sync::orders::OrdersOptions,
    pub db: TestDb,
}

/// What the tests need of a store, by SKU: (title, price, available, status).
pub type BySku = BTreeMap<String, (String, String, i64, String)>;

impl Net {
    /// A parent with `products` products of 2 variants and `children` children seeded with
    /// the same SKUs (other titles, prices and stock), each with `rules`; connected.
    pub async fn start(db: TestDb, children: usize, products: usize, rules: Rules) -> Net {
        let net = Net::unconnected(db, children, products, rules).await;
        net.connect_all().await;
        net
    }

    pub async fn unconnected(db: TestDb, children: usize, products: usize, rules: Rules) -> Net {
        Net::unconnected_with(db, children, products, rules, |_| {}).await
    }

    /// As [`Net::start`], the stack's configuration changed by `tune` first.
    pub async fn start_with(
        db: TestDb,
        children: usize,
        products: usize,
        rules: Rules,
        tune: impl Fn(&mut StackConfig),
    ) -> Net {
        let net = Net::unconnected_with(db, children, products, rules, tune).await;
        net.connect_all().await;
        net
    }

    pub async fn unconnected_with(
        db: TestDb,
        children: usize,
        products: usize,
        rules: Rules,
        tune: impl Fn(&mut StackConfig),
    ) -> Net {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("TEST_LOG").unwrap_or_default(),
                ))
                .with_test_writer()
                .try_init();
        }
        let mock = MockServer::start(MockConfig::retrying_after(Duration::from_millis(100)))
            .await
            .unwrap();
        let key = Cipher::generate_key();
        let p = mock.platform();
        let parent = p.create_store(Some(PARENT)).unwrap();
        // Orders charge the parent's payments API.
        let orders = ferry_sync::orders::OrdersOptions {
            payments_url: format!("{}/stores/{PARENT}/payments/v1", mock.url()),
            payments_token: parent.access_token.clone(),
            recover_after: Duration::from_secs(1),
            // The rate-limit test sets its own; the others send more than a minute's worth.
            limits: ferry_sync::orders::Limits {
                create: 10_000,
                list: 10_000,
                detail: 10_000,
            },
            ..Default::default()
        };
        let stack = Net::stack_tuned(&db, &key, &orders, &mock.url(), tune).await;
        let mut names = Vec::new();
        for (i, role) in std::iter::once(Role::Parent)
            .chain(std::iter::repeat_n(Role::Child, children))
            .enumerate()
        {
            let name = if i == 0 {
                PARENT.to_owned()
            } else {
                format!("child-{i}")
            };
            let info = if i == 0 {
                parent.clone()
            } else {
                p.create_store(Some(&name)).unwrap()
            };
            p.seed_catalog(&name, products, 2).unwrap();
            stack
                .engine
                .add_store(
                    &name,
                    role,
                    &mock.graphql_url(&name),
                    &info.access_token,
                    &info.webhook_secret,
                    &rules,
                )
                .await
                .unwrap();
            if i > 0 {
                names.push(name);
            }
        }
        Net {
            mock,
            stack,
            children: names,
            key,
            orders,
            db,
        }
    }

    /// A stack (web tier and worker) on the test's database.
    pub async fn stack_on(
        db: &TestDb,
        key: &str,
        orders: &ferry_sync::orders::OrdersOptions,
        mock_url: &str,
    ) -> Stack {
        Net::stack_tuned(db, key, orders, mock_url, |_| {}).await
    }

    async fn stack_tuned(
        db: &TestDb,
        key: &str,
        orders: &ferry_sync::orders::OrdersOptions,
        mock_url: &str,
        tune: impl Fn(&mut StackConfig),
    ) -> Stack {
        let queue = db.real_queue().await;
        let mut cfg = StackConfig::new(Cipher::from_base64(key).unwrap());
        cfg.app.client.outbound = ferry_connect::Outbound::insecure();
        cfg.app.engine.public_url = String::new();
        // Shop domains lead to the simulated platform.
        cfg.app.engine.shop_url = format!("{mock_url}/stores/{{shop}}");
        cfg.app.admin_tokens = vec![ADMIN_TOKEN.to_owned()];
        cfg.app.engine.settle = Duration::from_millis(100);
        cfg.worker = WorkerOptions {
            concurrency: 16,
            poll_interval: Duration::from_millis(50),
            backoff: Backoff {
                base: Duration::from_millis(50),
                cap: Duration::from_millis(500),
            },
            ..WorkerOptions::default()
        };
        cfg.app.client.backoff_base = Duration::from_millis(10);
        cfg.app.client.backoff_cap = Duration::from_millis(50);
        cfg.app.orders = orders.clone();
        // Bulk exports of the simulated platform end in milliseconds: look often.
        cfg.app.engine.bulk.poll = Duration::from_millis(20);
        tune(&mut cfg);
        Stack::start(queue, cfg).await.unwrap()
    }

    /// Another stack on the same database (a second server, or this one restarted).
    pub async fn another_stack(&self, orders: &ferry_sync::orders::OrdersOptions) -> Stack {
        Net::stack_on(&self.db, &self.key, orders, &self.mock.url()).await
    }

    pub fn platform(&self) -> &Arc<Platform> {
        self.mock.platform()
    }

    pub async fn connect_all(&self) {
        self.stack.engine.connect_store(PARENT).await.unwrap();
        for c in &self.children {
            self.stack.engine.connect_store(c).await.unwrap();
        }
        self.quiet().await;
    }

    /// Waits until no webhook is on its way and no sync work is waiting or running, for 30
    /// checks in a row (a job's webhook fires a moment after its write).
    pub async fn quiet(&self) {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calm = AtomicU32::new(0);
        let stores: Vec<String> = std::iter::once(PARENT.to_owned())
            .chain(self.children.iter().cloned())
            .collect();
        ferry_testkit::eventually("the network is quiet", || {
            let engine = self.stack.engine.clone();
            let calm = &calm;
            let on_the_way: u64 = stores
                .iter()
                .map(|s| self.platform().webhook_counters(s).in_flight)
                .sum();
            async move {
                if on_the_way > 0 || engine.busy().await.unwrap() {
                    calm.store(0, Ordering::Relaxed);
                    false
                } else {
                    calm.fetch_add(1, Ordering::Relaxed) + 1 >= 30
                }
            }
        })
        .await;
    }

    /// A store's catalog by SKU.
    pub fn by_sku(&self, store: &str) -> BySku {
        let snap = self.platform().snapshot(store).unwrap();
        let mut out = BTreeMap::new();
        for p in snap["products"].as_array().unwrap() {
            for v in p["variants"].as_array().unwrap() {
                let Some(sku) = v["sku"].as_str() else {
                    continue;
                };
                let available: i64 = v["inventory"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["available"].as_i64().unwrap())
                    .next()
                    .unwrap_or(0);
                out.insert(
                    sku.to_owned(),
                    (
                        p["title"].as_str().unwrap().to_owned(),
                        v["price"].as_str().unwrap().to_owned(),
                        available,
                        p["status"].as_str().unwrap().to_owned(),
                    ),
                );
            }
        }
        out
    }

    /// Every child carries the parent's active products with the parent's titles, prices
    /// made by `price` and the same stock; products archived in the parent's absence
    /// (deleted) are archived in the children.
    pub fn assert_in_sync(&self, price: impl Fn(&str) -> String) {
        let parent = self.by_sku(PARENT);
        for c in &self.children {
            let child = self.by_sku(c);
            for (sku, (title, p_price, available, status)) in &parent {
                let got = child.get(sku).unwrap_or_else(|| panic!("{c} lacks {sku}"));
                assert_eq!(&got.0, title, "{c} {sku} title");
                assert_eq!(got.1, price(p_price), "{c} {sku} price");
                assert_eq!(&got.2, available, "{c} {sku} stock");
                assert_eq!(&got.3, status, "{c} {sku} status");
            }
            for (sku, got) in &child {
                if !parent.contains_key(sku) {
                    assert_eq!(got.3, "ARCHIVED", "{c} {sku} is not in the parent");
                }
            }
        }
    }

    /// A variant's id (numeric) and inventory item id in a store, by SKU.
    pub fn variant(&self, store: &str, sku: &str) -> (u64, u64) {
        let snap = self.platform().snapshot(store).unwrap();
        for p in snap["products"].as_array().unwrap() {
            for v in p["variants"].as_array().unwrap() {
                if v["sku"].as_str() == Some(sku) {
                    return (
                        v["id"].as_u64().unwrap(),
                        v["inventory_item_id"].as_u64().unwrap(),
                    );
                }
            }
        }
        panic!("{store} has no {sku}")
    }

    /// The numeric id of the product holding a SKU in a store.
    pub fn product_of(&self, store: &str, sku: &str) -> u64 {
        let snap = self.platform().snapshot(store).unwrap();
        snap["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p["variants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["sku"].as_str() == Some(sku))
            })
            .and_then(|p| p["id"].as_u64())
            .unwrap_or_else(|| panic!("{store} has no {sku}"))
    }

    pub async fn dead_jobs(&self) -> Vec<ferry_queue::JobRecord> {
        let filter = ferry_queue::JobFilter::in_state(ferry_queue::JobState::Dead, 500);
        self.stack.queue.list(&filter).await.unwrap()
    }

    pub async fn audit(&self, store: &str) -> Vec<ferry_sync::network::AuditEntry> {
        self.stack
            .engine
            .network()
            .audit_log(Some(store), "", 10_000)
            .await
            .unwrap()
    }
}

impl Net {
    /// A merchant's app on a store: the Shopify connector with the store's token.
    pub async fn shop(&self, store: &str) -> ferry_connect::shopify::ShopifyConnector {
        let db = ferry_connect::db::open(&self.stack.queue).await.unwrap();
        let client = ferry_connect::Client::new(
            db,
            Arc::new(SystemClock),
            "merchant",
            ferry_connect::ClientOptions {
                outbound: ferry_connect::Outbound::insecure(),
                ..ferry_connect::ClientOptions::default()
            },
        );
        let token = self.platform().store_info(store).unwrap().access_token;
        ferry_connect::shopify::ShopifyConnector::new(
            client,
            &self.mock.graphql_url(store),
            Arc::new(ferry_connect::StaticToken(ferry_connect::Secret::new(
                token,
            ))),
        )
    }

    /// Creates a product in the parent as a merchant would (its webhook fires).
    pub async fn create_in_parent(&self, title: &str, skus: &[&str]) -> String {
        let input = ferry_connect::shopify::model::ProductInput {
            title: title.into(),
            vendor: Some("Acme".into()),
            tags: vec!["new".into()],
            variants: skus
                .iter()
                .map(|s| ferry_connect::shopify::model::VariantInput {
                    id: None,
                    sku: Some((*s).into()),
                    price: "20.00".into(),
                    options: vec![("Size".into(), (*s).into())],
                })
                .collect(),
            ..Default::default()
        };
        self.shop(PARENT)
            .await
            .upsert(None, &input)
            .await
            .unwrap()
            .id
    }

    /// How many variants of a store carry a SKU (a duplicate copy shows as 2).
    pub fn count_sku(&self, store: &str, sku: &str) -> usize {
        let variants = self.platform().variants(store).unwrap();
        variants
            .iter()
            .filter(|v| v["sku"].as_str() == Some(sku))
            .count()
    }
}

pub fn same(p: &str) -> String {
    p.to_owned()
}
