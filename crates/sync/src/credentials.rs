//! How the engine gets each store's token. Since 1 January 2026 a merchant can no longer create
//! the admin "custom app" that showed a token to paste, so a store is one of:
//! - `static`: such a token, for stores that still have a legacy app;
//! - `client_credentials`: an app of the merchant's own organization (made in the Dev
//!   Dashboard): ferry asks for a token with the app's client id and secret, a day at a time;
//! - `authorization_code`: installed through `/oauth/shopify/install`: an expiring offline
//!   token and its rotating refresh token.
//!
//! The app is registered once (`ferry apps add`) and named by several stores, or given with the
//! store. Its client secret also signs the store's webhooks, so it is the store's webhook secret.

use std::sync::Arc;

use ferry_connect::Secret;
use ferry_connect::oauth::{Grant, OAuth, TokenStatus};
use ferry_db::{exec, row, rows};
use serde::Serialize;

use crate::error::SyncError;
use crate::network::Network;

/// What ferry asks a store for: products and collections, stock, locations, orders, media.
pub const NEEDED_SCOPES: [&str; 7] = [
    "read_products",
    "write_products",
    "read_inventory",
    "write_inventory",
    "read_locations",
    "read_orders",
    "write_files",
];

ferry_db::text_enum! {
    /// How a store's token is obtained.
    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Kind {
        Static = "static",
        ClientCredentials = "client_credentials",
        AuthorizationCode = "authorization_code",
    }
}

/// An app as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AppInfo {
    pub name: String,
    pub client_id: String,
    /// Comma-separated, as Shopify writes them.
    pub scopes: String,
    pub created_ms: i64,
}

/// The app a store is reached through: a registered one, or its own id and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppRef {
    Named(String),
    Own {
        client_id: String,
        client_secret: String,
    },
}

/// An app with its secret opened: what a store's credentials are built from.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub name: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// `example.myshopify.com`: a handle, then Shopify's domain (what the install callback's
/// `shop` must look like too).
pub fn valid_shop_domain(d: &str) -> bool {
    let Some(handle) = d.strip_suffix(".myshopify.com") else {
        return false;
    };
    !handle.is_empty()
        && handle.len() <= 60
        && handle.starts_with(|c: char| c.is_ascii_alphanumeric())
        && handle
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The handle of a valid shop domain (`example` of `example.myshopify.com`).
pub fn shop_handle(domain: &str) -> &str {
    domain.strip_suffix(".myshopify.com").unwrap_or(domain)
}

/// An app's client id and secret as the API documents them.
fn check_client(client_id: &str, client_secret: &str) -> Result<(), SyncError> {
    if crate::blank(client_id) || client_id.chars().count() > 255 {
        return Err(SyncError::Invalid(
            "client_id is 1 to 255 characters, not only spaces".into(),
        ));
    }
    if !(8..=crate::MAX_SECRET).contains(&client_secret.chars().count()) {
        return Err(SyncError::Invalid(format!(
            "the client secret is 8 to {} characters",
            crate::MAX_SECRET
        )));
    }
    Ok(())
}

fn valid_app_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The scopes of `granted` (comma-separated) that ferry needs and lacks.
pub fn missing_scopes(granted: &str) -> Vec<&'static str> {
    let has = |s: &str| {
        granted.split(',').map(str::trim).any(|g| {
            // A write scope implies its read scope.
            g == s
                || s.strip_prefix("read_")
                    .is_some_and(|rest| g == format!("write_{rest}"))
        })
    };
    NEEDED_SCOPES.into_iter().filter(|s| !has(s)).collect()
}

impl Network {
    fn app_context(name: &str) -> String {
        format!("app:{name}")
    }

    /// Registers an app (or replaces its id, secret and scopes).
    pub async fn put_app(
        &self,
        name: &str,
        client_id: &str,
        client_secret: &str,
        scopes: &str,
    ) -> Result<(), SyncError> {
        if !valid_app_name(name) {
            return Err(SyncError::Invalid(
                "an app name is 1 to 64 of [A-Za-z0-9_-]".into(),
            ));
        }
        check_client(client_id, client_secret)?;
        if scopes.chars().count() > 2048 {
            return Err(SyncError::Invalid(
                "scopes is at most 2048 characters".into(),
            ));
        }
        let sealed = self
            .cipher()
            .seal(&Self::app_context(name), client_secret.as_bytes());
        exec!(
            &self.db,
            "INSERT INTO ferry_apps (name, client_id, client_secret, scopes, created_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET client_id = $2, client_secret = $3, scopes = $4",
            name,
            client_id,
            &sealed,
            scopes,
            self.now_ms()
        )?;
        Ok(())
    }

    /// The registered apps, by name (at most 1,000), without their secrets.
    pub async fn apps(&self) -> Result<Vec<AppInfo>, SyncError> {
        Ok(rows!(
            &self.db,
            AppInfo,
            "SELECT name, client_id, scopes, created_ms FROM ferry_apps ORDER BY name LIMIT 1000"
        )?)
    }

