//! The stores that send webhooks, with their active secrets sealed at rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferry_core::Clock;
use serde::{Deserialize, Serialize};

use ferry_core::Cipher;
use ferry_db::Db;

use crate::error::SyncError;

/// How a store signs and names its deliveries (the `{platform}` of `/webhooks/{platform}/{store}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookScheme {
    /// `X-Shopify-Hmac-Sha256`.
    Shopify,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Standard,
    /// `Stripe-Signature`.
    Stripe,
}

impl WebhookScheme {
    pub fn parse(s: &str) -> Option<WebhookScheme> {
        match s {
            "shopify" => Some(WebhookScheme::Shopify),
            "standard" => Some(WebhookScheme::Standard),
            "stripe" => Some(WebhookScheme::Stripe),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookScheme::Shopify => "shopify",
            WebhookScheme::Standard => "standard",
            WebhookScheme::Stripe => "stripe",
        }
    }
}

/// A store with its secrets opened (never serialized: see `StoreView`).
#[derive(Clone)]
pub struct WebhookStore {
    pub name: String,
    pub platform: WebhookScheme,
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for WebhookStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookStore")
            .field("name", &self.name)
            .field("platform", &self.platform)
            .field("secrets", &format!("[{} redacted]", self.secrets.len()))
            .finish()
    }
}

/// How long a store read from the database is reused. A rotation through this process shows
/// at once; one made through another server shows here within this time.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The most entries each side of the cache holds before it starts again.
const CACHE_ENTRIES: usize = 10_000;

/// Stores read recently, and names found to be no store. The two sides are bounded apart, so
/// a flood of made-up names fills only its own side and never pushes a real store out.
#[derive(Default)]
struct Cache {
    known: HashMap<String, (WebhookStore, Instant)>,
    unknown: HashMap<String, Instant>,
}

impl Cache {
    fn get(&self, name: &str) -> Option<Option<WebhookStore>> {
        if let Some((s, at)) = self.known.get(name)
            && at.elapsed() < CACHE_TTL
        {
            return Some(Some(s.clone()));
        }
        match self.unknown.get(name) {
            Some(at) if at.elapsed() < CACHE_TTL => Some(None),
            _ => None,
        }
    }

    fn put(&mut self, name: &str, store: Option<WebhookStore>) {
        let now = Instant::now();
        match store {
            Some(s) => {
                if self.known.len() >= CACHE_ENTRIES {
                    self.known.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                }
                if self.known.len() < CACHE_ENTRIES {
                    self.known.insert(name.to_owned(), (s, now));
                }
                self.unknown.remove(name);
            }
            None => {
                if self.unknown.len() >= CACHE_ENTRIES {
                    self.unknown.clear();
                }
                self.unknown.insert(name.to_owned(), now);
                self.known.remove(name);
            }
        }
    }

    fn forget(&mut self, name: &str) {
        self.known.remove(name);
        self.unknown.remove(name);
    }
}

#[derive(Clone)]
pub struct WebhookStores {
    db: Db,
    cipher: Cipher,
    clock: Arc<dyn Clock>,
    /// Every webhook needs its store's secrets, and reading and opening them per request costs
    /// more than the rest of the request.
    cache: Arc<Mutex<Cache>>,
}

/// A store name: 1 to 64 of `[A-Za-z0-9_-]`. Anything else is refused before any lookup.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl WebhookStores {
    pub fn new(db: Db, cipher: Cipher, clock: Arc<dyn Clock>) -> WebhookStores {
        WebhookStores {
            db,
            cipher,
            clock,
            cache: Arc::default(),
        }
    }

    fn seal(&self, name: &str, secrets: &[String]) -> String {
        let json = serde_json::to_vec(secrets).unwrap_or_default();
        self.cipher.seal(&format!("store:{name}"), &json)
    }

    /// Creates a store (or replaces its platform and secrets).
    pub async fn put(
        &self,
        name: &str,
        platform: WebhookScheme,
        secrets: &[String],
    ) -> Result<(), SyncError> {
        if !valid_name(name) {
            return Err(SyncError::Invalid(
                "a store name is 1 to 64 of [A-Za-z0-9_-]".into(),
            ));
        }
        if secrets.is_empty()
            || secrets
                .iter()
                .any(|s| !(8..=crate::MAX_SECRET).contains(&s.chars().count()))
        {
            return Err(SyncError::Invalid(format!(
                "a store needs at least one secret of 8 to {} characters",
                crate::MAX_SECRET
            )));
        }
        let sealed = self.seal(name, secrets);
        self.cache().forget(name);
        let now = self.clock.now_ms();
        let sql = "INSERT INTO ferry_stores (name, platform, secrets, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)
                   ON CONFLICT (name) DO UPDATE SET platform = $2, secrets = $3, updated_ms = $4";
        let args = (name, platform.as_str(), &sealed, now);
        ferry_db::exec!(&self.db, sql, args.0, args.1, args.2, args.3)?;
        // Again after the write: a read that raced it may have cached the old secrets.
        self.cache().forget(name);
        Ok(())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A store, from the cache when it was read less than `CACHE_TTL` ago. A name that is not
    /// valid is no store, without a read.
    pub async fn get(&self, name: &str) -> Result<Option<WebhookStore>, SyncError> {
        if !valid_name(name) {
            return Ok(None);
        }
        if let Some(hit) = self.cache().get(name) {
            return Ok(hit);
        }
        let store = self.read(name).await?;
        self.cache().put(name, store.clone());
        Ok(store)
    }

    async fn read(&self, name: &str) -> Result<Option<WebhookStore>, SyncError> {
        let sql = "SELECT platform, secrets FROM ferry_stores WHERE name = $1";
        let row = ferry_db::row!(&self.db, (String, String), sql, name)?;
        let Some((platform, sealed)) = row else {
            return Ok(None);
        };
        let plain = self
            .cipher
            .open(&format!("store:{name}"), &sealed)
            .map_err(|e| SyncError::Crypto(format!("store {name}: {e}")))?;
        let secrets: Vec<String> = serde_json::from_slice(&plain)
            .map_err(|e| SyncError::Crypto(format!("store {name}: {e}")))?;
        Ok(Some(WebhookStore {
            name: name.to_owned(),
            platform: WebhookScheme::parse(&platform).ok_or_else(|| {
                SyncError::Crypto(format!("store {name}: unknown platform {platform:?}"))
            })?,
            secrets,
        }))
    }

    /// Store names in order, after `after`.
    pub async fn names(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>, SyncError> {
        let sql = "SELECT name FROM ferry_stores WHERE name > $1 ORDER BY name LIMIT $2";
        let after = after.unwrap_or("");
        let names = ferry_db::rows!(&self.db, (String,), sql, after, i64::from(limit))?;
        Ok(names.into_iter().map(|(n,)| n).collect())
    }

    /// Adds a new secret in front; keeps at most `keep` older ones (0 revokes the old ones).
    pub async fn rotate(&self, name: &str, new_secret: &str, keep: usize) -> Result<(), SyncError> {
        let store = self
            .get(name)
            .await?
            .ok_or_else(|| SyncError::UnknownStore(name.to_owned()))?;
        let mut secrets = vec![new_secret.to_owned()];
        secrets.extend(
            store
                .secrets
                .into_iter()
                .filter(|s| s != new_secret)
                .take(keep),
        );
        self.put(name, store.platform, &secrets).await
    }
}
