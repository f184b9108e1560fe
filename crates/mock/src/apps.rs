//! Apps as Shopify has them since 2026 (made in the Dev Dashboard; merchants can no longer
//! create the admin "custom app" that showed a token to paste). An app has a client id and
//! secret, belongs to an organization, and gets access tokens at
//! `POST /stores/{s}/admin/oauth/access_token` (Shopify: `https://{shop}/admin/oauth/access_token`)
//! by one of three grants, form-encoded or JSON:
//! - `client_credentials`: stores of the app's own organization only (`shop_not_permitted`
//!   otherwise); a token for 24 hours, no refresh token.
//! - the authorization code (after `GET /stores/{s}/admin/oauth/authorize`, the consent page
//!   naming the app and its scopes, whose Install button posts back to the same address and is
//!   redirected to the app with a code in a signed query): an expiring offline token (1 hour)
//!   and a refresh token.
//! - `refresh_token`: a new pair; the refresh token rotates on every use, and the previous one
//!   stays valid until the new one is first used.
//!
//! Expired or unknown tokens answer 401 like Shopify. Webhooks subscribed with an app's token
//! are signed with the app's client secret. `--token-ttl-s` shortens every lifetime.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::MockError;
use crate::platform::{Platform, ct_eq, store_ref};

/// The organization every store belongs to unless it is moved.
pub const DEFAULT_ORGANIZATION: &str = "org-1";
/// Shopify's lifetimes: a client-credentials token 24 hours (it says 86399 s), an expiring
/// offline token 1 hour, its refresh token 90 days, an authorization code 10 minutes.
const CLIENT_CREDENTIALS_TTL_MS: i64 = 86_399_000;
const OFFLINE_TTL_MS: i64 = 3_600_000;
const REFRESH_TTL_MS: i64 = 90 * 86_400_000;
const CODE_TTL_MS: i64 = 600_000;

/// An app: what its developer copies out of the Dev Dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct AppInfo {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub organization: String,
    /// What it asks for, in Shopify's comma-separated form when sent.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
struct Issued {
    store: String,
    client_id: String,
    /// Comma-separated, as granted.
    scopes: String,
    expires_at: i64,
}

#[derive(Debug, Clone)]
struct RefreshGrant {
    store: String,
    client_id: String,
    scopes: String,
    expires_at: i64,
    /// The refresh token this one replaced: valid until this one is first used.
    predecessor: Option<String>,
}

#[derive(Debug, Clone)]
struct Code {
    store: String,
    client_id: String,
    scopes: String,
    expires_at: i64,
}

/// What the token endpoint did, per app, for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AppCounters {
    /// Tokens issued by each grant.
    pub client_credentials: u64,
    pub codes_exchanged: u64,
    pub refreshes: u64,
    /// Refresh tokens refused (rotated away, expired or unknown).
    pub refresh_refused: u64,
    /// API calls refused because the app's token had expired.
    pub expired_calls: u64,
    /// Tokens issued for a store while the one issued just before it for the same store still
    /// had more than half its lifetime left: renewals that raced (a client renewing near the
    /// end of a lifetime never causes one).
    pub early_grants: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Apps {
    apps: HashMap<String, AppInfo>,
    access: HashMap<String, Issued>,
    refresh: HashMap<String, RefreshGrant>,
    codes: HashMap<String, Code>,
    /// Replaces every lifetime when set (`ferry mock --token-ttl-s`).
    ttl_ms: Option<i64>,
    organizations: HashMap<String, String>,
    counters: HashMap<String, AppCounters>,
    /// (issued at, expires at) of the last token issued per (client id, store).
    latest: HashMap<(String, String), (i64, i64)>,
    /// What a store's own static token (a legacy custom app) was granted, when not
    /// [`LEGACY_SCOPES`].
    static_scopes: HashMap<String, Vec<String>>,
}

/// What a legacy custom app's static token is granted unless a test narrows it.
pub const LEGACY_SCOPES: &[&str] = &[
    "read_products",
    "write_products",
    "read_inventory",
    "write_inventory",
    "read_locations",
    "read_orders",
    "write_orders",
    "read_files",
    "write_files",
];

impl Apps {
    fn ttl(&self, default: i64) -> i64 {
        self.ttl_ms.unwrap_or(default)
    }

    fn count(&mut self, client_id: &str, f: impl FnOnce(&mut AppCounters)) {
        f(self.counters.entry(client_id.to_owned()).or_default());
    }

