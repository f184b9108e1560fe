//! Access tokens ferry obtains and renews itself, from a token endpoint by one of two grants:
//! - [`Grant::Refresh`]: a stored refresh token (Shopify's expiring offline tokens, from the
//!   install flow). The refresh token rotates on every use; the new one is written with the new
//!   access token in one statement, so a crash never loses the only valid one. If it is
//!   refused, the one it replaced is tried once (Shopify keeps it valid until its successor is
//!   first used); if that is refused too, the store is marked `needs_reauthorization` and calls
//!   wait (their jobs snooze) until it is installed again.
//! - [`Grant::ClientCredentials`]: the app's client id and secret (Shopify's client
//!   credentials grant, for stores of the app's own organization): no refresh token, ask again.
//!
//! Tokens are renewed before they expire (when a share of their lifetime, 10% by default, is
//! left) and once more after a 401; one renewal at a time per credential: in this process by a
//! lock, across processes on PostgreSQL by a row lock held over the renewal. Both tokens are
//! sealed at rest, the token endpoint is called under the outbound policy (no redirects: one
//! would carry the secrets away), and no token or secret appears in an error or a log.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::{Cipher, Clock};
use serde::Deserialize;

use crate::auth::{BoxFuture, Credentials};
use crate::error::ConnectError;
use crate::outbound::Outbound;
use crate::secret::Secret;
use ferry_db::Db;

/// How long calls wait before asking again for a store that must be installed again.
const REAUTHORIZATION_WAIT: Duration = Duration::from_secs(300);

/// How a token is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// With the stored refresh token (which rotates).
    Refresh,
    /// With the client id and secret alone.
    ClientCredentials,
}

#[derive(Debug, Clone)]
struct Cached {
    access: Secret,
    expires_at_ms: i64,
    lifetime_ms: i64,
}

/// A credential's state as stored, for the API and the logs: never a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenStatus {
    /// `ok`, or `needs_reauthorization` (the store must be installed again).
    pub state: String,
    pub reason: Option<String>,
    pub expires_at_ms: i64,
    /// Granted scopes, comma-separated, as the platform said.
    pub scopes: String,
}

/// The stored state of the credential named `key`, without building one (no client, no
/// secret): what the API and connect read. `None` when nothing is stored yet.
pub async fn status(db: &Db, key: &str) -> Result<Option<TokenStatus>, ConnectError> {
    let row = ferry_db::row!(
        db,
        (String, Option<String>, i64, String),
        "SELECT state, reason, expires_at_ms, scopes FROM ferry_credentials WHERE key = $1",
        key
    )?;
    Ok(
        row.map(|(state, reason, expires_at_ms, scopes)| TokenStatus {
            state,
            reason,
            expires_at_ms,
            scopes,
        }),
    )
}

