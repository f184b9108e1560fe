//! Installing an app on a store (Shopify's authorization code grant), for stores added with
//! `--grant authorization_code`: `ferry serve` sends the merchant to the store's consent page
//! with a single-use `state`, and the callback checks the shop domain, the HMAC over the sorted
//! query (hex, constant time), the timestamp and the state before the code is exchanged for
//! an expiring offline token. The tokens are stored sealed and the store is connected
//! (webhooks subscribed). A failed check stores nothing.

use ferry_db::{exec, row};
use hmac::{KeyInit, Mac};
use rand::RngExt;

use crate::credentials::{App, Kind, NEEDED_SCOPES, missing_scopes, valid_shop_domain};
use crate::engine::Engine;
use crate::error::SyncError;

/// A `state` is good for 10 minutes.
const STATE_TTL_MS: i64 = 600_000;
/// At most this many installs of one store in flight (older states are dropped), so requests
/// to the unauthenticated install route can not fill the table.
const LIVE_STATES: i64 = 20;
/// The callback's `timestamp` may be this far from the server's clock.
const TIMESTAMP_SKEW_S: i64 = 3600;

/// What an install ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub store: String,
    /// Scopes ferry needs that the merchant did not grant.
    pub missing_scopes: Vec<&'static str>,
    /// The connect job that subscribes the store's webhooks.
    pub job: String,
}

fn refused(why: &str) -> SyncError {
    SyncError::Invalid(why.to_owned())
}

/// Shopify's signature of an OAuth query: every pair but `hmac` and `signature`, sorted,
/// `k=v` joined by `&`, HMAC-SHA256 with the client secret, lowercase hex.
pub fn query_signature(client_secret: &str, pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| *k != "hmac" && *k != "signature")
        .collect();
    sorted.sort();
    let message = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(client_secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Engine {
    /// The store of the network awaiting installation under this shop domain, and its app.
    async fn awaiting(&self, shop: &str) -> Result<(String, App), SyncError> {
        if !valid_shop_domain(shop) {
            return Err(refused(
                "shop must be a store's myshopify.com domain, such as example.myshopify.com",
            ));
        }
        let found = row!(
            self.db(),
            (String,),
            "SELECT name FROM ferry_network WHERE shop_domain = $1 AND credentials = $2",
            shop,
            Kind::AuthorizationCode
        )?;
        let Some((store,)) = found else {
            return Err(refused(
                "no store of the network with this shop domain is installed this way (ferry network add … --shop-domain … --grant authorization_code)",
            ));
        };
        let (_, _, app) = self.network().access(&store).await?;
        let app = app.ok_or_else(|| refused("the store has no app"))?;
        Ok((store, app))
    }

    /// Where to send the merchant to install the app on `shop`: the store's consent page, with
    /// a new single-use state.
    pub async fn install_url(&self, shop: &str) -> Result<String, SyncError> {
        let (store, app) = self.awaiting(shop).await?;
        let now = self.now_ms();
        let state = hex::encode(rand::rng().random::<[u8; 16]>());
        exec!(
            self.db(),
            "DELETE FROM ferry_install_states WHERE expires_ms <= $1",
            now
        )?;
        exec!(
            self.db(),
            "DELETE FROM ferry_install_states WHERE store = $1 AND state NOT IN
             (SELECT state FROM ferry_install_states WHERE store = $1 ORDER BY expires_ms DESC LIMIT $2)",
            &store,
            LIVE_STATES - 1
        )?;
        exec!(
            self.db(),
            "INSERT INTO ferry_install_states (state, store, expires_ms) VALUES ($1, $2, $3)",
            &state,
            &store,
            now + STATE_TTL_MS
        )?;
        let redirect = format!(
            "{}/oauth/shopify/callback",
            self.options().public_url.trim_end_matches('/')
        );
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &app.client_id)
            .append_pair("scope", &NEEDED_SCOPES.join(","))
            .append_pair("redirect_uri", &redirect)
            .append_pair("state", &state)
            // Empty: an offline token (not one tied to the merchant's session).
            .append_pair("grant_options[]", "")
            .finish();
        Ok(format!(
            "{}/admin/oauth/authorize?{query}",
            self.shop_base(shop)
        ))
    }

    /// The callback: every check, then the code exchanged, the tokens stored, the store
    /// connected. Nothing is stored when a check fails.
    pub async fn install_finish(&self, pairs: &[(String, String)]) -> Result<Installed, SyncError> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| refused(&format!("the callback has no {k}")))
        };
        let (store, app) = self.awaiting(get("shop")?).await?;
        let expected = query_signature(app.client_secret.expose(), pairs);
        if !ferry_core::ct_eq(
            get("hmac")?.to_ascii_lowercase().as_bytes(),
            expected.as_bytes(),
        ) {
            return Err(refused("the callback's hmac does not match"));
        }
        let ts: i64 = get("timestamp")?
            .parse()
            .map_err(|_| refused("the callback's timestamp is not a number"))?;
        if (self.now_ms() / 1000 - ts).abs() > TIMESTAMP_SKEW_S {
            return Err(refused("the callback's timestamp is too far from now"));
        }
        let code = get("code")?;
        // The state last: a forged callback does not use up a real one.
        let taken = exec!(
            self.db(),
            "DELETE FROM ferry_install_states WHERE state = $1 AND store = $2 AND expires_ms > $3",
            get("state")?,
            &store,
            self.now_ms()
        )?;
        if taken != 1 {
            return Err(refused(
                "the state is unknown, used or expired: start again from /oauth/shopify/install",
            ));
        }
        let creds = crate::credentials::app_credentials(
            self,
            &store,
            Kind::AuthorizationCode,
            &app,
            &format!("{}/admin/oauth/access_token", self.shop_base(get("shop")?)),
        );
        let scopes = creds.install(code).await?;
        self.forget_shop(&store);
        let job = self.connect_store(&store).await?;
        tracing::info!(store, "the app was installed");
        Ok(Installed {
            store,
            missing_scopes: missing_scopes(&scopes),
            job,
        })
    }
}
