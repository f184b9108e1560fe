//! The sync engine's jobs. Webhooks only trigger work: every job re-reads the current state
//! from the platform, so late, doubled and reordered deliveries converge on the same result.
//!
//! - `webhook.received` (from the ingress) → `sync.product` (parent catalog changes, one
//!   waiting job per product), `sync.orders` (a store's new orders), `sync.level` (a stock
//!   change, checked after a short settle).
//! - `sync.product` reads the parent product once and fans out one `sync.push` per child (the
//!   newest snapshot replaces a waiting one).
//! - `sync.push` makes the child's copy what the rules say: a saga of upsert, then the stock of
//!   new variants; a later step failing for good undoes the earlier ones.
//! - `sync.orders` counts each order once (a unique row) and moves its quantities as deltas to
//!   every other store (`sync.adjust`, one idempotency key per order and store).
//! - `sync.level` tells ferry's own writes (the intent ledger) and sales from manual stock
//!   counts; a count wins by its timestamp and reaches the other stores as compare-and-set
//!   `sync.set`s.
//! - `sync.connect` subscribes a store's webhooks and links a child's catalog by SKU;
//!   `sync.reconcile` compares every child with the parent and repairs drift.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_connect::shopify::ShopifyConnector;
use ferry_connect::shopify::model::Product;
use ferry_connect::{Client, Secret, StaticToken};
use ferry_core::Cipher;
use ferry_queue::{Job, NewJob, Queue, WorkerBuilder};

use crate::credentials::{AccessView, AppRef, Kind};
use crate::error::SyncError;
use crate::jobs::*;
use crate::network::{Network, Role, StoreConfig};
use crate::webhooks::{WEBHOOK_QUEUE, WebhookJob, WebhookScheme, WebhookStores};
use ferry_db::Db;

pub use crate::jobs::SYNC_QUEUE;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where the stores send webhooks: the public URL of `ferry serve`.
    pub public_url: String,
    /// How long a stock webhook waits before it is checked; later ones for the same item
    /// replace it (a burst is checked once).
    pub settle: Duration,
    /// Writes of ferry's older than this no longer explain a stock change (lost or failed).
    pub intent_ttl: Duration,
    /// A write of ferry's still pending after this is taken for lost. Until then a stock
    /// change nothing explains waits for it instead of being taken for a count: a write whose
    /// platform applied it but whose answer was lost lands in ferry's books only at its job's
    /// next try, which backoff may put minutes away. Longer than the longest backoff.
    pub intent_horizon: Duration,
    /// The most jobs writing to one store at once, so one store's backlog never takes every
    /// worker.
    pub store_concurrency: u32,
    /// Where a shop's admin lives, `{shop}` standing for its handle (`example` of
    /// `example.myshopify.com`): its API and token endpoint are under it. Changed only to
    /// reach the simulated platform.
    pub shop_url: String,
    /// Catalogs of more products than this are read by bulk export when a child is connected
    /// or fully reconciled (`u64::MAX`: never); smaller ones are paged.
    pub bulk_threshold_products: u64,
    /// How a bulk export is followed.
    pub bulk: ferry_connect::shopify::bulk::BulkOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            public_url: "http://127.0.0.1:8080".into(),
            settle: Duration::from_millis(500),
            intent_ttl: Duration::from_secs(60),
            intent_horizon: Duration::from_secs(60 * 60),
            store_concurrency: 4,
            shop_url: "https://{shop}.myshopify.com".into(),
            bulk_threshold_products: 2000,
            bulk: ferry_connect::shopify::bulk::BulkOptions::default(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) queue: Queue,
    pub(crate) net: Network,
    pub(crate) client: Client,
    pub(crate) stores: WebhookStores,
    pub(crate) opts: EngineOptions,
    /// One connector per store, built on first use (its token opened once).
    pub(crate) shops: Mutex<HashMap<String, ShopifyConnector>>,
}

/// The sync engine: cheap to clone, one per process.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

