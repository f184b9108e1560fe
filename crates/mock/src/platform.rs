//! The platform's state: stores, their catalogs, credentials and limits. Everything a test or
//! the control API does goes through here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use ferry_core::Clock;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::bucket::LeakyBucket;
use crate::error::MockError;

/// What a client needs to talk to a store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    pub name: String,
    pub access_token: String,
    pub webhook_secret: String,
}

/// A REST item: free JSON fields, plus `id` and `updated_at` kept by the platform.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub updated_at: i64,
    pub fields: Map<String, Value>,
}

/// A remembered response to a POST with an Idempotency-Key.
#[derive(Debug, Clone)]
pub(crate) struct IdempotentResponse {
    pub request_body: Vec<u8>,
    pub status: u16,
    pub body: Value,
}

#[derive(Debug)]
pub(crate) struct Store {
    pub info: StoreInfo,
    pub items: HashMap<String, Item>,
    /// (updated_at, id): the order REST pages follow.
    pub by_update: BTreeSet<(i64, String)>,
    pub rest_bucket: LeakyBucket,
    pub idempotency: HashMap<String, IdempotentResponse>,
    pub next_id: u64,
    pub faults: crate::faults::FaultState,
    pub catalog: crate::catalog::Catalog,
    /// GraphQL cost points (Shopify: 2,000, restoring 100 per second).
    pub gql_bucket: LeakyBucket,
    pub gql_idem: HashMap<String, crate::graphql::IdemEntry>,
    pub counters: Counters,
    /// Set when the store issues expiring OAuth tokens.
    pub oauth: Option<crate::oauth::OAuthState>,
    pub bulk: crate::bulk::Bulk,
}

/// What a store's APIs were asked and answered, for assertions and the control API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// API requests that passed authentication (REST, GraphQL, payments).
    pub requests: u64,
    pub rest_requests: u64,
    pub graphql_requests: u64,
    /// GraphQL cost points charged (actual cost, after refunds).
    pub points_spent: u64,
    /// GraphQL requests refused with `THROTTLED` (bucket short).
    pub throttled: u64,
    /// GraphQL queries refused as over the single-query cost limit.
    pub max_cost_exceeded: u64,
    /// Responses with status 429 (REST bucket overflow and injected 429s).
    pub http_429: u64,
    /// Requests a fault was injected into.
    pub faults_injected: u64,
}

impl Store {
    pub fn upsert(&mut self, id: &str, fields: Map<String, Value>, now: i64) {
        // Writes in the same millisecond share an `updated_at`, as on real platforms: pages
        // order ties by id, and clients must not lose records on them.
        let updated_at = now;
        if let Some(old) = self.items.get(id) {
            self.by_update.remove(&(old.updated_at, id.to_owned()));
        }
        self.by_update.insert((updated_at, id.to_owned()));
        self.items
            .insert(id.to_owned(), Item { updated_at, fields });
    }

    pub fn render(&self, id: &str) -> Option<Value> {
        self.items.get(id).map(|item| {
            let mut v = item.fields.clone();
            v.insert("id".into(), json!(id));
            v.insert("updated_at".into(), json!(item.updated_at));
            Value::Object(v)
        })
    }
}

/// Many stores in one process. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Platform {
    pub(crate) clock: Arc<dyn Clock>,
    seed: u64,
    stores: Mutex<HashMap<String, Store>>,
    rng: Mutex<rand::rngs::StdRng>,
    /// Numbers requests, to tell whose an in-flight idempotency key is.
    requests: std::sync::atomic::AtomicU64,
    payments: Mutex<crate::payments::Payments>,
    /// While set, payment requests wait here mid-processing (tests of in-flight keys).
    hold: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    webhooks: Mutex<crate::webhooks::Webhooks>,
    /// Apps of the Dev Dashboard and the tokens they were given.
    pub(crate) apps: Mutex<crate::apps::Apps>,
    deliveries: tokio::sync::mpsc::UnboundedSender<crate::webhooks::Delivery>,
    /// Taken by the server, which runs the deliverer.
    delivery_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::webhooks::Delivery>>>,
    /// `http://host:port` once the server listens (result files are served under it).
    base_url: std::sync::OnceLock<String>,
    /// Bulk settings a new store starts with.
    pub(crate) bulk_default: Mutex<crate::bulk::BulkSettings>,
}