/// Every stored credential's state by key (one per store reached through an app), without
/// building one: what the dashboard reads for all its stores at once.
pub async fn statuses(db: &Db) -> Result<Vec<(String, TokenStatus)>, ConnectError> {
    let rows = ferry_db::rows!(
        db,
        (String, String, Option<String>, i64, String),
        "SELECT key, state, reason, expires_at_ms, scopes FROM ferry_credentials ORDER BY key"
    )?;
    Ok(rows
        .into_iter()
        .map(|(key, state, reason, expires_at_ms, scopes)| {
            (
                key,
                TokenStatus {
                    state,
                    reason,
                    expires_at_ms,
                    scopes,
                },
            )
        })
        .collect())
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
    grant: Grant,
    /// Client authentication sent with every request, when the endpoint wants it.
    client: Option<(String, Secret)>,
    /// Renew when this share of a token's lifetime is left.
    pub margin: f64,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("key", &self.key)
            .field("token_url", &self.token_url)
            .field("grant", &self.grant)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

/// What a token endpoint gave.
struct Exchanged {
    access: String,
    lifetime_ms: i64,
    refresh: Option<String>,
    scopes: Option<String>,
}

/// A stored credential, opened.
struct Row {
    access: Option<String>,
    expires_at_ms: i64,
    refresh: String,
    previous: Option<String>,
    lifetime_ms: i64,
    state: String,
}

type RawRow = (
    Option<String>,
    i64,
    String,
    Option<String>,
    i64,
    String,
    Option<String>,
);

const ROW: &str = "SELECT access_token, expires_at_ms, refresh_token, previous_refresh_token, lifetime_ms, state, reason FROM ferry_credentials WHERE key = $1";
const ROW_LOCKED: &str = "SELECT access_token, expires_at_ms, refresh_token, previous_refresh_token, lifetime_ms, state, reason FROM ferry_credentials WHERE key = $1 FOR UPDATE";

const MARK: &str = "UPDATE ferry_credentials SET state = 'needs_reauthorization', reason = $2, access_token = NULL, updated_ms = $3 WHERE key = $1";

const UPDATE: &str = "UPDATE ferry_credentials SET access_token = $2, expires_at_ms = $3, refresh_token = $4, previous_refresh_token = $5, lifetime_ms = $6, scopes = COALESCE($7, scopes), state = 'ok', reason = NULL, updated_ms = $8 WHERE key = $1";

impl OAuth {
    /// Credentials named `key`, renewed at `token_url` with a refresh token. The first one
    /// comes from [`OAuth::store_refresh_token`] or [`OAuth::store_tokens`] (when the store
    /// is installed). `cipher` seals the tokens; `outbound` says where `token_url` may be.
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
            grant: Grant::Refresh,
            client: None,
            margin: 0.1,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The same, authenticating as the app `client_id` on every request, and obtaining tokens
    /// by `grant`.
    pub fn for_app(mut self, grant: Grant, client_id: &str, client_secret: Secret) -> OAuth {
        self.grant = grant;
        self.client = Some((client_id.to_owned(), client_secret));
        self
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stores a refresh token (a new connection), dropping any access token.
    pub async fn store_refresh_token(&self, refresh: &Secret) -> Result<(), ConnectError> {
        self.put_row(None, 0, 0, refresh.expose(), None).await
    }

    /// Stores the tokens an authorization code was exchanged for (the install flow).
    pub async fn store_tokens(
        &self,
        access: &Secret,
        expires_in_s: i64,
        refresh: &Secret,
        scopes: &str,
    ) -> Result<(), ConnectError> {
        let lifetime = expires_in_s.max(1) * 1000;
        let expires = self.clock.now_ms() + lifetime;
        self.put_row(
            Some(access.expose()),
            expires,
            lifetime,
            refresh.expose(),
            Some(scopes),
        )
        .await
    }

    async fn put_row(
        &self,
        access: Option<&str>,
        expires_at_ms: i64,
        lifetime_ms: i64,
        refresh: &str,
        scopes: Option<&str>,
    ) -> Result<(), ConnectError> {
        ferry_db::exec!(
            &self.db,
            "INSERT INTO ferry_credentials (key, access_token, expires_at_ms, refresh_token, previous_refresh_token, lifetime_ms, scopes, state, reason, updated_ms)
             VALUES ($1, $2, $3, $4, NULL, $5, $6, 'ok', NULL, $7)
             ON CONFLICT (key) DO UPDATE SET access_token = $2, expires_at_ms = $3, refresh_token = $4, previous_refresh_token = NULL, lifetime_ms = $5, scopes = $6, state = 'ok', reason = NULL, updated_ms = $7",
            &self.key,
            access.map(|a| self.seal(a)),
            expires_at_ms,
            self.seal(refresh),
            lifetime_ms,
            scopes.unwrap_or_default(),
            self.clock.now_ms(),
        )?;
        *self.cache.lock().await = None;
        Ok(())
    }

    /// The stored state, without any token: `None` when nothing is stored yet.
    pub async fn status(&self) -> Result<Option<TokenStatus>, ConnectError> {
        status(&self.db, &self.key).await
    }

    fn context(&self) -> String {
        format!("credentials:{}", self.key)
    }

    fn seal(&self, token: &str) -> String {
        if token.is_empty() {
            return String::new();
        }
        self.cipher.seal(&self.context(), token.as_bytes())
    }

    fn open(&self, sealed: &str) -> Result<String, ConnectError> {
        if sealed.is_empty() {
            return Ok(String::new());
        }
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

    fn opened(&self, row: RawRow) -> Result<Row, ConnectError> {
        let (access, expires_at_ms, refresh, previous, lifetime_ms, state, _) = row;
        Ok(Row {
            access: access
                .filter(|a| !a.is_empty())
                .map(|a| self.open(&a))
                .transpose()?,
            expires_at_ms,
            refresh: self.open(&refresh)?,
            previous: previous
                .filter(|p| !p.is_empty())
                .map(|p| self.open(&p))
                .transpose()?,
            lifetime_ms,
            state,
        })
    }

    /// Fresh while more than `margin` of its lifetime is left (at least a second).
    fn fresh(&self, c: &Cached) -> bool {
        let left = ((c.lifetime_ms as f64 * self.margin) as i64).max(1000);
        c.expires_at_ms - left > self.clock.now_ms()
    }

    fn reauthorize(&self, reason: &str) -> ConnectError {
        ConnectError::Reauthorize {
            key: self.key.clone(),
            reason: reason.to_owned(),
            retry_after: REAUTHORIZATION_WAIT,
        }
    }

    /// Exchanges an authorization code (the install flow's callback) for an expiring offline
    /// token and its refresh token, and stores them: the scopes granted.
    pub async fn install(&self, code: &str) -> Result<String, ConnectError> {
        let x = self.request(&[("code", code), ("expiring", "1")]).await?;
        let refresh = x.refresh.clone().ok_or_else(|| {
            ConnectError::data("POST oauth/access_token", "refresh_token", "missing")
        })?;
        let scopes = x.scopes.clone().unwrap_or_default();
        self.store_tokens(
            &Secret::new(x.access),
            x.lifetime_ms / 1000,
            &Secret::new(refresh),
            &scopes,
        )
        .await?;
        Ok(scopes)
    }

    /// Asks the token endpoint: by the client credentials, or with `refresh`.
    async fn exchange(&self, refresh: Option<&str>) -> Result<Exchanged, ConnectError> {
        match refresh {
            Some(r) => {
                self.request(&[("grant_type", "refresh_token"), ("refresh_token", r)])
                    .await
            }
            None => self.request(&[("grant_type", "client_credentials")]).await,
        }
    }

    /// A form request to the token endpoint: the client's id and secret, then `fields`.
    async fn request(&self, fields: &[(&str, &str)]) -> Result<Exchanged, ConnectError> {
        let endpoint = "POST oauth/access_token";
        self.outbound
            .check_url(&self.token_url)
            .map_err(|r| ConnectError::Outbound(r.0))?;
        let mut form: Vec<(&str, &str)> = Vec::new();
        if let Some((id, secret)) = &self.client {
            form.push(("client_id", id));
            form.push(("client_secret", secret.expose()));
        }
        form.extend_from_slice(fields);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let resp = self
            .http
            .post(&self.token_url)
            .timeout(Duration::from_secs(30))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
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
            429 | 500..=599 => return Err(ConnectError::transient(endpoint, format!("{status}"))),
            // Only the error code is kept: the rest of the body may quote a token.
            _ => {
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("status {status}"));
                return Err(ConnectError::Refused {
                    endpoint: endpoint.into(),
                    code,
                });
            }
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| ConnectError::data(endpoint, "$", e.to_string()))?;
        metrics::counter!("ferry_connector_token_renewals_total").increment(1);
        Ok(Exchanged {
            access: t.access_token,
            lifetime_ms: t.expires_in.unwrap_or(3600).max(1) * 1000,
            refresh: t.refresh_token,
            scopes: t.scope,
        })
    }

    /// The token row, locked for the renewal where the engine can (PostgreSQL); created empty
    /// for a client-credentials grant seen for the first time.
    async fn renew(&self, stale: Option<&Secret>) -> Result<Cached, ConnectError> {
        if self.grant == Grant::ClientCredentials {
            ferry_db::exec!(
                &self.db,
                "INSERT INTO ferry_credentials (key, access_token, expires_at_ms, refresh_token, updated_ms)
                 VALUES ($1, NULL, 0, '', $2) ON CONFLICT (key) DO NOTHING",
                &self.key,
                self.clock.now_ms(),
            )?;
        }
        match &self.db {
            Db::Postgres(pool) => {
                // The row lock makes the renewal single-flight across processes.
                let mut tx = pool.begin().await?;
                let out = renew_on!(self, stale, ROW_LOCKED, &mut *tx);
                tx.commit().await?;
                out
            }
            // One process per SQLite database: the in-process lock is the single flight.
            Db::Sqlite(pool) => renew_on!(self, stale, ROW, pool),
        }
    }

    /// The log line of a credential that must be installed again.
    fn warn_reauthorize(&self, reason: &str) {
        tracing::warn!(credential = %self.key, reason, "the store must be installed again");
    }

    /// What to do with the stored row: use its token, or renew (and what to write).
    async fn decide(
        &self,
        row: &Row,
        stale: Option<&Secret>,
    ) -> Result<(Cached, Option<Update>), ConnectError> {
        if row.state == "needs_reauthorization" {
            return Err(self.reauthorize("an earlier renewal was refused"));
        }
        if let Some(a) = row
            .access
            .as_ref()
            .filter(|a| stale.is_none_or(|s| s.expose() != a.as_str()))
        {
            let c = Cached {
                access: Secret::new(a.clone()),
                expires_at_ms: row.expires_at_ms,
                lifetime_ms: row.lifetime_ms,
            };
            // Another process renewed while this one waited for the lock.
            if self.fresh(&c) {
                return Ok((c, None));
            }
        }
        let (x, used) = match self.grant {
            Grant::ClientCredentials => (self.exchange(None).await?, String::new()),
            Grant::Refresh => {
                if row.refresh.is_empty() {
                    return Err(self.missing());
                }
                match self.exchange(Some(&row.refresh)).await {
                    Ok(x) => (x, row.refresh.clone()),
                    Err(ConnectError::Refused { code, .. }) => match &row.previous {
                        // The one it replaced, once: valid until its successor is first used.
                        Some(prev) => match self.exchange(Some(prev)).await {
                            Ok(x) => (x, prev.clone()),
                            Err(ConnectError::Refused { code, .. }) => {
                                return Err(self.reauthorize(&format!(
                                    "the refresh token and the one before it were refused ({code})"
                                )));
                            }
                            Err(e) => return Err(e),
                        },
                        None => {
                            return Err(self
                                .reauthorize(&format!("the refresh token was refused ({code})")));
                        }
                    },
                    Err(e) => return Err(e),
                }
            }
        };
        let now = self.clock.now_ms();
        let cached = Cached {
            access: Secret::new(x.access.clone()),
            expires_at_ms: now + x.lifetime_ms,
            lifetime_ms: x.lifetime_ms,
        };
        let refresh = x.refresh.clone().unwrap_or_else(|| used.clone());
        // The used one is kept as the previous only when it was replaced.
        let previous = (!used.is_empty() && refresh != used).then_some(used);
        Ok((
            cached.clone(),
            Some(Update {
                access: x.access,
                expires_at_ms: cached.expires_at_ms,
                refresh,
                previous,
                lifetime_ms: x.lifetime_ms,
                scopes: x.scopes,
                now,
            }),
        ))
    }

    /// Nothing stored for a refresh-token credential: the store was never installed.
    fn missing(&self) -> ConnectError {
        self.reauthorize("not installed yet: open /oauth/shopify/install for this store")
    }
}

/// A renewal's row, written in one statement.
struct Update {
    access: String,
    expires_at_ms: i64,
    refresh: String,
    previous: Option<String>,
    lifetime_ms: i64,
    scopes: Option<String>,
    now: i64,
}

/// A renewal on one engine's connection (`$ex`): the row read with `$row`, then what
/// [`OAuth::decide`] says written (the new tokens, or the mark of a needed reinstallation).
macro_rules! renew_on {
    ($o:ident, $stale:ident, $row:expr, $ex:expr) => {{
        let raw: Option<RawRow> = sqlx::query_as($row)
            .bind(&$o.key)
            .fetch_optional($ex)
            .await?;
        let row = $o.opened(raw.ok_or_else(|| $o.missing())?)?;
        match $o.decide(&row, $stale).await {
            Ok((cached, update)) => {
                if let Some(u) = update {
                    bind_update!(sqlx::query(UPDATE), $o, u)
                        .execute($ex)
                        .await?;
                }
                Ok(cached)
            }
            Err(e) => {
                if let ConnectError::Reauthorize { reason, .. } = &e {
                    $o.warn_reauthorize(reason);
                    bind_mark!(sqlx::query(MARK), $o, reason)
                        .execute($ex)
                        .await?;
                }
                Err(e)
            }
        }
    }};
}
use renew_on;

/// Binds an [`Update`] to [`UPDATE`] (on either engine's query).
macro_rules! bind_update {
    ($q:expr, $o:expr, $u:expr) => {{
        let u: Update = $u;
        $q.bind($o.key.clone())
            .bind($o.seal(&u.access))
            .bind(u.expires_at_ms)
            .bind($o.seal(&u.refresh))
            .bind(u.previous.map(|p| $o.seal(&p)))
            .bind(u.lifetime_ms)
            .bind(u.scopes)
            .bind(u.now)
    }};
}
use bind_update;

/// Binds a reason to [`MARK`].
macro_rules! bind_mark {
    ($q:expr, $o:expr, $reason:expr) => {
        $q.bind($o.key.clone())
            .bind($reason.to_owned())
            .bind($o.clock.now_ms())
    };
}
use bind_mark;

impl Credentials for OAuth {
    fn token(&self) -> BoxFuture<'_, Result<Secret, ConnectError>> {
        Box::pin(async move {
            let mut cache = self.cache.lock().await;
            if let Some(c) = cache.as_ref().filter(|c| self.fresh(c)) {
                return Ok(c.access.clone());
            }
            let c = self.renew(None).await?;
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
                return Ok(()); // Someone renewed while this caller waited for the lock.
            }
            *cache = Some(self.renew(Some(stale)).await?);
            Ok(())
        })
    }
}
