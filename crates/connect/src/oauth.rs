//! OAuth2 refresh-token credentials: an access token refreshed ahead of its expiry, once more
//! after a 401; one refresh at a time per credential (in this process by a lock, across
//! processes on PostgreSQL by a row lock held over the refresh); the rotated refresh token is
//! stored with the new access token in one statement, so a crash never loses the only valid
//! refresh token. Both tokens are sealed at rest like store tokens, and the token endpoint is
//! called under the outbound policy (no redirects: one would carry the refresh token away).

use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Cipher, Clock};
use serde::Deserialize;

use crate::auth::{BoxFuture, Credentials};
use crate::error::ConnectError;
use crate::outbound::Outbound;
use crate::secret::Secret;
use ferry_db::Db;

#[derive(Debug, Clone)]
struct Cached {
    access: Secret,
    expires_at_ms: i64,
}

pub struct OAuth {
    db: Db,
    clock: Arc<dyn Clock>,
    cipher: Cipher,
    http: reqwest::Client,
    outbound: Outbound,
    /// The credential's name in `ferry_credentials`.
    key: String,
    token_url: String,
    /// Refresh this long before the access token expires.
    pub skew: Duration,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("key", &self.key)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
}

impl OAuth {
    /// Credentials named `key`, refreshed at `token_url`. The first refresh token comes from
    /// [`OAuth::store_refresh_token`] (when the merchant connects the store). `cipher` seals
    /// the tokens in the database; `outbound` says where `token_url` may be.
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        cipher: Cipher,
        outbound: &Outbound,
        key: &str,
        token_url: &str,
    ) -> OAuth {
        OAuth {
            db,
            clock,
            cipher,
            http: crate::outbound::http_client(outbound),
            outbound: outbound.clone(),
            key: key.to_owned(),
            token_url: token_url.to_owned(),
            skew: Duration::from_secs(60),
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Stores a refresh token (a new connection), dropping any access token.
    pub async fn store_refresh_token(&self, refresh: &Secret) -> Result<(), ConnectError> {
        ferry_db::exec!(
            &self.db,
            "INSERT INTO ferry_credentials (key, access_token, expires_at_ms, refresh_token, updated_ms)
             VALUES ($1, NULL, 0, $2, $3)
             ON CONFLICT (key) DO UPDATE SET access_token = NULL, expires_at_ms = 0, refresh_token = $2, updated_ms = $3",
            &self.key,
            self.seal(refresh.expose()),
            self.clock.now_ms(),
        )?;
        *self.cache.lock().await = None;
        Ok(())
    }

    fn context(&self) -> String {
        format!("credentials:{}", self.key)
    }

    fn seal(&self, token: &str) -> String {
        self.cipher.seal(&self.context(), token.as_bytes())
    }

    fn open(&self, sealed: &str) -> Result<String, ConnectError> {
        self.cipher
            .open(&self.context(), sealed)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ConnectError::Config(format!(
                    "the stored tokens of {} could not be opened (another encryption key?)",
                    self.key
                ))
            })
    }

    /// The stored row opened: access token (if any), its expiry, the refresh token.
    fn opened(
        &self,
        row: Option<(Option<String>, i64, String)>,
    ) -> Result<(Option<String>, i64, String), ConnectError> {
        let (access, expires, refresh) = row.ok_or_else(|| self.missing())?;
        let access = access.map(|a| self.open(&a)).transpose()?;
        Ok((access, expires, self.open(&refresh)?))
    }

    fn fresh(&self, c: &Cached) -> bool {
        c.expires_at_ms - self.skew.as_millis() as i64 > self.clock.now_ms()
    }

    /// Calls the token endpoint with `refresh`; the new access token, its expiry, and the next
    /// refresh token.
    async fn exchange(&self, refresh: &str) -> Result<(Cached, String), ConnectError> {
        let endpoint = "POST oauth/token";
        self.outbound
            .check_url(&self.token_url)
            .map_err(|r| ConnectError::Outbound(r.0))?;
        let resp = self
            .http
            .post(&self.token_url)
            .timeout(Duration::from_secs(30))
            .json(&serde_json::json!({"grant_type": "refresh_token", "refresh_token": refresh}))
            .send()
            .await
            .map_err(|e| ConnectError::transient(endpoint, e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body = match crate::client::read_limited(resp, self.outbound.max_body_bytes).await {
            Ok(b) => b,
            Err(crate::client::Read::TooLarge) => {
                return Err(ConnectError::data(endpoint, "$", "the answer is too large"));
            }
            Err(crate::client::Read::Failed(e)) => {
                return Err(ConnectError::transient(
                    endpoint,
                    e.without_url().to_string(),
                ));
            }
        };
        match status {
            200..=299 => {}
            500..=599 => return Err(ConnectError::transient(endpoint, format!("{status}"))),
            // The body is not echoed: it may quote the refresh token.
            _ => {
                return Err(ConnectError::Auth {
                    endpoint: endpoint.into(),
                });
            }
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| ConnectError::data(endpoint, "$", e.to_string()))?;
        let expires_at_ms = self.clock.now_ms() + t.expires_in.unwrap_or(3600).max(1) * 1000;
        metrics::counter!("ferry_connector_token_refreshes_total").increment(1);
        Ok((
            Cached {
                access: Secret::new(t.access_token),
                expires_at_ms,
            },
            t.refresh_token.unwrap_or_else(|| refresh.to_owned()),
        ))
    }

    /// Refreshes unless the stored token is already newer than `stale` (another worker did).
    async fn refresh_now(&self, stale: Option<&Secret>) -> Result<Cached, ConnectError> {
        let now = self.clock.now_ms();
        match &self.db {
            Db::Postgres(pool) => {
                // The row lock makes the refresh single-flight across processes.
                let mut tx = pool.begin().await?;
                let row: Option<(Option<String>, i64, String)> = sqlx::query_as(
                    "SELECT access_token, expires_at_ms, refresh_token FROM ferry_credentials WHERE key = $1 FOR UPDATE",
                )
                .bind(&self.key)
                .fetch_optional(&mut *tx)
                .await?;
                let (access, expires, refresh) = self.opened(row)?;
                if let Some(a) = access.filter(|a| stale.is_none_or(|s| s.expose() != a)) {
                    let c = Cached {
                        access: Secret::new(a),
                        expires_at_ms: expires,
                    };
                    if self.fresh(&c) {
                        tx.commit().await?;
                        return Ok(c);
                    }
                }
                let (c, next) = self.exchange(&refresh).await?;
                sqlx::query(
                    "UPDATE ferry_credentials SET access_token = $2, expires_at_ms = $3, refresh_token = $4, updated_ms = $5 WHERE key = $1",
                )
                .bind(&self.key)
                .bind(self.seal(c.access.expose()))
                .bind(c.expires_at_ms)
                .bind(self.seal(&next))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(c)
            }
            Db::Sqlite(pool) => {
                // One process per SQLite database: the in-process lock is the single flight.
                let row: Option<(Option<String>, i64, String)> = sqlx::query_as(
                    "SELECT access_token, expires_at_ms, refresh_token FROM ferry_credentials WHERE key = $1",
                )
                .bind(&self.key)
                .fetch_optional(pool)
                .await?;
                let (access, expires, refresh) = self.opened(row)?;
                if let Some(a) = access.filter(|a| stale.is_none_or(|s| s.expose() != a)) {
                    let c = Cached {
                        access: Secret::new(a),
                        expires_at_ms: expires,
                    };
                    if self.fresh(&c) {
                        return Ok(c);
                    }
                }
                let (c, next) = self.exchange(&refresh).await?;
                sqlx::query(
                    "UPDATE ferry_credentials SET access_token = $2, expires_at_ms = $3, refresh_token = $4, updated_ms = $5 WHERE key = $1",
                )
                .bind(&self.key)
                .bind(self.seal(c.access.expose()))
                .bind(c.expires_at_ms)
                .bind(self.seal(&next))
                .bind(now)
                .execute(pool)
                .await?;
                Ok(c)
            }
        }
    }

    fn missing(&self) -> ConnectError {
        ConnectError::Config(format!("no refresh token stored for {}", self.key))
    }
}

impl Credentials for OAuth {
    fn token(&self) -> BoxFuture<'_, Result<Secret, ConnectError>> {
        Box::pin(async move {
            let mut cache = self.cache.lock().await;
            if let Some(c) = cache.as_ref().filter(|c| self.fresh(c)) {
                return Ok(c.access.clone());
            }
            let c = self.refresh_now(None).await?;
            let access = c.access.clone();
            *cache = Some(c);
            Ok(access)
        })
    }

    fn can_refresh(&self) -> bool {
        true
    }

    fn refresh<'a>(&'a self, stale: &'a Secret) -> BoxFuture<'a, Result<(), ConnectError>> {
        Box::pin(async move {
            let mut cache = self.cache.lock().await;
            if cache
                .as_ref()
                .is_some_and(|c| &c.access != stale && self.fresh(c))
            {
                return Ok(()); // Someone refreshed while this caller waited for the lock.
            }
            *cache = Some(self.refresh_now(Some(stale)).await?);
            Ok(())
        })
    }
}