/// Registers the handler of job type `$payload` as the engine's `$method`.
macro_rules! kind {
    ($b:expr, $e:expr, $method:ident, $payload:ty) => {{
        let e = $e.clone();
        $b.register(move |p: $payload, _ctx| {
            let e = e.clone();
            async move {
                e.$method(p).await.map_err(|err| {
                    // Waiting (for a write of ours, a rate limit, an open breaker) is routine.
                    let waits = matches!(err, SyncError::Wait(_))
                        || matches!(&err, SyncError::Connect(c) if matches!(c.class(), ferry_connect::ErrorClass::RateLimited | ferry_connect::ErrorClass::Open));
                    if waits {
                        tracing::debug!(kind = <$payload as Job>::KIND, "{err}");
                    } else {
                        // The brief form: what the platform answered stays in the job's record.
                        tracing::warn!(kind = <$payload as Job>::KIND, error = %err.brief(), "sync job failed");
                    }
                    err.into_job_error()
                })
            }
        })
    }};
}

impl Engine {
    /// The engine on `queue`'s database (its tables migrated in). `cipher` opens the stores'
    /// tokens; `client` is the connectors' shared client; `stores` the process's webhook stores
    /// (the ingress's, so a store added here is known there at once).
    pub async fn new(
        queue: Queue,
        cipher: Cipher,
        client: Client,
        stores: WebhookStores,
        opts: EngineOptions,
    ) -> Result<Engine, SyncError> {
        let db = crate::db::open(&queue).await?;
        let net = Network::new(db, cipher, queue.clock());
        queue
            .set_default_group_cap(SYNC_QUEUE, Some(opts.store_concurrency))
            .await?;
        Ok(Engine {
            inner: Arc::new(Inner {
                queue,
                net,
                client,
                stores,
                opts,
                shops: Mutex::default(),
            }),
        })
    }

    pub fn network(&self) -> &Network {
        &self.inner.net
    }

    pub fn options(&self) -> &EngineOptions {
        &self.inner.opts
    }

    /// Drops a store's cached connector (its credentials changed).
    pub(crate) fn forget_shop(&self, name: &str) {
        self.shops().remove(name);
    }