impl Platform {
    pub fn new(clock: Arc<dyn Clock>, seed: u64) -> Platform {
        let (deliveries, delivery_rx) = tokio::sync::mpsc::unbounded_channel();
        Platform {
            clock,
            seed,
            stores: Mutex::default(),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            requests: std::sync::atomic::AtomicU64::new(0),
            payments: Mutex::default(),
            hold: Mutex::default(),
            webhooks: Mutex::default(),
            apps: Mutex::default(),
            deliveries,
            delivery_rx: Mutex::new(Some(delivery_rx)),
            base_url: std::sync::OnceLock::new(),
            bulk_default: Mutex::default(),
        }
    }

    pub(crate) fn base_url(&self) -> String {
        self.base_url.get().cloned().unwrap_or_default()
    }

    pub(crate) fn set_base_url(&self, url: String) {
        let _ = self.base_url.set(url);
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, Store>> {
        self.stores.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn webhooks(&self) -> MutexGuard<'_, crate::webhooks::Webhooks> {
        self.webhooks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn send_delivery(&self, d: crate::webhooks::Delivery) {
        let _ = self.deliveries.send(d);
    }

    pub(crate) fn take_delivery_receiver(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<crate::webhooks::Delivery>> {
        self.delivery_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// A store's credentials.
    pub fn store_info(&self, store: &str) -> Result<StoreInfo, MockError> {
        let stores = self.lock();
        let s = store_ref(&stores, store)?;
        Ok(s.info.clone())
    }

    pub(crate) fn secret(&self, prefix: &str) -> String {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let bytes: [u8; 16] = rng.random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{prefix}{hex}")
    }

    /// Creates a store (named `store-N` when no name is given) with fresh credentials.
    pub fn create_store(&self, name: Option<&str>) -> Result<StoreInfo, MockError> {
        let mut stores = self.lock();
        let name = match name {
            Some(n)
                if n.is_empty()
                    || n.len() > 64
                    || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                return Err(MockError::BadRequest(
                    "a store name is 1 to 64 of [A-Za-z0-9-]".into(),
                ));
            }
            Some(n) if stores.contains_key(n) => {
                return Err(MockError::BadRequest(format!("store {n:?} exists")));
            }
            Some(n) => n.to_owned(),
            None => format!("store-{}", stores.len() + 1),
        };
        let info = StoreInfo {
            name: name.clone(),
            access_token: self.secret("shpat_"),
            webhook_secret: self.secret(""),
        };
        let now = self.now_ms();
        // Ids of different stores never collide, so one used against the wrong store fails.
        let id_base = (stores.len() as u64 + 1) * 1_000_000_000_000;
        stores.insert(
            name.clone(),
            Store {
                info: info.clone(),
                items: HashMap::new(),
                by_update: BTreeSet::new(),
                rest_bucket: LeakyBucket::new(40.0, 2.0, now),
                idempotency: HashMap::new(),
                next_id: 1,
                faults: crate::faults::FaultState::new(self.seed, &info.name),
                catalog: crate::catalog::Catalog::new(&name, id_base, 1, now),
                gql_bucket: LeakyBucket::new(2000.0, 100.0, now),
                gql_idem: HashMap::new(),
                counters: Counters::default(),
                oauth: None,
                bulk: crate::bulk::Bulk {
                    settings: self
                        .bulk_default
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                    ..Default::default()
                },
            },
        );
        Ok(info)
    }

    /// Fills a store with `n` items, random but reproducible from the platform's seed.
    pub fn seed_items(&self, store: &str, n: usize) -> Result<(), MockError> {
        let now = self.now_ms();
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        for _ in 0..n {
            let id = format!("item-{}", s.next_id);
            s.next_id += 1;
            let cents: u32 = rng.random_range(100..100_000);
            let fields = json!({
                "sku": format!("SKU-{:06}", rng.random_range(0..1_000_000)),
                "title": format!("Product {id}"),
                "price": format!("{}.{:02}", cents / 100, cents % 100),
            });
            if let Value::Object(map) = fields {
                s.upsert(&id, map, now);
            }
        }
        Ok(())
    }

    /// Every item of a store, for assertions (by id).
    pub fn items(&self, store: &str) -> Result<Vec<Value>, MockError> {
        let stores = self.lock();
        let s = store_ref(&stores, store)?;
        let mut ids: Vec<&String> = s.items.keys().collect();
        ids.sort();
        Ok(ids.into_iter().filter_map(|id| s.render(id)).collect())
    }

    /// Edits an item as a merchant would in the admin (bumps `updated_at`).
    pub fn edit_item(
        &self,
        store: &str,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<(), MockError> {
        let now = self.now_ms();
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        let mut fields = s
            .items
            .get(id)
            .map(|i| i.fields.clone())
            .unwrap_or_default();
        fields.extend(patch);
        s.upsert(id, fields, now);
        Ok(())
    }

    /// Sets a store's REST request bucket (Shopify's default is 40, leaking 2 per second).
    pub fn set_rest_bucket(
        &self,
        store: &str,
        size: f64,
        leak_per_s: f64,
    ) -> Result<(), MockError> {
        let now = self.now_ms();
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        s.rest_bucket = LeakyBucket::new(size, leak_per_s, now);
        Ok(())
    }

    pub(crate) fn payments(&self) -> MutexGuard<'_, crate::payments::Payments> {
        self.payments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds payment requests and idempotent GraphQL mutations mid-processing (their
    /// idempotency keys in flight) until
    /// [`Platform::release_writes`].
    pub fn hold_writes(&self) {
        *self.hold.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets held requests finish.
    pub fn release_writes(&self) {
        if let Some(s) = self.hold.lock().unwrap_or_else(|p| p.into_inner()).take() {
            s.close();
        }
    }

    /// Payment requests being processed now.
    /// Every payment made, in id order (for assertions: one charge per order, refunds).
    pub fn payment_intents(&self) -> Vec<serde_json::Value> {
        let pay = self.payments();
        let mut all: Vec<(String, serde_json::Value)> = pay
            .intents
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.into_iter().map(|(_, v)| v).collect()
    }

    pub fn payments_in_flight(&self) -> usize {
        self.payments()
            .keys
            .values()
            .filter(|k| matches!(k, crate::payments::KeyState::InFlight))
            .count()
    }

    /// GraphQL idempotency keys being applied now, over all stores.
    pub fn graphql_in_flight(&self) -> usize {
        self.lock()
            .values()
            .flat_map(|s| s.gql_idem.values())
            .filter(|e| matches!(e, crate::graphql::IdemEntry::InFlight { .. }))
            .count()
    }

    pub(crate) async fn hold_point(&self) {
        let gate = self.hold.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(g) = gate {
            // Closed on release: acquiring then fails, which is the signal to go on.
            let _ = g.acquire().await;
        }
    }

    /// Sets a shop's currency (EUR unless set): one of the schema's `CurrencyCode` values.
    pub fn set_currency(&self, store: &str, currency: &str) -> Result<(), MockError> {
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        s.catalog.currency = currency.to_owned();
        Ok(())
    }

    /// Sets the faults injected into a store's API requests.
    pub fn set_faults(&self, store: &str, faults: crate::faults::Faults) -> Result<(), MockError> {
        faults.validate()?;
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        s.faults.faults = faults;
        Ok(())
    }

    /// Requests of a store that a fault was injected into.
    pub fn faults_injected(&self, store: &str) -> Result<u64, MockError> {
        let stores = self.lock();
        let s = store_ref(&stores, store)?;
        Ok(s.counters.faults_injected)
    }

    pub(crate) fn draw_webhook_fault(
        &self,
        store: &str,
    ) -> Result<crate::faults::WebhookFault, MockError> {
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        Ok(s.faults.draw_webhook())
    }

    pub(crate) fn draw_fault(
        &self,
        store: &str,
        write: bool,
    ) -> Result<(std::time::Duration, crate::faults::Fault), MockError> {
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        let drawn = s.faults.draw(write);
        if drawn.1 != crate::faults::Fault::None {
            s.counters.faults_injected += 1;
        }
        Ok(drawn)
    }

    /// The seed of a store's random catalog: the platform's seed mixed with the store's name.
    pub(crate) fn store_seed(&self, store: &str) -> u64 {
        store
            .bytes()
            .fold(self.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    }

    /// Adds to a store's counters (nothing for an unknown store).
    pub(crate) fn count(&self, store: &str, f: impl FnOnce(&mut Counters)) {
        if let Some(s) = self.lock().get_mut(store) {
            f(&mut s.counters);
        }
    }

    /// A store's counters.
    pub fn counters(&self, store: &str) -> Result<Counters, MockError> {
        let stores = self.lock();
        Ok(store_ref(&stores, store)?.counters.clone())
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Sets a store's GraphQL cost bucket (Shopify's Standard plan: 2,000 points, 100/s).
    pub fn set_graphql_bucket(
        &self,
        store: &str,
        size: f64,
        restore_per_s: f64,
    ) -> Result<(), MockError> {
        let now = self.now_ms();
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        s.gql_bucket = LeakyBucket::new(size, restore_per_s, now);
        Ok(())
    }

    /// Runs `f` on a store's catalog, then sends the webhooks the change fired.
    pub(crate) fn with_catalog<T>(
        &self,
        store: &str,
        f: impl FnOnce(&mut crate::catalog::Catalog, i64) -> T,
    ) -> Result<T, MockError> {
        let now = self.now_ms();
        let (out, events) = {
            let mut stores = self.lock();
            let s = store_mut(&mut stores, store)?;
            let out = f(&mut s.catalog, now);
            (out, std::mem::take(&mut s.catalog.events))
        };
        for (topic, payload) in events {
            self.emit(store, topic, &payload)?;
        }
        Ok(out)
    }

    /// Checks a presented access token: the store's own (in constant time), one its REST
    /// OAuth issued, or an app's unexpired token for this store. Who it belongs to.
    pub(crate) fn authorize(
        &self,
        store: &str,
        token: Option<&str>,
    ) -> Result<crate::apps::Caller, MockError> {
        {
            let stores = self.lock();
            let s = store_ref(&stores, store)?;
            let Some(t) = token else {
                return Err(MockError::Unauthorized);
            };
            let now = self.now_ms();
            let issued = s.oauth.as_ref().is_some_and(|o| {
                o.access
                    .iter()
                    .any(|(a, exp)| *exp > now && ct_eq(t.as_bytes(), a.as_bytes()))
            });
            if ct_eq(t.as_bytes(), s.info.access_token.as_bytes()) || issued {
                return Ok(crate::apps::Caller::Static);
            }
        }
        token
            .and_then(|t| self.caller(store, t))
            .ok_or(MockError::Unauthorized)
    }
}

/// The store called `name`, or the error every API answers for an unknown one.
pub(crate) fn store_mut<'a>(
    stores: &'a mut HashMap<String, Store>,
    name: &str,
) -> Result<&'a mut Store, MockError> {
    stores
        .get_mut(name)
        .ok_or_else(|| MockError::UnknownStore(name.to_owned()))
}

pub(crate) fn store_ref<'a>(
    stores: &'a HashMap<String, Store>,
    name: &str,
) -> Result<&'a Store, MockError> {
    stores
        .get(name)
        .ok_or_else(|| MockError::UnknownStore(name.to_owned()))
}

/// The access token a request presents: `X-Shopify-Access-Token`, or `Authorization: Bearer`.
pub(crate) fn presented_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
}

pub(crate) use ferry_core::ct_eq;