    pub(crate) async fn app(&self, name: &str) -> Result<Option<App>, SyncError> {
        let found = row!(
            &self.db,
            (String, String),
            "SELECT client_id, client_secret FROM ferry_apps WHERE name = $1",
            name
        )?;
        let Some((client_id, sealed)) = found else {
            return Ok(None);
        };
        let secret = self.open_text(&Self::app_context(name), &sealed)?;
        Ok(Some(App {
            name: name.to_owned(),
            client_id,
            client_secret: Secret::new(secret),
        }))
    }

    /// The app `r` names, resolved (a registered one must exist).
    pub(crate) async fn resolve_app(&self, r: &AppRef) -> Result<App, SyncError> {
        match r {
            AppRef::Named(n) => self
                .app(n)
                .await?
                .ok_or_else(|| SyncError::Refused(format!("no app named {n:?} (ferry apps add)"))),
            AppRef::Own {
                client_id,
                client_secret,
            } => {
                check_client(client_id, client_secret)?;
                Ok(App {
                    name: String::new(),
                    client_id: client_id.clone(),
                    client_secret: Secret::new(client_secret.clone()),
                })
            }
        }
    }

    /// Records how a store reached through an app gets its token.
    pub(crate) async fn set_access(
        &self,
        name: &str,
        kind: Kind,
        shop_domain: &str,
        app: &App,
    ) -> Result<(), SyncError> {
        // A registered app is named; an own one keeps its id and sealed secret with the store.
        let (client_id, sealed) = if app.name.is_empty() {
            (
                app.client_id.clone(),
                self.cipher().seal(
                    &format!("network-app:{name}"),
                    app.client_secret.expose().as_bytes(),
                ),
            )
        } else {
            (String::new(), String::new())
        };
        exec!(
            &self.db,
            "UPDATE ferry_network SET credentials = $2, shop_domain = $3, app = $4, client_id = $5, client_secret = $6 WHERE name = $1",
            name,
            kind,
            shop_domain,
            &app.name,
            &client_id,
            &sealed
        )?;
        Ok(())
    }

    /// How a store gets its token: the kind, and for an app's store the shop domain and app.
    pub(crate) async fn access(
        &self,
        name: &str,
    ) -> Result<(Kind, String, Option<App>), SyncError> {
        let found = row!(
            &self.db,
            (Kind, String, String, String, String),
            "SELECT credentials, shop_domain, app, client_id, client_secret FROM ferry_network WHERE name = $1",
            name
        )?;
        let (kind, domain, app, client_id, sealed) =
            found.ok_or_else(|| SyncError::UnknownStore(name.to_owned()))?;
        let app = match kind {
            Kind::Static => None,
            _ if !app.is_empty() => Some(
                self.app(&app)
                    .await?
                    .ok_or_else(|| SyncError::Invalid(format!("the app {app:?} is gone")))?,
            ),
            _ => Some(App {
                name: String::new(),
                client_id,
                client_secret: Secret::new(
                    self.open_text(&format!("network-app:{name}"), &sealed)?,
                ),
            }),
        };
        Ok((kind, domain, app))
    }

    fn open_text(&self, context: &str, sealed: &str) -> Result<String, SyncError> {
        let plain = self
            .cipher()
            .open(context, sealed)
            .map_err(|e| SyncError::Crypto(format!("{context}: {e}")))?;
        String::from_utf8(plain).map_err(|e| SyncError::Crypto(e.to_string()))
    }
}

/// The name of a store's tokens in `ferry_credentials`.
pub(crate) fn token_key(store: &str) -> String {
    format!("shopify:{store}")
}

/// The store a name of [`token_key`] belongs to.
pub(crate) fn store_of_token_key(key: &str) -> Option<&str> {
    key.strip_prefix("shopify:")
}

/// The OAuth credential of a store reached through an app, at `token_url`.
pub(crate) fn app_credentials(
    engine: &crate::engine::Engine,
    store: &str,
    kind: Kind,
    app: &App,
    token_url: &str,
) -> Arc<OAuth> {
    let grant = match kind {
        Kind::AuthorizationCode => Grant::Refresh,
        _ => Grant::ClientCredentials,
    };
    Arc::new(
        OAuth::new(
            engine.queue().db(),
            engine.queue().clock(),
            engine.network().cipher().clone(),
            &engine.client().options().outbound,
            &token_key(store),
            token_url,
        )
        .for_app(grant, &app.client_id, app.client_secret.clone()),
    )
}

/// What the API shows of a store's token: its state, expiry and scopes, never the token.
#[derive(Debug, Clone, Serialize)]
pub struct AccessView {
    pub credentials: Kind,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub shop_domain: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub app: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenStatus>,
    /// Scopes ferry needs that the token was not granted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_scopes: Vec<&'static str>,
}