    /// Records an access token issued to `client_id` for `store` at `now` with `scopes`, living
    /// `ttl` ms.
    fn issue(
        &mut self,
        token: String,
        store: &str,
        client_id: &str,
        scopes: &str,
        now: i64,
        ttl: i64,
    ) {
        let key = (client_id.to_owned(), store.to_owned());
        let early = self
            .latest
            .insert(key, (now, now + ttl))
            .is_some_and(|(from, to)| to - now > (to - from) / 2);
        if early {
            self.count(client_id, |c| c.early_grants += 1);
        }
        self.access.insert(
            token,
            Issued {
                store: store.to_owned(),
                client_id: client_id.to_owned(),
                scopes: scopes.to_owned(),
                expires_at: now + ttl,
            },
        );
    }
}

/// Who a presented token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The store's own static token (a legacy custom app).
    Static,
    /// An app's token: webhooks it subscribes are signed with its client secret.
    App {
        client_secret: String,
        /// Comma-separated, as granted.
        scopes: String,
    },
}

pub(crate) fn routes() -> Router<Arc<Platform>> {
    Router::new()
        .route("/stores/{store}/admin/oauth/access_token", post(token))
        .route(
            "/stores/{store}/admin/oauth/authorize",
            get(consent).post(approve),
        )
}

/// An OAuth error as Shopify's token endpoint words it.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The fields of a token request, from a form or a JSON body.
#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
    code: Option<String>,
    refresh_token: Option<String>,
}

fn parse_token_request(body: &[u8]) -> Option<TokenRequest> {
    if let Ok(r) = serde_json::from_slice::<TokenRequest>(body) {
        return Some(r);
    }
    let mut r = TokenRequest::default();
    for (k, v) in url::form_urlencoded::parse(body) {
        let v = Some(v.into_owned());
        match &*k {
            "client_id" => r.client_id = v,
            "client_secret" => r.client_secret = v,
            "grant_type" => r.grant_type = v,
            "code" => r.code = v,
            "refresh_token" => r.refresh_token = v,
            _ => {}
        }
    }
    Some(r)
}

async fn token(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(req) = parse_token_request(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unreadable body",
        );
    };
    if p.store_info(&store).is_err() {
        return MockError::UnknownStore(store).into_response();
    }
    let now = p.now_ms();
    let (Some(client_id), Some(secret)) = (req.client_id, req.client_secret) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id and client_secret are required",
        );
    };
    let access = p.secret("shpat_");
    let mut apps = p.apps();
    let app = match apps.apps.get(&client_id) {
        Some(a) if ct_eq(a.client_secret.as_bytes(), secret.as_bytes()) => a.clone(),
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed: unknown client or wrong secret",
            );
        }
    };
    let scopes = app.scopes.join(",");
    match (req.grant_type.as_deref(), req.code, req.refresh_token) {
        (Some("client_credentials"), _, _) => {
            let org = apps
                .organizations
                .get(&store)
                .map_or(DEFAULT_ORGANIZATION, String::as_str);
            if org != app.organization {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "shop_not_permitted",
                    "the client credentials grant is only for stores of the app's organization",
                );
            }
            let ttl = apps.ttl(CLIENT_CREDENTIALS_TTL_MS);
            apps.issue(access.clone(), &store, &client_id, &scopes, now, ttl);
            apps.count(&client_id, |c| c.client_credentials += 1);
            Json(json!({"access_token": access, "scope": scopes, "expires_in": ttl / 1000}))
                .into_response()
        }
        (None | Some("authorization_code"), Some(code), _) => {
            let found = apps.codes.remove(&code);
            let Some(c) = found
                .filter(|c| c.store == store && c.client_id == client_id && c.expires_at > now)
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the authorization code is invalid, expired or already used",
                );
            };
            apps.count(&client_id, |x| x.codes_exchanged += 1);
            let refresh = p.secret("shprt_");
            issue_offline(
                &mut apps, now, &c.store, &client_id, &c.scopes, access, refresh, None,
            )
        }
        (Some("refresh_token"), _, Some(presented)) => {
            let valid = apps
                .refresh
                .get(&presented)
                .cloned()
                .filter(|r| r.store == store && r.client_id == client_id && r.expires_at > now);
            let Some(r) = valid else {
                apps.count(&client_id, |c| c.refresh_refused += 1);
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the refresh token is invalid, expired or was rotated",
                );
            };
            // First use of a rotated token: the one before it stops working.
            if let Some(prev) = &r.predecessor {
                apps.refresh.remove(prev);
            }
            if let Some(g) = apps.refresh.get_mut(&presented) {
                g.predecessor = None;
            }
            apps.count(&client_id, |c| c.refreshes += 1);
            let next = p.secret("shprt_");
            issue_offline(
                &mut apps,
                now,
                &r.store,
                &client_id,
                &r.scopes,
                access,
                next,
                Some(presented),
            )
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type is client_credentials or refresh_token, or give a code",
        ),
    }
}