    /// The admin base of a shop domain (see [`EngineOptions::shop_url`]).
    pub fn shop_base(&self, domain: &str) -> String {
        self.inner
            .opts
            .shop_url
            .replace("{shop}", crate::credentials::shop_handle(domain))
            .trim_end_matches('/')
            .to_owned()
    }

    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.net.db
    }

    /// Registers every sync job kind (and the ingress's `webhook.received`) on a worker; it
    /// must take jobs from the `webhooks` and `sync` queues.
    pub fn register(&self, b: WorkerBuilder) -> WorkerBuilder {
        let b = kind!(b, self, on_webhook, WebhookJob);
        let b = kind!(b, self, product, ProductJob);
        let b = kind!(b, self, push, PushJob);
        let b = kind!(b, self, orders, OrdersJob);
        let b = kind!(b, self, adjust, AdjustJob);
        let b = kind!(b, self, level, LevelJob);
        let b = kind!(b, self, set, SetJob);
        let b = kind!(b, self, connect, ConnectJob);
        kind!(b, self, reconcile, ReconcileJob)
    }

    /// The queues a worker running the engine takes jobs from.
    pub fn queues() -> [&'static str; 2] {
        [WEBHOOK_QUEUE, SYNC_QUEUE]
    }

    // ---- setting up -------------------------------------------------------------------

    /// Adds a store to the network and registers its webhook secret with the ingress.
    pub async fn add_store(
        &self,
        name: &str,
        role: Role,
        graphql_url: &str,
        token: &str,
        webhook_secret: &str,
        rules: &crate::rules::Rules,
    ) -> Result<(), SyncError> {
        if !(8..=crate::MAX_SECRET).contains(&webhook_secret.chars().count()) {
            return Err(SyncError::Invalid(format!(
                "the webhook secret must be 8 to {} characters",
                crate::MAX_SECRET
            )));
        }
        if graphql_url.chars().count() > 2048 {
            return Err(SyncError::Invalid(
                "graphql_url is longer than 2048 characters".into(),
            ));
        }
        // Before anything is written: the fields (400), a second parent (409), the URL under
        // the outbound policy with its current addresses (422), and the name not taken by a
        // webhook store outside the network, whose secrets this would replace (409).
        self.inner
            .net
            .check(name, role, graphql_url, token, rules)
            .await?;
        self.inner
            .client
            .options()
            .outbound
            .check_store_url(graphql_url)
            .await
            .map_err(|r| SyncError::Refused(format!("graphql_url: {r}")))?;
        if self.inner.net.get(name).await?.is_none() && self.inner.stores.get(name).await?.is_some()
        {
            return Err(SyncError::Conflict(format!(
                "a webhook store named {name:?} exists outside the network; choose another name"
            )));
        }
        self.inner
            .net
            .put(name, role, graphql_url, token, rules)
            .await?;
        self.inner
            .stores
            .put(name, WebhookScheme::Shopify, &[webhook_secret.to_owned()])
            .await
            .map_err(|e| SyncError::Invalid(e.to_string()))?;
        self.shops().remove(name);
        Ok(())
    }

    /// Adds a store reached through an app (the 2026 way): `kind` is
    /// [`Kind::ClientCredentials`] (ferry asks for its tokens) or [`Kind::AuthorizationCode`]
    /// (tokens come from the install flow). Its API is under the shop domain; the app's client
    /// secret is its webhook secret.
    pub async fn add_app_store(
        &self,
        name: &str,
        role: Role,
        shop_domain: &str,
        kind: Kind,
        app: &AppRef,
        rules: &crate::rules::Rules,
    ) -> Result<(), SyncError> {
        if !crate::credentials::valid_shop_domain(shop_domain) {
            return Err(SyncError::Invalid(
                "shop_domain is a store's myshopify.com domain, such as example.myshopify.com"
                    .into(),
            ));
        }
        if kind == Kind::Static {
            return Err(SyncError::Invalid(
                "a store reached through an app uses client_credentials or authorization_code"
                    .into(),
            ));
        }
        let app = self.inner.net.resolve_app(app).await?;
        let graphql_url = format!(
            "{}/admin/api/{}/graphql.json",
            self.shop_base(shop_domain),
            ferry_connect::shopify::API_VERSION
        );
        // The same checks and the same writes as a store with a token; the token column holds
        // a marker, never used.
        self.add_store(
            name,
            role,
            &graphql_url,
            "(from the app)",
            app.client_secret.expose(),
            rules,
        )
        .await?;
        self.inner
            .net
            .set_access(name, kind, shop_domain, &app)
            .await?;
        self.shops().remove(name);
        Ok(())
    }

    /// The token state of every store reached through an app, by store name, with the
    /// scopes it lacks (stores with a static token have none stored).
    pub async fn token_states(
        &self,
    ) -> Result<
        std::collections::HashMap<String, (ferry_connect::oauth::TokenStatus, Vec<&'static str>)>,
        SyncError,
    > {
        let mut out = std::collections::HashMap::new();
        for (key, t) in ferry_connect::oauth::statuses(self.db()).await? {
            let Some(store) = crate::credentials::store_of_token_key(&key) else {
                continue;
            };
            let missing = if t.scopes.is_empty() {
                Vec::new()
            } else {
                crate::credentials::missing_scopes(&t.scopes)
            };
            out.insert(store.to_owned(), (t, missing));
        }
        Ok(out)
    }

    /// How a store gets its token, and the token's state (never the token).
    pub async fn access_view(&self, name: &str) -> Result<AccessView, SyncError> {
        let (kind, shop_domain, app) = self.inner.net.access(name).await?;
        // The stored row only: building the credential would build an HTTP client.
        let token = match (&kind, &app) {
            (Kind::Static, _) | (_, None) => None,
            _ => {
                ferry_connect::oauth::status(self.db(), &crate::credentials::token_key(name))
                    .await?
            }
        };
        let missing_scopes = token
            .as_ref()
            .filter(|t| !t.scopes.is_empty())
            .map(|t| crate::credentials::missing_scopes(&t.scopes))
            .unwrap_or_default();
        Ok(AccessView {
            credentials: kind,
            shop_domain,
            app: app.map(|a| a.name).unwrap_or_default(),
            token,
            missing_scopes,
        })
    }

    /// Enqueues the connection of a store (webhooks, location; for a child, linking its
    /// catalog by SKU and copying what it lacks). The job's id.
    pub async fn connect_store(&self, name: &str) -> Result<String, SyncError> {
        self.inner.net.store(name).await?;
        let job = self
            .sync_job(
                &ConnectJob {
                    store: name.to_owned(),
                    cause: "connect".into(),
                },
                name,
            )?
            .singleton(&format!("connect:{name}"));
        Ok(self.inner.queue.enqueue(job).await?.id.to_string())
    }

    /// Enqueues a reconciliation of one child or all (`full`: every product, else those
    /// changed since the last run).
    pub async fn start_reconcile(
        &self,
        child: Option<&str>,
        full: bool,
    ) -> Result<String, SyncError> {
        if let Some(c) = child {
            let s = self.inner.net.store(c).await?;
            if s.role != Role::Child {
                return Err(SyncError::Invalid(format!("{c} is not a child store")));
            }
        }
        let job = NewJob::of(&ReconcileJob {
            child: child.map(str::to_owned),
            full,
        })?
        .singleton(&format!("reconcile:{}:{full}", child.unwrap_or("*")));
        Ok(self.inner.queue.enqueue(job).await?.id.to_string())
    }

    /// Schedules an incremental reconciliation of every child (`expr`: cron, UTC).
    pub async fn schedule_reconcile(&self, expr: &str) -> Result<(), SyncError> {
        let job = NewJob::of(&ReconcileJob {
            child: None,
            full: false,
        })?
        .singleton("reconcile:*:false");
        self.inner
            .queue
            .register_cron("ferry.reconcile", expr, &job)
            .await?;
        Ok(())
    }

    pub(crate) fn shops(&self) -> std::sync::MutexGuard<'_, HashMap<String, ShopifyConnector>> {
        self.inner.shops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connector of a store of the network.
    pub(crate) async fn shop(&self, store: &StoreConfig) -> Result<ShopifyConnector, SyncError> {
        if let Some(s) = self.shops().get(&store.name) {
            return Ok(s.clone());
        }
        let creds: Arc<dyn ferry_connect::Credentials> =
            match self.inner.net.access(&store.name).await? {
                (Kind::Static, _, _) | (_, _, None) => Arc::new(StaticToken(Secret::new(
                    self.inner.net.token(&store.name).await?,
                ))),
                (kind, domain, Some(app)) => crate::credentials::app_credentials(
                    self,
                    &store.name,
                    kind,
                    &app,
                    &format!("{}/admin/oauth/access_token", self.shop_base(&domain)),
                ),
            };
        let shop = ShopifyConnector::new(self.inner.client.clone(), &store.graphql_url, creds);
        self.shops().insert(store.name.clone(), shop.clone());
        Ok(shop)
    }

    /// A sync job in the fairness group of the store it writes to.
    pub(crate) fn sync_job<J: Job>(&self, job: &J, group: &str) -> Result<NewJob, SyncError> {
        Ok(NewJob::of(job)?.group(group))
    }

    /// A push of a parent product to a child: one waiting per (child, product), the newest
    /// snapshot replacing an older one.
    pub(crate) fn push_job(
        &self,
        child: &str,
        product: &str,
        snapshot: Option<Product>,
        cause: &str,
    ) -> Result<NewJob, SyncError> {
        let push = PushJob {
            child: child.to_owned(),
            product: product.to_owned(),
            snapshot,
            cause: cause.to_owned(),
        };
        Ok(self
            .sync_job(&push, child)?
            .singleton(&format!("push:{child}:{product}"))
            .replace())
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.net.now_ms()
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}