/// An expiring offline token and its refresh token (which replaces `predecessor`).
#[allow(clippy::too_many_arguments)]
fn issue_offline(
    apps: &mut Apps,
    now: i64,
    store: &str,
    client_id: &str,
    scopes: &str,
    access: String,
    refresh: String,
    predecessor: Option<String>,
) -> Response {
    let ttl = apps.ttl(OFFLINE_TTL_MS);
    let refresh_ttl = apps.ttl_ms.map_or(REFRESH_TTL_MS, |t| t * 100);
    apps.issue(access.clone(), store, client_id, scopes, now, ttl);
    apps.refresh.insert(
        refresh.clone(),
        RefreshGrant {
            store: store.to_owned(),
            client_id: client_id.to_owned(),
            scopes: scopes.to_owned(),
            expires_at: now + refresh_ttl,
            predecessor,
        },
    );
    Json(json!({
        "access_token": access,
        "scope": scopes,
        "expires_in": ttl / 1000,
        "refresh_token": refresh,
        "refresh_token_expires_in": refresh_ttl / 1000,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: Option<String>,
    scope: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
}

/// An authorization request that names a known store and app, with the app and what it may
/// be granted of what it asked for.
fn checked(
    p: &Platform,
    store: &str,
    q: AuthorizeQuery,
) -> Result<(AppInfo, Vec<String>, String, String), MockError> {
    if p.store_info(store).is_err() {
        return Err(MockError::UnknownStore(store.to_owned()));
    }
    let (Some(client_id), Some(redirect), Some(state)) = (q.client_id, q.redirect_uri, q.state)
    else {
        return Err(MockError::BadRequest(
            "client_id, redirect_uri and state are required".into(),
        ));
    };
    let Some(app) = p.apps().apps.get(&client_id).cloned() else {
        return Err(MockError::BadRequest("unknown client_id".into()));
    };
    // Granted: what was asked, of what the app may ask.
    let granted = q
        .scope
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| app.scopes.iter().any(|a| a == s))
        .map(str::to_owned)
        .collect();
    Ok((app, granted, redirect, state))
}

/// The merchant's consent page: the app, the store and the scopes, and an Install button that
/// posts the request back (hidden fields a test reads with [`consent_form`]).
async fn consent(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let asked = q.scope.clone().unwrap_or_default();
    let (app, granted, redirect, state) = match checked(&p, &store, q) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let hidden = [
        ("client_id", app.client_id.as_str()),
        ("scope", asked.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("state", state.as_str()),
    ]
    .iter()
    .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
    .collect::<String>();
    let scopes = granted
        .iter()
        .map(|s| format!("<li>{}</li>", escape(s)))
        .collect::<String>();
    let page = format!(
        r#"<!doctype html><title>Install {app}</title><h1>Install {app} on {store}?</h1><p>It will be able to:</p><ul>{scopes}</ul><form method="post" action="/stores/{store}/admin/oauth/authorize">{hidden}<button type="submit">Install</button></form>"#,
        app = escape(&app.name),
        store = escape(&store),
    );
    axum::response::Html(page).into_response()
}

/// The merchant pressed Install: back to `redirect_uri` with a code and the query signed as
/// Shopify signs it (HMAC-SHA256 in hex of the sorted `k=v` pairs joined by `&`, with the app's
/// client secret).
async fn approve(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    axum::extract::Form(q): axum::extract::Form<AuthorizeQuery>,
) -> Response {
    let (app, granted, redirect, state) = match checked(&p, &store, q) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let now = p.now_ms();
    let code = p.secret("");
    p.apps().codes.insert(
        code.clone(),
        Code {
            store: store.clone(),
            client_id: app.client_id.clone(),
            scopes: granted.join(","),
            expires_at: now + CODE_TTL_MS,
        },
    );
    let shop = format!("{store}.myshopify.com");
    let timestamp = (now / 1000).to_string();
    let host = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        format!("admin.shopify.com/store/{store}"),
    );
    let params = [
        ("code", code.as_str()),
        ("host", host.as_str()),
        ("shop", shop.as_str()),
        ("state", state.as_str()),
        ("timestamp", timestamp.as_str()),
    ];
    let hmac = sign_query(&app.client_secret, &params);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    query.append_pair("hmac", &hmac);
    let sep = if redirect.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{redirect}{sep}{}", query.finish())).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What pressing Install on a consent page sends: the form's action and its hidden fields.
/// `None` when `page` is not a consent page.
pub fn consent_form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    fn after<'a>(hay: &'a str, marker: &str) -> Option<&'a str> {
        let at = hay.find(marker)? + marker.len();
        Some(&hay[at..])
    }
    let form = after(page, r#"<form method="post" action=""#)?;
    let action = form.split('"').next()?.to_owned();
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(tail) = after(rest, r#"<input type="hidden" name=""#) {
        let (name, tail) = tail.split_once('"')?;
        let tail = after(tail, r#"value=""#)?;
        let (value, tail) = tail.split_once('"')?;
        fields.push((name.to_owned(), unescape(value)));
        rest = tail;
    }
    Some((action, fields))
}

/// Shopify's signature of an OAuth query: the pairs (without `hmac` and `signature`) sorted by
/// key, `k=v` joined by `&`, HMAC-SHA256 with the client secret, in lowercase hex.
pub fn sign_query(client_secret: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(k, _)| *k != "hmac" && *k != "signature")
        .collect();
    sorted.sort();
    let message = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(client_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Platform {
    pub(crate) fn apps(&self) -> std::sync::MutexGuard<'_, Apps> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an app of `organization` asking for `scopes`: its client id and secret.
    pub fn create_app(&self, name: &str, organization: &str, scopes: &[&str]) -> AppInfo {
        let info = AppInfo {
            name: name.to_owned(),
            client_id: self.secret(""),
            client_secret: self.secret("shpss_"),
            organization: organization.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        };
        self.apps()
            .apps
            .insert(info.client_id.clone(), info.clone());
        info
    }

    /// Moves a store to another organization (the client credentials grant then refuses the
    /// apps of its old one).
    pub fn set_organization(&self, store: &str, organization: &str) -> Result<(), MockError> {
        store_ref(&self.lock(), store)?;
        self.apps()
            .organizations
            .insert(store.to_owned(), organization.to_owned());
        Ok(())
    }

    /// Every token lifetime from now on (`ferry mock --token-ttl-s`); `None`: Shopify's.
    pub fn set_token_ttl(&self, ttl: Option<std::time::Duration>) {
        self.apps().ttl_ms = ttl.map(|t| (t.as_millis() as i64).max(1000));
    }

    /// Expires every access token of an app now (the next call with one gets a 401).
    pub fn expire_app_tokens(&self, client_id: &str) {
        let now = self.now_ms();
        for t in self.apps().access.values_mut() {
            if t.client_id == client_id {
                t.expires_at = now;
            }
        }
    }

    /// Drops an app's refresh tokens that were issued and never used (what a lost or
    /// revoked rotation leaves): the ones they replaced stay valid, as Shopify's grace rule has it.
    pub fn forget_unused_refresh_tokens(&self, client_id: &str) {
        self.apps()
            .refresh
            .retain(|_, r| r.client_id != client_id || r.predecessor.is_none());
    }

    /// Revokes every refresh token of an app (the merchant uninstalled it, say).
    pub fn revoke_refresh_tokens(&self, client_id: &str) {
        self.apps().refresh.retain(|_, r| r.client_id != client_id);
    }

    pub fn app_counters(&self, client_id: &str) -> AppCounters {
        self.apps()
            .counters
            .get(client_id)
            .copied()
            .unwrap_or_default()
    }

    /// Whose token this is for `store`: `None` when it is nobody's (or expired).
    pub(crate) fn caller(&self, store: &str, token: &str) -> Option<Caller> {
        let now = self.now_ms();
        let mut apps = self.apps();
        let issued = apps.access.get(token).cloned()?;
        if issued.store != store {
            return None;
        }
        if issued.expires_at <= now {
            apps.count(&issued.client_id, |c| c.expired_calls += 1);
            return None;
        }
        let secret = apps.apps.get(&issued.client_id)?.client_secret.clone();
        Some(Caller::App {
            client_secret: secret,
            scopes: issued.scopes,
        })
    }

    /// The scopes `caller` holds on `store` (`currentAppInstallation { accessScopes }`).
    pub(crate) fn granted_scopes(&self, store: &str, caller: &Caller) -> Vec<String> {
        match caller {
            Caller::App { scopes, .. } => scopes
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Caller::Static => self
                .apps()
                .static_scopes
                .get(store)
                .cloned()
                .unwrap_or_else(|| LEGACY_SCOPES.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    /// Narrows what a store's own static token was granted (a legacy app configured without
    /// some scopes).
    pub fn set_static_scopes(&self, store: &str, scopes: &[&str]) -> Result<(), MockError> {
        store_ref(&self.lock(), store)?;
        self.apps().static_scopes.insert(
            store.to_owned(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        );
        Ok(())
    }
}
